package inbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

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

// process fetches uids in batches and commits them in ascending order. With
// a non-zero since, messages whose internal date is older are skipped (the
// checkpoint still moves past them). It returns the number processed and
// the highest UID committed.
//
// The next batch is fetched while the current one is committed, so that
// the server's streaming and the database's work overlap on a long read.
func (w *Watcher) process(ctx context.Context, c *conn, folder string, uv uint32, uids []uint32, since time.Time) (n int, last uint32, err error) {
	type fetchResult struct {
		msgs []fetched
		err  error
	}
	var pending chan fetchResult
	prefetch := func() {
		if len(uids) == 0 {
			pending = nil
			return
		}
		batch := uids[:min(len(uids), w.o.BatchSize)]
		uids = uids[len(batch):]
		ch := make(chan fetchResult, 1)
		go func() {
			msgs, err := w.fetch(ctx, c, folder, uv, batch)
			ch <- fetchResult{msgs, err}
		}()
		pending = ch
	}
	// Never leave with a fetch still using the connection.
	defer func() {
		if pending != nil {
			<-pending
		}
	}()
	prefetch()
	for pending != nil {
		r := <-pending
		pending = nil
		if r.err != nil {
			return n, last, r.err
		}
		msgs := r.msgs
		prefetch()
		tooOld := func(m fetched) bool {
			return !since.IsZero() && !m.InternalDate.IsZero() && m.InternalDate.Before(since)
		}
		if len(msgs) > 1 {
			done, kept, err := w.commitBatch(ctx, msgs, tooOld)
			if err != nil {
				return n, last, &handlerError{err: err}
			}
			n += done
			if kept > 0 {
				last = msgs[kept-1].UID
			}
			msgs = msgs[kept:]
		}
		// One at a time: a single new message (IDLE), or the rest of a
		// batch from the message whose handler failed.
		for _, m := range msgs {
			done, err := w.commit(ctx, m, tooOld(m))
			n += done
			if err != nil {
				return n, last, err
			}
			last = m.UID
		}
	}
	return n, last, nil
}

// commitBatch processes a fetched batch in one transaction that ends with
// the checkpoint at the last message kept: a first read of a large mailbox
// costs one commit per batch instead of one per message. Each message runs
// in a savepoint; the first whose handler fails is undone and ends the
// batch, and kept says how many messages (from the start) were committed,
// so that the caller takes the failing one through commit, which counts
// its failures.
func (w *Watcher) commitBatch(ctx context.Context, msgs []fetched, tooOld func(fetched) bool) (handled, kept int, err error) {
	account := w.o.Account.Name
	err = w.o.Store.InTx(ctx, func(tx *store.Tx) error {
		handled, kept = 0, 0
		uids := make([]uint32, len(msgs))
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			uids[i], ids[i] = m.UID, m.MessageID
		}
		// msgs share one mailbox and UIDVALIDITY (one fetch).
		stored, seen, err := tx.MessagesInSeen(ctx, account, msgs[0].Mailbox, msgs[0].UIDValidity, uids, ids)
		if err != nil {
			return err
		}
		pre := &batchSeen{stored: stored, seen: seen}
		for _, m := range msgs {
			var ok bool
			err := tx.Savepoint(ctx, func() error {
				var err error
				ok, err = w.handleIn(ctx, tx, m, tooOld(m), pre)
				return err
			})
			var hf *handlerFailed
			if errors.As(err, &hf) {
				break
			}
			if err != nil {
				return err
			}
			kept++
			if ok {
				handled++
			}
		}
		if kept == 0 {
			return nil
		}
		last := msgs[kept-1]
		return tx.SaveCheckpoint(ctx, store.Checkpoint{Account: account, Mailbox: last.Mailbox, UIDValidity: last.UIDValidity, LastUID: last.UID})
	})
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

// handleIn runs the handler for m inside tx unless m is too old, already
// stored or a Message-ID already seen, and records m in messages_in when
// the handler did not; handled says whether the handler ran.
//
// pre, when not nil, holds what the batch's transaction found stored before
// its first message, and learns each Message-ID stored since.
func (w *Watcher) handleIn(ctx context.Context, tx *store.Tx, m fetched, old bool, pre *batchSeen) (handled bool, err error) {
	if old {
		return false, nil
	}
	account := w.o.Account.Name
	var stored, dup bool
	if pre != nil {
		stored, dup = pre.stored[m.UID], m.MessageID != "" && pre.seen[m.MessageID]
	} else {
		if stored, err = tx.MessageInStored(ctx, account, m.Mailbox, m.UIDValidity, m.UID); err != nil {
			return false, err
		}
		if dup, err = tx.MessageInExists(ctx, account, m.MessageID); err != nil {
			return false, err
		}
	}
	if stored || dup {
		return false, nil
	}
	if err := w.callHandler(ctx, tx, m.Message); err != nil {
		return false, &handlerFailed{err}
	}
	stored, err = tx.MessageInStored(ctx, account, m.Mailbox, m.UIDValidity, m.UID)
	if err != nil {
		return false, err
	}
	if !stored {
		if _, err := tx.InsertMessageIn(ctx, w.row(m, KindIgnored, "")); err != nil {
			return false, err
		}
	}
	if pre != nil && m.MessageID != "" {
		pre.seen[m.MessageID] = true
	}
	return true, nil
}

// batchSeen is what a batch's transaction knows is already stored.
type batchSeen struct {
	stored map[uint32]bool
	seen   map[string]bool
}

// fetch reads one batch: envelope, flags, dates, size and the body up to
// max_message_bytes, with BODY.PEEK so that \Seen stays as it was.
func (w *Watcher) fetch(ctx context.Context, c *conn, folder string, uv uint32, uids []uint32) ([]fetched, error) {
	set := imap.UIDSet{}
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	limit := w.imap.MaxMessageBytes
	opts := &imap.FetchOptions{
		UID:          true,
		Flags:        true,
		Envelope:     true,
		InternalDate: true,
		RFC822Size:   true,
		BodySection: []*imap.FetchItemBodySection{{
			Peek:    true,
			Partial: &imap.SectionPartial{Offset: 0, Size: int64(limit)},
		}},
	}
	var out []fetched
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
			out = append(out, w.toMessage(folder, uv, buf))
		}
		return cmd.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("inbox: UID FETCH: %w", err)
	}
	slices.SortFunc(out, func(a, b fetched) int { return int(int64(a.UID) - int64(b.UID)) })
	out = slices.CompactFunc(out, func(a, b fetched) bool { return a.UID == b.UID })
	// After the FETCH, not between its responses: a slow Prepare must not
	// look like a dead server to the command watchdog.
	if w.o.Prepare != nil {
		for i := range out {
			out[i].Prepared = w.o.Prepare(out[i].Message)
		}
	}
	return out, nil
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
	if env := buf.Envelope; env != nil {
		m.MessageID = env.MessageID
		m.subject = env.Subject
		if len(env.From) > 0 {
			m.from = env.From[0].Addr()
		}
	}
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
		if handled, err = w.handleIn(ctx, tx, m, old, nil); err != nil {
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
