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
use careline_core::ids::*;
use careline_core::model::Message;
use careline_core::reads::{self, PhiRead};
use careline_core::{Error, Result};
use careline_store::{NewAttachment, ScanOutcome};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

fn name_aad(id: AttachmentId) -> String {
    format!("attachment:{id}:file_name")
}

fn row(r: &Row<'_>, k: &Crypto) -> Result<Attachment> {
    let get = |r: &Row<'_>| -> rusqlite::Result<(Attachment, String)> {
        let state: String = r.get("state")?;
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
                metadata_removed: rows::json(r, "metadata_removed")?,
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
fn access(c: &Connection, k: &Crypto, p: &Principal, a: &Attachment) -> Result<Grant> {
    let m = rows::load_member(c, k, a.member_id).map_err(|_| Error::NotFound("attachment"))?;
    attachment::access(p, &m, a, message_kind(c, a.message_id)?.as_deref())
}

fn team_of(c: &Connection, member: MemberId) -> Result<TeamId> {
    let team: Option<String> = c
        .prepare_cached("SELECT team_id FROM members WHERE id = $1")
        .and_then(|mut s| s.query_row([member.to_string()], |r| r.get(0)).optional())
        .map_err(db)?;
    team.ok_or(Error::NotFound("member"))?
        .parse()
        .map_err(|_| Error::internal("bad team id"))
}

pub async fn create(
    s: &SqliteStore,
    p: &Principal,
    files: Vec<NewAttachment>,
    now: Timestamp,
) -> Result<Vec<Attachment>> {
    let p = p.clone();
    s.write(move |tx| {
        let mut out = Vec::with_capacity(files.len());
        for n in files {
            let m = rows::load_member(tx.conn, tx.crypto, n.member_id)?;
            let (a, ev) = n.quarantine(&p, &m, now)?;
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
            tx.append(a.org_id, now, vec![ev])?;
            out.push(a);
        }
        Ok(out)
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
        access(c, k, &p, &a)?;
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
        let grant = access(tx.conn, tx.crypto, &p, &a)?;
        a.check_servable()?;
        for (org, events) in reads::recorded(&p, &[PhiRead::attachment(&a, grant)]) {
            tx.append(org, now, events)?;
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
            .filter(|a| a.org_id == p.org_id && access(c, k, &p, a).is_ok())
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
        a.check_link(m, p.user_id, member)?;
        let n = tx
            .conn
            .prepare_cached("UPDATE attachments SET message_id = $1, thread_id = $2, ticket_id = $3, updated_at = $4 WHERE id = $5 AND message_id IS NULL")
            .and_then(|mut st| st.execute(params![m.id.to_string(), m.thread_id.to_string(), m.ticket_id.map(|t| t.to_string()), us(now), id.to_string()]))
            .map_err(db)?;
        if n == 0 {
            return Err(attachment::already_attached(*id));
        }
        let ev = a.attach(m, team, p.user_id);
        tx.append(a.org_id, now, vec![ev])?;
        if a.state == AttachmentState::Infected {
            refusal_notices(tx, &a, now)?;
        }
    }
    Ok(())
}

/// The member is told in their language; staff get an internal note.
fn refusal_notices(tx: &Tx<'_>, a: &Attachment, now: Timestamp) -> Result<()> {
    let member = rows::load_member(tx.conn, tx.crypto, a.member_id)?;
    for (msg, ev) in attachment::refusal_notices(a, &member, now) {
        rows::insert_message(tx.conn, tx.crypto, &msg)?;
        tx.append(a.org_id, now, vec![ev])?;
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
            let team = team_of(tx.conn, a.member_id)?;
            let ev = a.start_scan(team, now);
            tx.conn
                .prepare_cached("UPDATE attachments SET state = 'scanning', scan_attempts = $1, lease_until = $2, updated_at = $3 WHERE id = $4")
                .and_then(|mut st| st.execute(params![i64::from(a.scan_attempts), us(until), us(now), a.id.to_string()]))
                .map_err(db)?;
            tx.append(a.org_id, now, vec![ev])?;
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
        let team = team_of(tx.conn, a.member_id)?;
        let ev = outcome.apply(&mut a, team, now)?;
        tx.conn
            .prepare_cached("UPDATE attachments SET state = $1, detail = $2, next_scan_at = $3, lease_until = NULL, updated_at = $4 WHERE id = $5")
            .and_then(|mut st| st.execute(params![a.state.as_str(), a.detail, outcome.retry_at().map(us), us(now), a.id.to_string()]))
            .map_err(db)?;
        tx.append(a.org_id, now, vec![ev])?;
        if a.state == AttachmentState::Infected {
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
    let reason = attachment::export_reason(p, reason)?;
    let p = p.clone();
    s.write(move |tx| {
        let a = load(tx.conn, tx.crypto, id)?;
        if a.org_id != p.org_id {
            return Err(Error::NotFound("attachment"));
        }
        let ev = a.export(p.user_id, &reason)?;
        tx.append(a.org_id, now, vec![ev])?;
        Ok(a)
    })
    .await
}
