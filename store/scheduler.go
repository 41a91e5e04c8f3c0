package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Event types written by the scheduler's store functions.
const (
	EventEnrolled   = "enrolled"
	EventUnenrolled = "unenrolled"
)

// AccountState is a mailbox's shared sending budget: how many messages went
// out on SendDay (a date in the account's zone) and when the next may go.
// Every replica reads and writes it under a row lock, so daily limits and
// gaps hold across processes (guarantee 5).
type AccountState struct {
	Account    string     `db:"account"`
	SendDay    string     `db:"send_day"`
	SentToday  int        `db:"sent_today"`
	NextSendAt *time.Time `db:"next_send_at"`
}

// Enroll enrolls the contact with this email in a sequence, due at dueAt,
// and writes an "enrolled" event. A live enrollment in the same sequence is
// refused with ErrDuplicate.
func (s *Store) Enroll(ctx context.Context, email, sequence, account, variant string, dueAt time.Time) (Enrollment, error) {
	var e Enrollment
	err := s.InTx(ctx, func(tx *Tx) error {
		c, err := tx.ContactByEmail(ctx, email)
		if err != nil {
			return err
		}
		due := dbTime(dueAt)
		e = Enrollment{ContactID: c.ID, Sequence: sequence, Account: account, Variant: variant, Status: EnrollmentActive, DueAt: &due}
		if e.ID, err = tx.CreateEnrollment(ctx, e); err != nil {
			if errors.Is(err, ErrDuplicate) {
				return fmt.Errorf("store: unable to enroll %s: already enrolled in %s: %w", c.Email, sequence, ErrDuplicate)
			}
			return err
		}
		return tx.AddEvent(ctx, c.ID, EventEnrolled, map[string]any{"sequence": sequence, "account": account, "due_at": due})
	})
	return e, err
}

// Unenroll stops the contact's live enrollments in sequence (every sequence
// when empty), cancels their queued messages, and writes one "unenrolled"
// event per enrollment. It returns how many were stopped.
func (s *Store) Unenroll(ctx context.Context, email, sequence, reason string) (int, error) {
	n := 0
	err := s.InTx(ctx, func(tx *Tx) error {
		c, err := tx.ContactByEmail(ctx, email)
		if err != nil {
			return err
		}
		live, err := tx.LiveEnrollments(ctx, c.ID)
		if err != nil {
			return err
		}
		for _, e := range live {
			if sequence != "" && e.Sequence != sequence {
				continue
			}
			if err := tx.StopEnrollment(ctx, e, EnrollmentStopped, reason); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// LiveEnrollments lists a contact's active, paused and snoozed enrollments.
func (tx *Tx) LiveEnrollments(ctx context.Context, contactID int64) ([]Enrollment, error) {
	var es []Enrollment
	err := tx.Select(ctx, &es, `SELECT `+enrollmentColumns+` FROM enrollments
		WHERE contact_id = ? AND status IN ('active', 'paused', 'snoozed') ORDER BY id`, contactID)
	for i := range es {
		es[i].scanned()
	}
	return es, err
}

// LiveEnrollments is Tx.LiveEnrollments outside a transaction.
func (s *Store) LiveEnrollments(ctx context.Context, contactID int64) ([]Enrollment, error) {
	var es []Enrollment
	err := s.InTx(ctx, func(tx *Tx) (err error) {
		es, err = tx.LiveEnrollments(ctx, contactID)
		return err
	})
	return es, err
}

// StopEnrollment ends an enrollment (status finished or stopped), cancels
// its queued messages and writes an "unenrolled" or "finished" event.
func (tx *Tx) StopEnrollment(ctx context.Context, e Enrollment, status, reason string) error {
	now := tx.r.now()
	if _, err := tx.Exec(ctx, `UPDATE enrollments SET status = ?, due_at = NULL, updated_at = ? WHERE id = ?`, status, now, e.ID); err != nil {
		return fmt.Errorf("store: unable to stop enrollment %d: %w", e.ID, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE messages_out SET status = 'cancelled', last_error = ?, updated_at = ?
		WHERE enrollment_id = ? AND status = 'queued'`, "cancelled: "+reason, now, e.ID); err != nil {
		return fmt.Errorf("store: unable to cancel the messages of enrollment %d: %w", e.ID, err)
	}
	typ := EventUnenrolled
	if status == EnrollmentFinished {
		typ = "finished"
	}
	return tx.AddEvent(ctx, e.ContactID, typ, map[string]any{"sequence": e.Sequence, "reason": reason})
}

// UpdateEnrollment writes an enrollment's status, step, variant, account,
// snooze target and times.
func (tx *Tx) UpdateEnrollment(ctx context.Context, e Enrollment) error {
	_, err := tx.Exec(ctx, `UPDATE enrollments SET status = ?, step = ?, variant = ?, account = ?,
		resume_into = ?, due_at = ?, paused_until = ?, last_sent_at = ?, updated_at = ? WHERE id = ?`,
		e.Status, e.Step, e.Variant, e.Account, e.ResumeInto, dbTimePtr(e.DueAt), dbTimePtr(e.PausedUntil),
		dbTimePtr(e.LastSentAt), tx.r.now(), e.ID)
	if err != nil {
		return fmt.Errorf("store: unable to update enrollment %d: %w", e.ID, err)
	}
	return nil
}

// ClaimDueEnrollments locks and returns up to limit active enrollments of
// an account due at or before now, the most overdue first. On Postgres the
// rows are locked FOR UPDATE SKIP LOCKED so replicas claim disjoint sets; on
// SQLite the write transaction is the lock. The index on (status, due_at)
// keeps the cost proportional to the due rows, not to all contacts.
func (tx *Tx) ClaimDueEnrollments(ctx context.Context, account string, now time.Time, limit int) ([]Enrollment, error) {
	q := `SELECT ` + enrollmentColumns + ` FROM enrollments
		WHERE status = 'active' AND due_at <= ? AND account = ?
		ORDER BY due_at, id LIMIT ?`
	if tx.Dialect() == DialectPostgres {
		q += ` FOR UPDATE SKIP LOCKED`
	}
	var es []Enrollment
	if err := tx.Select(ctx, &es, q, now, account, limitArg(limit)); err != nil {
		return nil, fmt.Errorf("store: unable to claim due enrollments of %s: %w", account, err)
	}
	for i := range es {
		es[i].scanned()
	}
	return es, nil
}

// NextDue returns the earliest due time of an active enrollment of the
// account, or nil when none is scheduled.
func (s *Store) NextDue(ctx context.Context, account string) (*time.Time, error) {
	var es []Enrollment
	err := s.InTx(ctx, func(tx *Tx) error {
		return tx.Select(ctx, &es, `SELECT `+enrollmentColumns+` FROM enrollments
			WHERE status = 'active' AND due_at IS NOT NULL AND account = ? ORDER BY due_at LIMIT 1`, account)
	})
	if err != nil || len(es) == 0 {
		return nil, err
	}
	es[0].scanned()
	return es[0].DueAt, nil
}

// LockAccountState returns the account's sending budget, creating it when
// missing, locked until the transaction ends.
func (tx *Tx) LockAccountState(ctx context.Context, account string) (AccountState, error) {
	q := `SELECT account, send_day, sent_today, next_send_at FROM accounts_state WHERE account = ?`
	if tx.Dialect() == DialectPostgres {
		q += ` FOR UPDATE`
	}
	var st AccountState
	err := tx.Get(ctx, &st, q, account)
	if errors.Is(err, ErrNotFound) {
		// Created once per account: the usual case is one round trip.
		if _, err := tx.Exec(ctx, `INSERT INTO accounts_state (account, updated_at) VALUES (?, ?)
			ON CONFLICT (account) DO NOTHING`, account, tx.r.now()); err != nil {
			return AccountState{}, fmt.Errorf("store: unable to create the state of account %s: %w", account, err)
		}
		err = tx.Get(ctx, &st, q, account)
	}
	if err != nil {
		return AccountState{}, fmt.Errorf("store: unable to lock the state of account %s: %w", account, err)
	}
	utcPtr(st.NextSendAt)
	return st, nil
}

// SaveAccountState writes the budget read with LockAccountState.
func (tx *Tx) SaveAccountState(ctx context.Context, st AccountState) error {
	_, err := tx.Exec(ctx, `UPDATE accounts_state SET send_day = ?, sent_today = ?, next_send_at = ?, updated_at = ?
		WHERE account = ?`, st.SendDay, st.SentToday, dbTimePtr(st.NextSendAt), tx.r.now(), st.Account)
	if err != nil {
		return fmt.Errorf("store: unable to save the state of account %s: %w", st.Account, err)
	}
	return nil
}

// ThreadOf lists the messages already made for an enrollment (any status
// but cancelled and failed), in step order: a reply step threads onto them.
func (tx *Tx) ThreadOf(ctx context.Context, enrollmentID int64) ([]MessageOut, error) {
	var ms []MessageOut
	err := tx.Select(ctx, &ms, `SELECT `+messageOutColumns+` FROM messages_out
		WHERE enrollment_id = ? AND status NOT IN ('cancelled', 'failed') ORDER BY step`, enrollmentID)
	for i := range ms {
		ms[i].scanned()
	}
	return ms, err
}

// PendingTriggers locks and returns up to limit events that may enroll a
// contact (see triggers), oldest first. Replicas skip each other's rows on
// Postgres. Clear each with ClearTrigger in the same transaction.
func (tx *Tx) PendingTriggers(ctx context.Context, limit int) ([]Event, error) {
	q := `SELECT id, contact_id, type, data, created_at FROM events WHERE pending ORDER BY id LIMIT ?`
	if tx.Dialect() == DialectPostgres {
		q += ` FOR UPDATE SKIP LOCKED`
	} else {
		q = strings.Replace(q, "WHERE pending", "WHERE pending = 1", 1)
	}
	var rows []eventRow
	if err := tx.Select(ctx, &rows, q, limitArg(limit)); err != nil {
		return nil, fmt.Errorf("store: unable to read pending triggers: %w", err)
	}
	evs := make([]Event, len(rows))
	for i, r := range rows {
		evs[i] = r.event()
	}
	return evs, nil
}

// ClearTrigger marks a pending event as acted on.
func (tx *Tx) ClearTrigger(ctx context.Context, eventID int64) error {
	if _, err := tx.Exec(ctx, `UPDATE events SET pending = ? WHERE id = ?`, false, eventID); err != nil {
		return fmt.Errorf("store: unable to clear trigger %d: %w", eventID, err)
	}
	return nil
}

// WakeEnrollments returns up to limit paused or snoozed enrollments whose
// paused_until has come, locked for the caller to resume.
func (tx *Tx) WakeEnrollments(ctx context.Context, now time.Time, limit int) ([]Enrollment, error) {
	q := `SELECT ` + enrollmentColumns + ` FROM enrollments
		WHERE status IN ('paused', 'snoozed') AND paused_until IS NOT NULL AND paused_until <= ?
		ORDER BY paused_until, id LIMIT ?`
	if tx.Dialect() == DialectPostgres {
		q += ` FOR UPDATE SKIP LOCKED`
	}
	var es []Enrollment
	if err := tx.Select(ctx, &es, q, now, limitArg(limit)); err != nil {
		return nil, fmt.Errorf("store: unable to list enrollments to wake: %w", err)
	}
	for i := range es {
		es[i].scanned()
	}
	return es, nil
}

// MarkContactSuppressed flags one contact as never to be mailed again.
func (tx *Tx) MarkContactSuppressed(ctx context.Context, contactID int64) error {
	if _, err := tx.Exec(ctx, `UPDATE contacts SET suppressed = ?, updated_at = ? WHERE id = ?`, true, tx.r.now(), contactID); err != nil {
		return fmt.Errorf("store: unable to suppress contact %d: %w", contactID, err)
	}
	return nil
}

// EnrollmentStats counts enrollments by state for `followupd status`.
type EnrollmentStats struct {
	Active  int `db:"active" json:"active"`
	Paused  int `db:"paused" json:"paused"`
	Snoozed int `db:"snoozed" json:"snoozed"`
	// DueSoon are active enrollments due before the horizon given.
	DueSoon int `db:"due_soon" json:"due_next_24h"`
}

// EnrollmentStats counts live enrollments and those due before horizon.
func (s *Store) EnrollmentStats(ctx context.Context, horizon time.Time) (EnrollmentStats, error) {
	var st EnrollmentStats
	err := s.InTx(ctx, func(tx *Tx) error {
		return tx.Get(ctx, &st, `SELECT
			COALESCE(SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), 0) AS active,
			COALESCE(SUM(CASE WHEN status = 'paused' THEN 1 ELSE 0 END), 0) AS paused,
			COALESCE(SUM(CASE WHEN status = 'snoozed' THEN 1 ELSE 0 END), 0) AS snoozed,
			COALESCE(SUM(CASE WHEN status = 'active' AND due_at <= ? THEN 1 ELSE 0 END), 0) AS due_soon
			FROM enrollments WHERE status IN ('active', 'paused', 'snoozed')`, horizon)
	})
	if err != nil {
		return st, fmt.Errorf("store: unable to count enrollments: %w", err)
	}
	return st, nil
}
