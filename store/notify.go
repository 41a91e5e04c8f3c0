package store

import (
	"context"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// wakeChannel is where Postgres announces new work (see the
// followupd_wake trigger).
const wakeChannel = "followupd_wake"

// ListenForWork calls wake whenever any process commits new enrollments or
// events, until ctx ends. On SQLite, where one process does all the work and
// wakes itself, it just waits for ctx.
func (s *Store) ListenForWork(ctx context.Context, wake func()) error {
	if s.dialect != DialectPostgres {
		<-ctx.Done()
		return nil
	}
	l := pq.NewListener(s.opts.DSN, time.Second, time.Minute, nil)
	defer l.Close()
	if err := l.Listen(wakeChannel); err != nil {
		return fmt.Errorf("store: unable to listen for new work: %w", err)
	}
	ping := time.NewTicker(time.Minute)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.Notify:
			// nil after a reconnect, when notifications may have been
			// missed: wake then too.
			wake()
		case <-ping.C:
			go func() { _ = l.Ping() }()
		}
	}
}
