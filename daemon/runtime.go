// Package daemon wires followupd's loops together: the scheduler, the
// outbox senders, the inbox watchers and the HTTP server.
package daemon

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/replies"
	"github.com/followupd/followupd/sequences"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/templates"
	"github.com/followupd/followupd/web"
)

// Runtime is a loaded configuration turned into what the loops use: domain
// sequences and rules, the pipeline, parsed templates. It is immutable; a
// reload builds a new one.
type Runtime struct {
	Config    *config.Config
	Sequences map[string]*sequences.Sequence
	Rules     []sequences.Rule
	Pipeline  *sequences.Pipeline
	Templates *templates.Set
	// Replies are the intent rules: the built-in ones with the phrases of
	// replies.phrases added; nil when the config adds none.
	Replies  *replies.Rules
	accounts map[string]*config.Account
}

// NewRuntime compiles a validated configuration and loads its templates.
func NewRuntime(c *config.Config) (*Runtime, error) {
	set, err := templates.Load(os.DirFS(c.TemplatesDir()))
	if err != nil {
		return nil, err
	}
	rt := &Runtime{Config: c, Templates: set, Sequences: map[string]*sequences.Sequence{}, accounts: map[string]*config.Account{}}
	var stages []sequences.Stage
	for _, s := range c.Stages {
		stages = append(stages, sequences.Stage{Name: s.Name, Type: sequences.StageKind(s.Type)})
	}
	if rt.Pipeline, err = sequences.NewPipeline(stages); err != nil {
		return nil, err
	}
	for i := range c.Accounts {
		rt.accounts[c.Accounts[i].Name] = &c.Accounts[i]
	}
	for i := range c.Sequences {
		s := &c.Sequences[i]
		seq, err := compileSequence(c, s)
		if err != nil {
			return nil, err
		}
		rt.Sequences[s.Name] = seq
	}
	for _, r := range c.Rules {
		rt.Rules = append(rt.Rules, compileRule(r))
	}
	if rt.Replies, err = ReplyRules(c); err != nil {
		return nil, err
	}
	return rt, nil
}

// ReplyRules are the built-in intent rules with the configured phrases
// added, or nil when the configuration adds none.
func ReplyRules(c *config.Config) (*replies.Rules, error) {
	if len(c.Replies.Phrases) == 0 {
		return nil, nil
	}
	r := replies.DefaultRules()
	for _, p := range c.Replies.Phrases {
		r = r.With(replies.Intent(p.Intent), p.Lang, p.Phrases...)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%s: replies.phrases: %w", c.File, err)
	}
	return &r, nil
}

// Account returns the configured account with that name.
func (rt *Runtime) Account(name string) (*config.Account, bool) {
	a, ok := rt.accounts[name]
	return a, ok
}

// BlockedStages are the stages whose contacts are never mailed.
func (rt *Runtime) BlockedStages() []string {
	var out []string
	for _, s := range rt.Config.Stages {
		if !rt.Pipeline.Mailable(s.Name) {
			out = append(out, s.Name)
		}
	}
	return out
}

// UnsubscribeURL is the contact's signed one-click unsubscribe link.
func (rt *Runtime) UnsubscribeURL(c store.Contact) string {
	u := rt.Config.Unsubscribe
	if u.BaseURL == "" {
		return ""
	}
	return web.UnsubscribeURL(u.BaseURL, u.Secret.Value(), c.ID, c.Email)
}

func compileWindow(w config.SendWindow) sequences.Window {
	var out sequences.Window
	for _, d := range w.Days {
		out.Days[d] = true
	}
	out.Start, out.End = w.Hours.Start, w.Hours.End
	if len(w.Holidays) > 0 {
		out.Holidays = map[sequences.Date]bool{}
		for _, h := range w.Holidays {
			out.Holidays[sequences.DateOf(h.Time)] = true
		}
	}
	return out
}

func compileSequence(c *config.Config, s *config.Sequence) (*sequences.Sequence, error) {
	seq := &sequences.Sequence{Name: s.Name, Accounts: []string(s.Accounts)}
	win := config.SendWindow{}
	if s.Window != nil {
		win = *s.Window
	} else if a, ok := c.Account(s.Accounts[0]); ok {
		win = a.SendWindow
	}
	seq.Window = compileWindow(win)
	zone, err := sequences.ParseZoneMode(win.TimeZone, config.LoadLocation)
	if err != nil {
		return nil, fmt.Errorf("sequence %s: %w", s.Name, err)
	}
	seq.Zone = zone
	for _, t := range s.Triggers {
		seq.Triggers = append(seq.Triggers, sequences.Trigger{Manual: t.Manual, OnStage: t.OnStage, Anniversary: t.Anniversary})
	}
	for _, st := range s.Steps {
		seq.Steps = append(seq.Steps, sequences.Step{
			Template: st.Template,
			Variants: st.Variants,
			Delay:    sequences.Delay{Duration: st.Delay.Duration, BusinessDays: st.Delay.BusinessDays},
			Thread:   st.Thread,
			SkipIf:   compileConditions(st.SkipIf),
		})
	}
	seq.OnFinish = sequences.OnFinish{SetStage: s.OnFinish.SetStage, Enroll: s.OnFinish.Enroll}
	return seq, nil
}

func compileConditions(cs []config.Condition) []sequences.Condition {
	out := make([]sequences.Condition, len(cs))
	for i, c := range cs {
		out[i] = sequences.Condition{Field: c.Field, Equals: c.Equals, NotEquals: c.NotEquals, In: c.In, Empty: c.Empty}
	}
	return out
}

func compileRule(r config.Rule) sequences.Rule {
	out := sequences.Rule{
		Name: r.Name, On: r.On, Intent: r.Intent, BounceClass: r.BounceClass, Stage: r.Stage,
		MinPurchases: r.MinPurchases, Fields: compileConditions(r.Fields),
	}
	d := r.Do
	out.Do = sequences.Actions{SetStage: d.SetStage, Stop: d.Stop, Suppress: d.Suppress, Note: d.Note, Webhook: d.Webhook, Enroll: d.Enroll}
	if d.Pause != nil {
		out.Do.Pause = &sequences.Pause{Default: d.Pause.Default.Std()}
	}
	if d.Snooze != nil {
		out.Do.Snooze = &sequences.Snooze{Default: d.Snooze.Default.Std(), Enroll: d.Snooze.Enroll}
	}
	if d.Lead != nil {
		out.Do.Lead = &sequences.CreateLead{Stage: d.Lead.Stage, Enroll: d.Lead.Enroll}
	}
	return out
}

// contactFields is the lookup sequences use for conditions: the contact's own
// fields by their CSV names, then its custom fields.
func contactFields(c store.Contact) sequences.Fields {
	return func(name string) (string, bool) {
		switch strings.ToLower(name) {
		case "email":
			return c.Email, true
		case "first_name":
			return c.FirstName, true
		case "last_name":
			return c.LastName, true
		case "company":
			return c.Company, true
		case "timezone":
			return c.Timezone, true
		case "birthday":
			return c.Birthday, true
		case "stage":
			return c.Stage, true
		}
		v, ok := c.CustomFields[name]
		return v, ok
	}
}

// contactLocation is the contact's zone, nil when unknown or invalid.
func contactLocation(c store.Contact) *time.Location {
	if c.Timezone == "" {
		return nil
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return nil
	}
	return loc
}

// templateData is what a template sees for this contact and step.
func (rt *Runtime) templateData(c store.Contact, a *config.Account, seq string, step int, now time.Time) templates.Data {
	tc := templates.Contact{
		Email: c.Email, FirstName: c.FirstName, LastName: c.LastName, Company: c.Company,
		Stage: c.Stage, TimeZone: contactLocation(c), Fields: c.CustomFields,
	}
	if tc.TimeZone == nil {
		tc.TimeZone = a.TimeZone.Location
	}
	if c.Birthday != "" {
		if b, err := time.Parse(time.DateOnly, c.Birthday); err == nil {
			tc.Birthday = b
		}
	}
	return templates.Data{
		Contact:        tc,
		Sender:         templates.Sender{Name: a.FromName, Email: a.FromAddress},
		Sequence:       seq,
		Step:           step + 1,
		Now:            now,
		UnsubscribeURL: rt.UnsubscribeURL(c),
		Seed:           c.Email,
	}
}

// FirstDue is when a contact enrolling at start is due for the sequence's
// first step: its delay counts from the enrollment ("30d" waits a month),
// then the window applies. It is start when the window never opens, so the
// scheduler can report that.
func (rt *Runtime) FirstDue(seq *sequences.Sequence, c store.Contact, account string, start time.Time) time.Time {
	acctLoc := time.UTC
	if a, ok := rt.Account(account); ok {
		acctLoc = a.TimeZone.Location
	}
	due, ok := seq.DueAt(0, start, seq.Location(contactLocation(c), acctLoc))
	if !ok {
		return start
	}
	return due
}
