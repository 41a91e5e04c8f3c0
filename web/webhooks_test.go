package web

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

// receiver is a webhook endpoint that checks signatures and answers with
// the statuses it is told, in order (the last one repeats).
type receiver struct {
	t      *testing.T
	secret string

	mu       sync.Mutex
	statuses []int
	got      []receivedHook
}

type receivedHook struct {
	event, delivery string
	body            map[string]any
	signed          bool
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h := receivedHook{event: r.Header.Get("X-Followupd-Event"), delivery: r.Header.Get("X-Followupd-Delivery")}
	// What a receiver does: recompute the MAC and compare in constant time.
	h.signed = hmac.Equal([]byte(r.Header.Get("X-Followupd-Signature")), []byte(Signature(rc.secret, body)))
	if err := json.Unmarshal(body, &h.body); err != nil || r.Header.Get("Content-Type") != "application/json" {
		rc.t.Errorf("webhook body %q (%s): %v", body, r.Header.Get("Content-Type"), err)
	}
	rc.mu.Lock()
	rc.got = append(rc.got, h)
	status := rc.statuses[min(len(rc.got), len(rc.statuses))-1]
	rc.mu.Unlock()
	w.WriteHeader(status)
	_, _ = w.Write([]byte("thanks"))
}

func (rc *receiver) received() []receivedHook {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receivedHook(nil), rc.got...)
}

// fakeClock is a settable time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestWebhooks(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		s := storetest.Open(t, storetest.Fresh(t, dialect))
		rc := &receiver{t: t, secret: "hook-secret-0123456789", statuses: []int{http.StatusInternalServerError, http.StatusOK}}
		good := httptest.NewServer(rc)
		defer good.Close()
		down := &receiver{t: t, secret: "down-secret-0123456789", statuses: []int{http.StatusServiceUnavailable}}
		bad := httptest.NewServer(down)
		defer bad.Close()

		cfg := testConfig()
		cfg.Webhooks = []config.Webhook{
			{URL: good.URL + "/hook", Events: config.StringList{"reply.interested", "stage_changed"}, Secret: config.Secret(rc.secret)},
			{URL: bad.URL + "/hook", Events: config.StringList{"*"}, Secret: config.Secret(down.secret)},
			{URL: "http://127.0.0.1:1/never", Events: config.StringList{"purchase"}, Secret: "x-secret-0123456789"},
		}
		clock := &fakeClock{t: time.Now().Add(time.Second)}
		wh := NewWebhooks(WebhookOptions{Store: s, Config: func() *config.Config { return cfg }, Now: clock.Now,
			MaxAttempts: 3, BaseBackoff: time.Minute, MaxBackoff: time.Hour, Timeout: 2 * time.Second})

		var queued int
		err := s.InTx(ctx, func(tx *store.Tx) (err error) {
			queued, err = wh.Enqueue(ctx, tx, "reply.interested", map[string]any{"email": "ann@example.com", "intent": "interested"})
			return err
		})
		if err != nil || queued != 2 {
			t.Fatalf("Enqueue = %d, %v; want 2 (the subscribed hook and the '*' one)", queued, err)
		}
		// A rolled-back change sends nothing.
		_ = s.InTx(ctx, func(tx *store.Tx) error {
			_, _ = wh.Enqueue(ctx, tx, "stage_changed", map[string]string{"to": "customer"})
			return io.EOF
		})

		n, err := wh.RunOnce(ctx)
		if err != nil || n != 2 {
			t.Fatalf("first pass: %d, %v", n, err)
		}
		got := rc.received()
		if len(got) != 1 || !got[0].signed || got[0].event != "reply.interested" || got[0].body["event"] != "reply.interested" ||
			got[0].body["data"].(map[string]any)["email"] != "ann@example.com" {
			t.Fatalf("first delivery = %+v", got)
		}
		if eid, _ := got[0].body["id"].(string); !strings.HasPrefix(eid, "evt_") || got[0].delivery != eid {
			t.Fatalf("event id %q, X-Followupd-Delivery %q", got[0].body["id"], got[0].delivery)
		}
		all, err := s.WebhookDeliveries(ctx, store.WebhookFilter{})
		if err != nil || len(all) != 2 {
			t.Fatalf("deliveries = %+v, %v", all, err)
		}
		var id int64
		for _, d := range all {
			if d.URL == good.URL+"/hook" {
				id = d.ID
			}
		}
		d, err := s.WebhookDeliveryByID(ctx, id)
		if err != nil || d.Status != store.WebhookPending || d.Attempts != 1 || d.LastError == "" {
			t.Fatalf("after a 500: %+v, %v", d, err)
		}
		// Backoff with jitter: between half and all of the base.
		if wait := d.NextAttemptAt.Sub(clock.Now()); wait < 30*time.Second || wait > time.Minute {
			t.Errorf("first retry in %v, want 30s..1m", wait)
		}
		if n, _ := wh.RunOnce(ctx); n != 0 {
			t.Errorf("a delivery was retried before its backoff: %d", n)
		}

		clock.Add(time.Minute + time.Second)
		if n, err := wh.RunOnce(ctx); err != nil || n != 2 {
			t.Fatalf("second pass: %d, %v", n, err)
		}
		got = rc.received()
		if len(got) != 2 || !got[1].signed || got[1].delivery != got[0].delivery {
			t.Fatalf("retry = %+v", got)
		}
		if d, _ := s.WebhookDeliveryByID(ctx, id); d.Status != store.WebhookDelivered || d.Attempts != 2 {
			t.Errorf("after the retry: %+v", d)
		}

		// The always-failing receiver gives up after MaxAttempts.
		clock.Add(3 * time.Minute)
		if n, _ := wh.RunOnce(ctx); n != 1 {
			t.Fatalf("third pass claimed %d", n)
		}
		failed, err := s.WebhookDeliveries(ctx, store.WebhookFilter{Status: store.WebhookFailed})
		if err != nil || len(failed) != 1 || failed[0].Attempts != 3 || failed[0].URL != bad.URL+"/hook" {
			t.Fatalf("failed deliveries = %+v, %v", failed, err)
		}
		if got := down.received(); len(got) != 3 || !got[0].signed {
			t.Errorf("the failing receiver got %d signed=%v POSTs, want 3", len(got), len(got) > 0 && got[0].signed)
		}
		clock.Add(24 * time.Hour)
		if n, _ := wh.RunOnce(ctx); n != 0 {
			t.Errorf("a failed delivery was tried again")
		}
	})
}

func TestWebhookDispatcherRuns(t *testing.T) {
	s := storetest.Open(t, storetest.Fresh(t, store.DialectSQLite))
	rc := &receiver{t: t, secret: "hook-secret-0123456789", statuses: []int{http.StatusNoContent}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	cfg := testConfig()
	cfg.Webhooks = []config.Webhook{{URL: srv.URL, Secret: config.Secret(rc.secret)}} // no events: all
	wh := NewWebhooks(WebhookOptions{Store: s, Config: func() *config.Config { return cfg }, Interval: time.Hour})
	if err := wh.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err := s.InTx(ctx, func(tx *store.Tx) error {
		_, err := wh.Enqueue(ctx, tx, "purchase", map[string]string{"amount": "10"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wh.Wake()
	deadline := time.Now().Add(5 * time.Second)
	for len(rc.received()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the dispatcher did not deliver after Wake")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := wh.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if got := rc.received(); !got[0].signed || got[0].event != "purchase" {
		t.Errorf("delivery = %+v", got[0])
	}
}

func TestWebhookBackoff(t *testing.T) {
	w := NewWebhooks(WebhookOptions{Store: &store.Store{}, Config: testConfig, BaseBackoff: time.Second, MaxBackoff: 10 * time.Second})
	for n, hi := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 30: 10 * time.Second} {
		for range 20 {
			if d := w.backoff(n); d < hi/2 || d > hi {
				t.Errorf("backoff(%d) = %v, want %v..%v", n, d, hi/2, hi)
			}
		}
	}
}
