package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
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
