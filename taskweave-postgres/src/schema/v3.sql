-- taskweave schema version 3: a task's output beside its end. Runs in one
-- transaction with search_path = taskweave; see schema.rs.

-- The output an agent completed the task with (its encoded result), or
-- NULL for a task that ended otherwise or completed without one. The
-- leader holds it to its output limit before it is journaled.
ALTER TABLE outcomes ADD COLUMN output TEXT;
