package replies

import (
	"bytes"
	"io"
	"mime"
	netmail "net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
)

// Limits that keep the cost of one message bounded whatever its size.
const (
	maxInput     = 8 << 20 // bytes of a raw message looked at
	maxPartBytes = 1 << 20 // bytes read from one MIME part
	maxParts     = 200     // MIME parts visited
	maxDepth     = 12      // multipart nesting
)

// parsedMessage is what the classifier needs from a raw message.
type parsedMessage struct {
	header     header // top-level header (empty when the input had none)
	hasHeader  bool
	plain      []string // inline text/plain bodies, outside returned messages
	html       []string // inline text/html bodies, outside returned messages
	dsn        []string // message/delivery-status bodies
	returned   []returnedPart
	reportType string // report-type of a multipart/report, lower-case
	parts      int

	htmlTexts []string // htmlToText of html, filled in by htmlText
	htmlDone  []bool
}

// htmlText returns the text of the HTML part i, converted once: bounce
// detection and the visible text may both need it.
func (p *parsedMessage) htmlText(i int) string {
	if p.htmlTexts == nil {
		p.htmlTexts = make([]string, len(p.html))
		p.htmlDone = make([]bool, len(p.html))
	}
	if !p.htmlDone[i] {
		p.htmlTexts[i], p.htmlDone[i] = htmlToText(p.html[i]), true
	}
	return p.htmlTexts[i]
}

// returnedPart is a message (or only its header) returned inside a bounce.
type returnedPart struct {
	header header
	text   string
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// isHeaderLine reports whether line starts with a header field: a field
// name of printable ASCII other than ':', optional blanks, and a colon
// (`^[!-9;-~]+[ \t]*:`). It runs on every header line, so it is a plain
// scan rather than a regular expression.
func isHeaderLine[T string | []byte](line T) bool {
	i := 0
	for i < len(line) && line[i] >= '!' && line[i] <= '~' && line[i] != ':' {
		i++
	}
	if i == 0 {
		return false
	}
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	return i < len(line) && line[i] == ':'
}

// paramLineRE matches a MIME parameter on a line of its own.
var paramLineRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9*-]*\s*=`)

// parseMessage parses raw into a parsedMessage. It never fails: input it
// cannot read as a MIME message is taken as a plain-text body.
func parseMessage(raw []byte) *parsedMessage {
	if len(raw) > maxInput {
		raw = raw[:maxInput]
	}
	raw = stripMboxFrom(raw)
	p := &parsedMessage{}
	hdr, body, ok := splitHeader(raw)
	if !ok {
		p.plain = append(p.plain, cleanText(raw))
		return p
	}
	p.hasHeader = true
	p.header = parseHeaderLenient(hdr)
	e, _ := message.New(p.header.entityHeader(), bytes.NewReader(body)) // unknown charset/encoding: keep going
	p.walk(e, 0)
	return p
}

// stripMboxFrom drops a leading mbox "From " separator line.
func stripMboxFrom(raw []byte) []byte {
	for len(raw) > 0 && (raw[0] == '\n' || raw[0] == '\r') {
		raw = raw[1:]
	}
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			return raw[i+1:]
		}
		return nil
	}
	return raw
}

// splitHeader splits raw at the first empty line. ok is false when raw does
// not start with a header field at all (a bare body).
func splitHeader(raw []byte) (hdr, body []byte, ok bool) {
	first := raw
	if i := bytes.IndexByte(raw, '\n'); i >= 0 {
		first = raw[:i]
	}
	if !isHeaderLine(first) {
		return nil, raw, false
	}
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			return raw, nil, true
		}
		line := raw[i : i+j]
		if len(bytes.TrimRight(line, "\r")) == 0 {
			return raw[:i], raw[i+j+1:], true
		}
		i += j + 1
	}
	return raw, nil, true
}

// walk visits e and its parts.
func (p *parsedMessage) walk(e *message.Entity, depth int) {
	p.parts++
	if p.parts > maxParts || e == nil {
		return
	}
	mt, params := mediaType(e.Header)
	disp := ""
	if e.Header.Get("Content-Disposition") != "" { // most parts have none: skip the parser's error
		disp, _, _ = e.Header.ContentDisposition()
	}
	attachment := strings.EqualFold(disp, "attachment")
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		if depth >= maxDepth {
			return
		}
		if mt == "multipart/report" && p.reportType == "" {
			p.reportType = strings.ToLower(params["report-type"])
		}
		boundary := params["boundary"]
		if boundary == "" {
			return
		}
		raw, _ := io.ReadAll(io.LimitReader(e.Body, maxInput))
		// go-message first; the Content-Type is rebuilt from the parsed
		// parameters so that a malformed field still gives a reader
		var h message.Header
		h.Set("Content-Type", mime.FormatMediaType(mt, map[string]string{"boundary": boundary}))
		e2, _ := message.New(h, bytes.NewReader(raw))
		mr := e2.MultipartReader()
		done := 0
		for mr != nil && p.parts <= maxParts {
			part, err := mr.NextPart()
			if err == io.EOF {
				return
			}
			if err != nil && part == nil {
				break // a broken part header: split by hand below
			}
			done++
			p.walk(part, depth+1)
		}
		p.walkParts(raw, boundary, done, depth+1)
	case mt == "message/rfc822" || mt == "message/global":
		b := readLimited(e.Body)
		hdr, _, ok := splitHeader(stripMboxFrom(b))
		rp := returnedPart{text: cleanText(b)}
		if ok {
			rp.header = parseHeaderLenient(hdr)
		}
		p.returned = append(p.returned, rp)
	case mt == "text/rfc822-headers" || mt == "message/rfc822-headers" || mt == "text/rfc822-header":
		b := readLimited(e.Body)
		rp := returnedPart{text: cleanText(b)}
		if hdr, _, ok := splitHeader(bytes.TrimLeft(b, "\r\n")); ok {
			rp.header = parseHeaderLenient(hdr)
		}
		p.returned = append(p.returned, rp)
	case mt == "message/delivery-status" || mt == "message/global-delivery-status":
		p.dsn = append(p.dsn, cleanText(readLimited(e.Body)))
	case mt == "text/plain" && !attachment:
		t := cleanText(readLimited(e.Body))
		if strings.EqualFold(params["format"], "flowed") {
			t = unflow(t, strings.EqualFold(params["delsp"], "yes"))
		}
		p.plain = append(p.plain, t)
	case mt == "text/html" && !attachment:
		p.html = append(p.html, cleanText(readLimited(e.Body)))
	}
}

// walkParts splits a multipart body at its boundary lines by hand, for the
// bodies go-message gives up on (a part header that is not RFC 5322), and
// walks the parts from index skip on.
func (p *parsedMessage) walkParts(raw []byte, boundary string, skip, depth int) {
	delim := []byte("--" + boundary)
	var parts [][]byte
	var cur []byte
	in := false
	for len(raw) > 0 {
		var line []byte
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i+1], raw[i+1:]
		} else {
			line, raw = raw, nil
		}
		t := bytes.TrimRight(line, " \t\r\n")
		if bytes.HasPrefix(t, delim) {
			rest := t[len(delim):]
			if len(rest) == 0 || bytes.Equal(rest, []byte("--")) {
				if in {
					parts = append(parts, cur)
				}
				cur, in = nil, len(rest) == 0
				if !in {
					break
				}
				continue
			}
		}
		if in {
			cur = append(cur, line...)
		}
	}
	if in && len(cur) > 0 {
		parts = append(parts, cur)
	}
	for i := skip; i < len(parts) && p.parts <= maxParts; i++ {
		b := parts[i]
		var h message.Header
		body := b
		if hdr, rest, ok := splitHeader(b); ok {
			h, body = parseHeaderLenient(hdr).entityHeader(), rest
		} else {
			body = bytes.TrimPrefix(bytes.TrimPrefix(b, []byte("\r")), []byte("\n"))
		}
		e, _ := message.New(h, bytes.NewReader(body))
		p.walk(e, depth)
	}
}

// mediaType returns the lower-case media type of h and its parameters,
// tolerating malformed Content-Type fields. A missing field means text/plain.
func mediaType(h message.Header) (string, map[string]string) {
	ct := h.Get("Content-Type")
	if strings.TrimSpace(ct) == "" {
		return "text/plain", map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil {
		return strings.ToLower(mt), params
	}
	// salvage the type and a boundary from a broken field
	mt = strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
	params = map[string]string{}
	if m := boundaryRE.FindStringSubmatch(ct); m != nil {
		b := m[1]
		if b == "" {
			b = m[2]
		}
		params["boundary"] = b
	}
	if m := charsetRE.FindStringSubmatch(ct); m != nil {
		params["charset"] = m[1]
	}
	if m := reportTypeRE.FindStringSubmatch(ct); m != nil {
		params["report-type"] = m[1]
	}
	return mt, params
}

var (
	boundaryRE   = regexp.MustCompile(`(?i)boundary\s*=\s*(?:"([^"]*)"|([^\s;"]+))`)
	charsetRE    = regexp.MustCompile(`(?i)charset\s*=\s*"?([A-Za-z0-9_.:-]+)`)
	reportTypeRE = regexp.MustCompile(`(?i)report-type\s*=\s*"?([A-Za-z0-9_.-]+)`)
)

func readLimited(r io.Reader) []byte {
	if r == nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(r, maxPartBytes)) // keep what was read on a decoding error
	return b
}

// cleanText makes valid UTF-8 with LF line ends out of decoded body bytes.
// Bytes that are not UTF-8 are read as Windows-1252 (a superset of
// ISO-8859-1), the usual charset of undeclared 8-bit mail.
func cleanText(b []byte) string {
	if bytes.IndexByte(b, '\r') >= 0 && utf8.Valid(b) {
		return lineFeeds(b) // one copy rather than three
	}
	s := toUTF8(b)
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	return s
}

// lineFeeds returns b as a string with CRLF and lone CR made LF.
func lineFeeds(b []byte) string {
	var s strings.Builder
	s.Grow(len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\r' {
			c = '\n'
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		}
		s.WriteByte(c)
	}
	return s.String()
}

func toUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	r, err := charset.Reader("windows-1252", bytes.NewReader(b))
	if err == nil {
		if out, err := io.ReadAll(r); err == nil && utf8.Valid(out) {
			return string(out)
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// unflow undoes RFC 3676 format=flowed soft line breaks.
func unflow(s string, delsp bool) string {
	lines := strings.Split(s, "\n")
	var b strings.Builder
	b.Grow(len(s))
	for i, l := range lines {
		if strings.HasPrefix(l, " ") {
			l = l[1:] // space stuffing
		}
		soft := strings.HasSuffix(l, " ") && l != "-- " && i+1 < len(lines) &&
			quoteDepth(l) == quoteDepth(lines[i+1])
		if soft && delsp {
			l = l[:len(l)-1]
		}
		b.WriteString(l)
		if !soft && i+1 < len(lines) {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func quoteDepth(l string) int {
	n := 0
	for _, c := range l {
		if c == '>' {
			n++
		} else if c != ' ' {
			break
		}
	}
	return n
}

// decodeHeader decodes RFC 2047 encoded words in any charset.
func decodeHeader(s string) string {
	if strings.Contains(s, "=?") {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			s = d
		}
	}
	if utf8.ValidString(s) {
		return strings.TrimSpace(s) // what toUTF8 gives, without two copies
	}
	return strings.TrimSpace(toUTF8([]byte(s)))
}

// addrRE finds an e-mail address in free text.
var addrRE = mustFindRE(`[A-Za-z0-9!#$%&'*+/=?^_{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+`)

// addresses returns the lower-case addresses of header field key.
func addresses(h header, key string) []string {
	v := h.Get(key)
	if strings.TrimSpace(v) == "" {
		return nil
	}
	if out, ok := simpleAddresses(v); ok {
		return out
	}
	var out []string
	if list, err := mail.ParseAddressList(v); err == nil {
		for _, a := range list {
			if a.Address != "" {
				out = append(out, strings.ToLower(a.Address))
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	for _, a := range addrRE.FindAllString(decodeHeader(v), -1) {
		out = append(out, strings.ToLower(strings.Trim(a, ".'")))
	}
	return out
}

// msgIDRE finds <id> tokens.
var msgIDRE = regexp.MustCompile(`<([^<>\s]+)>`)

// msgIDs returns the message ids of header field key, without brackets.
func msgIDs(h header, key string) []string {
	v := h.Get(key)
	if strings.TrimSpace(v) == "" {
		return nil
	}
	if ids, ok := simpleMsgIDs(v); ok {
		return ids
	}
	var mh mail.Header // go-message's msg-id parser is a method of its Header
	mh.Set(key, v)
	if ids, err := mh.MsgIDList(key); err == nil && len(ids) > 0 {
		return ids
	}
	var out []string
	for _, m := range msgIDRE.FindAllStringSubmatch(v, -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		if f := strings.Fields(v); len(f) == 1 && strings.Contains(f[0], "@") {
			out = append(out, strings.Trim(f[0], "<>"))
		}
	}
	return out
}

var dateLayouts = []string{
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST",
	"Mon, 2 Jan 2006 15:04 -0700",
	"2 Jan 2006 15:04:05 -0700",
	"2 Jan 2006 15:04:05 MST",
	"Mon, 2 Jan 06 15:04:05 -0700",
	"Mon, 2 Jan 06 15:04:05 MST",
	"Mon, 2 Jan 2006 15:04:05",
	"2 Jan 2006 15:04:05",
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan 2 15:04:05 MST 2006",
	time.RFC3339,
}

var dateCommentRE = regexp.MustCompile(`\([^()]*\)`)

// headerDate parses the Date field: the usual RFC 5322 form by hand, then
// net/mail's parser, then a few common broken layouts.
func headerDate(h header) time.Time {
	v := h.Get("Date")
	if strings.TrimSpace(v) == "" {
		return time.Time{}
	}
	if t, ok := parseCommonDate(v); ok {
		return t
	}
	if t, err := netmail.ParseDate(v); err == nil { // as go-message's Header.Date
		return t
	}
	v = dateCommentRE.ReplaceAllString(v, "")
	v = strings.Join(strings.Fields(v), " ")
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t
		}
	}
	return time.Time{}
}
