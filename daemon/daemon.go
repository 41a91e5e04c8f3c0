package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/inbox"
	"github.com/followupd/followupd/outbox"
	"github.com/followupd/followupd/replies"
	"github.com/followupd/followupd/sequences"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/web"
)

// Options configure a Daemon.
type Options struct {
	// ConfigPath is the YAML file; SIGHUP reloads it.
	ConfigPath string
	// Migrate applies pending Postgres migrations at start (run --migrate).
	Migrate bool
	// Logger overrides the logger the config asks for (tests).
	Logger *slog.Logger
	// LogOutput is where the configured logger writes; default stderr.
	LogOutput io.Writer
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// SchedulerInterval is how often the scheduler looks for due steps
	// without being woken; default 15s.
	SchedulerInterval time.Duration
	// LeaseInterval is how often a replica tries to take a mailbox another
	// replica watches; default 10s.
	LeaseInterval time.Duration
	// OutboxOptions adjusts the outbox (tests shorten its timers).
	OutboxOptions func(*outbox.Options)
	// InboxOptions adjusts each watcher (tests shorten its timers).
	InboxOptions func(*inbox.Options)
	// WebhookOptions adjusts the webhook dispatcher (tests shorten its timers).
	WebhookOptions func(*web.WebhookOptions)
}

// Daemon is `followupd run`: the scheduler, the outbox, one inbox watcher
// per mailbox this replica holds, the webhook dispatcher and the HTTP server.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	rt      atomic.Pointer[Runtime]
	st      *store.Store
	metrics *web.Metrics
	sched   *Scheduler
	out     *outbox.Service
	hooks   *web.Webhooks
	http    *web.Server
	ingest  *Ingestor

	wake chan struct{}

	mu       sync.Mutex
	watchers map[string]*watcherState
	wg       sync.WaitGroup
	cancel   context.CancelFunc
}

type watcherState struct {
	w         *inbox.Watcher
	connected atomic.Bool
}

// New loads the configuration, refuses to start on any problem in it or in
// its templates (each printed as FILE:LINE:COL), and opens the database.
func New(ctx context.Context, o Options) (*Daemon, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SchedulerInterval <= 0 {
		o.SchedulerInterval = 15 * time.Second
	}
	if o.LeaseInterval <= 0 {
		o.LeaseInterval = 10 * time.Second
	}
	rt, err := loadRuntime(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	c := rt.Config
	d := &Daemon{opts: o, wake: make(chan struct{}, 1), watchers: map[string]*watcherState{}}
	d.rt.Store(rt)
	d.log = o.Logger
	if d.log == nil {
		d.log = NewLogger(c.Log, o.LogOutput)
	}
	st, err := store.Open(ctx, store.Options{
		Driver: c.Database.Driver, DSN: c.DatabaseDSN(), Migrate: o.Migrate,
		Exclusive: c.Database.Driver == "sqlite", Logger: d.log, DefaultStage: c.DefaultStage(),
	})
	if err != nil {
		return nil, err
	}
	d.st = st
	if off, err := st.AutovacuumOff(ctx); err == nil && off {
		d.log.Warn("Postgres autovacuum is off: dead rows and stale statistics will slow followupd down as its tables grow; turn it on or run VACUUM ANALYZE regularly")
	}
	return d, nil
}

// loadRuntime reads and checks a configuration, including rendering every
// step, as `followupd check` does.
func loadRuntime(path string) (*Runtime, error) {
	c, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	rt, err := NewRuntime(c)
	if err != nil {
		return nil, err
	}
	if errs := rt.CheckRender(nil); len(errs) > 0 {
		return nil, errs
	}
	return rt, nil
}

// NewLogger builds the configured slog logger.
func NewLogger(l config.Log, w io.Writer) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(l.Level))
	hopts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}

// Runtime is the configuration in force.
func (d *Daemon) Runtime() *Runtime { return d.rt.Load() }

// Store is the daemon's database.
func (d *Daemon) Store() *store.Store { return d.st }

// HTTPAddr is where the HTTP server listens, once started.
func (d *Daemon) HTTPAddr() string {
	if d.http == nil || d.http.Addr() == nil {
		return ""
	}
	return d.http.Addr().String()
}

// Wake makes the scheduler run a pass now.
func (d *Daemon) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Daemon) webhook(ctx context.Context, tx *store.Tx, event string, payload any) error {
	if d.hooks == nil {
		return nil
	}
	_, err := d.hooks.Enqueue(ctx, tx, event, payload)
	return err
}

// Start starts every service; it returns when they run.
func (d *Daemon) Start(ctx context.Context) error {
	ctx, d.cancel = context.WithCancel(ctx)
	rt := d.Runtime()
	c := rt.Config
	d.metrics = web.NewMetrics()
	wo := web.WebhookOptions{Store: d.st, Config: func() *config.Config { return d.Runtime().Config }, Logger: d.log.With("service", "webhooks"), Now: d.opts.Now}
	if d.opts.WebhookOptions != nil {
		d.opts.WebhookOptions(&wo)
	}
	d.hooks = web.NewWebhooks(wo)
	d.ingest = &Ingestor{
		Runtime: d.Runtime, Webhook: d.webhook, Now: d.opts.Now,
		OnIngested: func(res replies.Result, matched bool) { d.metrics.Reply(string(res.Kind), string(res.Intent)) },
	}
	d.sched = &Scheduler{Store: d.st, Runtime: d.Runtime, Now: d.opts.Now, Log: d.log.With("service", "scheduler")}
	oo := outbox.Options{
		Store: d.st, Accounts: c.Accounts, Unsubscribe: c.Unsubscribe, BlockedStages: rt.BlockedStages(),
		Hooks: d.outboxHooks(ctx), Logger: d.log.With("service", "outbox"), Now: d.opts.Now, ConfigDir: c.Dir(),
		// The outbox takes due steps straight from the scheduler when its
		// queue runs dry: one transaction claims, checks, renders and marks
		// them sending, instead of one to queue and one to claim.
		Produce: d.sched.Produce,
	}
	oo.SendingLease = sendingLease(c)
	if c.Database.Driver == "sqlite" {
		// This process holds the SQLite file exclusively: a row left
		// sending was left by a process that died, never by a live peer.
		oo.SendingLease = time.Nanosecond
	}
	if d.opts.OutboxOptions != nil {
		d.opts.OutboxOptions(&oo)
	}
	var err error
	if d.out, err = outbox.New(oo); err != nil {
		return err
	}
	d.sched.Enqueued = d.out.Notify
	d.sched.Pulls = d.out.Serves
	d.http = web.New(web.Options{
		Store: d.st, Config: func() *config.Config { return d.Runtime().Config }, Metrics: d.metrics,
		Ready: d.ready, Logger: d.log.With("service", "http"), Now: d.opts.Now,
		ChooseAccount: func(seq, email string) (string, error) {
			s, ok := d.Runtime().Sequences[seq]
			if !ok {
				return "", fmt.Errorf("unknown sequence %q", seq)
			}
			return sequences.ChooseAccount(s, email), nil
		},
		Hooks: web.Hooks{
			OnPurchase: func(ctx context.Context, ct store.Contact) error {
				return d.st.InTx(ctx, func(tx *store.Tx) error {
					_, err := ApplyEvent(ctx, tx, d.Runtime(), Subject{Contact: ct}, sequences.Event{On: sequences.EventPurchase, Now: d.opts.Now()}, d.webhook)
					return err
				})
			},
			OnStageChanged: func(ctx context.Context, ct store.Contact, from, to, reason string) error {
				d.metrics.StageChanged(from, to)
				d.Wake() // on_stage triggers
				return nil
			},
			OnUnsubscribe: func(ctx context.Context, tx *store.Tx, ct store.Contact) error {
				if err := d.webhook(ctx, tx, WebhookUnsubscribed, map[string]any{"contact": ct.Email, "source": "one-click"}); err != nil {
					return err
				}
				_, err := ApplyEvent(ctx, tx, d.Runtime(), Subject{Contact: ct}, sequences.Event{On: sequences.EventUnsubscribe, Now: d.opts.Now()}, d.webhook)
				return err
			},
		},
	})
	if err := d.http.Start(ctx); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	if err := d.out.Start(ctx); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := d.hooks.Start(ctx); err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	d.wg.Add(2)
	go d.scheduleLoop(ctx)
	go func() {
		defer d.wg.Done()
		if err := d.st.ListenForWork(ctx, d.Wake); err != nil {
			d.log.Warn("not listening for new work; the scheduler runs on its timer", "error", err)
		}
	}()
	for i := range c.Accounts {
		if a := c.Accounts[i]; a.IMAP != nil {
			d.wg.Add(1)
			go d.mailboxLoop(ctx, a)
		}
	}
	d.log.Info("followupd started", "http", d.HTTPAddr(), "database", c.Database.Driver, "accounts", len(c.Accounts), "sequences", len(c.Sequences))
	return nil
}

func (d *Daemon) outboxHooks(ctx context.Context) outbox.Hooks {
	h := OutboxHooks(ctx, d.Runtime, d.opts.Now, d.webhook)
	sent := h.Sent
	h.Sent = func(tx *store.Tx, m store.MessageOut) error {
		d.metrics.Sent(m.Account, m.Sequence, m.Step+1, "sent")
		return sent(tx, m)
	}
	failed := h.Failed
	h.Failed = func(tx *store.Tx, m store.MessageOut, hard bool) error {
		d.metrics.Sent(m.Account, m.Sequence, m.Step+1, "failed")
		return failed(tx, m, hard)
	}
	return h
}

func (d *Daemon) ready() web.ReadyState {
	var rs web.ReadyState
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range d.Runtime().Config.Accounts {
		ar := web.AccountReady{Account: a.Name, SMTPOK: true, IMAPOK: true}
		if a.IMAP != nil {
			if ws, ok := d.watchers[a.Name]; ok && !ws.connected.Load() {
				ar.IMAPOK, ar.IMAPError = false, "not connected"
			}
		}
		rs.Accounts = append(rs.Accounts, ar)
	}
	return rs
}

// scheduleLoop runs scheduler passes on a timer and whenever woken.
func (d *Daemon) scheduleLoop(ctx context.Context) {
	defer d.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	var lastExpire time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
		lease := sendingLease(d.Runtime().Config)
		if d.st.Dialect() == store.DialectPostgres && d.opts.Now().Sub(lastExpire) > min(time.Minute, lease/3) {
			// A replica that died mid-send left rows sending; past the
			// sending lease they become uncertain (never resent blindly).
			lastExpire = d.opts.Now()
			if n, err := d.st.ExpireSending(ctx, lastExpire.Add(-lease)); err != nil && ctx.Err() == nil {
				d.log.Warn("cannot expire stuck sends", "error", err)
			} else if n > 0 {
				d.log.Warn("sends left by a stopped replica are now uncertain", "count", n)
			}
		}
		n, err := d.sched.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.Error("scheduler pass failed", "error", err)
		}
		if n > 0 {
			d.log.Info("queued messages", "count", n)
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		next := d.opts.SchedulerInterval
		if d.st.Dialect() == store.DialectPostgres {
			// A short lease is checked as often as it asks.
			next = min(next, lease/3)
		}
		t.Reset(next)
	}
}

// mailboxLoop watches one account's mailbox while this replica holds its
// lease; without the lease it keeps trying, so a replica takes over when
// the holder dies.
func (d *Daemon) mailboxLoop(ctx context.Context, a config.Account) {
	defer d.wg.Done()
	log := d.log.With("service", "inbox", "account", a.Name)
	for ctx.Err() == nil {
		lease, ok, err := d.st.TryLease(ctx, "mailbox:"+a.Name)
		if err != nil && ctx.Err() == nil {
			log.Warn("cannot take the mailbox lease", "error", err)
		}
		if !ok {
			if !sleep(ctx, d.opts.LeaseInterval) {
				return
			}
			continue
		}
		log.Info("watching mailbox")
		d.watch(ctx, a, lease, log)
		_ = lease.Release()
	}
}

func (d *Daemon) watch(ctx context.Context, a config.Account, lease *store.Lease, log *slog.Logger) {
	ws := &watcherState{}
	// Each message recorded, one by one or with its batch.
	observe := func(m inbox.Message) {
		if !m.InternalDate.IsZero() {
			d.metrics.ObserveReplyDetection(d.opts.Now().Sub(m.InternalDate))
		}
	}
	io := inbox.Options{
		// The watcher names its account in every line itself.
		Store: d.st, Account: a, Logger: d.log.With("service", "inbox"), Now: d.opts.Now,
		Prepare: d.ingest.Prepare,
		Handler: func(ctx context.Context, tx *store.Tx, m inbox.Message) error {
			res, err := d.ingest.Ingest(ctx, tx, InboundOf(m))
			if err == nil && !res.Duplicate {
				observe(m)
			}
			return err
		},
		// Mail that matches nobody is recorded a batch at a time.
		Batch: d.ingest.Batch(observe),
		OnConnState: func(up bool) {
			ws.connected.Store(up)
			d.metrics.SetIMAPConnected(a.Name, up)
		},
	}
	if d.opts.InboxOptions != nil {
		d.opts.InboxOptions(&io)
	}
	w, err := inbox.New(io)
	if err != nil {
		log.Error("cannot watch the mailbox", "error", err)
		sleep(ctx, d.opts.LeaseInterval)
		return
	}
	ws.w = w
	d.mu.Lock()
	d.watchers[a.Name] = ws
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.watchers, a.Name)
		d.mu.Unlock()
	}()
	if err := w.Start(ctx); err != nil {
		log.Error("cannot watch the mailbox", "error", err)
		return
	}
	defer w.Stop()
	for sleep(ctx, d.opts.LeaseInterval) {
		if err := lease.Alive(ctx); err != nil {
			log.Warn("mailbox lease lost; another replica may take over", "error", err)
			return
		}
	}
}

// sendingLease is how long a send may take at most (database.sending_lease);
// a row sending for longer was left by a replica that died.
func sendingLease(c *config.Config) time.Duration {
	if l := c.Database.SendingLease.Std(); l > 0 {
		return l
	}
	return 15 * time.Minute
}

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

// Reload re-reads the configuration (SIGHUP). An invalid one is logged with
// its FILE:LINE:COL problems and the running one stays. Sequences, rules,
// stages and templates apply at once; accounts, the database and the HTTP
// listener need a restart, which is logged.
func (d *Daemon) Reload() error {
	rt, err := loadRuntime(d.opts.ConfigPath)
	if err != nil {
		var ce config.Errors
		if errors.As(err, &ce) {
			for _, e := range ce {
				d.log.Error("config reload refused", "problem", e.Error())
			}
		} else {
			d.log.Error("config reload refused", "error", err)
		}
		return err
	}
	old := d.Runtime().Config
	if !reflect.DeepEqual(old.Accounts, rt.Config.Accounts) || old.Database != rt.Config.Database || old.HTTP != rt.Config.HTTP {
		d.log.Warn("accounts, database or http changed: restart followupd to apply them; sequences, rules and templates are reloaded")
		rt.Config.Accounts, rt.Config.Database, rt.Config.HTTP = old.Accounts, old.Database, old.HTTP
	}
	d.rt.Store(rt)
	d.log.Info("configuration reloaded", "sequences", len(rt.Config.Sequences), "rules", len(rt.Config.Rules))
	d.Wake()
	return nil
}

// Stop stops taking work, lets SMTP transactions in flight finish, closes
// IMAP and the database. It gives up waiting after timeout: a send cut off
// then is found uncertain at the next start, never sent blindly again.
func (d *Daemon) Stop(timeout time.Duration) {
	deadline, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if d.http != nil {
			_ = d.http.Stop(deadline)
		}
		// The outbox stops first, with its context still alive, so the SMTP
		// transactions in flight finish and are recorded; then the rest.
		if d.out != nil {
			d.out.Stop()
		}
		if d.cancel != nil {
			d.cancel()
		}
		d.wg.Wait()
		if d.hooks != nil {
			_ = d.hooks.Stop(deadline)
		}
	}()
	select {
	case <-done:
	case <-deadline.Done():
		d.log.Warn("shutdown timed out; unfinished sends will be reconciled at the next start")
	}
	_ = d.st.Close()
	d.log.Info("followupd stopped")
}

// Close releases the database of a daemon that was never started.
func (d *Daemon) Close() error { return d.st.Close() }
