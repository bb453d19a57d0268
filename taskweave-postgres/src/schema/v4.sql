-- taskweave schema version 4: workflow runs hosted by the cluster's nodes.
-- Runs in one transaction with search_path = taskweave; see schema.rs.

-- A client's run command (register a definition; start, signal or cancel
-- a run) is an inbox message of kind 'run', which a submitter may post.
ALTER TABLE inbox DROP CONSTRAINT inbox_kind_check;
ALTER TABLE inbox ADD CONSTRAINT inbox_kind_check
    CHECK (kind IN ('register', 'heartbeat', 'report', 'submit', 'cancel', 'drain', 'run'));
DROP POLICY submitter_post ON inbox;
CREATE POLICY submitter_post ON inbox FOR INSERT TO taskweave_submitter
    WITH CHECK (agent IS NULL AND incarnation IS NULL AND kind IN ('submit', 'cancel', 'run'));

-- How each hosted run ended (its outcome and output, as JSON), with the
-- journal entry that ended it: a commit inserts them, a trim deletes
-- those behind the previous snapshot, as for task outcomes.
CREATE TABLE run_ends (
    run BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX run_ends_seq ON run_ends (seq);

GRANT SELECT, INSERT, UPDATE, DELETE ON run_ends TO taskweave_node;
-- Submitters read how their runs ended.
GRANT SELECT ON run_ends TO taskweave_submitter;
