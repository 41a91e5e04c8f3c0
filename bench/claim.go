package main

import (
	"fmt"
	"time"

	"github.com/followupd/followupd/daemon"
	"github.com/followupd/followupd/store"
)

type claimResult struct {
	Scenario   string  `json:"scenario"`
	DB         string  `json:"db"`
	N          int     `json:"n"`
	StepsPerS  float64 `json:"steps_per_s"`
	ElapsedSec float64 `json:"elapsed_s"`
}

// runClaim measures claim + render + enqueue of n due steps.
func runClaim(e *env, n int) (any, error) {
	rt, err := e.runtime()
	if err != nil {
		return nil, err
	}
	s, err := store.Open(e.ctx, e.opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := e.seed(s, 1, n+1, time.Now().Add(-time.Minute)); err != nil {
		return nil, err
	}
	sched := &daemon.Scheduler{Store: s, Runtime: func() *daemon.Runtime { return rt }, Batch: 500}
	start := time.Now()
	total := 0
	for total < n {
		q, err := sched.RunOnce(e.ctx)
		if err != nil {
			return nil, err
		}
		if q == 0 {
			return nil, fmt.Errorf("only %d of %d steps were queued", total, n)
		}
		total += q
	}
	el := time.Since(start)
	e.logf("queued %d steps in %s", total, el.Round(time.Millisecond))
	return claimResult{Scenario: "claim", DB: e.db, N: n, StepsPerS: float64(n) / el.Seconds(), ElapsedSec: el.Seconds()}, nil
}
