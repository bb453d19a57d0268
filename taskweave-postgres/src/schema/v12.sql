-- taskweave schema version 12: the nodes are told of new work instead of
-- polling for it. Runs in one transaction with search_path = taskweave;
-- see schema.rs.

-- Notifies the channel its trigger names (PostgreSQL sends it when the
-- transaction commits, and folds a transaction's notifications on one
-- channel into one).
CREATE FUNCTION notify_nodes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION notify_nodes() FROM PUBLIC;

-- Every inbox post but a heartbeat notifies 'taskweave_inbox': the
-- leader, listening, reads its inbox at once instead of every few
-- milliseconds. Heartbeats wake nobody: the leader takes them at its next
-- read, within its slow poll, well before an agent's silence counts. A
-- row trigger with a WHEN clause: a heartbeat costs no function call.
CREATE TRIGGER inbox_posted BEFORE INSERT ON inbox
    FOR EACH ROW WHEN (NEW.kind <> 'heartbeat')
    EXECUTE FUNCTION notify_nodes('taskweave_inbox');

-- Every journal append notifies 'taskweave_journal' when the leader's
-- commit lands: a following node reads the journal then, not every
-- 20 ms.
CREATE TRIGGER journal_appended AFTER INSERT ON journal
    FOR EACH STATEMENT EXECUTE FUNCTION notify_nodes('taskweave_journal');
