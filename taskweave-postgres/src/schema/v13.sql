-- taskweave schema version 13: less written per task. Runs in one
-- transaction with search_path = taskweave; see schema.rs.

-- An agent's report deletes the outbox row it closes, in the statement
-- that posts it, instead of marking the row 'done' for the leader to
-- delete later: one row version and its index entries fewer per task. An
-- agent deletes only its own rows, and only those it claimed: what it
-- could already close (a row it has not claimed, or another agent's, it
-- cannot touch).
GRANT DELETE ON outbox TO taskweave_agent;
CREATE POLICY agent_delete ON outbox FOR DELETE TO taskweave_agent
    USING (agent = current_agent() AND state = 'claimed');

-- An agent's claim finds its ready rows through outbox_live (its rows
-- ready or claimed: at most what it holds and what waits for it), so
-- outbox_ready, one more index entry written per assignment, goes.
DROP INDEX outbox_ready;
