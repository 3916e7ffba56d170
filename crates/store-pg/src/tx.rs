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
//! The head is read once per transaction and kept in memory while the
//! transaction appends; it is written back at commit. Events of one append
//! go in with one statement. A transaction may carry many writes (see
//! `group.rs`): each runs in a savepoint, and rolling one back also rolls
//! back the chain moves and events it made.
//!
//! Events are published on the bus only after the commit succeeds.

use crate::rows::{db, q};
use careline_core::event::{Event, GENESIS_HASH, NewEvent};
use careline_core::ids::{DeliveryId, OrgId, QueueId, TeamId};
use careline_core::model::{CareTeam, Queue};
use careline_core::settings::OrgSettings;
use careline_core::{Error, Result};
use careline_store::Bus;
use jiff::Timestamp;
use sqlx_core::transaction::Transaction;
use sqlx_postgres::{PgConnection, Postgres};
use std::sync::Arc;
use uuid::Uuid;

/// An open transaction plus the events it appended (published after commit).
pub struct Tx {
    inner: Transaction<'static, Postgres>,
    events: Vec<Event>,
    /// The store instance writing, recorded on each event.
    node: Uuid,
    /// Chain heads this transaction holds, as its appends moved them; the
    /// rows are written back once, at commit.
    heads: Vec<Head>,
    /// Each organization's active webhooks, read once under its chain lock
    /// (webhooks are only added, and only under that lock).
    hooks: Vec<(OrgId, Hooks)>,
    /// Reference rows read once per transaction (see [`Tx::team`]).
    teams: Vec<CareTeam>,
    settings: Vec<(OrgId, OrgSettings)>,
    queues: Vec<(QueueId, Queue)>,
}

type Hooks = Arc<Vec<(Uuid, Vec<String>)>>;

#[derive(Clone)]
struct Head {
    org: OrgId,
    seq: i64,
    hash: String,
    moved: bool,
}

/// Webhook deliveries of one append, column by column for one `UNNEST` insert.
#[derive(Default)]
struct Deliveries(
    Vec<Uuid>,
    Vec<Uuid>,
    Vec<Uuid>,
    Vec<String>,
    Vec<String>,
    Vec<i64>,
);

/// Where a [`Tx`] stood when a savepoint was taken: rolling back to it also
/// forgets the events appended and the chain moves made since.
pub struct Mark {
    events: usize,
    heads: Vec<Head>,
    hooks: Vec<(OrgId, Hooks)>,
}

impl Tx {
    pub fn new(inner: Transaction<'static, Postgres>, node: Uuid) -> Tx {
        Tx {
            inner,
            events: Vec::new(),
            node,
            heads: Vec::new(),
            hooks: Vec::new(),
            teams: Vec::new(),
            settings: Vec::new(),
            queues: Vec::new(),
        }
    }

    // Teams and queues are never changed once created, and an
    // organization's settings change only in their own transaction under
    // its chain lock, never in a group; so inside a transaction that holds
    // the chain lock, the first read of each is good for all the writes of
    // the group.

    /// A care team, read once per transaction.
    pub async fn team(&mut self, id: TeamId) -> Result<CareTeam> {
        if let Some(t) = self.teams.iter().find(|t| t.id == id) {
            return Ok(t.clone());
        }
        let t = crate::rows::load_team(&mut self.inner, id).await?;
        self.teams.push(t.clone());
        Ok(t)
    }

    /// An organization's settings, read once per transaction.
    pub async fn settings(&mut self, org: OrgId) -> Result<OrgSettings> {
        if let Some((_, s)) = self.settings.iter().find(|(o, _)| *o == org) {
            return Ok(s.clone());
        }
        let s = crate::settings_of(&mut self.inner, org).await?;
        self.settings.push((org, s.clone()));
        Ok(s)
    }

    /// A queue, read once per transaction.
    pub async fn queue(&mut self, id: QueueId) -> Result<Queue> {
        if let Some((_, q)) = self.queues.iter().find(|(i, _)| *i == id) {
            return Ok(q.clone());
        }
        let (q, _) = crate::rows::load_queue(&mut self.inner, id).await?;
        self.queues.push((id, q.clone()));
        Ok(q)
    }

    /// The connection, for statements inside the transaction.
    pub fn c(&mut self) -> &mut PgConnection {
        &mut self.inner
    }

    /// Lock `org`'s chain head (creating it at the genesis if the
    /// organization has none yet) and return it. Locked once per
    /// transaction; later calls answer from memory.
    pub async fn lock_chain(&mut self, org: OrgId) -> Result<(i64, String)> {
        if let Some(h) = self.heads.iter().find(|h| h.org == org) {
            return Ok((h.seq, h.hash.clone()));
        }
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
        self.heads.push(Head {
            org,
            seq: head.0,
            hash: head.1.clone(),
            moved: false,
        });
        Ok(head)
    }

    /// The organization's active webhooks (read under its chain lock).
    async fn hooks(&mut self, org: OrgId) -> Result<Hooks> {
        if let Some((_, h)) = self.hooks.iter().find(|(o, _)| *o == org) {
            return Ok(h.clone());
        }
        let found: Vec<(Uuid, String)> = sqlx_core::query_as::query_as(
            "SELECT id, events FROM webhooks WHERE org_id = $1 AND active",
        )
        .bind(org.0)
        .fetch_all(&mut *self.inner)
        .await
        .map_err(db)?;
        let hooks: Hooks = Arc::new(
            found
                .into_iter()
                .map(|(id, kinds)| (id, careline_store::subscriptions(&kinds)))
                .collect(),
        );
        self.hooks.push((org, hooks.clone()));
        Ok(hooks)
    }

    /// Call after adding a webhook inside this transaction, so the next
    /// append delivers to it.
    pub fn forget_hooks(&mut self, org: OrgId) {
        self.hooks.retain(|(o, _)| *o != org);
    }

    /// Start a savepoint (releasing the previous one, `prev`, in the same
    /// round trip), for one job of a group commit.
    pub async fn savepoint(&mut self, prev: Option<Mark>) -> Result<Mark> {
        let sql = if prev.is_some() {
            "RELEASE SAVEPOINT job; SAVEPOINT job"
        } else {
            "SAVEPOINT job"
        };
        sqlx_core::raw_sql::raw_sql(sql)
            .execute(&mut *self.inner)
            .await
            .map_err(db)?;
        Ok(Mark {
            events: self.events.len(),
            heads: self.heads.clone(),
            hooks: self.hooks.clone(),
        })
    }

    /// Undo everything since `mark`, in the database and in memory.
    pub async fn rollback_to(&mut self, mark: Mark) -> Result<()> {
        q("ROLLBACK TO SAVEPOINT job")
            .execute(&mut *self.inner)
            .await
            .map_err(db)?;
        self.events.truncate(mark.events);
        self.heads = mark.heads;
        self.hooks = mark.hooks;
        Ok(())
    }

    /// Append events to the organization's chain, in order, with a webhook
    /// delivery for every active subscription that wants each one. One
    /// statement writes all the events, one more all their deliveries.
    pub async fn append(&mut self, org: OrgId, at: Timestamp, new: Vec<NewEvent>) -> Result<()> {
        if new.is_empty() {
            return Ok(());
        }
        let (mut seq, mut prev) = self.lock_chain(org).await?;
        let hooks = self.hooks(org).await?;
        let mut sealed = Vec::with_capacity(new.len());
        for n in new {
            seq += 1;
            let e = Event::seal(org, seq, &prev, at, n);
            prev.clone_from(&e.hash);
            sealed.push(e);
        }
        let col = |f: fn(&Event) -> Option<Uuid>| sealed.iter().map(f).collect::<Vec<_>>();
        q("INSERT INTO events (id, org_id, seq, at, kind, actor_id, member_id, ticket_id, thread_id, team_id, payload, prev_hash, hash, node)
           SELECT e.id, $1, e.seq, e.at, e.kind, e.actor_id, e.member_id, e.ticket_id, e.thread_id, e.team_id, e.payload, e.prev_hash, e.hash, $2
           FROM UNNEST($3::uuid[], $4::bigint[], $5::bigint[], $6::text[], $7::uuid[], $8::uuid[], $9::uuid[], $10::uuid[], $11::uuid[], $12::text[], $13::text[], $14::text[])
             AS e(id, seq, at, kind, actor_id, member_id, ticket_id, thread_id, team_id, payload, prev_hash, hash)")
            .bind(org.0)
            .bind(self.node)
            .bind(sealed.iter().map(|e| e.id.0).collect::<Vec<_>>())
            .bind(sealed.iter().map(|e| e.seq).collect::<Vec<_>>())
            .bind(sealed.iter().map(|e| e.at_us).collect::<Vec<_>>())
            .bind(sealed.iter().map(|e| e.kind.clone()).collect::<Vec<_>>())
            .bind(col(|e| e.actor_id.map(|x| x.0)))
            .bind(col(|e| e.member_id.map(|x| x.0)))
            .bind(col(|e| e.ticket_id.map(|x| x.0)))
            .bind(col(|e| e.thread_id.map(|x| x.0)))
            .bind(col(|e| e.team_id.map(|x| x.0)))
            .bind(sealed.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
            .bind(sealed.iter().map(|e| e.prev_hash.clone()).collect::<Vec<_>>())
            .bind(sealed.iter().map(|e| e.hash.clone()).collect::<Vec<_>>())
            .execute(&mut *self.inner)
            .await
            .map_err(db)?;
        let mut deliveries = Deliveries::default();
        for e in &sealed {
            for (hook, kinds) in hooks.iter() {
                if kinds.iter().any(|k| subscribed(k, &e.kind)) {
                    deliveries.0.push(DeliveryId::new().0);
                    deliveries.1.push(*hook);
                    deliveries.2.push(e.id.0);
                    deliveries.3.push(e.kind.clone());
                    deliveries.4.push(e.public_json().to_string());
                    deliveries.5.push(e.at_us);
                }
            }
        }
        if !deliveries.0.is_empty() {
            q("INSERT INTO deliveries (id, org_id, webhook_id, event_id, event_kind, body, status, attempts, next_attempt_at, created_at)
               SELECT d.id, $1, d.webhook_id, d.event_id, d.event_kind, d.body, 'pending', 0, d.at, d.at
               FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::bigint[])
                 AS d(id, webhook_id, event_id, event_kind, body, at)")
                .bind(org.0)
                .bind(deliveries.0)
                .bind(deliveries.1)
                .bind(deliveries.2)
                .bind(deliveries.3)
                .bind(deliveries.4)
                .bind(deliveries.5)
                .execute(&mut *self.inner)
                .await
                .map_err(db)?;
        }
        if let Some(h) = self.heads.iter_mut().find(|h| h.org == org) {
            h.seq = seq;
            h.hash = prev;
            h.moved = true;
        }
        self.events.extend(sealed);
        Ok(())
    }

    /// Commit, then publish the appended events. Other nodes hear of them
    /// through a notification that PostgreSQL delivers only on commit.
    pub async fn commit(mut self, bus: &Bus) -> Result<()> {
        for h in self.heads.iter().filter(|h| h.moved) {
            q("UPDATE chain_heads SET seq = $2, hash = $3 WHERE org_id = $1")
                .bind(h.org.0)
                .bind(h.seq)
                .bind(h.hash.clone())
                .execute(&mut *self.inner)
                .await
                .map_err(db)?;
        }
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
