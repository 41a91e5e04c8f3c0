package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Set-based forms of the outbox's and the scheduler's per-row operations.
// On Postgres every statement is a loopback round trip, and a busy outbox
// records hundreds of sends a second: doing a group of rows in one
// statement instead of one statement per row is what keeps the database
// from being the pipeline's limit. Each does exactly what the per-row form
// does, for every row.

// maxBatchParams bounds the parameters of one multi-row statement, under
// both Postgres's limit (65535) and SQLite's (32766).
const maxBatchParams = 30000

// chunks calls fn with consecutive slices of items, each at most n long.
func chunks[T any](items []T, n int, fn func([]T) error) error {
	for len(items) > 0 {
		k := min(n, len(items))
		if err := fn(items[:k]); err != nil {
			return err
		}
		items = items[k:]
	}
	return nil
}

// valuesCTE returns `WITH name(cols) AS (VALUES (?, …), …)` for n rows. On
// Postgres each parameter is cast to its column's type (pgTypes), which a
// bare parameter in VALUES would not have; SQLite takes them as they come
// (its CAST would turn a timestamp's text into a number).
func (r *runner) valuesCTE(name string, cols, pgTypes []string, n int) string {
	row := "(" + placeholders(len(cols)) + ")"
	if r.dialect == DialectPostgres {
		marks := make([]string, len(cols))
		for i, t := range pgTypes {
			marks[i] = "CAST(? AS " + t + ")"
		}
		row = "(" + strings.Join(marks, ", ") + ")"
	}
	var b strings.Builder
	b.WriteString("WITH " + name + "(" + strings.Join(cols, ", ") + ") AS (VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString(")")
	return b.String()
}

// rowsCTE is valuesCTE for rows passed with rowArgs. On Postgres the rows
// travel as one array per column, unnested: the statement's text is the
// same for any number of rows and short to parse and plan (a VALUES list
// of casts took about 6 µs per row to plan, a seventh of the row's insert),
// with one parameter per column. SQLite takes the VALUES list.
func (r *runner) rowsCTE(name string, cols, pgTypes []string, n int) string {
	if r.dialect != DialectPostgres {
		return r.valuesCTE(name, cols, pgTypes, n)
	}
	marks := make([]string, len(cols))
	for i, t := range pgTypes {
		marks[i] = "CAST(? AS " + t + "[])"
	}
	return "WITH " + name + "(" + strings.Join(cols, ", ") + ") AS (SELECT * FROM unnest(" + strings.Join(marks, ", ") + "))"
}

// rowArgs returns rows, each a value per column, as rowsCTE's parameters:
// one array literal per column on Postgres, the values row after row on
// SQLite.
func (r *runner) rowArgs(rows [][]any) []any {
	if len(rows) == 0 {
		return nil
	}
	if r.dialect != DialectPostgres {
		args := make([]any, 0, len(rows)*len(rows[0]))
		for _, row := range rows {
			args = append(args, row...)
		}
		return args
	}
	args := make([]any, len(rows[0]))
	var b []byte
	for c := range args {
		b = append(b[:0], '{')
		for i, row := range rows {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendArrayElem(b, row[c])
		}
		b = append(b, '}')
		args[c] = string(b)
	}
	return args
}

// appendArrayElem appends v to a Postgres array literal. Text is always
// quoted (so that "", NULL or a comma in it stay text); times travel as
// ISO 8601 text, exact to the microsecond.
func appendArrayElem(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "NULL"...)
	case *time.Time:
		if v == nil {
			return append(b, "NULL"...)
		}
		return appendArrayElem(b, *v)
	case *int64:
		if v == nil {
			return append(b, "NULL"...)
		}
		return strconv.AppendInt(b, *v, 10)
	case time.Time:
		return appendQuoted(b, v.UTC().Format(time.RFC3339Nano))
	case int64:
		return strconv.AppendInt(b, v, 10)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case bool:
		return strconv.AppendBool(b, v)
	case string:
		return appendQuoted(b, v)
	default:
		return appendQuoted(b, fmt.Sprint(v))
	}
}

func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// inList returns the condition "col is one of n values" for listArgs's
// parameters: `col IN (?, …)` on SQLite, `col = ANY(CAST(? AS pgType[]))`
// on Postgres (one parameter, one statement text for any n).
func (r *runner) inList(col, pgType string, n int) string {
	if r.dialect != DialectPostgres {
		return col + " IN (" + placeholders(n) + ")"
	}
	return col + " = ANY(CAST(? AS " + pgType + "[]))"
}

// listArgs returns vals as inList's parameters.
func listArgs[T int64 | string](r *runner, vals []T) []any {
	if r.dialect != DialectPostgres {
		return anyArgs(vals)
	}
	var b []byte
	b = append(b, '{')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendArrayElem(b, any(v))
	}
	return []any{string(append(b, '}'))}
}

// newEvent is one event for addEvents.
type newEvent struct {
	contactID int64
	typ       string
	data      any
}

// addEvents is addEvent for many events, in multi-row inserts.
func (r *runner) addEvents(ctx context.Context, evs []newEvent) error {
	const arity = 5
	now := r.now()
	return chunks(evs, maxBatchParams/arity, func(part []newEvent) error {
		rows := make([][]any, 0, len(part))
		for _, ev := range part {
			b, err := json.Marshal(ev.data)
			if err != nil {
				return fmt.Errorf("store: unable to encode %s event: %w", ev.typ, err)
			}
			rows = append(rows, []any{ev.contactID, ev.typ, string(b), now, triggers(ev.typ)})
		}
		q := `INSERT INTO events (contact_id, type, data, created_at, pending) VALUES ` + valueRows(len(part), arity)
		if r.dialect == DialectPostgres {
			q = r.rowsCTE("v", []string{"contact_id", "type", "data", "created_at", "pending"},
				[]string{"BIGINT", "TEXT", "JSONB", "TIMESTAMPTZ", "BOOLEAN"}, len(part)) + `
				INSERT INTO events (contact_id, type, data, created_at, pending)
				SELECT contact_id, type, data, created_at, pending FROM v`
		}
		if _, err := r.exec(ctx, r.rb(q), r.rowArgs(rows)...); err != nil {
			return fmt.Errorf("store: unable to add %d events: %w", len(part), classify(err))
		}
		return nil
	})
}

// sentColumns are the columns of messages_out that MarkSentBatch returns:
// all but the bodies, which a recorded send no longer needs.
const sentColumns = `messages_out.id, enrollment_id, step, contact_id, account, status, message_id,
	COALESCE(thread_root, '') AS thread_root, in_reply_to, subject, sequence, template,
	to_addr, to_name, from_addr, from_name, references_hdr,
	unsubscribe_url, attempts, last_error, next_attempt_at, created_at, messages_out.sent_at, updated_at`

// SentMessage is a message the server accepted at At, for MarkSentBatch.
type SentMessage struct {
	ID int64
	At time.Time
}

// BatchHook runs inside the transaction that records a group of sends, with
// the rows as they are after the change, in the order they were given.
type BatchHook func(tx *Tx, ms []MessageOut) error

// MarkSentBatch is MarkSent for a group of messages in one transaction:
// each row still sending or uncertain becomes sent with its own sent_at and
// a "sent" event, and hook (when not nil) runs once with all of them. Rows
// in another status (recorded by another replica meanwhile) are left alone
// and not in recorded. An error rolls back the whole group.
func (s *Store) MarkSentBatch(ctx context.Context, sends []SentMessage, hook BatchHook) (recorded []MessageOut, err error) {
	if len(sends) == 0 {
		return nil, nil
	}
	err = s.InTx(ctx, func(tx *Tx) error {
		recorded = nil
		r := tx.r
		at := make(map[int64]time.Time, len(sends))
		ids := make([]int64, 0, len(sends))
		for _, sm := range sends {
			if _, dup := at[sm.ID]; !dup {
				ids = append(ids, sm.ID)
			}
			at[sm.ID] = dbTime(sm.At)
		}
		slices.Sort(ids)
		// One statement per chunk marks and returns the rows still sending
		// or uncertain (the rest was recorded by another replica): the
		// columns the event and the hook need, not the bodies.
		now := r.now()
		byID := make(map[int64]MessageOut, len(ids))
		err := chunks(ids, maxBatchParams/2, func(part []int64) error {
			rows := make([][]any, len(part))
			for i, id := range part {
				rows[i] = []any{id, at[id]}
			}
			args := append(r.rowArgs(rows), now)
			q := r.rowsCTE("v", []string{"id", "sent_at"}, []string{"BIGINT", "TIMESTAMPTZ"}, len(part)) + `
				UPDATE messages_out SET status = 'sent', sent_at = v.sent_at, updated_at = ?
				FROM v WHERE messages_out.id = v.id AND messages_out.status IN ('sending', 'uncertain')
				RETURNING ` + sentColumns
			var got []MessageOut
			if err := r.selectRows(ctx, &got, r.rb(q), args...); err != nil {
				return fmt.Errorf("store: unable to mark %d messages sent: %w", len(part), classify(err))
			}
			for _, m := range got {
				m.scanned()
				byID[m.ID] = m
			}
			return nil
		})
		if err != nil {
			return err
		}
		// In the caller's order, once each.
		for _, sm := range sends {
			if m, ok := byID[sm.ID]; ok {
				recorded = append(recorded, m)
				delete(byID, sm.ID)
			}
		}
		if len(recorded) == 0 {
			return nil
		}
		evs := make([]newEvent, len(recorded))
		for i, m := range recorded {
			evs[i] = newEvent{m.ContactID, EventSent, sentData{MessageID: m.MessageID, Sequence: m.Sequence, Step: m.Step, Subject: m.Subject}}
		}
		if err := r.addEvents(ctx, evs); err != nil {
			return err
		}
		if hook != nil {
			return hook(tx, recorded)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return recorded, nil
}

// EnrollmentsByIDs returns the enrollments with these ids by id; with lock
// they are locked until the transaction ends (Postgres; in id order, so
// that two callers lock in the same order). Missing ids are absent.
func (tx *Tx) EnrollmentsByIDs(ctx context.Context, ids []int64, lock bool) (map[int64]Enrollment, error) {
	r := tx.r
	ids = sortedUnique(ids)
	out := make(map[int64]Enrollment, len(ids))
	err := chunks(ids, maxBatchParams, func(part []int64) error {
		var es []Enrollment
		q := `SELECT ` + enrollmentColumns + ` FROM enrollments WHERE ` + r.inList("id", "BIGINT", len(part)) + ` ORDER BY id`
		if lock {
			q += r.lockSuffix(false)
		}
		if err := r.selectRows(ctx, &es, r.rb(q), listArgs(r, part)...); err != nil {
			return fmt.Errorf("store: unable to load %d enrollments: %w", len(part), err)
		}
		for _, e := range es {
			e.scanned()
			out[e.ID] = e
		}
		return nil
	})
	return out, err
}

// EnrollmentForUpdate is EnrollmentByID with the row locked until the
// transaction ends (Postgres; SQLite's write transaction is the lock).
func (tx *Tx) EnrollmentForUpdate(ctx context.Context, id int64) (Enrollment, error) {
	es, err := tx.EnrollmentsByIDs(ctx, []int64{id}, true)
	if err != nil {
		return Enrollment{}, err
	}
	e, ok := es[id]
	if !ok {
		return Enrollment{}, notFound("no enrollment with id %d", id)
	}
	return e, nil
}

// ContactsByIDs returns the contacts with these ids by id; missing ids are
// absent. With lock, the rows are locked in id order until the transaction
// ends (Postgres; SQLite's write transaction is the lock).
func (tx *Tx) ContactsByIDs(ctx context.Context, ids []int64, lock bool) (map[int64]Contact, error) {
	r := tx.r
	ids = sortedUnique(ids)
	out := make(map[int64]Contact, len(ids))
	err := chunks(ids, maxBatchParams, func(part []int64) error {
		var cs []Contact
		q := `SELECT ` + contactColumns + ` FROM contacts WHERE ` + r.inList("id", "BIGINT", len(part))
		if lock {
			q += ` ORDER BY id` + r.lockSuffix(false)
		}
		if err := r.selectRows(ctx, &cs, r.rb(q), listArgs(r, part)...); err != nil {
			return fmt.Errorf("store: unable to load %d contacts: %w", len(part), err)
		}
		for _, c := range cs {
			c.scanned()
			out[c.ID] = c
		}
		return nil
	})
	return out, err
}

// anyArgs returns xs as query arguments.
func anyArgs[T any](xs []T) []any {
	args := make([]any, len(xs))
	for i, x := range xs {
		args[i] = x
	}
	return args
}

func sortedUnique(ids []int64) []int64 {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return slices.Compact(ids)
}

// SuppressedEmails says which of emails are on the suppression list, by
// address or by domain (IsSuppressed for many addresses in one query; the
// contact's own suppressed flag is the caller's to check). Keys are the
// addresses as given.
func (tx *Tx) SuppressedEmails(ctx context.Context, emails []string) (map[string]bool, error) {
	r := tx.r
	var values []string
	seen := map[string]bool{}
	for _, e := range emails {
		addr := NormalizeEmail(e)
		for _, v := range []string{addr, emailDomain(addr)} {
			if v != "" && !seen[v] {
				seen[v] = true
				values = append(values, v)
			}
		}
	}
	hit := map[string]bool{}
	err := chunks(values, maxBatchParams, func(part []string) error {
		var got []string
		q := `SELECT value FROM suppressions WHERE ` + r.inList("value", "TEXT", len(part))
		if err := r.selectRows(ctx, &got, r.rb(q), listArgs(r, part)...); err != nil {
			return fmt.Errorf("store: unable to check the suppression of %d addresses: %w", len(part), err)
		}
		for _, v := range got {
			hit[v] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(emails))
	for _, e := range emails {
		addr := NormalizeEmail(e)
		if hit[addr] || hit[emailDomain(addr)] {
			out[e] = true
		}
	}
	return out, nil
}

// ThreadsOf is ThreadOf for many enrollments: each one's messages (any
// status but cancelled and failed) in step order.
func (tx *Tx) ThreadsOf(ctx context.Context, enrollmentIDs []int64) (map[int64][]MessageOut, error) {
	r := tx.r
	ids := sortedUnique(enrollmentIDs)
	out := make(map[int64][]MessageOut, len(ids))
	err := chunks(ids, maxBatchParams, func(part []int64) error {
		var ms []MessageOut
		q := `SELECT ` + messageOutColumns + ` FROM messages_out
			WHERE ` + r.inList("enrollment_id", "BIGINT", len(part)) + ` AND status NOT IN ('cancelled', 'failed')
			ORDER BY enrollment_id, step`
		if err := r.selectRows(ctx, &ms, r.rb(q), listArgs(r, part)...); err != nil {
			return fmt.Errorf("store: unable to load the threads of %d enrollments: %w", len(part), err)
		}
		for _, m := range ms {
			m.scanned()
			out[m.EnrollmentID] = append(out[m.EnrollmentID], m)
		}
		return nil
	})
	return out, err
}

// InsertMessagesOutOnce is InsertMessageOutOnce for many messages in
// multi-row inserts: each is queued unless its step already has a live
// (not cancelled) row. inserted holds the enrollment ids whose message was
// queued, with the new row's id.
func (tx *Tx) InsertMessagesOutOnce(ctx context.Context, ms []MessageOut) (inserted map[int64]int64, err error) {
	const arity = 25
	r := tx.r
	now := r.now()
	inserted = make(map[int64]int64, len(ms))
	err = chunks(ms, maxBatchParams/arity, func(part []MessageOut) error {
		rows := make([][]any, 0, len(part))
		for _, m := range part {
			if m.Status == "" {
				m.Status = MessageQueued
			}
			rows = append(rows, []any{m.EnrollmentID, m.Step, m.ContactID, m.Account,
				m.Status, m.MessageID, nullIfEmpty(m.ThreadRoot), m.InReplyTo, m.Subject, m.Sequence, m.Template,
				m.ToAddr, m.ToName, m.FromAddr, m.FromName, m.References, m.BodyText, m.BodyHTML,
				m.UnsubscribeURL, m.Attempts, m.LastError, dbTimePtr(m.NextAttemptAt), now, dbTimePtr(m.SentAt), now})
		}
		const cols = `enrollment_id, step, contact_id, account,
			status, message_id, thread_root, in_reply_to, subject, sequence, template,
			to_addr, to_name, from_addr, from_name, references_hdr, body_text, body_html,
			unsubscribe_url, attempts, last_error, next_attempt_at, created_at, sent_at, updated_at`
		const once = `
			ON CONFLICT (enrollment_id, step) WHERE status <> 'cancelled' DO NOTHING
			RETURNING id, enrollment_id`
		q := `INSERT INTO messages_out (` + cols + `) VALUES ` + valueRows(len(part), arity) + once
		if r.dialect == DialectPostgres {
			// SQLite would need a WHERE in an INSERT … SELECT before its
			// ON CONFLICT; it keeps the VALUES form.
			q = r.rowsCTE("v", strings.Split(cols, ","), messageOutPGTypes, len(part)) +
				` INSERT INTO messages_out (` + cols + `) SELECT ` + cols + ` FROM v` + once
		}
		args := r.rowArgs(rows)
		var got []struct {
			ID           int64 `db:"id"`
			EnrollmentID int64 `db:"enrollment_id"`
		}
		if err := r.selectRows(ctx, &got, r.rb(q), args...); err != nil {
			return fmt.Errorf("store: unable to queue %d outbound messages: %w", len(part), classify(err))
		}
		for _, g := range got {
			inserted[g.EnrollmentID] = g.ID
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return inserted, nil
}

// messageOutPGTypes are the Postgres types of InsertMessagesOutOnce's
// columns, in its order.
var messageOutPGTypes = []string{"BIGINT", "INTEGER", "BIGINT", "TEXT",
	"TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT",
	"TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT",
	"TEXT", "INTEGER", "TEXT", "TIMESTAMPTZ", "TIMESTAMPTZ", "TIMESTAMPTZ", "TIMESTAMPTZ"}

// nullIfEmpty is nil for "": thread_root is NULL, not empty, when a
// message starts its thread.
func nullIfEmpty(v string) any {
	if v == "" {
		return nil
	}
	return v
}

// EnrollmentProgress is one enrollment's step, variant, due time and last
// send, for AdvanceEnrollments.
type EnrollmentProgress struct {
	ID         int64
	Step       int
	Variant    string
	DueAt      *time.Time
	LastSentAt *time.Time
}

// AdvanceEnrollments writes the step, variant, due_at and last_sent_at of
// many live (active, paused, snoozed) enrollments in multi-row updates. It
// leaves status and the rest alone, and an enrollment that ended meanwhile
// untouched: a progress update never undoes a stop.
func (tx *Tx) AdvanceEnrollments(ctx context.Context, ps []EnrollmentProgress) error {
	r := tx.r
	now := r.now()
	return chunks(ps, maxBatchParams/5, func(part []EnrollmentProgress) error {
		rows := make([][]any, len(part))
		for i, p := range part {
			rows[i] = []any{p.ID, p.Step, p.Variant, dbTimePtr(p.DueAt), dbTimePtr(p.LastSentAt)}
		}
		args := append(r.rowArgs(rows), now)
		q := r.rowsCTE("v", []string{"id", "step", "variant", "due_at", "last_sent_at"},
			[]string{"BIGINT", "INTEGER", "TEXT", "TIMESTAMPTZ", "TIMESTAMPTZ"}, len(part)) + `
			UPDATE enrollments SET step = v.step, variant = v.variant, due_at = v.due_at,
				last_sent_at = v.last_sent_at, updated_at = ?
			FROM v WHERE enrollments.id = v.id AND enrollments.status IN ('active', 'paused', 'snoozed')`
		if _, err := r.exec(ctx, r.rb(q), args...); err != nil {
			return fmt.Errorf("store: unable to update %d enrollments: %w", len(part), classify(err))
		}
		return nil
	})
}
