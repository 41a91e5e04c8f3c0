package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// writeConfig writes a config and a templates folder with the named
// templates into a temporary folder and returns the config's path.
func writeConfig(t *testing.T, yaml string, templates ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range templates {
		body := "---\nsubject: hi\n---\nHello?\n"
		if err := os.WriteFile(filepath.Join(dir, "templates", name+".md"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "followup.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func noEnv(string) (string, bool) { return "", false }

func parse(t *testing.T, path string, env map[string]string) (*Config, Errors) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(path, data, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err == nil {
		return c, nil
	}
	es, ok := err.(Errors)
	if !ok {
		t.Fatalf("Parse returned %T, want Errors: %v", err, err)
	}
	return nil, es
}

const minimal = `
accounts:
  - name: sales
    from_name: Ann
    from_address: ann@example.com
    smtp:
      host: smtp.example.com
      tls: starttls
      username: ann
      password: ${PW}
unsubscribe:
  base_url: https://f.example.com
  secret: ${SECRET:-0123456789abcdef0123}
sequences:
  - name: intro
    steps:
      - template: a
      - template: b
        delay: 3bd
        thread: reply
`

func TestExampleConfigIsValid(t *testing.T) {
	c, err := Load("../examples/followup.yaml")
	if err != nil {
		t.Fatalf("the example config must load: %v", err)
	}
	if c.Database.Driver != "sqlite" || !strings.HasSuffix(c.DatabaseDSN(), filepath.Join("examples", "followupd.db")) {
		t.Errorf("database: got driver %q path %q, want sqlite next to the config", c.Database.Driver, c.DatabaseDSN())
	}
	if c.DefaultStage() != "lead" {
		t.Errorf("default stage %q, want lead", c.DefaultStage())
	}
}

func TestMinimalConfigGetsDefaults(t *testing.T) {
	path := writeConfig(t, minimal, "a", "b")
	c, errs := parse(t, path, map[string]string{"PW": "hunter2"})
	if errs != nil {
		t.Fatalf("unexpected errors:\n%v", errs)
	}
	a := c.Accounts[0]
	if a.SMTP.Port != 587 || a.DailyLimit != 50 || a.TimeZone.String() != "UTC" {
		t.Errorf("defaults: port %d limit %d zone %s", a.SMTP.Port, a.DailyLimit, a.TimeZone)
	}
	if sm := c.Accounts[0].SMTP; sm.RetryBase.Std() != time.Minute || sm.RetryMax.Std() != time.Hour || sm.GiveUpAfter.Std() != 48*time.Hour {
		t.Errorf("smtp retry defaults: %s %s %s", sm.RetryBase.Std(), sm.RetryMax.Std(), sm.GiveUpAfter.Std())
	}
	if c.Database.SendingLease.Std() != 15*time.Minute {
		t.Errorf("database.sending_lease default %s", c.Database.SendingLease.Std())
	}
	if c.HTTP.Listen != "127.0.0.1:8025" {
		t.Errorf("http.listen default %q", c.HTTP.Listen)
	}
	if got := c.Sequences[0].Accounts; len(got) != 1 || got[0] != "sales" {
		t.Errorf("a sequence without account uses the only account, got %v", got)
	}
	if d := c.Sequences[0].Steps[1].Delay; d.BusinessDays != 3 {
		t.Errorf("delay 3bd decoded as %+v", d)
	}
	if len(c.Stages) != 7 || c.DefaultStage() != "lead" {
		t.Errorf("default stages: %v", c.StageNames())
	}
	if c.Accounts[0].SMTP.Password.Value() != "hunter2" {
		t.Errorf("password from ${PW} not expanded")
	}
}

var errLine = regexp.MustCompile(`^(.+):(\d+):(\d+): (.+)$`)

// TestAllErrorsAtOnce is the acceptance case: a typo in a key, a bad
// duration and an unknown stage give three FILE:LINE:COL lines in one run.
func TestAllErrorsAtOnce(t *testing.T) {
	src, err := os.ReadFile("../examples/followup.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(src), "daily_limit: 40", "dailly_limit: 40", 1)
	bad = strings.Replace(bad, "min_gap: 2m", "min_gap: 2 minutes", 1)
	bad = strings.Replace(bad, "set_stage: prospect", "set_stage: prospekt", 1)
	dir := t.TempDir()
	path := filepath.Join(dir, "followup.yaml")
	os.WriteFile(path, []byte(bad), 0o644)
	os.Symlink(filepath.Join(mustAbs(t, "../examples"), "templates"), filepath.Join(dir, "templates"))

	_, errs := parse(t, path, nil)
	if len(errs) != 3 {
		t.Fatalf("want 3 errors, got %d:\n%v", len(errs), errs)
	}
	lines := strings.Split(string(bad), "\n")
	for i, want := range []struct{ key, text string }{
		{`"dailly_limit" (did you mean "daily_limit"?)`, "dailly_limit"},
		{"accounts[0].min_gap", "2 minutes"},
		{`rules[0].do.set_stage: unknown stage "prospekt"`, "prospekt"},
	} {
		m := errLine.FindStringSubmatch(errs[i].Error())
		if m == nil || m[1] != path {
			t.Fatalf("error %d is not FILE:LINE:COL: %q", i, errs[i].Error())
		}
		if !strings.Contains(m[4], want.key) {
			t.Errorf("error %d = %q, want it to name %s", i, m[4], want.key)
		}
		var line, col int
		fmt.Sscan(m[2], &line)
		fmt.Sscan(m[3], &col)
		if line < 1 || line > len(lines) || !strings.Contains(lines[line-1][col-1:], want.text) {
			t.Errorf("error %d points at %d:%d, which does not hold %q", i, line, col, want.text)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestBadValues(t *testing.T) {
	cases := []struct {
		name, from, to, want string
	}{
		{"unknown time zone", "from_name: Ann", "from_name: Ann\n    timezone: Europe/Amsterdm", `unknown time zone "Europe/Amsterdm"`},
		{"wrong type", "from_name: Ann", "from_name: Ann\n    daily_limit: lots", `accounts[0].daily_limit: expected a whole number, got "lots"`},
		{"negative delay", "delay: 3bd", "delay: -1d", `bad delay "-1d"`},
		{"unknown template", "template: b", "template: c", `template "c" not found`},
		{"unknown account", "  - name: intro", "  - name: intro\n    account: support", `unknown account "support"`},
		{"plaintext needs a second yes", "tls: starttls", "tls: none", "insecure_plaintext: true"},
		{"bad tls mode", "tls: starttls", "tls: startls", `unknown value "startls" (want tls, starttls or none)`},
		{"first step cannot reply", "template: a", "template: a\n        thread: reply", "the first step cannot reply"},
		{"bad address", "ann@example.com", "ann-at-example", `"ann-at-example" is not a plain email address`},
		{"header injection in from name", "from_name: Ann", `from_name: "Ann\r\nBcc: x@y"`, "must be on one line"},
		{"unset variable", "${PW}", "${NOPE}", "environment variable NOPE is not set"},
		{"bad window", "from_name: Ann", "from_name: Ann\n    send_window: {hours: \"17:00-09:00\"}", "the end must be after the start"},
		{"syntax", "sequences:", "sequences: [", "YAML syntax error"},
		{"short secret", "${SECRET:-0123456789abcdef0123}", "short", "at least 16 characters"},
		{"reply phrase with an unknown intent", "accounts:", "replies: {phrases: [{intent: keen, phrases: [go ahead]}]}\naccounts:", `replies.phrases[0].intent: unknown value "keen"`},
		{"reply phrase without a word", "accounts:", "replies: {phrases: [{intent: interested, phrases: [\"?!\"]}]}\naccounts:", `the phrase "?!" has no word`},
		{"webhook event no one fires", "accounts:", "webhooks: [{url: \"https://x.example/h\", secret: s3cr3t-s3cr3t-s3cr3t, events: [reply.interested]}]\naccounts:", `unknown event "reply.interested"`},
		{"retry_max under retry_base", "tls: starttls", "tls: starttls\n      retry_base: 10m\n      retry_max: 5m", "retry_max 5m is shorter than retry_base 10m"},
		{"sending lease too short", "accounts:", "database: {sending_lease: 2s}\naccounts:", "database.sending_lease: must be at least 10s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(minimal, tc.from, tc.to, 1)
			if src == minimal {
				t.Fatalf("test case does not change the config")
			}
			path := writeConfig(t, src, "a", "b")
			_, errs := parse(t, path, map[string]string{"PW": "x"})
			if errs == nil {
				t.Fatalf("config accepted, want an error containing %q", tc.want)
			}
			if !strings.Contains(errs.Error(), tc.want) {
				t.Fatalf("errors:\n%v\nwant one containing %q", errs, tc.want)
			}
			for _, e := range errs {
				if e.Line == 0 {
					t.Errorf("error without a position: %v", e)
				}
			}
		})
	}
}

func TestEnvExpansion(t *testing.T) {
	src := strings.Replace(minimal, "from_name: Ann", `from_name: "${FIRST:-Ann} $${LAST}"`, 1)
	path := writeConfig(t, src, "a", "b")
	c, errs := parse(t, path, map[string]string{"PW": "x", "FIRST": "Bo"})
	if errs != nil {
		t.Fatal(errs)
	}
	if got := c.Accounts[0].FromName; got != "Bo ${LAST}" {
		t.Errorf("from_name = %q, want %q", got, "Bo ${LAST}")
	}
	c, _ = parse(t, path, map[string]string{"PW": "x", "FIRST": ""})
	if got := c.Accounts[0].FromName; got != "Ann ${LAST}" {
		t.Errorf("empty variable with default: from_name = %q", got)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	path := writeConfig(t, minimal, "a", "b")
	c, errs := parse(t, path, map[string]string{"PW": "hunter2-very-secret", "SECRET": "signing-secret-value-xyz"})
	if errs != nil {
		t.Fatal(errs)
	}
	dump, err := c.Dump()
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{string(dump), fmt.Sprintf("%v %+v %#v", c, c.Accounts[0], c.Unsubscribe)} {
		if strings.Contains(out, "hunter2") || strings.Contains(out, "signing-secret") {
			t.Fatalf("a secret leaked:\n%s", out)
		}
	}
	if !strings.Contains(string(dump), "password: <redacted>") {
		t.Errorf("dump does not show the redacted password:\n%s", dump)
	}
	// The dump is itself a valid configuration.
	os.WriteFile(path, dump, 0o644)
	if _, errs := parse(t, path, nil); errs != nil && !strings.Contains(errs.Error(), "at least 16") {
		t.Errorf("dump does not load back:\n%v", errs)
	}
}

func TestAnchorsAndFlowStyle(t *testing.T) {
	src := minimal + `
stages: [{name: lead, type: open}, {name: won, type: won}]
rules:
  - &r
    on: reply
    intent: [interested]
    do: {set_stage: won, stop: all}
  - *r
`
	path := writeConfig(t, src, "a", "b")
	c, errs := parse(t, path, map[string]string{"PW": "x"})
	if errs != nil {
		t.Fatal(errs)
	}
	if len(c.Rules) != 2 || c.Rules[1].Do.SetStage != "won" {
		t.Errorf("alias not resolved: %+v", c.Rules)
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{"0": 0, "90s": 90 * time.Second, "36h": 36 * time.Hour, "3d": 72 * time.Hour, "2w": 14 * 24 * time.Hour} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1d", "3 days", "d", "1y"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
		}
	}
}
