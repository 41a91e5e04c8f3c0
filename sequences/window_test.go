package sequences

import (
	"testing"
	"time"
	_ "time/tzdata" // the tests must not depend on the host's zone files
)

func loadLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// ts parses an RFC 3339 instant; expected values are written with their
// offset so that each test states which side of a DST switch it means.
func ts(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var (
	monFri  = []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
	allWeek = []time.Weekday{time.Sunday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday}
)

func hm(h, m int) time.Duration { return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute }

func office(holidays ...Date) Window { return NewWindow(monFri, hm(9, 0), hm(17, 0), holidays) }

func TestNext(t *testing.T) {
	xmas := []Date{{2026, 12, 25}, {2026, 12, 26}, {2027, 1, 1}}
	tests := []struct {
		name string
		w    Window
		zone string
		from string
		want string // "" when the window never opens
	}{
		// Europe/Amsterdam springs forward 2026-03-29 02:00 CET → 03:00 CEST.
		{"ams spring: Friday after hours → Monday 09:00 CEST", office(), "Europe/Amsterdam", "2026-03-27T17:30:00+01:00", "2026-03-30T09:00:00+02:00"},
		{"ams spring: Friday before hours → Friday 09:00 CET", office(), "Europe/Amsterdam", "2026-03-27T08:00:00+01:00", "2026-03-27T09:00:00+01:00"},
		{"ams spring: every day, Saturday evening → Sunday 09:00 CEST", NewWindow(allWeek, hm(9, 0), hm(17, 0), nil), "Europe/Amsterdam", "2026-03-28T18:00:00+01:00", "2026-03-29T09:00:00+02:00"},
		{"ams spring: start 02:30 is in the gap → 03:00 CEST", NewWindow(allWeek, hm(2, 30), hm(5, 0), nil), "Europe/Amsterdam", "2026-03-29T00:00:00+01:00", "2026-03-29T03:00:00+02:00"},
		{"ams spring: day before, start 02:30 exists", NewWindow(allWeek, hm(2, 30), hm(5, 0), nil), "Europe/Amsterdam", "2026-03-28T00:00:00+01:00", "2026-03-28T02:30:00+01:00"},
		{"ams spring: whole window in the gap → next day", NewWindow(allWeek, hm(2, 0), hm(3, 0), nil), "Europe/Amsterdam", "2026-03-29T00:00:00+01:00", "2026-03-30T02:00:00+02:00"},
		// Europe/Amsterdam falls back 2026-10-25 03:00 CEST → 02:00 CET.
		{"ams fall: every day, Saturday evening → Sunday 09:00 CET", NewWindow(allWeek, hm(9, 0), hm(17, 0), nil), "Europe/Amsterdam", "2026-10-24T17:00:00+02:00", "2026-10-25T09:00:00+01:00"},
		{"ams fall: Friday after hours → Monday 09:00 CET", office(), "Europe/Amsterdam", "2026-10-23T17:00:00+02:00", "2026-10-26T09:00:00+01:00"},
		{"ams fall: start 02:30 happens twice → first occurrence", NewWindow(allWeek, hm(2, 30), hm(4, 0), nil), "Europe/Amsterdam", "2026-10-25T00:00:00+02:00", "2026-10-25T02:30:00+02:00"},
		{"ams fall: second 02:10 is inside (window stays open)", NewWindow(allWeek, hm(2, 30), hm(4, 0), nil), "Europe/Amsterdam", "2026-10-25T02:10:00+01:00", "2026-10-25T02:10:00+01:00"},
		// America/New_York springs forward 2026-03-08 02:00 EST → 03:00 EDT.
		{"nyc spring: every day, Saturday evening → Sunday 09:00 EDT", NewWindow(allWeek, hm(9, 0), hm(17, 0), nil), "America/New_York", "2026-03-07T18:00:00-05:00", "2026-03-08T09:00:00-04:00"},
		{"nyc spring: Friday after hours → Monday 09:00 EDT", office(), "America/New_York", "2026-03-06T17:00:00-05:00", "2026-03-09T09:00:00-04:00"},
		{"nyc spring: Friday 09:00 EST still 09:00", office(), "America/New_York", "2026-03-06T06:00:00-05:00", "2026-03-06T09:00:00-05:00"},
		{"nyc spring: start 02:30 is in the gap → 03:00 EDT", NewWindow(allWeek, hm(2, 30), hm(4, 0), nil), "America/New_York", "2026-03-08T00:00:00-05:00", "2026-03-08T03:00:00-04:00"},
		// America/New_York falls back 2026-11-01 02:00 EDT → 01:00 EST.
		{"nyc fall: every day, Saturday evening → Sunday 09:00 EST", NewWindow(allWeek, hm(9, 0), hm(17, 0), nil), "America/New_York", "2026-10-31T18:00:00-04:00", "2026-11-01T09:00:00-05:00"},
		{"nyc fall: Friday after hours → Monday 09:00 EST", office(), "America/New_York", "2026-10-30T17:00:00-04:00", "2026-11-02T09:00:00-05:00"},
		{"nyc fall: start 01:30 happens twice → first occurrence", NewWindow(allWeek, hm(1, 30), hm(3, 0), nil), "America/New_York", "2026-11-01T00:00:00-04:00", "2026-11-01T01:30:00-04:00"},
		// Weekends and holidays.
		{"Saturday → Monday", office(), "Europe/Amsterdam", "2026-06-13T11:00:00+02:00", "2026-06-15T09:00:00+02:00"},
		{"Christmas Friday → Monday 28th", office(xmas...), "Europe/Amsterdam", "2026-12-24T17:00:00+01:00", "2026-12-28T09:00:00+01:00"},
		{"inside on Christmas Day → Monday 28th", office(xmas...), "Europe/Amsterdam", "2026-12-25T10:00:00+01:00", "2026-12-28T09:00:00+01:00"},
		{"New Year's Day Friday → Monday 4th", office(xmas...), "Europe/Amsterdam", "2026-12-31T17:00:00+01:00", "2027-01-04T09:00:00+01:00"},
		// Zones far from the account's.
		{"Tokyo contact after hours: 10:00 UTC = 19:00 JST → next day 09:00 JST", office(), "Asia/Tokyo", "2026-06-10T10:00:00Z", "2026-06-11T09:00:00+09:00"},
		{"Tokyo contact inside: 01:00 UTC = 10:00 JST", office(), "Asia/Tokyo", "2026-06-10T01:00:00Z", "2026-06-10T10:00:00+09:00"},
		{"inside stays put", office(), "Europe/Amsterdam", "2026-06-10T10:11:12.5+02:00", "2026-06-10T10:11:12.5+02:00"},
		{"end is exclusive", office(), "Europe/Amsterdam", "2026-06-10T17:00:00+02:00", "2026-06-11T09:00:00+02:00"},
		{"until midnight", NewWindow(allWeek, hm(22, 0), 24*time.Hour, nil), "Europe/Amsterdam", "2026-06-10T23:59:59+02:00", "2026-06-10T23:59:59+02:00"},
		{"nil location is UTC", office(), "", "2026-06-10T18:00:00Z", "2026-06-11T09:00:00Z"},
		// Windows that never open.
		{"no days", Window{Start: hm(9, 0), End: hm(17, 0)}, "Europe/Amsterdam", "2026-06-10T10:00:00+02:00", ""},
		{"empty hours", NewWindow(monFri, hm(17, 0), hm(9, 0), nil), "Europe/Amsterdam", "2026-06-10T10:00:00+02:00", ""},
		{"zero window", Window{}, "UTC", "2026-06-10T10:00:00Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var loc *time.Location
			if tt.zone != "" {
				loc = loadLoc(t, tt.zone)
			}
			from := ts(t, tt.from)
			got, ok := tt.w.Next(from, loc)
			if tt.want == "" {
				if ok || !got.IsZero() {
					t.Fatalf("Next = %v, %v; want zero, false", got, ok)
				}
				if tt.w.Contains(from, loc) {
					t.Fatal("Contains is true for a window that never opens")
				}
				return
			}
			want := ts(t, tt.want)
			if !ok || !got.Equal(want) {
				t.Fatalf("Next(%s) = %v, %v; want %v", tt.from, got, ok, want)
			}
			if !tt.w.Contains(got, loc) {
				t.Errorf("Contains(Next) = false for %v", got)
			}
			if loc != nil && got.Location() != loc {
				t.Errorf("Next returned a time in %v, want %v", got.Location(), loc)
			}
			if got.After(from) && tt.w.Contains(got.Add(-time.Nanosecond), loc) {
				t.Errorf("Contains(Next - 1ns) = true: %v is not the earliest", got)
			}
		})
	}
}

func TestContainsAroundSwitches(t *testing.T) {
	ams := loadLoc(t, "Europe/Amsterdam")
	nyc := loadLoc(t, "America/New_York")
	early := NewWindow(allWeek, hm(2, 30), hm(4, 0), nil)
	tests := []struct {
		w    Window
		loc  *time.Location
		at   string
		want bool
	}{
		{early, ams, "2026-10-25T02:29:59+02:00", false},
		{early, ams, "2026-10-25T02:30:00+02:00", true},
		{early, ams, "2026-10-25T02:59:59+02:00", true},
		{early, ams, "2026-10-25T02:00:00+01:00", true}, // the repeated hour: still open
		{early, ams, "2026-10-25T03:59:59+01:00", true},
		{early, ams, "2026-10-25T04:00:00+01:00", false},
		{early, ams, "2026-03-29T01:59:59+01:00", false},
		{early, ams, "2026-03-29T03:00:00+02:00", true}, // 02:30 does not exist: open from 03:00
		{office(), nyc, "2026-03-09T08:59:59-04:00", false},
		{office(), nyc, "2026-03-09T09:00:00-04:00", true},
		{office(), nyc, "2026-03-09T16:59:59-04:00", true},
		{office(), nyc, "2026-03-09T17:00:00-04:00", false},
		{office(), nyc, "2026-03-07T12:00:00-05:00", false}, // Saturday
		{office(Date{2026, 3, 9}), nyc, "2026-03-09T12:00:00-04:00", false},
	}
	for _, tt := range tests {
		if got := tt.w.Contains(ts(t, tt.at), tt.loc); got != tt.want {
			t.Errorf("Contains(%s in %v) = %v, want %v", tt.at, tt.loc, got, tt.want)
		}
	}
}

func TestAddBusinessDays(t *testing.T) {
	xmas := []Date{{2026, 12, 25}, {2026, 12, 26}, {2027, 1, 1}}
	tests := []struct {
		name string
		w    Window
		zone string
		from string
		n    int
		want string
	}{
		{"3bd after Friday 16:00 is Wednesday 16:00", office(), "Europe/Amsterdam", "2026-06-12T16:00:00+02:00", 3, "2026-06-17T16:00:00+02:00"},
		{"after hours counts from the next opening", office(), "Europe/Amsterdam", "2026-06-12T20:00:00+02:00", 3, "2026-06-18T09:00:00+02:00"},
		{"from a weekend", office(), "Europe/Amsterdam", "2026-06-13T10:00:00+02:00", 1, "2026-06-16T09:00:00+02:00"},
		{"before hours clamps to the start", office(), "Europe/Amsterdam", "2026-06-15T07:00:00+02:00", 1, "2026-06-16T09:00:00+02:00"},
		{"keeps seconds", office(), "Europe/Amsterdam", "2026-06-15T16:59:30+02:00", 1, "2026-06-16T16:59:30+02:00"},
		{"zero days is Next", office(), "Europe/Amsterdam", "2026-06-12T20:00:00+02:00", 0, "2026-06-15T09:00:00+02:00"},
		{"across the weekend and a holiday", office(xmas...), "Europe/Amsterdam", "2026-12-24T10:00:00+01:00", 2, "2026-12-29T10:00:00+01:00"},
		{"across New Year", office(xmas...), "Europe/Amsterdam", "2026-12-31T10:00:00+01:00", 1, "2027-01-04T10:00:00+01:00"},
		{"across spring forward: same wall clock", office(), "Europe/Amsterdam", "2026-03-27T10:00:00+01:00", 1, "2026-03-30T10:00:00+02:00"},
		{"across fall back: same wall clock", office(), "America/New_York", "2026-10-30T10:00:00-04:00", 1, "2026-11-02T10:00:00-05:00"},
		{"every-day window across the gap", NewWindow(allWeek, hm(2, 0), hm(4, 0), nil), "Europe/Amsterdam", "2026-03-28T02:30:00+01:00", 1, "2026-03-29T03:00:00+02:00"},
		{"Saturday-only window", NewWindow([]time.Weekday{time.Saturday}, hm(10, 0), hm(12, 0), nil), "UTC", "2026-06-13T11:00:00Z", 2, "2026-06-27T11:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := loadLoc(t, tt.zone)
			got, ok := tt.w.AddBusinessDays(ts(t, tt.from), tt.n, loc)
			if want := ts(t, tt.want); !ok || !got.Equal(want) {
				t.Fatalf("AddBusinessDays(%s, %d) = %v, %v; want %v", tt.from, tt.n, got, ok, want)
			}
		})
	}
	if got, ok := (Window{}).AddBusinessDays(ts(t, "2026-06-12T16:00:00Z"), 3, time.UTC); ok || !got.IsZero() {
		t.Errorf("a window that never opens: got %v, %v", got, ok)
	}
}

func TestFirstAtOrAfter(t *testing.T) {
	tests := []struct {
		zone string
		d    Date
		wall time.Duration
		want string
	}{
		{"Europe/Amsterdam", Date{2026, 3, 29}, hm(2, 30), "2026-03-29T03:00:00+02:00"},
		{"Europe/Amsterdam", Date{2026, 10, 25}, hm(2, 30), "2026-10-25T02:30:00+02:00"},
		{"Europe/Amsterdam", Date{2026, 10, 25}, 24 * time.Hour, "2026-10-26T00:00:00+01:00"},
		{"America/New_York", Date{2026, 3, 8}, hm(2, 0), "2026-03-08T03:00:00-04:00"},
		{"America/New_York", Date{2026, 11, 1}, hm(1, 0), "2026-11-01T01:00:00-04:00"},
		{"Australia/Sydney", Date{2026, 10, 4}, hm(2, 15), "2026-10-04T03:00:00+11:00"},
		{"Australia/Sydney", Date{2026, 4, 5}, hm(2, 15), "2026-04-05T02:15:00+11:00"},
		{"Pacific/Chatham", Date{2026, 9, 27}, hm(2, 50), "2026-09-27T03:45:00+13:45"},
		{"America/St_Johns", Date{2026, 3, 8}, hm(2, 15), "2026-03-08T03:00:00-02:30"},
		{"Asia/Kolkata", Date{2026, 6, 1}, hm(9, 0), "2026-06-01T09:00:00+05:30"},
		// Chile moves its clocks at midnight, so 00:00 itself is skipped.
		{"America/Santiago", Date{2026, 9, 6}, 0, "2026-09-06T01:00:00-03:00"},
		{"UTC", Date{2026, 2, 28}, 24 * time.Hour, "2026-03-01T00:00:00Z"},
	}
	for _, tt := range tests {
		got := firstAtOrAfter(tt.d, tt.wall, loadLoc(t, tt.zone))
		if want := ts(t, tt.want); !got.Equal(want) {
			t.Errorf("firstAtOrAfter(%v %v in %s) = %v, want %v", tt.d, tt.wall, tt.zone, got, want)
		}
	}
}

func TestDate(t *testing.T) {
	d := Date{2026, 12, 31}
	if got := d.AddDays(1); got != (Date{2027, 1, 1}) {
		t.Errorf("AddDays(1) = %v", got)
	}
	if got := (Date{2028, 3, 1}).AddDays(-1); got != (Date{2028, 2, 29}) {
		t.Errorf("AddDays(-1) = %v", got)
	}
	if d.Weekday() != time.Thursday || d.String() != "2026-12-31" {
		t.Errorf("Weekday, String = %v, %v", d.Weekday(), d)
	}
	if !(Date{2026, 12, 30}).Before(d) || d.Before(d) || (Date{2027, 1, 1}).Before(d) {
		t.Error("Before is wrong")
	}
	w := NewWindow(monFri, hm(9, 0), hm(17, 0), []Date{{2026, 12, 25}})
	if w.IsBusinessDay(Date{2026, 12, 25}) || w.IsBusinessDay(Date{2026, 12, 26}) || !w.IsBusinessDay(Date{2026, 12, 24}) {
		t.Error("IsBusinessDay is wrong")
	}
}
