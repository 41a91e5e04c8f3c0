package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

var enrollmentStatuses = []string{EnrollmentActive, EnrollmentPaused, EnrollmentSnoozed, EnrollmentFinished, EnrollmentStopped}

var messageStatuses = []string{MessageQueued, MessageSending, MessageSent, MessageFailed, MessageUncertain, MessageCancelled}

// CreateEnrollment enrolls a contact in a sequence (status active unless
// given) and returns its id. A second live (active, paused or snoozed)
// enrollment of the same contact in the same sequence is refused with
// ErrDuplicate; finished and stopped ones do not count.
func (s *Store) CreateEnrollment(ctx context.Context, e Enrollment) (int64, error) {
	return s.runner(s.db).createEnrollment(ctx, e)
}

// CreateEnrollment is Store.CreateEnrollment inside the transaction.
func (tx *Tx) CreateEnrollment(ctx context.Context, e Enrollment) (int64, error) {
	return tx.r.createEnrollment(ctx, e)
}

func (r *runner) createEnrollment(ctx context.Context, e Enrollment) (int64, error) {
	e.Sequence = strings.TrimSpace(e.Sequence)
	if e.Sequence == "" {
		return 0, fmt.Errorf("store: unable to enroll contact %d: the sequence is empty", e.ContactID)
	}
	if e.Status == "" {
		e.Status = EnrollmentActive
	}
	if !slices.Contains(enrollmentStatuses, e.Status) {
		return 0, fmt.Errorf("store: unable to enroll contact %d: unknown status %q", e.ContactID, e.Status)
	}
	now := r.now()
	var id int64
	err := r.get(ctx, &id, r.q.insertEnrollment, e.ContactID, e.Sequence, e.Account, e.Status, e.Step,
		e.Variant, dbTimePtr(e.DueAt), dbTimePtr(e.PausedUntil), dbTimePtr(e.LastSentAt), now, now)
	if err != nil {
		if isForeignKeyViolation(err) {
			return 0, notFound("no contact with id %d", e.ContactID)
		}
		return 0, fmt.Errorf("store: unable to enroll contact %d in %s: %w", e.ContactID, e.Sequence, classify(err))
	}
	return id, nil
}

// EnrollmentByID returns the enrollment with this id.
func (s *Store) EnrollmentByID(ctx context.Context, id int64) (Enrollment, error) {
	return s.runner(s.db).enrollmentByID(ctx, id)
}

// EnrollmentByID is Store.EnrollmentByID inside the transaction.
func (tx *Tx) EnrollmentByID(ctx context.Context, id int64) (Enrollment, error) {
	return tx.r.enrollmentByID(ctx, id)
}

func (r *runner) enrollmentByID(ctx context.Context, id int64) (Enrollment, error) {
	var e Enrollment
	if err := r.get(ctx, &e, r.q.enrollmentByID, id); err != nil {
		if isNoRows(err) {
			return Enrollment{}, notFound("no enrollment with id %d", id)
		}
		return Enrollment{}, fmt.Errorf("store: unable to load enrollment %d: %w", id, err)
	}
	e.scanned()
	return e, nil
}

// SetEnrollmentStatus changes the status of an enrollment. Making a second
// enrollment of the same pair live is refused with ErrDuplicate.
func (s *Store) SetEnrollmentStatus(ctx context.Context, id int64, status string) error {
	return s.runner(s.db).setEnrollmentStatus(ctx, id, status)
}

// SetEnrollmentStatus is Store.SetEnrollmentStatus inside the transaction.
func (tx *Tx) SetEnrollmentStatus(ctx context.Context, id int64, status string) error {
	return tx.r.setEnrollmentStatus(ctx, id, status)
}

func (r *runner) setEnrollmentStatus(ctx context.Context, id int64, status string) error {
	if !slices.Contains(enrollmentStatuses, status) {
		return fmt.Errorf("store: unable to set the status of enrollment %d: unknown status %q", id, status)
	}
	res, err := r.exec(ctx, r.q.setEnrollmentStatus, status, r.now(), id)
	if err != nil {
		return fmt.Errorf("store: unable to set the status of enrollment %d: %w", id, classify(err))
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return notFound("no enrollment with id %d", id)
	}
	return nil
}

// DueEnrollments returns up to limit active enrollments due at or before
// now, the most overdue first.
func (s *Store) DueEnrollments(ctx context.Context, now time.Time, limit int) ([]Enrollment, error) {
	return s.runner(s.db).dueEnrollments(ctx, now, limit)
}

// DueEnrollments is Store.DueEnrollments inside the transaction.
func (tx *Tx) DueEnrollments(ctx context.Context, now time.Time, limit int) ([]Enrollment, error) {
	return tx.r.dueEnrollments(ctx, now, limit)
}

func (r *runner) dueEnrollments(ctx context.Context, now time.Time, limit int) ([]Enrollment, error) {
	var es []Enrollment
	if err := r.selectRows(ctx, &es, r.q.dueEnrollments, dbTime(now), limitArg(limit)); err != nil {
		return nil, fmt.Errorf("store: unable to list due enrollments: %w", err)
	}
	for i := range es {
		es[i].scanned()
	}
	return es, nil
}

// InsertMessageOut records an outbound message (status queued unless
// given) and returns its id. A second row for the same (enrollment, step) or
// the same Message-ID is refused with ErrDuplicate: that refusal is what
// keeps a step from being sent twice.
func (s *Store) InsertMessageOut(ctx context.Context, m MessageOut) (int64, error) {
	return s.runner(s.db).insertMessageOut(ctx, m)
}

// InsertMessageOut is Store.InsertMessageOut inside the transaction.
func (tx *Tx) InsertMessageOut(ctx context.Context, m MessageOut) (int64, error) {
	return tx.r.insertMessageOut(ctx, m)
}

func (r *runner) insertMessageOut(ctx context.Context, m MessageOut) (int64, error) {
	if m.Status == "" {
		m.Status = MessageQueued
	}
	if !slices.Contains(messageStatuses, m.Status) {
		return 0, fmt.Errorf("store: unable to insert outbound message: unknown status %q", m.Status)
	}
	if strings.TrimSpace(m.MessageID) == "" {
		return 0, fmt.Errorf("store: unable to insert outbound message: the Message-ID is empty")
	}
	now := r.now()
	var id int64
	err := r.get(ctx, &id, r.q.insertMessageOut, m.EnrollmentID, m.Step, m.ContactID, m.Account,
		m.Status, m.MessageID, m.ThreadRoot, m.InReplyTo, m.Subject, m.Sequence, m.Template,
		m.ToAddr, m.ToName, m.FromAddr, m.FromName, m.References, m.BodyText, m.BodyHTML,
		m.UnsubscribeURL, m.Attempts, m.LastError,
		dbTimePtr(m.NextAttemptAt), now, dbTimePtr(m.SentAt), now)
	if err != nil {
		return 0, fmt.Errorf("store: unable to insert outbound message %s: %w", m.MessageID, classify(err))
	}
	return id, nil
}

// MessageOutByMessageID returns the outbound message with this Message-ID.
func (s *Store) MessageOutByMessageID(ctx context.Context, messageID string) (MessageOut, error) {
	return s.runner(s.db).messageOutByMessageID(ctx, messageID)
}

// MessageOutByMessageID is Store.MessageOutByMessageID inside the
// transaction.
func (tx *Tx) MessageOutByMessageID(ctx context.Context, messageID string) (MessageOut, error) {
	return tx.r.messageOutByMessageID(ctx, messageID)
}

func (r *runner) messageOutByMessageID(ctx context.Context, messageID string) (MessageOut, error) {
	var m MessageOut
	if err := r.get(ctx, &m, r.q.messageOutByMsgID, messageID); err != nil {
		if isNoRows(err) {
			return MessageOut{}, notFound("no outbound message with Message-ID %s", messageID)
		}
		return MessageOut{}, fmt.Errorf("store: unable to load outbound message %s: %w", messageID, err)
	}
	m.scanned()
	return m, nil
}

// InsertMessageIn records a message seen in a mailbox and returns its id.
// The same (account, mailbox, UIDVALIDITY, UID) twice is refused with
// ErrDuplicate. A zero ReceivedAt means now.
func (s *Store) InsertMessageIn(ctx context.Context, m MessageIn) (int64, error) {
	return s.runner(s.db).insertMessageIn(ctx, m)
}

// InsertMessageIn is Store.InsertMessageIn inside the transaction, where
// the watcher also advances the mailbox's checkpoint.
func (tx *Tx) InsertMessageIn(ctx context.Context, m MessageIn) (int64, error) {
	return tx.r.insertMessageIn(ctx, m)
}

func (r *runner) insertMessageIn(ctx context.Context, m MessageIn) (int64, error) {
	now := r.now()
	received := receivedAt(m, now)
	var id int64
	err := r.get(ctx, &id, r.q.insertMessageIn, m.Account, m.Mailbox, m.UIDValidity, m.UID,
		m.MessageID, m.FromAddr, m.Subject, m.Kind, m.Intent, m.BounceClass, m.Excerpt,
		m.ContactID, m.MessageOutID, received, now)
	if err != nil {
		return 0, fmt.Errorf("store: unable to insert inbound message %s/%s uid %d: %w", m.Account, m.Mailbox, m.UID, classify(err))
	}
	return id, nil
}

// SaveCheckpoint records how far a mailbox has been read, replacing the
// previous checkpoint.
func (s *Store) SaveCheckpoint(ctx context.Context, cp Checkpoint) error {
	return s.runner(s.db).saveCheckpoint(ctx, cp)
}

// SaveCheckpoint is Store.SaveCheckpoint inside the transaction: advance a
// checkpoint only together with the messages it covers.
func (tx *Tx) SaveCheckpoint(ctx context.Context, cp Checkpoint) error {
	return tx.r.saveCheckpoint(ctx, cp)
}

func (r *runner) saveCheckpoint(ctx context.Context, cp Checkpoint) error {
	if _, err := r.exec(ctx, r.q.saveCheckpoint, cp.Account, cp.Mailbox, cp.UIDValidity, cp.LastUID, r.now()); err != nil {
		return fmt.Errorf("store: unable to save the checkpoint of %s/%s: %w", cp.Account, cp.Mailbox, classify(err))
	}
	return nil
}

// Checkpoint returns how far a mailbox has been read; ErrNotFound when it
// never was.
func (s *Store) Checkpoint(ctx context.Context, account, mailbox string) (Checkpoint, error) {
	return s.runner(s.db).checkpoint(ctx, account, mailbox)
}

// Checkpoint is Store.Checkpoint inside the transaction.
func (tx *Tx) Checkpoint(ctx context.Context, account, mailbox string) (Checkpoint, error) {
	return tx.r.checkpoint(ctx, account, mailbox)
}

func (r *runner) checkpoint(ctx context.Context, account, mailbox string) (Checkpoint, error) {
	var cp Checkpoint
	if err := r.get(ctx, &cp, r.q.checkpoint, account, mailbox); err != nil {
		if isNoRows(err) {
			return Checkpoint{}, notFound("no checkpoint for %s/%s", account, mailbox)
		}
		return Checkpoint{}, fmt.Errorf("store: unable to load the checkpoint of %s/%s: %w", account, mailbox, err)
	}
	utc(&cp.UpdatedAt)
	return cp, nil
}

// InsertMessageInOnce records an inbound message unless the same mailbox
// UID is already recorded; inserted is false then. Unlike InsertMessageIn it
// leaves the transaction usable on Postgres, where a refused INSERT would
// abort it.
func (tx *Tx) InsertMessageInOnce(ctx context.Context, m MessageIn) (id int64, inserted bool, err error) {
	r := tx.r
	now := r.now()
	received := receivedAt(m, now)
	err = r.get(ctx, &id, r.q.insertMessageInOnce, m.Account, m.Mailbox, m.UIDValidity, m.UID,
		m.MessageID, m.FromAddr, m.Subject, m.Kind, m.Intent, m.BounceClass, m.Excerpt,
		m.ContactID, m.MessageOutID, received, now)
	if isNoRows(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: unable to insert inbound message %s/%s uid %d: %w", m.Account, m.Mailbox, m.UID, classify(err))
	}
	return id, true, nil
}

// InsertMessageOutOnce queues an outbound message unless its step already
// has a live (not cancelled) row; inserted is false then. It leaves the
// transaction usable on Postgres.
func (tx *Tx) InsertMessageOutOnce(ctx context.Context, m MessageOut) (id int64, inserted bool, err error) {
	r := tx.r
	if m.Status == "" {
		m.Status = MessageQueued
	}
	now := r.now()
	err = r.get(ctx, &id, r.q.insertMessageOutOnce, m.EnrollmentID, m.Step, m.ContactID, m.Account,
		m.Status, m.MessageID, m.ThreadRoot, m.InReplyTo, m.Subject, m.Sequence, m.Template,
		m.ToAddr, m.ToName, m.FromAddr, m.FromName, m.References, m.BodyText, m.BodyHTML,
		m.UnsubscribeURL, m.Attempts, m.LastError, dbTimePtr(m.NextAttemptAt), now, dbTimePtr(m.SentAt), now)
	if isNoRows(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: unable to insert outbound message %s: %w", m.MessageID, classify(err))
	}
	return id, true, nil
}
