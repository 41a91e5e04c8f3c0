package web

import (
	"context"
	"net/http"
	"time"
)

// ReadyState is what the daemon knows of its mail connections, for
// /readyz.
type ReadyState struct {
	Accounts []AccountReady
}

// AccountReady is one account's connections in their last known state. An
// account without IMAP reports IMAPOK true: what it does not use cannot
// keep it from being ready.
type AccountReady struct {
	Account string `json:"account"`
	// SMTPOK is false when the last send or login failed for a reason
	// other than the recipient (a connection or authentication error).
	SMTPOK    bool   `json:"smtp_ok"`
	SMTPError string `json:"smtp_error,omitempty"`
	// IMAPOK is false while the watcher is disconnected.
	IMAPOK    bool   `json:"imap_ok"`
	IMAPError string `json:"imap_error,omitempty"`
}

// readyTimeout bounds the database ping of /readyz: a database slower than
// this is as good as down for a load balancer.
const readyTimeout = 2 * time.Second

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

type readyBody struct {
	Status   string         `json:"status"`
	Database string         `json:"database"`
	Accounts []AccountReady `json:"accounts"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	body := readyBody{Status: "ready", Database: "ok", Accounts: []AccountReady{}}
	if err := s.o.Store.Ping(ctx); err != nil {
		body.Status, body.Database = "not ready", err.Error()
	}
	if s.o.Ready != nil {
		st := s.o.Ready()
		body.Accounts = append(body.Accounts, st.Accounts...)
		for _, a := range st.Accounts {
			if !a.SMTPOK || !a.IMAPOK {
				body.Status = "not ready"
			}
		}
	}
	status := http.StatusOK
	if body.Status != "ready" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, body)
}
