package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
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
	if err := conn.QueryRowContext(ctx, `SELECT `+leaseKey+` FROM (SELECT $1::text AS lease_name) AS l`, name).Scan(&key); err != nil {
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
	// The lease's connection carries the replica's name, which is how
	// LeaseHolders (and pg_stat_activity) tell who holds it.
	if _, err := conn.ExecContext(ctx, `SELECT set_config('application_name', $1, false)`, "followupd "+s.replicaName()); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
		return nil, false, fmt.Errorf("store: unable to take lease %s: %w", name, err)
	}
	return &Lease{conn: conn, key: key, name: name}, true, nil
}

func (s *Store) replicaName() string {
	if s.opts.Replica != "" {
		return s.opts.Replica
	}
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(os.Getpid())
}

// leaseKey is the advisory-lock key of the lease named by the column
// lease_name, one expression for TryLease and LeaseHolders alike.
const leaseKey = `hashtextextended('followupd-lease:' || current_schema() || ':' || lease_name, 0)`

// LeaseHolder is who holds a lease.
type LeaseHolder struct {
	Name    string `db:"name" json:"name"`
	Replica string `db:"replica" json:"replica"`
	Client  string `db:"client" json:"client,omitempty"`
	// ConnectedSince is when the holder's lease connection was opened.
	ConnectedSince time.Time `db:"since" json:"connected_since"`
}

// LeaseHolders returns the holder of each named lease that is held (on
// Postgres; SQLite has one process and no other holder to show).
func (s *Store) LeaseHolders(ctx context.Context, names []string) ([]LeaseHolder, error) {
	if s.dialect != DialectPostgres || len(names) == 0 {
		return nil, nil
	}
	// A bigint advisory lock shows in pg_locks as classid (high 32 bits)
	// and objid (low 32 bits) with objsubid 1.
	const q = `WITH k AS (
		SELECT lease_name AS name, ` + leaseKey + ` AS key
		FROM unnest($1::text[]) AS l(lease_name))
	SELECT k.name, regexp_replace(a.application_name, '^followupd ', '') AS replica,
		COALESCE(host(a.client_addr), '') AS client, a.backend_start AS since
	FROM k
	JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND l.classid = ((k.key >> 32) & 4294967295)::oid AND l.objid = (k.key & 4294967295)::oid
	JOIN pg_stat_activity a ON a.pid = l.pid
	ORDER BY k.name`
	var out []LeaseHolder
	if err := sqlx.SelectContext(ctx, s.db, &out, q, pq.Array(names)); err != nil {
		return nil, fmt.Errorf("store: unable to list lease holders: %w", err)
	}
	return out, nil
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
