package securitytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/daemon"
	"github.com/followupd/followupd/inbox"
	"github.com/followupd/followupd/inbox/imaptest"
	"github.com/followupd/followupd/internal/testlog"
	"github.com/followupd/followupd/outbox"
	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/web"
)

// daemonEnv is a whole followupd run against in-process servers.
type daemonEnv struct {
	d       *daemon.Daemon
	sink    *smtptest.Server
	imap    *imaptest.Server
	cfgPath string
	logs    *testlog.Buffer
}

// startDaemon writes config (a fmt template filled with the SMTP host and
// port, the IMAP host and port, and the webhook URL) and a templates folder
// holding one.md, then runs the daemon with its logs going to a buffer.
func startDaemon(t *testing.T, configTmpl, template string, setup func(*smtptest.Server)) *daemonEnv {
	t.Helper()
	e := &daemonEnv{sink: smtptest.Start(t), imap: imaptest.Start(t), logs: &testlog.Buffer{}}
	if setup != nil {
		setup(e.sink)
	}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	t.Cleanup(hook.Close)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "templates", "one.md"), []byte(template), 0o644); err != nil {
		t.Fatal(err)
	}
	e.cfgPath = filepath.Join(dir, "followup.yaml")
	cfg := fmt.Sprintf(configTmpl, e.sink.Host(), e.sink.Port(), e.imap.Host, e.imap.Port, hook.URL)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(bg, daemon.Options{
		ConfigPath: e.cfgPath, Migrate: true, LogOutput: e.logs,
		SchedulerInterval: 50 * time.Millisecond, LeaseInterval: 50 * time.Millisecond,
		OutboxOptions:  func(o *outbox.Options) { o.PollInterval = 50 * time.Millisecond },
		InboxOptions:   func(o *inbox.Options) { o.BackoffMin, o.BackoffMax = 10*time.Millisecond, 100*time.Millisecond },
		WebhookOptions: func(o *web.WebhookOptions) { o.Interval = 50 * time.Millisecond },
	})
	if err != nil {
		t.Fatalf("daemon.New: %v", err)
	}
	if err := d.Start(bg); err != nil {
		t.Fatalf("daemon.Start: %v", err)
	}
	e.d = d
	t.Cleanup(func() { d.Stop(10 * time.Second) })
	return e
}

const headerConfig = `
database: {driver: sqlite, path: followupd.db}
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
    # imap %s %d unused
sequences:
  - name: intro
    triggers: [{on_stage: lead}]
    window: {days: mon-sun, hours: "00:00-24:00", timezone: account}
    steps:
      - template: one
# webhook %s unused
`

// TestNoHeaderInjection: contact data carrying CR LF and header lines goes
// through the scheduler, the templates and the outbox to the SMTP sink
// without adding a header or a recipient.
func TestNoHeaderInjection(t *testing.T) {
	tmpl := "---\nsubject: Hello {{ .Contact.FirstName | default \"there\" }} at {{ .Contact.Company | default \"you\" }}\n---\n" +
		"Hi {{ .Contact.FirstName | default \"there\" }} {{ .Contact.LastName | default \"\" }},\n\nShall we talk?\n"
	e := startDaemon(t, headerConfig, tmpl, nil)
	ctx, cancel := context.WithTimeout(bg, 20*time.Second)
	defer cancel()
	// One contact stored as is (as any code path writing the store could),
	// one through the API, which is how people add them.
	raw := store.Contact{
		Email:     "eve@example.org",
		FirstName: "Eve\r\nBcc: x@y",
		LastName:  "Lee\nCc: cc@y",
		Company:   "Acme\r\n\r\nInjected body\r\nTo: to@y",
	}
	if _, _, err := e.d.Store().UpsertContact(ctx, raw); err != nil {
		t.Logf("the store refuses the raw contact (safe): %v", err)
	}
	body, _ := json.Marshal(map[string]string{
		"email": "mallory@example.org", "first_name": "Mallory\r\nBcc: x@y", "last_name": "M\nCc: cc@y",
		"company": "Acme\r\n\r\nInjected body\r\nTo: to@y",
	})
	req, _ := http.NewRequest("POST", "http://"+e.d.HTTPAddr()+"/api/v1/contacts", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer 0123456789abcdef-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("API refused the contact: %d", resp.StatusCode)
	}
	e.d.Wake()
	// The API's contact must be mailed; the raw one may be refused by the
	// outbox (a message that cannot be built safely is failed), never sent
	// with extra headers or recipients.
	waitFor(t, "the API contact's message", func() bool {
		for _, m := range e.sink.Messages() {
			if slices.Contains(m.To, "mallory@example.org") {
				return true
			}
		}
		return false
	})
	waitFor(t, "the raw contact's message to be sent or failed", func() bool {
		var n int
		err := e.d.Store().InTx(ctx, func(tx *store.Tx) error {
			return tx.Get(ctx, &n, "SELECT COUNT(*) FROM messages_out WHERE to_addr = ? AND status IN ('sent', 'failed')", "eve@example.org")
		})
		return err == nil && n == 1
	})
	msgs := e.sink.Messages()
	if n := e.sink.Count(smtptest.Rcpts); n != len(msgs) {
		t.Errorf("%d RCPT TO commands for %d messages, want one each", n, len(msgs))
	}
	for _, m := range msgs {
		if len(m.To) != 1 || (m.To[0] != "eve@example.org" && m.To[0] != "mallory@example.org") {
			t.Errorf("envelope recipients %q, want one contact", m.To)
		}
		head, _, _ := strings.Cut(string(m.Data), "\r\n\r\n")
		for _, line := range strings.Split(head, "\r\n") {
			name, _, _ := strings.Cut(line, ":")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "bcc", "cc":
				t.Errorf("injected header line %q", line)
			}
			if strings.ContainsAny(line, "\r\n") {
				t.Errorf("bare CR or LF in header line %q", line)
			}
		}
		if strings.Contains(string(m.Data), "\r\nInjected body") {
			t.Errorf("company text broke out of its header into the body")
		}
		for _, h := range []string{"Bcc", "Cc"} {
			if v := m.Header.Get(h); v != "" {
				t.Errorf("%s header: %q", h, v)
			}
		}
		if to, err := mail.ParseAddressList(m.Header.Get("To")); err != nil || len(to) != 1 || to[0].Address != m.To[0] {
			t.Errorf("To header %q: %v, want one address %s", m.Header.Get("To"), to, m.To[0])
		}
		if len(m.Header["To"]) != 1 || len(m.Header["Subject"]) != 1 {
			t.Errorf("To or Subject header repeated: %q %q", m.Header["To"], m.Header["Subject"])
		}
		dec := new(mime.WordDecoder)
		if subj, err := dec.DecodeHeader(m.Header.Get("Subject")); err != nil || strings.ContainsAny(subj, "\r\n") {
			t.Errorf("subject %q (%v) spans lines", subj, err)
		}
	}
}

// Distinctive secrets: none may appear in a log line or the config dump.
const (
	secAPIToken   = "sec-api-token-ZQ71xw-7c1b"
	secUnsub      = "sec-unsubscribe-secret-KP3vy-99e2"
	secSMTPPass   = "sec-smtp-password-RT55mq-1f0a"
	secIMAPPass   = "sec-imap-password-LM28zz-4d3c"
	secWebhook    = "sec-webhook-secret-HH90ab-0b7e"
	secWrongToken = "sec-presented-wrong-token-XY12"
)

const secretsConfig = `
database: {driver: sqlite, path: followupd.db}
log: {level: debug, format: json}
http: {listen: "127.0.0.1:0", api_token: "${FUT_API_TOKEN}"}
unsubscribe: {base_url: "https://f.example.com", secret: "` + secUnsub + `"}
accounts:
  - name: sales
    from_name: Ann Seller
    from_address: ann@example.com
    timezone: UTC
    min_gap: 0s
    max_gap: 0s
    send_window: {days: mon-sun, hours: "00:00-24:00"}
    smtp: {host: %s, port: %d, tls: none, insecure_plaintext: true, username: sam, password: "${FUT_SMTP_PASSWORD}", auth: plain}
    imap: {host: %s, port: %d, tls: none, insecure_plaintext: true, username: alice@example.test, password: "` + secIMAPPass + `"}
sequences:
  - name: intro
    triggers: [{on_stage: lead}]
    window: {days: mon-sun, hours: "00:00-24:00", timezone: account}
    steps:
      - template: one
webhooks:
  - {url: "%s", events: [sent, stage_changed, unsubscribed], secret: "` + secWebhook + `"}
`

// TestSecretsNeverInLogsOrDump runs the daemon at debug level with JSON
// logs through a send (SMTP AUTH with a password), a failing IMAP login
// (wrong password), API calls with the right and a wrong token, an
// unsubscribe and webhooks, and checks that no secret reaches the log or
// the config dump.
func TestSecretsNeverInLogsOrDump(t *testing.T) {
	t.Setenv("FUT_API_TOKEN", secAPIToken)
	t.Setenv("FUT_SMTP_PASSWORD", secSMTPPass)
	e := startDaemon(t, secretsConfig, "---\nsubject: Hello {{ .Contact.FirstName | default \"there\" }}\n---\nShall we talk?\n", func(s *smtptest.Server) {
		s.AddUser("sam", secSMTPPass)
		s.RequireAuth(true)
	})
	ctx, cancel := context.WithTimeout(bg, 20*time.Second)
	defer cancel()
	if _, _, err := e.d.Store().UpsertContact(ctx, store.Contact{Email: "jo@example.org", FirstName: "Jo"}); err != nil {
		t.Fatal(err)
	}
	e.d.Wake()
	if _, err := e.sink.WaitForMessages(ctx, 1); err != nil {
		t.Fatalf("no message sent: %v\nlogs:\n%s", err, e.logs)
	}
	if e.sink.Count(smtptest.Auths) == 0 {
		t.Errorf("the send did not authenticate: the SMTP password was not exercised")
	}
	jo, err := e.d.Store().ContactByEmail(ctx, "jo@example.org")
	if err != nil {
		t.Fatal(err)
	}
	unsubToken := web.UnsubscribeToken(secUnsub, jo.ID, jo.Email)

	base := "http://" + e.d.HTTPAddr()
	call := func(method, path, token string, body io.Reader) {
		req, _ := http.NewRequest(method, base+path, body)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	call("GET", "/api/v1/contacts/jo@example.org", secAPIToken, nil)
	call("GET", "/api/v1/contacts", secWrongToken, nil)
	call("GET", "/metrics", secAPIToken, nil)
	call("POST", "/login", "", strings.NewReader("token="+secWrongToken))
	call("GET", "/u/"+unsubToken, "", nil)
	call("POST", "/u/"+unsubToken, "", strings.NewReader("List-Unsubscribe=One-Click"))

	waitFor(t, "the watcher to try to log in with the (wrong) IMAP password", func() bool {
		for _, c := range e.imap.Commands() {
			if strings.HasPrefix(strings.ToUpper(c), "LOGIN") {
				return true
			}
		}
		return false
	})
	waitFor(t, "the failed IMAP login to be logged", func() bool {
		for _, line := range strings.Split(e.logs.String(), "\n") {
			l := strings.ToLower(line)
			if strings.Contains(l, "login") && !strings.Contains(l, "/login") && strings.Contains(l, `"level":"warn`) || strings.Contains(l, "login") && strings.Contains(l, `"level":"error`) {
				return true
			}
		}
		return false
	})
	waitFor(t, "the unsubscribe to commit", func() bool {
		c, err := e.d.Store().ContactByEmail(ctx, "jo@example.org")
		return err == nil && c.Suppressed
	})
	time.Sleep(300 * time.Millisecond) // let webhooks and retries log
	e.d.Stop(10 * time.Second)
	logs := e.logs.String()

	secrets := map[string]string{
		"api token": secAPIToken, "unsubscribe secret": secUnsub, "smtp password": secSMTPPass,
		"imap password": secIMAPPass, "webhook secret": secWebhook, "presented wrong token": secWrongToken,
		"unsubscribe token":          unsubToken,
		"smtp AUTH PLAIN":            base64.StdEncoding.EncodeToString([]byte("\x00sam\x00" + secSMTPPass)),
		"smtp password (base64)":     base64.StdEncoding.EncodeToString([]byte(secSMTPPass)),
		"imap password (base64)":     base64.StdEncoding.EncodeToString([]byte(secIMAPPass)),
		"imap AUTH PLAIN":            base64.StdEncoding.EncodeToString([]byte("\x00alice@example.test\x00" + secIMAPPass)),
		"api token (unique part)":    "ZQ71xw",
		"smtp password (unique)":     "RT55mq",
		"imap password (unique)":     "LM28zz",
		"webhook secret (unique)":    "HH90ab",
		"unsubscribe secret (uniq.)": "KP3vy",
	}
	for what, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the %s appears in the log", what)
		}
	}
	debug, lines := 0, 0
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines++
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", sc.Text())
			continue
		}
		if rec["level"] == "DEBUG" {
			debug++
		}
	}
	if lines == 0 || debug == 0 {
		t.Errorf("%d log lines, %d at debug level: the logger was not exercised", lines, debug)
	}

	c, err := config.Load(e.cfgPath)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	dump, err := c.Dump()
	if err != nil {
		t.Fatal(err)
	}
	for what, s := range secrets {
		if strings.Contains(string(dump), s) {
			t.Errorf("the %s appears in config dump:\n%s", what, dump)
		}
	}
	if n := strings.Count(string(dump), "<redacted>"); n < 5 {
		t.Errorf("config dump shows %d <redacted> values, want 5 (api token, unsubscribe secret, smtp and imap passwords, webhook secret):\n%s", n, dump)
	}
	if t.Failed() {
		t.Logf("logs:\n%s", logs)
	}
}
