package replies

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The corpus test reads the shared e-mail corpus (real bounces, auto-replies
// and replies from public test suites, plus authored replies with intent
// labels) from the directory named by FOLLOWUPD_CORPUS. It is never copied
// into this repository.

// corpusNow is the "current time" of the corpus runs: after every message.
var corpusNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func corpusDir(t *testing.T) string {
	dir := os.Getenv("FOLLOWUPD_CORPUS")
	if dir == "" {
		t.Skip("FOLLOWUPD_CORPUS not set: point it at the shared corpus directory (labels.csv, bounce/, autoreply/, reply/, intent/): corpus test skipped")
	}
	return dir
}

// readCSV returns the rows of a CSV file as maps keyed by the header names.
func readCSV(t testing.TB, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s is empty", path)
	}
	var out []map[string]string
	for _, r := range rows[1:] {
		m := map[string]string{}
		for i, k := range rows[0] {
			if i < len(r) {
				m[k] = r[i]
			}
		}
		out = append(out, m)
	}
	return out
}

// tally counts hits per category.
type tally struct{ ok, n int }

func (c *tally) add(ok bool) {
	c.n++
	if ok {
		c.ok++
	}
}

func (c tally) rate() float64 {
	if c.n == 0 {
		return 1
	}
	return float64(c.ok) / float64(c.n)
}

func normSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestCorpus(t *testing.T) {
	dir := corpusDir(t)
	details := map[string]map[string]string{}
	if _, err := os.Stat(filepath.Join(dir, "details.csv")); err == nil {
		for _, d := range readCSV(t, filepath.Join(dir, "details.csv")) {
			details[d["file"]] = d
		}
	}
	var kind, class, classLabelled, rcpt, text, textExact tally
	kindByLabel := map[string]*tally{}
	for _, row := range readCSV(t, filepath.Join(dir, "labels.csv")) {
		file := row["file"]
		raw, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		res := Classify(raw, corpusNow)
		d := details[file]
		ctx := ""
		if d != nil {
			ctx = " [reason=" + d["reason"] + " status=" + d["status"] + "]"
		}

		want := row["kind"]
		ok := string(res.Kind) == want
		kind.add(ok)
		if kindByLabel[want] == nil {
			kindByLabel[want] = &tally{}
		}
		kindByLabel[want].add(ok)
		if !ok {
			t.Logf("KIND   %s: got %s, want %s%s", file, res.Kind, want, ctx)
		}

		if want == "bounce" {
			ok := res.Kind == KindBounce && res.BounceClass == row["bounce_class"]
			class.add(ok)
			if row["bounce_class"] != "" {
				classLabelled.add(ok)
			}
			if !ok {
				t.Logf("CLASS  %s: got %q, want %q (status %s)%s", file, res.BounceClass, row["bounce_class"], res.Status, ctx)
			}
		}
		if r := row["recipient"]; r != "" {
			ok := strings.EqualFold(res.Recipient, r)
			rcpt.add(ok)
			if !ok {
				t.Logf("RCPT   %s: got %q, want %q", file, res.Recipient, r)
			}
		}
		if want == "reply" {
			exp, err := os.ReadFile(filepath.Join(dir, strings.TrimSuffix(file, ".eml")+".expected.txt"))
			if err == nil {
				got, wantText := normSpace(res.Text), normSpace(string(exp))
				textExact.add(got == wantText)
				// talon's expectations strip quotations only and keep the
				// signature ("Hello\n\nSent from my iPhone"); ours also drop
				// the signature, so compare with the signature removed from
				// the expectation as well.
				ok := got == wantText || got == normSpace(VisibleText(string(exp)))
				text.add(ok)
				if !ok {
					t.Logf("TEXT   %s:\n got: %q\nwant: %q", file, got, wantText)
				}
			}
		}
	}
	t.Logf("kind:                 %d/%d = %.1f%%", kind.ok, kind.n, 100*kind.rate())
	for _, k := range []string{"bounce", "autoreply", "reply"} {
		if c := kindByLabel[k]; c != nil {
			t.Logf("  kind %-10s      %d/%d = %.1f%%", k, c.ok, c.n, 100*c.rate())
		}
	}
	t.Logf("bounce class (all):   %d/%d = %.1f%%", class.ok, class.n, 100*class.rate())
	t.Logf("bounce class (hard/soft labelled): %d/%d = %.1f%%", classLabelled.ok, classLabelled.n, 100*classLabelled.rate())
	t.Logf("recipient:            %d/%d = %.1f%%", rcpt.ok, rcpt.n, 100*rcpt.rate())
	t.Logf("visible text:         %d/%d = %.1f%% (exact, signature kept in expectation: %d/%d)", text.ok, text.n, 100*text.rate(), textExact.ok, textExact.n)

	check := func(name string, c tally, min float64) {
		if c.rate() < min {
			t.Errorf("%s accuracy %.1f%% below threshold %.0f%%", name, 100*c.rate(), 100*min)
		}
	}
	check("kind", kind, 0.97)
	check("bounce class (labelled)", classLabelled, 0.90)
	check("bounce class (all)", class, 0.85)
	check("recipient", rcpt, 0.90)
	check("visible text", text, 0.85)
}

func TestCorpusIntent(t *testing.T) {
	dir := filepath.Join(corpusDir(t), "intent")
	if _, err := os.Stat(filepath.Join(dir, "labels.csv")); err != nil {
		t.Skipf("no intent corpus in %s: intent test skipped", dir)
	}
	var kind, intent, until, ret, referral tally
	for _, row := range readCSV(t, filepath.Join(dir, "labels.csv")) {
		file := row["file"]
		raw, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		res := Classify(raw, corpusNow)
		ok := string(res.Kind) == row["kind"]
		kind.add(ok)
		if !ok {
			t.Logf("KIND     %s: got %s, want %s (%s)", file, res.Kind, row["kind"], row["notes"])
		}
		if row["kind"] == "reply" {
			ok := string(res.Intent) == row["intent"]
			intent.add(ok)
			if !ok {
				t.Logf("INTENT   %s: got %s, want %s; text %q", file, res.Intent, row["intent"], res.Text)
			}
			if row["intent"] == "not_now" {
				ok := fmtDate(res.Until) == row["snooze_until"]
				until.add(ok)
				if !ok {
					t.Logf("UNTIL    %s: got %q, want %q", file, fmtDate(res.Until), row["snooze_until"])
				}
			}
			if row["referral"] != "" {
				ok := res.Referral == row["referral"]
				referral.add(ok)
				if !ok {
					t.Logf("REFERRAL %s: got %q, want %q", file, res.Referral, row["referral"])
				}
			}
		}
		if row["kind"] == "autoreply" {
			ok := fmtDate(res.ReturnDate) == row["return_date"]
			ret.add(ok)
			if !ok {
				t.Logf("RETURN   %s: got %q, want %q; text %q", file, fmtDate(res.ReturnDate), row["return_date"], res.Text)
			}
		}
	}
	t.Logf("intent corpus kind:   %d/%d = %.1f%%", kind.ok, kind.n, 100*kind.rate())
	t.Logf("intent:               %d/%d = %.1f%%", intent.ok, intent.n, 100*intent.rate())
	t.Logf("snooze until:         %d/%d = %.1f%%", until.ok, until.n, 100*until.rate())
	t.Logf("return date:          %d/%d = %.1f%%", ret.ok, ret.n, 100*ret.rate())
	t.Logf("referral address:     %d/%d = %.1f%%", referral.ok, referral.n, 100*referral.rate())
	for _, c := range []struct {
		name string
		c    tally
		min  float64
	}{{"intent kind", kind, 0.97}, {"intent", intent, 0.90}, {"snooze until", until, 0.75}, {"return date", ret, 0.80}, {"referral", referral, 0.90}} {
		if c.c.rate() < c.min {
			t.Errorf("%s accuracy %.1f%% below threshold %.0f%%", c.name, 100*c.c.rate(), 100*c.min)
		}
	}
}

func fmtDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02")
}
