package demo

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// Event is one row of the events table, as the demo prints it.
type Event struct {
	ID      int64
	Email   string
	Type    string
	Data    map[string]any
	Created time.Time // wall clock, as the store wrote it
}

// tail reads the events table after the last id seen, on its own read
// connection to the SQLite file (the store has no "events since" query).
type tail struct {
	db   *sql.DB
	last int64
}

func openTail(path string) (*tail, error) {
	esc := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
	db, err := sql.Open("sqlite", "file:"+esc+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return &tail{db: db}, nil
}

func (t *tail) Close() error { return t.db.Close() }

func (t *tail) next(ctx context.Context) ([]Event, error) {
	rows, err := t.db.QueryContext(ctx, `SELECT e.id, c.email, e.type, e.data, CAST(e.created_at AS INTEGER)
		FROM events e JOIN contacts c ON c.id = e.contact_id WHERE e.id > ? ORDER BY e.id LIMIT 500`, t.last)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var ev Event
		var data string
		var micros int64
		if err := rows.Scan(&ev.ID, &ev.Email, &ev.Type, &data, &micros); err != nil {
			return out, err
		}
		_ = json.Unmarshal([]byte(data), &ev.Data)
		ev.Created = time.UnixMicro(micros)
		t.last = ev.ID
		out = append(out, ev)
	}
	return out, rows.Err()
}

// printer writes the demo's story.
type printer struct {
	w     io.Writer
	clock *Clock
	mu    sync.Mutex
	count map[string]int
	day   string
}

func newPrinter(w io.Writer, c *Clock) *printer {
	return &printer{w: w, clock: c, count: map[string]int{}}
}

func (p *printer) banner(d *Demo, contacts int, o Options) {
	fmt.Fprintf(p.w, "followupd demo: the real daemon, a local mail world, one day every %s.\n", o.DayEvery)
	fmt.Fprintf(p.w, "  folder:    %s (SQLite database, followup.yaml, templates/)\n", d.Dir)
	fmt.Fprintf(p.w, "  contacts:  %d (examples/contacts.csv and %d scripted prospects)\n", contacts, len(Prospects))
	fmt.Fprintf(p.w, "  mail:      SMTP %s, IMAP %s:%d (in this process)\n", d.World.SMTP.Addr(), d.World.IMAP.Host, d.World.IMAP.Port)
	fmt.Fprintf(p.w, "  dashboard: %s/login\n", d.URL)
	fmt.Fprintf(p.w, "token: %s\n", d.Token)
	fmt.Fprintf(p.w, "  api:       curl -H 'Authorization: Bearer %s' %s/api/v1/pipeline\n", d.Token, d.URL)
	fmt.Fprintln(p.w, "  scripts:")
	for _, pr := range Prospects {
		fmt.Fprintf(p.w, "    %-38s %s\n", pr.Email, describe(pr))
	}
	if o.For > 0 {
		fmt.Fprintf(p.w, "Running for %s; Ctrl-C stops earlier.\n\n", o.For)
	} else {
		fmt.Fprintf(p.w, "Running until Ctrl-C.\n\n")
	}
}

func describe(p Prospect) string {
	switch p.Behaviour {
	case Interested:
		return "replies: interested"
	case NotNow:
		return "replies: not now, come back in March"
	case OutOfOffice:
		return "out of office for ten days (auto-reply)"
	case Bounce:
		return "does not exist: a bounce (DSN)"
	case Unsubscribe:
		return "replies: please remove me from your list"
	case Referral:
		return "replies: talk to my colleague " + p.Colleague
	}
	return string(p.Behaviour)
}

func (p *printer) event(ev Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count[ev.Type]++
	at := p.clock.At(ev.Created).In(p.clock.Start.Location())
	if day := at.Format("Mon 2 Jan 2006"); day != p.day {
		p.day = day
		fmt.Fprintf(p.w, "── %s ──\n", day)
	}
	fmt.Fprintf(p.w, "%s  %-13s %-38s %s\n", at.Format("15:04"), ev.Type, ev.Email, describeEvent(ev))
}

func s(d map[string]any, k string) string {
	switch v := d[k].(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return fmt.Sprint(v)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

func short(t string, n int) string {
	t = strings.Join(strings.Fields(t), " ")
	if r := []rune(t); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return t
}

func day(v string) string {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.Format("Mon 2 Jan 2006")
	}
	return v
}

func describeEvent(ev Event) string {
	d := ev.Data
	switch ev.Type {
	case "created":
		return "new contact, stage " + s(d, "stage")
	case "enrolled":
		return "enrolled in " + s(d, "sequence") + by(d)
	case "sent":
		step := 0
		if f, ok := d["step"].(float64); ok {
			step = int(f)
		}
		return fmt.Sprintf("%s step %d: %q", s(d, "sequence"), step+1, s(d, "subject"))
	case "replied":
		return fmt.Sprintf("reply (%s): %q", s(d, "intent"), short(s(d, "text"), 70))
	case "auto_replied":
		r := "auto-reply"
		if rd := s(d, "return_date"); rd != "" {
			r += ", back " + rd
		}
		return r
	case "bounced":
		return fmt.Sprintf("bounce (%s %s) for %s", s(d, "class"), s(d, "status"), s(d, "recipient"))
	case "stage_changed":
		return fmt.Sprintf("stage %s → %s (%s)", s(d, "from"), s(d, "to"), s(d, "reason"))
	case "rule_applied":
		return "rules: " + strings.Trim(s(d, "rules"), "[]")
	case "paused":
		return fmt.Sprintf("%s paused until %s", s(d, "sequence"), day(s(d, "until")))
	case "snoozed":
		return fmt.Sprintf("%s snoozed until %s", s(d, "sequence"), day(s(d, "until")))
	case "resumed":
		return s(d, "sequence") + " resumed"
	case "finished":
		return s(d, "sequence") + " finished (" + s(d, "reason") + ")"
	case "stopped", "unenrolled":
		return fmt.Sprintf("%s stopped (%s)", s(d, "sequence"), s(d, "reason"))
	case "referral":
		if to := s(d, "to"); to != "" {
			return "named a colleague: " + to
		}
		return "referred by " + s(d, "from")
	case "note":
		return "note: " + short(s(d, "text"), 70)
	}
	b, _ := json.Marshal(d)
	return short(string(b), 100)
}

func by(d map[string]any) string {
	if b := s(d, "by"); b != "" {
		return " (" + b + ")"
	}
	return ""
}

func (p *printer) summary(d *Demo, interrupted bool, stages string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	why := "time is up"
	if interrupted {
		why = "interrupted"
	}
	fmt.Fprintf(p.w, "\nDemo over (%s) at %s demo time; %d messages went through the local SMTP server.\n",
		why, d.Clock.Now().In(d.Clock.Start.Location()).Format("Mon 2 Jan 15:04"), len(d.World.SMTP.Messages()))
	var types []string
	for t := range p.count {
		types = append(types, t)
	}
	sort.Strings(types)
	var parts []string
	for _, t := range types {
		parts = append(parts, fmt.Sprintf("%s %d", t, p.count[t]))
	}
	fmt.Fprintf(p.w, "Events: %s\n", strings.Join(parts, ", "))
	if stages != "" {
		fmt.Fprintf(p.w, "Pipeline: %s\n", stages)
	}
}
