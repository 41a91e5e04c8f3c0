package web

import (
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

// Receiver modes for flakyReceiver.
const (
	receiverUp = iota
	receiverUnavailable
	receiverRefused
)

// flakyReceiver is a webhook endpoint that can be up, answer 503, or refuse
// connections (its transport fails the dial), and remembers what it
// accepted.
type flakyReceiver struct {
	t      *testing.T
	secret string

	mu       sync.Mutex
	mode     int
	tries    int
	accepted map[string]int // event id → times accepted with a 2xx
	events   map[string]string
}

func newFlakyReceiver(t *testing.T, secret string) *flakyReceiver {
	return &flakyReceiver{t: t, secret: secret, accepted: map[string]int{}, events: map[string]string{}}
}

func (f *flakyReceiver) setMode(m int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode = m
}

func (f *flakyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	if f.mode == receiverUnavailable {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if !hmac.Equal([]byte(r.Header.Get("X-Followupd-Signature")), []byte(Signature(f.secret, body))) {
		f.t.Errorf("bad signature on %s", body)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var env struct {
		ID        string          `json:"id"`
		Event     string          `json:"event"`
		CreatedAt time.Time       `json:"created_at"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.ID == "" || env.Event == "" || env.CreatedAt.IsZero() || len(env.Data) == 0 {
		f.t.Errorf("webhook body %s: %v", body, err)
	}
	if h := r.Header.Get("X-Followupd-Delivery"); h != env.ID {
		f.t.Errorf("X-Followupd-Delivery %q, body id %q", h, env.ID)
	}
	f.accepted[env.ID]++
	f.events[env.ID] = env.Event
	w.WriteHeader(http.StatusNoContent)
}

// refusingTransport fails the dial to receivers in refused mode, as a
// stopped receiver would.
type refusingTransport struct {
	byHost map[string]*flakyReceiver
	next   http.RoundTripper
}

func (rt refusingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f := rt.byHost[r.URL.Host]; f != nil {
		f.mu.Lock()
		refused := f.mode == receiverRefused
		if refused {
			f.tries++
		}
		f.mu.Unlock()
		if refused {
			return nil, &net0pError{syscall.ECONNREFUSED}
		}
	}
	return rt.next.RoundTrip(r)
}

// net0pError stands for the *net.OpError a refused dial returns.
type net0pError struct{ err error }

func (e *net0pError) Error() string { return "dial tcp: connect: " + e.err.Error() }
func (e *net0pError) Unwrap() error { return e.err }

// TestWebhooksReceiverDown: a receiver that answers 503 and then refuses
// connections for hours gets every event once it is back, each accepted
// exactly once, signed, with its id in the body and the header; events it
// does not subscribe to never reach it.
func TestWebhooksReceiverDown(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		s := storetest.Open(t, storetest.Fresh(t, dialect))
		all := newFlakyReceiver(t, "all-secret-0123456789")
		some := newFlakyReceiver(t, "some-secret-0123456789")
		allSrv, someSrv := httptest.NewServer(all), httptest.NewServer(some)
		defer allSrv.Close()
		defer someSrv.Close()
		cfg := testConfig()
		cfg.Webhooks = []config.Webhook{
			{URL: allSrv.URL + "/hook", Secret: config.Secret(all.secret)},
			{URL: someSrv.URL + "/hook", Events: config.StringList{"replied", "rule.vip"}, Secret: config.Secret(some.secret)},
		}
		hosts := map[string]*flakyReceiver{allSrv.Listener.Addr().String(): all, someSrv.Listener.Addr().String(): some}
		client := &http.Client{Transport: refusingTransport{byHost: hosts, next: http.DefaultTransport}}
		clock := &fakeClock{t: time.Now()}
		wh := NewWebhooks(WebhookOptions{Store: s, Config: func() *config.Config { return cfg }, Now: clock.Now, Client: client,
			MaxAttempts: 50, BaseBackoff: time.Minute, MaxBackoff: 10 * time.Minute, Batch: 4})

		events := []string{"stage_changed", "replied", "bounced", "unsubscribed", "sent", "rule.vip"}
		wantAll, wantSome := map[string]string{}, map[string]string{}
		enqueue := func(round int) {
			t.Helper()
			for _, ev := range events {
				err := s.InTx(ctx, func(tx *store.Tx) error {
					n, err := wh.Enqueue(ctx, tx, ev, map[string]any{"contact": "ann@example.com", "round": round})
					want := 1
					if ev == "replied" || ev == "rule.vip" {
						want = 2
					}
					if err == nil && n != want {
						err = errors.New("wrong number of deliveries queued")
					}
					return err
				})
				if err != nil {
					t.Fatalf("Enqueue %s: %v", ev, err)
				}
			}
		}
		pass := func() {
			t.Helper()
			for {
				n, err := wh.RunOnce(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					return
				}
			}
		}

		all.setMode(receiverUnavailable)
		some.setMode(receiverRefused)
		enqueue(1)
		for range 6 {
			pass()
			clock.Add(10 * time.Minute)
		}
		all.setMode(receiverRefused)
		some.setMode(receiverUnavailable)
		enqueue(2)
		for range 6 {
			pass()
			clock.Add(10 * time.Minute)
		}
		if len(all.accepted) != 0 || len(some.accepted) != 0 || all.tries == 0 || some.tries == 0 {
			t.Fatalf("while down: accepted %v / %v after %d / %d tries", all.accepted, some.accepted, all.tries, some.tries)
		}
		all.setMode(receiverUp)
		some.setMode(receiverUp)
		enqueue(3)
		for range 3 {
			pass()
			clock.Add(10 * time.Minute)
		}

		ds, err := s.WebhookDeliveries(ctx, store.WebhookFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Status != store.WebhookDelivered {
				t.Errorf("delivery %d is %s after the receivers came back (%s)", d.ID, d.Status, d.LastError)
			}
			var env struct{ ID, Event string }
			if err := json.Unmarshal([]byte(d.Payload), &env); err != nil {
				t.Fatal(err)
			}
			switch d.URL {
			case allSrv.URL + "/hook":
				wantAll[env.ID] = env.Event
			case someSrv.URL + "/hook":
				wantSome[env.ID] = env.Event
			}
		}
		if len(wantAll) != 3*len(events) || len(wantSome) != 3*2 {
			t.Fatalf("%d and %d distinct events queued, want %d and %d", len(wantAll), len(wantSome), 3*len(events), 6)
		}
		for name, c := range map[string]struct {
			f    *flakyReceiver
			want map[string]string
		}{"all": {all, wantAll}, "some": {some, wantSome}} {
			c.f.mu.Lock()
			for id, ev := range c.want {
				if n := c.f.accepted[id]; n != 1 {
					t.Errorf("%s: event %s (%s) accepted %d times, want 1", name, id, ev, n)
				}
				if c.f.events[id] != ev {
					t.Errorf("%s: event %s arrived as %q, want %q", name, id, c.f.events[id], ev)
				}
			}
			if len(c.f.accepted) != len(c.want) {
				t.Errorf("%s accepted %d events, want %d", name, len(c.f.accepted), len(c.want))
			}
			c.f.mu.Unlock()
		}
		// An event goes to each subscriber with the same id.
		shared := 0
		for id := range wantSome {
			if _, ok := wantAll[id]; ok {
				shared++
			}
		}
		if shared != len(wantSome) {
			t.Errorf("%d of %d events have the same id at both receivers", shared, len(wantSome))
		}
	})
}

// TestEnqueueWithoutSubscriber: an event nobody subscribes to writes no row.
func TestEnqueueWithoutSubscriber(t *testing.T) {
	s := storetest.Open(t, storetest.Fresh(t, store.DialectSQLite))
	cfg := testConfig()
	cfg.Webhooks = []config.Webhook{{URL: "http://127.0.0.1:1/hook", Events: config.StringList{"replied"}, Secret: "s-secret-0123456789"}}
	wh := NewWebhooks(WebhookOptions{Store: s, Config: func() *config.Config { return cfg }})
	for _, hooks := range [][]config.Webhook{nil, cfg.Webhooks} {
		cfg.Webhooks = hooks
		err := s.InTx(ctx, func(tx *store.Tx) error {
			// A payload that cannot be encoded shows that nothing is encoded.
			n, err := wh.Enqueue(ctx, tx, "sent", map[string]any{"bad": func() {}})
			if err == nil && n != 0 {
				err = errors.New("queued a delivery nobody wants")
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.WebhookDeliveries(ctx, store.WebhookFilter{})
	if err != nil || len(ds) != 0 {
		t.Fatalf("rows = %+v, %v", ds, err)
	}
}
