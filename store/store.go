// Package store is followupd's database: schema migrations, queries and
// transactions, for SQLite (the embedded default) and Postgres (replicas)
// behind one API.
//
// Every query is written once with '?' placeholders and rebound for the
// driver in use; the few statements whose syntax differs between the two
// databases have a variant per dialect in queries.go.
//
// Times are stored in UTC with microsecond precision. Postgres keeps them in
// TIMESTAMPTZ columns; SQLite keeps them as INTEGER microseconds since the Unix
// epoch (the driver converts time.Time parameters and TIMESTAMP columns both
// ways), so that ORDER BY and comparisons are integer comparisons and never
// depend on how a time was formatted as text.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialects accepted in Options.Driver and returned by Store.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Sentinel errors; test with errors.Is. Errors returned by the store keep the
// underlying message and wrap these where they apply.
var (
	// ErrNotFound is returned when the row asked for does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate is returned when a write would violate a UNIQUE
	// constraint or a primary key, in either database.
	ErrDuplicate = errors.New("store: duplicate")
	// ErrSchemaOutdated is returned by Open on Postgres when the database
	// schema is older than this build needs and Migrate was not asked for.
	ErrSchemaOutdated = errors.New("store: database schema is outdated")
	// ErrLocked is returned by an Exclusive Open of an SQLite file that
	// another process holds.
	ErrLocked = errors.New("store: database is locked by another process")
)

func init() {
	// sqlx knows the bind type of "sqlite3" (mattn) but not of the name the
	// pure-Go driver registers.
	sqlx.BindDriver(DialectSQLite, sqlx.QUESTION)
}

// Options says which database to open and how.
type Options struct {
	// Driver is "sqlite" or "postgres".
	Driver string
	// DSN is a file path for SQLite and a connection string or URL for
	// Postgres.
	DSN string
	// Migrate applies pending migrations on open. It only matters for
	// Postgres: SQLite always migrates on open, as it has a single user.
	Migrate bool
	// Exclusive makes an SQLite open take a lock that a second Exclusive
	// open of the same file is refused by (ErrLocked); the daemon sets it,
	// CLI commands do not. Ignored for Postgres, where replicas share the
	// database by design.
	Exclusive bool
	// Logger receives migration and lock messages; nil discards them.
	Logger *slog.Logger
	// DefaultStage is given to a contact created without a stage; empty
	// means DefaultStage. An existing contact keeps its stage.
	DefaultStage string
	// Replica names this process to other replicas (followupd status shows
	// who holds each lease); empty is "HOST:PID".
	Replica string
}

// Store is an open database. It is safe for concurrent use.
type Store struct {
	db      *sqlx.DB
	dialect string
	q       *queries
	log     *slog.Logger
	lock    io.Closer // SQLite Exclusive lock file, nil otherwise
	opts    Options   // as opened, for tests that open the same database again
	now     func() time.Time

	closeOnce sync.Once
	closeErr  error
}

// Open connects to the database described by o. SQLite databases are
// created and migrated as needed; Postgres databases must be at the current
// schema version unless o.Migrate is set.
func Open(ctx context.Context, o Options) (*Store, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch o.Driver {
	case DialectSQLite:
		return openSQLite(ctx, o, log)
	case DialectPostgres:
		return openPostgres(ctx, o, log)
	default:
		return nil, fmt.Errorf("store: unknown database driver %q (want %q or %q)", o.Driver, DialectSQLite, DialectPostgres)
	}
}

func newStore(db *sqlx.DB, o Options, log *slog.Logger) *Store {
	return &Store{
		db:      db,
		dialect: o.Driver,
		opts:    o,
		q:       newQueries(o.Driver),
		log:     log,
		now:     time.Now,
	}
}

func openSQLite(ctx context.Context, o Options, log *slog.Logger) (*Store, error) {
	path := o.DSN
	if path == "" {
		return nil, errors.New("store: the SQLite database path is empty")
	}
	var lock io.Closer
	if o.Exclusive {
		l, err := lockDatabase(path)
		if err != nil {
			return nil, err
		}
		lock = l
	}
	db, err := sqlx.Open(DialectSQLite, sqliteDSN(path))
	if err != nil {
		closeQuietly(lock)
		return nil, fmt.Errorf("store: unable to open %s: %w", path, err)
	}
	// SQLite allows one writer at a time; a single connection makes the
	// process queue its own writers instead of failing with SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	s := newStore(db, o, log)
	s.lock = lock
	if err := pingSQLite(ctx, db); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("store: unable to open %s: %w", path, err)
	}
	if _, err := s.Migrate(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// pingSQLite opens the first connection. Turning a new file into WAL mode
// needs an exclusive lock that SQLite does not wait for with busy_timeout,
// so processes opening a brand-new database together can get SQLITE_BUSY
// from the pragmas: retry for as long as busy_timeout would have waited.
func pingSQLite(ctx context.Context, db *sqlx.DB) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := db.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sqliteDSN builds the driver's URI for path. The time parameters make
// time.Time values go in as INTEGER microseconds and come back from
// TIMESTAMP columns as UTC times.
func sqliteDSN(path string) string {
	// In a "file:" URI SQLite decodes %XX and stops the path at '?' or '#'.
	esc := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
	return "file:" + esc +
		"?_pragma=busy_timeout(5000)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(1)" +
		"&_txlock=immediate" +
		"&_time_integer_format=unix_micro" +
		"&_inttotime=1"
}

func openPostgres(ctx context.Context, o Options, log *slog.Logger) (*Store, error) {
	db, err := sqlx.ConnectContext(ctx, DialectPostgres, postgresDSN(o.DSN))
	if err != nil {
		return nil, fmt.Errorf("store: unable to connect to Postgres: %w", err)
	}
	s := newStore(db, o, log)
	if o.Migrate {
		if _, err := s.Migrate(ctx); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	current, latest, err := s.SchemaStatus(ctx)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := checkVersion(current, latest); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// AutovacuumOff reports whether the Postgres server runs without
// autovacuum (always false on SQLite).
func (s *Store) AutovacuumOff(ctx context.Context) (bool, error) {
	if s.dialect != DialectPostgres {
		return false, nil
	}
	var v string
	if err := s.db.GetContext(ctx, &v, `SELECT current_setting('autovacuum')`); err != nil {
		return false, fmt.Errorf("store: unable to read the autovacuum setting: %w", err)
	}
	return v == "off", nil
}

// postgresDSN asks lib/pq for binary_parameters unless the DSN says
// otherwise: a query with arguments then costs one round trip instead of
// two (parse, then bind and execute), which is most of the time of a short
// transaction. Every argument the store passes is text, a number or a
// time, never bytes, so the binary format changes nothing else.
func postgresDSN(dsn string) string {
	if strings.Contains(dsn, "binary_parameters") {
		return dsn
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			q := u.Query()
			q.Set("binary_parameters", "yes")
			u.RawQuery = q.Encode()
			return u.String()
		}
		return dsn
	}
	return strings.TrimSpace(dsn) + " binary_parameters=yes"
}

// Close closes the database and releases the Exclusive lock, if held.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		err := s.db.Close()
		if err != nil {
			err = fmt.Errorf("store: unable to close the database: %w", err)
		}
		if s.lock != nil {
			if lerr := s.lock.Close(); lerr != nil && err == nil {
				err = fmt.Errorf("store: unable to release the database lock: %w", lerr)
			}
		}
		s.closeErr = err
	})
	return s.closeErr
}

// Dialect returns "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// InTx runs fn in a transaction, committing if fn returns nil and rolling
// back otherwise; fn's error is returned as is. Use only tx inside fn: on
// SQLite the store has a single connection, which the transaction holds, so
// calling Store methods from fn would wait forever.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	sqltx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: unable to begin transaction: %w", err)
	}
	tx := &Tx{tx: sqltx, r: s.runner(sqltx)}
	defer func() {
		if p := recover(); p != nil {
			_ = sqltx.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		_ = sqltx.Rollback()
		return err
	}
	if err := sqltx.Commit(); err != nil {
		return fmt.Errorf("store: unable to commit transaction: %w", classify(err))
	}
	return nil
}

// runner returns the query helpers bound to x, the database or a transaction.
func (s *Store) runner(x sqlx.ExtContext) *runner {
	return &runner{x: x, q: s.q, dialect: s.dialect, now: s.clock, defaultStage: s.defaultStage()}
}

func (s *Store) clock() time.Time { return dbTime(s.now()) }

func (s *Store) defaultStage() string {
	if s.opts.DefaultStage != "" {
		return s.opts.DefaultStage
	}
	return DefaultStage
}

// Tx is a transaction started by Store.InTx. Its Exec, Get and Select take
// queries written with '?' placeholders and rebind them for the database;
// its other methods are the Store methods that later code needs to combine
// atomically.
type Tx struct {
	tx *sqlx.Tx
	r  *runner
}

// Savepoint runs fn inside a savepoint: when fn returns an error, what fn
// did is undone and the transaction stays usable (on Postgres a failed
// statement would otherwise abort it); the error is returned.
func (tx *Tx) Savepoint(ctx context.Context, fn func() error) error {
	// One name for every savepoint: a nested one shadows the outer one
	// until released, so ROLLBACK TO and RELEASE always mean the innermost.
	if _, err := tx.r.exec(ctx, "SAVEPOINT followupd_sp"); err != nil {
		return fmt.Errorf("store: unable to make a savepoint: %w", classify(err))
	}
	if err := fn(); err != nil {
		if _, rerr := tx.r.exec(ctx, "ROLLBACK TO SAVEPOINT followupd_sp"); rerr != nil {
			return errors.Join(err, fmt.Errorf("store: unable to roll back to a savepoint: %w", classify(rerr)))
		}
		_, _ = tx.r.exec(ctx, "RELEASE SAVEPOINT followupd_sp")
		return err
	}
	if _, err := tx.r.exec(ctx, "RELEASE SAVEPOINT followupd_sp"); err != nil {
		return fmt.Errorf("store: unable to release a savepoint: %w", classify(err))
	}
	return nil
}

// Dialect returns "sqlite" or "postgres", for the rare statement whose
// syntax differs.
func (tx *Tx) Dialect() string { return tx.r.dialect }

// Rebind turns '?' placeholders into the database's own.
func (tx *Tx) Rebind(query string) string { return tx.tx.Rebind(query) }

// SQLX returns the underlying transaction, for what Exec, Get and Select do
// not cover. Queries sent through it are not rebound.
func (tx *Tx) SQLX() *sqlx.Tx { return tx.tx }

// Exec runs a statement written with '?' placeholders. time.Time arguments
// are stored as UTC with microsecond precision, like everything the store
// writes; UNIQUE violations match ErrDuplicate.
func (tx *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := tx.r.exec(ctx, tx.tx.Rebind(query), dbArgs(args)...)
	if err != nil {
		return nil, fmt.Errorf("store: unable to execute statement: %w", classify(err))
	}
	return res, nil
}

// Get scans the single row of query into dest (a struct with db tags, or a
// scalar); no row gives an error matching ErrNotFound.
func (tx *Tx) Get(ctx context.Context, dest any, query string, args ...any) error {
	if err := tx.r.get(ctx, dest, tx.tx.Rebind(query), dbArgs(args)...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("no row matches the query")
		}
		return fmt.Errorf("store: unable to run query: %w", classify(err))
	}
	return nil
}

// Select scans all rows of query into dest, a pointer to a slice.
func (tx *Tx) Select(ctx context.Context, dest any, query string, args ...any) error {
	if err := tx.r.selectRows(ctx, dest, tx.tx.Rebind(query), dbArgs(args)...); err != nil {
		return fmt.Errorf("store: unable to run query: %w", classify(err))
	}
	return nil
}

// dbTime is the form every time takes before it is written: UTC, because
// SQLite stores no zone and Postgres returns the session's; microseconds,
// because that is Postgres's precision and Postgres would round where the
// SQLite driver truncates.
func dbTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

func dbTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := dbTime(*t)
	return &v
}

// utc normalises a scanned time: lib/pq returns times in the session's zone.
func utc(t *time.Time) {
	*t = t.UTC()
}

func utcPtr(t *time.Time) {
	if t != nil {
		*t = t.UTC()
	}
}

// dbArgs applies dbTime to time arguments of raw queries, so that code
// using Tx.Exec gets the same storage rules as the store's own queries.
func dbArgs(in []any) []any {
	// A copy: the caller may have passed its own slice with args...
	args := slices.Clone(in)
	for i, a := range args {
		switch v := a.(type) {
		case time.Time:
			args[i] = dbTime(v)
		case *time.Time:
			if v != nil {
				args[i] = dbTime(*v)
			}
		}
	}
	return args
}

// duplicateError keeps the driver's message (it names the constraint) while
// matching ErrDuplicate, and still unwraps to the driver's error.
type duplicateError struct{ err error }

func (e *duplicateError) Error() string   { return e.err.Error() }
func (e *duplicateError) Unwrap() []error { return []error{ErrDuplicate, e.err} }

// classify recognises the driver errors that callers act upon.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return &duplicateError{err: err}
		}
		return err
	}
	if pq.As(err, pqerror.UniqueViolation) != nil {
		return &duplicateError{err: err}
	}
	return err
}

// notFoundError says what was not found while matching ErrNotFound.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return "store: " + e.msg }
func (e *notFoundError) Unwrap() error { return ErrNotFound }

func notFound(format string, args ...any) error {
	return &notFoundError{msg: fmt.Sprintf(format, args...)}
}

func closeQuietly(c io.Closer) {
	if c != nil {
		_ = c.Close()
	}
}
