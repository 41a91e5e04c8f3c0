// Package crashtest kills the real `followupd run` with SIGKILL at random
// moments while thousands of steps are due, restarts it each time, and
// checks that no step is lost and that every duplicate delivery is one the
// daemon recorded as uncertain.
//
// It builds the binary and takes minutes, so it only runs when asked:
//
//	FOLLOWUPD_CRASH=1 go test -v -run TestCrash ./crashtest/
//	FOLLOWUPD_CRASH=1 FOLLOWUPD_CRASH_SHORT=1 go test -v ./crashtest/   # 500 steps, 5 kills
//
// With FOLLOWUPD_TEST_POSTGRES set it runs on Postgres as well.
package crashtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

const crashConfig = `
database: {driver: %s, path: %q, dsn: %q, sending_lease: 10s}
http: {listen: "127.0.0.1:0", api_token: "0123456789abcdef-token"}
log: {level: warn}
unsubscribe: {base_url: "https://f.example.com", secret: "0123456789abcdef0123"}
accounts:
  - name: sales
    from_name: Ann Seller
    from_address: ann@example.com
    timezone: UTC
    daily_limit: 100000000
    min_gap: 0s
    max_gap: 0s
    send_window: {days: mon-sun, hours: "00:00-24:00"}
    smtp: {host: %s, port: %d, tls: none, insecure_plaintext: true, concurrency: 4}
sequences:
  - name: intro
    triggers: [{on_stage: lead}]
    window: {days: mon-sun, hours: "00:00-24:00", timezone: account}
    steps:
      - template: one
      - template: one
        delay: 30d
        thread: reply
`

// result is the line the test prints.
type result struct {
	DB         string `json:"db"`
	Steps      int    `json:"steps"`
	Kills      int    `json:"kills"`
	Sent       int    `json:"sent"`
	Duplicates int    `json:"duplicates"`
	Lost       int    `json:"lost"`
	Uncertain  int    `json:"uncertain"`
	Failed     int    `json:"failed"`
	Delivered  int    `json:"delivered_at_sink"`
	Unknown    int    `json:"unknown_at_sink"`
}

func TestCrash(t *testing.T) {
	if os.Getenv("FOLLOWUPD_CRASH") != "1" {
		t.Skip("crash test skipped: run it with FOLLOWUPD_CRASH=1 go test -v ./crashtest/ (add FOLLOWUPD_CRASH_SHORT=1 or -short for 500 steps and 5 kills)")
	}
	steps, kills := 5000, 20
	if testing.Short() || os.Getenv("FOLLOWUPD_CRASH_SHORT") == "1" {
		steps, kills = 500, 5
	}
	bin := filepath.Join(t.TempDir(), "followupd")
	build := exec.Command("go", "build", "-o", bin, "github.com/followupd/followupd/cmd/followupd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	storetest.ForEach(t, func(t *testing.T, dialect string) {
		crash(t, bin, dialect, steps, kills)
	})
}

func crash(t *testing.T, bin, dialect string, steps, kills int) {
	sink := smtptest.Start(t)
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "templates"), 0o755)
	os.WriteFile(filepath.Join(dir, "templates", "one.md"), []byte("---\nsubject: Hello {{ .Contact.FirstName | default \"there\" }}\n---\nShall we talk?\n"), 0o644)
	opts := store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(dir, "followupd.db")}
	if dialect == store.DialectPostgres {
		opts = storetest.Fresh(t, dialect)
	}
	dsn := ""
	if dialect == store.DialectPostgres {
		dsn = opts.DSN
	}
	cfg := filepath.Join(dir, "followup.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, crashConfig, dialect, filepath.Join(dir, "followupd.db"), dsn, sink.Host(), sink.Port()), 0o644)

	cli := func(args ...string) {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"-config", cfg}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("followupd %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if dialect == store.DialectPostgres {
		cli("migrate")
	}
	var csv strings.Builder
	csv.WriteString("email,first_name\n")
	for i := range steps {
		fmt.Fprintf(&csv, "c%d@example.org,First%d\n", i, i)
	}
	csvPath := filepath.Join(dir, "contacts.csv")
	os.WriteFile(csvPath, []byte(csv.String()), 0o644)
	cli("contacts", "import", csvPath, "--stage", "lead")

	logf, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	var cur *exec.Cmd
	t.Cleanup(func() { // a daemon left running by a failure
		if cur != nil && cur.ProcessState == nil {
			_ = cur.Process.Kill()
			_ = cur.Wait()
		}
	})
	start := func() *exec.Cmd {
		t.Helper()
		// The previous process is dead (SIGKILL, waited for): what it left
		// sending is uncertain now. `followupd run` only does this for rows
		// older than the outbox's SendingLease (15 min, no knob), so the
		// test does it in its stead.
		expireSending(t, opts)
		cmd := exec.Command(bin, "-config", cfg, "run")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cur = cmd
		return cmd
	}
	began := time.Now()
	for i := range kills {
		cmd := start()
		wait := 200*time.Millisecond + rand.N(1300*time.Millisecond)
		time.Sleep(wait)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		t.Logf("kill %d after %s: %d delivered so far", i+1, wait.Round(time.Millisecond), sink.Count(smtptest.Delivered))
	}
	// Once more, to completion.
	cmd := start()
	// Until nothing is queued and every first step ended, or nothing moved
	// for 30 s (what is left then is lost), or 5 minutes.
	deadline := time.Now().Add(5 * time.Minute)
	last, lastChange := -2, time.Now()
	for {
		time.Sleep(250 * time.Millisecond)
		q, u := pending(t, opts)
		if q == 0 && u == 0 {
			break
		}
		if q+u != last {
			last, lastChange = q+u, time.Now()
		}
		if time.Since(lastChange) > 30*time.Second || time.Now().After(deadline) {
			t.Logf("giving up waiting: %d queued or sending, %d first steps unfinished", q, u)
			logStuck(t, opts)
			break
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	t.Logf("%d kills and the final run took %s", kills, time.Since(began).Round(time.Millisecond))

	res := tally(t, opts, sink.Messages())
	res.DB, res.Steps, res.Kills = dialect, steps, kills
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	if res.Lost > 0 {
		t.Errorf("%d steps lost", res.Lost)
	}
	if res.Duplicates > res.Uncertain {
		t.Errorf("%d duplicates but only %d sends recorded uncertain", res.Duplicates, res.Uncertain)
	}
	if t.Failed() {
		data, _ := os.ReadFile(logf.Name())
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		t.Logf("daemon log tail:\n%s", data)
	}
}

func open(t *testing.T, opts store.Options) *store.Store {
	t.Helper()
	opts.Migrate = false
	s, err := store.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// expireSending makes every row left sending uncertain, as the outbox's
// Start does for rows older than its SendingLease.
func expireSending(t *testing.T, opts store.Options) {
	t.Helper()
	s := open(t, opts)
	defer s.Close()
	if _, err := s.ExpireSending(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

// pending counts the rows queued or sending and the contacts whose first
// step has not ended sent, failed or uncertain.
func pending(t *testing.T, opts store.Options) (queued, unfinished int) {
	t.Helper()
	ctx := context.Background()
	s := open(t, opts)
	defer s.Close()
	err := s.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.Get(ctx, &queued, `SELECT COUNT(*) FROM messages_out WHERE status IN ('queued', 'sending')`); err != nil {
			return err
		}
		return tx.Get(ctx, &unfinished, lostQuery)
	})
	if err != nil {
		t.Logf("poll: %v", err)
		return -1, -1
	}
	return queued, unfinished
}

// lostQuery counts the contacts whose first step did not end sent, failed
// or uncertain (a contact never enrolled included).
const lostQuery = `SELECT COUNT(*) FROM contacts c WHERE NOT EXISTS (
	SELECT 1 FROM enrollments e JOIN messages_out m ON m.enrollment_id = e.id AND m.step = 0
	WHERE e.contact_id = c.id AND m.status IN ('sent', 'failed', 'uncertain'))`

// logStuck logs the rows still queued or sending.
func logStuck(t *testing.T, opts store.Options) {
	t.Helper()
	ctx := context.Background()
	s := open(t, opts)
	defer s.Close()
	var rows []struct {
		ID        int64  `db:"id"`
		Status    string `db:"status"`
		Attempts  int    `db:"attempts"`
		LastError string `db:"last_error"`
		Next      string `db:"next_attempt_at"`
		Updated   string `db:"updated_at"`
	}
	err := s.InTx(ctx, func(tx *store.Tx) error {
		return tx.Select(ctx, &rows, `SELECT id, status, attempts, last_error, COALESCE(CAST(next_attempt_at AS TEXT), '') AS next_attempt_at, CAST(updated_at AS TEXT) AS updated_at
			FROM messages_out WHERE status IN ('queued', 'sending') ORDER BY id LIMIT 20`)
	})
	if err != nil {
		t.Logf("stuck rows: %v", err)
	}
	for _, r := range rows {
		t.Logf("stuck: %+v", r)
	}
}

type outRow struct {
	Enrollment int64  `db:"enrollment_id"`
	Step       int    `db:"step"`
	Status     string `db:"status"`
	MessageID  string `db:"message_id"`
}

// tally reads the outcome: the sink's Message-IDs against messages_out.
func tally(t *testing.T, opts store.Options, got []smtptest.Message) result {
	t.Helper()
	ctx := context.Background()
	s := open(t, opts)
	defer s.Close()
	var rows []outRow
	var lost int
	err := s.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.Select(ctx, &rows, `SELECT enrollment_id, step, status, message_id FROM messages_out`); err != nil {
			return err
		}
		// Every contact's first step must have ended sent, failed or
		// uncertain (a contact never enrolled counts as lost too).
		return tx.Get(ctx, &lost, lostQuery)
	})
	if err != nil {
		t.Fatal(err)
	}
	var res result
	res.Lost, res.Delivered = lost, len(got)
	byID := map[string]outRow{}
	for _, r := range rows {
		byID[r.MessageID] = r
		switch r.Status {
		case "sent":
			res.Sent++
		case "uncertain":
			res.Uncertain++
		case "failed":
			res.Failed++
		}
	}
	seen := map[string]int{}
	type key struct {
		enrollment int64
		step       int
	}
	ids := map[key]map[string]bool{}
	for _, m := range got {
		seen[m.MessageID]++
		r, ok := byID[m.MessageID]
		if !ok {
			res.Unknown++
			continue
		}
		k := key{r.Enrollment, r.Step}
		if ids[k] == nil {
			ids[k] = map[string]bool{}
		}
		ids[k][m.MessageID] = true
	}
	for _, n := range seen {
		if n > 1 {
			res.Duplicates += n - 1
		}
	}
	for _, set := range ids {
		if len(set) > 1 {
			res.Duplicates += len(set) - 1
		}
	}
	return res
}
