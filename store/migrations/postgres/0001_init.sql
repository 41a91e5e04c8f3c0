-- followupd schema, Postgres. Times are TIMESTAMPTZ (UTC, microseconds).

CREATE TABLE contacts (
    id            BIGSERIAL PRIMARY KEY,
    -- Lower-cased and trimmed by the application; the CHECK makes the UNIQUE
    -- constraint a case-insensitive one.
    email         TEXT        NOT NULL UNIQUE CHECK (email <> '' AND email = lower(btrim(email))),
    first_name    TEXT        NOT NULL DEFAULT '',
    last_name     TEXT        NOT NULL DEFAULT '',
    company       TEXT        NOT NULL DEFAULT '',
    timezone      TEXT        NOT NULL DEFAULT '',
    birthday      DATE,
    custom_fields JSONB       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom_fields) = 'object'),
    stage         TEXT        NOT NULL CHECK (stage <> ''),
    owner_account TEXT        NOT NULL DEFAULT '',
    suppressed    BOOLEAN     NOT NULL DEFAULT FALSE,
    purchases     INTEGER     NOT NULL DEFAULT 0 CHECK (purchases >= 0),
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX contacts_stage ON contacts (stage);

CREATE TABLE enrollments (
    id           BIGSERIAL PRIMARY KEY,
    contact_id   BIGINT      NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    sequence     TEXT        NOT NULL CHECK (sequence <> ''),
    account      TEXT        NOT NULL DEFAULT '',
    status       TEXT        NOT NULL CHECK (status IN ('active', 'paused', 'snoozed', 'finished', 'stopped')),
    step         INTEGER     NOT NULL DEFAULT 0 CHECK (step >= 0),
    variant      TEXT        NOT NULL DEFAULT '',
    -- A snoozed enrollment wakes up into this sequence ('' = resume itself).
    resume_into  TEXT        NOT NULL DEFAULT '',
    due_at       TIMESTAMPTZ,
    paused_until TIMESTAMPTZ,
    last_sent_at TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- The scheduler's pass: cost grows with due steps, not with contacts.
CREATE INDEX enrollments_status_due ON enrollments (status, due_at);
CREATE INDEX enrollments_contact ON enrollments (contact_id);
-- One live enrollment per contact and sequence; finished and stopped ones
-- are history and may repeat.
CREATE UNIQUE INDEX enrollments_one_live ON enrollments (contact_id, sequence)
    WHERE status IN ('active', 'paused', 'snoozed');

CREATE TABLE messages_out (
    id              BIGSERIAL PRIMARY KEY,
    enrollment_id   BIGINT      NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    step            INTEGER     NOT NULL CHECK (step >= 0),
    contact_id      BIGINT      NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    account         TEXT        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'uncertain', 'cancelled')),
    message_id      TEXT        NOT NULL UNIQUE CHECK (message_id <> ''),
    thread_root     TEXT,
    in_reply_to     TEXT        NOT NULL DEFAULT '',
    subject         TEXT        NOT NULL DEFAULT '',
    -- What the outbox sends, fixed when the step is claimed so a retry or a
    -- restart sends exactly what was planned.
    sequence        TEXT        NOT NULL DEFAULT '',
    template        TEXT        NOT NULL DEFAULT '',
    to_addr         TEXT        NOT NULL DEFAULT '',
    to_name         TEXT        NOT NULL DEFAULT '',
    from_addr       TEXT        NOT NULL DEFAULT '',
    from_name       TEXT        NOT NULL DEFAULT '',
    references_hdr  TEXT        NOT NULL DEFAULT '',
    body_text       TEXT        NOT NULL DEFAULT '',
    body_html       TEXT        NOT NULL DEFAULT '',
    unsubscribe_url TEXT        NOT NULL DEFAULT '',
    attempts        INTEGER     NOT NULL DEFAULT 0,
    last_error      TEXT        NOT NULL DEFAULT '',
    next_attempt_at TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- No step is sent twice. A cancelled row was never sent: the step may be
-- queued again when its enrollment resumes.
CREATE UNIQUE INDEX messages_out_step ON messages_out (enrollment_id, step) WHERE status <> 'cancelled';

CREATE INDEX messages_out_status_next ON messages_out (status, next_attempt_at);
CREATE INDEX messages_out_contact ON messages_out (contact_id);

CREATE TABLE messages_in (
    id             BIGSERIAL PRIMARY KEY,
    account        TEXT        NOT NULL,
    mailbox        TEXT        NOT NULL,
    -- IMAP's UIDVALIDITY and UID are unsigned 32-bit: they overflow INTEGER.
    uidvalidity    BIGINT      NOT NULL,
    uid            BIGINT      NOT NULL,
    message_id     TEXT        NOT NULL DEFAULT '',
    from_addr      TEXT        NOT NULL DEFAULT '',
    subject        TEXT        NOT NULL DEFAULT '',
    kind           TEXT        NOT NULL DEFAULT '',
    intent         TEXT        NOT NULL DEFAULT '',
    bounce_class   TEXT        NOT NULL DEFAULT '',
    excerpt        TEXT        NOT NULL DEFAULT '',
    contact_id     BIGINT      REFERENCES contacts (id) ON DELETE SET NULL,
    message_out_id BIGINT      REFERENCES messages_out (id) ON DELETE SET NULL,
    received_at    TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    -- No reply is counted twice.
    UNIQUE (account, mailbox, uidvalidity, uid)
);

-- A UIDVALIDITY change rescans the mailbox, deduplicated by Message-ID.
CREATE INDEX messages_in_message_id ON messages_in (message_id);
CREATE INDEX messages_in_contact ON messages_in (contact_id);
CREATE INDEX messages_in_message_out ON messages_in (message_out_id);

CREATE TABLE accounts_state (
    account      TEXT        NOT NULL PRIMARY KEY,
    send_day     TEXT        NOT NULL DEFAULT '',
    sent_today   INTEGER     NOT NULL DEFAULT 0,
    next_send_at TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE imap_checkpoints (
    account     TEXT        NOT NULL,
    mailbox     TEXT        NOT NULL,
    uidvalidity BIGINT      NOT NULL,
    last_uid    BIGINT      NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account, mailbox)
);

CREATE TABLE events (
    id         BIGSERIAL PRIMARY KEY,
    contact_id BIGINT      NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    type       TEXT        NOT NULL CHECK (type <> ''),
    data       JSONB       NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    -- Waiting for the scheduler's trigger pass (see store.triggers).
    pending    BOOLEAN     NOT NULL DEFAULT FALSE
);

CREATE INDEX events_contact_time ON events (contact_id, created_at, id);
CREATE INDEX events_pending ON events (id) WHERE pending;

CREATE TABLE suppressions (
    id         BIGSERIAL PRIMARY KEY,
    value      TEXT        NOT NULL UNIQUE CHECK (value <> '' AND value = lower(btrim(value))),
    kind       TEXT        NOT NULL CHECK (kind IN ('address', 'domain')),
    reason     TEXT        NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    event_id        BIGINT      REFERENCES events (id) ON DELETE SET NULL,
    url             TEXT        NOT NULL,
    payload         TEXT        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    last_error      TEXT        NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX webhook_deliveries_status_next ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);


-- New enrollments and pending triggers wake every replica's scheduler
-- (LISTEN followupd_wake) instead of waiting for its timer. NOTIFY is
-- delivered at commit and coalesced within a transaction.
CREATE FUNCTION followupd_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('followupd_wake', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER enrollments_wake AFTER INSERT ON enrollments
    FOR EACH STATEMENT EXECUTE FUNCTION followupd_wake();
CREATE TRIGGER events_wake AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION followupd_wake();
