package outbox

import (
	"errors"
	"testing"
	"time"

	"github.com/wneessen/go-mail/smtp"

	"github.com/followupd/followupd/config"
)

// go-mail's PLAIN and LOGIN send a password in clear text to localhost;
// the outbox's own check refuses unless the config said so twice.
func TestAuthenticatorRefusesPlaintextUnlessAllowed(t *testing.T) {
	for _, mode := range []string{"auto", "plain", "login", "cram-md5", "xoauth2"} {
		a := &authenticator{mode: mode, user: "u", password: "p", token: "t"}
		_, _, err := a.Start(&smtp.ServerInfo{Name: "localhost", TLS: false, Auth: []string{"PLAIN", "LOGIN"}})
		if !errors.Is(err, errPlaintextAuth) {
			t.Errorf("%s over plain text: %v, want refusal", mode, err)
		}
		a.allowPlaintext = true
		if _, _, err := a.Start(&smtp.ServerInfo{Name: "localhost", TLS: false, Auth: []string{"PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"}}); err != nil {
			t.Errorf("%s allowed twice: %v", mode, err)
		}
	}
	a := &authenticator{mode: "auto", user: "u", password: "p"}
	mech, _, err := a.Start(&smtp.ServerInfo{Name: "mail.example.com", TLS: true, Auth: []string{"CRAM-MD5", "LOGIN"}})
	if err != nil || mech != "LOGIN" {
		t.Errorf("auto over TLS picked %q, %v; want LOGIN", mech, err)
	}
	if _, _, err := a.Start(&smtp.ServerInfo{Name: "mail.example.com", TLS: true, Auth: []string{"GSSAPI"}}); err == nil {
		t.Error("auto with no usable mechanism succeeded")
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	s := &Service{opts: Options{RetryBase: time.Minute, RetryMax: time.Hour, Rand: func() float64 { return 0.5 }}}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	for i, w := range want {
		if got := s.backoff(nil, i+1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	s.opts.Rand = func() float64 { return 0 }
	if got := s.backoff(nil, 1); got != 48*time.Second {
		t.Errorf("low jitter = %v", got)
	}
	// An account's smtp.retry_base and retry_max win.
	s.opts.Rand = func() float64 { return 0.5 }
	a := &account{cfg: config.Account{SMTP: config.SMTP{RetryBase: config.Duration(10 * time.Second), RetryMax: config.Duration(30 * time.Second)}}}
	for i, w := range []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second, 30 * time.Second} {
		if got := s.backoff(a, i+1); got != w {
			t.Errorf("account backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
}

// The next claim starts when a quarter of a batch is left, or earlier when
// claiming took longer than sending that quarter, and never before the
// batch's first message.
func TestLeadForStartsTheNextClaimInTime(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		n                 int
		claimTook, perMsg time.Duration
		want              int
	}{
		{64, 0, 0, 16},         // nothing measured yet
		{64, 2 * ms, ms, 16},   // a fast claim: a quarter is plenty
		{64, 20 * ms, ms, 30},  // 20 ms to claim, 1 ms per message: 30 left with margin
		{64, 200 * ms, ms, 64}, // slower than the whole batch: at once
		{3, 0, 0, 0},           // a quarter of 3
		{128, 10 * ms, 250 * time.Microsecond, 60},
	} {
		if got := leadFor(c.n, c.claimTook, c.perMsg); got != c.want {
			t.Errorf("leadFor(%d, %s, %s) = %d, want %d", c.n, c.claimTook, c.perMsg, got, c.want)
		}
	}
}
