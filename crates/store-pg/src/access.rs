//! Relationships that grant access beyond the care team: colleagues tagged
//! into a thread (time-limited, revocable, with a reason) and break-glass
//! grants (clinicians only, time-limited, alerting privacy officers and
//! queued for their review).

use crate::PgStore;
use crate::rows::{self, db, get, q, us};
use careline_core::authz::Principal;
use careline_core::event::{EventKind, NewEvent};
use careline_core::ids::*;
use careline_core::model::{Member, Role};
use careline_core::{Error, Result};
use careline_store::{BreakGlass, Collaborator};
use jiff::Timestamp;
use serde_json::json;
use sqlx_postgres::{PgConnection, PgRow};
use uuid::Uuid;

async fn thread_member(c: &mut PgConnection, p: &Principal, thread: ThreadId) -> Result<Member> {
    let t = rows::load_thread(c, thread).await?;
    let m = rows::load_member(c, t.member_id).await?;
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

fn privacy_only(p: &Principal) -> Result<()> {
    p.require(
        &[Role::PrivacyOfficer],
        "privacy-officers",
        "only privacy officers review break-glass access",
    )
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
        if !p.role.is_staff() {
            return Err(Error::forbidden(
                "staff-only",
                "only staff tag colleagues into a thread",
            ));
        }
        let reason = reason.trim().to_owned();
        if reason.is_empty() || reason.chars().count() > 1000 {
            return Err(Error::invalid("a tag needs a reason of 1–1000 characters"));
        }
        if expires_at <= now || expires_at.as_second() - now.as_second() > 30 * 86_400 {
            return Err(Error::invalid(
                "a tag must expire in the future and within 30 days",
            ));
        }
        let mut tx = self.begin_for(p.org_id).await?;
        let m = thread_member(tx.c(), p, thread).await?;
        p.member_access(m.org_id, m.id, m.team_id)?;
        let u = rows::load_user(tx.c(), user)
            .await?
            .filter(|u| u.org_id == p.org_id)
            .ok_or_else(|| {
                Error::invalid("user_id does not name a colleague in this organization")
            })?;
        if !u.role.works_queues() {
            return Err(Error::invalid(format!(
                "a {} cannot be tagged into a member's thread",
                u.role
            )));
        }
        let id = Uuid::now_v7();
        q("INSERT INTO collaborators (id, org_id, thread_id, member_id, user_id, granted_by, reason, expires_at, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(id)
            .bind(p.org_id.0)
            .bind(thread.0)
            .bind(m.id.0)
            .bind(u.id.0)
            .bind(p.user_id.0)
            .bind(reason.clone())
            .bind(us(expires_at))
            .bind(us(now))
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(
            p.org_id,
            now,
            vec![
                NewEvent::new(
                    EventKind::CollaboratorAdded,
                    json!({"collaborator_id": id, "user_id": u.id, "expires_at": expires_at}),
                )
                .actor(Some(p.user_id))
                .member(m.id)
                .thread(thread)
                .team(m.team_id),
            ],
        )
        .await?;
        tx.commit(&self.bus).await?;
        Ok(Collaborator {
            id,
            thread_id: thread,
            member_id: m.id,
            user_id: u.id,
            name: u.name,
            granted_by: p.user_id,
            reason,
            expires_at,
            revoked_at: None,
            created_at: now,
        })
    }

    pub(crate) async fn remove_collaborator_(
        &self,
        p: &Principal,
        thread: ThreadId,
        user: UserId,
        now: Timestamp,
    ) -> Result<()> {
        if !p.role.is_staff() {
            return Err(Error::forbidden(
                "staff-only",
                "only staff manage who is tagged into a thread",
            ));
        }
        let mut tx = self.begin_for(p.org_id).await?;
        let m = thread_member(tx.c(), p, thread).await?;
        // Whoever has access may revoke a tag; so may the tagged colleague themself.
        if p.user_id != user {
            p.member_access(m.org_id, m.id, m.team_id)?;
        }
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
        tx.append(
            p.org_id,
            now,
            vec![
                NewEvent::new(EventKind::CollaboratorRemoved, json!({"user_id": user}))
                    .actor(Some(p.user_id))
                    .member(m.id)
                    .thread(thread)
                    .team(m.team_id),
            ],
        )
        .await?;
        tx.commit(&self.bus).await
    }

    pub(crate) async fn collaborators_(
        &self,
        p: &Principal,
        thread: ThreadId,
    ) -> Result<Vec<Collaborator>> {
        let mut c = self.conn().await?;
        let m = thread_member(&mut c, p, thread).await?;
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
        if !p.role.is_clinical() {
            return Err(Error::forbidden(
                "clinician-only",
                "only nurses and physicians may break the glass",
            ));
        }
        let reason = reason.trim().to_owned();
        if reason.chars().count() < 10 || reason.chars().count() > 1000 {
            return Err(Error::invalid(
                "breaking the glass needs a reason of 10–1000 characters: privacy officers will review it",
            ));
        }
        if until <= now || until.as_second() - now.as_second() > 8 * 3600 {
            return Err(Error::invalid(
                "a break-glass grant lasts between a minute and 8 hours",
            ));
        }
        let mut tx = self.begin_for(p.org_id).await?;
        let m = rows::load_member(tx.c(), member).await?;
        if m.org_id != p.org_id {
            return Err(Error::NotFound("member"));
        }
        let id = Uuid::now_v7();
        q("INSERT INTO break_glass (id, org_id, member_id, user_id, reason, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id)
            .bind(p.org_id.0)
            .bind(member.0)
            .bind(p.user_id.0)
            .bind(reason.clone())
            .bind(us(until))
            .bind(us(now))
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(
            p.org_id,
            now,
            vec![
                NewEvent::new(
                    EventKind::BreakGlass,
                    json!({"break_glass_id": id, "user_id": p.user_id, "role": p.role, "expires_at": until}),
                )
                .actor(Some(p.user_id))
                .member(member),
            ],
        )
        .await?;
        tx.commit(&self.bus).await?;
        Ok(BreakGlass {
            id,
            member_id: member,
            user_id: p.user_id,
            user_name: p.name.clone(),
            reason,
            expires_at: until,
            created_at: now,
            reviewed_by: None,
            reviewed_at: None,
            review_note: None,
        })
    }

    pub(crate) async fn break_glass_reviews_(
        &self,
        p: &Principal,
        open_only: bool,
    ) -> Result<Vec<BreakGlass>> {
        privacy_only(p)?;
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
        privacy_only(p)?;
        let note = note.trim().to_owned();
        if note.is_empty() || note.chars().count() > 4000 {
            return Err(Error::invalid("a review needs a note of 1–4000 characters"));
        }
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
        let b = break_glass_row(&row)?;
        if b.reviewed_at.is_some() {
            return Err(Error::conflict(
                "already-reviewed",
                "this break-glass access was already reviewed",
            ));
        }
        q("UPDATE break_glass SET reviewed_by = $1, reviewed_at = $2, review_note = $3 WHERE id = $4")
            .bind(p.user_id.0)
            .bind(us(now))
            .bind(note.clone())
            .bind(id)
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(
            p.org_id,
            now,
            vec![
                NewEvent::new(EventKind::BreakGlassReviewed, json!({"break_glass_id": id}))
                    .actor(Some(p.user_id))
                    .member(b.member_id),
            ],
        )
        .await?;
        tx.commit(&self.bus).await?;
        Ok(BreakGlass {
            reviewed_by: Some(p.user_id),
            reviewed_at: Some(now),
            review_note: Some(note),
            ..b
        })
    }
}
