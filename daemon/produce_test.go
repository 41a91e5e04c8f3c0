package daemon

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/followupd/followupd/outbox"
	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

// withPullingOutbox is withOutbox wired as the daemon wires it: the outbox
// takes due steps from the scheduler (Produce), and a scheduler pass only
// wakes it. woken counts the wake-ups.
func (h *harness) withPullingOutbox(t *testing.T) (svc *outbox.Service, sink *smtptest.Server, woken *atomic.Int32) {
	t.Helper()
	svc, sink = h.outboxProducing(t, h.sched.Produce)
	woken = &atomic.Int32{}
	h.sched.Enqueued = func() { woken.Add(1) }
	h.sched.Pulls = svc.Serves
	return svc, sink, woken
}

// statuses counts the outbound rows by status.
func (h *harness) statuses() map[string]int {
	h.t.Helper()
	var rows []struct {
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	err := h.st.InTx(h.ctx, func(tx *store.Tx) error {
		return tx.Select(h.ctx, &rows, `SELECT status, COUNT(*) AS n FROM messages_out GROUP BY status`)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out
}

func TestProduce(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		t.Run("due_steps_go_out_straight_from_the_scheduler", func(t *testing.T) {
			h := setup(t, dialect, 50, "0s", "0s")
			svc, sink, woken := h.withPullingOutbox(t)
			for i := range 3 {
				h.contact(fmt.Sprintf("c%d@example.nl", i), "Europe/Amsterdam", "X")
			}
			// The pass enrolls (on_stage lead) and, the steps being due,
			// wakes the outbox instead of queueing them.
			if n := h.pass(); n != 0 {
				t.Fatalf("a pass queued %d messages for an account whose outbox pulls", n)
			}
			if woken.Load() == 0 {
				t.Fatal("the pass did not wake the outbox although steps were due")
			}
			if got := h.statuses(); len(got) != 0 {
				t.Fatalf("rows after the pass: %v, want none", got)
			}
			if n, err := svc.RunOnce(h.ctx, "sales"); err != nil || n != 3 {
				t.Fatalf("outbox sent %d: %v, want the 3 due steps", n, err)
			}
			if len(sink.Messages()) != 3 {
				t.Fatalf("sink got %d messages, want 3", len(sink.Messages()))
			}
			if got := h.statuses(); got[store.MessageSent] != 3 || len(got) != 1 {
				t.Fatalf("rows %v, want 3 sent", got)
			}
			var attempts []int
			h.st.InTx(h.ctx, func(tx *store.Tx) error {
				return tx.Select(h.ctx, &attempts, `SELECT attempts FROM messages_out ORDER BY id`)
			})
			for _, a := range attempts {
				if a != 1 {
					t.Errorf("attempts %v, want 1 each", attempts)
					break
				}
			}
			ct, _ := h.st.ContactByEmail(h.ctx, "c0@example.nl")
			if e := h.enrollment(ct.ID); e.Step != 1 || e.DueAt == nil || !e.DueAt.After(h.now) {
				t.Errorf("after the send: %+v, want step 2 scheduled", e)
			}
			if n, err := svc.RunOnce(h.ctx, "sales"); err != nil || n != 0 {
				t.Fatalf("a second run sent %d: %v; a step goes out once", n, err)
			}
		})

		t.Run("daily_limit_holds", func(t *testing.T) {
			h := setup(t, dialect, 2, "0s", "0s")
			svc, sink, _ := h.withPullingOutbox(t)
			for i := range 5 {
				h.contact(fmt.Sprintf("c%d@example.nl", i), "Europe/Amsterdam", "X")
			}
			h.pass()
			for range 2 {
				if _, err := svc.RunOnce(h.ctx, "sales"); err != nil {
					t.Fatal(err)
				}
			}
			if got := len(sink.Messages()); got != 2 {
				t.Fatalf("sink got %d messages, want the daily limit 2", got)
			}
		})

		t.Run("TestGuarantee2_ContactStoppedBeforeProduceIsNotMailed", func(t *testing.T) {
			h := setup(t, dialect, 50, "0s", "0s")
			svc, sink, _ := h.withPullingOutbox(t)
			a := h.contact("a@blocked.test", "Europe/Amsterdam", "X")
			b := h.contact("b@example.nl", "Europe/Amsterdam", "X")
			c := h.contact("c@example.nl", "Europe/Amsterdam", "X")
			h.pass()
			// After enrolment, without touching the enrollments: a domain
			// suppressed, a contact said no, a contact flagged suppressed.
			if err := h.st.Suppress(h.ctx, "blocked.test", store.SuppressDomain, "competitor"); err != nil {
				t.Fatal(err)
			}
			err := h.st.InTx(h.ctx, func(tx *store.Tx) error {
				if _, err := tx.Exec(h.ctx, `UPDATE contacts SET stage = 'not_interested' WHERE id = ?`, b.ID); err != nil {
					return err
				}
				_, err := tx.Exec(h.ctx, `UPDATE contacts SET suppressed = ? WHERE id = ?`, true, c.ID)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if n, err := svc.RunOnce(h.ctx, "sales"); err != nil || n != 0 {
				t.Fatalf("outbox sent %d: %v", n, err)
			}
			if len(sink.Messages()) != 0 {
				t.Fatalf("the sink received %d messages for contacts that may not be mailed", len(sink.Messages()))
			}
			for _, ct := range []store.Contact{a, b, c} {
				if e := h.enrollment(ct.ID); e.Status != store.EnrollmentStopped {
					t.Errorf("%s: enrollment %s, want stopped", ct.Email, e.Status)
				}
			}
		})

		t.Run("TestGuarantee2_ReplyCommittingDuringProduceWins", func(t *testing.T) {
			if dialect != store.DialectPostgres {
				t.Skip("SQLite has one writer, so a reply and a claim cannot overlap: skipped (the Postgres subtest covers it)")
			}
			h := setup(t, dialect, 50, "0s", "0s")
			svc, sink, _ := h.withPullingOutbox(t)
			ct := h.contact("ann@example.nl", "Europe/Amsterdam", "X")
			h.pass()
			// Another replica's ingest holds the contact's row, about to
			// commit an unsubscribe; it does not touch the enrollment.
			other := storetest.Open(t, h.opts)
			locked, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
			go func() {
				done <- other.InTx(h.ctx, func(tx *store.Tx) error {
					if _, err := tx.Exec(h.ctx, `UPDATE contacts SET suppressed = ?, stage = 'unsubscribed' WHERE id = ?`, true, ct.ID); err != nil {
						return err
					}
					close(locked)
					<-release
					return nil
				})
			}()
			var once sync.Once
			unlock := func() { once.Do(func() { close(release) }) }
			t.Cleanup(unlock)
			<-locked
			sent := make(chan int, 1)
			go func() {
				n, err := svc.RunOnce(h.ctx, "sales")
				if err != nil {
					t.Error(err)
				}
				sent <- n
			}()
			waitFor(t, "the outbox's claim to wait for the contact's lock", func() bool {
				if len(sent) > 0 {
					unlock()
					t.Fatalf("the outbox finished (sent %d) while another transaction held the contact's row", <-sent)
				}
				var waiting int
				h.st.InTx(h.ctx, func(tx *store.Tx) error {
					return tx.Get(h.ctx, &waiting, `SELECT COUNT(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'`)
				})
				return waiting > 0
			})
			unlock()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if n := <-sent; n != 0 || len(sink.Messages()) != 0 {
				t.Fatalf("sent %d (sink %d) to a contact whose unsubscribe committed first", n, len(sink.Messages()))
			}
			if got := h.statuses(); got[store.MessageSending] != 0 || got[store.MessageSent] != 0 {
				t.Fatalf("rows %v: nothing may be sending or sent", got)
			}
		})
	})
}
