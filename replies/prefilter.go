package replies

import (
	"regexp"
	"regexp/syntax"
	"slices"
	"unicode"
	"unicode/utf8"
)

// A startRE is a regular expression anchored at the start of the text, such
// as `^\s*(?:re|aw|antw)\s*:`, with a cheap necessary condition for a match
// derived from the expression itself: after at most a run of the bytes its
// optional head can consume (here blanks), the text starts with one of a few
// literal prefixes ("re", "aw", "antw"). Most texts fail that test, and the
// expression only runs on the others.
//
// Go's backtracker clears a bit per instruction and input byte on every
// call, so an anchored alternation of fifty words costs about a microsecond
// even when the first byte already rules it out. These expressions run on the
// subject and the lines of every message.
type startRE struct {
	re *regexp.Regexp
	f  *startFilter // nil: no useful condition found, always run re
}

func mustStartRE(expr string) *startRE {
	return &startRE{re: regexp.MustCompile(expr), f: newStartFilter(expr)}
}

// MatchString reports whether the expression matches s.
func (r *startRE) MatchString(s string) bool {
	if r.f != nil && !r.f.mayMatch(s) {
		return false
	}
	return r.re.MatchString(s)
}

// startFilter is the necessary condition of a startRE, and tells a findRE
// where matches may start.
type startFilter struct {
	skip [256]bool // bytes the optional head of the expression may consume
	// byFirst holds the prefixes by the first byte of the text they can
	// match (with fold: either case, and the first byte of K and ſ)
	byFirst [256][]string
	// fold: the expression ignores case; prefixes then match in either ASCII
	// case, and 'k' and 's' also match K (U+212A) and ſ (U+017F) as Go's
	// case folding does
	fold bool
}

// maxPrefixes bounds the number of prefixes of a filter; a larger set costs
// more to test than it saves.
const maxPrefixes = 64

// newStartFilter derives the filter of expr, or returns nil when expr is not
// anchored at the start of the text or no set of non-empty prefixes is found.
func newStartFilter(expr string) *startFilter {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 || re.Sub[0].Op != syntax.OpBeginText {
		return nil
	}
	return startFilterOf(re.Sub[1:], hasFoldCase(re), true)
}

// startFilterOf derives the filter of the concatenation parts. With head,
// leading parts that may match nothing and consume only ASCII bytes of a
// known set ("\s*", "(?:\*+\s*)?") become the skip set; without, there must
// be none.
func startFilterOf(parts []*syntax.Regexp, fold, head bool) *startFilter {
	f := &startFilter{fold: fold}
	for len(parts) > 0 && canBeEmpty(parts[0]) {
		skip := f.skip
		if !head || !addChars(&skip, parts[0]) {
			break
		}
		f.skip = skip
		parts = parts[1:]
	}
	if len(parts) == 0 {
		return nil
	}
	prefixes, _ := f.starts(&syntax.Regexp{Op: syntax.OpConcat, Sub: parts})
	if len(prefixes) == 0 {
		return nil
	}
	for _, p := range prefixes {
		if p == "" {
			return nil // a match may start anywhere: no condition
		}
	}
	for _, p := range prefixes {
		f.byFirst[p[0]] = append(f.byFirst[p[0]], p)
		if !f.fold {
			continue
		}
		switch c := p[0]; {
		case c >= 'a' && c <= 'z':
			f.byFirst[c-'a'+'A'] = append(f.byFirst[c-'a'+'A'], p)
		}
		switch p[0] {
		case 'k':
			f.byFirst["\u212a"[0]] = append(f.byFirst["\u212a"[0]], p)
		case 's':
			f.byFirst["\u017f"[0]] = append(f.byFirst["\u017f"[0]], p)
		}
	}
	return f
}

// mayMatch reports whether the expression can match s: whether one of the
// prefixes starts at a position reachable through skip bytes.
func (f *startFilter) mayMatch(s string) bool {
	for i := 0; i < len(s); i++ {
		if f.prefixAt(s[i:]) {
			return true
		}
		if !f.skip[s[i]] {
			return false
		}
	}
	return false
}

// prefixAt reports whether one of the prefixes starts s (non-empty).
func (f *startFilter) prefixAt(s string) bool {
	for _, p := range f.byFirst[s[0]] {
		if f.fold {
			if hasPrefixFold(s, p) {
				return true
			}
		} else if len(s) >= len(p) && s[:len(p)] == p {
			return true
		}
	}
	return false
}

// hasPrefixFold reports whether s starts with p (lower-case ASCII) in Go's
// case folding: ASCII letters in either case, K (U+212A) for 'k' and ſ
// (U+017F) for 's'.
func hasPrefixFold(s, p string) bool {
	i := 0
	for j := 0; j < len(p); j++ {
		if i >= len(s) {
			return false
		}
		c := p[j]
		if lowerASCII(s[i]) == c {
			i++
			continue
		}
		var alt string
		switch c {
		case 'k':
			alt = "\u212a"
		case 's':
			alt = "\u017f"
		default:
			return false
		}
		if len(s)-i < len(alt) || s[i:i+len(alt)] != alt {
			return false
		}
		i += len(alt)
	}
	return true
}

// starts returns strings one of which every match of re starts with, and
// whether they are exactly the strings re matches. A nil set means that
// nothing is known. With f.fold, ASCII letters in the strings are lower
// case (and match either case); other runes match as they are, so every
// case of them is listed.
func (f *startFilter) starts(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return []string{""}, true // zero width: constrains, consumes nothing
	case syntax.OpCapture:
		return f.starts(re.Sub[0])
	case syntax.OpLiteral:
		cur := []string{""}
		for _, r := range re.Rune {
			// U+FFFD also matches any invalid byte: stop before it
			if r == utf8.RuneError {
				return cur, false
			}
			opts := f.runeStrings(r, re.Flags&syntax.FoldCase != 0)
			if len(cur)*len(opts) > maxPrefixes {
				return cur, false
			}
			cur = cross(cur, opts)
		}
		return cur, true
	case syntax.OpCharClass:
		var out []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				if r == utf8.RuneError {
					return []string{""}, false
				}
				// the class holds every case it matches already
				for _, s := range f.runeStrings(r, false) {
					if !slices.Contains(out, s) {
						out = append(out, s)
					}
				}
				if len(out) > 4 {
					return []string{""}, false
				}
			}
		}
		return out, true
	case syntax.OpQuest:
		sub, exact := f.starts(re.Sub[0])
		if sub == nil {
			return []string{""}, false
		}
		return append(sub, ""), exact
	case syntax.OpPlus:
		sub, _ := f.starts(re.Sub[0])
		return sub, false
	case syntax.OpStar, syntax.OpRepeat:
		return []string{""}, false
	case syntax.OpAlternate:
		var out []string
		exact := true
		for _, sub := range re.Sub {
			s, e := f.starts(sub)
			if s == nil || len(out)+len(s) > maxPrefixes {
				return nil, false
			}
			out = append(out, s...)
			exact = exact && e
		}
		return out, exact
	case syntax.OpConcat:
		cur := []string{""}
		for _, sub := range re.Sub {
			s, exact := f.starts(sub)
			if s == nil || len(cur)*len(s) > maxPrefixes {
				return cur, false
			}
			cur = cross(cur, s)
			if !exact {
				return cur, false
			}
		}
		return cur, true
	}
	return nil, false // any character, or anything else
}

// runeStrings returns the texts r is matched against: with f.fold, ASCII in
// lower case (hasPrefixFold matches the other case, and K and ſ for k and s),
// and with foldCase (a literal that ignores case) every rune a non-ASCII r
// folds to.
func (f *startFilter) runeStrings(r rune, foldCase bool) []string {
	if !f.fold {
		return []string{string(r)}
	}
	one := func(r rune) string {
		if r < utf8.RuneSelf {
			return string(rune(lowerASCII(byte(r))))
		}
		return string(r)
	}
	out := []string{one(r)}
	if foldCase && r >= utf8.RuneSelf {
		for o := unicode.SimpleFold(r); o != r; o = unicode.SimpleFold(o) {
			if s := one(o); !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// cross returns every a+b for a in as and b in bs.
func cross(as, bs []string) []string {
	out := make([]string, 0, len(as)*len(bs))
	for _, a := range as {
		for _, b := range bs {
			out = append(out, a+b)
		}
	}
	return out
}

// hasFoldCase reports whether some part of re ignores case.
func hasFoldCase(re *syntax.Regexp) bool {
	if re.Flags&syntax.FoldCase != 0 && (re.Op == syntax.OpLiteral || re.Op == syntax.OpCharClass) {
		return true
	}
	for _, sub := range re.Sub {
		if hasFoldCase(sub) {
			return true
		}
	}
	return false
}

// canBeEmpty reports whether re can match the empty string.
func canBeEmpty(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpStar, syntax.OpQuest:
		return true
	case syntax.OpCapture, syntax.OpPlus:
		return canBeEmpty(re.Sub[0])
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if !canBeEmpty(sub) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if canBeEmpty(sub) {
				return true
			}
		}
		return false
	case syntax.OpRepeat:
		return re.Min == 0 || canBeEmpty(re.Sub[0])
	}
	return false
}

// addChars adds to set the bytes re can consume; false when they are not
// all ASCII bytes of literals and classes matched exactly.
func addChars(set *[256]bool, re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return true
	case syntax.OpLiteral, syntax.OpCharClass:
		runes := re.Rune
		if re.Op == syntax.OpLiteral {
			for _, r := range runes {
				// a literal that ignores case also matches its other cases
				if r >= utf8.RuneSelf || (re.Flags&syntax.FoldCase != 0 && unicode.SimpleFold(r) != r) {
					return false
				}
				set[r] = true
			}
			return true
		}
		for i := 0; i+1 < len(runes); i += 2 {
			if runes[i+1] >= utf8.RuneSelf {
				return false
			}
			for r := runes[i]; r <= runes[i+1]; r++ {
				set[r] = true
			}
		}
		return true
	case syntax.OpCapture, syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		return addChars(set, re.Sub[0])
	case syntax.OpConcat, syntax.OpAlternate:
		for _, sub := range re.Sub {
			if !addChars(set, sub) {
				return false
			}
		}
		return true
	}
	return false
}
