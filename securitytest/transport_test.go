package securitytest

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/inbox"
	"github.com/followupd/followupd/inbox/imaptest"
	"github.com/followupd/followupd/outbox"
	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/store"
)

const (
	smtpUser = "sam"
	smtpPass = "smtp-pw-Zx81-distinctive"
)

// newOutbox builds an outbox for one account "main" whose SMTP server is
// srv.
func newOutbox(t *testing.T, st *store.Store, srv config.Server) *outbox.Service {
	t.Helper()
	svc, err := outbox.New(outbox.Options{
		Store: st,
		Accounts: []config.Account{{
			Name: "main", FromName: "Sam Seller", FromAddress: "sam@seller.test",
			SMTP: config.SMTP{Server: srv, Concurrency: 1}, OnUncertain: "skip",
		}},
		Unsubscribe:  config.Unsubscribe{BaseURL: "https://followup.example.com"},
		SMTPTimeout:  5 * time.Second,
		IMAPTimeout:  5 * time.Second,
		StoreTimeout: 5 * time.Second,
		Rand:         func() float64 { return 0.5 },
	})
	if err != nil {
		t.Fatalf("outbox.New: %v", err)
	}
	t.Cleanup(svc.Stop)
	return svc
}

// newInboxWatcher builds a watcher for im with a handler that does nothing.
func newInboxWatcher(t *testing.T, st *store.Store, im *config.IMAP, change func(*inbox.Options)) (*inbox.Watcher, error) {
	t.Helper()
	o := inbox.Options{
		Store:          st,
		Account:        config.Account{Name: "sales", FromAddress: "alice@example.test", IMAP: im},
		Handler:        func(context.Context, *store.Tx, inbox.Message) error { return nil },
		BackoffMin:     10 * time.Millisecond,
		BackoffMax:     50 * time.Millisecond,
		CommandTimeout: 5 * time.Second,
		DialTimeout:    5 * time.Second,
	}
	if change != nil {
		change(&o)
	}
	w, err := inbox.New(o)
	if err == nil {
		t.Cleanup(w.Stop)
	}
	return w, err
}

// authOnWire reports whether s holds an SMTP AUTH command or the password
// in any form the mechanisms would carry it.
func authOnWire(s string) bool {
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + smtpUser + "\x00" + smtpPass))
	return strings.Contains(strings.ToUpper(s), "AUTH ") ||
		strings.Contains(s, smtpPass) ||
		strings.Contains(s, plain) ||
		strings.Contains(s, base64.StdEncoding.EncodeToString([]byte(smtpPass)))
}

// TestCredentialsNeverSentOverPlaintext: an account that asks for TLS
// (starttls or implicit tls) never falls back to sending its password in
// clear text to a server that offers no TLS; only tls: none together with
// insecure_plaintext: true sends credentials unencrypted.
func TestCredentialsNeverSentOverPlaintext(t *testing.T) {
	t.Run("smtp", func(t *testing.T) {
		for _, mode := range []string{"starttls", "tls"} {
			t.Run(mode, func(t *testing.T) {
				sink := smtptest.Start(t)
				sink.AddUser(smtpUser, smtpPass)
				p := startProxy(t, sink.Addr(), nil)
				host, port := p.addr()
				st := newStore(t)
				m := queueMessage(t, st, "jo@example.org")
				svc := newOutbox(t, st, config.Server{Host: host, Port: port, TLS: mode, Username: smtpUser, Password: smtpPass, Auth: "auto"})
				n, err := svc.RunOnce(bg, "main")
				if n != 0 {
					t.Errorf("RunOnce sent %d messages over a server without TLS", n)
				}
				t.Logf("RunOnce: %v", err)
				if conns, _ := p.stats(); conns == 0 {
					t.Fatalf("the outbox never connected: the test proves nothing")
				}
				if wire := p.sent(); authOnWire(wire) {
					t.Errorf("credentials went over plaintext with tls: %s:\n%q", mode, wire)
				}
				if got := sink.Count(smtptest.Auths) + sink.Count(smtptest.AuthFailures); got != 0 {
					t.Errorf("server saw %d AUTH attempts", got)
				}
				if got := sink.Count(smtptest.Mails); got != 0 || len(sink.Messages()) != 0 {
					t.Errorf("server saw %d MAIL commands, %d messages: mail went out unencrypted", got, len(sink.Messages()))
				}
				if row, err := st.MessageOutByID(bg, m.ID); err == nil && row.Status == "sent" {
					t.Errorf("message recorded sent")
				}
			})
		}
		t.Run("none+insecure_plaintext", func(t *testing.T) {
			// The control: said twice, credentials do go in clear text,
			// and the proxy sees them (so the checks above can see them).
			sink := smtptest.Start(t)
			sink.AddUser(smtpUser, smtpPass)
			sink.RequireAuth(true)
			p := startProxy(t, sink.Addr(), nil)
			host, port := p.addr()
			st := newStore(t)
			queueMessage(t, st, "jo@example.org")
			svc := newOutbox(t, st, config.Server{Host: host, Port: port, TLS: "none", InsecurePlaintext: true, Username: smtpUser, Password: smtpPass, Auth: "plain"})
			if n, err := svc.RunOnce(bg, "main"); n != 1 || err != nil {
				t.Fatalf("RunOnce = %d, %v; want 1 sent", n, err)
			}
			if !authOnWire(p.sent()) || sink.Count(smtptest.Auths) != 1 {
				t.Errorf("control: no AUTH seen on the wire (%d auths)", sink.Count(smtptest.Auths))
			}
		})
		t.Run("none without insecure_plaintext is refused", func(t *testing.T) {
			_, err := outbox.New(outbox.Options{Store: newStore(t), Accounts: []config.Account{{
				Name: "main", FromAddress: "sam@seller.test", OnUncertain: "skip",
				SMTP: config.SMTP{Server: config.Server{Host: "127.0.0.1", Port: 25, TLS: "none", Username: smtpUser, Password: smtpPass}},
			}}})
			if err == nil || !strings.Contains(err.Error(), "insecure_plaintext") {
				t.Errorf("outbox.New with tls: none alone: %v; want a refusal naming insecure_plaintext", err)
			}
		})
	})

	t.Run("imap", func(t *testing.T) {
		for _, mode := range []string{"starttls", "tls"} {
			t.Run(mode, func(t *testing.T) {
				srv := imaptest.Start(t) // plaintext only, accepts LOGIN in clear
				im := srv.IMAP()
				im.TLS, im.InsecurePlaintext = mode, false
				w, err := newInboxWatcher(t, newStore(t), im, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.RunOnce(bg); err == nil {
					t.Errorf("RunOnce succeeded with tls: %s against a plaintext-only server", mode)
				}
				if n := srv.Logins(); n != 0 {
					t.Errorf("server saw %d logins", n)
				}
				for _, c := range srv.Commands() {
					u := strings.ToUpper(c)
					if strings.HasPrefix(u, "LOGIN") || strings.HasPrefix(u, "AUTHENTICATE") {
						t.Errorf("credentials sent over plaintext: %q", c)
					}
				}
			})
		}
		t.Run("none+insecure_plaintext", func(t *testing.T) {
			srv := imaptest.Start(t)
			w, err := newInboxWatcher(t, newStore(t), srv.IMAP(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.RunOnce(bg); err != nil {
				t.Fatalf("control: %v", err)
			}
			if srv.Logins() != 1 {
				t.Errorf("control: %d logins, want 1", srv.Logins())
			}
		})
		t.Run("none without insecure_plaintext is refused", func(t *testing.T) {
			srv := imaptest.Start(t)
			im := srv.IMAP()
			im.InsecurePlaintext = false
			if _, err := newInboxWatcher(t, newStore(t), im, nil); err == nil {
				t.Errorf("inbox.New accepted tls: none without insecure_plaintext")
			}
		})
	})

	t.Run("config", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "followup.yaml")
		yaml := `accounts:
  - name: sales
    from_address: ann@example.com
    smtp: {host: smtp.example.com, tls: none, username: ann, password: x}
    imap: {host: imap.example.com, tls: none, username: ann, password: x}
`
		_, err := config.Parse(path, []byte(yaml), func(string) (string, bool) { return "", false })
		es, ok := err.(config.Errors)
		if !ok {
			t.Fatalf("Parse: %v; want config.Errors", err)
		}
		var lines []int
		for _, e := range es {
			if strings.Contains(e.Msg, "insecure_plaintext") {
				lines = append(lines, e.Line)
			}
		}
		if len(lines) != 2 || lines[0] != 4 || lines[1] != 5 {
			t.Errorf("want one insecure_plaintext error on line 4 (smtp) and one on line 5 (imap), got lines %v:\n%v", lines, err)
		}
		ok2 := strings.Replace(yaml, "tls: none,", "tls: none, insecure_plaintext: true,", 2)
		if _, err := config.Parse(path, []byte(ok2), func(string) (string, bool) { return "", false }); err != nil && strings.Contains(err.Error(), "insecure_plaintext") {
			t.Errorf("tls: none with insecure_plaintext: true still refused: %v", err)
		}
	})
}

// TestTLSCertificatesVerifiedByDefault: a server whose certificate nobody
// trusts (self-signed) is refused before any credential is sent, unless the
// account says insecure_skip_verify.
func TestTLSCertificatesVerifiedByDefault(t *testing.T) {
	t.Run("smtp", func(t *testing.T) {
		for _, skip := range []bool{false, true} {
			name := map[bool]string{false: "verify", true: "insecure_skip_verify"}[skip]
			t.Run(name, func(t *testing.T) {
				sink := smtptest.Start(t)
				sink.AddUser(smtpUser, smtpPass)
				p := startProxy(t, sink.Addr(), selfSigned(t))
				host, port := p.addr()
				st := newStore(t)
				queueMessage(t, st, "jo@example.org")
				svc := newOutbox(t, st, config.Server{Host: host, Port: port, TLS: "tls", InsecureSkipVerify: skip, Username: smtpUser, Password: smtpPass, Auth: "auto"})
				n, err := svc.RunOnce(bg, "main")
				conns, handshakes := p.stats()
				if conns == 0 {
					t.Fatalf("the outbox never connected (RunOnce: %v)", err)
				}
				if !skip {
					if n != 0 || handshakes != 0 || len(sink.Messages()) != 0 {
						t.Errorf("self-signed certificate accepted: sent %d, %d handshakes, %d messages (RunOnce: %v)", n, handshakes, len(sink.Messages()), err)
					}
					if sink.Count(smtptest.Auths)+sink.Count(smtptest.AuthFailures) != 0 {
						t.Errorf("credentials sent to an unverified server")
					}
					return
				}
				if n != 1 || len(sink.Messages()) != 1 {
					t.Errorf("insecure_skip_verify: sent %d (RunOnce: %v), want 1", n, err)
				}
			})
		}
	})
	t.Run("imap", func(t *testing.T) {
		for _, mode := range []string{"tls", "starttls"} {
			t.Run(mode, func(t *testing.T) {
				srv := imaptest.StartWith(t, imaptest.Options{TLS: mode})
				// No TLSConfig: the system roots, which do not hold the
				// server's self-signed certificate.
				w, err := newInboxWatcher(t, newStore(t), srv.IMAP(), nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.RunOnce(bg); err == nil {
					t.Errorf("self-signed certificate accepted")
				}
				if srv.Logins() != 0 {
					t.Errorf("%d logins on an unverified server", srv.Logins())
				}
				im := srv.IMAP()
				im.InsecureSkipVerify = true
				w, err = newInboxWatcher(t, newStore(t), im, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.RunOnce(bg); err != nil {
					t.Errorf("insecure_skip_verify: %v", err)
				}
				if srv.Logins() != 1 {
					t.Errorf("insecure_skip_verify: %d logins, want 1", srv.Logins())
				}
			})
		}
	})
}

// TestFetchedMessagesSizeLimited: a 5 MB message in the mailbox reaches
// the handler cut to max_message_bytes (and marked truncated), so that one
// huge mail cannot exhaust the watcher's memory.
func TestFetchedMessagesSizeLimited(t *testing.T) {
	srv := imaptest.Start(t)
	var big strings.Builder
	big.WriteString("From: Jo <jo@example.org>\r\nTo: alice@example.test\r\nSubject: big\r\n" +
		"Message-ID: <big-1@example.org>\r\nDate: " + time.Now().Format(time.RFC1123Z) + "\r\n\r\n")
	line := strings.Repeat("x", 998) + "\r\n"
	for big.Len() < 5<<20 {
		big.WriteString(line)
	}
	srv.Deliver("INBOX", []byte(big.String()))

	for _, limit := range []int{64 << 10, 0} { // 0: the default, 256 KiB
		t.Run(fmt.Sprint("max_message_bytes=", limit), func(t *testing.T) {
			want := limit
			if want == 0 {
				want = 256 << 10
			}
			im := srv.IMAP()
			im.MaxMessageBytes = limit
			var got []inbox.Message
			w, err := newInboxWatcher(t, newStore(t), im, func(o *inbox.Options) {
				o.Handler = func(_ context.Context, _ *store.Tx, m inbox.Message) error {
					got = append(got, m)
					return nil
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.RunOnce(bg); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("handler saw %d messages, want 1", len(got))
			}
			m := got[0]
			if len(m.Raw) > want {
				t.Errorf("handler got %d bytes, more than max_message_bytes %d", len(m.Raw), want)
			}
			if !m.Truncated || m.Size < 5<<20 {
				t.Errorf("Truncated=%v Size=%d, want true and the full size", m.Truncated, m.Size)
			}
		})
	}
}
