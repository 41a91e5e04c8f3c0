package store

import (
	"errors"
	"testing"
)

// A failed part of a transaction (here a duplicate that Postgres answers
// by aborting the transaction) is undone by its savepoint, and what came
// before and after it commits.
func TestSavepointUndoesOnlyTheFailedPart(t *testing.T) {
	forEachDB(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		first := MessageIn{Account: "sales", Mailbox: "INBOX", UIDValidity: 1, UID: 1, MessageID: "a@x"}
		boom := errors.New("boom")
		err := s.InTx(ctx, func(tx *Tx) error {
			if _, err := tx.InsertMessageIn(ctx, first); err != nil {
				return err
			}
			err := tx.Savepoint(ctx, func() error {
				if _, err := tx.InsertMessageIn(ctx, MessageIn{Account: "sales", Mailbox: "INBOX", UIDValidity: 1, UID: 2, MessageID: "b@x"}); err != nil {
					return err
				}
				_, err := tx.InsertMessageIn(ctx, first) // the same mailbox UID again
				if err == nil {
					return boom
				}
				return err
			})
			if err == nil {
				t.Error("Savepoint returned nil for a failing part")
			}
			_, err = tx.InsertMessageIn(ctx, MessageIn{Account: "sales", Mailbox: "INBOX", UIDValidity: 1, UID: 3, MessageID: "c@x"})
			return err
		})
		if err != nil {
			t.Fatalf("the transaction did not survive its failed savepoint: %v", err)
		}
		for uid, want := range map[uint32]bool{1: true, 2: false, 3: true} {
			got, err := s.MessageInStored(ctx, "sales", "INBOX", 1, uid)
			if err != nil || got != want {
				t.Errorf("uid %d stored = %v, %v; want %v", uid, got, err, want)
			}
		}
	})
}
