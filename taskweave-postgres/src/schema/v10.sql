-- taskweave schema version 10: the cluster's dispatcher configuration,
-- one row, so that every node, the audit and an embedding host run the
-- same one (a journal replays to the same state only under the same
-- configuration). The first node stores its configuration if none is;
-- `init` stores taskweave-pg's defaults; an operator replaces it while
-- the cluster has no journal (taskweave-pg config set). Runs in one
-- transaction with search_path = taskweave; see schema.rs.
CREATE TABLE cluster_config (
    id INT PRIMARY KEY CHECK (id = 1),
    body TEXT NOT NULL,
    set_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
-- A node reads it and stores its own when none is; it never rewrites it.
-- Submitters and agents do not see it (it holds every tenant's quotas).
GRANT SELECT, INSERT ON cluster_config TO taskweave_node;
