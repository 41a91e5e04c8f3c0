package daemon

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

func TestReloadKeepsTheOldConfigWhenTheNewOneIsBroken(t *testing.T) {
	d, _, _, _ := startDaemon(t, store.DialectSQLite)
	old := d.Runtime()
	path := d.opts.ConfigPath
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(good), "delay: 1d", "delay: 1 day", 1)
	os.WriteFile(path, []byte(broken), 0o644)
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "followup.yaml:") {
		t.Fatalf("a broken config was accepted on reload: %v", err)
	}
	if d.Runtime() != old {
		t.Fatal("the running configuration changed after a refused reload")
	}
	changed := strings.Replace(string(good), "delay: 1d", "delay: 2d", 1)
	os.WriteFile(path, []byte(changed), 0o644)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := d.Runtime().Sequences["intro"].Steps[1].Delay.Duration; got != 48*time.Hour {
		t.Errorf("after a good reload step 2 waits %s, want 48h", got)
	}
}

// TestStopMidSendLeavesNoRowSending stops the daemon while an SMTP
// transaction is in flight: the send finishes and is recorded.
func TestStopMidSendLeavesNoRowSending(t *testing.T) {
	d, sink, _, _ := startDaemon(t, store.DialectSQLite)
	entered, release := sink.BlockData()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, _, err := d.Store().UpsertContact(ctx, store.Contact{Email: "mid@example.org"}); err != nil {
		t.Fatal(err)
	}
	d.Wake()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("no send started")
	}
	stopped := make(chan struct{})
	go func() {
		d.Stop(10 * time.Second)
		close(stopped)
	}()
	time.Sleep(100 * time.Millisecond) // let Stop begin while DATA is held
	release()
	select {
	case <-stopped:
	case <-ctx.Done():
		t.Fatal("stop did not return")
	}
	s := storeAt(t, d)
	var sending, sent int
	s.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.Get(ctx, &sending, `SELECT COUNT(*) FROM messages_out WHERE status = 'sending'`); err != nil {
			return err
		}
		return tx.Get(ctx, &sent, `SELECT COUNT(*) FROM messages_out WHERE status = 'sent'`)
	})
	if sending != 0 || sent != 1 {
		t.Fatalf("after stopping mid-send: %d sending, %d sent; want 0 and 1", sending, sent)
	}
}

// storeAt reopens a stopped daemon's SQLite database.
func storeAt(t *testing.T, d *Daemon) *store.Store {
	t.Helper()
	c := d.Runtime().Config
	s, err := store.Open(context.Background(), store.Options{Driver: c.Database.Driver, DSN: c.DatabaseDSN()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A row a dead replica left sending becomes uncertain once
// database.sending_lease has passed — not before, since a live replica may
// still be in its SMTP transaction — while the survivors run.
func TestDeadReplicasSendBecomesUncertainAfterTheLease(t *testing.T) {
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skip(storetest.PostgresEnv + " not set: the sending lease only matters with replicas on Postgres")
	}
	const lease = 10 * time.Second
	d, sink, _, _ := startDaemonWith(t, store.DialectPostgres, func(yaml string) string {
		return strings.Replace(yaml, "database: {", "database: {sending_lease: 10s, ", 1)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := d.Store().UpsertContact(ctx, store.Contact{Email: "jo@example.org"}); err != nil {
		t.Fatal(err)
	}
	d.Wake()
	if _, err := sink.WaitForMessages(ctx, 1); err != nil {
		t.Fatalf("no message sent: %v", err)
	}
	s := storeAt(t, d)
	var id int64
	waitFor(t, "the message to be recorded sent", func() bool {
		return s.InTx(ctx, func(tx *store.Tx) error {
			return tx.Get(ctx, &id, `SELECT id FROM messages_out WHERE status = 'sent'`)
		}) == nil
	})
	// As a replica killed mid-send leaves it.
	claimed := time.Now()
	if err := s.InTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE messages_out SET status = 'sending', updated_at = ? WHERE id = ?`, claimed.UTC(), id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	status := func() string {
		var st string
		if err := s.InTx(ctx, func(tx *store.Tx) error {
			return tx.Get(ctx, &st, `SELECT status FROM messages_out WHERE id = ?`, id)
		}); err != nil {
			t.Fatal(err)
		}
		return st
	}
	for {
		st := status()
		if st == store.MessageUncertain {
			break
		}
		if st != store.MessageSending {
			t.Fatalf("row became %s", st)
		}
		if time.Since(claimed) > lease+lease/3+5*time.Second {
			t.Fatalf("still sending %s after a dead replica left it (lease %s)", time.Since(claimed).Round(time.Second), lease)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if took := time.Since(claimed); took < lease {
		t.Fatalf("made uncertain after %s, within the lease of %s", took.Round(time.Millisecond), lease)
	}
}
