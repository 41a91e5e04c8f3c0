package web

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

// login posts the token to the login form and returns the session cookie.
func login(t *testing.T, e *env) *http.Cookie {
	t.Helper()
	w := e.serve(request("POST", "/login", strings.NewReader(form("token", testToken, "next", "/contacts")), "Content-Type", "application/x-www-form-urlencoded"))
	expect(t, w, http.StatusSeeOther)
	if loc := w.Header().Get("Location"); loc != "/contacts" {
		t.Errorf("login redirects to %q", loc)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.MaxAge <= 0 {
				t.Errorf("session cookie attributes: %+v", c)
			}
			return c
		}
	}
	t.Fatalf("login set no session cookie: %v", w.Header())
	return nil
}

// page GETs a dashboard page with the session.
func page(t *testing.T, e *env, ck *http.Cookie, path string) string {
	t.Helper()
	r := request("GET", path, nil)
	r.AddCookie(ck)
	w := e.serve(r)
	expect(t, w, http.StatusOK)
	if strings.Contains(w.Body.String(), "ZgotmplZ") {
		t.Errorf("%s: html/template refused a value (ZgotmplZ):\n%s", path, w.Body)
	}
	return w.Body.String()
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func postForm(e *env, ck *http.Cookie, path, body string, header ...string) *http.Response {
	r := request("POST", path, strings.NewReader(body), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, header...)...)
	if ck != nil {
		r.AddCookie(ck)
	}
	return e.serve(r).Result()
}

func TestDashboard(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		const evil = "<script>alert(1)</script>"
		x := e.upsert(store.Contact{Email: "x@example.com", FirstName: evil, Company: `"><img src=x onerror=alert(3)>`, Stage: "prospect",
			CustomFields: store.Fields{evil: evil}})
		seedFunnel(t, e, x)
		if err := e.store.AddNote(ctx, x.Email, evil); err != nil {
			t.Fatal(err)
		}

		t.Run("requires auth", func(t *testing.T) {
			for _, path := range []string{"/", "/contacts", "/contacts/x@example.com"} {
				w := e.serve(request("GET", path, nil))
				expect(t, w, http.StatusSeeOther)
				if loc := w.Header().Get("Location"); !strings.HasPrefix(loc, "/login?next=") {
					t.Errorf("GET %s redirects to %q", path, loc)
				}
			}
			resp := postForm(e, nil, "/contacts/x@example.com/stage", form("stage", "customer"))
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("anonymous POST: %d", resp.StatusCode)
			}
			bad := &http.Cookie{Name: sessionCookie, Value: newSession("another-token-0123456789", time.Now())}
			r := request("GET", "/", nil)
			r.AddCookie(bad)
			expect(t, e.serve(r), http.StatusSeeOther)
			expired := &http.Cookie{Name: sessionCookie, Value: newSession(testToken, time.Now().Add(-sessionTTL-time.Minute))}
			r = request("GET", "/", nil)
			r.AddCookie(expired)
			expect(t, e.serve(r), http.StatusSeeOther)
			w := e.serve(request("POST", "/login", strings.NewReader(form("token", "wrong-token-0123456789")), "Content-Type", "application/x-www-form-urlencoded"))
			expect(t, w, http.StatusUnauthorized)
			if len(w.Result().Cookies()) != 0 {
				t.Error("a wrong token got a cookie")
			}
			// The post-login redirect stays on this site.
			for _, next := range []string{"https://evil.test/", "//evil.test/", `/\evil.test`} {
				w := e.serve(request("POST", "/login", strings.NewReader(form("token", testToken, "next", next)), "Content-Type", "application/x-www-form-urlencoded"))
				if loc := w.Header().Get("Location"); loc != "/" {
					t.Errorf("next=%q redirects to %q", next, loc)
				}
			}
		})

		ck := login(t, e)

		t.Run("overview escapes and renders", func(t *testing.T) {
			body := page(t, e, ck, "/")
			for _, want := range []string{"Pipeline", "prospect", "welcome", "nudge / nudge-b", "Recent replies", "interested",
				"/contacts/x@example.com", "&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;script&gt;alert(2)&lt;/script&gt;", "width: "} {
				if !strings.Contains(body, want) {
					t.Errorf("overview lacks %q", want)
				}
			}
			if strings.Contains(body, "<script>") || strings.Contains(body, "<b>hello</b>") {
				t.Errorf("overview carries unescaped markup:\n%s", body)
			}
		})

		t.Run("contact page escapes and renders", func(t *testing.T) {
			body := page(t, e, ck, "/contacts/x@example.com")
			for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "Timeline", "note", "Set stage", "Add note", "Record purchase", `name="csrf"`, "welcome"} {
				if !strings.Contains(body, want) {
					t.Errorf("contact page lacks %q", want)
				}
			}
			if strings.Contains(body, "<script>") || strings.Contains(body, "<img src=x") {
				t.Errorf("contact page carries unescaped markup")
			}
			list := page(t, e, ck, "/contacts?stage=prospect&q=x%40")
			if !strings.Contains(list, "x@example.com") || strings.Contains(list, "f1@example.com") {
				t.Errorf("contact list:\n%s", list)
			}
		})

		t.Run("forms need the CSRF token", func(t *testing.T) {
			resp := postForm(e, ck, "/contacts/x@example.com/stage", form("stage", "customer"))
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST without CSRF token: %d, want 403", resp.StatusCode)
			}
			resp = postForm(e, ck, "/contacts/x@example.com/stage", form("stage", "customer", "csrf", "forged"))
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST with a wrong CSRF token: %d, want 403", resp.StatusCode)
			}
			if c := e.contact(x.Email); c.Stage != "prospect" {
				t.Fatalf("a refused form changed the stage: %s", c.Stage)
			}
			m := csrfRE.FindStringSubmatch(page(t, e, ck, "/contacts/x@example.com"))
			if m == nil {
				t.Fatal("no CSRF token in the contact page")
			}
			csrf := m[1]
			// A valid token from another site is refused too (Sec-Fetch-Site).
			resp = postForm(e, ck, "/contacts/x@example.com/stage", form("stage", "customer", "csrf", csrf), "Sec-Fetch-Site", "cross-site")
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("cross-site POST: %d, want 403", resp.StatusCode)
			}
			resp = postForm(e, ck, "/contacts/x@example.com/stage", form("stage", "customer", "reason", "paid", "csrf", csrf), "Sec-Fetch-Site", "same-origin")
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/contacts/x@example.com" {
				t.Fatalf("stage form: %d %v", resp.StatusCode, resp.Header)
			}
			if c := e.contact(x.Email); c.Stage != "customer" {
				t.Errorf("stage after the form: %s", c.Stage)
			}
			resp = postForm(e, ck, "/contacts/x@example.com/notes", form("text", "met at the fair", "csrf", csrf))
			if resp.StatusCode != http.StatusSeeOther {
				t.Errorf("note form: %d", resp.StatusCode)
			}
			resp = postForm(e, ck, "/contacts/x@example.com/purchases", form("amount", "99.00", "note", "pro plan", "csrf", csrf))
			if resp.StatusCode != http.StatusSeeOther || e.contact(x.Email).Purchases != 1 {
				t.Errorf("purchase form: %d", resp.StatusCode)
			}
			resp = postForm(e, ck, "/contacts/x@example.com/purchases", form("amount", "lots", "csrf", csrf))
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("bad amount: %d", resp.StatusCode)
			}
			body := page(t, e, ck, "/contacts/x@example.com")
			if !strings.Contains(body, "met at the fair") || !strings.Contains(body, "pro plan") {
				t.Error("the note and purchase are not on the timeline")
			}
			// Logging out needs the token too, then the session is gone.
			resp = postForm(e, ck, "/logout", form("csrf", csrf))
			if resp.StatusCode != http.StatusSeeOther {
				t.Errorf("logout: %d", resp.StatusCode)
			}
		})

		t.Run("bearer token works without CSRF", func(t *testing.T) {
			r := request("POST", "/contacts/x@example.com/notes", strings.NewReader(form("text", "from a script")),
				"Content-Type", "application/x-www-form-urlencoded", "Authorization", "Bearer "+testToken)
			expect(t, e.serve(r), http.StatusSeeOther)
		})

		t.Run("no token configured", func(t *testing.T) {
			e.setConfig(func(c *config.Config) { c.HTTP.APIToken = "" })
			defer e.setConfig(func(*config.Config) {})
			for _, path := range []string{"/", "/login"} {
				r := request("GET", path, nil)
				r.AddCookie(ck)
				w := e.serve(r)
				expect(t, w, http.StatusForbidden)
				if !strings.Contains(w.Body.String(), "http.api_token") {
					t.Errorf("%s: %s", path, w.Body)
				}
			}
		})
	})
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/contacts?stage=lead": "/contacts?stage=lead",
		"":                     "/",
		"contacts":             "/",
		"//evil.test":          "/",
		"/\\evil.test":         "/",
		"https://evil.test":    "/",
		"/x\r\nSet-Cookie: a":  "/",
		url.QueryEscape("/a"):  "/",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

var (
	stageAttrRE  = regexp.MustCompile(`data-stage="([^"]+)" data-count="(\d+)"`)
	metricCellRE = regexp.MustCompile(`<td class="num" data-sequence="([^"]+)" data-step="(\d+)" data-metric="([a-z_]+)"(?: data-value="([^"]+)")?>([^<]*)</td>`)
)

// TestDashboardMatchesAPI reads the overview as a browser test would (by
// its data attributes) and checks every number against the JSON API.
func TestDashboardMatchesAPI(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		rita := e.upsert(store.Contact{Email: "rita@example.com", Stage: "prospect"})
		seedFunnel(t, e, rita)
		// A hard bounce and an unsubscribe on the aftersale sequence.
		sent := time.Now().Add(-time.Hour)
		for i, email := range []string{"b1@example.com", "u1@example.com", "r1@example.com"} {
			c := e.upsert(store.Contact{Email: email, Stage: "customer"})
			en, err := e.store.Enroll(ctx, email, "aftersale", "sales", "", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			mid, err := e.store.InsertMessageOut(ctx, store.MessageOut{EnrollmentID: en.ID, ContactID: c.ID, Step: 0, Account: "sales",
				Status: store.MessageSent, MessageID: fmt.Sprintf("<after%d@example.com>", i), SentAt: &sent})
			if err != nil {
				t.Fatal(err)
			}
			in := store.MessageIn{Account: "sales", Mailbox: "INBOX", UIDValidity: 9, UID: uint32(i + 1), ContactID: &c.ID, MessageOutID: &mid, ReceivedAt: time.Now()}
			switch i {
			case 0:
				in.Kind, in.BounceClass = "bounce", "hard"
			case 2:
				in.Kind, in.Intent = "reply", "interested"
			}
			if i != 1 {
				if _, err := e.store.InsertMessageIn(ctx, in); err != nil {
					t.Fatal(err)
				}
			}
		}
		u := e.contact("u1@example.com")
		w := e.serve(oneClick(e, UnsubscribeToken(testSecret, u.ID, u.Email)))
		expect(t, w, http.StatusOK)

		body := page(t, e, login(t, e), "/")
		if !strings.Contains(body, `<meta name="viewport" content="width=device-width, initial-scale=1">`) || !strings.Contains(body, "@media (max-width:") {
			t.Error("the overview is not set up for phones")
		}
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") || strings.Contains(body, "<script") {
			t.Error("the overview loads something from elsewhere or carries a script")
		}

		// Pipeline.
		m := decode(t, e.api("GET", "/api/v1/pipeline", nil))
		want := map[string]string{}
		for _, s := range m["stages"].([]any) {
			st := s.(map[string]any)
			want[st["name"].(string)] = fmt.Sprint(st["count"])
		}
		found := stageAttrRE.FindAllStringSubmatch(body, -1)
		if len(found) != len(want) {
			t.Errorf("the page shows %d stages, the API %d", len(found), len(want))
		}
		for _, f := range found {
			if want[f[1]] != f[2] {
				t.Errorf("stage %s: page %s, API %s", f[1], f[2], want[f[1]])
			}
			if !strings.Contains(body, `id="stage-`+f[1]+`"`) {
				t.Errorf("stage %s has no id", f[1])
			}
		}

		// Sequence funnels.
		cells := map[string]string{}
		for _, c := range metricCellRE.FindAllStringSubmatch(body, -1) {
			text := c[5]
			if c[3] == "reply_rate" {
				if c[4]+"%" != text {
					t.Errorf("reply rate cell: data-value %q, text %q", c[4], text)
				}
				text = c[4]
			}
			cells[c[1]+"/"+c[2]+"/"+c[3]] = text
		}
		checked := 0
		for _, seq := range testConfig().Sequences {
			m := decode(t, e.api("GET", "/api/v1/sequences/"+seq.Name+"/funnel", nil))
			for _, s := range m["steps"].([]any) {
				st := s.(map[string]any)
				for _, metric := range []string{"sent", "replied", "bounced", "unsubscribed", "reply_rate"} {
					key := fmt.Sprintf("%s/%.0f/%s", seq.Name, st["step"], metric)
					api := fmt.Sprint(st[metric])
					if metric == "reply_rate" {
						api = strconv.FormatFloat(st[metric].(float64), 'f', 1, 64)
					}
					if got, ok := cells[key]; !ok || got != api {
						t.Errorf("%s: page %q, API %s", key, got, api)
					}
					checked++
				}
			}
			if seq.Name == "aftersale" {
				s0 := m["steps"].([]any)[0].(map[string]any)
				if s0["sent"] != 3.0 || s0["bounced"] != 1.0 || s0["unsubscribed"] != 1.0 || s0["replied"] != 1.0 || s0["reply_rate"] != 33.3 {
					t.Errorf("aftersale step 0 = %v", s0)
				}
			}
		}
		if checked != 5*(3+1) {
			t.Errorf("checked %d cells", checked)
		}

		// Needs attention and recent replies.
		att := decode(t, e.api("GET", "/api/v1/attention", nil))
		if !strings.Contains(body, fmt.Sprintf(`id="attention" data-total="%v"`, att["total"])) || att["total"] != 1.0 ||
			!strings.Contains(body, `data-status="failed"`) {
			t.Errorf("attention: API %v", att)
		}
		if !strings.Contains(body, `data-kind="reply" data-intent="interested"`) || !strings.Contains(body, "let&#39;s talk") {
			t.Error("recent replies lack kind, intent or text")
		}
	})
}

func TestLoginFromABrowser(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	w := e.serve(request("GET", "/login", nil, "Accept", "text/html"))
	expect(t, w, http.StatusOK)
	body := w.Body.String()
	for _, want := range []string{`<form class="stack" method="post" action="/login">`, `name="token"`, `name="next" value="/"`, `name="viewport"`} {
		if !strings.Contains(body, want) {
			t.Errorf("login page lacks %q", want)
		}
	}
	// A browser's POST: same-origin, no next → the overview.
	r := request("POST", "/login", strings.NewReader(form("token", testToken)), "Content-Type", "application/x-www-form-urlencoded",
		"Sec-Fetch-Site", "same-origin", "Origin", "http://example.com")
	r.Host = "example.com"
	w = e.serve(r)
	expect(t, w, http.StatusSeeOther)
	if loc := w.Header().Get("Location"); loc != "/" {
		t.Errorf("login redirects to %q, want /", loc)
	}
	var ck *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			ck = c
		}
	}
	if ck == nil {
		t.Fatal("no session cookie")
	}
	page(t, e, ck, "/")
	// The login page keeps a next path from the redirect to it.
	w = e.serve(request("GET", "/login?next=%2Fcontacts%3Fq%3Dann", nil))
	if !strings.Contains(w.Body.String(), `name="next" value="/contacts?q=ann"`) {
		t.Errorf("next is not kept:\n%s", w.Body)
	}
}

func TestContactTimelinePages(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	c := e.upsert(store.Contact{Email: "long@example.com"})
	for i := range contactTimelinePage + 4 {
		if err := e.store.AddNote(ctx, c.Email, fmt.Sprintf("note number %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ck := login(t, e)
	body := page(t, e, ck, "/contacts/long@example.com")
	if n := strings.Count(body, `data-event-type="note"`); n != contactTimelinePage {
		t.Errorf("first page shows %d notes", n)
	}
	if !strings.Contains(body, "note number 103") || strings.Contains(body, "note number 3<") || !strings.Contains(body, `<form class="stack" method="post" action="/contacts/long@example.com/notes">`) {
		t.Error("the first page is not the newest events with the note form")
	}
	m := regexp.MustCompile(`href="(/contacts/long@example.com\?before=\d+)#timeline"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no link to older events")
	}
	older := page(t, e, ck, m[1])
	if n := strings.Count(older, `data-event-type=`); n != 5 || !strings.Contains(older, "note number 0<") || !strings.Contains(older, `data-event-type="created"`) {
		t.Errorf("older page has %d events:\n%s", n, older)
	}
}

// TestDashboardLoginOutlivesAFastClock: the demo runs the daemon one day per
// second; a login must last on the seller's clock, not the daemon's.
func TestDashboardLoginOutlivesAFastClock(t *testing.T) {
	e := newEnv(t, "sqlite")
	var ahead atomic.Int64
	e.srv = New(Options{Store: e.store, Config: e.cfg.Load, Now: func() time.Time {
		return time.Now().Add(time.Duration(ahead.Load()))
	}})
	ck := login(t, e)
	ahead.Store(int64(30 * 24 * time.Hour))
	page(t, e, ck, "/contacts")
}
