package store

import (
	"context"
	"testing"
)

func TestLeaseIsExclusiveAndFreedWhenTheHolderGoes(t *testing.T) {
	forEachDB(t, func(t *testing.T, db testDB) {
		o := db.fresh(t)
		a, b := openT(t, o), openT(t, o)
		ctx := context.Background()
		la, ok, err := a.TryLease(ctx, "mailbox:sales")
		if err != nil || !ok {
			t.Fatalf("first lease: ok=%v err=%v", ok, err)
		}
		if db.dialect == DialectSQLite {
			return // one process owns an SQLite file: leases are always granted
		}
		if _, ok, err := b.TryLease(ctx, "mailbox:sales"); err != nil || ok {
			t.Fatalf("second holder got the lease: ok=%v err=%v", ok, err)
		}
		if _, ok, _ := b.TryLease(ctx, "mailbox:support"); !ok {
			t.Fatal("another mailbox's lease was refused")
		}
		// The holder dies: its connection goes and the lease is free.
		var pid int
		if err := la.conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if _, err := b.db.ExecContext(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
		if err := la.Alive(ctx); err == nil {
			t.Error("Alive reports a lease whose connection was killed")
		}
		lb, ok, err := b.TryLease(ctx, "mailbox:sales")
		if err != nil || !ok {
			t.Fatalf("lease not taken over after the holder closed: ok=%v err=%v", ok, err)
		}
		if err := lb.Alive(ctx); err != nil {
			t.Fatal(err)
		}
		if err := lb.Release(); err != nil {
			t.Fatal(err)
		}
	})
}

// followupd status shows which replica holds which mailbox.
func TestLeaseHoldersNameTheReplica(t *testing.T) {
	forEachDB(t, func(t *testing.T, db testDB) {
		if db.dialect == DialectSQLite {
			t.Skip("SQLite has one process: there is no other holder to show (the Postgres subtest covers it)")
		}
		o := db.fresh(t)
		oa := o
		oa.Replica = "replica-a"
		a, b := openT(t, oa), openT(t, o)
		ctx := context.Background()
		names := []string{"mailbox:sales", "mailbox:support"}
		if got, err := b.LeaseHolders(ctx, names); err != nil || len(got) != 0 {
			t.Fatalf("before any lease: %+v, %v", got, err)
		}
		la, ok, err := a.TryLease(ctx, "mailbox:sales")
		if err != nil || !ok {
			t.Fatalf("lease: ok=%v err=%v", ok, err)
		}
		got, err := b.LeaseHolders(ctx, names)
		if err != nil || len(got) != 1 || got[0].Name != "mailbox:sales" || got[0].Replica != "replica-a" || got[0].ConnectedSince.IsZero() {
			t.Fatalf("holders = %+v, %v; want mailbox:sales held by replica-a", got, err)
		}
		// The same lease name in another schema (another followupd) is
		// not this one.
		other := db.fresh(t)
		c := openT(t, other)
		if got, err := c.LeaseHolders(ctx, names); err != nil || len(got) != 0 {
			t.Fatalf("another schema sees %+v, %v", got, err)
		}
		if err := la.Release(); err != nil {
			t.Fatal(err)
		}
		if got, err := b.LeaseHolders(ctx, names); err != nil || len(got) != 0 {
			t.Fatalf("after release: %+v, %v", got, err)
		}
	})
}
