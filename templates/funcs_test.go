package templates

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"
	_ "time/tzdata" // zone tests must not depend on the machine's zoneinfo
)

func TestTextHTMLPair(t *testing.T) {
	s := mustLoad(t, os.DirFS("testdata/basic"))
	d := sampleContact()
	d.Contact.Company = `Tom & Jerry's <Diner>`
	r := mustRender(t, s, "followup", d)
	if r.Subject != "Re: onboarding, step 2" {
		t.Errorf("Subject = %q", r.Subject)
	}
	// The text part is plain text: no escaping of any kind.
	if !strings.Contains(r.Text, "on my note about Tom & Jerry's <Diner>.") {
		t.Errorf("Text:\n%s", r.Text)
	}
	if !strings.Contains(r.Text, "\n\nPick a time: https://cal.example.com/x\n\nAlex Seller\n") {
		t.Errorf("Text lacks the cta line:\n%s", r.Text)
	}
	// html/template escapes the data; the cta is a real button.
	if !strings.Contains(r.HTML, "Tom &amp; Jerry&#39;s &lt;Diner&gt;") {
		t.Errorf("HTML does not escape the company:\n%s", r.HTML)
	}
	if !strings.Contains(r.HTML, `<p><a href="https://cal.example.com/x" style="display:inline-block;`) {
		t.Errorf("HTML lacks the cta button:\n%s", r.HTML)
	}
	if !strings.HasPrefix(r.HTML, "<!DOCTYPE html>") || r.Preheader != "" || strings.Contains(r.HTML, "display:none") {
		t.Errorf("HTML document wrong:\n%s", r.HTML)
	}
	// The same spin position in both files picks the same option, so the two parts
	// of one message never disagree.
	for _, seed := range []string{"a", "b", "c", "d", "e", "f"} {
		d.Seed = seed
		r := mustRender(t, s, "followup", d)
		for _, opt := range []string{"Just following up", "Circling back", "A quick nudge"} {
			if strings.Contains(r.Text, opt) != strings.Contains(r.HTML, opt) {
				t.Errorf("seed %s: text and HTML disagree on %q", seed, opt)
			}
		}
	}

	plain := mustRender(t, s, "plain", d)
	if plain.HTML != "" {
		t.Errorf("a .txt without .html has an HTML part:\n%s", plain.HTML)
	}
	if !plain.HasCTA {
		t.Error("plain: a question in the last paragraph is a call to action")
	}
}

func TestFullHTMLDocumentKept(t *testing.T) {
	s := mustLoad(t, fstest.MapFS{
		"t.txt":  {Data: []byte("---\nsubject: Hi\npreheader: Peek\n---\nHi?\n")},
		"t.html": {Data: []byte("<!DOCTYPE html>\n<html><body class=\"x\"><p>Hi?</p></body></html>\n")},
	})
	r := mustRender(t, s, "t", sampleContact())
	want := "<!DOCTYPE html>\n<html><body class=\"x\">\n<div style=\"" + preheaderStyle + "\">Peek</div>\n<p>Hi?</p></body></html>\n"
	if r.HTML != want {
		t.Errorf("HTML = %q\nwant %q", r.HTML, want)
	}
}

func TestFunctions(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	d := sampleContact()
	tests := []struct {
		name, tmpl, want string
		edit             func(*Data)
	}{
		{"default keeps a value", `{{ .Contact.FirstName | default "there" }}`, "Sam", nil},
		{"default on empty", `{{ .Contact.FirstName | default "there" }}`, "there", func(d *Data) { d.Contact.FirstName = "" }},
		{"default on blank", `{{ .Contact.FirstName | default "there" }}`, "there", func(d *Data) { d.Contact.FirstName = "  " }},
		{"default, prefix form", `{{ default "there" .Contact.FirstName }}`, "there", func(d *Data) { d.Contact.FirstName = "" }},
		{"default chain", `{{ .Contact.FirstName | default .Contact.LastName | default "there" }}`, "Sample", func(d *Data) { d.Contact.FirstName = "" }},
		{"default on missing custom field", `{{ field "nope" | default "basic" }}`, "basic", nil},
		{"default on missing map key", `{{ .Contact.Fields.nope | default "basic" }}`, "basic", nil},
		{"default empty on purpose", `[{{ .Sender.Signature | default "" }}]`, "[]", nil},
		{"firstName", `{{ firstName "JANE van DOE" }}`, "Jane", nil},
		{"firstName honorific", `{{ firstName "Dr. jean-luc picard" }}`, "Jean-Luc", nil},
		{"firstName last-first", `{{ firstName "Doe, jane" }}`, "Jane", nil},
		{"firstName mixed case kept", `{{ firstName "DeShawn Smith" }}`, "DeShawn", nil},
		{"title", `{{ title "mary o'neil of ACME" }}`, "Mary O'Neil Of Acme", nil},
		{"upper lower", `{{ upper .Contact.FirstName }} {{ lower "ÄBC" }}`, "SAM äbc", nil},
		{"unsubscribeURL", `{{ unsubscribeURL }}`, "https://example.com/u/sam", nil},
		{"date Go layout", `{{ date "Monday 2 January" .Now }}`, "Monday 3 March", nil},
		{"date friendly layout", `{{ date "long" .Now }} / {{ .Now | date "iso" }}`, "Monday 3 March 2025 / 2025-03-03", nil},
		{"weekday", `{{ weekday .Now }}`, "Monday", nil},
		{"addDays", `{{ .Now | addDays 4 | weekday }}`, "Friday", nil},
		// 02:30 UTC on Tuesday is still Monday evening in New York.
		{"date in contact zone", `{{ date "day" .Now }}, {{ weekday .Now }}, {{ date "time" .Now }}`, "Monday 3 March, Monday, 21:30",
			func(d *Data) { d.Now = time.Date(2025, 3, 4, 2, 30, 0, 0, time.UTC); d.Contact.TimeZone = ny }},
		{"date without zone uses the clock's", `{{ date "day" .Now }}`, "Tuesday 4 March",
			func(d *Data) { d.Now = time.Date(2025, 3, 4, 2, 30, 0, 0, time.UTC) }},
		{"birthday keeps its calendar date", `{{ date "2 January" .Contact.Birthday }}`, "15 June",
			func(d *Data) {
				d.Contact.Birthday = time.Date(1990, 6, 15, 0, 0, 0, 0, time.UTC)
				d.Contact.TimeZone = ny
			}},
		{"spin single option", `{{ spin "only" }}`, "only", nil},
		{"field", `{{ field "plan" }}`, "Pro", nil},
		{"custom field by path", `{{ .Contact.Fields.plan }}`, "Pro", nil},
		{"Contact.Name", `{{ .Contact.Name }}`, "Sam Sample", nil},
		{"cta text", `{{ cta "Book a call" "https://cal.example.com/x" }}`, "Book a call: https://cal.example.com/x", nil},
		{"cta text question label", `{{ cta "Free Tuesday?" "mailto:alex@example.org?subject=Tuesday" }}`, "Free Tuesday? mailto:alex@example.org?subject=Tuesday", nil},
		{"if tests emptiness without failing", `{{ if .Contact.Company }}at {{ .Contact.Company }}{{ else }}hi{{ end }}`, "hi", func(d *Data) { d.Contact.Company = "" }},
		{"with", `{{ with .Contact.Company }}at {{ . }}{{ end }}`, "at Example Ltd", nil},
		{"step and sequence", `{{ .Sequence }} {{ .Step }}`, "onboarding 2", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustLoad(t, txt(tc.tmpl+"\n"))
			dd := d
			dd.Contact.Fields = map[string]string{"plan": "Pro"}
			if tc.edit != nil {
				tc.edit(&dd)
			}
			r := mustRender(t, s, "t", dd)
			if got := strings.TrimSuffix(r.Text, "\n"); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCTA(t *testing.T) {
	t.Run("markdown button and text", func(t *testing.T) {
		s := mustLoad(t, md(`{{ cta (printf "Meet %s" .Sender.Name) (field "calendar") }}`+"\n"))
		d := sampleContact()
		d.Sender.Name = `Al "<b>"`
		d.Contact.Fields["calendar"] = "https://cal.example.com/a?b=1&c=<2>"
		r := mustRender(t, s, "t", d)
		want := `<p><a href="https://cal.example.com/a?b=1&amp;c=%3C2%3E" style="display:inline-block;padding:10px 20px;background-color:#2563eb;color:#ffffff;text-decoration:none;border-radius:6px;font-weight:600">Meet Al &#34;&lt;b&gt;&#34;</a></p>`
		if got := htmlBody(r.HTML); got != want {
			t.Errorf("HTML:\n%s\nwant:\n%s", got, want)
		}
		if r.Text != "Meet Al \"<b>\": https://cal.example.com/a?b=1&c=%3C2%3E\n" {
			t.Errorf("Text = %q", r.Text)
		}
		if !r.HasCTA {
			t.Error("HasCTA = false")
		}
	})
	t.Run("literal javascript URL is a load error", func(t *testing.T) {
		_, err := Load(md("Hi\n\n{{ cta \"Go\" \"javascript:alert(1)\" }}\n"))
		if err == nil || !strings.Contains(err.Error(), "t.md:6:13: cta: URL \"javascript:alert(1)\" is not http, https or mailto") {
			t.Fatalf("err = %v", err)
		}
	})
	for _, bad := range []string{"javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "data:text/html,<script>", "vbscript:x", "/relative", "https://", "mailto:", "https://x.example/a b", "ftp://x.example/"} {
		t.Run("refused at render: "+bad, func(t *testing.T) {
			for _, fs := range []fstest.MapFS{
				md(`{{ cta "Go" (field "url") }}`),
				txt(`{{ cta "Go" (field "url") }}`),
				{"t.txt": {Data: []byte("---\nsubject: x\n---\nx?\n")}, "t.html": {Data: []byte(`{{ cta "Go" (field "url") }}`)}},
			} {
				s := mustLoad(t, fs)
				d := sampleContact()
				d.Contact.Fields["url"] = bad
				_, err := s.Render("t", d)
				if err == nil || !strings.Contains(err.Error(), "cta:") {
					t.Errorf("Render with %q: err = %v", bad, err)
				}
			}
		})
	}
}

func TestSpin(t *testing.T) {
	const tmpl = `{{ spin "alpha|beta|gamma" }} {{ spin "alpha|beta|gamma" }}`
	s := mustLoad(t, txt(tmpl+"\n"))
	d := sampleContact()

	first := mustRender(t, s, "t", d).Text
	for range 20 {
		if got := mustRender(t, s, "t", d).Text; got != first {
			t.Fatalf("same seed gave %q then %q", first, got)
		}
	}
	// A fresh Load of the same files (another process, another day) agrees too.
	if got := mustRender(t, mustLoad(t, txt(tmpl+"\n")), "t", d).Text; got != first {
		t.Fatalf("reloaded set gave %q, want %q", got, first)
	}

	seen := map[string]int{}
	differ := 0
	for i := range 1000 {
		d.Seed = fmt.Sprintf("contact-%d@example.com", i)
		f := strings.Fields(mustRender(t, s, "t", d).Text)
		seen[f[0]]++
		if f[0] != f[1] {
			differ++
		}
	}
	for _, opt := range []string{"alpha", "beta", "gamma"} {
		if seen[opt] < 250 {
			t.Errorf("option %q chosen %d times in 1000, want a fair share", opt, seen[opt])
		}
	}
	// Two spins at different positions choose independently.
	if differ < 500 {
		t.Errorf("two spin positions agreed in %d of 1000 renders", 1000-differ)
	}

	// The template name is part of the key: another template spreads differently.
	d.Seed = "x"
	s2 := mustLoad(t, fstest.MapFS{
		"a.txt": {Data: []byte("---\nsubject: s\n---\n{{ spin \"1|2|3|4|5|6|7|8|9|10\" }}\n")},
		"b.txt": {Data: []byte("---\nsubject: s\n---\n{{ spin \"1|2|3|4|5|6|7|8|9|10\" }}\n")},
	})
	same := 0
	for i := range 100 {
		d.Seed = fmt.Sprint(i)
		if mustRender(t, s2, "a", d).Text == mustRender(t, s2, "b", d).Text {
			same++
		}
	}
	if same > 30 {
		t.Errorf("templates a and b agreed on %d of 100 seeds", same)
	}

	// Without a seed the contact's e-mail is used, so choices still differ.
	d.Seed = ""
	d.Contact.Email = "Sam@Example.com"
	a := mustRender(t, s, "t", d).Text
	d.Seed = "sam@example.com"
	if b := mustRender(t, s, "t", d).Text; a != b {
		t.Errorf("empty seed: %q, seed=email: %q", a, b)
	}
}

func TestHasCTA(t *testing.T) {
	tests := []struct {
		name string
		body string
		want bool
	}{
		{"question last", "Hi.\n\nWould Tuesday work?\n", true},
		{"question before sign-off", "Hi.\n\nWould Tuesday work?\n\nBest,\nAlex Seller\n", true},
		{"question before name only", "Hi.\n\nWould Tuesday work?\n\nAlex\n", true},
		{"question before unsubscribe footer", "Would Tuesday work?\n\nThanks!\n\n[Unsubscribe]({{ unsubscribeURL }})\n", true},
		{"question early only", "Did you see my note?\n\nI will write again next week.\n\nBest,\nAlex\n", false},
		{"question mark in a URL is not a question", "Read https://x.example/?a=1 sometime.\n", true}, // the link itself counts
		{"link", "Read [this](https://x.example/).\n\nBest,\nAlex\n", true},
		{"unsubscribe link alone", "Just saying hi.\n\n[Unsubscribe]({{ unsubscribeURL }})\n", false},
		{"cta", "Hi.\n\n{{ cta \"Book\" \"https://cal.example.com/\" }}\n\nCheers,\nAlex\n", true},
		{"nothing", "Just saying hi.\n\nBest,\nAlex\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, mustLoad(t, md(tc.body)), "t", sampleContact())
			if r.HasCTA != tc.want {
				t.Errorf("HasCTA = %v, want %v; text:\n%s", r.HasCTA, tc.want, r.Text)
			}
		})
	}
	// A URL's query string is not a question: only the link makes this one count.
	if endsWithQuestion("See https://x.example/?a=1 sometime.\n", Sender{}) {
		t.Error("endsWithQuestion counted a ? inside a URL")
	}
}

func TestLint(t *testing.T) {
	s := mustLoad(t, fstest.MapFS{
		"good.md":  {Data: []byte("---\nsubject: Hi\n---\nHi {{ .Contact.FirstName }},\n\nWould {{ field \"day\" }} work?\n")},
		"bad.md":   {Data: []byte("---\nsubject: Hi\n---\nHi,\n\nJust saying hello.\n\nBest,\nAlex\n")},
		"some.md":  {Data: []byte("---\nsubject: Hi\n---\nHi,\n\n{{ spin \"Free on Tuesday?|Talk soon.\" }}\n")},
		"long.txt": {Data: []byte("---\nsubject: " + strings.Repeat("very ", 20) + "long\n---\nCall me?\n")},
	})
	if ws := s.Lint("good"); len(ws) != 0 {
		t.Errorf("good: %v", ws)
	}
	ws := s.Lint("bad")
	if len(ws) != 1 || ws[0].Code != "no-cta" || ws[0].File != "bad.md" || ws[0].Line != 9 {
		t.Errorf("bad: %v", ws)
	}
	ws = s.Lint("some")
	if len(ws) != 1 || ws[0].Code != "no-cta" || !strings.Contains(ws[0].Msg, "spin variants") {
		t.Errorf("some: %v", ws)
	}
	ws = s.Lint("long")
	if len(ws) != 1 || ws[0].Code != "subject-long" || ws[0].Line != 2 || ws[0].Col != 10 {
		t.Errorf("long: %v", ws)
	}
	if ws := s.Lint("nope"); len(ws) != 1 || ws[0].Code != "unknown" {
		t.Errorf("nope: %v", ws)
	}
}

// TestFuncNamesMatchImplementation keeps the documented list, the arity table and
// the function map in step.
func TestFuncNamesMatchImplementation(t *testing.T) {
	impl := (&binding{}).funcs(modeText)
	for _, n := range FuncNames() {
		if _, ok := impl[n]; !ok {
			t.Errorf("%s is listed but not implemented", n)
		}
		if _, ok := funcUsage[n]; !ok {
			t.Errorf("%s has no usage text", n)
		}
	}
	for n := range impl {
		if _, ok := funcArity[n]; !ok && !strings.HasPrefix(n, "_") {
			t.Errorf("%s is implemented but not listed", n)
		}
	}
}

func BenchmarkRenderMarkdown(b *testing.B) {
	s := mustLoad(b, os.DirFS("testdata/basic"))
	d := sampleContact()
	for b.Loop() {
		if _, err := s.Render("welcome", d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderHTMLPair(b *testing.B) {
	s := mustLoad(b, os.DirFS("testdata/basic"))
	d := sampleContact()
	for b.Loop() {
		if _, err := s.Render("followup", d); err != nil {
			b.Fatal(err)
		}
	}
}

// sendPathTemplate is shaped like a real campaign step: header fields in the front
// matter, contact fields with fallbacks, a custom field and one cta, so the
// benchmarks below weigh what the daemon pays per outgoing mail.
var sendPathTemplate = fstest.MapFS{"step.md": {Data: []byte(`---
subject: '{{ .Contact.FirstName | default "Hi" }}, a quick idea for {{ .Contact.Company | default "your team" }}'
preheader: 'Three minutes on {{ field "plan" | default "your plan" }}'
from_name: '{{ .Sender.Name }}'
---
Hi {{ firstName .Contact.FirstName | default "there" }},

Thanks for trying **{{ field "plan" | default "the trial" }}** at {{ .Contact.Company | default "your company" }}.
Most teams your size get the most out of it once follow-ups run on their own.

{{ cta "Book 15 minutes" (field "calendar" | default "https://cal.example.com/sales") }}

Would {{ .Now | addDays 2 | weekday }} work?

Best,
{{ .Sender.Name }}

[Unsubscribe]({{ unsubscribeURL }})
`)}}

func BenchmarkRenderSendPath(b *testing.B) {
	s := mustLoad(b, sendPathTemplate)
	d := sampleContact()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Render("step", d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderSendPathParallel is the daemon's shape: many senders rendering
// from one Set at once.
func BenchmarkRenderSendPathParallel(b *testing.B) {
	s := mustLoad(b, sendPathTemplate)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := sampleContact()
		for pb.Next() {
			if _, err := s.Render("step", d); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
