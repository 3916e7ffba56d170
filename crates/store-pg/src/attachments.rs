//! Attachments: their records, the scan queue, verdicts, and linking files
//! to the message they were sent with. File names are sealed like message
//! bodies (same associated data as the embedded store); the bytes are in
//! the blob store, sealed there.
//!
//! The scan queue is shared by every node: due files are re-selected under
//! their organization's chain lock with `FOR UPDATE SKIP LOCKED` and leased
//! in that transaction, so no two workers scan one file at once.

use crate::crypt::{Crypto, aad};
use crate::rows::{self, db, get, q, us};
use crate::tx::Tx;
use crate::{PgStore, by_org};
use careline_core::attachment::{self, Attachment, AttachmentState};
use careline_core::authz::{Grant, Principal};
use careline_core::ids::*;
use careline_core::model::Message;
use careline_core::reads::{self, PhiRead};
use careline_core::{Error, Result};
use careline_store::{NewAttachment, ScanOutcome};
use jiff::Timestamp;
use sqlx_postgres::{PgConnection, PgRow};
use uuid::Uuid;

async fn row(c: &mut PgConnection, s: &PgStore, r: &PgRow) -> Result<Attachment> {
    let state: String = get(r, "state")?;
    let id = AttachmentId(rows::uuid(r, "id")?);
    let org = OrgId(rows::uuid(r, "org_id")?);
    let sealed: String = get(r, "file_name")?;
    let file_name = s
        .crypto
        .open(c, org, &sealed, &aad("attachment", &id, "file_name"))
        .await?;
    Ok(Attachment {
        id,
        org_id: org,
        member_id: MemberId(rows::uuid(r, "member_id")?),
        uploaded_by: UserId(rows::uuid(r, "uploaded_by")?),
        file_name,
        content_type: get(r, "content_type")?,
        size: u64::try_from(get::<i64>(r, "size")?).unwrap_or(0),
        sha256: get(r, "sha256")?,
        blob: get(r, "blob")?,
        state: AttachmentState::parse(&state).unwrap_or(AttachmentState::Quarantined),
        detail: get(r, "detail")?,
        scan_attempts: u32::try_from(get::<i64>(r, "scan_attempts")?).unwrap_or(0),
        metadata_removed: rows::json(r, "metadata_removed")?,
        message_id: rows::opt_uuid(r, "message_id")?.map(MessageId),
        thread_id: rows::opt_uuid(r, "thread_id")?.map(ThreadId),
        ticket_id: rows::opt_uuid(r, "ticket_id")?.map(TicketId),
        created_at: rows::ts(r, "created_at")?,
        updated_at: rows::ts(r, "updated_at")?,
    })
}

async fn load(c: &mut PgConnection, s: &PgStore, id: AttachmentId) -> Result<Attachment> {
    let r = q("SELECT * FROM attachments WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?
        .ok_or(Error::NotFound("attachment"))?;
    row(c, s, &r).await
}

/// Who may see an attachment: whoever reaches the member's thread; members
/// and proxies not those of internal notes or call notes, and their own
/// uploads before they are sent.
async fn access(c: &mut PgConnection, k: &Crypto, p: &Principal, a: &Attachment) -> Result<Grant> {
    let m = rows::load_member(c, k, a.member_id)
        .await
        .map_err(|_| Error::NotFound("attachment"))?;
    let kind: Option<(String,)> = match a.message_id {
        Some(mid) => sqlx_core::query_as::query_as("SELECT kind FROM messages WHERE id = $1")
            .bind(mid.0)
            .fetch_optional(&mut *c)
            .await
            .map_err(db)?,
        None => None,
    };
    attachment::access(p, &m, a, kind.as_ref().map(|(k,)| k.as_str()))
}

async fn team_of(c: &mut PgConnection, member: MemberId) -> Result<TeamId> {
    let team: Option<(Uuid,)> =
        sqlx_core::query_as::query_as("SELECT team_id FROM members WHERE id = $1")
            .bind(member.0)
            .fetch_optional(&mut *c)
            .await
            .map_err(db)?;
    team.map(|(t,)| TeamId(t)).ok_or(Error::NotFound("member"))
}

/// Attaches the sender's uploads to a new message (inside its transaction).
#[allow(clippy::too_many_arguments)]
pub async fn link(
    s: &PgStore,
    tx: &mut Tx,
    p: &Principal,
    m: &Message,
    member: MemberId,
    team: TeamId,
    ids: &[AttachmentId],
    now: Timestamp,
) -> Result<()> {
    for id in ids {
        let mut a = load(tx.c(), s, *id)
            .await
            .map_err(|_| Error::invalid(format!("attachment {id} does not exist")))?;
        a.check_link(m, p.user_id, member)?;
        let n = q("UPDATE attachments SET message_id = $1, thread_id = $2, ticket_id = $3, updated_at = $4 WHERE id = $5 AND message_id IS NULL")
            .bind(m.id.0)
            .bind(m.thread_id.0)
            .bind(m.ticket_id.map(|t| t.0))
            .bind(us(now))
            .bind(id.0)
            .execute(tx.c())
            .await
            .map_err(db)?
            .rows_affected();
        if n == 0 {
            return Err(attachment::already_attached(*id));
        }
        let ev = a.attach(m, team, p.user_id);
        tx.append(a.org_id, now, vec![ev]).await?;
        if a.state == AttachmentState::Infected {
            refusal_notices(s, tx, &a, now).await?;
        }
    }
    Ok(())
}

/// The member is told in their language; staff get an internal note.
async fn refusal_notices(s: &PgStore, tx: &mut Tx, a: &Attachment, now: Timestamp) -> Result<()> {
    let member = rows::load_member(tx.c(), &s.crypto, a.member_id).await?;
    for (msg, ev) in attachment::refusal_notices(a, &member, now) {
        rows::insert_message(tx.c(), &s.crypto, &msg).await?;
        tx.append(a.org_id, now, vec![ev]).await?;
    }
    Ok(())
}

impl PgStore {
    pub(crate) async fn create_attachments_(
        &self,
        p: &Principal,
        files: Vec<NewAttachment>,
        now: Timestamp,
    ) -> Result<Vec<Attachment>> {
        let mut tx = self.begin_for(p.org_id).await?;
        let mut out = Vec::with_capacity(files.len());
        for n in files {
            let m = rows::load_member(tx.c(), &self.crypto, n.member_id).await?;
            let (a, ev) = n.quarantine(p, &m, now)?;
            let sealed = self
                .crypto
                .seal(
                    tx.c(),
                    a.org_id,
                    &a.file_name,
                    &aad("attachment", &a.id, "file_name"),
                )
                .await?;
            q("INSERT INTO attachments (id, org_id, member_id, uploaded_by, file_name, content_type, size, sha256, blob, state,
                  metadata_removed, next_scan_at, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $12)")
                .bind(a.id.0)
                .bind(a.org_id.0)
                .bind(a.member_id.0)
                .bind(a.uploaded_by.0)
                .bind(sealed)
                .bind(a.content_type.clone())
                .bind(i64::try_from(a.size).unwrap_or(i64::MAX))
                .bind(a.sha256.clone())
                .bind(a.blob.clone())
                .bind(a.state.as_str())
                .bind(rows::to_json(&a.metadata_removed)?)
                .bind(us(now))
                .execute(tx.c())
                .await
                .map_err(db)?;
            tx.append(a.org_id, now, vec![ev]).await?;
            out.push(a);
        }
        tx.commit(&self.bus).await?;
        Ok(out)
    }

    pub(crate) async fn attachment_(&self, p: &Principal, id: AttachmentId) -> Result<Attachment> {
        let mut c = self.conn().await?;
        let a = load(&mut c, self, id).await?;
        if a.org_id != p.org_id {
            return Err(Error::NotFound("attachment"));
        }
        access(&mut c, &self.crypto, p, &a).await?;
        Ok(a)
    }

    pub(crate) async fn download_attachment_(
        &self,
        p: &Principal,
        id: AttachmentId,
        now: Timestamp,
    ) -> Result<Attachment> {
        let mut tx = self.begin_for(p.org_id).await?;
        let a = load(tx.c(), self, id).await?;
        if a.org_id != p.org_id {
            return Err(Error::NotFound("attachment"));
        }
        let grant = access(tx.c(), &self.crypto, p, &a).await?;
        a.check_servable()?;
        for (org, events) in reads::recorded(p, &[PhiRead::attachment(&a, grant)]) {
            tx.append(org, now, events).await?;
        }
        tx.commit(&self.bus).await?;
        Ok(a)
    }

    pub(crate) async fn thread_attachments_(
        &self,
        p: &Principal,
        thread: ThreadId,
    ) -> Result<Vec<Attachment>> {
        let mut c = self.conn().await?;
        let found = q("SELECT * FROM attachments WHERE thread_id = $1 AND org_id = $2 ORDER BY created_at, id")
            .bind(thread.0)
            .bind(p.org_id.0)
            .fetch_all(&mut *c)
            .await
            .map_err(db)?;
        let mut out = Vec::with_capacity(found.len());
        for r in &found {
            let a = row(&mut c, self, r).await?;
            if access(&mut c, &self.crypto, p, &a).await.is_ok() {
                out.push(a);
            }
        }
        Ok(out)
    }

    pub(crate) async fn claim_scans_(
        &self,
        now: Timestamp,
        lease: jiff::SignedDuration,
        limit: u32,
    ) -> Result<Vec<Attachment>> {
        let until = now.checked_add(lease).map_err(Error::internal)?;
        let due: Vec<(Uuid, Uuid)> = sqlx_core::query_as::query_as(
            "SELECT id, org_id FROM attachments
             WHERE (state IN ('quarantined', 'failed') AND next_scan_at <= $1) OR (state = 'scanning' AND lease_until <= $1)
             ORDER BY next_scan_at LIMIT $2",
        )
        .bind(us(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut out = Vec::new();
        for (org, ids) in by_org(due) {
            let mut tx = self.begin_for(org).await?;
            // Re-checked under the lock: a file another worker claimed since is no longer due.
            let found = q("SELECT * FROM attachments WHERE id = ANY($1)
                             AND ((state IN ('quarantined', 'failed') AND next_scan_at <= $2) OR (state = 'scanning' AND lease_until <= $2))
                           ORDER BY next_scan_at FOR UPDATE SKIP LOCKED")
                .bind(ids)
                .bind(us(now))
                .fetch_all(tx.c())
                .await
                .map_err(db)?;
            for r in &found {
                let mut a = row(tx.c(), self, r).await?;
                let team = team_of(tx.c(), a.member_id).await?;
                let ev = a.start_scan(team, now);
                q("UPDATE attachments SET state = 'scanning', scan_attempts = $1, lease_until = $2, updated_at = $3 WHERE id = $4")
                    .bind(i64::from(a.scan_attempts))
                    .bind(us(until))
                    .bind(us(now))
                    .bind(a.id.0)
                    .execute(tx.c())
                    .await
                    .map_err(db)?;
                tx.append(a.org_id, now, vec![ev]).await?;
                out.push(a);
            }
            tx.commit(&self.bus).await?;
        }
        Ok(out)
    }

    pub(crate) async fn finish_scan_(
        &self,
        id: AttachmentId,
        outcome: ScanOutcome,
        now: Timestamp,
    ) -> Result<Attachment> {
        let org: Option<(Uuid,)> =
            sqlx_core::query_as::query_as("SELECT org_id FROM attachments WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        let (org,) = org.ok_or(Error::NotFound("attachment"))?;
        let mut tx = self.begin_for(OrgId(org)).await?;
        let mut a = load(tx.c(), self, id).await?;
        let team = team_of(tx.c(), a.member_id).await?;
        let ev = outcome.apply(&mut a, team, now)?;
        q("UPDATE attachments SET state = $1, detail = $2, next_scan_at = $3, lease_until = NULL, updated_at = $4 WHERE id = $5")
            .bind(a.state.as_str())
            .bind(a.detail.clone())
            .bind(outcome.retry_at().map(us))
            .bind(us(now))
            .bind(a.id.0)
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(a.org_id, now, vec![ev]).await?;
        if a.state == AttachmentState::Infected {
            refusal_notices(self, &mut tx, &a, now).await?;
        }
        tx.commit(&self.bus).await?;
        Ok(a)
    }

    pub(crate) async fn export_attachment_(
        &self,
        p: &Principal,
        id: AttachmentId,
        reason: &str,
        now: Timestamp,
    ) -> Result<Attachment> {
        let reason = attachment::export_reason(p, reason)?;
        let mut tx = self.begin_for(p.org_id).await?;
        let a = load(tx.c(), self, id).await?;
        if a.org_id != p.org_id {
            return Err(Error::NotFound("attachment"));
        }
        let ev = a.export(p.user_id, &reason)?;
        tx.append(a.org_id, now, vec![ev]).await?;
        tx.commit(&self.bus).await?;
        Ok(a)
    }
}
