package replies

import (
	"strings"
	"time"
)

// parseCommonDate reads the form almost every Date field has,
// "Mon, 2 Jan 2006 15:04:05 -0700" (the weekday optional, the day one or two
// digits), optionally followed by a comment such as "(CEST)". ok is false
// for anything else, and the caller falls back to net/mail.ParseDate.
//
// net/mail.ParseDate tries up to 24 layouts with time.Parse in turn and
// every failed attempt allocates an error; the usual form with a weekday only
// parses at the 13th. Where this function accepts a value, it returns exactly
// what ParseDate returns for it, down to the Location: it only accepts what
// ParseDate's first matching layout accepts, and builds the time the way
// time.Parse does.
func parseCommonDate(v string) (t time.Time, ok bool) {
	// ParseDate drops CRLFs first; keep those values for it
	if strings.ContainsAny(v, "\r\n") {
		return time.Time{}, false
	}
	s := trimLeftBlanks(v)
	if len(s) >= 5 && s[3] == ',' && s[4] == ' ' && isShortWeekday(s[:3]) {
		s = s[5:] // time.Parse does not check the weekday against the date
	}
	day, s, ok := digits(s, 1, 2)
	if !ok || !cutByte(&s, ' ') {
		return time.Time{}, false
	}
	month := shortMonth(s)
	if month == 0 || len(s) < 4 || s[3] != ' ' {
		return time.Time{}, false
	}
	s = s[4:]
	year, s, ok := digits(s, 4, 4)
	if !ok || !cutByte(&s, ' ') {
		return time.Time{}, false
	}
	hour, s, ok := digits(s, 2, 2)
	if !ok || hour > 23 || !cutByte(&s, ':') {
		return time.Time{}, false
	}
	minute, s, ok := digits(s, 2, 2)
	if !ok || minute > 59 || !cutByte(&s, ':') {
		return time.Time{}, false
	}
	sec, s, ok := digits(s, 2, 2)
	// a fractional second ("05.123") or a missing zone: leave it to ParseDate
	if !ok || sec > 59 || !cutByte(&s, ' ') || len(s) < 5 || (s[0] != '+' && s[0] != '-') {
		return time.Time{}, false
	}
	zh, _, okH := digits(s[1:3], 2, 2)
	zm, _, okM := digits(s[3:5], 2, 2)
	if !okH || !okM || zh > 23 || zm > 59 {
		return time.Time{}, false
	}
	if !commentsOnly(s[5:]) {
		return time.Time{}, false
	}
	if day < 1 || day > daysIn(month, year) {
		return time.Time{}, false
	}
	offset := (zh*60 + zm) * 60
	if s[0] == '-' {
		offset = -offset
	}
	// as time.Parse does: the local zone when it has this offset at that
	// instant, else an unnamed fixed zone
	t = time.Date(year, month, day, hour, minute, sec, 0, time.UTC).Add(-time.Duration(offset) * time.Second)
	if local := t.In(time.Local); zoneOffset(local) == offset {
		return local, true
	}
	return t.In(time.FixedZone("", offset)), true
}

func zoneOffset(t time.Time) int {
	_, off := t.Zone()
	return off
}

// digits reads between min and max ASCII digits at the start of s.
func digits(s string, min, max int) (n int, rest string, ok bool) {
	i := 0
	for i < len(s) && i < max && s[i] >= '0' && s[i] <= '9' {
		n = n*10 + int(s[i]-'0')
		i++
	}
	if i < min || (i < len(s) && s[i] >= '0' && s[i] <= '9') {
		return 0, s, false
	}
	return n, s[i:], true
}

// cutByte removes c from the start of *s and reports whether it was there.
func cutByte(s *string, c byte) bool {
	if len(*s) == 0 || (*s)[0] != c {
		return false
	}
	*s = (*s)[1:]
	return true
}

func isShortWeekday(s string) bool {
	switch s {
	case "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun":
		return true
	}
	return false
}

// shortMonth returns the month of the English abbreviation at the start of
// s, or 0.
func shortMonth(s string) time.Month {
	if len(s) < 3 {
		return 0
	}
	switch s[:3] {
	case "Jan":
		return time.January
	case "Feb":
		return time.February
	case "Mar":
		return time.March
	case "Apr":
		return time.April
	case "May":
		return time.May
	case "Jun":
		return time.June
	case "Jul":
		return time.July
	case "Aug":
		return time.August
	case "Sep":
		return time.September
	case "Oct":
		return time.October
	case "Nov":
		return time.November
	case "Dec":
		return time.December
	}
	return 0
}

// commentsOnly reports whether what follows the zone is something
// net/mail.ParseDate accepts for certain: blanks, simple comments such as
// "(CEST)", or any other text after them (which ParseDate ignores).
// Comments with nested parentheses or escapes are left to ParseDate.
func commentsOnly(s string) bool {
	for {
		s = trimLeftBlanks(s)
		if s == "" || s[0] != '(' {
			return true
		}
		end := strings.IndexAny(s[1:], "()\\")
		if end < 0 || s[1+end] != ')' {
			return false
		}
		s = s[end+2:]
	}
}
