package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// AddEvent adds an event of type typ to the contact's timeline; data is
// stored as JSON (nil as {}).
func (s *Store) AddEvent(ctx context.Context, contactID int64, typ string, data any) error {
	return s.runner(s.db).addEvent(ctx, contactID, typ, data)
}

// AddEvent is Store.AddEvent inside the transaction.
func (tx *Tx) AddEvent(ctx context.Context, contactID int64, typ string, data any) error {
	return tx.r.addEvent(ctx, contactID, typ, data)
}

func (r *runner) addEvent(ctx context.Context, contactID int64, typ string, data any) error {
	typ = strings.TrimSpace(typ)
	if typ == "" {
		return fmt.Errorf("store: unable to add event: the event type is empty")
	}
	text := "{}"
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("store: unable to encode %s event: %w", typ, err)
		}
		text = string(b)
	}
	// text, not []byte: bytes would become bytea on Postgres and a BLOB on
	// SQLite.
	if _, err := r.exec(ctx, r.q.insertEvent, contactID, typ, text, r.now(), triggers(typ)); err != nil {
		if isForeignKeyViolation(err) {
			return notFound("no contact with id %d", contactID)
		}
		return fmt.Errorf("store: unable to add %s event: %w", typ, classify(err))
	}
	return nil
}

// Timeline returns the contact's latest limit events (all when limit <= 0),
// oldest first, ordered by time and then by id, which breaks ties between
// events written in the same microsecond in the order they were written.
func (s *Store) Timeline(ctx context.Context, contactID int64, limit int) ([]Event, error) {
	var rows []eventRow
	if err := s.runner(s.db).selectRows(ctx, &rows, s.q.timeline, contactID, limitArg(limit)); err != nil {
		return nil, fmt.Errorf("store: unable to load the timeline of contact %d: %w", contactID, err)
	}
	slices.Reverse(rows)
	events := make([]Event, len(rows))
	for i, r := range rows {
		events[i] = r.event()
	}
	return events, nil
}

func (r eventRow) event() Event {
	return Event{
		ID:        r.ID,
		ContactID: r.ContactID,
		Type:      r.Type,
		Data:      json.RawMessage(r.Data),
		CreatedAt: r.CreatedAt.UTC(),
	}
}

// triggers tells whether an event may enroll the contact in a sequence
// (a contact created or entering a stage): such events wait, marked pending,
// for the scheduler's trigger pass. A flag read with SKIP LOCKED, rather than
// a cursor over ids, because Postgres ids can commit out of order.
func triggers(typ string) bool {
	return typ == EventCreated || typ == EventStageChanged
}
