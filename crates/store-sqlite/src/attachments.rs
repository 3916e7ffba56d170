//! Attachments: their records, the scan queue (claimed with leases so each
//! file is scanned by one worker at a time), verdicts, and linking files to
//! the message they were sent with. File names are sealed like message
//! bodies; the bytes themselves are in the blob store, sealed there.

use crate::SqliteStore;
use crate::crypt::Crypto;
use crate::rows::{self, db, us};
use crate::writer::Tx;
use careline_core::attachment::{self, Attachment, AttachmentState};
use careline_core::authz::{Grant, Principal};
use careline_core::event::{EventKind, NewEvent};
use careline_core::ids::*;
use careline_core::ingest;
use careline_core::model::{Message, MessageKind, Role};
use careline_core::{Error, Result};
use careline_store::{NewAttachment, ScanOutcome};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;

fn name_aad(id: AttachmentId) -> String {
    format!("attachment:{id}:file_name")
}

fn row(r: &Row<'_>, k: &Crypto) -> Result<Attachment> {
    let get = |r: &Row<'_>| -> rusqlite::Result<(Attachment, String)> {
        let state: String = r.get("state")?;
        let removed: String = r.get("metadata_removed")?;
        Ok((
            Attachment {
                id: rows::id(r, "id")?,
                org_id: rows::id(r, "org_id")?,
                member_id: rows::id(r, "member_id")?,
                uploaded_by: rows::id(r, "uploaded_by")?,
                file_name: String::new(),
                content_type: r.get("content_type")?,
                size: u64::try_from(r.get::<_, i64>("size")?).unwrap_or(0),
                sha256: r.get("sha256")?,
                blob: r.get("blob")?,
                state: AttachmentState::parse(&state).unwrap_or(AttachmentState::Quarantined),
                detail: r.get("detail")?,
                scan_attempts: u32::try_from(r.get::<_, i64>("scan_attempts")?).unwrap_or(0),
                metadata_removed: serde_json::from_str(&removed).unwrap_or_default(),
                message_id: rows::opt_id(r, "message_id")?,
                thread_id: rows::opt_id(r, "thread_id")?,
                ticket_id: rows::opt_id(r, "ticket_id")?,
                created_at: rows::ts(r, "created_at")?,
                updated_at: rows::ts(r, "updated_at")?,
            },
            r.get("file_name")?,
        ))
    };
    let (mut a, sealed) = get(r).map_err(db)?;
    a.file_name = k.open(a.org_id, &sealed, &name_aad(a.id))?;
    Ok(a)
}

fn load(c: &Connection, k: &Crypto, id: AttachmentId) -> Result<Attachment> {
    let mut st = c
        .prepare_cached("SELECT * FROM attachments WHERE id = $1")
        .map_err(db)?;
    let mut rs = st.query([id.to_string()]).map_err(db)?;
    match rs.next().map_err(db)? {
        Some(r) => row(r, k),
        None => Err(Error::NotFound("attachment")),
    }
}

fn select(
    c: &Connection,
    k: &Crypto,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<Attachment>> {
    let mut st = c.prepare_cached(sql).map_err(db)?;
    let mut rs = st.query(args).map_err(db)?;
    let mut out = Vec::new();
    while let Some(r) = rs.next().map_err(db)? {
        out.push(row(r, k)?);
    }
    Ok(out)
}

/// The kind of message an attachment was sent with, if any.
fn message_kind(c: &Connection, m: Option<MessageId>) -> Result<Option<String>> {
    let Some(m) = m else { return Ok(None) };
    c.prepare_cached("SELECT kind FROM messages WHERE id = $1")
        .and_then(|mut s| s.query_row([m.to_string()], |r| r.get(0)).optional())
        .map_err(db)
}

/// Who may see an attachment: whoever reaches the member's thread; members
/// and proxies not those of internal notes or call notes, and their own
/// uploads before they are sent.
fn access(c: &Connection, p: &Principal, a: &Attachment) -> Result<Grant> {
    let m = rows::load_member(c, a.member_id).map_err(|_| Error::NotFound("attachment"))?;
    let grant = p
        .member_access(m.org_id, m.id, m.team_id)
        .map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound("attachment"),
            other => other,
        })?;
    attachment::check_visible(p, a, message_kind(c, a.message_id)?.as_deref())?;
    Ok(grant)
}

use attachment::event;

fn team_of(c: &Connection, member: MemberId) -> Result<TeamId> {
    Ok(rows::load_member(c, member)?.team_id)
}

pub async fn create(
    s: &SqliteStore,
    p: &Principal,
    n: NewAttachment,
    now: Timestamp,
) -> Result<Attachment> {
    let p = p.clone();
    s.write(move |tx| {
        let m = rows::load_member(tx.conn, n.member_id)?;
        p.member_access(m.org_id, m.id, m.team_id)?;
        let a = Attachment {
            id: AttachmentId::new(),
            org_id: m.org_id,
            member_id: m.id,
            uploaded_by: p.user_id,
            file_name: n.file_name,
            content_type: n.content_type,
            size: n.size,
            sha256: n.sha256,
            blob: n.blob,
            state: AttachmentState::Quarantined,
            detail: None,
            scan_attempts: 0,
            metadata_removed: n.metadata_removed,
            message_id: None,
            thread_id: None,
            ticket_id: None,
            created_at: now,
            updated_at: now,
        };
        let sealed = tx.crypto.seal(a.org_id, &a.file_name, &name_aad(a.id))?;
        tx.conn
            .prepare_cached(
                "INSERT INTO attachments (id, org_id, member_id, uploaded_by, file_name, content_type, size, sha256, blob, state,
                    metadata_removed, next_scan_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $12)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    a.id.to_string(),
                    a.org_id.to_string(),
                    a.member_id.to_string(),
                    a.uploaded_by.to_string(),
                    sealed,
                    a.content_type,
                    i64::try_from(a.size).unwrap_or(i64::MAX),
                    a.sha256,
                    a.blob,
                    a.state.as_str(),
                    serde_json::to_string(&a.metadata_removed).unwrap_or_else(|_| "[]".into()),
                    us(now),
                ])
            })
            .map_err(db)?;
        tx.append(
            a.org_id,
            now,
            vec![event(EventKind::AttachmentQuarantined, &a, None, json!({"sha256": a.sha256, "metadata_removed": a.metadata_removed}))
                .actor(Some(p.user_id))],
        )?;
        Ok(a)
    })
    .await
}

pub async fn get(s: &SqliteStore, p: &Principal, id: AttachmentId) -> Result<Attachment> {
    let p = p.clone();
    s.read(move |c, k| {
        let a = load(c, k, id)?;
        if a.org_id != p.org_id {
            return Err(Error::NotFound("attachment"));
        }
        access(c, &p, &a)?;
        Ok(a)
    })
    .await
}

pub async fn download(
    s: &SqliteStore,
    p: &Principal,
    id: AttachmentId,
    now: Timestamp,
) -> Result<Attachment> {
    let p = p.clone();
    s.write(move |tx| {
        let a = load(tx.conn, tx.crypto, id)?;
        if a.org_id != p.org_id {
            return Err(Error::NotFound("attachment"));
        }
        let grant = access(tx.conn, &p, &a)?;
        if !a.state.servable() {
            return Err(Error::Conflict {
                rule: "attachment-not-released",
                detail: match a.state {
                    AttachmentState::Infected => "this file was refused by the virus scanner and is never served".into(),
                    s => format!("this file is {} and is served only after a clean scan", s.as_str()),
                },
            });
        }
        if grant != Grant::Own {
            tx.append(
                a.org_id,
                now,
                vec![NewEvent::new(EventKind::PhiRead, json!({"resource": "attachment", "id": a.id, "grant": grant.as_str(), "role": p.role}))
                    .actor(Some(p.user_id))
                    .member(a.member_id)],
            )?;
        }
        Ok(a)
    })
    .await
}

pub async fn of_thread(
    s: &SqliteStore,
    p: &Principal,
    thread: ThreadId,
) -> Result<Vec<Attachment>> {
    let p = p.clone();
    s.read(move |c, k| {
        let all = select(
            c,
            k,
            "SELECT * FROM attachments WHERE thread_id = $1 ORDER BY created_at",
            [thread.to_string()],
        )?;
        Ok(all
            .into_iter()
            .filter(|a| a.org_id == p.org_id && access(c, &p, a).is_ok())
            .collect())
    })
    .await
}

/// Attaches the sender's uploads to a new message (inside its transaction).
pub fn link(
    tx: &Tx<'_>,
    p: &Principal,
    m: &Message,
    member: MemberId,
    team: TeamId,
    ids: &[AttachmentId],
    now: Timestamp,
) -> Result<()> {
    for id in ids {
        let mut a = load(tx.conn, tx.crypto, *id)
            .map_err(|_| Error::invalid(format!("attachment {id} does not exist")))?;
        if a.org_id != m.org_id || a.uploaded_by != p.user_id {
            return Err(Error::invalid(format!(
                "attachment {id} was not uploaded by you"
            )));
        }
        if a.member_id != member {
            return Err(Error::invalid(format!(
                "attachment {id} was uploaded for another member"
            )));
        }
        if a.message_id.is_some() {
            return Err(Error::invalid(format!(
                "attachment {id} is already attached to a message"
            )));
        }
        let n = tx
            .conn
            .prepare_cached("UPDATE attachments SET message_id = $1, thread_id = $2, ticket_id = $3, updated_at = $4 WHERE id = $5 AND message_id IS NULL")
            .and_then(|mut st| st.execute(params![m.id.to_string(), m.thread_id.to_string(), m.ticket_id.map(|t| t.to_string()), us(now), id.to_string()]))
            .map_err(db)?;
        if n == 0 {
            return Err(Error::invalid(format!(
                "attachment {id} is already attached to a message"
            )));
        }
        a.message_id = Some(m.id);
        a.thread_id = Some(m.thread_id);
        a.ticket_id = m.ticket_id;
        tx.append(
            a.org_id,
            now,
            vec![
                event(
                    EventKind::AttachmentAttached,
                    &a,
                    Some(team),
                    json!({"message_id": m.id}),
                )
                .actor(Some(p.user_id)),
            ],
        )?;
        if a.state == AttachmentState::Infected {
            refusal_notices(tx, &a, now)?;
        }
    }
    Ok(())
}

/// The member is told in their language; staff get an internal note.
fn refusal_notices(tx: &Tx<'_>, a: &Attachment, now: Timestamp) -> Result<()> {
    let (Some(thread), Some(ticket)) = (a.thread_id, a.ticket_id) else {
        return Ok(());
    };
    let member = rows::load_member(tx.conn, a.member_id)?;
    let signature = a.detail.clone().unwrap_or_else(|| "malware".into());
    let notices = [
        (
            MessageKind::System,
            "careline",
            attachment::refusal_notice(&member.language, &a.file_name),
        ),
        (
            MessageKind::InternalNote,
            "careline scanner",
            attachment::infected_note(&a.file_name, &signature),
        ),
    ];
    for (kind, author, text) in notices {
        let msg = Message {
            id: MessageId::new(),
            org_id: a.org_id,
            thread_id: thread,
            ticket_id: Some(ticket),
            kind,
            author_id: None,
            author_name: author.into(),
            text,
            triage: None,
            created_at: now,
            redaction: None,
        };
        rows::insert_message(tx.conn, tx.crypto, &msg)?;
        tx.append(
            a.org_id,
            now,
            vec![NewEvent::new(
                EventKind::MessageCreated,
                json!({"message_id": msg.id, "kind": msg.kind, "text_sha256": ingest::text_digest(&msg.text), "about_attachment": a.id}),
            )
            .member(a.member_id)
            .thread(thread)
            .ticket(ticket)
            .team(member.team_id)],
        )?;
    }
    Ok(())
}

pub async fn claim(
    s: &SqliteStore,
    now: Timestamp,
    lease: jiff::SignedDuration,
    limit: u32,
) -> Result<Vec<Attachment>> {
    let until = now.checked_add(lease).map_err(Error::internal)?;
    s.write(move |tx| {
        let due = select(
            tx.conn,
            tx.crypto,
            "SELECT * FROM attachments WHERE (state IN ('quarantined', 'failed') AND next_scan_at <= $1)
                OR (state = 'scanning' AND lease_until <= $1) ORDER BY next_scan_at LIMIT $2",
            params![us(now), i64::from(limit)],
        )?;
        let mut out = Vec::with_capacity(due.len());
        for mut a in due {
            a.state = AttachmentState::Scanning;
            a.scan_attempts += 1;
            a.updated_at = now;
            tx.conn
                .prepare_cached("UPDATE attachments SET state = 'scanning', scan_attempts = $1, lease_until = $2, updated_at = $3 WHERE id = $4")
                .and_then(|mut st| st.execute(params![i64::from(a.scan_attempts), us(until), us(now), a.id.to_string()]))
                .map_err(db)?;
            let team = team_of(tx.conn, a.member_id)?;
            tx.append(a.org_id, now, vec![event(EventKind::AttachmentScanning, &a, Some(team), json!({"attempt": a.scan_attempts}))])?;
            out.push(a);
        }
        Ok(out)
    })
    .await
}

pub async fn finish(
    s: &SqliteStore,
    id: AttachmentId,
    outcome: ScanOutcome,
    now: Timestamp,
) -> Result<Attachment> {
    s.write(move |tx| {
        let mut a = load(tx.conn, tx.crypto, id)?;
        let (to, detail, retry) = match &outcome {
            ScanOutcome::Clean => (AttachmentState::Clean, None, None),
            ScanOutcome::Infected { signature } => (AttachmentState::Infected, Some(signature.clone()), None),
            ScanOutcome::Failed { error, retry_at } => (AttachmentState::Failed, Some(error.clone()), Some(*retry_at)),
        };
        if !a.state.can_become(to) {
            return Err(Error::Conflict {
                rule: "attachment-state",
                detail: format!("attachment {id} is {}, not being scanned", a.state.as_str()),
            });
        }
        a.state = to;
        a.detail = detail;
        a.updated_at = now;
        tx.conn
            .prepare_cached("UPDATE attachments SET state = $1, detail = $2, next_scan_at = $3, lease_until = NULL, updated_at = $4 WHERE id = $5")
            .and_then(|mut st| st.execute(params![a.state.as_str(), a.detail, retry.map(us), us(now), a.id.to_string()]))
            .map_err(db)?;
        let team = team_of(tx.conn, a.member_id)?;
        let (kind, extra) = match &outcome {
            ScanOutcome::Clean => (EventKind::AttachmentClean, json!({})),
            ScanOutcome::Infected { signature } => (EventKind::AttachmentInfected, json!({"signature": signature})),
            ScanOutcome::Failed { error, retry_at } => (EventKind::AttachmentScanFailed, json!({"error": error, "retry_at": retry_at, "attempt": a.scan_attempts})),
        };
        tx.append(a.org_id, now, vec![event(kind, &a, Some(team), extra)])?;
        if to == AttachmentState::Infected {
            refusal_notices(tx, &a, now)?;
        }
        Ok(a)
    })
    .await
}

pub async fn export(
    s: &SqliteStore,
    p: &Principal,
    id: AttachmentId,
    reason: &str,
    now: Timestamp,
) -> Result<Attachment> {
    p.require(
        &[Role::PrivacyOfficer],
        "privacy-officers",
        "only privacy officers export quarantined files",
    )?;
    let reason = reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(Error::invalid(
            "an export needs a reason of 1–1000 characters",
        ));
    }
    let p = p.clone();
    s.write(move |tx| {
        let a = load(tx.conn, tx.crypto, id)?;
        if a.org_id != p.org_id {
            return Err(Error::NotFound("attachment"));
        }
        if a.state == AttachmentState::Clean {
            return Err(Error::Conflict {
                rule: "attachment-released",
                detail: "this file was released by a clean scan; it is downloaded through the thread, not exported".into(),
            });
        }
        tx.append(a.org_id, now, vec![event(EventKind::AttachmentExported, &a, None, json!({"reason": reason})).actor(Some(p.user_id))])?;
        Ok(a)
    })
    .await
}
