-- The outbox claims the oldest queued messages of an account. Without an
-- index in that order every claim sorted the whole queue (O(queue) per
-- batch); this one lets the claim walk the queue and stop at its limit.
CREATE INDEX messages_out_queued ON messages_out (account, id) WHERE status = 'queued';

-- Only events waiting for the trigger pass need to wake the schedulers.
-- A NOTIFY takes a cluster-wide lock at commit, so waking on every event
-- (each sent message writes one) serialised the senders' commits.
DROP TRIGGER events_wake ON events;
CREATE TRIGGER events_wake AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.pending) EXECUTE FUNCTION followupd_wake();
