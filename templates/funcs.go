package templates

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// mode says what a template's output is, because the same function must print
// differently into plain text, HTML and Markdown (cta most of all).
type mode int

const (
	modeText mode = iota
	modeHTML
	modeMD

	numModes
)

// funcArity is every public template function with its argument count, for the
// load-time check: text/template only finds a wrong count when it executes, and a
// template that fails on the first contact of a campaign is found too late.
var funcArity = map[string]int{
	"default":        2,
	"firstName":      1,
	"title":          1,
	"upper":          1,
	"lower":          1,
	"cta":            2,
	"unsubscribeURL": 0,
	"date":           2,
	"weekday":        1,
	"addDays":        2,
	"spin":           1,
	"field":          1,
}

var funcUsage = map[string]string{
	"default":        `default FALLBACK VALUE (or VALUE | default FALLBACK)`,
	"firstName":      `firstName NAME`,
	"title":          `title TEXT`,
	"upper":          `upper TEXT`,
	"lower":          `lower TEXT`,
	"cta":            `cta LABEL URL`,
	"unsubscribeURL": `unsubscribeURL`,
	"date":           `date LAYOUT TIME`,
	"weekday":        `weekday TIME`,
	"addDays":        `addDays N TIME`,
	"spin":           `spin "a|b|c"`,
	"field":          `field "name"`,
}

// FuncNames lists the functions templates may call besides text/template's builtins.
func FuncNames() []string {
	names := make([]string, 0, len(funcArity))
	for n := range funcArity {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// dateLayouts are friendly names accepted by date in place of a Go layout.
var dateLayouts = map[string]string{
	"day":     "Monday 2 January",
	"weekday": "Monday",
	"date":    "2 January 2006",
	"long":    "Monday 2 January 2006",
	"short":   "2 Jan",
	"us":      "Monday, January 2",
	"iso":     "2006-01-02",
	"time":    "15:04",
	"kitchen": "3:04 PM",
}

// ctaLink is one cta call, kept so the Markdown placeholder can be replaced by a
// button in HTML and by "LABEL: URL" in text after goldmark has run.
type ctaLink struct{ label, url string }

// mdMark is the placeholder a cta prints into Markdown. Its own type lets the
// Markdown escaper pass it through while escaping everything else; the private-use
// runes it is made of are stripped from all data, so data cannot forge one.
type mdMark string

const (
	markOpen  = '\uE000'
	markClose = '\uE001'
)

// state is one Render call. Everything a render mutates lives here, not in the
// templates, so that concurrent renders of the same Set never share anything
// mutable; the template functions reach it through a binding.
type state struct {
	data  Data
	loc   *time.Location
	entry string
	// lenient replaces missing values with placeholders instead of failing; Lint and
	// load-time checks use it to get a whole message out of sample data.
	lenient bool
	ctas    []ctaLink
}

// missingError is what the inserted checks return; Render turns it into an *Error
// wrapping ErrMissingData.
type missingError struct {
	ref    string
	action bool // ref is a whole action rather than a field reference
}

func (e *missingError) Error() string {
	if e.action {
		return e.ref + " prints nothing"
	}
	return e.ref + " is empty"
}

// binding is what a template clone's functions are bound to. Installing functions
// copies the whole map into the clone, which costs as much as the render itself, so
// it is done once per clone; the functions then find the render in progress through
// st, which exec sets for one execution and clears afterwards. A binding belongs to
// one clone and a clone serves one render at a time, so st needs no lock.
type binding struct{ st *state }

func (b *binding) funcs(m mode) map[string]any {
	return map[string]any{
		"default":   fnDefault,
		"firstName": fnFirstName,
		"title":     fnTitle,
		"upper":     func(v any) string { return strings.ToUpper(toString(v)) },
		"lower":     func(v any) string { return strings.ToLower(toString(v)) },
		"cta":       func(label, u any) (any, error) { return b.st.cta(m, label, u) },
		"unsubscribeURL": func() (string, error) {
			st := b.st
			if st.data.UnsubscribeURL == "" {
				if st.lenient {
					return "https://example.com/unsubscribe", nil
				}
				return "", errors.New("unsubscribeURL: the render data has no unsubscribe URL")
			}
			return st.data.UnsubscribeURL, nil
		},
		"date":    func(layout string, v any) (string, error) { return b.st.date(layout, v) },
		"weekday": func(v any) (string, error) { return b.st.weekday(v) },
		"addDays": fnAddDays,
		// spin is only ever seen by the parser: Load rewrites each call to _spin
		// with a key for its position.
		"spin": func(string) (string, error) { return "", errors.New("spin: internal error: call not rewritten") },
		"field": func(name string) string {
			return b.st.data.Contact.Fields[name]
		},
		"_spin":  func(key, options string) string { return b.st.spin(key, options) },
		"_req":   func(ref string, v any) (any, error) { return b.st.require(ref, false, v) },
		"_check": func(ref string, v any) (any, error) { return b.st.require(ref, true, v) },
		"_md":    fnMarkdownEscape,
	}
}

func (st *state) require(ref string, action bool, v any) (any, error) {
	if !isEmpty(v) {
		return v, nil
	}
	if st.lenient {
		if _, ok := v.(time.Time); ok {
			return st.data.Now, nil
		}
		return "[" + ref + "]", nil
	}
	return nil, &missingError{ref: ref, action: action}
}

func fnDefault(fallback, v any) any {
	if isEmpty(v) {
		return fallback
	}
	return v
}

// isEmpty is what counts as missing: nothing, blank text, a zero time, or an empty
// container. Numbers are never missing: 0 is a value.
func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case time.Time:
		return x.IsZero()
	case *time.Time:
		return x == nil || x.IsZero()
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return strings.TrimSpace(rv.String()) == ""
	case reflect.Map, reflect.Slice:
		return rv.Len() == 0
	case reflect.Pointer, reflect.Interface, reflect.Func, reflect.Chan:
		return rv.IsNil()
	}
	return false
}

func toString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case fmt.Stringer:
		return x.String()
	case error:
		return x.Error()
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.String {
		return rv.String()
	}
	return fmt.Sprint(v)
}

var honorifics = map[string]bool{
	"mr": true, "mrs": true, "ms": true, "miss": true, "mx": true, "dr": true, "prof": true,
	"sir": true, "dhr": true, "mevr": true, "herr": true, "frau": true, "mme": true, "mlle": true,
}

// fnFirstName picks the name to greet someone by from however the CRM stored it:
// "JANE DOE", "Dr. Jane Doe" and "Doe, Jane" all give "Jane".
func fnFirstName(v any) string {
	words := strings.Fields(toString(v))
	if len(words) > 1 && strings.HasSuffix(words[0], ",") {
		words = words[1:]
	}
	for len(words) > 1 && honorifics[strings.ToLower(strings.TrimSuffix(words[0], "."))] {
		words = words[1:]
	}
	if len(words) == 0 {
		return ""
	}
	return titleWord(strings.Trim(words[0], ",;"))
}

func fnTitle(v any) string {
	words := strings.Fields(toString(v))
	for i, w := range words {
		words[i] = titleWord(w)
	}
	return strings.Join(words, " ")
}

// titleWord capitalises each hyphen or apostrophe separated part, but leaves a part
// that is already mixed case alone, because "McDonald" and "DeShawn" know better
// than any rule.
func titleWord(w string) string {
	var b strings.Builder
	start := 0
	flush := func(part string) {
		if part == "" {
			return
		}
		if part != strings.ToLower(part) && part != strings.ToUpper(part) {
			b.WriteString(part)
			return
		}
		r, n := utf8.DecodeRuneInString(part)
		b.WriteRune(unicode.ToTitle(r))
		b.WriteString(strings.ToLower(part[n:]))
	}
	for i, r := range w {
		if r == '-' || r == '\'' || r == '’' {
			flush(w[start:i])
			b.WriteRune(r)
			start = i + utf8.RuneLen(r)
		}
	}
	flush(w[start:])
	return b.String()
}

func (st *state) cta(m mode, labelV, urlV any) (any, error) {
	label := strings.Join(strings.Fields(toString(labelV)), " ")
	if label == "" {
		if !st.lenient {
			return nil, errors.New("cta: empty label")
		}
		label = "Reply"
	}
	u, err := checkURL(toString(urlV))
	if err != nil {
		if !st.lenient {
			return nil, err
		}
		u = "https://example.com/"
	}
	st.ctas = append(st.ctas, ctaLink{label: label, url: u})
	switch m {
	case modeHTML:
		return htmltemplate.HTML(ctaButton(label, u)), nil
	case modeMD:
		return mdMark(string(markOpen) + strconv.Itoa(len(st.ctas)-1) + string(markClose)), nil
	}
	return ctaText(label, u), nil
}

// checkURL allows only links a mail client will open safely: http(s) with a host, or
// mailto with an address. Everything else (javascript:, data:, relative paths) is
// refused outright instead of being neutralised, so the author hears about it.
func checkURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("cta: empty URL")
	}
	for _, r := range raw {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return "", fmt.Errorf("cta: URL %q contains whitespace or control characters", raw)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("cta: bad URL %q: %v", raw, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		if u.Host == "" {
			return "", fmt.Errorf("cta: URL %q has no host", raw)
		}
	case "mailto":
		if u.Opaque == "" {
			return "", fmt.Errorf("cta: URL %q has no address", raw)
		}
	default:
		return "", fmt.Errorf("cta: URL %q is not http, https or mailto", raw)
	}
	// url.URL keeps a raw query as given; percent-encode what RFC 3986 never allows
	// so the link survives plain-text mail clients' link detection intact.
	var b strings.Builder
	for _, c := range []byte(u.String()) {
		if strings.IndexByte("<>\"{}|\\^`", c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func ctaText(label, u string) string {
	if strings.ContainsAny(label[len(label)-1:], ":?!.") {
		return label + " " + u
	}
	return label + ": " + u
}

// ctaButton is an <a> styled inline, since many mail clients drop <style> blocks.
func ctaButton(label, u string) string {
	return `<a href="` + htmlEscape(u) + `" style="display:inline-block;padding:10px 20px;` +
		`background-color:#2563eb;color:#ffffff;text-decoration:none;border-radius:6px;` +
		`font-weight:600">` + htmlEscape(label) + `</a>`
}

func (st *state) when(v any) (time.Time, error) {
	switch x := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return x, nil
	case *time.Time:
		if x == nil {
			return time.Time{}, nil
		}
		return *x, nil
	}
	return time.Time{}, fmt.Errorf("want a time, got %T", v)
}

// date prints in the contact's zone: "see you Monday" must mean the contact's
// Monday, not the server's.
func (st *state) date(layout string, v any) (string, error) {
	t, err := st.when(v)
	if err != nil {
		return "", fmt.Errorf("date: %v", err)
	}
	if t.IsZero() {
		return "", nil
	}
	if l, ok := dateLayouts[layout]; ok {
		layout = l
	}
	return t.In(st.loc).Format(layout), nil
}

func (st *state) weekday(v any) (string, error) {
	t, err := st.when(v)
	if err != nil {
		return "", fmt.Errorf("weekday: %v", err)
	}
	if t.IsZero() {
		return "", nil
	}
	return t.In(st.loc).Weekday().String(), nil
}

func fnAddDays(n int, v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		if x.IsZero() {
			return x, nil
		}
		return x.AddDate(0, 0, n), nil
	case nil:
		return time.Time{}, nil
	}
	return time.Time{}, fmt.Errorf("addDays: want a time, got %T", v)
}

// spin picks one option from a hash of the seed, the template and the call's key,
// so a contact sees the same wording on every render (previews, retries) while
// different contacts spread over the options.
func (st *state) spin(key, options string) string {
	opts := strings.Split(options, "|")
	for i := range opts {
		opts[i] = strings.TrimSpace(opts[i])
	}
	if len(opts) == 1 {
		return opts[0]
	}
	h := sha256.Sum256([]byte(st.data.Seed + "\x00" + st.entry + "\x00" + key))
	return opts[binary.BigEndian.Uint64(h[:8])%uint64(len(opts))]
}
