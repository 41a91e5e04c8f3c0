package sequences

import (
	"errors"
	"fmt"
)

// StageKind is what a stage means for mailing.
type StageKind string

// Stage kinds.
const (
	// StageOpen stages are worked: leads and prospects.
	StageOpen StageKind = "open"
	// StageWon stages are customers; they may get after-sale sequences.
	StageWon StageKind = "won"
	// StageLost stages said no; they are never mailed.
	StageLost StageKind = "lost"
	// StageSuppressed stages unsubscribed or bounced; they are never mailed.
	StageSuppressed StageKind = "suppressed"
)

// Mailable reports whether contacts in a stage of this kind may be mailed.
func (k StageKind) Mailable() bool { return k == StageOpen || k == StageWon }

// Stage is one step of the sales pipeline.
type Stage struct {
	Name string
	Type StageKind
}

// Pipeline is the ordered list of stages. It is read-only once built and
// safe for concurrent use.
type Pipeline struct {
	stages []Stage
	byName map[string]StageKind
	def    string
}

// NewPipeline builds the pipeline from its stages in order. It refuses an
// unnamed or repeated stage, an unknown kind, and a pipeline without an open
// stage (new contacts would have nowhere to start).
func NewPipeline(stages []Stage) (*Pipeline, error) {
	p := &Pipeline{stages: append([]Stage(nil), stages...), byName: make(map[string]StageKind, len(stages))}
	for _, s := range stages {
		switch {
		case s.Name == "":
			return nil, errors.New("sequences: a stage needs a name")
		case p.byName[s.Name] != "":
			return nil, fmt.Errorf("sequences: stage %q is listed twice", s.Name)
		}
		switch s.Type {
		case StageOpen, StageWon, StageLost, StageSuppressed:
		default:
			return nil, fmt.Errorf("sequences: stage %q has unknown type %q", s.Name, s.Type)
		}
		p.byName[s.Name] = s.Type
		if p.def == "" && s.Type == StageOpen {
			p.def = s.Name
		}
	}
	if p.def == "" {
		return nil, errors.New("sequences: the pipeline needs an open stage for new contacts to start in")
	}
	return p, nil
}

// Kind is the kind of the named stage; ok is false for an unknown stage.
func (p *Pipeline) Kind(name string) (kind StageKind, ok bool) {
	kind, ok = p.byName[name]
	return kind, ok
}

// Mailable reports whether a contact in this stage may be mailed: only open
// and won stages. An unknown stage (one removed from the config while
// contacts still sit in it) is not mailable, because mailing someone who may
// have said no is the worse mistake.
func (p *Pipeline) Mailable(stage string) bool {
	k, ok := p.byName[stage]
	return ok && k.Mailable()
}

// Default is the stage new contacts start in: the first open stage.
func (p *Pipeline) Default() string { return p.def }

// Stages lists the stages in pipeline order.
func (p *Pipeline) Stages() []Stage { return append([]Stage(nil), p.stages...) }
