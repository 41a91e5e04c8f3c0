package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/inbox"
	"github.com/followupd/followupd/inbox/imaptest"
	"github.com/followupd/followupd/internal/testlog"
	"github.com/followupd/followupd/replies"
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
	return leadQueued(t, dialect, c)
}

// leadQueued is a harness over c with one lead whose step 1 is queued.
func leadQueued(t *testing.T, dialect string, c *config.Config) (*harness, store.Contact, store.MessageOut) {
	t.Helper()
	h := newHarness(t, dialect, c)
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

// setupExampleEdited is setupExample over a copy of the example
// configuration changed by edit.
func setupExampleEdited(t *testing.T, dialect string, edit func(yaml string) string) (*harness, store.Contact, store.MessageOut) {
	t.Helper()
	raw, err := os.ReadFile("../examples/followup.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tdir, err := filepath.Abs("../examples/templates")
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(string(raw), "\ntemplates: templates\n", "\ntemplates: "+tdir+"\n", 1)
	path := filepath.Join(t.TempDir(), "followup.yaml")
	if err := os.WriteFile(path, []byte(edit(yaml)), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	h, ct, m := leadQueued(t, dialect, c)
	h.send()
	return h, ct, m
}

// referralEnrolls makes the referral rule enroll the new lead at once, so
// that the lead's own reply matches as soon as the referral is handled.
func referralEnrolls(yaml string) string {
	return strings.Replace(yaml, "      create_lead:\n        stage: lead\n", "      create_lead:\n        stage: lead\n        enroll: intro\n", 1)
}

// watched is what a watcher over the example harness made of a mailbox:
// the callbacks it saw, besides what it left in the database.
type watched struct {
	hooks    []string // webhook events with their payloads
	ingested []string // OnIngested calls
	log      testlog.Buffer
}

// watch reads srv's INBOX into h's database with RunOnce passes until
// every message is committed, as the daemon wires the watcher (batch) or
// with Ingest alone, one message per FETCH. wrap, when given, wraps the
// batch handler.
func (h *harness) watch(srv *imaptest.Server, batch bool, wrap ...func(inbox.BatchHandler) inbox.BatchHandler) *watched {
	h.t.Helper()
	out := &watched{}
	in := &Ingestor{
		Runtime: h.sched.Runtime, Now: func() time.Time { return h.now },
		Webhook: func(ctx context.Context, tx *store.Tx, event string, payload any) error {
			b, _ := json.Marshal(payload)
			out.hooks = append(out.hooks, event+" "+string(b))
			return nil
		},
		OnIngested: func(res replies.Result, matched bool) {
			out.ingested = append(out.ingested, fmt.Sprintf("%s/%s/%v", res.Kind, res.Intent, matched))
		},
	}
	o := inbox.Options{
		Store: h.st, Account: config.Account{Name: "sales", FromAddress: "ann@example.com", IMAP: srv.IMAP()},
		Handler: func(ctx context.Context, tx *store.Tx, m inbox.Message) error {
			_, err := in.Ingest(ctx, tx, InboundOf(m))
			return err
		},
		Prepare:     in.Prepare,
		MaxFailures: 2, BackoffMin: time.Millisecond, BackoffMax: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&out.log, nil)),
	}
	if batch {
		o.Batch = in.Batch(nil)
		for _, w := range wrap {
			o.Batch = w(o.Batch)
		}
	} else {
		o.BatchSize = 1
	}
	w, err := inbox.New(o)
	if err != nil {
		h.t.Fatal(err)
	}
	defer w.Stop()
	uids := srv.UIDs("INBOX")
	for range 20 {
		if _, err := w.RunOnce(h.ctx); err != nil && !strings.Contains(err.Error(), "boom") {
			h.t.Fatalf("RunOnce: %v", err)
		}
		cp, err := h.st.Checkpoint(h.ctx, "sales", "INBOX")
		if err == nil && cp.LastUID == uids[len(uids)-1] {
			return out
		}
	}
	h.t.Fatalf("the watcher never reached UID %d", uids[len(uids)-1])
	return nil
}

// dump is the state a reply can change, without ids and clock times, in
// an order both paths share.
func (h *harness) dump() []string {
	h.t.Helper()
	var out []string
	q := func(prefix, query string) {
		var rows []string
		err := h.st.InTx(h.ctx, func(tx *store.Tx) error {
			return tx.Select(h.ctx, &rows, query)
		})
		if err != nil {
			h.t.Fatalf("%s: %v", query, err)
		}
		for _, r := range rows {
			out = append(out, prefix+r)
		}
	}
	q("in ", `SELECT m.uid || ' ' || m.message_id || ' ' || m.from_addr || ' ' || m.subject || ' ' || m.kind || ' ' || m.intent || ' ' ||
		m.bounce_class || ' ' || m.excerpt || ' ' || COALESCE(c.email, '-') || ' ' || COALESCE(o.message_id, '-')
		FROM messages_in m LEFT JOIN contacts c ON c.id = m.contact_id LEFT JOIN messages_out o ON o.id = m.message_out_id
		ORDER BY m.uid`)
	q("contact ", `SELECT email || ' ' || stage || ' ' || CAST(suppressed AS TEXT) || ' ' || CAST(custom_fields AS TEXT) || ' ' || company
		FROM contacts ORDER BY email`)
	q("enrollment ", `SELECT c.email || ' ' || e.sequence || ' ' || e.account || ' ' || e.status || ' ' || CAST(e.step AS TEXT)
		FROM enrollments e JOIN contacts c ON c.id = e.contact_id ORDER BY c.email, e.sequence, e.id`)
	q("event ", `SELECT c.email || ' ' || e.type || ' ' || CAST(e.data AS TEXT)
		FROM events e JOIN contacts c ON c.id = e.contact_id ORDER BY c.email, e.id`)
	q("out ", `SELECT c.email || ' ' || CAST(o.step AS TEXT) || ' ' || o.status
		FROM messages_out o JOIN contacts c ON c.id = o.contact_id ORDER BY c.email, o.step, o.id`)
	q("suppressed ", `SELECT value FROM suppressions ORDER BY value`)
	return out
}

// A fetched batch recorded set-based ends exactly as the same mail taken
// one message at a time: strangers, a duplicate Message-ID, replies that
// match, a bounce, and a referral whose new lead writes before and after
// the referral in the same batch.
func TestBatchIngestMatchesOneByOne(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		srv := imaptest.Start(t)
		var m store.MessageOut
		deliver := func(m store.MessageOut) {
			plain := func(from, id, subject, body string, extra ...string) string {
				hdr := []string{"From: <" + from + ">", "To: Ann Seller <ann@example.com>", "Subject: " + subject,
					"Date: Mon, 30 Nov 2026 11:00:00 +0100"}
				if id != "" {
					hdr = append(hdr, "Message-ID: <"+id+">")
				}
				return strings.Join(append(hdr, extra...), "\r\n") + "\r\n\r\n" + body + "\r\n"
			}
			bounce := func(to string) string {
				return "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\nTo: ann@example.com\r\n" +
					"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce-" + to + ">\r\n" +
					"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n" +
					"--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n" +
					"--b\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; " + to +
					"\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n"
			}
			stranger := plain("someone@elsewhere.example", "s1@elsewhere.example", "Re: a question", "Thanks, could you send details?",
				"In-Reply-To: <unknown@example.com>")
			for _, raw := range []string{
				stranger,
				plain("piet@bakkerij.nl", "p1@bakkerij.nl", "Hello", "Are you the bakery people? Let's talk."),
				reply(m, "jan@bakkerij.nl", "Re: "+m.Subject, "I don't handle this. Please talk to my colleague Piet at piet@bakkerij.nl, he does purchasing."),
				stranger, // the same Message-ID again
				plain("karel@bakkerij.nl", "k1@bakkerij.nl", "Re: hello", "Yes, let's talk. Can we schedule a call on Thursday?"),
				plain("piet@bakkerij.nl", "p2@bakkerij.nl", "Re: Hello", "Yes, let's talk. Can we schedule a call on Thursday?"),
				bounce("karel@bakkerij.nl"),
				bounce("nobody@elsewhere.example"),
				plain("other@elsewhere.example", "", "No Message-ID", "Interested, call me."),
				plain("someone@elsewhere.example", "s2@elsewhere.example", "Unsubscribe", "Please unsubscribe me.", "In-Reply-To: <"+m.MessageID+"x>"),
			} {
				srv.Deliver("INBOX", []byte(raw))
			}
		}
		var dumps [2][]string
		var seen [2]*watched
		for i, batch := range []bool{false, true} {
			h, _, sent := setupExampleEdited(t, dialect, referralEnrolls)
			// karel is a contact without an enrollment.
			h.contact("karel@bakkerij.nl", "Europe/Amsterdam", "Bakkerij")
			if i == 0 {
				m = sent
				deliver(m)
			} else if sent.MessageID != m.MessageID {
				// Both databases must hold the message the replies answer.
				if err := h.st.InTx(h.ctx, func(tx *store.Tx) error {
					_, err := tx.Exec(h.ctx, `UPDATE messages_out SET message_id = ? WHERE id = ?`, m.MessageID, sent.ID)
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
			seen[i] = h.watch(srv, batch)
			dumps[i] = h.dump()
		}
		if diff := cmpLines(dumps[0], dumps[1]); diff != "" {
			t.Errorf("one by one (-) and batched (+) differ:\n%s", diff)
		}
		if diff := cmpLines(seen[0].hooks, seen[1].hooks); diff != "" {
			t.Errorf("webhooks one by one (-) and batched (+) differ:\n%s", diff)
		}
		if diff := cmpLines(seen[0].ingested, seen[1].ingested); diff != "" {
			t.Errorf("OnIngested one by one (-) and batched (+) differ:\n%s", diff)
		}
		// What the scenario is about, beyond both paths agreeing.
		all := strings.Join(dumps[1], "\n")
		for _, want := range []string{
			"contact piet@bakkerij.nl prospect",
			"contact karel@bakkerij.nl bounced",
			"event piet@bakkerij.nl replied",
		} {
			if !strings.Contains(all, want) {
				t.Errorf("batched state lacks %q:\n%s", want, all)
			}
		}
		var ins int
		for _, l := range dumps[1] {
			if strings.HasPrefix(l, "in ") {
				ins++
			}
		}
		if n := len(srv.UIDs("INBOX")); ins != n-1 {
			t.Errorf("%d messages_in rows for %d messages, one a duplicate:\n%s", ins, n, all)
		}
		for _, l := range dumps[1] {
			if strings.HasPrefix(l, "in ") && strings.Contains(l, "p1@bakkerij.nl") && !strings.HasSuffix(l, " - -") {
				t.Errorf("piet's first message, before the referral, matched: %s", l)
			}
		}
	})
}

// cmpLines describes how b differs from a, line by line; "" when equal.
func cmpLines(a, b []string) string {
	var d []string
	for i := 0; i < max(len(a), len(b)); i++ {
		switch {
		case i >= len(a):
			d = append(d, "+ "+b[i])
		case i >= len(b):
			d = append(d, "- "+a[i])
		case a[i] != b[i]:
			d = append(d, "- "+a[i], "+ "+b[i])
		}
	}
	return strings.Join(d, "\n")
}

// refuse makes the database refuse messages_in rows (but the watcher's own
// error rows) whose subject says boom: a message the bulk insert and its
// handler both fail on.
func (h *harness) refuse() {
	h.t.Helper()
	stmts := []string{`CREATE TRIGGER boom BEFORE INSERT ON messages_in
		WHEN NEW.kind <> 'error' AND NEW.subject LIKE '%boom%'
		BEGIN SELECT RAISE(ABORT, 'boom refused'); END`}
	if h.st.Dialect() == store.DialectPostgres {
		stmts = []string{`CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF NEW.kind <> 'error' AND NEW.subject LIKE '%boom%' THEN RAISE EXCEPTION 'boom refused'; END IF;
				RETURN NEW;
			END $$`,
			`CREATE TRIGGER boom BEFORE INSERT ON messages_in FOR EACH ROW EXECUTE FUNCTION boom()`}
	}
	err := h.st.InTx(h.ctx, func(tx *store.Tx) error {
		for _, q := range stmts {
			if _, err := tx.Exec(h.ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// A message the database refuses breaks the bulk insert of its batch: the
// batch is done again one message at a time, the refused message is retried
// and in the end recorded as an error, and everything else, before and
// after it, ends exactly as one by one, with the checkpoint at the last UID.
func TestBatchIngestFailureLosesNothing(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		srv := imaptest.Start(t)
		var m store.MessageOut
		var dumps [2][]string
		for i, batch := range []bool{false, true} {
			h, _, sent := setupExample(t, dialect)
			if i == 0 {
				m = sent
				stranger := func(n int, subject string) string {
					return fmt.Sprintf("From: <s%d@elsewhere.example>\r\nSubject: %s\r\nMessage-ID: <s%d@elsewhere.example>\r\n"+
						"In-Reply-To: <unknown@example.com>\r\n\r\nThanks, could you send details?\r\n", n, subject, n)
				}
				for _, raw := range []string{
					stranger(1, "Re: a question"),
					stranger(2, "Re: boom"), // refused, matches nobody
					stranger(3, "Re: a question"),
					reply(m, "jan@bakkerij.nl", "Re: boom", "Yes, let's talk. Can we schedule a call on Thursday?"), // refused, matches jan
					stranger(4, "Re: a question"),
					reply(m, "jan@bakkerij.nl", "Re: "+m.Subject, "Yes, let's talk. Can we schedule a call on Thursday?"),
					stranger(5, "Re: a question"),
				} {
					srv.Deliver("INBOX", []byte(raw))
				}
			} else if err := h.st.InTx(h.ctx, func(tx *store.Tx) error {
				_, err := tx.Exec(h.ctx, `UPDATE messages_out SET message_id = ? WHERE id = ?`, m.MessageID, sent.ID)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			h.refuse()
			seen := h.watch(srv, batch)
			if batch && !strings.Contains(seen.log.String(), "taking them one by one") {
				t.Errorf("the bulk insert did not fail:\n%s", seen.log.String())
			}
			dumps[i] = h.dump()
			cp, err := h.st.Checkpoint(h.ctx, "sales", "INBOX")
			if uids := srv.UIDs("INBOX"); err != nil || cp.LastUID != uids[len(uids)-1] {
				t.Errorf("checkpoint %+v, %v; want UID %d", cp, err, uids[len(uids)-1])
			}
		}
		if diff := cmpLines(dumps[0], dumps[1]); diff != "" {
			t.Errorf("one by one (-) and batched (+) differ:\n%s", diff)
		}
		var ins, errs int
		for _, l := range dumps[1] {
			if strings.HasPrefix(l, "in ") {
				ins++
				if strings.Contains(l, " error ") && strings.Contains(l, "boom refused") {
					errs++
				}
			}
		}
		if n := len(srv.UIDs("INBOX")); ins != n || errs != 2 {
			t.Errorf("%d messages_in rows (%d refused ones as errors) for %d messages; want all, 2:\n%s", ins, errs, n, strings.Join(dumps[1], "\n"))
		}
		if all := strings.Join(dumps[1], "\n"); !strings.Contains(all, "contact jan@bakkerij.nl prospect") {
			t.Errorf("jan's reply after the refused ones was not handled:\n%s", all)
		}
	})
}

// racing is a batch handler during whose first Simple call about UID uid
// another writer records that message: the bulk insert that follows meets
// its row. On SQLite, which has one writer, the row is written in the
// watcher's own transaction instead, and goes with it.
type racing struct {
	inbox.BatchHandler
	st    *store.Store
	uid   uint32
	raced bool
}

func (r *racing) Simple(ctx context.Context, tx *store.Tx, msgs []inbox.Message) ([]bool, error) {
	for _, m := range msgs {
		if m.UID != r.uid || r.raced {
			continue
		}
		r.raced = true
		row := store.MessageIn{Account: m.Account, Mailbox: m.Mailbox, UIDValidity: m.UIDValidity, UID: m.UID,
			MessageID: m.MessageID, Kind: "raced", ReceivedAt: m.InternalDate}
		var err error
		if r.st.Dialect() == store.DialectPostgres {
			_, err = r.st.InsertMessageIn(ctx, row)
		} else {
			_, err = tx.InsertMessageIn(ctx, row)
		}
		if err != nil {
			return nil, err
		}
	}
	return r.BatchHandler.Simple(ctx, tx, msgs)
}

// A message another writer records between the batch's lookups and its
// bulk insert makes the insert fail as a whole: the batch is done again
// one message at a time, where the message is found recorded and skipped.
// Nothing is lost, nothing is recorded or counted twice, and the
// checkpoint ends at the last UID.
func TestBatchIngestRaceLosesNothing(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		srv := imaptest.Start(t)
		for n := range 5 {
			srv.Deliver("INBOX", fmt.Appendf(nil, "From: <s%d@elsewhere.example>\r\nSubject: Re: a question\r\n"+
				"Message-ID: <s%d@elsewhere.example>\r\nIn-Reply-To: <unknown@example.com>\r\n\r\nThanks, could you send details?\r\n", n, n))
		}
		h, _, _ := setupExample(t, dialect)
		uids := srv.UIDs("INBOX")
		r := &racing{st: h.st, uid: uids[2]}
		seen := h.watch(srv, true, func(b inbox.BatchHandler) inbox.BatchHandler {
			r.BatchHandler = b
			return r
		})
		if !r.raced {
			t.Fatal("the other writer never ran")
		}
		if !strings.Contains(seen.log.String(), "taking them one by one") {
			t.Errorf("the bulk insert did not fail:\n%s", seen.log.String())
		}
		var rows []string
		err := h.st.InTx(h.ctx, func(tx *store.Tx) error {
			return tx.Select(h.ctx, &rows, `SELECT CAST(uid AS TEXT) || ' ' || kind FROM messages_in ORDER BY uid`)
		})
		if err != nil {
			t.Fatal(err)
		}
		// On Postgres the other writer's row stays and the watcher leaves
		// that message alone; on SQLite it went with the rolled back
		// transaction and the watcher records the message itself.
		want, ingested := []string{}, 0
		for _, u := range uids {
			kind := "reply"
			if u == r.uid && dialect == store.DialectPostgres {
				kind = "raced"
			} else {
				ingested++
			}
			want = append(want, fmt.Sprintf("%d %s", u, kind))
		}
		if strings.Join(rows, ", ") != strings.Join(want, ", ") {
			t.Errorf("messages_in rows %v, want %v", rows, want)
		}
		if len(seen.ingested) != ingested {
			t.Errorf("OnIngested called %d times (%v), want %d", len(seen.ingested), seen.ingested, ingested)
		}
		cp, err := h.st.Checkpoint(h.ctx, "sales", "INBOX")
		if err != nil || cp.LastUID != uids[len(uids)-1] {
			t.Errorf("checkpoint %+v, %v; want UID %d", cp, err, uids[len(uids)-1])
		}
	})
}
