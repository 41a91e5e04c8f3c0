package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/followupd/followupd/inbox"
	"github.com/followupd/followupd/inbox/imaptest"
	"github.com/followupd/followupd/outbox"
	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
	"github.com/followupd/followupd/web"
)

const runConfig = `
database: {driver: %s, path: followupd.db, dsn: "%s"}
http: {listen: "127.0.0.1:0", api_token: "0123456789abcdef-token"}
unsubscribe: {base_url: "https://f.example.com", secret: "0123456789abcdef0123"}
accounts:
  - name: sales
    from_name: Ann Seller
    from_address: ann@example.com
    timezone: UTC
    min_gap: 0s
    max_gap: 0s
    send_window: {days: mon-sun, hours: "00:00-24:00"}
    smtp: {host: %s, port: %d, tls: none, insecure_plaintext: true}
    imap: {host: %s, port: %d, tls: none, insecure_plaintext: true, username: %s, password: %s}
sequences:
  - name: intro
    triggers: [{on_stage: lead}]
    window: {days: mon-sun, hours: "00:00-24:00", timezone: account}
    steps:
      - template: one
      - template: one
        delay: 1d
        thread: reply
rules:
  - {on: reply, intent: interested, do: {set_stage: prospect, stop: all}}
webhooks:
  - {url: "%s", events: [sent, replied, stage_changed], secret: "webhook-secret-0123"}
`

// startDaemon runs a whole followupd against in-process SMTP and IMAP
// servers and returns it with the servers.
func startDaemon(t *testing.T, dialect string) (*Daemon, *smtptest.Server, *imaptest.Server, *hookSink) {
	t.Helper()
	return startDaemonWith(t, dialect, nil)
}

// startDaemonWith is startDaemon with the configuration changed by edit.
func startDaemonWith(t *testing.T, dialect string, edit func(yaml string) string) (*Daemon, *smtptest.Server, *imaptest.Server, *hookSink) {
	t.Helper()
	hooks := newHookSink(t)
	sink := smtptest.Start(t)
	imap := imaptest.Start(t)
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "templates"), 0o755)
	os.WriteFile(filepath.Join(dir, "templates", "one.md"), []byte("---\nsubject: Hello {{ .Contact.FirstName | default \"there\" }}\n---\nShall we talk?\n"), 0o644)
	dsn := ""
	if dialect == store.DialectPostgres {
		dsn = storetest.Fresh(t, dialect).DSN
	}
	cfg := filepath.Join(dir, "followup.yaml")
	yaml := fmt.Sprintf(runConfig, dialect, dsn, sink.Host(), sink.Port(), imap.Host, imap.Port, imap.Username, imap.Password, hooks.URL)
	if edit != nil {
		yaml = edit(yaml)
	}
	os.WriteFile(cfg, []byte(yaml), 0o644)
	d, err := New(context.Background(), Options{
		ConfigPath: cfg, Migrate: true, LogOutput: io.Discard,
		SchedulerInterval: 50 * time.Millisecond, LeaseInterval: 50 * time.Millisecond,
		OutboxOptions:  func(o *outbox.Options) { o.PollInterval = 50 * time.Millisecond },
		InboxOptions:   func(o *inbox.Options) { o.BackoffMin, o.BackoffMax = 10*time.Millisecond, 100*time.Millisecond },
		WebhookOptions: func(o *web.WebhookOptions) { o.Interval = 50 * time.Millisecond },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(10 * time.Second) })
	return d, sink, imap, hooks
}

// hookSink is a webhook receiver that checks signatures.
type hookSink struct {
	*httptest.Server
	mu     sync.Mutex
	events []string
	bad    int
}

func newHookSink(t *testing.T) *hookSink {
	h := &hookSink{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if r.Header.Get("X-Followupd-Signature") != web.Signature("webhook-secret-0123", body) {
			h.bad++
		}
		h.events = append(h.events, r.Header.Get("X-Followupd-Event"))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookSink) got() (events []string, bad int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.events...), h.bad
}

// waitFor polls a condition that another goroutine makes true; it is the
// only way to observe a database write from outside the daemon.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRun(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		d, sink, imap, hooks := startDaemon(t, dialect)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, _, err := d.Store().UpsertContact(ctx, store.Contact{Email: "jo@example.org", FirstName: "Jo"}); err != nil {
			t.Fatal(err)
		}
		d.Wake()
		if _, err := sink.WaitForMessages(ctx, 1); err != nil {
			t.Fatalf("no message sent: %v", err)
		}
		first := sink.Messages()[0]
		raw := "From: Jo <jo@example.org>\r\nTo: ann@example.com\r\nSubject: Re: Hello Jo\r\n" +
			"Message-ID: <reply-1@example.org>\r\nIn-Reply-To: <" + first.MessageID + ">\r\n" +
			"Date: " + time.Now().Format(time.RFC1123Z) + "\r\n\r\nYes, let's talk! Thursday works.\r\n"
		imap.Deliver("INBOX", []byte(raw))
		waitFor(t, "the reply to move the contact to prospect", func() bool {
			c, err := d.Store().ContactByEmail(ctx, "jo@example.org")
			return err == nil && c.Stage == "prospect"
		})
		if n := imap.Seen("INBOX"); n != 0 {
			t.Errorf("%d messages marked \\Seen: the mailbox must be left as it was", n)
		}
		// The API answers with the token and refuses without it.
		base := "http://" + d.HTTPAddr()
		req, _ := http.NewRequest("GET", base+"/api/v1/contacts/jo@example.org", nil)
		req.Header.Set("Authorization", "Bearer 0123456789abcdef-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "prospect") {
			t.Errorf("API: %d %s", resp.StatusCode, body)
		}
		if resp, err := http.Get(base + "/api/v1/contacts"); err != nil || resp.StatusCode != 401 {
			t.Errorf("API without a token: %v %v", resp.StatusCode, err)
		}
		waitFor(t, "webhooks for the send, the reply and the stage change", func() bool {
			evs, _ := hooks.got()
			return slices.Contains(evs, "sent") && slices.Contains(evs, "replied") && slices.Contains(evs, "stage_changed")
		})
		if _, bad := hooks.got(); bad != 0 {
			t.Errorf("%d webhook deliveries with a bad signature", bad)
		}
		start := time.Now()
		d.Stop(10 * time.Second)
		if el := time.Since(start); el > 10*time.Second {
			t.Errorf("stop took %s", el)
		}
		if len(sink.Messages()) != 1 {
			t.Errorf("sink got %d messages; the contact replied after the first", len(sink.Messages()))
		}
	})
}

func TestRunRefusesABrokenConfig(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "templates"), 0o755)
	os.WriteFile(filepath.Join(dir, "templates", "one.md"), []byte("---\nsubject: Hi\n---\nHello {{ .Contact.Company }}, shall we talk?\n"), 0o644)
	cfg := filepath.Join(dir, "followup.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(runConfig, "sqlite", "", "127.0.0.1", 25, "127.0.0.1", 143, "u", "p", "https://hooks.example.com/x")), 0o644)
	_, err := New(context.Background(), Options{ConfigPath: cfg, LogOutput: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "one.md:4:") || !strings.Contains(err.Error(), "Company") {
		t.Fatalf("New accepted a template with a hole for an email-only contact: %v", err)
	}
}
