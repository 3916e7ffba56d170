//! Outbound webhooks: endpoints, and the delivery outbox that `Tx::append`
//! fills in the same transaction as the events. Deliveries are claimed with
//! a lease, so two processes never send the same one at once, retried with
//! backoff, and dead-lettered (and replayable) when they keep failing.

use crate::SqliteStore;
use crate::rows::{self, db, us};
use careline_core::authz::Principal;
use careline_core::ids::*;
use careline_core::{Error, Result};
use careline_store::{Delivery, Webhook};
use jiff::Timestamp;
use rusqlite::{OptionalExtension, Row, params};

fn webhook(r: &Row<'_>) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        id: rows::id(r, "id")?,
        org_id: rows::id(r, "org_id")?,
        url: r.get("url")?,
        events: rows::json(r, "events")?,
        active: r.get::<_, i64>("active")? != 0,
        created_at: rows::ts(r, "created_at")?,
    })
}

fn delivery(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: rows::id(r, "id")?,
        org_id: rows::id(r, "org_id")?,
        webhook_id: rows::id(r, "webhook_id")?,
        url: r.get("url")?,
        secret: r.get("secret")?,
        event_kind: r.get("event_kind")?,
        body: r.get("body")?,
        attempts: r.get("attempts")?,
        status: r.get("status")?,
        last_error: r.get("last_error")?,
        next_attempt_at: rows::ts(r, "next_attempt_at")?,
        created_at: rows::ts(r, "created_at")?,
    })
}

const SELECT_DELIVERY: &str = "SELECT d.*, w.url AS url, w.secret AS secret FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id";

pub async fn create(
    s: &SqliteStore,
    p: &Principal,
    url: String,
    secret: String,
    events: Vec<String>,
    now: Timestamp,
) -> Result<Webhook> {
    let (w, ev) = Webhook::register(p, &url, &secret, events, now)?;
    s.write(move |tx| {
        tx.conn
            .prepare_cached("INSERT INTO webhooks (id, org_id, url, secret, events, active, created_at) VALUES ($1, $2, $3, $4, $5, 1, $6)")
            .and_then(|mut st| {
                st.execute(params![w.id.to_string(), w.org_id.to_string(), w.url, secret, serde_json::to_string(&w.events).unwrap_or_default(), us(now)])
            })
            .map_err(db)?;
        tx.append(w.org_id, now, vec![ev])?;
        Ok(w)
    })
    .await
}

pub async fn list(s: &SqliteStore, p: &Principal) -> Result<Vec<Webhook>> {
    Webhook::manage_request(p)?;
    let org = p.org_id;
    s.read(move |c, _| {
        let mut st = c
            .prepare_cached("SELECT * FROM webhooks WHERE org_id = $1 ORDER BY created_at")
            .map_err(db)?;
        st.query_map([org.to_string()], webhook)
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)
    })
    .await
}

pub async fn claim(
    s: &SqliteStore,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<Delivery>> {
    s.write(move |tx| {
        let ids: Vec<String> = {
            let mut st = tx
                .conn
                .prepare_cached(
                    "SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
                     ORDER BY next_attempt_at LIMIT $2",
                )
                .map_err(db)?;
            st.query_map(params![us(now), i64::from(limit)], |r| r.get(0))
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db)?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            tx.conn
                .prepare_cached("UPDATE deliveries SET lease_until = $1 WHERE id = $2")
                .and_then(|mut st| st.execute(params![us(lease_until), id]))
                .map_err(db)?;
            let d = tx
                .conn
                .prepare_cached(&format!("{SELECT_DELIVERY} WHERE d.id = $1"))
                .and_then(|mut st| st.query_row([&id], delivery))
                .map_err(db)?;
            out.push(d);
        }
        Ok(out)
    })
    .await
}

pub async fn renew(s: &SqliteStore, ids: Vec<DeliveryId>, lease_until: Timestamp) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    s.write(move |tx| {
        let mut st = tx
            .conn
            .prepare_cached(
                "UPDATE deliveries SET lease_until = $1 WHERE id = $2 AND status = 'pending'",
            )
            .map_err(db)?;
        for id in ids {
            st.execute(params![us(lease_until), id.to_string()])
                .map_err(db)?;
        }
        Ok(())
    })
    .await
}

pub async fn attempted(
    s: &SqliteStore,
    id: DeliveryId,
    ok: bool,
    error: Option<String>,
    retry_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<()> {
    s.write(move |tx| {
        let (org, kind): (String, String) = tx
            .conn
            .prepare_cached("SELECT org_id, event_kind FROM deliveries WHERE id = $1")
            .and_then(|mut st| st.query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(db)?
            .ok_or(Error::NotFound("delivery"))?;
        if ok {
            tx.conn
                .prepare_cached("UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = $1, lease_until = NULL, last_error = NULL WHERE id = $2")
                .and_then(|mut st| st.execute(params![us(now), id.to_string()]))
                .map_err(db)?;
            return Ok(());
        }
        let error = Delivery::attempt_error(error);
        match retry_at {
            Some(at) => {
                tx.conn
                    .prepare_cached("UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1, lease_until = NULL, last_error = $2 WHERE id = $3")
                    .and_then(|mut st| st.execute(params![us(at), error, id.to_string()]))
                    .map_err(db)?;
            }
            None => {
                tx.conn
                    .prepare_cached("UPDATE deliveries SET status = 'dead', attempts = attempts + 1, lease_until = NULL, last_error = $1 WHERE id = $2")
                    .and_then(|mut st| st.execute(params![error, id.to_string()]))
                    .map_err(db)?;
                let org: OrgId = org.parse().map_err(|_| Error::internal("bad org id"))?;
                tx.append(org, now, vec![Delivery::dead_lettered(id, &kind, error.as_deref())])?;
            }
        }
        Ok(())
    })
    .await
}

pub async fn deliveries(
    s: &SqliteStore,
    p: &Principal,
    status: &str,
    limit: u32,
) -> Result<Vec<Delivery>> {
    Delivery::list_request(p, status)?;
    let (org, status) = (p.org_id, status.to_owned());
    s.read(move |c, _| {
        let mut st = c
            .prepare_cached(&format!("{SELECT_DELIVERY} WHERE d.org_id = $1 AND d.status = $2 ORDER BY d.created_at DESC LIMIT $3"))
            .map_err(db)?;
        st.query_map(params![org.to_string(), status, i64::from(limit.clamp(1, 1000))], delivery)
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)
    })
    .await
}

pub async fn replay(
    s: &SqliteStore,
    p: &Principal,
    id: DeliveryId,
    now: Timestamp,
) -> Result<Delivery> {
    Webhook::manage_request(p)?;
    let p = p.clone();
    s.write(move |tx| {
        let d = tx
            .conn
            .prepare_cached(&format!("{SELECT_DELIVERY} WHERE d.id = $1"))
            .and_then(|mut st| st.query_row([id.to_string()], delivery).optional())
            .map_err(db)?
            .filter(|d| d.org_id == p.org_id)
            .ok_or(Error::NotFound("delivery"))?;
        let (d, ev) = d.replay(&p, now)?;
        tx.conn
            .prepare_cached("UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, lease_until = NULL WHERE id = $2")
            .and_then(|mut st| st.execute(params![us(now), id.to_string()]))
            .map_err(db)?;
        tx.append(p.org_id, now, vec![ev])?;
        Ok(d)
    })
    .await
}
