package replies

import (
	"math/rand"
	"regexp/syntax"
	"strings"
	"testing"
	"unicode"
)

// startREs are the expressions the start filters are checked on.
func startREs() map[string]*startRE {
	return map[string]*startRE{
		"bounceSubject": bounceSubjectRE, "awaySubject": awaySubjectRE, "ackSubject": ackSubjectRE,
		"replyPrefix": replyPrefixRE, "readSubject": readSubjectRE, "separator": separatorRE,
		"hdrFrom": hdrFromRE, "sigDash": sigDashRE, "sigName": sigNameRE, "sigMobile": sigMobileRE,
		"daemonLocal": daemonLocalRE,
	}
}

// TestStartFilters checks that every start filter is derived (else the
// expression silently runs on every text) and never rules out a text its
// expression matches, on texts generated from the expression (in random
// case, with K and ſ for k and s) and then mutated.
func TestStartFilters(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for name, r := range startREs() {
		if r.f == nil {
			t.Errorf("%s: no start filter derived", name)
			continue
		}
		re, err := syntax.Parse(r.re.String(), syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		matched := 0
		for range 8000 {
			var b strings.Builder
			generate(rng, &b, re)
			s := mutate(rng, b.String())
			if r.re.MatchString(s) {
				matched++
				if !r.f.mayMatch(s) {
					t.Fatalf("%s: the filter rules out %q, which the expression matches", name, s)
				}
			}
		}
		if matched < 2000 {
			t.Errorf("%s: only %d generated texts matched: the check says little", name, matched)
		}
	}
}

// generate writes a random text that re matches, mostly.
func generate(rng *rand.Rand, b *strings.Builder, re *syntax.Regexp) {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				for range rng.Intn(3) { // k, K, K (U+212A); s, S, ſ (U+017F)
					r = unicode.SimpleFold(r)
				}
			}
			b.WriteRune(r)
		}
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return
		}
		i := rng.Intn(len(re.Rune)/2) * 2
		lo, hi := re.Rune[i], re.Rune[i+1]
		if hi-lo > 300 {
			hi = lo + 300
		}
		b.WriteRune(lo + rune(rng.Intn(int(hi-lo)+1)))
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteRune([]rune("a Z:\u00e9\u212a")[rng.Intn(6)])
	case syntax.OpCapture:
		generate(rng, b, re.Sub[0])
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			generate(rng, b, sub)
		}
	case syntax.OpAlternate:
		generate(rng, b, re.Sub[rng.Intn(len(re.Sub))])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		n := rng.Intn(3)
		switch {
		case re.Op == syntax.OpPlus && n == 0:
			n = 1
		case re.Op == syntax.OpQuest && n > 1:
			n = 1
		case re.Op == syntax.OpRepeat:
			n = re.Min + rng.Intn(3)
			if re.Max >= 0 && n > re.Max {
				n = re.Max
			}
		}
		for range n {
			generate(rng, b, re.Sub[0])
		}
	}
}

// mutate changes s a little, now and then.
func mutate(rng *rand.Rand, s string) string {
	switch rng.Intn(8) {
	case 0:
		return " " + s
	case 1:
		return s + " and more"
	case 2:
		return strings.ToUpper(s)
	case 3:
		if len(s) > 1 {
			return s[:rng.Intn(len(s))]
		}
	case 4:
		return "\xff" + s
	}
	return s
}

func TestContainsFold(t *testing.T) {
	for _, c := range []struct {
		s, lit string
		want   bool
	}{
		{"Mailer-Daemon", "mail", true}, {"MAIL", "mail", true}, {"mai", "mail", false},
		{"", "x", false}, {"abc", "", true}, {"xxNDR", "ndr", true}, {"Pöstmaster", "tma", true},
	} {
		if got := containsFold(c.s, c.lit); got != c.want {
			t.Errorf("containsFold(%q, %q) = %v", c.s, c.lit, got)
		}
	}
}

func TestContainsFoldRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	alpha := "abAB-_\u212a\u017fé"
	runes := []rune(alpha)
	word := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteRune(runes[rng.Intn(len(runes))])
		}
		return b.String()
	}
	for range 100000 {
		s, lit := word(rng.Intn(12)), strings.ToLower(word(1+rng.Intn(3)))
		if !isASCII(lit) {
			continue
		}
		want := strings.Contains(asciiLower(s), lit)
		if got := containsFold(s, lit); got != want {
			t.Fatalf("containsFold(%q, %q) = %v, want %v", s, lit, got, want)
		}
	}
}
