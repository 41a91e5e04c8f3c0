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
}

func (r *runner) get(ctx context.Context, dest any, query string, args ...any) error {
	return sqlx.GetContext(ctx, r.x, dest, query, args...)
}

func (r *runner) selectRows(ctx context.Context, dest any, query string, args ...any) error {
	return sqlx.SelectContext(ctx, r.x, dest, query, args...)
}

func (r *runner) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return r.x.ExecContext(ctx, query, args...)
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
