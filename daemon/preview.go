package daemon

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/sequences"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/templates"
)

// PreviewStep is one step of a sequence as a contact would get it.
type PreviewStep struct {
	Step     int       `json:"step"`
	Template string    `json:"template"`
	At       time.Time `json:"at"`
	Zone     string    `json:"zone"`
	Skipped  bool      `json:"skipped"`
	Subject  string    `json:"subject,omitempty"`
	Text     string    `json:"text,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// SampleContact is the full contact `check` and `preview` render with when
// no real one is given; its zone is the account's.
func SampleContact(fields map[string]string) store.Contact {
	return store.Contact{
		ID: 1, Email: "alex.sample@example.com", FirstName: "Alex", LastName: "Sample",
		Company: "Sample Company", Birthday: "1985-06-15", Stage: "lead", CustomFields: fields,
	}
}

// Preview plans every step of a sequence for a contact enrolling at start
// and renders each one.
func (rt *Runtime) Preview(seqName string, c store.Contact, start time.Time) ([]PreviewStep, error) {
	seq, ok := rt.Sequences[seqName]
	if !ok {
		return nil, fmt.Errorf("unknown sequence %q", seqName)
	}
	a, _ := rt.Account(sequences.ChooseAccount(seq, c.Email))
	if a == nil {
		return nil, fmt.Errorf("sequence %s has no account", seqName)
	}
	loc := seq.Location(contactLocation(c), a.TimeZone.Location)
	fields := contactFields(c)
	var out []PreviewStep
	var first string
	for _, p := range sequences.Plan(seq, start, loc, fields) {
		ps := PreviewStep{Step: p.Index + 1, Template: p.Template, At: p.At.In(loc), Zone: loc.String(), Skipped: p.Skipped}
		if !p.Skipped {
			r, err := rt.Templates.Render(p.Template, rt.templateData(c, a, seq.Name, p.Index, p.At))
			if err != nil {
				ps.Error = err.Error()
			} else {
				ps.Subject, ps.Text = r.Subject, r.Text
				if first == "" {
					first = r.Subject
				} else if seq.Steps[p.Index].Thread == sequences.ThreadReply {
					ps.Subject = sequences.ReplySubject(first)
				}
			}
		}
		out = append(out, ps)
	}
	return out, nil
}

// CheckRender renders every step of every sequence against a full sample
// contact and against one with only an email, as `check` and `run` do
// before anything is sent. Steps a contact would skip are not rendered for
// it. Errors point at the template file.
func (rt *Runtime) CheckRender(customFields map[string]string) config.Errors {
	dir := rt.Config.TemplatesDir()
	full := SampleContact(customFields)
	bare := store.Contact{ID: 2, Email: "someone@example.com", Stage: full.Stage}
	seen := map[string]bool{}
	var errs config.Errors
	now := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	for _, sc := range rt.Config.Sequences {
		seq := rt.Sequences[sc.Name]
		a, _ := rt.Account(seq.Accounts[0])
		for i, step := range seq.Steps {
			names := append([]string{step.Template}, step.Variants...)
			for who, c := range map[string]store.Contact{"a full sample contact": full, "a contact with only an email": bare} {
				if seq.Skipped(i, contactFields(c)) {
					continue
				}
				for _, name := range names {
					key := name + "\x00" + who
					if seen[key] {
						continue
					}
					seen[key] = true
					if _, err := rt.Templates.Render(name, rt.templateData(c, a, seq.Name, i, now)); err != nil {
						errs = append(errs, templateError(dir, name, who, err))
					}
				}
			}
		}
	}
	return errs
}

func templateError(dir, name, who string, err error) config.Error {
	var te *templates.Error
	if errors.As(err, &te) {
		return config.Error{File: filepath.Join(dir, te.File), Pos: config.Pos{Line: te.Line, Col: te.Col}, Msg: te.Msg + " (rendering for " + who + ")"}
	}
	return config.Error{File: filepath.Join(dir, name), Msg: err.Error() + " (rendering for " + who + ")"}
}
