package sequences

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

// intro mirrors the intro sequence of examples/followup.yaml.
func intro() *Sequence {
	return &Sequence{
		Name:     "intro",
		Accounts: []string{"sales"},
		Triggers: []Trigger{{OnStage: "lead"}},
		Window:   office(Date{2026, 12, 25}, Date{2026, 12, 26}, Date{2027, 1, 1}),
		Zone:     ZoneContact,
		Steps: []Step{
			{Template: "intro-1", Thread: ThreadNew},
			{Template: "intro-2", Delay: Delay{BusinessDays: 3}, Thread: ThreadReply},
			{Template: "intro-3", Delay: Delay{Duration: 7 * day}, Thread: ThreadReply,
				SkipIf: []Condition{{Field: "company", Empty: ptr(true)}}},
		},
		OnFinish: OnFinish{Enroll: "nurture"},
	}
}

func TestLocation(t *testing.T) {
	ams, tokyo, nyc := loadLoc(t, "Europe/Amsterdam"), loadLoc(t, "Asia/Tokyo"), loadLoc(t, "America/New_York")
	tests := []struct {
		zone             ZoneMode
		contact, account *time.Location
		want             *time.Location
	}{
		{ZoneContact, tokyo, ams, tokyo},
		{ZoneContact, nil, ams, ams},
		{ZoneAccount, tokyo, ams, ams},
		{ZoneMode{Fixed: nyc}, tokyo, ams, nyc},
		{ZoneContact, nil, nil, time.UTC},
	}
	for _, tt := range tests {
		s := &Sequence{Zone: tt.zone}
		if got := s.Location(tt.contact, tt.account); got != tt.want {
			t.Errorf("%v: Location(%v, %v) = %v, want %v", tt.zone, tt.contact, tt.account, got, tt.want)
		}
	}
}

func TestParseZoneMode(t *testing.T) {
	load := func(name string) (*time.Location, error) {
		if name == "Nowhere/Atlantis" {
			return nil, errors.New("unknown zone")
		}
		return time.LoadLocation(name)
	}
	for in, want := range map[string]string{"contact": "contact", "account": "account", "": "account", " Asia/Tokyo ": "Asia/Tokyo"} {
		z, err := ParseZoneMode(in, load)
		if err != nil || z.String() != want {
			t.Errorf("ParseZoneMode(%q) = %v, %v; want %s", in, z, err, want)
		}
	}
	if _, err := ParseZoneMode("Nowhere/Atlantis", load); err == nil {
		t.Error("an unknown zone was accepted")
	}
}

func TestDueAt(t *testing.T) {
	ams, tokyo := loadLoc(t, "Europe/Amsterdam"), loadLoc(t, "Asia/Tokyo")
	s := intro()
	s.Steps = append(s.Steps,
		Step{Template: "elapsed", Delay: Delay{Duration: 36 * time.Hour}},
		Step{Template: "both", Delay: Delay{Duration: 2 * day, BusinessDays: 1}},
	)
	tests := []struct {
		name string
		step int
		loc  *time.Location
		prev string
		want string
	}{
		{"step 0, delay 0, inside the window: due at once", 0, ams, "2026-06-10T10:11:12+02:00", "2026-06-10T10:11:12+02:00"},
		{"step 0, delay 0, after hours: next opening", 0, ams, "2026-06-10T18:00:00+02:00", "2026-06-11T09:00:00+02:00"},
		{"step 0 for a Tokyo contact whose day is over", 0, tokyo, "2026-06-10T10:00:00Z", "2026-06-11T09:00:00+09:00"},
		{"3bd after a Friday 16:00 send", 1, ams, "2026-06-12T16:00:00+02:00", "2026-06-17T16:00:00+02:00"},
		{"3bd over Christmas", 1, ams, "2026-12-23T11:00:00+01:00", "2026-12-29T11:00:00+01:00"},
		{"1w is calendar days: same wall clock across spring forward", 2, ams, "2026-03-23T16:30:00+01:00", "2026-03-30T16:30:00+02:00"},
		{"1w is calendar days: same wall clock across fall back", 2, ams, "2026-10-19T09:00:00+02:00", "2026-10-26T09:00:00+01:00"},
		{"1w landing on a holiday moves on", 2, ams, "2026-12-18T10:00:00+01:00", "2026-12-28T09:00:00+01:00"},
		{"36h is elapsed time, then the window", 3, ams, "2026-06-08T10:00:00+02:00", "2026-06-10T09:00:00+02:00"},
		{"36h landing inside", 3, ams, "2026-06-08T22:00:00+02:00", "2026-06-10T10:00:00+02:00"},
		{"2d then 1bd", 4, ams, "2026-06-10T10:00:00+02:00", "2026-06-15T10:00:00+02:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := s.DueAt(tt.step, ts(t, tt.prev), tt.loc)
			if want := ts(t, tt.want); !ok || !got.Equal(want) {
				t.Fatalf("DueAt(%d, %s) = %v, %v; want %v", tt.step, tt.prev, got, ok, want)
			}
		})
	}
	for _, step := range []int{-1, len(s.Steps)} {
		if _, ok := s.DueAt(step, ts(t, "2026-06-10T10:00:00Z"), ams); ok {
			t.Errorf("DueAt(%d) ok for a step that does not exist", step)
		}
	}
	never := &Sequence{Steps: []Step{{Template: "x"}}}
	if _, ok := never.DueAt(0, ts(t, "2026-06-10T10:00:00Z"), nil); ok {
		t.Error("DueAt ok with a window that never opens")
	}
}

func TestNextStep(t *testing.T) {
	s := &Sequence{Steps: []Step{
		{Template: "a"},
		{Template: "b", SkipIf: []Condition{{Field: "company", Empty: ptr(true)}}},
		{Template: "c", SkipIf: []Condition{{Field: "stage", In: []string{"customer", "repeat_customer"}}}},
		{Template: "d", SkipIf: []Condition{{Field: "country", Equals: ptr("NL")}, {Field: "lang", NotEquals: ptr("en")}}},
	}}
	tests := []struct {
		fields map[string]string
		from   int
		want   int
		ok     bool
	}{
		{nil, 0, 0, true},
		{nil, 1, 2, true}, // no company: b skipped
		{map[string]string{"company": "Acme"}, 1, 1, true},
		{map[string]string{"company": "  "}, 1, 2, true}, // blank counts as empty
		{map[string]string{"stage": "Customer"}, 2, 3, true},
		{map[string]string{"stage": "lead"}, 2, 2, true},
		{map[string]string{"stage": "customer", "country": "nl", "lang": "nl"}, 2, 4, false},
		{map[string]string{"stage": "customer", "country": "nl", "lang": "EN"}, 2, 3, true}, // only one of d's conditions holds
		{nil, 4, 4, false},
		{nil, -3, 0, true},
	}
	for _, tt := range tests {
		got, ok := s.NextStep(tt.from, MapFields(tt.fields))
		if got != tt.want || ok != tt.ok {
			t.Errorf("NextStep(%d, %v) = %d, %v; want %d, %v", tt.from, tt.fields, got, ok, tt.want, tt.ok)
		}
	}
	if got, ok := s.NextStep(1, nil); got != 2 || !ok {
		t.Errorf("NextStep with nil fields = %d, %v", got, ok)
	}
}

func TestCondition(t *testing.T) {
	f := MapFields(map[string]string{"audience": " Yes ", "blank": ""})
	tests := []struct {
		c    Condition
		want bool
	}{
		{Condition{Field: "audience", Equals: ptr("yes")}, true},
		{Condition{Field: "audience", Equals: ptr("no")}, false},
		{Condition{Field: "missing", Equals: ptr("")}, false}, // equals needs the field
		{Condition{Field: "audience", NotEquals: ptr("YES")}, false},
		{Condition{Field: "missing", NotEquals: ptr("yes")}, true},
		{Condition{Field: "audience", In: []string{"maybe", "yes"}}, true},
		{Condition{Field: "missing", In: []string{""}}, false},
		{Condition{Field: "audience", In: []string{}}, false},
		{Condition{Field: "blank", Empty: ptr(true)}, true},
		{Condition{Field: "missing", Empty: ptr(true)}, true},
		{Condition{Field: "audience", Empty: ptr(false)}, true},
		{Condition{Field: "audience"}, true},
		{Condition{Field: "audience", Equals: ptr("yes"), Empty: ptr(true)}, false},
	}
	for _, tt := range tests {
		if got := tt.c.Match(f); got != tt.want {
			t.Errorf("%+v: Match = %v, want %v", tt.c, got, tt.want)
		}
	}
	if !MatchAll(nil, nil) {
		t.Error("an empty list of conditions should hold")
	}
}

func TestPlan(t *testing.T) {
	ams := loadLoc(t, "Europe/Amsterdam")
	s := intro()
	s.Steps[1].Variants = []string{"intro-2b"}
	start := ts(t, "2026-06-12T16:00:00+02:00") // a Friday
	fields := map[string]string{"email": "ann@acme.example", "company": "Acme"}

	got := Plan(s, start, ams, MapFields(fields))
	want := []PlannedStep{
		{0, "intro-1", ts(t, "2026-06-12T16:00:00+02:00"), false},
		{1, ChooseVariant(s, 1, "ann@acme.example"), ts(t, "2026-06-17T16:00:00+02:00"), false},
		{2, "intro-3", ts(t, "2026-06-24T16:00:00+02:00"), false},
	}
	checkPlan(t, got, want)

	// Without a company the last step is skipped, at the time it comes due.
	delete(fields, "company")
	want[2].Skipped = true
	checkPlan(t, Plan(s, start, ams, MapFields(fields)), want)

	// A skipped step's due time is what the next step counts from.
	s.Steps = append(s.Steps, Step{Template: "intro-4", Delay: Delay{BusinessDays: 1}})
	want = append(want, PlannedStep{3, "intro-4", ts(t, "2026-06-25T16:00:00+02:00"), false})
	checkPlan(t, Plan(s, start, ams, MapFields(fields)), want)

	// A window that never opens plans nothing.
	s.Window = Window{}
	for _, p := range Plan(s, start, ams, nil) {
		if !p.At.IsZero() {
			t.Errorf("step %d planned at %v in a window that never opens", p.Index, p.At)
		}
	}
}

func checkPlan(t *testing.T, got, want []PlannedStep) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("Plan has %d steps, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Index != w.Index || g.Template != w.Template || !g.At.Equal(w.At) || g.Skipped != w.Skipped {
			t.Errorf("step %d = %+v, want %+v", i, g, w)
		}
	}
}

func emails(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("contact%d@company%d.example", i, i%37)
	}
	return out
}

func TestChooseAccountSpread(t *testing.T) {
	s := &Sequence{Name: "intro", Accounts: []string{"ann", "bob"}}
	counts := map[string]int{}
	for _, e := range emails(10000) {
		a := ChooseAccount(s, e)
		counts[a]++
		if again := ChooseAccount(s, "  "+strings.ToUpper(e)+" "); again != a {
			t.Fatalf("%s: %s, but %s for the same address in other case", e, a, again)
		}
	}
	for _, a := range s.Accounts {
		if share := float64(counts[a]) / 10000; share < 0.45 || share > 0.55 {
			t.Errorf("account %s gets %.1f%%, want 45–55%%", a, 100*share)
		}
	}
	if len(counts) != 2 {
		t.Errorf("accounts chosen: %v", counts)
	}
	if got := ChooseAccount(&Sequence{Name: "x"}, "a@b.example"); got != "" {
		t.Errorf("no accounts: got %q", got)
	}
}

func TestChooseVariantSpread(t *testing.T) {
	s := &Sequence{Name: "intro", Accounts: []string{"ann", "bob"}, Steps: []Step{
		{Template: "a", Variants: []string{"b", "c"}},
		{Template: "x", Variants: []string{"y", "z"}},
		{Template: "only"},
	}}
	counts := map[string]int{}
	same, accountB := 0, 0
	for _, e := range emails(10000) {
		v := ChooseVariant(s, 0, e)
		counts[v]++
		if ChooseVariant(s, 0, e) != v {
			t.Fatalf("%s: the choice is not stable", e)
		}
		// The same arm in every step with as many variants.
		arm := strings.Index("abc", v)
		if w := ChooseVariant(s, 1, e); strings.Index("xyz", w) == arm {
			same++
		}
		if ChooseVariant(s, 2, e) != "only" {
			t.Fatal("a step without variants must use its template")
		}
		// The variant must not decide the account.
		if v == "a" && ChooseAccount(s, e) == "bob" {
			accountB++
		}
	}
	for _, v := range []string{"a", "b", "c"} {
		if share := float64(counts[v]) / 10000; share < 0.30 || share > 0.37 {
			t.Errorf("variant %s gets %.1f%%, want about a third", v, 100*share)
		}
	}
	if same != 10000 {
		t.Errorf("%d of 10000 contacts changed arm between steps", 10000-same)
	}
	if share := float64(accountB) / float64(counts["a"]); share < 0.45 || share > 0.55 {
		t.Errorf("of variant a, %.1f%% go to account bob: the choices are correlated", 100*share)
	}
	other := &Sequence{Name: "nurture", Steps: s.Steps}
	differ := 0
	for _, e := range emails(1000) {
		if ChooseVariant(s, 0, e) != ChooseVariant(other, 0, e) {
			differ++
		}
	}
	if differ < 500 {
		t.Errorf("only %d of 1000 contacts get another variant in another sequence", differ)
	}
	if ChooseVariant(s, 3, "a@b.example") != "" {
		t.Error("a step that does not exist has no template")
	}
}

func TestAnniversaryDue(t *testing.T) {
	ams := loadLoc(t, "Europe/Amsterdam")
	tests := []struct {
		value string
		now   string
		loc   *time.Location
		want  string // "" when not a date
	}{
		{"1985-04-12", "2026-04-01T12:00:00Z", ams, "2026-04-12T00:00:00+02:00"},
		{"1985-04-12", "2026-04-11T23:30:00Z", ams, "2026-04-12T00:00:00+02:00"}, // already the 12th in Amsterdam
		{"1985-04-12", "2026-04-11T21:30:00Z", ams, "2026-04-12T00:00:00+02:00"},
		{"1985-04-12", "2026-04-12T22:30:00Z", ams, "2027-04-12T00:00:00+02:00"}, // the 13th in Amsterdam
		{"04-12", "2026-04-13T10:00:00Z", time.UTC, "2027-04-12T00:00:00Z"},
		{"--04-12", "2026-04-10T10:00:00Z", time.UTC, "2026-04-12T00:00:00Z"},
		{" 12-31 ", "2026-12-31T10:00:00Z", nil, "2026-12-31T00:00:00Z"},
		{"1992-02-29", "2026-01-10T10:00:00Z", time.UTC, "2026-02-28T00:00:00Z"},
		{"1992-02-29", "2027-03-01T10:00:00Z", time.UTC, "2028-02-29T00:00:00Z"},
		{"02-29", "2028-02-01T10:00:00Z", time.UTC, "2028-02-29T00:00:00Z"},
		{"2026-06-10", "2026-06-10T10:00:00Z", time.UTC, "2027-06-10T00:00:00Z"}, // not its own anniversary
		{"2030-01-01", "2026-06-10T10:00:00Z", time.UTC, "2031-01-01T00:00:00Z"},
		{"09-06", "2026-09-01T10:00:00Z", loadLoc(t, "America/Santiago"), "2026-09-06T01:00:00-03:00"}, // midnight skipped
		{"", "2026-06-10T10:00:00Z", time.UTC, ""},
		{"1985-13-01", "2026-06-10T10:00:00Z", time.UTC, ""},
		{"1985-02-29", "2026-06-10T10:00:00Z", time.UTC, ""},
		{"02-30", "2026-06-10T10:00:00Z", time.UTC, ""},
		{"12/04", "2026-06-10T10:00:00Z", time.UTC, ""},
		{"04-12-1985", "2026-06-10T10:00:00Z", time.UTC, ""},
	}
	for _, tt := range tests {
		got, ok := AnniversaryDue(tt.value, ts(t, tt.now), tt.loc)
		if tt.want == "" {
			if ok {
				t.Errorf("AnniversaryDue(%q) = %v, ok for a bad value", tt.value, got)
			}
			continue
		}
		if want := ts(t, tt.want); !ok || !got.Equal(want) {
			t.Errorf("AnniversaryDue(%q, %s) = %v, %v; want %v", tt.value, tt.now, got, ok, want)
		}
	}
}

func TestReplySubject(t *testing.T) {
	tests := map[string]string{
		"Quick question":                 "Re: Quick question",
		"Re: Quick question":             "Re: Quick question",
		"RE: Re: re:Quick question":      "Re: Quick question",
		"RE : Quick question":            "Re: Quick question",
		"Re[2]: Quick question":          "Re: Quick question",
		"  Quick question  ":             "Re: Quick question",
		"Regarding your site":            "Re: Regarding your site",
		"Re[x]: odd":                     "Re: Re[x]: odd",
		"Fwd: Re: thing":                 "Re: Fwd: Re: thing",
		"":                               "Re:",
		"Re:":                            "Re:",
		"Aw: Antw: keep other languages": "Re: Aw: Antw: keep other languages",
	}
	for in, want := range tests {
		if got := ReplySubject(in); got != want {
			t.Errorf("ReplySubject(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzReplySubject(f *testing.F) {
	for _, s := range []string{"Hello", "Re: Re: x", "RE :", "Re[12]:y", "re", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := ReplySubject(s)
		if !strings.HasPrefix(r, "Re:") {
			t.Fatalf("ReplySubject(%q) = %q lacks Re:", s, r)
		}
		if again := ReplySubject(r); again != r {
			t.Fatalf("not idempotent: %q → %q → %q", s, r, again)
		}
	})
}

func TestDelayString(t *testing.T) {
	for d, want := range map[Delay]string{
		{}:                               "0",
		{BusinessDays: 3}:                "3bd",
		{Duration: 14 * day}:             "2w",
		{Duration: 3 * day}:              "3d",
		{Duration: 36 * time.Hour}:       "36h0m0s",
		{Duration: day, BusinessDays: 1}: "24h0m0s+1bd",
		{Duration: 90 * time.Minute}:     "1h30m0s",
	} {
		if got := d.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", d, got, want)
		}
	}
}
