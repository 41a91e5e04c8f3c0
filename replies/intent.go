package replies

import (
	"fmt"
	"strings"
	"sync"
)

// IntentRule is one entry of the intent rules: a list of phrases that, when
// one occurs in the visible text of a reply, give the reply Intent.
//
// Phrases are matched on whole words, ignoring case, accents, punctuation
// inside a sentence (commas, dashes, quotes) and the spelling of English
// contractions ("don't" = "do not"). A word ending in "*" matches any word it
// starts ("unsubscrib*"); a "~" stands for up to two arbitrary words
// ("not ~ interested" matches "not really interested").
type IntentRule struct {
	Intent  Intent
	Lang    string // language of the phrases ("en", "nl", "de", "fr"); informational
	Phrases []string
	// NeedsAddress: the rule only counts when the visible text names an
	// e-mail address other than the sender's and the recipients' (the
	// referred person).
	NeedsAddress bool
	// CcCounts: for NeedsAddress rules, an address added in Cc counts too
	// ("cc'ing Jane who handles this").
	CcCounts bool
}

// Rules are the intent rules of the classifier. Rules are tried in order and
// the first rule with a phrase in the visible text decides, with two
// refinements that make negations win:
//
//   - a match inside a longer match of another intent does not count
//     ("interested" inside "not interested", "not interested" inside
//     "not interested right now");
//   - a match preceded, within four words of the same clause, by one of
//     Negations does not count ("I don't think it sounds good" does not
//     match "sounds good").
//
// Build on DefaultRules with With, or construct a Rules value from scratch.
// A Rules value must not be modified after its first use: With returns a new
// one.
type Rules struct {
	Intents   []IntentRule
	Negations []string

	cache *rulesCache
}

type rulesCache struct {
	once sync.Once
	c    *compiledRules
}

// With returns a copy of r with phrases added for intent in language lang.
// They join the first rule of that intent and language that needs no
// address; when there is none, a new rule is inserted after the last rule of
// that intent (or at the end).
func (r Rules) With(intent Intent, lang string, phrases ...string) Rules {
	out := Rules{
		Intents:   make([]IntentRule, len(r.Intents)),
		Negations: append([]string(nil), r.Negations...),
		cache:     &rulesCache{},
	}
	for i, ir := range r.Intents {
		ir.Phrases = append([]string(nil), ir.Phrases...)
		out.Intents[i] = ir
	}
	for i := range out.Intents {
		ir := &out.Intents[i]
		if ir.Intent == intent && ir.Lang == lang && !ir.NeedsAddress {
			ir.Phrases = append(ir.Phrases, phrases...)
			return out
		}
	}
	at := len(out.Intents)
	for i, ir := range out.Intents {
		if ir.Intent == intent {
			at = i + 1
		}
	}
	nr := IntentRule{Intent: intent, Lang: lang, Phrases: append([]string(nil), phrases...)}
	out.Intents = append(out.Intents[:at], append([]IntentRule{nr}, out.Intents[at:]...)...)
	return out
}

// Validate reports rules that can never match: unknown intents and phrases
// without a word.
func (r Rules) Validate() error {
	for i, ir := range r.Intents {
		switch ir.Intent {
		case IntentInterested, IntentNotNow, IntentNotInterested, IntentReferral, IntentUnsubscribe, IntentOther:
		default:
			return fmt.Errorf("replies: rule %d: unknown intent %q", i, ir.Intent)
		}
		for _, p := range ir.Phrases {
			if len(compilePhrase(p)) == 0 {
				return fmt.Errorf("replies: rule %d (%s/%s): phrase %q has no words", i, ir.Intent, ir.Lang, p)
			}
		}
	}
	return nil
}

// compiled returns the compiled form of r, cached when r came from
// DefaultRules or With.
func (r Rules) compiled() *compiledRules {
	if r.cache == nil {
		return compileRules(r)
	}
	r.cache.once.Do(func() { r.cache.c = compileRules(r) })
	return r.cache.c
}

// phraseWord is one word of a compiled phrase.
type phraseWord struct {
	text   string
	prefix bool // "unsubscrib*"
	gap    bool // "~": up to two arbitrary words
}

type compiledPhrase struct {
	words []phraseWord
	rule  int
}

type compiledRules struct {
	phrases []compiledPhrase
	byFirst map[string][]int // exact first word → phrase indexes
	wild    [256][]int       // phrases starting with a prefix word, by its first byte
	neg     map[string]bool
	rules   []IntentRule
}

func compileRules(r Rules) *compiledRules {
	c := &compiledRules{byFirst: map[string][]int{}, neg: map[string]bool{}, rules: r.Intents}
	for _, n := range r.Negations {
		for _, w := range compilePhrase(n) {
			c.neg[w.text] = true
		}
	}
	for ri, ir := range r.Intents {
		for _, p := range ir.Phrases {
			words := compilePhrase(p)
			if len(words) == 0 || words[0].gap {
				continue
			}
			idx := len(c.phrases)
			c.phrases = append(c.phrases, compiledPhrase{words: words, rule: ri})
			if words[0].prefix {
				b := words[0].text[0]
				c.wild[b] = append(c.wild[b], idx)
			} else {
				c.byFirst[words[0].text] = append(c.byFirst[words[0].text], idx)
			}
		}
	}
	return c
}

// compilePhrase normalises a phrase the same way as the text it is matched
// against.
func compilePhrase(p string) []phraseWord {
	var out []phraseWord
	for _, t := range tokenize(fold(p)) {
		switch {
		case t.kind == tokWord || t.kind == tokNum:
			out = append(out, phraseWord{text: t.text})
		case t.text == "*" && len(out) > 0 && !out[len(out)-1].gap:
			out[len(out)-1].prefix = true
		case t.text == "~":
			out = append(out, phraseWord{gap: true})
		}
	}
	// a trailing gap matches nothing useful
	for len(out) > 0 && out[len(out)-1].gap {
		out = out[:len(out)-1]
	}
	return out
}

// textWord is one word of the text being classified.
type textWord struct {
	text    string
	clause  bool // starts a clause (after a comma, dash, …)
	barrier bool // starts a sentence: phrases do not run across it
}

func textWords(s string) []textWord {
	s = fold(s)
	out := make([]textWord, 0, len(s)/5+1)
	barrier, clause := true, true
	forEachToken(s, func(t token) {
		if t.kind == tokPunct {
			switch t.text {
			case ".", "!", "?", ";", ":":
				barrier, clause = true, true
			case "*", "~":
			default:
				clause = true
			}
			return
		}
		out = append(out, textWord{text: t.text, clause: clause || t.clause, barrier: barrier || t.sentence})
		barrier, clause = false, false
	})
	return out
}

type phraseMatch struct {
	start, end int // word indexes [start, end)
	rule       int
}

// matchAll returns every phrase match in the words.
func (c *compiledRules) matchAll(ws []textWord) []phraseMatch {
	var out []phraseMatch
	try := func(pi, k int) {
		p := c.phrases[pi]
		if end, ok := matchWords(ws, k, p.words, true); ok {
			out = append(out, phraseMatch{start: k, end: end, rule: p.rule})
		}
	}
	for k, w := range ws {
		for _, pi := range c.byFirst[w.text] {
			try(pi, k)
		}
		if w.text != "" {
			for _, pi := range c.wild[w.text[0]] {
				try(pi, k)
			}
		}
	}
	return out
}

// matchWords matches phrase words at text position k and returns the end.
func matchWords(ws []textWord, k int, words []phraseWord, first bool) (int, bool) {
	if len(words) == 0 {
		return k, true
	}
	w := words[0]
	if w.gap {
		for skip := 0; skip <= 2; skip++ {
			if k+skip > len(ws) {
				break
			}
			if skip > 0 && ws[k+skip-1].barrier {
				break
			}
			if end, ok := matchWords(ws, k+skip, words[1:], false); ok {
				return end, true
			}
		}
		return 0, false
	}
	if k >= len(ws) || (!first && ws[k].barrier) {
		return 0, false
	}
	if w.prefix {
		if !strings.HasPrefix(ws[k].text, w.text) {
			return 0, false
		}
	} else if ws[k].text != w.text {
		return 0, false
	}
	return matchWords(ws, k+1, words[1:], false)
}

// negated reports whether one of the negation words occurs in the four words
// before position k, within the same clause.
func (c *compiledRules) negated(ws []textWord, k int) bool {
	if ws[k].clause {
		return false
	}
	for j := k - 1; j >= 0 && j >= k-4; j-- {
		if c.neg[ws[j].text] {
			return true
		}
		if ws[j].clause {
			return false
		}
	}
	return false
}

// intentOf classifies visible text. hasAddress says whether the text names a
// referred address, hasCc whether one was added in Cc.
func (c *compiledRules) intentOf(text string, hasAddress, hasCc bool) (Intent, *IntentRule) {
	ws := textWords(text)
	matches := c.matchAll(ws)
	alive := make([]bool, len(matches))
	for i, m := range matches {
		// a phrase that is itself a negation ("pas intéressé" in "nous ne
		// sommes pas intéressés") is not cancelled by the negation before it
		alive[i] = c.neg[ws[m.start].text] || !c.negated(ws, m.start)
	}
	// a match inside a longer match of another intent does not count; a
	// covering match starts at most maxLen words earlier, so only those are
	// compared (matches come out ordered by start)
	maxLen := 0
	for _, m := range matches {
		if m.end-m.start > maxLen {
			maxLen = m.end - m.start
		}
	}
	covered := make([]bool, len(matches))
	// firstAt: start word → index of the first match there, or -1; a match
	// can only be covered by another one
	var firstAt []int
	if len(matches) > 1 {
		firstAt = make([]int, len(ws))
		for i := range firstAt {
			firstAt[i] = -1
		}
		for i := len(matches) - 1; i >= 0; i-- {
			firstAt[matches[i].start] = i
		}
	}
	for i, m := range matches {
		if !alive[i] || firstAt == nil {
			continue
		}
	search:
		for st := max(m.start-maxLen, 0); st <= m.start; st++ {
			j := firstAt[st]
			if j < 0 {
				continue
			}
			for ; j < len(matches) && matches[j].start == st; j++ {
				n := matches[j]
				if j == i || !alive[j] || c.rules[n.rule].Intent == c.rules[m.rule].Intent {
					continue
				}
				if m.end <= n.end && n.end-n.start > m.end-m.start {
					covered[i] = true
					break search
				}
			}
		}
	}
	for i := range alive {
		alive[i] = alive[i] && !covered[i]
	}
	for ri := range c.rules {
		ir := &c.rules[ri]
		if ir.NeedsAddress && !hasAddress && !(ir.CcCounts && hasCc) {
			continue
		}
		for i, m := range matches {
			if alive[i] && m.rule == ri {
				return ir.Intent, ir
			}
		}
	}
	return IntentOther, nil
}
