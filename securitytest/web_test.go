package securitytest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/web"
)

const (
	apiToken    = "api-token-Q7w3-0123456789abcdef"
	unsubSecret = "unsub-secret-K2p9-0123456789abcdef"
)

func webConfig() *config.Config {
	return &config.Config{
		HTTP:        config.HTTP{Listen: "127.0.0.1:0", APIToken: apiToken},
		Unsubscribe: config.Unsubscribe{BaseURL: "https://followup.example.com", Secret: unsubSecret},
		Stages:      config.DefaultStages(),
		Accounts:    []config.Account{{Name: "sales", FromAddress: "ann@example.com", TimeZone: config.Location{Location: time.UTC}}},
		Sequences:   []config.Sequence{{Name: "welcome", Accounts: config.StringList{"sales"}, Steps: []config.Step{{Template: "intro"}}}},
	}
}

// webEnv is the HTTP server over a real store, served by httptest.
type webEnv struct {
	t   *testing.T
	st  *store.Store
	srv *httptest.Server
}

func newWebEnv(t *testing.T) *webEnv {
	t.Helper()
	st := newStore(t)
	cfg := webConfig()
	s := web.New(web.Options{Store: st, Config: func() *config.Config { return cfg }})
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return &webEnv{t: t, st: st, srv: hs}
}

// client does not follow redirects, so that a redirect to /login shows.
func (e *webEnv) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (e *webEnv) do(c *http.Client, method, path string, body io.Reader, header ...string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (e *webEnv) contact(email, first string) store.Contact {
	e.t.Helper()
	if _, _, err := e.st.UpsertContact(bg, store.Contact{Email: email, FirstName: first}); err != nil {
		e.t.Fatal(err)
	}
	c, err := e.st.ContactByEmail(bg, email)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// TestAPIAndDashboardRefuseWithoutToken: no token, a wrong token, and a
// token that differs from the right one only in its last byte are all
// refused by the API (401), /metrics (401) and the dashboard (redirect to
// the login page, 401 for a POST).
func TestAPIAndDashboardRefuseWithoutToken(t *testing.T) {
	e := newWebEnv(t)
	e.contact("jo@example.org", "Jo")
	c := e.client()
	last := apiToken[:len(apiToken)-1] + string(apiToken[len(apiToken)-1]^1)
	bad := map[string][]string{
		"no header":            nil,
		"empty bearer":         {"Authorization", "Bearer "},
		"wrong token":          {"Authorization", "Bearer nope"},
		"last byte differs":    {"Authorization", "Bearer " + last},
		"token prefix":         {"Authorization", "Bearer " + apiToken[:len(apiToken)-1]},
		"token plus a byte":    {"Authorization", "Bearer " + apiToken + "x"},
		"basic, not bearer":    {"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+apiToken))},
		"token as a cookie":    {"Cookie", "followupd_session=" + apiToken},
		"token in X-Api-Token": {"X-Api-Token", apiToken},
	}
	for name, h := range bad {
		t.Run(name, func(t *testing.T) {
			for _, p := range []string{"/api/v1/contacts", "/api/v1/contacts/jo@example.org", "/api/v1/pipeline", "/metrics"} {
				resp, body := e.do(c, "GET", p, nil, h...)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("GET %s: %d, want 401: %s", p, resp.StatusCode, body)
				}
				if strings.Contains(body, "jo@example.org") {
					t.Errorf("GET %s leaked contact data without a token", p)
				}
			}
			resp, body := e.do(c, "POST", "/api/v1/contacts", strings.NewReader(`{"email":"x@example.org"}`), append(h, "Content-Type", "application/json")...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("POST /api/v1/contacts: %d, want 401: %s", resp.StatusCode, body)
			}
			for _, p := range []string{"/", "/contacts", "/contacts/jo@example.org"} {
				resp, body := e.do(c, "GET", p, nil, h...)
				if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
					t.Errorf("dashboard GET %s: %d Location %q, want a redirect to /login", p, resp.StatusCode, resp.Header.Get("Location"))
				}
				if strings.Contains(body, "jo@example.org") {
					t.Errorf("dashboard GET %s leaked contact data", p)
				}
			}
			resp, _ = e.do(c, "POST", "/contacts/jo@example.org/notes", strings.NewReader("text=hi"), append(h, "Content-Type", "application/x-www-form-urlencoded")...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("dashboard POST without auth: %d, want 401", resp.StatusCode)
			}
		})
	}
	if _, err := e.st.ContactByEmail(bg, "x@example.org"); err == nil {
		t.Errorf("a contact was created without a token")
	}
	// The control: the right token is accepted.
	resp, body := e.do(c, "GET", "/api/v1/contacts/jo@example.org", nil, "Authorization", "Bearer "+apiToken)
	if resp.StatusCode != 200 || !strings.Contains(body, "jo@example.org") {
		t.Errorf("right token: %d %s", resp.StatusCode, body)
	}
	resp, _ = e.do(c, "GET", "/", nil, "Authorization", "Bearer "+apiToken)
	if resp.StatusCode != 200 {
		t.Errorf("dashboard with the right token: %d", resp.StatusCode)
	}
	// A wrong token on the login form sets no session.
	resp, _ = e.do(c, "POST", "/login", strings.NewReader(url.Values{"token": {last}}.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("login with a token differing in the last byte: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestDashboardFormsNeedCSRF: a logged-in session's form POSTs without the
// CSRF token, or with another one, are refused with 403 and change nothing.
func TestDashboardFormsNeedCSRF(t *testing.T) {
	e := newWebEnv(t)
	e.contact("jo@example.org", "Jo")
	c := e.client()
	resp, _ := e.do(c, "POST", "/login", strings.NewReader(url.Values{"token": {apiToken}, "next": {"/"}}.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	resp, page := e.do(c, "GET", "/contacts/jo@example.org", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("contact page with the session: %d", resp.StatusCode)
	}
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field on the contact page")
	}
	token := m[1]
	other := token[:len(token)-1] + map[bool]string{true: "B", false: "A"}[token[len(token)-1] == 'A']

	posts := []struct{ path, form string }{
		{"/contacts/jo@example.org/notes", "text=forged+note"},
		{"/contacts/jo@example.org/stage", "stage=not_interested"},
		{"/contacts/jo@example.org/purchases", "amount=10"},
		{"/logout", ""},
	}
	for _, p := range posts {
		for name, extra := range map[string]string{"none": "", "empty": "&csrf=", "other": "&csrf=" + url.QueryEscape(other)} {
			resp, _ := e.do(c, "POST", p.path, strings.NewReader(p.form+extra), "Content-Type", "application/x-www-form-urlencoded")
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with csrf %s: %d, want 403", p.path, name, resp.StatusCode)
			}
		}
	}
	got, err := e.st.ContactByEmail(bg, "jo@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if got.Stage == "not_interested" || got.Purchases != 0 {
		t.Errorf("a forged form changed the contact: %+v", got)
	}
	// The session still works (logout was refused) and the right token is
	// accepted: the control.
	resp, _ = e.do(c, "POST", "/contacts/jo@example.org/notes", strings.NewReader("text=real+note&csrf="+url.QueryEscape(token)), "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode >= 400 {
		t.Errorf("POST with the right csrf token: %d", resp.StatusCode)
	}
	// A cross-site POST is refused even with the token.
	resp, _ = e.do(c, "POST", "/contacts/jo@example.org/notes", strings.NewReader("text=x&csrf="+url.QueryEscape(token)),
		"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST: %d, want 403", resp.StatusCode)
	}
}

// TestUnsubscribeTokensUnforgeable: an unsubscribe token verifies only for
// the contact it was made for: a flipped byte, another contact's id, another
// address or another secret are refused, and refusing changes nothing.
func TestUnsubscribeTokensUnforgeable(t *testing.T) {
	e := newWebEnv(t)
	a := e.contact("alice@example.org", "Alice")
	b := e.contact("bob@example.org", "Bob")
	tokA := web.UnsubscribeToken(unsubSecret, a.ID, a.Email)
	raw, err := base64.RawURLEncoding.DecodeString(tokA)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	flip := func(i int) string {
		r := bytes.Clone(raw)
		r[i] ^= 0x01
		return enc(r)
	}
	moved := bytes.Clone(raw)
	idB := web.UnsubscribeToken(unsubSecret, b.ID, b.Email)
	rawB, _ := base64.RawURLEncoding.DecodeString(idB)
	copy(moved[:8], rawB[:8]) // B's id with A's signature

	forged := map[string]string{
		"first byte flipped":     flip(0),
		"id byte flipped":        flip(7),
		"mac byte flipped":       flip(8),
		"last byte flipped":      flip(len(raw) - 1),
		"A's mac on B's id":      enc(moved),
		"signed for B's address": web.UnsubscribeToken(unsubSecret, a.ID, b.Email),
		"another secret":         web.UnsubscribeToken(unsubSecret+"x", a.ID, a.Email),
		"truncated":              tokA[:len(tokA)-2],
		"extended":               tokA + "AA",
		"empty mac":              enc(raw[:8]),
	}
	for name, tok := range forged {
		if tok == tokA {
			t.Fatalf("%s: forged token equals the real one", name)
		}
		if err := web.VerifyUnsubscribeToken(unsubSecret, tok, a.ID, a.Email); err == nil {
			t.Errorf("%s: VerifyUnsubscribeToken accepted it for A", name)
		}
		if err := web.VerifyUnsubscribeToken(unsubSecret, tok, b.ID, b.Email); err == nil {
			t.Errorf("%s: VerifyUnsubscribeToken accepted it for B", name)
		}
	}
	if err := web.VerifyUnsubscribeToken(unsubSecret, tokA, b.ID, b.Email); err == nil {
		t.Errorf("A's token verified for B")
	}
	c := e.client()
	for name, tok := range forged {
		// Refused: 404 (or 400, for a token that is not even well formed).
		resp, body := e.do(c, "POST", "/u/"+tok, strings.NewReader("List-Unsubscribe=One-Click"), "Content-Type", "application/x-www-form-urlencoded")
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: POST /u/: %d, want 404 or 400: %.300s", name, resp.StatusCode, body)
		}
	}
	for _, who := range []store.Contact{a, b} {
		got, err := e.st.ContactByEmail(bg, who.Email)
		if err != nil {
			t.Fatal(err)
		}
		if got.Suppressed {
			t.Errorf("%s suppressed by a forged token", who.Email)
		}
	}
	// The control: A's own token unsubscribes A, and only A.
	resp, _ := e.do(c, "POST", "/u/"+tokA, strings.NewReader("List-Unsubscribe=One-Click"), "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("A's own token: %d", resp.StatusCode)
	}
	ga, _ := e.st.ContactByEmail(bg, a.Email)
	gb, _ := e.st.ContactByEmail(bg, b.Email)
	if !ga.Suppressed || gb.Suppressed {
		t.Errorf("after A's unsubscribe: A suppressed=%v, B suppressed=%v", ga.Suppressed, gb.Suppressed)
	}
}

// TestRequestBodiesSizeLimited: bodies over 1 MiB are refused with 413 by
// the API, the dashboard's forms and the unsubscribe endpoint.
func TestRequestBodiesSizeLimited(t *testing.T) {
	e := newWebEnv(t)
	a := e.contact("alice@example.org", "Alice")
	c := e.client()
	big := strings.Repeat("a", web.MaxBodyBytes+1)
	if web.MaxBodyBytes > 1<<20 {
		t.Errorf("MaxBodyBytes is %d, more than 1 MiB", web.MaxBodyBytes)
	}

	body, _ := json.Marshal(map[string]string{"email": "big@example.org", "first_name": big})
	resp, out := e.do(c, "POST", "/api/v1/contacts", bytes.NewReader(body), "Authorization", "Bearer "+apiToken, "Content-Type", "application/json")
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("API: %d, want 413: %.200s", resp.StatusCode, out)
	}
	if _, err := e.st.ContactByEmail(bg, "big@example.org"); err == nil {
		t.Errorf("API stored the contact of an oversized body")
	}
	resp, _ = e.do(c, "POST", "/contacts/alice@example.org/notes", strings.NewReader("text="+big), "Authorization", "Bearer "+apiToken, "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("dashboard form: %d, want 413", resp.StatusCode)
	}
	tok := web.UnsubscribeToken(unsubSecret, a.ID, a.Email)
	resp, _ = e.do(c, "POST", "/u/"+tok, strings.NewReader("List-Unsubscribe=One-Click&x="+big), "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("unsubscribe: %d, want 413", resp.StatusCode)
	}
	// Just under the limit is read (and refused for its content, not its size).
	small, _ := json.Marshal(map[string]string{"email": "ok@example.org", "first_name": "Ok"})
	resp, out = e.do(c, "POST", "/api/v1/contacts", bytes.NewReader(small), "Authorization", "Bearer "+apiToken, "Content-Type", "application/json")
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("control: API: %d %s", resp.StatusCode, out)
	}
}
