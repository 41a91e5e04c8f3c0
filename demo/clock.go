package demo

import (
	"time"
)

// Clock is the demo's time: it starts at Start and runs Factor times faster
// than the wall clock. The daemon reads it through Options.Now, the mail
// world dates its messages with it, and the event printer turns the wall
// clock times the database records into demo times with At.
type Clock struct {
	// Start is the demo time at Begin.
	Start time.Time
	// Begin is the wall clock time the demo started (with its monotonic
	// reading, so Now is immune to wall clock steps).
	Begin time.Time
	// Factor is how many demo seconds pass per real second.
	Factor float64
}

// NewClock starts a clock at start on which one day passes every dayEvery
// of real time.
func NewClock(start time.Time, dayEvery time.Duration) *Clock {
	return &Clock{Start: start, Begin: time.Now(), Factor: float64(24*time.Hour) / float64(dayEvery)}
}

// Now is the demo time now.
func (c *Clock) Now() time.Time { return c.At(time.Now()) }

// At is the demo time at the wall clock time t.
func (c *Clock) At(t time.Time) time.Time {
	return c.Start.Add(time.Duration(float64(t.Sub(c.Begin)) * c.Factor))
}

// Real is how long the demo duration d lasts in real time.
func (c *Clock) Real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.Factor)
}

// demoStart is the demo's first moment: 08:55 in Amsterdam on the Monday
// after now, so that the first sends, at 09:00 in each contact's zone, go
// out within seconds.
func demoStart(now time.Time) time.Time {
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		ams = time.UTC
	}
	t := now.In(ams)
	d := time.Date(t.Year(), t.Month(), t.Day(), 8, 55, 0, 0, ams)
	for d.Weekday() != time.Monday || !d.After(t) {
		d = d.AddDate(0, 0, 1)
	}
	return d
}
