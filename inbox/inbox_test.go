package inbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/inbox"
	"github.com/followupd/followupd/inbox/imaptest"
	"github.com/followupd/followupd/store"
)

// Guarantee 3: every message is handled exactly once, across idling,
// dropped connections, restarts and handler failures.
func TestGuarantee3_NoReplyMissedOrCountedTwice(t *testing.T) {
	forServersAndDBs(t, func(t *testing.T, start func(t *testing.T) mailServer, dialect string) {
		srv := start(t)
		s := openStore(t, dialect)
		rec := newRecorder()
		// m03 fails twice, then succeeds: it must be retried, not skipped,
		// and the messages after it wait for it.
		rec.fail = func(m inbox.Message, attempt int) error {
			if m.MessageID == "m03@example.org" && attempt <= 2 {
				return errBoom
			}
			return nil
		}
		next := 0
		deliver := func(n int) {
			for range n {
				next++
				srv.deliver(message(fmt.Sprintf("m%02d", next)))
			}
		}

		deliver(5) // before the first start
		w := newWatcher(t, srv, s, rec.handle, nil)
		if err := w.Start(bg); err != nil {
			t.Fatal(err)
		}
		waitRows(t, w, s, 5)
		deliver(5) // while idling
		waitRows(t, w, s, 10)
		srv.drop() // the connection dies mid-IDLE
		deliver(3)
		waitRows(t, w, s, 13)
		w.Stop()

		deliver(4) // while stopped
		w2 := newWatcher(t, srv, s, rec.handle, nil)
		if err := w2.Start(bg); err != nil {
			t.Fatal(err)
		}
		waitRows(t, w2, s, 17)
		deliver(3)
		waitRows(t, w2, s, 20)
		w2.Stop()

		got := rows(t, s)
		if len(got) != 20 {
			t.Fatalf("messages_in has %d rows, want 20: %+v", len(got), got)
		}
		ids := map[string]bool{}
		uids := map[[2]uint32]bool{}
		for _, r := range got {
			ids[r.MessageID] = true
			uids[[2]uint32{r.UIDValidity, r.UID}] = true
			if r.Kind != "reply" {
				t.Errorf("row %+v: kind %q, want reply", r, r.Kind)
			}
		}
		if len(ids) != 20 || len(uids) != 20 {
			t.Errorf("%d distinct Message-IDs and %d distinct UIDs, want 20 each", len(ids), len(uids))
		}
		rec.mu.Lock()
		for id, n := range rec.calls {
			if n != 1 {
				t.Errorf("%s handled %d times", id, n)
			}
		}
		if rec.fails["m03@example.org"] != 2 || rec.calls["m03@example.org"] != 1 {
			t.Errorf("m03: %d failures and %d successes, want 2 and 1", rec.fails["m03@example.org"], rec.calls["m03@example.org"])
		}
		rec.mu.Unlock()
		// Handled in UID order.
		var order []uint32
		for _, m := range rec.messages() {
			order = append(order, m.UID)
		}
		if !slices.IsSorted(order) {
			t.Errorf("handled out of UID order: %v", order)
		}
		cp, err := s.Checkpoint(bg, "sales", "INBOX")
		if all := srv.uids("INBOX"); err != nil || cp.LastUID != all[len(all)-1] || cp.UIDValidity != srv.uidValidity("INBOX") {
			t.Errorf("checkpoint %+v, %v; want the last UID of %v", cp, err, all)
		}
		// The database refuses a second row for the same message.
		err = s.InTx(bg, func(tx *store.Tx) error {
			_, err := tx.InsertMessageIn(bg, store.MessageIn{Account: "sales", Mailbox: "INBOX", UIDValidity: got[0].UIDValidity, UID: got[0].UID})
			return err
		})
		if !errorsIsDuplicate(err) {
			t.Errorf("second row for the same UID: %v; want ErrDuplicate", err)
		}
	})
}

// Guarantee 4: the watcher never changes the mailbox.
func TestGuarantee4_MailboxLeftAsItWas(t *testing.T) {
	forServers(t, func(t *testing.T, start func(t *testing.T) mailServer) {
		srv := start(t)
		s := openStore(t, "sqlite")
		for i := range 5 {
			srv.deliver(message(fmt.Sprintf("g4-%d", i)))
		}
		before := srv.uids("INBOX")
		rec := newRecorder()
		w := newWatcher(t, srv, s, rec.handle, nil)
		if n, err := w.RunOnce(bg); err != nil || n != 5 {
			t.Fatalf("RunOnce = %d, %v; want 5", n, err)
		}
		w.Stop()
		if err := w.Start(bg); err != nil {
			t.Fatal(err)
		}
		srv.deliver(message("g4-idle"))
		waitRows(t, w, s, 6)
		w.Stop()

		after := srv.uids("INBOX")
		if len(after) != 6 || !slices.Equal(after[:5], before) {
			t.Errorf("UIDs before %v, after %v: messages were moved or deleted", before, after)
		}
		if n := srv.seen("INBOX"); n != 0 {
			t.Errorf("%d messages have \\Seen, want 0", n)
		}
		for _, m := range rec.messages() {
			if slices.Contains(m.Flags, `\Seen`) {
				t.Errorf("uid %d was fetched with \\Seen: %v", m.UID, m.Flags)
			}
		}
		if ms, ok := srv.(memServer); ok {
			cmds := ms.Commands()
			for _, c := range cmds {
				verb := strings.ToUpper(c)
				for _, bad := range []string{"SELECT", "STORE", "COPY", "MOVE", "EXPUNGE", "DELETE", "CLOSE", "APPEND", "UID STORE", "UID COPY", "UID MOVE", "UID EXPUNGE"} {
					if verb == bad || strings.HasPrefix(verb, bad+" ") {
						t.Errorf("the watcher sent %q", c)
					}
				}
				if strings.Contains(verb, "FETCH") && strings.Contains(verb, "BODY[") {
					t.Errorf("the watcher fetched without PEEK: %q", c)
				}
			}
			if !slices.ContainsFunc(cmds, func(c string) bool { return strings.HasPrefix(c, "EXAMINE ") }) ||
				!slices.ContainsFunc(cmds, func(c string) bool { return strings.Contains(c, "BODY.PEEK[]") }) {
				t.Errorf("no EXAMINE or BODY.PEEK in %q", cmds)
			}
		}
	})
}

func TestReplyWhileIdlingIsHandled(t *testing.T) {
	forServers(t, func(t *testing.T, start func(t *testing.T) mailServer) {
		srv := start(t)
		s := openStore(t, "sqlite")
		rec := newRecorder()
		// A long poll and IDLE refresh: only the push can bring the reply
		// in within the deadline.
		w := newWatcher(t, srv, s, rec.handle, func(im *config.IMAP, o *inbox.Options) {
			o.PollInterval = time.Hour
			o.IdleRefresh = time.Hour
		})
		srv.deliver(message("before"))
		if err := w.Start(bg); err != nil {
			t.Fatal(err)
		}
		waitRows(t, w, s, 1)
		t0 := time.Now()
		srv.deliver(message("reply"))
		got := waitRows(t, w, s, 2)
		t.Logf("reply handled %v after delivery", time.Since(t0).Round(time.Millisecond))
		if got[1].MessageID != "reply@example.org" {
			t.Errorf("rows %+v", got)
		}
		if !w.Connected() {
			t.Error("Connected() = false while idling")
		}
	})
}

func TestUIDValidityChangeRescansWithoutDuplicates(t *testing.T) {
	forServersAndDBs(t, func(t *testing.T, start func(t *testing.T) mailServer, dialect string) {
		srv := start(t)
		s := openStore(t, dialect)
		rec := newRecorder()
		w := newWatcher(t, srv, s, rec.handle, nil)
		for i := range 3 {
			srv.deliver(message(fmt.Sprintf("uv-%d", i)))
		}
		srv.deliver([]byte("From: carol@example.org\r\nSubject: no id\r\n\r\nA message without a Message-ID.\r\n"))
		if n, err := w.RunOnce(bg); err != nil || n != 4 {
			t.Fatalf("RunOnce = %d, %v; want 4", n, err)
		}
		old := srv.uidValidity("INBOX")
		srv.changeUIDValidity("INBOX")
		uv := srv.uidValidity("INBOX")
		if uv == old {
			t.Fatalf("UIDVALIDITY still %d", uv)
		}
		srv.deliver(message("uv-new"))
		n, err := w.RunOnce(bg)
		if err != nil {
			t.Fatalf("RunOnce after the change: %v", err)
		}
		// The new message, and the one without a Message-ID, which cannot
		// be recognised (handled again under the new UIDVALIDITY).
		if n != 2 {
			t.Errorf("RunOnce after the change processed %d, want 2", n)
		}
		got := rows(t, s)
		count := map[string]int{}
		for _, r := range got {
			count[r.MessageID]++
		}
		for _, id := range []string{"uv-0@example.org", "uv-1@example.org", "uv-2@example.org", "uv-new@example.org"} {
			if count[id] != 1 {
				t.Errorf("%s stored %d times, want once; rows %+v", id, count[id], got)
			}
		}
		if count[""] != 2 {
			t.Errorf("the message without Message-ID stored %d times, want 2 (once per UIDVALIDITY)", count[""])
		}
		cp, err := s.Checkpoint(bg, "sales", "INBOX")
		if err != nil || cp.UIDValidity != uv {
			t.Errorf("checkpoint %+v, %v; want UIDVALIDITY %d", cp, err, uv)
		}
		// And it goes on from there.
		srv.deliver(message("uv-later"))
		if n, err := w.RunOnce(bg); err != nil || n != 1 {
			t.Errorf("RunOnce = %d, %v; want 1", n, err)
		}
	})
}

func TestLookbackOnFirstStart(t *testing.T) {
	forServers(t, func(t *testing.T, start func(t *testing.T) mailServer) {
		srv := start(t)
		s := openStore(t, "sqlite")
		now := time.Now()
		srv.deliverAt("INBOX", message("old-1"), now.AddDate(0, 0, -40))
		srv.deliverAt("INBOX", message("recent"), now.AddDate(0, 0, -10))
		srv.deliverAt("INBOX", message("old-2"), now.AddDate(0, 0, -31))
		srv.deliver(message("today"))
		rec := newRecorder()
		w := newWatcher(t, srv, s, rec.handle, nil) // lookback 30 days
		if n, err := w.RunOnce(bg); err != nil || n != 2 {
			t.Fatalf("RunOnce = %d, %v; want 2", n, err)
		}
		var ids []string
		for _, r := range rows(t, s) {
			ids = append(ids, r.MessageID)
		}
		if !slices.Equal(ids, []string{"recent@example.org", "today@example.org"}) {
			t.Errorf("handled %v, want recent and today", ids)
		}
		// The checkpoint is past the old messages: only new mail follows.
		srv.deliver(message("new"))
		if n, err := w.RunOnce(bg); err != nil || n != 1 {
			t.Errorf("second RunOnce = %d, %v; want 1", n, err)
		}
		if n, err := w.RunOnce(bg); err != nil || n != 0 {
			t.Errorf("third RunOnce = %d, %v; want 0", n, err)
		}
	})
}

func TestEmptyMailboxThenMail(t *testing.T) {
	forServers(t, func(t *testing.T, start func(t *testing.T) mailServer) {
		srv := start(t)
		s := openStore(t, "sqlite")
		w := newWatcher(t, srv, s, newRecorder().handle, nil)
		if n, err := w.RunOnce(bg); err != nil || n != 0 {
			t.Fatalf("RunOnce on an empty mailbox = %d, %v", n, err)
		}
		if cp, err := s.Checkpoint(bg, "sales", "INBOX"); err != nil || cp.LastUID != 0 || cp.UIDValidity == 0 {
			t.Errorf("checkpoint of an empty mailbox = %+v, %v", cp, err)
		}
		srv.deliver(message("first"))
		if n, err := w.RunOnce(bg); err != nil || n != 1 {
			t.Errorf("RunOnce = %d, %v; want 1", n, err)
		}
	})
}

func TestSizeCapTruncates(t *testing.T) {
	forServers(t, func(t *testing.T, start func(t *testing.T) mailServer) {
		srv := start(t)
		s := openStore(t, "sqlite")
		const limit = 64 << 10
		var big bytes.Buffer
		big.Write(message("big"))
		line := strings.Repeat("x", 76) + "\r\n"
		for big.Len() < 2<<20 {
			big.WriteString(line)
		}
		srv.deliver(big.Bytes())
		srv.deliver(message("small"))
		rec := newRecorder()
		w := newWatcher(t, srv, s, rec.handle, func(im *config.IMAP, o *inbox.Options) {
			im.MaxMessageBytes = limit
		})
		if n, err := w.RunOnce(bg); err != nil || n != 2 {
			t.Fatalf("RunOnce = %d, %v; want 2", n, err)
		}
		msgs := rec.messages()
		if m := msgs[0]; !m.Truncated || len(m.Raw) > limit || len(m.Raw) < limit/2 || m.Size < 2<<20 || m.MessageID != "big@example.org" {
			t.Errorf("big message: truncated %v, %d bytes, size %d, id %q; want truncated, at most %d bytes",
				m.Truncated, len(m.Raw), m.Size, m.MessageID, limit)
		}
		if m := msgs[1]; m.Truncated || !bytes.Contains(m.Raw, []byte("let's talk (small)")) {
			t.Errorf("small message: truncated %v, raw %q", m.Truncated, m.Raw)
		}
	})
}

func TestPollsWithoutIdle(t *testing.T) {
	srv := imaptest.StartWith(t, imaptest.Options{NoIdle: true})
	s := openStore(t, "sqlite")
	w := newWatcher(t, memServer{srv}, s, newRecorder().handle, func(im *config.IMAP, o *inbox.Options) {
		o.PollInterval = 50 * time.Millisecond
	})
	if err := w.Start(bg); err != nil {
		t.Fatal(err)
	}
	srv.Deliver("INBOX", message("p1"))
	waitRows(t, w, s, 1)
	srv.Deliver("INBOX", message("p2"))
	waitRows(t, w, s, 2)
	w.Stop()
	for _, c := range srv.Commands() {
		if strings.EqualFold(c, "IDLE") {
			t.Errorf("IDLE sent to a server without the capability")
		}
	}
}

func TestIdlesOnInboxAndPollsOtherFolders(t *testing.T) {
	srv := imaptest.Start(t)
	srv.CreateMailbox("Replies")
	s := openStore(t, "sqlite")
	w := newWatcher(t, memServer{srv}, s, newRecorder().handle, func(im *config.IMAP, o *inbox.Options) {
		im.Folders = []string{"Replies", "INBOX"}
		o.PollInterval = 50 * time.Millisecond
	})
	if err := w.Start(bg); err != nil {
		t.Fatal(err)
	}
	srv.Deliver("Replies", message("r1"))
	srv.Deliver("INBOX", message("i1"))
	waitRows(t, w, s, 2)
	srv.Deliver("Replies", message("r2"))
	srv.Deliver("INBOX", message("i2"))
	got := waitRows(t, w, s, 4)
	w.Stop()
	perBox := map[string]int{}
	for _, r := range got {
		perBox[r.Mailbox]++
	}
	if perBox["INBOX"] != 2 || perBox["Replies"] != 2 {
		t.Errorf("rows per mailbox %v", perBox)
	}
	cmds := strings.Join(srv.Commands(), "\n")
	if !strings.Contains(cmds, "EXAMINE INBOX\nIDLE") && !strings.Contains(cmds, "IDLE") {
		t.Errorf("never idled: %s", cmds)
	}
}

func TestPoisonMessageIsRecordedAndSkipped(t *testing.T) {
	for _, mode := range []string{"error", "panic"} {
		t.Run(mode, func(t *testing.T) {
			srv := imaptest.Start(t)
			s := openStore(t, "sqlite")
			rec := newRecorder()
			rec.fail = func(m inbox.Message, attempt int) error {
				if m.MessageID != "poison@example.org" {
					return nil
				}
				if mode == "panic" {
					panic("cannot parse")
				}
				return fmt.Errorf("cannot parse attempt %d", attempt)
			}
			srv.Deliver("INBOX", message("ok-1"))
			srv.Deliver("INBOX", message("poison"))
			srv.Deliver("INBOX", message("ok-2"))
			w := newWatcher(t, memServer{srv}, s, rec.handle, func(im *config.IMAP, o *inbox.Options) {
				o.MaxFailures = 3
			})
			for i := 1; i <= 2; i++ {
				n, err := w.RunOnce(bg)
				wantN := 0
				if i == 1 {
					wantN = 1 // ok-1, then stuck on the poison
				}
				if err == nil || n != wantN {
					t.Fatalf("RunOnce %d = %d, %v; want %d and the handler's error", i, n, err, wantN)
				}
			}
			if got := rows(t, s); len(got) != 1 {
				t.Fatalf("rows after 2 failures: %+v", got)
			}
			if n, err := w.RunOnce(bg); err != nil || n != 2 {
				t.Fatalf("third RunOnce = %d, %v; want the poison recorded and ok-2 handled", n, err)
			}
			got := rows(t, s)
			if len(got) != 3 || got[1].MessageID != "poison@example.org" || got[1].Kind != inbox.KindError ||
				!strings.Contains(got[1].Excerpt, "cannot parse") || got[2].MessageID != "ok-2@example.org" {
				t.Errorf("rows %+v", got)
			}
		})
	}
}

func TestHandlerMayLeaveTheRowToTheWatcher(t *testing.T) {
	srv := imaptest.Start(t)
	s := openStore(t, "sqlite")
	var calls atomic.Int32
	w := newWatcher(t, memServer{srv}, s, func(ctx context.Context, tx *store.Tx, m inbox.Message) error {
		calls.Add(1)
		return nil // stores nothing
	}, nil)
	// A Latin-1 encoded subject is decoded (go-message's charsets).
	srv.Deliver("INBOX", []byte("From: =?ISO-8859-1?Q?Ren=E9?= <rene@example.org>\r\n"+
		"Subject: =?ISO-8859-1?Q?R=E9ponse_=E0_votre_offre?=\r\nMessage-ID: <ignored@example.org>\r\n\r\nOui.\r\n"))
	if n, err := w.RunOnce(bg); err != nil || n != 1 {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	got := rows(t, s)
	if len(got) != 1 || got[0].Kind != inbox.KindIgnored || got[0].MessageID != "ignored@example.org" ||
		got[0].Subject != "Réponse à votre offre" || got[0].FromAddr != "rene@example.org" {
		t.Errorf("rows %+v", got)
	}
	// Lost checkpoint: the stored row still prevents a second call.
	err := s.InTx(bg, func(tx *store.Tx) error {
		_, err := tx.Exec(bg, `DELETE FROM imap_checkpoints`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.RunOnce(bg); err != nil || n != 0 || calls.Load() != 1 {
		t.Errorf("RunOnce after losing the checkpoint = %d, %v, %d calls; want 0 and 1 call", n, err, calls.Load())
	}
}

func errorsIsDuplicate(err error) bool { return errors.Is(err, store.ErrDuplicate) }

// Prepare's result for a message reaches the handler with that message.
func TestPrepareReachesTheHandler(t *testing.T) {
	forServers(t, func(t *testing.T, start func(t *testing.T) mailServer) {
		srv := start(t)
		s := openStore(t, "sqlite")
		for _, tag := range []string{"one", "two", "three"} {
			srv.deliver(message(tag))
		}
		rec := newRecorder()
		w := newWatcher(t, srv, s, rec.handle, func(im *config.IMAP, o *inbox.Options) {
			o.Prepare = func(m inbox.Message) any { return "prepared:" + m.MessageID }
		})
		if n, err := w.RunOnce(bg); err != nil || n != 3 {
			t.Fatalf("RunOnce = %d, %v; want 3", n, err)
		}
		for _, m := range rec.messages() {
			if want := "prepared:" + m.MessageID; m.Prepared != want {
				t.Errorf("message %s reached the handler with Prepared %v, want %q", m.MessageID, m.Prepared, want)
			}
		}
	})
}

// batcher is a BatchHandler over recorder: it records itself, as kind
// "batch", every message whose Message-ID does not name the handler, and
// the messages whose Message-ID says "late" only until the handler has
// seen a message that says "turn" (what a referral does to the lead's
// later replies). It leaves the messages whose Message-ID says "unstored"
// without a row, and says so. fail, when set, makes a method fail.
type batcher struct {
	rec     *recorder
	mu      sync.Mutex
	turned  bool
	simple  [][]uint32 // UIDs asked about, per call
	records [][]uint32 // UIDs recorded, per call
	fail    func(method string, call int) error
}

func (b *batcher) Simple(ctx context.Context, tx *store.Tx, msgs []inbox.Message) ([]bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var uids []uint32
	out := make([]bool, len(msgs))
	for i, m := range msgs {
		uids = append(uids, m.UID)
		out[i] = !strings.Contains(m.MessageID, "handler") && !(b.turned && strings.Contains(m.MessageID, "late"))
	}
	b.simple = append(b.simple, uids)
	if b.fail != nil {
		if err := b.fail("simple", len(b.simple)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (b *batcher) Record(ctx context.Context, tx *store.Tx, msgs []inbox.Message) ([]bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var uids []uint32
	var rows []store.MessageIn
	stored := make([]bool, len(msgs))
	for i, m := range msgs {
		uids = append(uids, m.UID)
		if strings.Contains(m.MessageID, "unstored") {
			continue
		}
		stored[i] = true
		rows = append(rows, store.MessageIn{Account: m.Account, Mailbox: m.Mailbox, UIDValidity: m.UIDValidity, UID: m.UID,
			MessageID: m.MessageID, Kind: "batch", ReceivedAt: m.InternalDate})
	}
	b.records = append(b.records, uids)
	if b.fail != nil {
		if err := b.fail("record", len(b.records)); err != nil {
			return nil, err
		}
	}
	if _, err := tx.InsertMessagesInOnce(ctx, rows); err != nil {
		return nil, err
	}
	return stored, nil
}

// handle is the recorder's handler, which also turns the batcher on the
// message that says so.
func (b *batcher) handle(ctx context.Context, tx *store.Tx, m inbox.Message) error {
	if err := b.rec.handle(ctx, tx, m); err != nil {
		return err
	}
	if strings.Contains(m.MessageID, "turn") {
		b.mu.Lock()
		b.turned = true
		b.mu.Unlock()
	}
	return nil
}

// A message Batch.Record says it left without a row gets the watcher's
// own KindIgnored row, as after a Handler that stored nothing: the rows
// are what deduplicates by Message-ID.
func TestBatchMayLeaveTheRowToTheWatcher(t *testing.T) {
	srv := imaptest.Start(t)
	s := openStore(t, "sqlite")
	tags := []string{"b1", "unstored-1", "b2", "unstored-1"}
	for _, tag := range tags {
		srv.Deliver("INBOX", message(tag))
	}
	b := &batcher{rec: newRecorder()}
	w := newWatcher(t, memServer{srv}, s, b.handle, func(im *config.IMAP, o *inbox.Options) { o.Batch = b })
	if n, err := w.RunOnce(bg); err != nil || n != 3 {
		t.Fatalf("RunOnce = %d, %v; want 3 (one duplicate)", n, err)
	}
	var kinds []string
	for _, r := range rows(t, s) {
		kinds = append(kinds, r.MessageID+":"+r.Kind)
	}
	slices.Sort(kinds)
	if want := "b1@example.org:batch b2@example.org:batch unstored-1@example.org:" + inbox.KindIgnored; strings.Join(kinds, " ") != want {
		t.Errorf("rows %v, want %s", kinds, want)
	}
}

// The watcher hands Batch the messages it may record set-based and Handler
// the others, in UID order: a duplicate Message-ID is recorded once, and
// after Handler ran Batch is asked again about the messages still waiting.
func TestBatchRecordsTheRestInOrder(t *testing.T) {
	forServersAndDBs(t, func(t *testing.T, start func(t *testing.T) mailServer, dialect string) {
		srv := start(t)
		s := openStore(t, dialect)
		tags := []string{"b1", "b2", "handler-turn", "b1", "late-1", "b3", "handler-2", "late-2", "b4"}
		for _, tag := range tags {
			srv.deliver(message(tag))
		}
		b := &batcher{rec: newRecorder()}
		w := newWatcher(t, srv, s, b.handle, func(im *config.IMAP, o *inbox.Options) { o.Batch = b })
		if n, err := w.RunOnce(bg); err != nil || n != len(tags)-1 {
			t.Fatalf("RunOnce = %d, %v; want %d (one duplicate)", n, err, len(tags)-1)
		}
		kinds := map[string]string{}
		for _, r := range rows(t, s) {
			if _, dup := kinds[r.MessageID]; dup {
				t.Errorf("%s recorded twice", r.MessageID)
			}
			kinds[r.MessageID] = r.Kind
		}
		for tag, want := range map[string]string{
			"b1": "batch", "b2": "batch", "b3": "batch", "b4": "batch",
			"handler-turn": "reply", "handler-2": "reply", "late-1": "reply", "late-2": "reply",
		} {
			if got := kinds[tag+"@example.org"]; got != want {
				t.Errorf("%s recorded as %q, want %q (all: %v)", tag, got, want, kinds)
			}
		}
		var order []uint32
		for _, m := range b.rec.messages() {
			order = append(order, m.UID)
		}
		if want := []uint32{3, 5, 7, 8}; !slices.Equal(order, want) {
			t.Errorf("Handler took UIDs %v, want %v", order, want)
		}
		// Asked about all, then again after each handler about those
		// still waiting (late-1 and late-2 turned after UID 3); b1 and b2
		// recorded before the first handler ran, b3 before the third, b4
		// at the end.
		wantSimple := [][]uint32{{1, 2, 3, 5, 6, 7, 8, 9}, {5, 6, 8, 9}, {6, 9}, {9}, {9}}
		if fmt.Sprint(b.simple) != fmt.Sprint(wantSimple) {
			t.Errorf("Simple asked about %v, want %v", b.simple, wantSimple)
		}
		if want := [][]uint32{{1, 2}, {6}, {9}}; fmt.Sprint(b.records) != fmt.Sprint(want) {
			t.Errorf("Record took %v, want %v", b.records, want)
		}
		cp, err := s.Checkpoint(bg, "sales", "INBOX")
		if all := srv.uids("INBOX"); err != nil || cp.LastUID != all[len(all)-1] {
			t.Errorf("checkpoint %+v, %v; want the last UID of %v", cp, err, all)
		}
	})
}

// When Batch fails or panics, the batch is done again with Handler for
// every message; when Handler fails, what follows its message waits for
// it, recorded neither by Batch nor by Handler.
func TestBatchFailuresLoseNothing(t *testing.T) {
	forServersAndDBs(t, func(t *testing.T, start func(t *testing.T) mailServer, dialect string) {
		for _, c := range []struct {
			name string
			fail func(b *batcher) func(string, int) error
		}{
			{"simple_fails", func(*batcher) func(string, int) error {
				return func(method string, call int) error {
					if method == "simple" {
						return errBoom
					}
					return nil
				}
			}},
			{"record_panics", func(*batcher) func(string, int) error {
				return func(method string, call int) error {
					if method == "record" {
						panic("cannot record")
					}
					return nil
				}
			}},
			{"second_record_fails", func(*batcher) func(string, int) error {
				return func(method string, call int) error {
					if method == "record" && call == 2 {
						return errBoom
					}
					return nil
				}
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				srv := start(t)
				s := openStore(t, dialect)
				tags := []string{"b1", "b2", "handler-1", "b3", "b4"}
				for _, tag := range tags {
					srv.deliver(message(tag))
				}
				b := &batcher{rec: newRecorder()}
				b.fail = c.fail(b)
				w := newWatcher(t, srv, s, b.handle, func(im *config.IMAP, o *inbox.Options) { o.Batch = b })
				if n, err := w.RunOnce(bg); err != nil || n != len(tags) {
					t.Fatalf("RunOnce = %d, %v; want %d", n, err, len(tags))
				}
				got := rows(t, s)
				if len(got) != len(tags) {
					t.Fatalf("rows %+v", got)
				}
				for i, r := range got {
					if r.MessageID != tags[i]+"@example.org" {
						t.Errorf("row %d is %s, want %s", i, r.MessageID, tags[i])
					}
					// Nothing Batch did survives its failure.
					if r.Kind != "reply" && c.name != "second_record_fails" {
						t.Errorf("row %+v: kind %q, want reply (Handler)", r, r.Kind)
					}
				}
				// Nothing but Handler ran for the failed batch before the
				// second attempt; handler-1 ran in both when Batch failed
				// after it.
				b.rec.mu.Lock()
				for id, n := range b.rec.calls {
					if want := 1; n != want && !(c.name == "second_record_fails" && id == "handler-1@example.org") {
						t.Errorf("%s handled %d times", id, n)
					}
				}
				b.rec.mu.Unlock()
				cp, err := s.Checkpoint(bg, "sales", "INBOX")
				if all := srv.uids("INBOX"); err != nil || cp.LastUID != all[len(all)-1] {
					t.Errorf("checkpoint %+v, %v; want the last UID of %v", cp, err, all)
				}
			})
		}

		t.Run("handler_fails", func(t *testing.T) {
			srv := start(t)
			s := openStore(t, dialect)
			for _, tag := range []string{"b1", "handler-1", "b2", "b3"} {
				srv.deliver(message(tag))
			}
			b := &batcher{rec: newRecorder()}
			b.rec.fail = func(m inbox.Message, attempt int) error {
				if strings.HasPrefix(m.MessageID, "handler") && attempt <= 4 {
					return errBoom
				}
				return nil
			}
			w := newWatcher(t, srv, s, b.handle, func(im *config.IMAP, o *inbox.Options) { o.Batch = b })
			if n, err := w.RunOnce(bg); err == nil || n != 1 {
				t.Fatalf("RunOnce = %d, %v; want b1 and the handler's error", n, err)
			}
			if got := rows(t, s); len(got) != 1 || got[0].MessageID != "b1@example.org" {
				t.Fatalf("rows after the failure: %+v; want b1 alone", got)
			}
			cp, err := s.Checkpoint(bg, "sales", "INBOX")
			if err != nil || cp.LastUID != srv.uids("INBOX")[0] {
				t.Errorf("checkpoint %+v, %v; want b1's UID", cp, err)
			}
			// Now the failing handler is the batch's first message: the
			// batch keeps nothing, not even a checkpoint.
			if n, err := w.RunOnce(bg); err == nil || n != 0 {
				t.Fatalf("second RunOnce = %d, %v; want the handler's error alone", n, err)
			}
			if got := rows(t, s); len(got) != 1 {
				t.Fatalf("rows after the second failure: %+v; want b1 alone", got)
			}
			cp, err = s.Checkpoint(bg, "sales", "INBOX")
			if err != nil || cp.LastUID != srv.uids("INBOX")[0] {
				t.Errorf("checkpoint %+v, %v; want b1's UID still", cp, err)
			}
			if n, err := w.RunOnce(bg); err != nil || n != 3 {
				t.Fatalf("third RunOnce = %d, %v; want 3", n, err)
			}
			var kinds []string
			for _, r := range rows(t, s) {
				kinds = append(kinds, r.MessageID+":"+r.Kind)
			}
			if want := "b1@example.org:batch handler-1@example.org:reply b2@example.org:batch b3@example.org:batch"; strings.Join(kinds, " ") != want {
				t.Errorf("rows %v, want %s", kinds, want)
			}
		})
	})
}

// A handler that fails early in a long read stops the read: the fetches
// ahead of it are bounded, not the rest of the mailbox.
func TestFailureStopsTheReadAhead(t *testing.T) {
	srv := imaptest.Start(t)
	s := openStore(t, "sqlite")
	for i := range 1000 {
		srv.Deliver("INBOX", message(fmt.Sprintf("r%03d", i)))
	}
	rec := newRecorder()
	rec.fail = func(m inbox.Message, attempt int) error {
		if m.MessageID == "r005@example.org" {
			return errBoom
		}
		return nil
	}
	w := newWatcher(t, memServer{srv}, s, rec.handle, func(im *config.IMAP, o *inbox.Options) { o.BatchSize = 5 })
	if n, err := w.RunOnce(bg); err == nil || n != 5 {
		t.Fatalf("RunOnce = %d, %v; want 5 and the handler's error", n, err)
	}
	fetches := 0
	for _, c := range srv.Commands() {
		if strings.Contains(strings.ToUpper(c), "FETCH") {
			fetches++
		}
	}
	// At most a transaction's worth (300 messages), the batches waiting
	// (8) and the one in flight: far fewer than the mailbox's 200.
	if fetches < 2 || fetches > 100 {
		t.Errorf("%d FETCH commands for a read that failed in its second batch", fetches)
	}
}
