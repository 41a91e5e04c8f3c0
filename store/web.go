package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// The queries of the HTTP side (package web): the dashboard's pipeline,
// funnel and replies, contact search and paging, the readiness ping, the
// due backlog gauge, and the webhook outbox.

// Webhook delivery statuses: pending → delivered, or failed once the
// attempts are used up.
const (
	WebhookPending   = "pending"
	WebhookDelivered = "delivered"
	WebhookFailed    = "failed"
)

// webRebind rebinds a '?' query for the runner's database; the queries of
// this file are few and read once per request, so they are not prepared in
// queries.go.
func (r *runner) webRebind(query string) string {
	return sqlx.Rebind(sqlx.BindType(r.dialect), query)
}

// Ping checks that the database answers, for /readyz. On SQLite it waits
// for the single connection, so a transaction stuck holding it shows as not
// ready too.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("store: unable to reach the database: %w", err)
	}
	var one int
	if err := s.db.GetContext(ctx, &one, `SELECT 1`); err != nil {
		return fmt.Errorf("store: unable to query the database: %w", err)
	}
	return nil
}

// DueBacklog counts active enrollments due at or before now: the steps the
// scheduler has yet to claim. The (status, due_at) index keeps it cheap.
func (s *Store) DueBacklog(ctx context.Context, now time.Time) (int, error) {
	r := s.runner(s.db)
	var n int
	err := r.get(ctx, &n, r.webRebind(`SELECT COUNT(*) FROM enrollments WHERE status = 'active' AND due_at <= ?`), dbTime(now))
	if err != nil {
		return 0, fmt.Errorf("store: unable to count due enrollments: %w", err)
	}
	return n, nil
}

// FunnelStep is how far the messages of one step of a sequence got. Each
// count is of the step's messages (one per contact and enrollment), so it
// is also a count of contacts unless one was enrolled twice.
//
//   - Replied: a human reply (messages_in kind "reply") was matched to the
//     message; a reply matched only by its sender's address is not counted,
//     as it cannot be told which step it answers.
//   - Bounced: the message got a hard bounce: a DSN (messages_in kind
//     "bounce", bounce_class "hard") matched to it, or it failed because
//     the server refused the recipient permanently (status failed and a
//     "bounced" event naming its Message-ID, see MarkFailed; the event's
//     JSON is searched for the id without its angle brackets, which
//     encoding/json writes as \u003c and \u003e).
//   - Unsubscribed: the message was sent and then the contact unsubscribed
//     (an "unsubscribed" event, as the one-click link writes) before any
//     later step of the same enrollment was sent, or a reply with intent
//     "unsubscribe" was matched to it. An unsubscribe is thus counted on the
//     last step the contact received.
//
// The API's reply rate is Replied / Sent (see web.FunnelStep).
type FunnelStep struct {
	Step         int `db:"step" json:"step"`
	Queued       int `db:"queued" json:"queued"`
	Sending      int `db:"sending" json:"sending"`
	Sent         int `db:"sent" json:"sent"`
	Failed       int `db:"failed" json:"failed"`
	Uncertain    int `db:"uncertain" json:"uncertain"`
	Cancelled    int `db:"cancelled" json:"cancelled"`
	Replied      int `db:"replied" json:"replied"`
	Bounced      int `db:"bounced" json:"bounced"`
	Unsubscribed int `db:"unsubscribed" json:"unsubscribed"`
}

type funnelRow struct {
	Sequence string `db:"sequence"`
	FunnelStep
}

// Funnels returns, per sequence name, the steps that have messages, in step
// order; sequence limits it to one sequence when not empty. Steps nobody
// reached yet are absent: the caller knows the sequence's length.
func (s *Store) Funnels(ctx context.Context, sequence string) (map[string][]FunnelStep, error) {
	r := s.runner(s.db)
	// The enrollment's sequence, not messages_out.sequence: the latter is
	// filled when a step is claimed and may be empty on older rows.
	q := `SELECT e.sequence AS sequence, m.step AS step,
		SUM(CASE WHEN m.status = 'queued' THEN 1 ELSE 0 END) AS queued,
		SUM(CASE WHEN m.status = 'sending' THEN 1 ELSE 0 END) AS sending,
		SUM(CASE WHEN m.status = 'sent' THEN 1 ELSE 0 END) AS sent,
		SUM(CASE WHEN m.status = 'failed' THEN 1 ELSE 0 END) AS failed,
		SUM(CASE WHEN m.status = 'uncertain' THEN 1 ELSE 0 END) AS uncertain,
		SUM(CASE WHEN m.status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled,
		SUM(CASE WHEN EXISTS (SELECT 1 FROM messages_in i
			WHERE i.message_out_id = m.id AND i.kind = 'reply') THEN 1 ELSE 0 END) AS replied,
		SUM(CASE WHEN EXISTS (SELECT 1 FROM messages_in i
				WHERE i.message_out_id = m.id AND i.kind = 'bounce' AND i.bounce_class = 'hard')
			OR (m.status = 'failed' AND EXISTS (SELECT 1 FROM events b
				WHERE b.contact_id = m.contact_id AND b.type = 'bounced'
				AND CAST(b.data AS TEXT) LIKE '%' || REPLACE(REPLACE(m.message_id, '<', ''), '>', '') || '%'))
			THEN 1 ELSE 0 END) AS bounced,
		SUM(CASE WHEN m.status = 'sent' AND m.sent_at IS NOT NULL AND (
			EXISTS (SELECT 1 FROM events u
				WHERE u.contact_id = m.contact_id AND u.type = 'unsubscribed' AND u.created_at >= m.sent_at
				AND NOT EXISTS (SELECT 1 FROM messages_out n
					WHERE n.enrollment_id = m.enrollment_id AND n.step > m.step AND n.status = 'sent'
					AND n.sent_at <= u.created_at))
			OR EXISTS (SELECT 1 FROM messages_in i
				WHERE i.message_out_id = m.id AND i.intent = 'unsubscribe'))
			THEN 1 ELSE 0 END) AS unsubscribed
		FROM messages_out m JOIN enrollments e ON e.id = m.enrollment_id
		WHERE (CAST(? AS TEXT) = '' OR e.sequence = ?)
		GROUP BY e.sequence, m.step
		ORDER BY e.sequence, m.step`
	var rows []funnelRow
	if err := r.selectRows(ctx, &rows, r.webRebind(q), sequence, sequence); err != nil {
		return nil, fmt.Errorf("store: unable to compute the sequence funnels: %w", err)
	}
	out := make(map[string][]FunnelStep)
	for _, row := range rows {
		out[row.Sequence] = append(out[row.Sequence], row.FunnelStep)
	}
	return out, nil
}

// InboundMessage is a message seen in a watched mailbox with the contact it
// was matched to, if any.
type InboundMessage struct {
	MessageIn
	ContactEmail     string `db:"contact_email" json:"contact_email"`
	ContactFirstName string `db:"contact_first_name" json:"contact_first_name"`
	ContactLastName  string `db:"contact_last_name" json:"contact_last_name"`
}

// InboundFilter selects messages for RecentMessagesIn.
type InboundFilter struct {
	// Kinds keeps only these kinds (reply, autoreply, bounce, other); empty
	// keeps all.
	Kinds []string
	// ContactID keeps only the messages matched to this contact; 0 keeps all.
	ContactID int64
	// Limit caps the number of rows; 0 means no cap.
	Limit int
}

// RecentMessagesIn returns the latest inbound messages, newest first.
func (s *Store) RecentMessagesIn(ctx context.Context, f InboundFilter) ([]InboundMessage, error) {
	r := s.runner(s.db)
	q := `SELECT i.id, i.account, i.mailbox, i.uidvalidity, i.uid, i.message_id, i.from_addr,
		i.subject, i.kind, i.intent, i.bounce_class, i.excerpt, i.contact_id, i.message_out_id,
		i.received_at, i.created_at,
		COALESCE(c.email, '') AS contact_email,
		COALESCE(c.first_name, '') AS contact_first_name,
		COALESCE(c.last_name, '') AS contact_last_name
		FROM messages_in i LEFT JOIN contacts c ON c.id = i.contact_id
		WHERE (? = 0 OR i.contact_id = ?)`
	args := []any{f.ContactID, f.ContactID}
	if len(f.Kinds) > 0 {
		q += ` AND i.kind IN (` + placeholders(len(f.Kinds)) + `)`
		for _, k := range f.Kinds {
			args = append(args, k)
		}
	}
	q += ` ORDER BY i.received_at DESC, i.id DESC LIMIT ?`
	args = append(args, limitArg(f.Limit))
	var rows []InboundMessage
	if err := r.selectRows(ctx, &rows, r.webRebind(q), args...); err != nil {
		return nil, fmt.Errorf("store: unable to list inbound messages: %w", err)
	}
	for i := range rows {
		utc(&rows[i].ReceivedAt)
		utc(&rows[i].CreatedAt)
	}
	return rows, nil
}

// ContactQuery selects a page of contacts for SearchContacts.
type ContactQuery struct {
	// Stage keeps only contacts in this stage; empty keeps all.
	Stage string
	// Search keeps contacts whose email, first or last name or company
	// contains it, in any case; empty keeps all.
	Search string
	// Limit caps the page; 0 means no cap.
	Limit  int
	Offset int
}

// SearchContacts returns one page of the contacts q selects, in id order,
// and how many it selects in all.
func (s *Store) SearchContacts(ctx context.Context, q ContactQuery) (page []Contact, total int, err error) {
	r := s.runner(s.db)
	stage := strings.TrimSpace(q.Stage)
	search := strings.ToLower(strings.TrimSpace(q.Search))
	pattern := "%" + escapeLike(search) + "%"
	where := ` WHERE (CAST(? AS TEXT) = '' OR stage = ?)
		AND (CAST(? AS TEXT) = ''
			OR email LIKE ? ESCAPE '\'
			OR lower(first_name) LIKE ? ESCAPE '\'
			OR lower(last_name) LIKE ? ESCAPE '\'
			OR lower(company) LIKE ? ESCAPE '\')`
	args := []any{stage, stage, search, pattern, pattern, pattern, pattern}
	if err := r.get(ctx, &total, r.webRebind(`SELECT COUNT(*) FROM contacts`+where), args...); err != nil {
		return nil, 0, fmt.Errorf("store: unable to count contacts: %w", err)
	}
	args = append(args, limitArg(q.Limit), max(q.Offset, 0))
	if err := r.selectRows(ctx, &page, r.webRebind(`SELECT `+contactColumns+` FROM contacts`+where+` ORDER BY id LIMIT ? OFFSET ?`), args...); err != nil {
		return nil, 0, fmt.Errorf("store: unable to list contacts: %w", err)
	}
	for i := range page {
		page[i].scanned()
	}
	return page, total, nil
}

// ContactEvents returns a page of a contact's timeline, newest first:
// the events with an id below before (all when before is 0), at most limit
// (no cap when 0). The id is the cursor, as it only grows: pass the last
// event's id as the next page's before.
func (s *Store) ContactEvents(ctx context.Context, contactID, before int64, limit int) ([]Event, error) {
	r := s.runner(s.db)
	var rows []eventRow
	q := `SELECT id, contact_id, type, data, created_at FROM events
		WHERE contact_id = ? AND (? = 0 OR id < ?) ORDER BY id DESC LIMIT ?`
	if err := r.selectRows(ctx, &rows, r.webRebind(q), contactID, before, before, limitArg(limit)); err != nil {
		return nil, fmt.Errorf("store: unable to load the events of contact %d: %w", contactID, err)
	}
	events := make([]Event, len(rows))
	for i, row := range rows {
		events[i] = row.event()
	}
	return events, nil
}

// AttentionMessage is an outbound message that needs a person: it failed,
// or its outcome is uncertain.
type AttentionMessage struct {
	ID               int64     `db:"id" json:"id"`
	ContactID        int64     `db:"contact_id" json:"contact_id"`
	ContactEmail     string    `db:"contact_email" json:"contact_email"`
	ContactFirstName string    `db:"contact_first_name" json:"contact_first_name"`
	ContactLastName  string    `db:"contact_last_name" json:"contact_last_name"`
	Sequence         string    `db:"sequence" json:"sequence"`
	Step             int       `db:"step" json:"step"`
	Account          string    `db:"account" json:"account"`
	Status           string    `db:"status" json:"status"`
	Subject          string    `db:"subject" json:"subject"`
	LastError        string    `db:"last_error" json:"last_error"`
	UpdatedAt        time.Time `db:"updated_at" json:"updated_at"`
}

// NeedsAttention returns the failed and uncertain outbound messages, the
// latest first, at most limit (no cap when 0), and how many there are.
func (s *Store) NeedsAttention(ctx context.Context, limit int) ([]AttentionMessage, int, error) {
	r := s.runner(s.db)
	var total int
	if err := r.get(ctx, &total, `SELECT COUNT(*) FROM messages_out WHERE status IN ('failed', 'uncertain')`); err != nil {
		return nil, 0, fmt.Errorf("store: unable to count the messages needing attention: %w", err)
	}
	q := `SELECT m.id, m.contact_id, COALESCE(c.email, '') AS contact_email,
		COALESCE(c.first_name, '') AS contact_first_name, COALESCE(c.last_name, '') AS contact_last_name,
		e.sequence AS sequence, m.step, m.account, m.status, m.subject, m.last_error, m.updated_at
		FROM messages_out m JOIN enrollments e ON e.id = m.enrollment_id
		LEFT JOIN contacts c ON c.id = m.contact_id
		WHERE m.status IN ('failed', 'uncertain')
		ORDER BY m.updated_at DESC, m.id DESC LIMIT ?`
	var ms []AttentionMessage
	if err := r.selectRows(ctx, &ms, r.webRebind(q), limitArg(limit)); err != nil {
		return nil, 0, fmt.Errorf("store: unable to list the messages needing attention: %w", err)
	}
	for i := range ms {
		utc(&ms[i].UpdatedAt)
	}
	return ms, total, nil
}

// LockContact returns the contact with this id, locked until the
// transaction ends on Postgres (SQLite's write transaction is the lock), so
// that two concurrent changes of the same contact, such as two clicks on an
// unsubscribe link, run one after the other and the second sees the first.
func (tx *Tx) LockContact(ctx context.Context, id int64) (Contact, error) {
	q := `SELECT ` + contactColumns + ` FROM contacts WHERE id = ?`
	if tx.Dialect() == DialectPostgres {
		q += ` FOR UPDATE`
	}
	var c Contact
	if err := tx.Get(ctx, &c, q, id); err != nil {
		if errors.Is(err, ErrNotFound) {
			return Contact{}, notFound("no contact with id %d", id)
		}
		return Contact{}, fmt.Errorf("store: unable to lock contact %d: %w", id, err)
	}
	c.scanned()
	return c, nil
}

// WebhookDelivery is one POST of an event to one webhook, kept until it
// succeeds or its attempts are used up.
type WebhookDelivery struct {
	ID      int64  `db:"id" json:"id"`
	EventID *int64 `db:"event_id" json:"event_id,omitempty"`
	URL     string `db:"url" json:"url"`
	// Payload is the exact body that is POSTed and signed.
	Payload string `db:"payload" json:"payload"`
	// Status is one of the Webhook* constants.
	Status        string     `db:"status" json:"status"`
	Attempts      int        `db:"attempts" json:"attempts"`
	NextAttemptAt *time.Time `db:"next_attempt_at" json:"next_attempt_at,omitempty"`
	LastError     string     `db:"last_error" json:"last_error"`
	CreatedAt     time.Time  `db:"created_at" json:"created_at"`
	UpdatedAt     time.Time  `db:"updated_at" json:"updated_at"`
}

func (d *WebhookDelivery) scanned() {
	utcPtr(d.NextAttemptAt)
	utc(&d.CreatedAt)
	utc(&d.UpdatedAt)
}

const webhookColumns = `id, event_id, url, payload, status, attempts, next_attempt_at,
	last_error, created_at, updated_at`

// InsertWebhookDelivery queues a delivery (status pending, due now unless
// NextAttemptAt is set) in the transaction that records what it reports,
// so that the webhook is sent if and only if that commits.
func (tx *Tx) InsertWebhookDelivery(ctx context.Context, d WebhookDelivery) (int64, error) {
	if strings.TrimSpace(d.URL) == "" {
		return 0, fmt.Errorf("store: unable to queue a webhook delivery: the URL is empty")
	}
	now := tx.r.now()
	next := now
	if d.NextAttemptAt != nil {
		next = dbTime(*d.NextAttemptAt)
	}
	var id int64
	err := tx.Get(ctx, &id, `INSERT INTO webhook_deliveries (event_id, url, payload, status, attempts,
		next_attempt_at, last_error, created_at, updated_at)
		VALUES (?, ?, ?, 'pending', 0, ?, '', ?, ?) RETURNING id`, d.EventID, d.URL, d.Payload, next, now, now)
	if err != nil {
		return 0, fmt.Errorf("store: unable to queue a webhook delivery to %s: %w", d.URL, err)
	}
	return id, nil
}

// ClaimWebhookDeliveries takes up to limit pending deliveries due at now,
// the oldest due first, counts an attempt on each and pushes its next
// attempt lease into the future. The POSTs happen outside any transaction
// (a slow receiver must not hold SQLite's single connection); a process that
// dies mid-POST leaves the row to be retried once the lease runs out, so
// deliveries are at least once. On Postgres, replicas skip each other's
// rows (FOR UPDATE SKIP LOCKED).
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]WebhookDelivery, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("store: unable to claim webhook deliveries: limit %d must be positive", limit)
	}
	now = dbTime(now)
	var ds []WebhookDelivery
	err := s.InTx(ctx, func(tx *Tx) error {
		q := `SELECT ` + webhookColumns + ` FROM webhook_deliveries
			WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
			ORDER BY next_attempt_at, id LIMIT ?`
		if tx.Dialect() == DialectPostgres {
			q += ` FOR UPDATE SKIP LOCKED`
		}
		if err := tx.Select(ctx, &ds, q, now, limit); err != nil {
			return err
		}
		if len(ds) == 0 {
			return nil
		}
		until := dbTime(now.Add(lease))
		args := []any{until, tx.r.now()}
		for _, d := range ds {
			args = append(args, d.ID)
		}
		if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?,
			updated_at = ? WHERE id IN (`+placeholders(len(ds))+`)`, args...); err != nil {
			return err
		}
		for i := range ds {
			ds[i].scanned()
			ds[i].Attempts++
			ds[i].NextAttemptAt = &until
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: unable to claim webhook deliveries: %w", err)
	}
	return ds, nil
}

// finishWebhook moves a pending delivery on; a row no longer pending (a
// replica delivered it after this one's lease ran out) is reported as not
// found and left alone.
func (s *Store) finishWebhook(ctx context.Context, id int64, action, status string, next *time.Time, lastErr string) error {
	return s.InTx(ctx, func(tx *Tx) error {
		res, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, last_error = ?, updated_at = ?
			WHERE id = ? AND status = 'pending'`, status, dbTimePtr(next), lastErr, tx.r.now(), id)
		if err != nil {
			return fmt.Errorf("store: unable to mark webhook delivery %d %s: %w", id, action, err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return notFound("no pending webhook delivery %d", id)
		}
		return nil
	})
}

// MarkWebhookDelivered records that the receiver accepted the delivery.
func (s *Store) MarkWebhookDelivered(ctx context.Context, id int64) error {
	return s.finishWebhook(ctx, id, "delivered", WebhookDelivered, nil, "")
}

// MarkWebhookRetry keeps the delivery pending until next, with the error of
// the attempt that failed.
func (s *Store) MarkWebhookRetry(ctx context.Context, id int64, next time.Time, lastErr string) error {
	return s.finishWebhook(ctx, id, "for retry", WebhookPending, &next, lastErr)
}

// MarkWebhookFailed gives the delivery up.
func (s *Store) MarkWebhookFailed(ctx context.Context, id int64, lastErr string) error {
	return s.finishWebhook(ctx, id, "failed", WebhookFailed, nil, lastErr)
}

// WebhookFilter selects deliveries for WebhookDeliveries.
type WebhookFilter struct {
	// Status keeps only this status; empty keeps all.
	Status string
	// Limit caps the number of rows; 0 means no cap.
	Limit int
}

// WebhookDeliveries lists deliveries, newest first.
func (s *Store) WebhookDeliveries(ctx context.Context, f WebhookFilter) ([]WebhookDelivery, error) {
	r := s.runner(s.db)
	var ds []WebhookDelivery
	q := `SELECT ` + webhookColumns + ` FROM webhook_deliveries
		WHERE (CAST(? AS TEXT) = '' OR status = ?) ORDER BY id DESC LIMIT ?`
	if err := r.selectRows(ctx, &ds, r.webRebind(q), f.Status, f.Status, limitArg(f.Limit)); err != nil {
		return nil, fmt.Errorf("store: unable to list webhook deliveries: %w", err)
	}
	for i := range ds {
		ds[i].scanned()
	}
	return ds, nil
}

// WebhookDeliveryByID returns one delivery.
func (s *Store) WebhookDeliveryByID(ctx context.Context, id int64) (WebhookDelivery, error) {
	r := s.runner(s.db)
	var d WebhookDelivery
	if err := r.get(ctx, &d, r.webRebind(`SELECT `+webhookColumns+` FROM webhook_deliveries WHERE id = ?`), id); err != nil {
		if isNoRows(err) {
			return WebhookDelivery{}, notFound("no webhook delivery %d", id)
		}
		return WebhookDelivery{}, fmt.Errorf("store: unable to load webhook delivery %d: %w", id, err)
	}
	d.scanned()
	return d, nil
}

// NextWebhookAttempt returns when the next pending delivery is due, so the
// dispatcher can sleep until then; ok is false when none is pending.
func (s *Store) NextWebhookAttempt(ctx context.Context) (at time.Time, ok bool, err error) {
	r := s.runner(s.db)
	var ds []WebhookDelivery
	q := `SELECT ` + webhookColumns + ` FROM webhook_deliveries
		WHERE status = 'pending' ORDER BY next_attempt_at, id LIMIT 1`
	if err := r.selectRows(ctx, &ds, r.webRebind(q)); err != nil {
		return time.Time{}, false, fmt.Errorf("store: unable to read the next webhook attempt: %w", err)
	}
	if len(ds) == 0 {
		return time.Time{}, false, nil
	}
	ds[0].scanned()
	if ds[0].NextAttemptAt == nil {
		return s.clock(), true, nil
	}
	return *ds[0].NextAttemptAt, true, nil
}
