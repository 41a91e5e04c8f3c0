package main

import (
	"flag"
	"time"

	"github.com/followupd/followupd/demo"
)

// cmdDemo runs the daemon on a temporary database with the example
// configuration, against an in-process mail world whose prospects answer,
// on a clock where a day passes in seconds. It needs nothing but the binary.
func cmdDemo(e *env, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8025", "HTTP `ADDR` of the API and dashboard")
	speed := fs.Duration("speed", 5*time.Second, "real `DURATION` of one demo day")
	dur := fs.Duration("for", 0, "stop after `DURATION` (default: run until Ctrl-C)")
	keep := fs.String("dir", "", "keep the database and configuration in `DIR` (default: a temporary folder, removed)")
	pos, err := e.parseFlags(fs, args, "[--for DURATION] [--listen ADDR] [--speed DURATION] [--dir DIR]")
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	if *speed <= 0 {
		return usageErr("--speed must be positive")
	}
	if *dur < 0 {
		return usageErr("--for must not be negative")
	}
	return demo.Run(e.ctx, demo.Options{Listen: *listen, DayEvery: *speed, For: *dur, Out: e.stdout, Log: e.stderr, Dir: *keep})
}
