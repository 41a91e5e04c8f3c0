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

// Scheduler turns due enrollment steps into queued messages for the outbox.
// Each pass runs the enrollment triggers, then claims due steps per account
// within the account's daily limit and gap, re-checks each contact, renders
// the step and inserts the messages_out row, all in one transaction per
// account.
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
		for {
			n, more, err := s.claimAccount(ctx, rt, a)
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

// claimAccount queues what one account may send now. more reports that the
// batch was full and another pass may find more.
func (s *Scheduler) claimAccount(ctx context.Context, rt *Runtime, a *config.Account) (n int, more bool, err error) {
	now := s.now()
	acctLoc := a.TimeZone.Location
	accountWindow := compileWindow(a.SendWindow)
	if a.SendWindow.TimeZone != "account" && a.SendWindow.TimeZone != "" {
		if loc, err := config.LoadLocation(a.SendWindow.TimeZone); err == nil {
			acctLoc = loc
		}
	}
	if !accountWindow.Contains(now, acctLoc) {
		return 0, false, nil
	}
	batch := s.Batch
	if batch <= 0 {
		batch = 100
	}
	err = s.Store.InTx(ctx, func(tx *store.Tx) error {
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
		for _, e := range claimed {
			if n >= budget {
				break
			}
			queued, err := s.processEnrollment(ctx, tx, rt, a, e, now)
			if err != nil {
				return err
			}
			if queued {
				n++
			}
		}
		if n == 0 {
			return nil
		}
		st.SentToday += n
		if gapped {
			next := now.Add(s.gap(a.MinGap.Std(), a.MaxGap.Std()))
			st.NextSendAt = &next
			more = false
		}
		return tx.SaveAccountState(ctx, st)
	})
	if err != nil {
		return 0, false, fmt.Errorf("scheduler: account %s: %w", a.Name, err)
	}
	if n > 0 {
		s.log().Debug("queued messages", "account", a.Name, "count", n)
	}
	return n, more && n > 0, nil
}

// processEnrollment decides what a due enrollment gets now: a queued
// message (true), a new due time, an end, or a pause when its template
// cannot be rendered.
func (s *Scheduler) processEnrollment(ctx context.Context, tx *store.Tx, rt *Runtime, a *config.Account, e store.Enrollment, now time.Time) (bool, error) {
	seq, ok := rt.Sequences[e.Sequence]
	if !ok {
		return false, tx.StopEnrollment(ctx, e, store.EnrollmentStopped, "sequence "+e.Sequence+" is no longer in the configuration")
	}
	c, err := tx.ContactByID(ctx, e.ContactID)
	if err != nil {
		return false, err
	}
	if reason := s.notMailable(ctx, tx, rt, c); reason != "" {
		return false, tx.StopEnrollment(ctx, e, store.EnrollmentStopped, reason)
	}
	fields := contactFields(c)
	k, ok := seq.NextStep(e.Step, fields)
	if !ok {
		return false, finishTx(ctx, tx, rt, e, c, now)
	}
	loc := seq.Location(contactLocation(c), a.TimeZone.Location)
	if !seq.Window.Contains(now, loc) {
		next, ok := seq.Window.Next(now, loc)
		if !ok {
			return false, tx.StopEnrollment(ctx, e, store.EnrollmentStopped, "the sequence's send window never opens")
		}
		e.DueAt = &next
		return false, tx.UpdateEnrollment(ctx, e)
	}
	step := seq.Steps[k]
	name := sequences.ChooseVariant(seq, k, c.Email)
	r, err := rt.Templates.Render(name, rt.templateData(c, a, seq.Name, k, now))
	if err != nil {
		e.Status = store.EnrollmentPaused
		e.DueAt = nil
		if err := tx.UpdateEnrollment(ctx, e); err != nil {
			return false, err
		}
		s.log().Warn("template failed; enrollment paused", "contact", c.Email, "sequence", seq.Name, "step", k+1, "error", err)
		return false, tx.AddEvent(ctx, c.ID, EventRenderFailed, map[string]any{"sequence": seq.Name, "step": k + 1, "template": name, "error": err.Error()})
	}
	m := store.MessageOut{
		EnrollmentID: e.ID, Step: k, ContactID: c.ID, Account: a.Name, Status: store.MessageQueued,
		MessageID: newMessageID(a.FromAddress), Subject: r.Subject, Sequence: seq.Name, Template: name,
		ToAddr: c.Email, ToName: strings.TrimSpace(c.FirstName + " " + c.LastName),
		FromAddr: a.FromAddress, FromName: a.FromName, BodyText: r.Text, BodyHTML: r.HTML,
		UnsubscribeURL: rt.UnsubscribeURL(c), NextAttemptAt: &now,
	}
	if r.FromName != "" {
		m.FromName = r.FromName
	}
	if step.Thread == "reply" {
		thread, err := tx.ThreadOf(ctx, e.ID)
		if err != nil {
			return false, err
		}
		if len(thread) > 0 {
			ids := make([]string, len(thread))
			for i, t := range thread {
				ids[i] = "<" + t.MessageID + ">"
			}
			m.Subject = sequences.ReplySubject(thread[0].Subject)
			m.ThreadRoot = thread[0].MessageID
			m.InReplyTo = thread[len(thread)-1].MessageID
			m.References = strings.Join(ids, " ")
		}
	}
	if _, inserted, err := tx.InsertMessageOutOnce(ctx, m); err != nil {
		return false, err
	} else if !inserted {
		// This step already has a message (queued by an earlier pass
		// whose enrollment was then edited by hand, say): never a second.
		e.Step, e.DueAt = k, nil
		return false, tx.UpdateEnrollment(ctx, e)
	}
	e.Step, e.Variant, e.DueAt = k, name, nil
	return true, tx.UpdateEnrollment(ctx, e)
}

// notMailable says why a contact may not get mail now, or "" when it may.
func (s *Scheduler) notMailable(ctx context.Context, tx *store.Tx, rt *Runtime, c store.Contact) string {
	if c.Suppressed {
		return "the contact is suppressed"
	}
	if !rt.Pipeline.Mailable(c.Stage) {
		return "the contact is in stage " + c.Stage
	}
	if sup, err := tx.IsSuppressed(ctx, c.Email); err != nil || sup {
		return "the address is on the suppression list"
	}
	return ""
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
	e, err := tx.EnrollmentByID(ctx, m.EnrollmentID)
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

var msgIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newMessageID makes a unique Message-ID (without angle brackets) in the
// sender's domain, chosen before sending so a lost send can be found later.
func newMessageID(from string) string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	domain := from[strings.LastIndexByte(from, '@')+1:]
	return strings.ToLower(msgIDEncoding.EncodeToString(b[:])) + "@" + domain
}
