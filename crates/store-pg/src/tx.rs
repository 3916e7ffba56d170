//! Write transactions and the per-organization hash chain.
//!
//! Every write that appends events starts with [`Tx::lock_chain`]: `SELECT …
//! FOR UPDATE` on the organization's `chain_heads` row. That one lock orders
//! all writers of a tenant across every node: the next sequence number and
//! previous hash are read under it, so the chain can neither fork nor gap,
//! and the state a write reads after taking it (a ticket, a thread, an open
//! page) is the state left by the last committed writer. Taking it first,
//! before any other row lock, keeps lock order the same everywhere, so two
//! writers never deadlock. Tenants do not wait for each other.
//!
//! Events are published on the bus only after the commit succeeds.

use crate::rows::{db, q};
use careline_core::event::{Event, GENESIS_HASH, NewEvent};
use careline_core::ids::{DeliveryId, OrgId};
use careline_core::{Error, Result};
use careline_store::Bus;
use jiff::Timestamp;
use sqlx_core::transaction::Transaction;
use sqlx_postgres::{PgConnection, Postgres};
use uuid::Uuid;

/// An open transaction plus the events it appended (published after commit).
pub struct Tx {
    inner: Transaction<'static, Postgres>,
    events: Vec<Event>,
    /// The store instance writing, recorded on each event.
    node: Uuid,
}

impl Tx {
    pub fn new(inner: Transaction<'static, Postgres>, node: Uuid) -> Tx {
        Tx {
            inner,
            events: Vec::new(),
            node,
        }
    }

    /// The connection, for statements inside the transaction.
    pub fn c(&mut self) -> &mut PgConnection {
        &mut self.inner
    }

    /// Lock `org`'s chain head (creating it at the genesis if the
    /// organization has none yet) and return it.
    pub async fn lock_chain(&mut self, org: OrgId) -> Result<(i64, String)> {
        let head: Option<(i64, String)> = sqlx_core::query_as::query_as(
            "SELECT seq, hash FROM chain_heads WHERE org_id = $1 FOR UPDATE",
        )
        .bind(org.0)
        .fetch_optional(&mut *self.inner)
        .await
        .map_err(db)?;
        let head = match head {
            Some(h) => h,
            None => {
                // Two first writers may race here: the insert of one waits
                // for the other, does nothing, and the lock below then waits.
                q("INSERT INTO chain_heads (org_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING")
                    .bind(org.0)
                    .bind(GENESIS_HASH)
                    .execute(&mut *self.inner)
                    .await
                    .map_err(db)?;
                sqlx_core::query_as::query_as(
                    "SELECT seq, hash FROM chain_heads WHERE org_id = $1 FOR UPDATE",
                )
                .bind(org.0)
                .fetch_one(&mut *self.inner)
                .await
                .map_err(db)?
            }
        };
        Ok(head)
    }

    /// Append events to the organization's chain, in order, with a webhook
    /// delivery for every active subscription that wants each one.
    pub async fn append(&mut self, org: OrgId, at: Timestamp, new: Vec<NewEvent>) -> Result<()> {
        if new.is_empty() {
            return Ok(());
        }
        let (mut seq, mut prev) = self.lock_chain(org).await?;
        let hooks: Vec<(Uuid, String)> = sqlx_core::query_as::query_as(
            "SELECT id, events FROM webhooks WHERE org_id = $1 AND active",
        )
        .bind(org.0)
        .fetch_all(&mut *self.inner)
        .await
        .map_err(db)?;
        let hooks: Vec<(Uuid, Vec<String>)> = hooks
            .into_iter()
            .map(|(id, kinds)| (id, serde_json::from_str(&kinds).unwrap_or_default()))
            .collect();
        for n in new {
            seq += 1;
            let e = Event::seal(org, seq, &prev, at, n);
            q("INSERT INTO events (id, org_id, seq, at, kind, actor_id, member_id, ticket_id, thread_id, team_id, payload, prev_hash, hash, node)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
            .bind(e.id.0)
            .bind(org.0)
            .bind(e.seq)
            .bind(e.at_us)
            .bind(e.kind.clone())
            .bind(e.actor_id.map(|x| x.0))
            .bind(e.member_id.map(|x| x.0))
            .bind(e.ticket_id.map(|x| x.0))
            .bind(e.thread_id.map(|x| x.0))
            .bind(e.team_id.map(|x| x.0))
            .bind(e.payload.clone())
            .bind(e.prev_hash.clone())
            .bind(e.hash.clone())
            .bind(self.node)
            .execute(&mut *self.inner)
            .await
            .map_err(db)?;
            prev.clone_from(&e.hash);
            for (hook, kinds) in &hooks {
                if kinds.iter().any(|k| subscribed(k, &e.kind)) {
                    q("INSERT INTO deliveries (id, org_id, webhook_id, event_id, event_kind, body, status, attempts, next_attempt_at, created_at)
                       VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)")
                    .bind(DeliveryId::new().0)
                    .bind(org.0)
                    .bind(*hook)
                    .bind(e.id.0)
                    .bind(e.kind.clone())
                    .bind(e.public_json().to_string())
                    .bind(e.at_us)
                    .execute(&mut *self.inner)
                    .await
                    .map_err(db)?;
                }
            }
            self.events.push(e);
        }
        q("UPDATE chain_heads SET seq = $2, hash = $3 WHERE org_id = $1")
            .bind(org.0)
            .bind(seq)
            .bind(prev)
            .execute(&mut *self.inner)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Commit, then publish the appended events. Other nodes hear of them
    /// through a notification that PostgreSQL delivers only on commit.
    pub async fn commit(mut self, bus: &Bus) -> Result<()> {
        let mut orgs: Vec<OrgId> = Vec::new();
        for e in &self.events {
            if !orgs.contains(&e.org_id) {
                orgs.push(e.org_id);
            }
        }
        for org in orgs {
            q("SELECT pg_notify($1, $2)")
                .bind(EVENTS_CHANNEL)
                .bind(org.to_string())
                .execute(&mut *self.inner)
                .await
                .map_err(db)?;
        }
        self.inner
            .commit()
            .await
            .map_err(|e| Error::internal(format!("commit failed: {e}")))?;
        bus.publish(self.events);
        Ok(())
    }
}

/// The notification channel on which commits name the organization they appended to.
pub const EVENTS_CHANNEL: &str = "careline_events";

/// Whether a webhook subscribed to `pattern` ("page.created", "page.*" or "*") gets `kind`.
pub fn subscribed(pattern: &str, kind: &str) -> bool {
    pattern == "*"
        || pattern == kind
        || pattern
            .strip_suffix('*')
            .is_some_and(|prefix| kind.starts_with(prefix))
}
