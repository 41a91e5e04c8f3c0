// Package outbox sends the rendered messages the scheduler queues in
// messages_out, over SMTP from the seller's own mailbox.
//
// Each row goes queued → sending → sent, or back to queued (a temporary
// error, retried with exponential backoff), failed (a permanent error; a
// refused recipient is also suppressed), or uncertain (the connection died
// after the final dot). The claim that marks a row sending re-checks its
// enrollment and contact in the same transaction (guarantee 2); an
// uncertain row is never resent blindly but reconciled against the
// account's Sent folder over IMAP (guarantee 1).
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
)

// Hooks let the daemon act in the transaction that records a send's
// outcome. Either may be nil.
type Hooks struct {
	// Sent runs when a message is recorded sent (also when reconcile finds
	// it in Sent), e.g. to advance the enrollment.
	Sent func(tx *store.Tx, m store.MessageOut) error
	// SentBatch runs when a group of messages is recorded sent in one
	// transaction (a busy outbox records its sends in groups); nil runs
	// Sent for each.
	SentBatch func(tx *store.Tx, ms []store.MessageOut) error
	// Failed runs when a message is recorded failed; hardBounce says the
	// recipient was refused for good and has been suppressed.
	Failed func(tx *store.Tx, m store.MessageOut, hardBounce bool) error
}

// Options configure a Service. Zero durations take their defaults.
type Options struct {
	Store       *store.Store
	Accounts    []config.Account
	Unsubscribe config.Unsubscribe
	// BlockedStages are the stages never mailed (lost and suppressed ones).
	BlockedStages []string
	Hooks         Hooks
	// Logger receives the outbox's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Rand returns a number in [0, 1) for the backoff's jitter; nil uses
	// math/rand/v2.
	Rand func() float64
	// ConfigDir resolves relative dkim.key_file paths.
	ConfigDir string
	// HeloName is the EHLO name; empty is the host name.
	HeloName string
	// Produce, when set, is asked for more when an account's queue holds
	// fewer due messages than a claim takes: it returns messages of the
	// account already marked sending, at most limit (daemon's
	// Scheduler.Produce, which claims due steps and renders them in the
	// transaction that marks them sending); they are sent like claimed
	// ones. more says it may have more.
	Produce func(ctx context.Context, account string, limit int) (msgs []store.MessageOut, more bool, err error)

	// BatchSize is how many messages one claim takes. By default a claim
	// takes 4 per connection, and while claims come back full (a backlog)
	// twice as many as the last one, up to 16 per connection (more was no
	// faster in the send benchmark, and a killed process leaves what it
	// claimed uncertain).
	BatchSize int
	// PollInterval is how often an idle account looks for due messages
	// without being notified; default 1m.
	PollInterval time.Duration
	// RetryBase and RetryMax bound the exponential backoff between
	// attempts after a temporary error; defaults 1m and 1h.
	RetryBase, RetryMax time.Duration
	// MaxAge is how long after it was queued a message is retried before it
	// fails; default 48h.
	MaxAge time.Duration
	// SMTPTimeout bounds dialling and login, and then each message's SMTP
	// transaction (go-mail sets one deadline per Send); default 60s.
	SMTPTimeout time.Duration
	// IMAPTimeout bounds each IMAP session (reconcile, save to Sent);
	// default 60s.
	IMAPTimeout time.Duration
	// IdleTimeout closes an SMTP connection unused for this long; default 1m.
	IdleTimeout time.Duration
	// SendingLease is how long a send may take at most: rows left sending
	// for longer are made uncertain at Start; default 15m.
	SendingLease time.Duration
	// ReconcileInterval is how often uncertain rows are reconciled;
	// default 5m.
	ReconcileInterval time.Duration
	// VerifyAfter is how old an uncertain row must be before "verify" takes
	// its absence from Sent as proof that it was not sent; default 5m.
	VerifyAfter time.Duration
	// TokenTimeout bounds oauth2_token_command; default 30s. TokenTTL is how
	// long its token is reused; default 5m.
	TokenTimeout, TokenTTL time.Duration
	// StoreTimeout bounds the writes that record an outcome, which run even
	// while stopping; default 30s.
	StoreTimeout time.Duration
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.PollInterval, time.Minute)
	def(&o.RetryBase, time.Minute)
	def(&o.RetryMax, time.Hour)
	def(&o.MaxAge, 48*time.Hour)
	def(&o.SMTPTimeout, time.Minute)
	def(&o.IMAPTimeout, time.Minute)
	def(&o.IdleTimeout, time.Minute)
	def(&o.SendingLease, 15*time.Minute)
	def(&o.ReconcileInterval, 5*time.Minute)
	def(&o.VerifyAfter, 5*time.Minute)
	def(&o.TokenTimeout, 30*time.Second)
	def(&o.TokenTTL, 5*time.Minute)
	def(&o.StoreTimeout, 30*time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
}

// Service sends queued messages for every account.
type Service struct {
	opts     Options
	store    *store.Store
	log      *slog.Logger
	accounts map[string]*account
	order    []string // account names in configuration order

	mu      sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	loops   sync.WaitGroup
	// inflight counts RunOnce calls, which Stop also waits for.
	inflight sync.WaitGroup
	// recording counts the goroutines recording sends (see record).
	recording sync.WaitGroup
	// stopping is closed by Stop: workers take no new message.
	stopping chan struct{}
	stopOnce sync.Once
	// reconWake runs the reconcile loop early.
	reconWake chan struct{}
}

// account is one sending mailbox and its connections.
type account struct {
	svc    *Service
	cfg    config.Account
	dkim   *DKIMKey
	tokens *tokenSource
	wake   chan struct{}
	// slots holds the account's connections, concurrency of them; a
	// worker takes one for the length of a batch.
	slots chan *conn
	// reconMu serialises reconcile runs of the account.
	reconMu sync.Mutex
	// recMu guards recPending, the sends accepted by the server and not
	// yet recorded, and recRunning, whether a goroutine is recording them.
	recMu      sync.Mutex
	recPending []sentItem
	recRunning bool
	// imapTokens is the IMAP login's oauth2_token_command, made on first use.
	imapTokensOnce sync.Once
	imapTokens     *tokenSource
}

// New checks the accounts and prepares a Service; nothing is started.
func New(o Options) (*Service, error) {
	if o.Store == nil {
		return nil, errors.New("outbox: no store")
	}
	o.defaults()
	s := &Service{
		opts:      o,
		store:     o.Store,
		log:       o.Logger,
		accounts:  map[string]*account{},
		stopping:  make(chan struct{}),
		reconWake: make(chan struct{}, 1),
	}
	for _, cfg := range o.Accounts {
		if cfg.Name == "" {
			return nil, errors.New("outbox: an account has no name")
		}
		if _, dup := s.accounts[cfg.Name]; dup {
			return nil, fmt.Errorf("outbox: account %q is listed twice", cfg.Name)
		}
		applyDefaults(&cfg)
		if err := checkServer(cfg.SMTP.Server); err != nil {
			return nil, fmt.Errorf("outbox: account %s: smtp: %w", cfg.Name, err)
		}
		if cfg.IMAP != nil {
			if err := checkServer(cfg.IMAP.Server); err != nil {
				return nil, fmt.Errorf("outbox: account %s: imap: %w", cfg.Name, err)
			}
		}
		switch cfg.OnUncertain {
		case "skip", "verify", "resend":
		default:
			return nil, fmt.Errorf("outbox: account %s: unknown on_uncertain %q", cfg.Name, cfg.OnUncertain)
		}
		a := &account{svc: s, cfg: cfg, wake: make(chan struct{}, 1)}
		if cfg.DKIM != nil {
			key, err := LoadDKIM(cfg.DKIM, o.ConfigDir)
			if err != nil {
				return nil, fmt.Errorf("outbox: account %s: %w", cfg.Name, err)
			}
			a.dkim = key
		}
		if cfg.SMTP.OAuth2TokenCommand != "" {
			a.tokens = &tokenSource{command: cfg.SMTP.OAuth2TokenCommand, timeout: o.TokenTimeout, ttl: o.TokenTTL, now: o.Now}
		}
		a.slots = make(chan *conn, cfg.SMTP.Concurrency)
		for range cfg.SMTP.Concurrency {
			a.slots <- &conn{a: a}
		}
		s.accounts[cfg.Name] = a
		s.order = append(s.order, cfg.Name)
	}
	return s, nil
}

// applyDefaults fills what config.Load would have, for accounts built in
// code.
func applyDefaults(a *config.Account) {
	if a.SMTP.TLS == "" {
		a.SMTP.TLS = "tls"
	}
	if a.SMTP.Port == 0 {
		a.SMTP.Port = map[string]int{"tls": 465, "starttls": 587, "none": 25}[a.SMTP.TLS]
	}
	if a.SMTP.Auth == "" {
		a.SMTP.Auth = "auto"
		if a.SMTP.OAuth2TokenCommand != "" {
			a.SMTP.Auth = "xoauth2"
		}
	}
	if a.SMTP.Concurrency < 1 {
		a.SMTP.Concurrency = 1
	}
	if a.OnUncertain == "" {
		a.OnUncertain = "skip"
	}
	if a.IMAP != nil {
		imap := *a.IMAP
		if imap.TLS == "" {
			imap.TLS = "tls"
		}
		if imap.Port == 0 {
			imap.Port = map[string]int{"tls": 993, "starttls": 143, "none": 143}[imap.TLS]
		}
		if imap.Auth == "" {
			imap.Auth = "auto"
		}
		a.IMAP = &imap
	}
}

// minLoopWait is the shortest an account loop waits between passes that
// found nothing to claim.
const minLoopWait = time.Second

func (s *Service) now() time.Time { return s.opts.Now() }

func (s *Service) account(name string) (*account, error) {
	a, ok := s.accounts[name]
	if !ok {
		return nil, fmt.Errorf("outbox: unknown account %q", name)
	}
	return a, nil
}

// Start makes rows left sending by a previous run uncertain, then starts a
// sending loop per account and the reconcile loop. The loops stop when ctx
// ends or Stop is called.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("outbox: already started")
	}
	if s.stopped {
		return errors.New("outbox: stopped")
	}
	n, err := s.store.ExpireSending(ctx, s.now().Add(-s.opts.SendingLease))
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Warn("messages interrupted while sending are now uncertain", "count", n)
	}
	s.started = true
	runCtx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	for _, name := range s.order {
		a := s.accounts[name]
		s.loops.Add(1)
		go func() {
			defer s.loops.Done()
			s.accountLoop(runCtx, a)
		}()
	}
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		s.reconcileLoop(runCtx)
	}()
	return nil
}

// Stop stops taking work, lets the SMTP transactions in flight finish and
// record their outcome, puts claimed messages not yet attempted back in the
// queue, closes the connections and returns when all is done. It may be
// called more than once, and without Start.
func (s *Service) Stop() {
	s.mu.Lock()
	s.stopped = true
	cancel := s.cancel
	s.mu.Unlock()
	s.stopOnce.Do(func() { close(s.stopping) })
	if cancel != nil {
		cancel()
	}
	s.loops.Wait()
	s.inflight.Wait()
	s.recording.Wait()
	for _, name := range s.order {
		s.accounts[name].closeConns(0)
	}
}

// Notify wakes every account's loop, e.g. after the scheduler queued
// messages. It never blocks.
func (s *Service) Notify() {
	for _, a := range s.accounts {
		a.notify()
	}
}

func (a *account) notify() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (s *Service) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// accountLoop sends an account's due messages: a batch, then another at
// once if the batch was full, else a wait for Notify, the next due row or
// the poll interval.
func (s *Service) accountLoop(ctx context.Context, a *account) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		case <-timer.C:
		}
		err := s.drain(ctx, a)
		if err != nil && ctx.Err() == nil {
			s.log.Error("sending failed", "account", a.cfg.Name, "error", err)
		}
		// Until the next row is due, the poll interval at most; after an
		// error, the poll interval. A row due but not claimed (locked by
		// another replica) is looked at again a little later, not at once.
		wait := s.opts.PollInterval
		if err == nil {
			if at, ok, qerr := s.store.NextQueuedAt(ctx, a.cfg.Name); qerr == nil && ok {
				wait = min(wait, max(at.Sub(s.now()), minLoopWait))
			}
		}
		if wait >= s.opts.IdleTimeout {
			a.closeConns(0)
		} else {
			a.closeConns(s.opts.IdleTimeout)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// closeConns closes the connections idle for idle or longer (all when
// idle is 0) that no worker is using.
func (a *account) closeConns(idle time.Duration) {
	now := a.svc.now()
	var held []*conn
	for {
		select {
		case c := <-a.slots:
			held = append(held, c)
			continue
		default:
		}
		break
	}
	for _, c := range held {
		if c.open() && (idle == 0 || now.Sub(c.lastUsed) >= idle) {
			c.close()
		}
		a.slots <- c
	}
}

// RunOnce claims one batch of the account's due messages and sends it
// before returning; sent counts the messages accepted by the server.
func (s *Service) RunOnce(ctx context.Context, accountName string) (sent int, err error) {
	a, err := s.account(accountName)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return 0, nil
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()
	sent, _, err = s.runBatch(ctx, a)
	return sent, err
}

func (s *Service) batchSize(a *account) int {
	if s.opts.BatchSize > 0 {
		return s.opts.BatchSize
	}
	return 4 * a.cfg.SMTP.Concurrency
}

// maxBatchSize is the largest claim: BatchSize when set, else 16 per
// connection, or 32 when starved — when the connections had to wait for
// the claim, which then takes longer than sending its batch (a fast
// server; a claim's cost per message falls with its size).
func (s *Service) maxBatchSize(a *account, starved bool) int {
	if s.opts.BatchSize > 0 {
		return s.opts.BatchSize
	}
	if starved {
		return 32 * a.cfg.SMTP.Concurrency
	}
	return 16 * a.cfg.SMTP.Concurrency
}

// batch is one claim's worth of messages being sent.
type batch struct {
	mu      sync.Mutex
	dialErr error // set when connecting failed: the rest is retried without dialling
	sent    int
	// recorded counts the batch's sends not yet recorded.
	recorded sync.WaitGroup
}

// wait waits until every send of the batch is recorded and returns how
// many were recorded sent.
func (b *batch) wait() int {
	b.recorded.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent
}

// runBatch claims due messages, sends them over the account's connections
// and waits until their outcomes are recorded; full says the claim was as
// large as allowed (there may be more).
func (s *Service) runBatch(ctx context.Context, a *account) (sent int, full bool, err error) {
	if s.isStopping() {
		return 0, false, nil
	}
	claimed, full, err := s.claim(ctx, a, s.batchSize(a))
	if err != nil || len(claimed) == 0 {
		return 0, full, err
	}
	return s.send(ctx, a, claimed, 0, nil).wait(), full, nil
}

// claim takes up to limit due messages of the account (see
// store.ClaimForSend) and logs the ones cancelled; full says the claim was
// as large as allowed.
func (s *Service) claim(ctx context.Context, a *account, limit int) (claimed []store.MessageOut, full bool, err error) {
	claimed, cancelled, err := s.store.ClaimForSend(ctx, a.cfg.Name, s.now(), limit, s.opts.BlockedStages)
	if err != nil {
		return nil, false, err
	}
	for _, m := range cancelled {
		s.log.Info("message cancelled before sending", "account", a.cfg.Name, "message_id", m.MessageID,
			"contact_id", m.ContactID, "reason", m.LastError)
	}
	taken := len(claimed) + len(cancelled)
	if taken == limit || s.opts.Produce == nil || s.isStopping() {
		return claimed, taken == limit, nil
	}
	produced, more, err := s.opts.Produce(ctx, a.cfg.Name, limit-taken)
	if err != nil {
		if len(claimed) == 0 {
			return nil, false, err
		}
		// What was claimed is sending and must go out; the error is
		// met again by the next claim.
		s.log.Error("unable to take due steps to send", "account", a.cfg.Name, "error", err)
		return claimed, false, nil
	}
	return append(claimed, produced...), more, nil
}

// Serves says whether the service sends for the account.
func (s *Service) Serves(account string) bool {
	_, err := s.account(account)
	return err == nil
}

type claimResult struct {
	claimed []store.MessageOut
	full    bool
	err     error
	took    time.Duration
}

// drain sends the account's due messages until a claim comes back short.
// With a backlog, three things overlap: the next claim is taken while a
// batch is being sent, and a batch's sends are recorded while the next
// one is sent; at most two batches wait to be recorded, which bounds the
// rows a crash leaves sending.
func (s *Service) drain(ctx context.Context, a *account) error {
	if s.isStopping() {
		return nil
	}
	limit := s.batchSize(a)
	t0 := time.Now()
	claimed, full, err := s.claim(ctx, a, limit)
	claimTook := time.Since(t0)
	var prev *batch
	var perMsg time.Duration // the last batch's sending time per message
	starved := false
	for err == nil && (len(claimed) > 0 || full) {
		var next chan claimResult
		var tail func()
		if full && !s.isStopping() && ctx.Err() == nil {
			limit = min(2*limit, s.maxBatchSize(a, starved))
			next = make(chan claimResult, 1)
			// Claimed late: a claimed row not yet attempted becomes
			// uncertain if the process dies, so the next batch should wait
			// claimed as briefly as possible — but claimed before the
			// connections run out of work (leadFor).
			tail = func() {
				go func(limit int) {
					t0 := time.Now()
					c, f, err := s.claim(ctx, a, limit)
					next <- claimResult{c, f, err, time.Since(t0)}
				}(limit)
			}
		}
		t0 := time.Now()
		b := s.send(ctx, a, claimed, leadFor(len(claimed), claimTook, perMsg), tail)
		if len(claimed) > 0 {
			perMsg = time.Since(t0) / time.Duration(len(claimed))
		}
		if prev != nil {
			prev.wait()
		}
		prev = b
		if next == nil {
			break
		}
		t0 = time.Now()
		r := <-next
		if time.Since(t0) > max(perMsg, time.Millisecond) {
			starved = true
		}
		claimed, full, err, claimTook = r.claimed, r.full, r.err, r.took
	}
	if prev != nil {
		prev.wait()
	}
	return err
}

// leadFor is how many of a batch of n messages are left to hand out when
// the next claim starts: a quarter, or more when the last claim took
// longer than sending a quarter did (with half again as margin), so that
// the next batch is ready when this one is out.
func leadFor(n int, claimTook, perMsg time.Duration) int {
	lead := n / 4
	if perMsg > 0 {
		need := int((claimTook*3/2 + perMsg - 1) / perMsg)
		lead = max(lead, need)
	}
	return min(lead, n)
}

// send sends claimed messages over the account's connections and returns
// once each was attempted; their outcomes may still be being recorded
// (batch.wait). tail, when not nil, is called once, when lead messages are
// left to hand to the connections.
func (s *Service) send(ctx context.Context, a *account, claimed []store.MessageOut, lead int, tail func()) *batch {
	b := &batch{}
	if len(claimed) == 0 {
		if tail != nil {
			tail()
		}
		return b
	}
	jobs := make(chan store.MessageOut)
	var wg sync.WaitGroup
	for range min(a.cfg.SMTP.Concurrency, len(claimed)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := <-a.slots
			defer func() { a.slots <- c }()
			for m := range jobs {
				s.process(ctx, a, c, b, m)
			}
		}()
	}
	for i, m := range claimed {
		if tail != nil && len(claimed)-i <= lead {
			tail()
			tail = nil
		}
		jobs <- m
	}
	close(jobs)
	if tail != nil {
		tail()
	}
	wg.Wait()
	return b
}

// bookkeeping returns the context for recording an outcome: it survives
// Stop and the caller's cancellation, so that a message handed to the
// server is always recorded.
func (s *Service) bookkeeping(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.opts.StoreTimeout)
}

// process sends one claimed message and records the outcome.
func (s *Service) process(ctx context.Context, a *account, c *conn, b *batch, m store.MessageOut) {
	bctx, cancel := s.bookkeeping(ctx)
	defer cancel()
	log := s.log.With("account", a.cfg.Name, "message_id", m.MessageID, "attempt", m.Attempts)

	if s.isStopping() || ctx.Err() != nil {
		// Never attempted: back in the queue as it was.
		if err := s.store.Unclaim(bctx, m.ID); err != nil {
			log.Error("unable to put an unsent message back in the queue", "error", err)
		}
		return
	}
	msg, err := Build(m, &a.cfg, BuildOptions{
		Date:              s.now(),
		UnsubscribeMailto: s.opts.Unsubscribe.Mailto,
		DKIM:              a.dkim,
		ConfigDir:         s.opts.ConfigDir,
	})
	if err != nil {
		s.fail(bctx, log, m, outcome{verdict: vFailed, reason: "cannot build the message: " + err.Error()})
		return
	}
	b.mu.Lock()
	dialErr := b.dialErr
	b.mu.Unlock()
	if dialErr != nil {
		s.retry(bctx, a, log, m, dialErr.Error())
		return
	}

	var o outcome
	for try := 0; ; try++ {
		if !c.open() || s.now().Sub(c.lastUsed) >= s.opts.IdleTimeout {
			if err := c.dial(ctx); err != nil {
				b.mu.Lock()
				b.dialErr = err
				b.mu.Unlock()
				log.Warn("unable to connect to the SMTP server", "error", err)
				s.retry(bctx, a, log, m, err.Error())
				return
			}
		}
		sendErr := c.send(msg)
		o = classify(sendErr, msg)
		switch {
		case o.dropConn:
			c.close()
		case sendErr != nil:
			// go-mail resets after MAIL and RCPT errors but not after a
			// refused DATA: start the next message from a clean state
			// (with WithoutRset, go-mail's ResetWithSMTPClient would not).
			if err := c.sc.Reset(); err != nil {
				c.close()
			}
		}
		if o.verdict != vStale || try > 0 {
			break
		}
		// The kept connection had died: nothing was sent, dial again.
	}
	if o.verdict == vStale {
		o.verdict = vRetry
	}

	switch o.verdict {
	case vSent:
		sentAt := s.now()
		s.record(a, sentItem{m: m, at: sentAt, b: b, log: log})
		if a.saveToSent() {
			if err := s.appendToSent(bctx, a, msg, sentAt); err != nil {
				log.Warn("message sent, but its copy could not be saved to Sent", "error", err)
			}
		}
	case vRetry:
		s.retry(bctx, a, log, m, o.reason)
	case vFailed, vBounce:
		s.fail(bctx, log, m, o)
	case vUncertain:
		if err := s.store.MarkUncertain(bctx, m.ID, o.reason); err != nil {
			log.Error("unable to record an uncertain send", "error", err)
			return
		}
		log.Warn("connection lost after the message was handed over: it may or may not have been delivered",
			"error", o.reason, "on_uncertain", a.cfg.OnUncertain)
		if a.cfg.OnUncertain == "resend" {
			select {
			case s.reconWake <- struct{}{}:
			default:
			}
		}
	}
}

// sentItem is a message the server accepted, waiting to be recorded.
type sentItem struct {
	m   store.MessageOut
	at  time.Time
	b   *batch
	log *slog.Logger
}

// maxRecordGroup bounds how many sends one transaction records.
const maxRecordGroup = 500

// record hands a message the server accepted to the account's recorder: a
// goroutine, started when none is running, that records whatever has
// piled up in one transaction, then what piled up meanwhile, and so on. A
// lone send is recorded at once; under load, one commit covers many sends
// (on Postgres each statement is a round trip, and recording one send
// took ~7 of them).
func (s *Service) record(a *account, it sentItem) {
	it.b.recorded.Add(1)
	a.recMu.Lock()
	a.recPending = append(a.recPending, it)
	start := !a.recRunning
	a.recRunning = true
	a.recMu.Unlock()
	if start {
		s.recording.Add(1)
		go func() {
			defer s.recording.Done()
			s.recordLoop(a)
		}()
	}
}

func (s *Service) recordLoop(a *account) {
	for {
		a.recMu.Lock()
		items := a.recPending
		if len(items) > maxRecordGroup {
			items, a.recPending = items[:maxRecordGroup], items[maxRecordGroup:]
		} else {
			a.recPending = nil
		}
		if len(items) == 0 {
			a.recRunning = false
			a.recMu.Unlock()
			return
		}
		a.recMu.Unlock()
		s.recordSent(items)
	}
}

// recordSent records a group of sends in one transaction, trying again
// briefly if the database fails, and then one by one (markSent waits for a
// database that is down, up to StoreTimeout), so that a row the group
// cannot record does not hold back the others. A send that cannot be
// recorded stays sending, becomes uncertain and is reconciled.
func (s *Service) recordSent(items []sentItem) {
	defer func() {
		for _, it := range items {
			it.b.recorded.Done()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.StoreTimeout)
	defer cancel()
	sends := make([]store.SentMessage, len(items))
	for i, it := range items {
		sends[i] = store.SentMessage{ID: it.m.ID, At: it.at}
	}
	var recorded []store.MessageOut
	var err error
	for try := range 3 {
		if recorded, err = s.store.MarkSentBatch(ctx, sends, s.sentBatchHook()); err == nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(try+1) * 200 * time.Millisecond):
		}
	}
	if err != nil {
		s.log.Warn("unable to record a group of sends; recording them one by one", "count", len(items), "error", err)
		for _, it := range items {
			if err := s.markSent(ctx, it.m.ID, it.at); err != nil {
				it.log.Error("message sent but not recorded as sent", "error", err)
				continue
			}
			s.sentRecorded(it)
		}
		return
	}
	ok := make(map[int64]bool, len(recorded))
	for _, m := range recorded {
		ok[m.ID] = true
	}
	for _, it := range items {
		if !ok[it.m.ID] {
			it.log.Error("message sent but not recorded as sent: it is no longer sending")
			continue
		}
		s.sentRecorded(it)
	}
}

func (s *Service) sentRecorded(it sentItem) {
	it.b.mu.Lock()
	it.b.sent++
	it.b.mu.Unlock()
	it.log.Info("message sent", "contact_id", it.m.ContactID, "sequence", it.m.Sequence, "step", it.m.Step)
}

// sentBatchHook is Hooks.SentBatch, or Hooks.Sent for each message.
func (s *Service) sentBatchHook() store.BatchHook {
	h := s.opts.Hooks
	switch {
	case h.SentBatch != nil:
		return h.SentBatch
	case h.Sent != nil:
		return func(tx *store.Tx, ms []store.MessageOut) error {
			for _, m := range ms {
				if err := h.Sent(tx, m); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return nil
}

// markSent records a message the server accepted, trying again with a
// growing pause until ctx ends: a database that restarts (a failover, a
// crash) is back within seconds, and a send recorded late is better than
// one left sending, which becomes uncertain.
func (s *Service) markSent(ctx context.Context, id int64, sentAt time.Time) error {
	pause := 200 * time.Millisecond
	for {
		err := s.store.MarkSent(ctx, id, sentAt, s.opts.Hooks.Sent)
		if err == nil || errors.Is(err, store.ErrWrongStatus) || errors.Is(err, store.ErrNotFound) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

func (a *account) saveToSent() bool {
	return a.cfg.SaveToSent != nil && *a.cfg.SaveToSent && a.cfg.IMAP != nil
}

// backoff is the delay before attempt+1: RetryBase doubled per attempt up
// to RetryMax, ±20% jitter.
// The account's smtp.retry_base, retry_max and give_up_after win over
// Options when set.
func (s *Service) backoff(a *account, attempts int) time.Duration {
	base, most := s.opts.RetryBase, s.opts.RetryMax
	if a != nil && a.cfg.SMTP.RetryBase > 0 {
		base = a.cfg.SMTP.RetryBase.Std()
	}
	if a != nil && a.cfg.SMTP.RetryMax > 0 {
		most = a.cfg.SMTP.RetryMax.Std()
	}
	d := base
	for i := 1; i < attempts && d < most; i++ {
		d *= 2
	}
	d = min(d, most)
	return time.Duration(float64(d) * (0.8 + 0.4*s.opts.Rand()))
}

// retry puts m back in the queue after a temporary problem, or fails it
// when it has been waiting longer than MaxAge (smtp.give_up_after).
func (s *Service) retry(ctx context.Context, a *account, log *slog.Logger, m store.MessageOut, reason string) {
	next := s.now().Add(s.backoff(a, m.Attempts))
	maxAge := s.opts.MaxAge
	if a != nil && a.cfg.SMTP.GiveUpAfter > 0 {
		maxAge = a.cfg.SMTP.GiveUpAfter.Std()
	}
	if next.Sub(m.CreatedAt) > maxAge {
		s.fail(ctx, log, m, outcome{verdict: vFailed,
			reason: fmt.Sprintf("gave up after %d attempts in %s: %s", m.Attempts, maxAge, reason)})
		return
	}
	if err := s.store.MarkRetry(ctx, m.ID, next, reason); err != nil {
		log.Error("unable to requeue a message", "error", err)
		return
	}
	log.Info("message will be retried", "error", reason, "next_attempt_at", next)
}

func (s *Service) fail(ctx context.Context, log *slog.Logger, m store.MessageOut, o outcome) {
	hard := o.verdict == vBounce
	reason := o.reason
	if hard && o.reply != "" {
		reason = o.reply
	}
	var hook store.MessageHook
	if h := s.opts.Hooks.Failed; h != nil {
		hook = func(tx *store.Tx, m store.MessageOut) error { return h(tx, m, hard) }
	}
	if err := s.store.MarkFailed(ctx, m.ID, reason, hard, hook); err != nil {
		log.Error("unable to record a failed message", "error", err)
		return
	}
	log.Warn("message failed", "error", reason, "hard_bounce", hard)
}

// Reconcile looks at every account's uncertain messages once: see
// ReconcileAccount.
func (s *Service) Reconcile(ctx context.Context) error {
	var errs []error
	for _, name := range s.order {
		if err := s.ReconcileAccount(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) reconcileLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.reconWake:
		}
		if err := s.Reconcile(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reconciling uncertain messages failed", "error", err)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(s.opts.ReconcileInterval)
	}
}

// policyRequeues says whether policy requeues a row absent from Sent (or
// unverifiable, without IMAP) at now.
func (s *Service) policyRequeues(a *account, m store.MessageOut, haveIMAP bool) bool {
	switch a.cfg.OnUncertain {
	case "resend":
		return true
	case "verify":
		return haveIMAP && s.now().Sub(m.UpdatedAt) >= s.opts.VerifyAfter
	}
	return false
}

// ReconcileAccount looks for each uncertain message of the account in its
// Sent folder (IMAP, read-only, by Message-ID): found, it is recorded sent;
// not found, on_uncertain decides — skip leaves it for the operator,
// verify queues it again once it is VerifyAfter old (the provider files
// every sent message, so absence means it was not sent), resend queues it
// again at once, even without IMAP.
func (s *Service) ReconcileAccount(ctx context.Context, name string) error {
	a, err := s.account(name)
	if err != nil {
		return err
	}
	a.reconMu.Lock()
	defer a.reconMu.Unlock()
	rows, err := s.store.UncertainMessages(ctx, name, 0)
	if err != nil || len(rows) == 0 {
		return err
	}
	found := map[int64]time.Time{}
	haveIMAP := a.cfg.IMAP != nil
	if haveIMAP {
		found, err = s.findInSent(ctx, a, rows)
		switch {
		case err != nil && a.cfg.OnUncertain == "resend":
			// resend does not wait for a check it can do without.
			s.log.Warn("unable to search Sent; resending anyway (on_uncertain: resend)", "account", name, "error", err)
			found = map[int64]time.Time{}
		case err != nil:
			// Unknown: decide nothing this time.
			return fmt.Errorf("outbox: account %s: %w", name, err)
		}
	}
	requeued := 0
	for _, m := range rows {
		log := s.log.With("account", name, "message_id", m.MessageID)
		if at, ok := found[m.ID]; ok {
			err := s.store.MarkSent(ctx, m.ID, at, s.opts.Hooks.Sent)
			switch {
			case errors.Is(err, store.ErrWrongStatus):
				// Another replica got there first.
			case err != nil:
				return err
			default:
				log.Info("uncertain message found in Sent: recorded as sent")
			}
			continue
		}
		if !s.policyRequeues(a, m, haveIMAP) {
			if a.cfg.OnUncertain != "verify" || !haveIMAP {
				log.Warn("uncertain message left for the operator (followupd status)", "on_uncertain", a.cfg.OnUncertain)
			}
			continue
		}
		err := s.store.Requeue(ctx, m.ID, s.now())
		switch {
		case errors.Is(err, store.ErrWrongStatus):
		case err != nil:
			return err
		default:
			requeued++
			log.Info("uncertain message queued again", "on_uncertain", a.cfg.OnUncertain)
		}
	}
	if requeued > 0 {
		a.notify()
	}
	return nil
}
