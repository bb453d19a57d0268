-- taskweave schema version 15: a redriven dead letter's outcome names its
-- new task. Runs in one transaction with search_path = taskweave; see
-- schema.rs.
--
-- commit_batch is version 14's but for the outcomes: a task's outcome is
-- still the first one published, except that an end of the form
-- {"Redriven":N} (TaskEnd::Redriven, as serde writes it) replaces the
-- letter's earlier end, so the tenant that waited on the letter reads the
-- id of the task that runs in its place. The replacing update runs only
-- in a commit that holds such an end (an operator's redrive). CREATE OR
-- REPLACE keeps the function's signature, owner and grants.
CREATE OR REPLACE FUNCTION commit_batch(
    p_epoch bigint, p_ttl_ms float8, p_first bigint, p_format int, p_entries text[],
    p_ids bigint[], p_verdicts text[], p_refused bool[],
    p_tasks bigint[], p_tokens bigint[], p_agents bigint[], p_attempts int[],
    p_payloads text[], p_incarnations bigint[],
    p_release_tasks bigint[], p_release_tokens bigint[],
    p_ended_tasks bigint[], p_ended_bodies text[], p_ended_outputs text[],
    p_ended_tenants bigint[],
    p_run_ids bigint[], p_run_ends text[], p_run_tenants bigint[],
    p_status_epoch bigint, p_status text)
RETURNS void LANGUAGE plpgsql SET search_path = taskweave, pg_temp AS $$
DECLARE
    next_seq bigint;
    last_seq bigint := p_first + cardinality(p_entries) - 1;
    marked bigint;
BEGIN
    -- The fence (rule 2): renews the lease if it is this epoch's and
    -- unexpired, locking its row.
    UPDATE lease SET expires_at = clock_timestamp() + p_ttl_ms * interval '1 millisecond'
    WHERE id = 1 AND epoch = p_epoch AND expires_at > clock_timestamp()
    RETURNING GREATEST((SELECT max(seq) FROM journal), (SELECT max(seq) FROM snapshots), 0) + 1
    INTO next_seq;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'fenced: the lease of epoch % is no longer held', p_epoch
            USING ERRCODE = 'TWFNC',
                  DETAIL = (SELECT epoch FROM lease WHERE id = 1)::text;
    END IF;
    IF next_seq <> p_first THEN
        RAISE EXCEPTION 'the commit starts at entry %, the journal''s next is %', p_first, next_seq
            USING ERRCODE = 'TWCFL';
    END IF;

    IF cardinality(p_entries) > 0 THEN
        INSERT INTO journal (seq, epoch, format, entry)
        SELECT p_first + n - 1, p_epoch, p_format, e
        FROM unnest(p_entries) WITH ORDINALITY AS u(e, n);
    END IF;

    -- Consumes messages with their verdicts: a client's message and a
    -- refused one keep theirs (someone reads them); an agent's accepted
    -- message is deleted.
    IF cardinality(p_ids) > 0 THEN
        WITH u AS (
            SELECT * FROM unnest(p_ids, p_verdicts, p_refused) AS u(i, v, r)),
        kept AS (
            UPDATE inbox SET consumed = true, verdict = u.v, refused = u.r FROM u
            WHERE inbox.id = u.i AND NOT inbox.consumed AND (inbox.agent IS NULL OR u.r)
            RETURNING 1),
        dropped AS (
            DELETE FROM inbox USING u
            WHERE inbox.id = u.i AND NOT inbox.consumed AND inbox.agent IS NOT NULL AND NOT u.r
            RETURNING 1)
        SELECT (SELECT count(*) FROM kept) + (SELECT count(*) FROM dropped) INTO marked;
        IF marked <> cardinality(p_ids) THEN
            RAISE EXCEPTION '% of the % inbox messages consumed were already consumed or do not exist',
                cardinality(p_ids) - marked, cardinality(p_ids)
                USING ERRCODE = 'TWCFL';
        END IF;
    END IF;

    -- Assignments, each for the incarnation it was given to (NULL: any),
    -- and a notice to each agent given work, sent when the call commits.
    IF cardinality(p_tasks) > 0 THEN
        INSERT INTO outbox (task, token, agent, attempt, payload, epoch, incarnation)
        SELECT t, k, a, n, p, p_epoch, NULLIF(i, 0)
        FROM unnest(p_tasks, p_tokens, p_agents, p_attempts, p_payloads, p_incarnations)
            AS u(t, k, a, n, p, i)
        ON CONFLICT (task, token) DO NOTHING;
        PERFORM pg_notify('taskweave_work_' || a, '')
        FROM (SELECT DISTINCT unnest(p_agents) AS a) AS u;
    END IF;

    -- Rule 8: the rows of attempts cancelled or reported go.
    IF cardinality(p_release_tasks) > 0 THEN
        DELETE FROM outbox USING unnest(p_release_tasks, p_release_tokens) AS u(t, k)
        WHERE outbox.task = u.t AND outbox.token = u.k;
    END IF;

    -- Task outcomes, with the last entry of the commit; a task ends once,
    -- but a dead letter redriven ends anew, naming its new task.
    IF cardinality(p_ended_tasks) > 0 THEN
        INSERT INTO outcomes (task, seq, body, output, tenant)
        SELECT t, last_seq, b, o, n
        FROM unnest(p_ended_tasks, p_ended_bodies, p_ended_outputs, p_ended_tenants)
            AS u(t, b, o, n)
        ON CONFLICT (task) DO NOTHING;
        -- A redrive's end replaces the letter's (DO UPDATE cannot: a task
        -- may be published twice in one commit, and the first stays).
        IF EXISTS (SELECT FROM unnest(p_ended_bodies) AS b WHERE starts_with(b, '{"Redriven":')) THEN
            UPDATE outcomes
            SET seq = last_seq, body = u.b, output = u.o, tenant = u.n
            FROM unnest(p_ended_tasks, p_ended_bodies, p_ended_outputs, p_ended_tenants)
                AS u(t, b, o, n)
            WHERE starts_with(u.b, '{"Redriven":') AND outcomes.task = u.t
                AND outcomes.body IS DISTINCT FROM u.b;
        END IF;
    END IF;

    -- Hosted runs' ends: a later entry's end replaces an earlier one.
    IF cardinality(p_run_ids) > 0 THEN
        INSERT INTO run_ends (run, seq, body, tenant)
        SELECT r, last_seq, b, n FROM unnest(p_run_ids, p_run_ends, p_run_tenants) AS u(r, b, n)
        ON CONFLICT (run) DO UPDATE
            SET seq = EXCLUDED.seq, body = EXCLUDED.body, tenant = EXCLUDED.tenant
        WHERE run_ends.seq < EXCLUDED.seq;
    END IF;

    IF p_status IS NOT NULL THEN
        INSERT INTO status (id, epoch, body) VALUES (1, p_status_epoch, p_status)
        ON CONFLICT (id) DO UPDATE SET epoch = EXCLUDED.epoch, body = EXCLUDED.body;
    END IF;
END
$$;
