// Package demo is `followupd demo`: the real daemon, on a temporary SQLite
// database with the example configuration, against a small mail world in
// the same process (an SMTP server, scripted prospects who answer, the
// seller's IMAP inbox), on a clock where a day passes in a few seconds.
package demo

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // the example's time zones on machines without zoneinfo

	"github.com/followupd/followupd/daemon"
	"github.com/followupd/followupd/inbox"
	"github.com/followupd/followupd/outbox"
	"github.com/followupd/followupd/store"
)

// Options configure a demo.
type Options struct {
	// Listen is the HTTP address; default 127.0.0.1:8025.
	Listen string
	// DayEvery is how much real time one demo day takes; default 5s.
	DayEvery time.Duration
	// For ends the demo after this much real time; 0 runs until ctx ends.
	For time.Duration
	// Out receives the demo's story; default os.Stdout.
	Out io.Writer
	// Log receives the daemon's own log (warnings and errors); default
	// discarded.
	Log io.Writer
	// Dir is the working folder (database, config, templates); default a
	// temporary folder removed at the end.
	Dir string
	// Start is the demo clock's first moment; default 08:55 in Amsterdam
	// on the next Monday.
	Start time.Time
	// Token is the API token; default random.
	Token string
	// Started, when set, is called once the daemon runs (tests).
	Started func(*Demo)
}

// Demo is a running demo.
type Demo struct {
	Clock  *Clock
	World  *World
	Daemon *daemon.Daemon
	Dir    string
	Token  string
	// URL is http://LISTEN of the daemon's HTTP server.
	URL string
}

// Store is the daemon's database.
func (d *Demo) Store() *store.Store { return d.Daemon.Store() }

const seller = "ann@example.com"

// Run runs a demo until o.For has passed or ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8025"
	}
	if o.DayEvery <= 0 {
		o.DayEvery = 5 * time.Second
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Token == "" {
		o.Token = "demo-" + randHex(16)
	}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "followupd-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.Dir = dir
	}
	if o.Start.IsZero() {
		o.Start = demoStart(time.Now())
	}
	// Refuse a busy address before building anything, with a clear message.
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (use --listen ADDR): %w", o.Listen, err)
	}
	listen := ln.Addr().String()
	_ = ln.Close()

	clock := NewClock(o.Start, o.DayEvery)
	world, err := NewWorld(clock, seller)
	if err != nil {
		return err
	}
	defer world.Close()
	cfgPath, err := writeConfig(o.Dir, listen, o.Token, servers{
		SMTPHost: world.SMTP.Host(), SMTPPort: world.SMTP.Port(),
		IMAPHost: world.IMAP.Host, IMAPPort: world.IMAP.Port, IMAPUser: world.IMAP.Username, IMAPPassword: world.IMAP.Password,
	})
	if err != nil {
		return err
	}
	// Timers in real time, sized to the demo clock: a scheduler pass every
	// ~15 demo minutes at most, and never slower than 10 passes a second.
	tick := min(max(clock.Real(15*time.Minute), 20*time.Millisecond), 100*time.Millisecond)
	d, err := daemon.New(ctx, daemon.Options{
		ConfigPath: cfgPath, LogOutput: o.Log, Now: clock.Now,
		SchedulerInterval: tick, LeaseInterval: 200 * time.Millisecond,
		OutboxOptions: func(oo *outbox.Options) { oo.PollInterval = tick },
		InboxOptions: func(in *inbox.Options) {
			in.BackoffMin, in.BackoffMax = 20*time.Millisecond, 500*time.Millisecond
			in.PollInterval = 200 * time.Millisecond
		},
	})
	if err != nil {
		return err
	}
	// The clock starts now: what came before (servers, migrations) is not
	// demo time.
	clock.Begin = time.Now()
	n, err := importContacts(ctx, d.Store())
	if err != nil {
		d.Close()
		return err
	}
	if err := d.Start(ctx); err != nil {
		d.Stop(10 * time.Second)
		return err
	}
	dm := &Demo{Clock: clock, World: world, Daemon: d, Dir: o.Dir, Token: o.Token, URL: "http://" + d.HTTPAddr()}
	p := newPrinter(o.Out, clock)
	p.banner(dm, n, o)

	tail, err := openTail(filepath.Join(o.Dir, "followupd.db"))
	if err != nil {
		d.Stop(10 * time.Second)
		return err
	}
	defer tail.Close()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.For > 0 {
		var c2 context.CancelFunc
		runCtx, c2 = context.WithTimeout(runCtx, o.For)
		defer c2()
	}
	worldDone := make(chan struct{})
	go func() {
		defer close(worldDone)
		world.Run(runCtx)
	}()
	if o.Started != nil {
		o.Started(dm)
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-runCtx.Done():
			done = true
		case <-t.C:
		}
		evs, err := tail.next(context.Background())
		if err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintf(o.Out, "followupd demo: reading events: %v\n", err)
		}
		for _, ev := range evs {
			p.event(ev)
		}
	}
	<-worldDone
	stages := pipeline(context.Background(), d)
	d.Stop(10 * time.Second)
	p.summary(dm, ctx.Err() != nil, stages)
	return nil
}

// writeConfig writes the example configuration, rewritten for the demo,
// and the example templates into dir, and returns the config's path.
func writeConfig(dir, listen, token string, m servers) (string, error) {
	err := fs.WalkDir(examples, "examples/templates", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := examples.ReadFile(path)
		if err != nil {
			return err
		}
		out := filepath.Join(dir, "templates", strings.TrimPrefix(path, "examples/templates/"))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		return "", err
	}
	cfg, err := demoConfig(listen, token, m)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "followup.yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// servers is where the mail world listens.
type servers struct {
	SMTPHost, IMAPHost     string
	SMTPPort, IMAPPort     int
	IMAPUser, IMAPPassword string
}

// demoConfig is examples/followup.yaml with its first half (database, http,
// unsubscribe, accounts) replaced for the demo; its stages, sequences and
// rules are kept as they are.
func demoConfig(listen, token string, m servers) (string, error) {
	ex, err := examples.ReadFile("examples/followup.yaml")
	if err != nil {
		return "", err
	}
	s := string(ex)
	i := strings.Index(s, "\nstages:")
	if i < 0 {
		return "", errors.New("demo: examples/followup.yaml has no top-level stages: key")
	}
	// Keep the comment block just above stages: with it.
	head := s[:i]
	if j := strings.LastIndex(head, "\n\n"); j >= 0 {
		i = j + 1
	}
	rest := s[i:]
	header := fmt.Sprintf(`# followupd demo: examples/followup.yaml with a local mail world and a fast clock.
# Stages, sequences and rules below are the example's, unchanged.

database:
  driver: sqlite
  path: followupd.db

log:
  level: warn       # the demo prints the events; problems go to stderr
  format: text

templates: templates

http:
  listen: %q
  api_token: %q

unsubscribe:
  base_url: %q
  secret: %q

accounts:
  - name: sales
    from_name: Ann Seller
    from_address: %s
    timezone: Europe/Amsterdam
    daily_limit: 500
    min_gap: 0s
    max_gap: 0s
    send_window:
      days: mon-sun
      hours: "00:00-24:00"
      timezone: account
    smtp:
      host: %s
      port: %d
      tls: none
      insecure_plaintext: true
    imap:
      host: %s
      port: %d
      tls: none
      insecure_plaintext: true
      username: %s
      password: %q
      folders: [INBOX]
      lookback: 30d
    on_uncertain: skip
    save_to_sent: false

`, listen, token, "http://"+listen, randHex(16), seller,
		m.SMTPHost, m.SMTPPort, m.IMAPHost, m.IMAPPort, m.IMAPUser, m.IMAPPassword)
	return header + rest, nil
}

// importContacts imports the example's contacts.csv and the demo prospects.
func importContacts(ctx context.Context, st *store.Store) (int, error) {
	f, err := examples.Open("examples/contacts.csv")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) == 0 {
		return 0, fmt.Errorf("demo: examples/contacts.csv: %v", err)
	}
	var cs []store.Contact
	head := rows[0]
	for _, r := range rows[1:] {
		c := store.Contact{CustomFields: store.Fields{}}
		for i, v := range r {
			if i >= len(head) || v == "" {
				continue
			}
			switch head[i] {
			case "email":
				c.Email = v
			case "first_name":
				c.FirstName = v
			case "last_name":
				c.LastName = v
			case "company":
				c.Company = v
			case "timezone":
				c.Timezone = v
			case "birthday":
				c.Birthday = v
			case "stage":
				c.Stage = v
			default:
				c.CustomFields[head[i]] = v
			}
		}
		cs = append(cs, c)
	}
	for _, p := range Prospects {
		cs = append(cs, store.Contact{Email: p.Email, FirstName: p.FirstName, LastName: p.LastName, Company: p.Company,
			Timezone: p.Timezone, Stage: "lead", CustomFields: store.Fields{"source": "demo", "script": string(p.Behaviour)}})
	}
	created, _, err := st.ImportContacts(ctx, cs)
	return created, err
}

// pipeline is the number of contacts per stage, in the configured order.
func pipeline(ctx context.Context, d *daemon.Daemon) string {
	counts, err := d.Store().CountContactsByStage(ctx)
	if err != nil {
		return ""
	}
	var parts []string
	for _, st := range d.Runtime().Config.Stages {
		parts = append(parts, st.Name+" "+strconv.Itoa(counts[st.Name]))
	}
	return strings.Join(parts, ", ")
}
