//! Cross-node fan-out of committed events. Each commit that appends events
//! notifies `careline_events` with the organization's id (PostgreSQL
//! delivers it only if the transaction commits). [`PgStore::relay_events`]
//! listens, reads the organization's events after the last sequence number
//! it has seen, and publishes on this node's bus those another node wrote:
//! SSE clients, escalation timers and the callers' grant caches (the bus's
//! access epoch) on every node then see every commit, each event once.
//!
//! The relay also loads the data key of every organization it hears of, so
//! a running node holds every key it may need when the master key is
//! rotated (see `crypt.rs`).
//!
//! Notifications are not durable: if the listening connection drops, some
//! may be lost. The relay then catches up from every organization's chain
//! head, so nothing committed is skipped, only delayed.

use crate::PgStore;
use crate::rows::{self, db, q};
use crate::tx::EVENTS_CHANNEL;
use careline_core::ids::OrgId;
use careline_core::{Error, Result};
use sqlx_postgres::PgListener;
use std::collections::HashMap;
use std::future::Future;
use uuid::Uuid;

/// Events read per round trip while relaying.
const RELAY_BATCH: i64 = 1_000;

impl PgStore {
    /// Relay other nodes' events to this node's bus until `stop` completes.
    /// Run it once per node, as a named background task.
    pub async fn relay_events(&self, stop: impl Future<Output = ()>) -> Result<()> {
        // Heads first, then listen: a commit in between is caught by the
        // next notification for its organization, which reads from here.
        let mut seen = self.heads().await?;
        let mut listener = PgListener::connect_with(&self.pool).await.map_err(db)?;
        listener.listen(EVENTS_CHANNEL).await.map_err(db)?;
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return Ok(()),
                next = listener.try_recv() => match next.map_err(db)? {
                    Some(n) => {
                        let org: OrgId = n.payload().parse().map_err(|_| {
                            Error::internal(format!("unexpected notification {:?}", n.payload()))
                        })?;
                        self.relay_org(org, &mut seen).await?;
                    }
                    None => {
                        tracing::warn!("event notifications were interrupted; catching up from the chain heads");
                        let heads = self.heads().await?;
                        for (org, head) in heads {
                            if seen.get(&org).is_none_or(|s| *s < head) {
                                self.relay_org(org, &mut seen).await?;
                            }
                        }
                    }
                },
            }
        }
    }

    async fn heads(&self) -> Result<HashMap<OrgId, i64>> {
        let heads: Vec<(Uuid, i64)> =
            sqlx_core::query_as::query_as("SELECT org_id, seq FROM chain_heads")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        Ok(heads.into_iter().map(|(o, s)| (OrgId(o), s)).collect())
    }

    /// Publish the organization's events after `seen` that other nodes wrote.
    async fn relay_org(&self, org: OrgId, seen: &mut HashMap<OrgId, i64>) -> Result<()> {
        // Hold the key of an organization another node created from now on,
        // so this node keeps serving it across a master-key rotation.
        if let Err(e) = self.crypto.preload(&self.pool, org).await {
            tracing::warn!(%org, error = %e, "cannot load the data key of an organization another node wrote to");
        }
        loop {
            let after = seen.get(&org).copied().unwrap_or(0);
            let found = q("SELECT *, node IS DISTINCT FROM $3 AS foreign FROM events
                 WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $4")
            .bind(org.0)
            .bind(after)
            .bind(self.node)
            .bind(RELAY_BATCH)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            let n = found.len();
            let mut foreign = Vec::with_capacity(n);
            for r in &found {
                let e = rows::event(r)?;
                seen.insert(org, e.seq);
                if rows::get::<bool>(r, "foreign")? {
                    foreign.push(e);
                }
            }
            self.bus.publish(foreign);
            if i64::try_from(n).unwrap_or(0) < RELAY_BATCH {
                return Ok(());
            }
        }
    }
}
