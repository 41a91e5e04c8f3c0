package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestWebQueries covers the queries of web.go on each database.
func TestWebQueries(t *testing.T) {
	forEachDB(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		ctx := context.Background()
		t.Run("funnels, replies and backlog", func(t *testing.T) { testWebFunnel(t, ctx, s) })
		t.Run("funnel bounces and unsubscribes", func(t *testing.T) { testWebFunnelOutcomes(t, ctx, s) })
		t.Run("contact events and attention", func(t *testing.T) { testWebEventsAttention(t, ctx, s) })
		t.Run("contact search", func(t *testing.T) { testWebSearch(t, ctx, s) })
		t.Run("webhook outbox", func(t *testing.T) { testWebhookOutbox(t, ctx, s) })
		t.Run("lock contact", func(t *testing.T) {
			id := mustUpsert(t, s, Contact{Email: "lock@example.com"})
			err := s.InTx(ctx, func(tx *Tx) error {
				c, err := tx.LockContact(ctx, id)
				if err != nil || c.Email != "lock@example.com" {
					return fmt.Errorf("LockContact = %+v, %v", c, err)
				}
				if _, err := tx.LockContact(ctx, id+1000); !errors.Is(err, ErrNotFound) {
					return fmt.Errorf("LockContact(missing) = %v, want ErrNotFound", err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		})
	})
}

func testWebFunnel(t *testing.T, ctx context.Context, s *Store) {
	now := time.Now().UTC()
	past := now.Add(-time.Hour)
	future := now.Add(time.Hour)
	var ids []int64
	for i, email := range []string{"f1@example.com", "f2@example.com", "f3@example.com"} {
		id := mustUpsert(t, s, Contact{Email: email, FirstName: fmt.Sprint("F", i)})
		ids = append(ids, id)
	}
	enroll := func(contact int64, seq string, due time.Time) int64 {
		id, err := s.CreateEnrollment(ctx, Enrollment{ContactID: contact, Sequence: seq, Account: "sales", DueAt: &due})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	e1 := enroll(ids[0], "welcome", past)
	e2 := enroll(ids[1], "welcome", past)
	e3 := enroll(ids[2], "welcome", future)
	enroll(ids[0], "other", future)
	n := 0
	out := func(enr, contact int64, step int, status string) int64 {
		n++
		id, err := s.InsertMessageOut(ctx, MessageOut{EnrollmentID: enr, ContactID: contact, Step: step, Account: "sales",
			Status: status, MessageID: fmt.Sprintf("<m%d@example.com>", n)})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	m1 := out(e1, ids[0], 0, MessageSent)
	m2 := out(e2, ids[1], 0, MessageSent)
	out(e3, ids[2], 0, MessageFailed)
	out(e1, ids[0], 1, MessageQueued)
	out(e2, ids[1], 1, MessageCancelled)
	in := func(uid uint32, kind, intent string, contact, msg *int64, received time.Time) {
		if _, err := s.InsertMessageIn(ctx, MessageIn{Account: "sales", Mailbox: "INBOX", UIDValidity: 1, UID: uid,
			Kind: kind, Intent: intent, Excerpt: fmt.Sprint("text ", uid), ContactID: contact, MessageOutID: msg, ReceivedAt: received}); err != nil {
			t.Fatal(err)
		}
	}
	in(1, "reply", "interested", &ids[0], &m1, now.Add(-3*time.Minute))
	in(2, "reply", "other", &ids[0], &m1, now.Add(-2*time.Minute)) // a second reply to the same message counts once
	in(3, "autoreply", "", &ids[1], &m2, now.Add(-time.Minute))
	in(4, "bounce", "", nil, nil, now)

	fs, err := s.Funnels(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []FunnelStep{
		{Step: 0, Sent: 2, Failed: 1, Replied: 1},
		{Step: 1, Queued: 1, Cancelled: 1},
	}
	if got := fs["welcome"]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("funnel = %+v, want %+v", got, want)
	}
	if _, ok := fs["other"]; ok {
		t.Errorf("a sequence without messages has a funnel: %+v", fs["other"])
	}
	one, err := s.Funnels(ctx, "other")
	if err != nil || len(one) != 0 {
		t.Errorf("Funnels(other) = %v, %v", one, err)
	}

	ms, err := s.RecentMessagesIn(ctx, InboundFilter{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[0].UID != 4 || ms[1].UID != 3 || ms[2].UID != 2 {
		t.Fatalf("recent = %+v, want uids 4, 3, 2", ms)
	}
	if ms[0].ContactEmail != "" || ms[1].ContactEmail != "f2@example.com" || ms[1].ContactFirstName != "F1" {
		t.Errorf("contact columns: %+v / %+v", ms[0], ms[1])
	}
	if ms[1].ReceivedAt.Location() != time.UTC || !ms[1].ReceivedAt.Equal(now.Add(-time.Minute).Truncate(time.Microsecond)) {
		t.Errorf("received_at = %v", ms[1].ReceivedAt)
	}
	replies, err := s.RecentMessagesIn(ctx, InboundFilter{Kinds: []string{"reply"}, ContactID: ids[0]})
	if err != nil || len(replies) != 2 {
		t.Errorf("replies of f1 = %+v, %v", replies, err)
	}

	n2, err := s.DueBacklog(ctx, now)
	if err != nil || n2 != 2 {
		t.Errorf("DueBacklog = %d, %v; want 2", n2, err)
	}
}

func testWebSearch(t *testing.T, ctx context.Context, s *Store) {
	for i := range 7 {
		stage := "lead"
		if i%2 == 1 {
			stage = "prospect"
		}
		mustUpsert(t, s, Contact{Email: fmt.Sprintf("search%d@acme.test", i), FirstName: "Zoë", Company: "Under_Score", Stage: stage})
	}
	mustUpsert(t, s, Contact{Email: "other@elsewhere.test", Company: "Undersc0re"})
	page, total, err := s.SearchContacts(ctx, ContactQuery{Search: "ACME", Limit: 3, Offset: 3})
	if err != nil {
		t.Fatal(err)
	}
	if total != 7 || len(page) != 3 || page[0].Email != "search3@acme.test" {
		t.Errorf("page = %v (total %d)", emails(page), total)
	}
	_, total, _ = s.SearchContacts(ctx, ContactQuery{Search: "acme", Stage: "prospect"})
	if total != 3 {
		t.Errorf("prospects at acme = %d, want 3", total)
	}
	// '_' is a literal, not LIKE's any-character.
	_, total, _ = s.SearchContacts(ctx, ContactQuery{Search: "under_"})
	if total != 7 {
		t.Errorf("search under_ = %d, want 7", total)
	}
	_, total, _ = s.SearchContacts(ctx, ContactQuery{Search: "zoë"})
	if total != 7 {
		t.Errorf("search by first name = %d, want 7", total)
	}
}

func emails(cs []Contact) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Email
	}
	return out
}

func testWebhookOutbox(t *testing.T, ctx context.Context, s *Store) {
	now := time.Now().UTC()
	var a, b int64
	err := s.InTx(ctx, func(tx *Tx) (err error) {
		if a, err = tx.InsertWebhookDelivery(ctx, WebhookDelivery{URL: "https://a.test/hook", Payload: `{"event":"x"}`}); err != nil {
			return err
		}
		later := now.Add(time.Hour)
		b, err = tx.InsertWebhookDelivery(ctx, WebhookDelivery{URL: "https://b.test/hook", Payload: `{}`, NextAttemptAt: &later})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimWebhookDeliveries(ctx, now.Add(time.Second), 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != a || got[0].Attempts != 1 || got[0].Payload != `{"event":"x"}` {
		t.Fatalf("claimed %+v, want only %d with one attempt", got, a)
	}
	// Leased: not claimed again until the lease runs out.
	if again, _ := s.ClaimWebhookDeliveries(ctx, now.Add(30*time.Second), 10, time.Minute); len(again) != 0 {
		t.Fatalf("claimed again during the lease: %+v", again)
	}
	if err := s.MarkWebhookRetry(ctx, a, now.Add(2*time.Minute), "HTTP 500"); err != nil {
		t.Fatal(err)
	}
	got, _ = s.ClaimWebhookDeliveries(ctx, now.Add(3*time.Minute), 10, time.Minute)
	if len(got) != 1 || got[0].Attempts != 2 {
		t.Fatalf("retry claim = %+v", got)
	}
	if err := s.MarkWebhookDelivered(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkWebhookDelivered(ctx, a); !errors.Is(err, ErrNotFound) {
		t.Errorf("finishing a delivered row again: %v, want ErrNotFound", err)
	}
	if err := s.MarkWebhookFailed(ctx, b, "gone"); err != nil {
		t.Fatal(err)
	}
	d, err := s.WebhookDeliveryByID(ctx, a)
	if err != nil || d.Status != WebhookDelivered || d.LastError != "" || d.NextAttemptAt != nil {
		t.Errorf("delivered row = %+v, %v", d, err)
	}
	failed, err := s.WebhookDeliveries(ctx, WebhookFilter{Status: WebhookFailed})
	if err != nil || len(failed) != 1 || failed[0].ID != b || failed[0].LastError != "gone" {
		t.Errorf("failed rows = %+v, %v", failed, err)
	}
	if _, err := s.ClaimWebhookDeliveries(ctx, now, 0, time.Minute); err == nil {
		t.Error("a zero limit is accepted")
	}
}

// testWebFunnelOutcomes checks the bounced and unsubscribed definitions of
// FunnelStep on a sequence of its own.
func testWebFunnelOutcomes(t *testing.T, ctx context.Context, s *Store) {
	now := time.Now().UTC()
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	n := 0
	contact := func(email string) (int64, int64) {
		id := mustUpsert(t, s, Contact{Email: email})
		due := now.Add(time.Hour)
		enr, err := s.CreateEnrollment(ctx, Enrollment{ContactID: id, Sequence: "drip", Account: "sales", DueAt: &due})
		if err != nil {
			t.Fatal(err)
		}
		return id, enr
	}
	out := func(enr, contact int64, step int, status string, sent *time.Time) (int64, string) {
		n++
		mid := fmt.Sprintf("<drip%d@example.com>", n)
		id, err := s.InsertMessageOut(ctx, MessageOut{EnrollmentID: enr, ContactID: contact, Step: step, Account: "sales",
			Status: status, MessageID: mid, SentAt: sent})
		if err != nil {
			t.Fatal(err)
		}
		return id, mid
	}
	uid := uint32(100)
	in := func(kind, intent, class string, contact, msg int64) {
		uid++
		if _, err := s.InsertMessageIn(ctx, MessageIn{Account: "sales", Mailbox: "INBOX", UIDValidity: 1, UID: uid,
			Kind: kind, Intent: intent, BounceClass: class, ContactID: &contact, MessageOutID: &msg, ReceivedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	// a: steps 1 and 2 sent, then unsubscribed: counted on step 2 only.
	a, ea := contact("a@drip.test")
	out(ea, a, 0, MessageSent, at(-3*time.Hour))
	out(ea, a, 1, MessageSent, at(-2*time.Hour))
	if err := s.AddEvent(ctx, a, "unsubscribed", map[string]any{"source": "one-click"}); err != nil {
		t.Fatal(err)
	}
	// b: a hard DSN matched to step 1.
	b, eb := contact("b@drip.test")
	mb, _ := out(eb, b, 0, MessageSent, at(-3*time.Hour))
	in("bounce", "", "hard", b, mb)
	// c: refused at SMTP (failed, with the bounced event naming it).
	c, ec := contact("c@drip.test")
	_, midC := out(ec, c, 0, MessageFailed, nil)
	if err := s.AddEvent(ctx, c, "bounced", map[string]any{"class": "hard", "source": "smtp", "message_id": midC}); err != nil {
		t.Fatal(err)
	}
	// d: a soft bounce is not a bounce here.
	d, ed := contact("d@drip.test")
	md, _ := out(ed, d, 0, MessageSent, at(-3*time.Hour))
	in("bounce", "", "soft", d, md)
	// e: replied asking to be removed: replied and unsubscribed.
	e, ee := contact("e@drip.test")
	me, _ := out(ee, e, 0, MessageSent, at(-3*time.Hour))
	in("reply", "unsubscribe", "", e, me)
	// f: unsubscribed before anything was sent: counted nowhere.
	f, ef := contact("f@drip.test")
	if err := s.AddEvent(ctx, f, "unsubscribed", nil); err != nil {
		t.Fatal(err)
	}
	out(ef, f, 0, MessageSent, at(time.Hour))

	fs, err := s.Funnels(ctx, "drip")
	if err != nil {
		t.Fatal(err)
	}
	want := []FunnelStep{
		{Step: 0, Sent: 5, Failed: 1, Replied: 1, Bounced: 2, Unsubscribed: 1},
		{Step: 1, Sent: 1, Unsubscribed: 1},
	}
	if got := fs["drip"]; fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("funnel = %+v\nwant     %+v", got, want)
	}
}

func testWebEventsAttention(t *testing.T, ctx context.Context, s *Store) {
	id := mustUpsert(t, s, Contact{Email: "timeline@example.com", FirstName: "Tim"})
	for i := range 5 {
		if err := s.AddEvent(ctx, id, "note", map[string]any{"text": fmt.Sprint("note ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.ContactEvents(ctx, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	// mustUpsert wrote a "created" event first.
	if len(all) != 6 || all[0].Type != "note" || all[5].Type != "created" {
		t.Fatalf("events = %+v", all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID >= all[i-1].ID {
			t.Fatalf("events not newest first: %+v", all)
		}
	}
	page, err := s.ContactEvents(ctx, id, all[1].ID, 2)
	if err != nil || len(page) != 2 || page[0].ID != all[2].ID || page[1].ID != all[3].ID {
		t.Fatalf("page before %d = %+v, %v", all[1].ID, page, err)
	}
	if page[0].CreatedAt.Location() != time.UTC || string(page[0].Data) == "" {
		t.Errorf("event = %+v", page[0])
	}

	due := time.Now().Add(time.Hour)
	enr, err := s.CreateEnrollment(ctx, Enrollment{ContactID: id, Sequence: "attention", Account: "sales", DueAt: &due})
	if err != nil {
		t.Fatal(err)
	}
	before, _, err := s.NeedsAttention(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range []string{MessageFailed, MessageUncertain, MessageSent} {
		if _, err := s.InsertMessageOut(ctx, MessageOut{EnrollmentID: enr, ContactID: id, Step: i, Account: "sales",
			Status: st, MessageID: fmt.Sprintf("<att%d@example.com>", i), LastError: "550 no"}); err != nil {
			t.Fatal(err)
		}
	}
	ms, total, err := s.NeedsAttention(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if total != len(before)+2 || len(ms) != 1 || ms[0].ContactEmail != "timeline@example.com" || ms[0].Sequence != "attention" ||
		ms[0].Status != MessageUncertain || ms[0].LastError != "550 no" {
		t.Errorf("attention = %+v (total %d, %d before)", ms, total, len(before))
	}
}
