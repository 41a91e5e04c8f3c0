package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The migrations of each dialect are numbered files NNNN_name.sql; a file is
// never edited once released, a change is a new file.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string // file name without .sql, e.g. "0001_init"
	sql     string
}

var (
	migrationsOnce sync.Once
	migrationSets  map[string][]migration
	migrationsErr  error
)

// migrations returns the dialect's migrations in version order.
func migrations(dialect string) ([]migration, error) {
	migrationsOnce.Do(func() {
		migrationSets = make(map[string][]migration)
		for _, d := range []string{DialectSQLite, DialectPostgres} {
			set, err := loadMigrations(migrationFiles, "migrations/"+d)
			if err != nil {
				migrationsErr = err
				return
			}
			migrationSets[d] = set
		}
	})
	return migrationSets[dialect], migrationsErr
}

func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read migrations: %w", err)
	}
	var set []migration
	seen := make(map[int]string)
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		name := strings.TrimSuffix(e.Name(), ".sql")
		num, _, _ := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration %s/%s does not start with a positive version number", dir, e.Name())
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("store: migrations %s and %s share version %d", other, name, v)
		}
		seen[v] = name
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("store: unable to read migration %s: %w", name, err)
		}
		set = append(set, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(set, func(i, j int) bool { return set[i].version < set[j].version })
	return set, nil
}

func latestVersion(set []migration) int {
	if len(set) == 0 {
		return 0
	}
	return set[len(set)-1].version
}

// Migrate applies the pending migrations, each in its own transaction with
// its schema_migrations row, and returns the names of those it applied.
// Concurrent calls are safe: on Postgres each transaction first takes an
// advisory lock and then re-reads the version, and SQLite transactions are
// immediate, so a migration another process applied meanwhile is skipped.
func (s *Store) Migrate(ctx context.Context) (applied []string, err error) {
	set, err := migrations(s.dialect)
	if err != nil {
		return nil, err
	}
	latest := latestVersion(set)
	for {
		var done bool
		var name string
		err := s.InTx(ctx, func(tx *Tx) error {
			if s.q.migrationLock != "" {
				if _, err := tx.tx.ExecContext(ctx, s.q.migrationLock, migrationLockKey); err != nil {
					return fmt.Errorf("store: unable to take the migration lock: %w", err)
				}
			}
			if _, err := tx.tx.ExecContext(ctx, s.q.createSchemaMigrations); err != nil {
				return fmt.Errorf("store: unable to create schema_migrations: %w", err)
			}
			var current int
			if err := tx.tx.GetContext(ctx, &current, s.q.schemaVersion); err != nil {
				return fmt.Errorf("store: unable to read the schema version: %w", err)
			}
			if current > latest {
				return newerSchemaError(current, latest)
			}
			next := -1
			for i, m := range set {
				if m.version > current {
					next = i
					break
				}
			}
			if next < 0 {
				done = true
				return nil
			}
			m := set[next]
			if _, err := tx.tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("store: unable to apply migration %s: %w", m.name, err)
			}
			if _, err := tx.tx.ExecContext(ctx, s.q.recordMigration, m.version, m.name, s.clock()); err != nil {
				return fmt.Errorf("store: unable to record migration %s: %w", m.name, classify(err))
			}
			name = m.name
			return nil
		})
		if err != nil {
			return applied, err
		}
		if done {
			return applied, nil
		}
		s.log.Info("applied database migration", "dialect", s.dialect, "migration", name)
		applied = append(applied, name)
	}
}

// SchemaStatus returns the schema version of the database (0 when it has
// none yet) and the latest version this build knows.
func (s *Store) SchemaStatus(ctx context.Context) (current, latest int, err error) {
	set, err := migrations(s.dialect)
	if err != nil {
		return 0, 0, err
	}
	latest = latestVersion(set)
	var exists bool
	if err := s.db.GetContext(ctx, &exists, s.q.schemaMigrationsExists); err != nil {
		return 0, latest, fmt.Errorf("store: unable to look for schema_migrations: %w", err)
	}
	if !exists {
		return 0, latest, nil
	}
	if err := s.db.GetContext(ctx, &current, s.q.schemaVersion); err != nil {
		return 0, latest, fmt.Errorf("store: unable to read the schema version: %w", err)
	}
	return current, latest, nil
}

// checkVersion turns a schema this build cannot work with into the error
// that tells the operator what to run.
func checkVersion(current, latest int) error {
	switch {
	case current < latest:
		return &schemaOutdatedError{current: current, latest: latest}
	case current > latest:
		return newerSchemaError(current, latest)
	}
	return nil
}

type schemaOutdatedError struct{ current, latest int }

func (e *schemaOutdatedError) Error() string {
	return fmt.Sprintf("store: database schema is at version %d, this followupd needs %d: run \"followupd migrate\"", e.current, e.latest)
}

func (e *schemaOutdatedError) Unwrap() error { return ErrSchemaOutdated }

func newerSchemaError(current, latest int) error {
	return fmt.Errorf("store: database schema is at version %d, newer than the %d this followupd knows: upgrade followupd (or point it at another database)", current, latest)
}
