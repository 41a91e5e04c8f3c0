package sequences

import (
	"slices"
	"strings"
	"time"
)

// Rule events: what happened to the contact.
const (
	EventReply        = "reply"
	EventAutoreply    = "autoreply"
	EventBounce       = "bounce"
	EventUnsubscribe  = "unsubscribe"
	EventPurchase     = "purchase"
	EventStageChanged = "stage_changed"
	EventFieldChanged = "field_changed"
)

// Stop modes.
const (
	// StopThis stops the enrollment the event belongs to.
	StopThis = "this"
	// StopAll stops every enrollment of the contact.
	StopAll = "all"
)

// Rule maps an event and filters to actions. Every filter that is set must
// hold; a rule with no filters matches every event of its kind.
type Rule struct {
	Name string
	// On is the event kind, one of the Event* constants.
	On string
	// Intent matches a reply's intent: interested, not_now, not_interested,
	// referral, unsubscribe, other.
	Intent []string
	// BounceClass matches a bounce: hard or soft.
	BounceClass []string
	// Stage matches the contact's current stage.
	Stage []string
	// MinPurchases matches contacts with at least this many purchases.
	MinPurchases int
	// Fields must all hold (see MatchAll).
	Fields []Condition
	Do     Actions
}

// Actions a rule takes.
type Actions struct {
	SetStage string
	// Stop is StopThis, StopAll or "".
	Stop string
	// Pause holds the contact's enrollments until an out-of-office's return
	// date, or for Default.
	Pause *Pause
	// Snooze stops now and re-enrolls later: on the date the reply names, or
	// after Default.
	Snooze   *Snooze
	Suppress bool
	// Lead creates the referred contact (create_lead in the config).
	Lead *CreateLead
	// Note adds the reply's visible text to the contact's timeline.
	Note    bool
	Webhook string
	Enroll  string
}

// Pause holds enrollments.
type Pause struct {
	Default time.Duration
}

// Snooze re-enrolls a contact later, in Enroll (or, when empty, the
// sequence the event belongs to, as the daemon decides).
type Snooze struct {
	Default time.Duration
	Enroll  string
}

// CreateLead describes the contact created from a referral.
type CreateLead struct {
	// Stage is where the new contact starts; "" means the pipeline's default.
	Stage  string
	Enroll string
}

// Event is what happened, with what the classifier and the store know about
// it. Only the fields of its kind need to be set.
type Event struct {
	// On is the event kind, one of the Event* constants.
	On string
	// Intent of a human reply.
	Intent string
	// BounceClass of a bounce: hard or soft.
	BounceClass string
	// Stage is the contact's stage now; for stage_changed, the stage it
	// has just entered.
	Stage     string
	Purchases int
	Fields    Fields
	// Until is the date a not_now reply names; zero when it names none.
	Until time.Time
	// ReturnDate is an out-of-office's first day back; zero when unknown.
	ReturnDate time.Time
	// Referral is the address a referral reply points to.
	Referral string
	// Text is the reply's visible text, for notes.
	Text string
	// Now is when the event is evaluated; Pause and Snooze defaults count from it.
	Now time.Time
}

// Lead is a contact to create from a referral.
type Lead struct {
	Email  string
	Stage  string
	Enroll string
}

// Decision is the merged outcome of every rule that matched an event; the
// daemon applies it in one transaction. The zero Decision does nothing.
//
// Suggested order of application: SetStage, Suppress, Stop, Pause (of the
// enrollments still live), Snooze, CreateLead, Enroll, Note, Webhooks. With
// Stop "all" nothing is left to pause, so the two never conflict.
type Decision struct {
	// Matched names the matching rules in order.
	Matched []string
	// SetStage is the last matching rule's stage; "" leaves it.
	SetStage string
	// Stop is StopAll if any rule stops all, else StopThis if any stops this.
	Stop string
	// PauseUntil is when paused enrollments resume; zero for no pause. It is
	// the event's ReturnDate if that is after Now, else Now + Default; the
	// instant is kept as is (not rounded to a day) since the window decides
	// the actual send time anyway. With several pausing rules the latest wins.
	PauseUntil time.Time
	// SnoozeUntil is when to re-enroll; zero for no snooze. It is the
	// event's Until if that is after Now, else Now + Default; with several
	// snoozing rules the latest wins.
	SnoozeUntil time.Time
	// SnoozeEnroll is the sequence to re-enroll in, from the last snoozing
	// rule that names one.
	SnoozeEnroll string
	// Suppress is set when any rule suppresses.
	Suppress bool
	// CreateLead is the referred contact, set only when the event carries a
	// Referral; the last matching create_lead rule supplies stage and sequence.
	CreateLead *Lead
	// Note is the event's Text when any matched rule takes notes.
	Note string
	// Webhooks and Enroll list each matching rule's value once, in rule order.
	Webhooks []string
	Enroll   []string
}

// Matches reports whether r applies to ev.
func (r *Rule) Matches(ev Event) bool {
	return r.On == ev.On &&
		(len(r.Intent) == 0 || slices.Contains(r.Intent, ev.Intent)) &&
		(len(r.BounceClass) == 0 || slices.Contains(r.BounceClass, ev.BounceClass)) &&
		(len(r.Stage) == 0 || slices.Contains(r.Stage, ev.Stage)) &&
		ev.Purchases >= r.MinPurchases &&
		MatchAll(r.Fields, ev.Fields)
}

// Evaluate runs every rule, in order, against ev and merges the actions of
// all that match into one Decision (see its fields for how each merges).
func Evaluate(rules []Rule, ev Event) Decision {
	var d Decision
	for i := range rules {
		r := &rules[i]
		if !r.Matches(ev) {
			continue
		}
		d.Matched = append(d.Matched, r.Name)
		a := r.Do
		if a.SetStage != "" {
			d.SetStage = a.SetStage
		}
		switch {
		case a.Stop == StopAll:
			d.Stop = StopAll
		case a.Stop == StopThis && d.Stop == "":
			d.Stop = StopThis
		}
		if a.Pause != nil {
			d.PauseUntil = later(d.PauseUntil, until(ev.ReturnDate, ev.Now, a.Pause.Default))
		}
		if a.Snooze != nil {
			d.SnoozeUntil = later(d.SnoozeUntil, until(ev.Until, ev.Now, a.Snooze.Default))
			if a.Snooze.Enroll != "" {
				d.SnoozeEnroll = a.Snooze.Enroll
			}
		}
		d.Suppress = d.Suppress || a.Suppress
		if a.Lead != nil {
			if email := strings.ToLower(strings.TrimSpace(ev.Referral)); email != "" {
				d.CreateLead = &Lead{Email: email, Stage: a.Lead.Stage, Enroll: a.Lead.Enroll}
			}
		}
		if a.Note {
			d.Note = ev.Text
		}
		d.Webhooks = appendOnce(d.Webhooks, a.Webhook)
		d.Enroll = appendOnce(d.Enroll, a.Enroll)
	}
	return d
}

// until is the named date when it is still ahead, else now + def.
func until(named, now time.Time, def time.Duration) time.Time {
	if !named.IsZero() && named.After(now) {
		return named
	}
	return now.Add(def)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func appendOnce(list []string, v string) []string {
	if v == "" || slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}
