package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
)

// The dashboard: server-rendered pages, no script. See auth.go for how it
// is logged into and protected against cross-site requests.

// session is how a dashboard request was authenticated.
type session struct {
	// csrf is the token the session's forms carry; empty for a request
	// authenticated by its Authorization header, which needs none.
	csrf  string
	nonce []byte
}

type dashFunc func(w http.ResponseWriter, r *http.Request, sess session)

func (s *Server) dashboardHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.loginPost)
	mux.HandleFunc("POST /logout", s.dash(s.logout))
	mux.HandleFunc("GET /{$}", s.dash(s.homePage))
	mux.HandleFunc("GET /contacts", s.dash(s.contactsPage))
	mux.HandleFunc("GET /contacts/{email}", s.dash(s.contactPage))
	mux.HandleFunc("POST /contacts/{email}/stage", s.dash(s.contactStagePost))
	mux.HandleFunc("POST /contacts/{email}/notes", s.dash(s.contactNotePost))
	mux.HandleFunc("POST /contacts/{email}/purchases", s.dash(s.contactPurchasePost))
	mux.HandleFunc("/", s.dash(func(w http.ResponseWriter, r *http.Request, sess session) {
		s.message(w, http.StatusNotFound, sess, "Not found", "There is no page here.")
	}))
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.message(w, http.StatusForbidden, session{}, "Refused", "This form was sent from another site.")
	}))
	return cop.Handler(mux)
}

type messageData struct {
	Heading, Text, Link, LinkText string
}

func (s *Server) message(w http.ResponseWriter, status int, sess session, heading, text string) {
	s.pages.render(w, status, "message", view{Title: heading, Nav: "none", CSRF: sess.csrf, Data: messageData{Heading: heading, Text: text}})
}

// dashboardOff answers every dashboard page while no token is configured:
// without one there is nothing to log in with.
func (s *Server) dashboardOff(w http.ResponseWriter) {
	s.pages.render(w, http.StatusForbidden, "message", view{Title: "Dashboard off", Data: messageData{
		Heading: "The dashboard is off", Text: "Set http.api_token in the configuration to use the dashboard; you log in with that token.",
	}})
}

// authenticate reports how r proves it may use the dashboard.
func (s *Server) authenticate(r *http.Request, token string) (session, bool) {
	if given, ok := bearerToken(r); ok {
		return session{}, tokenMatches(given, token)
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	nonce, ok := checkSession(token, ck.Value, time.Now())
	if !ok {
		return session{}, false
	}
	return session{csrf: csrfToken(token, nonce), nonce: nonce}, true
}

// dash guards a dashboard page: a token must be configured and presented
// (header or session cookie), and a cookie session's unsafe requests must
// carry its CSRF token.
func (s *Server) dash(f dashFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := s.cfg().HTTP.APIToken.Value()
		if token == "" {
			s.dashboardOff(w)
			return
		}
		sess, ok := s.authenticate(r, token)
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.pages.render(w, http.StatusUnauthorized, "message", view{Title: "Log in", Data: messageData{
				Heading: "Log in first", Text: "Your session has ended.", Link: "/login", LinkText: "Log in",
			}})
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := r.ParseForm(); err != nil {
				status := http.StatusBadRequest
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					status = http.StatusRequestEntityTooLarge
				}
				s.message(w, status, sess, "Bad request", "The form could not be read.")
				return
			}
			if sess.csrf != "" && !csrfMatches(token, sess.nonce, r.PostForm.Get("csrf")) {
				s.message(w, http.StatusForbidden, sess, "Refused", "This form has expired or did not come from this dashboard. Go back, reload the page and try again.")
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		f(w, r, sess)
	}
}

// localPath keeps a post-login redirect on this site: a path, never a URL
// or a scheme-relative //host.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

type loginData struct{ Next string }

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.cfg().HTTP.APIToken.Value() == "" {
		s.dashboardOff(w)
		return
	}
	s.pages.render(w, http.StatusOK, "login", view{Title: "Log in", Data: loginData{Next: localPath(r.URL.Query().Get("next"))}})
}

func (s *Server) loginPost(w http.ResponseWriter, r *http.Request) {
	token := s.cfg().HTTP.APIToken.Value()
	if token == "" {
		s.dashboardOff(w)
		return
	}
	if !s.loginLimit.allow(r) {
		s.pages.render(w, http.StatusTooManyRequests, "login", view{Title: "Log in", Error: "Too many attempts. Wait a minute and try again.", Data: loginData{Next: "/"}})
		return
	}
	if err := r.ParseForm(); err != nil {
		s.pages.render(w, http.StatusBadRequest, "login", view{Title: "Log in", Error: "The form could not be read.", Data: loginData{Next: "/"}})
		return
	}
	next := localPath(r.PostForm.Get("next"))
	if !tokenMatches(r.PostForm.Get("token"), token) {
		s.pages.render(w, http.StatusUnauthorized, "login", view{Title: "Log in", Error: "That is not the API token.", Data: loginData{Next: next}})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    newSession(token, time.Now()),
		Path:     "/",
		MaxAge:   int(sessionTTL.Seconds()),
		HttpOnly: true,
		Secure:   r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
		SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ session) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// dashError shows an error on a page of its own, logging the unexpected.
func (s *Server) dashError(w http.ResponseWriter, r *http.Request, sess session, err error) {
	var fe *fieldError
	var he *httpError
	switch {
	case errors.As(err, &fe):
		s.message(w, http.StatusBadRequest, sess, "Not saved", fe.Error())
	case errors.As(err, &he):
		s.message(w, he.Status, sess, http.StatusText(he.Status), he.Msg)
	default:
		s.logServerError(r, err)
		s.message(w, http.StatusInternalServerError, sess, "Something went wrong", "The error is in followupd's log.")
	}
}

type homeData struct {
	Stages    []StageCount
	Total     int
	Max       int
	Backlog   int
	Funnels   []funnelView
	Replies   []store.InboundMessage
	Attention attentionList
}

// funnelView is a sequence's funnel with the scale of its bars.
type funnelView struct {
	SequenceFunnel
	MaxSent int
}

// homePage is the overview. Its numbers come from the same functions as
// the API's (pipeline, funnels, attention), so the page and
// /api/v1/pipeline, /api/v1/sequences/{name}/funnel and /api/v1/attention
// always agree.
func (s *Server) homePage(w http.ResponseWriter, r *http.Request, sess session) {
	ctx := r.Context()
	var d homeData
	var err error
	if d.Stages, d.Total, err = s.pipeline(ctx); err != nil {
		s.dashError(w, r, sess, err)
		return
	}
	for _, st := range d.Stages {
		d.Max = max(d.Max, st.Count)
	}
	fs, err := s.funnels(ctx, "")
	if err != nil {
		s.dashError(w, r, sess, err)
		return
	}
	for _, f := range fs {
		v := funnelView{SequenceFunnel: f}
		for _, st := range f.Steps {
			v.MaxSent = max(v.MaxSent, st.Sent)
		}
		d.Funnels = append(d.Funnels, v)
	}
	if d.Replies, err = s.o.Store.RecentMessagesIn(ctx, store.InboundFilter{Limit: 25}); err != nil {
		s.dashError(w, r, sess, err)
		return
	}
	if d.Attention, err = s.attention(ctx, attentionSize); err != nil {
		s.dashError(w, r, sess, err)
		return
	}
	if d.Backlog, err = s.o.Store.DueBacklog(ctx, s.now()); err != nil {
		s.dashError(w, r, sess, err)
		return
	}
	s.pages.render(w, http.StatusOK, "home", view{Title: "Overview", Nav: "home", CSRF: sess.csrf, Data: d})
}

type contactsData struct {
	Page             contactPage
	Stage, Q         string
	Stages           []config.Stage
	HasPrev, HasNext bool
	Prev, Next       int
	From, To         int
}

func (s *Server) contactsPage(w http.ResponseWriter, r *http.Request, sess session) {
	cfg := s.cfg()
	d := contactsData{Stages: cfg.Stages, Stage: strings.TrimSpace(r.URL.Query().Get("stage")), Q: strings.TrimSpace(r.URL.Query().Get("q"))}
	if d.Stage != "" {
		if err := checkStage(cfg, "stage", d.Stage); err != nil {
			s.dashError(w, r, sess, err)
			return
		}
	}
	offset, err := intParam(r, "offset", 0, 0, 1<<31-1)
	if err != nil {
		s.dashError(w, r, sess, err)
		return
	}
	const size = defaultPage
	cs, total, err := s.o.Store.SearchContacts(r.Context(), store.ContactQuery{Stage: d.Stage, Search: d.Q, Limit: size, Offset: offset})
	if err != nil {
		s.dashError(w, r, sess, err)
		return
	}
	d.Page = contactPage{Contacts: cs, Total: total, Limit: size, Offset: offset}
	d.HasPrev, d.Prev = offset > 0, max(0, offset-size)
	d.HasNext, d.Next = offset+len(cs) < total, offset+size
	if len(cs) > 0 {
		d.From, d.To = offset+1, offset+len(cs)
	}
	s.pages.render(w, http.StatusOK, "contacts", view{Title: "Contacts", Nav: "contacts", CSRF: sess.csrf, Data: d})
}

type contactData struct {
	ContactDetail
	Stages []config.Stage
	// Events is the page of the timeline shown, newest first.
	Events eventPage
}

// contactTimelinePage is how many events the contact page shows at once.
const contactTimelinePage = 100

func (s *Server) contactPage(w http.ResponseWriter, r *http.Request, sess session) {
	s.renderContact(w, r, sess, http.StatusOK, "")
}

func (s *Server) renderContact(w http.ResponseWriter, r *http.Request, sess session, status int, notice string) {
	ctx := r.Context()
	d, err := s.contactDetail(ctx, r.PathValue("email"))
	if err != nil {
		s.dashError(w, r, sess, err)
		return
	}
	var before int64
	if v := strings.TrimSpace(r.URL.Query().Get("before")); v != "" {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before < 1 {
			s.dashError(w, r, sess, badField("before", "want an event id, got %q", v))
			return
		}
	}
	// Newest first, as /api/v1/contacts/{email}/events: the latest
	// conversation is what the seller looks for.
	events, err := s.contactEvents(ctx, d.Contact.Email, before, contactTimelinePage)
	if err != nil {
		s.dashError(w, r, sess, err)
		return
	}
	title := fullName(d.Contact.FirstName, d.Contact.LastName, d.Contact.Email)
	s.pages.render(w, status, "contact", view{Title: title, Nav: "contacts", CSRF: sess.csrf, Notice: notice,
		Data: contactData{ContactDetail: d, Stages: s.cfg().Stages, Events: events}})
}

// backToContact answers a successful form with a redirect (so a reload
// does not post it again) to the contact's page.
func backToContact(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/contacts/"+url.PathEscape(store.NormalizeEmail(r.PathValue("email"))), http.StatusSeeOther)
}

func (s *Server) contactStagePost(w http.ResponseWriter, r *http.Request, sess session) {
	reason := r.PostForm.Get("reason")
	if strings.TrimSpace(reason) == "" {
		reason = "set on the dashboard"
	}
	if _, err := s.setStage(r.Context(), r.PathValue("email"), r.PostForm.Get("stage"), reason); err != nil {
		s.dashError(w, r, sess, err)
		return
	}
	backToContact(w, r)
}

func (s *Server) contactNotePost(w http.ResponseWriter, r *http.Request, sess session) {
	if err := s.addNote(r.Context(), r.PathValue("email"), r.PostForm.Get("text")); err != nil {
		s.dashError(w, r, sess, err)
		return
	}
	backToContact(w, r)
}

func (s *Server) contactPurchasePost(w http.ResponseWriter, r *http.Request, sess session) {
	_, ruleErr, err := s.recordPurchase(r.Context(), r.PathValue("email"), r.PostForm.Get("amount"), r.PostForm.Get("note"))
	if err != nil {
		s.dashError(w, r, sess, err)
		return
	}
	if ruleErr != nil {
		s.renderContact(w, r, sess, http.StatusOK, "The purchase is recorded, but its rules failed: see followupd's log.")
		return
	}
	backToContact(w, r)
}
