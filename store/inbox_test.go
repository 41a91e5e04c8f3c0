package store

import (
	"testing"
)

func TestInboxQueries(t *testing.T) {
	forEachDB(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		for _, m := range []MessageIn{
			{Account: "sales", Mailbox: "INBOX", UIDValidity: 7, UID: 1, MessageID: "a@x"},
			{Account: "sales", Mailbox: "Replies", UIDValidity: 4294967295, UID: 4294967294, MessageID: "b@x"},
			{Account: "other", Mailbox: "INBOX", UIDValidity: 7, UID: 1, MessageID: "c@x"},
			{Account: "sales", Mailbox: "INBOX", UIDValidity: 7, UID: 2}, // no Message-ID
		} {
			if _, err := s.InsertMessageIn(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			account, id string
			want        bool
		}{
			{"sales", "a@x", true}, {"sales", "b@x", true}, {"sales", "c@x", false},
			{"other", "c@x", true}, {"sales", "", false}, {"sales", "A@X", false},
		} {
			got, err := s.MessageInExists(ctx, c.account, c.id)
			if err != nil || got != c.want {
				t.Errorf("MessageInExists(%s, %q) = %v, %v; want %v", c.account, c.id, got, err, c.want)
			}
		}
		for _, c := range []struct {
			mailbox string
			uv, uid uint32
			want    bool
		}{
			{"INBOX", 7, 1, true}, {"INBOX", 7, 2, true}, {"INBOX", 7, 3, false},
			{"INBOX", 8, 1, false}, {"Replies", 4294967295, 4294967294, true},
		} {
			got, err := s.MessageInStored(ctx, "sales", c.mailbox, c.uv, c.uid)
			if err != nil || got != c.want {
				t.Errorf("MessageInStored(%s %d %d) = %v, %v; want %v", c.mailbox, c.uv, c.uid, got, err, c.want)
			}
			err = s.InTx(ctx, func(tx *Tx) error {
				got, err = tx.MessageInStored(ctx, "sales", c.mailbox, c.uv, c.uid)
				return err
			})
			if err != nil || got != c.want {
				t.Errorf("tx.MessageInStored(%s %d %d) = %v, %v; want %v", c.mailbox, c.uv, c.uid, got, err, c.want)
			}
		}

		// The batch form answers as the single lookups do.
		err := s.InTx(ctx, func(tx *Tx) error {
			stored, seen, err := tx.MessagesInSeen(ctx, "sales", "INBOX", 7, []uint32{1, 2, 3}, []string{"a@x", "c@x", "", "b@x", "A@X"})
			if err != nil {
				return err
			}
			if len(stored) != 2 || !stored[1] || !stored[2] {
				t.Errorf("stored = %v, want 1 and 2", stored)
			}
			if len(seen) != 2 || !seen["a@x"] || !seen["b@x"] {
				t.Errorf("seen = %v, want a@x and b@x (c@x is another account's)", seen)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		cps, err := s.Checkpoints(ctx, "sales")
		if err != nil || len(cps) != 0 {
			t.Fatalf("Checkpoints before any = %v, %v", cps, err)
		}
		for _, cp := range []Checkpoint{
			{Account: "sales", Mailbox: "Replies", UIDValidity: 3, LastUID: 9},
			{Account: "sales", Mailbox: "INBOX", UIDValidity: 4294967295, LastUID: 4294967294},
			{Account: "other", Mailbox: "INBOX", UIDValidity: 1, LastUID: 1},
		} {
			if err := s.SaveCheckpoint(ctx, cp); err != nil {
				t.Fatal(err)
			}
		}
		cps, err = s.Checkpoints(ctx, "sales")
		if err != nil || len(cps) != 2 || cps[0].Mailbox != "INBOX" || cps[0].UIDValidity != 4294967295 ||
			cps[0].LastUID != 4294967294 || cps[1].Mailbox != "Replies" || cps[1].UpdatedAt.IsZero() {
			t.Errorf("Checkpoints(sales) = %+v, %v", cps, err)
		}
		var all []Checkpoint
		err = s.InTx(ctx, func(tx *Tx) error {
			all, err = tx.Checkpoints(ctx, "")
			return err
		})
		if err != nil || len(all) != 3 || all[0].Account != "other" {
			t.Errorf("Checkpoints(all) = %+v, %v", all, err)
		}
		var exists bool
		err = s.InTx(ctx, func(tx *Tx) error {
			exists, err = tx.MessageInExists(ctx, "sales", "b@x")
			return err
		})
		if err != nil || !exists {
			t.Errorf("tx.MessageInExists = %v, %v", exists, err)
		}
	})
}
