package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/followupd/followupd/sequences"
	"github.com/followupd/followupd/store"
)

// Event types written when rules act.
const (
	EventRuleApplied = "rule_applied"
	EventPaused      = "paused"
	EventSnoozed     = "snoozed"
	EventReferral    = "referral"
	EventResumed     = "resumed"
)

// Webhooker enqueues a webhook event inside a transaction; nil disables
// webhooks.
type Webhooker func(ctx context.Context, tx *store.Tx, event string, payload any) error

// Webhook events followupd emits by itself; rules can fire events of any
// other name.
const (
	WebhookStageChanged = "stage_changed"
	WebhookReplied      = "replied"
	WebhookBounced      = "bounced"
	WebhookUnsubscribed = "unsubscribed"
	WebhookSent         = "sent"
)

func notify(ctx context.Context, tx *store.Tx, hook Webhooker, event string, payload any) error {
	if hook == nil {
		return nil
	}
	return hook(ctx, tx, event, payload)
}

// Subject is what an event is about: a contact and, when known, the
// enrollment (and its account) the event belongs to.
type Subject struct {
	Contact    store.Contact
	Enrollment *store.Enrollment
	Account    string
}

// ApplyEvent evaluates the rules for an event and carries out the decision
// inside tx, writing an event for every change. It returns the decision.
func ApplyEvent(ctx context.Context, tx *store.Tx, rt *Runtime, subj Subject, ev sequences.Event, hook Webhooker) (sequences.Decision, error) {
	c := subj.Contact
	ev.Stage = c.Stage
	ev.Purchases = c.Purchases
	ev.Fields = contactFields(c)
	d := sequences.Evaluate(rt.Rules, ev)
	if len(d.Matched) == 0 {
		return d, nil
	}
	now := ev.Now
	if err := tx.AddEvent(ctx, c.ID, EventRuleApplied, map[string]any{"on": ev.On, "intent": ev.Intent, "rules": d.Matched}); err != nil {
		return d, err
	}
	if d.SetStage != "" && d.SetStage != c.Stage {
		reason := "rule: " + strings.Join(d.Matched, ", ")
		if _, err := tx.SetStage(ctx, c.Email, d.SetStage, reason); err != nil {
			return d, err
		}
		if err := notify(ctx, tx, hook, WebhookStageChanged, map[string]any{"contact": c.Email, "from": c.Stage, "to": d.SetStage, "reason": reason}); err != nil {
			return d, err
		}
		c.Stage = d.SetStage
	}
	if d.Suppress && ev.Intent == "unsubscribe" {
		if err := notify(ctx, tx, hook, WebhookUnsubscribed, map[string]any{"contact": c.Email, "source": "reply"}); err != nil {
			return d, err
		}
	}
	if d.Suppress {
		if err := tx.Suppress(ctx, c.Email, store.SuppressAddress, fmt.Sprintf("%s (%s)", ev.On, strings.Join(d.Matched, ", "))); err != nil {
			return d, err
		}
		if err := tx.MarkContactSuppressed(ctx, c.ID); err != nil {
			return d, err
		}
	}
	live, err := tx.LiveEnrollments(ctx, c.ID)
	if err != nil {
		return d, err
	}
	// "this" is the enrollment the event belongs to; when the event could
	// not be tied to one, the contact's enrollments on that mailbox.
	this := func(e store.Enrollment) bool {
		if subj.Enrollment != nil {
			return e.ID == subj.Enrollment.ID
		}
		return subj.Account == "" || e.Account == subj.Account
	}
	targets := live[:0:0]
	for _, e := range live {
		if d.Stop == sequences.StopAll || this(e) {
			targets = append(targets, e)
		}
	}
	reason := fmt.Sprintf("%s: %s", ev.On, strings.Join(d.Matched, ", "))
	switch {
	case d.Stop != "":
		for _, e := range targets {
			if err := tx.StopEnrollment(ctx, e, store.EnrollmentStopped, reason); err != nil {
				return d, err
			}
		}
	case !d.SnoozeUntil.IsZero():
		for _, e := range targets {
			until := d.SnoozeUntil
			e.Status, e.PausedUntil, e.DueAt, e.ResumeInto = store.EnrollmentSnoozed, &until, nil, d.SnoozeEnroll
			if err := pauseTx(ctx, tx, e, EventSnoozed, reason); err != nil {
				return d, err
			}
		}
	case !d.PauseUntil.IsZero():
		for _, e := range targets {
			until := d.PauseUntil
			e.Status, e.PausedUntil = store.EnrollmentPaused, &until
			if err := pauseTx(ctx, tx, e, EventPaused, reason); err != nil {
				return d, err
			}
		}
	}
	if d.Stop == "" && !d.SnoozeUntil.IsZero() && len(targets) == 0 && d.SnoozeEnroll != "" {
		// Not enrolled any more but asked to come back later: a snoozed
		// enrollment in the target sequence wakes up then.
		if seq := rt.Sequences[d.SnoozeEnroll]; seq != nil {
			until := d.SnoozeUntil
			e := store.Enrollment{ContactID: c.ID, Sequence: seq.Name, Account: sequences.ChooseAccount(seq, c.Email), Status: store.EnrollmentSnoozed, PausedUntil: &until}
			if _, err := tx.CreateEnrollment(ctx, e); err != nil && !errors.Is(err, store.ErrDuplicate) {
				return d, err
			}
			if err := tx.AddEvent(ctx, c.ID, EventSnoozed, map[string]any{"sequence": seq.Name, "until": until, "reason": reason}); err != nil {
				return d, err
			}
		}
	}
	if d.CreateLead != nil {
		if err := createLeadTx(ctx, tx, rt, c, *d.CreateLead, now); err != nil {
			return d, err
		}
	}
	for _, name := range d.Enroll {
		if seq := rt.Sequences[name]; seq != nil {
			if err := enrollTx(ctx, tx, rt, c.ID, seq, now, "rule "+strings.Join(d.Matched, ", ")); err != nil {
				return d, err
			}
		}
	}
	if d.Note != "" {
		if err := tx.AddEvent(ctx, c.ID, store.EventNote, map[string]any{"text": d.Note, "source": ev.On}); err != nil {
			return d, err
		}
	}
	if hook != nil {
		for _, w := range d.Webhooks {
			payload := map[string]any{"event": w, "contact": c.Email, "stage": c.Stage, "on": ev.On, "intent": ev.Intent, "rules": d.Matched, "at": now}
			if err := hook(ctx, tx, w, payload); err != nil {
				return d, err
			}
		}
	}
	return d, nil
}

func pauseTx(ctx context.Context, tx *store.Tx, e store.Enrollment, typ, reason string) error {
	if err := tx.UpdateEnrollment(ctx, e); err != nil {
		return err
	}
	// A queued message of a paused enrollment is cancelled when the
	// outbox claims it; the step is queued again after waking.
	return tx.AddEvent(ctx, e.ContactID, typ, map[string]any{"sequence": e.Sequence, "until": e.PausedUntil, "reason": reason, "resume_into": e.ResumeInto})
}

// createLeadTx adds the referred person as a new contact (kept as it is
// when it exists) and links both timelines.
func createLeadTx(ctx context.Context, tx *store.Tx, rt *Runtime, from store.Contact, l sequences.Lead, now time.Time) error {
	if l.Email == "" || strings.EqualFold(l.Email, from.Email) {
		return nil
	}
	existing, err := tx.ContactByEmail(ctx, l.Email)
	created := false
	if errors.Is(err, store.ErrNotFound) {
		stage := l.Stage
		if stage == "" {
			stage = rt.Pipeline.Default()
		}
		nc := store.Contact{Email: l.Email, Company: from.Company, Stage: stage, CustomFields: store.Fields{"referred_by": from.Email}}
		if _, _, err := tx.UpsertContact(ctx, nc); err != nil {
			return err
		}
		if existing, err = tx.ContactByEmail(ctx, l.Email); err != nil {
			return err
		}
		created = true
	} else if err != nil {
		return err
	}
	if err := tx.AddEvent(ctx, from.ID, EventReferral, map[string]any{"to": existing.Email, "created": created}); err != nil {
		return err
	}
	if err := tx.AddEvent(ctx, existing.ID, EventReferral, map[string]any{"from": from.Email}); err != nil {
		return err
	}
	if seq := rt.Sequences[l.Enroll]; seq != nil {
		return enrollTx(ctx, tx, rt, existing.ID, seq, now, "referral from "+from.Email)
	}
	return nil
}

// wake resumes paused enrollments and turns snoozed ones into their next
// sequence once their time has come.
func (s *Scheduler) wake(ctx context.Context, rt *Runtime) error {
	for {
		n := 0
		err := s.Store.InTx(ctx, func(tx *store.Tx) error {
			now := s.now()
			es, err := tx.WakeEnrollments(ctx, now, 200)
			if err != nil {
				return err
			}
			n = len(es)
			for _, e := range es {
				if e.Status == store.EnrollmentSnoozed && e.ResumeInto != "" && e.ResumeInto != e.Sequence {
					if err := tx.StopEnrollment(ctx, e, store.EnrollmentFinished, "snooze ended"); err != nil {
						return err
					}
					if seq := rt.Sequences[e.ResumeInto]; seq != nil {
						if err := enrollTx(ctx, tx, rt, e.ContactID, seq, now, "snooze ended"); err != nil {
							return err
						}
					}
					continue
				}
				// Keep a later due time (a delay still running); an earlier
				// or missing one (a step cancelled while paused) is due now.
				if e.DueAt == nil || e.DueAt.Before(now) {
					due := now
					e.DueAt = &due
				}
				e.Status, e.PausedUntil, e.ResumeInto = store.EnrollmentActive, nil, ""
				if err := tx.UpdateEnrollment(ctx, e); err != nil {
					return err
				}
				if err := tx.AddEvent(ctx, e.ContactID, EventResumed, map[string]any{"sequence": e.Sequence}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || n < 200 {
			return err
		}
	}
}

// RecordPurchase records a purchase and applies the purchase rules (first
// purchase → customer, second → repeat customer in the example) in one
// transaction. It returns the contact's purchase count.
func RecordPurchase(ctx context.Context, st *store.Store, rt *Runtime, email, amount, note string, now time.Time, hook Webhooker) (int, sequences.Decision, error) {
	var n int
	var d sequences.Decision
	err := st.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if n, err = tx.RecordPurchase(ctx, email, amount, note); err != nil {
			return err
		}
		c, err := tx.ContactByEmail(ctx, email)
		if err != nil {
			return err
		}
		d, err = ApplyEvent(ctx, tx, rt, Subject{Contact: c}, sequences.Event{On: sequences.EventPurchase, Now: now}, hook)
		return err
	})
	return n, d, err
}
