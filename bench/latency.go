package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/followupd/followupd/daemon"
	"github.com/followupd/followupd/inbox/dovecottest"
	"github.com/followupd/followupd/outbox"
	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/store"
)

type latencyResult struct {
	Scenario  string  `json:"scenario"`
	DB        string  `json:"db"`
	N         int     `json:"n"`
	P50MS     float64 `json:"p50_ms"`
	P95MS     float64 `json:"p95_ms"`
	MaxMS     float64 `json:"max_ms"`
	LMTPP50MS float64 `json:"lmtp_p50_ms"`
}

// daemonConfig is a whole followupd: SMTP to the sink, IMAP to Dovecot, an
// on_stage lead trigger and the rule interested → prospect.
const daemonConfig = `
database: {driver: %s, path: %q, dsn: %q}
http: {listen: "127.0.0.1:0", api_token: "0123456789abcdef-token"}
unsubscribe: {base_url: "https://bench.example", secret: "bench-secret-0123456789"}
accounts:
  - name: bench
    from_name: Bench Seller
    from_address: seller@bench.example
    timezone: UTC
    daily_limit: 100000000
    min_gap: 0s
    max_gap: 0s
    send_window: {days: mon-sun, hours: "00:00-24:00"}
    smtp: {host: %s, port: %d, tls: none, insecure_plaintext: true}
    imap: {host: %s, port: %d, tls: none, insecure_plaintext: true, username: %q, password: %q}
sequences:
  - name: intro
    triggers: [{on_stage: lead}]
    window: {days: mon-sun, hours: "00:00-24:00", timezone: account}
    steps:
      - template: two
      - template: two
        delay: 3d
        thread: reply
rules:
  - {on: reply, intent: interested, do: {set_stage: prospect, stop: all}}
`

func (e *env) daemonConfig(sink *smtptest.Server, dv *dovecottest.Dovecot) string {
	dsn := ""
	if e.db == "postgres" {
		dsn = e.opts.DSN
	}
	return fmt.Sprintf(daemonConfig, e.db, filepath.Join(e.dir, "bench.db"), dsn,
		sink.Host(), sink.Port(), dv.Host, dv.IMAPPort, dv.Username, dv.Password)
}

// runLatency runs the whole daemon against a real Dovecot, lets it send n
// first steps, then delivers a reply to each over LMTP, one at a time with
// the watcher idle, and times delivery → the contact's stage committed as
// prospect (polled every 5 ms).
func runLatency(e *env, n int) (any, error) {
	sink, err := smtptest.New()
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	dv, err := dovecottest.New()
	if err != nil {
		return nil, err
	}
	defer dv.Close()
	path, _, err := e.runtimeFrom(e.daemonConfig(sink, dv))
	if err != nil {
		return nil, err
	}
	d, err := daemon.New(e.ctx, daemon.Options{
		ConfigPath: path, Migrate: true, LogOutput: io.Discard,
		SchedulerInterval: 100 * time.Millisecond,
		OutboxOptions:     func(o *outbox.Options) { o.PollInterval = 100 * time.Millisecond },
	})
	if err != nil {
		return nil, err
	}
	if err := d.Start(e.ctx); err != nil {
		return nil, err
	}
	defer d.Stop(10 * time.Second)
	st := d.Store()
	for i := range n {
		if _, _, err := st.UpsertContact(e.ctx, store.Contact{Email: fmt.Sprintf("r%d@bench.example", i), FirstName: fmt.Sprintf("R%d", i)}); err != nil {
			return nil, err
		}
	}
	d.Wake()
	ctx, cancel := context.WithTimeout(e.ctx, 2*time.Minute)
	defer cancel()
	sent, err := sink.WaitForMessages(ctx, n)
	if err != nil {
		return nil, err
	}
	// Until the watcher is connected and idle.
	time.Sleep(2 * time.Second)
	var lat, lmtp []float64
	for i, m := range sent[:n] {
		to := m.To[0]
		raw := fmt.Appendf(nil, "From: <%s>\r\nTo: seller@bench.example\r\nSubject: Re: follow-up\r\n"+
			"Message-ID: <reply-%d@bench.example>\r\nIn-Reply-To: <%s>\r\nDate: %s\r\n\r\nYes, let's talk! Thursday works.\r\n",
			to, i, m.MessageID, time.Now().Format(time.RFC1123Z))
		start := time.Now()
		if err := deliver(dv, raw); err != nil {
			return nil, err
		}
		lmtp = append(lmtp, ms(time.Since(start)))
		for {
			c, err := st.ContactByEmail(ctx, to)
			if err != nil {
				return nil, err
			}
			if c.Stage == "prospect" {
				break
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("reply %d: %s still %s", i, to, c.Stage)
			}
			time.Sleep(5 * time.Millisecond)
		}
		lat = append(lat, ms(time.Since(start)))
		e.logf("reply %d: %.1f ms (LMTP %.1f ms)", i, lat[len(lat)-1], lmtp[len(lmtp)-1])
		time.Sleep(200 * time.Millisecond) // back to IDLE
	}
	slices.Sort(lat)
	slices.Sort(lmtp)
	return latencyResult{Scenario: "latency", DB: e.db, N: n, P50MS: pct(lat, 50), P95MS: pct(lat, 95), MaxMS: lat[len(lat)-1], LMTPP50MS: pct(lmtp, 50)}, nil
}

// deliver is dovecottest's Deliver, turning its panic into an error.
func deliver(dv *dovecottest.Dovecot, raw []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	dv.Deliver(dv.Username, raw)
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pct is the p-th percentile of sorted values (nearest rank).
func pct(sorted []float64, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
