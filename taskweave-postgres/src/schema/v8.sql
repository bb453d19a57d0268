-- taskweave schema version 8: a task's outcome is its tenant's, and a
-- submitter login has a share of the inbox as an agent login has. The
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

-- A submitter login may leave at most 1,024 of its messages unread, as an
-- agent may since version 6: a flooding client fills its own share of the
-- inbox and no more. Its post past that is refused whole after a quarter
-- of a second, naming the login; a working client posts again once the
-- leader has read what waited. (The leader reads at most 64 messages of
-- one poster at a time, so it reads every other sender's as before.)
CREATE INDEX inbox_pending_by_poster ON inbox (poster) WHERE NOT consumed AND agent IS NULL;
-- The trigger counts as the poster: a submitter sees its own rows alone,
-- whose poster is itself.
GRANT SELECT (poster) ON inbox TO taskweave_submitter;

CREATE OR REPLACE FUNCTION inbox_room() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, taskweave
AS $$
DECLARE
    waiting_messages BIGINT;
    unread_refusals BIGINT;
BEGIN
    IF pg_has_role(current_user, 'taskweave_agent', 'MEMBER') THEN
        SELECT count(*) INTO unread_refusals FROM (
            SELECT 1 FROM taskweave.inbox
            WHERE agent = taskweave.current_agent() AND refused AND NOT seen
            LIMIT 1024) AS unread;
        IF unread_refusals >= 1024 THEN
            -- Quarantined: no room, whatever is pending.
            PERFORM set_config('taskweave.inbox_room', '-1', true);
            RETURN NULL;
        END IF;
        SELECT count(*) INTO waiting_messages FROM (
            SELECT 1 FROM taskweave.inbox
            WHERE agent = taskweave.current_agent() AND NOT consumed AND agent IS NOT NULL
            LIMIT 1024) AS waiting;
    ELSIF pg_has_role(current_user, 'taskweave_submitter', 'MEMBER') THEN
        SELECT count(*) INTO waiting_messages FROM (
            SELECT 1 FROM taskweave.inbox
            WHERE poster = current_user AND NOT consumed AND agent IS NULL
            LIMIT 1024) AS waiting;
    ELSE
        PERFORM set_config('taskweave.inbox_room', '', true);
        RETURN NULL;
    END IF;
    PERFORM set_config('taskweave.inbox_room', (1024 - waiting_messages)::text, true);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION inbox_takes_room() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, taskweave
AS $$
DECLARE
    room BIGINT := NULLIF(current_setting('taskweave.inbox_room', true), '')::bigint;
    what TEXT;
    remedy TEXT;
BEGIN
    IF room IS NULL THEN
        RETURN NEW;
    END IF;
    IF room <= 0 THEN
        PERFORM pg_sleep(0.25);
        IF NEW.agent IS NULL THEN
            RAISE EXCEPTION 'login % has 1024 messages the leader has not read: it may post no more until the leader reads them',
                    current_user
                USING ERRCODE = 'configuration_limit_exceeded',
                      DETAIL = 'a working client posts again after a pause; if the leader is up '
                          '(taskweave-pg status), this login floods the inbox: stop its process, '
                          'or revoke it (REVOKE taskweave_submitter FROM ' || current_user || ')';
        END IF;
        IF room < 0 THEN
            what := 'refused messages it has not read';
            remedy := 'taskweave-pg agent reads its refusals as it runs and logs them; if no '
                'agent process of this login runs, this login floods the inbox: revoke it';
        ELSE
            what := 'messages the leader has not read';
            remedy := 'a working agent posts again after a pause; if the leader is up '
                '(taskweave-pg status), this login floods the inbox: stop its process, or '
                'revoke it';
        END IF;
        RAISE EXCEPTION 'agent % has 1024 %: login % may post no more until it reads them',
                NEW.agent, what, current_user
            USING ERRCODE = 'configuration_limit_exceeded',
                  DETAIL = remedy || ' (REVOKE taskweave_agent FROM ' || current_user || ')';
    END IF;
    PERFORM set_config('taskweave.inbox_room', (room - 1)::text, true);
    RETURN NEW;
END
$$;

-- Every row takes room now: a client's too.
DROP TRIGGER inbox_takes_room ON inbox;
CREATE TRIGGER inbox_takes_room BEFORE INSERT ON inbox
    FOR EACH ROW EXECUTE FUNCTION inbox_takes_room();
