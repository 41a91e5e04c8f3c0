package replies

import "strings"

// Cheap tests that run before a regular expression and rule most input out.
// Each one is a necessary condition for a match, so that the result never
// depends on whether the expression ran.

// containsFold reports whether s contains lit, a lower-case ASCII string,
// ignoring ASCII case. As a prefilter for a case-insensitive regular
// expression, lit must not hold 'k' or 's': Go's case folding also matches K
// (U+212A) and ſ (U+017F) for those, which this test misses.
func containsFold(s, lit string) bool {
	if len(lit) == 0 {
		return true
	}
	first, rest := lit[0], lit[1:]
	for i := 0; i+len(lit) <= len(s); i++ {
		j := indexByteFold(s[i:len(s)-len(rest)], first)
		if j < 0 {
			return false
		}
		i += j
		if equalFoldASCII(s[i+1:i+len(lit)], rest) {
			return true
		}
	}
	return false
}

// indexByteFold returns the index of the first c (lower case) in s in
// either ASCII case, or -1. Both searches use strings.IndexByte, and the
// second only runs up to where the first found one.
func indexByteFold(s string, c byte) int {
	i := strings.IndexByte(s, c)
	if c < 'a' || c > 'z' {
		return i
	}
	upper := c - 'a' + 'A'
	if i < 0 {
		return strings.IndexByte(s, upper)
	}
	if j := strings.IndexByte(s[:i], upper); j >= 0 {
		return j
	}
	return i
}

// equalFoldASCII reports whether s equals lower (lower-case ASCII) ignoring
// ASCII case.
func equalFoldASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lowerASCII(s[i]) != lower[i] {
			return false
		}
	}
	return true
}

// containsAnyFold reports whether s contains one of lits, ignoring ASCII
// case (see containsFold).
func containsAnyFold(s string, lits ...string) bool {
	for _, l := range lits {
		if containsFold(s, l) {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// trimBlanks returns s without leading and trailing spaces and tabs, as
// strings.Trim(s, " \t") does without building a cutset per call: header
// parsing trims every field.
func trimBlanks(s string) string {
	s = trimLeftBlanks(s)
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// trimLeftBlanks returns s without leading spaces and tabs.
func trimLeftBlanks(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	return s
}
