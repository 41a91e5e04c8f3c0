package store

import (
	"strings"

	"github.com/jmoiron/sqlx"
)

// All SQL of the package is here. Queries are written once with '?'
// placeholders and rebound for the driver when the store opens; the
// statements whose syntax differs between SQLite and Postgres get a variant
// per dialect. Values always travel as parameters: the only text ever
// assembled at run time is a list of placeholders for a batch.
//
// On SQLite a time column is converted to time.Time only when it is read
// directly (its declared type is TIMESTAMP); an expression over it, such as
// MAX(created_at), comes back as the raw INTEGER microseconds.

// migrationLockKey is the Postgres advisory lock that serialises migrations
// across replicas ("followup" in ASCII).
const migrationLockKey int64 = 0x666f6c6c6f777570

// contactColumns reads a Contact. Birthday is text in both dialects: lib/pq
// would scan a DATE as a time.Time, and the API carries 'YYYY-MM-DD'.
const contactColumns = `id, email, first_name, last_name, company, timezone,
	COALESCE(CAST(birthday AS TEXT), '') AS birthday, custom_fields, stage,
	owner_account, suppressed, purchases, created_at, updated_at`

// contactInsertColumns are written by CreateContact and the batched upsert,
// in this order (see contactArgs).
const contactInsertColumns = `email, first_name, last_name, company, timezone, birthday,
	custom_fields, stage, owner_account, suppressed, purchases, created_at, updated_at`

const contactInsertArity = 13

const enrollmentColumns = `id, contact_id, sequence, account, status, step, variant,
	resume_into, due_at, paused_until, last_sent_at, created_at, updated_at`

const messageOutColumns = `id, enrollment_id, step, contact_id, account, status, message_id,
	COALESCE(thread_root, '') AS thread_root, in_reply_to, subject, sequence, template,
	to_addr, to_name, from_addr, from_name, references_hdr, body_text, body_html,
	unsubscribe_url, attempts, last_error, next_attempt_at, created_at, sent_at, updated_at`

const messageInColumns = `id, account, mailbox, uidvalidity, uid, message_id, from_addr,
	subject, kind, intent, bounce_class, excerpt, contact_id, message_out_id,
	received_at, created_at`

type queries struct {
	dialect string

	// schema
	migrationLock          string // empty on SQLite, whose write transactions are exclusive
	createSchemaMigrations string
	schemaMigrationsExists string
	schemaVersion          string
	recordMigration        string

	// contacts
	contactByEmail       string
	contactByID          string
	contactIDByEmail     string
	contactStageForUpd   string
	listContacts         string
	countContactsStage   string
	insertContact        string
	setStage             string
	recordPurchase       string
	upsertConflict       string // ON CONFLICT clause of the batched upsert
	forUpdate            string // row lock suffix, empty on SQLite
	suppressAddress      string
	suppressDomain       string
	insertSuppression    string
	isSuppressed         string
	listSuppressions     string
	insertEvent          string
	timeline             string
	insertEnrollment     string
	enrollmentByID       string
	setEnrollmentStatus  string
	dueEnrollments       string
	insertMessageOut     string
	messageOutByMsgID    string
	insertMessageIn      string
	insertMessageInOnce  string
	insertMessageOutOnce string
	saveCheckpoint       string
	checkpoint           string
}

func newQueries(dialect string) *queries {
	pg := dialect == DialectPostgres
	q := &queries{dialect: dialect}

	if pg {
		q.migrationLock = `SELECT pg_advisory_xact_lock(?)`
		q.createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER     PRIMARY KEY,
			name       TEXT        NOT NULL,
			applied_at TIMESTAMPTZ NOT NULL)`
		// to_regclass follows search_path, as the unqualified table names do.
		q.schemaMigrationsExists = `SELECT to_regclass('schema_migrations') IS NOT NULL`
		q.forUpdate = ` FOR UPDATE`
	} else {
		q.createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER   NOT NULL PRIMARY KEY,
			name       TEXT      NOT NULL,
			applied_at TIMESTAMP NOT NULL CHECK (typeof(applied_at) = 'integer'))`
		q.schemaMigrationsExists = `SELECT EXISTS (SELECT 1 FROM sqlite_master
			WHERE type = 'table' AND name = 'schema_migrations')`
	}
	q.schemaVersion = `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`
	q.recordMigration = `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`

	q.contactByEmail = `SELECT ` + contactColumns + ` FROM contacts WHERE email = ?`
	q.contactByID = `SELECT ` + contactColumns + ` FROM contacts WHERE id = ?`
	q.contactIDByEmail = `SELECT id FROM contacts WHERE email = ?`
	q.contactStageForUpd = `SELECT id, stage FROM contacts WHERE email = ?` + q.forUpdate
	// CAST: Postgres cannot infer the type of a parameter compared to a literal.
	q.listContacts = `SELECT ` + contactColumns + ` FROM contacts
		WHERE (CAST(? AS TEXT) = '' OR stage = ?)
		ORDER BY id LIMIT ? OFFSET ?`
	q.countContactsStage = `SELECT stage, COUNT(*) FROM contacts GROUP BY stage`
	q.insertContact = `INSERT INTO contacts (` + contactInsertColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
	q.setStage = `UPDATE contacts SET stage = ?, updated_at = ? WHERE id = ?`
	q.recordPurchase = `UPDATE contacts SET purchases = purchases + 1, updated_at = ?
		WHERE email = ? RETURNING id, purchases`

	// The merge rules of UpsertContact, in SQL so that a batch is one
	// statement: a non-empty value replaces the stored one, custom fields
	// are merged key by key, suppression is never lifted and the purchase
	// count never goes down. The stage is resolved in Go (see upsertBatch).
	mergeFields := `json_patch(contacts.custom_fields, excluded.custom_fields)`
	if pg {
		mergeFields = `contacts.custom_fields || excluded.custom_fields`
	}
	q.upsertConflict = ` ON CONFLICT (email) DO UPDATE SET
		first_name    = COALESCE(NULLIF(excluded.first_name, ''), contacts.first_name),
		last_name     = COALESCE(NULLIF(excluded.last_name, ''), contacts.last_name),
		company       = COALESCE(NULLIF(excluded.company, ''), contacts.company),
		timezone      = COALESCE(NULLIF(excluded.timezone, ''), contacts.timezone),
		birthday      = COALESCE(excluded.birthday, contacts.birthday),
		custom_fields = ` + mergeFields + `,
		stage         = excluded.stage,
		owner_account = COALESCE(NULLIF(excluded.owner_account, ''), contacts.owner_account),
		suppressed    = (contacts.suppressed OR excluded.suppressed),
		purchases     = CASE WHEN excluded.purchases > contacts.purchases
		                     THEN excluded.purchases ELSE contacts.purchases END,
		updated_at    = excluded.updated_at
		RETURNING id, email`

	q.suppressAddress = `UPDATE contacts SET suppressed = TRUE, updated_at = ?
		WHERE email = ? AND NOT suppressed`
	q.suppressDomain = `UPDATE contacts SET suppressed = TRUE, updated_at = ?
		WHERE email LIKE ? ESCAPE '\' AND NOT suppressed`
	q.insertSuppression = `INSERT INTO suppressions (value, kind, reason, created_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (value) DO NOTHING`
	q.isSuppressed = `SELECT EXISTS (SELECT 1 FROM suppressions WHERE value IN (?, ?))
		OR EXISTS (SELECT 1 FROM contacts WHERE email = ? AND suppressed)`
	q.listSuppressions = `SELECT id, value, kind, reason, created_at FROM suppressions ORDER BY id`

	q.insertEvent = `INSERT INTO events (contact_id, type, data, created_at, pending) VALUES (?, ?, ?, ?, ?)`
	// Newest first so that LIMIT keeps the latest; the caller reverses.
	q.timeline = `SELECT id, contact_id, type, data, created_at FROM events
		WHERE contact_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`

	q.insertEnrollment = `INSERT INTO enrollments (contact_id, sequence, account, status, step,
		variant, due_at, paused_until, last_sent_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
	q.enrollmentByID = `SELECT ` + enrollmentColumns + ` FROM enrollments WHERE id = ?`
	q.setEnrollmentStatus = `UPDATE enrollments SET status = ?, updated_at = ? WHERE id = ?`
	q.dueEnrollments = `SELECT ` + enrollmentColumns + ` FROM enrollments
		WHERE status = 'active' AND due_at <= ?
		ORDER BY due_at, id LIMIT ?`

	q.insertMessageOut = `INSERT INTO messages_out (enrollment_id, step, contact_id, account,
		status, message_id, thread_root, in_reply_to, subject, sequence, template,
		to_addr, to_name, from_addr, from_name, references_hdr, body_text, body_html,
		unsubscribe_url, attempts, last_error, next_attempt_at, created_at, sent_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, NULLIF(?, ''), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
	q.messageOutByMsgID = `SELECT ` + messageOutColumns + ` FROM messages_out WHERE message_id = ?`
	q.insertMessageIn = `INSERT INTO messages_in (account, mailbox, uidvalidity, uid, message_id,
		from_addr, subject, kind, intent, bounce_class, excerpt, contact_id, message_out_id,
		received_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
	q.insertMessageInOnce = strings.Replace(q.insertMessageIn, " RETURNING id",
		" ON CONFLICT (account, mailbox, uidvalidity, uid) DO NOTHING RETURNING id", 1)
	q.insertMessageOutOnce = strings.Replace(q.insertMessageOut, " RETURNING id",
		" ON CONFLICT (enrollment_id, step) WHERE status <> 'cancelled' DO NOTHING RETURNING id", 1)

	q.saveCheckpoint = `INSERT INTO imap_checkpoints (account, mailbox, uidvalidity, last_uid, updated_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (account, mailbox) DO UPDATE SET
			uidvalidity = excluded.uidvalidity,
			last_uid    = excluded.last_uid,
			updated_at  = excluded.updated_at`
	q.checkpoint = `SELECT account, mailbox, uidvalidity, last_uid, updated_at
		FROM imap_checkpoints WHERE account = ? AND mailbox = ?`

	bind := sqlx.BindType(dialect)
	for _, p := range []*string{
		&q.migrationLock, &q.recordMigration,
		&q.contactByEmail, &q.contactByID, &q.contactIDByEmail, &q.contactStageForUpd,
		&q.listContacts, &q.insertContact, &q.setStage, &q.recordPurchase,
		&q.suppressAddress, &q.suppressDomain, &q.insertSuppression, &q.isSuppressed,
		&q.insertEvent, &q.timeline,
		&q.insertEnrollment, &q.enrollmentByID, &q.setEnrollmentStatus, &q.dueEnrollments,
		&q.insertMessageOut, &q.messageOutByMsgID, &q.insertMessageIn,
		&q.insertMessageInOnce, &q.insertMessageOutOnce,
		&q.saveCheckpoint, &q.checkpoint,
	} {
		*p = sqlx.Rebind(bind, *p)
	}
	return q
}

// upsertContactsSQL is the batched insert-or-merge of n contacts, returning
// (id, email) of every row written.
func (q *queries) upsertContactsSQL(n int) string {
	return sqlx.Rebind(sqlx.BindType(q.dialect),
		`INSERT INTO contacts (`+contactInsertColumns+`) VALUES `+
			valueRows(n, contactInsertArity)+q.upsertConflict)
}

// existingContactsSQL reads (id, email, stage) of the given n emails and,
// on Postgres, locks them until the transaction ends, so that the stage a
// stage_changed event records as "from" is the one it replaced.
func (q *queries) existingContactsSQL(n int) string {
	return sqlx.Rebind(sqlx.BindType(q.dialect),
		`SELECT id, email, stage FROM contacts WHERE email IN (`+placeholders(n)+`)`+q.forUpdate)
}

// insertEventsSQL inserts n events in one statement.
func (q *queries) insertEventsSQL(n int) string {
	return sqlx.Rebind(sqlx.BindType(q.dialect),
		`INSERT INTO events (contact_id, type, data, created_at, pending) VALUES `+valueRows(n, 5))
}

// placeholders returns "?, ?, ..." with n marks.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// valueRows returns n rows of arity marks: "(?, ?), (?, ?)".
func valueRows(n, arity int) string {
	row := "(" + placeholders(arity) + ")"
	var b strings.Builder
	b.Grow(n * (len(row) + 2))
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}
