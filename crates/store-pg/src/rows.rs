//! Reading and writing rows: the one place that knows how each domain record
//! is laid out in PostgreSQL. Sealed fields are opened and sealed here too.

use crate::crypt::{Crypto, aad, open_sealed, seal_with};
use careline_core::escalation::Page;
use careline_core::event::Event;
use careline_core::feedback::JudgementMark;
use careline_core::ids::*;
use careline_core::model::*;
use careline_core::{Disposition, Error, Judgement, Result};
use jiff::Timestamp;
use sqlx_core::decode::Decode;
use sqlx_core::row::Row;
use sqlx_core::types::Type;
use sqlx_postgres::{PgConnection, PgRow, Postgres};
use std::str::FromStr;
use uuid::Uuid;

/// Database errors as domain errors: named unique constraints become
/// conflicts a caller can act on; anything else is internal (and logged, not
/// shown, by the HTTP layer).
pub fn db(e: sqlx_core::Error) -> Error {
    if let Some(d) = e.as_database_error()
        && d.is_unique_violation()
    {
        let what = match d.constraint() {
            Some("users_username_unique") => Some("that username is taken"),
            Some("organizations_name_unique") => Some("an organization with that name exists"),
            Some("teams_name_unique") => Some("a team with that name exists in this organization"),
            Some("members_external_ref_unique") => {
                Some("a member with that external reference exists")
            }
            _ => None,
        };
        if let Some(what) = what {
            return Error::conflict("duplicate", what);
        }
    }
    Error::internal(e)
}

/// A column, decoded.
pub fn get<'r, T>(r: &'r PgRow, col: &str) -> Result<T>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    r.try_get::<T, _>(col)
        .map_err(|e| Error::internal(format!("column {col}: {e}")))
}

pub fn uuid(r: &PgRow, col: &str) -> Result<Uuid> {
    get::<Uuid>(r, col)
}

pub fn opt_uuid(r: &PgRow, col: &str) -> Result<Option<Uuid>> {
    get::<Option<Uuid>>(r, col)
}

pub fn ts(r: &PgRow, col: &str) -> Result<Timestamp> {
    Ok(from_us(get::<i64>(r, col)?))
}

pub fn opt_ts(r: &PgRow, col: &str) -> Result<Option<Timestamp>> {
    Ok(get::<Option<i64>>(r, col)?.map(from_us))
}

pub fn from_us(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn us(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub fn parsed<T: FromStr>(r: &PgRow, col: &str) -> Result<T> {
    let s: String = get(r, col)?;
    T::from_str(&s).map_err(|_| Error::internal(format!("column {col}: unknown value {s:?}")))
}

/// A JSON column; one that no longer parses is an error naming the column.
pub fn json<T: serde::de::DeserializeOwned>(r: &PgRow, col: &str) -> Result<T> {
    let s: String = get(r, col)?;
    Ok(careline_store::stored_json(col, &s)?)
}

pub fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(Error::internal)
}

pub fn rank(p: Disposition) -> i32 {
    match p {
        Disposition::Routine => 0,
        Disposition::Urgent => 1,
        Disposition::Emergency => 2,
    }
}

/// A statement with its text known at compile time.
pub fn q(
    sql: &'static str,
) -> sqlx_core::query::Query<'static, Postgres, sqlx_postgres::PgArguments> {
    sqlx_core::query::query(sql)
}

// ---- organizations, teams, queues ----

pub fn org(r: &PgRow) -> Result<Organization> {
    Ok(Organization {
        id: OrgId(uuid(r, "id")?),
        name: get(r, "name")?,
        created_at: ts(r, "created_at")?,
    })
}

pub fn team(r: &PgRow) -> Result<CareTeam> {
    Ok(CareTeam {
        id: TeamId(uuid(r, "id")?),
        org_id: OrgId(uuid(r, "org_id")?),
        name: get(r, "name")?,
        team_queue: QueueId(uuid(r, "team_queue")?),
        clinical_queue: QueueId(uuid(r, "clinical_queue")?),
    })
}

pub fn queue(r: &PgRow) -> Result<Queue> {
    Ok(Queue {
        id: QueueId(uuid(r, "id")?),
        team_id: TeamId(uuid(r, "team_id")?),
        name: get(r, "name")?,
        kind: parsed(r, "kind")?,
    })
}

pub async fn load_team(c: &mut PgConnection, id: TeamId) -> Result<CareTeam> {
    let row = q("SELECT * FROM teams WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?
        .ok_or(Error::NotFound("team"))?;
    team(&row)
}

/// A queue and the organization it belongs to.
pub async fn load_queue(c: &mut PgConnection, id: QueueId) -> Result<(Queue, OrgId)> {
    let row = q("SELECT * FROM queues WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?
        .ok_or(Error::NotFound("queue"))?;
    Ok((queue(&row)?, OrgId(uuid(&row, "org_id")?)))
}

// ---- people ----

pub fn user(r: &PgRow) -> Result<User> {
    Ok(User {
        id: UserId(uuid(r, "id")?),
        org_id: OrgId(uuid(r, "org_id")?),
        username: get(r, "username")?,
        name: get(r, "name")?,
        role: parsed(r, "role")?,
        member_id: opt_uuid(r, "member_id")?.map(MemberId),
        disabled: get(r, "disabled")?,
    })
}

pub async fn load_user(c: &mut PgConnection, id: UserId) -> Result<Option<User>> {
    let row = q("SELECT * FROM users WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?;
    row.as_ref().map(user).transpose()
}

/// The member fields sealed at rest, as in the embedded store: the
/// identifiers (name, birth date, phone, e-mail) and the health markers
/// (conditions, medications, allergies, sensitive categories), plus sex and
/// plan. Language, team and the organization's own reference stay readable:
/// routing needs the first two, and the reference is unique per
/// organization and already in the `member.created` event.
pub const MEMBER_SEALED_FIELDS: [&str; 7] = [
    "name",
    "date_of_birth",
    "sex",
    "phone",
    "email",
    "plan",
    "markers",
];

/// Read a member, opening its sealed fields (or taking a row from before
/// they were sealed as it is).
pub async fn member(c: &mut PgConnection, k: &Crypto, r: &PgRow) -> Result<Member> {
    let id = MemberId(uuid(r, "id")?);
    let org = OrgId(uuid(r, "org_id")?);
    let sealed: i16 = get(r, "sealed")?;
    let dk = if sealed != 0 {
        Some(k.key(c, org).await?)
    } else {
        None
    };
    let field = |name: &str| -> Result<Option<String>> {
        let v: Option<String> = get(r, name)?;
        match (v, &dk) {
            (Some(v), Some(dk)) => open_sealed(dk, &v, &aad("member", &id, name)).map(Some),
            (v, _) => Ok(v),
        }
    };
    let markers = field("markers")?.unwrap_or_default();
    Ok(Member {
        id,
        org_id: org,
        name: field("name")?.unwrap_or_default(),
        date_of_birth: field("date_of_birth")?.and_then(|d| d.parse().ok()),
        sex: field("sex")?,
        language: get(r, "language")?,
        phone: field("phone")?,
        email: field("email")?,
        plan: field("plan")?,
        team_id: TeamId(uuid(r, "team_id")?),
        markers: serde_json::from_str(&markers)
            .map_err(|e| Error::internal(format!("member markers: {e}")))?,
        created_at: ts(r, "created_at")?,
    })
}

/// A member's sealed columns, in the order of [`MEMBER_SEALED_FIELDS`].
async fn sealed_member_fields(
    c: &mut PgConnection,
    k: &Crypto,
    m: &Member,
) -> Result<[Option<String>; 7]> {
    let dk = k.key(c, m.org_id).await?;
    let plain = [
        Some(m.name.clone()),
        m.date_of_birth.map(|d| d.to_string()),
        m.sex.clone(),
        m.phone.clone(),
        m.email.clone(),
        m.plan.clone(),
        Some(to_json(&m.markers)?),
    ];
    let mut out: [Option<String>; 7] = Default::default();
    for ((slot, value), name) in out.iter_mut().zip(plain).zip(MEMBER_SEALED_FIELDS) {
        *slot = value
            .map(|v| seal_with(&dk, &v, &aad("member", &m.id, name)))
            .transpose()?;
    }
    Ok(out)
}

/// Insert a new member, sealed.
pub async fn insert_member(
    c: &mut PgConnection,
    k: &Crypto,
    m: &Member,
    external_ref: Option<&str>,
) -> Result<()> {
    let [name, dob, sex, phone, email, plan, markers] = sealed_member_fields(c, k, m).await?;
    q("INSERT INTO members (id, org_id, name, date_of_birth, sex, language, phone, email, plan, team_id, markers, external_ref, created_at, sealed)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1)")
        .bind(m.id.0)
        .bind(m.org_id.0)
        .bind(name)
        .bind(dob)
        .bind(sex)
        .bind(m.language.clone())
        .bind(phone)
        .bind(email)
        .bind(plan)
        .bind(m.team_id.0)
        .bind(markers)
        .bind(external_ref.map(str::to_owned))
        .bind(us(m.created_at))
        .execute(&mut *c)
        .await
        .map_err(db)?;
    Ok(())
}

/// Rewrite a member's sealed fields from `m` (sealing a row written before
/// they were sealed, or storing changed markers).
pub async fn update_member(c: &mut PgConnection, k: &Crypto, m: &Member) -> Result<()> {
    let [name, dob, sex, phone, email, plan, markers] = sealed_member_fields(c, k, m).await?;
    q("UPDATE members SET name = $1, date_of_birth = $2, sex = $3, phone = $4, email = $5, plan = $6, markers = $7, sealed = 1
       WHERE id = $8")
        .bind(name)
        .bind(dob)
        .bind(sex)
        .bind(phone)
        .bind(email)
        .bind(plan)
        .bind(markers)
        .bind(m.id.0)
        .execute(&mut *c)
        .await
        .map_err(db)?;
    Ok(())
}

pub async fn load_member(c: &mut PgConnection, k: &Crypto, id: MemberId) -> Result<Member> {
    let row = q("SELECT * FROM members WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?
        .ok_or(Error::NotFound("member"))?;
    member(c, k, &row).await
}

pub async fn team_ids(c: &mut PgConnection, user: UserId) -> Result<Vec<TeamId>> {
    let rows: Vec<(Uuid,)> =
        sqlx_core::query_as::query_as("SELECT team_id FROM team_members WHERE user_id = $1")
            .bind(user.0)
            .fetch_all(&mut *c)
            .await
            .map_err(db)?;
    Ok(rows.into_iter().map(|(t,)| TeamId(t)).collect())
}

pub async fn user_name(c: &mut PgConnection, u: UserId) -> Result<Option<String>> {
    let row: Option<(String,)> =
        sqlx_core::query_as::query_as("SELECT name FROM users WHERE id = $1")
            .bind(u.0)
            .fetch_optional(&mut *c)
            .await
            .map_err(db)?;
    Ok(row.map(|(n,)| n))
}

// ---- threads, messages, tickets ----

pub fn thread(r: &PgRow) -> Result<Thread> {
    Ok(Thread {
        id: ThreadId(uuid(r, "id")?),
        org_id: OrgId(uuid(r, "org_id")?),
        member_id: MemberId(uuid(r, "member_id")?),
        created_at: ts(r, "created_at")?,
    })
}

pub async fn load_thread(c: &mut PgConnection, id: ThreadId) -> Result<Thread> {
    let row = q("SELECT * FROM threads WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?
        .ok_or(Error::NotFound("thread"))?;
    thread(&row)
}

pub async fn thread_of_member(c: &mut PgConnection, m: MemberId) -> Result<Option<Thread>> {
    let row = q("SELECT * FROM threads WHERE member_id = $1")
        .bind(m.0)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?;
    row.as_ref().map(thread).transpose()
}

/// Read a message, opening its sealed body and triage.
pub async fn message(c: &mut PgConnection, k: &Crypto, r: &PgRow) -> Result<Message> {
    let id = MessageId(uuid(r, "id")?);
    let org = OrgId(uuid(r, "org_id")?);
    let body: String = get(r, "body")?;
    let text = k.open(c, org, &body, &aad("message", &id, "body")).await?;
    let triage = match get::<Option<String>>(r, "triage")? {
        Some(t) => {
            let t = k.open(c, org, &t, &aad("message", &id, "triage")).await?;
            serde_json::from_str::<Judgement>(&t).ok()
        }
        None => None,
    };
    let redaction = match opt_ts(r, "redacted_at")? {
        Some(at) => Some(Redaction {
            at,
            by: UserId(uuid(r, "redacted_by")?),
            by_role: parsed(r, "redacted_by_role")?,
            reason: get(r, "redaction_reason")?,
        }),
        None => None,
    };
    Ok(Message {
        id,
        org_id: org,
        thread_id: ThreadId(uuid(r, "thread_id")?),
        ticket_id: opt_uuid(r, "ticket_id")?.map(TicketId),
        kind: parsed(r, "kind")?,
        author_id: opt_uuid(r, "author_id")?.map(UserId),
        author_name: get(r, "author_name")?,
        text,
        triage,
        created_at: ts(r, "created_at")?,
        redaction,
    })
}

pub async fn insert_message(c: &mut PgConnection, k: &Crypto, m: &Message) -> Result<()> {
    let triage = match &m.triage {
        Some(t) => Some(
            k.seal(c, m.org_id, &to_json(t)?, &aad("message", &m.id, "triage"))
                .await?,
        ),
        None => None,
    };
    let body = k
        .seal(c, m.org_id, &m.text, &aad("message", &m.id, "body"))
        .await?;
    q("INSERT INTO messages (id, org_id, thread_id, ticket_id, kind, author_id, author_name, body, triage, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
    .bind(m.id.0)
    .bind(m.org_id.0)
    .bind(m.thread_id.0)
    .bind(m.ticket_id.map(|t| t.0))
    .bind(m.kind.as_str())
    .bind(m.author_id.map(|a| a.0))
    .bind(m.author_name.clone())
    .bind(body)
    .bind(triage)
    .bind(us(m.created_at))
    .execute(&mut *c)
    .await
    .map_err(db)?;
    Ok(())
}

pub async fn insert_thread(c: &mut PgConnection, t: &Thread) -> Result<()> {
    q("INSERT INTO threads (id, org_id, member_id, created_at) VALUES ($1, $2, $3, $4)")
        .bind(t.id.0)
        .bind(t.org_id.0)
        .bind(t.member_id.0)
        .bind(us(t.created_at))
        .execute(&mut *c)
        .await
        .map_err(db)?;
    Ok(())
}

/// Read a ticket, opening its sealed triage and clearance.
pub async fn ticket(c: &mut PgConnection, k: &Crypto, r: &PgRow) -> Result<Ticket> {
    let id = TicketId(uuid(r, "id")?);
    let org = OrgId(uuid(r, "org_id")?);
    let triage: String = get(r, "triage")?;
    let triage = k
        .open(c, org, &triage, &aad("ticket", &id, "triage"))
        .await?;
    let clearance = match get::<Option<String>>(r, "clearance")? {
        Some(s) => {
            serde_json::from_str(&k.open(c, org, &s, &aad("ticket", &id, "clearance")).await?).ok()
        }
        None => None,
    };
    let review = match get::<Option<String>>(r, "review")? {
        Some(s) => Some(
            serde_json::from_str(&k.open(c, org, &s, &aad("ticket", &id, "review")).await?)
                .map_err(|e| Error::internal(format!("ticket {id}: stored review mark: {e}")))?,
        ),
        None => None,
    };
    Ok(Ticket {
        id,
        org_id: org,
        thread_id: ThreadId(uuid(r, "thread_id")?),
        member_id: MemberId(uuid(r, "member_id")?),
        team_id: TeamId(uuid(r, "team_id")?),
        queue_id: QueueId(uuid(r, "queue_id")?),
        queue_kind: parsed(r, "queue_kind")?,
        status: parsed(r, "status")?,
        priority: parsed(r, "priority")?,
        assignee_id: opt_uuid(r, "assignee_id")?.map(UserId),
        triage: serde_json::from_str(&triage)
            .map_err(|e| Error::internal(format!("ticket triage: {e}")))?,
        sla: json(r, "sla")?,
        clearance,
        review,
        created_at: ts(r, "created_at")?,
        updated_at: ts(r, "updated_at")?,
    })
}

pub async fn load_ticket(c: &mut PgConnection, k: &Crypto, id: TicketId) -> Result<Ticket> {
    let row = q("SELECT * FROM tickets WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?
        .ok_or(Error::NotFound("ticket"))?;
    ticket(c, k, &row).await
}

pub async fn latest_ticket(
    c: &mut PgConnection,
    k: &Crypto,
    thread: ThreadId,
) -> Result<Option<Ticket>> {
    let row =
        q("SELECT * FROM tickets WHERE thread_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1")
            .bind(thread.0)
            .fetch_optional(&mut *c)
            .await
            .map_err(db)?;
    match row {
        Some(r) => Ok(Some(ticket(c, k, &r).await?)),
        None => Ok(None),
    }
}

pub async fn upsert_ticket(c: &mut PgConnection, k: &Crypto, t: &Ticket) -> Result<()> {
    let next_due = careline_core::sla::next_due(&t.sla).map(us);
    let triage = k
        .seal(
            c,
            t.org_id,
            &to_json(&t.triage)?,
            &aad("ticket", &t.id, "triage"),
        )
        .await?;
    let clearance = match &t.clearance {
        Some(cl) => Some(
            k.seal(
                c,
                t.org_id,
                &to_json(cl)?,
                &aad("ticket", &t.id, "clearance"),
            )
            .await?,
        ),
        None => None,
    };
    let review = match &t.review {
        Some(rv) => Some(
            k.seal(c, t.org_id, &to_json(rv)?, &aad("ticket", &t.id, "review"))
                .await?,
        ),
        None => None,
    };
    let review_due = t
        .review
        .as_ref()
        .filter(|r| r.pending())
        .map(|r| us(r.due_at));
    q("INSERT INTO tickets (id, org_id, thread_id, member_id, team_id, queue_id, queue_kind, status, priority, priority_rank,
                           assignee_id, triage, sla, next_due, created_at, updated_at, clearance, review, review_due)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
       ON CONFLICT (id) DO UPDATE SET
          queue_id = excluded.queue_id, queue_kind = excluded.queue_kind, status = excluded.status,
          priority = excluded.priority, priority_rank = excluded.priority_rank, assignee_id = excluded.assignee_id,
          triage = excluded.triage, sla = excluded.sla, next_due = excluded.next_due, updated_at = excluded.updated_at,
          clearance = excluded.clearance, review = excluded.review, review_due = excluded.review_due")
    .bind(t.id.0)
    .bind(t.org_id.0)
    .bind(t.thread_id.0)
    .bind(t.member_id.0)
    .bind(t.team_id.0)
    .bind(t.queue_id.0)
    .bind(t.queue_kind.as_str())
    .bind(t.status.as_str())
    .bind(t.priority.as_str())
    .bind(rank(t.priority))
    .bind(t.assignee_id.map(|a| a.0))
    .bind(triage)
    .bind(to_json(&t.sla)?)
    .bind(next_due)
    .bind(us(t.created_at))
    .bind(us(t.updated_at))
    .bind(clearance)
    .bind(review)
    .bind(review_due)
    .execute(&mut *c)
    .await
    .map_err(db)?;
    Ok(())
}

// ---- pages ----

pub fn page(r: &PgRow) -> Result<Page> {
    Ok(Page {
        id: PageId(uuid(r, "id")?),
        org_id: OrgId(uuid(r, "org_id")?),
        ticket_id: TicketId(uuid(r, "ticket_id")?),
        member_id: MemberId(uuid(r, "member_id")?),
        team_id: TeamId(uuid(r, "team_id")?),
        level: parsed(r, "level")?,
        targets: json(r, "targets")?,
        disposition: parsed(r, "disposition")?,
        reason: get(r, "reason")?,
        flagged_at: ts(r, "flagged_at")?,
        created_at: ts(r, "created_at")?,
        deadline: opt_ts(r, "deadline")?,
        status: parsed(r, "status")?,
        acked_by: opt_uuid(r, "acked_by")?.map(UserId),
        acked_at: opt_ts(r, "acked_at")?,
    })
}

pub fn pages(rows: &[PgRow]) -> Result<Vec<Page>> {
    rows.iter().map(page).collect()
}

pub async fn upsert_page(c: &mut PgConnection, p: &Page) -> Result<()> {
    q("INSERT INTO pages (id, org_id, ticket_id, member_id, team_id, level, targets, disposition, reason, flagged_at, created_at, deadline, status, acked_by, acked_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, acked_by = excluded.acked_by, acked_at = excluded.acked_at")
    .bind(p.id.0)
    .bind(p.org_id.0)
    .bind(p.ticket_id.0)
    .bind(p.member_id.0)
    .bind(p.team_id.0)
    .bind(p.level.as_str())
    .bind(to_json(&p.targets)?)
    .bind(p.disposition.as_str())
    .bind(p.reason.clone())
    .bind(us(p.flagged_at))
    .bind(us(p.created_at))
    .bind(p.deadline.map(us))
    .bind(p.status.as_str())
    .bind(p.acked_by.map(|a| a.0))
    .bind(p.acked_at.map(us))
    .execute(&mut *c)
    .await
    .map_err(db)?;
    Ok(())
}

// ---- events ----

pub fn event(r: &PgRow) -> Result<Event> {
    Ok(Event {
        id: EventId(uuid(r, "id")?),
        org_id: OrgId(uuid(r, "org_id")?),
        seq: get(r, "seq")?,
        at_us: get(r, "at")?,
        kind: get(r, "kind")?,
        actor_id: opt_uuid(r, "actor_id")?.map(UserId),
        member_id: opt_uuid(r, "member_id")?.map(MemberId),
        ticket_id: opt_uuid(r, "ticket_id")?.map(TicketId),
        thread_id: opt_uuid(r, "thread_id")?.map(ThreadId),
        team_id: opt_uuid(r, "team_id")?.map(TeamId),
        payload: get(r, "payload")?,
        prev_hash: get(r, "prev_hash")?,
        hash: get(r, "hash")?,
    })
}

// ---- clinicians' marks on triage judgements ----

/// Store a mark; the whole mark is sealed (its note speaks of the member).
pub async fn insert_mark(c: &mut PgConnection, k: &Crypto, m: &JudgementMark) -> Result<()> {
    let sealed = k
        .seal(
            c,
            m.org_id,
            &to_json(m)?,
            &aad("judgement_mark", &m.id, "mark"),
        )
        .await?;
    q("INSERT INTO judgement_marks (id, org_id, ticket_id, message_id, member_id, by_user, mark, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
    .bind(m.id.0)
    .bind(m.org_id.0)
    .bind(m.ticket_id.0)
    .bind(m.message_id.0)
    .bind(m.member_id.0)
    .bind(m.by.0)
    .bind(sealed)
    .bind(us(m.created_at))
    .execute(&mut *c)
    .await
    .map_err(db)?;
    Ok(())
}

/// Read a mark, opening it.
pub async fn mark(c: &mut PgConnection, k: &Crypto, r: &PgRow) -> Result<JudgementMark> {
    let id = MarkId(uuid(r, "id")?);
    let org = OrgId(uuid(r, "org_id")?);
    let sealed: String = get(r, "mark")?;
    let raw = k
        .open(c, org, &sealed, &aad("judgement_mark", &id, "mark"))
        .await?;
    serde_json::from_str(&raw)
        .map_err(|e| Error::internal(format!("judgement mark {id}: stored mark: {e}")))
}

/// A message by id, if it is `org`'s.
pub async fn load_message(
    c: &mut PgConnection,
    k: &Crypto,
    org: OrgId,
    id: MessageId,
) -> Result<Message> {
    let row = q("SELECT * FROM messages WHERE id = $1 AND org_id = $2")
        .bind(id.0)
        .bind(org.0)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?
        .ok_or(Error::NotFound("message"))?;
    message(c, k, &row).await
}
