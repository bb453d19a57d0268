-- taskweave schema version 9: a hosted run's end is its tenant's, as a
-- task's outcome is since version 8. A tenant's client may start, signal
-- and cancel runs; the leader writes the tenant of each run that has one
-- beside its end, and a submitter login reads the ends of its own
-- tenant's runs alone (a login acting for no tenant those of runs
-- without one). Runs in one transaction with search_path = taskweave; see
-- schema.rs.

-- Ends from before version 9 have no tenant: no tenant's client could
-- start a run before.
ALTER TABLE run_ends ADD COLUMN tenant BIGINT;

ALTER TABLE run_ends ENABLE ROW LEVEL SECURITY;
CREATE POLICY node_all ON run_ends TO taskweave_node USING (true) WITH CHECK (true);
CREATE POLICY own_tenant ON run_ends FOR SELECT TO taskweave_submitter
    USING (tenant IS NOT DISTINCT FROM
           (SELECT tenant FROM submitter_tenants WHERE login = current_user));
