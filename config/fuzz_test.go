package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/followupd/followupd/config"
)

// FuzzLoadConfig feeds arbitrary bytes to config.Parse. It must never
// panic; every failure must be a config.Errors whose lines each read
// FILE:LINE:COL: msg or FILE: msg; and a configuration that parses must not
// show any of its secrets in Dump.
func FuzzLoadConfig(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "fuzzseed", "*.yaml"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/fuzzseed: %v", err)
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}

	// A folder with the templates the seeds name, so that valid configs
	// get past validation and reach Dump.
	dir := f.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "templates"), 0o755); err != nil {
		f.Fatal(err)
	}
	for _, name := range []string{"intro", "one", "a"} {
		body := "---\nsubject: hi\n---\nHello?\n"
		if err := os.WriteFile(filepath.Join(dir, "templates", name+".md"), []byte(body), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	path := filepath.Join(dir, "followup.yaml")
	lineRE := regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `(:[0-9]+:[0-9]+)?: [^\r\n]+$`)
	getenv := func(name string) (string, bool) {
		switch name {
		case "UNSET", "NOPE":
			return "", false
		case "EMPTY":
			return "", true
		}
		return "env-" + name + "-value", true
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		// A panic fails this input only, so that the package's other
		// tests still run and the report shows the input.
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("config.Parse panicked on %q: %v\n%s", data, p, debug.Stack())
			}
		}()
		c, err := config.Parse(path, data, getenv)
		if err != nil {
			if c != nil {
				t.Errorf("Parse returned a config and an error")
			}
			es, ok := err.(config.Errors)
			if !ok {
				t.Fatalf("Parse returned %T, want config.Errors: %v", err, err)
			}
			if len(es) == 0 {
				t.Fatalf("Parse returned an empty config.Errors")
			}
			for _, e := range es {
				if line := e.Error(); !lineRE.MatchString(line) {
					t.Errorf("error line does not read FILE:LINE:COL: msg or FILE: msg: %q", line)
				}
				if e.Line < 0 || e.Col < 0 || (e.Line == 0 && e.Col != 0) {
					t.Errorf("error at impossible position %d:%d: %q", e.Line, e.Col, e.Msg)
				}
			}
			return
		}
		if c == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}

		// Every secret is replaced by a marker; the dump must show none.
		var markers []string
		setSecrets(reflect.ValueOf(c).Elem(), func() string {
			m := fmt.Sprintf("fuzz-secret-marker-%d-zq", len(markers))
			markers = append(markers, m)
			return m
		})
		out, err := c.Dump()
		if err != nil {
			t.Fatalf("Dump of a config that parsed: %v", err)
		}
		for _, m := range markers {
			if strings.Contains(string(out), m) {
				t.Fatalf("Dump shows a secret (%s):\n%s", m, out)
			}
		}
	})
}

var secretType = reflect.TypeOf(config.Secret(""))

// setSecrets sets every config.Secret reachable from v (exported struct
// fields, pointers, slices, maps of structs) to a fresh marker.
func setSecrets(v reflect.Value, marker func() string) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			setSecrets(v.Elem(), marker)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				setSecrets(v.Field(i), marker)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			setSecrets(v.Index(i), marker)
		}
	case reflect.String:
		if v.Type() == secretType && v.CanSet() {
			v.SetString(marker())
		}
	}
}
