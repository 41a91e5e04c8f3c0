package web

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

func TestAPIAuth(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	for name, header := range map[string]string{
		"no token":     "",
		"wrong token":  "Bearer not-the-token-0123456789",
		"token prefix": "Bearer " + testToken[:10],
		"basic scheme": "Basic " + testToken,
		"token as-is":  testToken,
		"longer token": "Bearer " + testToken + "x",
		"empty bearer": "Bearer ",
	} {
		r := request("GET", "/api/v1/pipeline", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		w := e.serve(r)
		expect(t, w, http.StatusUnauthorized)
		if w.Header().Get("WWW-Authenticate") == "" || decode(t, w)["error"] == nil {
			t.Errorf("%s: 401 without WWW-Authenticate or JSON error: %v %s", name, w.Header(), w.Body)
		}
	}
	w := e.serve(request("GET", "/api/v1/pipeline", nil, "Authorization", "bearer "+testToken))
	expect(t, w, http.StatusOK)

	// No configured token: the API is off, whatever is presented.
	e.setConfig(func(c *config.Config) { c.HTTP.APIToken = "" })
	for _, header := range []string{"", "Bearer ", "Bearer " + testToken} {
		r := request("GET", "/api/v1/contacts", nil, "Authorization", header)
		w := e.serve(r)
		expect(t, w, http.StatusForbidden)
		if msg := decode(t, w)["error"]; msg != "set http.api_token to use the API" {
			t.Errorf("403 message = %q", msg)
		}
	}
}

// TestAPITokenComparedInConstantTime checks that the token check goes
// through subtle.ConstantTimeCompare, for the API and the other token
// checks alike.
func TestAPITokenComparedInConstantTime(t *testing.T) {
	if reflect.ValueOf(constantTimeCompare).Pointer() != reflect.ValueOf(subtle.ConstantTimeCompare).Pointer() {
		t.Fatal("constantTimeCompare is not subtle.ConstantTimeCompare")
	}
	calls := 0
	constantTimeCompare = func(x, y []byte) int {
		calls++
		return subtle.ConstantTimeCompare(x, y)
	}
	t.Cleanup(func() { constantTimeCompare = subtle.ConstantTimeCompare })
	e := newEnv(t, store.DialectSQLite)
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/api/v1/pipeline", testToken, http.StatusOK},
		{"/api/v1/pipeline", "wrong-token-of-some-length", http.StatusUnauthorized},
		{"/metrics", testToken, http.StatusOK},
		{"/", testToken, http.StatusOK},
	} {
		before := calls
		w := e.serve(request("GET", tc.path, nil, "Authorization", "Bearer "+tc.token))
		expect(t, w, tc.status)
		if calls == before {
			t.Errorf("GET %s: token checked without subtle.ConstantTimeCompare", tc.path)
		}
	}
}

func TestAPI(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		t.Run("contacts", func(t *testing.T) { testAPIContacts(t, e) })
		t.Run("stage, notes, purchases", func(t *testing.T) { testAPIChanges(t, e) })
		t.Run("enrollments", func(t *testing.T) { testAPIEnrollments(t, e) })
		t.Run("pipeline, funnel, replies", func(t *testing.T) { testAPIReports(t, e) })
		t.Run("contact events and attention", func(t *testing.T) { testAPIEventsAttention(t, e) })
		t.Run("limits and routing", func(t *testing.T) { testAPILimits(t, e) })
	})
}

func testAPIContacts(t *testing.T, e *env) {
	w := e.api("POST", "/api/v1/contacts", map[string]any{
		"email": " Ann@Example.COM ", "first_name": "Ann", "timezone": "Europe/Amsterdam",
		"birthday": "1990-04-01", "stage": "lead", "custom_fields": map[string]string{"plan": "pro\r\nx"},
	})
	expect(t, w, http.StatusCreated)
	m := decode(t, w)
	c := m["contact"].(map[string]any)
	if m["created"] != true || c["email"] != "ann@example.com" || c["first_name"] != "Ann" || c["custom_fields"].(map[string]any)["plan"] != "pro x" {
		t.Fatalf("created contact = %v", m)
	}
	// An update: empty fields leave stored ones alone, the stage moves.
	w = e.api("POST", "/api/v1/contacts", map[string]any{"email": "ann@example.com", "company": "Acme", "stage": "prospect"})
	expect(t, w, http.StatusOK)
	c = decode(t, w)["contact"].(map[string]any)
	if c["first_name"] != "Ann" || c["company"] != "Acme" || c["stage"] != "prospect" {
		t.Fatalf("updated contact = %v", c)
	}
	if got := e.hooks.get(&e.hooks.stages); !slices.Contains(got, "ann@example.com:lead>prospect") {
		t.Errorf("OnStageChanged calls = %v", got)
	}

	for _, tc := range []struct {
		body  string
		field string
	}{
		{`{"email": "not an address"}`, "email"},
		{`{"email": "Ann <ann@example.com>"}`, "email"},
		{`{"email": "ann@localhost"}`, "email"},
		{`{"first_name": "no email"}`, "email"},
		{`{"email": "b@example.com", "stage": "vip"}`, "stage"},
		{`{"email": "b@example.com", "birthday": "01-04-1990"}`, "birthday"},
		{`{"email": "b@example.com", "timezone": "Mars/Olympus"}`, "timezone"},
		{`{"email": "b@example.com", "owner_account": "nobody"}`, "owner_account"},
		{`{"email": "b@example.com", "custom_fields": {"": "x"}}`, "custom_fields"},
		{`{"email": "b@example.com", "nickname": "Bee"}`, "nickname"},
		{`{"email": 42}`, "email"},
	} {
		expectField(t, e.api("POST", "/api/v1/contacts", tc.body), tc.field)
	}
	expect(t, e.api("POST", "/api/v1/contacts", `{"email": "b@example.com"`), http.StatusBadRequest)
	expect(t, e.api("POST", "/api/v1/contacts", ``), http.StatusBadRequest)
	expect(t, e.api("POST", "/api/v1/contacts", `{"email": "b@example.com"} {}`), http.StatusBadRequest)
	r := request("POST", "/api/v1/contacts", strings.NewReader("email=b@example.com"), "Authorization", "Bearer "+testToken, "Content-Type", "application/x-www-form-urlencoded")
	expect(t, e.serve(r), http.StatusUnsupportedMediaType)

	for i := range 4 {
		stage := "lead"
		if i >= 2 {
			stage = "customer"
		}
		expect(t, e.api("POST", "/api/v1/contacts", map[string]any{"email": fmt.Sprintf("c%d@example.com", i), "stage": stage}), http.StatusCreated)
	}
	w = e.api("GET", "/api/v1/contacts?stage=customer&limit=1&offset=1", nil)
	expect(t, w, http.StatusOK)
	m = decode(t, w)
	list := m["contacts"].([]any)
	if m["total"] != 2.0 || len(list) != 1 || list[0].(map[string]any)["email"] != "c3@example.com" {
		t.Errorf("page = %v", m)
	}
	w = e.api("GET", "/api/v1/contacts?q=ACME", nil)
	if m = decode(t, w); m["total"] != 1.0 {
		t.Errorf("search = %v", m)
	}
	expectField(t, e.api("GET", "/api/v1/contacts?stage=vip", nil), "stage")
	expectField(t, e.api("GET", "/api/v1/contacts?limit=0", nil), "limit")
	expectField(t, e.api("GET", "/api/v1/contacts?limit=abc", nil), "limit")
	expectField(t, e.api("GET", "/api/v1/contacts?offset=-1", nil), "offset")

	w = e.api("GET", "/api/v1/contacts/ANN@example.com", nil)
	expect(t, w, http.StatusOK)
	m = decode(t, w)
	tl := m["timeline"].([]any)
	if m["contact"].(map[string]any)["email"] != "ann@example.com" || len(tl) != 2 ||
		tl[0].(map[string]any)["type"] != "created" || tl[1].(map[string]any)["type"] != "stage_changed" {
		t.Errorf("contact detail = %v", m)
	}
	w = e.api("GET", "/api/v1/contacts/nobody@example.com", nil)
	expect(t, w, http.StatusNotFound)
	if msg := decode(t, w)["error"].(string); !strings.Contains(msg, "nobody@example.com") {
		t.Errorf("404 message = %q", msg)
	}
}

func testAPIChanges(t *testing.T, e *env) {
	e.upsert(store.Contact{Email: "dave@example.com", Stage: "lead"})
	before := metricValue(t, e.srv.Metrics(), "followupd_stage_transitions_total", "from", "lead", "to", "customer")
	w := e.api("POST", "/api/v1/contacts/dave@example.com/stage", map[string]string{"stage": "customer", "reason": "signed"})
	expect(t, w, http.StatusOK)
	if m := decode(t, w); m["from"] != "lead" || m["to"] != "customer" || m["changed"] != true {
		t.Errorf("stage result = %v", m)
	}
	if got := metricValue(t, e.srv.Metrics(), "followupd_stage_transitions_total", "from", "lead", "to", "customer"); got != before+1 {
		t.Errorf("stage transition counter %v → %v", before, got)
	}
	if got := e.hooks.get(&e.hooks.stages); !slices.Contains(got, "dave@example.com:lead>customer") {
		t.Errorf("OnStageChanged calls = %v", got)
	}
	w = e.api("POST", "/api/v1/contacts/dave@example.com/stage", map[string]string{"stage": "customer"})
	if m := decode(t, w); m["changed"] != false {
		t.Errorf("same stage again = %v", m)
	}
	expectField(t, e.api("POST", "/api/v1/contacts/dave@example.com/stage", map[string]string{"stage": "vip"}), "stage")
	expectField(t, e.api("POST", "/api/v1/contacts/dave@example.com/stage", map[string]string{}), "stage")
	expect(t, e.api("POST", "/api/v1/contacts/nobody@example.com/stage", map[string]string{"stage": "lead"}), http.StatusNotFound)

	expect(t, e.api("POST", "/api/v1/contacts/dave@example.com/notes", map[string]string{"text": "called, wants a demo"}), http.StatusCreated)
	expectField(t, e.api("POST", "/api/v1/contacts/dave@example.com/notes", map[string]string{"text": "  "}), "text")
	expect(t, e.api("POST", "/api/v1/contacts/nobody@example.com/notes", map[string]string{"text": "x"}), http.StatusNotFound)

	w = e.api("POST", "/api/v1/contacts/dave@example.com/purchases", `{"amount": 49.90, "note": "starter"}`)
	expect(t, w, http.StatusCreated)
	if m := decode(t, w); m["amount"] != "49.90" || m["purchases"] != 1.0 {
		t.Errorf("purchase = %v", m)
	}
	w = e.api("POST", "/api/v1/contacts/dave@example.com/purchases", `{"amount": "120"}`)
	if m := decode(t, w); m["purchases"] != 2.0 {
		t.Errorf("second purchase = %v", m)
	}
	if got := e.hooks.get(&e.hooks.purchases); len(got) != 2 || got[0] != "dave@example.com" {
		t.Errorf("OnPurchase calls = %v", got)
	}
	expectField(t, e.api("POST", "/api/v1/contacts/dave@example.com/purchases", `{"amount": "12,50"}`), "amount")
	expectField(t, e.api("POST", "/api/v1/contacts/dave@example.com/purchases", `{"amount": true}`), "amount")
	expect(t, e.api("POST", "/api/v1/contacts/nobody@example.com/purchases", `{"amount": "1"}`), http.StatusNotFound)

	types := e.eventTypes(e.contact("dave@example.com").ID)
	want := []string{"created", "stage_changed", "note", "purchase", "purchase"}
	if !slices.Equal(types, want) {
		t.Errorf("timeline = %v, want %v", types, want)
	}
}

func testAPIEnrollments(t *testing.T, e *env) {
	e.upsert(store.Contact{Email: "erin@example.com"})
	at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	w := e.api("POST", "/api/v1/contacts/erin@example.com/enrollments", map[string]string{"sequence": "welcome", "at": at.Format(time.RFC3339)})
	expect(t, w, http.StatusCreated)
	m := decode(t, w)
	if m["sequence"] != "welcome" || m["account"] != "sales" || m["status"] != "active" || m["due_at"] != at.Format(time.RFC3339) {
		t.Errorf("enrollment = %v", m)
	}
	expect(t, e.api("POST", "/api/v1/contacts/erin@example.com/enrollments", map[string]string{"sequence": "welcome"}), http.StatusConflict)
	expectField(t, e.api("POST", "/api/v1/contacts/erin@example.com/enrollments", map[string]string{"sequence": "nope"}), "sequence")
	expectField(t, e.api("POST", "/api/v1/contacts/erin@example.com/enrollments", map[string]string{"sequence": "aftersale", "at": "tomorrow"}), "at")
	expect(t, e.api("POST", "/api/v1/contacts/nobody@example.com/enrollments", map[string]string{"sequence": "welcome"}), http.StatusNotFound)
	e.upsert(store.Contact{Email: "lost@example.com", Stage: "not_interested"})
	expect(t, e.api("POST", "/api/v1/contacts/lost@example.com/enrollments", map[string]string{"sequence": "welcome"}), http.StatusConflict)

	w = e.api("DELETE", "/api/v1/contacts/erin@example.com/enrollments/welcome", nil)
	expect(t, w, http.StatusOK)
	if m := decode(t, w); m["stopped"] != 1.0 {
		t.Errorf("unenroll = %v", m)
	}
	expect(t, e.api("DELETE", "/api/v1/contacts/erin@example.com/enrollments/welcome", nil), http.StatusNotFound)
	live, err := e.store.LiveEnrollments(ctx, e.contact("erin@example.com").ID)
	if err != nil || len(live) != 0 {
		t.Errorf("live enrollments after DELETE: %v, %v", live, err)
	}
}

// seedFunnel gives the welcome sequence sent, failed, queued and replied
// messages, and returns the contact that replied.
func seedFunnel(t *testing.T, e *env, replier store.Contact) {
	t.Helper()
	others := []store.Contact{
		e.upsert(store.Contact{Email: "f1@example.com"}),
		e.upsert(store.Contact{Email: "f2@example.com"}),
	}
	n := 0
	send := func(c store.Contact, steps ...string) []int64 {
		en, err := e.store.Enroll(ctx, c.Email, "welcome", "sales", "", time.Now().Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for step, status := range steps {
			n++
			id, err := e.store.InsertMessageOut(ctx, store.MessageOut{EnrollmentID: en.ID, ContactID: c.ID, Step: step,
				Account: "sales", Status: status, MessageID: fmt.Sprintf("<funnel%d@example.com>", n)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	ids := send(replier, store.MessageSent, store.MessageSent)
	send(others[0], store.MessageSent, store.MessageQueued)
	send(others[1], store.MessageFailed)
	if _, err := e.store.InsertMessageIn(ctx, store.MessageIn{Account: "sales", Mailbox: "INBOX", UIDValidity: 7, UID: 1,
		FromAddr: replier.Email, Subject: "Re: <b>hello</b>", Kind: "reply", Intent: "interested",
		Excerpt: "Yes <script>alert(2)</script> let's talk", ContactID: &replier.ID, MessageOutID: &ids[1]}); err != nil {
		t.Fatal(err)
	}
}

func testAPIReports(t *testing.T, e *env) {
	replier := e.upsert(store.Contact{Email: "rita@example.com", FirstName: "Rita", Stage: "prospect"})
	seedFunnel(t, e, replier)

	w := e.api("GET", "/api/v1/pipeline", nil)
	expect(t, w, http.StatusOK)
	m := decode(t, w)
	stages := m["stages"].([]any)
	var names []string
	total := 0.0
	for _, s := range stages {
		st := s.(map[string]any)
		names = append(names, st["name"].(string))
		total += st["count"].(float64)
	}
	if !slices.Equal(names, testConfig().StageNames()) {
		t.Errorf("stages %v, want config order %v", names, testConfig().StageNames())
	}
	if m["total"] != total || total == 0 {
		t.Errorf("total %v, sum %v", m["total"], total)
	}

	w = e.api("GET", "/api/v1/sequences/welcome/funnel", nil)
	expect(t, w, http.StatusOK)
	m = decode(t, w)
	steps := m["steps"].([]any)
	if len(steps) != 3 {
		t.Fatalf("funnel has %d steps, want the 3 configured: %v", len(steps), m)
	}
	s0, s1, s2 := steps[0].(map[string]any), steps[1].(map[string]any), steps[2].(map[string]any)
	if s0["sent"] != 2.0 || s0["failed"] != 1.0 || s0["replied"] != 0.0 || s0["template"] != "intro" ||
		s0["bounced"] != 0.0 || s0["unsubscribed"] != 0.0 || s0["reply_rate"] != 0.0 {
		t.Errorf("step 0 = %v", s0)
	}
	if s1["sent"] != 1.0 || s1["queued"] != 1.0 || s1["replied"] != 1.0 || s1["template"] != "nudge / nudge-b" || s1["reply_rate"] != 100.0 {
		t.Errorf("step 1 = %v", s1)
	}
	if s2["sent"] != 0.0 || s2["step"] != 2.0 {
		t.Errorf("step 2 = %v", s2)
	}
	expect(t, e.api("GET", "/api/v1/sequences/nope/funnel", nil), http.StatusNotFound)

	w = e.api("GET", "/api/v1/replies?limit=5", nil)
	expect(t, w, http.StatusOK)
	replies := decode(t, w)["replies"].([]any)
	if len(replies) != 1 {
		t.Fatalf("replies = %v", replies)
	}
	r0 := replies[0].(map[string]any)
	if r0["kind"] != "reply" || r0["intent"] != "interested" || r0["contact_email"] != "rita@example.com" || !strings.Contains(r0["excerpt"].(string), "let's talk") {
		t.Errorf("reply = %v", r0)
	}
	expectField(t, e.api("GET", "/api/v1/replies?limit=100000", nil), "limit")
}

func testAPILimits(t *testing.T, e *env) {
	big := `{"email": "big@example.com", "first_name": "` + strings.Repeat("x", MaxBodyBytes) + `"}`
	w := e.api("POST", "/api/v1/contacts", big)
	expect(t, w, http.StatusRequestEntityTooLarge)
	if decode(t, w)["error"] == nil {
		t.Error("413 without a JSON error")
	}
	if _, err := e.store.ContactByEmail(ctx, "big@example.com"); err == nil {
		t.Error("an oversized request was stored")
	}
	w = e.api("GET", "/api/v1/nothing", nil)
	expect(t, w, http.StatusNotFound)
	if decode(t, w)["error"] == nil {
		t.Error("404 without a JSON error")
	}
	w = e.api("PUT", "/api/v1/pipeline", nil)
	expect(t, w, http.StatusMethodNotAllowed)
	if decode(t, w)["error"] == nil || w.Header().Get("Allow") == "" {
		t.Errorf("405 = %v %s", w.Header(), w.Body)
	}
}

func testAPIEventsAttention(t *testing.T, e *env) {
	c := e.upsert(store.Contact{Email: "tl@example.com", Stage: "lead"})
	for i := range 7 {
		expect(t, e.api("POST", "/api/v1/contacts/TL@example.com/notes", map[string]string{"text": fmt.Sprint("note ", i)}), http.StatusCreated)
	}
	all := e.eventTypes(c.ID) // oldest first
	var got []string
	var ids []float64
	before := ""
	for page := 0; ; page++ {
		w := e.api("GET", "/api/v1/contacts/tl@example.com/events?limit=3"+before, nil)
		expect(t, w, http.StatusOK)
		m := decode(t, w)
		for _, ev := range m["events"].([]any) {
			ev := ev.(map[string]any)
			got = append(got, ev["type"].(string))
			ids = append(ids, ev["id"].(float64))
		}
		if m["email"] != "tl@example.com" || m["limit"] != 3.0 {
			t.Fatalf("page %d = %v", page, m)
		}
		if m["next_before"] == nil {
			break
		}
		if page > 5 {
			t.Fatal("paging does not end")
		}
		before = fmt.Sprintf("&before=%.0f", m["next_before"].(float64))
	}
	slices.Reverse(got)
	if !slices.Equal(got, all) || len(all) != 8 {
		t.Errorf("paged events (reversed) %v, want %v", got, all)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] >= ids[i-1] {
			t.Errorf("events not newest first: %v", ids)
		}
	}
	expectField(t, e.api("GET", "/api/v1/contacts/tl@example.com/events?before=x", nil), "before")
	expectField(t, e.api("GET", "/api/v1/contacts/tl@example.com/events?limit=0", nil), "limit")
	expect(t, e.api("GET", "/api/v1/contacts/nobody@example.com/events", nil), http.StatusNotFound)

	w := e.api("GET", "/api/v1/attention", nil)
	expect(t, w, http.StatusOK)
	m := decode(t, w)
	msgs := m["messages"].([]any)
	if m["total"] != float64(len(msgs)) {
		t.Errorf("attention = %v", m)
	}
	for _, x := range msgs {
		if st := x.(map[string]any)["status"]; st != "failed" && st != "uncertain" {
			t.Errorf("attention lists a %v message", st)
		}
	}
}
