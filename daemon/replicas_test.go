package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/followupd/followupd/inbox"
	"github.com/followupd/followupd/inbox/imaptest"
	"github.com/followupd/followupd/outbox"
	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

// TestReplicasTakeOverTheMailbox runs two replicas on one Postgres database
// and one mailbox: only the lease holder watches it; when the holder goes,
// the other replica's watcher processes the next reply.
func TestReplicasTakeOverTheMailbox(t *testing.T) {
	o := storetest.Fresh(t, store.DialectPostgres)
	sink := smtptest.Start(t)
	imap := imaptest.Start(t)
	hooks := newHookSink(t)
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "templates"), 0o755)
	os.WriteFile(filepath.Join(dir, "templates", "one.md"), []byte("---\nsubject: Hello\n---\nShall we talk?\n"), 0o644)
	cfg := filepath.Join(dir, "followup.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(runConfig, "postgres", o.DSN, sink.Host(), sink.Port(), imap.Host, imap.Port, imap.Username, imap.Password, hooks.URL)), 0o644)
	start := func() *Daemon {
		d, err := New(context.Background(), Options{
			ConfigPath: cfg, Migrate: true, LogOutput: io.Discard,
			SchedulerInterval: 50 * time.Millisecond, LeaseInterval: 50 * time.Millisecond,
			OutboxOptions: func(o *outbox.Options) { o.PollInterval = 50 * time.Millisecond },
			InboxOptions:  func(o *inbox.Options) { o.BackoffMin, o.BackoffMax = 10*time.Millisecond, 100*time.Millisecond },
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := start()
	b := start()
	defer b.Stop(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watching := func(d *Daemon) bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.watchers) == 1
	}
	waitFor(t, "one replica to watch the mailbox", func() bool { return watching(a) || watching(b) })
	if watching(a) && watching(b) {
		t.Fatal("both replicas watch the same mailbox")
	}
	holder, other := a, b
	if watching(b) {
		holder, other = b, a
	}
	for i, email := range []string{"one@example.org", "two@example.org"} {
		if _, _, err := a.Store().UpsertContact(ctx, store.Contact{Email: email}); err != nil {
			t.Fatal(err)
		}
		a.Wake()
		msgs, err := sink.WaitForMessages(ctx, i+1)
		if err != nil {
			t.Fatalf("step 1 for %s not sent: %v", email, err)
		}
		if i == 1 {
			// The holder goes away; the other replica must take over.
			holder.Stop(10 * time.Second)
			waitFor(t, "the other replica to take the mailbox over", func() bool { return watching(other) })
		}
		m := msgs[i]
		imap.Deliver("INBOX", []byte("From: <"+email+">\r\nTo: ann@example.com\r\nSubject: Re: Hello\r\nMessage-ID: <r"+fmt.Sprint(i)+"@example.org>\r\n"+
			"In-Reply-To: <"+m.MessageID+">\r\nDate: "+time.Now().Format(time.RFC1123Z)+"\r\n\r\nYes, let's talk.\r\n"))
		waitFor(t, "the reply of "+email+" to be processed", func() bool {
			c, err := other.Store().ContactByEmail(ctx, email)
			return err == nil && c.Stage == "prospect"
		})
	}
	var n int
	other.Store().InTx(ctx, func(tx *store.Tx) error {
		return tx.Get(ctx, &n, `SELECT COUNT(*) FROM messages_in`)
	})
	if n != 2 {
		t.Errorf("messages_in has %d rows, want each reply once", n)
	}
}
