package replies

import (
	"strconv"
	"strings"
	"time"
)

// This file holds a small date finder for the date expressions that appear in
// auto-replies ("back on Monday 7 December", "bis einschließlich 7.12.2026")
// and in "not now" replies ("check back in Q2", "neem in maart contact op").
// It works on folded tokens (see text.go) in English, Dutch, German and French
// and resolves every date relative to a base date (the message date), always
// into the future.

// dateCue says how the words before a date relate it to the writer's absence.
type dateCue uint8

const (
	cueNone  dateCue = iota
	cueUntil         // "until X", "tot en met X", "bis X", "jusqu'au X": back the day after X
	cueBack          // "back on X", "terug op X", "ab X", "de retour le X": back on X
	cueAfter         // "after X", "na X", "nach X", "après X": X itself
)

// datePrecision says how much of the date the text named.
type datePrecision uint8

const (
	precDay datePrecision = iota
	precMonth
	precQuarter
	precSeason
	precRelative
	precWeekday
)

// dateHit is one date expression found in a text.
type dateHit struct {
	start, end int       // token indices [start, end)
	t          time.Time // midnight of the resolved day, in the base location
	prec       datePrecision
	cue        dateCue
	rangeEnd   bool // the end of a range such as "Nov 23-27": an implicit "until"
	// later is true when words around the date ask to be contacted again
	// ("reach out in Q2", "neem in maart weer contact op")
	later bool
}

// laterWords, near a date, mark the date as the moment to get back in touch.
var laterWords = map[string]bool{
	"again": true, "back": true, "reach": true, "touch": true, "ping": true,
	"contact": true, "follow": true, "followup": true, "try": true, "revisit": true,
	"circle": true, "talk": true, "speak": true, "call": true, "chat": true,
	"reconnect": true, "after": true, "until": true, "later": true, "resume": true,
	"write": true, "email": true, "mail": true,
	"weer": true, "opnieuw": true, "terug": true, "bellen": true, "spreken": true,
	"na": true, "tot": true, "contacteren": true, "benaderen": true,
	"wieder": true, "melden": true, "kontakt": true, "kontaktieren": true,
	"sprechen": true, "nach": true, "bis": true, "ab": true, "erneut": true,
	"revenir": true, "recontacter": true, "recontactez": true, "rappeler": true,
	"reparler": true, "reprendre": true, "apres": true, "relancer": true,
	"relancez": true, "jusqu'": true,
}

var monthNames = map[string]time.Month{
	// English
	"january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3,
	"april": 4, "apr": 4, "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7,
	"august": 8, "aug": 8, "september": 9, "sept": 9, "sep": 9, "october": 10,
	"oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
	// Dutch
	"januari": 1, "februari": 2, "maart": 3, "mrt": 3, "mei": 5, "juni": 6,
	"juli": 7, "augustus": 8, "oktober": 10, "okt": 10,
	// German
	"januar": 1, "janner": 1, "februar": 2, "marz": 3, "maerz": 3, "mai": 5,
	"dezember": 12, "dez": 12,
	// French
	"janvier": 1, "janv": 1, "fevrier": 2, "fevr": 2, "fev": 2, "mars": 3,
	"avril": 4, "avr": 4, "juin": 6, "juillet": 7, "juil": 7, "aout": 8,
	"septembre": 9, "octobre": 10, "novembre": 11, "decembre": 12,
}

// monthAlone lists the month names that are accepted without a day number
// ("in March"). Short forms and words that are also common words ("may",
// "mar", "dec") need a day or a year next to them.
var monthAlone = map[string]bool{
	"january": true, "february": true, "march": true, "april": true, "june": true,
	"july": true, "august": true, "september": true, "october": true,
	"november": true, "december": true,
	"januari": true, "februari": true, "maart": true, "mei": true, "juni": true,
	"juli": true, "augustus": true, "oktober": true,
	"januar": true, "februar": true, "marz": true, "maerz": true, "mai": true,
	"dezember": true,
	"janvier":  true, "fevrier": true, "mars": true, "avril": true, "juin": true,
	"juillet": true, "aout": true, "septembre": true, "octobre": true,
	"novembre": true, "decembre": true,
}

// weekdays holds full weekday names, accepted anywhere.
var weekdays = map[string]time.Weekday{
	"monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
	"sunday":  time.Sunday,
	"maandag": time.Monday, "dinsdag": time.Tuesday, "woensdag": time.Wednesday,
	"donderdag": time.Thursday, "vrijdag": time.Friday, "zaterdag": time.Saturday,
	"zondag": time.Sunday,
	"montag": time.Monday, "dienstag": time.Tuesday, "mittwoch": time.Wednesday,
	"donnerstag": time.Thursday, "freitag": time.Friday, "samstag": time.Saturday,
	"sonnabend": time.Saturday, "sonntag": time.Sunday,
	"lundi": time.Monday, "mardi": time.Tuesday, "mercredi": time.Wednesday,
	"jeudi": time.Thursday, "vendredi": time.Friday, "samedi": time.Saturday,
	"dimanche": time.Sunday,
}

// shortWeekdays are abbreviations only accepted directly before a day number
// ("di 10 nov.", "Mon, 7 Dec"): "do", "so" and "ma" are ordinary words too.
var shortWeekdays = map[string]bool{
	"mon": true, "tue": true, "tues": true, "wed": true, "thu": true, "thur": true,
	"thurs": true, "fri": true, "sat": true, "sun": true,
	"ma": true, "di": true, "wo": true, "do": true, "vr": true, "za": true, "zo": true,
	"mo": true, "mi": true, "fr": true, "sa": true, "so": true,
	"lun": true, "mer": true, "jeu": true, "ven": true, "sam": true, "dim": true,
}

// seasons map to the first month of the meteorological season.
var seasons = map[string]time.Month{
	"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12,
	"voorjaar": 3, "lente": 3, "zomer": 6, "najaar": 9, "herfst": 9,
	"fruhjahr": 3, "fruhling": 3, "sommer": 6, "herbst": 9,
	"printemps": 3, "ete": 6, "automne": 9, "hiver": 12,
}

// dateLeadWords may stand directly before a month name or season used on its
// own ("in March", "im Frühjahr", "après l'été").
var dateLeadWords = map[string]bool{
	"in": true, "after": true, "until": true, "till": true, "by": true, "from": true,
	"around": true, "early": true, "mid": true, "late": true, "end": true, "beginning": true,
	"start": true, "of": true, "this": true, "next": true, "coming": true, "before": true,
	"the": true, "over": true,
	"na": true, "tot": true, "vanaf": true, "begin": true, "eind": true, "medio": true,
	"half": true, "het": true, "dit": true, "volgend": true, "volgende": true, "voor": true,
	"im": true, "ab": true, "nach": true, "bis": true, "anfang": true, "ende": true,
	"mitte": true, "vor": true, "diesen": true, "dieses": true, "nachsten": true,
	"nachstes": true, "kommenden": true, "zum": true,
	"en": true, "apres": true, "debut": true, "fin": true, "jusqu'": true, "vers": true,
	"courant": true, "mi": true, "cet": true, "l'": true, "au": true, "d'ici": true,
	"a": true, "partir": true, "du": true, "prochain": true,
}

// fillers are skipped when looking for the cue before a date.
var cueFillers = map[string]bool{
	"the": true, "on": true, "of": true, "le": true, "la": true, "l'": true,
	"de": true, "du": true, "dem": true, "den": true, "der": true, "zum": true,
	"zur": true, "am": true, "op": true, "het": true, "van": true, "a": true,
	"en": true, "met": true, "au": true, "office": true, "in": true, "to": true,
	"be": true, "will": true, "i": true, "ben": true, "bin": true,
	"serai": true, "je": true, "ich": true, "ik": true, "again": true,
}

var untilWords = map[string]bool{
	"until": true, "till": true, "til": true, "through": true, "thru": true,
	"tot": true, "t/m": true, "bis": true, "einschliesslich": true, "inklusive": true,
	"jusqu'": true, "inclusive": true, "including": true,
}

var backWords = map[string]bool{
	"back": true, "return": true, "returning": true, "returns": true,
	"terug": true, "weer": true, "retour": true, "zuruck": true, "wieder": true,
	"ab": true, "des": true, "reprise": true, "reachable": true, "available": true,
}

var afterWords = map[string]bool{
	"after": true, "na": true, "nach": true, "apres": true, "following": true,
}

// numberWords are spelled-out counts used in "in three weeks", "over twee
// maanden", "in drei Wochen", "dans deux mois".
var numberWords = map[string]int{
	"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
	"seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
	"couple": 2, "few": 3,
	"een": 1, "twee": 2, "drie": 3, "vier": 4, "vijf": 5, "zes": 6, "paar": 2,
	"ein": 1, "eine": 1, "einem": 1, "einer": 1, "zwei": 2, "funf": 5, "sechs": 6,
	"un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "quelques": 3,
}

// unitWords map duration units to days (months use calendar months: -1).
var unitWords = map[string]int{
	"day": 1, "days": 1, "week": 7, "weeks": 7, "month": -1, "months": -1,
	"dag": 1, "dagen": 1, "weken": 7, "maand": -1, "maanden": -1,
	"tag": 1, "tage": 1, "tagen": 1, "woche": 7, "wochen": 7, "monat": -1, "monate": -1, "monaten": -1,
	"jour": 1, "jours": 1, "semaine": 7, "semaines": 7, "mois": -1,
}

// findDates returns the date expressions in text, resolved against base.
func findDates(text string, base time.Time) []dateHit {
	toks := tokenize(fold(text))
	f := dateFinder{toks: toks, base: midnight(base)}
	return f.run()
}

type dateFinder struct {
	toks []token
	base time.Time
}

func midnight(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

func (f *dateFinder) run() []dateHit {
	var hits []dateHit
	for i := 0; i < len(f.toks); {
		h, ok := f.matchAt(i)
		if !ok {
			i++
			continue
		}
		if !h.rangeEnd {
			h.cue = f.cueBefore(h.start)
		} else if c := f.cueBefore(h.start); c == cueBack || c == cueAfter {
			// "back on 3-4 May" is odd but keep the stated cue
			h.cue = c
		}
		h.later = f.laterAround(h.start, h.end)
		hits = append(hits, h)
		i = h.end
	}
	return hits
}

func (f *dateFinder) word(i int) string {
	if i < 0 || i >= len(f.toks) || f.toks[i].kind != tokWord {
		return ""
	}
	return f.toks[i].text
}

func (f *dateFinder) punct(i int, p string) bool {
	return i >= 0 && i < len(f.toks) && f.toks[i].kind == tokPunct && f.toks[i].text == p
}

// day returns the day number of token i (1..31): "7", "7.", "29th", "1er".
func (f *dateFinder) day(i int) (int, bool) {
	if i < 0 || i >= len(f.toks) || f.toks[i].kind != tokNum {
		return 0, false
	}
	s := strings.TrimSuffix(f.toks[i].text, ".")
	if len(s) == 0 || len(s) > 2 || !allDigits(s) {
		return 0, false
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 31 {
		return 0, false
	}
	// "10:30" is a time, not a day
	if f.punct(i+1, ":") {
		return 0, false
	}
	return n, true
}

// dayRange parses "23-27" into its two days.
func (f *dateFinder) dayRange(i int) (int, int, bool) {
	if i < 0 || i >= len(f.toks) || f.toks[i].kind != tokNum {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(strings.TrimSuffix(f.toks[i].text, "."), "-")
	if !ok || len(a) == 0 || len(a) > 2 || len(b) == 0 || len(b) > 2 || !allDigits(a) || !allDigits(b) {
		return 0, 0, false
	}
	x, _ := strconv.Atoi(a)
	y, _ := strconv.Atoi(b)
	if x < 1 || y > 31 || x >= y {
		return 0, 0, false
	}
	return x, y, true
}

func (f *dateFinder) year(i int) (int, bool) {
	if i < 0 || i >= len(f.toks) || f.toks[i].kind != tokNum || f.toks[i].suffix != "" {
		return 0, false
	}
	s := strings.TrimSuffix(f.toks[i].text, ".")
	if len(s) != 4 || !allDigits(s) {
		return 0, false
	}
	y, _ := strconv.Atoi(s)
	if y < 1970 || y > 2200 {
		return 0, false
	}
	// "2026 at 10:12" is a year, but "1400 hours" is not worth guarding
	return y, true
}

func (f *dateFinder) month(i int) (time.Month, bool) {
	m, ok := monthNames[f.word(i)]
	return m, ok
}

// matchAt tries every pattern at token i.
func (f *dateFinder) matchAt(i int) (dateHit, bool) {
	start := i
	// optional weekday before a date
	if wd := f.word(i); wd != "" {
		_, full := weekdays[wd]
		if full || shortWeekdays[wd] {
			j := i + 1
			if f.punct(j, ".") {
				j++
			}
			if f.punct(j, ",") {
				j++
			}
			if h, ok := f.matchDate(j); ok {
				h.start = start
				return h, true
			}
			if full {
				return f.matchWeekday(i)
			}
			return dateHit{}, false
		}
	}
	if h, ok := f.matchDate(i); ok {
		return h, true
	}
	if h, ok := f.matchRelative(i); ok {
		return h, true
	}
	return dateHit{}, false
}

// matchDate matches a calendar date, a month, a quarter or a season at i.
func (f *dateFinder) matchDate(i int) (dateHit, bool) {
	if h, ok := f.matchNumeric(i); ok {
		return h, true
	}
	if h, ok := f.matchDayMonth(i); ok {
		return h, true
	}
	if h, ok := f.matchMonthDay(i); ok {
		return h, true
	}
	if h, ok := f.matchQuarter(i); ok {
		return h, true
	}
	if h, ok := f.matchMonthOnly(i); ok {
		return h, true
	}
	if h, ok := f.matchSeason(i); ok {
		return h, true
	}
	return dateHit{}, false
}

// matchDayMonth: "29 November", "4. Dezember 2026", "the 7th of December",
// "1er décembre", "23-27 November".
func (f *dateFinder) matchDayMonth(i int) (dateHit, bool) {
	d, ok := f.day(i)
	_, d2, isRange := f.dayRange(i)
	if !ok && !isRange {
		return dateHit{}, false
	}
	j := i + 1
	if w := f.word(j); w == "of" || w == "de" || w == "van" {
		j++
	}
	m, ok := f.month(j)
	if !ok {
		return dateHit{}, false
	}
	j++
	if f.punct(j, ".") {
		j++
	}
	y := 0
	k := j
	if f.punct(k, ",") {
		k++
	}
	if yy, ok := f.year(k); ok {
		y = yy
		j = k + 1
	}
	if isRange {
		t, ok := f.resolveDMY(d2, m, y)
		return dateHit{start: i, end: j, t: t, prec: precDay, cue: cueUntil, rangeEnd: true}, ok
	}
	t, ok := f.resolveDMY(d, m, y)
	return dateHit{start: i, end: j, t: t, prec: precDay}, ok
}

// matchMonthDay: "November 30", "Sep 18", "September 22nd, 2026",
// "January the 15th", "Nov 23-27".
func (f *dateFinder) matchMonthDay(i int) (dateHit, bool) {
	m, ok := f.month(i)
	if !ok {
		return dateHit{}, false
	}
	j := i + 1
	if f.punct(j, ".") {
		j++
	}
	if f.word(j) == "the" {
		j++
	}
	d, okDay := f.day(j)
	_, d2, isRange := f.dayRange(j)
	if !okDay && !isRange {
		return dateHit{}, false
	}
	// "May 2026" is a month with a year, not a day
	if okDay && f.toks[j].suffix == "" && !strings.HasSuffix(f.toks[j].text, ".") {
		if _, isYear := f.year(j); isYear {
			return dateHit{}, false
		}
	}
	j++
	y := 0
	k := j
	if f.punct(k, ",") {
		k++
	}
	if yy, ok := f.year(k); ok {
		y = yy
		j = k + 1
	}
	if isRange {
		t, ok := f.resolveDMY(d2, m, y)
		return dateHit{start: i, end: j, t: t, prec: precDay, cue: cueUntil, rangeEnd: true}, ok
	}
	t, ok := f.resolveDMY(d, m, y)
	return dateHit{start: i, end: j, t: t, prec: precDay}, ok
}

// matchNumeric: "7.12.2026", "7.12.", "12/7", "09/18/2014", "2026-12-07".
// Forms without a year need a cue word right before them.
func (f *dateFinder) matchNumeric(i int) (dateHit, bool) {
	if i >= len(f.toks) || f.toks[i].kind != tokNum {
		return dateHit{}, false
	}
	raw := f.toks[i].text
	trailingDot := strings.HasSuffix(raw, ".")
	s := strings.TrimSuffix(raw, ".")
	var sep byte
	switch {
	case strings.Contains(s, "."):
		sep = '.'
	case strings.Contains(s, "/"):
		sep = '/'
	case strings.Contains(s, "-"):
		sep = '-'
	default:
		return dateHit{}, false
	}
	parts := strings.Split(s, string(sep))
	if len(parts) < 2 || len(parts) > 3 {
		return dateHit{}, false
	}
	nums := make([]int, len(parts))
	for k, p := range parts {
		if p == "" || !allDigits(p) || len(p) > 4 {
			return dateHit{}, false
		}
		nums[k], _ = strconv.Atoi(p)
	}
	h := dateHit{start: i, end: i + 1, prec: precDay}
	// ISO 2026-12-07
	if len(parts) == 3 && len(parts[0]) == 4 {
		t, ok := f.resolveDMY(nums[2], time.Month(nums[1]), nums[0])
		h.t = t
		return h, ok
	}
	y := 0
	if len(parts) == 3 {
		switch len(parts[2]) {
		case 4:
			y = nums[2]
		case 2:
			y = 2000 + nums[2]
		default:
			return dateHit{}, false
		}
		if len(parts[0]) > 2 || len(parts[1]) > 2 {
			return dateHit{}, false
		}
	} else {
		if len(parts[0]) > 2 || len(parts[1]) > 2 {
			return dateHit{}, false
		}
		// without a year: "7.12." is German; "12/7" and "7.12" need a cue
		if !(sep == '.' && trailingDot) && f.cueBefore(i) == cueNone {
			return dateHit{}, false
		}
		if sep == '-' {
			return dateHit{}, false // "23-27" is a range of numbers
		}
	}
	a, b := nums[0], nums[1]
	if sep == '.' || sep == '-' {
		t, ok := f.resolveDMY(a, time.Month(b), y)
		h.t = t
		return h, ok
	}
	// a slash is ambiguous: 12/7 is 12 July in Europe and December 7 in the
	// US. Take the reading that lies nearest after the base date.
	t1, ok1 := f.resolveDMY(a, time.Month(b), y)
	t2, ok2 := f.resolveDMY(b, time.Month(a), y)
	// a reading before the base date only counts when it is the only one
	if ok1 && ok2 {
		if t1.Before(f.base) && !t2.Before(f.base) {
			ok1 = false
		} else if t2.Before(f.base) && !t1.Before(f.base) {
			ok2 = false
		}
	}
	switch {
	case ok1 && ok2:
		if t2.Before(t1) {
			h.t = t2
		} else {
			h.t = t1
		}
	case ok1:
		h.t = t1
	case ok2:
		h.t = t2
	default:
		return dateHit{}, false
	}
	return h, true
}

// matchQuarter: "Q2", "Q1 2027".
func (f *dateFinder) matchQuarter(i int) (dateHit, bool) {
	if f.word(i) != "q" || i+1 >= len(f.toks) || f.toks[i+1].kind != tokNum {
		return dateHit{}, false
	}
	q, err := strconv.Atoi(f.toks[i+1].text)
	if err != nil || q < 1 || q > 4 {
		return dateHit{}, false
	}
	m := time.Month(3*(q-1) + 1)
	j := i + 2
	y := 0
	if yy, ok := f.year(j); ok {
		y = yy
		j++
	}
	t, ok := f.resolveFirstOf(m, y)
	return dateHit{start: i, end: j, t: t, prec: precQuarter}, ok
}

// matchMonthOnly: "in March", "im März", "en mars", "March 2027".
func (f *dateFinder) matchMonthOnly(i int) (dateHit, bool) {
	w := f.word(i)
	m, ok := monthNames[w]
	if !ok {
		return dateHit{}, false
	}
	j := i + 1
	if f.punct(j, ".") {
		j++
	}
	y, hasYear := f.year(j)
	if hasYear {
		j++
	}
	if !hasYear && (!monthAlone[w] || !dateLeadWords[f.word(i-1)] || f.toks[i].sentence) {
		return dateHit{}, false
	}
	day := 1
	switch f.word(i - 1) {
	case "mid", "medio", "mitte", "mi", "half":
		day = 15
	}
	t, ok := f.resolveDMY(day, m, y)
	if ok && day == 1 {
		switch f.word(i - 1) {
		case "end", "eind", "ende", "fin", "late":
			t = t.AddDate(0, 1, -1)
		}
	}
	return dateHit{start: i, end: j, t: t, prec: precMonth}, ok
}

// matchSeason: "in spring", "im Frühjahr", "après l'été".
func (f *dateFinder) matchSeason(i int) (dateHit, bool) {
	w := f.word(i)
	m, ok := seasons[w]
	if !ok || f.toks[i].sentence || !dateLeadWords[f.word(i-1)] {
		return dateHit{}, false
	}
	// French "a été" (has been) is not the summer
	if w == "ete" && f.word(i-1) == "a" {
		return dateHit{}, false
	}
	j := i + 1
	y := 0
	if yy, ok := f.year(j); ok {
		y = yy
		j++
	}
	t, ok := f.resolveFirstOf(m, y)
	return dateHit{start: i, end: j, t: t, prec: precSeason}, ok
}

// matchWeekday: "back on Monday", "until Friday", "ab Montag".
func (f *dateFinder) matchWeekday(i int) (dateHit, bool) {
	wd := weekdays[f.word(i)]
	if f.cueBefore(i) == cueNone && f.word(i-1) != "next" && f.word(i-1) != "on" {
		return dateHit{}, false
	}
	diff := (int(wd) - int(f.base.Weekday()) + 7) % 7
	if diff == 0 {
		diff = 7
	}
	t := f.base.AddDate(0, 0, diff)
	return dateHit{start: i, end: i + 1, t: t, prec: precWeekday}, true
}

// relative phrase tables: token sequences and what they resolve to.
type relKind uint8

const (
	relNextWeek relKind = iota
	relNextMonth
	relNextYear
	relNextQuarter
	relNewYear
	relHolidays
	relTomorrow
)

var relPhrases = []struct {
	words []string
	kind  relKind
}{
	{[]string{"next", "week"}, relNextWeek},
	{[]string{"next", "month"}, relNextMonth},
	{[]string{"next", "year"}, relNextYear},
	{[]string{"next", "quarter"}, relNextQuarter},
	{[]string{"new", "year"}, relNewYear},
	{[]string{"after", "the", "holidays"}, relHolidays},
	{[]string{"tomorrow"}, relTomorrow},
	{[]string{"volgende", "week"}, relNextWeek},
	{[]string{"volgende", "maand"}, relNextMonth},
	{[]string{"volgend", "jaar"}, relNextYear},
	{[]string{"volgend", "kwartaal"}, relNextQuarter},
	{[]string{"volgende", "kwartaal"}, relNextQuarter},
	{[]string{"nieuwe", "jaar"}, relNewYear},
	{[]string{"na", "de", "feestdagen"}, relHolidays},
	{[]string{"nachste", "woche"}, relNextWeek},
	{[]string{"nachsten", "monat"}, relNextMonth},
	{[]string{"nachstes", "jahr"}, relNextYear},
	{[]string{"nachsten", "jahr"}, relNextYear},
	{[]string{"nachstes", "quartal"}, relNextQuarter},
	{[]string{"nachsten", "quartal"}, relNextQuarter},
	{[]string{"neuen", "jahr"}, relNewYear},
	{[]string{"nach", "den", "feiertagen"}, relHolidays},
	{[]string{"semaine", "prochaine"}, relNextWeek},
	{[]string{"mois", "prochain"}, relNextMonth},
	{[]string{"annee", "prochaine"}, relNextYear},
	{[]string{"trimestre", "prochain"}, relNextQuarter},
	{[]string{"nouvelle", "annee"}, relNewYear},
	{[]string{"apres", "les", "fetes"}, relHolidays},
	{[]string{"demain"}, relTomorrow},
}

// matchRelative: "next month", "in 3 weeks", "over twee maanden", "Q2".
func (f *dateFinder) matchRelative(i int) (dateHit, bool) {
	for _, p := range relPhrases {
		if !f.wordsAt(i, p.words) {
			continue
		}
		b := f.base
		var t time.Time
		switch p.kind {
		case relNextWeek:
			diff := (int(time.Monday) - int(b.Weekday()) + 7) % 7
			if diff == 0 {
				diff = 7
			}
			t = b.AddDate(0, 0, diff)
		case relNextMonth:
			t = time.Date(b.Year(), b.Month()+1, 1, 0, 0, 0, 0, b.Location())
		case relNextYear, relNewYear:
			t = time.Date(b.Year()+1, 1, 1, 0, 0, 0, 0, b.Location())
		case relNextQuarter:
			q := (int(b.Month()) - 1) / 3
			t = time.Date(b.Year(), time.Month(3*(q+1)+1), 1, 0, 0, 0, 0, b.Location())
		case relHolidays:
			if b.Month() < time.October {
				return dateHit{}, false
			}
			t = time.Date(b.Year()+1, 1, 1, 0, 0, 0, 0, b.Location())
		case relTomorrow:
			t = b.AddDate(0, 0, 1)
		}
		return dateHit{start: i, end: i + len(p.words), t: t, prec: precRelative}, true
	}
	// in N units / over N units / dans N units
	switch f.word(i) {
	case "in", "over", "dans", "binnen", "d'ici":
	default:
		return dateHit{}, false
	}
	j := i + 1
	// "in half a year", "over een half jaar", "in einem halben Jahr"
	for k := j; k <= j+2 && k < len(f.toks); k++ {
		switch f.word(k) {
		case "half", "halben", "halbes":
			switch f.word(k + 1) {
			case "year", "jaar", "jahr":
				return dateHit{start: i, end: k + 2, t: f.base.AddDate(0, 6, 0), prec: precRelative}, true
			}
		case "a", "een", "einem", "ein":
			continue
		}
		break
	}
	if f.word(j) == "a" || f.word(j) == "een" {
		if f.word(j+1) == "couple" || f.word(j+1) == "few" || f.word(j+1) == "paar" {
			j++
		}
	}
	n := 0
	if j < len(f.toks) && f.toks[j].kind == tokNum && allDigits(f.toks[j].text) && len(f.toks[j].text) <= 2 {
		n, _ = strconv.Atoi(f.toks[j].text)
	} else if v, ok := numberWords[f.word(j)]; ok {
		n = v
	} else {
		return dateHit{}, false
	}
	j++
	if f.word(j) == "of" {
		j++
	}
	unit, ok := unitWords[f.word(j)]
	if !ok || n <= 0 || n > 24 {
		return dateHit{}, false
	}
	var t time.Time
	if unit < 0 {
		t = f.base.AddDate(0, n, 0)
	} else {
		t = f.base.AddDate(0, 0, n*unit)
	}
	return dateHit{start: i, end: j + 1, t: t, prec: precRelative}, true
}

func (f *dateFinder) wordsAt(i int, words []string) bool {
	for k, w := range words {
		if f.word(i+k) != w {
			return false
		}
	}
	return true
}

// laterAround looks for laterWords up to six words before and four words
// after the date, within the clause.
func (f *dateFinder) laterAround(start, end int) bool {
	n := 0
	for k := start - 1; k >= 0 && n < 6; k-- {
		t := f.toks[k]
		if t.kind == tokPunct && (t.text == "." || t.text == "!" || t.text == "?" || t.text == "," || t.text == ";") {
			break
		}
		if t.kind == tokWord {
			if laterWords[t.text] {
				return true
			}
			n++
		}
		if t.sentence {
			break
		}
	}
	n = 0
	for k := end; k < len(f.toks) && n < 4; k++ {
		t := f.toks[k]
		if t.sentence || (t.kind == tokPunct && (t.text == "." || t.text == "!" || t.text == "?" || t.text == "," || t.text == ";")) {
			break
		}
		if t.kind == tokWord {
			if laterWords[t.text] {
				return true
			}
			n++
		}
	}
	return false
}

// cueBefore inspects up to four meaningful words before token i, within the
// same sentence, for "until", "back" or "after".
func (f *dateFinder) cueBefore(i int) dateCue {
	seen := 0
	for k := i - 1; k >= 0 && seen < 4; k-- {
		t := f.toks[k]
		if t.kind == tokPunct {
			if t.text == "." || t.text == "!" || t.text == "?" || t.text == ";" {
				return cueNone
			}
			if t.text == "/" && f.word(k-1) == "t" && f.word(k+1) == "m" {
				return cueUntil // Dutch "t/m"
			}
			continue
		}
		if t.kind == tokWord {
			w := t.text
			switch {
			case untilWords[w]:
				return cueUntil
			case afterWords[w]:
				return cueAfter
			case backWords[w]:
				return cueBack
			}
			if !cueFillers[w] {
				seen++
			}
		}
		if t.sentence {
			return cueNone
		}
	}
	return cueNone
}

// resolveDMY builds the date; without a year it takes the first occurrence
// on or after the base date.
func (f *dateFinder) resolveDMY(d int, m time.Month, y int) (time.Time, bool) {
	if m < 1 || m > 12 || d < 1 {
		return time.Time{}, false
	}
	loc := f.base.Location()
	if y != 0 {
		if d > daysIn(m, y) {
			return time.Time{}, false
		}
		return time.Date(y, m, d, 0, 0, 0, 0, loc), true
	}
	for y = f.base.Year(); y <= f.base.Year()+4; y++ {
		if d > daysIn(m, y) {
			continue // 29 February
		}
		t := time.Date(y, m, d, 0, 0, 0, 0, loc)
		if !t.Before(f.base) {
			return t, true
		}
	}
	return time.Time{}, false
}

// resolveFirstOf gives the first day of month m, strictly after the base
// date when no year is given.
func (f *dateFinder) resolveFirstOf(m time.Month, y int) (time.Time, bool) {
	loc := f.base.Location()
	if y != 0 {
		return time.Date(y, m, 1, 0, 0, 0, 0, loc), true
	}
	t := time.Date(f.base.Year(), m, 1, 0, 0, 0, 0, loc)
	if !t.After(f.base) {
		t = t.AddDate(1, 0, 0)
	}
	return t, true
}

func daysIn(m time.Month, y int) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// returnDate picks the first day back from an auto-reply text: an explicit
// "back on X" wins, then "until X" (the day after X), then the end of a
// range. The result is always after base; zero when nothing fits.
func returnDate(text string, base time.Time) time.Time {
	hits := findDates(text, base)
	b := midnight(base)
	for _, h := range hits {
		if (h.cue == cueBack || h.cue == cueAfter) && h.t.After(b) {
			return h.t
		}
	}
	for _, h := range hits {
		if h.cue == cueUntil {
			t := h.t
			if h.prec == precDay || h.prec == precWeekday {
				t = t.AddDate(0, 0, 1)
			}
			if t.After(b) {
				return t
			}
		}
	}
	return time.Time{}
}

// snoozeDate picks the date a "not now" reply names: the first date after
// base. "until X" gives the day after X, everything else X itself (a month
// gives its first day, a quarter or season its first day).
//
// A date with words around it that ask to be contacted again ("check back in
// Q2") wins over an earlier date that only describes the situation ("we move
// in March").
func snoozeDate(text string, base time.Time) time.Time {
	b := midnight(base)
	hits := findDates(text, base)
	var first time.Time
	for _, h := range hits {
		t := h.t
		if h.cue == cueUntil && (h.prec == precDay || h.prec == precWeekday) {
			t = t.AddDate(0, 0, 1)
		}
		if !t.After(b) {
			continue
		}
		if h.later {
			return t
		}
		if first.IsZero() {
			first = t
		}
	}
	return first
}
