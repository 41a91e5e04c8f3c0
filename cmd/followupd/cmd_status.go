package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
)

type statusView struct {
	Pipeline    map[string]int        `json:"pipeline"`
	Enrollments store.EnrollmentStats `json:"enrollments"`
	Attention   []store.MessageOut    `json:"attention"`
	// Daemon is the running daemon's /readyz answer, or why it could not
	// be read.
	Daemon daemonState `json:"daemon"`
	// Mailboxes says which replica watches each account's mailbox
	// (Postgres; with SQLite the one daemon does).
	Mailboxes []mailboxHolder `json:"mailboxes,omitempty"`
}

type mailboxHolder struct {
	Account string `json:"account"`
	// Replica is empty when no replica watches the mailbox.
	Replica        string     `json:"replica,omitempty"`
	Client         string     `json:"client,omitempty"`
	ConnectedSince *time.Time `json:"connected_since,omitempty"`
}

// mailboxHolders asks Postgres which replica holds each mailbox lease.
func mailboxHolders(e *env, c *config.Config, s *store.Store) ([]mailboxHolder, error) {
	if c.Database.Driver != "postgres" {
		return nil, nil
	}
	var names []string
	for _, a := range c.Accounts {
		if a.IMAP != nil {
			names = append(names, "mailbox:"+a.Name)
		}
	}
	held, err := s.LeaseHolders(e.ctx, names)
	if err != nil {
		return nil, err
	}
	byName := map[string]store.LeaseHolder{}
	for _, h := range held {
		byName[h.Name] = h
	}
	out := []mailboxHolder{}
	for _, n := range names {
		mh := mailboxHolder{Account: strings.TrimPrefix(n, "mailbox:")}
		if h, ok := byName[n]; ok {
			since := h.ConnectedSince
			mh.Replica, mh.Client, mh.ConnectedSince = h.Replica, h.Client, &since
		}
		out = append(out, mh)
	}
	return out, nil
}

type daemonState struct {
	Running  bool             `json:"running"`
	Error    string           `json:"error,omitempty"`
	Accounts []accountReadyJS `json:"accounts,omitempty"`
}

type accountReadyJS struct {
	Account   string `json:"account"`
	SMTPOK    bool   `json:"smtp_ok"`
	SMTPError string `json:"smtp_error,omitempty"`
	IMAPOK    bool   `json:"imap_ok"`
	IMAPError string `json:"imap_error,omitempty"`
}

// readDaemon asks the running daemon for its accounts' connection state.
func readDaemon(listen string) daemonState {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + listen + "/readyz")
	if err != nil {
		return daemonState{Error: "not reachable at " + listen + " (is followupd run running?)"}
	}
	defer resp.Body.Close()
	var body struct {
		Accounts []accountReadyJS `json:"accounts"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return daemonState{Running: true, Error: "unreadable /readyz answer: " + err.Error()}
	}
	return daemonState{Running: true, Accounts: body.Accounts}
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
	stats, err := s.EnrollmentStats(e.ctx, time.Now().Add(24*time.Hour))
	if err != nil {
		return err
	}
	ds := readDaemon(c.HTTP.Listen)
	msgs, err := s.ListMessagesOut(e.ctx, store.MessageFilter{Statuses: []string{store.MessageFailed, store.MessageUncertain}, Limit: *limit})
	if err != nil {
		return err
	}
	boxes, err := mailboxHolders(e, c, s)
	if err != nil {
		return err
	}
	if *asJSON {
		if msgs == nil {
			msgs = []store.MessageOut{}
		}
		return e.printJSON(statusView{Pipeline: counts, Enrollments: stats, Attention: msgs, Daemon: ds, Mailboxes: boxes})
	}
	var parts []string
	for _, st := range c.StageNames() {
		parts = append(parts, fmt.Sprintf("%s %d", st, counts[st]))
	}
	fmt.Fprintf(e.stdout, "pipeline: %s\n", strings.Join(parts, " · "))
	fmt.Fprintf(e.stdout, "enrollments: %d active (%d due in the next 24 h), %d paused, %d snoozed\n", stats.Active, stats.DueSoon, stats.Paused, stats.Snoozed)
	if !ds.Running || ds.Error != "" {
		fmt.Fprintf(e.stdout, "daemon: %s\n", ds.Error)
	}
	for _, a := range ds.Accounts {
		fmt.Fprintf(e.stdout, "account %s: smtp %s, imap %s\n", a.Account, okWord(a.SMTPOK, a.SMTPError), okWord(a.IMAPOK, a.IMAPError))
	}
	for _, b := range boxes {
		if b.Replica == "" {
			fmt.Fprintf(e.stdout, "mailbox %s: NOT WATCHED (no replica holds it)\n", b.Account)
			continue
		}
		fmt.Fprintf(e.stdout, "mailbox %s: watched by %s (connected since %s)\n", b.Account, b.Replica, b.ConnectedSince.Local().Format(time.DateTime))
	}
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

func okWord(ok bool, why string) string {
	if ok {
		return "ok"
	}
	if why == "" {
		why = "down"
	}
	return "DOWN (" + why + ")"
}
