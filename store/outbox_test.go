package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// obFixture is one contact enrolled in a sequence, with helpers to queue
// its steps.
type obFixture struct {
	s          *Store
	contactID  int64
	enrollment int64
	email      string
}

func obSeed(t *testing.T, s *Store, email string) obFixture {
	t.Helper()
	cid, err := s.CreateContact(ctx, Contact{Email: email, FirstName: "Ann"})
	if err != nil {
		t.Fatalf("CreateContact(%s): %v", email, err)
	}
	eid, err := s.CreateEnrollment(ctx, Enrollment{ContactID: cid, Sequence: "intro", Account: "main"})
	if err != nil {
		t.Fatalf("CreateEnrollment: %v", err)
	}
	return obFixture{s: s, contactID: cid, enrollment: eid, email: email}
}

// queue inserts step as a queued message due at due.
func (f obFixture) queue(t *testing.T, step int, due time.Time) MessageOut {
	t.Helper()
	m := MessageOut{
		EnrollmentID: f.enrollment, Step: step, ContactID: f.contactID, Account: "main",
		MessageID: fmt.Sprintf("s%d.e%d.%s", step, f.enrollment, f.email),
		Subject:   fmt.Sprintf("Step %d", step), Sequence: "intro", Template: "t",
		ToAddr: f.email, ToName: "Ann", FromAddr: "me@seller.test", FromName: "Me",
		BodyText: "hello", NextAttemptAt: &due,
	}
	id, err := f.s.InsertMessageOut(ctx, m)
	if err != nil {
		t.Fatalf("InsertMessageOut: %v", err)
	}
	got, err := f.s.MessageOutByID(ctx, id)
	if err != nil {
		t.Fatalf("MessageOutByID: %v", err)
	}
	return got
}

func obMessage(t *testing.T, s *Store, id int64) MessageOut {
	t.Helper()
	m, err := s.MessageOutByID(ctx, id)
	if err != nil {
		t.Fatalf("MessageOutByID(%d): %v", id, err)
	}
	return m
}

func obClaim(t *testing.T, s *Store, now time.Time, limit int, blocked ...string) (claimed, cancelled []MessageOut) {
	t.Helper()
	claimed, cancelled, err := s.ClaimForSend(ctx, "main", now, limit, blocked)
	if err != nil {
		t.Fatalf("ClaimForSend: %v", err)
	}
	return claimed, cancelled
}

func obIDs(ms []MessageOut) []int64 {
	var out []int64
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestOutboxStore(t *testing.T) {
	forEachDB(t, func(t *testing.T, db testDB) {
		for _, c := range outboxCases {
			t.Run(c.name, func(t *testing.T) { c.fn(t, db.open(t)) })
		}
	})
}

var outboxCases = []struct {
	name string
	fn   func(t *testing.T, s *Store)
}{
	{"claim_due_in_queue_order", testClaimDueInQueueOrder},
	{"cancel_reasons", testCancelReasons},
	{"mark_sent_runs_hook_in_tx", testMarkSentHook},
	{"mark_sent_batch_records_each_once", testMarkSentBatch},
	{"advance_never_undoes_a_stop", testAdvanceNeverUndoesAStop},
	{"insert_messages_once_per_step", testInsertMessagesOutOnce},
	{"batch_forms_keep_values_exactly", testBatchFormsKeepValues},
	{"retry_and_unclaim", testRetryAndUnclaim},
	{"hard_bounce_suppresses", testHardBounce},
	{"uncertain_expire_requeue", testUncertainExpireRequeue},
	{"list_and_next_queued", testListAndNextQueued},
	{"wrong_status_refused", testWrongStatus},
}

func TestGuarantee2_ReplyBeforeSendingWins(t *testing.T) {
	forEachDB(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		now := time.Now()
		f := obSeed(t, s, "ann@example.com")
		m := f.queue(t, 0, now.Add(-time.Minute))

		// The reply handler stops the enrollment and commits before the
		// sender's claim.
		if err := s.SetEnrollmentStatus(ctx, f.enrollment, EnrollmentStopped); err != nil {
			t.Fatal(err)
		}
		claimed, cancelled := obClaim(t, s, now, 10)
		if len(claimed) != 0 {
			t.Fatalf("claimed %v after the reply stopped the enrollment", obIDs(claimed))
		}
		if len(cancelled) != 1 || cancelled[0].ID != m.ID {
			t.Fatalf("cancelled = %v, want [%d]", obIDs(cancelled), m.ID)
		}
		got := obMessage(t, s, m.ID)
		if got.Status != MessageCancelled || got.LastError == "" || got.Attempts != 0 {
			t.Fatalf("row = %s attempts %d error %q, want cancelled with a reason and no attempt", got.Status, got.Attempts, got.LastError)
		}
		evs := timeline(t, s, f.contactID)
		last := evs[len(evs)-1]
		if last.Type != EventSendCancelled || decode(t, last.Data)["reason"] != got.LastError {
			t.Fatalf("last event = %s %s, want send_cancelled with the reason", last.Type, last.Data)
		}
		// And it stays out: a later claim finds nothing.
		if c, x := obClaim(t, s, now.Add(time.Hour), 10); len(c)+len(x) != 0 {
			t.Fatalf("second claim returned %v / %v", obIDs(c), obIDs(x))
		}
	})
}

// The queue is first in, first out among due rows: a retry keeps its place
// (its id), and a row's due time only decides whether it may go yet.
func testClaimDueInQueueOrder(t *testing.T, s *Store) {
	now := time.Now().UTC()
	a := obSeed(t, s, "a@example.com")
	b := obSeed(t, s, "b@example.com")
	older := b.queue(t, 0, now.Add(-1*time.Minute))
	later := a.queue(t, 0, now.Add(-5*time.Minute))
	future := a.queue(t, 1, now.Add(time.Hour))

	claimed, cancelled := obClaim(t, s, now, 1)
	if len(cancelled) != 0 || !slices.Equal(obIDs(claimed), []int64{older.ID}) {
		t.Fatalf("claim(limit 1) = %v / %v, want [%d]", obIDs(claimed), obIDs(cancelled), older.ID)
	}
	c := claimed[0]
	if c.Status != MessageSending || c.Attempts != 1 || c.BodyText != "hello" || c.ToAddr != "b@example.com" {
		t.Fatalf("claimed row = %+v", c)
	}
	if got := obMessage(t, s, older.ID); got.Status != MessageSending || got.Attempts != 1 || !got.UpdatedAt.Equal(dbTime(now)) {
		t.Fatalf("stored row = %s attempts %d updated %v", got.Status, got.Attempts, got.UpdatedAt)
	}
	claimed, _ = obClaim(t, s, now, 10)
	if !slices.Equal(obIDs(claimed), []int64{later.ID}) {
		t.Fatalf("second claim = %v, want [%d] (the future row is not due)", obIDs(claimed), later.ID)
	}
	claimed, _ = obClaim(t, s, now.Add(2*time.Hour), 10)
	if !slices.Equal(obIDs(claimed), []int64{future.ID}) {
		t.Fatalf("claim later = %v, want [%d]", obIDs(claimed), future.ID)
	}
	// Other accounts' rows are not claimed.
	if c, _, err := s.ClaimForSend(ctx, "other", now.Add(3*time.Hour), 10, nil); err != nil || len(c) != 0 {
		t.Fatalf("claim for another account = %v, %v", obIDs(c), err)
	}
}

func testCancelReasons(t *testing.T, s *Store) {
	now := time.Now()
	due := now.Add(-time.Minute)
	ok := obSeed(t, s, "ok@example.com").queue(t, 0, due)
	paused := obSeed(t, s, "paused@example.com")
	pausedMsg := paused.queue(t, 0, due)
	if err := s.SetEnrollmentStatus(ctx, paused.enrollment, EnrollmentPaused); err != nil {
		t.Fatal(err)
	}
	flagged := obSeed(t, s, "flagged@example.com")
	flaggedMsg := flagged.queue(t, 0, due)
	mustExec(t, s, `UPDATE contacts SET suppressed = TRUE WHERE id = ?`, flagged.contactID)
	lost := obSeed(t, s, "lost@example.com")
	lostMsg := lost.queue(t, 0, due)
	if _, err := s.SetStage(ctx, lost.email, "not_interested", "reply"); err != nil {
		t.Fatal(err)
	}
	addr := obSeed(t, s, "unsub@example.com")
	addrMsg := addr.queue(t, 0, due)
	mustExec(t, s, `INSERT INTO suppressions (value, kind, reason, created_at) VALUES (?, ?, ?, ?)`,
		"unsub@example.com", SuppressAddress, "unsubscribed", now)
	dom := obSeed(t, s, "x@blocked.test")
	domMsg := dom.queue(t, 0, due)
	if err := s.Suppress(ctx, "blocked.test", SuppressDomain, "competitor"); err != nil {
		t.Fatal(err)
	}

	claimed, cancelled := obClaim(t, s, now, 100, "not_interested", "unsubscribed")
	if !slices.Equal(obIDs(claimed), []int64{ok.ID}) {
		t.Fatalf("claimed = %v, want only [%d]", obIDs(claimed), ok.ID)
	}
	want := map[int64]string{
		pausedMsg.ID:  "is paused",
		flaggedMsg.ID: "contact flagged@example.com is suppressed",
		lostMsg.ID:    "stage not_interested",
		addrMsg.ID:    "address unsub@example.com is suppressed (unsubscribed)",
		domMsg.ID:     "suppressed",
	}
	if len(cancelled) != len(want) {
		t.Fatalf("cancelled %v, want %d rows", obIDs(cancelled), len(want))
	}
	for id, frag := range want {
		got := obMessage(t, s, id)
		if got.Status != MessageCancelled || !strings.Contains(got.LastError, frag) {
			t.Errorf("message %d: %s %q, want cancelled mentioning %q", id, got.Status, got.LastError, frag)
		}
	}
}

func testMarkSentHook(t *testing.T, s *Store) {
	now := time.Now()
	f := obSeed(t, s, "ann@example.com")
	m := f.queue(t, 0, now)
	obClaim(t, s, now, 10)

	// A failing hook rolls the whole change back.
	boom := errors.New("boom")
	if err := s.MarkSent(ctx, m.ID, now, func(tx *Tx, got MessageOut) error {
		if got.Status != MessageSent {
			t.Errorf("hook saw status %s", got.Status)
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("MarkSent with failing hook = %v, want boom", err)
	}
	if got := obMessage(t, s, m.ID); got.Status != MessageSending {
		t.Fatalf("after rollback status = %s", got.Status)
	}

	sentAt := now.Add(time.Second)
	err := s.MarkSent(ctx, m.ID, sentAt, func(tx *Tx, got MessageOut) error {
		return tx.SetEnrollmentStatus(ctx, got.EnrollmentID, EnrollmentFinished)
	})
	if err != nil {
		t.Fatalf("MarkSent: %v", err)
	}
	got := obMessage(t, s, m.ID)
	if got.Status != MessageSent || got.SentAt == nil || !got.SentAt.Equal(dbTime(sentAt)) {
		t.Fatalf("row = %s sent_at %v", got.Status, got.SentAt)
	}
	if e, _ := s.EnrollmentByID(ctx, f.enrollment); e.Status != EnrollmentFinished {
		t.Fatalf("hook change not committed: enrollment %s", e.Status)
	}
	evs := timeline(t, s, f.contactID)
	last := evs[len(evs)-1]
	d := decode(t, last.Data)
	if last.Type != EventSent || d["message_id"] != m.MessageID || d["subject"] != "Step 0" || d["sequence"] != "intro" || d["step"] != float64(0) {
		t.Fatalf("sent event = %s %s", last.Type, last.Data)
	}
}

// A group of sends is recorded as MarkSent records each: its own sent_at,
// one "sent" event per message, the hook once with all of them, all or
// nothing; a row another replica recorded meanwhile is left out.
func testMarkSentBatch(t *testing.T, s *Store) {
	now := time.Now()
	var fs []obFixture
	var ms []MessageOut
	for i := range 3 {
		f := obSeed(t, s, fmt.Sprintf("p%d@example.com", i))
		fs = append(fs, f)
		ms = append(ms, f.queue(t, 0, now))
	}
	obClaim(t, s, now, 10)
	// The third was recorded by someone else first.
	if err := s.MarkSent(ctx, ms[2].ID, now, nil); err != nil {
		t.Fatal(err)
	}
	sends := []SentMessage{{ms[1].ID, now.Add(2 * time.Second)}, {ms[0].ID, now.Add(time.Second)}, {ms[2].ID, now}}

	boom := errors.New("boom")
	if _, err := s.MarkSentBatch(ctx, sends, func(tx *Tx, got []MessageOut) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("MarkSentBatch with failing hook = %v, want boom", err)
	}
	for _, m := range ms[:2] {
		if got := obMessage(t, s, m.ID); got.Status != MessageSending {
			t.Fatalf("after rollback %s is %s, want sending", m.MessageID, got.Status)
		}
	}

	var hooked []int64
	recorded, err := s.MarkSentBatch(ctx, sends, func(tx *Tx, got []MessageOut) error {
		for _, m := range got {
			if m.Status != MessageSent {
				t.Errorf("hook saw %s with status %s", m.MessageID, m.Status)
			}
			hooked = append(hooked, m.ID)
		}
		return tx.SetEnrollmentStatus(ctx, got[0].EnrollmentID, EnrollmentFinished)
	})
	if err != nil {
		t.Fatalf("MarkSentBatch: %v", err)
	}
	if want := []int64{ms[1].ID, ms[0].ID}; !slices.Equal(obIDs(recorded), want) || !slices.Equal(hooked, want) {
		t.Fatalf("recorded %v, hook saw %v, want %v (the caller's order, without the row sent already)", obIDs(recorded), hooked, want)
	}
	for i, at := range []time.Time{now.Add(time.Second), now.Add(2 * time.Second)} {
		got := obMessage(t, s, ms[i].ID)
		if got.Status != MessageSent || got.SentAt == nil || !got.SentAt.Equal(dbTime(at)) {
			t.Errorf("%s: %s sent_at %v, want sent at %v", got.MessageID, got.Status, got.SentAt, dbTime(at))
		}
		var sent int
		for _, ev := range timeline(t, s, fs[i].contactID) {
			if ev.Type == EventSent && decode(t, ev.Data)["message_id"] == ms[i].MessageID {
				sent++
			}
		}
		if sent != 1 {
			t.Errorf("%s has %d sent events, want 1", ms[i].MessageID, sent)
		}
	}
	if e, _ := s.EnrollmentByID(ctx, fs[1].enrollment); e.Status != EnrollmentFinished {
		t.Errorf("the hook's change was not committed: enrollment %s", e.Status)
	}
	if got, err := s.MarkSentBatch(ctx, sends, nil); err != nil || len(got) != 0 {
		t.Errorf("recording the group again = %v, %v; want nothing recorded", obIDs(got), err)
	}
}

// A reply stops an enrollment while its send is being recorded: the
// recorded progress must not make it live again.
func testAdvanceNeverUndoesAStop(t *testing.T, s *Store) {
	now := time.Now()
	live := obSeed(t, s, "live@example.com")
	stopped := obSeed(t, s, "stopped@example.com")
	if err := s.SetEnrollmentStatus(ctx, stopped.enrollment, EnrollmentStopped); err != nil {
		t.Fatal(err)
	}
	due := now.Add(72 * time.Hour)
	err := s.InTx(ctx, func(tx *Tx) error {
		return tx.AdvanceEnrollments(ctx, []EnrollmentProgress{
			{ID: live.enrollment, Step: 1, Variant: "b", DueAt: &due, LastSentAt: &now},
			{ID: stopped.enrollment, Step: 1, Variant: "b", DueAt: &due, LastSentAt: &now},
		})
	})
	if err != nil {
		t.Fatalf("AdvanceEnrollments: %v", err)
	}
	e, _ := s.EnrollmentByID(ctx, live.enrollment)
	if e.Status != EnrollmentActive || e.Step != 1 || e.Variant != "b" || e.DueAt == nil || !e.DueAt.Equal(dbTime(due)) || e.LastSentAt == nil {
		t.Errorf("live enrollment = %+v, want step 1 variant b due %v", e, dbTime(due))
	}
	e, _ = s.EnrollmentByID(ctx, stopped.enrollment)
	if e.Status != EnrollmentStopped || e.Step != 0 || e.DueAt != nil {
		t.Errorf("stopped enrollment = %s step %d due %v, want it left stopped at step 0", e.Status, e.Step, e.DueAt)
	}
}

// Queuing many steps at once keeps the one-message-per-step rule: a step
// that already has a live message gets no second one, and only the new
// rows are reported.
func testInsertMessagesOutOnce(t *testing.T, s *Store) {
	now := time.Now()
	a := obSeed(t, s, "a@example.com")
	b := obSeed(t, s, "b@example.com")
	a.queue(t, 0, now)
	msg := func(f obFixture, id string) MessageOut {
		return MessageOut{EnrollmentID: f.enrollment, Step: 0, ContactID: f.contactID, Account: "main",
			MessageID: id, Subject: "Hi", Sequence: "intro", Template: "t", ToAddr: f.email,
			FromAddr: "me@seller.test", BodyText: "hello", NextAttemptAt: &now}
	}
	var inserted map[int64]int64
	err := s.InTx(ctx, func(tx *Tx) (err error) {
		inserted, err = tx.InsertMessagesOutOnce(ctx, []MessageOut{msg(a, "second@seller.test"), msg(b, "first@seller.test")})
		return err
	})
	if err != nil {
		t.Fatalf("InsertMessagesOutOnce: %v", err)
	}
	if len(inserted) != 1 || inserted[b.enrollment] == 0 {
		t.Fatalf("inserted = %v, want only enrollment %d", inserted, b.enrollment)
	}
	got := obMessage(t, s, inserted[b.enrollment])
	if got.MessageID != "first@seller.test" || got.Status != MessageQueued || got.ThreadRoot != "" {
		t.Errorf("queued row = %s %s thread_root %q", got.MessageID, got.Status, got.ThreadRoot)
	}
	if _, err := s.MessageOutByMessageID(ctx, "second@seller.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a second message for a queued step was inserted (err %v)", err)
	}
}

// The multi-row forms carry every value as the single-row ones do: text
// with the characters an array literal or a VALUES list could trip on,
// empty strings, NULL thread roots and times to the microsecond.
func testBatchFormsKeepValues(t *testing.T, s *Store) {
	f := obSeed(t, s, "quote@example.com")
	tricky := "Re: \"quoted\", {braced}, back\\slash, NULL, 'single'\nnew line\ttab é ✓"
	next := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.FixedZone("x", 3600))
	m := MessageOut{EnrollmentID: f.enrollment, Step: 0, ContactID: f.contactID, Account: "main",
		MessageID: "tricky@seller.test", Subject: tricky, Sequence: "intro", Template: "t", ToAddr: f.email,
		ToName: "", FromAddr: "me@seller.test", FromName: tricky, References: "<a@b> <c@d>",
		BodyText: tricky + "\n", BodyHTML: "<p>" + tricky + "</p>", NextAttemptAt: &next}
	var inserted map[int64]int64
	err := s.InTx(ctx, func(tx *Tx) (err error) {
		inserted, err = tx.InsertMessagesOutOnce(ctx, []MessageOut{m})
		return err
	})
	if err != nil {
		t.Fatalf("InsertMessagesOutOnce: %v", err)
	}
	got := obMessage(t, s, inserted[f.enrollment])
	if got.Subject != m.Subject || got.FromName != m.FromName || got.ToName != "" || got.ThreadRoot != "" ||
		got.References != m.References || got.BodyText != m.BodyText || got.BodyHTML != m.BodyHTML {
		t.Fatalf("stored row differs:\n got %+v\nwant %+v", got, m)
	}
	if got.NextAttemptAt == nil || !got.NextAttemptAt.Equal(next) {
		t.Fatalf("next_attempt_at = %v, want %v", got.NextAttemptAt, next)
	}
	claimed, _ := obClaim(t, s, next.Add(time.Minute), 10)
	if len(claimed) != 1 {
		t.Fatalf("claimed %d", len(claimed))
	}
	sentAt := time.Date(2026, 3, 4, 6, 0, 0, 654321000, time.UTC)
	if _, err := s.MarkSentBatch(ctx, []SentMessage{{ID: got.ID, At: sentAt}}, nil); err != nil {
		t.Fatal(err)
	}
	got = obMessage(t, s, got.ID)
	if got.Status != MessageSent || got.SentAt == nil || !got.SentAt.Equal(sentAt) {
		t.Fatalf("after MarkSentBatch: %s sent_at %v, want sent at %v", got.Status, got.SentAt, sentAt)
	}
	evs := timeline(t, s, f.contactID)
	last := evs[len(evs)-1]
	if last.Type != EventSent || decode(t, last.Data)["subject"] != tricky {
		t.Fatalf("last event = %s %s, want sent with the subject as given", last.Type, last.Data)
	}
}

func testRetryAndUnclaim(t *testing.T, s *Store) {
	now := time.Now()
	f := obSeed(t, s, "ann@example.com")
	m := f.queue(t, 0, now)
	n := f.queue(t, 1, now)
	obClaim(t, s, now, 10)
	next := now.Add(2 * time.Minute)
	if err := s.MarkRetry(ctx, m.ID, next, "451 4.2.0 try later"); err != nil {
		t.Fatal(err)
	}
	got := obMessage(t, s, m.ID)
	if got.Status != MessageQueued || got.NextAttemptAt == nil || !got.NextAttemptAt.Equal(dbTime(next)) || got.LastError != "451 4.2.0 try later" || got.Attempts != 1 {
		t.Fatalf("after retry: %+v", got)
	}
	if err := s.Unclaim(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	if got := obMessage(t, s, n.ID); got.Status != MessageQueued || got.Attempts != 0 {
		t.Fatalf("after unclaim: %s attempts %d", got.Status, got.Attempts)
	}
	if c, _ := obClaim(t, s, now, 10); !slices.Equal(obIDs(c), []int64{n.ID}) {
		t.Fatalf("claim before retry time = %v, want [%d]", obIDs(c), n.ID)
	}
	if c, _ := obClaim(t, s, next, 10); !slices.Equal(obIDs(c), []int64{m.ID}) || c[0].Attempts != 2 {
		t.Fatalf("claim at retry time = %v", obIDs(c))
	}
}

func testHardBounce(t *testing.T, s *Store) {
	now := time.Now()
	f := obSeed(t, s, "Gone@Example.com")
	other := obSeed(t, s, "other@example.com")
	m := f.queue(t, 0, now)
	o := other.queue(t, 0, now)
	obClaim(t, s, now, 10)
	var hooked []int64
	hook := func(tx *Tx, got MessageOut) error {
		hooked = append(hooked, got.ID)
		if got.Status != MessageFailed {
			t.Errorf("hook saw %s", got.Status)
		}
		return nil
	}
	if err := s.MarkFailed(ctx, o.ID, "554 5.7.1 rejected", false, hook); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.ContactByID(ctx, other.contactID); c.Suppressed {
		t.Fatal("a plain failure suppressed the contact")
	}
	reason := "550 5.1.1 <gone@example.com>: user unknown"
	if err := s.MarkFailed(ctx, m.ID, reason, true, hook); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hooked, []int64{o.ID, m.ID}) {
		t.Fatalf("hook ran for %v", hooked)
	}
	got := obMessage(t, s, m.ID)
	if got.Status != MessageFailed || got.LastError != reason {
		t.Fatalf("row = %s %q", got.Status, got.LastError)
	}
	c, _ := s.ContactByID(ctx, f.contactID)
	if !c.Suppressed {
		t.Fatal("contact not suppressed after a hard bounce")
	}
	if yes, err := s.IsSuppressed(ctx, "gone@example.com"); err != nil || !yes {
		t.Fatalf("IsSuppressed = %v, %v", yes, err)
	}
	sups, _ := s.Suppressions(ctx)
	if len(sups) != 1 || sups[0].Value != "gone@example.com" || sups[0].Reason != reason {
		t.Fatalf("suppressions = %+v", sups)
	}
	types := eventTypes(timeline(t, s, f.contactID))
	if !slices.Contains(types, EventSendFailed) || !slices.Contains(types, EventBounced) {
		t.Fatalf("events = %v", types)
	}
	for _, e := range timeline(t, s, f.contactID) {
		if e.Type == EventBounced {
			d := decode(t, e.Data)
			if d["class"] != "hard" || d["source"] != "smtp" {
				t.Fatalf("bounced event = %s", e.Data)
			}
		}
	}
}

func testUncertainExpireRequeue(t *testing.T, s *Store) {
	now := time.Now()
	f := obSeed(t, s, "ann@example.com")
	a := f.queue(t, 0, now)
	b := f.queue(t, 1, now)
	c := f.queue(t, 2, now)
	obClaim(t, s, now.Add(-time.Hour), 10) // nothing due yet
	claimed, _ := obClaim(t, s, now, 10)
	if len(claimed) != 3 {
		t.Fatalf("claimed %d", len(claimed))
	}
	if err := s.MarkUncertain(ctx, a.ID, "connection lost after the final dot"); err != nil {
		t.Fatal(err)
	}
	// b and c stay sending; make c look recent (another replica's live send).
	mustExec(t, s, `UPDATE messages_out SET updated_at = ? WHERE id = ?`, now.Add(-time.Hour), b.ID)
	mustExec(t, s, `UPDATE messages_out SET updated_at = ? WHERE id = ?`, now, c.ID)
	n, err := s.ExpireSending(ctx, now.Add(-10*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("ExpireSending = %d, %v; want 1", n, err)
	}
	if got := obMessage(t, s, b.ID); got.Status != MessageUncertain || got.LastError == "" {
		t.Fatalf("expired row = %s %q", got.Status, got.LastError)
	}
	if got := obMessage(t, s, c.ID); got.Status != MessageSending {
		t.Fatalf("recent sending row = %s, want left alone", got.Status)
	}
	un, err := s.UncertainMessages(ctx, "main", 0)
	if err != nil || len(un) != 2 {
		t.Fatalf("UncertainMessages = %v, %v", obIDs(un), err)
	}
	if err := s.Requeue(ctx, a.ID, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := obMessage(t, s, a.ID); got.Status != MessageQueued {
		t.Fatalf("requeued row = %s", got.Status)
	}
	// Found in Sent: uncertain → sent.
	if err := s.MarkSent(ctx, b.ID, now, nil); err != nil {
		t.Fatal(err)
	}
	types := eventTypes(timeline(t, s, f.contactID))
	for _, want := range []string{EventSendUncertain, EventSendRequeued, EventSent} {
		if !slices.Contains(types, want) {
			t.Errorf("events %v lack %s", types, want)
		}
	}
}

func testListAndNextQueued(t *testing.T, s *Store) {
	now := time.Now()
	if _, ok, err := s.NextQueuedAt(ctx, "main"); ok || err != nil {
		t.Fatalf("NextQueuedAt on empty = %v, %v", ok, err)
	}
	f := obSeed(t, s, "ann@example.com")
	a := f.queue(t, 0, now.Add(time.Hour))
	b := f.queue(t, 1, now.Add(30*time.Minute))
	at, ok, err := s.NextQueuedAt(ctx, "main")
	if err != nil || !ok || !at.Equal(dbTime(now.Add(30*time.Minute))) {
		t.Fatalf("NextQueuedAt = %v, %v, %v", at, ok, err)
	}
	obClaim(t, s, now.Add(45*time.Minute), 10)
	all, err := s.ListMessagesOut(ctx, MessageFilter{})
	if err != nil || !slices.Equal(obIDs(all), []int64{b.ID, a.ID}) {
		t.Fatalf("ListMessagesOut(all) = %v, %v (newest first)", obIDs(all), err)
	}
	sending, _ := s.ListMessagesOut(ctx, MessageFilter{Statuses: []string{MessageSending}, Account: "main"})
	if !slices.Equal(obIDs(sending), []int64{b.ID}) {
		t.Fatalf("sending = %v", obIDs(sending))
	}
	none, _ := s.ListMessagesOut(ctx, MessageFilter{Account: "other"})
	if len(none) != 0 {
		t.Fatalf("other account = %v", obIDs(none))
	}
	one, _ := s.ListMessagesOut(ctx, MessageFilter{Limit: 1})
	if len(one) != 1 {
		t.Fatalf("limit 1 = %v", obIDs(one))
	}
	if _, err := s.ListMessagesOut(ctx, MessageFilter{Statuses: []string{"bogus"}}); err == nil {
		t.Fatal("unknown status accepted")
	}
}

func testWrongStatus(t *testing.T, s *Store) {
	now := time.Now()
	f := obSeed(t, s, "ann@example.com")
	m := f.queue(t, 0, now)
	for name, err := range map[string]error{
		"MarkSent":      s.MarkSent(ctx, m.ID, now, nil),
		"MarkRetry":     s.MarkRetry(ctx, m.ID, now, "x"),
		"MarkFailed":    s.MarkFailed(ctx, m.ID, "x", false, nil),
		"MarkUncertain": s.MarkUncertain(ctx, m.ID, "x"),
		"Requeue":       s.Requeue(ctx, m.ID, now),
	} {
		if !errors.Is(err, ErrWrongStatus) {
			t.Errorf("%s on a queued row = %v, want ErrWrongStatus", name, err)
		}
	}
	if err := s.MarkSent(ctx, 999999, now, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkSent(missing) = %v, want ErrNotFound", err)
	}
	if _, _, err := s.ClaimForSend(ctx, "main", now, 0, nil); err == nil {
		t.Error("ClaimForSend with limit 0 accepted")
	}
}

// Concurrent claimers (replicas on Postgres, goroutines sharing the one
// connection on SQLite) never get the same row, and together get them all.
func TestClaimForSendConcurrentNeverTwice(t *testing.T) {
	forEachDB(t, func(t *testing.T, db testDB) {
		s := db.open(t)
		var stores []*Store
		stores = append(stores, s)
		if db.dialect == DialectPostgres {
			// Separate pools, as separate replicas would have.
			for range 2 {
				s2, err := reopen(t, s, nil)
				if err != nil {
					t.Fatal(err)
				}
				stores = append(stores, s2)
			}
		}
		now := time.Now()
		const contacts, steps = 20, 3
		for i := range contacts {
			f := obSeed(t, s, fmt.Sprintf("c%d@example.com", i))
			for st := range steps {
				f.queue(t, st, now.Add(-time.Duration(i+st)*time.Second))
			}
		}
		var (
			mu   sync.Mutex
			seen = map[int64]int{}
			wg   sync.WaitGroup
			errs = make(chan error, 8)
		)
		for w := range 6 {
			st := stores[w%len(stores)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					claimed, _, err := st.ClaimForSend(ctx, "main", now, 4, nil)
					if err != nil {
						errs <- err
						return
					}
					if len(claimed) == 0 {
						return
					}
					mu.Lock()
					for _, m := range claimed {
						seen[m.ID]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(seen) != contacts*steps {
			t.Fatalf("claimed %d distinct rows, want %d", len(seen), contacts*steps)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("row %d claimed %d times", id, n)
			}
		}
	})
}

// On Postgres a reply that is being committed while the sender claims
// (holding the enrollment's row lock) makes the claim wait, and then win.
func TestGuarantee2_ReplyCommittingDuringClaimWins(t *testing.T) {
	forEachDB(t, func(t *testing.T, db testDB) {
		if db.dialect != DialectPostgres {
			t.Skip("SQLite has one writer, so a reply and a claim cannot overlap: skipped (the Postgres subtest covers it)")
		}
		s := db.open(t)
		now := time.Now()
		f := obSeed(t, s, "ann@example.com")
		m := f.queue(t, 0, now.Add(-time.Minute))

		replier, err := reopen(t, s, nil)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := replier.db.BeginTxx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		if _, err := tx.ExecContext(ctx, `UPDATE enrollments SET status = 'stopped' WHERE id = $1`, f.enrollment); err != nil {
			t.Fatal(err)
		}

		type result struct {
			claimed, cancelled []MessageOut
			err                error
		}
		done := make(chan result, 1)
		go func() {
			c, x, err := s.ClaimForSend(ctx, "main", now, 10, nil)
			done <- result{c, x, err}
		}()
		// Wait until the claim is blocked on the enrollment's lock.
		deadline := time.Now().Add(10 * time.Second)
		for {
			var waiting int
			if err := replier.db.GetContext(ctx, &waiting,
				`SELECT COUNT(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'`); err != nil {
				t.Fatal(err)
			}
			if waiting > 0 {
				break
			}
			select {
			case r := <-done:
				t.Fatalf("claim finished while the reply held the enrollment: %v / %v, %v", obIDs(r.claimed), obIDs(r.cancelled), r.err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("the claim never waited for the enrollment's lock")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil || len(r.claimed) != 0 || !slices.Equal(obIDs(r.cancelled), []int64{m.ID}) {
			t.Fatalf("claim = %v / %v, %v; want the message cancelled", obIDs(r.claimed), obIDs(r.cancelled), r.err)
		}
	})
}
