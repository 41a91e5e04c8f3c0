-- The outbox claims the oldest queued messages of an account. Without an
-- index in that order every claim sorted the whole queue (O(queue) per
-- batch); this one lets the claim walk the queue and stop at its limit.
CREATE INDEX messages_out_queued ON messages_out (account, id) WHERE status = 'queued';
