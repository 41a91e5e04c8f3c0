package web

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
)

func TestHealthAndReadiness(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	w := e.serve(request("GET", "/healthz", nil))
	expect(t, w, http.StatusOK)
	if w.Body.String() != "ok\n" {
		t.Errorf("healthz body %q", w.Body)
	}

	w = e.serve(request("GET", "/readyz", nil))
	expect(t, w, http.StatusOK)
	if m := decode(t, w); m["status"] != "ready" || m["database"] != "ok" {
		t.Errorf("readyz = %v", m)
	}

	e.ready.Store(&ReadyState{Accounts: []AccountReady{
		{Account: "sales", SMTPOK: true, IMAPOK: false, IMAPError: "connection refused"},
		{Account: "support", SMTPOK: true, IMAPOK: true},
	}})
	w = e.serve(request("GET", "/readyz", nil))
	expect(t, w, http.StatusServiceUnavailable)
	m := decode(t, w)
	accounts := m["accounts"].([]any)
	sales := accounts[0].(map[string]any)
	if m["status"] != "not ready" || len(accounts) != 2 || sales["account"] != "sales" || sales["imap_ok"] != false || sales["imap_error"] != "connection refused" {
		t.Errorf("readyz with IMAP down = %v", m)
	}
	e.ready.Store(&ReadyState{Accounts: []AccountReady{{Account: "sales", SMTPOK: false, SMTPError: "535 auth failed", IMAPOK: true}}})
	expect(t, e.serve(request("GET", "/readyz", nil)), http.StatusServiceUnavailable)

	// A closed database is not ready either (and answers within 2 s).
	e.ready.Store(&ReadyState{})
	_ = e.store.Close()
	start := time.Now()
	w = e.serve(request("GET", "/readyz", nil))
	expect(t, w, http.StatusServiceUnavailable)
	if time.Since(start) > 3*time.Second {
		t.Errorf("readyz took %v", time.Since(start))
	}
	if m := decode(t, w); m["database"] == "ok" {
		t.Errorf("readyz with a closed database = %v", m)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	m := e.srv.Metrics()
	m.Sent("sales", "welcome", 0, "sent")
	m.Reply("reply", "interested")
	m.StageChanged("lead", "prospect")
	m.SetIMAPConnected("sales", true)
	m.ObserveSendLatency("sales", 300*time.Millisecond)
	m.ObserveReplyDetection(4 * time.Second)
	var nilMetrics *Metrics
	nilMetrics.Sent("a", "b", 1, "sent") // a nil *Metrics records nothing and does not panic

	c := e.upsert(store.Contact{Email: "due@example.com"})
	if _, err := e.store.Enroll(ctx, c.Email, "welcome", "sales", "", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}

	expect(t, e.serve(request("GET", "/metrics", nil)), http.StatusUnauthorized)
	expect(t, e.serve(request("GET", "/metrics", nil, "Authorization", "Bearer wrong-token-0123456789")), http.StatusUnauthorized)
	w := e.serve(request("GET", "/metrics", nil, "Authorization", "Bearer "+testToken))
	expect(t, w, http.StatusOK)
	body := w.Body.String()
	for _, want := range []string{
		`followupd_sends_total{account="sales",result="sent",sequence="welcome",step="0"} 1`,
		`followupd_replies_total{intent="interested",kind="reply"} 1`,
		`followupd_stage_transitions_total{from="lead",to="prospect"} 1`,
		`followupd_imap_connected{account="sales"} 1`,
		`followupd_send_latency_seconds_bucket{account="sales",le="0.5"} 1`,
		`followupd_reply_detection_seconds_count 1`,
		`followupd_due_backlog 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The backlog is recounted at most every 15 s.
	c2 := e.upsert(store.Contact{Email: "due2@example.com"})
	if _, err := e.store.Enroll(ctx, c2.Email, "welcome", "sales", "", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	w = e.serve(request("GET", "/metrics", nil, "Authorization", "Bearer "+testToken))
	if !strings.Contains(w.Body.String(), "followupd_due_backlog 1") {
		t.Error("the backlog was recounted within 15 s")
	}
	m.mu.Lock()
	m.backlogAt = m.backlogAt.Add(-backlogEvery)
	m.mu.Unlock()
	w = e.serve(request("GET", "/metrics", nil, "Authorization", "Bearer "+testToken))
	if !strings.Contains(w.Body.String(), "followupd_due_backlog 2") {
		t.Error("the backlog was not recounted after 15 s")
	}

	// Without a token: loopback only.
	e.setConfig(func(c *config.Config) { c.HTTP.APIToken = "" })
	expect(t, e.serve(request("GET", "/metrics", nil)), http.StatusOK)
	r := request("GET", "/metrics", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	expect(t, e.serve(r), http.StatusForbidden)
}

func TestServerStartStop(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	if err := e.srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Start(ctx); err == nil {
		t.Error("a second Start succeeded")
	}
	resp, err := http.Get("http://" + e.srv.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("GET /healthz over TCP: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	http.DefaultClient.CloseIdleConnections()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.srv.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + e.srv.Addr().String() + "/healthz"); err == nil {
		t.Error("the server still answers after Stop")
	}

	// A context ending stops the server too.
	e2 := newEnv(t, store.DialectSQLite)
	cctx, stop := context.WithCancel(ctx)
	if err := e2.srv.Start(cctx); err != nil {
		t.Fatal(err)
	}
	stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := http.Get("http://" + e2.srv.Addr().String() + "/healthz"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server still answers after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A busy address is reported by Start.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e3 := newEnv(t, store.DialectSQLite)
	e3.setConfig(func(c *config.Config) { c.HTTP.Listen = ln.Addr().String() })
	if err := e3.srv.Start(ctx); err == nil || !strings.Contains(err.Error(), "unable to listen") {
		t.Errorf("Start on a busy address: %v", err)
	}
}
