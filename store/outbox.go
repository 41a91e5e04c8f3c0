package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// The outbox's side of messages_out: claiming queued rows for sending under
// the re-check of guarantee 2, and recording what became of each send.
//
// A row moves queued → sending (ClaimForSend) → sent (MarkSent), back to
// queued (MarkRetry), failed (MarkFailed) or uncertain (MarkUncertain,
// ExpireSending); an uncertain row becomes sent when its copy is found in
// the Sent folder (MarkSent) or queued again by the resend policy
// (Requeue). A queued row that its enrollment or contact no longer allows
// becomes cancelled when it is claimed.

// Events the outbox writes on the contact's timeline.
const (
	EventSent          = "sent"
	EventSendCancelled = "send_cancelled"
	EventSendFailed    = "send_failed"
	EventSendUncertain = "send_uncertain"
	EventSendRequeued  = "send_requeued"
	EventBounced       = "bounced"
)

// ErrWrongStatus is returned when an outbound message is not in a status
// the requested change starts from, e.g. MarkSent on a row already sent by
// another replica.
var ErrWrongStatus = errors.New("store: outbound message is not in the expected status")

type wrongStatusError struct{ msg string }

func (e *wrongStatusError) Error() string { return "store: " + e.msg }
func (e *wrongStatusError) Unwrap() error { return ErrWrongStatus }

// MessageFilter selects outbound messages for ListMessagesOut.
type MessageFilter struct {
	// Statuses keeps only these statuses; empty keeps all.
	Statuses []string
	// Account keeps only this account's messages; empty keeps all.
	Account string
	// Limit caps the number of rows; 0 means no cap.
	Limit int
}

// MessageHook runs inside the transaction that records the outcome of a
// send, so that what the caller changes with it (e.g. advancing the
// enrollment) commits or rolls back together with the status change. m is
// the row as it is after the change.
type MessageHook func(tx *Tx, m MessageOut) error

// sentData is the "sent" event.
type sentData struct {
	MessageID string `json:"message_id"`
	Sequence  string `json:"sequence"`
	Step      int    `json:"step"`
	Subject   string `json:"subject"`
}

// sendOutcomeData is the send_cancelled, send_failed, send_uncertain and
// send_requeued events.
type sendOutcomeData struct {
	MessageID  string `json:"message_id"`
	Sequence   string `json:"sequence"`
	Step       int    `json:"step"`
	Reason     string `json:"reason"`
	HardBounce bool   `json:"hard_bounce,omitempty"`
}

type bouncedData struct {
	Class     string `json:"class"`
	Source    string `json:"source"`
	Address   string `json:"address"`
	MessageID string `json:"message_id"`
	Reason    string `json:"reason"`
}

// rb rebinds a '?' query for the runner's database.
func (r *runner) rb(query string) string {
	return sqlx.Rebind(sqlx.BindType(r.dialect), query)
}

// lockSuffix locks the selected rows until the transaction ends on
// Postgres; SQLite's write transaction is the lock.
func (r *runner) lockSuffix(skipLocked bool) string {
	if r.dialect != DialectPostgres {
		return ""
	}
	if skipLocked {
		return ` FOR UPDATE SKIP LOCKED`
	}
	return ` FOR UPDATE`
}

// idArgs returns ids as query arguments.
func idArgs[T any](items []T, id func(T) int64) []any {
	args := make([]any, len(items))
	for i, it := range items {
		args[i] = id(it)
	}
	return args
}

// ClaimForSend takes up to limit queued messages of account that are due at
// now, oldest first, and decides in one transaction which may go out.
//
// Each is re-checked under lock: its enrollment must be active, its contact
// not suppressed and not in one of blockedStages, and neither its address
// nor its domain suppressed. Those that pass become sending (attempts + 1)
// and are returned in claimed; the others become cancelled with the reason
// in last_error and a send_cancelled event, and are returned in cancelled.
// A reply, unsubscribe or bounce committed before this transaction therefore
// always wins over the send (guarantee 2).
//
// On Postgres the rows are taken with FOR UPDATE SKIP LOCKED, so concurrent
// callers (replicas) never claim the same row, and the enrollments and
// contacts are locked FOR UPDATE; on SQLite the transaction is IMMEDIATE and
// holds the database's write lock from its first statement.
func (s *Store) ClaimForSend(ctx context.Context, account string, now time.Time, limit int, blockedStages []string) (claimed, cancelled []MessageOut, err error) {
	if limit <= 0 {
		return nil, nil, fmt.Errorf("store: unable to claim messages of %s: limit %d must be positive", account, limit)
	}
	now = dbTime(now)
	err = s.InTx(ctx, func(tx *Tx) error {
		var err error
		claimed, cancelled, err = tx.r.claimForSend(ctx, account, now, limit, blockedStages)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return claimed, cancelled, nil
}

type claimEnrollment struct {
	ID     int64  `db:"id"`
	Status string `db:"status"`
}

type claimContact struct {
	ID         int64  `db:"id"`
	Email      string `db:"email"`
	Stage      string `db:"stage"`
	Suppressed bool   `db:"suppressed"`
}

type claimSuppression struct {
	Value  string `db:"value"`
	Kind   string `db:"kind"`
	Reason string `db:"reason"`
}

func (r *runner) claimForSend(ctx context.Context, account string, now time.Time, limit int, blockedStages []string) (claimed, cancelled []MessageOut, err error) {
	if r.dialect == DialectPostgres {
		// The right plan is always a walk of messages_out_queued in id
		// order that stops at the limit. With statistics from when the
		// table was small (autovacuum off, or not run yet) the planner
		// instead collects every queued row and sorts them, per claim.
		// The setting lasts for this transaction, whose other statements
		// look rows up by id.
		if _, err := r.exec(ctx, `SET LOCAL enable_sort = off`); err != nil {
			return nil, nil, fmt.Errorf("store: unable to claim messages of %s: %w", account, err)
		}
	}
	var rows []MessageOut
	q := `SELECT ` + messageOutColumns + ` FROM messages_out
		WHERE account = ? AND status = 'queued'
		  AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
		ORDER BY id LIMIT ?` + r.lockSuffix(true)
	if err := r.selectRows(ctx, &rows, r.rb(q), account, now, limit); err != nil {
		return nil, nil, fmt.Errorf("store: unable to claim messages of %s: %w", account, err)
	}
	if len(rows) == 0 {
		return nil, nil, nil
	}
	for i := range rows {
		rows[i].scanned()
	}

	// Lock the enrollments, then the contacts, each in id order so that
	// two claimers lock in the same order.
	enrollmentIDs := uniqueIDs(rows, func(m MessageOut) int64 { return m.EnrollmentID })
	var enrollments []claimEnrollment
	q = `SELECT id, status FROM enrollments WHERE ` + r.inList("id", "BIGINT", len(enrollmentIDs)) + ` ORDER BY id` + r.lockSuffix(false)
	if err := r.selectRows(ctx, &enrollments, r.rb(q), listArgs(r, enrollmentIDs)...); err != nil {
		return nil, nil, fmt.Errorf("store: unable to lock the enrollments of messages to send: %w", err)
	}
	enrollmentStatus := make(map[int64]string, len(enrollments))
	for _, e := range enrollments {
		enrollmentStatus[e.ID] = e.Status
	}

	contactIDs := uniqueIDs(rows, func(m MessageOut) int64 { return m.ContactID })
	var contacts []claimContact
	q = `SELECT id, email, stage, suppressed FROM contacts WHERE ` + r.inList("id", "BIGINT", len(contactIDs)) + ` ORDER BY id` + r.lockSuffix(false)
	if err := r.selectRows(ctx, &contacts, r.rb(q), listArgs(r, contactIDs)...); err != nil {
		return nil, nil, fmt.Errorf("store: unable to lock the contacts of messages to send: %w", err)
	}
	contactByID := make(map[int64]claimContact, len(contacts))
	for _, c := range contacts {
		contactByID[c.ID] = c
	}

	// Every address and domain the batch would write to, in one query.
	var values []string
	seen := map[string]bool{}
	add := func(v string) {
		if v != "" && !seen[v] {
			seen[v] = true
			values = append(values, v)
		}
	}
	for _, m := range rows {
		for _, addr := range []string{m.ToAddr, contactByID[m.ContactID].Email} {
			addr = NormalizeEmail(addr)
			add(addr)
			add(emailDomain(addr))
		}
	}
	suppressed := map[string]claimSuppression{}
	if len(values) > 0 {
		var list []claimSuppression
		q = `SELECT value, kind, reason FROM suppressions WHERE ` + r.inList("value", "TEXT", len(values))
		if err := r.selectRows(ctx, &list, r.rb(q), listArgs(r, values)...); err != nil {
			return nil, nil, fmt.Errorf("store: unable to check suppressions: %w", err)
		}
		for _, sp := range list {
			suppressed[sp.Value] = sp
		}
	}

	for _, m := range rows {
		reason := cancelReason(m, enrollmentStatus, contactByID, suppressed, blockedStages)
		if reason == "" {
			m.Status = MessageSending
			m.Attempts++
			m.UpdatedAt = now
			claimed = append(claimed, m)
			continue
		}
		m.Status = MessageCancelled
		m.LastError = reason
		m.UpdatedAt = now
		cancelled = append(cancelled, m)
	}

	if len(claimed) > 0 {
		ids := make([]int64, len(claimed))
		for i, m := range claimed {
			ids[i] = m.ID
		}
		args := append([]any{now}, listArgs(r, ids)...)
		q = `UPDATE messages_out SET status = 'sending', attempts = attempts + 1, updated_at = ?
			WHERE status = 'queued' AND ` + r.inList("id", "BIGINT", len(claimed))
		res, err := r.exec(ctx, r.rb(q), args...)
		if err != nil {
			return nil, nil, fmt.Errorf("store: unable to mark messages sending: %w", classify(err))
		}
		if n, err := res.RowsAffected(); err == nil && int(n) != len(claimed) {
			// Cannot happen under the locks taken above; refuse rather
			// than send a row whose status we do not know.
			return nil, nil, fmt.Errorf("store: unable to mark messages sending: %d of %d rows changed under lock", n, len(claimed))
		}
	}
	for _, m := range cancelled {
		q = `UPDATE messages_out SET status = 'cancelled', last_error = ?, updated_at = ? WHERE id = ?`
		if _, err := r.exec(ctx, r.rb(q), m.LastError, now, m.ID); err != nil {
			return nil, nil, fmt.Errorf("store: unable to cancel message %s: %w", m.MessageID, classify(err))
		}
		if err := r.addEvent(ctx, m.ContactID, EventSendCancelled, outcomeData(m, m.LastError, false)); err != nil {
			return nil, nil, err
		}
	}
	return claimed, cancelled, nil
}

// cancelReason says why m may not be sent, or "" when it may.
func cancelReason(m MessageOut, enrollmentStatus map[int64]string, contacts map[int64]claimContact,
	suppressed map[string]claimSuppression, blockedStages []string) string {
	status, ok := enrollmentStatus[m.EnrollmentID]
	switch {
	case !ok:
		return fmt.Sprintf("enrollment %d no longer exists", m.EnrollmentID)
	case status != EnrollmentActive:
		return fmt.Sprintf("enrollment %d is %s", m.EnrollmentID, status)
	}
	c, ok := contacts[m.ContactID]
	switch {
	case !ok:
		return fmt.Sprintf("contact %d no longer exists", m.ContactID)
	case c.Suppressed:
		return fmt.Sprintf("contact %s is suppressed", c.Email)
	case slices.Contains(blockedStages, c.Stage):
		return fmt.Sprintf("contact %s is in stage %s, which is never mailed", c.Email, c.Stage)
	}
	for _, addr := range []string{NormalizeEmail(m.ToAddr), c.Email} {
		for _, v := range []string{addr, emailDomain(addr)} {
			if sp, ok := suppressed[v]; ok {
				reason := fmt.Sprintf("%s %s is suppressed", sp.Kind, sp.Value)
				if sp.Reason != "" {
					reason += " (" + sp.Reason + ")"
				}
				return reason
			}
		}
	}
	return ""
}

func emailDomain(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || at == len(addr)-1 {
		return ""
	}
	return addr[at+1:]
}

func uniqueIDs(rows []MessageOut, id func(MessageOut) int64) []int64 {
	ids := make([]int64, len(rows))
	for i, m := range rows {
		ids[i] = id(m)
	}
	return sortedUnique(ids)
}

func outcomeData(m MessageOut, reason string, hardBounce bool) sendOutcomeData {
	return sendOutcomeData{MessageID: m.MessageID, Sequence: m.Sequence, Step: m.Step, Reason: reason, HardBounce: hardBounce}
}

// lockMessage loads an outbound message for a change, locked on Postgres,
// and checks that its status is one of from.
func (r *runner) lockMessage(ctx context.Context, id int64, action string, from ...string) (MessageOut, error) {
	var m MessageOut
	q := `SELECT ` + messageOutColumns + ` FROM messages_out WHERE id = ?` + r.lockSuffix(false)
	if err := r.get(ctx, &m, r.rb(q), id); err != nil {
		if isNoRows(err) {
			return MessageOut{}, notFound("no outbound message with id %d", id)
		}
		return MessageOut{}, fmt.Errorf("store: unable to %s message %d: %w", action, id, err)
	}
	m.scanned()
	if !slices.Contains(from, m.Status) {
		return MessageOut{}, &wrongStatusError{msg: fmt.Sprintf("unable to %s message %s: it is %s, not %s",
			action, m.MessageID, m.Status, strings.Join(from, " or "))}
	}
	return m, nil
}

// MarkSent records that a message was accepted by the server (from
// sending), or was found in the Sent folder (from uncertain): status sent,
// sent_at, and a "sent" event. hook, when not nil, runs in the same
// transaction with the updated row; its error rolls everything back.
func (s *Store) MarkSent(ctx context.Context, id int64, sentAt time.Time, hook MessageHook) error {
	return s.InTx(ctx, func(tx *Tx) error {
		r := tx.r
		m, err := r.lockMessage(ctx, id, "mark sent", MessageSending, MessageUncertain)
		if err != nil {
			return err
		}
		now := r.now()
		m.Status, m.SentAt, m.UpdatedAt = MessageSent, dbTimePtr(&sentAt), now
		q := `UPDATE messages_out SET status = 'sent', sent_at = ?, updated_at = ? WHERE id = ?`
		if _, err := r.exec(ctx, r.rb(q), *m.SentAt, now, id); err != nil {
			return fmt.Errorf("store: unable to mark message %s sent: %w", m.MessageID, classify(err))
		}
		if err := r.addEvent(ctx, m.ContactID, EventSent, sentData{
			MessageID: m.MessageID, Sequence: m.Sequence, Step: m.Step, Subject: m.Subject,
		}); err != nil {
			return err
		}
		if hook != nil {
			return hook(tx, m)
		}
		return nil
	})
}

// MarkRetry puts a message that could not be sent this time back in the
// queue (from sending), due again at nextAttempt.
func (s *Store) MarkRetry(ctx context.Context, id int64, nextAttempt time.Time, lastErr string) error {
	return s.InTx(ctx, func(tx *Tx) error {
		r := tx.r
		m, err := r.lockMessage(ctx, id, "retry", MessageSending)
		if err != nil {
			return err
		}
		q := `UPDATE messages_out SET status = 'queued', next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?`
		if _, err := r.exec(ctx, r.rb(q), dbTime(nextAttempt), lastErr, r.now(), id); err != nil {
			return fmt.Errorf("store: unable to requeue message %s: %w", m.MessageID, classify(err))
		}
		return nil
	})
}

// Unclaim puts a claimed message that was never attempted (the sender was
// stopping) back in the queue as it was: status queued, the attempt not
// counted.
func (s *Store) Unclaim(ctx context.Context, id int64) error {
	return s.InTx(ctx, func(tx *Tx) error {
		r := tx.r
		m, err := r.lockMessage(ctx, id, "unclaim", MessageSending)
		if err != nil {
			return err
		}
		q := `UPDATE messages_out SET status = 'queued',
			attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = ? WHERE id = ?`
		if _, err := r.exec(ctx, r.rb(q), r.now(), id); err != nil {
			return fmt.Errorf("store: unable to unclaim message %s: %w", m.MessageID, classify(err))
		}
		return nil
	})
}

// MarkFailed records that a message will not be sent (from sending): status
// failed, last_error, a send_failed event. With hardBounce (the server
// refused the recipient permanently, e.g. 550 5.1.1) the address is also
// suppressed with lastErr as the reason, the contact marked suppressed and a
// "bounced" event {class: hard, source: smtp} written. hook, when not nil,
// runs in the same transaction with the updated row.
func (s *Store) MarkFailed(ctx context.Context, id int64, lastErr string, hardBounce bool, hook MessageHook) error {
	return s.InTx(ctx, func(tx *Tx) error {
		r := tx.r
		m, err := r.lockMessage(ctx, id, "mark failed", MessageSending)
		if err != nil {
			return err
		}
		now := r.now()
		m.Status, m.LastError, m.UpdatedAt = MessageFailed, lastErr, now
		q := `UPDATE messages_out SET status = 'failed', last_error = ?, updated_at = ? WHERE id = ?`
		if _, err := r.exec(ctx, r.rb(q), lastErr, now, id); err != nil {
			return fmt.Errorf("store: unable to mark message %s failed: %w", m.MessageID, classify(err))
		}
		if err := r.addEvent(ctx, m.ContactID, EventSendFailed, outcomeData(m, lastErr, hardBounce)); err != nil {
			return err
		}
		if hardBounce {
			if err := r.suppressBounced(ctx, m, lastErr, now); err != nil {
				return err
			}
		}
		if hook != nil {
			return hook(tx, m)
		}
		return nil
	})
}

func (r *runner) suppressBounced(ctx context.Context, m MessageOut, reason string, now time.Time) error {
	addr := NormalizeEmail(m.ToAddr)
	if err := validEmail(addr); err == nil {
		if _, err := r.exec(ctx, r.q.insertSuppression, addr, SuppressAddress, reason, now); err != nil {
			return fmt.Errorf("store: unable to suppress %s: %w", addr, classify(err))
		}
		if _, err := r.exec(ctx, r.q.suppressAddress, now, addr); err != nil {
			return fmt.Errorf("store: unable to mark contacts of %s suppressed: %w", addr, classify(err))
		}
	}
	q := `UPDATE contacts SET suppressed = TRUE, updated_at = ? WHERE id = ? AND NOT suppressed`
	if _, err := r.exec(ctx, r.rb(q), now, m.ContactID); err != nil {
		return fmt.Errorf("store: unable to mark contact %d suppressed: %w", m.ContactID, classify(err))
	}
	return r.addEvent(ctx, m.ContactID, EventBounced, bouncedData{
		Class: "hard", Source: "smtp", Address: addr, MessageID: m.MessageID, Reason: reason,
	})
}

// MarkUncertain records that a send's outcome is unknown (from sending):
// the connection was lost after the whole message was handed over. The row
// is never sent again blindly; see Requeue and MarkSent.
func (s *Store) MarkUncertain(ctx context.Context, id int64, lastErr string) error {
	return s.InTx(ctx, func(tx *Tx) error {
		r := tx.r
		m, err := r.lockMessage(ctx, id, "mark uncertain", MessageSending)
		if err != nil {
			return err
		}
		q := `UPDATE messages_out SET status = 'uncertain', last_error = ?, updated_at = ? WHERE id = ?`
		if _, err := r.exec(ctx, r.rb(q), lastErr, r.now(), id); err != nil {
			return fmt.Errorf("store: unable to mark message %s uncertain: %w", m.MessageID, classify(err))
		}
		return r.addEvent(ctx, m.ContactID, EventSendUncertain, outcomeData(m, lastErr, false))
	})
}

// ExpireSending turns messages left sending since before olderThan into
// uncertain ones and returns how many it changed. It runs at start-up: a
// row still sending then was being sent by a process that died. With
// Postgres replicas, olderThan must be older than any live send can take
// (the lease), so that a row another replica is sending right now is left
// alone.
func (s *Store) ExpireSending(ctx context.Context, olderThan time.Time) (n int, err error) {
	const reason = "the sender stopped while sending: the message may or may not have been delivered"
	err = s.InTx(ctx, func(tx *Tx) error {
		r := tx.r
		var rows []MessageOut
		q := `SELECT ` + messageOutColumns + ` FROM messages_out
			WHERE status = 'sending' AND updated_at < ? ORDER BY id` + r.lockSuffix(true)
		if err := r.selectRows(ctx, &rows, r.rb(q), dbTime(olderThan)); err != nil {
			return fmt.Errorf("store: unable to find interrupted sends: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		now := r.now()
		args := append([]any{reason, now}, idArgs(rows, func(m MessageOut) int64 { return m.ID })...)
		q = `UPDATE messages_out SET status = 'uncertain', last_error = ?, updated_at = ?
			WHERE status = 'sending' AND id IN (` + placeholders(len(rows)) + `)`
		if _, err := r.exec(ctx, r.rb(q), args...); err != nil {
			return fmt.Errorf("store: unable to mark interrupted sends uncertain: %w", classify(err))
		}
		for _, m := range rows {
			if err := r.addEvent(ctx, m.ContactID, EventSendUncertain, outcomeData(m, reason, false)); err != nil {
				return err
			}
		}
		n = len(rows)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Requeue queues an uncertain message again, due at at: the resend policy,
// or "verify" having established that it was not sent.
func (s *Store) Requeue(ctx context.Context, id int64, at time.Time) error {
	const reason = "queued again after an uncertain send"
	return s.InTx(ctx, func(tx *Tx) error {
		r := tx.r
		m, err := r.lockMessage(ctx, id, "requeue", MessageUncertain)
		if err != nil {
			return err
		}
		q := `UPDATE messages_out SET status = 'queued', next_attempt_at = ?, updated_at = ? WHERE id = ?`
		if _, err := r.exec(ctx, r.rb(q), dbTime(at), r.now(), id); err != nil {
			return fmt.Errorf("store: unable to requeue message %s: %w", m.MessageID, classify(err))
		}
		return r.addEvent(ctx, m.ContactID, EventSendRequeued, outcomeData(m, reason, false))
	})
}

// UncertainMessages returns up to limit (all when limit <= 0) uncertain
// messages of account, the longest uncertain first.
func (s *Store) UncertainMessages(ctx context.Context, account string, limit int) ([]MessageOut, error) {
	r := s.runner(s.db)
	var rows []MessageOut
	q := `SELECT ` + messageOutColumns + ` FROM messages_out
		WHERE account = ? AND status = 'uncertain' ORDER BY updated_at, id LIMIT ?`
	if err := r.selectRows(ctx, &rows, r.rb(q), account, limitArg(limit)); err != nil {
		return nil, fmt.Errorf("store: unable to list uncertain messages of %s: %w", account, err)
	}
	for i := range rows {
		rows[i].scanned()
	}
	return rows, nil
}

// NextQueuedAt returns when the earliest queued message of account is due
// (a row without next_attempt_at is due now, reported as the zero time); ok
// is false when nothing is queued.
func (s *Store) NextQueuedAt(ctx context.Context, account string) (at time.Time, ok bool, err error) {
	r := s.runner(s.db)
	var next []*time.Time
	q := `SELECT next_attempt_at FROM messages_out WHERE account = ? AND status = 'queued'
		ORDER BY next_attempt_at NULLS FIRST LIMIT 1`
	if err := r.selectRows(ctx, &next, r.rb(q), account); err != nil {
		return time.Time{}, false, fmt.Errorf("store: unable to find the next queued message of %s: %w", account, err)
	}
	if len(next) == 0 {
		return time.Time{}, false, nil
	}
	if next[0] == nil {
		return time.Time{}, true, nil
	}
	return next[0].UTC(), true, nil
}

// MessageOutByID returns the outbound message with this id.
func (s *Store) MessageOutByID(ctx context.Context, id int64) (MessageOut, error) {
	r := s.runner(s.db)
	var m MessageOut
	if err := r.get(ctx, &m, r.rb(`SELECT `+messageOutColumns+` FROM messages_out WHERE id = ?`), id); err != nil {
		if isNoRows(err) {
			return MessageOut{}, notFound("no outbound message with id %d", id)
		}
		return MessageOut{}, fmt.Errorf("store: unable to load outbound message %d: %w", id, err)
	}
	m.scanned()
	return m, nil
}

// ListMessagesOut lists outbound messages, newest first, for `followupd
// status`.
func (s *Store) ListMessagesOut(ctx context.Context, f MessageFilter) ([]MessageOut, error) {
	for _, st := range f.Statuses {
		if !slices.Contains(messageStatuses, st) {
			return nil, fmt.Errorf("store: unable to list outbound messages: unknown status %q", st)
		}
	}
	r := s.runner(s.db)
	q := `SELECT ` + messageOutColumns + ` FROM messages_out WHERE (CAST(? AS TEXT) = '' OR account = ?)`
	args := []any{f.Account, f.Account}
	if len(f.Statuses) > 0 {
		q += ` AND status IN (` + placeholders(len(f.Statuses)) + `)`
		for _, st := range f.Statuses {
			args = append(args, st)
		}
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limitArg(f.Limit))
	var rows []MessageOut
	if err := r.selectRows(ctx, &rows, r.rb(q), args...); err != nil {
		return nil, fmt.Errorf("store: unable to list outbound messages: %w", err)
	}
	for i := range rows {
		rows[i].scanned()
	}
	return rows, nil
}
