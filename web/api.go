package web

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
)

// The JSON API under /api/v1/. Field names are snake_case like the CLI's
// --json output; errors are {"error": "...", "field": "..."}.

const (
	defaultPage  = 50
	maxPage      = 500
	timelineSize = 500
)

// apiFunc is an API handler; a returned error becomes the JSON error
// response with its status.
type apiFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) api(f apiFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			s.logServerError(r, err)
			writeErr(w, err)
		}
	}
}

// logServerError logs the errors that become a 500: the client sees
// "internal error" and the operator the cause.
func (s *Server) logServerError(r *http.Request, err error) {
	var fe *fieldError
	var he *httpError
	var mbe *http.MaxBytesError
	if errors.As(err, &fe) || errors.As(err, &he) || errors.As(err, &mbe) {
		return
	}
	s.log.Error("http request failed", "method", r.Method, "path", logPath(r), "err", err)
}

// apiRoute is one endpoint of the API. openapi.json must describe every
// route of apiRoutes and nothing else (TestOpenAPIDescribesEveryRoute).
type apiRoute struct {
	Method, Path string
	Handler      http.HandlerFunc
	// Public routes need no bearer token.
	Public bool
}

func (s *Server) apiRoutes() []apiRoute {
	return []apiRoute{
		{Method: "GET", Path: "/api/v1/openapi.json", Handler: serveOpenAPI, Public: true},
		{Method: "GET", Path: "/api/v1/contacts", Handler: s.api(s.apiListContacts)},
		{Method: "POST", Path: "/api/v1/contacts", Handler: s.api(s.apiSaveContact)},
		{Method: "GET", Path: "/api/v1/contacts/{email}", Handler: s.api(s.apiGetContact)},
		{Method: "GET", Path: "/api/v1/contacts/{email}/events", Handler: s.api(s.apiContactEvents)},
		{Method: "POST", Path: "/api/v1/contacts/{email}/stage", Handler: s.api(s.apiSetStage)},
		{Method: "POST", Path: "/api/v1/contacts/{email}/notes", Handler: s.api(s.apiAddNote)},
		{Method: "POST", Path: "/api/v1/contacts/{email}/purchases", Handler: s.api(s.apiRecordPurchase)},
		{Method: "POST", Path: "/api/v1/contacts/{email}/enrollments", Handler: s.api(s.apiEnroll)},
		{Method: "DELETE", Path: "/api/v1/contacts/{email}/enrollments/{sequence}", Handler: s.api(s.apiUnenroll)},
		{Method: "GET", Path: "/api/v1/pipeline", Handler: s.api(s.apiPipeline)},
		{Method: "GET", Path: "/api/v1/sequences/{name}/funnel", Handler: s.api(s.apiFunnel)},
		{Method: "GET", Path: "/api/v1/replies", Handler: s.api(s.apiReplies)},
		{Method: "GET", Path: "/api/v1/attention", Handler: s.api(s.apiAttention)},
	}
}

func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	public := map[string]bool{}
	for _, rt := range s.apiRoutes() {
		pattern := rt.Method + " " + rt.Path
		mux.HandleFunc(pattern, rt.Handler)
		public[pattern] = rt.Public
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		if public[pattern] {
			mux.ServeHTTP(w, r)
			return
		}
		tok := s.cfg().HTTP.APIToken.Value()
		if tok == "" {
			writeError(w, http.StatusForbidden, "set http.api_token to use the API")
			return
		}
		if given, ok := bearerToken(r); !ok || !tokenMatches(given, tok) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="followupd"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token (send Authorization: Bearer TOKEN)")
			return
		}
		if pattern == "" {
			// The mux would answer in plain text; ask it which status
			// (404, or 405 with Allow) and answer that in JSON.
			rec := &statusRecorder{header: http.Header{}}
			mux.ServeHTTP(rec, r)
			if allow := rec.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
			}
			msg := "no such API endpoint"
			if rec.status == http.StatusMethodNotAllowed {
				msg = "method " + r.Method + " is not allowed here"
			}
			writeError(w, rec.status, msg)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// statusRecorder keeps the status and headers a handler writes and drops
// its body.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *statusRecorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return len(b), nil
}

// intParam reads a whole-number query parameter in [lo, hi], def when
// absent.
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := strings.TrimSpace(r.URL.Query().Get(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badField(name, "want a whole number from %d to %d, got %q", lo, hi, v)
	}
	return n, nil
}

type contactPage struct {
	Contacts []store.Contact `json:"contacts"`
	Total    int             `json:"total"`
	Limit    int             `json:"limit"`
	Offset   int             `json:"offset"`
}

func (s *Server) apiListContacts(w http.ResponseWriter, r *http.Request) error {
	q := store.ContactQuery{Stage: strings.TrimSpace(r.URL.Query().Get("stage")), Search: r.URL.Query().Get("q")}
	if q.Stage != "" {
		if err := checkStage(s.cfg(), "stage", q.Stage); err != nil {
			return err
		}
	}
	var err error
	if q.Limit, err = intParam(r, "limit", defaultPage, 1, maxPage); err != nil {
		return err
	}
	if q.Offset, err = intParam(r, "offset", 0, 0, 1<<31-1); err != nil {
		return err
	}
	cs, total, err := s.o.Store.SearchContacts(r.Context(), q)
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []store.Contact{}
	}
	writeJSON(w, http.StatusOK, contactPage{Contacts: cs, Total: total, Limit: q.Limit, Offset: q.Offset})
	return nil
}

type savedContact struct {
	Created bool          `json:"created"`
	Contact store.Contact `json:"contact"`
}

func (s *Server) apiSaveContact(w http.ResponseWriter, r *http.Request) error {
	var in ContactInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	c, created, err := s.saveContact(r.Context(), in)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, savedContact{Created: created, Contact: c})
	return nil
}

// ContactDetail is a contact with its live enrollments, its latest inbound
// messages and its timeline (oldest first).
type ContactDetail struct {
	Contact     store.Contact          `json:"contact"`
	Enrollments []store.Enrollment     `json:"enrollments"`
	Messages    []store.InboundMessage `json:"messages_in"`
	Timeline    []store.Event          `json:"timeline"`
}

func (s *Server) contactDetail(ctx context.Context, email string) (ContactDetail, error) {
	var d ContactDetail
	c, err := s.o.Store.ContactByEmail(ctx, email)
	if err != nil {
		return d, storeErr(err)
	}
	d.Contact = c
	if d.Enrollments, err = s.o.Store.LiveEnrollments(ctx, c.ID); err != nil {
		return d, err
	}
	if d.Messages, err = s.o.Store.RecentMessagesIn(ctx, store.InboundFilter{ContactID: c.ID, Limit: 20}); err != nil {
		return d, err
	}
	if d.Timeline, err = s.o.Store.Timeline(ctx, c.ID, timelineSize); err != nil {
		return d, err
	}
	if d.Enrollments == nil {
		d.Enrollments = []store.Enrollment{}
	}
	if d.Messages == nil {
		d.Messages = []store.InboundMessage{}
	}
	if d.Timeline == nil {
		d.Timeline = []store.Event{}
	}
	return d, nil
}

func (s *Server) apiGetContact(w http.ResponseWriter, r *http.Request) error {
	d, err := s.contactDetail(r.Context(), r.PathValue("email"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// eventPage is a page of a contact's timeline, newest first. NextBefore
// is the before of the next (older) page, null when this page is the last.
type eventPage struct {
	Email      string        `json:"email"`
	Events     []store.Event `json:"events"`
	Limit      int           `json:"limit"`
	NextBefore *int64        `json:"next_before"`
}

func (s *Server) contactEvents(ctx context.Context, email string, before int64, limit int) (eventPage, error) {
	c, err := s.o.Store.ContactByEmail(ctx, email)
	if err != nil {
		return eventPage{}, storeErr(err)
	}
	// One more than asked tells whether an older page exists.
	evs, err := s.o.Store.ContactEvents(ctx, c.ID, before, limit+1)
	if err != nil {
		return eventPage{}, err
	}
	p := eventPage{Email: c.Email, Events: evs, Limit: limit}
	if len(evs) > limit {
		p.Events = evs[:limit]
		next := p.Events[limit-1].ID
		p.NextBefore = &next
	}
	if p.Events == nil {
		p.Events = []store.Event{}
	}
	return p, nil
}

func (s *Server) apiContactEvents(w http.ResponseWriter, r *http.Request) error {
	limit, err := intParam(r, "limit", defaultPage, 1, maxPage)
	if err != nil {
		return err
	}
	before := int64(0)
	if v := strings.TrimSpace(r.URL.Query().Get("before")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return badField("before", "want an event id (a whole number from 1), got %q", v)
		}
		before = n
	}
	p, err := s.contactEvents(r.Context(), r.PathValue("email"), before, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

type stageRequest struct {
	Stage  string `json:"stage"`
	Reason string `json:"reason"`
}

type stageResult struct {
	Email   string `json:"email"`
	From    string `json:"from"`
	To      string `json:"to"`
	Changed bool   `json:"changed"`
}

func (s *Server) apiSetStage(w http.ResponseWriter, r *http.Request) error {
	var in stageRequest
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	email := store.NormalizeEmail(r.PathValue("email"))
	from, err := s.setStage(r.Context(), email, in.Stage, in.Reason)
	if err != nil {
		return err
	}
	to := strings.TrimSpace(in.Stage)
	writeJSON(w, http.StatusOK, stageResult{Email: email, From: from, To: to, Changed: from != to})
	return nil
}

type noteRequest struct {
	Text string `json:"text"`
}

func (s *Server) apiAddNote(w http.ResponseWriter, r *http.Request) error {
	var in noteRequest
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	email := store.NormalizeEmail(r.PathValue("email"))
	if err := s.addNote(r.Context(), email, in.Text); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]string{"email": email, "note": strings.TrimSpace(in.Text)})
	return nil
}

type purchaseRequest struct {
	// Amount is a JSON string ("49.90") or number (49.90); a number is kept
	// as written, never through a float.
	Amount json.RawMessage `json:"amount"`
	Note   string          `json:"note"`
}

type purchaseResult struct {
	Email     string `json:"email"`
	Amount    string `json:"amount"`
	Purchases int    `json:"purchases"`
	// RulesError says that the purchase was recorded but the purchase rules
	// failed; retrying would count the purchase twice.
	RulesError string `json:"rules_error,omitempty"`
}

func purchaseAmount(raw json.RawMessage) (string, error) {
	v := strings.TrimSpace(string(raw))
	switch {
	case v == "" || v == "null":
		return "", nil
	case strings.HasPrefix(v, `"`):
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", badField("amount", "not a valid JSON string")
		}
		return s, nil
	case decimalRE.MatchString(v):
		return v, nil
	}
	return "", badField("amount", "want a decimal number such as 49.90, got %s", v)
}

func (s *Server) apiRecordPurchase(w http.ResponseWriter, r *http.Request) error {
	var in purchaseRequest
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	amount, err := purchaseAmount(in.Amount)
	if err != nil {
		return err
	}
	email := store.NormalizeEmail(r.PathValue("email"))
	n, ruleErr, err := s.recordPurchase(r.Context(), email, amount, in.Note)
	if err != nil {
		return err
	}
	res := purchaseResult{Email: email, Amount: strings.TrimSpace(amount), Purchases: n}
	if ruleErr != nil {
		res.RulesError = "the purchase is recorded, but its rules failed: see the daemon's log"
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
}

type enrollRequest struct {
	Sequence string `json:"sequence"`
	// At is when the first step is due, RFC 3339; empty is now. The send
	// window still applies.
	At string `json:"at"`
}

func (s *Server) apiEnroll(w http.ResponseWriter, r *http.Request) error {
	var in enrollRequest
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	var at time.Time
	if v := strings.TrimSpace(in.At); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return badField("at", "bad time %q (write RFC 3339, e.g. 2026-12-01T09:30:00+01:00)", v)
		}
		at = t
	}
	e, err := s.enroll(r.Context(), r.PathValue("email"), in.Sequence, at)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, e)
	return nil
}

func (s *Server) apiUnenroll(w http.ResponseWriter, r *http.Request) error {
	email := store.NormalizeEmail(r.PathValue("email"))
	seq := r.PathValue("sequence")
	n, err := s.o.Store.Unenroll(r.Context(), email, seq, "unenrolled over the API")
	if err != nil {
		return storeErr(err)
	}
	if n == 0 {
		return errStatus(http.StatusNotFound, "%s has no live enrollment in %s", email, seq)
	}
	writeJSON(w, http.StatusOK, map[string]any{"email": email, "sequence": seq, "stopped": n})
	return nil
}

// StageCount is one stage of the pipeline with its number of contacts.
type StageCount struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Count int    `json:"count"`
}

// pipeline counts contacts per stage in the configured order; stages found
// in the database but no longer configured come last, so no contact goes
// uncounted.
func (s *Server) pipeline(ctx context.Context) ([]StageCount, int, error) {
	counts, err := s.o.Store.CountContactsByStage(ctx)
	if err != nil {
		return nil, 0, err
	}
	cfg := s.cfg()
	out := make([]StageCount, 0, len(cfg.Stages))
	total := 0
	for _, st := range cfg.Stages {
		n := counts[st.Name]
		delete(counts, st.Name)
		out = append(out, StageCount{Name: st.Name, Type: st.Type, Count: n})
		total += n
	}
	var extra []StageCount
	for name, n := range counts {
		extra = append(extra, StageCount{Name: name, Type: "unknown", Count: n})
		total += n
	}
	slices.SortFunc(extra, func(a, b StageCount) int { return strings.Compare(a.Name, b.Name) })
	return append(out, extra...), total, nil
}

func (s *Server) apiPipeline(w http.ResponseWriter, r *http.Request) error {
	stages, total, err := s.pipeline(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"stages": stages, "total": total})
	return nil
}

// FunnelStep is one step of a sequence: its template and how far its
// messages got (see store.FunnelStep for what each count means).
// ReplyRate is Replied / Sent as a percentage rounded to one decimal
// (12.5 for 12.5 %), 0 while nothing was sent; the dashboard shows the
// same number.
type FunnelStep struct {
	store.FunnelStep
	ReplyRate float64 `json:"reply_rate"`
	Template  string  `json:"template"`
}

// replyRate is n / of as a percentage with one decimal.
func replyRate(n, of int) float64 {
	if of <= 0 {
		return 0
	}
	return math.Round(float64(n)*1000/float64(of)) / 10
}

// SequenceFunnel is a sequence's steps in order.
type SequenceFunnel struct {
	Sequence string       `json:"sequence"`
	Steps    []FunnelStep `json:"steps"`
}

// funnels returns the funnel of every configured sequence (or of one).
func (s *Server) funnels(ctx context.Context, only string) ([]SequenceFunnel, error) {
	counts, err := s.o.Store.Funnels(ctx, only)
	if err != nil {
		return nil, err
	}
	var out []SequenceFunnel
	for _, seq := range s.cfg().Sequences {
		if only != "" && seq.Name != only {
			continue
		}
		out = append(out, buildFunnel(seq, counts[seq.Name]))
	}
	return out, nil
}

func buildFunnel(seq config.Sequence, counts []store.FunnelStep) SequenceFunnel {
	f := SequenceFunnel{Sequence: seq.Name, Steps: []FunnelStep{}}
	byStep := map[int]store.FunnelStep{}
	last := len(seq.Steps) - 1
	for _, c := range counts {
		byStep[c.Step] = c
		last = max(last, c.Step)
	}
	for i := 0; i <= last; i++ {
		st := FunnelStep{FunnelStep: byStep[i]}
		st.Step = i
		st.ReplyRate = replyRate(st.Replied, st.Sent)
		if i < len(seq.Steps) {
			st.Template = seq.Steps[i].Template
			if len(seq.Steps[i].Variants) > 0 {
				st.Template = strings.Join(append([]string{st.Template}, seq.Steps[i].Variants...), " / ")
			}
		} else {
			// The sequence was shortened after these were sent.
			st.Template = "(removed step)"
		}
		f.Steps = append(f.Steps, st)
	}
	return f
}

func (s *Server) apiFunnel(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, ok := s.cfg().Sequence(name); !ok {
		return errStatus(http.StatusNotFound, "no sequence named %q", name)
	}
	fs, err := s.funnels(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, fs[0])
	return nil
}

func (s *Server) apiReplies(w http.ResponseWriter, r *http.Request) error {
	limit, err := intParam(r, "limit", defaultPage, 1, maxPage)
	if err != nil {
		return err
	}
	ms, err := s.o.Store.RecentMessagesIn(r.Context(), store.InboundFilter{Limit: limit})
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []store.InboundMessage{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"replies": ms})
	return nil
}

// attentionSize caps the messages listed as needing attention.
const attentionSize = 50

type attentionList struct {
	Messages []store.AttentionMessage `json:"messages"`
	Total    int                      `json:"total"`
}

func (s *Server) attention(ctx context.Context, limit int) (attentionList, error) {
	ms, total, err := s.o.Store.NeedsAttention(ctx, limit)
	if ms == nil {
		ms = []store.AttentionMessage{}
	}
	return attentionList{Messages: ms, Total: total}, err
}

func (s *Server) apiAttention(w http.ResponseWriter, r *http.Request) error {
	limit, err := intParam(r, "limit", attentionSize, 1, maxPage)
	if err != nil {
		return err
	}
	a, err := s.attention(r.Context(), limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}
