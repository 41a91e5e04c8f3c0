package main

import (
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/followupd/followupd/store"
)

type statusView struct {
	Pipeline  map[string]int     `json:"pipeline"`
	Attention []store.MessageOut `json:"attention"`
}

// cmdStatus shows the pipeline and every send that needs an operator: failed
// ones, and uncertain ones (the connection died after the message was
// handed over; not resent unless the Sent folder says it never went out).
func cmdStatus(e *env, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 100, "at most N failed or uncertain sends")
	pos, err := e.parseFlags(fs, args, "[--json] [--limit N]")
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
	s, err := e.openStore(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	counts, err := s.CountContactsByStage(e.ctx)
	if err != nil {
		return err
	}
	msgs, err := s.ListMessagesOut(e.ctx, store.MessageFilter{Statuses: []string{store.MessageFailed, store.MessageUncertain}, Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		if msgs == nil {
			msgs = []store.MessageOut{}
		}
		return e.printJSON(statusView{Pipeline: counts, Attention: msgs})
	}
	var parts []string
	for _, st := range c.StageNames() {
		parts = append(parts, fmt.Sprintf("%s %d", st, counts[st]))
	}
	fmt.Fprintf(e.stdout, "pipeline: %s\n", strings.Join(parts, " · "))
	if len(msgs) == 0 {
		fmt.Fprintln(e.stdout, "no failed or uncertain sends")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tWHEN\tACCOUNT\tTO\tSEQUENCE\tSTEP\tMESSAGE-ID\tERROR")
	for _, m := range msgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.Status, m.UpdatedAt.Local().Format(time.DateTime),
			m.Account, m.ToAddr, m.Sequence, m.Step+1, m.MessageID, oneLine(m.LastError))
	}
	return tw.Flush()
}
