package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/followupd/followupd/daemon"
	"github.com/followupd/followupd/store"
)

func cmdPreview(e *env, args []string) error {
	fs := flag.NewFlagSet("preview", flag.ContinueOnError)
	contact := fs.String("contact", "", "render for this contact (default: a sample contact)")
	start := fs.String("start", "", "when the contact enrolls (default now)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := e.parseFlags(fs, args, "SEQUENCE [--contact EMAIL] [--start TIME] [--json]")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("want one sequence name")
	}
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	rt, err := daemon.NewRuntime(c)
	if err != nil {
		return err
	}
	if _, ok := rt.Sequences[pos[0]]; !ok {
		return usageErr("unknown sequence %q (sequences: %s)", pos[0], strings.Join(sortedKeys(rt.Sequences), ", "))
	}
	when := time.Now()
	if *start != "" {
		if when, err = parseWhen(*start, time.Local); err != nil {
			return usageErr("--start: %v", err)
		}
	}
	ct := daemon.SampleContact(nil)
	if *contact != "" {
		s, err := e.openStore(c, false)
		if err != nil {
			return err
		}
		defer s.Close()
		if ct, err = s.ContactByEmail(e.ctx, *contact); err != nil {
			return err
		}
	}
	steps, err := rt.Preview(pos[0], ct, when)
	if err != nil {
		return err
	}
	if *asJSON {
		return e.printJSON(steps)
	}
	fmt.Fprintf(e.stdout, "sequence %s for %s, enrolling %s\n", pos[0], ct.Email, when.Format("Mon 2 Jan 2006 15:04 MST"))
	for _, s := range steps {
		fmt.Fprintf(e.stdout, "\n── step %d (%s) %s %s\n", s.Step, s.Template, s.At.Format("Mon 2 Jan 2006 15:04"), s.Zone)
		switch {
		case s.Skipped:
			fmt.Fprintln(e.stdout, "   skipped for this contact (skip_if)")
		case s.Error != "":
			fmt.Fprintln(e.stdout, "   cannot render:", s.Error)
		default:
			fmt.Fprintf(e.stdout, "Subject: %s\n\n%s\n", s.Subject, strings.TrimRight(s.Text, "\n"))
		}
	}
	return nil
}

// knownCustomFields collects the custom field names the stored contacts
// have, so `check` renders templates with the fields real contacts carry.
func knownCustomFields(e *env, s *store.Store) map[string]string {
	list, err := s.ListContacts(e.ctx, store.ContactFilter{Limit: 2000})
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, c := range list {
		for k := range c.CustomFields {
			out[k] = "sample " + k
		}
	}
	return out
}
