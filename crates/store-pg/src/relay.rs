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
//! may be lost. The relay then returns an error (its supervisor marks the
//! node unready and restarts it), and the next run listens again and
//! catches up from the last event it relayed for each organization, so
//! nothing committed is skipped, only delayed.

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

/// How often a quiet relay says it is alive.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// The last sequence number relayed per organization, written back to the
/// store when a relay run ends however it ends (error, stop or abort), so
/// the next run catches up from there and no commit is skipped.
struct Seen<'a> {
    map: HashMap<OrgId, i64>,
    slot: &'a std::sync::Mutex<Option<HashMap<OrgId, i64>>>,
}

impl Drop for Seen<'_> {
    fn drop(&mut self) {
        *self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(std::mem::take(&mut self.map));
    }
}

impl PgStore {
    /// Relay other nodes' events to this node's bus until `stop` completes,
    /// calling `beat` at least every few seconds while it is healthy. Run it
    /// once per node, under a supervisor: when the notification connection
    /// is lost it returns an error, and the next run catches up from the
    /// last event this node relayed.
    pub async fn relay_events(
        &self,
        stop: impl Future<Output = ()>,
        beat: &(dyn Fn() + Send + Sync),
    ) -> Result<()> {
        let saved = self
            .relay_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let resumed = saved.is_some();
        // A first run starts at the chain heads (what came before is in the
        // record, not news); heads first, then listen: a commit in between is
        // caught by the next notification for its organization.
        let map = match saved {
            Some(m) => m,
            None => self.heads().await?,
        };
        let mut seen = Seen {
            map,
            slot: &self.relay_seen,
        };
        let mut listener = PgListener::connect_with(&self.pool).await.map_err(db)?;
        listener.listen(EVENTS_CHANNEL).await.map_err(db)?;
        if resumed {
            // Listening again: whatever was committed while this node was not
            // listening is read now.
            self.catch_up(&mut seen.map).await?;
        }
        beat();
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = tokio::time::sleep(HEARTBEAT) => beat(),
                next = listener.try_recv() => match next.map_err(db)? {
                    Some(n) => {
                        let org: OrgId = n.payload().parse().map_err(|_| {
                            Error::internal(format!("unexpected notification {:?}", n.payload()))
                        })?;
                        self.relay_org(org, &mut seen.map).await?;
                        beat();
                    }
                    None => {
                        return Err(Error::Unavailable(
                            "the event notification connection was lost".into(),
                        ));
                    }
                },
            }
        }
    }

    /// Relay every organization whose chain head is past what was seen.
    async fn catch_up(&self, seen: &mut HashMap<OrgId, i64>) -> Result<()> {
        for (org, head) in self.heads().await? {
            if seen.get(&org).is_none_or(|s| *s < head) {
                self.relay_org(org, seen).await?;
            }
        }
        Ok(())
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
