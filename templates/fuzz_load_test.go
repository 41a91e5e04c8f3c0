package templates_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/followupd/followupd/templates"
)

// FuzzLoadTemplates feeds arbitrary bytes, front matter included, to
// templates.Load as a Markdown template and as a text+HTML pair. FuzzRender
// fuzzes only the body after a fixed front matter; this one reaches the
// front-matter parser and the file splitter. Load and Render must never
// panic, fail only with the package's error types, and never render a
// header value that spans lines.
func FuzzLoadTemplates(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "basic", "*"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/basic: %v", err)
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, []byte(`<p>Hi {{ .Contact.FirstName | default "there" }}</p>`))
	}
	f.Add([]byte("---\nsubject: \"a\\r\\nBcc: x@y\"\nfrom_name: |\n  Eve\n  Bcc: x@y\n---\nBody\n"), []byte("<p>{{ .Contact.FirstName }}</p>"))
	f.Add([]byte("---\nsubject: {{ \n---\n"), []byte("{{ end }}"))
	f.Add([]byte("---\n---\n"), []byte(""))
	data := templates.Data{
		Contact: templates.Contact{Email: "sam@example.com", FirstName: "Sam\r\nBcc: x@y", Company: "Example Ltd", Stage: "lead",
			Fields: map[string]string{"plan": "Pro"}},
		Sender:         templates.Sender{Name: "Alex Seller", Email: "alex@example.org"},
		Sequence:       "onboarding",
		Step:           1,
		Now:            time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC),
		UnsubscribeURL: "https://example.com/u/sam",
	}
	f.Fuzz(func(t *testing.T, body, html []byte) {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("panic on %q / %q: %v\n%s", body, html, p, debug.Stack())
			}
		}()
		s, err := templates.Load(fstest.MapFS{
			"m.md":   {Data: body},
			"p.txt":  {Data: body},
			"p.html": {Data: html},
		})
		if err != nil {
			var es templates.Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("Load error is %T: %v", err, err)
			}
			for _, e := range es {
				if e.File == "" || e.Line < 0 || e.Col < 0 || strings.ContainsAny(e.File, "\r\n") {
					t.Errorf("error without a place: %+v", e)
				}
			}
			return
		}
		for _, name := range s.Names() {
			r, err := s.Render(name, data)
			if err != nil {
				var te *templates.Error
				if !errors.As(err, &te) {
					t.Fatalf("Render(%s) error is %T: %v", name, err, err)
				}
				continue
			}
			for k, v := range map[string]string{"subject": r.Subject, "preheader": r.Preheader, "from_name": r.FromName} {
				if strings.ContainsAny(v, "\r\n") {
					t.Errorf("%s of %s spans lines: %q", k, name, v)
				}
			}
			_ = s.Lint(name)
		}
	})
}
