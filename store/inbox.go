package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
)

// Queries of the IMAP watcher (package inbox). They are written with '?'
// placeholders and rebound on use.
const (
	qMessageInByMessageID = `SELECT EXISTS (SELECT 1 FROM messages_in
		WHERE account = ? AND message_id = ?)`
	qMessageInByUID = `SELECT EXISTS (SELECT 1 FROM messages_in
		WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND uid = ?)`
	qCheckpoints = `SELECT account, mailbox, uidvalidity, last_uid, updated_at
		FROM imap_checkpoints WHERE account = ? ORDER BY mailbox`
	qAllCheckpoints = `SELECT account, mailbox, uidvalidity, last_uid, updated_at
		FROM imap_checkpoints ORDER BY account, mailbox`
)

// MessageInExists reports whether a message with this Message-ID (without
// angle brackets) was already stored for the account, in any mailbox and
// under any UIDVALIDITY. The watcher uses it to skip the messages it already
// handled when a mailbox's UIDVALIDITY changes. An empty messageID never
// matches.
func (s *Store) MessageInExists(ctx context.Context, account, messageID string) (bool, error) {
	return s.runner(s.db).messageInExists(ctx, account, messageID)
}

// MessageInExists is Store.MessageInExists inside the transaction.
func (tx *Tx) MessageInExists(ctx context.Context, account, messageID string) (bool, error) {
	return tx.r.messageInExists(ctx, account, messageID)
}

func (r *runner) messageInExists(ctx context.Context, account, messageID string) (bool, error) {
	if messageID == "" {
		return false, nil
	}
	var ok bool
	if err := r.get(ctx, &ok, r.x.Rebind(qMessageInByMessageID), account, messageID); err != nil {
		return false, fmt.Errorf("store: unable to look up inbound message %s of %s: %w", messageID, account, classify(err))
	}
	return ok, nil
}

// MessageInStored reports whether the message at (account, mailbox,
// uidvalidity, uid) is already in messages_in.
func (s *Store) MessageInStored(ctx context.Context, account, mailbox string, uidValidity, uid uint32) (bool, error) {
	return s.runner(s.db).messageInStored(ctx, account, mailbox, uidValidity, uid)
}

// MessageInStored is Store.MessageInStored inside the transaction.
func (tx *Tx) MessageInStored(ctx context.Context, account, mailbox string, uidValidity, uid uint32) (bool, error) {
	return tx.r.messageInStored(ctx, account, mailbox, uidValidity, uid)
}

func (r *runner) messageInStored(ctx context.Context, account, mailbox string, uidValidity, uid uint32) (bool, error) {
	var ok bool
	if err := r.get(ctx, &ok, r.x.Rebind(qMessageInByUID), account, mailbox, uidValidity, uid); err != nil {
		return false, fmt.Errorf("store: unable to look up inbound message %s/%s uid %d: %w", account, mailbox, uid, classify(err))
	}
	return ok, nil
}

// Checkpoints lists the IMAP checkpoints of an account, by mailbox; an
// empty account lists those of every account.
func (s *Store) Checkpoints(ctx context.Context, account string) ([]Checkpoint, error) {
	return s.runner(s.db).checkpoints(ctx, account)
}

// Checkpoints is Store.Checkpoints inside the transaction.
func (tx *Tx) Checkpoints(ctx context.Context, account string) ([]Checkpoint, error) {
	return tx.r.checkpoints(ctx, account)
}

func (r *runner) checkpoints(ctx context.Context, account string) ([]Checkpoint, error) {
	var out []Checkpoint
	var err error
	if account == "" {
		err = r.selectRows(ctx, &out, r.x.Rebind(qAllCheckpoints))
	} else {
		err = r.selectRows(ctx, &out, r.x.Rebind(qCheckpoints), account)
	}
	if err != nil {
		return nil, fmt.Errorf("store: unable to list the IMAP checkpoints: %w", classify(err))
	}
	for i := range out {
		utc(&out[i].UpdatedAt)
	}
	return out, nil
}

// MessagesInSeen looks up a batch of fetched messages at once: which of the
// UIDs (of account, mailbox, uidvalidity) are already in messages_in, and
// which of the Message-IDs were already seen on the account. It saves a
// first read of a mailbox two queries per message, and asks both questions
// in one statement (one round trip on Postgres) for up to inboxBatchRows
// of each.
func (tx *Tx) MessagesInSeen(ctx context.Context, account, mailbox string, uidValidity uint32, uids []uint32, messageIDs []string) (stored map[uint32]bool, seen map[string]bool, err error) {
	return tx.r.messagesInSeenAll(ctx, nil, account, mailbox, uidValidity, uids, messageIDs)
}

// CheckpointAndSeen saves cp, as SaveCheckpoint does, and answers
// MessagesInSeen for cp's account, mailbox and UIDVALIDITY; on Postgres in
// one statement (the checkpoint in a WITH), a round trip less for each
// batch the watcher commits. The watcher saves its batch's last UID
// first, and again when the batch ends earlier: the transaction commits
// whatever it saved last.
func (tx *Tx) CheckpointAndSeen(ctx context.Context, cp Checkpoint, uids []uint32, messageIDs []string) (stored map[uint32]bool, seen map[string]bool, err error) {
	if tx.r.dialect != DialectPostgres || len(uids) == 0 {
		if err := tx.r.saveCheckpoint(ctx, cp); err != nil {
			return nil, nil, err
		}
		return tx.MessagesInSeen(ctx, cp.Account, cp.Mailbox, cp.UIDValidity, uids, messageIDs)
	}
	return tx.r.messagesInSeenAll(ctx, &cp, cp.Account, cp.Mailbox, cp.UIDValidity, uids, messageIDs)
}

// messagesInSeenAll is MessagesInSeen in chunks; save, when not nil (on
// Postgres, with uids), is saved with the first.
func (r *runner) messagesInSeenAll(ctx context.Context, save *Checkpoint, account, mailbox string, uidValidity uint32, uids []uint32, messageIDs []string) (stored map[uint32]bool, seen map[string]bool, err error) {
	stored, seen = map[uint32]bool{}, map[string]bool{}
	var ids []string
	for _, id := range messageIDs {
		if id != "" {
			ids = append(ids, id)
		}
	}
	for len(uids) > 0 || len(ids) > 0 {
		nu, ni := min(len(uids), inboxBatchRows), min(len(ids), inboxBatchRows)
		if err := r.messagesInSeen(ctx, save, account, mailbox, uidValidity, uids[:nu], ids[:ni], stored, seen); err != nil {
			return nil, nil, err
		}
		save = nil // saved with the first chunk
		uids, ids = uids[nu:], ids[ni:]
	}
	return stored, seen, nil
}

// messagesInSeen asks one chunk of MessagesInSeen, with save (Postgres
// only) saving a checkpoint in the same statement.
func (r *runner) messagesInSeen(ctx context.Context, save *Checkpoint, account, mailbox string, uidValidity uint32, uids []uint32, ids []string, stored map[uint32]bool, seen map[string]bool) error {
	// The query is assembled from literals and placeholder lists only
	// (securitytest checks it): half says which question a row answers.
	q := ""
	var args []any
	want := make(map[uint32]bool, len(uids))
	if len(uids) > 0 {
		lo, hi := slices.Min(uids), slices.Max(uids)
		for _, u := range uids {
			want[u] = true
		}
		// A batch's UIDs are nearly consecutive: a range is one walk of
		// the unique index, where a list is a probe per UID (or, on a
		// small table, a scan Postgres prefers). A sparse set is asked
		// as a list, so that the range never reads many rows not asked.
		if uint64(hi-lo) < 4*uint64(len(want)) {
			q = `SELECT 1 AS half, uid, '' AS message_id FROM messages_in
				WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND uid BETWEEN ? AND ?`
			args = append(args, account, mailbox, uidValidity, lo, hi)
		} else {
			q = `SELECT 1 AS half, uid, '' AS message_id FROM messages_in
				WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND ` + r.inList("uid", "BIGINT", len(uids))
			args = append(args, account, mailbox, uidValidity)
			list := make([]int64, len(uids))
			for i, u := range uids {
				list[i] = int64(u)
			}
			args = append(args, listArgs(r, list)...)
		}
	}
	if len(ids) > 0 {
		if q != "" {
			q += ` UNION ALL `
		}
		// One probe of the Message-ID index per ID, with the account
		// checked on the rows found, never an index condition: "account =
		// ? AND message_id IN (…)" was planned as a walk over every row of
		// the account (the UID index's prefix, or a seq scan), each
		// compared with every ID, so that a batch cost time in proportion
		// to the mail already stored (3.5 ms at 6,000 rows on Postgres in
		// the ingest benchmark). On Postgres the OFFSET 0 keeps the lateral
		// subquery a lookup per ID; on SQLite the unary + takes the account
		// out of the index's reach.
		if r.dialect == DialectPostgres {
			q += `SELECT 2 AS half, 0 AS uid, x.id AS message_id
				FROM unnest(CAST(? AS TEXT[])) AS x(id),
				LATERAL (SELECT m.account FROM messages_in m WHERE m.message_id = x.id OFFSET 0) AS m
				WHERE m.account = ?`
			args = append(args, listArgs(r, ids)...)
			args = append(args, account)
		} else {
			q += `SELECT 2 AS half, 0 AS uid, message_id FROM messages_in
				WHERE +account = ? AND ` + r.inList("message_id", "TEXT", len(ids))
			args = append(args, account)
			args = append(args, listArgs(r, ids)...)
		}
	}
	if save != nil {
		// SaveCheckpoint's upsert. A data-modifying WITH runs once, to
		// completion, whether or not the query reads it.
		q = `WITH cp AS (INSERT INTO imap_checkpoints (account, mailbox, uidvalidity, last_uid, updated_at)
				VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (account, mailbox) DO UPDATE SET
					uidvalidity = excluded.uidvalidity,
					last_uid    = excluded.last_uid,
					updated_at  = excluded.updated_at) ` + q
		args = append([]any{save.Account, save.Mailbox, save.UIDValidity, save.LastUID, r.now()}, args...)
	}
	var got []struct {
		Half      int    `db:"half"`
		UID       uint32 `db:"uid"`
		MessageID string `db:"message_id"`
	}
	if err := r.selectRows(ctx, &got, r.x.Rebind(q), args...); err != nil {
		if save != nil {
			return fmt.Errorf("store: unable to save the checkpoint of %s/%s and look up its inbound messages: %w", account, mailbox, classify(err))
		}
		return fmt.Errorf("store: unable to look up inbound messages of %s/%s: %w", account, mailbox, classify(err))
	}
	for _, g := range got {
		switch {
		case g.Half == 1 && want[g.UID]:
			stored[g.UID] = true
		case g.Half == 2:
			seen[g.MessageID] = true
		}
	}
	return nil
}

// The batch forms of the watcher's matching and recording below let a
// fetched batch cost a few statements instead of several per message: on
// Postgres every statement is a loopback round trip, and most of a
// mailbox is mail that matches nobody.

// inboxBatchRows bounds the rows (or list items) of one statement of the
// batch forms: 500 messages_in rows are 7,500 parameters, well under both
// Postgres's limit (65,535) and SQLite's (32,766).
const inboxBatchRows = 500

// messageInArity is the number of parameters of one messages_in row.
const messageInArity = 15

// MatchesOn looks up what many inbound messages could match, in one
// statement (for up to inboxBatchRows of each list): which of messageIDs
// (without angle brackets) are the Message-ID of an outbound message
// (MessageOutByMessageID), and which of emails belong to a contact
// (ContactByEmail, in any case) and whether it has a live (active, paused
// or snoozed) enrollment on account (LiveEnrollments). sent holds the
// Message-IDs found; live holds the addresses of contacts, as given, true
// when enrolled on account. Empty IDs and addresses never match.
func (tx *Tx) MatchesOn(ctx context.Context, account string, messageIDs, emails []string) (sent, live map[string]bool, err error) {
	r := tx.r
	var ids []string
	dedup := map[string]bool{}
	for _, id := range messageIDs {
		if id != "" && !dedup[id] {
			dedup[id] = true
			ids = append(ids, id)
		}
	}
	var norm []string
	clear(dedup)
	for _, e := range emails {
		if n := NormalizeEmail(e); n != "" && !dedup[n] {
			dedup[n] = true
			norm = append(norm, n)
		}
	}
	sent = map[string]bool{}
	byNorm := map[string]bool{}
	for len(ids) > 0 || len(norm) > 0 {
		ni, ne := min(len(ids), inboxBatchRows), min(len(norm), inboxBatchRows)
		// Assembled from literals and placeholder lists only (securitytest
		// checks it): half says which question a row answers.
		q := ""
		var args []any
		if ni > 0 {
			q = `SELECT 1 AS half, message_id AS val, FALSE AS live
				FROM messages_out WHERE ` + r.inList("message_id", "TEXT", ni)
			args = append(args, listArgs(r, ids[:ni])...)
		}
		if ne > 0 {
			if q != "" {
				q += ` UNION ALL `
			}
			q += `SELECT 2 AS half, c.email AS val, EXISTS (SELECT 1 FROM enrollments e WHERE e.contact_id = c.id
				AND e.account = ? AND e.status IN ('active', 'paused', 'snoozed')) AS live
				FROM contacts c WHERE ` + r.inList("c.email", "TEXT", ne)
			args = append(args, account)
			args = append(args, listArgs(r, norm[:ne])...)
		}
		var got []struct {
			Half int    `db:"half"`
			Val  string `db:"val"`
			Live bool   `db:"live"`
		}
		if err := r.selectRows(ctx, &got, r.x.Rebind(q), args...); err != nil {
			return nil, nil, fmt.Errorf("store: unable to look up %d outbound Message-IDs and %d contacts by email: %w", ni, ne, classify(err))
		}
		for _, g := range got {
			if g.Half == 1 {
				sent[g.Val] = true
			} else {
				byNorm[g.Val] = g.Live
			}
		}
		ids, norm = ids[ni:], norm[ne:]
	}
	live = make(map[string]bool, len(byNorm))
	for _, e := range emails {
		if v, ok := byNorm[NormalizeEmail(e)]; ok {
			live[e] = v
		}
	}
	return sent, live, nil
}

// InsertMessagesInOnce is InsertMessageInOnce for many messages, in
// multi-row inserts (on Postgres, one array parameter per column:
// parsing 15 parameters per row costs it more than the insert itself):
// each is recorded unless its mailbox UID already is (also earlier in ms).
// ids[i] is the new row's id of ms[i], 0 when it was not inserted. Like
// InsertMessageInOnce it leaves the transaction usable on Postgres when a
// UID is already recorded; any other failure (a value a column refuses)
// fails the whole call.
func (tx *Tx) InsertMessagesInOnce(ctx context.Context, ms []MessageIn) (ids []int64, err error) {
	r := tx.r
	now := r.now()
	// Of two rows for one mailbox UID the first is kept, as one insert
	// after the other would.
	idx, at := firstPerUID(ms)
	ids = make([]int64, len(ms))
	err = chunks(idx, inboxBatchRows, func(part []int) error {
		q := messagesInInsert + ` VALUES ` + valueRows(len(part), messageInArity) + messagesInOnce
		if r.dialect == DialectPostgres {
			// SQLite would need a WHERE in an INSERT … SELECT before its
			// ON CONFLICT; it keeps the VALUES form.
			q = r.rowsCTE("v", []string{"a", "mb", "uv", "u", "mid", "f", "sub", "k", "i", "bc", "ex", "c", "mo", "r", "ca"},
				messagesInPGTypes, len(part)) + ` ` + messagesInInsert + ` SELECT * FROM v` + messagesInOnce
		}
		args := r.rowArgs(messagesInRows(ms, part, now))
		var got []struct {
			ID          int64  `db:"id"`
			Account     string `db:"account"`
			Mailbox     string `db:"mailbox"`
			UIDValidity uint32 `db:"uidvalidity"`
			UID         uint32 `db:"uid"`
		}
		if err := r.selectRows(ctx, &got, r.x.Rebind(q), args...); err != nil {
			first := ms[part[0]]
			return fmt.Errorf("store: unable to insert %d inbound messages of %s/%s from uid %d: %w",
				len(part), first.Account, first.Mailbox, first.UID, classify(err))
		}
		for _, g := range got {
			if i, ok := at[messageInKey{g.Account, g.Mailbox, g.UIDValidity, g.UID}]; ok {
				ids[i] = g.ID
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// InsertMessagesIn records many messages that are not recorded yet, as
// InsertMessagesInOnce does but without its check for a recorded UID: a
// mailbox UID already in messages_in (recorded by another transaction
// since the caller looked) fails the whole call with an error matching
// ErrDuplicate, and on Postgres the transaction then can only be rolled
// back. Of two rows in ms for one mailbox UID the first is recorded;
// inserted[i] says whether ms[i] was. On Postgres the rows are loaded with
// COPY, a third cheaper than the multi-row insert with the check (which
// COPY cannot do): a caller that looked the UIDs up in its transaction
// meets a recorded one only when another writer records the same mail.
func (tx *Tx) InsertMessagesIn(ctx context.Context, ms []MessageIn) (inserted []bool, err error) {
	r := tx.r
	now := r.now()
	idx, _ := firstPerUID(ms)
	if len(idx) == 0 {
		return make([]bool, len(ms)), nil
	}
	if r.dialect == DialectPostgres {
		err = r.copyMessagesIn(ctx, ms, idx, now)
	} else {
		err = chunks(idx, inboxBatchRows, func(part []int) error {
			q := messagesInInsert + ` VALUES ` + valueRows(len(part), messageInArity)
			_, err := r.exec(ctx, r.x.Rebind(q), r.rowArgs(messagesInRows(ms, part, now))...)
			return err
		})
	}
	if err != nil {
		first := ms[idx[0]]
		return nil, fmt.Errorf("store: unable to insert %d inbound messages of %s/%s from uid %d: %w",
			len(idx), first.Account, first.Mailbox, first.UID, classify(err))
	}
	inserted = make([]bool, len(ms))
	for _, i := range idx {
		inserted[i] = true
	}
	return inserted, nil
}

// messagesInCopy loads messages_in rows in messagesInInsert's columns.
const messagesInCopy = `COPY messages_in (account, mailbox, uidvalidity, uid, message_id,
	from_addr, subject, kind, intent, bounce_class, excerpt, contact_id, message_out_id,
	received_at, created_at) FROM STDIN`

// copyMessagesIn loads ms[idx] with COPY (lib/pq's COPY FROM STDIN
// statement, inside the transaction): the rows travel as tab-separated
// text, cheaper for Postgres to read than the arrays of the multi-row
// insert, and without a plan.
func (r *runner) copyMessagesIn(ctx context.Context, ms []MessageIn, idx []int, now time.Time) error {
	tx, ok := r.x.(*sqlx.Tx)
	if !ok {
		return errors.New("COPY outside a transaction")
	}
	st, err := tx.PrepareContext(ctx, messagesInCopy)
	if err != nil {
		return err
	}
	defer st.Close()
	// Each call sends a row: values, never SQL text (the statement is
	// messagesInCopy); no values end the data and wait for the outcome.
	addRow := st.ExecContext
	for _, i := range idx {
		m := ms[i]
		if _, err := addRow(ctx, m.Account, m.Mailbox, int64(m.UIDValidity), int64(m.UID),
			m.MessageID, m.FromAddr, m.Subject, m.Kind, m.Intent, m.BounceClass, m.Excerpt,
			m.ContactID, m.MessageOutID, receivedAt(m, now), now); err != nil {
			return err
		}
	}
	_, err = addRow(ctx)
	return err
}

// messageInKey is a message's mailbox UID.
type messageInKey struct {
	account, mailbox string
	uidValidity, uid uint32
}

// firstPerUID returns the indexes of the rows of ms that come first for
// their mailbox UID, in order, and where each UID's first row is.
func firstPerUID(ms []MessageIn) (idx []int, at map[messageInKey]int) {
	at = make(map[messageInKey]int, len(ms))
	idx = make([]int, 0, len(ms))
	for i, m := range ms {
		k := messageInKey{m.Account, m.Mailbox, m.UIDValidity, m.UID}
		if _, dup := at[k]; !dup {
			at[k] = i
			idx = append(idx, i)
		}
	}
	return idx, at
}

const messagesInInsert = `INSERT INTO messages_in (account, mailbox, uidvalidity, uid, message_id,
	from_addr, subject, kind, intent, bounce_class, excerpt, contact_id, message_out_id,
	received_at, created_at)`

// messagesInOnce ends the batch inserts as InsertMessageInOnce ends its
// own, returning what tells the rows inserted apart.
const messagesInOnce = `
	ON CONFLICT (account, mailbox, uidvalidity, uid) DO NOTHING
	RETURNING id, account, mailbox, uidvalidity, uid`

// messagesInPGTypes are the Postgres types of messagesInInsert's columns,
// in its order.
var messagesInPGTypes = []string{"TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT",
	"TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT",
	"TIMESTAMPTZ", "TIMESTAMPTZ"}

// receivedAt is the received_at InsertMessageIn writes for m.
func receivedAt(m MessageIn, now time.Time) time.Time {
	if m.ReceivedAt.IsZero() {
		return now
	}
	return dbTime(m.ReceivedAt)
}

// messagesInRows are the rows of ms[part], in messagesInInsert's order.
func messagesInRows(ms []MessageIn, part []int, now time.Time) [][]any {
	rows := make([][]any, len(part))
	for j, i := range part {
		m := ms[i]
		rows[j] = []any{m.Account, m.Mailbox, int64(m.UIDValidity), int64(m.UID),
			m.MessageID, m.FromAddr, m.Subject, m.Kind, m.Intent, m.BounceClass, m.Excerpt,
			m.ContactID, m.MessageOutID, receivedAt(m, now), now}
	}
	return rows
}
