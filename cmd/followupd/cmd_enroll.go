package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/followupd/followupd/daemon"
	"github.com/followupd/followupd/sequences"
	"github.com/followupd/followupd/store"
)

// parseWhen reads a time given on the command line: RFC 3339, or a local
// "YYYY-MM-DD HH:MM" / "YYYY-MM-DD" read in loc.
func parseWhen(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02T15:04", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot read the time %q (write 2026-12-01, \"2026-12-01 09:30\" or RFC 3339 like 2026-12-01T09:30:00+01:00)", s)
}

func cmdEnroll(e *env, args []string) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	at := fs.String("at", "", "when the contact enrolls (default now); the first step's delay and the send window apply from there")
	pos, err := e.parseFlags(fs, args, "EMAIL SEQUENCE [--at TIME]")
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageErr("want EMAIL SEQUENCE")
	}
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	rt, err := daemon.NewRuntime(c)
	if err != nil {
		return err
	}
	seq, ok := rt.Sequences[pos[1]]
	if !ok {
		return usageErr("unknown sequence %q (sequences: %s)", pos[1], strings.Join(sortedKeys(rt.Sequences), ", "))
	}
	due := time.Now()
	if *at != "" {
		if due, err = parseWhen(*at, time.Local); err != nil {
			return usageErr("--at: %v", err)
		}
	}
	s, err := e.openStore(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	ct, err := s.ContactByEmail(e.ctx, pos[0])
	if err != nil {
		return err
	}
	if !rt.Pipeline.Mailable(ct.Stage) || ct.Suppressed {
		return fmt.Errorf("%s is in stage %s%s and is never mailed", ct.Email, ct.Stage, map[bool]string{true: " (suppressed)"}[ct.Suppressed])
	}
	account := sequences.ChooseAccount(seq, ct.Email)
	due = rt.FirstDue(seq, ct, account, due)
	en, err := s.Enroll(e.ctx, ct.Email, seq.Name, account, "", due)
	if err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			return fmt.Errorf("%s is already enrolled in %s", ct.Email, seq.Name)
		}
		return err
	}
	fmt.Fprintf(e.stdout, "%s enrolled in %s from account %s, first step due %s\n", ct.Email, seq.Name, en.Account, due.Local().Format(time.DateTime))
	return nil
}

func cmdUnenroll(e *env, args []string) error {
	fs := flag.NewFlagSet("unenroll", flag.ContinueOnError)
	pos, err := e.parseFlags(fs, args, "EMAIL [SEQUENCE]")
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageErr("want EMAIL [SEQUENCE]")
	}
	seq := ""
	if len(pos) == 2 {
		seq = pos[1]
	}
	return withStore(e, func(s *store.Store) error {
		n, err := s.Unenroll(e.ctx, pos[0], seq, "unenrolled by hand")
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%s has no live enrollment%s", strings.ToLower(pos[0]), map[bool]string{true: " in " + seq}[seq != ""])
		}
		fmt.Fprintf(e.stdout, "%s: %d enrollment(s) stopped\n", strings.ToLower(pos[0]), n)
		return nil
	})
}
