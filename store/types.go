package store

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"time"
)

// DefaultStage is the stage of a contact created without one.
const DefaultStage = "lead"

// Event types the store itself writes.
const (
	EventCreated      = "created"
	EventStageChanged = "stage_changed"
	EventNote         = "note"
	EventPurchase     = "purchase"
)

// Enrollment statuses. Active, paused and snoozed enrollments are live: a
// contact has at most one live enrollment per sequence.
const (
	EnrollmentActive   = "active"
	EnrollmentPaused   = "paused"
	EnrollmentSnoozed  = "snoozed"
	EnrollmentFinished = "finished"
	EnrollmentStopped  = "stopped"
)

// Outbound message statuses: queued → sending → sent, or failed; a row left
// sending by a crash becomes uncertain and is never sent blindly again. A
// queued row whose enrollment or contact no longer allows it (a reply, an
// unsubscribe, a bounce, a suppression) is cancelled when the sender claims it.
const (
	MessageQueued    = "queued"
	MessageSending   = "sending"
	MessageSent      = "sent"
	MessageFailed    = "failed"
	MessageUncertain = "uncertain"
	MessageCancelled = "cancelled"
)

// Suppression kinds.
const (
	SuppressAddress = "address"
	SuppressDomain  = "domain"
)

// Contact is a person followupd writes to. Email is the identity: it is
// stored lower-cased and trimmed, and is unique.
type Contact struct {
	ID        int64  `db:"id" json:"id"`
	Email     string `db:"email" json:"email"`
	FirstName string `db:"first_name" json:"first_name"`
	LastName  string `db:"last_name" json:"last_name"`
	Company   string `db:"company" json:"company"`
	// Timezone is an IANA zone name, empty when unknown.
	Timezone string `db:"timezone" json:"timezone"`
	// Birthday is 'YYYY-MM-DD', or empty.
	Birthday     string `db:"birthday" json:"birthday"`
	CustomFields Fields `db:"custom_fields" json:"custom_fields"`
	Stage        string `db:"stage" json:"stage"`
	// OwnerAccount is the sending account that owns the relationship, if
	// any.
	OwnerAccount string    `db:"owner_account" json:"owner_account"`
	Suppressed   bool      `db:"suppressed" json:"suppressed"`
	Purchases    int       `db:"purchases" json:"purchases"`
	CreatedAt    time.Time `db:"created_at" json:"created_at"`
	UpdatedAt    time.Time `db:"updated_at" json:"updated_at"`
}

func (c *Contact) scanned() {
	utc(&c.CreatedAt)
	utc(&c.UpdatedAt)
	if c.CustomFields == nil {
		c.CustomFields = Fields{}
	}
}

// Fields are a contact's custom fields, stored as a JSON object (JSONB on
// Postgres, TEXT on SQLite).
type Fields map[string]string

// Value stores the fields as a JSON object; nil is the empty object.
func (f Fields) Value() (driver.Value, error) {
	if f == nil {
		return "{}", nil
	}
	b, err := json.Marshal(map[string]string(f))
	if err != nil {
		return nil, err
	}
	// A string, not []byte: lib/pq would send bytes as bytea and SQLite
	// would store a BLOB.
	return string(b), nil
}

// Scan reads a JSON object.
func (f *Fields) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*f = Fields{}
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("store: cannot scan %T into Fields", src)
	}
	m := map[string]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("store: custom fields are not a JSON object of strings: %w", err)
	}
	*f = m
	return nil
}

// ContactFilter selects contacts for ListContacts.
type ContactFilter struct {
	// Stage keeps only contacts in this stage; empty keeps all.
	Stage string
	// Limit caps the number of contacts; 0 means no cap.
	Limit  int
	Offset int
}

// Event is one entry of a contact's timeline.
type Event struct {
	ID        int64           `db:"id" json:"id"`
	ContactID int64           `db:"contact_id" json:"contact_id"`
	Type      string          `db:"type" json:"type"`
	Data      json.RawMessage `db:"-" json:"data"`
	CreatedAt time.Time       `db:"created_at" json:"created_at"`
}

// eventRow exists because database/sql cannot scan SQLite's TEXT into a
// json.RawMessage.
type eventRow struct {
	ID        int64     `db:"id"`
	ContactID int64     `db:"contact_id"`
	Type      string    `db:"type"`
	Data      []byte    `db:"data"`
	CreatedAt time.Time `db:"created_at"`
}

// Enrollment is a contact going through a sequence.
type Enrollment struct {
	ID        int64  `db:"id" json:"id"`
	ContactID int64  `db:"contact_id" json:"contact_id"`
	Sequence  string `db:"sequence" json:"sequence"`
	Account   string `db:"account" json:"account"`
	// Status is one of the Enrollment* constants.
	Status string `db:"status" json:"status"`
	// Step is the index of the next step to send.
	Step    int    `db:"step" json:"step"`
	Variant string `db:"variant" json:"variant"`
	// ResumeInto is the sequence a snoozed enrollment wakes up into; empty
	// means it resumes itself.
	ResumeInto  string     `db:"resume_into" json:"resume_into,omitempty"`
	DueAt       *time.Time `db:"due_at" json:"due_at,omitempty"`
	PausedUntil *time.Time `db:"paused_until" json:"paused_until,omitempty"`
	LastSentAt  *time.Time `db:"last_sent_at" json:"last_sent_at,omitempty"`
	CreatedAt   time.Time  `db:"created_at" json:"created_at"`
	UpdatedAt   time.Time  `db:"updated_at" json:"updated_at"`
}

func (e *Enrollment) scanned() {
	utcPtr(e.DueAt)
	utcPtr(e.PausedUntil)
	utcPtr(e.LastSentAt)
	utc(&e.CreatedAt)
	utc(&e.UpdatedAt)
}

// MessageOut is one step of one enrollment on its way out; there is at most
// one per (enrollment, step).
type MessageOut struct {
	ID           int64  `db:"id" json:"id"`
	EnrollmentID int64  `db:"enrollment_id" json:"enrollment_id"`
	Step         int    `db:"step" json:"step"`
	ContactID    int64  `db:"contact_id" json:"contact_id"`
	Account      string `db:"account" json:"account"`
	// Status is one of the Message* constants.
	Status string `db:"status" json:"status"`
	// MessageID is the Message-ID header, chosen before sending so that a
	// crash mid-send can be reconciled against the Sent folder.
	MessageID string `db:"message_id" json:"message_id"`
	// ThreadRoot is the Message-ID of the sequence's first message; empty
	// for that first message.
	ThreadRoot string `db:"thread_root" json:"thread_root"`
	InReplyTo  string `db:"in_reply_to" json:"in_reply_to"`
	Subject    string `db:"subject" json:"subject"`
	// The rendered message, fixed when the step is claimed.
	Sequence       string     `db:"sequence" json:"sequence"`
	Template       string     `db:"template" json:"template"`
	ToAddr         string     `db:"to_addr" json:"to_addr"`
	ToName         string     `db:"to_name" json:"to_name"`
	FromAddr       string     `db:"from_addr" json:"from_addr"`
	FromName       string     `db:"from_name" json:"from_name"`
	References     string     `db:"references_hdr" json:"references"`
	BodyText       string     `db:"body_text" json:"-"`
	BodyHTML       string     `db:"body_html" json:"-"`
	UnsubscribeURL string     `db:"unsubscribe_url" json:"-"`
	Attempts       int        `db:"attempts" json:"attempts"`
	LastError      string     `db:"last_error" json:"last_error"`
	NextAttemptAt  *time.Time `db:"next_attempt_at" json:"next_attempt_at,omitempty"`
	CreatedAt      time.Time  `db:"created_at" json:"created_at"`
	SentAt         *time.Time `db:"sent_at" json:"sent_at,omitempty"`
	UpdatedAt      time.Time  `db:"updated_at" json:"updated_at"`
}

func (m *MessageOut) scanned() {
	utcPtr(m.NextAttemptAt)
	utcPtr(m.SentAt)
	utc(&m.CreatedAt)
	utc(&m.UpdatedAt)
}

// MessageIn is a message seen in a watched mailbox, at most once per
// (account, mailbox, UIDVALIDITY, UID).
type MessageIn struct {
	ID          int64  `db:"id" json:"id"`
	Account     string `db:"account" json:"account"`
	Mailbox     string `db:"mailbox" json:"mailbox"`
	UIDValidity uint32 `db:"uidvalidity" json:"uidvalidity"`
	UID         uint32 `db:"uid" json:"uid"`
	MessageID   string `db:"message_id" json:"message_id"`
	FromAddr    string `db:"from_addr" json:"from_addr"`
	Subject     string `db:"subject" json:"subject"`
	// Kind is bounce, auto-reply, unsubscribe or reply; Intent and
	// BounceClass refine it.
	Kind        string `db:"kind" json:"kind"`
	Intent      string `db:"intent" json:"intent"`
	BounceClass string `db:"bounce_class" json:"bounce_class"`
	// Excerpt is the visible text of the message, without quoted history.
	Excerpt      string    `db:"excerpt" json:"excerpt"`
	ContactID    *int64    `db:"contact_id" json:"contact_id,omitempty"`
	MessageOutID *int64    `db:"message_out_id" json:"message_out_id,omitempty"`
	ReceivedAt   time.Time `db:"received_at" json:"received_at"`
	CreatedAt    time.Time `db:"created_at" json:"created_at"`
}

// Suppression is an address or a whole domain never to send to.
type Suppression struct {
	ID    int64  `db:"id" json:"id"`
	Value string `db:"value" json:"value"`
	// Kind is SuppressAddress or SuppressDomain.
	Kind      string    `db:"kind" json:"kind"`
	Reason    string    `db:"reason" json:"reason"`
	CreatedAt time.Time `db:"created_at" json:"created_at"`
}

// Checkpoint is how far a mailbox has been read: every UID up to LastUID
// under UIDValidity is stored in messages_in.
type Checkpoint struct {
	Account     string    `db:"account" json:"account"`
	Mailbox     string    `db:"mailbox" json:"mailbox"`
	UIDValidity uint32    `db:"uidvalidity" json:"uidvalidity"`
	LastUID     uint32    `db:"last_uid" json:"last_uid"`
	UpdatedAt   time.Time `db:"updated_at" json:"updated_at"`
}
