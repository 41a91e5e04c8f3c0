package daemon

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/followupd/followupd/inbox"
	"github.com/followupd/followupd/replies"
	"github.com/followupd/followupd/sequences"
	"github.com/followupd/followupd/store"
)

// Event types written for inbound mail.
const (
	EventReplied     = "replied"
	EventAutoReplied = "auto_replied"
	EventBounced     = "bounced"
)

// excerptLimit bounds the visible text kept per inbound message.
const excerptLimit = 4000

// Ingestor understands one inbound message: it classifies it, ties it to a
// contact and the message it answers, records it and applies the rules —
// all inside the caller's transaction, the one that also advances the IMAP
// checkpoint (guarantee 3).
type Ingestor struct {
	Runtime func() *Runtime
	// Classifier overrides the runtime's rules (replies.phrases added to
	// the built-in ones).
	Classifier *replies.Rules
	Webhook    Webhooker
	Now        func() time.Time
	// OnIngested is called after the message was recorded (metrics).
	OnIngested func(res replies.Result, matched bool)
}

// Inbound is one fetched message.
type Inbound struct {
	Account, Mailbox string
	UIDValidity, UID uint32
	Raw              []byte
	Received         time.Time
	// Classified is Raw already classified (Ingestor.Classify), or nil.
	Classified *replies.Result
}

// Ingested says what became of a message.
type Ingested struct {
	Result    replies.Result
	Contact   *store.Contact
	Decision  sequences.Decision
	Duplicate bool
}

// Classify classifies a raw message received at received (zero: now). It
// touches no database, so the watcher runs it ahead of Ingest.
func (in *Ingestor) Classify(raw []byte, received time.Time) replies.Result {
	if received.IsZero() {
		received = time.Now()
		if in.Now != nil {
			received = in.Now()
		}
	}
	// replies.Classify uses the default rules compiled once; a fresh
	// DefaultRules() per message would compile them again every time.
	if in.Classifier != nil {
		return in.Classifier.Classify(raw, received)
	}
	if rt := in.Runtime(); rt != nil && rt.Replies != nil {
		return rt.Replies.Classify(raw, received)
	}
	return replies.Classify(raw, received)
}

// Prepare is the watcher's inbox.Options.Prepare: it classifies each
// fetched message while the previous batch is being committed.
func (in *Ingestor) Prepare(m inbox.Message) any {
	res := in.Classify(m.Raw, m.InternalDate)
	return &res
}

// InboundOf is what Ingest takes for a watched message, with the result of
// Prepare when it ran.
func InboundOf(m inbox.Message) Inbound {
	cls, _ := m.Prepared.(*replies.Result)
	return Inbound{Account: m.Account, Mailbox: m.Mailbox, UIDValidity: m.UIDValidity, UID: m.UID,
		Raw: m.Raw, Received: m.InternalDate, Classified: cls}
}

// Ingest processes m inside tx. A message already recorded for the same
// mailbox UID is a duplicate and changes nothing.
func (in *Ingestor) Ingest(ctx context.Context, tx *store.Tx, m Inbound) (Ingested, error) {
	rt := in.Runtime()
	now := time.Now()
	if in.Now != nil {
		now = in.Now()
	}
	res := in.result(m)
	out := Ingested{Result: res}

	c, msg, err := in.match(ctx, tx, m.Account, res)
	if err != nil {
		return out, err
	}
	row := rowOf(m, res)
	if c != nil {
		row.ContactID = &c.ID
	}
	if msg != nil {
		row.MessageOutID = &msg.ID
	}
	if _, inserted, err := tx.InsertMessageInOnce(ctx, row); err != nil {
		return out, err
	} else if !inserted {
		out.Duplicate = true
		return out, nil
	}
	if in.OnIngested != nil {
		defer in.OnIngested(res, c != nil)
	}
	if c == nil {
		return out, nil
	}
	out.Contact = c

	on, typ := "", ""
	switch res.Kind {
	case replies.KindReply:
		on, typ = sequences.EventReply, EventReplied
	case replies.KindAutoReply:
		on, typ = sequences.EventAutoreply, EventAutoReplied
	case replies.KindBounce:
		on, typ = sequences.EventBounce, EventBounced
	default:
		return out, nil
	}
	data := map[string]any{"subject": res.Subject, "message_id": res.MessageID, "intent": res.Intent, "text": truncate(res.Text, excerptLimit)}
	if res.Kind == replies.KindBounce {
		data = map[string]any{"class": res.BounceClass, "status": res.Status, "recipient": res.Recipient, "source": "dsn"}
	}
	if !res.ReturnDate.IsZero() {
		data["return_date"] = res.ReturnDate.Format(time.DateOnly)
	}
	if err := tx.AddEvent(ctx, c.ID, typ, data); err != nil {
		return out, err
	}
	switch res.Kind {
	case replies.KindReply:
		err = notify(ctx, tx, in.Webhook, WebhookReplied, map[string]any{"contact": c.Email, "intent": res.Intent, "subject": res.Subject, "text": truncate(res.Text, excerptLimit)})
	case replies.KindBounce:
		err = notify(ctx, tx, in.Webhook, WebhookBounced, map[string]any{"contact": c.Email, "class": res.BounceClass, "status": res.Status})
	}
	if err != nil {
		return out, err
	}
	var enr *store.Enrollment
	if msg != nil {
		if e, err := tx.EnrollmentByID(ctx, msg.EnrollmentID); err == nil {
			enr = &e
		}
	}
	ev := sequences.Event{
		On: on, Intent: string(res.Intent), BounceClass: res.BounceClass,
		Until: res.Until, ReturnDate: res.ReturnDate, Referral: res.Referral, Text: res.Text, Now: now,
	}
	out.Decision, err = ApplyEvent(ctx, tx, rt, Subject{Contact: *c, Enrollment: enr, Account: m.Account}, ev, in.Webhook)
	return out, err
}

// result is m's classification, the one Prepare made when it ran.
func (in *Ingestor) result(m Inbound) replies.Result {
	if m.Classified != nil {
		return *m.Classified
	}
	return in.Classify(m.Raw, m.Received)
}

// rowOf is the messages_in row of m, tied to nothing yet.
func rowOf(m Inbound, res replies.Result) store.MessageIn {
	return store.MessageIn{
		Account: m.Account, Mailbox: m.Mailbox, UIDValidity: m.UIDValidity, UID: m.UID,
		MessageID: res.MessageID, FromAddr: res.From, Subject: truncate(res.Subject, 500),
		Kind: string(res.Kind), Intent: string(res.Intent), BounceClass: res.BounceClass,
		Excerpt: truncate(res.Text, excerptLimit), ReceivedAt: m.Received,
	}
}

// matchIDs are the Message-IDs match looks for among the messages sent,
// in its order: a bounce's returned Message-ID, then In-Reply-To and
// References.
func matchIDs(res replies.Result) []string {
	if res.Kind == replies.KindBounce && res.OriginalMessageID != "" {
		return append([]string{res.OriginalMessageID}, res.InReplyTo...)
	}
	return res.InReplyTo
}

// matchAddr is the address match falls back on: a bounce's failed
// recipient, or the sender.
func matchAddr(res replies.Result) string {
	if res.Kind == replies.KindBounce {
		return res.Recipient
	}
	return res.From
}

// match ties a message to a contact: through the message it answers
// (In-Reply-To/References, or a bounce's returned Message-ID), a bounce's
// failed recipient, or the sender's address when that contact is enrolled
// on this account. Unmatched answers the same question for many messages.
func (in *Ingestor) match(ctx context.Context, tx *store.Tx, account string, res replies.Result) (*store.Contact, *store.MessageOut, error) {
	for _, id := range matchIDs(res) {
		mo, err := tx.MessageOutByMessageID(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		c, err := tx.ContactByID(ctx, mo.ContactID)
		if err != nil {
			return nil, nil, err
		}
		return &c, &mo, nil
	}
	addr := matchAddr(res)
	if addr == "" {
		return nil, nil, nil
	}
	c, err := tx.ContactByEmail(ctx, addr)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if res.Kind == replies.KindBounce {
		return &c, nil, nil
	}
	live, err := tx.LiveEnrollments(ctx, c.ID)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range live {
		if e.Account == account {
			return &c, nil, nil
		}
	}
	return nil, nil, nil
}

// Unmatched reports, for each of ms, whether match would tie it to
// nothing now: no message sent that it answers, and no contact by its
// address that match would take. It asks one query for all of ms (of one
// account) where match asks two or three per message. Ingest records such
// a message and does nothing else, which RecordUnmatched does for many at
// once.
func (in *Ingestor) Unmatched(ctx context.Context, tx *store.Tx, ms []Inbound) ([]bool, error) {
	rs := make([]replies.Result, len(ms))
	// By account (the watcher's batches have one): contacts count only
	// when enrolled on the message's account.
	byAccount := map[string][]int{}
	var accounts []string
	for i, m := range ms {
		rs[i] = in.result(m)
		a := m.Account
		if _, ok := byAccount[a]; !ok {
			accounts = append(accounts, a)
		}
		byAccount[a] = append(byAccount[a], i)
	}
	out := make([]bool, len(ms))
	for _, a := range accounts {
		// The addresses of messages that answer a message sent are asked
		// too, needlessly: one statement instead of two in a row.
		var ids, addrs []string
		for _, i := range byAccount[a] {
			ids = append(ids, matchIDs(rs[i])...)
			if addr := matchAddr(rs[i]); addr != "" {
				addrs = append(addrs, addr)
			}
		}
		sent, live, err := tx.MatchesOn(ctx, a, ids, addrs)
		if err != nil {
			return nil, err
		}
		for _, i := range byAccount[a] {
			res := rs[i]
			if slices.ContainsFunc(matchIDs(res), func(id string) bool { return sent[id] }) {
				continue
			}
			addr := matchAddr(res)
			isLive, contact := live[addr]
			// A bounce matches any contact, anything else one enrolled on
			// this account.
			out[i] = addr == "" || !contact || (!isLive && res.Kind != replies.KindBounce)
		}
	}
	return out, nil
}

// RecordUnmatched records ms as Ingest records a message that matches
// nobody, in multi-row inserts: each must have been called unmatched by
// Unmatched in tx, with nothing changed since, and have no messages_in row
// yet (the watcher looks them up in tx). A row recorded meanwhile by
// another writer fails the call with store.ErrDuplicate, and tx must be
// rolled back (the watcher then takes the batch one message at a time,
// where Ingest finds the row): store.InsertMessagesIn, cheaper than
// guarding every row against that. A message given twice is recorded
// once, the second a Duplicate. OnIngested is called for each message
// recorded.
func (in *Ingestor) RecordUnmatched(ctx context.Context, tx *store.Tx, ms []Inbound) ([]Ingested, error) {
	out := make([]Ingested, len(ms))
	rows := make([]store.MessageIn, len(ms))
	for i, m := range ms {
		out[i].Result = in.result(m)
		rows[i] = rowOf(m, out[i].Result)
	}
	inserted, err := tx.InsertMessagesIn(ctx, rows)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Duplicate = !inserted[i]
		if !out[i].Duplicate && in.OnIngested != nil {
			in.OnIngested(out[i].Result, false)
		}
	}
	return out, nil
}

// Batch is the watcher's inbox.Options.Batch for this Ingestor, to go
// with a Handler that calls Ingest: the messages of a fetched batch that
// match nobody are recorded with Unmatched and RecordUnmatched, a few
// statements for the whole batch, and the others are left to Ingest.
// observe, when not nil, is called with each message recorded (not a
// Duplicate), as the daemon's Handler observes each message Ingest
// records.
func (in *Ingestor) Batch(observe func(inbox.Message)) inbox.BatchHandler {
	return &ingestBatch{in: in, observe: observe}
}

type ingestBatch struct {
	in      *Ingestor
	observe func(inbox.Message)
}

func (b *ingestBatch) Simple(ctx context.Context, tx *store.Tx, msgs []inbox.Message) ([]bool, error) {
	return b.in.Unmatched(ctx, tx, inboundsOf(msgs))
}

func (b *ingestBatch) Record(ctx context.Context, tx *store.Tx, msgs []inbox.Message) ([]bool, error) {
	res, err := b.in.RecordUnmatched(ctx, tx, inboundsOf(msgs))
	if err != nil {
		return nil, err
	}
	// Each message was recorded (or given twice): every one has its row.
	stored := make([]bool, len(msgs))
	for i, r := range res {
		stored[i] = true
		if !r.Duplicate && b.observe != nil {
			b.observe(msgs[i])
		}
	}
	return stored, nil
}

func inboundsOf(msgs []inbox.Message) []Inbound {
	out := make([]Inbound, len(msgs))
	for i, m := range msgs {
		out[i] = InboundOf(m)
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return strings.TrimSpace(s) + "…"
}
