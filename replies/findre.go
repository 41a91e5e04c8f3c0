package replies

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// A findRE is a regular expression searched in long texts: bounce notices
// and returned messages, up to tens of kilobytes. Go's regexp tries every
// position of such a text with its NFA, at a few hundred nanoseconds a byte
// for the expressions below. A findRE gives the same results, running the
// expression only where a match can start, which its syntax tree tells:
//
//   - byLine: an expression that cannot match a line break (nor use \A or
//     \z) matches within one line; it is run on the lines that hold one of
//     the literals every match holds (an address's "@") and, for one that
//     starts with (?m)^, that start as its startFilter requires;
//   - starts: when every match starts with one of a few literals ("rcpt
//     to:", "unknown user", …), the expression is tried only where one
//     occurs, anchored there, with the character before as context for \b
//     and ^;
//   - lineStarts: the same for an expression that starts with (?m)^ and
//     may run over lines: it is tried at the line starts that pass its
//     startFilter.
//
// Other expressions run as they are.
type findRE struct {
	re         *regexp.Regexp
	byLine     bool
	lineStarts bool
	f          *startFilter
	need       []string // byLine: literals one of which a matching line holds

	// starts and lineStarts: the expression anchored at the start of the
	// text, and after one character of context
	at0, at1 *regexp.Regexp
}

func mustFindRE(expr string) *findRE {
	r := &findRE{re: regexp.MustCompile(expr)}
	t, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return r
	}
	t = t.Simplify()
	fold := hasFoldCase(t)
	parts := []*syntax.Regexp{t}
	if t.Op == syntax.OpConcat {
		parts = t.Sub
	}
	inLine := !hasOp(t, syntax.OpBeginText, syntax.OpEndText) && !canMatchNewline(t)
	var need []string
	if !fold {
		need = needLiterals(t)
	}
	if parts[0].Op == syntax.OpBeginLine {
		r.f = startFilterOf(parts[1:], fold, true)
		if inLine {
			r.byLine, r.need = true, need
			return r
		}
		r.lineStarts = r.f != nil
	} else {
		r.f = startFilterOf(parts, fold, false)
		// an empty match could abut one on the line before, which FindAll
		// treats specially: only non-empty expressions go line by line
		if r.f == nil && inLine && need != nil && !canBeEmpty(t) {
			r.byLine, r.need = true, need
			return r
		}
	}
	if r.f != nil {
		r.at0 = regexp.MustCompile(`\A(?:` + expr + `)`)
		r.at1 = regexp.MustCompile(`\A(?s:.)(?:` + expr + `)`)
	}
	return r
}

// MatchString reports whether the expression matches s.
func (r *findRE) MatchString(s string) bool {
	if !r.byLine && r.at0 == nil {
		return r.re.MatchString(s)
	}
	return r.FindStringSubmatchIndex(s) != nil
}

// FindStringIndex is regexp.Regexp.FindStringIndex.
func (r *findRE) FindStringIndex(s string) []int {
	if m := r.FindStringSubmatchIndex(s); m != nil {
		return m[:2]
	}
	return nil
}

// FindString is regexp.Regexp.FindString.
func (r *findRE) FindString(s string) string {
	if m := r.FindStringSubmatchIndex(s); m != nil {
		return s[m[0]:m[1]]
	}
	return ""
}

// FindAllString is regexp.Regexp.FindAllString.
func (r *findRE) FindAllString(s string, n int) []string {
	ms := r.FindAllStringSubmatchIndex(s, n)
	if ms == nil {
		return nil
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = s[m[0]:m[1]]
	}
	return out
}

// FindStringSubmatch is regexp.Regexp.FindStringSubmatch.
func (r *findRE) FindStringSubmatch(s string) []string {
	return submatches(s, r.FindStringSubmatchIndex(s))
}

// FindStringSubmatchIndex is regexp.Regexp.FindStringSubmatchIndex.
func (r *findRE) FindStringSubmatchIndex(s string) []int {
	if m := r.FindAllStringSubmatchIndex(s, 1); m != nil {
		return m[0]
	}
	return nil
}

// FindAllStringSubmatch is regexp.Regexp.FindAllStringSubmatch.
func (r *findRE) FindAllStringSubmatch(s string, n int) [][]string {
	ms := r.FindAllStringSubmatchIndex(s, n)
	if ms == nil {
		return nil
	}
	out := make([][]string, len(ms))
	for i, m := range ms {
		out[i] = submatches(s, m)
	}
	return out
}

// FindAllStringSubmatchIndex is regexp.Regexp.FindAllStringSubmatchIndex.
func (r *findRE) FindAllStringSubmatchIndex(s string, n int) [][]int {
	switch {
	case r.byLine:
		return r.allByLine(s, n)
	case r.at0 != nil:
		return r.allAtStarts(s, n)
	}
	return r.re.FindAllStringSubmatchIndex(s, n)
}

// allByLine runs the expression on each line that may hold a match.
func (r *findRE) allByLine(s string, n int) [][]int {
	var out [][]int
	for pos := 0; n < 0 || len(out) < n; {
		end := strings.IndexByte(s[pos:], '\n')
		if end < 0 {
			end = len(s)
		} else {
			end += pos
		}
		if line := s[pos:end]; r.lineMayMatch(line) {
			left := -1
			if n >= 0 {
				left = n - len(out)
			}
			for _, m := range r.re.FindAllStringSubmatchIndex(line, left) {
				for i := range m {
					if m[i] >= 0 {
						m[i] += pos
					}
				}
				out = append(out, m)
			}
		}
		if end == len(s) {
			break
		}
		pos = end + 1
	}
	return out
}

func (r *findRE) lineMayMatch(line string) bool {
	if r.f != nil && !r.f.mayMatch(line) {
		return false
	}
	if r.need == nil {
		return true
	}
	for _, l := range r.need {
		if strings.Contains(line, l) {
			return true
		}
	}
	return false
}

// allAtStarts tries the expression where a match may start (where one of
// its prefixes starts, or at a line start that passes the filter), from the
// left, and goes on after each match as regexp's FindAll does. Matches are
// never empty: each holds a non-empty prefix.
func (r *findRE) allAtStarts(s string, n int) [][]int {
	var out [][]int
	for p := 0; p < len(s) && (n < 0 || len(out) < n); p++ {
		if r.lineStarts {
			if p > 0 && s[p-1] != '\n' {
				i := strings.IndexByte(s[p:], '\n')
				if i < 0 {
					break
				}
				p += i // the loop steps past the line break
				continue
			}
			if !r.f.mayMatch(s[p:]) {
				continue
			}
		} else if len(r.f.byFirst[s[p]]) == 0 || !r.f.prefixAt(s[p:]) {
			continue
		}
		var m []int
		if p == 0 {
			m = r.at0.FindStringSubmatchIndex(s)
		} else if m = r.at1.FindStringSubmatchIndex(s[p-1:]); m != nil {
			// shift to s; the whole match starts after the context
			for i := range m {
				if m[i] >= 0 {
					m[i] += p - 1
				}
			}
			m[0] = p
		}
		if m == nil {
			continue
		}
		out = append(out, m)
		p = m[1] - 1 // the next search starts where this match ends
	}
	return out
}

func submatches(s string, m []int) []string {
	if m == nil {
		return nil
	}
	out := make([]string, len(m)/2)
	for i := range out {
		if m[2*i] >= 0 {
			out[i] = s[m[2*i]:m[2*i+1]]
		}
	}
	return out
}

// hasOp reports whether re or a part of it is one of ops.
func hasOp(re *syntax.Regexp, ops ...syntax.Op) bool {
	for _, op := range ops {
		if re.Op == op {
			return true
		}
	}
	for _, sub := range re.Sub {
		if hasOp(sub, ops...) {
			return true
		}
	}
	return false
}

// canMatchNewline reports whether some part of re can match a line break.
func canMatchNewline(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpAnyChar:
		return true
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if r == '\n' {
				return true
			}
		}
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if re.Rune[i] <= '\n' && '\n' <= re.Rune[i+1] {
				return true
			}
		}
	}
	for _, sub := range re.Sub {
		if canMatchNewline(sub) {
			return true
		}
	}
	return false
}

// needLiterals returns literals one of which every match of re (which must
// not ignore case) contains, or nil.
func needLiterals(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 || strings.ContainsRune(string(re.Rune), utf8.RuneError) {
			return nil
		}
		return []string{string(re.Rune)}
	case syntax.OpCharClass:
		if len(re.Rune) == 2 && re.Rune[0] == re.Rune[1] && re.Rune[0] != utf8.RuneError {
			return []string{string(re.Rune[0])}
		}
	case syntax.OpCapture, syntax.OpPlus:
		return needLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return needLiterals(re.Sub[0])
		}
	case syntax.OpConcat:
		// the part whose shortest literal is longest
		var best []string
		bestMin := 0
		for _, sub := range re.Sub {
			lits := needLiterals(sub)
			if lits == nil {
				continue
			}
			m := len(lits[0])
			for _, l := range lits {
				m = min(m, len(l))
			}
			if m > bestMin {
				best, bestMin = lits, m
			}
		}
		return best
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			lits := needLiterals(sub)
			if lits == nil {
				return nil
			}
			out = append(out, lits...)
		}
		return out
	}
	return nil
}
