package replies

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
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
	header     mail.Header // top-level header (empty when the input had none)
	hasHeader  bool
	plain      []string // inline text/plain bodies, outside returned messages
	html       []string // inline text/html bodies, outside returned messages
	dsn        []string // message/delivery-status bodies
	returned   []returnedPart
	reportType string // report-type of a multipart/report, lower-case
	parts      int
}

// returnedPart is a message (or only its header) returned inside a bounce.
type returnedPart struct {
	header mail.Header
	text   string
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// headerLineRE matches the start of a header field: a field name and a colon.
var headerLineRE = regexp.MustCompile(`^[!-9;-~]+[ \t]*:`)

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
	h := parseHeaderLenient(hdr)
	p.header = mail.Header{Header: h}
	e, _ := message.New(h, bytes.NewReader(body)) // unknown charset/encoding: keep going
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
	if !headerLineRE.Match(first) {
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

// parseHeaderLenient reads a header block, dropping lines that are neither
// fields nor continuations, so that one broken line does not lose the rest.
func parseHeaderLenient(b []byte) message.Header {
	var clean bytes.Buffer
	clean.Grow(len(b) + 2)
	kept := false
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if kept {
				clean.Write(line)
				clean.WriteByte('\n')
			}
			continue
		}
		if headerLineRE.Match(line) {
			clean.Write(line)
			clean.WriteByte('\n')
			kept = true
			continue
		}
		if kept && paramLineRE.Match(line) {
			// a parameter that lost its indentation: 'boundary="…"'
			clean.WriteByte(' ')
			clean.Write(line)
			clean.WriteByte('\n')
			continue
		}
		kept = false
	}
	clean.WriteByte('\n')
	h, _ := textproto.ReadHeader(bufio.NewReader(&clean))
	return message.Header{Header: h}
}

// walk visits e and its parts.
func (p *parsedMessage) walk(e *message.Entity, depth int) {
	p.parts++
	if p.parts > maxParts || e == nil {
		return
	}
	mt, params := mediaType(e.Header)
	disp, _, _ := e.Header.ContentDisposition()
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
			rp.header = mail.Header{Header: parseHeaderLenient(hdr)}
		}
		p.returned = append(p.returned, rp)
	case mt == "text/rfc822-headers" || mt == "message/rfc822-headers" || mt == "text/rfc822-header":
		b := readLimited(e.Body)
		rp := returnedPart{text: cleanText(b)}
		if hdr, _, ok := splitHeader(bytes.TrimLeft(b, "\r\n")); ok {
			rp.header = mail.Header{Header: parseHeaderLenient(hdr)}
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
			h, body = parseHeaderLenient(hdr), rest
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
	s := toUTF8(b)
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	return s
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
	return strings.TrimSpace(toUTF8([]byte(s)))
}

// addrRE finds an e-mail address in free text.
var addrRE = regexp.MustCompile(`[A-Za-z0-9!#$%&'*+/=?^_{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+`)

// addresses returns the lower-case addresses of header field key.
func addresses(h mail.Header, key string) []string {
	v := h.Get(key)
	if strings.TrimSpace(v) == "" {
		return nil
	}
	var out []string
	if list, err := h.AddressList(key); err == nil {
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
func msgIDs(h mail.Header, key string) []string {
	v := h.Get(key)
	if strings.TrimSpace(v) == "" {
		return nil
	}
	if ids, err := h.MsgIDList(key); err == nil && len(ids) > 0 {
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

// headerDate parses the Date field, trying a few common broken layouts.
func headerDate(h mail.Header) time.Time {
	if strings.TrimSpace(h.Get("Date")) == "" {
		return time.Time{}
	}
	if t, err := h.Date(); err == nil {
		return t
	}
	v := dateCommentRE.ReplaceAllString(h.Get("Date"), "")
	v = strings.Join(strings.Fields(v), " ")
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t
		}
	}
	return time.Time{}
}
