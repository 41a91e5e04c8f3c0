package daemon

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/sequences"
	"github.com/followupd/followupd/store"
)

// Event types written by the scheduler.
const (
	EventRenderFailed = "render_failed"
	EventStopped      = "stopped"
	EventRescheduled  = "rescheduled"
)

// Scheduler turns due enrollment steps into messages for the outbox.
// Each pass runs the enrollment triggers, then claims due steps per account
// within the account's daily limit and gap, re-checks each contact, renders
// the step and inserts the messages_out row as queued, all in one
// transaction per account — except for the accounts whose outbox takes
// due steps itself (Pulls, Produce), which a pass only wakes.
type Scheduler struct {
	Store   *store.Store
	Runtime func() *Runtime
	Now     func() time.Time
	Log     *slog.Logger
	// Batch is how many due steps one account's transaction claims at most.
	Batch int
	// Enqueued is called after each transaction that queued messages
	// (wakes the outbox); it must not block.
	Enqueued func()
	// Pulls, when set, says which accounts' due steps the outbox of this
	// process takes itself, through Produce: a pass queues nothing for
	// them and calls Enqueued when one of their steps is due.
	Pulls func(account string) bool

	mu  sync.Mutex
	rng *mrand.Rand
}

func (s *Scheduler) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Scheduler) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// gap draws a random pause between min and max.
func (s *Scheduler) gap(minGap, maxGap time.Duration) time.Duration {
	if maxGap <= minGap {
		return minGap
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rng == nil {
		s.rng = mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
	}
	return minGap + time.Duration(s.rng.Int64N(int64(maxGap-minGap)))
}

// RunOnce runs one scheduler pass and returns how many messages it queued.
func (s *Scheduler) RunOnce(ctx context.Context) (int, error) {
	rt := s.Runtime()
	if err := s.wake(ctx, rt); err != nil {
		return 0, err
	}
	if err := s.runTriggers(ctx, rt); err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	for i := range rt.Config.Accounts {
		a := &rt.Config.Accounts[i]
		if s.Pulls != nil && s.Pulls(a.Name) {
			if err := s.wakeSender(ctx, a.Name); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		for {
			msgs, more, err := s.claimAccount(ctx, rt, a, s.batch(), false)
			n := len(msgs)
			total += n
			// Wake the outbox after each committed batch, not at the end
			// of the pass: a pass over a large backlog takes a while, and
			// the sending can start with the first batch.
			if n > 0 && s.Enqueued != nil {
				s.Enqueued()
			}
			if err != nil {
				errs = append(errs, err)
				break
			}
			if !more || ctx.Err() != nil {
				break
			}
		}
	}
	return total, errors.Join(errs...)
}

// runTriggers enrolls contacts that were created in or entered a stage that
// a sequence's on_stage trigger names.
func (s *Scheduler) runTriggers(ctx context.Context, rt *Runtime) error {
	for {
		n := 0
		err := s.Store.InTx(ctx, func(tx *store.Tx) error {
			evs, err := tx.PendingTriggers(ctx, 500)
			if err != nil {
				return err
			}
			n = len(evs)
			for _, ev := range evs {
				var d struct{ Stage, To string }
				_ = json.Unmarshal(ev.Data, &d)
				stage := d.To
				if ev.Type == store.EventCreated {
					stage = d.Stage
				}
				for _, seq := range sortedSequences(rt) {
					for _, t := range seq.Triggers {
						if t.OnStage == "" || t.OnStage != stage {
							continue
						}
						if err := enrollTx(ctx, tx, rt, ev.ContactID, seq, s.now(), "on_stage "+stage); err != nil {
							return err
						}
					}
				}
				if err := tx.ClearTrigger(ctx, ev.ID); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || n < 500 {
			return err
		}
	}
}

func sortedSequences(rt *Runtime) []*sequences.Sequence {
	out := make([]*sequences.Sequence, 0, len(rt.Config.Sequences))
	for _, s := range rt.Config.Sequences {
		out = append(out, rt.Sequences[s.Name])
	}
	return out
}

// enrollTx enrolls a contact in a sequence inside tx unless it is already
// live in it or may not be mailed; the first step is due at now (the
// scheduler moves it into the window).
func enrollTx(ctx context.Context, tx *store.Tx, rt *Runtime, contactID int64, seq *sequences.Sequence, now time.Time, why string) error {
	c, err := tx.ContactByID(ctx, contactID)
	if err != nil {
		return err
	}
	if c.Suppressed || !rt.Pipeline.Mailable(c.Stage) {
		return nil
	}
	account := sequences.ChooseAccount(seq, c.Email)
	due := rt.FirstDue(seq, c, account, now)
	e := store.Enrollment{ContactID: c.ID, Sequence: seq.Name, Account: account, Status: store.EnrollmentActive, DueAt: &due}
	id, err := tx.CreateEnrollment(ctx, e)
	if errors.Is(err, store.ErrDuplicate) {
		return nil
	}
	if err != nil {
		return err
	}
	return tx.AddEvent(ctx, c.ID, store.EventEnrolled, map[string]any{"sequence": seq.Name, "account": e.Account, "enrollment_id": id, "by": why})
}

func (s *Scheduler) batch() int {
	if s.Batch <= 0 {
		return 100
	}
	return s.Batch
}

// wakeSender calls Enqueued when the account has a step due now.
func (s *Scheduler) wakeSender(ctx context.Context, account string) error {
	due, err := s.Store.NextDue(ctx, account)
	if err != nil {
		return fmt.Errorf("scheduler: account %s: %w", account, err)
	}
	if due != nil && !due.After(s.now()) && s.Enqueued != nil {
		s.Enqueued()
	}
	return nil
}

// Produce is the scheduler's pass for one account done on behalf of an
// outbox about to send: up to limit due steps are claimed, checked and
// rendered as in a pass, and their messages are inserted as sending
// (attempt 1) instead of queued and returned, to be handed to the server at
// once. The contacts are locked with the enrollments, so the transaction
// that marks a message sending is the one that re-checked its enrollment
// and contact under lock, as ClaimForSend's is (guarantee 2); and the
// queue's own claim, a second transaction and a second write of each row,
// is skipped. more reports that the claim was full and more may be due.
//
// The caller must send what it gets (or put it back with Unclaim): a row
// left sending by a process that dies becomes uncertain, as a claimed one
// does.
func (s *Scheduler) Produce(ctx context.Context, account string, limit int) (msgs []store.MessageOut, more bool, err error) {
	rt := s.Runtime()
	a, ok := rt.Account(account)
	if !ok || limit <= 0 {
		return nil, false, nil
	}
	msgs, more, err = s.claimAccount(ctx, rt, a, limit, true)
	if len(msgs) > 0 {
		s.log().Debug("claimed messages to send", "account", a.Name, "count", len(msgs))
	}
	return msgs, more, err
}

// claimAccount queues what one account may send now, at most batch steps
// claimed — or, with send, inserts them as sending (see Produce). It
// returns the messages; more reports that the batch was full and another
// pass may find more.
func (s *Scheduler) claimAccount(ctx context.Context, rt *Runtime, a *config.Account, batch int, send bool) (msgs []store.MessageOut, more bool, err error) {
	now := s.now()
	acctLoc := a.TimeZone.Location
	accountWindow := compileWindow(a.SendWindow)
	if a.SendWindow.TimeZone != "account" && a.SendWindow.TimeZone != "" {
		if loc, err := config.LoadLocation(a.SendWindow.TimeZone); err == nil {
			acctLoc = loc
		}
	}
	if !accountWindow.Contains(now, acctLoc) {
		return nil, false, nil
	}
	err = s.Store.InTx(ctx, func(tx *store.Tx) error {
		msgs = nil
		st, err := tx.LockAccountState(ctx, a.Name)
		if err != nil {
			return err
		}
		today := now.In(a.TimeZone.Location).Format(time.DateOnly)
		if st.SendDay != today {
			st.SendDay, st.SentToday = today, 0
		}
		if st.NextSendAt != nil && st.NextSendAt.After(now) {
			return nil
		}
		budget := a.DailyLimit - st.SentToday
		if budget <= 0 {
			return nil
		}
		gapped := a.MaxGap > 0
		if gapped {
			budget = 1
		}
		claimed, err := tx.ClaimDueEnrollments(ctx, a.Name, now, min(batch, budget*4+16))
		if err != nil {
			return err
		}
		more = len(claimed) == min(batch, budget*4+16)
		if msgs, err = s.queueSteps(ctx, tx, rt, a, claimed, now, budget, send); err != nil {
			return err
		}
		if len(msgs) == 0 {
			return nil
		}
		st.SentToday += len(msgs)
		if gapped {
			next := now.Add(s.gap(a.MinGap.Std(), a.MaxGap.Std()))
			st.NextSendAt = &next
			more = false
		}
		return tx.SaveAccountState(ctx, st)
	})
	if err != nil {
		return nil, false, fmt.Errorf("scheduler: account %s: %w", a.Name, err)
	}
	if len(msgs) > 0 && !send {
		s.log().Debug("queued messages", "account", a.Name, "count", len(msgs))
	}
	return msgs, more && len(msgs) > 0, nil
}

// dueStep is a due enrollment whose next step goes out now.
type dueStep struct {
	e    store.Enrollment
	c    store.Contact
	seq  *sequences.Sequence
	k    int
	name string // the template variant
}

// queueSteps decides what each claimed enrollment gets now: a queued
// message, a new due time (outside the sequence's window), an end (no step
// left, contact not mailable), or a pause when its template cannot be
// rendered. It is set-based: the contacts, their suppressions and the
// threads of reply steps are read in one query each, and the messages
// queued and the enrollments advanced in multi-row statements; what is
// rare — a stop, an end, a new due time, a failed template — is done per
// enrollment, in claim order. At most budget messages are queued (with
// send, inserted as sending); it returns them with their ids.
func (s *Scheduler) queueSteps(ctx context.Context, tx *store.Tx, rt *Runtime, a *config.Account, claimed []store.Enrollment, now time.Time, budget int, send bool) ([]store.MessageOut, error) {
	if len(claimed) == 0 || budget <= 0 {
		return nil, nil
	}
	ids := make([]int64, len(claimed))
	for i, e := range claimed {
		ids[i] = e.ContactID
	}
	// Sending now: the contacts are locked, so that a reply, bounce or
	// unsubscribe changing one either commits before this read or waits
	// until the message is sending.
	contacts, err := tx.ContactsByIDs(ctx, ids, send)
	if err != nil {
		return nil, err
	}
	emails := make([]string, 0, len(contacts))
	for _, c := range contacts {
		emails = append(emails, c.Email)
	}
	suppressed, err := tx.SuppressedEmails(ctx, emails)
	if err != nil {
		return nil, err
	}
	// Which enrollments send now, in claim order; the rest is settled here.
	var due []dueStep
	var threaded []int64
	for _, e := range claimed {
		if len(due) >= budget {
			break
		}
		seq, ok := rt.Sequences[e.Sequence]
		if !ok {
			if err := tx.StopEnrollment(ctx, e, store.EnrollmentStopped, "sequence "+e.Sequence+" is no longer in the configuration"); err != nil {
				return nil, err
			}
			continue
		}
		c, ok := contacts[e.ContactID]
		if !ok {
			// Not read with the batch, or changed since by an end below.
			if c, err = tx.ContactByID(ctx, e.ContactID); err != nil {
				return nil, err
			}
			sup, err := tx.SuppressedEmails(ctx, []string{c.Email})
			if err != nil {
				return nil, err
			}
			suppressed[c.Email] = sup[c.Email]
		}
		var reason string
		switch {
		case c.Suppressed:
			reason = "the contact is suppressed"
		case !rt.Pipeline.Mailable(c.Stage):
			reason = "the contact is in stage " + c.Stage
		case suppressed[c.Email]:
			reason = "the address is on the suppression list"
		}
		if reason != "" {
			if err := tx.StopEnrollment(ctx, e, store.EnrollmentStopped, reason); err != nil {
				return nil, err
			}
			continue
		}
		k, ok := seq.NextStep(e.Step, contactFields(c))
		if !ok {
			if err := finishTx(ctx, tx, rt, e, c, now); err != nil {
				return nil, err
			}
			// on_finish may have changed the contact's stage.
			delete(contacts, c.ID)
			continue
		}
		loc := seq.Location(contactLocation(c), a.TimeZone.Location)
		if !seq.Window.Contains(now, loc) {
			next, ok := seq.Window.Next(now, loc)
			if !ok {
				if err := tx.StopEnrollment(ctx, e, store.EnrollmentStopped, "the sequence's send window never opens"); err != nil {
					return nil, err
				}
				continue
			}
			e.DueAt = &next
			if err := tx.UpdateEnrollment(ctx, e); err != nil {
				return nil, err
			}
			continue
		}
		due = append(due, dueStep{e: e, c: c, seq: seq, k: k, name: sequences.ChooseVariant(seq, k, c.Email)})
		if seq.Steps[k].Thread == "reply" {
			threaded = append(threaded, e.ID)
		}
	}
	var threads map[int64][]store.MessageOut
	if len(threaded) > 0 {
		if threads, err = tx.ThreadsOf(ctx, threaded); err != nil {
			return nil, err
		}
	}
	msgs := make([]store.MessageOut, 0, len(due))
	rendered := make([]dueStep, 0, len(due))
	for _, d := range due {
		m, ok, err := s.render(ctx, tx, rt, a, d, threads[d.e.ID], now)
		if err != nil {
			return nil, err
		}
		if ok {
			if send {
				m.Status, m.Attempts = store.MessageSending, 1
			}
			msgs = append(msgs, m)
			rendered = append(rendered, d)
		}
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	inserted, err := tx.InsertMessagesOutOnce(ctx, msgs)
	if err != nil {
		return nil, err
	}
	progress := make([]store.EnrollmentProgress, len(rendered))
	for i, d := range rendered {
		p := store.EnrollmentProgress{ID: d.e.ID, Step: d.k, Variant: d.e.Variant, LastSentAt: d.e.LastSentAt}
		if _, ok := inserted[d.e.ID]; ok {
			p.Variant = d.name
		}
		// Not inserted: this step already has a message (queued by an
		// earlier pass whose enrollment was then edited by hand, say):
		// never a second, and the enrollment waits for that one.
		progress[i] = p
	}
	if err := tx.AdvanceEnrollments(ctx, progress); err != nil {
		return nil, err
	}
	out := msgs[:0]
	for _, m := range msgs {
		if id, ok := inserted[m.EnrollmentID]; ok {
			m.ID, m.CreatedAt, m.UpdatedAt = id, now, now
			out = append(out, m)
		}
	}
	return out, nil
}

// render renders a due step into the message to queue; ok is false when
// the template failed, and the enrollment is then paused with an event.
func (s *Scheduler) render(ctx context.Context, tx *store.Tx, rt *Runtime, a *config.Account, d dueStep, thread []store.MessageOut, now time.Time) (m store.MessageOut, ok bool, err error) {
	e, c, seq, k, name := d.e, d.c, d.seq, d.k, d.name
	r, err := rt.Templates.Render(name, rt.templateData(c, a, seq.Name, k, now))
	if err != nil {
		e.Status = store.EnrollmentPaused
		e.DueAt = nil
		if err := tx.UpdateEnrollment(ctx, e); err != nil {
			return m, false, err
		}
		s.log().Warn("template failed; enrollment paused", "contact", c.Email, "sequence", seq.Name, "step", k+1, "error", err)
		return m, false, tx.AddEvent(ctx, c.ID, EventRenderFailed, map[string]any{"sequence": seq.Name, "step": k + 1, "template": name, "error": err.Error()})
	}
	m = store.MessageOut{
		EnrollmentID: e.ID, Step: k, ContactID: c.ID, Account: a.Name, Status: store.MessageQueued,
		MessageID: newMessageID(a.FromAddress), Subject: r.Subject, Sequence: seq.Name, Template: name,
		ToAddr: c.Email, ToName: strings.TrimSpace(c.FirstName + " " + c.LastName),
		FromAddr: a.FromAddress, FromName: a.FromName, BodyText: r.Text, BodyHTML: r.HTML,
		UnsubscribeURL: rt.UnsubscribeURL(c), NextAttemptAt: &now,
	}
	if r.FromName != "" {
		m.FromName = r.FromName
	}
	if seq.Steps[k].Thread == "reply" && len(thread) > 0 {
		ids := make([]string, len(thread))
		for i, t := range thread {
			ids[i] = "<" + t.MessageID + ">"
		}
		m.Subject = sequences.ReplySubject(thread[0].Subject)
		m.ThreadRoot = thread[0].MessageID
		m.InReplyTo = thread[len(thread)-1].MessageID
		m.References = strings.Join(ids, " ")
	}
	return m, true, nil
}

// finishTx ends an enrollment whose steps are done and applies on_finish.
func finishTx(ctx context.Context, tx *store.Tx, rt *Runtime, e store.Enrollment, c store.Contact, now time.Time) error {
	if err := tx.StopEnrollment(ctx, e, store.EnrollmentFinished, "all steps done"); err != nil {
		return err
	}
	seq := rt.Sequences[e.Sequence]
	if seq == nil {
		return nil
	}
	if seq.OnFinish.SetStage != "" {
		if _, err := tx.SetStage(ctx, c.Email, seq.OnFinish.SetStage, "sequence "+seq.Name+" finished"); err != nil {
			return err
		}
	}
	if next := rt.Sequences[seq.OnFinish.Enroll]; next != nil {
		return enrollTx(ctx, tx, rt, c.ID, next, now, "on_finish of "+seq.Name)
	}
	return nil
}

// AfterSent advances an enrollment once its step went out: the next step
// is due per its delay from the actual send time. It runs inside the
// transaction that marks the message sent.
func AfterSent(ctx context.Context, tx *store.Tx, rt *Runtime, m store.MessageOut, sentAt time.Time) error {
	// Locked: a reply stopping the enrollment meanwhile must not be undone
	// by the update below, which writes the status it read.
	e, err := tx.EnrollmentForUpdate(ctx, m.EnrollmentID)
	if err != nil {
		return err
	}
	// A paused or snoozed enrollment still records its progress, so waking
	// it continues with the next step; an ended one is left alone.
	live := e.Status == store.EnrollmentActive || e.Status == store.EnrollmentPaused || e.Status == store.EnrollmentSnoozed
	if !live || e.Step != m.Step {
		return nil
	}
	c, err := tx.ContactByID(ctx, e.ContactID)
	if err != nil {
		return err
	}
	e.LastSentAt = &sentAt
	seq := rt.Sequences[e.Sequence]
	if seq == nil {
		return tx.UpdateEnrollment(ctx, e)
	}
	k, ok := seq.NextStep(m.Step+1, contactFields(c))
	if !ok {
		e.Step = len(seq.Steps)
		if err := tx.UpdateEnrollment(ctx, e); err != nil {
			return err
		}
		return finishTx(ctx, tx, rt, e, c, sentAt)
	}
	a, _ := rt.Account(e.Account)
	acctLoc := time.UTC
	if a != nil {
		acctLoc = a.TimeZone.Location
	}
	due, ok := seq.DueAt(k, sentAt, seq.Location(contactLocation(c), acctLoc))
	if !ok {
		if err := tx.UpdateEnrollment(ctx, e); err != nil {
			return err
		}
		return tx.StopEnrollment(ctx, e, store.EnrollmentStopped, "the sequence's send window never opens")
	}
	e.Step, e.DueAt = k, &due
	return tx.UpdateEnrollment(ctx, e)
}

// AfterSentBatch is AfterSent for a group of messages recorded sent in one
// transaction: the enrollments are read (locked) and the contacts read in
// one query each, and the plain advances — the next step due after its
// delay — written in one statement. An enrollment that ends (last step,
// no window, sequence gone) takes AfterSent's own path; so does every
// message when one enrollment appears twice in the group, where the order
// of its updates matters.
func AfterSentBatch(ctx context.Context, tx *store.Tx, rt *Runtime, ms []store.MessageOut, now func() time.Time) error {
	ids := make([]int64, len(ms))
	seen := make(map[int64]bool, len(ms))
	for i, m := range ms {
		if seen[m.EnrollmentID] {
			return afterSentEach(ctx, tx, rt, ms, now)
		}
		seen[m.EnrollmentID] = true
		ids[i] = m.EnrollmentID
	}
	enrollments, err := tx.EnrollmentsByIDs(ctx, ids, true)
	if err != nil {
		return err
	}
	contactIDs := make([]int64, 0, len(enrollments))
	for _, e := range enrollments {
		contactIDs = append(contactIDs, e.ContactID)
	}
	contacts, err := tx.ContactsByIDs(ctx, contactIDs, false)
	if err != nil {
		return err
	}
	var plain []store.EnrollmentProgress
	for _, m := range ms {
		sentAt := now()
		if m.SentAt != nil {
			sentAt = *m.SentAt
		}
		e, ok := enrollments[m.EnrollmentID]
		if !ok {
			// Gone: AfterSent reports it as it always has.
			if err := AfterSent(ctx, tx, rt, m, sentAt); err != nil {
				return err
			}
			continue
		}
		live := e.Status == store.EnrollmentActive || e.Status == store.EnrollmentPaused || e.Status == store.EnrollmentSnoozed
		if !live || e.Step != m.Step {
			continue
		}
		c, ok := contacts[e.ContactID]
		seq := rt.Sequences[e.Sequence]
		if !ok || seq == nil {
			if err := AfterSent(ctx, tx, rt, m, sentAt); err != nil {
				return err
			}
			// What AfterSent changed may touch this contact's other
			// enrollments in the group: read it again next time.
			delete(contacts, e.ContactID)
			continue
		}
		k, ok := seq.NextStep(m.Step+1, contactFields(c))
		var due time.Time
		if ok {
			a, _ := rt.Account(e.Account)
			acctLoc := time.UTC
			if a != nil {
				acctLoc = a.TimeZone.Location
			}
			due, ok = seq.DueAt(k, sentAt, seq.Location(contactLocation(c), acctLoc))
		}
		if !ok {
			// The sequence ends here: finish, on_finish, stage changes.
			if err := AfterSent(ctx, tx, rt, m, sentAt); err != nil {
				return err
			}
			delete(contacts, e.ContactID)
			continue
		}
		plain = append(plain, store.EnrollmentProgress{ID: e.ID, Step: k, Variant: e.Variant, DueAt: &due, LastSentAt: &sentAt})
	}
	return tx.AdvanceEnrollments(ctx, plain)
}

func afterSentEach(ctx context.Context, tx *store.Tx, rt *Runtime, ms []store.MessageOut, now func() time.Time) error {
	for _, m := range ms {
		sentAt := now()
		if m.SentAt != nil {
			sentAt = *m.SentAt
		}
		if err := AfterSent(ctx, tx, rt, m, sentAt); err != nil {
			return err
		}
	}
	return nil
}

var msgIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newMessageID makes a unique Message-ID (without angle brackets) in the
// sender's domain, chosen before sending so a lost send can be found later.
func newMessageID(from string) string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	domain := from[strings.LastIndexByte(from, '@')+1:]
	return strings.ToLower(msgIDEncoding.EncodeToString(b[:])) + "@" + domain
}
