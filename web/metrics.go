package web

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are followupd's Prometheus metrics, in a registry of their own
// (not the global one, so that tests and several daemons in one process do
// not collide). Every method is safe on a nil *Metrics, which records
// nothing.
type Metrics struct {
	reg            *prometheus.Registry
	sends          *prometheus.CounterVec
	replies        *prometheus.CounterVec
	stages         *prometheus.CounterVec
	backlog        prometheus.Gauge
	imapConnected  *prometheus.GaugeVec
	sendLatency    *prometheus.HistogramVec
	replyDetection prometheus.Histogram

	mu        sync.Mutex
	backlogAt time.Time // last refresh from the database
}

// backlogEvery is how often a scrape may recount the due backlog: the
// count is cheap but scrapes can be frequent and come from several
// Prometheus servers.
const backlogEvery = 15 * time.Second

// NewMetrics registers the metrics in a new registry, together with the Go
// runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.sends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "followupd_sends_total",
		Help: "Sequence steps sent, by account, sequence, step and result (sent, retry, failed, cancelled, uncertain).",
	}, []string{"account", "sequence", "step", "result"})
	m.replies = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "followupd_replies_total",
		Help: "Inbound messages classified, by kind and intent.",
	}, []string{"kind", "intent"})
	m.stages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "followupd_stage_transitions_total",
		Help: "Contacts moved from one stage to another.",
	}, []string{"from", "to"})
	m.backlog = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "followupd_due_backlog",
		Help: "Active enrollments whose next step is due and not yet claimed.",
	})
	m.imapConnected = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "followupd_imap_connected",
		Help: "1 while the account's IMAP watcher is connected.",
	}, []string{"account"})
	m.sendLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "followupd_send_latency_seconds",
		Help: "Time to hand one message to the SMTP server.",
		// SMTP hand-offs range from tens of milliseconds to a slow server's
		// minute.
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"account"})
	m.replyDetection = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "followupd_reply_detection_seconds",
		Help: "Time from a reply's arrival in the mailbox to followupd acting on it.",
		// IDLE notices within seconds; polling within its interval.
		Buckets: []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900},
	})
	m.reg.MustRegister(m.sends, m.replies, m.stages, m.backlog, m.imapConnected,
		m.sendLatency, m.replyDetection,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the metrics live, for a caller that adds its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Sent counts one send outcome of a sequence step.
func (m *Metrics) Sent(account, sequence string, step int, result string) {
	if m == nil {
		return
	}
	m.sends.WithLabelValues(account, sequence, strconv.Itoa(step), result).Inc()
}

// Reply counts one classified inbound message.
func (m *Metrics) Reply(kind, intent string) {
	if m == nil {
		return
	}
	m.replies.WithLabelValues(kind, intent).Inc()
}

// StageChanged counts a contact moving between stages.
func (m *Metrics) StageChanged(from, to string) {
	if m == nil || from == to {
		return
	}
	m.stages.WithLabelValues(from, to).Inc()
}

// SetBacklog sets the due backlog; scrapes also refresh it from the
// database.
func (m *Metrics) SetBacklog(n int) {
	if m == nil {
		return
	}
	m.backlog.Set(float64(n))
}

// SetIMAPConnected records whether an account's watcher is connected.
func (m *Metrics) SetIMAPConnected(account string, connected bool) {
	if m == nil {
		return
	}
	v := 0.0
	if connected {
		v = 1
	}
	m.imapConnected.WithLabelValues(account).Set(v)
}

// ObserveSendLatency records how long one SMTP hand-off took.
func (m *Metrics) ObserveSendLatency(account string, d time.Duration) {
	if m == nil {
		return
	}
	m.sendLatency.WithLabelValues(account).Observe(d.Seconds())
}

// ObserveReplyDetection records how long after its arrival a reply was
// acted on.
func (m *Metrics) ObserveReplyDetection(d time.Duration) {
	if m == nil {
		return
	}
	m.replyDetection.Observe(d.Seconds())
}

// refreshBacklog recounts the backlog when the last count is older than
// backlogEvery; a failed count keeps the last value and is not retried
// before the next period, so a struggling database is not hammered by
// scrapes.
func (s *Server) refreshBacklog(ctx context.Context) {
	m := s.metrics
	now := s.now()
	m.mu.Lock()
	if !m.backlogAt.IsZero() && now.Sub(m.backlogAt) < backlogEvery {
		m.mu.Unlock()
		return
	}
	m.backlogAt = now
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	n, err := s.o.Store.DueBacklog(ctx, now)
	if err != nil {
		s.log.Warn("unable to count the due backlog for /metrics", "err", err)
		return
	}
	m.SetBacklog(n)
}

// serveMetrics serves /metrics. With an API token configured, it takes the
// token like the API (Prometheus sends it with `authorization:
// {credentials: TOKEN}`); without one it answers loopback peers only, as
// the config refuses a tokenless listener on another address anyway.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	tok := s.cfg().HTTP.APIToken.Value()
	if tok == "" {
		if !isLoopback(r) {
			writeError(w, http.StatusForbidden, "set http.api_token to scrape /metrics from another machine")
			return
		}
	} else if given, ok := bearerToken(r); !ok || !tokenMatches(given, tok) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="followupd"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	s.refreshBacklog(r.Context())
	s.promHandler.ServeHTTP(w, r)
}

// slogPrinter lets promhttp report gathering errors to the server's log.
type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) { p.s.log.Warn("metrics", "err", v) }
