package templates

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// lintSeeds is how many sample contacts Lint renders, so that a spin option without
// a call to action is found even when the first seed happens to skip it.
const lintSeeds = 8

// maxSubject is where mail clients start cutting subjects off.
const maxSubject = 78

// sampleData is a plausible contact used by Lint and by Load's trial render. Its
// clock is fixed: this package never reads the real one.
func sampleData(seed string) Data {
	return Data{
		Contact: Contact{
			Email: "sam@example.com", FirstName: "Sam", LastName: "Sample",
			Company: "Example Ltd", Stage: "lead",
			Birthday: time.Date(1990, 6, 15, 0, 0, 0, 0, time.UTC),
		},
		Sender: Sender{
			Name: "Alex Seller", Email: "alex@example.org", Company: "Seller Co",
			Signature: "Alex Seller\nSeller Co",
		},
		Sequence:       "sample",
		Step:           1,
		Now:            time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC),
		UnsubscribeURL: "https://example.com/u/sample",
		Seed:           seed,
	}
}

// Lint renders the template for sample contacts, with missing values filled by
// placeholders, and reports what would make a poor follow-up: no call to action
// (for any of the spin variants tried) or a subject long enough to be cut off.
func (s *Set) Lint(name string) []Warning {
	e, ok := s.entries[name]
	if !ok {
		return []Warning{{File: name, Line: 1, Col: 1, Code: "unknown", Msg: fmt.Sprintf("no template named %q", name)}}
	}
	var ws []Warning
	without := 0
	for i := range lintSeeds {
		r, _, err := s.render(e, sampleData(fmt.Sprintf("lint-%d", i)), true)
		if err != nil {
			w := Warning{File: e.file, Line: 1, Col: 1, Code: "render", Msg: err.Error()}
			if te, ok := err.(*Error); ok {
				w = Warning{File: te.File, Line: te.Line, Col: te.Col, Code: "render", Msg: te.Msg}
			}
			return append(ws, w)
		}
		if !r.HasCTA {
			without++
		}
		if i == 0 {
			if n := utf8.RuneCountInString(r.Subject); n > maxSubject {
				src := e.subject.src
				ws = append(ws, Warning{File: src.file, Line: src.line, Col: src.col, Code: "subject-long",
					Msg: fmt.Sprintf("subject is %d characters for a sample contact; clients cut it off after about %d", n, maxSubject)})
			}
		}
	}
	if without > 0 {
		src := e.body.src
		if e.html != nil {
			src = e.html.src
		}
		off := len(strings.TrimRight(src.text, " \t\n"))
		l, _ := src.at(off)
		msg := `no call to action: end with a question, a link, or {{ cta "Label" URL }}`
		if without < lintSeeds {
			msg += fmt.Sprintf(" (%d of %d spin variants tried have none)", without, lintSeeds)
		}
		ws = append(ws, Warning{File: src.file, Line: l, Col: 1, Code: "no-cta", Msg: msg})
	}
	return ws
}

// trialRender runs every template once with sample data at load time to catch
// what text/template only notices when it executes: misspelt fields
// (.Contact.FirstNmae) and html/template's context errors. Only errors that no data
// could fix are reported, so a template never fails to load because of the sample.
func (s *Set) trialRender() Errors {
	var errs Errors
	for _, n := range s.names {
		_, _, err := s.render(s.entries[n], sampleData("load"), true)
		te, ok := err.(*Error)
		if !ok {
			continue
		}
		if isStaticExecError(te) {
			errs = append(errs, *te)
		}
	}
	return errs
}

func isStaticExecError(e *Error) bool {
	if isHTMLTemplateError(e.Err) {
		return true
	}
	for _, s := range []string{"can't evaluate field", "is not a method but has arguments", "wrong number of args", "wrong type for value", "want a time"} {
		if strings.Contains(e.Msg, s) {
			return true
		}
	}
	return false
}
