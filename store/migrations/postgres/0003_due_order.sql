-- The scheduler claims an account's due enrollments, the most overdue
-- first (due_at, then id). On Postgres the (status, due_at) index does not
-- hold id, so steps due at the same moment — a list imported and enrolled
-- at once — were read and sorted in full for every claim of a batch
-- (O(due) per batch, ~30 ms per claim with 40k due). This index is in
-- claim order, so a claim walks it and stops at its limit.
CREATE INDEX enrollments_active_due ON enrollments (account, due_at, id) WHERE status = 'active';
