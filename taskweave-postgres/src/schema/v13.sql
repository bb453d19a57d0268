-- taskweave schema version 13: less written per task. Runs in one
-- transaction with search_path = taskweave; see schema.rs.

-- An agent's claim finds its ready rows through outbox_live (its rows
-- ready or claimed: at most what it holds and what waits for it), so
-- outbox_ready, one more index entry written per assignment, goes.
DROP INDEX outbox_ready;
