//! Relationships that grant access beyond the care team: colleagues tagged
//! into a thread (time-limited, revocable, with a reason) and break-glass
//! grants (clinicians only, time-limited, alerting privacy officers and
//! queued for their review).

use crate::SqliteStore;
use crate::crypt::Crypto;
use crate::rows::{self, db, us};
use careline_core::authz::Principal;
use careline_core::ids::*;
use careline_core::privacy::{self, Ask};
use careline_core::{Error, Result};
use careline_store::{BreakGlass, Collaborator};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

fn thread_member(
    c: &Connection,
    k: &Crypto,
    p: &Principal,
    thread: ThreadId,
) -> Result<careline_core::model::Member> {
    let member: Option<String> = c
        .prepare_cached("SELECT member_id FROM threads WHERE id = $1")
        .and_then(|mut s| s.query_row([thread.to_string()], |r| r.get(0)).optional())
        .map_err(db)?;
    let member: MemberId = member
        .ok_or(Error::NotFound("thread"))?
        .parse()
        .map_err(|_| Error::internal("bad member id"))?;
    let m = rows::load_member(c, k, member)?;
    if m.org_id != p.org_id {
        return Err(Error::NotFound("thread"));
    }
    Ok(m)
}

fn collaborator(r: &Row<'_>) -> rusqlite::Result<Collaborator> {
    Ok(Collaborator {
        id: rows::id(r, "id")?,
        thread_id: rows::id(r, "thread_id")?,
        member_id: rows::id(r, "member_id")?,
        user_id: rows::id(r, "user_id")?,
        name: r.get("name")?,
        granted_by: rows::id(r, "granted_by")?,
        reason: r.get("reason")?,
        expires_at: rows::ts(r, "expires_at")?,
        revoked_at: rows::opt_ts(r, "revoked_at")?,
        created_at: rows::ts(r, "created_at")?,
    })
}

pub async fn add_collaborator(
    s: &SqliteStore,
    p: &Principal,
    thread: ThreadId,
    user: UserId,
    reason: String,
    expires_at: Timestamp,
    now: Timestamp,
) -> Result<Collaborator> {
    let reason = privacy::check_ask(p, Ask::Tag, &reason, expires_at, now)?;
    let p = p.clone();
    s.write(move |tx| {
        let m = thread_member(tx.conn, tx.crypto, &p, thread)?;
        let colleague = rows::load_user(tx.conn, user)?;
        let (c, ev) = Collaborator::tag(&p, &m, thread, colleague.as_ref(), reason, expires_at, now)?;
        tx.conn
            .prepare_cached(
                "INSERT INTO collaborators (id, org_id, thread_id, member_id, user_id, granted_by, reason, expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .and_then(|mut st| {
                st.execute(params![c.id.to_string(), p.org_id.to_string(), thread.to_string(), m.id.to_string(), c.user_id.to_string(), p.user_id.to_string(), c.reason, us(expires_at), us(now)])
            })
            .map_err(db)?;
        tx.append(p.org_id, now, vec![ev])?;
        Ok(c)
    })
    .await
}

pub async fn remove_collaborator(
    s: &SqliteStore,
    p: &Principal,
    thread: ThreadId,
    user: UserId,
    now: Timestamp,
) -> Result<()> {
    privacy::untag_request(p)?;
    let p = p.clone();
    s.write(move |tx| {
        let m = thread_member(tx.conn, tx.crypto, &p, thread)?;
        privacy::may_untag(&p, &m, user)?;
        let n = tx
            .conn
            .prepare_cached("UPDATE collaborators SET revoked_at = $1, revoked_by = $2 WHERE thread_id = $3 AND user_id = $4 AND revoked_at IS NULL AND expires_at > $1")
            .and_then(|mut st| st.execute(params![us(now), p.user_id.to_string(), thread.to_string(), user.to_string()]))
            .map_err(db)?;
        if n == 0 {
            return Err(Error::NotFound("collaborator"));
        }
        tx.append(p.org_id, now, vec![privacy::untagged(&p, &m, thread, user)])
    })
    .await
}

pub async fn collaborators(
    s: &SqliteStore,
    p: &Principal,
    thread: ThreadId,
) -> Result<Vec<Collaborator>> {
    let p = p.clone();
    s.read(move |c, k| {
        let m = thread_member(c, k, &p, thread)?;
        p.member_access(m.org_id, m.id, m.team_id)?;
        let mut st = c
            .prepare_cached("SELECT c.*, u.name AS name FROM collaborators c JOIN users u ON u.id = c.user_id WHERE c.thread_id = $1 ORDER BY c.created_at")
            .map_err(db)?;
        st.query_map([thread.to_string()], collaborator).and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>()).map_err(db)
    })
    .await
}

fn break_glass_row(r: &Row<'_>) -> rusqlite::Result<BreakGlass> {
    Ok(BreakGlass {
        id: rows::id(r, "id")?,
        member_id: rows::id(r, "member_id")?,
        user_id: rows::id(r, "user_id")?,
        user_name: r.get("user_name")?,
        reason: r.get("reason")?,
        expires_at: rows::ts(r, "expires_at")?,
        created_at: rows::ts(r, "created_at")?,
        reviewed_by: rows::opt_id(r, "reviewed_by")?,
        reviewed_at: rows::opt_ts(r, "reviewed_at")?,
        review_note: r.get("review_note")?,
    })
}

const SELECT_BG: &str =
    "SELECT b.*, u.name AS user_name FROM break_glass b JOIN users u ON u.id = b.user_id";

pub async fn break_glass(
    s: &SqliteStore,
    p: &Principal,
    member: MemberId,
    reason: String,
    until: Timestamp,
    now: Timestamp,
) -> Result<BreakGlass> {
    let reason = privacy::check_ask(p, Ask::BreakGlass, &reason, until, now)?;
    let p = p.clone();
    s.write(move |tx| {
        let m = rows::load_member(tx.conn, tx.crypto, member)?;
        let (b, ev) = BreakGlass::open(&p, &m, reason, until, now)?;
        tx.conn
            .prepare_cached("INSERT INTO break_glass (id, org_id, member_id, user_id, reason, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .and_then(|mut st| st.execute(params![b.id.to_string(), p.org_id.to_string(), member.to_string(), p.user_id.to_string(), b.reason, us(until), us(now)]))
            .map_err(db)?;
        tx.append(p.org_id, now, vec![ev])?;
        Ok(b)
    })
    .await
}

pub async fn break_glass_reviews(
    s: &SqliteStore,
    p: &Principal,
    open_only: bool,
) -> Result<Vec<BreakGlass>> {
    privacy::reviewer(p)?;
    let org = p.org_id;
    s.read(move |c, _| {
        let mut st = c
            .prepare_cached(&format!("{SELECT_BG} WHERE b.org_id = $1 AND ($2 = 0 OR b.reviewed_at IS NULL) ORDER BY b.created_at DESC LIMIT 1000"))
            .map_err(db)?;
        st.query_map(params![org.to_string(), i64::from(open_only)], break_glass_row)
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)
    })
    .await
}

pub async fn review_break_glass(
    s: &SqliteStore,
    p: &Principal,
    id: uuid::Uuid,
    note: String,
    now: Timestamp,
) -> Result<BreakGlass> {
    let note = privacy::review_request(p, &note)?;
    let p = p.clone();
    s.write(move |tx| {
        let b = tx
            .conn
            .prepare_cached(&format!("{SELECT_BG} WHERE b.id = $1 AND b.org_id = $2"))
            .and_then(|mut st| st.query_row([id.to_string(), p.org_id.to_string()], break_glass_row).optional())
            .map_err(db)?
            .ok_or(Error::NotFound("break-glass grant"))?;
        let (b, ev) = b.review(&p, note, now)?;
        tx.conn
            .prepare_cached("UPDATE break_glass SET reviewed_by = $1, reviewed_at = $2, review_note = $3 WHERE id = $4")
            .and_then(|mut st| st.execute(params![p.user_id.to_string(), us(now), b.review_note, id.to_string()]))
            .map_err(db)?;
        tx.append(p.org_id, now, vec![ev])?;
        Ok(b)
    })
    .await
}
