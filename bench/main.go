// Command bench runs followupd's benchmark scenarios against a throwaway
// database and prints one line of JSON per run. Figures are reported beside
// a baseline measured in the same run where a scenario has one, because
// this machine is shared and noisy.
//
//	go run ./bench -scenario tick  -db sqlite|postgres -json
//	go run ./bench -scenario claim -db sqlite|postgres -n 100000 -json
//	go run ./bench -scenario send -db sqlite|postgres -n 100000 -json
//	go run ./bench -scenario latency -db sqlite|postgres -replies 50 -json
//	go run ./bench -scenario ingest -db sqlite|postgres -messages 10000 -json
//
// Postgres comes from FOLLOWUPD_TEST_POSTGRES; each run works in a schema
// of its own, dropped at the end.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/daemon"
	"github.com/followupd/followupd/store"
)

func main() {
	scenario := flag.String("scenario", "", "tick, claim, send, latency or ingest")
	db := flag.String("db", "sqlite", "sqlite or postgres")
	n := flag.Int("n", 100000, "due steps (claim, send)")
	conns := flag.Int("conns", 4, "SMTP connections (send)")
	replies := flag.Int("replies", 50, "replies delivered one by one (latency)")
	mailbox := flag.Int("messages", 10000, "messages in the mailbox (ingest)")
	sizes := flag.String("sizes", "10000,100000,1000000", "enrolled contacts (tick)")
	asJSON := flag.Bool("json", false, "print only the JSON line")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	// The daemon's pipeline runs in this process: the same GC target as
	// followupd run.
	daemon.TuneGC()
	env, err := newEnv(*db, !*asJSON)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer env.close()
	var result any
	switch *scenario {
	case "tick":
		result, err = runTick(env, *sizes)
	case "claim":
		result, err = runClaim(env, *n)
	case "send":
		result, err = runSend(env, *n, *conns)
	case "latency":
		result, err = runLatency(env, *replies)
	case "ingest":
		result, err = runIngest(env, *mailbox)
	default:
		err = fmt.Errorf("unknown -scenario %q (tick, claim, send, latency, ingest)", *scenario)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		env.close()
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	out, _ := json.Marshal(result)
	fmt.Println(string(out))
}

// env is one scenario's database, config and clean-up.
type env struct {
	ctx     context.Context
	db      string
	dir     string
	opts    store.Options
	verbose bool
	cleanup []func()
}

func (e *env) logf(format string, args ...any) {
	if e.verbose {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

func (e *env) close() {
	for i := len(e.cleanup) - 1; i >= 0; i-- {
		e.cleanup[i]()
	}
	e.cleanup = nil
}

func newEnv(db string, verbose bool) (*env, error) {
	dir, err := os.MkdirTemp("", "followupd-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{ctx: context.Background(), db: db, dir: dir, verbose: verbose}
	e.cleanup = append(e.cleanup, func() { os.RemoveAll(dir) })
	switch db {
	case "sqlite":
		e.opts = store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(dir, "bench.db")}
	case "postgres":
		base := os.Getenv("FOLLOWUPD_TEST_POSTGRES")
		if base == "" {
			return nil, fmt.Errorf("-db postgres needs FOLLOWUPD_TEST_POSTGRES")
		}
		admin, err := sql.Open("postgres", base)
		if err != nil {
			return nil, err
		}
		var b [6]byte
		_, _ = rand.Read(b[:])
		schema := "bench_" + hex.EncodeToString(b[:])
		if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
			return nil, fmt.Errorf("create schema: %w", err)
		}
		e.cleanup = append(e.cleanup, func() {
			admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
			admin.Close()
		})
		u, err := url.Parse(base)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		e.opts = store.Options{Driver: store.DialectPostgres, DSN: u.String(), Migrate: true}
	default:
		return nil, fmt.Errorf("unknown -db %q (sqlite, postgres)", db)
	}
	return e, nil
}

const benchConfig = `
accounts:
  - name: bench
    from_name: Bench Seller
    from_address: seller@bench.example
    timezone: UTC
    daily_limit: 100000000
    min_gap: 0s
    max_gap: 0s
    send_window: {days: mon-sun, hours: "00:00-24:00"}
    smtp: {host: 127.0.0.1, port: 2525, tls: none, insecure_plaintext: true}
unsubscribe:
  base_url: https://bench.example
  secret: bench-secret-0123456789
sequences:
  - name: intro
    window: {days: mon-sun, hours: "00:00-24:00", timezone: account}
    steps:
      - template: one
      - template: two
        delay: 3d
        thread: reply
`

// runtime writes the bench config and templates and compiles them.
func (e *env) runtime() (*daemon.Runtime, error) {
	_, rt, err := e.runtimeFrom(benchConfig)
	return rt, err
}

// runtimeFrom writes yaml as the config beside the bench templates and
// compiles it; it returns the config's path too.
func (e *env) runtimeFrom(yaml string) (string, *daemon.Runtime, error) {
	tdir := filepath.Join(e.dir, "templates")
	os.MkdirAll(tdir, 0o755)
	files := map[string]string{
		"one.md": "---\nsubject: A question for {{ .Contact.Company | default \"you\" }}\n---\nHi {{ .Contact.FirstName | default \"there\" }},\n\nWould a short call next week help {{ .Contact.Company | default \"your team\" }}?\n\n{{ cta \"Pick a time\" \"https://bench.example/book\" }}\n",
		"two.md": "---\nsubject: follow-up\n---\nHi {{ .Contact.FirstName | default \"there\" }}, did you see my note?\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(tdir, name), []byte(body), 0o644); err != nil {
			return "", nil, err
		}
	}
	path := filepath.Join(e.dir, "followup.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		return "", nil, err
	}
	c, err := config.Load(path)
	if err != nil {
		return "", nil, err
	}
	rt, err := daemon.NewRuntime(c)
	return path, rt, err
}

var _ = strings.TrimSpace
