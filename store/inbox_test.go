package store

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
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
			// UID 2 is stored but not asked for (a range is read); a
			// sparse set (a list is read); UIDs alone.
			for _, c := range []struct {
				uids []uint32
				want []uint32
			}{
				{[]uint32{1, 3}, []uint32{1}},
				{[]uint32{2, 100000}, []uint32{2}},
				{[]uint32{4294967295}, nil},
			} {
				stored, seen, err := tx.MessagesInSeen(ctx, "sales", "INBOX", 7, c.uids, nil)
				if err != nil {
					return err
				}
				if len(stored) != len(c.want) || len(seen) != 0 {
					t.Errorf("MessagesInSeen(%v) = %v, %v; want %v", c.uids, stored, seen, c.want)
				}
				for _, u := range c.want {
					if !stored[u] {
						t.Errorf("MessagesInSeen(%v) = %v; want %v", c.uids, stored, c.want)
					}
				}
			}
			// More than one statement takes.
			var many []uint32
			var manyIDs []string
			for i := range 1200 {
				many = append(many, uint32(i+1))
				manyIDs = append(manyIDs, fmt.Sprintf("m%d@x", i))
			}
			manyIDs[700], manyIDs[1100] = "a@x", "b@x"
			stored, seen, err = tx.MessagesInSeen(ctx, "sales", "INBOX", 7, many, manyIDs)
			if err != nil {
				return err
			}
			if len(stored) != 2 || !stored[1] || !stored[2] || len(seen) != 2 || !seen["a@x"] || !seen["b@x"] {
				t.Errorf("MessagesInSeen(1200 of each) = %v, %v; want 1, 2 and a@x, b@x", stored, seen)
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

		// CheckpointAndSeen answers as MessagesInSeen and saves the
		// checkpoint, the last one saved in the transaction winning; in
		// chunks too.
		var many []uint32
		var manyIDs []string
		for i := range 1200 {
			many = append(many, uint32(i+1))
			manyIDs = append(manyIDs, fmt.Sprintf("m%d@x", i))
		}
		manyIDs[700] = "a@x"
		err = s.InTx(ctx, func(tx *Tx) error {
			for _, c := range []struct {
				uids []uint32
				ids  []string
				last uint32
			}{
				{[]uint32{1, 2, 3}, []string{"a@x", "c@x", "", "b@x", "A@X"}, 3},
				{many, manyIDs, 1200},
				{nil, nil, 5},
				{[]uint32{2}, nil, 2},
			} {
				want := Checkpoint{Account: "sales", Mailbox: "INBOX", UIDValidity: 7, LastUID: c.last}
				stored, seen, err := tx.CheckpointAndSeen(ctx, want, c.uids, c.ids)
				if err != nil {
					return err
				}
				wantStored, wantSeen, err := tx.MessagesInSeen(ctx, "sales", "INBOX", 7, c.uids, c.ids)
				if err != nil {
					return err
				}
				if !reflect.DeepEqual(stored, wantStored) || !reflect.DeepEqual(seen, wantSeen) {
					t.Errorf("CheckpointAndSeen(%d UIDs) = %v, %v; MessagesInSeen says %v, %v", len(c.uids), stored, seen, wantStored, wantSeen)
				}
				got, err := tx.Checkpoint(ctx, "sales", "INBOX")
				if err != nil || got.UIDValidity != 7 || got.LastUID != c.last {
					t.Errorf("checkpoint after CheckpointAndSeen(last %d) = %+v, %v", c.last, got, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if cp, err := s.Checkpoint(ctx, "sales", "INBOX"); err != nil || cp.LastUID != 2 {
			t.Errorf("committed checkpoint = %+v, %v; want the last saved, UID 2", cp, err)
		}
		if err := s.InTx(ctx, func(tx *Tx) error {
			_, err := tx.Exec(ctx, `DELETE FROM imap_checkpoints`)
			return err
		}); err != nil {
			t.Fatal(err)
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

// The batch forms answer and write exactly what the per-message forms do.
func TestInboxBatchForms(t *testing.T) {
	forEachDB(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		clock := setClock(s, time.Date(2026, 11, 27, 9, 30, 15, 123456789, time.UTC))

		// Contacts, enrollments in every status and on two accounts, and
		// the messages sent to them.
		ann := mustUpsert(t, s, Contact{Email: "ann@x.com"})
		bob := mustUpsert(t, s, Contact{Email: "bob@x.com"})
		cat := mustUpsert(t, s, Contact{Email: "cat@x.com"})
		dan := mustUpsert(t, s, Contact{Email: "dan@x.com"})
		eve := mustUpsert(t, s, Contact{Email: "eve@x.com"})
		for _, e := range []Enrollment{
			{ContactID: ann, Sequence: "intro", Account: "sales"},
			{ContactID: bob, Sequence: "intro", Account: "sales", Status: EnrollmentPaused},
			{ContactID: cat, Sequence: "intro", Account: "sales", Status: EnrollmentSnoozed},
			{ContactID: dan, Sequence: "intro", Account: "sales", Status: EnrollmentFinished},
			{ContactID: eve, Sequence: "intro", Account: "other"},
		} {
			eid, err := s.CreateEnrollment(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			mo := MessageOut{EnrollmentID: eid, ContactID: e.ContactID, Account: e.Account, MessageID: fmt.Sprintf("out-%d@x", e.ContactID)}
			if _, err := s.InsertMessageOut(ctx, mo); err != nil {
				t.Fatal(err)
			}
		}
		err := s.InTx(ctx, func(tx *Tx) error {
			ids := []string{fmt.Sprintf("out-%d@x", ann), "", "nope@x", fmt.Sprintf("OUT-%d@X", bob), fmt.Sprintf("out-%d@x", eve), fmt.Sprintf("out-%d@x", ann)}
			emails := []string{"ann@x.com", " BOB@x.com ", "cat@x.com", "dan@x.com", "eve@x.com", "who@x.com", "", "Ann@X.com"}
			for _, tc := range []struct {
				ids, emails []string
			}{{ids, emails}, {ids, nil}, {nil, emails}} {
				sent, live, err := tx.MatchesOn(ctx, "sales", tc.ids, tc.emails)
				if err != nil {
					return err
				}
				for _, id := range tc.ids {
					_, err := tx.MessageOutByMessageID(ctx, id)
					if want := err == nil; sent[id] != want {
						t.Errorf("MatchesOn sent[%q] = %v; MessageOutByMessageID says %v", id, sent[id], want)
					}
				}
				if len(sent) != min(len(tc.ids), 2) {
					t.Errorf("MatchesOn sent = %v, want the two sent", sent)
				}
				if len(live) != min(len(tc.emails), 6) {
					t.Errorf("MatchesOn live = %v, want the 6 addresses of contacts", live)
				}
				for _, e := range tc.emails {
					c, err := tx.ContactByEmail(ctx, e)
					isContact := err == nil
					onSales := false
					if isContact {
						es, err := tx.LiveEnrollments(ctx, c.ID)
						if err != nil {
							return err
						}
						for _, en := range es {
							onSales = onSales || en.Account == "sales"
						}
					}
					if v, ok := live[e]; ok != isContact || v != onSales {
						t.Errorf("MatchesOn live[%q] = %v, %v; want %v, %v", e, v, ok, onSales, isContact)
					}
				}
			}
			// More of each than one statement takes.
			var manyIDs, manyEmails []string
			for i := range 1200 {
				manyIDs = append(manyIDs, fmt.Sprintf("many-%d@x", i))
				manyEmails = append(manyEmails, fmt.Sprintf("many-%d@x.com", i))
			}
			manyIDs[700], manyEmails[1100] = fmt.Sprintf("out-%d@x", eve), "CAT@x.com"
			sent, live, err := tx.MatchesOn(ctx, "sales", manyIDs, manyEmails)
			if err != nil {
				return err
			}
			if len(sent) != 1 || !sent[manyIDs[700]] || len(live) != 1 || !live["CAT@x.com"] {
				t.Errorf("MatchesOn(1200 of each) = %v, %v; want eve's message and cat", sent, live)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		// Awkward text, both kinds of time, ties and NULLs; one UID already
		// recorded, one given twice; more rows than one statement takes.
		texts := []string{"", "plain", `quote " and \ backslash`, "{braces}, commas", "NULL", "naïve — “quotes” 😀", "it's", "line\nbreak\ttab",
			`\N`, "\\.", "cr\r\nlf"}
		mk := func(account string, i int) MessageIn {
			m := MessageIn{
				Account: account, Mailbox: "INBOX", UIDValidity: 4294967295, UID: uint32(i + 1),
				MessageID: fmt.Sprintf("in-%d@x", i), FromAddr: texts[i%len(texts)], Subject: texts[(i+1)%len(texts)],
				Kind: "reply", Intent: texts[(i+2)%len(texts)], BounceClass: texts[(i+3)%len(texts)], Excerpt: texts[(i+4)%len(texts)],
			}
			if i%3 != 0 {
				m.ReceivedAt = time.Date(2026, 11, 1, 8, 0, 0, i*1001, time.FixedZone("CET", 3600))
			}
			if i%5 == 1 {
				m.ContactID = &ann
			}
			if i == 7 {
				m.UID = 4294967295
			}
			return m
		}
		const n = 1203
		var batch, single []MessageIn
		for i := range n {
			batch = append(batch, mk("batch", i))
			single = append(single, mk("single", i))
		}
		// UID 11 is already recorded, on both sides.
		for _, m := range []MessageIn{batch[10], single[10]} {
			if _, err := s.InsertMessageIn(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		clock.t = clock.t.Add(time.Minute)
		batch = append(batch, mk("batch", 20)) // 20 twice: the first wins
		batch[len(batch)-1].Subject = "second"
		var ids []int64
		err = s.InTx(ctx, func(tx *Tx) (err error) {
			ids, err = tx.InsertMessagesInOnce(ctx, batch)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		err = s.InTx(ctx, func(tx *Tx) error {
			for i, m := range single {
				if _, inserted, err := tx.InsertMessageInOnce(ctx, m); err != nil || inserted == (i == 10) {
					return fmt.Errorf("InsertMessageInOnce(%d) = %v, %v", i, inserted, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		idOf := map[uint32]int64{}
		for i, id := range ids {
			if want := i != 10 && i != len(batch)-1; (id != 0) != want {
				t.Errorf("ids[%d] = %d, want inserted %v", i, id, want)
			}
			if id != 0 {
				idOf[batch[i].UID] = id
			}
		}
		read := func(account string) []MessageIn {
			var out []MessageIn
			err := s.InTx(ctx, func(tx *Tx) error {
				return tx.Select(ctx, &out, `SELECT `+messageInColumns+` FROM messages_in WHERE account = ? ORDER BY uid`, account)
			})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		got, want := read("batch"), read("single")
		if len(got) != n || len(want) != n {
			t.Fatalf("%d rows by the batch, %d one by one; want %d", len(got), len(want), n)
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.UID != 11 && idOf[g.UID] != g.ID {
				t.Errorf("row uid %d has id %d, InsertMessagesInOnce said %d", g.UID, g.ID, idOf[g.UID])
			}
			g.ID, w.ID, g.Account, w.Account = 0, 0, "", ""
			g.ReceivedAt, w.ReceivedAt = g.ReceivedAt.UTC(), w.ReceivedAt.UTC()
			g.CreatedAt, w.CreatedAt = g.CreatedAt.UTC(), w.CreatedAt.UTC()
			if !reflect.DeepEqual(g, w) {
				t.Errorf("row %d:\n batch  %+v\n single %+v", i, g, w)
			}
		}
		if got[20].Subject == "second" {
			t.Error("the second row for one UID replaced the first")
		}

		// InsertMessagesIn (COPY on Postgres) records what the single
		// inserts do, awkward text and NULLs included, the first of two
		// rows for one UID; it fails as a whole, with ErrDuplicate, on a
		// UID already recorded.
		var plain []MessageIn
		for i := range n {
			plain = append(plain, mk("plain", i))
		}
		plain = slices.Insert(plain, 3, mk("plain", 1))
		plain[3].Subject = "second"
		err = s.InTx(ctx, func(tx *Tx) error {
			inserted, err := tx.InsertMessagesIn(ctx, plain)
			if err != nil {
				return err
			}
			for i, ok := range inserted {
				if ok != (i != 3) {
					t.Errorf("InsertMessagesIn inserted[%d] = %v", i, ok)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got = read("plain")
		if len(got) != n {
			t.Fatalf("InsertMessagesIn recorded %d rows, want %d", len(got), n)
		}
		for i := range got {
			g, w := got[i], want[i]
			g.ID, w.ID, g.Account, w.Account = 0, 0, "", ""
			g.ReceivedAt, w.ReceivedAt = g.ReceivedAt.UTC(), w.ReceivedAt.UTC()
			g.CreatedAt, w.CreatedAt = g.CreatedAt.UTC(), w.CreatedAt.UTC()
			if g.UID == 11 { // recorded before the clock moved on one side
				g.CreatedAt = w.CreatedAt
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("row %d:\n InsertMessagesIn %+v\n single           %+v", i, g, w)
			}
		}
		err = s.InTx(ctx, func(tx *Tx) error {
			_, err := tx.InsertMessagesIn(ctx, []MessageIn{mk("plain", n), mk("plain", 2)})
			return err
		})
		if !errors.Is(err, ErrDuplicate) {
			t.Errorf("InsertMessagesIn of a recorded UID = %v; want ErrDuplicate", err)
		}
		if rows := read("plain"); len(rows) != n {
			t.Errorf("%d rows after the failed InsertMessagesIn, want %d", len(rows), n)
		}
	})
}
