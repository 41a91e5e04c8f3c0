package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/followupd/followupd/daemon"
	"github.com/followupd/followupd/store"
)

type importSummary struct {
	File     string       `json:"file"`
	Rows     int          `json:"rows"`
	Created  int          `json:"created"`
	Updated  int          `json:"updated"`
	Skipped  int          `json:"skipped"`
	Problems []rowProblem `json:"problems"`
}

func cmdContactsImport(e *env, args []string) error {
	fs := flag.NewFlagSet("contacts import", flag.ContinueOnError)
	stage := fs.String("stage", "", "stage for new contacts whose row names none (default: the first open stage)")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	pos, err := e.parseFlags(fs, args, "FILE.csv [--stage S] [--json]")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("want one CSV file, got %d arguments", len(pos))
	}
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	if *stage == "" {
		*stage = c.DefaultStage()
	} else if _, ok := c.Stage(*stage); !ok {
		return usageErr("--stage: unknown stage %q (stages: %s)", *stage, strings.Join(c.StageNames(), ", "))
	}
	file := pos[0]
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	isStage := func(s string) bool { _, ok := c.Stage(s); return ok }
	rows, problems, err := readContactsCSV(f, file, isStage, c.StageNames())
	if err != nil {
		return err
	}
	if !*asJSON {
		for _, p := range problems {
			fmt.Fprintln(e.stderr, p)
		}
	}
	sum := importSummary{File: file, Rows: len(rows) + len(problems), Skipped: len(problems), Problems: problems}
	if len(rows) > 0 {
		s, err := e.openStoreStage(c, false, *stage)
		if err != nil {
			return err
		}
		defer s.Close()
		contacts := make([]store.Contact, len(rows))
		for i, r := range rows {
			contacts[i] = r.contact
		}
		if len(contacts) >= 10000 && !*asJSON {
			fmt.Fprintf(e.stderr, "%s: %d valid rows, writing them in one transaction…\n", file, len(contacts))
		}
		sum.Created, sum.Updated, err = s.ImportContacts(e.ctx, contacts)
		if err != nil {
			return fmt.Errorf("%s: nothing was imported: %w", file, err)
		}
	}
	if *asJSON {
		if sum.Problems == nil {
			sum.Problems = []rowProblem{}
		}
		if err := e.printJSON(sum); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "%s: %d rows: %d contacts created, %d updated, %d skipped\n", file, sum.Rows, sum.Created, sum.Updated, sum.Skipped)
	}
	if len(problems) > 0 {
		return exitError{code: 1, err: fmt.Errorf("%d rows of %s were skipped (listed above); the other rows were imported", len(problems), file)}
	}
	return nil
}

func cmdContactsList(e *env, args []string) error {
	fs := flag.NewFlagSet("contacts list", flag.ContinueOnError)
	stage := fs.String("stage", "", "only contacts in this stage")
	limit := fs.Int("limit", 0, "at most N contacts (0: all)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := e.parseFlags(fs, args, "[--stage S] [--limit N] [--json]")
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	if *stage != "" {
		if _, ok := c.Stage(*stage); !ok {
			return usageErr("--stage: unknown stage %q (stages: %s)", *stage, strings.Join(c.StageNames(), ", "))
		}
	}
	s, err := e.openStore(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	list, err := s.ListContacts(e.ctx, store.ContactFilter{Stage: *stage, Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []store.Contact{}
		}
		return e.printJSON(list)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EMAIL\tNAME\tCOMPANY\tSTAGE\tPURCHASES")
	for _, ct := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", ct.Email, strings.TrimSpace(ct.FirstName+" "+ct.LastName), ct.Company, ct.Stage, ct.Purchases)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "%d contacts\n", len(list))
	return nil
}

type contactView struct {
	store.Contact
	Timeline []store.Event `json:"timeline"`
}

func cmdContactsShow(e *env, args []string) error {
	fs := flag.NewFlagSet("contacts show", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := e.parseFlags(fs, args, "EMAIL [--json]")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("want one email address")
	}
	c, err := e.loadConfig()
	if err != nil {
		return err
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
	events, err := s.Timeline(e.ctx, ct.ID, 0)
	if err != nil {
		return err
	}
	if *asJSON {
		if events == nil {
			events = []store.Event{}
		}
		return e.printJSON(contactView{ct, events})
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("email", ct.Email)
	row("name", strings.TrimSpace(ct.FirstName+" "+ct.LastName))
	row("company", ct.Company)
	row("stage", ct.Stage)
	row("timezone", ct.Timezone)
	row("birthday", ct.Birthday)
	row("purchases", fmt.Sprint(ct.Purchases))
	if ct.Suppressed {
		row("suppressed", "yes: never mailed")
	}
	for _, k := range sortedKeys(ct.CustomFields) {
		row(k, ct.CustomFields[k])
	}
	tw.Flush()
	fmt.Fprintln(e.stdout, "\ntimeline:")
	for _, ev := range events {
		fmt.Fprintf(e.stdout, "  %s  %-14s %s\n", ev.CreatedAt.Local().Format(time.DateTime), ev.Type, eventSummary(ev))
	}
	return nil
}

func cmdContactsSetStage(e *env, args []string) error {
	fs := flag.NewFlagSet("contacts set-stage", flag.ContinueOnError)
	reason := fs.String("reason", "set by hand", "why, for the timeline")
	pos, err := e.parseFlags(fs, args, "EMAIL STAGE [--reason TEXT]")
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageErr("want EMAIL STAGE")
	}
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	if _, ok := c.Stage(pos[1]); !ok {
		return usageErr("unknown stage %q (stages: %s)", pos[1], strings.Join(c.StageNames(), ", "))
	}
	s, err := e.openStore(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	old, err := s.SetStage(e.ctx, pos[0], pos[1], *reason)
	if err != nil {
		return err
	}
	if old == pos[1] {
		fmt.Fprintf(e.stdout, "%s is already %s\n", strings.ToLower(pos[0]), old)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s: %s → %s\n", strings.ToLower(pos[0]), old, pos[1])
	return nil
}

func cmdContactsNote(e *env, args []string) error {
	fs := flag.NewFlagSet("contacts note", flag.ContinueOnError)
	pos, err := e.parseFlags(fs, args, "EMAIL TEXT")
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return usageErr("want EMAIL TEXT")
	}
	text := strings.TrimSpace(strings.Join(pos[1:], " "))
	if text == "" {
		return usageErr("the note is empty")
	}
	return withStore(e, func(s *store.Store) error {
		if err := s.AddNote(e.ctx, pos[0], text); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "note added to %s\n", strings.ToLower(pos[0]))
		return nil
	})
}

func cmdContactsPurchase(e *env, args []string) error {
	fs := flag.NewFlagSet("contacts purchase", flag.ContinueOnError)
	amount := fs.String("amount", "", "amount, e.g. 249.00 (optional)")
	note := fs.String("note", "", "what was bought (optional)")
	pos, err := e.parseFlags(fs, args, "EMAIL [--amount X] [--note TEXT]")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("want one email address")
	}
	if *amount != "" {
		var f float64
		if _, err := fmt.Sscanf(*amount, "%f", &f); err != nil || f < 0 {
			return usageErr("--amount %q is not a number", *amount)
		}
	}
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	rt, err := daemon.NewRuntime(c)
	if err != nil {
		return err
	}
	s, err := e.openStore(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	n, d, err := daemon.RecordPurchase(e.ctx, s, rt, pos[0], *amount, *note, time.Now(), nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "purchase recorded for %s (%d in all)", strings.ToLower(pos[0]), n)
	if d.SetStage != "" {
		fmt.Fprintf(e.stdout, "; stage now %s", d.SetStage)
	}
	fmt.Fprintln(e.stdout)
	return nil
}

func withStore(e *env, fn func(s *store.Store) error) error {
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	s, err := e.openStore(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s)
}

// eventSummary renders an event's data as one readable line.
func eventSummary(ev store.Event) string {
	var m map[string]any
	if len(ev.Data) == 0 || json.Unmarshal(ev.Data, &m) != nil || len(m) == 0 {
		return ""
	}
	if ev.Type == store.EventStageChanged {
		return fmt.Sprintf("%v → %v (%v)", m["from"], m["to"], m["reason"])
	}
	if text, ok := m["text"].(string); ok && len(m) == 1 {
		return oneLine(text)
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		if v := fmt.Sprint(m[k]); v != "" {
			parts = append(parts, k+"="+oneLine(v))
		}
	}
	return strings.Join(parts, " ")
}
