//! The SQLite schema, as numbered migrations applied in order and recorded
//! in `PRAGMA user_version`. Timestamps are integer microseconds since the
//! Unix epoch; identifiers are UUIDv7 text, so inserts land at the end of
//! each index.

use rusqlite::Connection;

/// Each entry moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL
);
CREATE TABLE teams (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations(id),
    name            TEXT NOT NULL,
    team_queue      TEXT NOT NULL,
    clinical_queue  TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    CONSTRAINT teams_name_unique UNIQUE (org_id, name)
);
CREATE TABLE queues (
    id       TEXT PRIMARY KEY,
    org_id   TEXT NOT NULL REFERENCES organizations(id),
    team_id  TEXT NOT NULL REFERENCES teams(id),
    name     TEXT NOT NULL,
    kind     TEXT NOT NULL CHECK (kind IN ('team', 'clinical'))
);
CREATE TABLE members (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations(id),
    name           TEXT NOT NULL,
    date_of_birth  TEXT,
    sex            TEXT,
    language       TEXT NOT NULL,
    phone          TEXT,
    email          TEXT,
    plan           TEXT,
    team_id        TEXT NOT NULL REFERENCES teams(id),
    markers        TEXT NOT NULL,
    external_ref   TEXT,
    created_at     INTEGER NOT NULL,
    CONSTRAINT members_external_ref_unique UNIQUE (org_id, external_ref)
);
CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations(id),
    username       TEXT NOT NULL,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    member_id      TEXT REFERENCES members(id),
    password_hash  TEXT NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    CONSTRAINT users_username_unique UNIQUE (username)
);
CREATE TABLE team_members (
    team_id  TEXT NOT NULL REFERENCES teams(id),
    user_id  TEXT NOT NULL REFERENCES users(id),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members(user_id);
CREATE TABLE proxies (
    proxy_user_id  TEXT NOT NULL REFERENCES users(id),
    member_id      TEXT NOT NULL REFERENCES members(id),
    expires_at     INTEGER,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (proxy_user_id, member_id)
);
CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    org_id      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE TABLE threads (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    member_id   TEXT NOT NULL REFERENCES members(id),
    created_at  INTEGER NOT NULL,
    CONSTRAINT threads_member_unique UNIQUE (member_id)
);
CREATE TABLE tickets (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations(id),
    thread_id      TEXT NOT NULL REFERENCES threads(id),
    member_id      TEXT NOT NULL REFERENCES members(id),
    team_id        TEXT NOT NULL REFERENCES teams(id),
    queue_id       TEXT NOT NULL REFERENCES queues(id),
    queue_kind     TEXT NOT NULL,
    status         TEXT NOT NULL,
    priority       TEXT NOT NULL,
    priority_rank  INTEGER NOT NULL,
    assignee_id    TEXT REFERENCES users(id),
    triage         TEXT NOT NULL,
    sla            TEXT NOT NULL,
    next_due       INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX tickets_queue ON tickets(queue_id, status, priority_rank DESC, next_due);
CREATE INDEX tickets_thread ON tickets(thread_id, created_at);
CREATE INDEX tickets_member ON tickets(member_id);
CREATE TABLE messages (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    thread_id    TEXT NOT NULL REFERENCES threads(id),
    ticket_id    TEXT REFERENCES tickets(id),
    kind         TEXT NOT NULL,
    author_id    TEXT,
    author_name  TEXT NOT NULL,
    body         TEXT NOT NULL,
    triage       TEXT,
    created_at   INTEGER NOT NULL,
    -- invariant 1: a contact is never stored without its triage result
    CONSTRAINT messages_contact_triaged CHECK (kind NOT IN ('member', 'call_note') OR triage IS NOT NULL)
);
CREATE INDEX messages_thread ON messages(thread_id, created_at);
CREATE TABLE calls (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    member_id   TEXT NOT NULL REFERENCES members(id),
    agent_id    TEXT NOT NULL REFERENCES users(id),
    message_id  TEXT NOT NULL REFERENCES messages(id),
    ticket_id   TEXT NOT NULL REFERENCES tickets(id),
    created_at  INTEGER NOT NULL
);
CREATE TABLE events (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    actor_id   TEXT,
    member_id  TEXT,
    ticket_id  TEXT,
    thread_id  TEXT,
    team_id    TEXT,
    payload    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    CONSTRAINT events_seq_unique UNIQUE (org_id, seq)
);
CREATE INDEX events_member ON events(member_id, at) WHERE member_id IS NOT NULL;
CREATE INDEX events_ticket ON events(ticket_id, at) WHERE ticket_id IS NOT NULL;
CREATE TABLE chain_heads (
    org_id  TEXT PRIMARY KEY,
    seq     INTEGER NOT NULL,
    hash    TEXT NOT NULL
);
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: corrections are new events'); END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: nothing is deleted'); END;
CREATE TRIGGER messages_never_deleted BEFORE DELETE ON messages
BEGIN SELECT RAISE(ABORT, 'messages are never deleted'); END;
CREATE TRIGGER messages_never_edited BEFORE UPDATE OF body, kind, thread_id, author_id, created_at ON messages
BEGIN SELECT RAISE(ABORT, 'messages are never edited: redaction is an event'); END;
CREATE TRIGGER tickets_never_deleted BEFORE DELETE ON tickets
BEGIN SELECT RAISE(ABORT, 'tickets are never deleted'); END;
"#,
    r#"
ALTER TABLE tickets ADD COLUMN clearance TEXT;
CREATE TABLE rotas (
    team_id      TEXT PRIMARY KEY REFERENCES teams(id),
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    primary_id   TEXT REFERENCES users(id),
    backup_id    TEXT REFERENCES users(id),
    physician_id TEXT REFERENCES users(id),
    supervisors  TEXT NOT NULL DEFAULT '[]',
    updated_at   INTEGER NOT NULL
);
CREATE TABLE pages (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    ticket_id    TEXT NOT NULL REFERENCES tickets(id),
    member_id    TEXT NOT NULL REFERENCES members(id),
    team_id      TEXT NOT NULL REFERENCES teams(id),
    level        TEXT NOT NULL,
    targets      TEXT NOT NULL,
    disposition  TEXT NOT NULL,
    reason       TEXT NOT NULL,
    flagged_at   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    deadline     INTEGER,
    status       TEXT NOT NULL,
    acked_by     TEXT REFERENCES users(id),
    acked_at     INTEGER
);
-- the escalation clock: open pages by deadline
CREATE INDEX pages_due ON pages(deadline) WHERE status = 'open';
CREATE INDEX pages_ticket ON pages(ticket_id, created_at);
CREATE TRIGGER pages_never_deleted BEFORE DELETE ON pages
BEGIN SELECT RAISE(ABORT, 'pages are never deleted'); END;
CREATE TABLE visits (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    ticket_id   TEXT NOT NULL REFERENCES tickets(id),
    member_id   TEXT NOT NULL REFERENCES members(id),
    kind        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    booked_by   TEXT NOT NULL REFERENCES users(id),
    created_at  INTEGER NOT NULL
);
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    events      TEXT NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
);
CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id),
    event_id         TEXT NOT NULL REFERENCES events(id),
    event_kind       TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    last_error       TEXT,
    delivered_at     INTEGER,
    created_at       INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
CREATE TABLE safety_reviews (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    message_id   TEXT NOT NULL REFERENCES messages(id),
    ticket_id    TEXT NOT NULL REFERENCES tickets(id),
    member_id    TEXT NOT NULL REFERENCES members(id),
    disposition  TEXT NOT NULL,
    finding      TEXT NOT NULL,
    protocol_version TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    resolved_by  TEXT REFERENCES users(id),
    resolution   TEXT,
    created_at   INTEGER NOT NULL,
    resolved_at  INTEGER,
    CONSTRAINT safety_reviews_message_unique UNIQUE (message_id, protocol_version)
);
"#,
    r#"
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER;
ALTER TABLE sessions ADD COLUMN revoked_at INTEGER;
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE collaborators (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    thread_id   TEXT NOT NULL REFERENCES threads(id),
    member_id   TEXT NOT NULL REFERENCES members(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    granted_by  TEXT NOT NULL REFERENCES users(id),
    reason      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    revoked_by  TEXT REFERENCES users(id),
    created_at  INTEGER NOT NULL
);
CREATE INDEX collaborators_user ON collaborators(user_id, expires_at);
CREATE TABLE break_glass (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    member_id    TEXT NOT NULL REFERENCES members(id),
    user_id      TEXT NOT NULL REFERENCES users(id),
    reason       TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    reviewed_by  TEXT REFERENCES users(id),
    reviewed_at  INTEGER,
    review_note  TEXT
);
CREATE INDEX break_glass_user ON break_glass(user_id, expires_at);
CREATE TABLE login_failures (
    user_id  TEXT NOT NULL REFERENCES users(id),
    at       INTEGER NOT NULL
);
CREATE INDEX login_failures_user ON login_failures(user_id, at);
-- Per-organization data keys, wrapped by the master key (which is never stored here).
CREATE TABLE org_keys (
    org_id      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    wrapped     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (org_id, version)
);
"#,
    r#"
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
ALTER TABLE sessions ADD COLUMN mfa_pending INTEGER NOT NULL DEFAULT 0;
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users(id),
    code_hash  TEXT NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
);
"#,
    r#"
ALTER TABLE proxies ADD COLUMN scope TEXT NOT NULL DEFAULT 'full';
ALTER TABLE proxies ADD COLUMN granted_by TEXT;
CREATE INDEX proxies_member ON proxies(member_id);
"#,
    r#"
CREATE TABLE attachments (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES organizations(id),
    member_id         TEXT NOT NULL REFERENCES members(id),
    uploaded_by       TEXT NOT NULL REFERENCES users(id),
    file_name         TEXT NOT NULL,
    content_type      TEXT NOT NULL,
    size              INTEGER NOT NULL,
    sha256            TEXT NOT NULL,
    blob              TEXT NOT NULL,
    state             TEXT NOT NULL,
    detail            TEXT,
    scan_attempts     INTEGER NOT NULL DEFAULT 0,
    metadata_removed  TEXT NOT NULL DEFAULT '[]',
    message_id        TEXT REFERENCES messages(id),
    thread_id         TEXT REFERENCES threads(id),
    ticket_id         TEXT REFERENCES tickets(id),
    next_scan_at      INTEGER,
    lease_until       INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX attachments_scan ON attachments(state, next_scan_at);
CREATE INDEX attachments_thread ON attachments(thread_id);
CREATE TRIGGER attachments_no_delete BEFORE DELETE ON attachments
BEGIN SELECT RAISE(ABORT, 'attachments are kept'); END;
"#,
    r#"
ALTER TABLE messages ADD COLUMN redacted_at INTEGER;
ALTER TABLE messages ADD COLUMN redacted_by TEXT;
ALTER TABLE messages ADD COLUMN redacted_by_role TEXT;
ALTER TABLE messages ADD COLUMN redaction_reason TEXT;
CREATE TRIGGER messages_redaction_is_final BEFORE UPDATE OF redacted_at, redacted_by, redacted_by_role, redaction_reason ON messages
WHEN OLD.redacted_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a redaction is final: it is never changed or undone'); END;
"#,
    // Member identifiers and health markers are sealed with the organization's
    // data key; `sealed` tells sealed rows from rows written before. Opening
    // the store seals the older rows (it needs the key, so SQL alone cannot).
    r#"
ALTER TABLE members ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
"#,
    // The review net's mark (sealed: it quotes the member's words) and, while
    // it waits for a clinician, its due time, for the nurse-review view.
    r#"
ALTER TABLE tickets ADD COLUMN review TEXT;
ALTER TABLE tickets ADD COLUMN review_due INTEGER;
CREATE INDEX tickets_review ON tickets(org_id, review_due) WHERE review_due IS NOT NULL;
"#,
    // Clinicians' marks on triage judgements (sealed: the note speaks of the
    // member). Kept like the record: never changed, never deleted.
    r#"
CREATE TABLE judgement_marks (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    ticket_id   TEXT NOT NULL REFERENCES tickets(id),
    message_id  TEXT NOT NULL REFERENCES messages(id),
    member_id   TEXT NOT NULL REFERENCES members(id),
    by_user     TEXT NOT NULL REFERENCES users(id),
    mark        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX judgement_marks_org ON judgement_marks(org_id, created_at);
CREATE TRIGGER judgement_marks_never_changed BEFORE UPDATE ON judgement_marks
BEGIN SELECT RAISE(ABORT, 'a judgement mark is kept as made'); END;
CREATE TRIGGER judgement_marks_never_deleted BEFORE DELETE ON judgement_marks
BEGIN SELECT RAISE(ABORT, 'judgement marks are kept'); END;
"#,
];

/// Bring the database up to the newest schema. Safe to call on every start.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<u32> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let mut version = current;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        version = u32::try_from(i + 1).unwrap_or(u32::MAX);
        tx.execute_batch(&format!("PRAGMA user_version = {version}"))?;
        tx.commit()?;
    }
    Ok(version)
}

/// The newest schema version this build knows.
pub fn latest() -> u32 {
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}
