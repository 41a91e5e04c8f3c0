package sequences

import (
	"reflect"
	"testing"
	"time"
)

// exampleRules mirrors the rules of examples/followup.yaml plus a webhook on
// every reply and a qualifying rule.
func exampleRules() []Rule {
	return []Rule{
		{Name: "interested", On: EventReply, Intent: []string{"interested"},
			Do: Actions{SetStage: "prospect", Stop: StopAll, Note: true, Webhook: "reply.interested"}},
		{Name: "not now", On: EventReply, Intent: []string{"not_now"},
			Do: Actions{Snooze: &Snooze{Default: 60 * day, Enroll: "nurture"}, Note: true}},
		{Name: "no thanks", On: EventReply, Intent: []string{"not_interested"},
			Do: Actions{SetStage: "not_interested", Stop: StopAll, Note: true}},
		{Name: "referral", On: EventReply, Intent: []string{"referral"},
			Do: Actions{Stop: StopThis, Note: true, Lead: &CreateLead{Stage: "lead", Enroll: "intro"}}},
		{Name: "unsubscribe by reply", On: EventReply, Intent: []string{"unsubscribe"},
			Do: Actions{SetStage: "unsubscribed", Stop: StopAll, Suppress: true}},
		{Name: "other reply", On: EventReply, Intent: []string{"other"},
			Do: Actions{Stop: StopThis, Note: true}},
		{Name: "any reply", On: EventReply, Do: Actions{Webhook: "reply"}},
		{Name: "out of office", On: EventAutoreply, Do: Actions{Pause: &Pause{Default: 7 * day}}},
		{Name: "hard bounce", On: EventBounce, BounceClass: []string{"hard"},
			Do: Actions{SetStage: "bounced", Stop: StopAll, Suppress: true}},
		{Name: "unsubscribe link", On: EventUnsubscribe,
			Do: Actions{SetStage: "unsubscribed", Stop: StopAll, Suppress: true}},
		{Name: "first purchase", On: EventPurchase, Stage: []string{"lead", "prospect"},
			Do: Actions{SetStage: "customer", Stop: StopAll, Enroll: "welcome"}},
		{Name: "repeat purchase", On: EventPurchase, Stage: []string{"customer"}, MinPurchases: 2,
			Do: Actions{SetStage: "repeat_customer"}},
		{Name: "qualified", On: EventFieldChanged, Stage: []string{"lead"},
			Fields: []Condition{
				{Field: "audience", Equals: ptr("yes")},
				{Field: "means", Equals: ptr("yes")},
				{Field: "authority", Equals: ptr("yes")},
			},
			Do: Actions{SetStage: "prospect"}},
		{Name: "welcome customers", On: EventStageChanged, Stage: []string{"customer"},
			Do: Actions{Enroll: "welcome", Webhook: "customer"}},
	}
}

func TestEvaluate(t *testing.T) {
	now := time.Date(2026, 6, 10, 14, 0, 0, 0, time.UTC)
	named := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	past := now.Add(-48 * time.Hour)
	qualified := map[string]string{"audience": "yes", "means": "Yes", "authority": "yes "}
	tests := []struct {
		name string
		ev   Event
		want Decision
	}{
		{"interested: stage, stop all, note, two webhooks",
			Event{On: EventReply, Intent: "interested", Stage: "lead", Text: "Sounds good, call me", Now: now},
			Decision{Matched: []string{"interested", "any reply"}, SetStage: "prospect", Stop: StopAll,
				Note: "Sounds good, call me", Webhooks: []string{"reply.interested", "reply"}}},
		{"not now with a date: snooze until that date",
			Event{On: EventReply, Intent: "not_now", Until: named, Text: "ask me in September", Now: now},
			Decision{Matched: []string{"not now", "any reply"}, SnoozeUntil: named, SnoozeEnroll: "nurture",
				Note: "ask me in September", Webhooks: []string{"reply"}}},
		{"not now without a date: the default",
			Event{On: EventReply, Intent: "not_now", Text: "not now", Now: now},
			Decision{Matched: []string{"not now", "any reply"}, SnoozeUntil: now.Add(60 * day), SnoozeEnroll: "nurture",
				Note: "not now", Webhooks: []string{"reply"}}},
		{"not now with a date already past: the default",
			Event{On: EventReply, Intent: "not_now", Until: past, Now: now},
			Decision{Matched: []string{"not now", "any reply"}, SnoozeUntil: now.Add(60 * day), SnoozeEnroll: "nurture",
				Webhooks: []string{"reply"}}},
		{"not interested",
			Event{On: EventReply, Intent: "not_interested", Text: "no thanks", Now: now},
			Decision{Matched: []string{"no thanks", "any reply"}, SetStage: "not_interested", Stop: StopAll,
				Note: "no thanks", Webhooks: []string{"reply"}}},
		{"referral creates a lead",
			Event{On: EventReply, Intent: "referral", Referral: " Bob@Acme.Example ", Text: "talk to Bob", Now: now},
			Decision{Matched: []string{"referral", "any reply"}, Stop: StopThis, Note: "talk to Bob",
				CreateLead: &Lead{Email: "bob@acme.example", Stage: "lead", Enroll: "intro"}, Webhooks: []string{"reply"}}},
		{"referral without an address creates nothing",
			Event{On: EventReply, Intent: "referral", Text: "talk to my boss", Now: now},
			Decision{Matched: []string{"referral", "any reply"}, Stop: StopThis, Note: "talk to my boss", Webhooks: []string{"reply"}}},
		{"unsubscribe by reply suppresses",
			Event{On: EventReply, Intent: "unsubscribe", Now: now},
			Decision{Matched: []string{"unsubscribe by reply", "any reply"}, SetStage: "unsubscribed", Stop: StopAll,
				Suppress: true, Webhooks: []string{"reply"}}},
		{"autoreply with a return date pauses until then",
			Event{On: EventAutoreply, ReturnDate: named, Now: now},
			Decision{Matched: []string{"out of office"}, PauseUntil: named}},
		{"autoreply without a return date pauses for the default",
			Event{On: EventAutoreply, Now: now},
			Decision{Matched: []string{"out of office"}, PauseUntil: now.Add(7 * day)}},
		{"autoreply whose return date has passed pauses for the default",
			Event{On: EventAutoreply, ReturnDate: past, Now: now},
			Decision{Matched: []string{"out of office"}, PauseUntil: now.Add(7 * day)}},
		{"hard bounce",
			Event{On: EventBounce, BounceClass: "hard", Now: now},
			Decision{Matched: []string{"hard bounce"}, SetStage: "bounced", Stop: StopAll, Suppress: true}},
		{"soft bounce matches nothing",
			Event{On: EventBounce, BounceClass: "soft", Now: now},
			Decision{}},
		{"unsubscribe link",
			Event{On: EventUnsubscribe, Now: now},
			Decision{Matched: []string{"unsubscribe link"}, SetStage: "unsubscribed", Stop: StopAll, Suppress: true}},
		{"first purchase of a prospect",
			Event{On: EventPurchase, Stage: "prospect", Purchases: 1, Now: now},
			Decision{Matched: []string{"first purchase"}, SetStage: "customer", Stop: StopAll, Enroll: []string{"welcome"}}},
		{"second purchase of a customer",
			Event{On: EventPurchase, Stage: "customer", Purchases: 2, Now: now},
			Decision{Matched: []string{"repeat purchase"}, SetStage: "repeat_customer"}},
		{"first purchase recorded on a customer: too few purchases",
			Event{On: EventPurchase, Stage: "customer", Purchases: 1, Now: now},
			Decision{}},
		{"a lead meeting all three criteria qualifies",
			Event{On: EventFieldChanged, Stage: "lead", Fields: MapFields(qualified), Now: now},
			Decision{Matched: []string{"qualified"}, SetStage: "prospect"}},
		{"a lead missing one criterion does not",
			Event{On: EventFieldChanged, Stage: "lead", Fields: MapFields(map[string]string{"audience": "yes", "means": "yes"}), Now: now},
			Decision{}},
		{"a prospect is not re-qualified",
			Event{On: EventFieldChanged, Stage: "prospect", Fields: MapFields(qualified), Now: now},
			Decision{}},
		{"stage change into customer",
			Event{On: EventStageChanged, Stage: "customer", Now: now},
			Decision{Matched: []string{"welcome customers"}, Enroll: []string{"welcome"}, Webhooks: []string{"customer"}}},
		{"qualifying fields on another kind of event do not qualify",
			Event{On: EventStageChanged, Stage: "lead", Fields: MapFields(qualified), Now: now},
			Decision{}},
		{"an intent of another rule's kind",
			Event{On: EventAutoreply, Intent: "interested", Now: now},
			Decision{Matched: []string{"out of office"}, PauseUntil: now.Add(7 * day)}},
	}
	rules := exampleRules()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Evaluate(rules, tt.ev); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Evaluate =\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
}

func TestEvaluateMerging(t *testing.T) {
	now := time.Date(2026, 6, 10, 14, 0, 0, 0, time.UTC)
	rules := []Rule{
		{Name: "a", On: EventReply, Do: Actions{SetStage: "prospect", Stop: StopThis, Webhook: "w1", Enroll: "s1"}},
		{Name: "b", On: EventReply, Do: Actions{Stop: StopAll, Pause: &Pause{Default: 2 * day}, Webhook: "w1"}},
		{Name: "c", On: EventReply, Do: Actions{SetStage: "customer", Stop: StopThis, Pause: &Pause{Default: day},
			Snooze: &Snooze{Default: 10 * day, Enroll: "later"}, Enroll: "s2", Webhook: "w2"}},
		{Name: "d", On: EventReply, Do: Actions{Snooze: &Snooze{Default: 3 * day}, Note: true, Enroll: "s1"}},
		{Name: "e", On: EventReply, Do: Actions{Lead: &CreateLead{Stage: "lead"}}},
		{Name: "f", On: EventReply, Do: Actions{Lead: &CreateLead{Stage: "prospect", Enroll: "intro"}, Suppress: true}},
		{Name: "g", On: EventBounce, Do: Actions{SetStage: "bounced", Stop: StopAll}},
	}
	got := Evaluate(rules, Event{On: EventReply, Referral: "x@y.example", Text: "hi", Now: now})
	want := Decision{
		Matched:      []string{"a", "b", "c", "d", "e", "f"},
		SetStage:     "customer",        // the last one wins
		Stop:         StopAll,           // all beats this, whatever the order
		PauseUntil:   now.Add(2 * day),  // the later pause
		SnoozeUntil:  now.Add(10 * day), // the later snooze
		SnoozeEnroll: "later",           // the last snooze naming one
		Suppress:     true,
		CreateLead:   &Lead{Email: "x@y.example", Stage: "prospect", Enroll: "intro"},
		Note:         "hi",
		Webhooks:     []string{"w1", "w2"}, // once each, in order
		Enroll:       []string{"s1", "s2"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Evaluate =\n  %+v\nwant\n  %+v", got, want)
	}
	if d := Evaluate(rules, Event{On: EventPurchase, Now: now}); !reflect.DeepEqual(d, Decision{}) {
		t.Errorf("no rule for purchases, got %+v", d)
	}
	if d := Evaluate(nil, Event{On: EventReply, Now: now}); !reflect.DeepEqual(d, Decision{}) {
		t.Errorf("no rules, got %+v", d)
	}
}
