package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

// cli runs followupd in-process and returns its exit status and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// setupExample copies the example configuration and templates into a
// temporary folder so each test has its own SQLite database.
func setupExample(t *testing.T) (cfg string, dir string) {
	t.Helper()
	dir = t.TempDir()
	copyTree(t, "../../examples", dir)
	return filepath.Join(dir, "followup.yaml"), dir
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		if strings.HasSuffix(p, ".db") || strings.Contains(p, ".db-") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckExample(t *testing.T) {
	code, out, errOut := cli(t, "check", "-config", "../../examples/followup.yaml")
	if code != 0 {
		t.Fatalf("check on the example exited %d:\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "1 accounts") {
		t.Errorf("check output does not summarise the config:\n%s", out)
	}
}

var fileLineCol = regexp.MustCompile(`^\S+\.yaml:\d+:\d+: `)

func TestCheckReportsEveryProblem(t *testing.T) {
	cfg, _ := setupExample(t)
	src, _ := os.ReadFile(cfg)
	bad := strings.Replace(string(src), "daily_limit: 40", "daily_limt: 40", 1)
	bad = strings.Replace(bad, "delay: 3bd", "delay: 3 days", 1)
	bad = strings.Replace(bad, "on_stage: customer", "on_stage: customers", 1)
	writeFile(t, cfg, bad)
	code, _, errOut := cli(t, "check", "-config", cfg)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, errOut)
	}
	var located []string
	for _, line := range strings.Split(errOut, "\n") {
		if fileLineCol.MatchString(line) {
			located = append(located, line)
		}
	}
	if len(located) != 3 {
		t.Fatalf("want 3 FILE:LINE:COL lines, got %d:\n%s", len(located), errOut)
	}
	for i, key := range []string{"daily_limt", "delay", "customers"} {
		if !strings.Contains(located[i], key) {
			t.Errorf("line %d %q does not name %s", i, located[i], key)
		}
	}
}

func TestUnknownCommandAndUsage(t *testing.T) {
	if code, _, errOut := cli(t, "contacts", "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	if code, _, errOut := cli(t, "-config", "/nonexistent/followup.yaml", "check"); code != 1 || !strings.Contains(errOut, "/nonexistent/followup.yaml") {
		t.Errorf("missing config: exit %d, %q", code, errOut)
	}
	if code, out, _ := cli(t, "version"); code != 0 || !strings.HasPrefix(out, "followupd ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

func TestConfigDumpRedactsSecrets(t *testing.T) {
	t.Setenv("SALES_MAIL_PASSWORD", "hunter2-do-not-print")
	code, out, errOut := cli(t, "config", "dump", "-config", "../../examples/followup.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "password: <redacted>") {
		t.Fatalf("dump shows a secret or no redaction:\n%s", out)
	}
}

func TestContactsImportAndShow(t *testing.T) {
	cfg, dir := setupExample(t)
	code, out, errOut := cli(t, "contacts", "import", filepath.Join(dir, "contacts.csv"), "-config", cfg)
	if code != 0 {
		t.Fatalf("import exit %d:\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "4 contacts created, 0 updated, 0 skipped") {
		t.Errorf("summary: %q", out)
	}

	csv := filepath.Join(dir, "more.csv")
	writeFile(t, csv, strings.Join([]string{
		"Email,First_Name,stage,birthday,timezone,industry",
		"KLAUS.schmidt@example.de,Klaus-Peter,,,,machines", // update, keeps stage
		"not-an-address,X,lead,,,",
		"new@example.org,New,leed,,,",
		"bday@example.org,B,,1980-13-40,,",
		"tz@example.org,T,,,Mars/Olympus,",
		"ok@example.org,Ok,prospect,,,",
		"OK@example.org,Dup,,,,",
		"short@example.org,only-two",
		"",
	}, "\n"))
	code, out, errOut = cli(t, "-config", cfg, "contacts", "import", csv, "--stage", "lead")
	if code != 1 {
		t.Fatalf("import with bad rows: exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		csv + `:3: "not-an-address" is not a valid email address`,
		csv + `:4: unknown stage "leed"`,
		csv + `:5: bad birthday "1980-13-40"`,
		csv + `:6: unknown time zone "Mars/Olympus"`,
		csv + `:8: ok@example.org is already on line 7`,
		csv + `:9: has 2 fields, the header has 6`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(out, "1 contacts created, 1 updated, 6 skipped") {
		t.Errorf("summary: %q", out)
	}

	code, out, errOut = cli(t, "-config", cfg, "contacts", "show", "Klaus.Schmidt@example.de", "--json")
	if code != 0 {
		t.Fatalf("show: exit %d %s", code, errOut)
	}
	var shown struct {
		Email, FirstName, Company, Stage string
		CustomFields                     map[string]string `json:"custom_fields"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("show --json is not JSON: %v\n%s", err, out)
	}
	if shown.Email != "klaus.schmidt@example.de" || shown.Stage != "prospect" || shown.Company != "Schmidt GmbH" {
		t.Errorf("re-import lost data or changed the stage: %+v", shown)
	}
	if shown.CustomFields["industry"] != "machines" || shown.CustomFields["source"] != "referral" {
		t.Errorf("custom fields not merged: %v", shown.CustomFields)
	}
}

func TestContactsStageNotePurchase(t *testing.T) {
	cfg, dir := setupExample(t)
	if code, _, errOut := cli(t, "-config", cfg, "contacts", "import", filepath.Join(dir, "contacts.csv")); code != 0 {
		t.Fatal(errOut)
	}
	steps := [][]string{
		{"contacts", "set-stage", "sam@example.com", "prospect"},
		{"contacts", "note", "sam@example.com", "Called,", "wants a quote"},
		{"contacts", "purchase", "SAM@example.com", "--amount", "249.50"},
	}
	for _, s := range steps {
		if code, out, errOut := cli(t, append([]string{"-config", cfg}, s...)...); code != 0 {
			t.Fatalf("%v: exit %d %s%s", s, code, out, errOut)
		}
	}
	if code, _, errOut := cli(t, "-config", cfg, "contacts", "set-stage", "sam@example.com", "winner"); code != 2 || !strings.Contains(errOut, `unknown stage "winner"`) {
		t.Errorf("unknown stage: exit %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "-config", cfg, "contacts", "note", "nobody@example.com", "hi"); code != 1 || !strings.Contains(errOut, "nobody@example.com") {
		t.Errorf("note for unknown contact: exit %d %s", code, errOut)
	}
	code, out, _ := cli(t, "-config", cfg, "contacts", "show", "sam@example.com")
	if code != 0 {
		t.Fatal(out)
	}
	// The example's purchase rule made the prospect a customer.
	for _, want := range []string{"stage:", "customer", "purchases:  1", "stage_changed", "prospect → customer", "note", "wants a quote", "purchase", "249.50"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = cli(t, "-config", cfg, "contacts", "list", "--stage", "prospect", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil {
		t.Fatalf("list --json: %d %v %s", code, err, out)
	}
	if got := fmt.Sprint(len(list)); got != "1" {
		t.Errorf("prospects: %s, want 1 (klaus; sam became a customer)", got)
	}
}

func TestPreviewDatesAreInsideTheWindow(t *testing.T) {
	code, out, errOut := cli(t, "-config", "../../examples/followup.yaml", "preview", "intro", "--start", "2026-12-24T16:30:00Z", "--json")
	if code != 0 {
		t.Fatalf("preview exit %d: %s", code, errOut)
	}
	var steps []struct {
		Step    int
		At      time.Time
		Subject string
		Error   string
	}
	if err := json.Unmarshal([]byte(out), &steps); err != nil || len(steps) != 3 {
		t.Fatalf("preview --json: %v\n%s", err, out)
	}
	ams, _ := time.LoadLocation("Europe/Amsterdam")
	for _, s := range steps {
		local := s.At.In(ams)
		if s.Error != "" || local.Weekday() == time.Saturday || local.Weekday() == time.Sunday || local.Hour() < 9 || local.Hour() >= 17 {
			t.Errorf("step %d at %s (%s), error %q: outside mon-fri 09:00-17:00", s.Step, local, local.Weekday(), s.Error)
		}
		if local.Month() == time.December && local.Day() == 25 {
			t.Errorf("step %d planned on the 25 December holiday", s.Step)
		}
	}
	if !strings.HasPrefix(steps[1].Subject, "Re: ") {
		t.Errorf("step 2 threads as a reply, subject %q", steps[1].Subject)
	}
}

func TestEnrollAndUnenroll(t *testing.T) {
	cfg, dir := setupExample(t)
	cli(t, "-config", cfg, "contacts", "import", filepath.Join(dir, "contacts.csv"))
	if code, out, errOut := cli(t, "-config", cfg, "enroll", "sam@example.com", "nurture"); code != 0 || !strings.Contains(out, "enrolled in nurture") {
		t.Fatalf("enroll: %d %s%s", code, out, errOut)
	}
	if code, _, errOut := cli(t, "-config", cfg, "enroll", "sam@example.com", "nurture"); code != 1 || !strings.Contains(errOut, "already enrolled") {
		t.Errorf("second enroll: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "-config", cfg, "enroll", "sam@example.com", "nurtur"); code != 2 || !strings.Contains(errOut, `unknown sequence "nurtur"`) {
		t.Errorf("unknown sequence: %d %s", code, errOut)
	}
	if code, out, _ := cli(t, "-config", cfg, "unenroll", "sam@example.com"); code != 0 || !strings.Contains(out, "1 enrollment(s) stopped") {
		t.Errorf("unenroll: %d %s", code, out)
	}
	cli(t, "-config", cfg, "contacts", "set-stage", "sam@example.com", "not_interested")
	if code, _, errOut := cli(t, "-config", cfg, "enroll", "sam@example.com", "nurture"); code != 1 || !strings.Contains(errOut, "never mailed") {
		t.Errorf("enrolling a lost contact: %d %s", code, errOut)
	}
}

func TestClassifyPrintsOneJSONObjectPerFile(t *testing.T) {
	dir := t.TempDir()
	ooo := filepath.Join(dir, "ooo.eml")
	writeFile(t, ooo, "From: Petra <petra@example.de>\r\nTo: ann@example.com\r\nSubject: Abwesenheitsnotiz: Ihre Anfrage\r\n"+
		"Auto-Submitted: auto-replied\r\nDate: Tue, 1 Dec 2026 08:00:00 +0100\r\n\r\n"+
		"Ich bin bis zum 4. Dezember nicht im Büro und ab dem 7. Dezember wieder erreichbar.\r\n")
	code, out, errOut := cli(t, "classify", "--json", ooo, filepath.Join(dir, "missing.eml"))
	if code != 1 || !strings.Contains(errOut, "missing.eml") {
		t.Errorf("a missing file: exit %d, %q", code, errOut)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &got); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	for _, k := range []string{"file", "kind", "bounce_class", "recipient", "intent", "snooze_until", "return_date", "referral", "visible_text"} {
		if _, ok := got[k]; !ok {
			t.Errorf("key %q missing in %v", k, got)
		}
	}
	if got["kind"] != "autoreply" || got["return_date"] != "2026-12-07" {
		t.Errorf("classified %v, want an autoreply back on 2026-12-07", got)
	}
}

// The configuration's replies.phrases decide an intent the built-in rules
// do not know; without a configuration the same reply is "other".
func TestClassifyUsesTheConfiguredPhrases(t *testing.T) {
	cfg, dir := setupExample(t)
	eml := filepath.Join(dir, "quote.eml")
	writeFile(t, eml, "From: Tom <tom@example.co.uk>\r\nTo: ann@example.com\r\nSubject: Re: your offer\r\n"+
		"Date: Tue, 1 Dec 2026 08:00:00 +0000\r\n\r\nPut us down for two crates, please.\r\n\r\nTom\r\n")
	intent := func(args ...string) string {
		code, out, errOut := cli(t, append(args, "classify", "--json", eml)...)
		var got map[string]string
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &got); code != 0 || err != nil {
			t.Fatalf("classify %v: exit %d, %v\n%s%s", args, code, err, out, errOut)
		}
		return got["intent"]
	}
	if got := intent("-config", filepath.Join(dir, "none.yaml")); got != "other" {
		t.Errorf("without a configuration: intent %q, want other", got)
	}
	if got := intent("-config", cfg); got != "interested" {
		t.Errorf("with the example's phrases (\"put ~ down for\"): intent %q, want interested", got)
	}
}

func TestStatus(t *testing.T) {
	cfg, dir := setupExample(t)
	cli(t, "-config", cfg, "contacts", "import", filepath.Join(dir, "contacts.csv"))
	code, out, errOut := cli(t, "-config", cfg, "status")
	if code != 0 || !strings.Contains(out, "lead 3") || !strings.Contains(out, "no failed or uncertain sends") {
		t.Errorf("status: %d %s%s", code, out, errOut)
	}
	code, out, _ = cli(t, "-config", cfg, "status", "--json")
	var v struct {
		Pipeline  map[string]int
		Attention []any
	}
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Pipeline["prospect"] != 1 || v.Attention == nil {
		t.Errorf("status --json: %d %v %s", code, err, out)
	}
}

// With replicas on Postgres, status says which one watches each mailbox.
func TestStatusShowsWhoWatchesEachMailbox(t *testing.T) {
	o := storetest.Fresh(t, store.DialectPostgres)
	o.Replica = "replica-7"
	s := storetest.Open(t, o) // migrates the schema
	cfg, _ := setupExample(t)
	src, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FU_TEST_DSN", o.DSN)
	out := strings.Replace(string(src), "  driver: sqlite\n  path: followupd.db", "  driver: postgres\n  dsn: ${FU_TEST_DSN}", 1)
	if out == string(src) {
		t.Fatal("the example's database section changed: update this test")
	}
	if err := os.WriteFile(cfg, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	code, text, errOut := cli(t, "-config", cfg, "status")
	if code != 0 || !strings.Contains(text, "mailbox sales: NOT WATCHED") {
		t.Fatalf("status with nobody watching: %d %s%s", code, text, errOut)
	}
	lease, ok, err := s.TryLease(context.Background(), "mailbox:sales")
	if err != nil || !ok {
		t.Fatalf("lease: %v %v", ok, err)
	}
	defer lease.Release()
	code, text, errOut = cli(t, "-config", cfg, "status")
	if code != 0 || !strings.Contains(text, "mailbox sales: watched by replica-7") {
		t.Fatalf("status: %d %s%s", code, text, errOut)
	}
	code, text, _ = cli(t, "-config", cfg, "status", "--json")
	var v struct {
		Mailboxes []struct{ Account, Replica string }
	}
	if err := json.Unmarshal([]byte(text), &v); code != 0 || err != nil || len(v.Mailboxes) != 1 || v.Mailboxes[0].Replica != "replica-7" {
		t.Fatalf("status --json: %d %v %s", code, err, text)
	}
}
