-- taskweave schema version 7: tenants. A submitter login may be mapped to
-- one tenant (`taskweave-pg init --tenant LOGIN:TENANT`); every client
-- message carries the login that posted it and that login's tenant, which
-- the database sets and no submitter can write. Runs in one transaction
-- with search_path = taskweave; see schema.rs.

-- Each submitter login's tenant. A login without a row acts for no
-- tenant, as every submitter did before version 7.
CREATE TABLE submitter_tenants (
    login TEXT PRIMARY KEY,
    tenant BIGINT NOT NULL CHECK (tenant >= 0));
ALTER TABLE submitter_tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON submitter_tenants FOR SELECT TO taskweave_submitter
    USING (login = current_user);
GRANT SELECT ON submitter_tenants TO taskweave_submitter;

-- The poster: only its default is ever written (no role of the cluster
-- but the node may insert the column, and a node is trusted). The
-- tenant: set by the trigger below from the poster's row, whatever the
-- statement said. Rows from before version 7 name whoever migrated.
ALTER TABLE inbox
    ADD COLUMN poster TEXT NOT NULL DEFAULT current_user,
    ADD COLUMN tenant BIGINT;

CREATE FUNCTION inbox_tenant() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, taskweave
AS $$
BEGIN
    -- Row-level security shows a submitter its own row alone; any other
    -- login sees none, so its client message has no tenant.
    NEW.tenant := (SELECT tenant FROM taskweave.submitter_tenants
                   WHERE login = current_user);
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION inbox_tenant() FROM PUBLIC;
-- An agent's client message is refused by row security, after this
-- trigger: it runs as the poster, who must be able to look (an agent and
-- a node see no row, so their tenant is NULL).
GRANT EXECUTE ON FUNCTION inbox_tenant() TO taskweave_node, taskweave_agent, taskweave_submitter;
GRANT SELECT ON submitter_tenants TO taskweave_node, taskweave_agent;

-- A client's message only: an agent's row has no tenant.
CREATE TRIGGER inbox_tenant BEFORE INSERT ON inbox
    FOR EACH ROW WHEN (NEW.agent IS NULL)
    EXECUTE FUNCTION inbox_tenant();

-- A submitter reads the verdicts of its own messages, not every client's.
DROP POLICY submitter_read ON inbox;
CREATE POLICY submitter_read ON inbox FOR SELECT TO taskweave_submitter
    USING (agent IS NULL AND poster = current_user);
