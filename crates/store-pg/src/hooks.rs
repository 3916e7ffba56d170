//! Outbound webhooks: endpoints, and the delivery outbox that `Tx::append`
//! fills in the same transaction as the events. Deliveries are claimed with
//! `FOR UPDATE SKIP LOCKED` and a lease, so two nodes never send the same
//! one at once; retried with backoff, dead-lettered (and replayable) when
//! they keep failing.

use crate::PgStore;
use crate::rows::{self, db, get, q, us};
use careline_core::authz::Principal;
use careline_core::ids::*;
use careline_core::{Error, Result};
use careline_store::{Delivery, Webhook};
use jiff::Timestamp;
use sqlx_postgres::PgRow;
use uuid::Uuid;

fn webhook(r: &PgRow) -> Result<Webhook> {
    Ok(Webhook {
        id: WebhookId(rows::uuid(r, "id")?),
        org_id: OrgId(rows::uuid(r, "org_id")?),
        url: get(r, "url")?,
        events: rows::json(r, "events")?,
        active: get(r, "active")?,
        created_at: rows::ts(r, "created_at")?,
    })
}

fn delivery(r: &PgRow) -> Result<Delivery> {
    Ok(Delivery {
        id: DeliveryId(rows::uuid(r, "id")?),
        org_id: OrgId(rows::uuid(r, "org_id")?),
        webhook_id: WebhookId(rows::uuid(r, "webhook_id")?),
        url: get(r, "url")?,
        secret: get(r, "secret")?,
        event_kind: get(r, "event_kind")?,
        body: get(r, "body")?,
        attempts: get(r, "attempts")?,
        status: get(r, "status")?,
        last_error: get(r, "last_error")?,
        next_attempt_at: rows::ts(r, "next_attempt_at")?,
        created_at: rows::ts(r, "created_at")?,
    })
}

impl PgStore {
    pub(crate) async fn create_webhook_(
        &self,
        p: &Principal,
        url: String,
        secret: String,
        events: Vec<String>,
        now: Timestamp,
    ) -> Result<Webhook> {
        let (w, ev) = Webhook::register(p, &url, &secret, events, now)?;
        let mut tx = self.begin_for(p.org_id).await?;
        q("INSERT INTO webhooks (id, org_id, url, secret, events, active, created_at) VALUES ($1, $2, $3, $4, $5, true, $6)")
            .bind(w.id.0)
            .bind(w.org_id.0)
            .bind(w.url.clone())
            .bind(secret)
            .bind(rows::to_json(&w.events)?)
            .bind(us(now))
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.forget_hooks(p.org_id);
        tx.append(p.org_id, now, vec![ev]).await?;
        tx.commit(&self.bus).await?;
        Ok(w)
    }

    pub(crate) async fn webhooks_(&self, p: &Principal) -> Result<Vec<Webhook>> {
        Webhook::manage_request(p)?;
        let found = q("SELECT * FROM webhooks WHERE org_id = $1 ORDER BY created_at")
            .bind(p.org_id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        found.iter().map(webhook).collect()
    }

    /// Lease due deliveries. Rows another node is claiming right now are
    /// skipped, not waited for; a lease that lapsed is due again.
    pub(crate) async fn claim_deliveries_(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        let mut tx = self.begin().await?;
        let ids: Vec<(Uuid,)> = sqlx_core::query_as::query_as(
            "UPDATE deliveries SET lease_until = $1 WHERE id IN (
                 SELECT id FROM deliveries
                 WHERE status = 'pending' AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $2)
                 ORDER BY next_attempt_at LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             RETURNING id",
        )
        .bind(us(lease_until))
        .bind(us(now))
        .bind(i64::from(limit))
        .fetch_all(tx.c())
        .await
        .map_err(db)?;
        let ids: Vec<Uuid> = ids.into_iter().map(|(id,)| id).collect();
        let found = q("SELECT d.*, w.url AS url, w.secret AS secret FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                       WHERE d.id = ANY($1) ORDER BY d.next_attempt_at, d.id")
            .bind(ids)
            .fetch_all(tx.c())
            .await
            .map_err(db)?;
        let out = found.iter().map(delivery).collect::<Result<Vec<_>>>()?;
        tx.commit(&self.bus).await?;
        Ok(out)
    }

    pub(crate) async fn delivery_attempted_(
        &self,
        id: DeliveryId,
        ok: bool,
        error: Option<String>,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<()> {
        let found: Option<(Uuid, String)> = sqlx_core::query_as::query_as(
            "SELECT org_id, event_kind FROM deliveries WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let (org, kind) = found.ok_or(Error::NotFound("delivery"))?;
        let org = OrgId(org);
        if ok {
            q("UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = $1, lease_until = NULL, last_error = NULL WHERE id = $2")
                .bind(us(now))
                .bind(id.0)
                .execute(&self.pool)
                .await
                .map_err(db)?;
            return Ok(());
        }
        let error = Delivery::attempt_error(error);
        match retry_at {
            Some(at) => {
                q("UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1, lease_until = NULL, last_error = $2 WHERE id = $3")
                    .bind(us(at))
                    .bind(error)
                    .bind(id.0)
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(())
            }
            None => {
                let mut tx = self.begin_for(org).await?;
                q("UPDATE deliveries SET status = 'dead', attempts = attempts + 1, lease_until = NULL, last_error = $1 WHERE id = $2")
                    .bind(error.clone())
                    .bind(id.0)
                    .execute(tx.c())
                    .await
                    .map_err(db)?;
                tx.append(
                    org,
                    now,
                    vec![Delivery::dead_lettered(id, &kind, error.as_deref())],
                )
                .await?;
                tx.commit(&self.bus).await
            }
        }
    }

    pub(crate) async fn deliveries_(
        &self,
        p: &Principal,
        status: &str,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        Delivery::list_request(p, status)?;
        let found = q("SELECT d.*, w.url AS url, w.secret AS secret FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                       WHERE d.org_id = $1 AND d.status = $2 ORDER BY d.created_at DESC LIMIT $3")
            .bind(p.org_id.0)
            .bind(status)
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        found.iter().map(delivery).collect()
    }

    pub(crate) async fn replay_delivery_(
        &self,
        p: &Principal,
        id: DeliveryId,
        now: Timestamp,
    ) -> Result<Delivery> {
        Webhook::manage_request(p)?;
        let mut tx = self.begin_for(p.org_id).await?;
        let row = q("SELECT d.*, w.url AS url, w.secret AS secret FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.id = $1 AND d.org_id = $2 FOR UPDATE OF d")
            .bind(id.0)
            .bind(p.org_id.0)
            .fetch_optional(tx.c())
            .await
            .map_err(db)?
            .ok_or(Error::NotFound("delivery"))?;
        let (d, ev) = delivery(&row)?.replay(p, now)?;
        q("UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, lease_until = NULL WHERE id = $2")
            .bind(us(now))
            .bind(id.0)
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(p.org_id, now, vec![ev]).await?;
        tx.commit(&self.bus).await?;
        Ok(d)
    }
}
