package templates

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

// perContactSet uses every function that reads the render's state (fields, cta,
// unsubscribeURL, date, _req via bare fields) in every part, so a function bound to
// the wrong render shows up in the output.
var perContactSet = fstest.MapFS{
	"m.md": {Data: []byte(`---
subject: '{{ .Contact.FirstName }} at {{ .Contact.Company | default "no company" }}'
preheader: 'For {{ field "tag" }}'
from_name: '{{ .Sender.Name }} for {{ .Contact.FirstName }}'
---
Hi {{ firstName .Contact.FirstName }}, {{ field "tag" | upper }}.

{{ cta (printf "Book %s" .Contact.FirstName) (field "calendar") }}

{{ cta "Read more" (printf "https://docs.example.com/%s" (field "tag")) }}

[Unsubscribe]({{ unsubscribeURL }})
`)},
	"p.txt": {Data: []byte(`---
subject: 'Hi {{ .Contact.FirstName }}'
---
{{ field "tag" }}: {{ cta (printf "Book %s" .Contact.FirstName) (field "calendar") }}
`)},
	"p.html": {Data: []byte(`<p>{{ field "tag" }}</p>{{ cta (printf "Book %s" .Contact.FirstName) (field "calendar") }}`)},
}

func perContactData(g int) Data {
	d := sampleContact()
	tag := fmt.Sprintf("tag%02d", g)
	d.Contact.FirstName = fmt.Sprintf("Name%02d", g)
	d.Contact.Company = fmt.Sprintf("Co%02d", g)
	d.Contact.Email = tag + "@example.com"
	d.Seed = ""
	d.Contact.Fields = map[string]string{"tag": tag, "calendar": "https://cal.example.com/" + tag}
	d.UnsubscribeURL = "https://example.com/u/" + tag
	return d
}

var contactTokenRE = regexp.MustCompile(`(?i)(name|co|tag)(\d\d)`)

// checkOnlyContact fails unless every per-contact token in the rendered message is
// contact g's.
func checkOnlyContact(t *testing.T, g int, name string, r Rendered) bool {
	t.Helper()
	want := fmt.Sprintf("%02d", g)
	for _, v := range []string{r.Subject, r.Preheader, r.FromName, r.Text, r.HTML} {
		for _, m := range contactTokenRE.FindAllStringSubmatch(v, -1) {
			if m[2] != want {
				t.Errorf("contact %s got %q in %s:\n%s", want, m[0], name, v)
				return false
			}
		}
	}
	return true
}

// TestConcurrentRenderKeepsContactsApart renders from many goroutines at once, each
// with its own contact, with failing renders mixed in, and checks that every
// message carries only its own contact's data and calls to action. Reused template
// clones whose functions pointed at another render's state would break this.
func TestConcurrentRenderKeepsContactsApart(t *testing.T) {
	s := mustLoad(t, perContactSet)
	const goroutines, renders = 16, 60
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := perContactData(g)
			tag := d.Contact.Fields["tag"]
			cal := d.Contact.Fields["calendar"]
			for j := range renders {
				// Every fifth render fails in the body's cta after the header parts
				// and the first cta have run.
				if j%5 == 4 {
					bad := d
					bad.Contact.Fields = map[string]string{"tag": tag, "calendar": "javascript:alert(1)"}
					if _, err := s.Render("m", bad); err == nil || !strings.Contains(err.Error(), "cta:") {
						t.Errorf("render with a bad calendar URL: err = %v", err)
						return
					}
					continue
				}
				dj := d
				if j%2 == 1 {
					dj.Contact.Company = ""
				}
				r, err := s.Render("m", dj)
				if err != nil {
					t.Error(err)
					return
				}
				if !checkOnlyContact(t, g, "m", r) {
					return
				}
				wantText := []string{
					"Hi " + d.Contact.FirstName + ", " + strings.ToUpper(tag) + ".",
					"Book " + d.Contact.FirstName + ": " + cal,
					"Read more: https://docs.example.com/" + tag,
					"Unsubscribe (https://example.com/u/" + tag + ")",
				}
				for _, w := range wantText {
					if !strings.Contains(r.Text, w) {
						t.Errorf("contact %d: text lacks %q:\n%s", g, w, r.Text)
						return
					}
				}
				if n := strings.Count(r.HTML, `style="display:inline-block;`); n != 2 {
					t.Errorf("contact %d: %d buttons in HTML, want 2:\n%s", g, n, r.HTML)
					return
				}
				if !strings.Contains(r.HTML, `<a href="`+cal+`"`) || !strings.Contains(r.HTML, ">Book "+d.Contact.FirstName+"</a>") {
					t.Errorf("contact %d: HTML lacks its own button:\n%s", g, r.HTML)
					return
				}
				wantSubj := d.Contact.FirstName + " at " + d.Contact.Company
				if dj.Contact.Company == "" {
					wantSubj = d.Contact.FirstName + " at no company"
				}
				if r.Subject != wantSubj || r.Preheader != "For "+tag || r.FromName != d.Sender.Name+" for "+d.Contact.FirstName {
					t.Errorf("contact %d: headers %q / %q / %q", g, r.Subject, r.Preheader, r.FromName)
					return
				}

				r, err = s.Render("p", d)
				if err != nil {
					t.Error(err)
					return
				}
				if !checkOnlyContact(t, g, "p", r) {
					return
				}
				if r.Text != tag+": Book "+d.Contact.FirstName+": "+cal+"\n" {
					t.Errorf("contact %d: pair text = %q", g, r.Text)
					return
				}
				if !strings.Contains(r.HTML, "<p>"+tag+"</p><a href=\""+cal+"\"") {
					t.Errorf("contact %d: pair HTML:\n%s", g, r.HTML)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestRenderAfterFailedRender checks that a render that stops part way leaves
// nothing behind: the next render of the same template, on the same goroutine and
// so most likely with whatever the failed one returned to the pools, is exactly
// what a fresh Set produces.
func TestRenderAfterFailedRender(t *testing.T) {
	good := perContactData(1)
	want := mustRender(t, mustLoad(t, perContactSet), "m", good)

	s := mustLoad(t, perContactSet)
	bad := perContactData(2)
	bad.Contact.Fields["calendar"] = "javascript:alert(1)"
	for range 3 {
		if _, err := s.Render("m", bad); err == nil {
			t.Fatal("render with a bad calendar URL did not fail")
		}
		if got := mustRender(t, s, "m", good); got != want {
			t.Fatalf("after a failed render got\n%+v\nwant\n%+v", got, want)
		}
	}
}

// TestPooledClonesDropState checks that a clone waiting for reuse does not keep the
// last render's data alive.
func TestPooledClonesDropState(t *testing.T) {
	s := mustLoad(t, perContactSet)
	mustRender(t, s, "p", perContactData(3))
	e := s.entries["p"]
	for _, p := range []*part{e.subject, e.body, e.html} {
		for m := range numModes {
			// The pool may hand back nothing (another P, a GC); what it does hand
			// back must be unbound.
			if bt, ok := p.pool[m].Get().(*boundTemplate); ok {
				if bt.bind.st != nil {
					t.Errorf("%s part, mode %d: pooled clone still points at a render", p.src.file, m)
				}
				p.pool[m].Put(bt)
			}
		}
	}
}
