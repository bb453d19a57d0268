-- taskweave schema version 2: task outcomes for clients. Runs in one
-- transaction with search_path = taskweave; see schema.rs.

-- How each task ended, with the journal entry that ended it: a commit
-- inserts them, a trim deletes those behind the previous snapshot.
CREATE TABLE outcomes (
    task BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX outcomes_seq ON outcomes (seq);

GRANT SELECT, INSERT, UPDATE, DELETE ON outcomes TO taskweave_node;
-- Submitters read how their tasks ended.
GRANT SELECT ON outcomes TO taskweave_submitter;
