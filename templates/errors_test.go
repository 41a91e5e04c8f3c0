package templates

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

func TestMissingData(t *testing.T) {
	tests := []struct {
		name  string
		files fstest.MapFS
		edit  func(*Data)
		want  string // the whole error text
	}{
		{"bare field",
			md("Hi,\n\nNice to meet you, {{ .Contact.FirstName }}.\n"),
			func(d *Data) { d.Contact.FirstName = "" },
			`t.md:6:22: missing data: .Contact.FirstName is empty; give a fallback with | default "…" or test it with {{ if }}`},
		{"field as a function argument",
			txt("Hello\n{{ upper .Contact.Company }}\n"),
			func(d *Data) { d.Contact.Company = "" },
			`t.txt:5:10: missing data: .Contact.Company is empty; give a fallback with | default "…" or test it with {{ if }}`},
		{"hole inside printf",
			txt(`{{ printf "%s at %s" .Contact.FirstName .Contact.Company }}`),
			func(d *Data) { d.Contact.Company = "" },
			`t.txt:4:41: missing data: .Contact.Company is empty; give a fallback with | default "…" or test it with {{ if }}`},
		{"custom field",
			md(`Your plan: {{ field "tier" }}`),
			nil,
			`t.md:4:15: missing data: {{field "tier"}} prints nothing; give a fallback with | default "…" or test it with {{ if }}`},
		{"custom field by path",
			md(`Your plan: {{ .Contact.Fields.tier }}`),
			nil,
			`t.md:4:15: missing data: .Contact.Fields.tier is empty; give a fallback with | default "…" or test it with {{ if }}`},
		{"field passed to cta",
			md(`{{ cta "Book" (field "cal") }}`),
			nil,
			`t.md:4:16: missing data: {{field "cal"}} prints nothing; give a fallback with | default "…" or test it with {{ if }}`},
		{"default whose fallback is empty too",
			txt(`{{ .Contact.FirstName | default .Contact.LastName }}`),
			func(d *Data) { d.Contact.FirstName, d.Contact.LastName = "", "" },
			`t.txt:4:4: missing data: {{.Contact.FirstName | default .Contact.LastName}} prints nothing; give a fallback with | default "…" or test it with {{ if }}`},
		{"in the subject",
			fstest.MapFS{"t.md": {Data: []byte("---\nsubject: Hi {{ .Contact.FirstName }}\n---\nx\n")}},
			func(d *Data) { d.Contact.FirstName = "" },
			`t.md:2:16: missing data: .Contact.FirstName is empty; give a fallback with | default "…" or test it with {{ if }}`},
		{"in a quoted subject",
			fstest.MapFS{"t.md": {Data: []byte("---\nsubject: \"{{ .Contact.FirstName }}, hi\"\n---\nx\n")}},
			func(d *Data) { d.Contact.FirstName = "" },
			`t.md:2:14: missing data: .Contact.FirstName is empty; give a fallback with | default "…" or test it with {{ if }}`},
		{"in the HTML part",
			fstest.MapFS{
				"t.txt":  {Data: []byte("---\nsubject: x\n---\nHi?\n")},
				"t.html": {Data: []byte("<p>Hi</p>\n<p>{{ .Sender.Signature }}</p>\n")},
			},
			nil,
			`t.html:2:7: missing data: .Sender.Signature is empty; give a fallback with | default "…" or test it with {{ if }}`},
		{"in a defined template",
			md("{{ define \"sig\" }}\n-- \n{{ .Name }}\n{{ end }}Hi\n\n{{ template \"sig\" .Sender }}\n"),
			func(d *Data) { d.Sender.Name = "" },
			`t.md:6:4: missing data: .Name is empty; give a fallback with | default "…" or test it with {{ if }}`},
		{"unsubscribe URL",
			md(`[Unsubscribe]({{ unsubscribeURL }})`),
			func(d *Data) { d.UnsubscribeURL = "" },
			`t.md:4:18: unsubscribeURL: the render data has no unsubscribe URL`},
		{"zero time",
			txt(`Happy birthday on {{ date "2 January" .Contact.Birthday }}`),
			nil,
			`t.txt:4:39: missing data: .Contact.Birthday is empty; give a fallback with | default "…" or test it with {{ if }}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustLoad(t, tc.files)
			d := sampleContact()
			if tc.edit != nil {
				tc.edit(&d)
			}
			_, err := s.Render("t", d)
			if err == nil {
				t.Fatal("Render succeeded")
			}
			if err.Error() != tc.want {
				t.Errorf("err = %s\nwant  %s", err, tc.want)
			}
			var te *Error
			if !errors.As(err, &te) {
				t.Errorf("err is %T, want *Error", err)
			}
			if strings.Contains(tc.want, "missing data") && !errors.Is(err, ErrMissingData) {
				t.Error("err does not wrap ErrMissingData")
			}
		})
	}
}

func TestEmptyFieldWithDefault(t *testing.T) {
	s := mustLoad(t, fstest.MapFS{"t.md": {Data: []byte(
		"---\nsubject: 'Hi {{ .Contact.FirstName | default \"there\" }}'\n---\n" +
			"Hi {{ .Contact.FirstName | default \"there\" }}, " +
			"{{ if .Contact.Company }}how is {{ .Contact.Company }}{{ else }}how are you{{ end }}?\n")}})
	d := sampleContact()
	d.Contact.FirstName, d.Contact.Company = "", ""
	r := mustRender(t, s, "t", d)
	if r.Subject != "Hi there" || r.Text != "Hi there, how are you?\n" {
		t.Errorf("Subject = %q, Text = %q", r.Subject, r.Text)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"unknown function after front matter",
			fstest.MapFS{"a.md": {Data: []byte("---\nsubject: x\npreheader: y\n---\nHello,\n\nHi {{ nope .Contact.FirstName }}\n")}},
			`a.md:7:7: function "nope" not defined`},
		{"unknown function in subject",
			fstest.MapFS{"a.md": {Data: []byte("---\nsubject: Hi {{ nope }}\n---\nx\n")}},
			`a.md:2:16: function "nope" not defined`},
		{"unclosed action",
			fstest.MapFS{"a.md": {Data: []byte("---\nsubject: x\n---\n\nHi {{ .Contact.FirstName \n")}},
			`a.md:5:4: unclosed action (missing }})`},
		{"missing end",
			fstest.MapFS{"a.txt": {Data: []byte("---\nsubject: x\n---\n{{ if .Contact.Company }}\nx\n")}},
			`a.txt:6:1: unexpected EOF`},
		{"misspelt field",
			fstest.MapFS{"a.md": {Data: []byte("---\nsubject: x\n---\n\nHi {{ .Contact.FirstNmae }}\n")}},
			`a.md:5:15: can't evaluate field FirstNmae in type templates.Contact`},
		{"wrong argument count",
			fstest.MapFS{"a.md": {Data: []byte("---\nsubject: x\n---\n{{ cta \"Go\" }}\n")}},
			`a.md:4:4: cta takes 2 arguments (cta LABEL URL), got 1`},
		{"wrong argument count in a pipeline",
			fstest.MapFS{"a.md": {Data: []byte("---\nsubject: x\n---\n{{ .Now | date }}\n")}},
			`a.md:4:11: date takes 2 arguments (date LAYOUT TIME), got 1`},
		{"undefined template",
			fstest.MapFS{"a.md": {Data: []byte("---\nsubject: x\n---\n{{ template \"sig\" }}\n")}},
			`a.md:4:13: no template named "sig" is defined in this file`},
		{"reserved name",
			fstest.MapFS{"a.md": {Data: []byte("---\nsubject: x\n---\n{{ _md \"x\" }}\n")}},
			`a.md:4:4: _md is reserved for internal use`},
		{"no front matter",
			fstest.MapFS{"a.md": {Data: []byte("Hi\n")}},
			`a.md:1:1: file must start with front matter: a --- line, subject: …, and a closing --- line`},
		{"unclosed front matter",
			fstest.MapFS{"a.md": {Data: []byte("---\nsubject: x\nHi\n")}},
			`a.md:1:1: front matter is not closed: add a --- line after it`},
		{"unquoted braces in YAML",
			fstest.MapFS{"a.md": {Data: []byte("---\nsubject: {{ .Contact.FirstName }}, hi\n---\nx\n")}},
			`a.md:2:11: front matter: could not find flow map content (in YAML a value starting with {{ must be quoted: subject: "{{ … }}")`},
		{"unknown key",
			fstest.MapFS{"a.md": {Data: []byte("---\nsubject: x\nfrom: y\n---\nx\n")}},
			`a.md:3:1: front matter: unknown key "from" (want subject, preheader or from_name)`},
		{"no subject",
			fstest.MapFS{"a.md": {Data: []byte("---\npreheader: x\n---\nx\n")}},
			`a.md:1:1: front matter has no subject`},
		{"HTML ends inside an attribute",
			fstest.MapFS{"a.txt": {Data: []byte("---\nsubject: x\n---\nx\n")}, "a.html": {Data: []byte("<p>\n<a href=\"{{ unsubscribeURL }}\n")}},
			`a.html:1:1: ends in a non-text context: {stateURL delimDoubleQuote urlPartNone jsCtxRegexp [] attrURL elementNone <nil>}`},
		{"front matter in the HTML file",
			fstest.MapFS{"a.txt": {Data: []byte("---\nsubject: x\n---\nx\n")}, "a.html": {Data: []byte("---\nsubject: y\n---\n<p>x</p>")}},
			`a.html:1:1: front matter belongs in a.txt; a.html holds only HTML`},
		{"both .md and .txt",
			fstest.MapFS{"a.md": {Data: []byte("---\nsubject: x\n---\nx\n")}, "a.txt": {Data: []byte("---\nsubject: x\n---\nx\n")}},
			`a.txt:1:1: a.md and a.txt both define "a"; keep one`},
		{"HTML without text",
			fstest.MapFS{"a.html": {Data: []byte("<p>x</p>")}},
			`a.html:1:1: a.html needs a.txt beside it for the subject and the plain-text part`},
		{"invalid UTF-8",
			fstest.MapFS{"a.md": {Data: []byte("---\nsubject: x\n---\n\xff\n")}},
			`a.md:1:1: file is not valid UTF-8`},
		{"several errors, sorted",
			fstest.MapFS{
				"b.md": {Data: []byte("---\nsubject: x\n---\n{{ nope }}\n")},
				"a.md": {Data: []byte("---\nsubject: '{{ cta \"x\" \"javascript:x\" }}'\n---\n{{ upper }}\n")},
			},
			"a.md:2:22: cta: URL \"javascript:x\" is not http, https or mailto\na.md:4:4: upper takes 1 argument (upper TEXT), got 0\nb.md:4:4: function \"nope\" not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Load(tc.files)
			if err == nil {
				t.Fatalf("Load succeeded: %v", s.Names())
			}
			if err.Error() != tc.want {
				t.Errorf("err = %s\nwant  %s", err, tc.want)
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Errorf("err is %T, want Errors", err)
			}
		})
	}
}

// hostile are contact values that try to become markup, links or headers.
var hostile = []string{
	`<script>alert(1)</script>`,
	`"><img src=x onerror=alert(1)>`,
	`[x](javascript:alert(1))`,
	`![x](https://evil.example/pixel.gif)`,
	`<https://evil.example/>`,
	`*bold* _it_ **b** ~~s~~ ` + "`code`",
	"# Heading\n\n- item\n\n    code\n> quote\n1. one\n---",
	`&lt;script&gt; &#60;script&#62; &amp;`,
	"\\<script>",
	`[a]: https://evil.example/ref`,
	"\uE0000\uE001 forged cta",
	"<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
	`javascript:alert(1)`,
}

func TestHostileContactData(t *testing.T) {
	// Each value is printed in text, in emphasis, as link text, in a link
	// destination and in a heading, which covers the contexts data lands in.
	mdBody := "# Hi {{ .Contact.FirstName }}\n\nHello {{ .Contact.FirstName }}, **{{ .Contact.Company }}**\n\n" +
		"[{{ .Contact.FirstName }}](https://x.example/{{ .Contact.LastName }})\n\n" +
		"- {{ .Contact.FirstName }}\n\n{{ .Contact.LastName }}\n\nWould {{ field \"day\" }} work?\n"
	htmlBody := `<p title="{{ .Contact.FirstName }}">Hi {{ .Contact.FirstName }}</p><a href="{{ .Contact.LastName }}">x</a><p>Would {{ field "day" }} work?</p>`
	s := mustLoad(t, fstest.MapFS{
		"m.md":   {Data: []byte("---\nsubject: Hi {{ .Contact.FirstName }}\npreheader: For {{ .Contact.Company }}\n---\n" + mdBody)},
		"h.txt":  {Data: []byte("---\nsubject: Hi {{ .Contact.FirstName }}\n---\nHi {{ .Contact.FirstName }}\n")},
		"h.html": {Data: []byte(htmlBody)},
	})
	for _, v := range hostile {
		d := sampleContact()
		d.Contact.FirstName, d.Contact.LastName, d.Contact.Company = v, v, v
		d.Contact.Fields["day"] = v
		for _, name := range []string{"m", "h"} {
			r, err := s.Render(name, d)
			if err != nil {
				t.Fatalf("%s with %q: %v", name, v, err)
			}
			lower := strings.ToLower(r.HTML)
			for _, bad := range []string{"<script", "<img", `href="javascript`, `href="https://evil`, "<em>", "<strong>b", "<del>", "<h1>heading", "<li>item", "<blockquote", "<pre>", "<code>", "<hr"} {
				if strings.Contains(lower, bad) {
					t.Errorf("%s with %q: HTML contains %q:\n%s", name, v, bad, htmlBody2(r.HTML))
				}
			}
			if strings.Count(r.HTML, `style="display:inline-block`) != 0 {
				t.Errorf("%s with %q: data forged a cta button", name, v)
			}
			if strings.ContainsAny(r.Subject+r.Preheader, "\r\n") {
				t.Errorf("%s with %q: header value spans lines: %q", name, v, r.Subject)
			}
		}
	}
	// The plain-text part shows the data as typed (on one paragraph).
	d := sampleContact()
	d.Contact.Fields["day"] = "Tuesday"
	d.Contact.FirstName = `*Sam* [x](javascript:alert(1)) <b>`
	r := mustRender(t, s, "m", d)
	if !strings.Contains(r.Text, "Hello *Sam* [x](javascript:alert(1)) <b>, Example Ltd") {
		t.Errorf("Text:\n%s", r.Text)
	}
	if !strings.Contains(r.HTML, "Hello *Sam* [x](javascript:alert(1)) &lt;b&gt;, <strong>Example Ltd</strong>") {
		t.Errorf("HTML:\n%s", r.HTML)
	}
}

func htmlBody2(h string) string { return htmlBody(h) }

func TestHeaderValuesAreOneLine(t *testing.T) {
	s := mustLoad(t, fstest.MapFS{"t.md": {Data: []byte(
		"---\nsubject: Hi {{ .Contact.FirstName }}\npreheader: \"{{ .Contact.Company }}\"\nfrom_name: '{{ .Sender.Name }}'\n---\nHi?\n")}})
	d := sampleContact()
	d.Contact.FirstName = "Eve\r\nBcc: x@y"
	d.Contact.Company = "A\rB\nC\u2028D\u0085E\tF\x00G"
	d.Sender.Name = "Alex\n\nSeller\r\n"
	r := mustRender(t, s, "t", d)
	if r.Subject != "Hi Eve Bcc: x@y" {
		t.Errorf("Subject = %q", r.Subject)
	}
	if r.Preheader != "A B C D E F G" {
		t.Errorf("Preheader = %q", r.Preheader)
	}
	if r.FromName != "Alex Seller" {
		t.Errorf("FromName = %q", r.FromName)
	}
}

// TestConcurrentRender runs renders of one Set in parallel; with -race it proves
// renders share nothing mutable.
func TestConcurrentRender(t *testing.T) {
	s := mustLoad(t, fstest.MapFS{
		"m.md":   {Data: []byte("---\nsubject: '{{ spin \"a|b\" }} {{ .Contact.FirstName }}'\n---\nHi **{{ .Contact.FirstName }}**\n\n{{ cta \"Go\" \"https://x.example/\" }}\n")},
		"h.txt":  {Data: []byte("---\nsubject: x\n---\n{{ .Contact.FirstName }}\n")},
		"h.html": {Data: []byte("<p>{{ .Contact.FirstName }} {{ cta \"Go\" \"https://x.example/\" }}</p>")},
	})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				d := sampleContact()
				d.Contact.FirstName = strings.Repeat("n", i+1)
				for _, name := range []string{"m", "h"} {
					r, err := s.Render(name, d)
					if err != nil {
						t.Error(err)
						return
					}
					if !strings.Contains(r.HTML, d.Contact.FirstName+"<") && !strings.Contains(r.HTML, d.Contact.FirstName+" ") {
						t.Errorf("render %d/%d of %s mixed data:\n%s", i, j, name, r.HTML)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func FuzzRender(f *testing.F) {
	seeds := [][2]string{
		{"Hi {{ .Contact.FirstName }},\n\nWould Tuesday work?\n", "Sam"},
		{"# {{ .Contact.FirstName | default \"there\" }}\n\n[x]({{ .Contact.FirstName }})\n", "<script>alert(1)</script>"},
		{"{{ cta .Contact.FirstName \"https://x.example/\" }}", "\"><img src=x onerror=alert(1)>"},
		{"- {{ upper .Contact.FirstName }}\n- *{{ .Contact.FirstName }}*", "[x](javascript:alert(1))"},
		{"{{ spin \"a|b|c\" }} `{{ .Contact.FirstName }}`", "Eve\r\nBcc: x@y"},
		{"<script>{{ .Contact.FirstName }}</script>", "*bold*"},
		{"{{ if .Contact.FirstName }}{{ .Contact.FirstName }}{{ end }}\n\n```\n{{ .Contact.FirstName }}\n```", "\uE0000\uE001"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	pair := mustLoad(f, fstest.MapFS{
		"h.txt":  {Data: []byte("---\nsubject: Hi {{ .Contact.FirstName }}\n---\nHi {{ .Contact.FirstName }}\n")},
		"h.html": {Data: []byte(`<p title="{{ .Contact.FirstName }}">Hi {{ .Contact.FirstName }}</p><a href="{{ .Contact.FirstName }}">x</a>`)},
	})
	f.Fuzz(func(t *testing.T, body, name string) {
		d := sampleContact()
		d.Contact.FirstName = name
		check := func(r Rendered) {
			if strings.ContainsAny(r.Subject, "\r\n") || strings.ContainsAny(r.Preheader, "\r\n") || strings.ContainsAny(r.FromName, "\r\n") {
				t.Fatalf("header value spans lines: %q", r.Subject)
			}
			// Markdown bodies cannot emit <script> at all (raw HTML is off), so
			// any <script here came from data.
			if strings.Contains(strings.ToLower(r.HTML), "<script") {
				t.Fatalf("HTML contains <script:\n%s", r.HTML)
			}
		}
		if r, err := pair.Render("h", d); err == nil {
			check(r)
		}
		s, err := Load(fstest.MapFS{"f.md": {Data: []byte("---\nsubject: Hi {{ .Contact.FirstName | default \"x\" }}\n---\n" + body)}})
		if err != nil {
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Load error is %T: %v", err, err)
			}
			return
		}
		r, err := s.Render("f", d)
		if err != nil {
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("Render error is %T: %v", err, err)
			}
			return
		}
		check(r)
		_ = s.Lint("f")
	})
}
