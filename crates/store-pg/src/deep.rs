//! Deep verification on PostgreSQL: reads every organization's events and
//! its message, ticket, page and attachment rows in one `REPEATABLE READ`
//! snapshot (so rows committed meanwhile by serving nodes cannot look like
//! rows without events), in batches, and feeds them to
//! [`careline_store::deep`], where the comparison lives.

use crate::PgStore;
use crate::crypt::aad;
use crate::rows::{self, db, get, q};
use careline_core::Result;
use careline_core::ids::*;
use careline_store::deep::*;
use sqlx_postgres::{PgConnection, PgRow};
use uuid::Uuid;

/// Rows read per round trip.
const BATCH: i64 = 5_000;

/// The next batch of `sql` (which takes the organization, the last `id`
/// seen and a limit, and orders by `id`) after `after`, which moves on.
async fn next_batch(
    c: &mut PgConnection,
    sql: &'static str,
    org: OrgId,
    after: &mut Option<Uuid>,
) -> Result<Vec<PgRow>> {
    let batch = q(sql)
        .bind(org.0)
        .bind(*after)
        .bind(BATCH)
        .fetch_all(&mut *c)
        .await
        .map_err(db)?;
    if let Some(last) = batch.last() {
        *after = Some(rows::uuid(last, "id")?);
    }
    Ok(batch)
}

/// Every row `sql` selects for `org`, in batches by id, each handed to `f`.
async fn each_row(
    c: &mut PgConnection,
    sql: &'static str,
    org: OrgId,
    mut f: impl FnMut(&PgRow) -> Result<()>,
) -> Result<()> {
    let mut after = None;
    loop {
        let batch = next_batch(c, sql, org, &mut after).await?;
        if batch.is_empty() {
            return Ok(());
        }
        batch.iter().try_for_each(&mut f)?;
    }
}

impl PgStore {
    pub(crate) async fn verify_rows_(&self, progress: Option<Progress>) -> Result<Vec<RowReport>> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        q("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let reports = self.verify_rows_in(&mut tx, progress).await?;
        tx.rollback().await.map_err(db)?;
        Ok(reports)
    }

    async fn verify_rows_in(
        &self,
        c: &mut PgConnection,
        progress: Option<Progress>,
    ) -> Result<Vec<RowReport>> {
        let (total,): (i64,) = sqlx_core::query_as::query_as(
            "SELECT (SELECT COUNT(*) FROM events) + (SELECT COUNT(*) FROM messages)
                  + (SELECT COUNT(*) FROM tickets) + (SELECT COUNT(*) FROM pages)
                  + (SELECT COUNT(*) FROM attachments)",
        )
        .fetch_one(&mut *c)
        .await
        .map_err(db)?;
        // Rows whose organization is gone are checked under their bare id:
        // a row moved out of its organization must show up somewhere.
        let orgs: Vec<(Uuid, String)> = sqlx_core::query_as::query_as(
            "SELECT id, name FROM organizations
             UNION SELECT x.org_id, '(unknown organization)' FROM (
                 SELECT org_id FROM events UNION SELECT org_id FROM messages UNION SELECT org_id FROM tickets
                 UNION SELECT org_id FROM pages UNION SELECT org_id FROM attachments) x
               WHERE NOT EXISTS (SELECT 1 FROM organizations o WHERE o.id = x.org_id)
             ORDER BY 2, 1",
        )
        .fetch_all(&mut *c)
        .await
        .map_err(db)?;
        let mut v = DeepVerifier::new(u64::try_from(total).unwrap_or(0), progress);
        for (org, name) in orgs {
            let org = OrgId(org);
            v.organization(org, &name);
            let mut after = 0_i64;
            loop {
                let batch =
                    q("SELECT * FROM events WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
                        .bind(org.0)
                        .bind(after)
                        .bind(BATCH)
                        .fetch_all(&mut *c)
                        .await
                        .map_err(db)?;
                if batch.is_empty() {
                    break;
                }
                for r in &batch {
                    let e = rows::event(r)?;
                    after = e.seq;
                    v.event(&e);
                }
            }
            let mut after = None;
            loop {
                let batch = next_batch(
                    c,
                    "SELECT id, thread_id, ticket_id, kind, body, redacted_at FROM messages
                     WHERE org_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
                    org,
                    &mut after,
                )
                .await?;
                if batch.is_empty() {
                    break;
                }
                for r in &batch {
                    let id = MessageId(rows::uuid(r, "id")?);
                    let body: String = get(r, "body")?;
                    let text = self
                        .crypto
                        .open(c, org, &body, &aad("message", &id, "body"))
                        .await
                        .map_err(|e| e.to_string());
                    v.message(MessageRow {
                        id,
                        thread_id: ThreadId(rows::uuid(r, "thread_id")?),
                        ticket_id: rows::opt_uuid(r, "ticket_id")?.map(TicketId),
                        kind: get(r, "kind")?,
                        text,
                        redacted: get::<Option<i64>>(r, "redacted_at")?.is_some(),
                    });
                }
            }
            each_row(
                c,
                "SELECT id, thread_id, member_id, status, priority, queue_id, assignee_id FROM tickets
                     WHERE org_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
                org,
                |r| {
                    v.ticket(TicketRow {
                        id: TicketId(rows::uuid(r, "id")?),
                        thread_id: ThreadId(rows::uuid(r, "thread_id")?),
                        member_id: MemberId(rows::uuid(r, "member_id")?),
                        status: get(r, "status")?,
                        priority: get(r, "priority")?,
                        queue_id: QueueId(rows::uuid(r, "queue_id")?),
                        assignee_id: rows::opt_uuid(r, "assignee_id")?.map(UserId),
                    });
                    Ok(())
                },
            )
            .await?;
            each_row(
                c,
                "SELECT id, ticket_id, level, disposition, status, acked_by FROM pages
                     WHERE org_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
                org,
                |r| {
                    v.page(PageRow {
                        id: PageId(rows::uuid(r, "id")?),
                        ticket_id: TicketId(rows::uuid(r, "ticket_id")?),
                        level: get(r, "level")?,
                        disposition: get(r, "disposition")?,
                        status: get(r, "status")?,
                        acked_by: rows::opt_uuid(r, "acked_by")?.map(UserId),
                    });
                    Ok(())
                },
            )
            .await?;
            each_row(
                c,
                "SELECT id, member_id, sha256, size, content_type, state, message_id FROM attachments
                     WHERE org_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
                org,
                |r| {
                    v.attachment(AttachmentRow {
                        id: AttachmentId(rows::uuid(r, "id")?),
                        member_id: MemberId(rows::uuid(r, "member_id")?),
                        sha256: get(r, "sha256")?,
                        size: get(r, "size")?,
                        content_type: get(r, "content_type")?,
                        state: get(r, "state")?,
                        message_id: rows::opt_uuid(r, "message_id")?.map(MessageId),
                    });
                    Ok(())
                },
            )
            .await?;
        }
        Ok(v.finish())
    }
}
