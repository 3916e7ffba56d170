//! The PostgreSQL schema, as numbered migrations recorded in
//! `schema_migrations`. Several nodes may start at once: migrations run
//! under a session advisory lock, so exactly one node applies each one and
//! the others wait, then find nothing left to do.
//!
//! Identifiers are native `uuid` (UUIDv7, so inserts land at the end of each
//! index); instants are `bigint` microseconds since the Unix epoch, the
//! domain's own resolution (an event's hash covers its microsecond instant,
//! so it must round-trip exactly); documents are `text` JSON, kept byte for
//! byte (event payloads are hashed as stored; sealed fields are opaque).

use sqlx_core::executor::Executor;
use sqlx_core::raw_sql::raw_sql;
use sqlx_postgres::{PgConnection, PgPool};

/// The advisory lock key that serializes migrations across nodes ("careline" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x6361_7265_6c69_6e65;

/// Each entry moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CONSTRAINT organizations_name_unique UNIQUE,
    settings    text NOT NULL DEFAULT '{}',
    created_at  bigint NOT NULL
);
-- Per-organization data keys, wrapped by the master key (which is never stored here).
CREATE TABLE org_keys (
    org_id      uuid NOT NULL,
    version     integer NOT NULL,
    wrapped     text NOT NULL,
    created_at  bigint NOT NULL,
    PRIMARY KEY (org_id, version)
);
CREATE TABLE teams (
    id              uuid PRIMARY KEY,
    org_id          uuid NOT NULL REFERENCES organizations(id),
    name            text NOT NULL,
    team_queue      uuid NOT NULL,
    clinical_queue  uuid NOT NULL,
    created_at      bigint NOT NULL,
    CONSTRAINT teams_name_unique UNIQUE (org_id, name)
);
CREATE TABLE queues (
    id       uuid PRIMARY KEY,
    org_id   uuid NOT NULL REFERENCES organizations(id),
    team_id  uuid NOT NULL REFERENCES teams(id),
    name     text NOT NULL,
    kind     text NOT NULL CHECK (kind IN ('team', 'clinical'))
);
CREATE TABLE members (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES organizations(id),
    name           text NOT NULL,
    date_of_birth  text,
    sex            text,
    language       text NOT NULL,
    phone          text,
    email          text,
    plan           text,
    team_id        uuid NOT NULL REFERENCES teams(id),
    markers        text NOT NULL,
    external_ref   text,
    created_at     bigint NOT NULL,
    CONSTRAINT members_external_ref_unique UNIQUE (org_id, external_ref)
);
CREATE INDEX members_org ON members(org_id, name);
CREATE TABLE users (
    id              uuid PRIMARY KEY,
    org_id          uuid NOT NULL REFERENCES organizations(id),
    username        text NOT NULL CONSTRAINT users_username_unique UNIQUE,
    name            text NOT NULL,
    role            text NOT NULL,
    member_id       uuid REFERENCES members(id),
    password_hash   text NOT NULL,
    disabled        boolean NOT NULL DEFAULT false,
    totp_secret     text,
    totp_enabled    boolean NOT NULL DEFAULT false,
    totp_last_step  bigint,
    created_at      bigint NOT NULL
);
CREATE INDEX users_org ON users(org_id, username);
CREATE TABLE team_members (
    team_id  uuid NOT NULL REFERENCES teams(id),
    user_id  uuid NOT NULL REFERENCES users(id),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members(user_id);
CREATE TABLE proxies (
    proxy_user_id  uuid NOT NULL REFERENCES users(id),
    member_id      uuid NOT NULL REFERENCES members(id),
    scope          text NOT NULL DEFAULT 'full',
    granted_by     uuid,
    expires_at     bigint,
    created_at     bigint NOT NULL,
    PRIMARY KEY (proxy_user_id, member_id)
);
CREATE INDEX proxies_member ON proxies(member_id);
CREATE TABLE sessions (
    token_hash    text PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users(id),
    org_id        uuid NOT NULL,
    mfa_pending   boolean NOT NULL DEFAULT false,
    created_at    bigint NOT NULL,
    expires_at    bigint NOT NULL,
    last_seen_at  bigint,
    revoked_at    bigint
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE login_failures (
    user_id  uuid NOT NULL REFERENCES users(id),
    at       bigint NOT NULL
);
CREATE INDEX login_failures_user ON login_failures(user_id, at);
CREATE TABLE recovery_codes (
    user_id    uuid NOT NULL REFERENCES users(id),
    code_hash  text NOT NULL,
    used_at    bigint,
    PRIMARY KEY (user_id, code_hash)
);
CREATE TABLE threads (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id),
    member_id   uuid NOT NULL REFERENCES members(id),
    created_at  bigint NOT NULL,
    CONSTRAINT threads_member_unique UNIQUE (member_id)
);
CREATE TABLE tickets (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES organizations(id),
    thread_id      uuid NOT NULL REFERENCES threads(id),
    member_id      uuid NOT NULL REFERENCES members(id),
    team_id        uuid NOT NULL REFERENCES teams(id),
    queue_id       uuid NOT NULL REFERENCES queues(id),
    queue_kind     text NOT NULL,
    status         text NOT NULL,
    priority       text NOT NULL,
    priority_rank  integer NOT NULL,
    assignee_id    uuid REFERENCES users(id),
    triage         text NOT NULL,
    sla            text NOT NULL,
    clearance      text,
    next_due       bigint,
    created_at     bigint NOT NULL,
    updated_at     bigint NOT NULL
);
CREATE INDEX tickets_queue ON tickets(queue_id, status, priority_rank DESC, next_due);
CREATE INDEX tickets_thread ON tickets(thread_id, created_at);
CREATE INDEX tickets_member ON tickets(member_id);
CREATE INDEX tickets_org ON tickets(org_id, priority_rank DESC, next_due);
CREATE TABLE messages (
    id                uuid PRIMARY KEY,
    org_id            uuid NOT NULL REFERENCES organizations(id),
    thread_id         uuid NOT NULL REFERENCES threads(id),
    ticket_id         uuid REFERENCES tickets(id),
    kind              text NOT NULL,
    author_id         uuid,
    author_name       text NOT NULL,
    body              text NOT NULL,
    triage            text,
    created_at        bigint NOT NULL,
    redacted_at       bigint,
    redacted_by       uuid,
    redacted_by_role  text,
    redaction_reason  text,
    -- invariant 1: a contact is never stored without its triage result
    CONSTRAINT messages_contact_triaged CHECK (kind NOT IN ('member', 'call_note') OR triage IS NOT NULL)
);
CREATE INDEX messages_thread ON messages(thread_id, created_at);
CREATE INDEX messages_contacts ON messages(created_at, id) WHERE kind IN ('member', 'call_note');
CREATE TABLE calls (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id),
    member_id   uuid NOT NULL REFERENCES members(id),
    agent_id    uuid NOT NULL REFERENCES users(id),
    message_id  uuid NOT NULL REFERENCES messages(id),
    ticket_id   uuid NOT NULL REFERENCES tickets(id),
    created_at  bigint NOT NULL
);
CREATE TABLE events (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL,
    seq        bigint NOT NULL,
    at         bigint NOT NULL,
    kind       text NOT NULL,
    actor_id   uuid,
    member_id  uuid,
    ticket_id  uuid,
    thread_id  uuid,
    team_id    uuid,
    payload    text NOT NULL,
    prev_hash  text NOT NULL,
    hash       text NOT NULL,
    -- The store instance that wrote the event (not hashed): lets each node
    -- relay other nodes' events to its own bus, and only those.
    node       uuid,
    CONSTRAINT events_seq_unique UNIQUE (org_id, seq)
);
CREATE INDEX events_member ON events(member_id, at) WHERE member_id IS NOT NULL;
CREATE INDEX events_ticket ON events(ticket_id, at) WHERE ticket_id IS NOT NULL;
-- The head of each organization's chain: every appending transaction locks
-- its organization's row first, which orders all writers of one tenant.
CREATE TABLE chain_heads (
    org_id  uuid PRIMARY KEY,
    seq     bigint NOT NULL,
    hash    text NOT NULL
);
CREATE TABLE rotas (
    team_id      uuid PRIMARY KEY REFERENCES teams(id),
    org_id       uuid NOT NULL REFERENCES organizations(id),
    primary_id   uuid REFERENCES users(id),
    backup_id    uuid REFERENCES users(id),
    physician_id uuid REFERENCES users(id),
    supervisors  text NOT NULL DEFAULT '[]',
    updated_at   bigint NOT NULL
);
CREATE TABLE pages (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations(id),
    ticket_id    uuid NOT NULL REFERENCES tickets(id),
    member_id    uuid NOT NULL REFERENCES members(id),
    team_id      uuid NOT NULL REFERENCES teams(id),
    level        text NOT NULL,
    targets      text NOT NULL,
    disposition  text NOT NULL,
    reason       text NOT NULL,
    flagged_at   bigint NOT NULL,
    created_at   bigint NOT NULL,
    deadline     bigint,
    status       text NOT NULL,
    acked_by     uuid REFERENCES users(id),
    acked_at     bigint
);
-- the escalation clock: open pages by deadline
CREATE INDEX pages_due ON pages(deadline) WHERE status = 'open';
CREATE INDEX pages_ticket ON pages(ticket_id, created_at);
CREATE INDEX pages_org_open ON pages(org_id) WHERE status = 'open';
CREATE TABLE visits (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id),
    ticket_id   uuid NOT NULL REFERENCES tickets(id),
    member_id   uuid NOT NULL REFERENCES members(id),
    kind        text NOT NULL,
    at          bigint NOT NULL,
    booked_by   uuid NOT NULL REFERENCES users(id),
    created_at  bigint NOT NULL
);
CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id),
    url         text NOT NULL,
    secret      text NOT NULL,
    events      text NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    created_at  bigint NOT NULL
);
CREATE TABLE deliveries (
    id               uuid PRIMARY KEY,
    org_id           uuid NOT NULL,
    webhook_id       uuid NOT NULL REFERENCES webhooks(id),
    event_id         uuid NOT NULL REFERENCES events(id),
    event_kind       text NOT NULL,
    body             text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         bigint NOT NULL DEFAULT 0,
    next_attempt_at  bigint NOT NULL,
    lease_until      bigint,
    last_error       text,
    delivered_at     bigint,
    created_at       bigint NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
CREATE TABLE safety_reviews (
    id                uuid PRIMARY KEY,
    org_id            uuid NOT NULL REFERENCES organizations(id),
    message_id        uuid NOT NULL REFERENCES messages(id),
    ticket_id         uuid NOT NULL REFERENCES tickets(id),
    member_id         uuid NOT NULL REFERENCES members(id),
    disposition       text NOT NULL,
    finding           text NOT NULL,
    protocol_version  text NOT NULL,
    status            text NOT NULL CHECK (status IN ('open', 'resolved')),
    resolved_by       uuid REFERENCES users(id),
    resolution        text,
    created_at        bigint NOT NULL,
    resolved_at       bigint,
    CONSTRAINT safety_reviews_message_unique UNIQUE (message_id, protocol_version)
);
CREATE TABLE collaborators (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id),
    thread_id   uuid NOT NULL REFERENCES threads(id),
    member_id   uuid NOT NULL REFERENCES members(id),
    user_id     uuid NOT NULL REFERENCES users(id),
    granted_by  uuid NOT NULL REFERENCES users(id),
    reason      text NOT NULL,
    expires_at  bigint NOT NULL,
    revoked_at  bigint,
    revoked_by  uuid REFERENCES users(id),
    created_at  bigint NOT NULL
);
CREATE INDEX collaborators_user ON collaborators(user_id, expires_at);
CREATE TABLE break_glass (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations(id),
    member_id    uuid NOT NULL REFERENCES members(id),
    user_id      uuid NOT NULL REFERENCES users(id),
    reason       text NOT NULL,
    expires_at   bigint NOT NULL,
    created_at   bigint NOT NULL,
    reviewed_by  uuid REFERENCES users(id),
    reviewed_at  bigint,
    review_note  text
);
CREATE INDEX break_glass_user ON break_glass(user_id, expires_at);
CREATE TABLE attachments (
    id                uuid PRIMARY KEY,
    org_id            uuid NOT NULL REFERENCES organizations(id),
    member_id         uuid NOT NULL REFERENCES members(id),
    uploaded_by       uuid NOT NULL REFERENCES users(id),
    file_name         text NOT NULL,
    content_type      text NOT NULL,
    size              bigint NOT NULL,
    sha256            text NOT NULL,
    blob              text NOT NULL,
    state             text NOT NULL,
    detail            text,
    scan_attempts     bigint NOT NULL DEFAULT 0,
    metadata_removed  text NOT NULL DEFAULT '[]',
    message_id        uuid REFERENCES messages(id),
    thread_id         uuid REFERENCES threads(id),
    ticket_id         uuid REFERENCES tickets(id),
    next_scan_at      bigint,
    lease_until       bigint,
    created_at        bigint NOT NULL,
    updated_at        bigint NOT NULL
);
CREATE INDEX attachments_scan ON attachments(state, next_scan_at);
CREATE INDEX attachments_thread ON attachments(thread_id);

-- The record is append-only, enforced by the database itself.
CREATE FUNCTION careline_refuse() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation';
END
$fn$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION careline_refuse('events are append-only: corrections are new events');
CREATE TRIGGER messages_never_deleted BEFORE DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION careline_refuse('messages are never deleted');
CREATE TRIGGER messages_never_edited BEFORE UPDATE ON messages
    FOR EACH ROW WHEN (
        OLD.body IS DISTINCT FROM NEW.body OR OLD.kind IS DISTINCT FROM NEW.kind
        OR OLD.thread_id IS DISTINCT FROM NEW.thread_id OR OLD.author_id IS DISTINCT FROM NEW.author_id
        OR OLD.created_at IS DISTINCT FROM NEW.created_at OR OLD.triage IS DISTINCT FROM NEW.triage
        OR OLD.org_id IS DISTINCT FROM NEW.org_id
    )
    EXECUTE FUNCTION careline_refuse('messages are never edited: redaction is an event');
CREATE TRIGGER messages_redaction_is_final BEFORE UPDATE ON messages
    FOR EACH ROW WHEN (
        OLD.redacted_at IS NOT NULL AND (
            OLD.redacted_at IS DISTINCT FROM NEW.redacted_at OR OLD.redacted_by IS DISTINCT FROM NEW.redacted_by
            OR OLD.redacted_by_role IS DISTINCT FROM NEW.redacted_by_role
            OR OLD.redaction_reason IS DISTINCT FROM NEW.redaction_reason
        )
    )
    EXECUTE FUNCTION careline_refuse('a redaction is final: it is never changed or undone');
CREATE TRIGGER tickets_never_deleted BEFORE DELETE ON tickets
    FOR EACH ROW EXECUTE FUNCTION careline_refuse('tickets are never deleted');
CREATE TRIGGER pages_never_deleted BEFORE DELETE ON pages
    FOR EACH ROW EXECUTE FUNCTION careline_refuse('pages are never deleted');
CREATE TRIGGER attachments_no_delete BEFORE DELETE ON attachments
    FOR EACH ROW EXECUTE FUNCTION careline_refuse('attachments are kept');
-- Row triggers do not see TRUNCATE; refuse it as a statement.
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION careline_refuse('events are append-only: nothing is deleted');
CREATE TRIGGER messages_no_truncate BEFORE TRUNCATE ON messages
    FOR EACH STATEMENT EXECUTE FUNCTION careline_refuse('messages are never deleted');
CREATE TRIGGER tickets_no_truncate BEFORE TRUNCATE ON tickets
    FOR EACH STATEMENT EXECUTE FUNCTION careline_refuse('tickets are never deleted');
CREATE TRIGGER pages_no_truncate BEFORE TRUNCATE ON pages
    FOR EACH STATEMENT EXECUTE FUNCTION careline_refuse('pages are never deleted');
CREATE TRIGGER attachments_no_truncate BEFORE TRUNCATE ON attachments
    FOR EACH STATEMENT EXECUTE FUNCTION careline_refuse('attachments are kept');
"#,
    // Member identifiers and health markers are sealed with the organization's
    // data key; `sealed` tells sealed rows from rows written before. Opening
    // the store seals the older rows (it needs the key, so SQL alone cannot).
    // An index on sealed names orders nothing.
    r#"
ALTER TABLE members ADD COLUMN sealed smallint NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS members_org;
CREATE INDEX members_org ON members(org_id);
"#,
    // The review net's mark (sealed: it quotes the member's words) and, while
    // it waits for a clinician, its due time, for the nurse-review view.
    r#"
ALTER TABLE tickets ADD COLUMN review text;
ALTER TABLE tickets ADD COLUMN review_due bigint;
CREATE INDEX tickets_review ON tickets(org_id, review_due) WHERE review_due IS NOT NULL;
"#,
    // Clinicians' marks on triage judgements (sealed: the note speaks of the
    // member). Kept like the record: never changed, never deleted.
    r#"
CREATE TABLE judgement_marks (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id),
    ticket_id   uuid NOT NULL REFERENCES tickets(id),
    message_id  uuid NOT NULL REFERENCES messages(id),
    member_id   uuid NOT NULL REFERENCES members(id),
    by_user     uuid NOT NULL REFERENCES users(id),
    mark        text NOT NULL,
    created_at  bigint NOT NULL
);
CREATE INDEX judgement_marks_org ON judgement_marks(org_id, created_at);
CREATE TRIGGER judgement_marks_never_changed BEFORE UPDATE ON judgement_marks
    FOR EACH ROW EXECUTE FUNCTION careline_refuse('a judgement mark is kept as made');
CREATE TRIGGER judgement_marks_never_deleted BEFORE DELETE ON judgement_marks
    FOR EACH ROW EXECUTE FUNCTION careline_refuse('judgement marks are kept');
CREATE TRIGGER judgement_marks_no_truncate BEFORE TRUNCATE ON judgement_marks
    FOR EACH STATEMENT EXECUTE FUNCTION careline_refuse('judgement marks are kept');
"#,
];

/// The newest schema version this build knows.
pub fn latest() -> i32 {
    i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX)
}

/// Bring the database up to the newest schema; safe on every start and from
/// several nodes at once. Returns the version afterwards.
pub async fn migrate(pool: &PgPool) -> Result<i32, sqlx_core::Error> {
    let mut conn = pool.acquire().await?;
    sqlx_core::query::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    let result = apply(&mut conn).await;
    let unlocked = sqlx_core::query::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await;
    if unlocked.is_err() {
        // Closing the session releases the lock; never return it to the pool holding it.
        conn.detach();
    }
    let version = result?;
    unlocked?;
    Ok(version)
}

async fn apply(conn: &mut PgConnection) -> Result<i32, sqlx_core::Error> {
    conn.execute(raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    ))
    .await?;
    let (current,): (i32,) =
        sqlx_core::query_as::query_as("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            .fetch_one(&mut *conn)
            .await?;
    let mut version = current;
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(usize::MAX))
    {
        let next = i32::try_from(i + 1).unwrap_or(i32::MAX);
        let mut tx = sqlx_core::connection::Connection::begin(&mut *conn).await?;
        tx.execute(raw_sql(*sql)).await?;
        sqlx_core::query::query("INSERT INTO schema_migrations (version) VALUES ($1)")
            .bind(next)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        version = next;
    }
    Ok(version)
}
