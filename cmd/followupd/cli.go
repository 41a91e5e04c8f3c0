package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

// env is what one invocation of the CLI works with.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	// configPath is the -config flag, default ./followup.yaml.
	configPath string
}

// exitError carries an exit status other than 1 (for usage errors: 2).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }

func usageErr(format string, args ...any) error {
	return exitError{code: 2, err: fmt.Errorf(format, args...)}
}

type command struct {
	name    string
	args    string
	summary string
	run     func(e *env, args []string) error
}

func commands() []command {
	return []command{
		{"run", "[--migrate]", "run the daemon: send, watch replies, serve HTTP", cmdRun},
		{"demo", "[--for DURATION] [--listen ADDR] [--speed DURATION]", "run the daemon on a demo: local mail world, fast clock", cmdDemo},
		{"version", "", "print the version", cmdVersion},
		{"check", "", "check the configuration, templates and database", cmdCheck},
		{"config dump", "", "print the effective configuration, secrets redacted", cmdConfigDump},
		{"migrate", "", "apply pending database migrations", cmdMigrate},
		{"contacts import", "FILE.csv [--stage S] [--json]", "import or update contacts from a CSV file", cmdContactsImport},
		{"contacts list", "[--stage S] [--limit N] [--json]", "list contacts", cmdContactsList},
		{"contacts show", "EMAIL [--json]", "show a contact and its timeline", cmdContactsShow},
		{"contacts set-stage", "EMAIL STAGE [--reason TEXT]", "move a contact to a stage", cmdContactsSetStage},
		{"contacts note", "EMAIL TEXT", "add a note to a contact's timeline", cmdContactsNote},
		{"contacts purchase", "EMAIL [--amount X] [--note TEXT]", "record a purchase", cmdContactsPurchase},
		{"enroll", "EMAIL SEQUENCE [--at TIME]", "enroll a contact in a sequence", cmdEnroll},
		{"status", "[--json] [--limit N]", "pipeline counts and failed or uncertain sends", cmdStatus},
		{"classify", "[--json] FILE.eml...", "show how a saved message is understood", cmdClassify},
		{"preview", "SEQUENCE [--contact EMAIL] [--start TIME] [--json]", "show each step's send time and rendered text", cmdPreview},
		{"unenroll", "EMAIL [SEQUENCE]", "stop a contact's enrollments (all, or in one sequence)", cmdUnenroll},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: followupd [-config FILE] COMMAND [ARGS]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-48s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintf(w, "\nEvery command takes -config FILE (default ./followup.yaml).\n")
}

// run is the whole CLI; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, configPath: "followup.yaml"}
	// A -config before the command applies to it as well.
	for len(args) >= 2 && (args[0] == "-config" || args[0] == "--config") {
		e.configPath, args = args[1], args[2:]
	}
	if len(args) > 0 {
		if v, ok := strings.CutPrefix(args[0], "-config="); ok {
			e.configPath, args = v, args[1:]
		} else if v, ok := strings.CutPrefix(args[0], "--config="); ok {
			e.configPath, args = v, args[1:]
		}
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var cmd *command
	var rest []string
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			if cmd == nil || len(words) > len(strings.Fields(cmd.name)) {
				c := c
				cmd, rest = &c, args[len(words):]
			}
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "followupd: unknown command %q\n\n", strings.Join(args, " "))
		usage(stderr)
		return 2
	}
	if err := cmd.run(e, rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ce config.Errors
		if errors.As(err, &ce) {
			for _, line := range ce {
				fmt.Fprintln(stderr, line.Error())
			}
			fmt.Fprintf(stderr, "followupd: %d problem(s) in the configuration\n", len(ce))
			return 1
		}
		fmt.Fprintf(stderr, "followupd %s: %v\n", cmd.name, err)
		var xe exitError
		if errors.As(err, &xe) {
			return xe.code
		}
		return 1
	}
	return 0
}

// parseFlags parses flags that may stand before, between or after the
// positional arguments ("contacts import FILE --stage lead").
func (e *env) parseFlags(fs *flag.FlagSet, args []string, positional string) ([]string, error) {
	fs.SetOutput(e.stderr)
	fs.StringVar(&e.configPath, "config", e.configPath, "configuration `FILE`")
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: followupd %s %s\n", fs.Name(), positional)
		fs.PrintDefaults()
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, exitError{code: 2, err: err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (e *env) loadConfig() (*config.Config, error) {
	return config.Load(e.configPath)
}

// openStore opens the configured database for a CLI command: SQLite is
// migrated on open; Postgres must already be migrated unless migrate is set.
func (e *env) openStore(c *config.Config, migrate bool) (*store.Store, error) {
	return e.openStoreStage(c, migrate, c.DefaultStage())
}

// openStoreStage is openStore with the stage given to contacts created
// without one.
func (e *env) openStoreStage(c *config.Config, migrate bool, defaultStage string) (*store.Store, error) {
	return store.Open(e.ctx, store.Options{
		Driver:       c.Database.Driver,
		DSN:          c.DatabaseDSN(),
		Migrate:      migrate,
		DefaultStage: defaultStage,
	})
}

// printJSONLine prints v as one line of JSON.
func (e *env) printJSONLine(v any) error {
	return json.NewEncoder(e.stdout).Encode(v)
}

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func versionString() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if v == "" && ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "dev"
	}
	if ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + bi.GoVersion
	}
	return v
}

func cmdVersion(e *env, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if _, err := e.parseFlags(fs, args, ""); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "followupd", versionString())
	return nil
}

func cmdConfigDump(e *env, args []string) error {
	fs := flag.NewFlagSet("config dump", flag.ContinueOnError)
	if _, err := e.parseFlags(fs, args, ""); err != nil {
		return err
	}
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	out, err := c.Dump()
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(out)
	return err
}

func cmdMigrate(e *env, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	if _, err := e.parseFlags(fs, args, ""); err != nil {
		return err
	}
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	s, err := store.Open(e.ctx, store.Options{Driver: c.Database.Driver, DSN: c.DatabaseDSN(), Migrate: true})
	if err != nil {
		return err
	}
	defer s.Close()
	cur, latest, err := s.SchemaStatus(e.ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "database schema is at version %d (latest %d)\n", cur, latest)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
