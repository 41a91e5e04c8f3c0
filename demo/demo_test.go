package demo

import (
	"bytes"
	"context"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/internal/testlog"
	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/replies"
	"github.com/followupd/followupd/store"
)

// The embedded copy must be examples/ as it is: the demo shows the example.
func TestEmbeddedExamplesMatch(t *testing.T) {
	want := map[string]bool{"followup.yaml": true, "contacts.csv": true}
	tpls, err := os.ReadDir("../examples/templates")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tpls {
		if !e.IsDir() {
			want["templates/"+e.Name()] = true
		}
	}
	got := map[string]bool{}
	err = fs.WalkDir(examples, "examples", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(path, "examples/")
		got[rel] = true
		emb, _ := examples.ReadFile(path)
		disk, err := os.ReadFile(filepath.Join("..", "examples", filepath.FromSlash(rel)))
		if err != nil {
			t.Errorf("demo/examples/%s is not in examples/: %v (run go generate ./demo/)", rel, err)
			return nil
		}
		if !bytes.Equal(emb, disk) {
			t.Errorf("demo/examples/%s differs from examples/%s: run go generate ./demo/", rel, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for f := range want {
		if !got[f] {
			t.Errorf("examples/%s is not embedded in demo/examples: run go generate ./demo/", f)
		}
	}
}

// Each script's message is understood as the script means it.
func TestScriptedMessagesAreUnderstood(t *testing.T) {
	now := time.Date(2026, 11, 30, 11, 0, 0, 0, time.UTC)
	all := append([]Prospect(nil), Prospects...)
	for _, p := range referred() {
		all = append(all, p)
	}
	for _, p := range all {
		t.Run(string(p.Behaviour)+"/"+p.Email, func(t *testing.T) {
			raw := "From: Ann Seller <ann@example.com>\r\nTo: " + p.Email + "\r\nSubject: Quick question about " + p.Company +
				"\r\nDate: Mon, 30 Nov 2026 09:00:00 +0100\r\nMessage-Id: <out-1@example.com>\r\nMIME-Version: 1.0\r\n" +
				"Content-Type: text/plain; charset=utf-8\r\n\r\nHi " + p.FirstName + ",\r\n\r\nWould a 15-minute call next week be useful?\r\n\r\nAnn\r\n"
			msg, err := mail.ReadMessage(strings.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			m := smtptest.Message{From: seller, To: []string{p.Email}, Data: []byte(raw), MessageID: "out-1@example.com", Header: msg.Header}
			ans := p.answer(m, seller, now)
			if _, err := mail.ReadMessage(bytes.NewReader(ans)); err != nil {
				t.Fatalf("not an RFC 5322 message: %v\n%s", err, ans)
			}
			res := replies.Classify(ans, now)
			switch p.Behaviour {
			case Bounce:
				if res.Kind != replies.KindBounce || res.BounceClass != "hard" || res.Recipient != p.Email || res.OriginalMessageID != "out-1@example.com" {
					t.Errorf("bounce: %+v", res)
				}
				return
			case OutOfOffice:
				want := time.Date(2026, 12, 10, 0, 0, 0, 0, time.UTC)
				if res.Kind != replies.KindAutoReply || res.ReturnDate.Format(time.DateOnly) != want.Format(time.DateOnly) {
					t.Errorf("out of office: kind %s, return %s; want autoreply back %s", res.Kind, res.ReturnDate, want.Format(time.DateOnly))
				}
			default:
				if res.Kind != replies.KindReply || string(res.Intent) != string(p.Behaviour) {
					t.Errorf("kind %s intent %s; want reply %s\n%s", res.Kind, res.Intent, p.Behaviour, res.Text)
				}
			}
			if len(res.InReplyTo) == 0 || res.InReplyTo[0] != "out-1@example.com" {
				t.Errorf("In-Reply-To: %v", res.InReplyTo)
			}
			if p.Behaviour == NotNow && (res.Until.Month() != time.March || res.Until.Year() != 2027) {
				t.Errorf("not now until %s; want March 2027", res.Until)
			}
			if p.Behaviour == Referral && res.Referral != p.Colleague {
				t.Errorf("referral to %q; want %q", res.Referral, p.Colleague)
			}
		})
	}
}

// The demo, run in-process on a fast clock, moves every scripted prospect
// as its script says, through the real daemon.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testlog.Buffer
	started := make(chan *Demo, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Options{Listen: "127.0.0.1:0", DayEvery: time.Second, For: 2 * time.Minute, Out: &out, Dir: t.TempDir(),
			Started: func(d *Demo) { started <- d }})
	}()
	var d *Demo
	select {
	case d = <-started:
	case err := <-errc:
		t.Fatalf("demo did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not start")
	}
	st := d.Store()
	contact := func(email string) store.Contact {
		c, _ := st.ContactByEmail(ctx, email)
		return c
	}
	enrollment := func(email, status string) bool {
		c, err := st.ContactByEmail(ctx, email)
		if err != nil {
			return false
		}
		es, _ := st.LiveEnrollments(ctx, c.ID)
		for _, e := range es {
			if e.Sequence == "intro" && e.Status == status {
				return true
			}
		}
		return false
	}
	by := map[Behaviour]string{}
	for _, p := range Prospects {
		by[p.Behaviour] = p.Email
	}
	checks := []struct {
		what string
		ok   func() bool
	}{
		{"interested → prospect", func() bool { return contact(by[Interested]).Stage == "prospect" }},
		{"not now → intro snoozed", func() bool { return enrollment(by[NotNow], store.EnrollmentSnoozed) }},
		{"out of office → intro paused", func() bool { return enrollment(by[OutOfOffice], store.EnrollmentPaused) }},
		{"bounce → bounced", func() bool { return contact(by[Bounce]).Stage == "bounced" }},
		{"unsubscribe → unsubscribed and suppressed", func() bool {
			c := contact(by[Unsubscribe])
			ok, _ := st.IsSuppressed(ctx, c.Email)
			return c.Stage == "unsubscribed" && c.Suppressed && ok
		}},
		{"referral → the colleague is a new contact", func() bool {
			return contact(Prospects[5].Colleague).Email != ""
		}},
	}
	done := map[string]bool{}
	deadline := time.Now().Add(90 * time.Second)
	for len(done) < len(checks) && time.Now().Before(deadline) {
		for _, c := range checks {
			if !done[c.what] && c.ok() {
				done[c.what] = true
				t.Logf("%s (demo time %s)", c.what, d.Clock.Now().Format("Mon 2 Jan 15:04"))
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range checks {
		if !done[c.what] {
			t.Errorf("not seen: %s", c.what)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not stop")
	}
	got := out.String()
	for _, want := range []string{"token: " + d.Token, d.URL + "/login", "Bearer " + d.Token, "sent ", "replied ", "stage_changed ", "bounced ", "Demo over (interrupted)"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// The demo configuration is the example's with its first half replaced:
// the stages, sequences and rules are the example's text, and the whole
// loads and passes the daemon's checks.
func TestDemoConfigKeepsTheExample(t *testing.T) {
	cfg, err := demoConfig("127.0.0.1:8025", "tok-0123456789abcdef", servers{SMTPHost: "127.0.0.1", SMTPPort: 2525, IMAPHost: "127.0.0.1", IMAPPort: 1143, IMAPUser: "u", IMAPPassword: "p"})
	if err != nil {
		t.Fatal(err)
	}
	ex, _ := examples.ReadFile("examples/followup.yaml")
	i := strings.Index(string(ex), "\nstages:")
	if i < 0 || !strings.HasSuffix(cfg, string(ex[i+1:])) {
		t.Fatalf("the demo config does not end with the example's stages, sequences and rules:\n%s", cfg)
	}
	for _, want := range []string{`listen: "127.0.0.1:8025"`, `api_token: "tok-0123456789abcdef"`, `base_url: "http://127.0.0.1:8025"`, "tls: none", "insecure_plaintext: true", "min_gap: 0s"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("the demo config lacks %q", want)
		}
	}
	path, err := writeConfig(t.TempDir(), "127.0.0.1:8025", "tok-0123456789abcdef", servers{SMTPHost: "127.0.0.1", SMTPPort: 2525, IMAPHost: "127.0.0.1", IMAPPort: 1143, IMAPUser: "u", IMAPPassword: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err != nil {
		t.Fatalf("the demo config does not load: %v", err)
	}
}
