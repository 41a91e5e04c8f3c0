package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
)

// Lease is an exclusive right held by one process, such as watching one
// mailbox. On Postgres it is a session-level advisory lock on a connection
// of its own: when the holder dies its connection closes and the lock is
// free for another replica. On SQLite one process owns the file, so every
// lease is granted.
type Lease struct {
	conn *sql.Conn
	key  int64
	name string
}

// TryLease takes the named lease if no other process holds it; ok is false
// when another does.
func (s *Store) TryLease(ctx context.Context, name string) (l *Lease, ok bool, err error) {
	if s.dialect != DialectPostgres {
		return &Lease{name: name}, true, nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("store: unable to get a connection for lease %s: %w", name, err)
	}
	// Advisory locks are per server database, not per schema: the schema
	// goes into the key so that followupd instances (and test runs) in
	// other schemas of the same database never block each other.
	var key int64
	if err := conn.QueryRowContext(ctx, `SELECT hashtextextended('followupd-lease:' || current_schema() || ':' || $1, 0)`, name).Scan(&key); err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("store: unable to take lease %s: %w", name, err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("store: unable to take lease %s: %w", name, err)
	}
	if !ok {
		conn.Close()
		return nil, false, nil
	}
	return &Lease{conn: conn, key: key, name: name}, true, nil
}

// Alive checks that the lease's connection, and so the lock, still stands.
func (l *Lease) Alive(ctx context.Context) error {
	if l.conn == nil {
		return nil
	}
	if err := l.conn.PingContext(ctx); err != nil {
		return fmt.Errorf("store: lease %s lost: %w", l.name, err)
	}
	return nil
}

// Release gives the lease up.
func (l *Lease) Release() error {
	if l == nil || l.conn == nil {
		return nil
	}
	_, err := l.conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, l.key)
	if err != nil {
		// Never hand a connection that may still hold the lock back to the
		// pool: make database/sql discard it.
		_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	cerr := l.conn.Close()
	l.conn = nil
	if err != nil {
		return fmt.Errorf("store: unable to release lease %s: %w", l.name, err)
	}
	return cerr
}
