package inbox_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/inbox"
	"github.com/followupd/followupd/inbox/dovecottest"
	"github.com/followupd/followupd/inbox/imaptest"
)

// connStates records OnConnState calls and signals each one.
type connStates struct {
	mu     sync.Mutex
	states []bool
	ch     chan struct{}
}

func newConnStates() *connStates { return &connStates{ch: make(chan struct{}, 1)} }

func (c *connStates) record(v bool) {
	c.mu.Lock()
	c.states = append(c.states, v)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

func (c *connStates) get() []bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bool(nil), c.states...)
}

// A connection that goes silent (half open) is found by the watchdog after
// the IDLE renewal, closed, and replaced.
func TestWatchdogReplacesHalfOpenConnection(t *testing.T) {
	srv := imaptest.Start(t)
	s := openStore(t, "sqlite")
	cs := newConnStates()
	w := newWatcher(t, memServer{srv}, s, newRecorder().handle, func(im *config.IMAP, o *inbox.Options) {
		o.IdleRefresh = 100 * time.Millisecond
		o.CommandTimeout = 300 * time.Millisecond
		o.OnConnState = cs.record
	})
	if err := w.Start(bg); err != nil {
		t.Fatal(err)
	}
	srv.Deliver("INBOX", message("h1"))
	waitRows(t, w, s, 1)
	logins := srv.Logins()
	srv.Hang()
	srv.Deliver("INBOX", message("h2")) // the hung connection never says
	waitRows(t, w, s, 2)
	if srv.Logins() <= logins {
		t.Errorf("logins %d → %d: no new connection", logins, srv.Logins())
	}
	w.Stop()
	got := cs.get()
	if len(got) < 4 || !got[0] || got[1] || !got[2] || got[len(got)-1] {
		t.Errorf("connection states %v; want true, false, true, …, false", got)
	}
}

func TestReconnectsAfterDovecotRestart(t *testing.T) {
	d := dovecottest.Start(t)
	s := openStore(t, "sqlite")
	cs := newConnStates()
	w := newWatcher(t, dovecotServer{d}, s, newRecorder().handle, func(im *config.IMAP, o *inbox.Options) {
		o.OnConnState = cs.record
	})
	if err := w.Start(bg); err != nil {
		t.Fatal(err)
	}
	d.Deliver(d.Username, message("d1"))
	waitRows(t, w, s, 1)
	d.Restart()
	d.Deliver(d.Username, message("d2"))
	waitRows(t, w, s, 2)
	w.Stop()
	if got := cs.get(); len(got) < 3 || !got[0] || got[1] {
		t.Errorf("connection states %v; want true, false, true, …", got)
	}
}

func TestTLSCertificatesAreVerified(t *testing.T) {
	for _, mode := range []string{"tls", "starttls"} {
		t.Run(mode, func(t *testing.T) {
			srv := imaptest.StartWith(t, imaptest.Options{TLS: mode})
			srv.Deliver("INBOX", message("tls"))
			ms := memServer{srv}

			trusted := newWatcher(t, ms, openStore(t, "sqlite"), newRecorder().handle, nil)
			if n, err := trusted.RunOnce(bg); err != nil || n != 1 {
				t.Errorf("with the server's CA: %d, %v", n, err)
			}
			untrusted := newWatcher(t, ms, openStore(t, "sqlite"), newRecorder().handle, func(im *config.IMAP, o *inbox.Options) {
				o.TLSConfig = nil
			})
			if _, err := untrusted.RunOnce(bg); err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Errorf("with an unknown CA: %v; want a certificate error", err)
			}
			skip := newWatcher(t, ms, openStore(t, "sqlite"), newRecorder().handle, func(im *config.IMAP, o *inbox.Options) {
				o.TLSConfig = nil
				im.InsecureSkipVerify = true
			})
			if n, err := skip.RunOnce(bg); err != nil || n != 1 {
				t.Errorf("with insecure_skip_verify: %d, %v", n, err)
			}
		})
	}
}

func TestPlaintextNeedsInsecurePlaintext(t *testing.T) {
	srv := imaptest.Start(t)
	im := srv.IMAP()
	im.InsecurePlaintext = false
	_, err := inbox.New(inbox.Options{Store: openStore(t, "sqlite"), Account: account(im), Handler: newRecorder().handle})
	if err == nil || !strings.Contains(err.Error(), "insecure_plaintext") {
		t.Errorf("New with tls: none alone: %v", err)
	}
}

func TestXOAUTH2WithTokenCommand(t *testing.T) {
	srv := imaptest.StartWith(t, imaptest.Options{OAuthToken: "tok-123"})
	srv.Deliver("INBOX", message("oauth"))
	for _, c := range []struct {
		name, command, wantErr string
	}{
		{"good token", "echo tok-123", ""},
		{"refused token", "printf 'bad-token\\n'", "login as"},
		{"failing command", "echo no refresh token >&2; exit 3", "no refresh token"},
		{"silent command", "true", "printed no token"},
		{"slow command", "exec sleep 5", "no token within"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWatcher(t, memServer{srv}, openStore(t, "sqlite"), newRecorder().handle, func(im *config.IMAP, o *inbox.Options) {
				im.Auth = "xoauth2"
				im.Password = ""
				im.OAuth2TokenCommand = c.command
				o.TokenTimeout = 200 * time.Millisecond
			})
			n, err := w.RunOnce(bg)
			if c.wantErr == "" {
				if err != nil || n != 1 {
					t.Errorf("RunOnce = %d, %v", n, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("RunOnce error %v; want one with %q", err, c.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "bad-token") {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
	if cmds := strings.Join(srv.Commands(), "\n"); !strings.Contains(cmds, "AUTHENTICATE XOAUTH2") {
		t.Errorf("no AUTHENTICATE XOAUTH2 in %s", cmds)
	}
}

func TestAuthMechanisms(t *testing.T) {
	t.Run("plain on memory", func(t *testing.T) {
		srv := imaptest.Start(t)
		w := newWatcher(t, memServer{srv}, openStore(t, "sqlite"), newRecorder().handle, func(im *config.IMAP, o *inbox.Options) {
			im.Auth = "plain"
		})
		if _, err := w.RunOnce(bg); err != nil {
			t.Fatal(err)
		}
		if cmds := strings.Join(srv.Commands(), "\n"); !strings.Contains(cmds, "AUTHENTICATE PLAIN") || strings.Contains(cmds, "LOGIN") {
			t.Errorf("commands %s; want AUTHENTICATE PLAIN and no LOGIN", cmds)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		srv := imaptest.Start(t)
		w := newWatcher(t, memServer{srv}, openStore(t, "sqlite"), newRecorder().handle, func(im *config.IMAP, o *inbox.Options) {
			im.Password = "hunter2-wrong"
		})
		_, err := w.RunOnce(bg)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("RunOnce with a wrong password: %v", err)
		}
	})
	for _, mech := range []string{"plain", "login", "cram-md5"} {
		t.Run(mech+" on dovecot", func(t *testing.T) {
			d := dovecottest.Start(t)
			w := newWatcher(t, dovecotServer{d}, openStore(t, "sqlite"), newRecorder().handle, func(im *config.IMAP, o *inbox.Options) {
				im.Auth = mech
			})
			if _, err := w.RunOnce(bg); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	srv := imaptest.Start(t)
	s := openStore(t, "sqlite")
	cs := newConnStates()
	w := newWatcher(t, memServer{srv}, s, newRecorder().handle, func(im *config.IMAP, o *inbox.Options) {
		o.OnConnState = cs.record
	})
	w.Stop() // before Start: nothing to do
	if _, err := w.RunOnce(bg); err != nil {
		t.Fatal(err)
	}
	if !w.Connected() {
		t.Error("not connected after RunOnce")
	}
	if err := w.Start(bg); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(bg); err == nil {
		t.Error("second Start succeeded")
	}
	if _, err := w.RunOnce(bg); err == nil {
		t.Error("RunOnce on a started watcher succeeded")
	}
	srv.Deliver("INBOX", message("life"))
	waitRows(t, w, s, 1)
	w.Stop()
	w.Stop()
	if w.Connected() {
		t.Error("connected after Stop")
	}
	if got := cs.get(); len(got) == 0 || got[0] != true || got[len(got)-1] != false {
		t.Errorf("connection states %v", got)
	}
	// Restartable, and a cancelled context stops it too.
	ctx, cancel := context.WithCancel(bg)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Deliver("INBOX", message("life-2"))
	waitRows(t, w, s, 2)
	cancel()
	w.Stop()
	if w.Total() != 2 {
		t.Errorf("Total = %d, want 2", w.Total())
	}
}
