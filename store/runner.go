package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// runner carries out the store's operations on either the database or a
// transaction, so that each is written once and offered on Store and on Tx.
// Its queries are already rebound.
type runner struct {
	x       sqlx.ExtContext
	q       *queries
	dialect string
	now     func() time.Time // already in dbTime form
	// defaultStage is the stage of a contact created without one.
	defaultStage string
	// stmts caches prepared statements inside a transaction.
	stmts map[string]*sqlx.Stmt
	// once holds the queries run once, unprepared, in this transaction
	// (Postgres).
	once map[string]bool
}

func (r *runner) get(ctx context.Context, dest any, query string, args ...any) error {
	if st := r.prepared(ctx, query); st != nil {
		return st.GetContext(ctx, dest, args...)
	}
	return sqlx.GetContext(ctx, r.x, dest, query, args...)
}

func (r *runner) selectRows(ctx context.Context, dest any, query string, args ...any) error {
	if st := r.prepared(ctx, query); st != nil {
		return st.SelectContext(ctx, dest, args...)
	}
	return sqlx.SelectContext(ctx, r.x, dest, query, args...)
}

func (r *runner) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := r.prepared(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return r.x.ExecContext(ctx, query, args...)
}

// maxTxStmts bounds a transaction's statement cache: queries built for a
// varying number of rows must not pile up.
const maxTxStmts = 64

// prepared returns the transaction's prepared statement for query, making
// it on first use, or nil outside a transaction. A scheduler or import
// transaction runs the same few statements hundreds of times: parsing them
// once per transaction instead of once per call is most of SQLite's cost.
// Statements die with the transaction, so nothing needs a connection the
// transaction holds (SQLite has one).
//
// On Postgres (binary_parameters, see postgresDSN) an unprepared query is a
// single round trip and preparing adds one: a query is prepared only when
// the transaction runs it a second time, so that a short transaction (the
// outbox recording a send) pays no extra round trips and a long one (a
// scheduler pass) parses its statements once.
func (r *runner) prepared(ctx context.Context, query string) *sqlx.Stmt {
	tx, ok := r.x.(*sqlx.Tx)
	if !ok {
		return nil
	}
	if st, ok := r.stmts[query]; ok {
		return st
	}
	if r.dialect == DialectPostgres && !r.once[query] {
		if len(r.once) < maxTxStmts {
			if r.once == nil {
				r.once = map[string]bool{}
			}
			r.once[query] = true
		}
		return nil
	}
	if len(r.stmts) >= maxTxStmts {
		return nil
	}
	st, err := tx.PreparexContext(ctx, query)
	if err != nil {
		// Let the unprepared call report the error in its own words.
		return nil
	}
	if r.stmts == nil {
		r.stmts = map[string]*sqlx.Stmt{}
	}
	r.stmts[query] = st
	return st
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// isForeignKeyViolation lets operations that take a parent's id report a
// missing parent as ErrNotFound rather than as a constraint failure.
func isForeignKeyViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return pq.As(err, pqerror.ForeignKeyViolation) != nil
}

// noLimit stands for "no LIMIT": both databases accept the largest BIGINT,
// and a parameter keeps one query text for both cases.
const noLimit = int64(1<<63 - 1)

func limitArg(n int) int64 {
	if n <= 0 {
		return noLimit
	}
	return int64(n)
}
