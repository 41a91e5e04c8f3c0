package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // a seller's contacts live in zones the host may not have installed

	"github.com/goccy/go-yaml/ast"
)

// Duration is a time.Duration written like Go's ("90m", "36h") or in days
// and weeks ("3d", "2w").
type Duration time.Duration

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d *Duration) decodeScalar(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back in its shortest readable form.
func (d Duration) MarshalYAML() (any, error) { return formatDuration(time.Duration(d)), nil }

func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%(7*24*time.Hour) == 0:
		return fmt.Sprintf("%dw", d/(7*24*time.Hour))
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	// "5m", not Go's "5m0s".
	out := d.String()
	if strings.HasSuffix(out, "m0s") {
		out = strings.TrimSuffix(out, "0s")
	}
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}

// ParseDuration reads "0", Go durations ("1h30m") and whole days or weeks ("3d", "2w").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	if n, unit, ok := splitCount(s); ok && (unit == "d" || unit == "w") {
		if unit == "w" {
			n *= 7
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q (write e.g. 90s, 15m, 36h, 3d or 2w)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("bad duration %q: it cannot be negative", s)
	}
	return d, nil
}

// splitCount splits "12bd" into 12 and "bd".
func splitCount(s string) (int, string, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i == len(s) {
		return 0, "", false
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil || n > 100000 {
		return 0, "", false
	}
	return n, s[i:], true
}

// Delay is how long after the previous step a step is due: a duration, or a
// number of business days inside the sequence's send window ("3bd").
type Delay struct {
	Duration     time.Duration
	BusinessDays int
}

func (d *Delay) decodeScalar(s string) error {
	s = strings.TrimSpace(s)
	if n, unit, ok := splitCount(s); ok && unit == "bd" {
		*d = Delay{BusinessDays: n}
		return nil
	}
	v, err := ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad delay %q (write e.g. 0, 36h, 3d, 2w or 3bd for business days)", s)
	}
	*d = Delay{Duration: v}
	return nil
}

// String writes the delay as it would appear in the config.
func (d Delay) String() string {
	if d.BusinessDays > 0 {
		return fmt.Sprintf("%dbd", d.BusinessDays)
	}
	return formatDuration(d.Duration)
}

// MarshalYAML writes the delay as text.
func (d Delay) MarshalYAML() (any, error) { return d.String(), nil }

// Location is an IANA time zone such as Europe/Amsterdam.
type Location struct{ *time.Location }

func (l *Location) decodeScalar(s string) error {
	loc, err := LoadLocation(s)
	if err != nil {
		return err
	}
	l.Location = loc
	return nil
}

// LoadLocation loads an IANA zone and says what to write when it is unknown.
func LoadLocation(s string) (*time.Location, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "Local" {
		return nil, fmt.Errorf("time zone %q: write an IANA name such as Europe/Amsterdam or America/New_York", s)
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q (write an IANA name such as Europe/Amsterdam or America/New_York)", s)
	}
	return loc, nil
}

// MarshalYAML writes the zone's name.
func (l Location) MarshalYAML() (any, error) {
	if l.Location == nil {
		return "", nil
	}
	return l.String(), nil
}

// Secret is a password, token or key. It never prints its value: String,
// YAML and JSON all show "<redacted>", so a secret cannot leak into a log
// line or a config dump by accident. Use Value to read it.
type Secret string

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// GoString hides the value from %#v too.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalYAML hides the value.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON hides the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// StringList accepts one value or a list of values.
type StringList []string

func (l *StringList) decodeNode(d *decoder, n ast.Node, path string) {
	if seq, ok := n.(*ast.SequenceNode); ok {
		out := make([]string, 0, len(seq.Values))
		for i, item := range seq.Values {
			p := fmt.Sprintf("%s[%d]", path, i)
			text, _, ok := d.scalarText(d.unwrap(item), p)
			if !ok {
				d.errorf(posOf(item), "%s: expected a text value, got %s", p, describe(item))
				continue
			}
			d.pos[p] = posOf(item)
			out = append(out, text)
		}
		*l = out
		return
	}
	text, isNull, ok := d.scalarText(n, path)
	if !ok {
		d.errorf(posOf(n), "%s: expected a value or a list of values, got %s", path, describe(n))
		return
	}
	if !isNull {
		*l = StringList{text}
	}
}

// Weekdays is a set of days of the week, written as names ("mon", "tuesday")
// or ranges ("mon-fri").
type Weekdays []time.Weekday

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "sunday": time.Sunday, "mon": time.Monday, "monday": time.Monday,
	"tue": time.Tuesday, "tuesday": time.Tuesday, "wed": time.Wednesday, "wednesday": time.Wednesday,
	"thu": time.Thursday, "thursday": time.Thursday, "fri": time.Friday, "friday": time.Friday,
	"sat": time.Saturday, "saturday": time.Saturday,
}

func (w *Weekdays) decodeNode(d *decoder, n ast.Node, path string) {
	var words StringList
	words.decodeNode(d, n, path)
	seen := map[time.Weekday]bool{}
	var out Weekdays
	for _, word := range words {
		days, err := parseDays(word)
		if err != nil {
			d.errorf(posOf(n), "%s: %v", path, err)
			continue
		}
		for _, day := range days {
			if !seen[day] {
				seen[day] = true
				out = append(out, day)
			}
		}
	}
	*w = out
}

func parseDays(word string) ([]time.Weekday, error) {
	word = strings.ToLower(strings.TrimSpace(word))
	from, to, isRange := strings.Cut(word, "-")
	a, ok := dayNames[strings.TrimSpace(from)]
	if !ok {
		return nil, fmt.Errorf("unknown day %q (write mon, tue, … or a range like mon-fri)", word)
	}
	if !isRange {
		return []time.Weekday{a}, nil
	}
	b, ok := dayNames[strings.TrimSpace(to)]
	if !ok {
		return nil, fmt.Errorf("unknown day %q (write mon, tue, … or a range like mon-fri)", word)
	}
	var out []time.Weekday
	for day := a; ; day = (day + 1) % 7 {
		out = append(out, day)
		if day == b {
			break
		}
	}
	return out, nil
}

// MarshalYAML writes the days as short names.
func (w Weekdays) MarshalYAML() (any, error) {
	out := make([]string, len(w))
	for i, d := range w {
		out[i] = strings.ToLower(d.String()[:3])
	}
	return out, nil
}

// ClockRange is a daily span of local time such as "09:00-17:30"; End is exclusive.
type ClockRange struct {
	Start, End time.Duration // since midnight
}

func (r *ClockRange) decodeScalar(s string) error {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return fmt.Errorf("bad hours %q (write e.g. 09:00-17:00)", s)
	}
	start, err := parseClock(a)
	if err != nil {
		return fmt.Errorf("bad hours %q: %v (write e.g. 09:00-17:00)", s, err)
	}
	end, err := parseClock(b)
	if err != nil {
		return fmt.Errorf("bad hours %q: %v (write e.g. 09:00-17:00)", s, err)
	}
	if end <= start {
		return fmt.Errorf("bad hours %q: the end must be after the start", s)
	}
	*r = ClockRange{Start: start, End: end}
	return nil
}

func parseClock(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("%q is not a time of day", s)
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
}

// String writes the range as HH:MM-HH:MM.
func (r ClockRange) String() string {
	f := func(d time.Duration) string {
		return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60)
	}
	return f(r.Start) + "-" + f(r.End)
}

// MarshalYAML writes the range as text.
func (r ClockRange) MarshalYAML() (any, error) { return r.String(), nil }

// Date is a calendar day written YYYY-MM-DD.
type Date struct{ time.Time }

func (d *Date) decodeScalar(s string) error {
	t, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("bad date %q (write YYYY-MM-DD)", s)
	}
	d.Time = t
	return nil
}

// MarshalYAML writes the date as YYYY-MM-DD.
func (d Date) MarshalYAML() (any, error) { return d.Format(time.DateOnly), nil }

func (t *Trigger) decodeNode(d *decoder, n ast.Node, path string) {
	if text, _, ok := d.scalarText(n, path); ok {
		if text != "manual" {
			d.errorf(posOf(n), "%s: unknown trigger %q (write manual, on_stage: STAGE or anniversary: FIELD)", path, text)
			return
		}
		t.Manual = true
		return
	}
	d.decodeStruct(n, reflect.ValueOf(t).Elem(), path)
}
