package store

import (
	"context"
	"fmt"
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
// first read of a mailbox two queries per message.
func (tx *Tx) MessagesInSeen(ctx context.Context, account, mailbox string, uidValidity uint32, uids []uint32, messageIDs []string) (stored map[uint32]bool, seen map[string]bool, err error) {
	r := tx.r
	stored, seen = map[uint32]bool{}, map[string]bool{}
	if len(uids) > 0 {
		args := []any{account, mailbox, uidValidity}
		for _, u := range uids {
			args = append(args, u)
		}
		var got []uint32
		q := `SELECT uid FROM messages_in WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND uid IN (` + placeholders(len(uids)) + `)`
		if err := r.selectRows(ctx, &got, r.x.Rebind(q), args...); err != nil {
			return nil, nil, fmt.Errorf("store: unable to look up inbound messages of %s/%s: %w", account, mailbox, classify(err))
		}
		for _, u := range got {
			stored[u] = true
		}
	}
	var ids []any
	for _, id := range messageIDs {
		if id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		var got []string
		q := `SELECT DISTINCT message_id FROM messages_in WHERE account = ? AND message_id IN (` + placeholders(len(ids)) + `)`
		if err := r.selectRows(ctx, &got, r.x.Rebind(q), append([]any{account}, ids...)...); err != nil {
			return nil, nil, fmt.Errorf("store: unable to look up inbound Message-IDs of %s: %w", account, classify(err))
		}
		for _, id := range got {
			seen[id] = true
		}
	}
	return stored, seen, nil
}
