package sequences

import (
	"fmt"
	"math/rand"
	"reflect"
	"sync"
	"testing"
	"testing/quick"
	"time"
)

// propertyZones include zones with DST at 02:00 (Amsterdam, New York, St
// John's), at midnight with the clock going back across it (Santiago,
// Beirut), a 30-minute switch (Lord Howe), a switch at 02:45 with a 45-minute
// offset (Chatham), the southern hemisphere (Sydney) and none (Kolkata, UTC).
var propertyZones = []string{
	"Europe/Amsterdam", "America/New_York", "Australia/Sydney", "Asia/Kolkata",
	"America/St_Johns", "Pacific/Chatham", "America/Santiago", "Asia/Beirut",
	"Australia/Lord_Howe", "UTC",
}

var (
	zonesOnce   sync.Once
	zoneLocs    map[string]*time.Location
	transitions map[string][]time.Time
)

// loadZones loads the zones and lists their transitions from late 2025 to
// early 2028, so that cases can be steered onto switch days and so that the
// wall-clock oracle is only trusted away from them.
func loadZones() {
	zoneLocs = map[string]*time.Location{}
	transitions = map[string][]time.Time{}
	for _, z := range propertyZones {
		loc, err := time.LoadLocation(z)
		if err != nil {
			panic(err)
		}
		zoneLocs[z] = loc
		t := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)
		for {
			_, end := t.In(loc).ZoneBounds()
			if end.IsZero() || end.Year() > 2028 {
				break
			}
			transitions[z] = append(transitions[z], end)
			t = end
		}
	}
}

// nearSwitch reports whether t is within a day and a bit of a clock change
// in zone, where the plain wall-clock reading of a window is ambiguous.
func nearSwitch(zone string, t time.Time) bool {
	for _, tr := range transitions[zone] {
		if d := t.Sub(tr); d > -27*time.Hour && d < 27*time.Hour {
			return true
		}
	}
	return false
}

// wallInside is the obvious definition of a window, independent of the
// implementation: the local date is a business day and the local clock is in
// [Start, End). It agrees with Contains everywhere except around clock changes.
func wallInside(w Window, t time.Time, loc *time.Location) bool {
	lt := t.In(loc)
	c := clock(lt)
	return w.Days[lt.Weekday()] && !w.Holidays[DateOf(lt)] && c >= w.Start && c < w.End
}

type windowCase struct {
	W    Window
	Zone string
	At   time.Time
	N    int
}

func (c windowCase) String() string {
	return fmt.Sprintf("days=%v hours=%v-%v holidays=%d zone=%s at=%s n=%d",
		c.W.Days, c.W.Start, c.W.End, len(c.W.Holidays), c.Zone, c.At.Format(time.RFC3339Nano), c.N)
}

// Generate builds random windows and instants, steered towards the cases that
// break naive code: hours around the switch times and instants near switches.
func (windowCase) Generate(r *rand.Rand, _ int) reflect.Value {
	zonesOnce.Do(loadZones)
	var c windowCase
	c.Zone = propertyZones[r.Intn(len(propertyZones))]
	for c.W.Days == [7]bool{} {
		for i := range c.W.Days {
			c.W.Days[i] = r.Intn(3) > 0
		}
	}
	minute := func() int {
		if r.Intn(2) == 0 {
			return r.Intn(5 * 60) // the small hours, where clocks change
		}
		return r.Intn(24*60 + 1)
	}
	a, b := minute(), minute()
	for a == b {
		b = r.Intn(24*60 + 1)
	}
	c.W.Start, c.W.End = time.Duration(min(a, b))*time.Minute, time.Duration(max(a, b))*time.Minute

	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	span := time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC).Sub(base)
	c.At = base.Add(time.Duration(r.Int63n(int64(span))))
	if trs := transitions[c.Zone]; len(trs) > 0 && r.Intn(2) == 0 {
		tr := trs[r.Intn(len(trs))]
		c.At = tr.Add(time.Duration(r.Int63n(int64(96*time.Hour))) - 72*time.Hour)
	}
	if r.Intn(4) == 0 {
		c.At = c.At.Truncate(time.Minute)
	}
	if n := r.Intn(12); n > 0 {
		c.W.Holidays = map[Date]bool{}
		for range n {
			c.W.Holidays[DateOf(c.At.Add(time.Duration(r.Intn(40)-5)*day))] = true
		}
	}
	c.N = 1 + r.Intn(8)
	return reflect.ValueOf(c)
}

func propertyConfig(t *testing.T) *quick.Config {
	zonesOnce.Do(loadZones)
	n := 400
	if testing.Short() {
		n = 100
	}
	return &quick.Config{MaxCount: n, Rand: rand.New(rand.NewSource(20260329))}
}

// TestNextProperty: Next(t) is at or after t, inside the window, and no
// earlier whole minute (nor the nanosecond before it) is.
func TestNextProperty(t *testing.T) {
	check := func(c windowCase) bool {
		loc := zoneLocs[c.Zone]
		fail := func(format string, args ...any) bool {
			t.Logf("%v: %s", c, fmt.Sprintf(format, args...))
			return false
		}
		n, ok := c.W.Next(c.At, loc)
		switch {
		case !ok:
			return fail("Next not ok")
		case n.Before(c.At):
			return fail("Next = %v is before t", n)
		case !c.W.Contains(n, loc):
			return fail("Next = %v is not inside", n)
		case n.After(c.At) && c.W.Contains(n.Add(-time.Nanosecond), loc):
			return fail("Next = %v, but the nanosecond before is inside", n)
		case !nearSwitch(c.Zone, n) && !wallInside(c.W, n, loc):
			return fail("Next = %v is outside by the wall clock", n)
		case n.After(c.At) && !nearSwitch(c.Zone, n) && clock(n.In(loc)) != c.W.Start:
			return fail("Next = %v moved, but not to the window's start", n)
		}
		limit := c.At.Add(8 * day)
		for x := c.At; x.Before(n) && x.Before(limit); x = x.Add(time.Minute) {
			if c.W.Contains(x, loc) {
				return fail("Next = %v, but %v is inside", n, x.In(loc))
			}
			if !nearSwitch(c.Zone, x) && wallInside(c.W, x, loc) {
				return fail("Next = %v, but %v is inside by the wall clock", n, x.In(loc))
			}
		}
		return true
	}
	if err := quick.Check(check, propertyConfig(t)); err != nil {
		t.Fatal(err)
	}
}

// TestDueAtBusinessDaysProperty: a step n business days after prev is inside
// the window, on the n-th business day after the one prev counts from
// (Next(prev)), at the same wall-clock time unless a clock change moved it.
func TestDueAtBusinessDaysProperty(t *testing.T) {
	check := func(c windowCase) bool {
		loc := zoneLocs[c.Zone]
		fail := func(format string, args ...any) bool {
			t.Logf("%v: %s", c, fmt.Sprintf(format, args...))
			return false
		}
		s := &Sequence{Window: c.W, Steps: []Step{{Template: "x", Delay: Delay{BusinessDays: c.N}}}}
		due, ok := s.DueAt(0, c.At, loc)
		from, _ := c.W.Next(c.At, loc)
		if !ok || !due.After(from) || !c.W.Contains(due, loc) {
			return fail("DueAt = %v, %v (counting from %v)", due, ok, from)
		}
		// The business days strictly between the two dates.
		between := 0
		for d := DateOf(from.In(loc)).AddDays(1); d.Before(DateOf(due.In(loc))); d = d.AddDays(1) {
			if c.W.IsBusinessDay(d) {
				between++
			}
		}
		quiet := !nearSwitch(c.Zone, from) && !nearSwitch(c.Zone, due)
		switch {
		case !c.W.IsBusinessDay(DateOf(due.In(loc))):
			return fail("DueAt = %v is not on a business day", due)
		case between < c.N-1:
			return fail("DueAt = %v is only %d business days after %v", due, between+1, from)
		case quiet && between != c.N-1:
			return fail("DueAt = %v is %d business days after %v, want %d", due, between+1, from, c.N)
		case quiet && clock(due.In(loc)) != clock(from.In(loc)):
			return fail("DueAt = %v changed the wall-clock time of %v", due, from)
		case between > c.N-1 && clock(due.In(loc)) > c.W.Start && !nearSwitch(c.Zone, due):
			// Landing a day late is only right when the time did not exist
			// in the window on the intended day, so the step waits for the
			// next opening.
			return fail("DueAt = %v is late but not at an opening", due)
		}
		return true
	}
	if err := quick.Check(check, propertyConfig(t)); err != nil {
		t.Fatal(err)
	}
}

// bruteFirstAtOrAfter finds the earliest whole-minute instant whose local
// reading is at or after the wall-clock time by trying every minute. Clock
// changes and offsets fall on whole minutes, so for a whole-minute target
// the earliest instant is a whole minute too.
func bruteFirstAtOrAfter(d Date, wall time.Duration, loc *time.Location) time.Time {
	target := time.Date(d.Y, d.M, d.D, 0, 0, 0, 0, time.UTC).Add(wall)
	for x := target.Add(-15 * time.Hour); ; x = x.Add(time.Minute) {
		lt := x.In(loc)
		y, m, dd := lt.Date()
		h, mi, s := lt.Clock()
		if !time.Date(y, m, dd, h, mi, s, lt.Nanosecond(), time.UTC).Before(target) {
			return x
		}
	}
}

// TestFirstAtOrAfterProperty checks the one place where wall-clock times
// become instants against brute force, on the days around every clock change
// of the property zones and on random days.
func TestFirstAtOrAfterProperty(t *testing.T) {
	zonesOnce.Do(loadZones)
	r := rand.New(rand.NewSource(20261025))
	cases := 300
	if testing.Short() {
		cases = 60
	}
	for range cases {
		zone := propertyZones[r.Intn(len(propertyZones))]
		loc := zoneLocs[zone]
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int63n(int64(730 * day))))
		if trs := transitions[zone]; len(trs) > 0 && r.Intn(4) > 0 {
			at = trs[r.Intn(len(trs))].Add(time.Duration(r.Intn(3)-1) * day)
		}
		d := DateOf(at.In(loc))
		wall := time.Duration(r.Intn(24*60+1)) * time.Minute
		if r.Intn(2) == 0 {
			wall = time.Duration(r.Intn(4*60)) * time.Minute // the small hours
		}
		got, want := firstAtOrAfter(d, wall, loc), bruteFirstAtOrAfter(d, wall, loc)
		if !got.Equal(want) {
			t.Errorf("firstAtOrAfter(%v %v in %s) = %v, brute force says %v", d, wall, zone, got, want)
		}
	}
}

// tzif builds a zone from TZif data (RFC 8536, version 1): offsets[0] holds
// before the first change, offsets[i+1] from changes[i] on. It makes zones
// that no government has (yet) adopted.
func tzif(t *testing.T, name string, offsets []time.Duration, changes []time.Time) *time.Location {
	t.Helper()
	var b []byte
	be32 := func(v int64) { b = append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v)) }
	b = append(b, "TZif"...)
	b = append(b, make([]byte, 16)...)
	for _, n := range []int{0, 0, 0, len(changes), len(offsets), len(offsets) * 2} {
		be32(int64(n))
	}
	for _, c := range changes {
		be32(c.Unix())
	}
	for i := range changes {
		b = append(b, byte(i+1))
	}
	for i, off := range offsets {
		be32(int64(off / time.Second))
		b = append(b, 0, byte(2*i))
	}
	for i := range offsets {
		b = append(b, byte('A'+i), 0)
	}
	loc, err := time.LoadLocationFromTZData(name, b)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestClockBackAcrossMidnight: in a zone whose clock goes back from 00:30
// to 23:30 of the day before, the instants of the repeated half hour read as
// the previous date but lie inside the next date's window, which opened at
// the first 00:00. Contains and Next must agree on them.
func TestClockBackAcrossMidnight(t *testing.T) {
	// +01:00 until 2026-05-01T23:30Z (00:30 local on May 2), then UTC.
	loc := tzif(t, "Test/Back", []time.Duration{time.Hour, 0},
		[]time.Time{time.Date(2026, 5, 1, 23, 30, 0, 0, time.UTC)})
	w := NewWindow(allWeek, 0, time.Hour, nil)
	repeated := time.Date(2026, 5, 1, 23, 45, 0, 0, time.UTC) // reads May 1 23:45
	if got := repeated.In(loc).Day(); got != 1 {
		t.Fatalf("the synthetic zone reads day %d", got)
	}
	if !w.Contains(repeated, loc) {
		t.Error("Contains = false inside the window of May 2 that opened at the first 00:00")
	}
	if got, ok := w.Next(repeated, loc); !ok || !got.Equal(repeated) {
		t.Errorf("Next = %v, %v; want %v", got, ok, repeated)
	}
	open, shut := w.bounds(Date{2026, 5, 2}, loc)
	if want := time.Date(2026, 5, 1, 23, 0, 0, 0, time.UTC); !open.Equal(want) {
		t.Errorf("opens at %v, want %v", open, want)
	}
	if want := time.Date(2026, 5, 2, 1, 0, 0, 0, time.UTC); !shut.Equal(want) {
		t.Errorf("closes at %v, want %v", shut, want)
	}

	// Two changes within a day: the walk over zone periods must not stop at
	// the first.
	twice := tzif(t, "Test/Twice", []time.Duration{0, 2 * time.Hour, time.Hour}, []time.Time{
		time.Date(2026, 6, 1, 1, 0, 0, 0, time.UTC),
		time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC),
	})
	for _, wall := range []time.Duration{0, 2 * time.Hour, 3*time.Hour + 30*time.Minute, 11 * time.Hour, 11*time.Hour + 30*time.Minute, 12 * time.Hour, 24 * time.Hour} {
		got, want := firstAtOrAfter(Date{2026, 6, 1}, wall, twice), bruteFirstAtOrAfter(Date{2026, 6, 1}, wall, twice)
		if !got.Equal(want) {
			t.Errorf("Test/Twice %v: got %v, brute force %v", wall, got, want)
		}
	}
}
