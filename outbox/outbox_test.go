package outbox_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/outbox"
	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/store"
)

func TestMessageHeadersAndBody(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st, func(e *env) {
			e.acct.Headers = map[string]string{"X-Campaign": "intro"}
		})
		m := e.queue("ann@example.com", "Ann", func(m *store.MessageOut) {
			m.Step = 1
			m.ThreadRoot = "root@seller.test"
			m.InReplyTo = "root@seller.test"
			m.References = "root@seller.test <prev@seller.test>"
			m.Subject = "Re: Quick question, Ann"
		})
		if n := e.runOnce(); n != 1 {
			t.Fatalf("RunOnce sent %d", n)
		}
		e.wantStatus(m.ID, store.MessageSent)
		got := e.delivered(m.MessageID)
		if len(got) != 1 {
			t.Fatalf("delivered %d copies", len(got))
		}
		d := got[0]
		if d.From != fromAddr || !slices.Equal(d.To, []string{"ann@example.com"}) {
			t.Fatalf("envelope = %s → %v", d.From, d.To)
		}
		h := d.Header
		want := map[string]string{
			"Message-Id":            "<" + m.MessageID + ">",
			"In-Reply-To":           "<root@seller.test>",
			"References":            "<root@seller.test> <prev@seller.test>",
			"Subject":               "Re: Quick question, Ann",
			"List-Unsubscribe":      "<" + m.UnsubscribeURL + ">, <mailto:" + fromAddr + "?subject=unsubscribe>",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
			"X-Campaign":            "intro",
			"Mime-Version":          "1.0",
		}
		for k, v := range want {
			if got := h.Get(k); got != v {
				t.Errorf("%s: %q, want %q", k, got, v)
			}
		}
		from, err := h.AddressList("From")
		if err != nil || len(from) != 1 || from[0].Name != "Sam Seller" || from[0].Address != fromAddr {
			t.Errorf("From = %v, %v", from, err)
		}
		to, err := h.AddressList("To")
		if err != nil || len(to) != 1 || to[0].Name != "Ann" || to[0].Address != "ann@example.com" {
			t.Errorf("To = %v, %v", to, err)
		}
		if _, err := h.Date(); err != nil {
			t.Errorf("Date: %v", err)
		}
		for _, k := range []string{"X-Mailer", "User-Agent", "Bcc", "Cc"} {
			if hasHeaderLine(d.Data, k) {
				t.Errorf("unexpected %s header", k)
			}
		}
		mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
		if err != nil || mt != "multipart/alternative" {
			t.Fatalf("Content-Type = %q, %v", h.Get("Content-Type"), err)
		}
		msg, _ := mail.ReadMessage(bytes.NewReader(d.Data))
		mr := multipart.NewReader(msg.Body, params["boundary"])
		var types []string
		var texts []string
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			types = append(types, ct)
			b, _ := io.ReadAll(p) // multipart decodes quoted-printable
			texts = append(texts, string(b))
		}
		if !slices.Equal(types, []string{"text/plain", "text/html"}) {
			t.Fatalf("parts = %v", types)
		}
		if !strings.Contains(texts[0], "Shall we talk on Tuesday?") || !strings.Contains(texts[1], "<b>Tuesday</b>") {
			t.Fatalf("bodies = %q", texts)
		}
		if sent, _ := e.hooks(); !slices.Equal(sent, []string{m.MessageID}) {
			t.Fatalf("Sent hook ran for %v", sent)
		}
		evs, _ := st.Timeline(bg, m.ContactID, 0)
		if evs[len(evs)-1].Type != store.EventSent {
			t.Fatalf("last event %s", evs[len(evs)-1].Type)
		}
	})
}

func TestTextOnlyMessageAndConfiguredMailto(t *testing.T) {
	e := newEnv(t, openStore(t, store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(t.TempDir(), "f.db")}),
		func(e *env) { e.opts.Unsubscribe.Mailto = "unsub@seller.test" })
	m := e.queue("bob@example.com", "Bob", func(m *store.MessageOut) { m.BodyHTML = "" })
	if n := e.runOnce(); n != 1 {
		t.Fatalf("sent %d", n)
	}
	h := e.delivered(m.MessageID)[0].Header
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type = %q, want text/plain", ct)
	}
	if lu := h.Get("List-Unsubscribe"); !strings.Contains(lu, "<mailto:unsub@seller.test?subject=unsubscribe>") {
		t.Fatalf("List-Unsubscribe = %q", lu)
	}
}

// A temporary error at any phase, or a connection lost before the final
// dot, puts the message back in the queue; the next attempt delivers it,
// and only once.
func TestGuarantee1_NoStepSentTwice_TemporaryFailuresRetriedThenDeliveredOnce(t *testing.T) {
	faults := []struct {
		name  string
		arm   func(s *smtptest.Server, addr string)
		count smtptest.Event
	}{
		{"451_at_rcpt", func(s *smtptest.Server, a string) { s.RcptReply(a, smtptest.Reply451, 1) }, smtptest.RcptRejects},
		{"452_at_rcpt", func(s *smtptest.Server, a string) { s.RcptReply(a, smtptest.Reply452, 1) }, smtptest.RcptRejects},
		{"452_after_data", func(s *smtptest.Server, _ string) { s.DataReply(smtptest.Reply452Storage, 1) }, smtptest.DataRejects},
		{"421_at_greeting", func(s *smtptest.Server, _ string) { s.RejectConnections(1) }, smtptest.Rejected},
		{"dropped_before_data", func(s *smtptest.Server, _ string) { s.DropBeforeData(1) }, smtptest.DroppedBeforeData},
	}
	forEachStore(t, func(t *testing.T, st *store.Store) {
		for _, f := range faults {
			t.Run(f.name, func(t *testing.T) {
				e := newEnv(t, st)
				addr := f.name + "@example.com"
				m := e.queue(addr, "Ann")
				f.arm(e.sink, addr)
				if n := e.runOnce(); n != 0 {
					t.Fatalf("first attempt sent %d", n)
				}
				if e.sink.Count(f.count) != 1 {
					t.Fatalf("fault did not fire: %v", e.sink.Counts())
				}
				r := e.wantStatus(m.ID, store.MessageQueued)
				wantNext := e.clock.Now().Add(time.Minute) // RetryBase, jitter factor 1.0
				if r.Attempts != 1 || r.LastError == "" || r.NextAttemptAt == nil || !r.NextAttemptAt.Equal(wantNext.Truncate(time.Microsecond)) {
					t.Fatalf("after the fault: attempts %d, error %q, next %v (want %v)", r.Attempts, r.LastError, r.NextAttemptAt, wantNext)
				}
				// Not due yet: nothing happens.
				if n := e.runOnce(); n != 0 || len(e.delivered(m.MessageID)) != 0 {
					t.Fatalf("sent before the retry time")
				}
				e.clock.Advance(61 * time.Second)
				if n := e.runOnce(); n != 1 {
					t.Fatalf("retry sent %d", n)
				}
				r = e.wantStatus(m.ID, store.MessageSent)
				if r.Attempts != 2 {
					t.Fatalf("attempts = %d", r.Attempts)
				}
				e.clock.Advance(time.Hour)
				e.runOnce()
				if got := len(e.delivered(m.MessageID)); got != 1 {
					t.Fatalf("delivered %d times", got)
				}
				if sent, _ := e.hooks(); len(sent) != 1 {
					t.Fatalf("Sent hook ran %d times", len(sent))
				}
			})
		}
	})
}

func TestHardBounce_550_5_1_1_FailsAndSuppresses(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		m := e.queue("gone@example.com", "Gone")
		e.sink.RcptReply("gone@example.com", smtptest.Reply550UserUnknown, smtptest.Always)
		if n := e.runOnce(); n != 0 {
			t.Fatalf("sent %d", n)
		}
		r := e.wantStatus(m.ID, store.MessageFailed)
		if !strings.HasPrefix(r.LastError, "550 5.1.1") {
			t.Fatalf("last_error = %q", r.LastError)
		}
		c, _ := st.ContactByID(bg, m.ContactID)
		if !c.Suppressed {
			t.Fatal("contact not suppressed")
		}
		sups, _ := st.Suppressions(bg)
		if len(sups) != 1 || sups[0].Value != "gone@example.com" || !strings.HasPrefix(sups[0].Reason, "550 5.1.1") {
			t.Fatalf("suppressions = %+v", sups)
		}
		_, failed := e.hooks()
		if !slices.Equal(failed, []string{m.MessageID}) || !e.hardBounce[m.MessageID] {
			t.Fatalf("Failed hook: %v hard=%v", failed, e.hardBounce)
		}
		var types []string
		evs, _ := st.Timeline(bg, m.ContactID, 0)
		for _, ev := range evs {
			types = append(types, ev.Type)
		}
		if !slices.Contains(types, store.EventBounced) || !slices.Contains(types, store.EventSendFailed) {
			t.Fatalf("events = %v", types)
		}
		if len(e.sink.Messages()) != 0 {
			t.Fatal("something was delivered")
		}
	})
}

func TestPermanentDataRejectionFailsWithoutSuppressing(t *testing.T) {
	e := newEnv(t, openStore(t, store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(t.TempDir(), "f.db")}))
	m := e.queue("ann@example.com", "Ann")
	e.sink.DataReply(smtptest.Reply554, 1)
	e.runOnce()
	r := e.wantStatus(m.ID, store.MessageFailed)
	if !strings.Contains(r.LastError, "554") {
		t.Fatalf("last_error = %q", r.LastError)
	}
	if c, _ := e.st.ContactByID(bg, m.ContactID); c.Suppressed {
		t.Fatal("a 554 suppressed the contact")
	}
	if e.hardBounce[m.MessageID] {
		t.Fatal("reported as a hard bounce")
	}
}

func TestGiveUpAfterMaxAge(t *testing.T) {
	e := newEnv(t, openStore(t, store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(t.TempDir(), "f.db")}),
		func(e *env) { e.opts.MaxAge = 2 * time.Hour })
	m := e.queue("ann@example.com", "Ann")
	e.sink.RcptReply("ann@example.com", smtptest.Reply451, smtptest.Always)
	e.runOnce()
	e.wantStatus(m.ID, store.MessageQueued)
	e.clock.Advance(3 * time.Hour)
	e.runOnce()
	r := e.wantStatus(m.ID, store.MessageFailed)
	if !strings.Contains(r.LastError, "gave up after 2 attempts") || !strings.Contains(r.LastError, "451") {
		t.Fatalf("last_error = %q", r.LastError)
	}
	if c, _ := e.st.ContactByID(bg, m.ContactID); c.Suppressed {
		t.Fatal("giving up suppressed the contact")
	}
}

// The connection dies after the final dot: the server may have delivered
// the message. Under "skip" it stays uncertain and is never resent.
func TestGuarantee1_NoStepSentTwice_DropAfterDotStaysUncertainUnderSkip(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		m := e.queue("ann@example.com", "Ann")
		e.sink.DropAfterDot(1)
		if n := e.runOnce(); n != 0 {
			t.Fatalf("sent %d", n)
		}
		r := e.wantStatus(m.ID, store.MessageUncertain)
		if r.LastError == "" {
			t.Fatal("no last_error")
		}
		for range 3 {
			e.clock.Advance(time.Hour)
			e.runOnce()
			if err := e.svc.Reconcile(bg); err != nil {
				t.Fatal(err)
			}
		}
		e.wantStatus(m.ID, store.MessageUncertain)
		if got := len(e.delivered(m.MessageID)); got != 1 {
			t.Fatalf("delivered %d times", got)
		}
		list, err := st.ListMessagesOut(bg, store.MessageFilter{Statuses: []string{store.MessageUncertain}, Account: "main"})
		if err != nil || len(list) != 1 || list[0].ID != m.ID {
			t.Fatalf("status listing = %v, %v", list, err)
		}
	})
}

// Under "verify", a copy found in the Sent folder makes the message sent,
// and it is not sent again.
func TestGuarantee1_NoStepSentTwice_VerifyFindsCopyInSent(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *store.Store) {
		ie := startIMAP(t)
		e := newEnv(t, st, func(e *env) {
			e.acct.OnUncertain = "verify"
			e.acct.IMAP = ie.imapConfig()
		})
		m := e.queue("ann@example.com", "Ann")
		other := e.queue("bob@example.com", "Bob")
		e.sink.DropAfterDot(1)
		e.runOnce()
		e.wantStatus(m.ID, store.MessageUncertain)
		if e.row(other.ID).Status != store.MessageSent {
			t.Fatalf("the next message, on a new connection, is %s", e.row(other.ID).Status)
		}
		// The provider filed what it received in Sent.
		ie.file(t, e.delivered(m.MessageID)[0].Data)

		if err := e.svc.Reconcile(bg); err != nil {
			t.Fatal(err)
		}
		e.wantStatus(m.ID, store.MessageSent)
		if sent, _ := e.hooks(); !slices.Contains(sent, m.MessageID) {
			t.Fatalf("Sent hook did not run for the reconciled message: %v", sent)
		}
		e.clock.Advance(time.Hour)
		e.runOnce()
		if err := e.svc.Reconcile(bg); err != nil {
			t.Fatal(err)
		}
		if got := len(e.delivered(m.MessageID)); got != 1 {
			t.Fatalf("delivered %d times", got)
		}
		if ro, n := ie.allReadOnly(); !ro || n == 0 {
			t.Fatalf("Sent was opened read-write (%d opens)", n)
		}
	})
}

func TestVerifyRequeuesWhenNoCopyAfterGrace(t *testing.T) {
	ie := startIMAP(t)
	e := newEnv(t, openStore(t, store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(t.TempDir(), "f.db")}),
		func(e *env) {
			e.acct.OnUncertain = "verify"
			e.acct.IMAP = ie.imapConfig()
		})
	m := e.queue("ann@example.com", "Ann")
	e.sink.DropAfterDot(1)
	e.runOnce()
	e.wantStatus(m.ID, store.MessageUncertain)
	// Too young: the provider may still be filing it.
	if err := e.svc.Reconcile(bg); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(m.ID, store.MessageUncertain)
	e.clock.Advance(6 * time.Minute)
	if err := e.svc.Reconcile(bg); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(m.ID, store.MessageQueued)
	if n := e.runOnce(); n != 1 {
		t.Fatalf("resend sent %d", n)
	}
	e.wantStatus(m.ID, store.MessageSent)
}

func TestResendRequeuesWithoutIMAP(t *testing.T) {
	e := newEnv(t, openStore(t, store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(t.TempDir(), "f.db")}),
		func(e *env) { e.acct.OnUncertain = "resend" })
	m := e.queue("ann@example.com", "Ann")
	e.sink.DropAfterDot(1)
	e.runOnce()
	e.wantStatus(m.ID, store.MessageUncertain)
	if err := e.svc.Reconcile(bg); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(m.ID, store.MessageQueued)
	e.runOnce()
	e.wantStatus(m.ID, store.MessageSent)
}

func TestVerifyWithoutIMAPActsLikeSkip(t *testing.T) {
	e := newEnv(t, openStore(t, store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(t.TempDir(), "f.db")}),
		func(e *env) { e.acct.OnUncertain = "verify" })
	m := e.queue("ann@example.com", "Ann")
	e.sink.DropAfterDot(1)
	e.runOnce()
	e.clock.Advance(time.Hour)
	if err := e.svc.Reconcile(bg); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(m.ID, store.MessageUncertain)
}

// A contact named "Eve\r\nBcc: x@y" must never add a header or a
// recipient: the message is refused, the others still go out.
func TestHeaderInjectionFromContactNameIsRefused(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		eve := e.queue("eve@example.com", "Eve", func(m *store.MessageOut) { m.ToName = "Eve\r\nBcc: x@y.test" })
		subj := e.queue("mallory@example.com", "Mallory", func(m *store.MessageOut) { m.Subject = "Hi\nBcc: x@y.test" })
		ok := e.queue("ann@example.com", "Ann")
		if n := e.runOnce(); n != 1 {
			t.Fatalf("sent %d, want only the clean message", n)
		}
		for _, id := range []int64{eve.ID, subj.ID} {
			r := e.wantStatus(id, store.MessageFailed)
			if !strings.Contains(r.LastError, "line break") {
				t.Fatalf("last_error = %q", r.LastError)
			}
			if c, _ := st.ContactByID(bg, r.ContactID); c.Suppressed {
				t.Fatal("a refused header suppressed the contact")
			}
		}
		e.wantStatus(ok.ID, store.MessageSent)
		msgs := e.sink.Messages()
		if len(msgs) != 1 {
			t.Fatalf("sink got %d messages", len(msgs))
		}
		for _, m := range msgs {
			if !slices.Equal(m.To, []string{"ann@example.com"}) {
				t.Fatalf("recipients = %v", m.To)
			}
			if hasHeaderLine(m.Data, "Bcc") || bytes.Contains(m.Data, []byte("x@y.test")) {
				t.Fatalf("injected header reached the sink:\n%s", m.Data)
			}
		}
		if e.sink.Count(smtptest.Rcpts) != 1 {
			t.Fatalf("RCPT count = %d", e.sink.Count(smtptest.Rcpts))
		}
	})
}

func TestBuildRefusesLineBreaksInEveryHeaderField(t *testing.T) {
	base := store.MessageOut{MessageID: "a@seller.test", Subject: "s", ToAddr: "ann@example.com", ToName: "Ann",
		FromAddr: fromAddr, FromName: "Sam", BodyText: "b", UnsubscribeURL: "https://x.test/u/1"}
	acct := &config.Account{Name: "main", FromAddress: fromAddr}
	if _, err := outbox.Build(base, acct, outbox.BuildOptions{}); err != nil {
		t.Fatalf("clean message: %v", err)
	}
	for _, f := range []func(*store.MessageOut){
		func(m *store.MessageOut) { m.Subject = "a\r\nBcc: x@y" },
		func(m *store.MessageOut) { m.ToName = "Eve\nBcc: x@y" },
		func(m *store.MessageOut) { m.FromName = "Sam\rBcc: x@y" },
		func(m *store.MessageOut) { m.ToAddr = "ann@example.com\r\nBcc: x@y" },
		func(m *store.MessageOut) { m.InReplyTo = "r@x\r\nBcc: x@y" },
		func(m *store.MessageOut) { m.References = "r@x\nBcc: x@y" },
		func(m *store.MessageOut) { m.MessageID = "a@x\r\nBcc: x@y" },
		func(m *store.MessageOut) { m.UnsubscribeURL = "https://x.test/u\r\nBcc: x@y" },
	} {
		m := base
		f(&m)
		if _, err := outbox.Build(m, acct, outbox.BuildOptions{}); !errors.Is(err, outbox.ErrUnsafeHeader) {
			t.Errorf("Build(%+v) = %v, want ErrUnsafeHeader", m, err)
		}
	}
	bad := *acct
	bad.Headers = map[string]string{"X-Ok": "a\r\nBcc: x@y"}
	if _, err := outbox.Build(base, &bad, outbox.BuildOptions{}); !errors.Is(err, outbox.ErrUnsafeHeader) {
		t.Errorf("custom header with a line break: %v", err)
	}
	bad.Headers = map[string]string{"Bcc": "x@y"}
	if _, err := outbox.Build(base, &bad, outbox.BuildOptions{}); !errors.Is(err, outbox.ErrUnsafeHeader) {
		t.Errorf("custom Bcc header: %v", err)
	}
}

func TestBuildNormalisesThreadingIDs(t *testing.T) {
	m := store.MessageOut{MessageID: "<a@seller.test>", Subject: "s", ToAddr: "ann@example.com",
		FromAddr: fromAddr, BodyText: "b", InReplyTo: "<r@x.test>", References: "r@x.test, <s@x.test>  t@x.test"}
	msg, err := outbox.Build(m, nil, outbox.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	parsed, err := mail.ReadMessage(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"Message-Id":  "<a@seller.test>",
		"In-Reply-To": "<r@x.test>",
		"References":  "<r@x.test> <s@x.test> <t@x.test>",
	} {
		if got := parsed.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestPlaintextAuthRefusedUnlessAllowedTwice(t *testing.T) {
	st := openStore(t, store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(t.TempDir(), "f.db")})
	sink := smtptest.Start(t)
	acct := config.Account{Name: "main", FromAddress: fromAddr, SMTP: config.SMTP{Server: config.Server{
		Host: sink.Host(), Port: sink.Port(), TLS: "none", Username: "sam", Password: "pw"}}}
	if _, err := outbox.New(outbox.Options{Store: st, Accounts: []config.Account{acct}}); err == nil ||
		!strings.Contains(err.Error(), "insecure_plaintext") {
		t.Fatalf("tls: none without insecure_plaintext: %v", err)
	}
	if sink.Count(smtptest.Connections) != 0 {
		t.Fatal("connected anyway")
	}

	for _, mech := range []string{"auto", "plain", "login", "cram-md5"} {
		t.Run(mech, func(t *testing.T) {
			e := newEnv(t, st, func(e *env) {
				e.acct.SMTP.Username, e.acct.SMTP.Password, e.acct.SMTP.Auth = "sam", "pw", mech
				e.sink.AddUser("sam", "pw")
				e.sink.RequireAuth(true)
			})
			m := e.queue(mech+"@example.com", "Ann")
			if n := e.runOnce(); n != 1 {
				t.Fatalf("sent %d: %s", n, e.row(m.ID).LastError)
			}
			d := e.delivered(m.MessageID)[0]
			wantMech := strings.ToUpper(mech)
			if mech == "auto" {
				wantMech = "PLAIN"
			}
			if d.AuthUser != "sam" || d.AuthMech != wantMech {
				t.Fatalf("logged in as %q with %q", d.AuthUser, d.AuthMech)
			}
			if strings.Contains(e.logs.String(), "pw") && strings.Contains(e.logs.String(), "password") {
				t.Fatal("the password may have been logged")
			}
		})
	}
}

func TestXOAUTH2TokenFromCommand(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *store.Store) {
		dir := t.TempDir()
		counter := filepath.Join(dir, "runs")
		e := newEnv(t, st, func(e *env) {
			e.acct.SMTP.Username = "sam@seller.test"
			e.acct.SMTP.OAuth2TokenCommand = "echo run >> '" + counter + "'; printf 'ya29.secret-token\\n'"
			e.sink.AddToken("sam@seller.test", "ya29.secret-token")
			e.sink.RequireAuth(true)
		})
		a := e.queue("ann@example.com", "Ann")
		b := e.queue("bob@example.com", "Bob")
		if n := e.runOnce(); n != 2 {
			t.Fatalf("sent %d: %q", n, e.row(a.ID).LastError)
		}
		for _, m := range []store.MessageOut{a, b} {
			d := e.delivered(m.MessageID)[0]
			if d.AuthMech != "XOAUTH2" || d.AuthUser != "sam@seller.test" {
				t.Fatalf("auth = %q %q", d.AuthMech, d.AuthUser)
			}
		}
		runs, _ := os.ReadFile(counter)
		if n := strings.Count(string(runs), "run"); n != 1 {
			t.Fatalf("token command ran %d times, want 1 (cached)", n)
		}
		if strings.Contains(e.logs.String(), "secret-token") {
			t.Fatal("the token was logged")
		}

		// A refused token: retried later, never logged.
		e2 := newEnv(t, st, func(e *env) {
			e.acct.SMTP.Username = "sam@seller.test"
			e.acct.SMTP.OAuth2TokenCommand = "printf wrong-token"
			e.sink.AddToken("sam@seller.test", "ya29.secret-token")
		})
		c := e2.queue("carol@example.com", "Carol")
		if n := e2.runOnce(); n != 0 {
			t.Fatalf("sent %d with a wrong token", n)
		}
		r := e2.wantStatus(c.ID, store.MessageQueued)
		if !strings.Contains(r.LastError, "535") {
			t.Fatalf("last_error = %q", r.LastError)
		}
		if strings.Contains(e2.logs.String(), "wrong-token") || strings.Contains(r.LastError, "wrong-token") {
			t.Fatal("the token leaked into the logs or the row")
		}

		// A failing command: retried later, with its stderr.
		e3 := newEnv(t, st, func(e *env) {
			e.acct.SMTP.Username = "sam@seller.test"
			e.acct.SMTP.OAuth2TokenCommand = "echo 'token expired' >&2; exit 3"
		})
		d := e3.queue("dave@example.com", "Dave")
		e3.runOnce()
		if r := e3.wantStatus(d.ID, store.MessageQueued); !strings.Contains(r.LastError, "token expired") {
			t.Fatalf("last_error = %q", r.LastError)
		}
	})
}

func TestSaveToSentAppendsTheSameBytes(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *store.Store) {
		ie := startIMAP(t)
		keyFile := writeDKIMKey(t)
		yes := true
		e := newEnv(t, st, func(e *env) {
			e.acct.IMAP = ie.imapConfig()
			e.acct.SaveToSent = &yes
			e.acct.DKIM = &config.DKIM{Domain: "seller.test", Selector: "fu", KeyFile: keyFile}
		})
		m := e.queue("ann@example.com", "Ann")
		if n := e.runOnce(); n != 1 {
			t.Fatalf("sent %d", n)
		}
		sent := e.delivered(m.MessageID)[0].Data
		if !hasHeaderLine(sent, "DKIM-Signature") {
			t.Fatal("not DKIM-signed")
		}
		sig := headerValue(sent, "DKIM-Signature")
		if !strings.Contains(strings.ToLower(sig), "list-unsubscribe") {
			t.Fatalf("DKIM signature does not cover List-Unsubscribe: %s", sig)
		}
		copies, flags := ie.sent(t)
		if len(copies) != 1 {
			t.Fatalf("Sent holds %d messages", len(copies))
		}
		if !bytes.Equal(copies[0], sent) {
			t.Fatalf("copy differs from what was sent:\n--- sent\n%s\n--- copy\n%s", sent, copies[0])
		}
		if !slices.Contains(flags[0], imap.FlagSeen) {
			t.Fatalf("copy flags = %v", flags[0])
		}
	})
}

func TestSaveToSentFailureDoesNotFailTheSend(t *testing.T) {
	yes := true
	e := newEnv(t, openStore(t, store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(t.TempDir(), "f.db")}),
		func(e *env) {
			e.acct.IMAP = &config.IMAP{Server: config.Server{Host: "127.0.0.1", Port: 1, TLS: "none",
				InsecurePlaintext: true, Username: "x", Password: "y"}}
			e.acct.SaveToSent = &yes
		})
	m := e.queue("ann@example.com", "Ann")
	if n := e.runOnce(); n != 1 {
		t.Fatalf("sent %d", n)
	}
	e.wantStatus(m.ID, store.MessageSent)
	if !strings.Contains(e.logs.String(), "could not be saved to Sent") {
		t.Fatalf("no warning logged:\n%s", e.logs.String())
	}
}

func TestGuarantee2_ReplyBeforeSendingWins(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		m := e.queue("ann@example.com", "Ann")
		if err := st.SetEnrollmentStatus(bg, m.EnrollmentID, store.EnrollmentStopped); err != nil {
			t.Fatal(err)
		}
		if n := e.runOnce(); n != 0 {
			t.Fatalf("sent %d", n)
		}
		e.wantStatus(m.ID, store.MessageCancelled)
		if e.sink.Count(smtptest.Connections) != 0 || len(e.sink.Messages()) != 0 {
			t.Fatal("the sender talked to the server")
		}
	})
}

func TestConcurrentConnectionsAreReused(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st, func(e *env) { e.acct.SMTP.Concurrency = 2 })
		var ids []string
		for i := range 8 {
			ids = append(ids, e.queue(string(rune('a'+i))+"@example.com", "N").MessageID)
		}
		if n := e.runOnce(); n != 8 {
			t.Fatalf("sent %d", n)
		}
		for i := range 2 {
			ids = append(ids, e.queue(string(rune('q'+i))+"@example.com", "N").MessageID)
		}
		if n := e.runOnce(); n != 2 {
			t.Fatalf("second batch sent %d", n)
		}
		for _, id := range ids {
			if got := len(e.delivered(id)); got != 1 {
				t.Fatalf("%s delivered %d times", id, got)
			}
		}
		if c := e.sink.Count(smtptest.Connections); c != 2 {
			t.Fatalf("%d connections for 2 slots", c)
		}
	})
}

// The client sends no NOOP before each message: a kept connection the
// server dropped while idle shows up as no answer to MAIL FROM, where
// nothing can have been delivered, and the message goes out at once on a
// new connection instead of waiting for a retry.
func TestKeptConnectionDroppedByServerIsRedialedAtOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		first := e.queue("first@example.com", "First")
		if n := e.runOnce(); n != 1 {
			t.Fatalf("sent %d", n)
		}
		e.sink.DropAtMail(1)
		second := e.queue("second@example.com", "Second")
		if n := e.runOnce(); n != 1 {
			t.Fatalf("second run sent %d, want the message sent without waiting for a retry", n)
		}
		for _, m := range []store.MessageOut{first, second} {
			if got := len(e.delivered(m.MessageID)); got != 1 {
				t.Fatalf("%s delivered %d times", m.MessageID, got)
			}
			e.wantStatus(m.ID, store.MessageSent)
		}
		if got := e.sink.Count(smtptest.DroppedAtMail); got != 1 {
			t.Fatalf("%d drops at MAIL FROM, want 1", got)
		}
		if c := e.sink.Count(smtptest.Connections); c != 2 {
			t.Fatalf("%d connections, want the dropped one and its replacement", c)
		}
		got, err := st.MessageOutByID(context.Background(), second.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Attempts != 1 || got.LastError != "" {
			t.Fatalf("attempts %d, last error %q: the dead connection counted as a failed attempt", got.Attempts, got.LastError)
		}
	})
}

// Start expires rows a dead process left sending, the loop sends what
// Notify announces, and Stop returns once everything is closed.
func TestStartNotifyStop(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *store.Store) {
		sentCh := make(chan string, 4)
		e := newEnv(t, st, func(e *env) {
			prev := e.opts.Hooks.Sent
			e.opts.Hooks.Sent = func(tx *store.Tx, m store.MessageOut) error {
				sentCh <- m.MessageID
				return prev(tx, m)
			}
		})
		stale := e.queue("stale@example.com", "Old")
		// A previous process claimed it an hour ago and died.
		mustClaimAt(t, st, stale, e.clock.Now().Add(-time.Hour))

		ctx, cancel := context.WithCancel(bg)
		defer cancel()
		if err := e.svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.Start(ctx); err == nil {
			t.Fatal("second Start accepted")
		}
		e.wantStatus(stale.ID, store.MessageUncertain)

		m := e.queue("ann@example.com", "Ann")
		e.svc.Notify()
		wctx, wcancel := context.WithTimeout(bg, 10*time.Second)
		defer wcancel()
		select {
		case id := <-sentCh:
			if id != m.MessageID {
				t.Fatalf("sent %s", id)
			}
		case <-wctx.Done():
			t.Fatalf("not sent after Notify; logs:\n%s", e.logs.String())
		}
		e.svc.Stop()
		e.svc.Stop()
		e.wantStatus(m.ID, store.MessageSent)
		// Stopped: RunOnce takes no more work.
		later := e.queue("bob@example.com", "Bob")
		if n := e.runOnce(); n != 0 {
			t.Fatalf("RunOnce after Stop sent %d", n)
		}
		e.wantStatus(later.ID, store.MessageQueued)
	})
}

// mustClaimAt claims m as a sender would have at "at".
func mustClaimAt(t *testing.T, st *store.Store, m store.MessageOut, at time.Time) {
	t.Helper()
	if err := st.InTx(bg, func(tx *store.Tx) error {
		_, err := tx.Exec(bg, `UPDATE messages_out SET next_attempt_at = ? WHERE id = ?`, at, m.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c, _, err := st.ClaimForSend(bg, "main", at, 10, nil)
	if err != nil || len(c) != 1 || c[0].ID != m.ID {
		t.Fatalf("claim at %v = %v, %v", at, c, err)
	}
}

func writeDKIMKey(t *testing.T) string {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dkim.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func headerValue(raw []byte, name string) string {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	return msg.Header.Get(name)
}

// Stop lets the SMTP transaction in flight finish and records it; the
// claimed message behind it goes back to the queue unattempted.
func TestStopLetsInFlightSendFinish(t *testing.T) {
	e := newEnv(t, openStore(t, store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(t.TempDir(), "f.db")}))
	first := e.queue("ann@example.com", "Ann")
	second := e.queue("bob@example.com", "Bob")
	entered, release := e.sink.BlockData()
	defer release()
	if err := e.svc.Start(bg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no send started")
	}
	stopped := make(chan struct{})
	go func() {
		e.svc.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a send was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return")
	}
	e.wantStatus(first.ID, store.MessageSent)
	r := e.wantStatus(second.ID, store.MessageQueued)
	if r.Attempts != 0 {
		t.Fatalf("unattempted message has %d attempts", r.Attempts)
	}
	if len(e.sink.Messages()) != 1 {
		t.Fatalf("sink got %d", len(e.sink.Messages()))
	}
}

// starttls is mandatory and tls is implicit: neither falls back to plain
// text against a server without TLS.
func TestTLSModesNeverFallBackToPlaintext(t *testing.T) {
	st := openStore(t, store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(t.TempDir(), "f.db")})
	for _, mode := range []string{"starttls", "tls"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, st, func(e *env) {
				e.acct.SMTP.TLS, e.acct.SMTP.InsecurePlaintext = mode, false
				e.acct.SMTP.Username, e.acct.SMTP.Password = "sam", "pw"
				e.sink.AddUser("sam", "pw")
			})
			m := e.queue(mode+"@example.com", "Ann")
			if n := e.runOnce(); n != 0 {
				t.Fatalf("sent %d over plain text", n)
			}
			r := e.wantStatus(m.ID, store.MessageQueued)
			if mode == "starttls" && !strings.Contains(r.LastError, "STARTTLS") {
				t.Fatalf("last_error = %q", r.LastError)
			}
			if e.sink.Count(smtptest.Mails) != 0 || e.sink.Count(smtptest.Auths)+e.sink.Count(smtptest.AuthFailures) != 0 {
				t.Fatalf("talked in plain text: %v", e.sink.Counts())
			}
		})
	}
}

// A backlog drained by the running loop — claims growing, the next claimed
// while one is handed out, sends recorded in groups — delivers every
// message once, records each sent with the hook run once for it, and
// leaves nothing sending.
func TestGuarantee1_NoStepSentTwice_BacklogRecordedInGroups(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *store.Store) {
		const n = 150
		var batches, hooked []int
		allHooked := make(chan struct{})
		e := newEnv(t, st, func(e *env) {
			e.acct.SMTP.Concurrency = 3
			e.opts.Hooks.SentBatch = func(tx *store.Tx, ms []store.MessageOut) error {
				e.mu.Lock()
				defer e.mu.Unlock()
				batches = append(batches, len(ms))
				for _, m := range ms {
					e.sentHooks = append(e.sentHooks, m.MessageID)
					hooked = append(hooked, int(m.ID))
				}
				if len(hooked) == n {
					close(allHooked)
				}
				return nil
			}
		})
		var ms []store.MessageOut
		for i := range n {
			ms = append(ms, e.queue(fmt.Sprintf("b%d@example.com", i), "B"))
		}
		if err := e.svc.Start(bg); err != nil {
			t.Fatal(err)
		}
		select {
		case <-allHooked:
		case <-time.After(20 * time.Second):
			t.Errorf("not all %d messages recorded after 20s (sink has %d)", n, e.sink.Count(smtptest.Delivered))
		}
		e.svc.Stop()
		for _, m := range ms {
			e.wantStatus(m.ID, store.MessageSent)
			if got := len(e.delivered(m.MessageID)); got != 1 {
				t.Errorf("%s delivered %d times", m.MessageID, got)
			}
		}
		sent, _ := e.hooks()
		if len(sent) != n || len(hooked) != n {
			t.Fatalf("the sent hook ran for %d messages (%d ids), want %d", len(sent), len(hooked), n)
		}
		slices.Sort(hooked)
		if len(slices.Compact(hooked)) != n {
			t.Fatalf("the sent hook ran more than once for a message")
		}
		t.Logf("%d messages recorded in %d groups", n, len(batches))
	})
}
