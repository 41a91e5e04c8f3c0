package web

import (
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
)

// Webhooks go out through an outbox: EnqueueWebhook writes one
// webhook_deliveries row per subscribed webhook in the transaction of the
// change it reports, and the dispatcher POSTs the rows, retrying with
// backoff. A webhook is therefore sent if and only if its change commits,
// at least once: a receiver deduplicates by the event id.
//
// The stored payload is the exact body sent:
//
//	{"id": "evt_…", "event": "replied", "created_at": "2026-…Z", "data": {…}}
//
// id is unique per event (the same for every webhook the event goes to, and
// for every retry); it is also sent as the X-Followupd-Delivery header. The
// signature is X-Followupd-Signature: sha256=HEX(HMAC-SHA256(secret, body)),
// with the secret of the webhook whose URL the row names, read from the
// configuration at sending time.

// WebhookOptions configures the dispatcher.
type WebhookOptions struct {
	// Store is the database; required.
	Store *store.Store
	// Config returns the current configuration (its webhooks); required.
	Config func() *config.Config
	// Client sends the POSTs; nil is a client that does not follow
	// redirects (a signed payload goes to the configured URL only).
	Client *http.Client
	Logger *slog.Logger
	Now    func() time.Time
	// Timeout bounds each POST; default 10 s.
	Timeout time.Duration
	// MaxAttempts is how many POSTs a delivery gets before it is failed;
	// default 10.
	MaxAttempts int
	// BaseBackoff is the wait after the first failure, doubled after each
	// next one up to MaxBackoff, with jitter; defaults 30 s and 6 h, which
	// spread 10 attempts over about 8 hours.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Interval is how often the dispatcher looks for due deliveries; 5 s.
	Interval time.Duration
	// Batch is how many deliveries one pass claims; default 10.
	Batch int
}

// Webhooks is the webhook dispatcher, a service with Start, Stop and
// RunOnce.
type Webhooks struct {
	o      WebhookOptions
	log    *slog.Logger
	client *http.Client
	wake   chan struct{}

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewWebhooks builds a dispatcher; Store and Config are required (New
// panics without them, a wiring mistake).
func NewWebhooks(o WebhookOptions) *Webhooks {
	if o.Store == nil || o.Config == nil {
		panic("web: NewWebhooks needs WebhookOptions.Store and WebhookOptions.Config")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = 30 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 6 * time.Hour
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Batch <= 0 {
		o.Batch = 10
	}
	w := &Webhooks{o: o, log: o.Logger, client: o.Client, wake: make(chan struct{}, 1)}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.client == nil {
		w.client = &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return w
}

// webhookEnvelope is the body of every delivery.
type webhookEnvelope struct {
	ID        string    `json:"id"`
	Event     string    `json:"event"`
	CreatedAt time.Time `json:"created_at"`
	Data      any       `json:"data"`
}

// subscribed reports whether a webhook wants an event: its events list
// names it or "*", and an empty list wants everything.
func subscribed(h config.Webhook, event string) bool {
	return len(h.Events) == 0 || slices.Contains(h.Events, "*") || slices.Contains(h.Events, event)
}

// newEventID returns a unique event id: the time in milliseconds (so ids
// sort roughly by time) and 80 random bits.
func newEventID(now time.Time) string {
	var b [10]byte
	_, _ = crand.Read(b[:])
	return fmt.Sprintf("evt_%012x%s", now.UnixMilli(), hex.EncodeToString(b[:]))
}

// EnqueueWebhook queues event with payload (any JSON-encodable value) for
// every webhook of hooks subscribed to it, inside tx, and returns how many
// deliveries it queued. When no webhook subscribes to the event it writes
// nothing and encodes nothing, so the daemon may call it for every change.
// Call Webhooks.Wake after the commit to send at once rather than at the
// next poll.
func EnqueueWebhook(ctx context.Context, tx *store.Tx, hooks []config.Webhook, now time.Time, event string, payload any) (int, error) {
	event = strings.TrimSpace(event)
	if event == "" {
		return 0, errors.New("web: unable to queue a webhook: the event is empty")
	}
	var body []byte
	n := 0
	seen := map[string]bool{}
	for _, h := range hooks {
		// One delivery per URL: two entries for one receiver would sign
		// with one secret anyway (see hookFor).
		if !subscribed(h, event) || seen[h.URL] {
			continue
		}
		seen[h.URL] = true
		if body == nil {
			var err error
			body, err = json.Marshal(webhookEnvelope{ID: newEventID(now), Event: event, CreatedAt: now.UTC().Truncate(time.Millisecond), Data: payload})
			if err != nil {
				return 0, fmt.Errorf("web: unable to encode the %s webhook: %w", event, err)
			}
		}
		if _, err := tx.InsertWebhookDelivery(ctx, store.WebhookDelivery{URL: h.URL, Payload: string(body)}); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Enqueue is EnqueueWebhook with the dispatcher's configuration and clock.
func (w *Webhooks) Enqueue(ctx context.Context, tx *store.Tx, event string, payload any) (int, error) {
	return EnqueueWebhook(ctx, tx, w.o.Config().Webhooks, w.o.Now(), event, payload)
}

// Wake makes a running dispatcher look for due deliveries now.
func (w *Webhooks) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Start runs the dispatcher in the background until Stop or ctx ends.
func (w *Webhooks) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done != nil {
		return errors.New("web: the webhook dispatcher is already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	w.cancel, w.done = cancel, done
	go func() {
		defer close(done)
		t := time.NewTicker(w.o.Interval)
		defer t.Stop()
		for {
			for {
				n, err := w.RunOnce(ctx)
				if err != nil && ctx.Err() == nil {
					w.log.Error("webhook pass failed", "err", err)
				}
				// A full batch means more may be due now.
				if err != nil || n < w.o.Batch || ctx.Err() != nil {
					break
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-w.wake:
			}
		}
	}()
	return nil
}

// Stop ends the dispatcher and waits for the POST in flight until ctx ends.
// A POST cut short is retried after its lease (see ClaimWebhookDeliveries).
func (w *Webhooks) Stop(ctx context.Context) error {
	w.mu.Lock()
	cancel, done := w.cancel, w.done
	w.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("web: the webhook dispatcher did not stop in time: %w", ctx.Err())
	}
}

// RunOnce claims the due deliveries (one batch) and POSTs them, returning
// how many it claimed.
func (w *Webhooks) RunOnce(ctx context.Context) (int, error) {
	// The lease outlasts a whole batch of POSTs at their timeout, so no
	// other replica takes a row that is still being sent.
	lease := time.Duration(w.o.Batch)*w.o.Timeout + time.Minute
	ds, err := w.o.Store.ClaimWebhookDeliveries(ctx, w.o.Now(), w.o.Batch, lease)
	if err != nil {
		return 0, err
	}
	for _, d := range ds {
		if ctx.Err() != nil {
			break
		}
		w.deliver(ctx, d)
	}
	return len(ds), nil
}

// hookFor finds the configured webhook for a delivery's URL, preferring
// one subscribed to its event.
func hookFor(hooks []config.Webhook, url, event string) (config.Webhook, bool) {
	var found *config.Webhook
	for i := range hooks {
		if hooks[i].URL != url {
			continue
		}
		if subscribed(hooks[i], event) {
			return hooks[i], true
		}
		if found == nil {
			found = &hooks[i]
		}
	}
	if found != nil {
		return *found, true
	}
	return config.Webhook{}, false
}

// Signature is the X-Followupd-Signature value of body: what a receiver
// recomputes with the shared secret and compares in constant time.
func Signature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// deliveryID is the X-Followupd-Delivery of a delivery: its event id, or
// for a row queued before events had ids, the row's id.
func deliveryID(d store.WebhookDelivery, eventID string) string {
	if eventID != "" {
		return eventID
	}
	return strconv.FormatInt(d.ID, 10)
}

func (w *Webhooks) deliver(ctx context.Context, d store.WebhookDelivery) {
	var env struct {
		ID    string `json:"id"`
		Event string `json:"event"`
	}
	_ = json.Unmarshal([]byte(d.Payload), &env)
	id := deliveryID(d, env.ID)
	log := w.log.With("delivery", d.ID, "event_id", id, "event", env.Event, "url", d.URL, "attempt", d.Attempts)
	// The outcome is recorded even when shutdown cancels ctx mid-POST, so
	// that a finished POST is not sent again.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()

	hook, ok := hookFor(w.o.Config().Webhooks, d.URL, env.Event)
	if !ok {
		log.Warn("webhook no longer configured; delivery dropped")
		if err := w.o.Store.MarkWebhookFailed(rctx, d.ID, "the webhook is no longer in the configuration"); err != nil {
			log.Error("unable to record the webhook outcome", "err", err)
		}
		return
	}
	perr := w.post(ctx, hook, d, env.Event, id)
	var err error
	switch {
	case perr == nil:
		log.Debug("webhook delivered")
		err = w.o.Store.MarkWebhookDelivered(rctx, d.ID)
	case d.Attempts >= w.o.MaxAttempts:
		log.Warn("webhook failed for good", "err", perr)
		err = w.o.Store.MarkWebhookFailed(rctx, d.ID, perr.Error())
	default:
		next := w.o.Now().Add(w.backoff(d.Attempts))
		log.Info("webhook failed; will retry", "err", perr, "next_attempt", next)
		err = w.o.Store.MarkWebhookRetry(rctx, d.ID, next, perr.Error())
	}
	if err != nil {
		log.Error("unable to record the webhook outcome", "err", err)
	}
}

func (w *Webhooks) post(ctx context.Context, hook config.Webhook, d store.WebhookDelivery, event, id string) error {
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	body := []byte(d.Payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, strings.NewReader(d.Payload))
	if err != nil {
		return fmt.Errorf("bad webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "followupd-webhooks/1")
	req.Header.Set("X-Followupd-Event", event)
	req.Header.Set("X-Followupd-Delivery", id)
	req.Header.Set("X-Followupd-Signature", Signature(hook.Secret.Value(), body))
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST failed: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	// Drain a little more so the connection can be reused, not forever.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := strings.Join(strings.Fields(string(snippet)), " ")
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, cut(msg, 200))
	}
	return nil
}

// backoff is the wait before the next attempt after attempt n failed:
// exponential, capped, with "equal jitter" (half fixed, half random) so
// that deliveries failing together do not retry together.
func (w *Webhooks) backoff(n int) time.Duration {
	d := w.o.BaseBackoff
	for i := 1; i < n && d < w.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.o.MaxBackoff)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}
