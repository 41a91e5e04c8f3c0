package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/followupd/followupd/daemon"
	"github.com/followupd/followupd/store"
)

type tickResult struct {
	Scenario   string  `json:"scenario"`
	DB         string  `json:"db"`
	PassMS10k  float64 `json:"pass_ms_10k"`
	PassMS100k float64 `json:"pass_ms_100k"`
	PassMS1M   float64 `json:"pass_ms_1m"`
}

// runTick measures a scheduler pass with nothing due while the number of
// enrolled contacts grows: the pass must cost the same at every size.
func runTick(e *env, sizes string) (any, error) {
	rt, err := e.runtime()
	if err != nil {
		return nil, err
	}
	s, err := store.Open(e.ctx, e.opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	sched := &daemon.Scheduler{Store: s, Runtime: func() *daemon.Runtime { return rt }}
	res := tickResult{Scenario: "tick", DB: e.db}
	future := time.Now().Add(30 * 24 * time.Hour)
	have := 0
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("-sizes: %q is not a number", f)
		}
		start := time.Now()
		if err := e.seed(s, have+1, n+1, future); err != nil {
			return nil, err
		}
		have = n
		e.logf("seeded %d enrolled contacts in %s", n, time.Since(start).Round(time.Millisecond))
		ms, err := medianPass(e, sched)
		if err != nil {
			return nil, err
		}
		e.logf("  pass with nothing due: %.3f ms (median of 31)", ms)
		switch n {
		case 10000:
			res.PassMS10k = ms
		case 100000:
			res.PassMS100k = ms
		case 1000000:
			res.PassMS1M = ms
		}
	}
	return res, nil
}

func medianPass(e *env, sched *daemon.Scheduler) (float64, error) {
	var times []float64
	for range 31 {
		start := time.Now()
		n, err := sched.RunOnce(e.ctx)
		if err != nil {
			return 0, err
		}
		if n != 0 {
			return 0, fmt.Errorf("a pass queued %d messages with nothing due", n)
		}
		times = append(times, float64(time.Since(start).Microseconds())/1000)
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}
