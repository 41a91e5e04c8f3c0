package replies

import (
	"bytes"
	"html"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Quoted history: an attribution line ("On … wrote:") in several languages,
// possibly wrapped over two lines.
var (
	attributionRE = regexp.MustCompile(`(?i)^[\s>*_-]*(?:on|op|am|le|el|em|il|den|w dniu)\b.*(?:wrote|writes|schreef|geschreven|schrieb|geschrieben|a [eé]crit|escribi[oó]|escreveu|ha scritto|skrev|napisa[lł]|написал[аи]?)\s*:?\s*[*_-]*\s*$`)
	// any line that ends with "… wrote:" (the name may come first)
	attributionEndRE = regexp.MustCompile(`(?i)(?:^|[\s>"'])(?:wrote|schreef|geschreven|schrieb|a [eé]crit|escribi[oó]|escreveu|ha scritto|skrev|napisa[lł]|написал[аи]?)\s*:\s*[*_-]*\s*$`)
	// "Sam <sam@x> schrieb am 11.11.2026 um 10:30:", "X wrote on …:"
	attributionMidRE = regexp.MustCompile(`(?i)\b(?:wrote|schreef|schrieb|a [eé]crit)\s+(?:on|op|am|le)\b.*:\s*$`)
	// a line that starts like a wrapped attribution ("On Tue, Nov 3, 2026 at")
	attributionStartRE = regexp.MustCompile(`(?i)^[\s>*_-]*(?:on|op|am|le|el|em|il)\s+\S|@|\d`)

	// separator lines that start quoted or forwarded history
	separatorRE = mustStartRE(`(?i)^\s*(?:[-=_*]{2,}\s*(?:original message|original-nachricht|urspr[uü]ngliche nachricht|oorspronkelijk bericht|oorspronkelijke bericht|message d'origine|message original|mensaje original|messaggio originale|forwarded message|weitergeleitete nachricht|doorgestuurd bericht|message transf[eé]r[eé]|mensaje reenviado|reply message|antwort)\s*[-=_*]{2,}|(?:begin forwarded message|anfang der weitergeleiteten nachricht|d[eé]but du message r[eé]exp[eé]di[eé]|doorgestuurd bericht)\s*:?|_{8,}|-{8,}|={8,})\s*$`)

	// Outlook-style header blocks: "From: … Sent: … To: … Subject:" and their
	// Dutch, German and French variants, optionally in bold (*From:*).
	hdrFromRE = mustStartRE(`(?i)^\s*\*?\s*(?:from|van|von|de|da|fra|från|od)\s*\*?\s*:\s*\*?\s*\S`)
	hdrNextRE = regexp.MustCompile(`(?i)^\s*\*?\s*(?:sent|date|to|cc|subject|verzonden|datum|aan|onderwerp|gesendet|an|betreff|envoy[eé]|[aà]|objet|cc|inviato|oggetto|enviado|asunto|para)\s*\*?\s*:`)

	// signature starts
	sigDashRE   = mustStartRE(`^\s*(?:--|—|–|-- )\s*$`)
	sigNameRE   = mustStartRE(`^-\p{L}[\p{L}.' ]{0,40}$`)
	sigMobileRE = mustStartRE(`(?i)^\s*(?:sent from|sent via|sent with|sent using|get outlook for|download outlook for|verstuurd vanaf|verstuurd met|verzonden vanaf|verzonden met|verzonden vanuit|von meinem|gesendet von|gesendet mit|gesendet vom|envoy[eé] de mon|envoy[eé] depuis|envoy[eé] avec|envoy[eé] à partir de|t[eé]l[eé]charger outlook pour|holen sie sich outlook f[uü]r|outlook voor (?:ios|android) downloaden|inviato da)\b`)
)

// VisibleText strips quoted history and the signature from a plain-text
// body and returns what the writer wrote in this message. Quoted lines ("> …")
// are dropped wherever they are, so answers written between quoted lines are
// kept. Everything after a forward/original-message separator, an
// Outlook-style header block or an attribution line that is not followed by
// quoted lines is dropped. The signature starts at a "-- " line, a "-Name"
// line or a mobile footer such as "Sent from my iPhone".
func VisibleText(body string) string {
	if strings.IndexByte(body, '\r') >= 0 {
		body = strings.ReplaceAll(body, "\r\n", "\n")
		body = strings.ReplaceAll(body, "\r", "\n")
	}
	lines := strings.Split(body, "\n")
	out := make([]string, 0, len(lines))
scan:
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if isQuoted(l) {
			continue
		}
		t := strings.TrimSpace(l)
		if t == "" {
			out = append(out, "")
			continue
		}
		if separatorRE.MatchString(l) || isHeaderBlock(lines, i) {
			break
		}
		if n := attributionLines(lines, i); n > 0 {
			j := i + n
			for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
				j++
			}
			if j < len(lines) && isQuoted(lines[j]) {
				i = j - 1 // drop the attribution, then the quoted lines
				continue scan
			}
			break
		}
		out = append(out, strings.TrimRightFunc(l, unicode.IsSpace))
	}
	for k, l := range out {
		if isSignatureStart(l) {
			out = out[:k]
			break
		}
	}
	// trim blank lines at both ends and squeeze runs of blank lines
	var b strings.Builder
	blank := 0
	for _, l := range out {
		if l == "" {
			blank++
			continue
		}
		if b.Len() > 0 {
			if blank > 0 {
				b.WriteString("\n\n")
			} else {
				b.WriteByte('\n')
			}
		}
		blank = 0
		b.WriteString(l)
	}
	return b.String()
}

// attributionVerbs are the verbs of attribution lines, lower-case.
var attributionVerbs = []string{"wrote", "writes", "schreef", "geschreven", "schrieb", "geschrieben",
	"crit", "escribi", "escreveu", "scritto", "skrev", "napisa", "написал"}

func hasAttributionVerb(l string) bool {
	// it runs on nearly every line: lower-case short ASCII lines (where
	// strings.ToLower changes bytes one for one) on the stack
	var buf [256]byte
	if len(l) <= len(buf) && isASCII(l) {
		lower := buf[:len(l)]
		for i := 0; i < len(l); i++ {
			lower[i] = lowerASCII(l[i])
		}
		for _, v := range attributionVerbBytes {
			if bytes.Contains(lower, v) {
				return true
			}
		}
		return false
	}
	l = strings.ToLower(l)
	for _, v := range attributionVerbs {
		if strings.Contains(l, v) {
			return true
		}
	}
	return false
}

var attributionVerbBytes = func() [][]byte {
	out := make([][]byte, len(attributionVerbs))
	for i, v := range attributionVerbs {
		out[i] = []byte(v)
	}
	return out
}()

// attributionHintRE: an address, a time or a year, as found in attributions.
var attributionHintRE = regexp.MustCompile(`@|\b\d{1,2}:\d{2}\b|\b(?:19|20)\d{2}\b`)

// nextIsQuoted reports whether the first non-blank line from i is quoted.
func nextIsQuoted(lines []string, i int) bool {
	for ; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "" {
			return isQuoted(lines[i])
		}
	}
	return false
}

func isQuoted(l string) bool {
	t := strings.TrimLeft(l, " \t")
	return strings.HasPrefix(t, ">") || strings.HasPrefix(t, "|>")
}

// attributionLines returns 1 or 2 when an attribution starts at line i.
func attributionLines(lines []string, i int) int {
	l := lines[i]
	if len(l) > 400 {
		return 0
	}
	if !hasAttributionVerb(l) && !(i+1 < len(lines) && hasAttributionVerb(lines[i+1])) {
		// cheap test first: every form needs a verb or a trailing colon
		if !strings.HasSuffix(strings.TrimSpace(l), ":") {
			return 0
		}
	}
	if attributionRE.MatchString(l) || attributionEndRE.MatchString(l) || attributionMidRE.MatchString(l) {
		return 1
	}
	// any language: a line ending in ':' that names an address or a date and
	// is followed by quoted lines ("2 avr. 2012 14:20 от Bob <bob@x>:")
	if strings.HasSuffix(strings.TrimSpace(l), ":") && attributionHintRE.MatchString(l) && nextIsQuoted(lines, i+1) {
		return 1
	}
	if i+1 < len(lines) && attributionStartRE.MatchString(l) && !strings.HasSuffix(strings.TrimSpace(l), ".") {
		next := strings.TrimSpace(lines[i+1])
		if next == "" || len(next) > 200 || isQuoted(lines[i+1]) {
			return 0
		}
		joined := strings.TrimSpace(l) + " " + next
		if attributionRE.MatchString(joined) || attributionEndRE.MatchString(joined) || attributionMidRE.MatchString(joined) {
			return 2
		}
	}
	return 0
}

// isHeaderBlock reports whether an Outlook-style header block ("From: …"
// followed by "Sent:", "To:" or "Subject:") starts at line i.
func isHeaderBlock(lines []string, i int) bool {
	if !hdrFromRE.MatchString(lines[i]) {
		return false
	}
	for j := i + 1; j < len(lines) && j <= i+6; j++ {
		if hdrNextRE.MatchString(lines[j]) {
			return true
		}
	}
	return false
}

func isSignatureStart(l string) bool {
	if sigDashRE.MatchString(l) {
		return true
	}
	t := strings.TrimSpace(l)
	if sigNameRE.MatchString(t) && len(strings.Fields(t)) <= 4 {
		return true
	}
	if sigMobileRE.MatchString(t) {
		// "Sent from my desk, is much easier …" is a sentence, not a footer
		if len(strings.Fields(t)) <= 8 && !strings.ContainsAny(strings.TrimRight(t, "."), ",;!?") {
			return true
		}
	}
	return false
}

// htmlToText turns an HTML body into plain text. Quoted history is dropped
// (blockquote elements and Gmail/Yahoo/Outlook quote containers), a horizontal
// rule becomes a separator line (which VisibleText treats as the start of
// quoted history), and entities are decoded.
func htmlToText(s string) string {
	var b strings.Builder
	b.Grow(len(s) / 2)
	skipTag := ""  // element whose content is being skipped
	skipDepth := 0 // nesting of skipTag while skipping
	// where the last closing tag of an element is, found when an opening
	// tag first needs it (most mail has no script, and only one head)
	var lower string
	lastClose := map[string]int{}
	lastCloseOf := func(name string) int {
		at, ok := lastClose[name]
		if !ok {
			if lower == "" {
				lower = asciiLower(s)
			}
			at = strings.LastIndex(lower, "</"+name)
			lastClose[name] = at
		}
		return at
	}
	i := 0
	for i < len(s) {
		c := s[i]
		if c != '<' {
			j := strings.IndexByte(s[i:], '<')
			if j < 0 {
				j = len(s) - i
			}
			if skipTag == "" {
				writeHTMLText(&b, s[i:i+j])
			}
			i += j
			continue
		}
		// comments and declarations
		if strings.HasPrefix(s[i:], "<!--") {
			j := strings.Index(s[i+4:], "-->")
			if j < 0 {
				break
			}
			i += 4 + j + 3
			continue
		}
		end := tagEnd(s, i)
		tag := s[i+1 : end]
		i = end + 1
		if end >= len(s) {
			break
		}
		name, closing, attrs := parseTag(tag)
		if name == "" {
			continue
		}
		if skipTag != "" {
			if name == skipTag {
				if closing {
					skipDepth--
					if skipDepth == 0 {
						skipTag = ""
					}
				} else if !strings.HasSuffix(tag, "/") {
					skipDepth++
				}
			}
			continue
		}
		if closing {
			if blockTags[name] {
				b.WriteByte('\n')
			}
			if name == "td" || name == "th" {
				b.WriteByte(' ')
			}
			continue
		}
		switch name {
		case "script", "style", "head", "title", "blockquote":
			if name == "blockquote" || lastCloseOf(name) > i {
				skipTag, skipDepth = name, 1
			}
			continue
		case "br":
			b.WriteByte('\n')
			continue
		case "hr":
			b.WriteString("\n________________________________\n")
			continue
		}
		if isQuoteContainer(attrs) {
			if name == "div" && strings.Contains(strings.ToLower(attrs), "divrplyfwdmsg") {
				b.WriteString("\n________________________________\n")
			}
			skipTag, skipDepth = name, 1
			continue
		}
		if blockTags[name] {
			b.WriteByte('\n')
		}
	}
	// collapse spaces per line and limit blank lines
	lines := strings.Split(b.String(), "\n")
	var out strings.Builder
	blank := 0
	for _, l := range lines {
		l = strings.Join(strings.Fields(l), " ")
		if l == "" {
			blank++
			continue
		}
		if out.Len() > 0 {
			if blank > 0 {
				out.WriteString("\n\n")
			} else {
				out.WriteByte('\n')
			}
		}
		blank = 0
		out.WriteString(l)
	}
	return out.String()
}

var blockTags = map[string]bool{
	"p": true, "div": true, "tr": true, "li": true, "ul": true, "ol": true,
	"table": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true,
	"h6": true, "pre": true, "center": true, "dl": true, "dt": true, "dd": true,
	"section": true, "article": true, "header": true, "footer": true, "body": true,
	"tbody": true, "thead": true,
}

// isQuoteContainer reports whether the attributes mark quoted history.
func isQuoteContainer(attrs string) bool {
	if attrs == "" {
		return false
	}
	if isASCII(attrs) {
		// strings.ToLower of ASCII only changes A-Z: search ignoring their
		// case, without a lower-cased copy of every tag's attributes
		return containsAnyFold(attrs, quoteContainerMarks...)
	}
	a := strings.ToLower(attrs)
	for _, m := range quoteContainerMarks {
		if strings.Contains(a, m) {
			return true
		}
	}
	return false
}

var quoteContainerMarks = []string{"gmail_quote", "yahoo_quoted", "divrplyfwdmsg", "moz-cite-prefix",
	"x_divrplyfwdmsg", "protonmail_quote", "type=\"cite\"", "type=cite"}

// tagEnd finds the '>' closing the tag opened at s[i], honouring quotes.
func tagEnd(s string, i int) int {
	var quote byte
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return j
		}
	}
	return len(s)
}

func parseTag(tag string) (name string, closing bool, attrs string) {
	tag = strings.TrimSpace(tag)
	if strings.HasPrefix(tag, "/") {
		closing = true
		tag = strings.TrimSpace(tag[1:])
	}
	if tag == "" || tag[0] == '!' || tag[0] == '?' {
		return "", false, ""
	}
	j := 0
	for j < len(tag) {
		r, size := utf8.DecodeRuneInString(tag[j:])
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == ':' || r == '-') {
			break
		}
		j += size
	}
	return strings.ToLower(tag[:j]), closing, tag[j:]
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func writeHTMLText(b *strings.Builder, s string) {
	if strings.IndexByte(s, '&') >= 0 {
		s = html.UnescapeString(s)
	}
	// HTML whitespace (including newlines) is a single space
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' || r == '\u00a0' {
			return ' '
		}
		return r
	}, s)
	b.WriteString(s)
}
