// Command chaos is the chaos suite (issue 7): it runs three real
// `followupd run` replicas on one private Postgres cluster, with a real
// Dovecot and a recording SMTP sink that misbehaves, SIGKILLs a random
// replica every few seconds (restarting it; the -kills kills are spread
// over the sending, at least -kill-every/2 apart), restarts Postgres once
// (immediate shutdown: a crash) and Dovecot once, and delivers replies to
// the seller's INBOX over LMTP while the sending goes on. At the end it checks what the design guarantees:
// no step lost or sent twice (bar sends recorded uncertain), no reply
// missed or counted twice, and every replied contact in the stage its
// reply's intent calls for.
//
// Run it from the repository root (as root, Postgres runs as the postgres
// user):
//
//	scripts/chaos                       # 20,000 steps, 500 replies, 10 kills
//	scripts/chaos -short                # CI: 1,000 steps, 50 replies, 4 kills, under 3 minutes
//	scripts/chaos -steps 5000 -replies 200 -kills 6 -timeout 10m -seed 42
//	go run ./chaos -h                   # every flag
//
// Everything listens on 127.0.0.1: a private Postgres cluster made with
// initdb in a temporary folder (the machine's own cluster is left alone),
// Dovecot from inbox/dovecottest, and the smtptest sink in this process,
// which outlives the replicas and answers 5% of RCPTs 451 (once per
// address, as greylisting does; the replicas retry after 5 s), 1% of RCPTs 550 and drops 1% of
// connections after the final dot of DATA (the daemon cannot know whether
// that message went out: its row becomes uncertain). The sequence has one
// step, so every contact has exactly one step due.
//
// The replicas run with database.sending_lease set to -lease (15 s): a
// row a killed replica left sending is made uncertain by a live replica
// once the lease has passed, which the drain waits for.
//
// Progress goes to stderr; stdout gets exactly one line of JSON:
//
//	{"sent":…,"duplicates":…,"lost":…,"uncertain":…,"replies_delivered":…,
//	 "replies_processed":…,"replies_missed":…,"replies_double":…,"stage_errors":…}
//
// The exit status is 1 when a target fails (lost, replies_missed,
// replies_double and stage_errors must be 0, duplicates at most uncertain),
// when the run exceeds -timeout, or when the harness itself fails; the
// replicas' log tails are printed to stderr then. Postgres, Dovecot and the
// replicas are stopped and the temporary folder removed in every case
// (-keep keeps the folder, logs included).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/followupd/followupd/inbox/dovecottest"
	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/store"
)

// result is the line printed on stdout.
type result struct {
	Sent             int `json:"sent"`
	Duplicates       int `json:"duplicates"`
	Lost             int `json:"lost"`
	Uncertain        int `json:"uncertain"`
	RepliesDelivered int `json:"replies_delivered"`
	RepliesProcessed int `json:"replies_processed"`
	RepliesMissed    int `json:"replies_missed"`
	RepliesDouble    int `json:"replies_double"`
	StageErrors      int `json:"stage_errors"`
}

type options struct {
	steps, replies, kills, replicas int
	killEvery                       time.Duration
	timeout, drainStall, lease      time.Duration
	seed                            int64
	keep                            bool
	rcpt451, rcpt550, dropAfterDot  float64
}

var began = time.Now()

// logf writes a progress line to stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "chaos %6.1fs  %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	short := flag.Bool("short", false, "CI mode: 1,000 steps, 50 replies, 4 kills, -timeout 3m (explicit flags win)")
	flag.IntVar(&o.steps, "steps", 20000, "due steps: contacts imported, each with one step")
	flag.IntVar(&o.replies, "replies", 500, "replies delivered over LMTP while sending goes on")
	flag.IntVar(&o.kills, "kills", 10, "SIGKILLs of a random replica (each restarted)")
	flag.IntVar(&o.replicas, "replicas", 3, "followupd run replicas")
	flag.DurationVar(&o.killEvery, "kill-every", 3*time.Second, "mean time between two kills (uniform in ±50%)")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "fail when the whole run takes longer")
	flag.DurationVar(&o.drainStall, "drain-stall", 60*time.Second, "at the end, stop waiting after this long without progress")
	flag.DurationVar(&o.lease, "lease", 15*time.Second, "the replicas' database.sending_lease: rows a killed replica left sending become uncertain after it")
	flag.Int64Var(&o.seed, "seed", 0, "random seed for kills, replies and SMTP faults (0: from the clock; printed)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary folder (logs, config) at the end")
	flag.Float64Var(&o.rcpt451, "rcpt451", 0.05, "share of RCPTs answered 451 (once per address)")
	flag.Float64Var(&o.rcpt550, "rcpt550", 0.01, "share of RCPTs answered 550")
	flag.Float64Var(&o.dropAfterDot, "drop-after-dot", 0.01, "share of messages whose connection is dropped after the final dot")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: scripts/chaos [-short] [-steps N] [-replies N] [-kills N] [-timeout D] [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		return 2
	}
	if *short {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, p *int, v int) {
			if !set[name] {
				*p = v
			}
		}
		def("steps", &o.steps, 1000)
		def("replies", &o.replies, 50)
		def("kills", &o.kills, 4)
		if !set["timeout"] {
			o.timeout = 3 * time.Minute
		}
		if !set["drain-stall"] {
			o.drainStall = 45 * time.Second
		}
	}
	if o.seed == 0 {
		o.seed = time.Now().UnixNano() % 1_000_000_000
	}
	if o.steps < 1 || o.replies < 0 || o.replies > o.steps || o.kills < 0 || o.replicas < 1 {
		fmt.Fprintln(os.Stderr, "chaos: want -steps ≥ 1, 0 ≤ -replies ≤ -steps, -kills ≥ 0, -replicas ≥ 1")
		return 2
	}
	logf("seed %d: %d steps, %d replies, %d kills, %d replicas, timeout %s", o.seed, o.steps, o.replies, o.kills, o.replicas, o.timeout)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	h := &harness{o: o, rng: rand.New(rand.NewPCG(uint64(o.seed), 7))}
	defer h.cleanup()
	runErr := h.run(ctx)
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	interrupted := ctx.Err() != nil && !timedOut

	var res result
	var failures []string
	if h.db != nil {
		tctx, tcancel := context.WithTimeout(context.Background(), time.Minute)
		var err error
		res, failures, err = h.tally(tctx)
		tcancel()
		if err != nil {
			logf("tally: %v", err)
			runErr = errors.Join(runErr, err)
		} else {
			line, _ := json.Marshal(res)
			fmt.Println(string(line))
		}
	}
	switch {
	case timedOut:
		failures = append(failures, fmt.Sprintf("the run took longer than -timeout %s", o.timeout))
	case interrupted:
		failures = append(failures, "interrupted")
	}
	if runErr != nil && !timedOut && !interrupted {
		failures = append(failures, "harness: "+runErr.Error())
	}
	if len(failures) > 0 {
		h.printTails()
		for _, f := range failures {
			fmt.Fprintln(os.Stderr, "chaos: FAIL:", f)
		}
		logf("failed after %s (seed %d)", time.Since(began).Round(time.Second), o.seed)
		return 1
	}
	logf("passed in %s (seed %d)", time.Since(began).Round(time.Second), o.seed)
	return 0
}

// harness holds what a run started; cleanup stops it all.
type harness struct {
	o   options
	rng *rand.Rand // only the chaos loop and setup use it
	dir string
	bin string
	cfg string

	pg       *pgCluster
	dv       *dovecottest.Dovecot
	dvMu     sync.Mutex // no LMTP delivery runs while Dovecot restarts
	sink     *smtptest.Server
	db       *dbConn
	st       *store.Store
	replicas []*replica

	kills, pgRestarts, dvRestarts, selfExits atomic.Int32

	repliesMu sync.Mutex
	replies   []*reply // delivered

	sinkMu    sync.Mutex
	sinkLast  int
	sinkSince time.Time
}

func (h *harness) cleanup() {
	for _, r := range h.replicas {
		r.stop(syscall.SIGTERM, 10*time.Second)
	}
	if h.st != nil {
		_ = h.st.Close()
	}
	if h.db != nil {
		_ = h.db.Close()
	}
	if h.dv != nil {
		func() {
			defer func() { _ = recover() }()
			h.dv.Close()
		}()
	}
	if h.sink != nil {
		_ = h.sink.Close()
	}
	if h.pg != nil {
		h.pg.stop()
	}
	if h.dir != "" {
		if h.o.keep {
			logf("kept %s", h.dir)
		} else {
			_ = os.RemoveAll(h.dir)
		}
	}
}

func (h *harness) printTails() {
	for _, r := range h.replicas {
		fmt.Fprintf(os.Stderr, "---- tail of %s\n%s\n", r.logPath, r.logTail(4000))
	}
	if h.pg != nil {
		fmt.Fprintf(os.Stderr, "---- tail of the Postgres log\n%s\n", h.pg.logTail())
	}
}

func (h *harness) run(ctx context.Context) error {
	if err := h.setup(ctx); err != nil {
		return err
	}
	chaosCtx, stopChaos := context.WithCancel(ctx)
	defer stopChaos()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); h.progressLoop(chaosCtx) }()
	go func() { defer wg.Done(); h.watchdog(chaosCtx) }()

	var chaosErr, replyErr error
	var cw sync.WaitGroup
	cw.Add(2)
	go func() { defer cw.Done(); chaosErr = h.chaos(ctx) }()
	go func() { defer cw.Done(); replyErr = h.deliverReplies(ctx) }()
	cw.Wait()
	if err := errors.Join(chaosErr, replyErr); err != nil {
		return err
	}
	logf("chaos over: %d kills, %d Postgres and %d Dovecot restarts, %d replies delivered; draining",
		h.kills.Load(), h.pgRestarts.Load(), h.dvRestarts.Load(), len(h.delivered()))
	err := h.drain(ctx)
	stopChaos()
	wg.Wait()
	// Stop the replicas before counting, so nothing moves under the tally.
	for _, r := range h.replicas {
		r.stop(syscall.SIGTERM, 15*time.Second)
	}
	if n := h.selfExits.Load(); n > 0 {
		logf("warning: replicas exited by themselves %d times (restarted; see their logs)", n)
	}
	return err
}

const configYAML = `# written by chaos
database: {driver: postgres, dsn: %q, sending_lease: %s}
http: {listen: "127.0.0.1:0", api_token: "0123456789abcdef-token"}
log: {level: info}
templates: templates
unsubscribe: {base_url: "https://chaos.example", secret: "chaos-secret-0123456789abcdef"}
accounts:
  - name: sales
    from_name: Alice Seller
    from_address: %s
    timezone: UTC
    daily_limit: 100000000
    min_gap: 0s
    max_gap: 0s
    send_window: {days: mon-sun, hours: "00:00-24:00"}
    smtp: {host: %s, port: %d, tls: none, insecure_plaintext: true, concurrency: 4, retry_base: 5s, retry_max: 30s}
    imap: {host: %s, port: %d, tls: none, insecure_plaintext: true, username: %q, password: %q, folders: [INBOX]}
    on_uncertain: skip
    save_to_sent: false
stages:
  - {name: lead, type: open}
  - {name: prospect, type: open}
  - {name: customer, type: won}
  - {name: not_interested, type: lost}
  - {name: unsubscribed, type: suppressed}
  - {name: bounced, type: suppressed}
sequences:
  - name: intro
    account: sales
    triggers: [{on_stage: lead}]
    window: {days: mon-sun, hours: "00:00-24:00", timezone: account}
    steps:
      - template: one
rules:
  - {name: interested, on: reply, intent: interested, do: {set_stage: prospect, stop: all}}
  - {name: no thanks, on: reply, intent: not_interested, do: {set_stage: not_interested, stop: all}}
  - {name: unsubscribe, on: reply, intent: unsubscribe, do: {set_stage: unsubscribed, stop: all, suppress: true}}
  - {name: other, on: reply, intent: other, do: {stop: this}}
  - {name: hard bounce, on: bounce, bounce_class: hard, do: {set_stage: bounced, stop: all, suppress: true}}
`

func (h *harness) setup(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "chaos-")
	if err != nil {
		return err
	}
	h.dir = dir
	if err := os.Chmod(dir, 0o755); err != nil { // Postgres and Dovecot users reach their folders
		return err
	}
	logf("folder %s", dir)

	h.bin = filepath.Join(dir, "followupd")
	build := exec.CommandContext(ctx, "go", "build", "-o", h.bin, "github.com/followupd/followupd/cmd/followupd")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	logf("built %s", h.bin)

	if h.pg, err = startPostgres(ctx, dir); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	logf("postgres on 127.0.0.1:%d (%s)", h.pg.port, h.pg.bin)

	if h.sink, err = smtptest.New(); err != nil {
		return fmt.Errorf("smtp sink: %w", err)
	}
	h.sink.SetRandomFaults(smtptest.RandomFaults{
		Rcpt451: h.o.rcpt451, Rcpt451Once: true, Rcpt550: h.o.rcpt550, DropAfterDot: h.o.dropAfterDot, Seed: h.o.seed,
	})
	if h.dv, err = dovecottest.New(); err != nil {
		return err
	}
	logf("smtp sink on %s, dovecot IMAP %d LMTP %d", h.sink.Addr(), h.dv.IMAPPort, h.dv.LMTPPort)

	if err := os.Mkdir(filepath.Join(dir, "templates"), 0o755); err != nil {
		return err
	}
	tmpl := "---\nsubject: Hello {{ .Contact.FirstName | default \"there\" }}\n---\nShall we talk?\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "one.md"), []byte(tmpl), 0o644); err != nil {
		return err
	}
	dsn := h.pg.dsn("followupd")
	h.cfg = filepath.Join(dir, "followup.yaml")
	cfg := fmt.Sprintf(configYAML, dsn, h.o.lease, h.dv.Username, h.sink.Host(), h.sink.Port(),
		h.dv.Host, h.dv.IMAPPort, h.dv.Username, h.dv.Password)
	if err := os.WriteFile(h.cfg, []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := h.cli(ctx, "migrate"); err != nil {
		return err
	}
	if err := h.cli(ctx, "check"); err != nil {
		return err
	}
	var csv strings.Builder
	csv.WriteString("email,first_name\n")
	for i := range h.o.steps {
		fmt.Fprintf(&csv, "%s,First%d\n", contactAddr(i), i)
	}
	csvPath := filepath.Join(dir, "contacts.csv")
	if err := os.WriteFile(csvPath, []byte(csv.String()), 0o644); err != nil {
		return err
	}
	if err := h.cli(ctx, "contacts", "import", csvPath, "--stage", "lead"); err != nil {
		return err
	}
	logf("imported %d contacts (stage lead)", h.o.steps)

	if h.db, err = openDB(dsn); err != nil {
		return err
	}
	if h.st, err = store.Open(ctx, store.Options{Driver: store.DialectPostgres, DSN: dsn}); err != nil {
		return err
	}
	for i := range h.o.replicas {
		r := newReplica(i+1, h.bin, h.cfg, dir)
		h.replicas = append(h.replicas, r)
		if err := r.start(); err != nil {
			return err
		}
	}
	logf("%d replicas started", len(h.replicas))
	return nil
}

func contactAddr(i int) string { return fmt.Sprintf("c%d@example.org", i) }

func (h *harness) cli(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, h.bin, append([]string{"-config", h.cfg}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("followupd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// chaos kills a random replica every few seconds and restarts it; between
// the kills it restarts Postgres once (after a third of them) and Dovecot
// once (after two thirds). The kills are spread over the sending: kill i
// waits (besides a jittered -kill-every) until the sink has received its
// share of the messages, or until the sink stops receiving.
func (h *harness) chaos(ctx context.Context) error {
	pgAt, dvAt := h.o.kills/3, 2*h.o.kills/3
	if h.o.kills >= 2 && dvAt == pgAt {
		dvAt = pgAt + 1
	}
	for i := 0; i <= h.o.kills; i++ {
		if i == pgAt {
			if !sleep(ctx, h.o.killEvery/2) {
				return nil
			}
			logf("restarting Postgres (immediate: a crash) with %d messages at the sink", h.sink.Count(smtptest.Delivered))
			start := time.Now()
			if err := h.pg.restart(ctx); err != nil {
				return err
			}
			h.pgRestarts.Add(1)
			logf("Postgres back after %s", time.Since(start).Round(time.Millisecond))
		}
		if i == dvAt {
			if !sleep(ctx, h.o.killEvery/2) {
				return nil
			}
			if err := h.restartDovecot(); err != nil {
				return err
			}
		}
		if i == h.o.kills {
			break
		}
		wait := h.o.killEvery/2 + time.Duration(h.rng.Int64N(int64(h.o.killEvery)+1))
		if !h.waitSink(ctx, wait, h.sendShare(i+1, h.o.kills+1)) {
			return nil
		}
		r := h.replicas[h.rng.IntN(len(h.replicas))]
		r.kill()
		h.kills.Add(1)
		down := 200*time.Millisecond + time.Duration(h.rng.Int64N(int64(1300*time.Millisecond)))
		logf("kill %d/%d: SIGKILL replica %d, restart in %s (sink has %d messages)", i+1, h.o.kills, r.n, down.Round(time.Millisecond), h.sink.Count(smtptest.Delivered))
		if !sleep(ctx, down) {
			return nil
		}
		if err := r.start(); err != nil {
			return err
		}
	}
	return nil
}

// sendShare is the sink count by which part i of n of the sending is done
// (about 94% of the steps reach the sink at their first attempt).
func (h *harness) sendShare(i, n int) int {
	return int(0.9 * float64(h.o.steps) * float64(i) / float64(n))
}

// waitSink waits at least min, then until the sink has received target
// messages or, once the sending has begun, has received nothing for 3 s
// (the sending is over, or stuck); false when ctx ended. Before the first
// message (the replicas enrol the contacts first) it waits up to a minute.
func (h *harness) waitSink(ctx context.Context, min time.Duration, target int) bool {
	if !sleep(ctx, min) {
		return false
	}
	for {
		n, idle := h.sinkProgress()
		if n >= target || (n > 0 && idle >= 3*time.Second) || idle >= time.Minute {
			return true
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return false
		}
	}
}

// sinkProgress is the sink's count and how long it has not changed (as
// seen by the callers, who poll often).
func (h *harness) sinkProgress() (n int, idle time.Duration) {
	n = h.sink.Count(smtptest.Delivered)
	h.sinkMu.Lock()
	defer h.sinkMu.Unlock()
	if n != h.sinkLast || h.sinkSince.IsZero() {
		h.sinkLast, h.sinkSince = n, time.Now()
	}
	return n, time.Since(h.sinkSince)
}

func (h *harness) restartDovecot() (err error) {
	h.dvMu.Lock()
	defer h.dvMu.Unlock()
	defer func() { // dovecottest panics where a test would fail
		if r := recover(); r != nil {
			err = fmt.Errorf("dovecot restart: %v", r)
		}
	}()
	logf("restarting Dovecot")
	start := time.Now()
	h.dv.Restart()
	h.dvRestarts.Add(1)
	logf("Dovecot back after %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// watchdog restarts a replica that exited without being killed (and
// counts it: the daemon should not die of a Postgres or Dovecot restart).
func (h *harness) watchdog(ctx context.Context) {
	for sleep(ctx, 500*time.Millisecond) {
		for _, r := range h.replicas {
			if state := r.exitedByItself(); state != "" {
				h.selfExits.Add(1)
				logf("replica %d exited by itself (%s); restarting it. Log tail:\n%s", r.n, state, r.logTail(1500))
				r.stop(syscall.SIGKILL, time.Second) // reap
				if err := r.start(); err != nil {
					logf("restart replica %d: %v", r.n, err)
				}
			}
		}
	}
}

func (h *harness) progressLoop(ctx context.Context) {
	for sleep(ctx, 5*time.Second) {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := h.db.state(qctx, h.delivered())
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				logf("progress: %v", err)
			}
			continue
		}
		logf("progress: sink %d, %s", h.sink.Count(smtptest.Delivered), st)
	}
}

// drain waits until nothing is queued or sending, every contact's step
// has ended, every delivered reply is recorded and no replica is down —
// or until nothing moved for -drain-stall.
func (h *harness) drain(ctx context.Context) error {
	replies := h.delivered()
	var last string
	lastChange := time.Now()
	for sleep(ctx, time.Second) {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := h.db.state(qctx, replies)
		cancel()
		if err != nil {
			logf("drain: %v", err)
			continue
		}
		up := true
		for _, r := range h.replicas {
			up = up && r.running()
		}
		if st.done(len(replies)) && up {
			logf("drained: %s", st)
			return nil
		}
		if s := st.String(); s != last {
			last, lastChange = s, time.Now()
		}
		if time.Since(lastChange) > h.o.drainStall {
			logf("drain: nothing moved for %s, giving up: %s", h.o.drainStall, st)
			h.db.logStuck(context.Background())
			return nil // the tally says what is wrong
		}
	}
	return ctx.Err()
}
