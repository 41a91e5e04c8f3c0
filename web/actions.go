package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
)

// The changes the API and the dashboard both make, with the validation
// that gives the same message in both.

// ContactInput is a contact as POST /api/v1/contacts takes it. Empty fields
// leave the stored ones alone when the contact exists; custom fields are
// merged key by key.
type ContactInput struct {
	Email        string            `json:"email"`
	FirstName    string            `json:"first_name"`
	LastName     string            `json:"last_name"`
	Company      string            `json:"company"`
	Timezone     string            `json:"timezone"`
	Birthday     string            `json:"birthday"`
	Stage        string            `json:"stage"`
	OwnerAccount string            `json:"owner_account"`
	CustomFields map[string]string `json:"custom_fields"`
}

// validEmail applies the rule of the CSV import: a bare address (no
// display name) whose domain has a dot.
func validEmail(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", badField("email", "no email address")
	}
	addr, err := mail.ParseAddress(v)
	if err != nil || addr.Name != "" || !strings.Contains(addr.Address[strings.LastIndexByte(addr.Address, '@')+1:], ".") {
		return "", badField("email", "%q is not a valid email address", v)
	}
	return store.NormalizeEmail(addr.Address), nil
}

func checkStage(cfg *config.Config, field, stage string) error {
	if _, ok := cfg.Stage(stage); !ok {
		return badField(field, "unknown stage %q (stages: %s)", stage, strings.Join(cfg.StageNames(), ", "))
	}
	return nil
}

// oneLine folds line breaks: contact data ends up in mail headers, where CR
// and LF must never appear.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// contactFromInput validates in with the rules of the CSV import and
// returns the contact to upsert.
func contactFromInput(cfg *config.Config, in ContactInput) (store.Contact, error) {
	email, err := validEmail(in.Email)
	if err != nil {
		return store.Contact{}, err
	}
	c := store.Contact{
		Email:        email,
		FirstName:    oneLine(in.FirstName),
		LastName:     oneLine(in.LastName),
		Company:      oneLine(in.Company),
		Timezone:     strings.TrimSpace(in.Timezone),
		Birthday:     strings.TrimSpace(in.Birthday),
		Stage:        strings.TrimSpace(in.Stage),
		OwnerAccount: strings.TrimSpace(in.OwnerAccount),
	}
	if c.Timezone != "" {
		if _, err := config.LoadLocation(c.Timezone); err != nil {
			return c, badField("timezone", "%v", err)
		}
	}
	if c.Birthday != "" {
		if _, err := time.Parse(time.DateOnly, c.Birthday); err != nil {
			return c, badField("birthday", "bad birthday %q (write YYYY-MM-DD)", c.Birthday)
		}
	}
	if c.Stage != "" {
		if err := checkStage(cfg, "stage", c.Stage); err != nil {
			return c, err
		}
	}
	if c.OwnerAccount != "" {
		if _, ok := cfg.Account(c.OwnerAccount); !ok {
			return c, badField("owner_account", "unknown account %q", c.OwnerAccount)
		}
	}
	if len(in.CustomFields) > 0 {
		c.CustomFields = store.Fields{}
		for k, v := range in.CustomFields {
			key := strings.TrimSpace(k)
			if key == "" || len(key) > 64 || strings.ContainsAny(key, "\r\n") {
				return c, badField("custom_fields", "bad field name %q (1 to 64 characters on one line)", k)
			}
			c.CustomFields[key] = oneLine(v)
		}
	}
	return c, nil
}

// storeErr turns the store's sentinel errors into statuses, keeping their
// message (which names the contact, never a secret).
func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return errStatus(http.StatusNotFound, "%s", strings.TrimPrefix(err.Error(), "store: "))
	case errors.Is(err, store.ErrDuplicate):
		return errStatus(http.StatusConflict, "%s", strings.TrimPrefix(err.Error(), "store: "))
	}
	return err
}

// saveContact creates or updates a contact and reports whether it was
// created.
func (s *Server) saveContact(ctx context.Context, in ContactInput) (store.Contact, bool, error) {
	cfg := s.cfg()
	c, err := contactFromInput(cfg, in)
	if err != nil {
		return store.Contact{}, false, err
	}
	before, err := s.o.Store.ContactByEmail(ctx, c.Email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Contact{}, false, err
	}
	_, created, err := s.o.Store.UpsertContact(ctx, c)
	if err != nil {
		return store.Contact{}, false, storeErr(err)
	}
	after, err := s.o.Store.ContactByEmail(ctx, c.Email)
	if err != nil {
		return store.Contact{}, false, err
	}
	if !created && before.Stage != after.Stage {
		s.stageChanged(ctx, after, before.Stage, after.Stage, "upsert")
	}
	return after, created, nil
}

// stageChanged counts a stage change and tells the daemon; a failing hook
// is logged, since the change itself is already committed.
func (s *Server) stageChanged(ctx context.Context, c store.Contact, from, to, reason string) {
	s.metrics.StageChanged(from, to)
	if s.o.Hooks.OnStageChanged != nil {
		if err := s.o.Hooks.OnStageChanged(ctx, c, from, to, reason); err != nil {
			s.log.Error("the stage change rules failed", "contact", c.Email, "from", from, "to", to, "err", err)
		}
	}
}

// setStage moves a contact to stage, returning the stage it had.
func (s *Server) setStage(ctx context.Context, email, stage, reason string) (from string, err error) {
	stage = strings.TrimSpace(stage)
	if stage == "" {
		return "", badField("stage", "the stage is empty")
	}
	if err := checkStage(s.cfg(), "stage", stage); err != nil {
		return "", err
	}
	reason = oneLine(reason)
	if reason == "" {
		reason = "set by hand"
	}
	from, err = s.o.Store.SetStage(ctx, email, stage, reason)
	if err != nil {
		return "", storeErr(err)
	}
	if from != stage {
		c, err := s.o.Store.ContactByEmail(ctx, email)
		if err != nil {
			return from, err
		}
		s.stageChanged(ctx, c, from, stage, reason)
	}
	return from, nil
}

// maxNote bounds a note: the timeline shows notes whole.
const maxNote = 20000

func (s *Server) addNote(ctx context.Context, email, text string) error {
	text = strings.TrimSpace(text)
	if text == "" {
		return badField("text", "the note is empty")
	}
	if len(text) > maxNote {
		return badField("text", "the note is longer than %d bytes", maxNote)
	}
	return storeErr(s.o.Store.AddNote(ctx, email, text))
}

var decimalRE = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$`)

// recordPurchase records a purchase, then runs the daemon's purchase rules.
// A rule failure does not undo the purchase; it is returned apart so the
// caller can report it without inviting a retry that would count the
// purchase twice.
func (s *Server) recordPurchase(ctx context.Context, email, amount, note string) (purchases int, ruleErr, err error) {
	amount = strings.TrimSpace(amount)
	if amount != "" && !decimalRE.MatchString(amount) {
		return 0, nil, badField("amount", "%q is not a decimal number such as 49.90", amount)
	}
	note = strings.TrimSpace(note)
	if len(note) > maxNote {
		return 0, nil, badField("note", "the note is longer than %d bytes", maxNote)
	}
	purchases, err = s.o.Store.RecordPurchase(ctx, email, amount, note)
	if err != nil {
		return 0, nil, storeErr(err)
	}
	if s.o.Hooks.OnPurchase != nil {
		c, err := s.o.Store.ContactByEmail(ctx, email)
		if err != nil {
			return purchases, err, nil
		}
		if err := s.o.Hooks.OnPurchase(ctx, c); err != nil {
			s.log.Error("the purchase rules failed", "contact", c.Email, "err", err)
			return purchases, err, nil
		}
	}
	return purchases, nil, nil
}

// mailable reports whether a contact may be written to at all: not
// suppressed, and in an open or won stage.
func mailable(cfg *config.Config, c store.Contact) bool {
	if c.Suppressed {
		return false
	}
	st, ok := cfg.Stage(c.Stage)
	return !ok || (st.Type != config.StageLost && st.Type != config.StageSuppressed)
}

// enroll starts a contact on a sequence at the given time (now when zero).
func (s *Server) enroll(ctx context.Context, email, sequence string, at time.Time) (store.Enrollment, error) {
	cfg := s.cfg()
	sequence = strings.TrimSpace(sequence)
	seq, ok := cfg.Sequence(sequence)
	if !ok {
		names := make([]string, len(cfg.Sequences))
		for i, q := range cfg.Sequences {
			names[i] = q.Name
		}
		return store.Enrollment{}, badField("sequence", "unknown sequence %q (sequences: %s)", sequence, strings.Join(names, ", "))
	}
	c, err := s.o.Store.ContactByEmail(ctx, email)
	if err != nil {
		return store.Enrollment{}, storeErr(err)
	}
	if !mailable(cfg, c) {
		why := "stage " + c.Stage
		if c.Suppressed {
			why = "suppressed"
		}
		return store.Enrollment{}, errStatus(http.StatusConflict, "%s is never mailed (%s)", c.Email, why)
	}
	var account string
	if s.o.ChooseAccount != nil {
		if account, err = s.o.ChooseAccount(seq.Name, c.Email); err != nil {
			return store.Enrollment{}, fmt.Errorf("web: unable to choose the account of %s in %s: %w", c.Email, seq.Name, err)
		}
	} else if len(seq.Accounts) > 0 {
		account = seq.Accounts[0]
		if slices.Contains(seq.Accounts, c.OwnerAccount) {
			account = c.OwnerAccount
		}
	}
	if at.IsZero() {
		at = s.now()
	}
	e, err := s.o.Store.Enroll(ctx, c.Email, seq.Name, account, "", at)
	if err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			return store.Enrollment{}, errStatus(http.StatusConflict, "%s is already enrolled in %s", c.Email, seq.Name)
		}
		return store.Enrollment{}, storeErr(err)
	}
	return e, nil
}
