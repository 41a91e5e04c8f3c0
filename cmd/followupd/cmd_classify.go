package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/followupd/followupd/daemon"
	"github.com/followupd/followupd/replies"
)

// classifyLimit caps how much of a file is read, as the inbox caps fetches.
const classifyLimit = 25 << 20

type classified struct {
	File        string `json:"file"`
	Kind        string `json:"kind"`
	BounceClass string `json:"bounce_class"`
	Recipient   string `json:"recipient"`
	Intent      string `json:"intent"`
	SnoozeUntil string `json:"snooze_until"`
	ReturnDate  string `json:"return_date"`
	Referral    string `json:"referral"`
	VisibleText string `json:"visible_text"`
}

func day(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}

// cmdClassify shows how followupd understands messages saved as .eml files:
// dates are resolved against each message's own Date header.
func cmdClassify(e *env, args []string) error {
	fs := flag.NewFlagSet("classify", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object per file")
	pos, err := e.parseFlags(fs, args, "[--json] FILE.eml...")
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErr("want at least one message file")
	}
	// The configuration's replies.phrases count when there is one.
	classify := replies.Classify
	if _, err := os.Stat(e.configPath); err == nil {
		c, err := e.loadConfig()
		if err != nil {
			return err
		}
		rules, err := daemon.ReplyRules(c)
		if err != nil {
			return err
		}
		if rules != nil {
			classify = rules.Classify
		}
	}
	failed := 0
	for _, file := range pos {
		raw, err := readCapped(file)
		if err != nil {
			fmt.Fprintf(e.stderr, "%s: %v\n", file, err)
			failed++
			continue
		}
		r := classify(raw, time.Now())
		c := classified{
			File: file, Kind: string(r.Kind), BounceClass: r.BounceClass, Recipient: r.Recipient,
			Intent: string(r.Intent), SnoozeUntil: day(r.Until), ReturnDate: day(r.ReturnDate),
			Referral: r.Referral, VisibleText: r.Text,
		}
		if *asJSON {
			if err := e.printJSONLine(c); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(e.stdout, "%s: %s", file, c.Kind)
		for _, kv := range [][2]string{{"class", c.BounceClass}, {"recipient", c.Recipient}, {"intent", c.Intent},
			{"snooze_until", c.SnoozeUntil}, {"return_date", c.ReturnDate}, {"referral", c.Referral}} {
			if kv[1] != "" {
				fmt.Fprintf(e.stdout, " %s=%s", kv[0], kv[1])
			}
		}
		fmt.Fprintln(e.stdout)
		if c.VisibleText != "" {
			fmt.Fprintf(e.stdout, "  │ %s\n", strings.ReplaceAll(strings.TrimSpace(c.VisibleText), "\n", "\n  │ "))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files could not be read", failed, len(pos))
	}
	return nil
}

func readCapped(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, classifyLimit))
}
