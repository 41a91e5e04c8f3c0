package daemon

import (
	"context"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/followupd/followupd/outbox"
	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

// withOutbox points the harness's account at an in-process SMTP sink and
// returns an outbox wired with the daemon's hooks.
func (h *harness) withOutbox(t *testing.T) (*outbox.Service, *smtptest.Server) {
	t.Helper()
	return h.outboxProducing(t, nil)
}

// outboxProducing is withOutbox with outbox.Options.Produce set to produce.
func (h *harness) outboxProducing(t *testing.T, produce func(context.Context, string, int) ([]store.MessageOut, bool, error)) (*outbox.Service, *smtptest.Server) {
	t.Helper()
	sink := smtptest.Start(t)
	rt := h.rt
	rt.Config.Accounts[0].SMTP.Host = sink.Host()
	rt.Config.Accounts[0].SMTP.Port = sink.Port()
	rt.Config.Accounts[0].SMTP.TLS = "none"
	rt.Config.Accounts[0].SMTP.InsecurePlaintext = true
	rt.Config.Accounts[0].SMTP.Username, rt.Config.Accounts[0].SMTP.Password = "", ""
	rt.Config.Accounts[0].IMAP = nil
	now := func() time.Time { return h.now }
	svc, err := outbox.New(outbox.Options{
		Store: h.st, Accounts: rt.Config.Accounts, Unsubscribe: rt.Config.Unsubscribe,
		BlockedStages: rt.BlockedStages(), Now: now,
		Hooks:   OutboxHooks(h.ctx, func() *Runtime { return rt }, now, nil),
		Produce: produce,
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc, sink
}

func TestPipeline(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		t.Run("queued_step_is_sent_threaded_and_the_next_one_scheduled", func(t *testing.T) {
			h, ct, first := setupExampleUnsent(t, dialect)
			svc, sink := h.withOutbox(t)
			if n, err := svc.RunOnce(h.ctx, "sales"); err != nil || n != 1 {
				t.Fatalf("outbox sent %d: %v", n, err)
			}
			got := sink.Messages()
			if len(got) != 1 || got[0].MessageID != first.MessageID {
				t.Fatalf("sink got %+v, want the queued message %s", got, first.MessageID)
			}
			msg, err := mail.ReadMessage(strings.NewReader(string(got[0].Data)))
			if err != nil {
				t.Fatal(err)
			}
			// The example's base URL is a local http one, so the link and a
			// mailto are there but not RFC 8058's one-click (https only).
			if lu := msg.Header.Get("List-Unsubscribe"); !strings.Contains(lu, "/u/") || !strings.Contains(lu, "mailto:ann@example.com") {
				t.Errorf("List-Unsubscribe %q", lu)
			}
			e := h.enrollment(ct.ID)
			if e.Step != 1 || e.DueAt == nil || !e.DueAt.After(h.now) {
				t.Fatalf("after the send: %+v, want step 2 scheduled", e)
			}
			h.now = *e.DueAt
			if n := h.pass(); n != 1 {
				t.Fatalf("step 2 not queued (%d)", n)
			}
			if n, err := svc.RunOnce(h.ctx, "sales"); err != nil || n != 1 {
				t.Fatalf("outbox sent %d: %v", n, err)
			}
			second, _ := mail.ReadMessage(strings.NewReader(string(sink.Messages()[1].Data)))
			if second.Header.Get("In-Reply-To") != "<"+first.MessageID+">" || !strings.HasPrefix(second.Header.Get("Subject"), "Re: ") {
				t.Errorf("step 2 headers: In-Reply-To %q Subject %q", second.Header.Get("In-Reply-To"), second.Header.Get("Subject"))
			}
		})

		t.Run("TestGuarantee2_ReplyBetweenClaimAndSendWins", func(t *testing.T) {
			h, ct, queued := setupExampleUnsent(t, dialect)
			svc, sink := h.withOutbox(t)
			// The step is queued; the contact answers before the outbox runs.
			h.ingest(reply(queued, ct.Email, "Re: hello", "No thanks, we are not interested."))
			if n, err := svc.RunOnce(h.ctx, "sales"); err != nil || n != 0 {
				t.Fatalf("outbox sent %d after a reply: %v", n, err)
			}
			if len(sink.Messages()) != 0 {
				t.Fatal("the sink received a message for a contact who had said no")
			}
			var status string
			h.st.InTx(h.ctx, func(tx *store.Tx) error {
				return tx.Get(h.ctx, &status, `SELECT status FROM messages_out WHERE message_id = ?`, queued.MessageID)
			})
			if status != store.MessageCancelled {
				t.Errorf("queued message is %s, want cancelled", status)
			}
		})

		t.Run("hard_bounce_at_rcpt_runs_the_bounce_rules", func(t *testing.T) {
			h, ct, _ := setupExampleUnsent(t, dialect)
			svc, sink := h.withOutbox(t)
			sink.RcptReply(ct.Email, smtptest.Reply550UserUnknown, smtptest.Always)
			svc.RunOnce(h.ctx, "sales")
			c, _ := h.st.ContactByEmail(h.ctx, ct.Email)
			if c.Stage != "bounced" || !c.Suppressed {
				t.Errorf("after 550 5.1.1: stage %s suppressed %v, want bounced and suppressed", c.Stage, c.Suppressed)
			}
			if e := h.enrollment(ct.ID); e.Status != store.EnrollmentStopped {
				t.Errorf("enrollment %s, want stopped", e.Status)
			}
		})
	})
}

// setupExampleUnsent is setupExample with step 1 queued but not sent.
func setupExampleUnsent(t *testing.T, dialect string) (*harness, store.Contact, store.MessageOut) {
	t.Helper()
	h, ct, m := setupExampleNoSend(t, dialect)
	return h, ct, m
}
