//! Reading and writing rows: the one place that knows how each domain record
//! is laid out in SQLite.

use crate::crypt::Crypto;
use careline_core::event::Event;
use careline_core::feedback::JudgementMark;
use careline_core::ids::*;
use careline_core::model::*;
use careline_core::{Disposition, Error, Judgement, Result};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::str::FromStr;

pub fn db(e: rusqlite::Error) -> Error {
    // Named constraints become conflicts a caller can act on.
    let msg = e.to_string();
    for (name, what) in [
        ("users.username", "that username is taken"),
        (
            "organizations.name",
            "an organization with that name exists",
        ),
        (
            "teams.org_id, teams.name",
            "a team with that name exists in this organization",
        ),
        (
            "members.org_id, members.external_ref",
            "a member with that external reference exists",
        ),
    ] {
        if msg.contains("UNIQUE constraint failed") && msg.contains(name) {
            return Error::conflict("duplicate", what);
        }
    }
    Error::internal(msg)
}

pub fn id<T: FromStr>(row: &Row<'_>, idx: &str) -> rusqlite::Result<T> {
    let s: String = row.get(idx)?;
    T::from_str(&s).map_err(|_| {
        rusqlite::Error::InvalidColumnType(0, idx.to_owned(), rusqlite::types::Type::Text)
    })
}

pub fn opt_id<T: FromStr>(row: &Row<'_>, idx: &str) -> rusqlite::Result<Option<T>> {
    let s: Option<String> = row.get(idx)?;
    s.map(|s| {
        T::from_str(&s).map_err(|_| {
            rusqlite::Error::InvalidColumnType(0, idx.to_owned(), rusqlite::types::Type::Text)
        })
    })
    .transpose()
}

pub fn ts(row: &Row<'_>, idx: &str) -> rusqlite::Result<Timestamp> {
    let us: i64 = row.get(idx)?;
    Ok(Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH))
}

pub fn us(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn parsed<T: FromStr>(row: &Row<'_>, idx: &str) -> rusqlite::Result<T> {
    let s: String = row.get(idx)?;
    T::from_str(&s).map_err(|_| {
        rusqlite::Error::InvalidColumnType(0, idx.to_owned(), rusqlite::types::Type::Text)
    })
}

/// A JSON column; one that no longer parses is an error naming the column.
pub fn json<T: serde::de::DeserializeOwned>(row: &Row<'_>, idx: &str) -> rusqlite::Result<T> {
    let s: String = row.get(idx)?;
    careline_store::stored_json(idx, &s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(Error::internal)
}

pub fn rank(p: Disposition) -> i64 {
    match p {
        Disposition::Routine => 0,
        Disposition::Urgent => 1,
        Disposition::Emergency => 2,
    }
}

// ---- organizations, teams, queues ----

pub fn org(row: &Row<'_>) -> rusqlite::Result<Organization> {
    Ok(Organization {
        id: id(row, "id")?,
        name: row.get("name")?,
        created_at: ts(row, "created_at")?,
    })
}

pub fn team(row: &Row<'_>) -> rusqlite::Result<CareTeam> {
    Ok(CareTeam {
        id: id(row, "id")?,
        org_id: id(row, "org_id")?,
        name: row.get("name")?,
        team_queue: id(row, "team_queue")?,
        clinical_queue: id(row, "clinical_queue")?,
    })
}

pub fn queue(row: &Row<'_>) -> rusqlite::Result<Queue> {
    Ok(Queue {
        id: id(row, "id")?,
        team_id: id(row, "team_id")?,
        name: row.get("name")?,
        kind: parsed(row, "kind")?,
    })
}

pub fn load_team(c: &Connection, team_id: TeamId) -> Result<CareTeam> {
    c.prepare_cached("SELECT * FROM teams WHERE id = $1")
        .and_then(|mut s| s.query_row([team_id.to_string()], team).optional())
        .map_err(db)?
        .ok_or(Error::NotFound("team"))
}

pub fn load_queue(c: &Connection, q: QueueId) -> Result<Queue> {
    c.prepare_cached("SELECT * FROM queues WHERE id = $1")
        .and_then(|mut s| s.query_row([q.to_string()], queue).optional())
        .map_err(db)?
        .ok_or(Error::NotFound("queue"))
}

// ---- people ----

pub fn user(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: id(row, "id")?,
        org_id: id(row, "org_id")?,
        username: row.get("username")?,
        name: row.get("name")?,
        role: parsed(row, "role")?,
        member_id: opt_id(row, "member_id")?,
        disabled: row.get::<_, i64>("disabled")? != 0,
    })
}

/// A user by id, if there is one.
pub fn load_user(c: &Connection, u: UserId) -> Result<Option<User>> {
    c.prepare_cached("SELECT * FROM users WHERE id = $1")
        .and_then(|mut s| s.query_row([u.to_string()], user).optional())
        .map_err(db)
}

/// The member fields sealed at rest: the identifiers (name, birth date,
/// phone, e-mail) and the health markers (conditions, medications,
/// allergies, sensitive categories), plus sex and plan. Language, team and
/// the organization's own reference stay readable: routing needs the first
/// two, and the reference is unique per organization and already in the
/// `member.created` event.
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
pub fn member(k: &Crypto) -> impl Fn(&Row<'_>) -> rusqlite::Result<Member> + '_ {
    move |row| {
        let mid: MemberId = id(row, "id")?;
        let org: OrgId = id(row, "org_id")?;
        let sealed = row.get::<_, i64>("sealed")? != 0;
        let field = |name: &str| -> rusqlite::Result<Option<String>> {
            match row.get::<_, Option<String>>(name)? {
                Some(v) if sealed => k
                    .open_sealed(org, &v, &aad("member", &mid, name))
                    .map(Some)
                    .map_err(sealed_err),
                other => Ok(other),
            }
        };
        let markers = field("markers")?.unwrap_or_default();
        Ok(Member {
            id: mid,
            org_id: org,
            name: field("name")?.unwrap_or_default(),
            date_of_birth: field("date_of_birth")?.and_then(|d| d.parse().ok()),
            sex: field("sex")?,
            language: row.get("language")?,
            phone: field("phone")?,
            email: field("email")?,
            plan: field("plan")?,
            team_id: id(row, "team_id")?,
            markers: serde_json::from_str(&markers).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
            created_at: ts(row, "created_at")?,
        })
    }
}

/// A member's sealed columns, in the order of [`MEMBER_SEALED_FIELDS`].
fn sealed_member_fields(k: &Crypto, m: &Member) -> Result<[Option<String>; 7]> {
    let markers = to_json(&m.markers)?;
    let plain = [
        Some(m.name.clone()),
        m.date_of_birth.map(|d| d.to_string()),
        m.sex.clone(),
        m.phone.clone(),
        m.email.clone(),
        m.plan.clone(),
        Some(markers),
    ];
    let mut out: [Option<String>; 7] = Default::default();
    for ((slot, value), name) in out.iter_mut().zip(plain).zip(MEMBER_SEALED_FIELDS) {
        *slot = value
            .map(|v| k.seal(m.org_id, &v, &aad("member", &m.id, name)))
            .transpose()?;
    }
    Ok(out)
}

/// Insert a new member, sealed.
pub fn insert_member(
    c: &Connection,
    k: &Crypto,
    m: &Member,
    external_ref: Option<&str>,
) -> Result<()> {
    let [name, dob, sex, phone, email, plan, markers] = sealed_member_fields(k, m)?;
    c.prepare_cached(
        "INSERT INTO members (id, org_id, name, date_of_birth, sex, language, phone, email, plan, team_id, markers, external_ref, created_at, sealed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1)",
    )
    .and_then(|mut s| {
        s.execute(params![
            m.id.to_string(),
            m.org_id.to_string(),
            name,
            dob,
            sex,
            m.language,
            phone,
            email,
            plan,
            m.team_id.to_string(),
            markers,
            external_ref,
            us(m.created_at)
        ])
    })
    .map_err(db)?;
    Ok(())
}

/// Rewrite a member's sealed fields from `m` (sealing a row written before
/// they were sealed, or storing changed markers).
pub fn update_member(c: &Connection, k: &Crypto, m: &Member) -> Result<()> {
    let [name, dob, sex, phone, email, plan, markers] = sealed_member_fields(k, m)?;
    c.prepare_cached(
        "UPDATE members SET name = $1, date_of_birth = $2, sex = $3, phone = $4, email = $5, plan = $6, markers = $7, sealed = 1
         WHERE id = $8",
    )
    .and_then(|mut s| {
        s.execute(params![
            name,
            dob,
            sex,
            phone,
            email,
            plan,
            markers,
            m.id.to_string()
        ])
    })
    .map_err(db)?;
    Ok(())
}

pub fn load_member(c: &Connection, k: &Crypto, m: MemberId) -> Result<Member> {
    c.prepare_cached("SELECT * FROM members WHERE id = $1")
        .and_then(|mut s| s.query_row([m.to_string()], member(k)).optional())
        .map_err(db)?
        .ok_or(Error::NotFound("member"))
}

// ---- threads, messages, tickets ----

pub fn load_thread(c: &Connection, t: ThreadId) -> Result<Thread> {
    c.prepare_cached("SELECT * FROM threads WHERE id = $1")
        .and_then(|mut s| s.query_row([t.to_string()], thread).optional())
        .map_err(db)?
        .ok_or(Error::NotFound("thread"))
}

pub fn thread(row: &Row<'_>) -> rusqlite::Result<Thread> {
    Ok(Thread {
        id: id(row, "id")?,
        org_id: id(row, "org_id")?,
        member_id: id(row, "member_id")?,
        created_at: ts(row, "created_at")?,
    })
}

pub fn sealed_err(e: careline_core::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(std::io::Error::other(e.to_string())),
    )
}

/// Associated data binding a sealed field to its row.
pub fn aad(table: &str, id: &impl std::fmt::Display, field: &str) -> String {
    format!("{table}:{id}:{field}")
}

/// Read a message, opening its sealed body and triage.
pub fn message(k: &Crypto) -> impl Fn(&Row<'_>) -> rusqlite::Result<Message> + '_ {
    move |row| {
        let id: MessageId = id(row, "id")?;
        let org: OrgId = id_col(row, "org_id")?;
        let body: String = row.get("body")?;
        let text = k
            .open(org, &body, &aad("message", &id, "body"))
            .map_err(sealed_err)?;
        let triage: Option<String> = row.get("triage")?;
        let triage = match triage {
            Some(t) => {
                let t = k
                    .open(org, &t, &aad("message", &id, "triage"))
                    .map_err(sealed_err)?;
                serde_json::from_str::<Judgement>(&t).ok()
            }
            None => None,
        };
        Ok(Message {
            id,
            org_id: org,
            thread_id: crate::rows::id(row, "thread_id")?,
            ticket_id: opt_id(row, "ticket_id")?,
            kind: parsed(row, "kind")?,
            author_id: opt_id(row, "author_id")?,
            author_name: row.get("author_name")?,
            text,
            triage,
            created_at: ts(row, "created_at")?,
            redaction: match opt_ts(row, "redacted_at")? {
                Some(at) => Some(careline_core::model::Redaction {
                    at,
                    by: id_col(row, "redacted_by")?,
                    by_role: parsed(row, "redacted_by_role")?,
                    reason: row.get("redaction_reason")?,
                }),
                None => None,
            },
        })
    }
}

fn id_col<T: FromStr>(row: &Row<'_>, idx: &str) -> rusqlite::Result<T> {
    id(row, idx)
}

/// Read a ticket, opening its sealed triage and clearance.
pub fn ticket(k: &Crypto) -> impl Fn(&Row<'_>) -> rusqlite::Result<Ticket> + '_ {
    move |row| {
        let tid: TicketId = id(row, "id")?;
        let org: OrgId = id(row, "org_id")?;
        let triage: String = row.get("triage")?;
        let triage = k
            .open(org, &triage, &aad("ticket", &tid, "triage"))
            .map_err(sealed_err)?;
        let clearance: Option<String> = row.get("clearance")?;
        let clearance = match clearance {
            Some(c) => serde_json::from_str(
                &k.open(org, &c, &aad("ticket", &tid, "clearance"))
                    .map_err(sealed_err)?,
            )
            .ok(),
            None => None,
        };
        let review: Option<String> = row.get("review")?;
        let review = match review {
            Some(r) => Some(
                serde_json::from_str(
                    &k.open(org, &r, &aad("ticket", &tid, "review"))
                        .map_err(sealed_err)?,
                )
                .map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        0,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?,
            ),
            None => None,
        };
        Ok(Ticket {
            id: tid,
            org_id: org,
            thread_id: id(row, "thread_id")?,
            member_id: id(row, "member_id")?,
            team_id: id(row, "team_id")?,
            queue_id: id(row, "queue_id")?,
            queue_kind: parsed(row, "queue_kind")?,
            status: parsed(row, "status")?,
            priority: parsed(row, "priority")?,
            assignee_id: opt_id(row, "assignee_id")?,
            triage: serde_json::from_str(&triage).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
            sla: json(row, "sla")?,
            clearance,
            review,
            created_at: ts(row, "created_at")?,
            updated_at: ts(row, "updated_at")?,
        })
    }
}

pub fn opt_ts(row: &Row<'_>, idx: &str) -> rusqlite::Result<Option<Timestamp>> {
    let v: Option<i64> = row.get(idx)?;
    Ok(v.map(|us| Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)))
}

pub fn page(row: &Row<'_>) -> rusqlite::Result<careline_core::escalation::Page> {
    Ok(careline_core::escalation::Page {
        id: id(row, "id")?,
        org_id: id(row, "org_id")?,
        ticket_id: id(row, "ticket_id")?,
        member_id: id(row, "member_id")?,
        team_id: id(row, "team_id")?,
        level: parsed(row, "level")?,
        targets: json(row, "targets")?,
        disposition: parsed(row, "disposition")?,
        reason: row.get("reason")?,
        flagged_at: ts(row, "flagged_at")?,
        created_at: ts(row, "created_at")?,
        deadline: opt_ts(row, "deadline")?,
        status: parsed(row, "status")?,
        acked_by: opt_id(row, "acked_by")?,
        acked_at: opt_ts(row, "acked_at")?,
    })
}

pub fn upsert_page(c: &Connection, p: &careline_core::escalation::Page) -> Result<()> {
    let targets = to_json(&p.targets)?;
    c.prepare_cached(
        "INSERT INTO pages (id, org_id, ticket_id, member_id, team_id, level, targets, disposition, reason, flagged_at, created_at, deadline, status, acked_by, acked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, acked_by = excluded.acked_by, acked_at = excluded.acked_at",
    )
    .and_then(|mut s| {
        s.execute(params![
            p.id.to_string(),
            p.org_id.to_string(),
            p.ticket_id.to_string(),
            p.member_id.to_string(),
            p.team_id.to_string(),
            p.level.as_str(),
            targets,
            p.disposition.as_str(),
            p.reason,
            us(p.flagged_at),
            us(p.created_at),
            p.deadline.map(us),
            p.status.as_str(),
            p.acked_by.map(|x| x.to_string()),
            p.acked_at.map(us),
        ])
    })
    .map_err(db)?;
    Ok(())
}

pub fn load_ticket(c: &Connection, k: &Crypto, t: TicketId) -> Result<Ticket> {
    c.prepare_cached("SELECT * FROM tickets WHERE id = $1")
        .and_then(|mut s| s.query_row([t.to_string()], ticket(k)).optional())
        .map_err(db)?
        .ok_or(Error::NotFound("ticket"))
}

pub fn insert_thread(c: &Connection, t: &Thread) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO threads (id, org_id, member_id, created_at) VALUES ($1, $2, $3, $4)",
    )
    .and_then(|mut s| {
        s.execute(params![
            t.id.to_string(),
            t.org_id.to_string(),
            t.member_id.to_string(),
            us(t.created_at)
        ])
    })
    .map_err(db)?;
    Ok(())
}

pub fn insert_message(c: &Connection, k: &Crypto, m: &Message) -> Result<()> {
    let triage = m.triage.as_ref().map(to_json).transpose()?;
    let triage = triage
        .map(|t| k.seal(m.org_id, &t, &aad("message", &m.id, "triage")))
        .transpose()?;
    let body = k.seal(m.org_id, &m.text, &aad("message", &m.id, "body"))?;
    c.prepare_cached(
        "INSERT INTO messages (id, org_id, thread_id, ticket_id, kind, author_id, author_name, body, triage, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .and_then(|mut s| {
        s.execute(params![
            m.id.to_string(),
            m.org_id.to_string(),
            m.thread_id.to_string(),
            m.ticket_id.map(|x| x.to_string()),
            m.kind.as_str(),
            m.author_id.map(|x| x.to_string()),
            m.author_name,
            body,
            triage,
            us(m.created_at),
        ])
    })
    .map_err(db)?;
    Ok(())
}

pub fn upsert_ticket(c: &Connection, k: &Crypto, t: &Ticket) -> Result<()> {
    let next_due = careline_core::sla::next_due(&t.sla).map(us);
    let (triage, sla) = (to_json(&t.triage)?, to_json(&t.sla)?);
    let triage = k.seal(t.org_id, &triage, &aad("ticket", &t.id, "triage"))?;
    let clearance = t.clearance.as_ref().map(to_json).transpose()?;
    let clearance = clearance
        .map(|c| k.seal(t.org_id, &c, &aad("ticket", &t.id, "clearance")))
        .transpose()?;
    let review = t.review.as_ref().map(to_json).transpose()?;
    let review = review
        .map(|r| k.seal(t.org_id, &r, &aad("ticket", &t.id, "review")))
        .transpose()?;
    let review_due = t
        .review
        .as_ref()
        .filter(|r| r.pending())
        .map(|r| us(r.due_at));
    c.prepare_cached(
        "INSERT INTO tickets (id, org_id, thread_id, member_id, team_id, queue_id, queue_kind, status, priority, priority_rank,
                              assignee_id, triage, sla, next_due, created_at, updated_at, clearance, review, review_due)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
         ON CONFLICT (id) DO UPDATE SET
            queue_id = excluded.queue_id, queue_kind = excluded.queue_kind, status = excluded.status,
            priority = excluded.priority, priority_rank = excluded.priority_rank, assignee_id = excluded.assignee_id,
            triage = excluded.triage, sla = excluded.sla, next_due = excluded.next_due, updated_at = excluded.updated_at,
            clearance = excluded.clearance, review = excluded.review, review_due = excluded.review_due",
    )
    .and_then(|mut s| {
        s.execute(params![
            t.id.to_string(),
            t.org_id.to_string(),
            t.thread_id.to_string(),
            t.member_id.to_string(),
            t.team_id.to_string(),
            t.queue_id.to_string(),
            t.queue_kind.as_str(),
            t.status.as_str(),
            t.priority.as_str(),
            rank(t.priority),
            t.assignee_id.map(|x| x.to_string()),
            triage,
            sla,
            next_due,
            us(t.created_at),
            us(t.updated_at),
            clearance,
            review,
            review_due,
        ])
    })
    .map_err(db)?;
    Ok(())
}

// ---- events ----

pub fn event(row: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        id: id(row, "id")?,
        org_id: id(row, "org_id")?,
        seq: row.get("seq")?,
        at_us: row.get("at")?,
        kind: row.get("kind")?,
        actor_id: opt_id(row, "actor_id")?,
        member_id: opt_id(row, "member_id")?,
        ticket_id: opt_id(row, "ticket_id")?,
        thread_id: opt_id(row, "thread_id")?,
        team_id: opt_id(row, "team_id")?,
        payload: row.get("payload")?,
        prev_hash: row.get("prev_hash")?,
        hash: row.get("hash")?,
    })
}

// ---- clinicians' marks on triage judgements ----

/// Store a mark; the whole mark is sealed (its note speaks of the member).
pub fn insert_mark(c: &Connection, k: &Crypto, m: &JudgementMark) -> Result<()> {
    let sealed = k.seal(
        m.org_id,
        &to_json(m)?,
        &aad("judgement_mark", &m.id, "mark"),
    )?;
    c.prepare_cached(
        "INSERT INTO judgement_marks (id, org_id, ticket_id, message_id, member_id, by_user, mark, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            m.id.to_string(),
            m.org_id.to_string(),
            m.ticket_id.to_string(),
            m.message_id.to_string(),
            m.member_id.to_string(),
            m.by.to_string(),
            sealed,
            us(m.created_at),
        ])
    })
    .map_err(db)?;
    Ok(())
}

/// Read a mark, opening it.
pub fn mark(k: &Crypto) -> impl Fn(&Row<'_>) -> rusqlite::Result<JudgementMark> + '_ {
    move |row| {
        let id: MarkId = id(row, "id")?;
        let org: OrgId = id_col(row, "org_id")?;
        let sealed: String = row.get("mark")?;
        let raw = k
            .open(org, &sealed, &aad("judgement_mark", &id, "mark"))
            .map_err(sealed_err)?;
        serde_json::from_str(&raw).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
    }
}

/// A message by id, if it is `org`'s.
pub fn load_message(c: &Connection, k: &Crypto, org: OrgId, m: MessageId) -> Result<Message> {
    c.prepare_cached("SELECT * FROM messages WHERE id = $1")
        .and_then(|mut s| s.query_row([m.to_string()], message(k)).optional())
        .map_err(db)?
        .filter(|x| x.org_id == org)
        .ok_or(Error::NotFound("message"))
}
