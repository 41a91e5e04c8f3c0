package main

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/followupd/followupd/outbox/smtptest"
)

// dbConn queries the run's database directly.
type dbConn struct{ *sql.DB }

func openDB(dsn string) (*dbConn, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	return &dbConn{db}, nil
}

// settledStatuses end a step; cancelled counts as settled while waiting
// (the tally decides whether the cancellation was legitimate).
const unsettledQuery = `SELECT COUNT(*) FROM contacts c WHERE NOT EXISTS (
	SELECT 1 FROM messages_out m WHERE m.contact_id = c.id AND m.step = 0
	AND m.status IN ('sent', 'failed', 'uncertain', 'cancelled'))`

// runState is where the run stands.
type runState struct {
	status    map[string]int
	unsettled int
	recorded  int // delivered replies with a messages_in row
	inRows    int
}

func (s runState) done(replies int) bool {
	return s.status["queued"] == 0 && s.status["sending"] == 0 && s.unsettled == 0 && s.recorded == replies
}

func (s runState) String() string {
	return fmt.Sprintf("queued %d, sending %d, sent %d, failed %d, uncertain %d, cancelled %d; %d contacts unsettled; replies recorded %d (%d messages_in rows)",
		s.status["queued"], s.status["sending"], s.status["sent"], s.status["failed"], s.status["uncertain"], s.status["cancelled"],
		s.unsettled, s.recorded, s.inRows)
}

func (db *dbConn) state(ctx context.Context, replies []*reply) (runState, error) {
	st := runState{status: map[string]int{}}
	rows, err := db.QueryContext(ctx, `SELECT status, COUNT(*) FROM messages_out GROUP BY status`)
	if err != nil {
		return st, err
	}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return st, err
		}
		st.status[s] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	if err := db.QueryRowContext(ctx, unsettledQuery).Scan(&st.unsettled); err != nil {
		return st, err
	}
	in, err := db.messagesIn(ctx)
	if err != nil {
		return st, err
	}
	for _, n := range in {
		st.inRows += n
	}
	for _, r := range replies {
		if in[r.MessageID] > 0 {
			st.recorded++
		}
	}
	return st, nil
}

// messagesIn counts messages_in rows by Message-ID (without brackets).
func (db *dbConn) messagesIn(ctx context.Context) (map[string]int, error) {
	return db.countBy(ctx, `SELECT btrim(message_id, '<> '), COUNT(*) FROM messages_in GROUP BY 1`)
}

func (db *dbConn) countBy(ctx context.Context, q string) (map[string]int, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k sql.NullString
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		out[k.String] += n
	}
	return out, rows.Err()
}

// logStuck prints the rows still queued or sending.
func (db *dbConn) logStuck(ctx context.Context) {
	rows, err := db.QueryContext(ctx, `SELECT id, status, attempts, last_error, COALESCE(CAST(next_attempt_at AS TEXT), ''), CAST(updated_at AS TEXT)
		FROM messages_out WHERE status IN ('queued', 'sending') ORDER BY id LIMIT 20`)
	if err != nil {
		logf("stuck rows: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var status, lastErr, next, updated string
		var attempts int
		if err := rows.Scan(&id, &status, &attempts, &lastErr, &next, &updated); err != nil {
			logf("stuck rows: %v", err)
			return
		}
		logf("stuck: id %d %s attempts %d next %s updated %s: %s", id, status, attempts, next, updated, lastErr)
	}
}

// tally computes the result line from the database and the sink, and the
// targets that failed.
func (h *harness) tally(ctx context.Context) (res result, failures []string, err error) {
	db := h.db
	type outRow struct {
		enrollment int64
		step       int
		status     string
	}
	byID := map[string]outRow{}
	status := map[string]int{}
	rows, err := db.QueryContext(ctx, `SELECT enrollment_id, step, status, message_id FROM messages_out`)
	if err != nil {
		return res, nil, err
	}
	for rows.Next() {
		var r outRow
		var id string
		if err := rows.Scan(&r.enrollment, &r.step, &r.status, &id); err != nil {
			rows.Close()
			return res, nil, err
		}
		byID[id] = r
		status[r.status]++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, nil, err
	}
	res.Sent, res.Uncertain = status["sent"], status["uncertain"]

	// Duplicates: a Message-ID received more than once, and a step
	// received under two Message-IDs.
	got := h.sink.Messages()
	seen := map[string]int{}
	type key struct {
		enrollment int64
		step       int
	}
	ids := map[key]map[string]bool{}
	unknown := 0
	for _, m := range got {
		seen[m.MessageID]++
		r, ok := byID[m.MessageID]
		if !ok {
			unknown++
			continue
		}
		k := key{r.enrollment, r.step}
		if ids[k] == nil {
			ids[k] = map[string]bool{}
		}
		ids[k][m.MessageID] = true
	}
	for id, n := range seen {
		if n > 1 {
			res.Duplicates += n - 1
			logf("duplicate: %s received %d times (row %s)", id, n, byID[id].status)
		}
	}
	for k, set := range ids {
		if len(set) > 1 {
			res.Duplicates += len(set) - 1
			logf("duplicate: enrollment %d step %d received under %d Message-IDs", k.enrollment, k.step, len(set))
		}
	}

	// Lost: a contact whose step is neither sent, failed nor uncertain,
	// unless it was cancelled because the contact replied or is suppressed.
	lrows, err := db.QueryContext(ctx, `SELECT c.email, c.stage, c.suppressed,
		EXISTS (SELECT 1 FROM messages_out m WHERE m.contact_id = c.id AND m.status = 'cancelled'),
		EXISTS (SELECT 1 FROM messages_in i WHERE i.contact_id = c.id),
		(SELECT COUNT(*) FROM enrollments e WHERE e.contact_id = c.id),
		COALESCE((SELECT string_agg(m.status || ' (' || m.last_error || ')', '; ') FROM messages_out m WHERE m.contact_id = c.id), '')
		FROM contacts c WHERE NOT EXISTS (SELECT 1 FROM messages_out m WHERE m.contact_id = c.id AND m.step = 0
			AND m.status IN ('sent', 'failed', 'uncertain'))`)
	if err != nil {
		return res, nil, err
	}
	cancelledOK := 0
	for lrows.Next() {
		var email, stage, outs string
		var suppressed, cancelled, replied bool
		var enrollments int
		if err := lrows.Scan(&email, &stage, &suppressed, &cancelled, &replied, &enrollments, &outs); err != nil {
			lrows.Close()
			return res, nil, err
		}
		if cancelled && (replied || suppressed) {
			cancelledOK++
			continue
		}
		res.Lost++
		if res.Lost <= 10 {
			logf("lost: %s stage %s suppressed %v replied %v, %d enrollments, rows: %s", email, stage, suppressed, replied, enrollments, outs)
		}
	}
	lrows.Close()
	if err := lrows.Err(); err != nil {
		return res, nil, err
	}

	// Replies: one messages_in row and one replied event each.
	in, err := db.messagesIn(ctx)
	if err != nil {
		return res, nil, err
	}
	events, err := db.countBy(ctx, `SELECT btrim(data->>'message_id', '<> '), COUNT(*) FROM events WHERE type = 'replied' GROUP BY 1`)
	if err != nil {
		return res, nil, err
	}
	replies := h.delivered()
	res.RepliesDelivered = len(replies)
	for _, r := range replies {
		switch n := in[r.MessageID]; {
		case n == 0:
			res.RepliesMissed++
			logf("missed reply: %s from %s", r.MessageID, r.Contact)
		case n > 1 || events[r.MessageID] > 1:
			res.RepliesDouble++
			logf("double reply: %s from %s: %d messages_in rows, %d replied events", r.MessageID, r.Contact, n, events[r.MessageID])
		default:
			res.RepliesProcessed++
		}
	}

	// Stages: each replied contact in the stage its reply's intent gives.
	for _, r := range replies {
		var stage string
		var suppressed bool
		var intent sql.NullString
		err := db.QueryRowContext(ctx, `SELECT c.stage, c.suppressed,
			(SELECT i.intent FROM messages_in i WHERE btrim(i.message_id, '<> ') = $2 LIMIT 1)
			FROM contacts c WHERE c.email = $1`, r.Contact, r.MessageID).Scan(&stage, &suppressed, &intent)
		if err != nil {
			return res, nil, fmt.Errorf("stage of %s: %w", r.Contact, err)
		}
		if stage != r.Stage || (r.Intent == "unsubscribe" && !suppressed) {
			res.StageErrors++
			logf("stage error: %s replied %q (classified %q): stage %s suppressed %v, want %s", r.Contact, r.Intent, intent.String, stage, suppressed, r.Stage)
		}
	}

	c := h.sink.Counts()
	logf("sink: %d delivered (%d unknown Message-IDs), %d RCPTs rejected, %d dropped after the dot, %d connections",
		c[smtptest.Delivered], unknown, c[smtptest.RcptRejects], c[smtptest.DroppedAfterDot], c[smtptest.Connections])
	logf("rows: %d sent, %d failed, %d uncertain, %d cancelled (%d legitimately), %d queued, %d sending",
		status["sent"], status["failed"], status["uncertain"], status["cancelled"], cancelledOK, status["queued"], status["sending"])
	logf("chaos: %d kills, %d Postgres restarts, %d Dovecot restarts, %d replicas exited by themselves",
		h.kills.Load(), h.pgRestarts.Load(), h.dvRestarts.Load(), h.selfExits.Load())

	if res.Lost > 0 {
		failures = append(failures, fmt.Sprintf("%d steps lost", res.Lost))
	}
	if res.Duplicates > res.Uncertain {
		failures = append(failures, fmt.Sprintf("%d duplicates but only %d sends recorded uncertain", res.Duplicates, res.Uncertain))
	}
	if res.RepliesMissed > 0 {
		failures = append(failures, fmt.Sprintf("%d replies missed", res.RepliesMissed))
	}
	if res.RepliesDouble > 0 {
		failures = append(failures, fmt.Sprintf("%d replies counted twice", res.RepliesDouble))
	}
	if res.StageErrors > 0 {
		failures = append(failures, fmt.Sprintf("%d contacts in the wrong stage", res.StageErrors))
	}
	if res.RepliesDelivered < h.o.replies {
		failures = append(failures, fmt.Sprintf("only %d of %d replies delivered", res.RepliesDelivered, h.o.replies))
	}
	return res, failures, nil
}
