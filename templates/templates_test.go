package templates

import (
	"errors"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func sampleContact() Data {
	return Data{
		Contact: Contact{
			Email: "sam@example.com", FirstName: "Sam", LastName: "Sample",
			Company: "Example Ltd", Stage: "lead",
			Fields: map[string]string{"plan": "Pro", "calendar": "https://cal.example.com/sam"},
		},
		Sender:         Sender{Name: "Alex Seller", Email: "alex@example.org", Company: "Seller Co"},
		Sequence:       "onboarding",
		Step:           2,
		Now:            time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), // a Monday
		UnsubscribeURL: "https://example.com/u/sam",
		Seed:           "sam@example.com",
	}
}

// md builds a one-template set from a Markdown body with a plain subject.
func md(body string) fstest.MapFS {
	return fstest.MapFS{"t.md": {Data: []byte("---\nsubject: Hello\n---\n" + body)}}
}

// txt builds a one-template set from a plain-text body.
func txt(body string) fstest.MapFS {
	return fstest.MapFS{"t.txt": {Data: []byte("---\nsubject: Hello\n---\n" + body)}}
}

func mustLoad(t testing.TB, fsys fs.FS) *Set {
	t.Helper()
	s, err := Load(fsys)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

func mustRender(t testing.TB, s *Set, name string, d Data) Rendered {
	t.Helper()
	r, err := s.Render(name, d)
	if err != nil {
		t.Fatalf("Render(%q): %v", name, err)
	}
	return r
}

// htmlBody cuts the document wrapper off so assertions look at what the template
// produced.
func htmlBody(h string) string {
	const open = `color:#1f2937;">` + "\n"
	if i := strings.Index(h, open); i >= 0 {
		h = h[i+len(open):]
	}
	return strings.TrimSuffix(h, "\n</div>\n</body>\n</html>\n")
}

func TestLoadDirectory(t *testing.T) {
	s, err := Load(os.DirFS("testdata/basic"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Names(), []string{"followup", "plain", "welcome"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	if !s.Has("welcome") || s.Has("_draft") || s.Has("notes") {
		t.Fatal("Has: wrong answer for welcome, _draft or notes")
	}
	if _, err := s.Render("nope", sampleContact()); !errors.Is(err, ErrUnknownTemplate) {
		t.Fatalf("Render(nope) = %v, want ErrUnknownTemplate", err)
	}
}

func TestMarkdownTemplate(t *testing.T) {
	s, err := Load(os.DirFS("testdata/basic"))
	if err != nil {
		t.Fatal(err)
	}
	r := mustRender(t, s, "welcome", sampleContact())

	wantText := `Hi Sam,

I noticed Example Ltd is hiring. Here is our case study (https://example.com/case?a=1&b=2).

- Faster follow-ups
- Fewer dropped leads

Book 15 minutes: https://cal.example.com/sales

Are you free Wednesday?

Best,
Alex Seller

Unsubscribe (https://example.com/u/sam)
`
	if r.Text != wantText {
		t.Errorf("Text:\n%s\nwant:\n%s", r.Text, wantText)
	}
	wantHTML := `<p>Hi Sam,</p>
<p>I noticed <strong>Example Ltd</strong> is hiring. Here is <a href="https://example.com/case?a=1&amp;b=2">our case study</a>.</p>
<ul>
<li>Faster follow-ups</li>
<li><em>Fewer</em> dropped leads</li>
</ul>
<p><a href="https://cal.example.com/sales" style="display:inline-block;padding:10px 20px;background-color:#2563eb;color:#ffffff;text-decoration:none;border-radius:6px;font-weight:600">Book 15 minutes</a></p>
<p>Are you free Wednesday?</p>
<p>Best,<br>
Alex Seller</p>
<p><a href="https://example.com/u/sam">Unsubscribe</a></p>`
	if got := htmlBody(r.HTML); got != wantHTML {
		t.Errorf("HTML body:\n%s\nwant:\n%s", got, wantHTML)
	}
	if r.Subject != "Quick question for Example Ltd" && r.Subject != "An idea for Example Ltd" {
		t.Errorf("Subject = %q", r.Subject)
	}
	if r.Preheader != "A short note for Sam" || r.FromName != "Alex Seller at Seller Co" {
		t.Errorf("Preheader = %q, FromName = %q", r.Preheader, r.FromName)
	}
	if !r.HasCTA {
		t.Error("HasCTA = false")
	}
	for _, want := range []string{"<!DOCTYPE html>", `<meta charset="utf-8">`, "<title>" + r.Subject + "</title>",
		`<div style="display:none;`, ">A short note for Sam</div>"} {
		if !strings.Contains(r.HTML, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
}

func TestMarkdownConstructs(t *testing.T) {
	d := sampleContact()
	tests := []struct {
		name, body         string
		text               string // exact plain-text part
		htmlHas, htmlLacks []string
	}{
		{"emphasis dropped in text", "A *b* **c** ~~d~~ `e`",
			"A b c d e\n", []string{"<em>b</em>", "<strong>c</strong>", "<del>d</del>", "<code>e</code>"}, nil},
		{"link as text (url)", "See [the docs](https://x.example/a_b) now",
			"See the docs (https://x.example/a_b) now\n", []string{`<a href="https://x.example/a_b">the docs</a>`}, nil},
		{"autolink", "Go to <https://x.example/> now", "Go to https://x.example/ now\n", []string{`<a href="https://x.example/">`}, nil},
		{"mailto link with address text", "[sam@x.example](mailto:sam@x.example)", "sam@x.example\n", []string{`href="mailto:sam@x.example"`}, nil},
		{"ordered list keeps numbers", "3. a\n4. b\n", "3. a\n4. b\n", []string{`<ol start="3">`}, nil},
		{"nested list indents", "- a\n  - b\n- c\n", "- a\n  - b\n- c\n", []string{"<ul>"}, nil},
		{"heading and quote", "# Title\n\n> quoted\n> more\n", "Title\n\n> quoted\n> more\n", []string{"<h1>Title</h1>", "<blockquote>"}, nil},
		{"line breaks are kept", "Best,\nAlex\n", "Best,\nAlex\n", []string{"Best,<br>\nAlex"}, nil},
		{"author raw HTML is dropped", "Hi <b>x</b>\n\n<div>block</div>\n", "Hi x\n", []string{"raw HTML omitted"}, []string{"<b>", "<div>block"}},
		{"javascript link from author is neutralised", "[x](javascript:alert(1))", "x\n", []string{`<a href="">x</a>`}, []string{"javascript:"}},
		{"entities and escapes", `AT&amp;T \*not\* &copy;`, "AT&T *not* ©\n", []string{"AT&amp;T *not* ©"}, nil},
		{"code block", "```\nline <1>\n```\n", "line <1>\n", []string{"line &lt;1&gt;"}, nil},
		{"table", "| a | b |\n|---|---|\n| 1 | 2 |\n", "a | b\n1 | 2\n", []string{"<table>"}, nil},
		{"data in emphasis", "Hi **{{ .Contact.FirstName }}**", "Hi Sam\n", []string{"<strong>Sam</strong>"}, nil},
		{"data in link destination", "[Book]({{ field \"calendar\" }})", "Book (https://cal.example.com/sam)\n", []string{`href="https://cal.example.com/sam"`}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustLoad(t, md(tc.body))
			r := mustRender(t, s, "t", d)
			if r.Text != tc.text {
				t.Errorf("Text = %q, want %q", r.Text, tc.text)
			}
			for _, h := range tc.htmlHas {
				if !strings.Contains(r.HTML, h) {
					t.Errorf("HTML lacks %q:\n%s", h, htmlBody(r.HTML))
				}
			}
			for _, h := range tc.htmlLacks {
				if strings.Contains(r.HTML, h) {
					t.Errorf("HTML has %q:\n%s", h, htmlBody(r.HTML))
				}
			}
		})
	}
}
