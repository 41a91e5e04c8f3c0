package main

import (
	"fmt"
	"time"

	"github.com/followupd/followupd/store"
)

// seed adds contacts [from, to) and one active enrollment each in sequence
// intro, due at due, with one statement per table (generate_series on
// Postgres, a recursive CTE on SQLite).
func (e *env) seed(s *store.Store, from, to int, due time.Time) error {
	now := time.Now()
	series := `WITH RECURSIVE g(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM g WHERE i + 1 < ?) `
	contacts := series + `INSERT INTO contacts (email, first_name, company, custom_fields, stage, created_at, updated_at)
		SELECT 'c' || i || '@bench.example', 'First' || i, 'Company ' || (i % 977), '{}', 'lead', ?, ? FROM g`
	enroll := `INSERT INTO enrollments (contact_id, sequence, account, status, step, due_at, created_at, updated_at)
		SELECT id, 'intro', 'bench', 'active', 0, ?, ?, ? FROM contacts WHERE id > ?`
	if s.Dialect() == store.DialectPostgres {
		contacts = `INSERT INTO contacts (email, first_name, company, custom_fields, stage, created_at, updated_at)
			SELECT 'c' || i || '@bench.example', 'First' || i, 'Company ' || (i % 977), '{}', 'lead', ?, ?
			FROM generate_series(?::bigint, ?::bigint - 1) AS i`
	}
	err := s.InTx(e.ctx, func(tx *store.Tx) error {
		var maxID int64
		if err := tx.Get(e.ctx, &maxID, `SELECT COALESCE(MAX(id), 0) FROM contacts`); err != nil {
			return err
		}
		var err error
		if s.Dialect() == store.DialectPostgres {
			_, err = tx.Exec(e.ctx, contacts, now, now, from, to)
		} else {
			_, err = tx.Exec(e.ctx, contacts, from, to, now, now)
		}
		if err != nil {
			return fmt.Errorf("seed contacts: %w", err)
		}
		if _, err := tx.Exec(e.ctx, enroll, due, now, now, maxID); err != nil {
			return fmt.Errorf("seed enrollments: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// A bulk load leaves the planner's statistics behind until autovacuum
	// catches up; a live database has them, so refresh them here. Only the
	// tables seeded: on Postgres a bare ANALYZE takes every schema of the
	// database, and waits behind any other session's open transaction.
	return s.InTx(e.ctx, func(tx *store.Tx) error {
		_, err := tx.Exec(e.ctx, `ANALYZE contacts`)
		if err == nil {
			_, err = tx.Exec(e.ctx, `ANALYZE enrollments`)
		}
		return err
	})
}
