package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

const testConfig = `
accounts:
  - name: sales
    from_name: Ann Seller
    from_address: ann@example.com
    timezone: Europe/Amsterdam
    daily_limit: %d
    min_gap: %s
    max_gap: %s
    send_window: {days: mon-sun, hours: "00:00-24:00"}
    smtp: {host: 127.0.0.1, port: 2525, tls: none, insecure_plaintext: true}
unsubscribe:
  base_url: https://f.example.com
  secret: 0123456789abcdef0123
sequences:
  - name: intro
    triggers: [{on_stage: lead}]
    window: {days: mon-fri, hours: "09:00-17:00", timezone: contact, holidays: [2026-12-25]}
    steps:
      - template: one
      - template: two
        delay: 2bd
        thread: reply
    on_finish: {set_stage: prospect}
`

var testTemplates = map[string]string{
	"one.md": "---\nsubject: Hello {{ .Contact.FirstName | default \"there\" }}\n---\nHi {{ .Contact.FirstName | default \"there\" }}, shall we talk?\n",
	"two.md": "---\nsubject: ignored for a reply\n---\nJust checking: did you see my note? {{ .Contact.Company }}\n",
}

type harness struct {
	t     *testing.T
	ctx   context.Context
	st    *store.Store
	rt    *Runtime
	now   time.Time
	sched *Scheduler
	opts  store.Options
}

// setup builds a scheduler over a fresh database with a fake clock.
func setup(t *testing.T, dialect string, limit int, minGap, maxGap string) *harness {
	t.Helper()
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "templates"), 0o755)
	for name, body := range testTemplates {
		if err := os.WriteFile(filepath.Join(dir, "templates", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "followup.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(testConfig, limit, minGap, maxGap)), 0o644)
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return newHarness(t, dialect, c)
}

// newHarness builds a scheduler for c over a fresh database, with a fake
// clock at Monday 2026-11-30 10:00 in Amsterdam.
func newHarness(t *testing.T, dialect string, c *config.Config) *harness {
	t.Helper()
	rt, err := NewRuntime(c)
	if err != nil {
		t.Fatal(err)
	}
	o := storetest.Fresh(t, dialect)
	h := &harness{t: t, ctx: context.Background(), st: storetest.Open(t, o), rt: rt, opts: o}
	h.now = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	h.sched = &Scheduler{Store: h.st, Runtime: func() *Runtime { return rt }, Now: func() time.Time { return h.now }}
	return h
}

func (h *harness) contact(email, tz, company string) store.Contact {
	h.t.Helper()
	_, _, err := h.st.UpsertContact(h.ctx, store.Contact{Email: email, FirstName: "Jo", Timezone: tz, Company: company})
	if err != nil {
		h.t.Fatal(err)
	}
	c, err := h.st.ContactByEmail(h.ctx, email)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) pass() int {
	h.t.Helper()
	n, err := h.sched.RunOnce(h.ctx)
	if err != nil {
		h.t.Fatalf("scheduler pass: %v", err)
	}
	return n
}

func (h *harness) queued() []store.MessageOut {
	h.t.Helper()
	var ms []store.MessageOut
	err := h.st.InTx(h.ctx, func(tx *store.Tx) error {
		return tx.Select(h.ctx, &ms, `SELECT id, enrollment_id, step, to_addr, subject, in_reply_to, references_hdr,
			message_id, body_text, unsubscribe_url FROM messages_out WHERE status = 'queued' ORDER BY id`)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return ms
}

// send marks every queued message sent at the fake clock, as the outbox would.
func (h *harness) send() {
	h.t.Helper()
	for _, m := range h.queued() {
		err := h.st.InTx(h.ctx, func(tx *store.Tx) error {
			if _, err := tx.Exec(h.ctx, `UPDATE messages_out SET status = 'sent', sent_at = ? WHERE id = ?`, h.now, m.ID); err != nil {
				return err
			}
			return AfterSent(h.ctx, tx, h.rt, m, h.now)
		})
		if err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) enrollment(contactID int64) store.Enrollment {
	h.t.Helper()
	var es []store.Enrollment
	err := h.st.InTx(h.ctx, func(tx *store.Tx) error {
		return tx.Select(h.ctx, &es, `SELECT id, status, step, due_at FROM enrollments WHERE contact_id = ? ORDER BY id DESC`, contactID)
	})
	if err != nil || len(es) == 0 {
		h.t.Fatalf("no enrollment for contact %d: %v", contactID, err)
	}
	if es[0].DueAt != nil {
		u := es[0].DueAt.UTC()
		es[0].DueAt = &u
	}
	return es[0]
}

func TestScheduler(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		t.Run("trigger_enrolls_and_first_step_waits_for_the_contacts_window", func(t *testing.T) {
			h := setup(t, dialect, 50, "0s", "0s")
			// 10:00 in Amsterdam is 18:00 in Tokyo: the window closed for today.
			c := h.contact("kenji@example.jp", "Asia/Tokyo", "Acme")
			if n := h.pass(); n != 0 {
				t.Fatalf("queued %d messages outside the contact's window", n)
			}
			e := h.enrollment(c.ID)
			want := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) // Tuesday 09:00 Tokyo
			if e.Status != store.EnrollmentActive || e.DueAt == nil || !e.DueAt.Equal(want) {
				t.Fatalf("enrollment %+v, want active and due %s", e, want)
			}
			h.now = want
			if n := h.pass(); n != 1 {
				t.Fatalf("queued %d at the window's opening, want 1", n)
			}
			m := h.queued()[0]
			if m.ToAddr != "kenji@example.jp" || m.Subject != "Hello Jo" || !strings.Contains(m.BodyText, "shall we talk?") {
				t.Errorf("queued message %+v", m)
			}
			if !strings.HasPrefix(m.UnsubscribeURL, "https://f.example.com/u/") || !strings.HasSuffix(m.MessageID, "@example.com") {
				t.Errorf("unsubscribe URL %q, Message-ID %q", m.UnsubscribeURL, m.MessageID)
			}
			if n := h.pass(); n != 0 {
				t.Fatalf("a second pass queued %d more: a step must be queued once", n)
			}
		})

		t.Run("reply_step_threads_after_business_days", func(t *testing.T) {
			h := setup(t, dialect, 50, "0s", "0s")
			c := h.contact("eva@example.nl", "Europe/Amsterdam", "Bakery")
			// Thursday 2026-12-24 10:00 local: two business days skip the
			// weekend and the 25th → Tuesday 29th 10:00.
			h.now = time.Date(2026, 12, 24, 9, 0, 0, 0, time.UTC)
			if n := h.pass(); n != 1 {
				t.Fatalf("queued %d, want 1", n)
			}
			first := h.queued()[0]
			h.send()
			e := h.enrollment(c.ID)
			want := time.Date(2026, 12, 29, 9, 0, 0, 0, time.UTC)
			if e.Step != 1 || e.DueAt == nil || !e.DueAt.Equal(want) {
				t.Fatalf("after step 1: %+v, want step 1 due %s", e, want)
			}
			h.now = want
			if n := h.pass(); n != 1 {
				t.Fatalf("queued %d for step 2", n)
			}
			second := h.queued()[0]
			if second.Subject != "Re: "+first.Subject || second.InReplyTo != first.MessageID || second.References != "<"+first.MessageID+">" {
				t.Errorf("step 2 not threaded: %+v (first %s)", second, first.MessageID)
			}
			h.send()
			if e := h.enrollment(c.ID); e.Status != store.EnrollmentFinished {
				t.Errorf("after the last step the enrollment is %s, want finished", e.Status)
			}
			if got, _ := h.st.ContactByEmail(h.ctx, c.Email); got.Stage != "prospect" {
				t.Errorf("on_finish set_stage: stage %s", got.Stage)
			}
		})

		t.Run("daily_limit_reached_mid_batch_counts_in_the_accounts_zone", func(t *testing.T) {
			h := setup(t, dialect, 3, "0s", "0s")
			for i := range 7 {
				h.contact(fmt.Sprintf("c%d@example.nl", i), "Europe/Amsterdam", "X")
			}
			if n := h.pass(); n != 3 {
				t.Fatalf("first pass queued %d, want the daily limit 3", n)
			}
			h.now = h.now.Add(6 * time.Hour) // 16:00 Amsterdam, same day
			if n := h.pass(); n != 0 {
				t.Fatalf("queued %d more on the same day", n)
			}
			// Tuesday 09:30 Amsterdam is 08:30 UTC: a new day in the account's zone.
			h.now = time.Date(2026, 12, 1, 8, 30, 0, 0, time.UTC)
			if n := h.pass(); n != 3 {
				t.Fatalf("next day queued %d, want 3", n)
			}
		})

		t.Run("gap_between_sends", func(t *testing.T) {
			h := setup(t, dialect, 50, "2m", "6m")
			for i := range 3 {
				h.contact(fmt.Sprintf("g%d@example.nl", i), "Europe/Amsterdam", "X")
			}
			if n := h.pass(); n != 1 {
				t.Fatalf("queued %d, want one message per gap", n)
			}
			h.now = h.now.Add(time.Minute)
			if n := h.pass(); n != 0 {
				t.Fatalf("queued %d within the minimum gap", n)
			}
			h.now = h.now.Add(6 * time.Minute)
			if n := h.pass(); n != 1 {
				t.Fatalf("queued %d after the maximum gap, want 1", n)
			}
		})

		t.Run("lost_and_suppressed_contacts_are_never_scheduled", func(t *testing.T) {
			h := setup(t, dialect, 50, "0s", "0s")
			lost := h.contact("no@example.nl", "Europe/Amsterdam", "X")
			sup := h.contact("sup@example.nl", "Europe/Amsterdam", "X")
			h.pass() // enrolls and queues both
			for _, m := range h.queued() {
				h.st.InTx(h.ctx, func(tx *store.Tx) error {
					_, err := tx.Exec(h.ctx, `DELETE FROM messages_out WHERE id = ?`, m.ID)
					return err
				})
			}
			// Make both due again, then change their state.
			for _, c := range []store.Contact{lost, sup} {
				e := h.enrollment(c.ID)
				h.st.InTx(h.ctx, func(tx *store.Tx) error {
					_, err := tx.Exec(h.ctx, `UPDATE enrollments SET due_at = ?, step = 0 WHERE id = ?`, h.now, e.ID)
					return err
				})
			}
			if _, err := h.st.SetStage(h.ctx, lost.Email, "not_interested", "test"); err != nil {
				t.Fatal(err)
			}
			if err := h.st.Suppress(h.ctx, "example.nl", store.SuppressDomain, "test"); err != nil {
				t.Fatal(err)
			}
			if n := h.pass(); n != 0 {
				t.Fatalf("queued %d for a lost or suppressed contact", n)
			}
			for _, c := range []store.Contact{lost, sup} {
				if e := h.enrollment(c.ID); e.Status != store.EnrollmentStopped {
					t.Errorf("%s: enrollment %s, want stopped", c.Email, e.Status)
				}
			}
		})

		t.Run("missing_template_data_pauses_instead_of_sending_a_hole", func(t *testing.T) {
			h := setup(t, dialect, 50, "0s", "0s")
			c := h.contact("nocompany@example.nl", "Europe/Amsterdam", "")
			h.pass()
			h.send()
			e := h.enrollment(c.ID)
			h.now = *e.DueAt
			if n := h.pass(); n != 0 {
				t.Fatalf("queued %d messages with an empty {{ .Contact.Company }}", n)
			}
			if e := h.enrollment(c.ID); e.Status != store.EnrollmentPaused {
				t.Errorf("enrollment %s, want paused", e.Status)
			}
			evs, _ := h.st.Timeline(h.ctx, c.ID, 0)
			if last := evs[len(evs)-1]; last.Type != EventRenderFailed || !strings.Contains(string(last.Data), "Company") {
				t.Errorf("last event %s %s, want render_failed naming the field", last.Type, last.Data)
			}
		})

		t.Run("two_schedulers_never_queue_a_step_twice", func(t *testing.T) {
			h := setup(t, dialect, 1000, "0s", "0s")
			for i := range 60 {
				h.contact(fmt.Sprintf("r%d@example.nl", i), "Europe/Amsterdam", "X")
			}
			other := &Scheduler{Store: storetest.Open(t, h.opts), Runtime: h.sched.Runtime, Now: h.sched.Now, Batch: 7}
			h.sched.Batch = 5
			var wg sync.WaitGroup
			counts := make([]int, 2)
			for i, s := range []*Scheduler{h.sched, other} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						n, err := s.RunOnce(h.ctx)
						if err != nil {
							t.Error(err)
							return
						}
						if n == 0 {
							return
						}
						counts[i] += n
					}
				}()
			}
			wg.Wait()
			if got := len(h.queued()); got != 60 || counts[0]+counts[1] != 60 {
				t.Fatalf("queued rows %d, passes counted %v; want 60 once each", got, counts)
			}
		})
	})
}

func TestFirstStepDelayCountsFromEnrollment(t *testing.T) {
	h, ct, _ := setupExample(t, store.DialectSQLite)
	// nurture's only step waits 30 days; enrolling now must not send today.
	err := h.st.InTx(h.ctx, func(tx *store.Tx) error {
		return enrollTx(h.ctx, tx, h.rt, ct.ID, h.rt.Sequences["nurture"], h.now, "test")
	})
	if err != nil {
		t.Fatal(err)
	}
	var due []time.Time
	h.st.InTx(h.ctx, func(tx *store.Tx) error {
		return tx.Select(h.ctx, &due, `SELECT due_at FROM enrollments WHERE contact_id = ? AND sequence = 'nurture'`, ct.ID)
	})
	if len(due) != 1 || due[0].Before(h.now.Add(30*24*time.Hour-time.Hour)) {
		t.Fatalf("nurture due %v, want 30 days after %s", due, h.now)
	}
}

// sendGroup marks every queued message sent at the fake clock in one
// transaction and advances the enrollments as the outbox does when it
// records a group of sends.
func (h *harness) sendGroup() {
	h.t.Helper()
	ms := h.queued()
	err := h.st.InTx(h.ctx, func(tx *store.Tx) error {
		for i := range ms {
			if _, err := tx.Exec(h.ctx, `UPDATE messages_out SET status = 'sent', sent_at = ? WHERE id = ?`, h.now, ms[i].ID); err != nil {
				return err
			}
			now := h.now
			ms[i].SentAt = &now
		}
		return AfterSentBatch(h.ctx, tx, h.rt, ms, func() time.Time { return h.now })
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// A group of sends recorded together leaves every enrollment and contact
// as recording them one by one does: the next step due after its delay, a
// stopped enrollment left stopped, the last step finishing the sequence
// with its on_finish stage.
func TestSentGroupAdvancesLikeOneByOne(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		type state struct {
			Status, Stage string
			Step          int
			Due           string
		}
		run := func(group bool) []state {
			h := setup(t, dialect, 50, "0s", "0s")
			var cs []store.Contact
			for i, tz := range []string{"Europe/Amsterdam", "America/New_York", "Europe/Amsterdam"} {
				cs = append(cs, h.contact(fmt.Sprintf("c%d@example.org", i), tz, "Acme"))
			}
			snapshot := func() []state {
				var out []state
				for _, c := range cs {
					e := h.enrollment(c.ID)
					got, err := h.st.ContactByEmail(h.ctx, c.Email)
					if err != nil {
						t.Fatal(err)
					}
					st := state{Status: e.Status, Stage: got.Stage, Step: e.Step}
					if e.DueAt != nil {
						st.Due = e.DueAt.Format(time.RFC3339)
					}
					out = append(out, st)
				}
				return out
			}
			send := h.send
			if group {
				send = h.sendGroup
			}
			if n := h.pass(); n != 2 { // New York's window opens later
				t.Fatalf("first pass queued %d, want 2", n)
			}
			// A reply stopped the third contact's enrollment before its
			// send was recorded.
			if _, err := h.st.Unenroll(h.ctx, cs[2].Email, "", "replied"); err != nil {
				t.Fatal(err)
			}
			send()
			out := snapshot()
			h.now = h.now.Add(7 * 24 * time.Hour)
			h.pass()
			send() // the last step: on_finish sets the stage
			out = append(out, snapshot()...)
			return out
		}
		one, group := run(false), run(true)
		if fmt.Sprint(one) != fmt.Sprint(group) {
			t.Fatalf("recorded one by one: %+v\nrecorded as a group: %+v", one, group)
		}
		if one[3].Status != store.EnrollmentFinished || one[3].Stage != "prospect" || one[5].Status != store.EnrollmentStopped || one[0].Step != 1 || one[0].Due == "" {
			t.Fatalf("unexpected end state %+v", one)
		}
	})
}
