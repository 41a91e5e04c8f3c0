package templates

import (
	"errors"
	"fmt"
	"html"
	htmltemplate "html/template"
	"regexp"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxOutput bounds each rendered part. A mail is a few kilobytes; a template that
// loops its way past this is broken, and stopping it keeps one bad template from
// eating the daemon's memory.
const maxOutput = 1 << 20

var errTooLarge = errors.New("output is larger than 1 MiB")

// Render renders the template called name for one contact. Errors are *Error with
// the file, line and column of the failing template code; a missing value wraps
// ErrMissingData. An unknown name wraps ErrUnknownTemplate.
func (s *Set) Render(name string, d Data) (Rendered, error) {
	e, ok := s.entries[name]
	if !ok {
		return Rendered{}, fmt.Errorf("templates: %w %q", ErrUnknownTemplate, name)
	}
	r, _, err := s.render(e, d, false)
	if err != nil {
		return Rendered{}, err
	}
	return r, nil
}

func (s *Set) render(e *entry, d Data, lenient bool) (Rendered, *state, error) {
	loc := d.Contact.TimeZone
	if loc == nil {
		loc = d.Now.Location()
	}
	if b := d.Contact.Birthday; !b.IsZero() {
		// Noon keeps the calendar date whatever zone it is printed in.
		d.Contact.Birthday = time.Date(b.Year(), b.Month(), b.Day(), 12, 0, 0, 0, loc)
	}
	if d.Seed == "" {
		d.Seed = strings.ToLower(strings.TrimSpace(d.Contact.Email))
	}
	st := &state{data: d, loc: loc, entry: e.name, lenient: lenient}
	var r Rendered
	subj, err := e.subject.exec(st, modeText)
	if err != nil {
		return r, st, err
	}
	r.Subject = oneLine(subj)
	if r.Subject == "" && !lenient {
		return r, st, &Error{File: e.subject.src.file, Line: e.subject.src.line, Col: e.subject.src.col, Msg: "subject renders empty", Err: ErrMissingData}
	}
	if e.preheader != nil {
		v, err := e.preheader.exec(st, modeText)
		if err != nil {
			return r, st, err
		}
		r.Preheader = oneLine(v)
	}
	if e.fromName != nil {
		v, err := e.fromName.exec(st, modeText)
		if err != nil {
			return r, st, err
		}
		r.FromName = oneLine(v)
	}
	if e.markdown {
		src, err := e.body.exec(st, modeMD)
		if err != nil {
			return r, st, err
		}
		h, t, err := convertMarkdown(s.md, []byte(src), st.ctas)
		if err != nil {
			return r, st, &Error{File: e.file, Line: e.body.src.line, Col: 1, Msg: err.Error(), Err: err}
		}
		r.Text = normText(t)
		r.HTML = document(r.Subject, r.Preheader, h)
	} else {
		t, err := e.body.exec(st, modeText)
		if err != nil {
			return r, st, err
		}
		r.Text = normText(t)
		if e.html != nil {
			h, err := e.html.exec(st, modeHTML)
			if err != nil {
				return r, st, err
			}
			r.HTML = document(r.Subject, r.Preheader, h)
		}
	}
	r.HasCTA = len(st.ctas) > 0 || hasLink(r.Text, r.HTML, d.UnsubscribeURL) || endsWithQuestion(r.Text, d.Sender)
	return r, st, nil
}

func (p *part) exec(st *state, m mode) (string, error) {
	if p.html != nil {
		m = modeHTML
	}
	bt, err := p.take(m)
	if err != nil {
		return "", err
	}
	bt.bind.st = st
	reuse := false
	defer func() {
		// Cleared even on a panic, so a waiting clone never keeps a finished
		// render's data alive. Only a clean run earns a clone its way back:
		// html/template makes an escaping failure permanent in the clone, and
		// failures are too rare for the cost of a fresh clone to matter.
		bt.bind.st = nil
		if reuse {
			p.pool[m].Put(bt)
		}
	}()
	w := &limitWriter{}
	if bt.html != nil {
		err = bt.html.Execute(w, st.data)
	} else {
		err = bt.text.Execute(w, st.data)
	}
	if err != nil {
		return "", p.execError(err)
	}
	reuse = true
	return w.b.String(), nil
}

// boundTemplate is a clone of a part's template with its functions bound to bind.
type boundTemplate struct {
	bind binding
	text *texttemplate.Template
	html *htmltemplate.Template
}

// take returns a clone for mode m that no other render is using, making one when
// the pool has none to spare.
func (p *part) take(m mode) (*boundTemplate, error) {
	if bt, ok := p.pool[m].Get().(*boundTemplate); ok {
		return bt, nil
	}
	bt := &boundTemplate{}
	if p.html != nil {
		// Always from the parsed original: html/template will not clone a template
		// that has executed, and pooled clones have.
		c, err := p.html.Clone()
		if err != nil {
			return nil, err
		}
		bt.html = c.Funcs(bt.bind.funcs(m))
	} else {
		c, err := p.text.Clone()
		if err != nil {
			return nil, err
		}
		bt.text = c.Funcs(bt.bind.funcs(m))
	}
	return bt, nil
}

func (p *part) execError(err error) *Error {
	var he *htmltemplate.Error
	if errors.As(err, &he) {
		// Not he.Error(): it formats positions through the node's parse tree, which
		// the nodes this package inserts do not have.
		var e Error
		if he.Node != nil {
			e = p.src.errAt(int(he.Node.Position()), he.Description)
		} else {
			_, start := p.src.lineText(max(he.Line, 1))
			e = p.src.errAt(start, he.Description)
		}
		e.Err = err
		return &e
	}
	e := p.src.fromTemplateError(err)
	var me *missingError
	switch {
	case errors.As(err, &me):
		e.Msg = "missing data: " + me.Error() + `; give a fallback with | default "…" or test it with {{ if }}`
		e.Err = ErrMissingData
	case errors.Is(err, errTooLarge):
		e.Msg = errTooLarge.Error()
	}
	return &e
}

type limitWriter struct{ b strings.Builder }

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > maxOutput {
		return 0, errTooLarge
	}
	return w.b.Write(p)
}

// oneLine makes a value safe for a header: invalid UTF-8 is replaced and every run
// of whitespace or control characters (CR, LF, NEL, U+2028, …) becomes one space,
// so data can never start a new header line.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	gap := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == markOpen || r == markClose {
			gap = true
			continue
		}
		if gap && b.Len() > 0 {
			b.WriteByte(' ')
		}
		gap = false
		b.WriteRune(r)
	}
	return b.String()
}

var blankRunRE = regexp.MustCompile(`\n{3,}`)

// normText tidies the plain-text part: LF endings, no trailing blanks (except the
// "-- " signature separator, whose space is the standard), at most one empty line
// in a row (conditionals leave gaps), one final newline.
func normText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "-- " {
			lines[i] = strings.TrimRight(l, " \t")
		}
	}
	s = blankRunRE.ReplaceAllString(strings.Join(lines, "\n"), "\n\n")
	s = strings.Trim(s, "\n")
	if s == "" {
		return ""
	}
	return s + "\n"
}

var fullDocRE = regexp.MustCompile(`(?is)^\s*(<!doctype|<html)`)
var bodyTagRE = regexp.MustCompile(`(?is)<body\b[^>]*>`)

const preheaderStyle = `display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;overflow:hidden;mso-hide:all;`

// document wraps a body in a small complete HTML document. Styles are inline
// because many mail clients strip <style>; the look is plain on purpose, since
// these mails should read like one person writing to another.
func document(subject, preheader, body string) string {
	pre := ""
	if preheader != "" {
		pre = `<div style="` + preheaderStyle + `">` + html.EscapeString(preheader) + "</div>\n"
	}
	if fullDocRE.MatchString(body) {
		// The author wrote a whole document; only the preheader is added.
		if loc := bodyTagRE.FindStringIndex(body); loc != nil && pre != "" {
			return body[:loc[1]] + "\n" + pre + body[loc[1]:]
		}
		return body
	}
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n")
	b.WriteString("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	b.WriteString("<title>" + html.EscapeString(subject) + "</title>\n</head>\n")
	b.WriteString("<body style=\"margin:0;padding:0;background-color:#ffffff;\">\n")
	b.WriteString(pre)
	b.WriteString(`<div style="max-width:600px;margin:0 auto;padding:16px;font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',Helvetica,Arial,sans-serif;font-size:15px;line-height:1.5;color:#1f2937;">` + "\n")
	b.WriteString(strings.TrimRight(body, "\n"))
	b.WriteString("\n</div>\n</body>\n</html>\n")
	return b.String()
}

var paraSepRE = regexp.MustCompile(`\n[ \t]*\n`)

var linkRE = regexp.MustCompile(`(?i)\b(?:https?://|mailto:)[^\s<>"'()]+`)
var hrefRE = regexp.MustCompile(`(?i)\shref\s*=\s*"([^"]*)"`)

// hasLink looks for any link but the unsubscribe link, which is an exit, not a call
// to action.
func hasLink(text, htmlDoc, unsub string) bool {
	isExit := func(u string) bool {
		return u == "" || u == unsub || strings.HasPrefix(u, "#") || strings.Contains(strings.ToLower(u), "unsubscribe")
	}
	for _, u := range linkRE.FindAllString(text, -1) {
		if !isExit(strings.TrimRight(u, ".,;:!?")) {
			return true
		}
	}
	for _, m := range hrefRE.FindAllStringSubmatch(htmlDoc, -1) {
		if !isExit(html.UnescapeString(m[1])) {
			return true
		}
	}
	return false
}

var closings = []string{
	"best", "best regards", "best wishes", "regards", "kind regards", "warm regards", "warmly",
	"cheers", "thanks", "thank you", "many thanks", "sincerely", "yours", "yours truly",
	"talk soon", "speak soon", "all the best", "take care", "cordially", "respectfully",
	"groeten", "met vriendelijke groet", "vriendelijke groet", "hartelijke groet", "mvg",
	"viele grüße", "beste grüße", "liebe grüße", "mit freundlichen grüßen", "lg", "vg",
	"cordialement", "bien à vous", "bien cordialement", "à bientôt", "sent from",
}

// endsWithQuestion reports whether the last paragraph that is not a sign-off,
// signature or footer asks something.
func endsWithQuestion(text string, sender Sender) bool {
	if i := strings.Index(text, "\n-- \n"); i >= 0 {
		text = text[:i]
	}
	var paras []string
	for _, p := range paraSepRE.Split(text, -1) {
		if p = strings.TrimSpace(p); p != "" {
			paras = append(paras, p)
		}
	}
	for len(paras) > 0 && isTrailer(paras[len(paras)-1], sender) {
		paras = paras[:len(paras)-1]
	}
	if len(paras) == 0 {
		return false
	}
	last := linkRE.ReplaceAllString(paras[len(paras)-1], "")
	return strings.ContainsAny(last, "?？")
}

func isTrailer(p string, sender Sender) bool {
	lp := strings.ToLower(p)
	if strings.Contains(lp, "unsubscribe") {
		return true
	}
	first, _, _ := strings.Cut(lp, "\n")
	first = strings.TrimSpace(first)
	if utf8.RuneCountInString(first) > 40 || strings.ContainsAny(first, "?？") {
		return false
	}
	bare := strings.TrimRight(first, ",.!-— ")
	for _, c := range closings {
		if bare == c || strings.HasPrefix(bare, c+" ") || strings.HasPrefix(bare, c+",") {
			return true
		}
	}
	for _, n := range []string{sender.Name, firstWord(sender.Name), firstLine(sender.Signature)} {
		if n = strings.ToLower(strings.TrimSpace(n)); n != "" && strings.HasPrefix(first, n) {
			return true
		}
	}
	return strings.HasPrefix(first, "-- ") || first == "--"
}

func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func isHTMLTemplateError(err error) bool {
	var he *htmltemplate.Error
	return errors.As(err, &he)
}
