// Package inbox watches an account's IMAP folders for replies and hands every
// new message to a Handler, exactly once per message that commits (or, for
// the messages an optional BatchHandler takes, to it, a batch at a time).
//
// The watcher never changes the mailbox (guarantee 4): folders are opened
// with EXAMINE, bodies are fetched with BODY.PEEK, and no STORE, COPY, MOVE,
// EXPUNGE or DELETE is ever sent. How far each folder was read is kept in the
// database as a checkpoint (UIDVALIDITY and last UID) that advances in the
// same transaction as the handler's work (guarantee 3): a crash either keeps
// both or neither, so no message is missed and none is counted twice.
//
// Push: when the server offers IDLE, the watcher idles on one folder (INBOX
// when it is watched) and polls the others; the IDLE is renewed every few
// minutes and checked with a NOOP under a deadline, so that a half-open
// connection is noticed. Without IDLE it polls every poll_interval. A lost
// connection is re-established with capped exponential backoff and jitter.
package inbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
)

// Message is one fetched message.
type Message struct {
	Account, Mailbox string
	UIDValidity, UID uint32
	// Raw is the message as the server has it, at most max_message_bytes
	// long; Truncated says that the message is longer.
	Raw       []byte
	Truncated bool
	// Size is the full size of the message (RFC822.SIZE).
	Size         int64
	InternalDate time.Time
	// MessageID is the Message-ID header without angle brackets; empty when
	// the message has none.
	MessageID string
	Flags     []string
	// Prepared is what Options.Prepare made of the message, if anything.
	Prepared any
}

// Handler processes one message inside the transaction that also advances
// the checkpoint. It is called at most once per (account, mailbox,
// uidvalidity, uid) that commits. When it returns an error the transaction
// rolls back and the watcher retries later, with backoff, from the same
// checkpoint; after Options.MaxFailures failures of the same message the
// watcher records it as a messages_in row of kind KindError, with the error
// text as excerpt, and moves on.
//
// The handler is expected to store the message in messages_in
// (tx.InsertMessageIn with the message's account, mailbox, UIDVALIDITY and
// UID): the watcher relies on those rows to deduplicate by Message-ID. When
// the handler stored nothing, the watcher stores a minimal row of kind
// KindIgnored itself.
type Handler func(ctx context.Context, tx *store.Tx, m Message) error

// BatchHandler lets the Handler's owner do its database work for many
// messages of a fetched batch at once, for the messages that need nothing
// but a messages_in row (on a busy mailbox, most of them: mail that matches
// nobody). The watcher still runs Handler, one message at a time in UID
// order, for every other message, and the result must be the same as if
// Handler had run for each message in turn.
//
// Both methods run inside the batch's transaction. When one fails (or
// panics), the transaction is rolled back and the batch is done again with
// Handler for every message: a failure here costs speed, not messages.
type BatchHandler interface {
	// Simple reports, for each of msgs (in UID order, none of them
	// stored yet), whether Handler, run now, would do nothing for it but
	// store its messages_in row; the answer is a slice as long as msgs.
	// It must not write. The watcher asks again about the messages still
	// waiting after Handler ran for another one, since Handler may change
	// what they match (a referral creating a contact).
	Simple(ctx context.Context, tx *store.Tx, msgs []Message) ([]bool, error)
	// Record does what Handler would do for each of msgs, in UID order:
	// all of them were called simple by Simple in this transaction, and
	// no Handler ran since. Like Handler it is expected to store each
	// message in messages_in, and it says which have their row now
	// (stored by it, or already there) in a slice as long as msgs: the
	// watcher stores a KindIgnored row for each of the others. (Saying
	// so spares the watcher a lookup per batch that Handler's messages
	// cost it one by one.)
	Record(ctx context.Context, tx *store.Tx, msgs []Message) (stored []bool, err error)
}

// Kinds of the messages_in rows the watcher writes itself.
const (
	// KindError marks a message the handler failed on MaxFailures times.
	KindError = "error"
	// KindIgnored marks a message the handler returned nil for without
	// storing it.
	KindIgnored = "ignored"
)

// Options configures a Watcher. Store, Account (with IMAP set) and Handler
// are required; the rest have defaults.
type Options struct {
	Store   *store.Store
	Account config.Account
	Handler Handler
	// Batch, when set, records the messages of a fetched batch that need
	// no per-message work in a few statements instead of calling Handler
	// for each (see BatchHandler). A message that arrives alone (IDLE)
	// always goes to Handler.
	Batch BatchHandler
	// Prepare, when set, runs on each fetched message before Handler, on
	// a goroutine of its own while the rest of the batch is fetched and
	// earlier batches are committed, and its result reaches Handler (and
	// Batch) as Message.Prepared: pure work (parsing, classifying)
	// overlaps with the server's and the database's. It must not touch
	// the database, and may run for several batches at once.
	//
	// (Prepare runs beside the reading of the FETCH, not in it: a slow
	// Prepare must not look like a dead server to the command watchdog.)
	Prepare func(m Message) any
	// Logger receives connection and error messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock, for the lookback window; default time.Now.
	Now func() time.Time

	// MaxFailures is how many times the handler may fail on one message
	// before the message is recorded as an error and skipped; default 5.
	MaxFailures int
	// BackoffMin and BackoffMax bound the wait before a reconnect or a
	// retry after a handler error; it doubles from BackoffMin up to
	// BackoffMax, with jitter. Defaults 1s and 5m.
	BackoffMin, BackoffMax time.Duration
	// IdleRefresh is how long one IDLE lasts before it is renewed and the
	// connection checked with a NOOP; default 4m.
	IdleRefresh time.Duration
	// CommandTimeout is how long the server may stay silent while a command
	// is pending (the watchdog); a connection that exceeds it is closed and
	// re-established. Default 60s.
	CommandTimeout time.Duration
	// DialTimeout bounds the TCP and TLS handshakes; default 30s.
	DialTimeout time.Duration
	// TokenTimeout bounds the oauth2_token_command; default 30s.
	TokenTimeout time.Duration
	// PollInterval overrides the account's imap.poll_interval when set.
	PollInterval time.Duration
	// BatchSize is how many messages one FETCH asks for; default 100, and
	// fewer when max_message_bytes is large.
	BatchSize int
	// TLSConfig, when set, is used for TLS and STARTTLS (tests give their
	// own roots); ServerName and InsecureSkipVerify are still set from the
	// account.
	TLSConfig *tls.Config
	// OnConnState is called with true when the watcher has logged in and
	// with false when it lost or closed the connection.
	OnConnState func(connected bool)
}

// Watcher watches one account's folders. Start runs it in the background;
// RunOnce does a single pass, for tests and benchmarks.
type Watcher struct {
	o        Options
	imap     config.IMAP
	log      *slog.Logger
	folders  []string // the IDLE folder last
	idleName string

	news      chan struct{} // EXISTS seen (buffer 1)
	processed chan struct{} // a message committed (buffer 1)

	// runMu serialises the users of the connection: the Start goroutine or
	// RunOnce.
	runMu sync.Mutex

	mu        sync.Mutex
	conn      *conn // current connection, nil when none
	cancel    context.CancelFunc
	done      chan struct{}
	started   bool
	connected bool

	failures map[msgKey]int // handler failures per message, under runMu

	total atomic.Int64 // messages processed since New
}

type msgKey struct {
	mailbox          string
	uidValidity, uid uint32
}

// New checks the options and returns a watcher that is not running yet.
func New(o Options) (*Watcher, error) {
	if o.Store == nil {
		return nil, errors.New("inbox: Options.Store is nil")
	}
	if o.Handler == nil {
		return nil, errors.New("inbox: Options.Handler is nil")
	}
	if o.Account.IMAP == nil {
		return nil, fmt.Errorf("inbox: account %q has no imap section", o.Account.Name)
	}
	im := *o.Account.IMAP
	if im.Host == "" {
		return nil, fmt.Errorf("inbox: account %q: imap.host is empty", o.Account.Name)
	}
	if im.TLS == "none" && !im.InsecurePlaintext {
		return nil, fmt.Errorf("inbox: account %q: imap tls: none needs insecure_plaintext: true", o.Account.Name)
	}
	if len(im.Folders) == 0 {
		im.Folders = []string{"INBOX"}
	}
	if im.Lookback <= 0 {
		im.Lookback = config.Duration(30 * 24 * time.Hour)
	}
	if im.PollInterval <= 0 {
		im.PollInterval = config.Duration(time.Minute)
	}
	if o.PollInterval > 0 {
		im.PollInterval = config.Duration(o.PollInterval)
	}
	if im.MaxMessageBytes <= 0 {
		im.MaxMessageBytes = 256 << 10
	}
	if im.Port == 0 {
		im.Port = map[string]int{"tls": 993, "starttls": 143, "none": 143}[im.TLS]
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.BackoffMin, time.Second)
	def(&o.BackoffMax, 5*time.Minute)
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	def(&o.IdleRefresh, 4*time.Minute)
	def(&o.CommandTimeout, time.Minute)
	def(&o.DialTimeout, 30*time.Second)
	def(&o.TokenTimeout, 30*time.Second)
	if o.MaxFailures <= 0 {
		o.MaxFailures = 5
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	// Keep one batch of bodies under about 32 MiB.
	if n := (32 << 20) / im.MaxMessageBytes; n < o.BatchSize {
		o.BatchSize = max(n, 1)
	}

	w := &Watcher{
		o:         o,
		imap:      im,
		log:       o.Logger.With("account", o.Account.Name),
		news:      make(chan struct{}, 1),
		processed: make(chan struct{}, 1),
		failures:  map[msgKey]int{},
	}
	// Deduplicate the folders and put the one to IDLE on last, so that it is
	// the selected one when a pass ends.
	var folders []string
	for _, f := range im.Folders {
		if !slices.Contains(folders, f) {
			folders = append(folders, f)
		}
	}
	w.idleName = folders[0]
	for _, f := range folders {
		if strings.EqualFold(f, "INBOX") {
			w.idleName = f
		}
	}
	for _, f := range folders {
		if f != w.idleName {
			w.folders = append(w.folders, f)
		}
	}
	w.folders = append(w.folders, w.idleName)
	return w, nil
}

// Processed fires after a message was committed (handled, or recorded as an
// error). Signals coalesce: a receiver should re-check what it waits for
// after each one.
func (w *Watcher) Processed() <-chan struct{} { return w.processed }

// Total is the number of messages processed since New.
func (w *Watcher) Total() int64 { return w.total.Load() }

// Connected reports whether the watcher is logged in right now.
func (w *Watcher) Connected() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.connected
}

// Start runs the watcher in a goroutine until ctx ends or Stop is called;
// call Stop in both cases to wait for the goroutine.
func (w *Watcher) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return errors.New("inbox: watcher already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	w.started = true
	w.cancel = cancel
	w.done = make(chan struct{})
	go w.run(ctx, w.done)
	return nil
}

// Stop stops the watcher, closes its IMAP connection and returns when its
// goroutine is gone. It may be called more than once, and without Start
// (it then closes the connection RunOnce left open). A stopped watcher can
// be started again.
func (w *Watcher) Stop() {
	w.mu.Lock()
	cancel, done, c := w.cancel, w.done, w.conn
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if c != nil {
		c.close() // unblock a command waiting on the server
	}
	if done != nil {
		<-done
	}
	w.mu.Lock()
	w.started, w.cancel, w.done = false, nil, nil
	w.mu.Unlock()
	// RunOnce's connection, or one left by the goroutine.
	w.runMu.Lock()
	w.dropConn()
	w.runMu.Unlock()
}

// RunOnce connects if needed and reads every configured folder once, without
// IDLE. It returns how many messages were processed (handled, or recorded as
// errors). It fails when the watcher was started. The connection stays open
// for the next call until Stop.
func (w *Watcher) RunOnce(ctx context.Context) (processed int, err error) {
	w.mu.Lock()
	started := w.started
	w.mu.Unlock()
	if started {
		return 0, errors.New("inbox: RunOnce on a started watcher")
	}
	w.runMu.Lock()
	defer w.runMu.Unlock()
	for attempt := 0; ; attempt++ {
		w.mu.Lock()
		reused := w.conn != nil
		w.mu.Unlock()
		c, err := w.ensureConn(ctx)
		if err != nil {
			return 0, err
		}
		n, err := w.syncAll(ctx, c)
		if err == nil || isMessageError(err) {
			return n, err
		}
		w.dropConn()
		// A kept connection may have died since the last call: once more
		// on a new one.
		if !reused || n > 0 || attempt > 0 || ctx.Err() != nil {
			return n, err
		}
	}
}

// run is the watcher's goroutine: connect, catch up, wait for news, repeat;
// reconnect with backoff on errors.
func (w *Watcher) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	w.runMu.Lock()
	defer w.runMu.Unlock()
	defer w.dropConn()
	attempt := 0
	for ctx.Err() == nil {
		healthy, err := w.session(ctx)
		if ctx.Err() != nil {
			return
		}
		w.dropConn()
		if healthy {
			attempt = 0
		}
		d := w.backoff(attempt)
		attempt++
		w.log.Warn("imap session ended; reconnecting", "error", err, "in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return
		}
	}
}

// session runs one connection until it fails. healthy says that it got as
// far as a complete pass, so the next reconnect starts with a short wait.
func (w *Watcher) session(ctx context.Context) (healthy bool, err error) {
	c, err := w.ensureConn(ctx)
	if err != nil {
		return false, err
	}
	retries := 0
	for {
		_, err := w.syncAll(ctx, c)
		if err != nil {
			if !isMessageError(err) || ctx.Err() != nil {
				return healthy, err
			}
			// A handler failed: keep the connection, retry later from
			// the same checkpoint.
			d := w.backoff(retries)
			retries++
			w.log.Warn("handler failed; retrying", "error", err, "in", d.Round(time.Millisecond))
			if err := w.pause(ctx, c, d); err != nil {
				return healthy, err
			}
			continue
		}
		healthy = true
		retries = 0
		if err := w.waitForNews(ctx, c); err != nil {
			return true, err
		}
	}
}

// pause waits d, or less when the connection drops.
func (w *Watcher) pause(ctx context.Context, c *conn, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.client.Closed():
		return errConnClosed
	case <-t.C:
		return nil
	}
}

// backoff is the wait before retry number attempt (0-based): BackoffMin
// doubled per attempt, capped at BackoffMax, minus up to a quarter of
// jitter.
func (w *Watcher) backoff(attempt int) time.Duration {
	d := w.o.BackoffMin
	for i := 0; i < attempt && d < w.o.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, w.o.BackoffMax)
	if q := int64(d / 4); q > 0 {
		d -= time.Duration(rand.Int64N(q))
	}
	return d
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

// ensureConn returns the open connection or dials a new one. Callers hold
// runMu.
func (w *Watcher) ensureConn(ctx context.Context) (*conn, error) {
	w.mu.Lock()
	c := w.conn
	w.mu.Unlock()
	if c != nil {
		select {
		case <-c.client.Closed():
			w.dropConn()
		default:
			return c, nil
		}
	}
	c, err := w.dial(ctx)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.conn = c
	w.mu.Unlock()
	w.setConnected(true)
	return c, nil
}

// dropConn closes the current connection, if any. Callers hold runMu.
func (w *Watcher) dropConn() {
	w.mu.Lock()
	c := w.conn
	w.conn = nil
	w.mu.Unlock()
	if c != nil {
		c.close()
		w.setConnected(false)
	}
}

func (w *Watcher) setConnected(v bool) {
	w.mu.Lock()
	changed := w.connected != v
	w.connected = v
	w.mu.Unlock()
	if changed {
		if v {
			w.log.Info("imap connected", "host", w.imap.Host)
		}
		if w.o.OnConnState != nil {
			w.o.OnConnState(v)
		}
	}
}

// signal does a non-blocking send on a channel of capacity 1.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// errConnClosed is returned when the connection went away under a wait.
var errConnClosed = errors.New("inbox: the IMAP connection was closed")

// handlerError marks a failure of the Handler (or of the transaction around
// it), as opposed to a failure of the connection.
type handlerError struct {
	uid uint32
	err error
}

func (e *handlerError) Error() string {
	if e.uid == 0 {
		return e.err.Error()
	}
	return fmt.Sprintf("message uid %d: %v", e.uid, e.err)
}
func (e *handlerError) Unwrap() error { return e.err }

func isMessageError(err error) bool {
	var he *handlerError
	return errors.As(err, &he)
}
