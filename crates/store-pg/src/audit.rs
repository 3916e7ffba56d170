//! Reads and writes of the retrospective safety audit and the safety report.

use crate::PgStore;
use crate::crypt::aad;
use crate::rows::{self, db, get, q, us};
use careline_core::authz::Principal;
use careline_core::ids::*;
use careline_core::model::MessageKind;
use careline_core::safety::{self, TicketHistory};
use careline_core::{Error, Result};
use careline_store::{NewFinding, PastContact, SafetyReport, SafetyReview};
use jiff::Timestamp;
use sqlx_postgres::{PgConnection, PgRow};
use std::collections::HashMap;
use uuid::Uuid;

async fn review(c: &mut PgConnection, s: &PgStore, r: &PgRow) -> Result<SafetyReview> {
    let id = ReviewId(rows::uuid(r, "id")?);
    let org = OrgId(rows::uuid(r, "org_id")?);
    let f: String = get(r, "finding")?;
    let f = s
        .crypto
        .open(c, org, &f, &aad("safety_review", &id, "finding"))
        .await?;
    Ok(SafetyReview {
        id,
        org_id: org,
        message_id: MessageId(rows::uuid(r, "message_id")?),
        ticket_id: TicketId(rows::uuid(r, "ticket_id")?),
        member_id: MemberId(rows::uuid(r, "member_id")?),
        disposition: get(r, "disposition")?,
        finding: careline_store::stored_json("safety finding", &f)?,
        protocol_version: get(r, "protocol_version")?,
        status: get(r, "status")?,
        resolved_by: rows::opt_uuid(r, "resolved_by")?.map(UserId),
        resolution: get(r, "resolution")?,
        created_at: rows::ts(r, "created_at")?,
        resolved_at: rows::opt_ts(r, "resolved_at")?,
    })
}

impl PgStore {
    pub(crate) async fn contacts_(
        &self,
        since: Timestamp,
        until: Timestamp,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<PastContact>> {
        let mut c = self.conn().await?;
        let found = q(
            "SELECT m.id, m.org_id, m.ticket_id, t.member_id, m.kind, m.body, m.created_at
                       FROM messages m JOIN threads t ON t.id = m.thread_id
                       WHERE ($1::uuid IS NULL OR m.id > $1) AND m.kind IN ('member', 'call_note')
                         AND m.created_at >= $2 AND m.created_at < $3
                       ORDER BY m.id LIMIT $4",
        )
        .bind(after.map(|a| a.0))
        .bind(us(since))
        .bind(us(until))
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await
        .map_err(db)?;
        let mut out = Vec::with_capacity(found.len());
        for r in &found {
            let id = MessageId(rows::uuid(r, "id")?);
            let org = OrgId(rows::uuid(r, "org_id")?);
            let body: String = get(r, "body")?;
            let text = self
                .crypto
                .open(&mut c, org, &body, &aad("message", &id, "body"))
                .await?;
            let ticket = rows::opt_uuid(r, "ticket_id")?
                .ok_or_else(|| Error::internal(format!("contact {id} has no ticket")))?;
            out.push(PastContact {
                message_id: id,
                org_id: org,
                ticket_id: TicketId(ticket),
                member_id: MemberId(rows::uuid(r, "member_id")?),
                kind: rows::parsed(r, "kind").unwrap_or(MessageKind::Member),
                text,
                created_at: rows::ts(r, "created_at")?,
            });
        }
        Ok(out)
    }

    pub(crate) async fn contact_count_(&self, since: Timestamp, until: Timestamp) -> Result<i64> {
        let (n,): (i64,) = sqlx_core::query_as::query_as(
            "SELECT COUNT(*) FROM messages WHERE kind IN ('member', 'call_note') AND created_at >= $1 AND created_at < $2",
        )
        .bind(us(since))
        .bind(us(until))
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(n)
    }

    pub(crate) async fn ticket_histories_(
        &self,
        tickets: Vec<TicketId>,
    ) -> Result<HashMap<TicketId, TicketHistory>> {
        let ids: Vec<Uuid> = tickets.iter().map(|t| t.0).collect();
        let pages: Vec<(Uuid, i64, Option<i64>)> = sqlx_core::query_as::query_as(
            "SELECT ticket_id, created_at, acked_at FROM pages WHERE ticket_id = ANY($1) ORDER BY created_at, id",
        )
        .bind(ids.clone())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let cleared: Vec<(Uuid, i64)> = sqlx_core::query_as::query_as(
            "SELECT ticket_id, at FROM events WHERE ticket_id = ANY($1) AND kind = 'ticket.cleared' ORDER BY org_id, seq",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(safety::histories(
            &tickets,
            pages.into_iter().map(|(t, created, acked)| {
                (
                    TicketId(t),
                    rows::from_us(created),
                    acked.map(rows::from_us),
                )
            }),
            cleared
                .into_iter()
                .map(|(t, at)| (TicketId(t), rows::from_us(at))),
        ))
    }

    /// One transaction per organization (each holds that organization's chain).
    pub(crate) async fn file_findings_(
        &self,
        findings: Vec<NewFinding>,
        now: Timestamp,
    ) -> Result<usize> {
        let mut orgs: Vec<OrgId> = Vec::new();
        for f in &findings {
            if !orgs.contains(&f.org_id) {
                orgs.push(f.org_id);
            }
        }
        let mut new = 0;
        for org in orgs {
            let mut tx = self.begin_for(org).await?;
            for f in findings.iter().filter(|f| f.org_id == org) {
                let id = ReviewId::new();
                let finding = self
                    .crypto
                    .seal(
                        tx.c(),
                        f.org_id,
                        &f.finding.to_string(),
                        &aad("safety_review", &id, "finding"),
                    )
                    .await?;
                let n = q("INSERT INTO safety_reviews (id, org_id, message_id, ticket_id, member_id, disposition, finding, protocol_version, status, created_at)
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9) ON CONFLICT DO NOTHING")
                    .bind(id.0)
                    .bind(f.org_id.0)
                    .bind(f.message_id.0)
                    .bind(f.ticket_id.0)
                    .bind(f.member_id.0)
                    .bind(f.disposition.clone())
                    .bind(finding)
                    .bind(f.protocol_version.clone())
                    .bind(us(now))
                    .execute(tx.c())
                    .await
                    .map_err(db)?
                    .rows_affected();
                if n > 0 {
                    new += 1;
                    tx.append(f.org_id, now, vec![f.filed(id)]).await?;
                }
            }
            tx.commit(&self.bus).await?;
        }
        Ok(new)
    }

    pub(crate) async fn safety_reviews_(
        &self,
        p: &Principal,
        status: Option<String>,
    ) -> Result<Vec<SafetyReview>> {
        safety::reviews_request(p, status.as_deref())?;
        let mut c = self.conn().await?;
        let found = q(
            "SELECT * FROM safety_reviews WHERE org_id = $1 AND ($2::text IS NULL OR status = $2)
                       ORDER BY created_at DESC LIMIT 1000",
        )
        .bind(p.org_id.0)
        .bind(status)
        .fetch_all(&mut *c)
        .await
        .map_err(db)?;
        let mut out = Vec::with_capacity(found.len());
        for r in &found {
            out.push(review(&mut c, self, r).await?);
        }
        Ok(out)
    }

    pub(crate) async fn resolve_review_(
        &self,
        p: &Principal,
        id: ReviewId,
        note: String,
        now: Timestamp,
    ) -> Result<SafetyReview> {
        let note = safety::resolve_request(p, &note)?;
        let mut tx = self.begin_for(p.org_id).await?;
        let row = q("SELECT * FROM safety_reviews WHERE id = $1 AND org_id = $2")
            .bind(id.0)
            .bind(p.org_id.0)
            .fetch_optional(tx.c())
            .await
            .map_err(db)?
            .ok_or(Error::NotFound("safety review"))?;
        let (r, ev) = review(tx.c(), self, &row).await?.resolve(p, note, now)?;
        q("UPDATE safety_reviews SET status = 'resolved', resolved_by = $1, resolution = $2, resolved_at = $3 WHERE id = $4")
            .bind(p.user_id.0)
            .bind(r.resolution.clone())
            .bind(us(now))
            .bind(id.0)
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(p.org_id, now, vec![ev]).await?;
        tx.commit(&self.bus).await?;
        Ok(r)
    }

    pub(crate) async fn safety_report_(
        &self,
        p: &Principal,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<SafetyReport> {
        safety::report_request(p)?;
        let (org, a, b) = (p.org_id.0, us(since), us(until));
        let mut r = SafetyReport::default();
        (r.contacts, r.emergency, r.urgent) = sqlx_core::query_as::query_as(
            "SELECT COUNT(*),
                    COUNT(*) FILTER (WHERE payload::jsonb ->> 'disposition' = 'emergency'),
                    COUNT(*) FILTER (WHERE payload::jsonb ->> 'disposition' = 'urgent')
             FROM events WHERE org_id = $1 AND kind = 'triage.judged' AND at >= $2 AND at < $3",
        )
        .bind(org)
        .bind(a)
        .bind(b)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        (r.pages, r.pages_acknowledged, r.alarms) = sqlx_core::query_as::query_as(
            "SELECT COUNT(*), COUNT(acked_at), COUNT(*) FILTER (WHERE level = 'org_alarm')
             FROM pages WHERE org_id = $1 AND created_at >= $2 AND created_at < $3",
        )
        .bind(org)
        .bind(a)
        .bind(b)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        let acks: Vec<(i64, String)> = sqlx_core::query_as::query_as(
            "SELECT (acked_at - flagged_at) / 1000, disposition FROM pages
             WHERE org_id = $1 AND acked_at IS NOT NULL AND flagged_at >= $2 AND flagged_at < $3 ORDER BY 1",
        )
        .bind(org)
        .bind(a)
        .bind(b)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        r.add_acks(acks);
        let replies: Vec<(Option<i64>, String)> = sqlx_core::query_as::query_as(
            "SELECT (SELECT MIN(m.created_at) FROM messages m JOIN users u ON u.id = m.author_id
                      WHERE m.ticket_id = f.ticket_id AND m.kind = 'staff' AND u.role IN ('nurse', 'physician')
                        AND m.created_at >= f.flagged_at) - f.flagged_at,
                    f.disposition
             FROM (SELECT ticket_id, MIN(flagged_at) AS flagged_at, MIN(disposition) AS disposition FROM pages
                   WHERE org_id = $1 AND flagged_at >= $2 AND flagged_at < $3 GROUP BY ticket_id, flagged_at) f",
        )
        .bind(org)
        .bind(a)
        .bind(b)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        r.add_replies(replies);
        (r.open_safety_reviews, r.failures_to_escalate) = sqlx_core::query_as::query_as(
            "SELECT COUNT(*) FILTER (WHERE status = 'open'), COUNT(*) FROM safety_reviews
             WHERE org_id = $1 AND created_at >= $2 AND created_at < $3",
        )
        .bind(org)
        .bind(a)
        .bind(b)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(r)
    }
}
