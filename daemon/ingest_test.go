package daemon

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

// setupExample is a harness over the example configuration, whose rules
// implement the sales process, with one contact already mailed step 1.
func setupExample(t *testing.T, dialect string) (*harness, store.Contact, store.MessageOut) {
	t.Helper()
	h, ct, m := setupExampleNoSend(t, dialect)
	h.send()
	return h, ct, m
}

// setupExampleNoSend leaves step 1 queued.
func setupExampleNoSend(t *testing.T, dialect string) (*harness, store.Contact, store.MessageOut) {
	t.Helper()
	c, err := config.Load("../examples/followup.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := NewRuntime(c)
	if err != nil {
		t.Fatal(err)
	}
	o := storetest.Fresh(t, dialect)
	h := &harness{t: t, ctx: context.Background(), st: storetest.Open(t, o), rt: rt, opts: o}
	h.now = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC) // Monday 10:00 in Amsterdam
	h.sched = &Scheduler{Store: h.st, Runtime: func() *Runtime { return rt }, Now: func() time.Time { return h.now }}
	ct := h.contact("jan@bakkerij.nl", "Europe/Amsterdam", "Bakkerij")
	if n := h.pass(); n != 1 {
		t.Fatalf("queued %d, want step 1 for the lead", n)
	}
	return h, ct, h.queued()[0]
}

func (h *harness) ingest(raw string) Ingested {
	h.t.Helper()
	in := &Ingestor{Runtime: h.sched.Runtime, Now: func() time.Time { return h.now }}
	var out Ingested
	uid := uint32(len(raw)) // distinct per message in these tests
	err := h.st.InTx(h.ctx, func(tx *store.Tx) (err error) {
		out, err = in.Ingest(h.ctx, tx, Inbound{Account: "sales", Mailbox: "INBOX", UIDValidity: 1, UID: uid, Raw: []byte(raw), Received: h.now})
		return err
	})
	if err != nil {
		h.t.Fatalf("ingest: %v", err)
	}
	return out
}

func reply(m store.MessageOut, from, subject, body string, extra ...string) string {
	return strings.Join(append([]string{
		"From: Jan <" + from + ">",
		"To: Ann Seller <ann@example.com>",
		"Subject: " + subject,
		"Date: Mon, 30 Nov 2026 11:00:00 +0100",
		"Message-ID: <" + fmt.Sprint(time.Now().UnixNano()) + "@bakkerij.nl>",
		"In-Reply-To: <" + m.MessageID + ">",
		"References: <" + m.MessageID + ">",
	}, extra...), "\r\n") + "\r\n\r\n" + body + "\r\n\r\nOn Mon, 30 Nov 2026 at 10:00, Ann Seller <ann@example.com> wrote:\r\n> Would a 15-minute call next week be useful? Not interested? Unsubscribe here.\r\n"
}

func (h *harness) stageOf(email string) string {
	c, err := h.st.ContactByEmail(h.ctx, email)
	if err != nil {
		h.t.Fatal(err)
	}
	return c.Stage
}

func TestReplyRules(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		t.Run("interested_reply_makes_a_prospect_and_stops", func(t *testing.T) {
			h, ct, m := setupExample(t, dialect)
			out := h.ingest(reply(m, ct.Email, "Re: "+m.Subject, "Yes, let's talk. Can we schedule a call on Thursday?"))
			if out.Result.Intent != "interested" || out.Contact == nil {
				t.Fatalf("classified %s/%s, matched %v", out.Result.Kind, out.Result.Intent, out.Contact != nil)
			}
			if s := h.stageOf(ct.Email); s != "prospect" {
				t.Errorf("stage %s, want prospect", s)
			}
			if e := h.enrollment(ct.ID); e.Status != store.EnrollmentStopped {
				t.Errorf("enrollment %s, want stopped", e.Status)
			}
			h.now = h.now.Add(10 * 24 * time.Hour)
			if n := h.pass(); n != 0 {
				t.Errorf("queued %d after the contact replied", n)
			}
			evs, _ := h.st.Timeline(h.ctx, ct.ID, 0)
			var types []string
			for _, e := range evs {
				types = append(types, e.Type)
			}
			if got := strings.Join(types, ","); !strings.Contains(got, "replied,rule_applied,stage_changed") || !strings.Contains(got, "note") {
				t.Errorf("timeline %s", got)
			}
		})

		t.Run("not_now_snoozes_until_the_named_month_then_nurtures", func(t *testing.T) {
			h, ct, m := setupExample(t, dialect)
			out := h.ingest(reply(m, ct.Email, "Re: "+m.Subject, "Not right now, we are busy until the new year. Please reach out again in March."))
			if out.Result.Intent != "not_now" {
				t.Fatalf("intent %s", out.Result.Intent)
			}
			e := h.enrollment(ct.ID)
			if e.Status != store.EnrollmentSnoozed {
				t.Fatalf("enrollment %s, want snoozed", e.Status)
			}
			h.now = time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)
			h.pass()
			var seqs []string
			h.st.InTx(h.ctx, func(tx *store.Tx) error {
				return tx.Select(h.ctx, &seqs, `SELECT sequence FROM enrollments WHERE contact_id = ? AND status = 'active'`, ct.ID)
			})
			if len(seqs) != 1 || seqs[0] != "nurture" {
				t.Errorf("after the snooze, active enrollments %v, want [nurture]", seqs)
			}
		})

		t.Run("out_of_office_pauses_until_back", func(t *testing.T) {
			h, ct, m := setupExample(t, dialect)
			raw := reply(m, ct.Email, "Automatic reply: "+m.Subject, "I am out of the office until Friday 4 December 2026 with limited access to email.", "Auto-Submitted: auto-replied")
			out := h.ingest(raw)
			if out.Result.Kind != "autoreply" {
				t.Fatalf("kind %s", out.Result.Kind)
			}
			e := h.enrollment(ct.ID)
			if e.Status != store.EnrollmentPaused || h.stageOf(ct.Email) != "lead" {
				t.Fatalf("enrollment %s, stage %s: want paused lead", e.Status, h.stageOf(ct.Email))
			}
		})

		t.Run("referral_creates_a_lead", func(t *testing.T) {
			h, ct, m := setupExample(t, dialect)
			out := h.ingest(reply(m, ct.Email, "Re: "+m.Subject, "I don't handle this. Please talk to my colleague Piet at piet@bakkerij.nl, he does purchasing."))
			if out.Result.Intent != "referral" {
				t.Fatalf("intent %s referral %q", out.Result.Intent, out.Result.Referral)
			}
			piet, err := h.st.ContactByEmail(h.ctx, "piet@bakkerij.nl")
			if err != nil || piet.Stage != "lead" || piet.CustomFields["referred_by"] != ct.Email {
				t.Fatalf("referred contact %+v, %v", piet, err)
			}
		})

		t.Run("unsubscribe_reply_suppresses", func(t *testing.T) {
			h, ct, m := setupExample(t, dialect)
			h.ingest(reply(m, ct.Email, "Re: "+m.Subject, "Please unsubscribe me and stop emailing me."))
			c, _ := h.st.ContactByEmail(h.ctx, ct.Email)
			if c.Stage != "unsubscribed" || !c.Suppressed {
				t.Fatalf("contact %s suppressed=%v, want unsubscribed and suppressed", c.Stage, c.Suppressed)
			}
		})

		t.Run("a_configured_phrase_decides", func(t *testing.T) {
			// examples/followup.yaml adds "put ~ down for" to interested.
			h, ct, m := setupExample(t, dialect)
			out := h.ingest(reply(m, ct.Email, "Re: "+m.Subject, "Put us down for two crates a week."))
			if out.Result.Intent != "interested" {
				t.Fatalf("intent %s, want interested from replies.phrases", out.Result.Intent)
			}
			if s := h.stageOf(ct.Email); s != "prospect" {
				t.Errorf("stage %s, want prospect", s)
			}
		})

		t.Run("a_quoted_no_does_not_decide", func(t *testing.T) {
			h, ct, m := setupExample(t, dialect)
			out := h.ingest(reply(m, ct.Email, "Re: "+m.Subject, "Thanks for the note, let me think about it."))
			if out.Result.Intent == "not_interested" || out.Result.Intent == "unsubscribe" {
				t.Fatalf("the quoted 'Not interested? Unsubscribe' decided the intent: %s", out.Result.Intent)
			}
			if c, _ := h.st.ContactByEmail(h.ctx, ct.Email); c.Suppressed {
				t.Fatal("suppressed by a word in the quoted part")
			}
		})

		t.Run("same_message_twice_is_recorded_once", func(t *testing.T) {
			h, ct, m := setupExample(t, dialect)
			raw := reply(m, ct.Email, "Re: "+m.Subject, "Yes, let's talk.")
			h.ingest(raw)
			if out := h.ingest(raw); !out.Duplicate {
				t.Fatal("the same mailbox UID was processed twice")
			}
		})
	})
}
