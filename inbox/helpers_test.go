package inbox_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/inbox"
	"github.com/followupd/followupd/inbox/dovecottest"
	"github.com/followupd/followupd/inbox/imaptest"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var bg = context.Background()

// mailServer is what the tests need from either server.
type mailServer interface {
	imapConfig() *config.IMAP
	tlsConfig() *tls.Config
	// deliver puts a message in INBOX, received now.
	deliver(raw []byte)
	// deliverAt puts a message in a mailbox with an internal date.
	deliverAt(mailbox string, raw []byte, at time.Time)
	uids(mailbox string) []uint32
	seen(mailbox string) int
	uidValidity(mailbox string) uint32
	// drop ends the client connections (the client sees them close).
	drop()
	changeUIDValidity(mailbox string)
}

type memServer struct{ *imaptest.Server }

func (s memServer) imapConfig() *config.IMAP { return s.IMAP() }
func (s memServer) tlsConfig() *tls.Config   { return s.TLSConfig() }
func (s memServer) deliver(raw []byte)       { s.Deliver("INBOX", raw) }
func (s memServer) deliverAt(mb string, raw []byte, at time.Time) {
	s.DeliverAt(mb, raw, at)
}
func (s memServer) uids(mb string) []uint32          { return s.UIDs(mb) }
func (s memServer) seen(mb string) int               { return s.Seen(mb) }
func (s memServer) uidValidity(mb string) uint32     { return s.UIDValidity(mb) }
func (s memServer) drop()                            { s.DropConnections() }
func (s memServer) changeUIDValidity(mailbox string) { s.ChangeUIDValidity(mailbox) }

type dovecotServer struct{ *dovecottest.Dovecot }

func (s dovecotServer) imapConfig() *config.IMAP { return s.IMAP() }
func (s dovecotServer) tlsConfig() *tls.Config   { return nil }
func (s dovecotServer) deliver(raw []byte)       { s.Deliver(s.Username, raw) }
func (s dovecotServer) deliverAt(mb string, raw []byte, at time.Time) {
	s.Append(mb, raw, at)
}
func (s dovecotServer) uids(mb string) []uint32          { return s.UIDs(mb) }
func (s dovecotServer) seen(mb string) int               { return s.Seen(mb) }
func (s dovecotServer) uidValidity(mb string) uint32     { return s.UIDValidity(mb) }
func (s dovecotServer) drop()                            { s.DropConnections() }
func (s dovecotServer) changeUIDValidity(mailbox string) { s.ChangeUIDValidity(mailbox) }

// forServers runs fn once per server kind: the in-process server
// ("memory") and a real Dovecot ("dovecot", skipped when not installed).
func forServers(t *testing.T, fn func(t *testing.T, start func(t *testing.T) mailServer)) {
	t.Run("memory", func(t *testing.T) {
		fn(t, func(t *testing.T) mailServer { return memServer{imaptest.Start(t)} })
	})
	t.Run("dovecot", func(t *testing.T) {
		if !dovecottest.Available() {
			t.Skip(dovecottest.SkipMessage)
		}
		fn(t, func(t *testing.T) mailServer { return dovecotServer{dovecottest.Start(t)} })
	})
}

// forServersAndDBs runs fn per server kind and database dialect (Postgres
// only when FOLLOWUPD_TEST_POSTGRES is set).
func forServersAndDBs(t *testing.T, fn func(t *testing.T, start func(t *testing.T) mailServer, dialect string)) {
	forServers(t, func(t *testing.T, start func(t *testing.T) mailServer) {
		storetest.ForEach(t, func(t *testing.T, dialect string) {
			fn(t, start, dialect)
		})
	})
}

func openStore(t *testing.T, dialect string) *store.Store {
	return storetest.Open(t, storetest.Fresh(t, dialect))
}

// message builds a reply with a unique Message-ID.
func message(tag string) []byte {
	return fmt.Appendf(nil, "From: Bob <bob@example.org>\r\nTo: alice@example.test\r\n"+
		"Subject: Re: hello %[1]s\r\nMessage-ID: <%[1]s@example.org>\r\n"+
		"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\nYes, let's talk (%[1]s).\r\n", tag)
}

// recorder is a handler that stores each message in messages_in and
// remembers what it saw; fail, when set, makes it fail on a message.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int // successful calls per Message-ID (or uid)
	seen  []inbox.Message
	fails map[string]int // failed calls per Message-ID
	fail  func(m inbox.Message, attempt int) error
}

func newRecorder() *recorder {
	return &recorder{calls: map[string]int{}, fails: map[string]int{}}
}

func key(m inbox.Message) string {
	if m.MessageID != "" {
		return m.MessageID
	}
	return fmt.Sprintf("uid:%d/%d", m.UIDValidity, m.UID)
}

// handle stores the row first and fails afterwards, so that a failure that
// was not rolled back would make the retry a duplicate.
func (r *recorder) handle(ctx context.Context, tx *store.Tx, m inbox.Message) error {
	_, err := tx.InsertMessageIn(ctx, store.MessageIn{
		Account: m.Account, Mailbox: m.Mailbox, UIDValidity: m.UIDValidity, UID: m.UID,
		MessageID: m.MessageID, Kind: "reply", ReceivedAt: m.InternalDate,
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	fail := r.fail
	attempt := r.fails[key(m)] + 1
	r.mu.Unlock()
	if fail != nil {
		if err := fail(m, attempt); err != nil {
			r.mu.Lock()
			r.fails[key(m)]++
			r.mu.Unlock()
			return err
		}
	}
	r.mu.Lock()
	r.calls[key(m)]++
	r.seen = append(r.seen, m)
	r.mu.Unlock()
	return nil
}

func (r *recorder) messages() []inbox.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]inbox.Message(nil), r.seen...)
}

// row is a messages_in row as the tests read it.
type row struct {
	MessageID   string `db:"message_id"`
	Mailbox     string `db:"mailbox"`
	UIDValidity uint32 `db:"uidvalidity"`
	UID         uint32 `db:"uid"`
	Subject     string `db:"subject"`
	FromAddr    string `db:"from_addr"`
	Kind        string `db:"kind"`
	Excerpt     string `db:"excerpt"`
}

func rows(t *testing.T, s *store.Store) []row {
	t.Helper()
	var out []row
	err := s.InTx(bg, func(tx *store.Tx) error {
		return tx.Select(bg, &out, `SELECT message_id, mailbox, uidvalidity, uid, subject, from_addr, kind, excerpt
			FROM messages_in WHERE account = ? ORDER BY id`, "sales")
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func account(im *config.IMAP) config.Account {
	return config.Account{Name: "sales", FromAddress: "alice@example.test", IMAP: im}
}

// newWatcher makes a watcher with test-sized timeouts, stopped when the test
// ends.
func newWatcher(t *testing.T, srv mailServer, s *store.Store, h inbox.Handler, change func(*config.IMAP, *inbox.Options)) *inbox.Watcher {
	t.Helper()
	im := srv.imapConfig()
	o := inbox.Options{
		Store:          s,
		Handler:        h,
		Logger:         testLogger(t),
		BackoffMin:     10 * time.Millisecond,
		BackoffMax:     100 * time.Millisecond,
		CommandTimeout: 5 * time.Second,
		DialTimeout:    5 * time.Second,
		TLSConfig:      srv.tlsConfig(),
	}
	if change != nil {
		change(im, &o)
	}
	o.Account = account(im)
	w, err := inbox.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

// waitRows waits, on the watcher's signal, until messages_in holds n rows.
func waitRows(t *testing.T, w *inbox.Watcher, s *store.Store, n int) []row {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		got := rows(t, s)
		if len(got) >= n {
			return got
		}
		select {
		case <-w.Processed():
		case <-deadline.C:
			t.Fatalf("after 10s messages_in has %d rows, want %d: %+v", len(got), n, got)
		}
	}
}

// testLogger writes the watcher's log to the test log while the test runs.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() && os.Getenv("INBOX_TEST_LOG") == "" {
		return nil
	}
	lw := &testWriter{t: t}
	t.Cleanup(func() { lw.mu.Lock(); lw.done = true; lw.mu.Unlock() })
	return slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

var errBoom = errors.New("boom")
