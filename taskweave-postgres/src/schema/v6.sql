-- taskweave schema version 6: no agent login may fill the inbox.
-- Runs in one transaction with search_path = taskweave; see schema.rs.

-- Each agent's messages the leader has not read yet.
CREATE INDEX inbox_pending_by_agent ON inbox (agent) WHERE NOT consumed AND agent IS NOT NULL;

-- The database refuses an agent login's messages past 1,024 of its
-- agent's messages waiting unread: a flooding login (a bug or a hostile
-- peer) fills its own share of the inbox and no more, so the leader reads
-- every other sender's messages as before. A working agent has a few
-- messages pending (its reports come in posts of at most 256, a heartbeat
-- every few seconds); one that reaches the limit has its post refused,
-- keeps it and posts it again after a pause, once the leader has read
-- what waited.
--
-- It also refuses the messages of an agent with 1,024 refusals it has not
-- read (quarantine): the leader refused that many of its messages and
-- nobody has looked. A working agent reads its refusals as it runs
-- (`AgentSession` every few seconds), which lifts it; a flooding login
-- that ignores them costs the leader 1,024 refusals and then nothing, so
-- the work of the other agents goes on at its pace.
--
-- A refused statement is refused whole, after a pause of a quarter of a
-- second that slows a flooding connection without costing the server any
-- work. The room left is counted once a statement (at most 2,048 index
-- entries) and kept in a transaction-local setting, which each row takes
-- one from: counting for each row made a statement of n rows cost n ×
-- 1,024. The statement trigger sets it before any row, so a poster cannot
-- set it beforehand; nodes' and submitters' messages are not limited.
CREATE FUNCTION inbox_room() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, taskweave
AS $$
DECLARE
    waiting_messages BIGINT;
    unread_refusals BIGINT;
BEGIN
    IF NOT pg_has_role(current_user, 'taskweave_agent', 'MEMBER') THEN
        PERFORM set_config('taskweave.inbox_room', '', true);
        RETURN NULL;
    END IF;
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
    PERFORM set_config('taskweave.inbox_room', (1024 - waiting_messages)::text, true);
    RETURN NULL;
END
$$;

CREATE FUNCTION inbox_takes_room() RETURNS trigger
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
        PERFORM pg_sleep(0.25);
        RAISE EXCEPTION 'agent % has 1024 %: login % may post no more until it reads them',
                NEW.agent, what, current_user
            USING ERRCODE = 'configuration_limit_exceeded',
                  DETAIL = remedy || ' (REVOKE taskweave_agent FROM ' || current_user || ')';
    END IF;
    PERFORM set_config('taskweave.inbox_room', (room - 1)::text, true);
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION inbox_room() FROM PUBLIC;
REVOKE ALL ON FUNCTION inbox_takes_room() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION inbox_room() TO taskweave_agent, taskweave_node, taskweave_submitter;
GRANT EXECUTE ON FUNCTION inbox_takes_room() TO taskweave_agent, taskweave_node, taskweave_submitter;

CREATE TRIGGER inbox_room BEFORE INSERT ON inbox
    FOR EACH STATEMENT EXECUTE FUNCTION inbox_room();
CREATE TRIGGER inbox_takes_room BEFORE INSERT ON inbox
    FOR EACH ROW WHEN (NEW.agent IS NOT NULL)
    EXECUTE FUNCTION inbox_takes_room();
