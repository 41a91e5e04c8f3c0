package replies

import (
	"net/textproto"
	"strings"

	"github.com/emersion/go-message"
)

// header is a parsed header block. It answers Get, Has and Len as
// go-message's Header read from the same (cleaned) block would, and is
// cheaper to build: one copy of the block, a slice of fields, and values
// cut out of the copy (joined only for folded fields, and only when asked
// for), where go-message's ReadHeader allocates a line buffer, a field and a
// value per field and a map. Classify builds one per message and reads a
// dozen fields, most of them absent.
type header struct {
	block  string        // a copy of the header block
	fields []headerField // in the order of the message
}

type headerField struct {
	key string // canonical, as net/textproto.CanonicalMIMEHeaderKey gives it
	// block[start:end] is the field after the colon, its continuation lines
	// included (with their line ends), as it appears in the message
	start, end int
}

func (h header) raw(i int) string { return h.block[h.fields[i].start:h.fields[i].end] }

// parseHeaderLenient reads a header block, dropping lines that are neither
// fields nor continuations, so that one broken line does not lose the rest.
func parseHeaderLenient(b []byte) header {
	// one copy, so that values (and results cut out of them) never refer to
	// the caller's buffer
	s := string(b)
	h := header{block: s}
	kept := false
	for pos := 0; pos < len(s); {
		end, next := len(s), len(s)
		if i := strings.IndexByte(s[pos:], '\n'); i >= 0 {
			end, next = pos+i, pos+i+1
		}
		line := strings.TrimRight(s[pos:end], "\r")
		if line == "" {
			break
		}
		switch {
		case line[0] == ' ' || line[0] == '\t':
			if kept {
				h.fields[len(h.fields)-1].end = end
			}
		case isHeaderLine(line):
			colon := strings.IndexByte(line, ':')
			key := textproto.CanonicalMIMEHeaderKey(trimBlanks(line[:colon]))
			h.fields = append(h.fields, headerField{key: key, start: pos + colon + 1, end: end})
			kept = true
		case kept && paramLineRE.MatchString(line):
			// a parameter that lost its indentation: 'boundary="…"'
			h.fields[len(h.fields)-1].end = end
		default:
			kept = false
		}
		pos = next
	}
	return h
}

// Get returns the value of the first field named key (in canonical form, as
// net/textproto.CanonicalMIMEHeaderKey gives it), or "".
func (h header) Get(key string) string {
	for i := range h.fields {
		if h.fields[i].key == key {
			return fieldValue(h.raw(i))
		}
	}
	return ""
}

// Has reports whether a field named key (in canonical form) is present.
func (h header) Has(key string) bool {
	for i := range h.fields {
		if h.fields[i].key == key {
			return true
		}
	}
	return false
}

// Len returns the number of fields.
func (h header) Len() int { return len(h.fields) }

// fieldValue unfolds a raw field value the way go-message does: every line
// without its trailing CRs, trimmed of blanks; the non-empty ones joined by
// single spaces.
func fieldValue(raw string) string {
	if strings.IndexByte(raw, '\n') < 0 {
		return trimBlanks(strings.TrimRight(raw, "\r"))
	}
	var b strings.Builder
	b.Grow(len(raw))
	for line := range strings.SplitSeq(raw, "\n") {
		line = trimBlanks(strings.TrimRight(line, "\r"))
		if line == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(line)
	}
	return b.String()
}

// entityHeader returns the fields go-message's message.New and the MIME walk
// read (the first of each), for the entity of the body.
func (h header) entityHeader() message.Header {
	var m message.Header
	for _, k := range [...]string{"Content-Type", "Content-Transfer-Encoding", "Content-Disposition"} {
		for i := range h.fields {
			if h.fields[i].key == k {
				m.Add(k, fieldValue(h.raw(i)))
				break
			}
		}
	}
	return m
}

// Header fields are mostly plain: "a@b.example", "Sam <sam@b.example>",
// "<id@host>". simpleAddresses and simpleMsgIDs read those forms without
// the general parsers (net/mail's address parser, go-message's msg-id
// parser), which allocate several times per address. They accept only
// input on which the general parser succeeds and give what it gives; ok is
// false for anything else, and the caller runs the general parser.

// simpleAddresses reads a comma-separated list of addresses, each either an
// addr-spec or an addr-spec in angle brackets after a display name of plain
// words, and returns the addresses in lower case.
func simpleAddresses(v string) (out []string, ok bool) {
	for len(v) > 0 {
		var item string
		item, v, _ = strings.Cut(v, ",")
		item = trimBlanks(item)
		if item == "" {
			continue // net/mail skips empty list entries
		}
		spec := item
		if strings.HasSuffix(item, ">") {
			lt := strings.LastIndexByte(item, '<')
			if lt < 0 || !plainPhrase(item[:lt]) {
				return nil, false
			}
			spec = item[lt+1 : len(item)-1]
		}
		if !plainAddrSpec(spec) {
			return nil, false
		}
		out = append(out, strings.ToLower(spec))
	}
	return out, len(out) > 0
}

// plainAddrSpec reports whether s is local@domain with both sides dot-atoms
// of ASCII atext: no leading, trailing or double dots.
func plainAddrSpec(s string) bool {
	local, domain, found := strings.Cut(s, "@")
	return found && plainDotAtom(local) && plainDotAtom(domain)
}

func plainDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '.' && !isPlainAtext(s[i]) {
			return false
		}
	}
	return true
}

// plainPhrase reports whether s is empty or a display name net/mail reads
// as words without decoding or quoting: ASCII atext words (dots allowed)
// separated by blanks, none of them an encoded word.
func plainPhrase(s string) bool {
	if strings.Contains(s, "=?") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != ' ' && c != '\t' && c != '.' && !isPlainAtext(c) {
			return false
		}
	}
	// only the usual "Name <addr>", with a blank before "<"; the rarer
	// forms go to the general parser
	return s == "" || s[len(s)-1] == ' ' || s[len(s)-1] == '\t'
}

// isPlainAtext reports whether c is an ASCII atext character (RFC 5322:
// printable, not a special, not a dot).
func isPlainAtext(c byte) bool {
	if c < '!' || c > '~' {
		return false
	}
	switch c {
	case '(', ')', '<', '>', '[', ']', ':', ';', '@', '\\', ',', '"', '.':
		return false
	}
	return true
}

// simpleMsgIDs reads a list of "<left@right>" message ids separated by
// blanks, with ASCII atext (dots allowed) on both sides, and returns the ids
// without brackets.
func simpleMsgIDs(v string) (ids []string, ok bool) {
	for {
		v = trimLeftBlanks(v)
		if v == "" {
			return ids, len(ids) > 0
		}
		if v[0] != '<' {
			return nil, false
		}
		end := strings.IndexByte(v, '>')
		if end < 0 {
			return nil, false
		}
		id := v[1:end]
		left, right, found := strings.Cut(id, "@")
		if !found || !msgIDAtoms(left) || !msgIDAtoms(right) {
			return nil, false
		}
		ids = append(ids, id)
		v = v[end+1:]
	}
}

func msgIDAtoms(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '.' && !isPlainAtext(s[i]) {
			return false
		}
	}
	return true
}
