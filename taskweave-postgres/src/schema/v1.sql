-- taskweave schema version 1. Runs in one transaction with
-- search_path = taskweave; see schema.rs for the migration runner.

-- The three kinds of client, as group roles (NOLOGIN): logins join one.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'taskweave_node') THEN
        CREATE ROLE taskweave_node NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'taskweave_agent') THEN
        CREATE ROLE taskweave_agent NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'taskweave_submitter') THEN
        CREATE ROLE taskweave_submitter NOLOGIN;
    END IF;
END
$$;

CREATE TABLE lease (
    id INT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL,
    holder TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    stopped BOOLEAN NOT NULL DEFAULT false);
INSERT INTO lease (id, epoch, holder, expires_at) VALUES (1, 0, '', '-infinity');

CREATE TABLE journal (
    seq BIGINT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    format INT NOT NULL,
    entry TEXT NOT NULL);

CREATE TABLE snapshots (
    seq BIGINT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    state TEXT NOT NULL);

CREATE TABLE final_state (
    id INT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    state TEXT NOT NULL);

-- agent and incarnation are NULL for a client's message.
CREATE TABLE inbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent BIGINT,
    incarnation BIGINT,
    kind TEXT NOT NULL
        CHECK (kind IN ('register', 'heartbeat', 'report', 'submit', 'cancel', 'drain')),
    body TEXT NOT NULL CHECK (octet_length(body) <= 16777216),
    consumed BOOLEAN NOT NULL DEFAULT false,
    verdict TEXT,
    refused BOOLEAN NOT NULL DEFAULT false,
    seen BOOLEAN NOT NULL DEFAULT false,
    CHECK ((agent IS NULL) = (incarnation IS NULL)));
CREATE INDEX inbox_pending ON inbox (id) WHERE NOT consumed;
CREATE INDEX inbox_refused ON inbox (agent) WHERE refused AND NOT seen;

CREATE TABLE outbox (
    task BIGINT NOT NULL,
    token BIGINT NOT NULL,
    agent BIGINT NOT NULL,
    attempt INT NOT NULL,
    payload TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'ready'
        CHECK (state IN ('ready', 'claimed', 'done')),
    incarnation BIGINT,
    PRIMARY KEY (task, token));
CREATE INDEX outbox_ready ON outbox (agent, token) WHERE state = 'ready';
CREATE INDEX outbox_live ON outbox (agent, incarnation) WHERE state IN ('ready', 'claimed');

CREATE TABLE status (
    id INT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL,
    body TEXT NOT NULL);

CREATE SEQUENCE incarnations;

-- Which agent each agent login acts for.
CREATE TABLE agent_logins (
    login NAME PRIMARY KEY,
    agent BIGINT NOT NULL);

-- The agent the current login acts for (NULL for any other login).
CREATE FUNCTION current_agent() RETURNS BIGINT
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, taskweave
    AS $$ SELECT agent FROM taskweave.agent_logins WHERE login = current_user $$;

-- Privileges. Nothing is granted to PUBLIC; each group gets what its
-- role needs, and row-level security narrows agents and submitters to
-- their own rows.
GRANT USAGE ON SCHEMA taskweave TO taskweave_node, taskweave_agent, taskweave_submitter;
GRANT SELECT ON schema_version TO taskweave_node, taskweave_agent, taskweave_submitter;
REVOKE ALL ON FUNCTION current_agent() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION current_agent() TO taskweave_agent, taskweave_node, taskweave_submitter;

-- Nodes: everything the leader and followers do, nothing on the logins.
GRANT SELECT, INSERT, UPDATE, DELETE
    ON lease, journal, snapshots, final_state, inbox, outbox, status TO taskweave_node;
GRANT USAGE, SELECT ON SEQUENCE incarnations TO taskweave_node;

-- Agents: post their own messages, claim and close their own rows, read
-- their own verdicts and mark them seen, take incarnations, read the lease.
GRANT SELECT ON lease TO taskweave_agent;
GRANT INSERT (agent, incarnation, kind, body) ON inbox TO taskweave_agent;
GRANT SELECT (id, agent, incarnation, kind, consumed, verdict, refused, seen) ON inbox TO taskweave_agent;
GRANT UPDATE (seen) ON inbox TO taskweave_agent;
GRANT SELECT ON outbox TO taskweave_agent;
GRANT UPDATE (state, incarnation) ON outbox TO taskweave_agent;
GRANT USAGE ON SEQUENCE incarnations TO taskweave_agent;
GRANT SELECT ON agent_logins TO taskweave_agent;

-- Submitters: post submissions and cancels, read client verdicts, the
-- lease and the status.
GRANT SELECT ON lease, status TO taskweave_submitter;
GRANT INSERT (kind, body) ON inbox TO taskweave_submitter;
GRANT SELECT (id, agent, kind, consumed, verdict) ON inbox TO taskweave_submitter;

ALTER TABLE agent_logins ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_login ON agent_logins FOR SELECT TO taskweave_agent
    USING (login = current_user);

ALTER TABLE inbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY node_all ON inbox TO taskweave_node USING (true) WITH CHECK (true);
CREATE POLICY agent_post ON inbox FOR INSERT TO taskweave_agent
    WITH CHECK (agent = (SELECT current_agent()) AND incarnation IS NOT NULL
                AND kind IN ('register', 'heartbeat', 'report'));
CREATE POLICY agent_read ON inbox FOR SELECT TO taskweave_agent
    USING (agent = (SELECT current_agent()));
CREATE POLICY agent_seen ON inbox FOR UPDATE TO taskweave_agent
    USING (agent = (SELECT current_agent()))
    WITH CHECK (agent = (SELECT current_agent()));
CREATE POLICY submitter_post ON inbox FOR INSERT TO taskweave_submitter
    WITH CHECK (agent IS NULL AND incarnation IS NULL AND kind IN ('submit', 'cancel'));
CREATE POLICY submitter_read ON inbox FOR SELECT TO taskweave_submitter
    USING (agent IS NULL);

ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY node_all ON outbox TO taskweave_node USING (true) WITH CHECK (true);
CREATE POLICY agent_read ON outbox FOR SELECT TO taskweave_agent
    USING (agent = (SELECT current_agent()));
CREATE POLICY agent_update ON outbox FOR UPDATE TO taskweave_agent
    USING (agent = (SELECT current_agent()))
    WITH CHECK (agent = (SELECT current_agent()) AND state IN ('claimed', 'done'));
