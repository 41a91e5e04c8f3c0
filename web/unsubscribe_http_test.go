package web

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

func oneClick(e *env, token string) *http.Request {
	return request("POST", "/u/"+token, strings.NewReader("List-Unsubscribe=One-Click"), "Content-Type", "application/x-www-form-urlencoded")
}

func TestOneClickUnsubscribe(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		ann := e.upsert(store.Contact{Email: "ann@example.com", Stage: "prospect"})
		bob := e.upsert(store.Contact{Email: "bob@example.com", Stage: "lead"})
		for _, seq := range []string{"welcome", "aftersale"} {
			if _, err := e.store.Enroll(ctx, ann.Email, seq, "sales", "", time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		token := UnsubscribeToken(testSecret, ann.ID, ann.Email)

		t.Run("bad tokens are 400 without detail and change nothing", func(t *testing.T) {
			annBefore, bobBefore := e.eventTypes(ann.ID), e.eventTypes(bob.ID)
			raw, _ := base64.RawURLEncoding.DecodeString(token)
			moved := slices.Clone(raw)
			binary.BigEndian.PutUint64(moved[:8], uint64(bob.ID)) // ann's MAC on bob's id
			forged := slices.Clone(raw)
			forged[len(forged)-1] ^= 1
			for name, tok := range map[string]string{
				"forged":         base64.RawURLEncoding.EncodeToString(forged),
				"moved":          base64.RawURLEncoding.EncodeToString(moved),
				"other secret":   UnsubscribeToken("another-secret-0123456789", ann.ID, ann.Email),
				"unknown id":     UnsubscribeToken(testSecret, ann.ID+1000, ann.Email),
				"garbage":        "not-a-token",
				"truncated":      token[:len(token)-2],
				"other contact'": UnsubscribeToken(testSecret, bob.ID, ann.Email),
			} {
				for _, r := range []*http.Request{request("GET", "/u/"+tok, nil), oneClick(e, tok)} {
					w := e.serve(r)
					if w.Code != http.StatusBadRequest {
						t.Errorf("%s %s: status %d, want 400", r.Method, name, w.Code)
					}
					if body := w.Body.String(); !strings.Contains(body, "not valid") || strings.Contains(body, "ann@") || strings.Contains(body, "bob@") {
						t.Errorf("%s %s: the 400 page says too much or too little:\n%s", r.Method, name, body)
					}
				}
			}
			if c := e.contact(ann.Email); c.Suppressed || c.Stage != "prospect" {
				t.Fatalf("a bad token changed the contact: %+v", c)
			}
			if c := e.contact(bob.Email); c.Suppressed || c.Stage != "lead" {
				t.Fatalf("a bad token changed the other contact: %+v", c)
			}
			if a, b := e.eventTypes(ann.ID), e.eventTypes(bob.ID); !slices.Equal(a, annBefore) || !slices.Equal(b, bobBefore) {
				t.Fatalf("a bad token wrote events: %v / %v", a, b)
			}
		})

		t.Run("GET shows a form and changes nothing", func(t *testing.T) {
			before := e.eventTypes(ann.ID)
			w := e.serve(request("GET", "/u/"+token, nil))
			expect(t, w, http.StatusOK)
			body := w.Body.String()
			if !strings.Contains(body, `<form method="post">`) || !strings.Contains(body, `name="List-Unsubscribe" value="One-Click"`) || !strings.Contains(body, "a•••@example.com") {
				t.Errorf("confirmation page:\n%s", body)
			}
			if w.Header().Get("Content-Security-Policy") == "" || w.Header().Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("headers: %v", w.Header())
			}
			if c := e.contact(ann.Email); c.Suppressed || c.Stage != "prospect" {
				t.Errorf("GET changed the contact: %+v", c)
			}
			if after := e.eventTypes(ann.ID); !slices.Equal(before, after) {
				t.Errorf("GET wrote events: %v → %v", before, after)
			}
		})

		t.Run("POST without the one-click body is refused", func(t *testing.T) {
			w := e.serve(request("POST", "/u/"+token, strings.NewReader("x=y"), "Content-Type", "application/x-www-form-urlencoded"))
			expect(t, w, http.StatusBadRequest)
			if e.contact(ann.Email).Suppressed {
				t.Fatal("unsubscribed without List-Unsubscribe=One-Click")
			}
		})

		t.Run("POST unsubscribes", func(t *testing.T) {
			w := e.serve(oneClick(e, token))
			expect(t, w, http.StatusOK)
			if !strings.Contains(w.Body.String(), "You are unsubscribed") {
				t.Errorf("page:\n%s", w.Body)
			}
			c := e.contact(ann.Email)
			if !c.Suppressed || c.Stage != "unsubscribed" {
				t.Errorf("contact after unsubscribe: %+v", c)
			}
			if yes, err := e.store.IsSuppressed(ctx, ann.Email); err != nil || !yes {
				t.Errorf("IsSuppressed = %v, %v", yes, err)
			}
			sups, _ := e.store.Suppressions(ctx)
			if len(sups) != 1 || sups[0].Value != ann.Email || sups[0].Kind != store.SuppressAddress {
				t.Errorf("suppressions = %+v", sups)
			}
			live, _ := e.store.LiveEnrollments(ctx, ann.ID)
			if len(live) != 0 {
				t.Errorf("live enrollments after unsubscribe: %+v", live)
			}
			types := e.eventTypes(ann.ID)
			if n := count(types, EventUnsubscribed); n != 1 {
				t.Errorf("%d unsubscribed events: %v", n, types)
			}
			if count(types, "unenrolled") != 2 || count(types, "stage_changed") != 1 || count(types, "hook_ran") != 1 {
				t.Errorf("timeline = %v", types)
			}
			if got := e.hooks.get(&e.hooks.unsubscribes); !slices.Equal(got, []string{ann.Email}) {
				t.Errorf("OnUnsubscribe calls = %v", got)
			}
			if v := metricValue(t, e.srv.Metrics(), "followupd_stage_transitions_total", "from", "prospect", "to", "unsubscribed"); v != 1 {
				t.Errorf("stage transition counter = %v", v)
			}
		})

		t.Run("a second POST is idempotent", func(t *testing.T) {
			before := e.eventTypes(ann.ID)
			w := e.serve(oneClick(e, token))
			expect(t, w, http.StatusOK)
			// Multipart bodies are accepted too (RFC 8058 allows both).
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			_ = mw.WriteField("List-Unsubscribe", "One-Click")
			_ = mw.Close()
			w = e.serve(request("POST", "/u/"+token, &buf, "Content-Type", mw.FormDataContentType()))
			expect(t, w, http.StatusOK)
			if after := e.eventTypes(ann.ID); !slices.Equal(before, after) {
				t.Errorf("second POST wrote events: %v → %v", before, after)
			}
			if got := e.hooks.get(&e.hooks.unsubscribes); len(got) != 1 {
				t.Errorf("OnUnsubscribe ran again: %v", got)
			}
			w = e.serve(request("GET", "/u/"+token, nil))
			if !strings.Contains(w.Body.String(), "You are unsubscribed") {
				t.Errorf("GET after unsubscribe:\n%s", w.Body)
			}
		})

		t.Run("a failing hook does not keep anyone subscribed", func(t *testing.T) {
			e.hooks.failUnsub = true
			defer func() { e.hooks.failUnsub = false }()
			w := e.serve(oneClick(e, UnsubscribeToken(testSecret, bob.ID, bob.Email)))
			expect(t, w, http.StatusOK)
			if c := e.contact(bob.Email); !c.Suppressed || c.Stage != "unsubscribed" {
				t.Errorf("bob after unsubscribe with a failing hook: %+v", c)
			}
		})
	})
}

func count(list []string, v string) int {
	n := 0
	for _, x := range list {
		if x == v {
			n++
		}
	}
	return n
}

func TestUnsubscribeRateLimited(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	limited := false
	for range 60 {
		if w := e.serve(request("GET", "/u/not-a-token", nil)); w.Code == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Error("60 requests in a row were never rate limited")
	}
	// Another client is not affected.
	r := request("GET", "/u/not-a-token", nil)
	r.RemoteAddr = "192.0.2.7:5000"
	expect(t, e.serve(r), http.StatusBadRequest)
}

func TestUnsubscribeStage(t *testing.T) {
	cfg := testConfig()
	if got := unsubscribeStage(cfg); got != "unsubscribed" {
		t.Errorf("default stages: %q", got)
	}
	cfg.Stages = cfg.Stages[:5] // no suppressed stage named unsubscribed…
	cfg.Stages = append(cfg.Stages, testConfig().Stages[6])
	if got := unsubscribeStage(cfg); got != "bounced" {
		t.Errorf("without an unsubscribed stage: %q, want the first suppressed one", got)
	}
	cfg.Stages = cfg.Stages[:5]
	if got := unsubscribeStage(cfg); got != "" {
		t.Errorf("without suppressed stages: %q", got)
	}
}
