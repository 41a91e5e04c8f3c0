package sequences

import (
	"strings"
	"testing"
)

func defaultPipeline(t *testing.T) *Pipeline {
	t.Helper()
	p, err := NewPipeline([]Stage{
		{"lead", StageOpen}, {"prospect", StageOpen},
		{"customer", StageWon}, {"repeat_customer", StageWon},
		{"not_interested", StageLost},
		{"unsubscribed", StageSuppressed}, {"bounced", StageSuppressed},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPipeline(t *testing.T) {
	p := defaultPipeline(t)
	if p.Default() != "lead" {
		t.Errorf("Default = %q", p.Default())
	}
	for stage, want := range map[string]bool{
		"lead": true, "prospect": true, "customer": true, "repeat_customer": true,
		"not_interested": false, "unsubscribed": false, "bounced": false, "no_such_stage": false, "": false,
	} {
		if got := p.Mailable(stage); got != want {
			t.Errorf("Mailable(%q) = %v, want %v", stage, got, want)
		}
	}
	if k, ok := p.Kind("customer"); !ok || k != StageWon {
		t.Errorf("Kind(customer) = %v, %v", k, ok)
	}
	if _, ok := p.Kind("nope"); ok {
		t.Error("Kind of an unknown stage is ok")
	}
	stages := p.Stages()
	if len(stages) != 7 || stages[0].Name != "lead" || stages[6].Name != "bounced" {
		t.Errorf("Stages = %v", stages)
	}
	stages[0].Name = "changed"
	if p.Stages()[0].Name != "lead" {
		t.Error("Stages exposes the pipeline's own slice")
	}

	// The default is the first open stage, wherever it is.
	p2, err := NewPipeline([]Stage{{"archived", StageLost}, {"new", StageOpen}, {"hot", StageOpen}})
	if err != nil || p2.Default() != "new" {
		t.Errorf("Default = %q, %v", p2.Default(), err)
	}
}

func TestNewPipelineErrors(t *testing.T) {
	tests := map[string][]Stage{
		"twice":        {{"lead", StageOpen}, {"lead", StageWon}},
		"unknown type": {{"lead", StageOpen}, {"x", "closed"}},
		"open stage":   {{"customer", StageWon}},
		"name":         {{"", StageOpen}},
	}
	for want, stages := range tests {
		if _, err := NewPipeline(stages); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewPipeline(%v) error = %v, want one mentioning %q", stages, err, want)
		}
	}
}
