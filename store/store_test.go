package store

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
	"time"

	"go.uber.org/goleak"
)

// pgEnv names the Postgres DSN the contract suite also runs against, e.g.
// postgres://postgres@127.0.0.1:5432/followupd_test?sslmode=disable.
const pgEnv = "FOLLOWUPD_TEST_POSTGRES"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testDB makes fresh, isolated databases of one dialect.
type testDB struct {
	dialect string
	// fresh returns the Options of a new empty database: a file in a
	// temporary directory, or a Postgres schema of its own dropped when the
	// test ends.
	fresh func(tb testing.TB) Options
}

func testDBs() []testDB {
	return []testDB{
		{dialect: DialectSQLite, fresh: freshSQLite},
		{dialect: DialectPostgres, fresh: freshPostgres},
	}
}

// forEachDB runs fn as one subtest per database, named after the dialect, so
// that a CI log shows both. fn opens as many fresh databases as it needs.
// The Postgres subtest is skipped, with one line, when FOLLOWUPD_TEST_POSTGRES
// is not set.
func forEachDB(t *testing.T, fn func(t *testing.T, db testDB)) {
	for _, db := range testDBs() {
		t.Run(db.dialect, func(t *testing.T) {
			if db.dialect == DialectPostgres && os.Getenv(pgEnv) == "" {
				t.Skip(pgEnv + " not set: Postgres contract suite skipped")
			}
			fn(t, db)
		})
	}
}

// open opens a fresh database of db's dialect, closed when the test ends.
func (db testDB) open(t *testing.T) *Store {
	t.Helper()
	return openT(t, db.fresh(t))
}

func openT(t *testing.T, o Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open(%s): %v", o.Driver, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func freshSQLite(tb testing.TB) Options {
	return Options{
		Driver: DialectSQLite,
		DSN:    filepath.Join(tb.TempDir(), "followupd.db"),
	}
}

// freshPostgres creates a schema with a random name and returns Options
// whose connections use it alone (search_path), so that every test starts
// from an empty database and none sees another's rows.
func freshPostgres(tb testing.TB) Options {
	tb.Helper()
	base := os.Getenv(pgEnv)
	admin, err := sql.Open(DialectPostgres, base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", pgEnv, err)
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
	return Options{
		Driver:  DialectPostgres,
		DSN:     withSearchPath(tb, base, schema),
		Migrate: true,
	}
}

// withSearchPath adds search_path to a URL or key=value DSN; lib/pq sends
// unknown keys to the server as run-time parameters.
func withSearchPath(tb testing.TB, dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			tb.Fatalf("parse %s: %v", pgEnv, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// reopen opens the database s was opened on once more, with changes.
func reopen(t *testing.T, s *Store, change func(*Options)) (*Store, error) {
	t.Helper()
	o := s.opts
	if change != nil {
		change(&o)
	}
	s2, err := Open(context.Background(), o)
	if err == nil {
		t.Cleanup(func() { _ = s2.Close() })
	}
	return s2, err
}

// fixedClock makes the store's "now" settable by the test.
type fixedClock struct{ t time.Time }

func (c *fixedClock) now() time.Time { return c.t }

func setClock(s *Store, t time.Time) *fixedClock {
	c := &fixedClock{t: t}
	s.now = c.now
	return c
}

// count returns the result of a COUNT query.
func count(t *testing.T, s *Store, query string, args ...any) int {
	t.Helper()
	var n int
	err := s.InTx(context.Background(), func(tx *Tx) error {
		return tx.Get(context.Background(), &n, query, args...)
	})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func mustExec(t *testing.T, s *Store, query string, args ...any) {
	t.Helper()
	err := s.InTx(context.Background(), func(tx *Tx) error {
		_, err := tx.Exec(context.Background(), query, args...)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func mustUpsert(t *testing.T, s *Store, c Contact) int64 {
	t.Helper()
	id, _, err := s.UpsertContact(context.Background(), c)
	if err != nil {
		t.Fatalf("UpsertContact(%s): %v", c.Email, err)
	}
	return id
}

// TestContract is the behaviour every database must show, run against each.
func TestContract(t *testing.T) {
	forEachDB(t, func(t *testing.T, db testDB) {
		for _, c := range contract {
			t.Run(c.name, func(t *testing.T) {
				c.fn(t, db, db.open(t))
			})
		}
	})
}

// contract lists the tests of TestContract; each gets a fresh database.
var contract = []struct {
	name string
	fn   func(t *testing.T, db testDB, s *Store)
}{
	{"upsert_creates_then_merges", testUpsertCreatesThenMerges},
	{"email_is_case_insensitive", testEmailCaseInsensitive},
	{"set_stage_writes_one_event", testSetStageWritesOneEvent},
	{"notes_purchases_timeline", testNotesPurchasesTimeline},
	{"list_and_count", testListAndCount},
	{"times_round_trip", testTimesRoundTrip},
	{"times_compare_and_order", testTimesCompareAndOrder},
	{"timeline_orders_by_time_then_id", testTimelineOrder},
	{"unique_constraints", testUniqueConstraints},
	{"live_enrollment_unique_per_pair", testLiveEnrollmentUnique},
	{"import_contacts", testImportContacts},
	{"import_is_one_transaction", testImportIsOneTransaction},
	{"suppressions", testSuppressions},
	{"checkpoints", testCheckpoints},
	{"in_tx_rolls_back", testInTxRollsBack},
	{"not_found", testNotFound},
	{"schema_gate", testSchemaGate},
	{"newer_schema_refused", testNewerSchemaRefused},
	{"migrations_recorded_and_idempotent", testMigrationsIdempotent},
	{"concurrent_migrations", testConcurrentMigrations},
	{"exclusive_open", testExclusiveOpen},
}
