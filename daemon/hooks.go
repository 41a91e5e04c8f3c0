package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/followupd/followupd/outbox"
	"github.com/followupd/followupd/sequences"
	"github.com/followupd/followupd/store"
)

// OutboxHooks connect the outbox to the sequences: a sent step schedules
// the next one; a hard bounce at SMTP time runs the bounce rules like a
// bounce found in the inbox; any other permanent failure stops the
// enrollment, so a broken address is not retried step after step.
func OutboxHooks(ctx context.Context, rt func() *Runtime, now func() time.Time, hook Webhooker) outbox.Hooks {
	return outbox.Hooks{
		Sent: func(tx *store.Tx, m store.MessageOut) error {
			sentAt := now()
			if m.SentAt != nil {
				sentAt = *m.SentAt
			}
			if err := notify(ctx, tx, hook, WebhookSent, map[string]any{"contact": m.ToAddr, "sequence": m.Sequence, "step": m.Step + 1, "message_id": m.MessageID, "subject": m.Subject}); err != nil {
				return err
			}
			return AfterSent(ctx, tx, rt(), m, sentAt)
		},
		SentBatch: func(tx *store.Tx, ms []store.MessageOut) error {
			for _, m := range ms {
				if err := notify(ctx, tx, hook, WebhookSent, map[string]any{"contact": m.ToAddr, "sequence": m.Sequence, "step": m.Step + 1, "message_id": m.MessageID, "subject": m.Subject}); err != nil {
					return err
				}
			}
			return AfterSentBatch(ctx, tx, rt(), ms, now)
		},
		Failed: func(tx *store.Tx, m store.MessageOut, hardBounce bool) error {
			e, err := tx.EnrollmentByID(ctx, m.EnrollmentID)
			if err != nil {
				return err
			}
			c, err := tx.ContactByID(ctx, m.ContactID)
			if err != nil {
				return err
			}
			if hardBounce {
				ev := sequences.Event{On: sequences.EventBounce, BounceClass: "hard", Now: now()}
				if _, err := ApplyEvent(ctx, tx, rt(), Subject{Contact: c, Enrollment: &e, Account: m.Account}, ev, hook); err != nil {
					return err
				}
				if e, err = tx.EnrollmentByID(ctx, m.EnrollmentID); err != nil {
					return err
				}
			}
			if e.Status == store.EnrollmentActive || e.Status == store.EnrollmentPaused || e.Status == store.EnrollmentSnoozed {
				return tx.StopEnrollment(ctx, e, store.EnrollmentStopped, fmt.Sprintf("step %d could not be delivered: %s", m.Step+1, m.LastError))
			}
			return nil
		},
	}
}
