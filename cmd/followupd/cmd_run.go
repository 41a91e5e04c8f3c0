package main

import (
	"flag"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/followupd/followupd/daemon"
)

// shutdownTimeout bounds a graceful stop: SMTP transactions in flight get
// this long to finish.
const shutdownTimeout = 10 * time.Second

// cmdRun runs the daemon until SIGINT or SIGTERM; SIGHUP reloads the
// configuration and templates.
func cmdRun(e *env, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	migrate := fs.Bool("migrate", false, "apply pending Postgres migrations first")
	pos, err := e.parseFlags(fs, args, "[--migrate]")
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	daemon.TuneGC()
	d, err := daemon.New(e.ctx, daemon.Options{ConfigPath: e.configPath, Migrate: *migrate, LogOutput: e.stderr})
	if err != nil {
		return err
	}
	if err := d.Start(e.ctx); err != nil {
		d.Stop(shutdownTimeout)
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-e.ctx.Done():
			d.Stop(shutdownTimeout)
			return nil
		case <-hup:
			_ = d.Reload() // an invalid config is logged; the old one keeps running
		}
	}
}
