package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxBodyBytes caps every request body: nothing followupd accepts is near
// this size, and a cap keeps a client from filling memory or disk.
const MaxBodyBytes = 1 << 20

// Options is what the daemon gives the HTTP server.
type Options struct {
	// Store is the database; required.
	Store *store.Store
	// Config returns the current configuration; required. It is called on
	// every request, so a reload takes effect at once (except http.listen,
	// which needs a restart of the server).
	Config func() *config.Config
	// Metrics receives the counters the server itself moves (stage changes
	// it makes) and is served on /metrics; nil makes a fresh one.
	Metrics *Metrics
	// Ready reports the last-known state of each account's SMTP and IMAP
	// connections for /readyz; nil checks the database only.
	Ready func() ReadyState
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Hooks are the daemon's reactions to changes made over HTTP.
	Hooks Hooks
	// ChooseAccount picks the sending account of a new enrollment (the
	// daemon knows the sequences); nil takes the sequence's first account.
	ChooseAccount func(sequence, email string) (string, error)
}

// Hooks let the daemon run its rules on changes made over HTTP. Every hook
// may be nil.
type Hooks struct {
	// OnUnsubscribe runs inside the one-click unsubscribe transaction,
	// after the contact was suppressed and its enrollments stopped; use
	// only tx (on SQLite the store has a single connection, which tx
	// holds). If it fails, the unsubscribe is committed without it and the
	// error is logged: a broken rule must not keep anyone subscribed.
	OnUnsubscribe func(ctx context.Context, tx *store.Tx, c store.Contact) error
	// OnPurchase runs after a purchase recorded over the API or the
	// dashboard committed, with the contact as it is then.
	OnPurchase func(ctx context.Context, c store.Contact) error
	// OnStageChanged runs after a stage change made over the API or the
	// dashboard committed (not after an unsubscribe: OnUnsubscribe covers
	// that).
	OnStageChanged func(ctx context.Context, c store.Contact, from, to, reason string) error
}

// Server is followupd's HTTP side. Start and Stop run it on http.listen;
// Handler serves it anywhere (tests, a custom listener).
type Server struct {
	o       Options
	log     *slog.Logger
	now     func() time.Time
	metrics *Metrics
	handler http.Handler
	pages   *pages

	promHandler http.Handler

	unsubLimit *limiter
	loginLimit *limiter

	mu   sync.Mutex
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// New builds the server. Store and Config are required; New panics
// without them, as that is a wiring mistake and not a run-time condition.
func New(o Options) *Server {
	if o.Store == nil || o.Config == nil {
		panic("web: New needs Options.Store and Options.Config")
	}
	s := &Server{o: o, log: o.Logger, now: o.Now, metrics: o.Metrics}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	s.pages = loadPages(s.displayZone)
	s.promHandler = promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{s}})
	// One-click unsubscribes come from mail clients and people; logins from
	// people. Both are keyed by the peer address, which behind a reverse
	// proxy is the proxy's: the limits are generous enough for that.
	// Rate limits and dashboard sessions run on the wall clock: the
	// daemon's clock may be sped up (the demo) and a login must not
	// expire in seconds there.
	s.unsubLimit = newLimiter(time.Now, 1, 30)
	s.loginLimit = newLimiter(time.Now, 0.2, 10)
	s.handler = s.routes()
	return s
}

// Metrics returns the metrics the server serves.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Handler returns the server's handler with its limits and headers.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) cfg() *config.Config { return s.o.Config() }

// displayZone is the zone the dashboard shows times in: the first
// account's, as the seller usually lives there, else UTC.
func (s *Server) displayZone() *time.Location {
	cfg := s.cfg()
	if len(cfg.Accounts) > 0 && cfg.Accounts[0].TimeZone.Location != nil {
		return cfg.Accounts[0].TimeZone.Location
	}
	return time.UTC
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.Handle("/api/", s.apiHandler())
	mux.HandleFunc("GET /u/{token}", s.unsubscribePage)
	mux.HandleFunc("POST /u/{token}", s.unsubscribePost)
	mux.Handle("/", s.dashboardHandler())
	return s.common(mux)
}

// common applies what every response needs: the body cap, headers that
// keep browsers from sniffing, framing or leaking the URL (an unsubscribe
// link holds a token), and a recovered panic answered as a 500.
func (s *Server) common(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("http handler panicked", "method", r.Method, "path", logPath(r), "panic", p)
				if sw.status == 0 {
					writeError(sw, http.StatusInternalServerError, "internal error")
				}
			}
			s.log.Debug("http request", "method", r.Method, "path", logPath(r), "status", sw.status,
				"duration", time.Since(start), "remote", r.RemoteAddr)
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logPath is the request path fit for a log: unsubscribe tokens are proof
// of identity and stay out of logs.
func logPath(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/u/") {
		return "/u/…"
	}
	return r.URL.Path
}

// Start listens on http.listen and serves in the background until Stop is
// called or ctx ends. Only a failure to listen is returned; later serving
// errors are logged.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("web: the server is already started")
	}
	addr := s.cfg().HTTP.Listen
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("web: unable to listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler: s.handler,
		// Slow clients must not hold connections open: headers within 5 s,
		// a whole (≤ 1 MiB) request within 30 s.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	s.srv, s.ln, s.done = srv, ln, done
	s.log.Info("http server listening", "addr", ln.Addr().String())
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = s.Stop(sctx)
		case <-done:
		}
	}()
	return nil
}

// Addr is the address the server listens on once started (useful with
// port 0), nil before.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Stop stops accepting connections and waits for requests in flight to
// finish until ctx ends; then it closes what is left. Stopping a server
// that is not running does nothing.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		_ = srv.Close()
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	if err != nil {
		return fmt.Errorf("web: unable to stop the server gracefully: %w", err)
	}
	return nil
}
