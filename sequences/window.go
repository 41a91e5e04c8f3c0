package sequences

import (
	"fmt"
	"time"
)

const day = 24 * time.Hour

// Date is a civil calendar date with no zone: the same Date is a different
// span of instants in every zone, which is what a holiday is.
type Date struct {
	Y int
	M time.Month
	D int
}

// DateOf is the calendar date t reads as in its own location; call
// DateOf(t.In(loc)) for the date in loc.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{y, m, d}
}

// AddDays returns the date n days later (earlier for negative n), with
// month and year carried.
func (d Date) AddDays(n int) Date {
	return DateOf(time.Date(d.Y, d.M, d.D+n, 0, 0, 0, 0, time.UTC))
}

// Weekday is the day of the week of d.
func (d Date) Weekday() time.Weekday {
	return time.Date(d.Y, d.M, d.D, 0, 0, 0, 0, time.UTC).Weekday()
}

// Before reports whether d is an earlier date than e.
func (d Date) Before(e Date) bool {
	if d.Y != e.Y {
		return d.Y < e.Y
	}
	if d.M != e.M {
		return d.M < e.M
	}
	return d.D < e.D
}

// String writes the date as YYYY-MM-DD.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Y, int(d.M), d.D) }

// Window is when mail may go out: the days of the week, the hours of the
// local day, and the dates that are holidays. A zero Window never opens.
//
// On each business day (a day in Days that is not a holiday) the window is
// one contiguous span of instants, from the first instant the local clock
// reads Start on that date to the first instant it reads End. So on a
// fall-back day a window stays open through the repeated hour instead of
// closing and reopening, and a Start inside a spring-forward gap opens at the
// end of the gap.
type Window struct {
	// Days is indexed by time.Weekday.
	Days [7]bool
	// Start and End are local wall-clock times since midnight; End is
	// exclusive and at most 24h (the window then runs to the next midnight).
	Start, End time.Duration
	// Holidays are dates on which the window stays shut.
	Holidays map[Date]bool
}

// NewWindow builds a Window from a list of weekdays, the daily hours and the
// holiday dates, the shape the configuration holds them in.
func NewWindow(days []time.Weekday, start, end time.Duration, holidays []Date) Window {
	w := Window{Start: start, End: end}
	for _, d := range days {
		if d >= time.Sunday && d <= time.Saturday {
			w.Days[d] = true
		}
	}
	if len(holidays) > 0 {
		w.Holidays = make(map[Date]bool, len(holidays))
		for _, h := range holidays {
			w.Holidays[h] = true
		}
	}
	return w
}

// hours clamps the daily span to one day so that no window runs into the
// next date's, which Next relies on to search day by day.
func (w Window) hours() (start, end time.Duration) {
	return max(w.Start, 0), min(w.End, day)
}

// canOpen reports whether the window has any time at all; without this Next
// would search its full bound for nothing.
func (w Window) canOpen() bool {
	start, end := w.hours()
	if start >= end {
		return false
	}
	for _, open := range w.Days {
		if open {
			return true
		}
	}
	return false
}

// IsBusinessDay reports whether d is one of the window's days and not a holiday.
func (w Window) IsBusinessDay(d Date) bool {
	return w.Days[d.Weekday()] && !w.Holidays[d]
}

// searchDays bounds the day-by-day search: every 7 days hold at least one of
// the window's weekdays, each holiday can cancel one of them, and a few more
// weeks cover the rare day whose whole window falls into a DST gap.
func (w Window) searchDays() int { return 7 * (len(w.Holidays) + 4) }

// bounds is the span of instants the window covers on date d in loc; it is
// empty (opens == closes) when a DST gap swallows the whole window.
func (w Window) bounds(d Date, loc *time.Location) (opens, closes time.Time) {
	start, end := w.hours()
	return firstAtOrAfter(d, start, loc), firstAtOrAfter(d, end, loc)
}

// Contains reports whether t is inside the window read in loc (UTC when nil).
func (w Window) Contains(t time.Time, loc *time.Location) bool {
	loc = orUTC(loc)
	if !w.canOpen() {
		return false
	}
	d := DateOf(t.In(loc))
	// t can belong to the next date's window only in a zone whose clock went
	// back across midnight after that window opened; checking it keeps
	// Contains and Next in agreement there too.
	for _, c := range [2]Date{d, d.AddDays(1)} {
		if !w.IsBusinessDay(c) {
			continue
		}
		open, shut := w.bounds(c, loc)
		if !t.Before(open) && t.Before(shut) {
			return true
		}
	}
	return false
}

// Next returns the earliest instant at or after t that is inside the window
// read in loc (UTC when nil), in loc. ok is false when the window never opens
// (no days, or Start ≥ End); the search is bounded by the number of holidays
// (searchDays), so it always ends.
func (w Window) Next(t time.Time, loc *time.Location) (next time.Time, ok bool) {
	loc = orUTC(loc)
	if !w.canOpen() {
		return time.Time{}, false
	}
	// Every window of an earlier date closes no later than the start of t's
	// date, so the search starts there; later dates open later, so the first
	// business day whose window has not yet closed holds the answer.
	d := DateOf(t.In(loc))
	for range w.searchDays() {
		if w.IsBusinessDay(d) {
			open, shut := w.bounds(d, loc)
			if open.Before(shut) && t.Before(shut) {
				if t.Before(open) {
					return open, true
				}
				return t.In(loc), true
			}
		}
		d = d.AddDays(1)
	}
	return time.Time{}, false
}

// AddBusinessDays returns the instant n business days after t, read in loc.
//
// t is first moved to Next(t): an instant outside the window counts from the
// moment the window next opens, so Friday 20:00 behaves like Monday 09:00.
// From there the date advances by n business days (days in Days that are not
// holidays, counted after that date) and keeps the local wall-clock time;
// Next then moves it into the window if that time is not open on the new date
// (a DST gap). For a mon–fri 09:00–17:00 window:
//
//	Friday 16:00 + 3 → Wednesday 16:00
//	Friday 20:00 + 3 → Thursday 09:00
//	Saturday 10:00 + 1 → Tuesday 09:00
//
// n ≤ 0 is Next(t). ok is false when the window never opens.
func (w Window) AddBusinessDays(t time.Time, n int, loc *time.Location) (time.Time, bool) {
	loc = orUTC(loc)
	s, ok := w.Next(t, loc)
	if !ok || n <= 0 {
		return s, ok
	}
	ls := s.In(loc)
	d := DateOf(ls)
	// Terminates: canOpen held, so a weekday of the window recurs every week
	// and only finitely many dates are holidays.
	for counted := 0; counted < n; {
		d = d.AddDays(1)
		if w.IsBusinessDay(d) {
			counted++
		}
	}
	return w.Next(firstAtOrAfter(d, clock(ls), loc), loc)
}

// clock is the wall-clock time of lt since its local midnight. It is read off
// the clock rather than subtracted from midnight, which on DST days is an
// hour off.
func clock(lt time.Time) time.Duration {
	h, m, s := lt.Clock()
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
		time.Duration(s)*time.Second + time.Duration(lt.Nanosecond())
}

// firstAtOrAfter is the earliest instant whose local reading in loc is at or
// after wall-clock time wall on date d: the time itself when it exists, the
// end of the gap when it falls into one, and the first occurrence when it
// happens twice.
//
// time.Date is not used because it leaves the choice in gaps and overlaps
// unspecified. Instead the zone's periods are walked in order (ZoneBounds):
// within a period of offset off, the local reading is x+off, so the earliest
// x in [from, end) reading at least target is max(from, target-off).
func firstAtOrAfter(d Date, wall time.Duration, loc *time.Location) time.Time {
	// target is the wall-clock reading written as if it were UTC; comparing
	// such readings compares local times.
	target := time.Date(d.Y, d.M, d.D, 0, 0, 0, 0, time.UTC).Add(wall)
	// No zone is 26 hours ahead of UTC, so nothing before this reads as late as target.
	from := target.Add(-26 * time.Hour)
	var x time.Time
	for range 8 {
		lt := from.In(loc)
		_, off := lt.Zone()
		_, end := lt.ZoneBounds()
		x = target.Add(-time.Duration(off) * time.Second)
		if x.Before(from) {
			x = from
		}
		if end.IsZero() || x.Before(end) {
			break
		}
		from = end
	}
	return x.In(loc)
}

// addDelay adds a step's fixed delay. Whole days are calendar days at the
// same local wall-clock time, so "1w" after Monday 10:00 is the next Monday
// 10:00 even across a DST switch (168 hours would be 09:00 or 11:00); other
// durations are elapsed time.
func addDelay(t time.Time, delay time.Duration, loc *time.Location) time.Time {
	if delay <= 0 {
		return t
	}
	if delay%day != 0 {
		return t.Add(delay)
	}
	lt := t.In(loc)
	return firstAtOrAfter(DateOf(lt).AddDays(int(delay/day)), clock(lt), loc)
}

func orUTC(loc *time.Location) *time.Location {
	if loc == nil {
		return time.UTC
	}
	return loc
}
