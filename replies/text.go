package replies

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// foldRune maps letters with diacritics to their base letter and unifies the
// typographic variants of quotes, dashes and spaces. It returns -1 for runes
// that fold to more than one rune (handled by fold).
func foldRune(r rune) rune {
	switch r {
	case 'à', 'á', 'â', 'ã', 'ä', 'å', 'À', 'Á', 'Â', 'Ã', 'Ä', 'Å':
		return 'a'
	case 'ç', 'Ç':
		return 'c'
	case 'è', 'é', 'ê', 'ë', 'È', 'É', 'Ê', 'Ë':
		return 'e'
	case 'ì', 'í', 'î', 'ï', 'Ì', 'Í', 'Î', 'Ï':
		return 'i'
	case 'ñ', 'Ñ':
		return 'n'
	case 'ò', 'ó', 'ô', 'õ', 'ö', 'ø', 'Ò', 'Ó', 'Ô', 'Õ', 'Ö', 'Ø':
		return 'o'
	case 'ù', 'ú', 'û', 'ü', 'Ù', 'Ú', 'Û', 'Ü':
		return 'u'
	case 'ý', 'ÿ', 'Ý':
		return 'y'
	case '’', '‘', 'ʼ', '´', '`', '′':
		return '\''
	case '“', '”', '„', '«', '»':
		return '"'
	case '–', '—', '‐', '‑', '−':
		return '-'
	case 'ß', 'æ', 'Æ', 'œ', 'Œ':
		return -1
	}
	if unicode.IsSpace(r) {
		return ' '
	}
	return unicode.ToLower(r)
}

// fold lower-cases s, strips diacritics and unifies quotes, dashes and
// spaces, so that phrase and date matching works on "Büro", "buro" and
// "BÜRO" alike.
func fold(s string) string {
	if isASCII(s) {
		return foldASCII(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		f := foldRune(r)
		if f >= 0 {
			b.WriteRune(f)
			continue
		}
		switch r {
		case 'ß':
			b.WriteString("ss")
		case 'æ', 'Æ':
			b.WriteString("ae")
		case 'œ', 'Œ':
			b.WriteString("oe")
		}
	}
	return b.String()
}

// foldASCII is fold for ASCII text, byte by byte: most replies are plain
// ASCII, and foldRune of an ASCII rune is the rune lower-cased, a space for
// white space, and a straight quote for a backquote.
func foldASCII(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r':
			c = ' '
		case c == '`':
			c = '\''
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

type tokKind uint8

const (
	tokWord  tokKind = iota // letters (and inner apostrophes)
	tokNum                  // digits, possibly a numeric date such as 7.12.2026 or 12/7
	tokPunct                // any other visible character
)

// token is one unit of folded text.
type token struct {
	kind tokKind
	text string // folded text; for numbers the digits and separators
	// suffix of an ordinal number ("th", "er", "e", "."), numbers only
	suffix string
	// clause is true when the token starts a new clause: it follows
	// punctuation (comma, dash, full stop, …) or the start of the text.
	clause bool
	// sentence is true when the token starts a new sentence or line.
	sentence bool
}

// ordinal suffixes in English, French, Dutch and German.
var ordinalSuffixes = map[string]bool{
	"st": true, "nd": true, "rd": true, "th": true,
	"er": true, "re": true, "e": true, "eme": true,
	"ste": true, "de": true, "te": true,
}

// contractions expands English contractions so that phrase lists only need
// one spelling ("don't" and "do not" match the same phrase).
var contractions = map[string][2]string{
	"don't": {"do", "not"}, "dont": {"do", "not"}, "doesn't": {"does", "not"},
	"didn't": {"did", "not"}, "isn't": {"is", "not"}, "aren't": {"are", "not"},
	"wasn't": {"was", "not"}, "weren't": {"were", "not"}, "won't": {"will", "not"},
	"wont": {"will", "not"}, "can't": {"can", "not"}, "cant": {"can", "not"},
	"cannot": {"can", "not"}, "couldn't": {"could", "not"}, "wouldn't": {"would", "not"},
	"shouldn't": {"should", "not"}, "haven't": {"have", "not"}, "hasn't": {"has", "not"},
	"hadn't": {"had", "not"}, "i'm": {"i", "am"},
	"we're": {"we", "are"}, "you're": {"you", "are"}, "they're": {"they", "are"},
	"it's": {"it", "is"}, "that's": {"that", "is"}, "there's": {"there", "is"},
	"let's": {"let", "us"}, "lets": {"let", "us"}, "i'd": {"i", "would"},
	"we'd": {"we", "would"}, "you'd": {"you", "would"}, "i'll": {"i", "will"},
	"we'll": {"we", "will"}, "you'll": {"you", "will"}, "i've": {"i", "have"},
	"we've": {"we", "have"}, "you've": {"you", "have"},
}

// elision prefixes of French (and a few Dutch) words written with an
// apostrophe: "m'intéresse" becomes "m'" "interesse".
var elisions = map[string]bool{
	"l": true, "d": true, "m": true, "n": true, "s": true, "t": true, "j": true,
	"c": true, "qu": true, "jusqu": true, "lorsqu": true, "puisqu": true,
}

// tokenize splits already folded text into tokens. Letters joined by a hyphen
// form separate words without a punctuation token between them, so
// "appelez-moi" and "appelez moi" are the same.
func tokenize(s string) []token {
	toks := make([]token, 0, len(s)/4)
	forEachToken(s, func(t token) { toks = append(toks, t) })
	return toks
}

// forEachToken calls f with each token of s in turn, as tokenize lists them.
// It saves the list where a caller reads the tokens once.
func forEachToken(s string, f func(token)) {
	clause, sentence := true, true
	emit := func(t token) {
		t.clause, t.sentence = clause, sentence
		f(t)
		clause, sentence = false, false
	}
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\n':
			clause, sentence = true, true
			i += size
		case r == ' ' || r == '\t' || r == '\r' || unicode.IsSpace(r):
			i += size
		case unicode.IsLetter(r):
			j := i
			for j < len(s) {
				r2, sz := utf8.DecodeRuneInString(s[j:])
				if unicode.IsLetter(r2) || unicode.IsMark(r2) {
					j += sz
					continue
				}
				if r2 == '\'' && j+1 < len(s) {
					r3, _ := utf8.DecodeRuneInString(s[j+1:])
					if unicode.IsLetter(r3) {
						j += sz
						continue
					}
				}
				break
			}
			word := s[i:j]
			i = j
			w1, w2 := splitWord(word)
			emit(token{kind: tokWord, text: w1})
			if w2 != "" {
				emit(token{kind: tokWord, text: w2})
			}
			// a hyphen directly between two letters joins words
			if i+1 < len(s) && s[i] == '-' {
				r3, _ := utf8.DecodeRuneInString(s[i+1:])
				if unicode.IsLetter(r3) {
					i++
				}
			}
		case r >= '0' && r <= '9':
			j := scanNumber(s, i)
			t := token{kind: tokNum, text: s[i:j]}
			i = j
			// ordinal suffix: 29th, 1er, 4e, 7.
			k := i
			for k < len(s) && s[k] >= 'a' && s[k] <= 'z' {
				k++
			}
			if k > i && ordinalSuffixes[s[i:k]] && (k == len(s) || !isLetterAt(s, k)) {
				t.suffix = s[i:k]
				i = k
			}
			emit(t)
		default:
			p := string(r)
			i += size
			switch p {
			case ".", "!", "?", ";", ":":
				emit(token{kind: tokPunct, text: p})
				clause, sentence = true, true
				if p == ":" {
					sentence = false
				}
				if p == "." {
					// an abbreviation ("nov.", "4.") does not end the sentence
					// when a lower-case word or a number follows
					sentence = !nextIsLowerOrDigit(s, i)
				}
			case ",", "-", "(", ")", "/", "\"", "[", "]", "|", "*":
				emit(token{kind: tokPunct, text: p})
				clause = true
			default:
				emit(token{kind: tokPunct, text: p})
			}
		}
	}
}

func isLetterAt(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return unicode.IsLetter(r)
}

func nextIsLowerOrDigit(s string, i int) bool {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	if i >= len(s) {
		return false
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return unicode.IsLower(r) || unicode.IsDigit(r)
}

// scanNumber returns the end of a number starting at i. Digit groups joined by
// '.', '/' or '-' form one token ("7.12.2026", "12/7", "23-27"), as does a
// trailing '.' after a group when it is not the end of a sentence ("4." in
// German dates).
func scanNumber(s string, i int) int {
	groups := 0
	for {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i {
			return i
		}
		groups++
		i = j
		if groups >= 3 || i+1 >= len(s) {
			break
		}
		c := s[i]
		if (c == '.' || c == '/' || c == '-') && s[i+1] >= '0' && s[i+1] <= '9' {
			i++
			continue
		}
		break
	}
	// German "7.12." and "4.": keep the final dot when a word or number follows
	if i < len(s) && s[i] == '.' && nextIsLowerOrDigit(s, i+1) {
		i++
	}
	return i
}

// splitWord expands contractions and splits French elisions into one or two
// words; w2 is empty when w stays one word. (Two results rather than a slice:
// this runs on every word of every reply.)
func splitWord(w string) (w1, w2 string) {
	if exp, ok := contractions[w]; ok {
		return exp[0], exp[1]
	}
	if k := strings.IndexByte(w, '\''); k > 0 && k < len(w)-1 {
		if elisions[w[:k]] {
			return w[:k+1], w[k+1:]
		}
	}
	return w, ""
}

// patternSet is a large alternation split at its top-level '|' into
// separately compiled expressions, each with a few literals it cannot match
// without. A substring search for those literals rules most texts out before
// the expression runs, and Go's regexp runs a small expression far
// quicker than one big alternation, which needs the general NFA. Patterns are
// written in lower case and matched against lower-cased text.
type patternSet []pattern

type pattern struct {
	re *regexp.Regexp
	// lits: every match contains one of these literals; nil if unknown
	lits []string
}

func newPatternSet(alternation string) patternSet {
	var set patternSet
	for _, alt := range splitAlternation(alternation) {
		set = append(set, pattern{re: regexp.MustCompile(alt), lits: requiredLiterals(alt)})
	}
	return set
}

// MatchString reports whether one of the patterns matches lower.
func (ps patternSet) MatchString(lower string) bool {
	return ps.matchText(indexText(lower))
}

// matchText reports whether one of the patterns matches t.
func (ps patternSet) matchText(t indexedText) bool {
	for _, p := range ps {
		if p.lits != nil && !t.containsAny(p.lits) {
			continue
		}
		if p.re.MatchString(t.s) {
			return true
		}
	}
	return false
}

// indexedText is a text that patternSets look for literals in. A long text
// (a bounce notice, matched against several sets of a hundred literals each)
// gets an index of the runs of three bytes in it, hashed into a bit set: a
// literal with a run that does not occur is ruled out without searching the
// text.
type indexedText struct {
	s        string
	trigrams *[1 << 16 / 64]uint64 // nil for short texts
}

// minIndexedText is the length from which a text is indexed: building the
// index costs about as much as a few searches of the text.
const minIndexedText = 256

func indexText(s string) indexedText {
	t := indexedText{s: s}
	if len(s) >= minIndexedText {
		t.trigrams = new([1 << 16 / 64]uint64)
		for i := 0; i+2 < len(s); i++ {
			k := trigram(s[i], s[i+1], s[i+2])
			t.trigrams[k/64] |= 1 << (k % 64)
		}
	}
	return t
}

func trigram(a, b, c byte) uint16 {
	return uint16(a)<<8 ^ uint16(b)<<4 ^ uint16(c) ^ uint16(c)<<12
}

func (t indexedText) containsAny(lits []string) bool {
	for _, l := range lits {
		if t.contains(l) {
			return true
		}
	}
	return false
}

func (t indexedText) contains(lit string) bool {
	if t.trigrams != nil {
		for i := 0; i+2 < len(lit); i++ {
			if k := trigram(lit[i], lit[i+1], lit[i+2]); t.trigrams[k/64]&(1<<(k%64)) == 0 {
				return false
			}
		}
	}
	return strings.Contains(t.s, lit)
}

// requiredLiterals returns a small set of literals one of which every match
// of expr contains: the best such set among the parts of a top-level
// concatenation ("(?:account|user).{0,50}(?:disabled|suspended)" gives
// {disabled, suspended}). It returns nil when no set of literals of at least
// three bytes is found.
func requiredLiterals(expr string) []string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	parts := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		parts = re.Sub
	}
	var best []string
	bestMin := 0
	for _, part := range parts {
		lits, ok := expandLiterals(part, 0)
		if !ok || len(lits) == 0 {
			continue
		}
		m := len(lits[0])
		for _, l := range lits {
			if len(l) < m {
				m = len(l)
			}
		}
		if m > bestMin {
			best, bestMin = lits, m
		}
	}
	if bestMin < 3 {
		return nil
	}
	return best
}

// expandLiterals lists the strings a literal-only expression matches, when
// there are few of them.
func expandLiterals(re *syntax.Regexp, depth int) ([]string, bool) {
	const limit = 32
	if depth > 8 {
		return nil, false
	}
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil, false
		}
		return []string{string(re.Rune)}, true
	case syntax.OpEmptyMatch:
		return []string{""}, true
	case syntax.OpCapture:
		return expandLiterals(re.Sub[0], depth+1)
	case syntax.OpCharClass:
		var out []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				if len(out) >= 4 {
					return nil, false
				}
				out = append(out, string(r))
			}
		}
		return out, len(out) > 0
	case syntax.OpQuest:
		sub, ok := expandLiterals(re.Sub[0], depth+1)
		if !ok || len(sub)+1 > limit {
			return nil, false
		}
		return append(sub, ""), true
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			lits, ok := expandLiterals(sub, depth+1)
			if !ok || len(out)+len(lits) > limit {
				return nil, false
			}
			out = append(out, lits...)
		}
		return out, true
	case syntax.OpConcat:
		out := []string{""}
		for _, sub := range re.Sub {
			lits, ok := expandLiterals(sub, depth+1)
			if !ok || len(out)*len(lits) > limit {
				return nil, false
			}
			next := make([]string, 0, len(out)*len(lits))
			for _, a := range out {
				for _, b := range lits {
					next = append(next, a+b)
				}
			}
			out = next
		}
		return out, true
	}
	return nil, false
}

// splitAlternation splits a regular expression at the '|' that are not
// inside a group or a character class.
func splitAlternation(s string) []string {
	var out []string
	depth, start := 0, 0
	inClass := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '|' && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
