// Package storetest gives other packages' tests a fresh database of each
// kind: an SQLite file in a temporary folder, and a Postgres schema of its
// own when FOLLOWUPD_TEST_POSTGRES names a server.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/followupd/followupd/store"
)

// PostgresEnv names the variable holding the Postgres DSN for tests.
const PostgresEnv = "FOLLOWUPD_TEST_POSTGRES"

// ForEach runs fn as one subtest per database dialect ("sqlite",
// "postgres"); fn opens fresh databases with Fresh. The Postgres subtest is
// skipped, saying why, when PostgresEnv is unset.
func ForEach(t *testing.T, fn func(t *testing.T, dialect string)) {
	for _, dialect := range []string{store.DialectSQLite, store.DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			if dialect == store.DialectPostgres && os.Getenv(PostgresEnv) == "" {
				t.Skip(PostgresEnv + " not set: Postgres tests skipped")
			}
			fn(t, dialect)
		})
	}
}

// Fresh returns options that open an empty, migrated database of the
// dialect, removed when the test ends.
func Fresh(tb testing.TB, dialect string) store.Options {
	tb.Helper()
	if dialect == store.DialectSQLite {
		return store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(tb.TempDir(), "followupd.db")}
	}
	base := os.Getenv(PostgresEnv)
	if base == "" {
		tb.Skip(PostgresEnv + " not set: Postgres tests skipped")
	}
	admin, err := sql.Open("postgres", base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", PostgresEnv, err)
	}
	tb.Cleanup(func() { _ = admin.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "fut_" + hex.EncodeToString(b[:])
	// An identifier cannot be a parameter; this one is made of hex digits.
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	dsn := base + " search_path=" + schema
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			tb.Fatalf("parse %s: %v", PostgresEnv, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	return store.Options{Driver: store.DialectPostgres, DSN: dsn, Migrate: true}
}

// Open opens o and closes it when the test ends.
func Open(tb testing.TB, o store.Options) *store.Store {
	tb.Helper()
	s, err := store.Open(context.Background(), o)
	if err != nil {
		tb.Fatalf("open %s: %v", o.Driver, err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}
