-- taskweave schema version 8: a task's outcome is its tenant's. The
-- leader writes the tenant of each task that has one beside its end; a
-- submitter login reads the outcomes of its own tenant's tasks alone, and
-- a login acting for no tenant those of tasks without one. Runs in one
-- transaction with search_path = taskweave; see schema.rs.

-- Outcomes from before version 8 have no tenant: no tenant's client could
-- submit before version 7, and version 7 published none.
ALTER TABLE outcomes ADD COLUMN tenant BIGINT;

ALTER TABLE outcomes ENABLE ROW LEVEL SECURITY;
CREATE POLICY node_all ON outcomes TO taskweave_node USING (true) WITH CHECK (true);
-- The login's own row of submitter_tenants is the only one it sees: the
-- subquery is its tenant, or NULL for a login mapped to none.
CREATE POLICY own_tenant ON outcomes FOR SELECT TO taskweave_submitter
    USING (tenant IS NOT DISTINCT FROM
           (SELECT tenant FROM submitter_tenants WHERE login = current_user));
