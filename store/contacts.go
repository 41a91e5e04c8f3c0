package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"
)

// importBatch is how many contacts one upsert statement carries: 13
// parameters each stays far below SQLite's 32766 and Postgres's 65535, and
// larger batches gain little.
const importBatch = 500

// NormalizeEmail is the form an address is stored and looked up in.
func NormalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

func validEmail(email string) error {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 || strings.ContainsAny(email, " \t\r\n") {
		return fmt.Errorf("store: invalid email address %q", email)
	}
	return nil
}

// normalizeContact validates c and puts it in its stored form. The stage is
// left empty when not given: the upsert decides between the default and the
// stored one.
func normalizeContact(c Contact) (Contact, error) {
	c.Email = NormalizeEmail(c.Email)
	if err := validEmail(c.Email); err != nil {
		return c, err
	}
	c.FirstName = strings.TrimSpace(c.FirstName)
	c.LastName = strings.TrimSpace(c.LastName)
	c.Company = strings.TrimSpace(c.Company)
	c.Timezone = strings.TrimSpace(c.Timezone)
	c.Stage = strings.TrimSpace(c.Stage)
	c.OwnerAccount = strings.TrimSpace(c.OwnerAccount)
	c.Birthday = strings.TrimSpace(c.Birthday)
	if c.Birthday != "" {
		if _, err := time.Parse(time.DateOnly, c.Birthday); err != nil {
			return c, fmt.Errorf("store: invalid birthday %q for %s: want YYYY-MM-DD", c.Birthday, c.Email)
		}
	}
	if c.Purchases < 0 {
		return c, fmt.Errorf("store: negative purchase count for %s", c.Email)
	}
	return c, nil
}

// mergeContact folds a later row for the same address into an earlier one
// with the rules the upsert applies against the database.
func mergeContact(dst *Contact, src Contact) {
	set := func(d *string, s string) {
		if s != "" {
			*d = s
		}
	}
	set(&dst.FirstName, src.FirstName)
	set(&dst.LastName, src.LastName)
	set(&dst.Company, src.Company)
	set(&dst.Timezone, src.Timezone)
	set(&dst.Birthday, src.Birthday)
	set(&dst.Stage, src.Stage)
	set(&dst.OwnerAccount, src.OwnerAccount)
	if len(src.CustomFields) > 0 {
		if dst.CustomFields == nil {
			dst.CustomFields = Fields{}
		}
		maps.Copy(dst.CustomFields, src.CustomFields)
	}
	dst.Suppressed = dst.Suppressed || src.Suppressed
	dst.Purchases = max(dst.Purchases, src.Purchases)
}

// contactArgs are the values of contactInsertColumns.
func contactArgs(args []any, c Contact, stage string, now time.Time) []any {
	var birthday any // NULL, not '', which is no date
	if c.Birthday != "" {
		birthday = c.Birthday
	}
	return append(args, c.Email, c.FirstName, c.LastName, c.Company, c.Timezone, birthday,
		c.CustomFields, stage, c.OwnerAccount, c.Suppressed, c.Purchases, now, now)
}

type createdData struct {
	Stage  string `json:"stage"`
	Source string `json:"source,omitempty"`
}

type stageChangeData struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
}

type upsertResult struct {
	id      int64
	created bool
}

// upsertBatch inserts or merges contacts (normalised, distinct emails) in
// three statements whatever their number: read the existing rows, write all
// rows, write their events. source names the caller in the events.
//
// "Created" means absent when the batch read the existing rows. On SQLite
// nothing can come between (the transaction holds the write lock); on
// Postgres two transactions creating the same new address at the same
// moment both count it as created and both write a "created" event — the
// contact itself is still stored once, merged.
func (r *runner) upsertBatch(ctx context.Context, cs []Contact, source string) ([]upsertResult, error) {
	emails := make([]any, len(cs))
	for i, c := range cs {
		emails[i] = c.Email
	}
	var existing []struct {
		ID    int64  `db:"id"`
		Email string `db:"email"`
		Stage string `db:"stage"`
	}
	if err := r.selectRows(ctx, &existing, r.q.existingContactsSQL(len(cs)), emails...); err != nil {
		return nil, fmt.Errorf("store: unable to read existing contacts: %w", classify(err))
	}
	oldStage := make(map[string]string, len(existing))
	for _, e := range existing {
		oldStage[e.Email] = e.Stage
	}

	now := r.now()
	stages := make([]string, len(cs))
	args := make([]any, 0, len(cs)*contactInsertArity)
	for i, c := range cs {
		stage := c.Stage
		if stage == "" {
			if old, ok := oldStage[c.Email]; ok {
				stage = old
			} else {
				stage = r.defaultStage
			}
		}
		stages[i] = stage
		args = contactArgs(args, c, stage, now)
	}
	var written []struct {
		ID    int64  `db:"id"`
		Email string `db:"email"`
	}
	if err := r.selectRows(ctx, &written, r.q.upsertContactsSQL(len(cs)), args...); err != nil {
		return nil, fmt.Errorf("store: unable to write contacts: %w", classify(err))
	}
	ids := make(map[string]int64, len(written))
	for _, w := range written {
		ids[w.Email] = w.ID
	}

	results := make([]upsertResult, len(cs))
	evArgs := make([]any, 0, len(cs)*5)
	for i, c := range cs {
		id, ok := ids[c.Email]
		if !ok {
			return nil, fmt.Errorf("store: unable to write contacts: no id returned for %s", c.Email)
		}
		old, existed := oldStage[c.Email]
		results[i] = upsertResult{id: id, created: !existed}
		var typ string
		var data any
		switch {
		case !existed:
			typ, data = EventCreated, createdData{Stage: stages[i], Source: source}
		case stages[i] != old:
			typ, data = EventStageChanged, stageChangeData{From: old, To: stages[i], Reason: source}
		default:
			continue
		}
		b, err := json.Marshal(data)
		if err != nil {
			return nil, fmt.Errorf("store: unable to encode event: %w", err)
		}
		evArgs = append(evArgs, id, typ, string(b), now, triggers(typ))
	}
	if n := len(evArgs) / 5; n > 0 {
		if _, err := r.exec(ctx, r.q.insertEventsSQL(n), evArgs...); err != nil {
			return nil, fmt.Errorf("store: unable to write contact events: %w", classify(err))
		}
	}
	return results, nil
}

// UpsertContact inserts c, or updates the contact with its email: non-empty
// fields replace the stored ones, custom fields are merged key by key (new
// keys added, existing ones overwritten), Suppressed can only be set and
// Purchases only raised. A new contact gets a "created" event, a changed
// stage a "stage_changed" one.
func (s *Store) UpsertContact(ctx context.Context, c Contact) (id int64, created bool, err error) {
	err = s.InTx(ctx, func(tx *Tx) error {
		id, created, err = tx.UpsertContact(ctx, c)
		return err
	})
	return id, created, err
}

// UpsertContact is Store.UpsertContact inside the transaction.
func (tx *Tx) UpsertContact(ctx context.Context, c Contact) (id int64, created bool, err error) {
	c, err = normalizeContact(c)
	if err != nil {
		return 0, false, err
	}
	res, err := tx.r.upsertBatch(ctx, []Contact{c}, "upsert")
	if err != nil {
		return 0, false, err
	}
	return res[0].id, res[0].created, nil
}

// ImportContacts upserts cs like UpsertContact, all in one transaction: a
// failure leaves the database as it was. Rows repeating an address are
// merged in order first. It returns how many contacts were created and how
// many existing ones updated.
func (s *Store) ImportContacts(ctx context.Context, cs []Contact) (created, updated int, err error) {
	rows := make([]Contact, 0, len(cs))
	index := make(map[string]int, len(cs))
	for i, c := range cs {
		n, err := normalizeContact(c)
		if err != nil {
			return 0, 0, fmt.Errorf("store: unable to import contact %d: %w", i+1, err)
		}
		if j, seen := index[n.Email]; seen {
			mergeContact(&rows[j], n)
			continue
		}
		if n.CustomFields != nil {
			// mergeContact writes into it: keep the caller's map intact.
			n.CustomFields = maps.Clone(n.CustomFields)
		}
		index[n.Email] = len(rows)
		rows = append(rows, n)
	}
	err = s.InTx(ctx, func(tx *Tx) error {
		created, updated = 0, 0
		for start := 0; start < len(rows); start += importBatch {
			end := min(start+importBatch, len(rows))
			res, err := tx.r.upsertBatch(ctx, rows[start:end], "import")
			if err != nil {
				return err
			}
			for _, r := range res {
				if r.created {
					created++
				} else {
					updated++
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return created, updated, nil
}

// CreateContact inserts a new contact and its "created" event; an existing
// email (in any case) is refused with ErrDuplicate.
func (s *Store) CreateContact(ctx context.Context, c Contact) (int64, error) {
	c, err := normalizeContact(c)
	if err != nil {
		return 0, err
	}
	if c.Stage == "" {
		c.Stage = s.defaultStage()
	}
	var id int64
	err = s.InTx(ctx, func(tx *Tx) error {
		now := tx.r.now()
		if err := tx.r.get(ctx, &id, tx.r.q.insertContact, contactArgs(nil, c, c.Stage, now)...); err != nil {
			return fmt.Errorf("store: unable to create contact %s: %w", c.Email, classify(err))
		}
		return tx.r.addEvent(ctx, id, EventCreated, createdData{Stage: c.Stage})
	})
	return id, err
}

// ContactByEmail returns the contact with this address, in any case.
func (s *Store) ContactByEmail(ctx context.Context, email string) (Contact, error) {
	return s.runner(s.db).contactByEmail(ctx, email)
}

// ContactByEmail is Store.ContactByEmail inside the transaction.
func (tx *Tx) ContactByEmail(ctx context.Context, email string) (Contact, error) {
	return tx.r.contactByEmail(ctx, email)
}

func (r *runner) contactByEmail(ctx context.Context, email string) (Contact, error) {
	email = NormalizeEmail(email)
	var c Contact
	if err := r.get(ctx, &c, r.q.contactByEmail, email); err != nil {
		if isNoRows(err) {
			return Contact{}, notFound("no contact with email %s", email)
		}
		return Contact{}, fmt.Errorf("store: unable to load contact %s: %w", email, err)
	}
	c.scanned()
	return c, nil
}

// ContactByID returns the contact with this id.
func (s *Store) ContactByID(ctx context.Context, id int64) (Contact, error) {
	return s.runner(s.db).contactByID(ctx, id)
}

// ContactByID is Store.ContactByID inside the transaction.
func (tx *Tx) ContactByID(ctx context.Context, id int64) (Contact, error) {
	return tx.r.contactByID(ctx, id)
}

func (r *runner) contactByID(ctx context.Context, id int64) (Contact, error) {
	var c Contact
	if err := r.get(ctx, &c, r.q.contactByID, id); err != nil {
		if isNoRows(err) {
			return Contact{}, notFound("no contact with id %d", id)
		}
		return Contact{}, fmt.Errorf("store: unable to load contact %d: %w", id, err)
	}
	c.scanned()
	return c, nil
}

// ListContacts returns the contacts f selects, in id order.
func (s *Store) ListContacts(ctx context.Context, f ContactFilter) ([]Contact, error) {
	stage := strings.TrimSpace(f.Stage)
	var cs []Contact
	err := s.runner(s.db).selectRows(ctx, &cs, s.q.listContacts, stage, stage, limitArg(f.Limit), max(f.Offset, 0))
	if err != nil {
		return nil, fmt.Errorf("store: unable to list contacts: %w", err)
	}
	for i := range cs {
		cs[i].scanned()
	}
	return cs, nil
}

// CountContactsByStage returns the number of contacts in each stage that
// has any.
func (s *Store) CountContactsByStage(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, s.q.countContactsStage)
	if err != nil {
		return nil, fmt.Errorf("store: unable to count contacts: %w", err)
	}
	defer rows.Close()
	counts := make(map[string]int)
	for rows.Next() {
		var stage string
		var n int
		if err := rows.Scan(&stage, &n); err != nil {
			return nil, fmt.Errorf("store: unable to count contacts: %w", err)
		}
		counts[stage] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: unable to count contacts: %w", err)
	}
	return counts, nil
}

// SetStage moves the contact to stage and records a "stage_changed" event
// with the reason, atomically; it returns the previous stage. Setting the
// stage a contact already has changes nothing and records nothing.
func (s *Store) SetStage(ctx context.Context, email, stage, reason string) (old string, err error) {
	err = s.InTx(ctx, func(tx *Tx) error {
		old, err = tx.SetStage(ctx, email, stage, reason)
		return err
	})
	return old, err
}

// SetStage is Store.SetStage inside the transaction.
func (tx *Tx) SetStage(ctx context.Context, email, stage, reason string) (old string, err error) {
	r := tx.r
	email = NormalizeEmail(email)
	stage = strings.TrimSpace(stage)
	if stage == "" {
		return "", fmt.Errorf("store: unable to set the stage of %s: the stage is empty", email)
	}
	var cur struct {
		ID    int64  `db:"id"`
		Stage string `db:"stage"`
	}
	if err := r.get(ctx, &cur, r.q.contactStageForUpd, email); err != nil {
		if isNoRows(err) {
			return "", notFound("no contact with email %s", email)
		}
		return "", fmt.Errorf("store: unable to load contact %s: %w", email, err)
	}
	if cur.Stage == stage {
		return cur.Stage, nil
	}
	if _, err := r.exec(ctx, r.q.setStage, stage, r.now(), cur.ID); err != nil {
		return "", fmt.Errorf("store: unable to set the stage of %s: %w", email, err)
	}
	if err := r.addEvent(ctx, cur.ID, EventStageChanged, stageChangeData{From: cur.Stage, To: stage, Reason: reason}); err != nil {
		return "", err
	}
	return cur.Stage, nil
}

// AddNote adds a "note" event with text to the contact's timeline.
func (s *Store) AddNote(ctx context.Context, email, text string) error {
	return s.InTx(ctx, func(tx *Tx) error {
		id, err := tx.r.contactID(ctx, email)
		if err != nil {
			return err
		}
		return tx.r.addEvent(ctx, id, EventNote, struct {
			Text string `json:"text"`
		}{text})
	})
}

func (r *runner) contactID(ctx context.Context, email string) (int64, error) {
	email = NormalizeEmail(email)
	var id int64
	if err := r.get(ctx, &id, r.q.contactIDByEmail, email); err != nil {
		if isNoRows(err) {
			return 0, notFound("no contact with email %s", email)
		}
		return 0, fmt.Errorf("store: unable to load contact %s: %w", email, err)
	}
	return id, nil
}

// RecordPurchase counts a purchase by the contact and records a "purchase"
// event with the amount (a decimal kept as written, so no cent is lost to
// floating point) and note; it returns the new purchase count.
func (s *Store) RecordPurchase(ctx context.Context, email, amount, note string) (purchases int, err error) {
	err = s.InTx(ctx, func(tx *Tx) error {
		purchases, err = tx.RecordPurchase(ctx, email, amount, note)
		return err
	})
	return purchases, err
}

// RecordPurchase is Store.RecordPurchase inside the transaction, so the
// rules a purchase triggers commit with it.
func (tx *Tx) RecordPurchase(ctx context.Context, email, amount, note string) (purchases int, err error) {
	email = NormalizeEmail(email)
	amount = strings.TrimSpace(amount)
	if amount != "" && !isDecimal(amount) {
		return 0, fmt.Errorf("store: invalid purchase amount %q: want a decimal number such as 49.90", amount)
	}
	var row struct {
		ID        int64 `db:"id"`
		Purchases int   `db:"purchases"`
	}
	if err := tx.r.get(ctx, &row, tx.r.q.recordPurchase, tx.r.now(), email); err != nil {
		if isNoRows(err) {
			return 0, notFound("no contact with email %s", email)
		}
		return 0, fmt.Errorf("store: unable to record a purchase by %s: %w", email, err)
	}
	return row.Purchases, tx.r.addEvent(ctx, row.ID, EventPurchase, struct {
		Amount string `json:"amount"`
		Note   string `json:"note,omitempty"`
	}{amount, note})
}

// isDecimal accepts an optional sign, digits and at most one decimal point.
func isDecimal(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	digits, dot := 0, false
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}
