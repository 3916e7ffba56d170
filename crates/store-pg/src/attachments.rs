//! Attachments: their records, the scan queue, verdicts, and linking files
//! to the message they were sent with. File names are sealed like message
//! bodies (same associated data as the embedded store); the bytes are in
//! the blob store, sealed there.
//!
//! The scan queue is shared by every node: due files are re-selected under
//! their organization's chain lock with `FOR UPDATE SKIP LOCKED` and leased
//! in that transaction, so no two workers scan one file at once.

use crate::PgStore;
use crate::crypt::aad;
use crate::rows::{self, db, get, q, us};
use crate::tx::Tx;
use careline_core::attachment::{self, Attachment, AttachmentState};
use careline_core::authz::{Grant, Principal};
use careline_core::event::{EventKind, NewEvent};
use careline_core::ids::*;
use careline_core::ingest;
use careline_core::model::{Message, MessageKind, Role};
use careline_core::{Error, Result};
use careline_store::{NewAttachment, ScanOutcome};
use jiff::Timestamp;
use serde_json::json;
use sqlx_postgres::{PgConnection, PgRow};
use uuid::Uuid;

async fn row(c: &mut PgConnection, s: &PgStore, r: &PgRow) -> Result<Attachment> {
    let state: String = get(r, "state")?;
    let removed: String = get(r, "metadata_removed")?;
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
        metadata_removed: serde_json::from_str(&removed).unwrap_or_default(),
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
async fn access(c: &mut PgConnection, p: &Principal, a: &Attachment) -> Result<Grant> {
    let m = rows::load_member(c, a.member_id)
        .await
        .map_err(|_| Error::NotFound("attachment"))?;
    let grant = p
        .member_access(m.org_id, m.id, m.team_id)
        .map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound("attachment"),
            other => other,
        })?;
    let kind: Option<(String,)> = match a.message_id {
        Some(mid) => sqlx_core::query_as::query_as("SELECT kind FROM messages WHERE id = $1")
            .bind(mid.0)
            .fetch_optional(&mut *c)
            .await
            .map_err(db)?,
        None => None,
    };
    careline_core::attachment::check_visible(p, a, kind.as_ref().map(|(k,)| k.as_str()))?;
    Ok(grant)
}

use careline_core::attachment::event;

async fn team_of(c: &mut PgConnection, member: MemberId) -> Result<TeamId> {
    Ok(rows::load_member(c, member).await?.team_id)
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
        if a.message_id.is_some() || n == 0 {
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
        )
        .await?;
        if a.state == AttachmentState::Infected {
            refusal_notices(s, tx, &a, now).await?;
        }
    }
    Ok(())
}

/// The member is told in their language; staff get an internal note.
async fn refusal_notices(s: &PgStore, tx: &mut Tx, a: &Attachment, now: Timestamp) -> Result<()> {
    let (Some(thread), Some(ticket)) = (a.thread_id, a.ticket_id) else {
        return Ok(());
    };
    let member = rows::load_member(tx.c(), a.member_id).await?;
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
        rows::insert_message(tx.c(), &s.crypto, &msg).await?;
        tx.append(
            a.org_id,
            now,
            vec![
                NewEvent::new(
                    EventKind::MessageCreated,
                    json!({"message_id": msg.id, "kind": msg.kind, "text_sha256": ingest::text_digest(&msg.text), "about_attachment": a.id}),
                )
                .member(a.member_id)
                .thread(thread)
                .ticket(ticket)
                .team(member.team_id),
            ],
        )
        .await?;
    }
    Ok(())
}

impl PgStore {
    pub(crate) async fn create_attachment_(
        &self,
        p: &Principal,
        n: NewAttachment,
        now: Timestamp,
    ) -> Result<Attachment> {
        let mut tx = self.begin_for(p.org_id).await?;
        let m = rows::load_member(tx.c(), n.member_id).await?;
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
        tx.append(
            a.org_id,
            now,
            vec![
                event(
                    EventKind::AttachmentQuarantined,
                    &a,
                    None,
                    json!({"sha256": a.sha256, "metadata_removed": a.metadata_removed}),
                )
                .actor(Some(p.user_id)),
            ],
        )
        .await?;
        tx.commit(&self.bus).await?;
        Ok(a)
    }

    pub(crate) async fn attachment_(&self, p: &Principal, id: AttachmentId) -> Result<Attachment> {
        let mut c = self.conn().await?;
        let a = load(&mut c, self, id).await?;
        if a.org_id != p.org_id {
            return Err(Error::NotFound("attachment"));
        }
        access(&mut c, p, &a).await?;
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
        let grant = access(tx.c(), p, &a).await?;
        if !a.state.servable() {
            return Err(Error::Conflict {
                rule: "attachment-not-released",
                detail: match a.state {
                    AttachmentState::Infected => {
                        "this file was refused by the virus scanner and is never served".into()
                    }
                    s => format!(
                        "this file is {} and is served only after a clean scan",
                        s.as_str()
                    ),
                },
            });
        }
        if grant != Grant::Own {
            tx.append(
                a.org_id,
                now,
                vec![
                    NewEvent::new(
                        EventKind::PhiRead,
                        json!({"resource": "attachment", "id": a.id, "grant": grant.as_str(), "role": p.role}),
                    )
                    .actor(Some(p.user_id))
                    .member(a.member_id),
                ],
            )
            .await?;
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
            if access(&mut c, p, &a).await.is_ok() {
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
        let mut by_org: Vec<(OrgId, Vec<Uuid>)> = Vec::new();
        for (id, org) in due {
            match by_org.iter_mut().find(|(o, _)| o.0 == org) {
                Some((_, ids)) => ids.push(id),
                None => by_org.push((OrgId(org), vec![id])),
            }
        }
        let mut out = Vec::new();
        for (org, ids) in by_org {
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
                a.state = AttachmentState::Scanning;
                a.scan_attempts += 1;
                a.updated_at = now;
                q("UPDATE attachments SET state = 'scanning', scan_attempts = $1, lease_until = $2, updated_at = $3 WHERE id = $4")
                    .bind(i64::from(a.scan_attempts))
                    .bind(us(until))
                    .bind(us(now))
                    .bind(a.id.0)
                    .execute(tx.c())
                    .await
                    .map_err(db)?;
                let team = team_of(tx.c(), a.member_id).await?;
                tx.append(
                    a.org_id,
                    now,
                    vec![event(
                        EventKind::AttachmentScanning,
                        &a,
                        Some(team),
                        json!({"attempt": a.scan_attempts}),
                    )],
                )
                .await?;
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
        let (to, detail, retry) = match &outcome {
            ScanOutcome::Clean => (AttachmentState::Clean, None, None),
            ScanOutcome::Infected { signature } => {
                (AttachmentState::Infected, Some(signature.clone()), None)
            }
            ScanOutcome::Failed { error, retry_at } => (
                AttachmentState::Failed,
                Some(error.clone()),
                Some(*retry_at),
            ),
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
        q("UPDATE attachments SET state = $1, detail = $2, next_scan_at = $3, lease_until = NULL, updated_at = $4 WHERE id = $5")
            .bind(a.state.as_str())
            .bind(a.detail.clone())
            .bind(retry.map(us))
            .bind(us(now))
            .bind(a.id.0)
            .execute(tx.c())
            .await
            .map_err(db)?;
        let team = team_of(tx.c(), a.member_id).await?;
        let (kind, extra) = match &outcome {
            ScanOutcome::Clean => (EventKind::AttachmentClean, json!({})),
            ScanOutcome::Infected { signature } => (
                EventKind::AttachmentInfected,
                json!({"signature": signature}),
            ),
            ScanOutcome::Failed { error, retry_at } => (
                EventKind::AttachmentScanFailed,
                json!({"error": error, "retry_at": retry_at, "attempt": a.scan_attempts}),
            ),
        };
        tx.append(a.org_id, now, vec![event(kind, &a, Some(team), extra)])
            .await?;
        if to == AttachmentState::Infected {
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
        let mut tx = self.begin_for(p.org_id).await?;
        let a = load(tx.c(), self, id).await?;
        if a.org_id != p.org_id {
            return Err(Error::NotFound("attachment"));
        }
        if a.state == AttachmentState::Clean {
            return Err(Error::Conflict {
                rule: "attachment-released",
                detail: "this file was released by a clean scan; it is downloaded through the thread, not exported".into(),
            });
        }
        tx.append(
            a.org_id,
            now,
            vec![
                event(
                    EventKind::AttachmentExported,
                    &a,
                    None,
                    json!({"reason": reason}),
                )
                .actor(Some(p.user_id)),
            ],
        )
        .await?;
        tx.commit(&self.bus).await?;
        Ok(a)
    }
}
