//! Relationships that grant access beyond the care team: colleagues tagged
//! into a thread (time-limited, revocable, with a reason) and break-glass
//! grants (clinicians only, time-limited, alerting privacy officers and
//! queued for their review).

use crate::PgStore;
use crate::crypt::Crypto;
use crate::rows::{self, db, get, q, us};
use careline_core::authz::Principal;
use careline_core::ids::*;
use careline_core::model::Member;
use careline_core::privacy::{self, Ask};
use careline_core::{Error, Result};
use careline_store::{BreakGlass, Collaborator};
use jiff::Timestamp;
use sqlx_postgres::{PgConnection, PgRow};
use uuid::Uuid;

async fn thread_member(
    c: &mut PgConnection,
    k: &Crypto,
    p: &Principal,
    thread: ThreadId,
) -> Result<Member> {
    let t = rows::load_thread(c, thread).await?;
    let m = rows::load_member(c, k, t.member_id).await?;
    if m.org_id != p.org_id {
        return Err(Error::NotFound("thread"));
    }
    Ok(m)
}

fn collaborator(r: &PgRow) -> Result<Collaborator> {
    Ok(Collaborator {
        id: rows::uuid(r, "id")?,
        thread_id: ThreadId(rows::uuid(r, "thread_id")?),
        member_id: MemberId(rows::uuid(r, "member_id")?),
        user_id: UserId(rows::uuid(r, "user_id")?),
        name: get(r, "name")?,
        granted_by: UserId(rows::uuid(r, "granted_by")?),
        reason: get(r, "reason")?,
        expires_at: rows::ts(r, "expires_at")?,
        revoked_at: rows::opt_ts(r, "revoked_at")?,
        created_at: rows::ts(r, "created_at")?,
    })
}

fn break_glass_row(r: &PgRow) -> Result<BreakGlass> {
    Ok(BreakGlass {
        id: rows::uuid(r, "id")?,
        member_id: MemberId(rows::uuid(r, "member_id")?),
        user_id: UserId(rows::uuid(r, "user_id")?),
        user_name: get(r, "user_name")?,
        reason: get(r, "reason")?,
        expires_at: rows::ts(r, "expires_at")?,
        created_at: rows::ts(r, "created_at")?,
        reviewed_by: rows::opt_uuid(r, "reviewed_by")?.map(UserId),
        reviewed_at: rows::opt_ts(r, "reviewed_at")?,
        review_note: get(r, "review_note")?,
    })
}

impl PgStore {
    pub(crate) async fn add_collaborator_(
        &self,
        p: &Principal,
        thread: ThreadId,
        user: UserId,
        reason: String,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Collaborator> {
        let reason = privacy::check_ask(p, Ask::Tag, &reason, expires_at, now)?;
        let mut tx = self.begin_for(p.org_id).await?;
        let m = thread_member(tx.c(), &self.crypto, p, thread).await?;
        let colleague = rows::load_user(tx.c(), user).await?;
        let (c, ev) =
            Collaborator::tag(p, &m, thread, colleague.as_ref(), reason, expires_at, now)?;
        q("INSERT INTO collaborators (id, org_id, thread_id, member_id, user_id, granted_by, reason, expires_at, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(c.id)
            .bind(p.org_id.0)
            .bind(thread.0)
            .bind(m.id.0)
            .bind(c.user_id.0)
            .bind(p.user_id.0)
            .bind(c.reason.clone())
            .bind(us(expires_at))
            .bind(us(now))
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(p.org_id, now, vec![ev]).await?;
        tx.commit(&self.bus).await?;
        Ok(c)
    }

    pub(crate) async fn remove_collaborator_(
        &self,
        p: &Principal,
        thread: ThreadId,
        user: UserId,
        now: Timestamp,
    ) -> Result<()> {
        privacy::untag_request(p)?;
        let mut tx = self.begin_for(p.org_id).await?;
        let m = thread_member(tx.c(), &self.crypto, p, thread).await?;
        privacy::may_untag(p, &m, user)?;
        let n = q("UPDATE collaborators SET revoked_at = $1, revoked_by = $2
                   WHERE thread_id = $3 AND user_id = $4 AND revoked_at IS NULL AND expires_at > $1")
            .bind(us(now))
            .bind(p.user_id.0)
            .bind(thread.0)
            .bind(user.0)
            .execute(tx.c())
            .await
            .map_err(db)?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound("collaborator"));
        }
        tx.append(p.org_id, now, vec![privacy::untagged(p, &m, thread, user)])
            .await?;
        tx.commit(&self.bus).await
    }

    pub(crate) async fn collaborators_(
        &self,
        p: &Principal,
        thread: ThreadId,
    ) -> Result<Vec<Collaborator>> {
        let mut c = self.conn().await?;
        let m = thread_member(&mut c, &self.crypto, p, thread).await?;
        p.member_access(m.org_id, m.id, m.team_id)?;
        let found = q(
            "SELECT c.*, u.name AS name FROM collaborators c JOIN users u ON u.id = c.user_id
                       WHERE c.thread_id = $1 ORDER BY c.created_at",
        )
        .bind(thread.0)
        .fetch_all(&mut *c)
        .await
        .map_err(db)?;
        found.iter().map(collaborator).collect()
    }

    pub(crate) async fn break_glass_(
        &self,
        p: &Principal,
        member: MemberId,
        reason: String,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<BreakGlass> {
        let reason = privacy::check_ask(p, Ask::BreakGlass, &reason, until, now)?;
        let mut tx = self.begin_for(p.org_id).await?;
        let m = rows::load_member(tx.c(), &self.crypto, member).await?;
        let (b, ev) = BreakGlass::open(p, &m, reason, until, now)?;
        q("INSERT INTO break_glass (id, org_id, member_id, user_id, reason, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(b.id)
            .bind(p.org_id.0)
            .bind(member.0)
            .bind(p.user_id.0)
            .bind(b.reason.clone())
            .bind(us(until))
            .bind(us(now))
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(p.org_id, now, vec![ev]).await?;
        tx.commit(&self.bus).await?;
        Ok(b)
    }

    pub(crate) async fn break_glass_reviews_(
        &self,
        p: &Principal,
        open_only: bool,
    ) -> Result<Vec<BreakGlass>> {
        privacy::reviewer(p)?;
        let found = q(
            "SELECT b.*, u.name AS user_name FROM break_glass b JOIN users u ON u.id = b.user_id
                       WHERE b.org_id = $1 AND (NOT $2 OR b.reviewed_at IS NULL)
                       ORDER BY b.created_at DESC LIMIT 1000",
        )
        .bind(p.org_id.0)
        .bind(open_only)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        found.iter().map(break_glass_row).collect()
    }

    pub(crate) async fn review_break_glass_(
        &self,
        p: &Principal,
        id: Uuid,
        note: String,
        now: Timestamp,
    ) -> Result<BreakGlass> {
        let note = privacy::review_request(p, &note)?;
        let mut tx = self.begin_for(p.org_id).await?;
        let row = q(
            "SELECT b.*, u.name AS user_name FROM break_glass b JOIN users u ON u.id = b.user_id
                     WHERE b.id = $1 AND b.org_id = $2",
        )
        .bind(id)
        .bind(p.org_id.0)
        .fetch_optional(tx.c())
        .await
        .map_err(db)?
        .ok_or(Error::NotFound("break-glass grant"))?;
        let (b, ev) = break_glass_row(&row)?.review(p, note, now)?;
        q("UPDATE break_glass SET reviewed_by = $1, reviewed_at = $2, review_note = $3 WHERE id = $4")
            .bind(p.user_id.0)
            .bind(us(now))
            .bind(b.review_note.clone())
            .bind(id)
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(p.org_id, now, vec![ev]).await?;
        tx.commit(&self.bus).await?;
        Ok(b)
    }
}
