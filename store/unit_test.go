package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Driver: "mysql", DSN: "x"},
		{Driver: DialectSQLite, DSN: ""},
	} {
		if s, err := Open(context.Background(), o); err == nil {
			_ = s.Close()
			t.Errorf("Open(%+v) succeeded", o)
		} else if !strings.HasPrefix(err.Error(), "store: ") {
			t.Errorf("Open(%+v) error %q does not start with store:", o, err)
		}
	}
}

// A path is not a URI: characters that mean something in one must still
// name the file they spell.
func TestSQLitePathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "odd ?#% dir")
	path := filepath.Join(dir, "db?x=1#frag%20.db")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := openT(t, Options{Driver: DialectSQLite, DSN: path, Exclusive: true})
	mustUpsert(t, s, Contact{Email: "ann@x.com"})
	matches, _ := filepath.Glob(filepath.Join(dir, "*"))
	var names []string
	for _, m := range matches {
		names = append(names, filepath.Base(m))
	}
	joined := strings.Join(names, ",")
	for _, want := range []string{"db?x=1#frag%20.db", "db?x=1#frag%20.db-lock", "db?x=1#frag%20.db-wal"} {
		if !strings.Contains(","+joined+",", ","+want+",") {
			t.Errorf("files %v; want %q among them", names, want)
		}
	}
}

func TestSentinelsThroughWrapping(t *testing.T) {
	err := &duplicateError{err: errors.New("UNIQUE constraint failed: contacts.email")}
	if !errors.Is(err, ErrDuplicate) || err.Error() != "UNIQUE constraint failed: contacts.email" {
		t.Errorf("duplicateError: Is=%v, message %q", errors.Is(err, ErrDuplicate), err)
	}
	if !errors.Is(notFound("no contact with id %d", 1), ErrNotFound) {
		t.Error("notFound does not match ErrNotFound")
	}
	if !errors.Is(&lockedError{path: "/x", pid: 1}, ErrLocked) {
		t.Error("lockedError does not match ErrLocked")
	}
	if !errors.Is(checkVersion(0, 1), ErrSchemaOutdated) || checkVersion(1, 1) != nil {
		t.Error("checkVersion")
	}
	if err := checkVersion(2, 1); err == nil || errors.Is(err, ErrSchemaOutdated) {
		t.Errorf("a newer schema: %v; want an error that is not ErrSchemaOutdated", err)
	}
}

func TestNormalizeEmail(t *testing.T) {
	if got := NormalizeEmail("  Ann.Lee@Example.COM\t"); got != "ann.lee@example.com" {
		t.Errorf("NormalizeEmail = %q", got)
	}
	for _, bad := range []string{"", "ann", "@x.com", "ann@", "a b@x.com"} {
		if validEmail(bad) == nil {
			t.Errorf("validEmail(%q) accepted it", bad)
		}
	}
}

func TestIsDecimal(t *testing.T) {
	for s, want := range map[string]bool{
		"49.90": true, "120": true, "-5": true, ".5": true, "1.": true,
		"": false, "1.2.3": false, "1e3": false, "abc": false, "-": false, ".": false,
	} {
		if got := isDecimal(s); got != want {
			t.Errorf("isDecimal(%q) = %v; want %v", s, got, want)
		}
	}
}

func TestMigrationsLoad(t *testing.T) {
	for _, d := range []string{DialectSQLite, DialectPostgres} {
		set, err := migrations(d)
		if err != nil || len(set) == 0 || set[0].version != 1 || set[0].name != "0001_init" {
			t.Errorf("migrations(%s) = %d files, %v", d, len(set), err)
		}
	}
	sl, _ := migrations(DialectSQLite)
	pg, _ := migrations(DialectPostgres)
	if len(sl) != len(pg) || latestVersion(sl) != latestVersion(pg) {
		t.Errorf("the dialects have different migrations: %d vs %d", len(sl), len(pg))
	}
}
