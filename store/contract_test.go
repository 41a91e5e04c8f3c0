package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
)

var ctx = context.Background()

func timeline(t *testing.T, s *Store, id int64) []Event {
	t.Helper()
	evs, err := s.Timeline(ctx, id, 0)
	if err != nil {
		t.Fatalf("Timeline: %v", err)
	}
	return evs
}

func eventTypes(evs []Event) []string {
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	return types
}

func decode(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("event data %s: %v", raw, err)
	}
	return m
}

func testUpsertCreatesThenMerges(t *testing.T, _ testDB, s *Store) {
	id, created, err := s.UpsertContact(ctx, Contact{
		Email:        "ann@example.com",
		FirstName:    "Ann",
		LastName:     "Lee",
		Company:      "Acme",
		Timezone:     "Europe/Amsterdam",
		Birthday:     "1990-05-17",
		CustomFields: Fields{"plan": "basic", "source": "fair"},
	})
	if err != nil || !created || id == 0 {
		t.Fatalf("first UpsertContact = %d, %v, %v; want a new id, true, nil", id, created, err)
	}
	c, err := s.ContactByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Stage != DefaultStage || c.Birthday != "1990-05-17" || c.CreatedAt.Location() != time.UTC {
		t.Errorf("new contact = %+v; want stage %q, birthday 1990-05-17, UTC times", c, DefaultStage)
	}

	id2, created, err := s.UpsertContact(ctx, Contact{
		Email:        "ann@example.com",
		FirstName:    "Annie",
		Company:      "Acme Corp",
		CustomFields: Fields{"plan": "pro", "seats": "5"},
	})
	if err != nil || created || id2 != id {
		t.Fatalf("second UpsertContact = %d, %v, %v; want %d, false, nil", id2, created, err, id)
	}
	got, err := s.ContactByEmail(ctx, "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	want := c
	want.FirstName = "Annie"
	want.Company = "Acme Corp"
	want.CustomFields = Fields{"plan": "pro", "source": "fair", "seats": "5"}
	want.UpdatedAt = got.UpdatedAt
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after merge:\n got %+v\nwant %+v", got, want)
	}

	evs := timeline(t, s, id)
	if types := eventTypes(evs); !reflect.DeepEqual(types, []string{EventCreated}) {
		t.Fatalf("events = %v; want only %q", types, EventCreated)
	}
	if d := decode(t, evs[0].Data); d["stage"] != DefaultStage {
		t.Errorf("created event data = %v", d)
	}

	// A stage given in an upsert is a stage change like any other.
	if _, _, err := s.UpsertContact(ctx, Contact{Email: "ann@example.com", Stage: "prospect"}); err != nil {
		t.Fatal(err)
	}
	evs = timeline(t, s, id)
	if types := eventTypes(evs); !reflect.DeepEqual(types, []string{EventCreated, EventStageChanged}) {
		t.Fatalf("events = %v", types)
	}
	if d := decode(t, evs[1].Data); d["from"] != "lead" || d["to"] != "prospect" {
		t.Errorf("stage_changed data = %v", d)
	}

	// Suppression is never lifted by an upsert, purchases never go down.
	if _, _, err := s.UpsertContact(ctx, Contact{Email: "ann@example.com", Suppressed: true, Purchases: 3}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UpsertContact(ctx, Contact{Email: "ann@example.com", Purchases: 1}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.ContactByID(ctx, id)
	if !got.Suppressed || got.Purchases != 3 || got.Stage != "prospect" {
		t.Errorf("after upserts: suppressed %v purchases %d stage %q; want true 3 prospect", got.Suppressed, got.Purchases, got.Stage)
	}

	for _, bad := range []Contact{{Email: "not-an-address"}, {Email: "x@y.com", Birthday: "17/05/1990"}} {
		if _, _, err := s.UpsertContact(ctx, bad); err == nil {
			t.Errorf("UpsertContact(%+v) succeeded; want an error", bad)
		}
	}
}

func testEmailCaseInsensitive(t *testing.T, db testDB, s *Store) {
	id := mustUpsert(t, s, Contact{Email: "  Ann@X.com ", FirstName: "Ann"})
	c, err := s.ContactByEmail(ctx, "ANN@x.COM")
	if err != nil {
		t.Fatalf("ContactByEmail in another case: %v", err)
	}
	if c.ID != id || c.Email != "ann@x.com" {
		t.Errorf("contact = %d %q; want %d \"ann@x.com\"", c.ID, c.Email, id)
	}
	id2, created, err := s.UpsertContact(ctx, Contact{Email: "ann@x.com", LastName: "Lee"})
	if err != nil || created || id2 != id {
		t.Errorf("UpsertContact(ann@x.com) = %d, %v, %v; want the same contact", id2, created, err)
	}
	_, err = s.CreateContact(ctx, Contact{Email: "ANN@X.COM"})
	if !errors.Is(err, ErrDuplicate) {
		t.Errorf("CreateContact(ANN@X.COM) error = %v; want ErrDuplicate", err)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM contacts`); n != 1 {
		t.Errorf("%d contacts; want 1", n)
	}
	// The database refuses an address that skipped NormalizeEmail.
	now := time.Now()
	err = s.InTx(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO contacts (email, stage, created_at, updated_at) VALUES (?, ?, ?, ?)`,
			"Bob@X.com", "lead", now, now)
		return err
	})
	if err == nil {
		t.Errorf("a mixed-case email was stored by %s", db.dialect)
	}
}

func testSetStageWritesOneEvent(t *testing.T, _ testDB, s *Store) {
	id := mustUpsert(t, s, Contact{Email: "ann@x.com"})
	old, err := s.SetStage(ctx, "Ann@X.com", "prospect", "replied yes")
	if err != nil || old != "lead" {
		t.Fatalf("SetStage = %q, %v; want lead, nil", old, err)
	}
	old, err = s.SetStage(ctx, "ann@x.com", "prospect", "again")
	if err != nil || old != "prospect" {
		t.Fatalf("second SetStage = %q, %v; want prospect, nil", old, err)
	}
	evs := timeline(t, s, id)
	if types := eventTypes(evs); !reflect.DeepEqual(types, []string{EventCreated, EventStageChanged}) {
		t.Fatalf("events = %v; want one stage_changed after created", types)
	}
	d := decode(t, evs[1].Data)
	want := map[string]any{"from": "lead", "to": "prospect", "reason": "replied yes"}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("stage_changed data = %v; want %v", d, want)
	}
	c, _ := s.ContactByID(ctx, id)
	if c.Stage != "prospect" {
		t.Errorf("stage = %q", c.Stage)
	}
	if _, err := s.SetStage(ctx, "nobody@x.com", "prospect", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetStage(unknown) error = %v; want ErrNotFound", err)
	}
	if _, err := s.SetStage(ctx, "ann@x.com", " ", ""); err == nil {
		t.Error("SetStage to an empty stage succeeded")
	}
}

func testNotesPurchasesTimeline(t *testing.T, _ testDB, s *Store) {
	id := mustUpsert(t, s, Contact{Email: "ann@x.com"})
	if err := s.AddNote(ctx, "ANN@x.com", "called, wants a demo"); err != nil {
		t.Fatal(err)
	}
	for i, amount := range []string{"49.90", "120"} {
		n, err := s.RecordPurchase(ctx, "ann@x.com", amount, "order "+strconv.Itoa(i))
		if err != nil || n != i+1 {
			t.Fatalf("RecordPurchase #%d = %d, %v", i+1, n, err)
		}
	}
	if _, err := s.RecordPurchase(ctx, "ann@x.com", "lots", ""); err == nil {
		t.Error("RecordPurchase accepted a non-numeric amount")
	}
	if err := s.AddEvent(ctx, id, "replied", map[string]string{"intent": "interested"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEvent(ctx, id, "custom", nil); err != nil {
		t.Fatal(err)
	}
	evs := timeline(t, s, id)
	want := []string{EventCreated, EventNote, EventPurchase, EventPurchase, "replied", "custom"}
	if types := eventTypes(evs); !reflect.DeepEqual(types, want) {
		t.Fatalf("timeline = %v; want %v", types, want)
	}
	if d := decode(t, evs[1].Data); d["text"] != "called, wants a demo" {
		t.Errorf("note data = %v", d)
	}
	if d := decode(t, evs[2].Data); d["amount"] != "49.90" || d["note"] != "order 0" {
		t.Errorf("purchase data = %v", d)
	}
	if d := decode(t, evs[5].Data); len(d) != 0 {
		t.Errorf("nil data stored as %s; want {}", evs[5].Data)
	}
	// A limit keeps the latest events, still oldest first.
	last, err := s.Timeline(ctx, id, 2)
	if err != nil {
		t.Fatal(err)
	}
	if types := eventTypes(last); !reflect.DeepEqual(types, []string{"replied", "custom"}) {
		t.Errorf("Timeline(limit 2) = %v", types)
	}
	c, _ := s.ContactByID(ctx, id)
	if c.Purchases != 2 {
		t.Errorf("purchases = %d; want 2", c.Purchases)
	}
}

func testListAndCount(t *testing.T, _ testDB, s *Store) {
	var ids []int64
	for i := range 5 {
		stage := "lead"
		if i%2 == 1 {
			stage = "customer"
		}
		ids = append(ids, mustUpsert(t, s, Contact{Email: fmt.Sprintf("c%d@x.com", i), Stage: stage}))
	}
	all, err := s.ListContacts(ctx, ContactFilter{})
	if err != nil || len(all) != 5 {
		t.Fatalf("ListContacts = %d contacts, %v", len(all), err)
	}
	for i, c := range all {
		if c.ID != ids[i] {
			t.Errorf("contact %d has id %d; want %d (id order)", i, c.ID, ids[i])
		}
	}
	leads, err := s.ListContacts(ctx, ContactFilter{Stage: "lead", Limit: 2, Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(leads) != 2 || leads[0].ID != ids[2] || leads[1].ID != ids[4] {
		t.Errorf("leads page = %+v; want ids %d, %d", leads, ids[2], ids[4])
	}
	counts, err := s.CountContactsByStage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"lead": 3, "customer": 2}; !reflect.DeepEqual(counts, want) {
		t.Errorf("CountContactsByStage = %v; want %v", counts, want)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load zone %s: %v", name, err)
	}
	return loc
}

func newEnrollment(t *testing.T, s *Store, email, seq string, due *time.Time) int64 {
	t.Helper()
	cid := mustUpsert(t, s, Contact{Email: email})
	id, err := s.CreateEnrollment(ctx, Enrollment{ContactID: cid, Sequence: seq, DueAt: due})
	if err != nil {
		t.Fatalf("CreateEnrollment: %v", err)
	}
	return id
}

func testTimesRoundTrip(t *testing.T, db testDB, s *Store) {
	ny := mustZone(t, "America/New_York")
	kolkata := mustZone(t, "Asia/Kolkata")
	values := []time.Time{
		time.Date(2026, 3, 8, 1, 59, 59, 999999999, ny), // nanoseconds truncated, not rounded
		time.Date(2026, 11, 1, 1, 30, 0, 123456789, ny), // the repeated hour of a DST change
		time.Date(2026, 1, 1, 5, 30, 0, 1000, kolkata),  // 1 µs
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2100, 2, 28, 12, 0, 0, 500, time.UTC),
	}
	for i, v := range values {
		v := v
		id := newEnrollment(t, s, fmt.Sprintf("rt%d@x.com", i), "welcome", &v)
		e, err := s.EnrollmentByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := v.UTC().Truncate(time.Microsecond)
		if e.DueAt == nil || *e.DueAt != want {
			t.Errorf("due_at %v came back as %v; want exactly %v", v, e.DueAt, want)
		}
		if e.DueAt != nil && e.DueAt.Location() != time.UTC {
			t.Errorf("due_at location = %v; want UTC", e.DueAt.Location())
		}
		if e.PausedUntil != nil || e.LastSentAt != nil {
			t.Errorf("NULL times came back as %v, %v", e.PausedUntil, e.LastSentAt)
		}
		if e.CreatedAt.Location() != time.UTC || time.Since(e.CreatedAt) > time.Minute || e.CreatedAt.Nanosecond()%1000 != 0 {
			t.Errorf("created_at = %v; want a recent UTC time with whole microseconds", e.CreatedAt)
		}
	}
	if db.dialect == DialectSQLite {
		// Integers, so that no text format can ever make them sort wrongly.
		if n := count(t, s, `SELECT COUNT(*) FROM enrollments WHERE typeof(due_at) <> 'integer' OR typeof(created_at) <> 'integer'`); n != 0 {
			t.Errorf("%d enrollments hold non-integer times", n)
		}
		now := time.Now()
		err := s.InTx(ctx, func(tx *Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO accounts_state (account, updated_at) VALUES (?, ?)`, "a", now.Format(time.RFC3339))
			return err
		})
		if err == nil {
			t.Error("SQLite accepted a time stored as text")
		}
	}
}

func testTimesCompareAndOrder(t *testing.T, _ testDB, s *Store) {
	base := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	tokyo := mustZone(t, "Asia/Tokyo")
	la := mustZone(t, "America/Los_Angeles")
	chatham := mustZone(t, "Pacific/Chatham") // +12:45
	type due struct {
		name string
		at   time.Time
	}
	dues := []due{
		// Local clock texts sort the other way round from the instants.
		{"tokyo+1us", base.Add(time.Microsecond).In(tokyo)},
		{"la-1us", base.Add(-time.Microsecond).In(la)},
		{"chatham-500ms", base.Add(-500 * time.Millisecond).In(chatham)},
		{"utc-1s", base.Add(-time.Second)},
		{"la+1ms", base.Add(time.Millisecond).In(la)},
		{"exact", base.In(tokyo)},
		{"tokyo-1h", base.Add(-time.Hour).In(tokyo)},
		{"sub-us-after", base.Add(999 * time.Nanosecond)}, // truncates to base
	}
	names := map[int64]string{}
	for i, d := range dues {
		at := d.at
		names[newEnrollment(t, s, fmt.Sprintf("due%d@x.com", i), "s", &at)] = d.name
	}
	// The bound itself is given in another zone again.
	got, err := s.DueEnrollments(ctx, base.In(la), 0)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, e := range got {
		order = append(order, names[e.ID])
	}
	// exact and sub-us-after are equal after truncation: id order.
	want := []string{"tokyo-1h", "utc-1s", "chatham-500ms", "la-1us", "exact", "sub-us-after"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("due at or before %v: %v; want %v", base, order, want)
	}
	got, err = s.DueEnrollments(ctx, base.Add(-time.Microsecond).In(tokyo), 2)
	if err != nil {
		t.Fatal(err)
	}
	order = order[:0]
	for _, e := range got {
		order = append(order, names[e.ID])
	}
	if want := []string{"tokyo-1h", "utc-1s"}; !reflect.DeepEqual(order, want) {
		t.Errorf("first 2 due before base-1µs: %v; want %v", order, want)
	}
	// Raw queries through Tx get the same treatment.
	var n int
	err = s.InTx(ctx, func(tx *Tx) error {
		return tx.Get(ctx, &n, `SELECT COUNT(*) FROM enrollments WHERE due_at > ? AND due_at < ?`,
			base.Add(-time.Second).In(chatham), base.Add(time.Millisecond).In(tokyo))
	})
	if err != nil || n != 5 {
		t.Errorf("count strictly between base-1s and base+1ms = %d, %v; want 5", n, err)
	}
}

func testTimelineOrder(t *testing.T, _ testDB, s *Store) {
	base := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	clock := setClock(s, base)
	id := mustUpsert(t, s, Contact{Email: "ann@x.com"})
	steps := []struct {
		at   time.Time
		name string
	}{
		{base.Add(2 * time.Microsecond).In(mustZone(t, "Asia/Tokyo")), "c"},
		{base.Add(time.Microsecond).In(mustZone(t, "America/Los_Angeles")), "a"},
		{base.Add(time.Microsecond + 999), "b"}, // same microsecond as "a": id decides
		{base.Add(-time.Second), "first"},
	}
	for _, st := range steps {
		clock.t = st.at
		if err := s.AddEvent(ctx, id, st.name, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := eventTypes(timeline(t, s, id))
	if want := []string{"first", EventCreated, "a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("timeline = %v; want %v", got, want)
	}
}

// expectDuplicate checks that err is a UNIQUE violation reported as
// ErrDuplicate with the driver's own message kept.
func expectDuplicate(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrDuplicate) {
		t.Errorf("%s: error = %v; want ErrDuplicate", what, err)
		return
	}
	msg := strings.ToLower(err.Error())
	if !strings.Contains(msg, "unique") && !strings.Contains(msg, "duplicate key") {
		t.Errorf("%s: error %q lost the driver's message", what, err)
	}
	if !strings.HasPrefix(msg, "store: ") {
		t.Errorf("%s: error %q does not start with store:", what, err)
	}
}

func testUniqueConstraints(t *testing.T, db testDB, s *Store) {
	cid := mustUpsert(t, s, Contact{Email: "ann@x.com"})

	_, err := s.CreateContact(ctx, Contact{Email: "ann@x.com"})
	expectDuplicate(t, "contacts.email", err)
	if db.dialect == DialectPostgres && pq.As(err, "23505") == nil {
		t.Errorf("the *pq.Error is no longer reachable through %v", err)
	}

	eid, err := s.CreateEnrollment(ctx, Enrollment{ContactID: cid, Sequence: "welcome", Account: "sales"})
	if err != nil {
		t.Fatal(err)
	}
	m := MessageOut{EnrollmentID: eid, Step: 0, ContactID: cid, Account: "sales", MessageID: "<1@x>", Subject: "hi"}
	if _, err := s.InsertMessageOut(ctx, m); err != nil {
		t.Fatal(err)
	}
	again := m
	again.MessageID = "<2@x>"
	_, err = s.InsertMessageOut(ctx, again)
	expectDuplicate(t, "messages_out (enrollment_id, step)", err)
	again = m
	again.Step = 1
	_, err = s.InsertMessageOut(ctx, again)
	expectDuplicate(t, "messages_out.message_id", err)
	again.MessageID, again.ThreadRoot = "<3@x>", "<1@x>"
	if _, err := s.InsertMessageOut(ctx, again); err != nil {
		t.Errorf("the next step with its own Message-ID: %v", err)
	}
	got, err := s.MessageOutByMessageID(ctx, "<3@x>")
	if err != nil || got.ThreadRoot != "<1@x>" || got.Status != MessageQueued || got.Step != 1 {
		t.Errorf("MessageOutByMessageID = %+v, %v", got, err)
	}
	first, _ := s.MessageOutByMessageID(ctx, "<1@x>")
	if first.ThreadRoot != "" || first.SentAt != nil {
		t.Errorf("first message: thread root %q, sent at %v; want empty, nil", first.ThreadRoot, first.SentAt)
	}

	in := MessageIn{Account: "sales", Mailbox: "INBOX", UIDValidity: 4294967295, UID: 4294967290,
		MessageID: "<r1@y>", FromAddr: "ann@x.com", ContactID: &cid, ReceivedAt: time.Now()}
	if _, err := s.InsertMessageIn(ctx, in); err != nil {
		t.Fatal(err)
	}
	_, err = s.InsertMessageIn(ctx, in)
	expectDuplicate(t, "messages_in (account, mailbox, uidvalidity, uid)", err)
	in.UIDValidity = 7 // a new UIDVALIDITY makes the same UID another message
	if _, err := s.InsertMessageIn(ctx, in); err != nil {
		t.Errorf("same UID under another UIDVALIDITY: %v", err)
	}

	if err := s.Suppress(ctx, "ann@x.com", "", "unsubscribed"); err != nil {
		t.Fatal(err)
	}
	if err := s.Suppress(ctx, "ANN@x.com", SuppressAddress, "again"); err != nil {
		t.Errorf("Suppress is not idempotent: %v", err)
	}
	now := time.Now()
	raw := []struct {
		what, query string
		args        []any
	}{
		{"suppressions.value", `INSERT INTO suppressions (value, kind, reason, created_at) VALUES (?, ?, ?, ?)`,
			[]any{"ann@x.com", "address", "", now}},
		{"accounts_state primary key", `INSERT INTO accounts_state (account, send_day, sent_today, updated_at) VALUES (?, ?, ?, ?)`,
			[]any{"sales", "2026-06-01", 1, now}},
		{"imap_checkpoints primary key", `INSERT INTO imap_checkpoints (account, mailbox, uidvalidity, last_uid, updated_at) VALUES (?, ?, ?, ?, ?)`,
			[]any{"sales", "INBOX", 1, 1, now}},
	}
	mustExec(t, s, raw[1].query, raw[1].args...)
	mustExec(t, s, raw[2].query, raw[2].args...)
	for _, r := range raw {
		err := s.InTx(ctx, func(tx *Tx) error {
			_, err := tx.Exec(ctx, r.query, r.args...)
			return err
		})
		expectDuplicate(t, r.what, err)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM suppressions`); n != 1 {
		t.Errorf("%d suppressions; want 1", n)
	}
}

func testLiveEnrollmentUnique(t *testing.T, _ testDB, s *Store) {
	cid := mustUpsert(t, s, Contact{Email: "ann@x.com"})
	other := mustUpsert(t, s, Contact{Email: "bob@x.com"})
	first, err := s.CreateEnrollment(ctx, Enrollment{ContactID: cid, Sequence: "welcome"})
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range []string{EnrollmentActive, EnrollmentPaused, EnrollmentSnoozed} {
		_, err := s.CreateEnrollment(ctx, Enrollment{ContactID: cid, Sequence: "welcome", Status: status})
		expectDuplicate(t, "a second live enrollment ("+status+")", err)
	}
	// Other sequences and other contacts are independent.
	if _, err := s.CreateEnrollment(ctx, Enrollment{ContactID: cid, Sequence: "birthday"}); err != nil {
		t.Errorf("another sequence: %v", err)
	}
	if _, err := s.CreateEnrollment(ctx, Enrollment{ContactID: other, Sequence: "welcome"}); err != nil {
		t.Errorf("another contact: %v", err)
	}
	if err := s.SetEnrollmentStatus(ctx, first, EnrollmentFinished); err != nil {
		t.Fatal(err)
	}
	second, err := s.CreateEnrollment(ctx, Enrollment{ContactID: cid, Sequence: "welcome"})
	if err != nil {
		t.Fatalf("a new active enrollment after the first finished: %v", err)
	}
	if _, err := s.CreateEnrollment(ctx, Enrollment{ContactID: cid, Sequence: "welcome", Status: EnrollmentStopped}); err != nil {
		t.Errorf("a stopped enrollment next to an active one: %v", err)
	}
	// Reviving the finished one would make two live ones.
	expectDuplicate(t, "reviving a finished enrollment", s.SetEnrollmentStatus(ctx, first, EnrollmentActive))
	e, err := s.EnrollmentByID(ctx, second)
	if err != nil || e.Status != EnrollmentActive || e.Step != 0 || e.Sequence != "welcome" {
		t.Errorf("EnrollmentByID = %+v, %v", e, err)
	}
	if _, err := s.CreateEnrollment(ctx, Enrollment{ContactID: cid, Sequence: "x", Status: "done"}); err == nil {
		t.Error("an unknown status was accepted")
	}
}

func importRows(n int, prefix, stage string) []Contact {
	cs := make([]Contact, n)
	for i := range cs {
		cs[i] = Contact{
			Email:        fmt.Sprintf("%s%06d@Example.com", prefix, i),
			FirstName:    "First" + strconv.Itoa(i),
			LastName:     "Last",
			Company:      "Company " + strconv.Itoa(i%100),
			Stage:        stage,
			CustomFields: Fields{"row": strconv.Itoa(i), "list": prefix},
		}
	}
	return cs
}

func testImportContacts(t *testing.T, _ testDB, s *Store) {
	// Two existing contacts, one of which the import moves on.
	keep := mustUpsert(t, s, Contact{Email: "c000001@example.com", Stage: "lead", CustomFields: Fields{"old": "1"}})
	moved := mustUpsert(t, s, Contact{Email: "c000002@example.com", Stage: "customer"})

	cs := importRows(2000, "c", "")
	cs[1].Stage = "lead"     // unchanged: no event
	cs[2].Stage = "repeat"   // changed: one stage_changed event
	cs = append(cs, Contact{ // a repeated address is merged into its first row
		Email: "C000003@EXAMPLE.COM", Company: "Later Inc", CustomFields: Fields{"extra": "y"},
	})
	created, updated, err := s.ImportContacts(ctx, cs)
	if err != nil {
		t.Fatalf("ImportContacts: %v", err)
	}
	if created != 1998 || updated != 2 {
		t.Errorf("ImportContacts = %d created, %d updated; want 1998, 2", created, updated)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM contacts`); n != 2000 {
		t.Errorf("%d contacts; want 2000", n)
	}
	c1, _ := s.ContactByID(ctx, keep)
	if c1.Stage != "lead" || c1.FirstName != "First1" || !reflect.DeepEqual(c1.CustomFields, Fields{"old": "1", "row": "1", "list": "c"}) {
		t.Errorf("updated contact = %+v", c1)
	}
	if got := eventTypes(timeline(t, s, keep)); !reflect.DeepEqual(got, []string{EventCreated}) {
		t.Errorf("events of the unchanged contact = %v", got)
	}
	evs := timeline(t, s, moved)
	if got := eventTypes(evs); !reflect.DeepEqual(got, []string{EventCreated, EventStageChanged}) {
		t.Fatalf("events of the moved contact = %v", got)
	}
	if d := decode(t, evs[1].Data); d["from"] != "customer" || d["to"] != "repeat" || d["reason"] != "import" {
		t.Errorf("stage_changed data = %v", d)
	}
	c3, err := s.ContactByEmail(ctx, "c000003@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if c3.Company != "Later Inc" || c3.FirstName != "First3" || c3.CustomFields["extra"] != "y" || c3.Stage != DefaultStage {
		t.Errorf("merged duplicate row = %+v", c3)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM events WHERE type = ?`, EventCreated); n != 2000 {
		t.Errorf("%d created events; want 2000", n)
	}
	// Importing the same rows again creates nothing and changes no stage.
	created, updated, err = s.ImportContacts(ctx, cs)
	if err != nil || created != 0 || updated != 2000 {
		t.Errorf("re-import = %d, %d, %v; want 0, 2000, nil", created, updated, err)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM events`); n != 2001 {
		t.Errorf("%d events after re-import; want 2001", n)
	}
	if _, _, err := s.ImportContacts(ctx, []Contact{{Email: "ok@x.com"}, {Email: "broken"}}); err == nil || !strings.Contains(err.Error(), "contact 2") {
		t.Errorf("an invalid row: error = %v; want one naming contact 2", err)
	}
}

// testImportIsOneTransaction makes the database itself fail on a row of the
// fourth batch and checks that the first three batches left nothing behind.
func testImportIsOneTransaction(t *testing.T, db testDB, s *Store) {
	existing := mustUpsert(t, s, Contact{Email: "c000010@example.com", Stage: "customer"})
	if db.dialect == DialectSQLite {
		mustExec(t, s, `CREATE TRIGGER boom BEFORE INSERT ON contacts
			WHEN NEW.email = 'c001700@example.com' BEGIN SELECT RAISE(ABORT, 'boom'); END`)
	} else {
		mustExec(t, s, `CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.email = 'c001700@example.com' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$`)
		mustExec(t, s, `CREATE TRIGGER boom BEFORE INSERT ON contacts FOR EACH ROW EXECUTE FUNCTION boom()`)
	}
	cs := importRows(2000, "c", "prospect")
	_, _, err := s.ImportContacts(ctx, cs)
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("ImportContacts error = %v; want the trigger's", err)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM contacts`); n != 1 {
		t.Errorf("%d contacts after a failed import; want 1", n)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM events`); n != 1 {
		t.Errorf("%d events after a failed import; want 1", n)
	}
	c, _ := s.ContactByID(ctx, existing)
	if c.Stage != "customer" || c.FirstName != "" {
		t.Errorf("existing contact changed by a failed import: %+v", c)
	}
}

func testSuppressions(t *testing.T, _ testDB, s *Store) {
	mustUpsert(t, s, Contact{Email: "ann@acme.com"})
	mustUpsert(t, s, Contact{Email: "bob@my_co.com"})
	mustUpsert(t, s, Contact{Email: "eve@myxco.com"})
	mustUpsert(t, s, Contact{Email: "flagged@x.com", Suppressed: true})

	check := func(email string, want bool) {
		t.Helper()
		got, err := s.IsSuppressed(ctx, email)
		if err != nil || got != want {
			t.Errorf("IsSuppressed(%s) = %v, %v; want %v", email, got, err, want)
		}
	}
	check("ann@acme.com", false)
	check("flagged@x.com", true)
	if err := s.Suppress(ctx, " Ann@Acme.com", SuppressAddress, "unsubscribe link"); err != nil {
		t.Fatal(err)
	}
	if err := s.Suppress(ctx, "@MY_CO.com", SuppressDomain, "asked"); err != nil {
		t.Fatal(err)
	}
	check("ANN@acme.com", true)
	check("other@acme.com", false)
	check("anyone@my_co.com", true)
	check("eve@myxco.com", false) // '_' is not a wildcard
	for email, want := range map[string]bool{"ann@acme.com": true, "bob@my_co.com": true, "eve@myxco.com": false} {
		c, _ := s.ContactByEmail(ctx, email)
		if c.Suppressed != want {
			t.Errorf("contact %s suppressed = %v; want %v", email, c.Suppressed, want)
		}
	}
	if err := s.Suppress(ctx, "x", "person", ""); err == nil {
		t.Error("an unknown kind was accepted")
	}
	list, err := s.Suppressions(ctx)
	if err != nil || len(list) != 2 || list[0].Value != "ann@acme.com" || list[1].Value != "my_co.com" || list[1].Kind != SuppressDomain {
		t.Errorf("Suppressions = %+v, %v", list, err)
	}
}

func testCheckpoints(t *testing.T, _ testDB, s *Store) {
	if _, err := s.Checkpoint(ctx, "sales", "INBOX"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Checkpoint before any: %v; want ErrNotFound", err)
	}
	for _, cp := range []Checkpoint{
		{Account: "sales", Mailbox: "INBOX", UIDValidity: 1, LastUID: 10},
		{Account: "sales", Mailbox: "INBOX", UIDValidity: 4294967295, LastUID: 4294967294},
	} {
		if err := s.SaveCheckpoint(ctx, cp); err != nil {
			t.Fatal(err)
		}
		got, err := s.Checkpoint(ctx, "sales", "INBOX")
		if err != nil || got.UIDValidity != cp.UIDValidity || got.LastUID != cp.LastUID || got.UpdatedAt.IsZero() {
			t.Errorf("Checkpoint = %+v, %v; want %+v", got, err, cp)
		}
	}
}

func testInTxRollsBack(t *testing.T, _ testDB, s *Store) {
	cid := mustUpsert(t, s, Contact{Email: "ann@x.com"})
	sentinel := errors.New("stop here")
	err := s.InTx(ctx, func(tx *Tx) error {
		if _, err := tx.InsertMessageIn(ctx, MessageIn{Account: "a", Mailbox: "INBOX", UIDValidity: 1, UID: 5, ContactID: &cid}); err != nil {
			return err
		}
		if err := tx.SaveCheckpoint(ctx, Checkpoint{Account: "a", Mailbox: "INBOX", UIDValidity: 1, LastUID: 5}); err != nil {
			return err
		}
		if _, err := tx.SetStage(ctx, "ann@x.com", "prospect", "reply"); err != nil {
			return err
		}
		return sentinel
	})
	if !errors.Is(err, sentinel) {
		t.Fatalf("InTx error = %v; want fn's error", err)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM messages_in`); n != 0 {
		t.Errorf("%d messages after rollback", n)
	}
	if _, err := s.Checkpoint(ctx, "a", "INBOX"); !errors.Is(err, ErrNotFound) {
		t.Errorf("checkpoint after rollback: %v", err)
	}
	if c, _ := s.ContactByID(ctx, cid); c.Stage != "lead" {
		t.Errorf("stage after rollback = %q", c.Stage)
	}
	// And committed together when fn succeeds.
	err = s.InTx(ctx, func(tx *Tx) error {
		if _, err := tx.InsertMessageIn(ctx, MessageIn{Account: "a", Mailbox: "INBOX", UIDValidity: 1, UID: 5}); err != nil {
			return err
		}
		return tx.SaveCheckpoint(ctx, Checkpoint{Account: "a", Mailbox: "INBOX", UIDValidity: 1, LastUID: 5})
	})
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := s.Checkpoint(ctx, "a", "INBOX"); err != nil || cp.LastUID != 5 {
		t.Errorf("checkpoint = %+v, %v", cp, err)
	}
}

func testNotFound(t *testing.T, _ testDB, s *Store) {
	checks := map[string]error{}
	_, checks["ContactByEmail"] = s.ContactByEmail(ctx, "nobody@x.com")
	_, checks["ContactByID"] = s.ContactByID(ctx, 42)
	checks["AddNote"] = s.AddNote(ctx, "nobody@x.com", "hi")
	_, checks["RecordPurchase"] = s.RecordPurchase(ctx, "nobody@x.com", "1", "")
	checks["AddEvent"] = s.AddEvent(ctx, 42, "note", nil)
	_, checks["CreateEnrollment"] = s.CreateEnrollment(ctx, Enrollment{ContactID: 42, Sequence: "s"})
	_, checks["EnrollmentByID"] = s.EnrollmentByID(ctx, 42)
	checks["SetEnrollmentStatus"] = s.SetEnrollmentStatus(ctx, 42, EnrollmentStopped)
	_, checks["MessageOutByMessageID"] = s.MessageOutByMessageID(ctx, "<none@x>")
	for name, err := range checks {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: error = %v; want ErrNotFound", name, err)
		} else if !strings.HasPrefix(err.Error(), "store: ") {
			t.Errorf("%s: error %q does not start with store:", name, err)
		}
	}
}

// testSchemaGate: Postgres refuses a database that was never migrated and
// says what to run; SQLite migrates whatever it opens.
func testSchemaGate(t *testing.T, db testDB, s *Store) {
	o := db.fresh(t)
	o.Migrate = false
	if db.dialect == DialectSQLite {
		s2 := openT(t, o)
		if cur, latest, err := s2.SchemaStatus(ctx); err != nil || cur != latest || latest < 1 {
			t.Errorf("SchemaStatus after open = %d, %d, %v", cur, latest, err)
		}
		return
	}
	_, err := Open(ctx, o)
	if !errors.Is(err, ErrSchemaOutdated) {
		t.Fatalf("Open of an unmigrated schema: %v; want ErrSchemaOutdated", err)
	}
	_, latest, _ := s.SchemaStatus(ctx)
	want := fmt.Sprintf(`store: database schema is at version 0, this followupd needs %d: run "followupd migrate"`, latest)
	if err.Error() != want {
		t.Errorf("error = %q; want %q", err, want)
	}
	o.Migrate = true
	migrated := openT(t, o)
	if cur, _, err := migrated.SchemaStatus(ctx); err != nil || cur != latest {
		t.Errorf("SchemaStatus after migrating = %d, %v; want %d", cur, err, latest)
	}
	o.Migrate = false
	openT(t, o) // now current: opens without migrating
}

func testNewerSchemaRefused(t *testing.T, _ testDB, s *Store) {
	mustExec(t, s, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`, 9999, "9999_future", time.Now())
	_, err := reopen(t, s, nil)
	if err == nil || !strings.Contains(err.Error(), "version 9999, newer than") {
		t.Errorf("Open of a newer schema: %v; want a clear refusal", err)
	}
	if _, err := s.Migrate(ctx); err == nil || !strings.Contains(err.Error(), "upgrade followupd") {
		t.Errorf("Migrate of a newer schema: %v", err)
	}
}

func testMigrationsIdempotent(t *testing.T, _ testDB, s *Store) {
	var rows []struct {
		Version   int       `db:"version"`
		Name      string    `db:"name"`
		AppliedAt time.Time `db:"applied_at"`
	}
	err := s.InTx(ctx, func(tx *Tx) error {
		return tx.Select(ctx, &rows, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 || rows[0].Version != 1 || rows[0].Name != "0001_init" || time.Since(rows[0].AppliedAt) > time.Minute {
		t.Fatalf("schema_migrations = %+v; want 0001_init applied just now", rows)
	}
	_, latest, _ := s.SchemaStatus(ctx)
	if rows[len(rows)-1].Version != latest {
		t.Errorf("last recorded version %d; latest %d", rows[len(rows)-1].Version, latest)
	}
	for range 2 {
		applied, err := s.Migrate(ctx)
		if err != nil || len(applied) != 0 {
			t.Errorf("Migrate again = %v, %v; want nothing applied", applied, err)
		}
	}
	if _, err := reopen(t, s, nil); err != nil {
		t.Errorf("reopen: %v", err)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM schema_migrations`); n != len(rows) {
		t.Errorf("%d migration rows after re-runs; want %d", n, len(rows))
	}
}

// testConcurrentMigrations opens one fresh database from several goroutines
// at once: every open must succeed and each migration be applied once.
func testConcurrentMigrations(t *testing.T, db testDB, _ *Store) {
	o := db.fresh(t)
	o.Migrate = true
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(ctx, o)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("open %d: %v", i, errs[i])
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	_, latest, _ := stores[0].SchemaStatus(ctx)
	if got := count(t, stores[0], `SELECT COUNT(*) FROM schema_migrations`); got != latest {
		t.Errorf("%d migration rows; want %d", got, latest)
	}
}

func testExclusiveOpen(t *testing.T, db testDB, s *Store) {
	exclusive := func(o *Options) { o.Exclusive = true }
	daemon, err := reopen(t, s, exclusive)
	if err != nil {
		t.Fatalf("first Exclusive open: %v", err)
	}
	second, err := reopen(t, s, exclusive)
	if db.dialect == DialectPostgres {
		// Replicas share a Postgres database: nothing to refuse.
		if err != nil {
			t.Errorf("second Exclusive open on Postgres: %v", err)
		}
		return
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Exclusive open: %v (store %v); want ErrLocked", err, second)
	}
	want := fmt.Sprintf("store: database %s is in use by another followupd process (pid %d); stop it or point database.path at another file", s.opts.DSN, os.Getpid())
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
	// CLI commands open without Exclusive while the daemon runs.
	cli, err := reopen(t, s, nil)
	if err != nil {
		t.Fatalf("non-exclusive open next to an exclusive one: %v", err)
	}
	mustUpsert(t, cli, Contact{Email: "cli@x.com"})
	if _, err := daemon.ContactByEmail(ctx, "cli@x.com"); err != nil {
		t.Errorf("the daemon does not see the CLI's write: %v", err)
	}
	if err := daemon.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := reopen(t, s, exclusive); err != nil {
		t.Errorf("Exclusive open after the holder closed: %v", err)
	}
}
