package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

//go:embed templates/*.html
var templateFS embed.FS

// pageCSP allows no script at all and nothing from elsewhere: the pages are
// self-contained, so an injected tag that slipped past escaping could still
// not run or load anything. Inline style is needed by the inline CSS and
// the bars' widths.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// view is what every page template gets: the layout's fields and the
// page's own Data.
type view struct {
	Title  string
	Nav    string // the highlighted menu entry; empty hides the menu
	CSRF   string // the session's CSRF token; empty when not logged in by cookie
	Error  string
	Notice string
	Data   any
}

type pages struct {
	byName map[string]*template.Template
	zone   func() *time.Location
}

func loadPages(zone func() *time.Location) *pages {
	p := &pages{byName: map[string]*template.Template{}, zone: zone}
	funcs := template.FuncMap{
		"when":        p.when,
		"whenp":       p.whenPtr,
		"path":        url.PathEscape,
		"pct":         pct,
		"rate1":       rate1,
		"noteText":    noteText,
		"add":         func(a, b int) int { return a + b },
		"cut":         cut,
		"fullName":    fullName,
		"eventFields": eventFields,
	}
	for _, name := range []string{"home", "contacts", "contact", "login", "message", "unsubscribe"} {
		p.byName[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return p
}

// render writes a page; it is rendered to a buffer first so that a
// template error gives a clean 500 and never half a page.
func (p *pages) render(w http.ResponseWriter, status int, name string, v view) {
	var buf bytes.Buffer
	if err := p.byName[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (p *pages) when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(p.zone()).Format("2006-01-02 15:04 MST")
}

func (p *pages) whenPtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return p.when(*t)
}

// pct is the width of a bar: n out of max, as a CSS percentage.
func pct(n, max int) string {
	if max <= 0 || n <= 0 {
		return "0%"
	}
	return fmt.Sprintf("%.1f%%", float64(n)*100/float64(max))
}

// rate1 writes a percentage as the API's reply_rate has it: one decimal.
func rate1(pct float64) string {
	return strconv.FormatFloat(pct, 'f', 1, 64)
}

// noteText is the text of a note event.
func noteText(raw json.RawMessage) string {
	var n struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &n)
	return n.Text
}

// cut shortens s to at most n characters.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n])) + "…"
}

func fullName(first, last, email string) string {
	if n := strings.TrimSpace(first + " " + last); n != "" {
		return n
	}
	return email
}

type keyValue struct {
	Key   string
	Value string
}

// eventFields lists an event's data for display, keys sorted.
func eventFields(raw json.RawMessage) []keyValue {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || len(m) == 0 {
		return nil
	}
	out := make([]keyValue, 0, len(m))
	for k, v := range m {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case nil:
			continue
		default:
			b, _ := json.Marshal(v)
			s = string(b)
		}
		if s == "" {
			continue
		}
		out = append(out, keyValue{Key: k, Value: cut(s, 2000)})
	}
	slices.SortFunc(out, func(a, b keyValue) int { return strings.Compare(a.Key, b.Key) })
	return out
}
