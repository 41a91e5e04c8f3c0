package sequences

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// Step threading modes.
const (
	ThreadNew   = "new"
	ThreadReply = "reply"
)

// Sequence is a series of emails sent to an enrolled contact.
type Sequence struct {
	Name string
	// Accounts the sequence sends from; a contact keeps one (ChooseAccount)
	// for the whole sequence.
	Accounts []string
	Triggers []Trigger
	// Window is when the steps may go out: the sequence's own window, or the
	// account's when the sequence names none.
	Window Window
	// Zone says which zone Window is read in.
	Zone     ZoneMode
	Steps    []Step
	OnFinish OnFinish
}

// Trigger enrolls contacts automatically; exactly one field is set.
type Trigger struct {
	Manual bool
	// OnStage enrolls contacts entering this stage.
	OnStage string
	// Anniversary enrolls every year on this date field (see AnniversaryDue).
	Anniversary string
}

// OnFinish says what happens after the last step.
type OnFinish struct {
	SetStage string
	Enroll   string
}

// Step is one email of a sequence.
type Step struct {
	Template string
	// Variants are alternative templates to Template for an A/B test.
	Variants []string
	Delay    Delay
	// Thread is ThreadNew or ThreadReply.
	Thread string
	// SkipIf skips the step when all its conditions hold.
	SkipIf []Condition
}

// Delay is how long after the previous step a step is due. The config sets
// one of the two; if both are set, Duration is added first.
type Delay struct {
	// Duration is elapsed time, except that whole days are calendar days at
	// the same local time (see DueAt).
	Duration time.Duration
	// BusinessDays counts days of the window (see Window.AddBusinessDays).
	BusinessDays int
}

// ZoneMode says which time zone a sequence's window is read in. The zero
// value reads it in the account's zone.
type ZoneMode struct {
	// Fixed, when set, is the zone for every contact.
	Fixed *time.Location
	// Contact reads the window in the contact's own zone, falling back to
	// the account's for a contact without one.
	Contact bool
}

// The zone modes that name no zone.
var (
	ZoneAccount = ZoneMode{}
	ZoneContact = ZoneMode{Contact: true}
)

// ParseZoneMode reads the configuration's window time zone: "contact",
// "account" (or empty), or an IANA name that load turns into a location.
// load is passed in so that this package never reads the zone database.
func ParseZoneMode(s string, load func(string) (*time.Location, error)) (ZoneMode, error) {
	switch strings.TrimSpace(s) {
	case "contact":
		return ZoneContact, nil
	case "account", "":
		return ZoneAccount, nil
	}
	loc, err := load(strings.TrimSpace(s))
	if err != nil {
		return ZoneMode{}, err
	}
	return ZoneMode{Fixed: loc}, nil
}

// String writes the mode as the configuration does.
func (z ZoneMode) String() string {
	switch {
	case z.Fixed != nil:
		return z.Fixed.String()
	case z.Contact:
		return "contact"
	}
	return "account"
}

// Location is the zone the sequence's window is read in for one contact:
// the fixed zone if the sequence names one; the contact's zone if the mode is
// contact and the contact has one (contactLoc non-nil); else the account's
// (UTC when that is nil too).
func (s *Sequence) Location(contactLoc, accountLoc *time.Location) *time.Location {
	switch {
	case s.Zone.Fixed != nil:
		return s.Zone.Fixed
	case s.Zone.Contact && contactLoc != nil:
		return contactLoc
	}
	return orUTC(accountLoc)
}

// DueAt is when step (0-based) falls due, with the window read in loc.
//
// prev is the previous step's actual send time, or the instant the previous
// step was skipped, or the enrollment time for step 0: delays count from what
// really happened, not from the plan. The step's Delay is added (whole days
// as calendar days at the same local time, business days by
// Window.AddBusinessDays) and the result moved into the window by
// Window.Next; so a step 0 with delay 0 enrolled inside the window is due at
// prev itself.
//
// ok is false for a step that does not exist or a window that never opens.
func (s *Sequence) DueAt(step int, prev time.Time, loc *time.Location) (time.Time, bool) {
	if step < 0 || step >= len(s.Steps) {
		return time.Time{}, false
	}
	loc = orUTC(loc)
	d := s.Steps[step].Delay
	t := addDelay(prev, d.Duration, loc)
	if d.BusinessDays > 0 {
		return s.Window.AddBusinessDays(t, d.BusinessDays, loc)
	}
	return s.Window.Next(t, loc)
}

// Skipped reports whether step's skip_if conditions hold for this contact.
// An empty skip_if never skips.
func (s *Sequence) Skipped(step int, fields Fields) bool {
	if step < 0 || step >= len(s.Steps) {
		return false
	}
	c := s.Steps[step].SkipIf
	return len(c) > 0 && MatchAll(c, fields)
}

// NextStep is the index of the first step at or after from that is not
// skipped for this contact; ok is false when none is left and the sequence
// has finished.
func (s *Sequence) NextStep(from int, fields Fields) (step int, ok bool) {
	for i := max(from, 0); i < len(s.Steps); i++ {
		if !s.Skipped(i, fields) {
			return i, true
		}
	}
	return len(s.Steps), false
}

// PlannedStep is one step of a Plan.
type PlannedStep struct {
	Index int
	// Template is the template this contact gets (its A/B variant).
	Template string
	// At is when the step is due; for a skipped step, when it is skipped.
	// It is zero when the window never opens.
	At      time.Time
	Skipped bool
}

// Plan lays out every step's due time for `followupd preview`, assuming the
// contact enrolls at start and every step goes out exactly when due. A
// skipped step is listed with the time it would have been skipped, and the
// next step's delay counts from that time, as DueAt does at run time. The
// contact's "email" field picks the A/B variant.
func Plan(s *Sequence, start time.Time, loc *time.Location, fields Fields) []PlannedStep {
	email, _ := fields.get("email")
	out := make([]PlannedStep, 0, len(s.Steps))
	prev, open := start, true
	for i := range s.Steps {
		p := PlannedStep{Index: i, Template: ChooseVariant(s, i, email), Skipped: s.Skipped(i, fields)}
		if open {
			// Once the window cannot open no later step can be planned: a
			// zero prev would only plan from the year 1.
			p.At, open = s.DueAt(i, prev, loc)
			prev = p.At
		}
		out = append(out, p)
	}
	return out
}

// ChooseAccount picks the account a contact is sent from: stable for the
// contact (a hash of the lower-cased email and the sequence name, so the
// contact keeps its mailbox across restarts and replicas without storing
// anything) and spread evenly over Accounts. It is "" when there are none.
func ChooseAccount(s *Sequence, contactEmail string) string {
	if len(s.Accounts) == 0 {
		return ""
	}
	return s.Accounts[pick("account", s.Name, contactEmail, len(s.Accounts))]
}

// ChooseVariant picks the template a contact gets for step: Template or one
// of Variants, stable for the contact and spread evenly. The hash covers the
// email and the sequence name but not the step, so a contact stays in the
// same arm (first, second, …) of every step with the same number of
// variants, which keeps an A/B test about a whole sequence readable. It is
// "" for a step that does not exist.
func ChooseVariant(s *Sequence, step int, contactEmail string) string {
	if step < 0 || step >= len(s.Steps) {
		return ""
	}
	st := s.Steps[step]
	if len(st.Variants) == 0 {
		return st.Template
	}
	i := pick("variant", s.Name, contactEmail, 1+len(st.Variants))
	if i == 0 {
		return st.Template
	}
	return st.Variants[i-1]
}

// pick maps a contact to one of n buckets. SHA-256 rather than a fast hash
// because emails share long prefixes and suffixes that weak hashes cluster
// on; purpose keeps the account and variant choices independent.
func pick(purpose, sequence, email string, n int) int {
	sum := sha256.Sum256([]byte(purpose + "\x00" + sequence + "\x00" + strings.ToLower(strings.TrimSpace(email))))
	return int(binary.BigEndian.Uint64(sum[:8]) % uint64(n))
}

// AnniversaryDue is the start (local midnight, or the first instant of the
// day) in loc of the next occurrence of a yearly date on or after the date
// now reads in loc — so on the day itself it is already in the past, and the
// daemon must remember that it enrolled the contact this year.
//
// fieldValue is YYYY-MM-DD (a birthday) or MM-DD (also --MM-DD). With a year,
// only later years count: a date recorded today is not its own anniversary.
// Feb 29 falls on Feb 28 in other years. ok is false for a value that is not
// such a date.
func AnniversaryDue(fieldValue string, now time.Time, loc *time.Location) (time.Time, bool) {
	loc = orUTC(loc)
	v := strings.TrimSpace(fieldValue)
	var orig time.Time
	var err error
	withYear := len(v) == len("2006-01-02")
	switch {
	case withYear:
		orig, err = time.Parse(time.DateOnly, v)
	case len(v) == len("01-02"):
		// 2000 is a leap year, so 02-29 parses.
		orig, err = time.Parse(time.DateOnly, "2000-"+v)
	case len(v) == len("--01-02") && strings.HasPrefix(v, "--"):
		orig, err = time.Parse(time.DateOnly, "2000-"+v[2:])
	default:
		return time.Time{}, false
	}
	if err != nil {
		return time.Time{}, false
	}
	today := DateOf(now.In(loc))
	first := today.Y
	if withYear && first <= orig.Year() {
		first = orig.Year() + 1
	}
	for y := first; y <= first+1; y++ {
		d := Date{y, orig.Month(), orig.Day()}
		if d.M == time.February && d.D == 29 && !isLeap(y) {
			d.D = 28
		}
		if !d.Before(today) {
			return firstAtOrAfter(d, 0, loc), true
		}
	}
	return time.Time{}, false
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// ReplySubject is the subject of a reply in the thread that first started:
// "Re: " and the subject without any reply prefixes it already has, so
// replying to a reply never gives "Re: Re: …". Prefixes are recognised in any
// case, with a space before the colon ("RE :") or a counter ("Re[2]:").
func ReplySubject(first string) string {
	s := strings.TrimSpace(first)
	for {
		rest, ok := cutReplyPrefix(s)
		if !ok {
			break
		}
		s = rest
	}
	if s == "" {
		return "Re:"
	}
	return "Re: " + s
}

func cutReplyPrefix(s string) (string, bool) {
	if len(s) < 3 || !strings.EqualFold(s[:2], "re") {
		return s, false
	}
	i := 2
	if s[i] == '[' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i+1 || j >= len(s) || s[j] != ']' {
			return s, false
		}
		i = j + 1
	}
	for i < len(s) && s[i] == ' ' {
		i++
	}
	if i >= len(s) || s[i] != ':' {
		return s, false
	}
	return strings.TrimSpace(s[i+1:]), true
}

// String describes the delay as the configuration writes it.
func (d Delay) String() string {
	switch {
	case d.BusinessDays > 0 && d.Duration > 0:
		return fmt.Sprintf("%v+%dbd", d.Duration, d.BusinessDays)
	case d.BusinessDays > 0:
		return fmt.Sprintf("%dbd", d.BusinessDays)
	case d.Duration == 0:
		return "0"
	case d.Duration%(7*day) == 0:
		return fmt.Sprintf("%dw", d.Duration/(7*day))
	case d.Duration%day == 0:
		return fmt.Sprintf("%dd", d.Duration/day)
	}
	return d.Duration.String()
}
