package inbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/followupd/followupd/replies"
	"github.com/followupd/followupd/store"
)

// fetched is a Message plus the envelope fields the watcher needs when it
// records a failed message itself.
type fetched struct {
	Message
	from, subject string
}

// syncAll catches up every folder, the IDLE folder last.
func (w *Watcher) syncAll(ctx context.Context, c *conn) (int, error) {
	total := 0
	for _, folder := range w.folders {
		n, err := w.syncFolder(ctx, c, folder)
		total += n
		if err != nil {
			return total, fmt.Errorf("%s: %w", folder, err)
		}
	}
	return total, nil
}

// syncFolder reads the folder's new messages and processes them in UID
// order, each in its own transaction with the checkpoint.
func (w *Watcher) syncFolder(ctx context.Context, c *conn, folder string) (int, error) {
	sel, err := c.examine(ctx, folder)
	if err != nil {
		return 0, err
	}
	uv := sel.UIDValidity
	if uv == 0 {
		return 0, errors.New("inbox: the server sent no UIDVALIDITY")
	}
	account := w.o.Account.Name
	cp, err := w.o.Store.Checkpoint(ctx, account, folder)
	fresh := false
	switch {
	case errors.Is(err, store.ErrNotFound):
		fresh = true
		w.log.Info("first read of the folder: looking back", "mailbox", folder, "lookback", w.imap.Lookback.Std())
	case err != nil:
		return 0, &handlerError{err: err}
	case cp.UIDValidity != uv:
		fresh = true
		w.log.Warn("UIDVALIDITY changed: rescanning the lookback window, skipping messages already stored",
			"mailbox", folder, "old", cp.UIDValidity, "new", uv, "lookback", w.imap.Lookback.Std())
	}

	if !fresh {
		uids, err := c.searchUIDs(ctx, &imap.SearchCriteria{
			UID: []imap.UIDSet{{imap.UIDRange{Start: imap.UID(cp.LastUID + 1), Stop: 0}}},
		})
		if err != nil {
			return 0, err
		}
		// "last+1:*" always includes the highest UID, even when it is
		// not above last.
		uids = slices.DeleteFunc(uids, func(u uint32) bool { return u <= cp.LastUID })
		n, _, err := w.process(ctx, c, folder, uv, uids, time.Time{})
		return n, err
	}

	// First read, or a new UIDVALIDITY: the lookback window. SINCE is a
	// date in the server's zone; ask for a day more and compare the
	// internal dates exactly.
	since := w.o.Now().Add(-w.imap.Lookback.Std())
	uids, err := c.searchUIDs(ctx, &imap.SearchCriteria{Since: since.AddDate(0, 0, -1)})
	if err != nil {
		return 0, err
	}
	base := uint32(sel.UIDNext)
	if base > 0 {
		base--
	} else {
		// No UIDNEXT (an old server): take the highest UID there is.
		all, err := c.searchUIDs(ctx, &imap.SearchCriteria{})
		if err != nil {
			return 0, err
		}
		if len(all) > 0 {
			base = slices.Max(all)
		}
	}
	n, last, err := w.process(ctx, c, folder, uv, uids, since)
	if err != nil {
		return n, err
	}
	// Continue from UIDNEXT-1: what is older than the window stays unread.
	// An empty folder gets a checkpoint too, so that the next pass is not
	// a first read again.
	if last != 0 && last >= base {
		return n, nil
	}
	err = w.o.Store.InTx(ctx, func(tx *store.Tx) error {
		return tx.SaveCheckpoint(ctx, store.Checkpoint{Account: account, Mailbox: folder, UIDValidity: uv, LastUID: max(last, base)})
	})
	if err != nil {
		return n, &handlerError{err: err}
	}
	return n, nil
}

// searchUIDs runs UID SEARCH and returns the UIDs in ascending order.
func (c *conn) searchUIDs(ctx context.Context, criteria *imap.SearchCriteria) ([]uint32, error) {
	var data *imap.SearchData
	err := c.guard(ctx, func(func()) error {
		var err error
		data, err = c.client.UIDSearch(criteria, nil).Wait()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("inbox: UID SEARCH: %w", err)
	}
	set, ok := data.All.(imap.UIDSet)
	if !ok {
		return nil, nil
	}
	uids, ok := set.Nums()
	if !ok {
		return nil, errors.New("inbox: UID SEARCH answered a dynamic set")
	}
	out := make([]uint32, len(uids))
	for i, u := range uids {
		out[i] = uint32(u)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Read-ahead of process: how much the fetcher may hold beyond what is
// committed, and how many messages one transaction takes at most.
const (
	// aheadBytes bounds the bodies fetched and not yet committed: the
	// fetcher starts no FETCH while they hold more. With the batch in
	// flight (BatchSize keeps it under 32 MiB) they stay under 64 MiB,
	// as with the two or three batches of a read without read-ahead.
	aheadBytes = 32 << 20
	// aheadBatches bounds the fetched batches waiting to be committed.
	aheadBatches = 8
	// mergeMessages bounds a transaction that commits several fetched
	// batches at once: it takes no more once it holds that many
	// messages, so that it never holds the database long (SQLite has one
	// writer). Larger ones gained little in the ingest benchmark.
	mergeMessages = 300
)

// process fetches uids in batches and commits them in ascending order. With
// a non-zero since, messages whose internal date is older are skipped (the
// checkpoint still moves past them). It returns the number processed and
// the highest UID committed.
//
// Fetching, Prepare and committing overlap, each on goroutines of their
// own: the fetcher reads ahead (within aheadBytes), Prepare runs on each
// batch as it arrives, and the committer takes every batch that is ready
// into one transaction (up to mergeMessages). When the database is the
// slower side, its transactions grow and their fixed cost (begin, commit,
// the batch's lookups, the checkpoint: a round trip each on Postgres) is
// shared by more messages; when the server is, each batch is committed as
// soon as it is there.
func (w *Watcher) process(ctx context.Context, c *conn, folder string, uv uint32, uids []uint32, since time.Time) (n int, last uint32, err error) {
	type fetchResult struct {
		b   *fetchedBatch
		err error
	}
	results := make(chan fetchResult, aheadBatches)
	stop := make(chan struct{})
	var held atomic.Int64              // bytes fetched and not yet committed
	released := make(chan struct{}, 1) // the committer released some
	go func() {
		defer close(results)
		for len(uids) > 0 {
			select {
			case <-stop: // the committer gave up: fetch no more
				return
			default:
			}
			for held.Load() >= aheadBytes {
				select {
				case <-released:
				case <-stop:
					return
				}
			}
			part := uids[:min(len(uids), w.o.BatchSize)]
			uids = uids[len(part):]
			b, err := w.fetch(ctx, c, folder, uv, part)
			if b != nil {
				held.Add(b.bytes)
			}
			select {
			case results <- fetchResult{b, err}:
			case <-stop:
				b.wait()
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// Never leave with a fetch still using the connection, nor a Prepare
	// still running.
	defer func() {
		close(stop)
		for r := range results {
			r.b.wait()
		}
	}()
	tooOld := func(m fetched) bool {
		return !since.IsZero() && !m.InternalDate.IsZero() && m.InternalDate.Before(since)
	}
	for r := range results {
		if r.err != nil {
			return n, last, r.err
		}
		msgs := r.b.wait()
		bytes := r.b.bytes
		// Every batch that is ready joins this transaction; a failed
		// fetch is reported after it.
		var fetchErr error
	merge:
		for len(msgs) < mergeMessages {
			select {
			case r, ok := <-results:
				if !ok {
					break merge
				}
				if r.err != nil {
					fetchErr = r.err
					break merge
				}
				msgs = append(msgs, r.b.wait()...)
				bytes += r.b.bytes
			default:
				break merge
			}
		}
		for len(msgs) > 0 {
			if len(msgs) > 1 {
				done, kept, err := w.commitBatch(ctx, msgs, tooOld)
				if err != nil {
					return n, last, &handlerError{err: err}
				}
				n += done
				if kept > 0 {
					last = msgs[kept-1].UID
				}
				if msgs = msgs[kept:]; len(msgs) == 0 {
					break
				}
			}
			// One at a time: a single new message (IDLE), or the message
			// whose handler failed in the batch; when it is recorded as
			// poison, the rest of the batch is a batch again.
			m := msgs[0]
			done, err := w.commit(ctx, m, tooOld(m))
			n += done
			if err != nil {
				return n, last, err
			}
			last = m.UID
			msgs = msgs[1:]
		}
		held.Add(-bytes)
		signal(released)
		if fetchErr != nil {
			return n, last, fetchErr
		}
	}
	return n, last, nil
}

// How commitBatch takes each message of a batch.
const (
	viaHandler = iota // Handler, in a savepoint of its own
	viaSkip           // nothing to do: too old, stored, or its Message-ID seen
	viaBatch          // Options.Batch.Record, together with its neighbours
)

// batchFailed is an error of Options.Batch: the batch's transaction is
// done again without it.
type batchFailed struct{ err error }

func (e *batchFailed) Error() string { return e.err.Error() }
func (e *batchFailed) Unwrap() error { return e.err }

// commitBatch processes a fetched batch in one transaction that ends with
// the checkpoint at the last message kept: a first read of a large mailbox
// costs one commit per batch instead of one per message. Each message
// that needs Handler runs in a savepoint; the first whose handler fails is
// undone and ends the batch, and kept says how many messages (from the
// start) were committed, so that the caller takes the failing one through
// commit, which counts its failures.
//
// With Options.Batch, the messages it calls simple are recorded by
// Batch.Record in one go, each run of them just before the next message
// Handler takes (or the batch's end): every message meets the database as
// the messages before it left it, as if each had run alone, and a failing
// handler leaves nothing after it recorded. When Batch fails, the
// transaction is rolled back and done again with Handler for every
// message; Batch's statements run without savepoints of their own, which
// would cost two round trips each on Postgres for a failure that is rare.
func (w *Watcher) commitBatch(ctx context.Context, msgs []fetched, tooOld func(fetched) bool) (handled, kept int, err error) {
	batch := w.o.Batch != nil
	for {
		handled, kept, err = w.commitBatchTx(ctx, msgs, tooOld, batch)
		var bf *batchFailed
		if !batch || !errors.As(err, &bf) || ctx.Err() != nil {
			break
		}
		w.log.Warn("cannot handle a batch of messages at once: taking them one by one",
			"mailbox", msgs[0].Mailbox, "uidvalidity", msgs[0].UIDValidity, "from_uid", msgs[0].UID,
			"messages", len(msgs), "error", bf.err)
		batch = false
	}
	if err != nil {
		return 0, 0, err
	}
	for _, m := range msgs[:kept] {
		delete(w.failures, msgKey{m.Mailbox, m.UIDValidity, m.UID})
	}
	for range handled {
		w.committed()
	}
	return handled, kept, nil
}

// commitBatchTx is one attempt of commitBatch, with Options.Batch or
// without.
func (w *Watcher) commitBatchTx(ctx context.Context, msgs []fetched, tooOld func(fetched) bool, batch bool) (handled, kept int, err error) {
	account := w.o.Account.Name
	err = w.o.Store.InTx(ctx, func(tx *store.Tx) error {
		handled, kept = 0, len(msgs)
		uids := make([]uint32, len(msgs))
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			uids[i], ids[i] = m.UID, m.MessageID
		}
		// msgs share one mailbox and UIDVALIDITY (one read of a folder).
		// The checkpoint is saved at the batch's last message in the same
		// statement as the lookups (a round trip less on Postgres), and
		// saved again below when the batch ends before it.
		first, last := msgs[0], msgs[len(msgs)-1]
		stored, seen, err := tx.CheckpointAndSeen(ctx,
			store.Checkpoint{Account: account, Mailbox: first.Mailbox, UIDValidity: first.UIDValidity, LastUID: last.UID}, uids, ids)
		if err != nil {
			return err
		}
		// Which messages to skip is known before any runs: a Message-ID
		// is seen once an earlier message of the batch with it is handled,
		// and every message not skipped is handled unless the batch stops
		// there.
		how := make([]int, len(msgs))
		var todo []int
		for i, m := range msgs {
			if tooOld(m) || stored[m.UID] || (m.MessageID != "" && seen[m.MessageID]) {
				how[i] = viaSkip
				continue
			}
			if m.MessageID != "" {
				seen[m.MessageID] = true
			}
			todo = append(todo, i)
		}
		if batch && len(todo) > 0 {
			if err := w.triage(ctx, tx, msgs, todo, how); err != nil {
				return err
			}
		}
		var waiting []int // viaBatch messages not recorded yet
		for i := 0; i <= len(msgs); i++ {
			if i < len(msgs) && how[i] == viaSkip {
				continue
			}
			if i < len(msgs) && how[i] == viaBatch {
				waiting = append(waiting, i)
				continue
			}
			// Handler's turn, or the end: the waiting messages go first.
			if len(waiting) > 0 {
				if err := w.record(ctx, tx, msgs, waiting); err != nil {
					return err
				}
				handled += len(waiting)
				waiting = nil
			}
			if i == len(msgs) {
				break
			}
			m := msgs[i]
			err := tx.Savepoint(ctx, func() error { return w.handle(ctx, tx, m) })
			var hf *handlerFailed
			if errors.As(err, &hf) {
				kept = i
				break
			}
			if err != nil {
				return err
			}
			handled++
			// The handler may have made a message still waiting match
			// something (a referral's new contact writing later in the
			// batch): ask again about those.
			var rest []int
			for j := i + 1; j < len(msgs); j++ {
				if how[j] == viaBatch {
					rest = append(rest, j)
				}
			}
			if len(rest) > 0 {
				if err := w.triage(ctx, tx, msgs, rest, how); err != nil {
					return err
				}
			}
		}
		switch kept {
		case len(msgs):
			return nil
		case 0:
			// Nothing to keep, not even the checkpoint saved above.
			return errNothingKept
		}
		end := msgs[kept-1]
		return tx.SaveCheckpoint(ctx, store.Checkpoint{Account: account, Mailbox: end.Mailbox, UIDValidity: end.UIDValidity, LastUID: end.UID})
	})
	if errors.Is(err, errNothingKept) {
		return 0, 0, nil
	}
	return handled, kept, err
}

// errNothingKept rolls back a batch's transaction whose first message's
// handler failed.
var errNothingKept = errors.New("inbox: no message of the batch kept")

// triage asks Options.Batch which of msgs[idx] it records itself
// (viaBatch); the others go to Handler.
func (w *Watcher) triage(ctx context.Context, tx *store.Tx, msgs []fetched, idx []int, how []int) error {
	ms := messagesAt(msgs, idx)
	var simple []bool
	err := callBatch(func() (err error) {
		simple, err = w.o.Batch.Simple(ctx, tx, ms)
		if err == nil && len(simple) != len(ms) {
			err = fmt.Errorf("inbox: Batch.Simple answered for %d of %d messages", len(simple), len(ms))
		}
		return err
	})
	if err != nil {
		return &batchFailed{err}
	}
	for k, i := range idx {
		how[i] = viaHandler
		if simple[k] {
			how[i] = viaBatch
		}
	}
	return nil
}

// record has Options.Batch record msgs[idx], then stores a KindIgnored row
// for any it says it left unstored, as handle does after Handler: the rows
// are what deduplicates by Message-ID. Errors of Batch are batchFailed.
func (w *Watcher) record(ctx context.Context, tx *store.Tx, msgs []fetched, idx []int) error {
	ms := messagesAt(msgs, idx)
	var stored []bool
	err := callBatch(func() (err error) {
		stored, err = w.o.Batch.Record(ctx, tx, ms)
		if err == nil && len(stored) != len(ms) {
			err = fmt.Errorf("inbox: Batch.Record answered for %d of %d messages", len(stored), len(ms))
		}
		return err
	})
	if err != nil {
		return &batchFailed{err}
	}
	var missing []store.MessageIn
	for k, i := range idx {
		if !stored[k] {
			missing = append(missing, w.row(msgs[i], KindIgnored, ""))
		}
	}
	if len(missing) > 0 {
		_, err = tx.InsertMessagesInOnce(ctx, missing)
	}
	return err
}

func messagesAt(msgs []fetched, idx []int) []Message {
	out := make([]Message, len(idx))
	for k, i := range idx {
		out[k] = msgs[i].Message
	}
	return out
}

// callBatch runs a method of Options.Batch, turning a panic into an error
// (the watcher then takes the messages through Handler).
func callBatch(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("inbox: batch handler panicked: %v", p)
		}
	}()
	return fn()
}

// handleIn runs the handler for m inside tx unless m is too old, already
// stored or a Message-ID already seen, and records m in messages_in when
// the handler did not; handled says whether the handler ran.
func (w *Watcher) handleIn(ctx context.Context, tx *store.Tx, m fetched, old bool) (handled bool, err error) {
	if old {
		return false, nil
	}
	account := w.o.Account.Name
	stored, err := tx.MessageInStored(ctx, account, m.Mailbox, m.UIDValidity, m.UID)
	if err != nil {
		return false, err
	}
	dup, err := tx.MessageInExists(ctx, account, m.MessageID)
	if err != nil {
		return false, err
	}
	if stored || dup {
		return false, nil
	}
	return true, w.handle(ctx, tx, m)
}

// handle runs the handler for m and records m in messages_in when the
// handler did not.
func (w *Watcher) handle(ctx context.Context, tx *store.Tx, m fetched) error {
	if err := w.callHandler(ctx, tx, m.Message); err != nil {
		return &handlerFailed{err}
	}
	stored, err := tx.MessageInStored(ctx, w.o.Account.Name, m.Mailbox, m.UIDValidity, m.UID)
	if err != nil {
		return err
	}
	if !stored {
		if _, err := tx.InsertMessageIn(ctx, w.row(m, KindIgnored, "")); err != nil {
			return err
		}
	}
	return nil
}

// fetchedBatch is a fetched batch whose Prepare may still be running.
type fetchedBatch struct {
	msgs      []fetched     // in the order the server sent them
	bytes     int64         // the size of their bodies
	prepared  []any         // Prepare's results, in the same order
	preparing chan struct{} // closed when prepared is complete; nil without Prepare
	sorted    bool
}

// wait waits for Prepare to be done with the batch and returns its
// messages in UID order. b may be nil (a failed fetch).
func (b *fetchedBatch) wait() []fetched {
	if b == nil {
		return nil
	}
	if !b.sorted {
		if b.preparing != nil {
			<-b.preparing
			for i := range b.msgs {
				b.msgs[i].Prepared = b.prepared[i]
			}
		}
		slices.SortFunc(b.msgs, func(a, b fetched) int { return int(int64(a.UID) - int64(b.UID)) })
		b.msgs = slices.CompactFunc(b.msgs, func(a, b fetched) bool { return a.UID == b.UID })
		b.sorted = true
	}
	return b.msgs
}

// fetch reads one batch: flags, dates, size and the body up to
// max_message_bytes, with BODY.PEEK so that \Seen stays as it was. No
// ENVELOPE: the Message-ID, From and Subject come from the message's own
// header, read as replies.Classify reads them: Dovecot building envelopes
// and go-imap parsing them (a date included) held the watcher at ~0.40 of
// the ingest benchmark's raw FETCH rate, ~0.50 without.
//
// Prepare runs beside the FETCH, on each message as it arrives, and goes on
// after it: the batch's wait waits for it. Not in the reading loop: a slow
// Prepare must not look like a dead server to the command watchdog.
func (w *Watcher) fetch(ctx context.Context, c *conn, folder string, uv uint32, uids []uint32) (*fetchedBatch, error) {
	set := imap.UIDSet{}
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	limit := w.imap.MaxMessageBytes
	opts := &imap.FetchOptions{
		UID:          true,
		Flags:        true,
		InternalDate: true,
		RFC822Size:   true,
		BodySection: []*imap.FetchItemBodySection{{
			Peek:    true,
			Partial: &imap.SectionPartial{Offset: 0, Size: int64(limit)},
		}},
	}
	b := &fetchedBatch{}
	var toPrepare chan Message
	if w.o.Prepare != nil {
		// Room for every message asked for: the reader never waits.
		toPrepare = make(chan Message, len(uids))
		b.preparing = make(chan struct{})
		go func() {
			defer close(b.preparing)
			for m := range toPrepare {
				b.prepared = append(b.prepared, w.o.Prepare(m))
			}
		}()
	}
	err := c.guard(ctx, func(kick func()) error {
		cmd := c.client.Fetch(set, opts)
		for {
			data := cmd.Next()
			if data == nil {
				break
			}
			kick()
			buf, err := data.Collect()
			if err != nil {
				_ = cmd.Close()
				return err
			}
			kick()
			if buf.UID == 0 || !set.Contains(buf.UID) {
				continue // not ours (a server quirk): ignore
			}
			m := w.toMessage(folder, uv, buf)
			b.msgs = append(b.msgs, m)
			b.bytes += int64(len(m.Raw))
			if toPrepare != nil {
				toPrepare <- m.Message
			}
		}
		return cmd.Close()
	})
	if toPrepare != nil {
		close(toPrepare)
	}
	if err != nil {
		b.wait()
		return nil, fmt.Errorf("inbox: UID FETCH: %w", err)
	}
	return b, nil
}

func (w *Watcher) toMessage(folder string, uv uint32, buf *imapclient.FetchMessageBuffer) fetched {
	limit := w.imap.MaxMessageBytes
	m := fetched{Message: Message{
		Account:      w.o.Account.Name,
		Mailbox:      folder,
		UIDValidity:  uv,
		UID:          uint32(buf.UID),
		Size:         buf.RFC822Size,
		InternalDate: buf.InternalDate,
	}}
	for _, bs := range buf.BodySection {
		if bs.Section != nil && bs.Section.Specifier == imap.PartSpecifierNone && len(bs.Section.Part) == 0 {
			m.Raw = bs.Bytes
			break
		}
	}
	if len(m.Raw) > limit { // a server that ignored the partial
		m.Raw = m.Raw[:limit:limit]
		m.Truncated = true
	}
	if buf.RFC822Size > int64(limit) {
		m.Truncated = true
	}
	for _, f := range buf.Flags {
		m.Flags = append(m.Flags, string(f))
	}
	m.MessageID, m.from, m.subject = replies.Headers(m.Raw)
	return m
}

// handlerFailed marks the handler's own errors inside the transaction: only
// those count towards MaxFailures (a database outage does not make a
// message poison).
type handlerFailed struct{ err error }

func (e *handlerFailed) Error() string { return e.err.Error() }
func (e *handlerFailed) Unwrap() error { return e.err }

// commit processes one message in one transaction with its checkpoint. It
// returns 1 when the message was handled or recorded as an error, 0 when it
// was skipped (too old, already stored, or a Message-ID already seen).
func (w *Watcher) commit(ctx context.Context, m fetched, old bool) (int, error) {
	account := w.o.Account.Name
	key := msgKey{m.Mailbox, m.UIDValidity, m.UID}
	handled := false
	err := w.o.Store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if handled, err = w.handleIn(ctx, tx, m, old); err != nil {
			return err
		}
		return tx.SaveCheckpoint(ctx, store.Checkpoint{Account: account, Mailbox: m.Mailbox, UIDValidity: m.UIDValidity, LastUID: m.UID})
	})
	if err == nil {
		delete(w.failures, key)
		if !handled {
			return 0, nil
		}
		w.committed()
		return 1, nil
	}
	var hf *handlerFailed
	if !errors.As(err, &hf) || ctx.Err() != nil {
		return 0, &handlerError{uid: m.UID, err: err}
	}
	w.failures[key]++
	if w.failures[key] < w.o.MaxFailures {
		return 0, &handlerError{uid: m.UID, err: err}
	}
	// A poison message: record it and move on.
	w.log.Error("giving up on a message the handler keeps failing on",
		"mailbox", m.Mailbox, "uidvalidity", m.UIDValidity, "uid", m.UID, "message_id", m.MessageID,
		"failures", w.failures[key], "error", hf.err)
	err = w.o.Store.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.InsertMessageIn(ctx, w.row(m, KindError, hf.err.Error())); err != nil {
			return err
		}
		return tx.SaveCheckpoint(ctx, store.Checkpoint{Account: account, Mailbox: m.Mailbox, UIDValidity: m.UIDValidity, LastUID: m.UID})
	})
	if err != nil {
		return 0, &handlerError{uid: m.UID, err: err}
	}
	delete(w.failures, key)
	w.committed()
	return 1, nil
}

func (w *Watcher) committed() {
	w.total.Add(1)
	signal(w.processed)
}

// callHandler runs the handler, turning a panic into an error so that a
// message that crashes it is retried and, in the end, recorded.
func (w *Watcher) callHandler(ctx context.Context, tx *store.Tx, m Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return w.o.Handler(ctx, tx, m)
}

// row is the messages_in row the watcher writes itself.
func (w *Watcher) row(m fetched, kind, excerpt string) store.MessageIn {
	if len(excerpt) > 2000 {
		excerpt = excerpt[:2000]
	}
	received := m.InternalDate
	if received.IsZero() {
		received = w.o.Now()
	}
	return store.MessageIn{
		Account:     m.Account,
		Mailbox:     m.Mailbox,
		UIDValidity: m.UIDValidity,
		UID:         m.UID,
		MessageID:   m.MessageID,
		FromAddr:    m.from,
		Subject:     m.subject,
		Kind:        kind,
		Excerpt:     excerpt,
		ReceivedAt:  received,
	}
}
