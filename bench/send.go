package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/followupd/followupd/daemon"
	"github.com/followupd/followupd/outbox"
	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/store"
)

type sendResult struct {
	Scenario    string  `json:"scenario"`
	DB          string  `json:"db"`
	N           int     `json:"n"`
	MsgsPerS    float64 `json:"msgs_per_s"`
	RawMsgsPerS float64 `json:"raw_msgs_per_s"`
	Ratio       float64 `json:"ratio"`
	// go-mail without its NOOP before and RSET after each message, as the
	// outbox sends: the pipeline's overhead alone, beside ratio's
	// comparison with go-mail as it comes.
	RawLeanMsgsPerS float64 `json:"raw_lean_msgs_per_s"`
	LeanRatio       float64 `json:"lean_ratio"`
	PeakRSSMB       float64 `json:"peak_rss_mb"`
	ElapsedSec      float64 `json:"elapsed_s"`
	RawElapsedS     float64 `json:"raw_elapsed_s"`
	Conns           int     `json:"conns"`
	// CPU per message in µs: the bench process (pipeline or go-mail and
	// the sink) and the rest of the machine (mostly the database server).
	CPUus       float64 `json:"cpu_us_per_msg"`
	OtherCPUus  float64 `json:"other_cpu_us_per_msg"`
	RawCPUus    float64 `json:"raw_cpu_us_per_msg"`
	RawOtherCPU float64 `json:"raw_other_cpu_us_per_msg"`
}

// sendConfig is benchConfig with the sink's address and conns connections.
func sendConfig(host string, port, conns int) string {
	return strings.Replace(benchConfig, "smtp: {host: 127.0.0.1, port: 2525,",
		fmt.Sprintf("smtp: {host: %s, port: %d, concurrency: %d,", host, port, conns), 1)
}

// runSend measures n due steps going through the daemon's pipeline —
// scheduler pass (claim, render, enqueue), outbox (claim, build, SMTP,
// record sent and advance the enrollment) — into a loopback sink that
// discards what it gets, beside go-mail alone sending n messages built
// beforehand into the same sink over the same number of connections.
func runSend(e *env, n, conns int) (any, error) {
	sink, err := smtptest.New()
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	sink.Discard(true)
	_, rt, err := e.runtimeFrom(sendConfig(sink.Host(), sink.Port(), conns))
	if err != nil {
		return nil, err
	}
	s, err := store.Open(e.ctx, e.opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := e.seed(s, 1, n+1, time.Now().Add(-time.Minute)); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	rtf := func() *daemon.Runtime { return rt }
	c := rt.Config
	// Wired as the daemon wires them: the outbox takes due steps from the
	// scheduler (Produce) when its queue is empty.
	sched := &daemon.Scheduler{Store: s, Runtime: rtf}
	out, err := outbox.New(outbox.Options{
		Store: s, Accounts: c.Accounts, Unsubscribe: c.Unsubscribe, BlockedStages: rt.BlockedStages(),
		Hooks: daemon.OutboxHooks(ctx, rtf, time.Now, nil), ConfigDir: c.Dir(), Produce: sched.Produce,
	})
	if err != nil {
		return nil, err
	}
	sched.Enqueued, sched.Pulls = out.Notify, out.Serves

	start, cpu0 := time.Now(), sampleCPU()
	if err := out.Start(ctx); err != nil {
		return nil, err
	}
	// The scheduler's loop, as the daemon runs it on its timer (shorter
	// here): each pass wakes the outbox, which takes the due steps itself.
	schedErr := make(chan error, 1)
	schedCtx, stopSched := context.WithCancel(ctx)
	defer stopSched()
	go func() {
		for schedCtx.Err() == nil {
			if _, err := sched.RunOnce(schedCtx); err != nil && schedCtx.Err() == nil {
				schedErr <- err
				return
			}
			select {
			case <-schedCtx.Done():
			case <-time.After(time.Second):
			}
		}
		schedErr <- nil
	}()
	deadline := time.Now().Add(30 * time.Minute)
	var sent int
	for {
		select {
		case err := <-schedErr:
			if err != nil {
				return nil, fmt.Errorf("scheduler: %w", err)
			}
			schedErr = nil
		case <-time.After(100 * time.Millisecond):
		}
		if sink.Count(smtptest.Delivered) >= n {
			if err := s.InTx(ctx, func(tx *store.Tx) error {
				return tx.Get(ctx, &sent, `SELECT COUNT(*) FROM messages_out WHERE status = 'sent'`)
			}); err != nil {
				return nil, err
			}
			if sent >= n {
				break
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d messages delivered in 30 minutes", sink.Count(smtptest.Delivered), n)
		}
	}
	el, cpu1 := time.Since(start), sampleCPU()
	stopSched()
	out.Stop()
	rss := peakRSSMB()
	e.logf("pipeline: %d messages sent in %s (peak RSS %.0f MB)", n, el.Round(time.Millisecond), rss)

	// The same messages as built by the outbox, a pool of them reused.
	pool, err := builtPool(ctx, s, rt, 256)
	if err != nil {
		return nil, err
	}
	before := sink.Count(smtptest.Delivered)
	raw0 := sampleCPU()
	rawEl, err := rawSend(sink, pool, n, conns)
	if err != nil {
		return nil, err
	}
	raw1 := sampleCPU()
	leanEl, err := rawSend(sink, pool, n, conns, gomail.WithoutNoop(), gomail.WithoutRset())
	if err != nil {
		return nil, err
	}
	if got := sink.Count(smtptest.Delivered) - before; got != 2*n {
		return nil, fmt.Errorf("raw go-mail: sink got %d of %d", got, 2*n)
	}
	e.logf("raw go-mail: %d messages sent in %s (without NOOP and RSET: %s)", n, rawEl.Round(time.Millisecond), leanEl.Round(time.Millisecond))
	res := sendResult{Scenario: "send", DB: e.db, N: n, Conns: conns,
		MsgsPerS: float64(n) / el.Seconds(), RawMsgsPerS: float64(n) / rawEl.Seconds(),
		PeakRSSMB: rss, ElapsedSec: el.Seconds(), RawElapsedS: rawEl.Seconds()}
	res.Ratio = res.MsgsPerS / res.RawMsgsPerS
	res.RawLeanMsgsPerS = float64(n) / leanEl.Seconds()
	res.LeanRatio = res.MsgsPerS / res.RawLeanMsgsPerS
	res.CPUus, res.OtherCPUus = perMsg(cpu0, cpu1, n)
	res.RawCPUus, res.RawOtherCPU = perMsg(raw0, raw1, n)
	return res, nil
}

// builtPool reads up to k sent messages and builds them as the outbox does.
func builtPool(ctx context.Context, s *store.Store, rt *daemon.Runtime, k int) ([]*gomail.Msg, error) {
	var ids []string
	err := s.InTx(ctx, func(tx *store.Tx) error {
		return tx.Select(ctx, &ids, `SELECT message_id FROM messages_out WHERE status = 'sent' ORDER BY id LIMIT `+strconv.Itoa(k))
	})
	if err != nil {
		return nil, err
	}
	acct := &rt.Config.Accounts[0]
	var pool []*gomail.Msg
	for _, id := range ids {
		var m store.MessageOut
		if err := s.InTx(ctx, func(tx *store.Tx) error {
			var err error
			m, err = tx.MessageOutByMessageID(ctx, id)
			return err
		}); err != nil {
			return nil, err
		}
		msg, err := outbox.Build(m, acct, outbox.BuildOptions{Date: time.Now()})
		if err != nil {
			return nil, err
		}
		pool = append(pool, msg)
	}
	if len(pool) == 0 {
		return nil, fmt.Errorf("no sent message to build")
	}
	return pool, nil
}

// rawSend sends n messages from pool over conns go-mail connections, with
// go-mail's defaults and opts.
func rawSend(sink *smtptest.Server, pool []*gomail.Msg, n, conns int, opts ...gomail.Option) (time.Duration, error) {
	clients := make([]*gomail.Client, conns)
	for i := range clients {
		c, err := gomail.NewClient(sink.Host(), append([]gomail.Option{gomail.WithPort(sink.Port()),
			gomail.WithTLSPolicy(gomail.NoTLS), gomail.WithTimeout(time.Minute)}, opts...)...)
		if err != nil {
			return 0, err
		}
		if err := c.DialWithContext(context.Background()); err != nil {
			return 0, err
		}
		clients[i] = c
	}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := time.Now()
	for i, c := range clients {
		share := n / conns
		if i < n%conns {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range share {
				if err := c.Send(pool[(i+j*conns)%len(pool)]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	for _, c := range clients {
		_ = c.Close()
	}
	select {
	case err := <-errs:
		return 0, fmt.Errorf("raw go-mail: %w", err)
	default:
	}
	return el, nil
}

// peakRSSMB is the process's peak resident set (VmHWM), in MB.
func peakRSSMB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
