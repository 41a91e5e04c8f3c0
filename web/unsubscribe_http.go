package web

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
)

// One-click unsubscribe (RFC 8058). Mail clients POST
// "List-Unsubscribe=One-Click" to the link of the List-Unsubscribe header;
// people who follow the link in the message body get a page with a button
// that POSTs the same. A GET never unsubscribes: link scanners and mail
// security gateways fetch every link they see. The signed token is the
// proof, so these endpoints need no login and no CSRF token (they are not
// behind the dashboard's cross-origin check: a mail client posts from
// anywhere), only the rate limit and the body cap.

// EventUnsubscribed is the timeline event of an unsubscribe.
const EventUnsubscribed = "unsubscribed"

// unsubscribeStage is where an unsubscribed contact goes: the suppressed
// stage named "unsubscribed", else the first suppressed stage, else none
// (the contact keeps its stage but is still suppressed).
func unsubscribeStage(cfg *config.Config) string {
	first := ""
	for _, st := range cfg.Stages {
		if st.Type != config.StageSuppressed {
			continue
		}
		if st.Name == "unsubscribed" {
			return st.Name
		}
		if first == "" {
			first = st.Name
		}
	}
	return first
}

// errBadLink hides why a link is refused: a forged, truncated or moved
// token and an unknown contact all look the same from outside.
var errBadLink = errors.New("web: bad unsubscribe link")

// tokenContact returns the contact a valid token names.
func (s *Server) tokenContact(ctx context.Context, token string) (store.Contact, error) {
	secret := s.cfg().Unsubscribe.Secret.Value()
	if secret == "" {
		// Without a secret every token would verify against the empty key.
		return store.Contact{}, errBadLink
	}
	id, err := TokenContactID(token)
	if err != nil {
		return store.Contact{}, errBadLink
	}
	c, err := s.o.Store.ContactByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Contact{}, errBadLink
	}
	if err != nil {
		return store.Contact{}, err
	}
	if VerifyUnsubscribeToken(secret, token, c.ID, c.Email) != nil {
		return store.Contact{}, errBadLink
	}
	return c, nil
}

// maskEmail shows enough of an address for its owner to recognise it.
func maskEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 1 {
		return "your address"
	}
	return email[:1] + "•••" + email[at:]
}

type unsubscribeView struct {
	Email string
	Done  bool
	Error string
}

func (s *Server) renderUnsubscribe(w http.ResponseWriter, status int, v unsubscribeView) {
	s.pages.render(w, status, "unsubscribe", view{Title: "Unsubscribe", Data: v})
}

func (s *Server) unsubscribeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errBadLink):
		s.renderUnsubscribe(w, http.StatusBadRequest, unsubscribeView{Error: "This unsubscribe link is not valid."})
	default:
		s.logServerError(r, err)
		s.renderUnsubscribe(w, http.StatusInternalServerError, unsubscribeView{Error: "Something went wrong on our side. Please try again in a minute."})
	}
}

func (s *Server) alreadyUnsubscribed(cfg *config.Config, c store.Contact) bool {
	target := unsubscribeStage(cfg)
	return c.Suppressed && (target == "" || c.Stage == target)
}

// unsubscribePage asks for confirmation; it changes nothing.
func (s *Server) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !s.unsubLimit.allow(r) {
		s.renderUnsubscribe(w, http.StatusTooManyRequests, unsubscribeView{Error: "Too many requests. Please try again in a minute."})
		return
	}
	c, err := s.tokenContact(r.Context(), r.PathValue("token"))
	if err != nil {
		s.unsubscribeError(w, r, err)
		return
	}
	s.renderUnsubscribe(w, http.StatusOK, unsubscribeView{Email: maskEmail(c.Email), Done: s.alreadyUnsubscribed(s.cfg(), c)})
}

// unsubscribePost unsubscribes: from a mail client (RFC 8058) or from the
// confirmation page's button.
func (s *Server) unsubscribePost(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !s.unsubLimit.allow(r) {
		s.renderUnsubscribe(w, http.StatusTooManyRequests, unsubscribeView{Error: "Too many requests. Please try again in a minute."})
		return
	}
	c, err := s.tokenContact(r.Context(), r.PathValue("token"))
	if err != nil {
		s.unsubscribeError(w, r, err)
		return
	}
	if err := parseForm(r); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.renderUnsubscribe(w, http.StatusRequestEntityTooLarge, unsubscribeView{Error: "The request is too large."})
			return
		}
		s.renderUnsubscribe(w, http.StatusBadRequest, unsubscribeView{Error: "The request could not be read."})
		return
	}
	if r.PostForm.Get("List-Unsubscribe") != "One-Click" {
		s.renderUnsubscribe(w, http.StatusBadRequest, unsubscribeView{Error: "An unsubscribe request must carry List-Unsubscribe=One-Click."})
		return
	}
	if _, err := s.unsubscribe(r.Context(), c.ID); err != nil {
		s.unsubscribeError(w, r, err)
		return
	}
	s.renderUnsubscribe(w, http.StatusOK, unsubscribeView{Email: maskEmail(c.Email), Done: true})
}

// parseForm reads a urlencoded or multipart body (RFC 8058 allows both).
func parseForm(r *http.Request) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		return r.ParseMultipartForm(MaxBodyBytes)
	}
	return r.ParseForm()
}

// hookError marks a failure of the daemon's hook, as opposed to the
// store's.
type hookError struct{ err error }

func (e *hookError) Error() string { return e.err.Error() }
func (e *hookError) Unwrap() error { return e.err }

// unsubscribe suppresses the contact, moves it to the unsubscribed stage,
// stops its live enrollments and records the event, all in one
// transaction, then lets the daemon's hook act in it too. A contact already
// unsubscribed is left alone, so a second click changes nothing. It
// reports whether anything changed.
func (s *Server) unsubscribe(ctx context.Context, contactID int64) (changed bool, err error) {
	cfg := s.cfg()
	target := unsubscribeStage(cfg)
	var from, to string
	run := func(withHook bool) error {
		return s.o.Store.InTx(ctx, func(tx *store.Tx) error {
			changed = false
			c, err := tx.LockContact(ctx, contactID)
			if err != nil {
				return err
			}
			if s.alreadyUnsubscribed(cfg, c) {
				return nil
			}
			changed = true
			from, to = c.Stage, c.Stage
			if target != "" && c.Stage != target {
				if _, err := tx.SetStage(ctx, c.Email, target, "unsubscribed (one-click)"); err != nil {
					return err
				}
				to = target
			}
			if err := tx.Suppress(ctx, c.Email, store.SuppressAddress, "one-click unsubscribe"); err != nil {
				return err
			}
			live, err := tx.LiveEnrollments(ctx, c.ID)
			if err != nil {
				return err
			}
			for _, e := range live {
				if err := tx.StopEnrollment(ctx, e, store.EnrollmentStopped, "unsubscribed"); err != nil {
					return err
				}
			}
			if err := tx.AddEvent(ctx, c.ID, EventUnsubscribed, map[string]any{"source": "one-click", "stopped_enrollments": len(live)}); err != nil {
				return err
			}
			if withHook && s.o.Hooks.OnUnsubscribe != nil {
				c, err = tx.ContactByID(ctx, c.ID)
				if err != nil {
					return err
				}
				if err := s.o.Hooks.OnUnsubscribe(ctx, tx, c); err != nil {
					return &hookError{err}
				}
			}
			return nil
		})
	}
	err = run(true)
	var he *hookError
	if errors.As(err, &he) {
		// The unsubscribe is owed to the recipient whatever the rules do.
		s.log.Error("the unsubscribe rules failed; unsubscribing without them", "contact_id", contactID, "err", he.err)
		err = run(false)
	}
	if err != nil {
		return false, err
	}
	if changed {
		s.metrics.StageChanged(from, to)
	}
	return changed, nil
}
