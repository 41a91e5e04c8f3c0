package daemon

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/followupd/followupd/store"
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
