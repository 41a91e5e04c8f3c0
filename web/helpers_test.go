package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

const (
	testToken  = "test-api-token-0123456789"
	testSecret = "unsubscribe-secret-0123456789"
)

var ctx = context.Background()

// testConfig is a small valid configuration: the default pipeline, one
// account, two sequences.
func testConfig() *config.Config {
	return &config.Config{
		HTTP:        config.HTTP{Listen: "127.0.0.1:0", APIToken: testToken},
		Unsubscribe: config.Unsubscribe{BaseURL: "https://followup.example.com", Secret: testSecret},
		Stages:      config.DefaultStages(),
		Accounts:    []config.Account{{Name: "sales", FromAddress: "ann@example.com", TimeZone: config.Location{Location: time.UTC}}},
		Sequences: []config.Sequence{
			{Name: "welcome", Accounts: config.StringList{"sales"}, Steps: []config.Step{{Template: "intro"}, {Template: "nudge", Variants: []string{"nudge-b"}}, {Template: "last"}}},
			{Name: "aftersale", Accounts: config.StringList{"sales"}, Steps: []config.Step{{Template: "thanks"}}},
		},
	}
}

// hookCalls records what the daemon's hooks were given.
type hookCalls struct {
	mu           sync.Mutex
	unsubscribes []string
	purchases    []string
	stages       []string
	failUnsub    bool
}

func (h *hookCalls) add(list *[]string, v string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	*list = append(*list, v)
}

func (h *hookCalls) get(list *[]string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), *list...)
}

// env is a server on a fresh database.
type env struct {
	t     *testing.T
	store *store.Store
	cfg   atomic.Pointer[config.Config]
	srv   *Server
	hooks *hookCalls
	ready atomic.Pointer[ReadyState]
}

func newEnv(t *testing.T, dialect string) *env {
	t.Helper()
	e := &env{t: t, store: storetest.Open(t, storetest.Fresh(t, dialect)), hooks: &hookCalls{}}
	e.cfg.Store(testConfig())
	e.ready.Store(&ReadyState{Accounts: []AccountReady{{Account: "sales", SMTPOK: true, IMAPOK: true}}})
	e.srv = New(Options{
		Store:  e.store,
		Config: e.cfg.Load,
		Ready:  func() ReadyState { return *e.ready.Load() },
		Hooks: Hooks{
			OnUnsubscribe: func(ctx context.Context, tx *store.Tx, c store.Contact) error {
				if e.hooks.failUnsub {
					return io.ErrUnexpectedEOF
				}
				// The hook runs in the transaction and sees its changes.
				if !c.Suppressed {
					t.Errorf("OnUnsubscribe got a contact not yet suppressed: %+v", c)
				}
				e.hooks.add(&e.hooks.unsubscribes, c.Email)
				return tx.AddEvent(ctx, c.ID, "hook_ran", nil)
			},
			OnPurchase: func(ctx context.Context, c store.Contact) error {
				e.hooks.add(&e.hooks.purchases, c.Email)
				return nil
			},
			OnStageChanged: func(ctx context.Context, c store.Contact, from, to, reason string) error {
				e.hooks.add(&e.hooks.stages, c.Email+":"+from+">"+to)
				return nil
			},
		},
		ChooseAccount: func(sequence, email string) (string, error) { return "sales", nil },
	})
	return e
}

// setConfig changes the configuration the server sees, as a reload would.
func (e *env) setConfig(change func(c *config.Config)) {
	c := testConfig()
	change(c)
	e.cfg.Store(c)
}

// request builds a request from a loopback peer.
func request(method, target string, body io.Reader, header ...string) *http.Request {
	r := httptest.NewRequest(method, target, body)
	r.RemoteAddr = "127.0.0.1:40000"
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return r
}

func (e *env) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, r)
	return w
}

// api calls the API with the test token; body, when not nil, is sent as
// JSON (a string is sent as is).
func (e *env) api(method, path string, body any) *httptest.ResponseRecorder {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	r := request(method, path, rd, "Authorization", "Bearer "+testToken)
	if rd != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	return e.serve(r)
}

// decode reads a JSON response into a map.
func decode(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, w.Body)
	}
	return m
}

// expect checks a response's status, showing the body when it differs.
func expect(t *testing.T, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body:\n%s", w.Code, status, w.Body)
	}
}

// expectField checks a 400 that names the offending field.
func expectField(t *testing.T, w *httptest.ResponseRecorder, field string) {
	t.Helper()
	expect(t, w, http.StatusBadRequest)
	m := decode(t, w)
	msg, _ := m["error"].(string)
	if m["field"] != field || !strings.HasPrefix(msg, field+": ") {
		t.Fatalf("error %q (field %v), want one naming %q", msg, m["field"], field)
	}
}

func (e *env) contact(email string) store.Contact {
	e.t.Helper()
	c, err := e.store.ContactByEmail(ctx, email)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) upsert(c store.Contact) store.Contact {
	e.t.Helper()
	if _, _, err := e.store.UpsertContact(ctx, c); err != nil {
		e.t.Fatal(err)
	}
	return e.contact(c.Email)
}

func (e *env) eventTypes(contactID int64) []string {
	e.t.Helper()
	evs, err := e.store.Timeline(ctx, contactID, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// form encodes key, value pairs.
func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

// metricValue reads one counter or gauge from m's registry; 0 when the
// series does not exist yet.
func metricValue(t *testing.T, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range s.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			if c := s.GetCounter(); c != nil {
				return c.GetValue()
			}
			return s.GetGauge().GetValue()
		}
	}
	return 0
}
