//! careline's PostgreSQL store: the same [`Store`] contract as the embedded
//! SQLite store, for several stateless careline nodes sharing one database.
//!
//! - Domain logic is `careline_core`'s (ingest planning, the ticket state
//!   machine, escalation, authorization, the event chain); this crate loads
//!   rows, calls it, and writes the result with its events in one
//!   transaction.
//! - Each organization's hash chain is ordered by a row lock on its
//!   `chain_heads` row, taken first in every writing transaction (see `tx.rs`).
//! - Contacts and PHI-read records, the busiest writes, are committed in
//!   groups: many to a transaction and one chain lock (see `group.rs`).
//! - Leased work (due pages, webhook deliveries, attachment scans) is
//!   claimed with `FOR UPDATE SKIP LOCKED`, so each fires once across nodes.
//! - PHI is sealed exactly as the embedded store seals it (see `crypt.rs`).
//! - Migrations run under an advisory lock (see [`schema`]).
//! - Events committed by other nodes reach this node's bus through
//!   `LISTEN`/`NOTIFY` (see [`PgStore::relay_events`]).

mod access;
mod attachments;
mod audit;
pub mod backup;
mod chain;
mod crypt;
mod deep;
mod group;
pub use group::QUEUE_LIMIT;
mod hooks;
mod mfa;
mod proxies;
mod relay;
mod rows;
pub mod schema;
mod search;
mod tx;

#[cfg(feature = "testing")]
pub mod testing;

use async_trait::async_trait;
use careline_core::authz::{Grant, Principal};
use careline_core::escalation::{self, Page, Rota};
use careline_core::event::{Event, NewEvent};
use careline_core::feedback::{self, JudgementMark};
use careline_core::ids::*;
use careline_core::ingest::{self, ContactKind, Existing};
use careline_core::model::*;
use careline_core::reads::{self, PhiRead};
use careline_core::safety::TicketHistory;
use careline_core::settings::OrgSettings;
use careline_core::validate::MessageText;
use careline_core::{Error, Result};
use careline_core::{admin, privacy, session, ticket};
use careline_crypto::MasterKey;
use careline_store::*;
use crypt::Crypto;
use futures_util::FutureExt;
use jiff::Timestamp;
use rows::{db, get, q, us};
use sqlx_postgres::{PgConnection, PgPool, PgPoolOptions};
use std::sync::Arc;
use tx::Tx;
use uuid::Uuid;

/// Connections a node keeps to the database by default.
pub const DEFAULT_POOL_SIZE: u32 = 16;

/// The PostgreSQL store. Clones share the pool, keys, bus and committers.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    pub(crate) crypto: Arc<Crypto>,
    pub(crate) bus: Bus,
    /// This instance, recorded on the events it writes (see [`PgStore::relay_events`]).
    node: Uuid,
    /// Group commit of the busiest writes (see `group.rs`).
    groups: Arc<group::Groups>,
    /// Where the event relay got to, kept across its restarts (see `relay.rs`).
    relay_seen: Arc<std::sync::Mutex<Option<std::collections::HashMap<OrgId, i64>>>>,
}

impl PgStore {
    /// Connect to `url` with a pool of `max_connections`, migrate, and make
    /// sure every organization has a data key under `master`.
    pub async fn connect(url: &str, master: MasterKey, max_connections: u32) -> Result<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(|e| {
                let hint = if e.to_string().contains("certificate") {
                    " (sslmode=verify-full checks the server's certificate against sslrootcert=FILE in the URL, or the system's trusted roots)"
                } else {
                    ""
                };
                Error::Unavailable(format!("cannot connect to PostgreSQL: {e}{hint}"))
            })?;
        Self::open(pool, master).await
    }

    /// Use an existing pool: migrate, then load or create the data keys.
    pub async fn open(pool: PgPool, master: MasterKey) -> Result<PgStore> {
        let version = schema::migrate(&pool).await.map_err(db)?;
        if version > schema::latest() {
            return Err(schema_too_new(version.into(), schema::latest().into()));
        }
        let bus = Bus::default();
        let node = Uuid::now_v7();
        let store = PgStore {
            groups: Arc::new(group::Groups::new(pool.clone(), node, bus.clone())),
            relay_seen: Arc::default(),
            pool,
            crypto: Arc::new(Crypto::new(master)),
            bus,
            node,
        };
        // Refuses a master key that does not open the stored data keys.
        store.crypto.load_all(&store.pool).await?;
        // Member rows from before their fields were sealed are sealed now.
        let sealed = crypt::seal_plain_members(&store.pool, &store.crypto).await?;
        if sealed > 0 {
            tracing::info!(
                members = sealed,
                "sealed the identifiers and health markers of existing members"
            );
        }
        Ok(store)
    }

    /// Re-wrap every organization's data key under `new`, in one
    /// transaction (see `crypt.rs` for what this means for other nodes).
    /// This store keeps its own key; open a new one with `new` to go on.
    pub async fn rewrap_keys(&self, new: MasterKey) -> Result<usize> {
        crypt::rewrap_all(&self.pool, self.crypto.master(), &new).await
    }

    /// The id of the master key this store runs with (never the key).
    pub fn master_key_id(&self) -> &str {
        self.crypto.master_id()
    }

    /// The pool (for operations tools and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) async fn conn(
        &self,
    ) -> Result<sqlx_core::pool::PoolConnection<sqlx_postgres::Postgres>> {
        self.pool
            .acquire()
            .await
            .map_err(|e| Error::Unavailable(format!("no database connection: {e}")))
    }

    pub(crate) async fn begin(&self) -> Result<Tx> {
        let t = self
            .pool
            .begin()
            .await
            .map_err(|e| Error::Unavailable(format!("cannot begin a transaction: {e}")))?;
        Ok(Tx::new(t, self.node))
    }

    /// A transaction that holds `org`'s chain head from its first statement.
    pub(crate) async fn begin_for(&self, org: OrgId) -> Result<Tx> {
        let mut tx = self.begin().await?;
        tx.lock_chain(org).await?;
        Ok(tx)
    }

    /// A contact's writes, inside a group transaction holding the member's
    /// organization's chain lock: plan it from the latest committed state,
    /// write the thread, ticket, message and events, link its files, page.
    async fn contact_in(
        &self,
        tx: &mut Tx,
        member: Member,
        req: ContactRequest,
        now: Timestamp,
    ) -> Result<ContactOutcome> {
        let p = &req.principal;
        let k = &self.crypto;
        let team = tx.team(member.team_id).await?;
        let settings = tx.settings(member.org_id).await?;
        let thread = rows::thread_of_member(tx.c(), member.id).await?;
        let ticket = match &thread {
            Some(t) => rows::latest_ticket(tx.c(), k, t.id).await?,
            None => None,
        };
        let kind = req.contact.kind;
        let mut plan = ingest::plan_contact(
            p,
            &member,
            &team,
            Existing { thread, ticket },
            req.contact,
            &settings,
            now,
        )?;
        if plan.new_thread {
            rows::insert_thread(tx.c(), &plan.thread).await?;
        }
        rows::upsert_ticket(tx.c(), k, &plan.ticket).await?;
        rows::insert_message(tx.c(), k, &plan.message).await?;
        let call_id = if kind == ContactKind::CallNote {
            let id = CallId::new();
            q("INSERT INTO calls (id, org_id, member_id, agent_id, message_id, ticket_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(id.0)
                .bind(member.org_id.0)
                .bind(member.id.0)
                .bind(p.user_id.0)
                .bind(plan.message.id.0)
                .bind(plan.ticket.id.0)
                .bind(us(now))
                .execute(tx.c())
                .await
                .map_err(db)?;
            Some(id)
        } else {
            None
        };
        if let Some(m) = &plan.auto_reply {
            rows::insert_message(tx.c(), k, m).await?;
        }
        tx.append(member.org_id, now, std::mem::take(&mut plan.events))
            .await?;
        attachments::link(
            self,
            tx,
            p,
            &plan.message,
            member.id,
            member.team_id,
            &req.attachments,
            now,
        )
        .await?;
        let page = if plan.page_needed {
            Some(page_ticket(tx, &plan.ticket, now, &settings, now).await?)
        } else {
            None
        };
        let nurse = match page.as_ref().and_then(|p| p.targets.first()) {
            Some(u) => rows::user_name(tx.c(), *u).await?,
            None => None,
        };
        let queue = tx.queue(plan.ticket.queue_id).await?;
        Ok(ContactOutcome::planned(
            plan,
            queue,
            call_id,
            page,
            nurse.as_deref(),
        ))
    }

    /// Record reads of PHI as events: who, with which role, what, and the
    /// grant that allowed it. A member reading their own data is not logged.
    pub(crate) async fn log_reads(
        &self,
        p: &Principal,
        reads: Vec<PhiRead>,
        now: Timestamp,
    ) -> Result<()> {
        for (org, events) in reads::recorded(p, &reads) {
            self.groups
                .write(org, move |tx| tx.append(org, now, events).boxed())
                .await?;
        }
        Ok(())
    }

    /// Record a refused attempt to bury a red flag, in its own transaction
    /// (the attempt itself rolled back).
    async fn refused<T>(
        &self,
        p: &Principal,
        id: TicketId,
        what: &'static str,
        result: Result<T>,
        now: Timestamp,
    ) -> Result<T> {
        if ticket::refused_by_interlock(&result) {
            let recorded: Result<()> = async {
                let mut tx = self.begin_for(p.org_id).await?;
                let t = rows::load_ticket(tx.c(), &self.crypto, id).await?;
                tx.append(t.org_id, now, vec![t.override_refused(&p.actor(), what)])
                    .await?;
                tx.commit(&self.bus).await
            }
            .await;
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "could not record a refused override");
            }
        }
        result
    }

    async fn write_transition(
        &self,
        p: &Principal,
        id: TicketId,
        to: TicketStatus,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<Ticket> {
        let mut tx = self.begin_for(p.org_id).await?;
        let mut t = rows::load_ticket(tx.c(), &self.crypto, id).await?;
        p.work_ticket(&t)?;
        let events = t.transition(&p.actor(), to, reason.as_deref(), now)?;
        rows::upsert_ticket(tx.c(), &self.crypto, &t).await?;
        tx.append(t.org_id, now, events).await?;
        tx.commit(&self.bus).await?;
        Ok(t)
    }

    async fn write_set_priority(
        &self,
        p: &Principal,
        id: TicketId,
        to: careline_core::Disposition,
        reason: String,
        now: Timestamp,
    ) -> Result<Ticket> {
        let mut tx = self.begin_for(p.org_id).await?;
        let mut t = rows::load_ticket(tx.c(), &self.crypto, id).await?;
        p.work_ticket(&t)?;
        let before = t.clone();
        let team = rows::load_team(tx.c(), t.team_id).await?;
        let s = settings_of(tx.c(), t.org_id).await?;
        let mut events = t.set_priority(&p.actor(), to, &reason, &team, &s.sla, now)?;
        if t.clearance.is_some() {
            events.extend(supersede_cleared(tx.c(), id).await?);
        }
        rows::upsert_ticket(tx.c(), &self.crypto, &t).await?;
        tx.append(t.org_id, now, events).await?;
        if Ticket::needs_page(Some(&before), &t) {
            page_ticket(&mut tx, &t, now, &s, now).await?;
        }
        tx.commit(&self.bus).await?;
        Ok(t)
    }

    async fn write_book_visit(
        &self,
        p: &Principal,
        id: TicketId,
        kind: VisitKind,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<Visit> {
        let mut tx = self.begin_for(p.org_id).await?;
        let t = rows::load_ticket(tx.c(), &self.crypto, id).await?;
        p.work_ticket(&t)?;
        let (v, events) = t.book_visit(&p.actor(), kind, at, now)?;
        q("INSERT INTO visits (id, org_id, ticket_id, member_id, kind, at, booked_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(v.id.0)
            .bind(v.org_id.0)
            .bind(v.ticket_id.0)
            .bind(v.member_id.0)
            .bind(kind.as_str())
            .bind(us(at))
            .bind(p.user_id.0)
            .bind(us(now))
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(t.org_id, now, events).await?;
        tx.commit(&self.bus).await?;
        Ok(v)
    }

    /// Escalate the due pages among `ids`, all of organization `org`.
    async fn escalate_org(&self, org: OrgId, ids: Vec<Uuid>, now: Timestamp) -> Result<Vec<Page>> {
        let mut tx = self.begin_for(org).await?;
        // Under the chain lock the page's state is the last committed one: a
        // page another node escalated is no longer open and is not selected.
        let due = q("SELECT * FROM pages WHERE id = ANY($1) AND status = 'open' AND deadline IS NOT NULL AND deadline <= $2
                     ORDER BY deadline FOR UPDATE SKIP LOCKED")
            .bind(ids)
            .bind(us(now))
            .fetch_all(tx.c())
            .await
            .map_err(db)?;
        let mut fired = Vec::new();
        for mut pg in rows::pages(&due)? {
            let t = rows::load_ticket(tx.c(), &self.crypto, pg.ticket_id).await?;
            let s = settings_of(tx.c(), pg.org_id).await?;
            let r = rota_of(tx.c(), pg.team_id).await?;
            let (next, events) = pg.escalate(&t, &r, &s.ack, now)?;
            rows::upsert_page(tx.c(), &pg).await?;
            rows::upsert_page(tx.c(), &next).await?;
            tx.append(pg.org_id, now, events).await?;
            fired.push(next);
        }
        tx.commit(&self.bus).await?;
        Ok(fired)
    }
}

/// Leased work found without locks (id, organization), grouped by
/// organization in the order first found: each group is then re-selected
/// and claimed under its organization's chain lock.
pub(crate) fn by_org(found: Vec<(Uuid, Uuid)>) -> Vec<(OrgId, Vec<Uuid>)> {
    let mut out: Vec<(OrgId, Vec<Uuid>)> = Vec::new();
    for (id, org) in found {
        match out.iter_mut().find(|(o, _)| o.0 == org) {
            Some((_, ids)) => ids.push(id),
            None => out.push((OrgId(org), vec![id])),
        }
    }
    out
}

pub(crate) async fn settings_of(c: &mut PgConnection, org: OrgId) -> Result<OrgSettings> {
    let row: Option<(String,)> =
        sqlx_core::query_as::query_as("SELECT settings FROM organizations WHERE id = $1")
            .bind(org.0)
            .fetch_optional(&mut *c)
            .await
            .map_err(db)?;
    let (settings,) = row.ok_or(Error::NotFound("organization"))?;
    serde_json::from_str(&settings)
        .map_err(|e| Error::internal(format!("organization settings: {e}")))
}

async fn rota_of(c: &mut PgConnection, team: TeamId) -> Result<Rota> {
    let row = q("SELECT * FROM rotas WHERE team_id = $1")
        .bind(team.0)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?;
    let Some(r) = row else {
        return Ok(Rota::default());
    };
    let sup: String = get(&r, "supervisors")?;
    let (supervisors, unreadable) = careline_store::rota_supervisors(&sup);
    Ok(Rota {
        primary: rows::opt_uuid(&r, "primary_id")?.map(UserId),
        backup: rows::opt_uuid(&r, "backup_id")?.map(UserId),
        physician: rows::opt_uuid(&r, "physician_id")?.map(UserId),
        supervisors,
        unreadable,
    })
}

async fn open_pages_of(c: &mut PgConnection, ticket: TicketId) -> Result<Vec<Page>> {
    let found = q("SELECT * FROM pages WHERE ticket_id = $1 AND status = 'open'")
        .bind(ticket.0)
        .fetch_all(&mut *c)
        .await
        .map_err(db)?;
    rows::pages(&found)
}

/// A clinical clearance makes a ticket's open pages moot: supersede them.
async fn supersede_cleared(c: &mut PgConnection, ticket: TicketId) -> Result<Vec<NewEvent>> {
    let mut open = open_pages_of(&mut *c, ticket).await?;
    let events = escalation::supersede_all(&mut open, "clinical clearance recorded");
    for pg in &open {
        rows::upsert_page(&mut *c, pg).await?;
    }
    Ok(events)
}

/// Page the first rung for a ticket's red flag, superseding older open pages.
async fn page_ticket(
    tx: &mut Tx,
    t: &Ticket,
    flagged_at: Timestamp,
    s: &OrgSettings,
    now: Timestamp,
) -> Result<Page> {
    let open = open_pages_of(tx.c(), t.id).await?;
    let r = rota_of(tx.c(), t.team_id).await?;
    let (superseded, page, events) = escalation::page_again(t, open, &r, &s.ack, flagged_at, now);
    for old in &superseded {
        rows::upsert_page(tx.c(), old).await?;
    }
    rows::upsert_page(tx.c(), &page).await?;
    tx.append(t.org_id, now, events).await?;
    Ok(page)
}

/// Whether `p` holds a page on this ticket (a paged clinician may act on it).
async fn paged_on(c: &mut PgConnection, p: &Principal, ticket: TicketId) -> Result<bool> {
    let found = q("SELECT * FROM pages WHERE ticket_id = $1")
        .bind(ticket.0)
        .fetch_all(&mut *c)
        .await
        .map_err(db)?;
    Ok(p.holds_page(&rows::pages(&found)?))
}

async fn ticket_with_queue(
    c: &mut PgConnection,
    k: &Crypto,
    p: &Principal,
    id: TicketId,
) -> Result<(Ticket, Queue)> {
    let t = rows::load_ticket(c, k, id).await?;
    p.ticket_access(&t)?;
    let (q, _) = rows::load_queue(c, t.queue_id).await?;
    Ok((t, q))
}

/// A proxy's live grants.
async fn proxy_scopes(
    c: &mut PgConnection,
    user: UserId,
    now: Timestamp,
) -> Result<Vec<(MemberId, careline_core::authz::ProxyScope)>> {
    let found: Vec<(Uuid, String)> = sqlx_core::query_as::query_as(
        "SELECT member_id, scope FROM proxies WHERE proxy_user_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(user.0)
    .bind(us(now))
    .fetch_all(&mut *c)
    .await
    .map_err(db)?;
    Ok(found
        .into_iter()
        .map(|(m, scope)| {
            (
                MemberId(m),
                careline_core::authz::ProxyScope::parse(&scope)
                    .unwrap_or(careline_core::authz::ProxyScope::Messages),
            )
        })
        .collect())
}

#[async_trait]
impl Store for PgStore {
    fn bus(&self) -> &Bus {
        &self.bus
    }

    async fn ready(&self) -> Result<()> {
        let mut c = self.conn().await?;
        q("SELECT 1").execute(&mut *c).await.map_err(db)?;
        Ok(())
    }

    fn shared(&self) -> bool {
        true
    }

    async fn relay(
        &self,
        stop: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
        beat: &(dyn Fn() + Send + Sync),
    ) -> Result<()> {
        self.relay_events(stop, beat).await
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        let mut c = self.conn().await?;
        let row = q("SELECT * FROM users WHERE username = $1")
            .bind(username.to_lowercase())
            .fetch_optional(&mut *c)
            .await
            .map_err(db)?;
        row.map(|r| {
            Ok(Credentials {
                user: rows::user(&r)?,
                password_hash: get(&r, "password_hash")?,
            })
        })
        .transpose()
    }

    async fn create_session(&self, s: NewSession, now: Timestamp) -> Result<()> {
        let mut tx = self.begin_for(s.org_id).await?;
        q("INSERT INTO sessions (token_hash, user_id, org_id, created_at, expires_at, mfa_pending) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(s.token_hash.clone())
            .bind(s.user_id.0)
            .bind(s.org_id.0)
            .bind(us(now))
            .bind(us(s.expires_at))
            .bind(s.mfa_pending)
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(
            s.org_id,
            now,
            vec![session::created(s.user_id, s.expires_at)],
        )
        .await?;
        tx.commit(&self.bus).await
    }

    async fn record_login_failure(
        &self,
        org: OrgId,
        user: Option<UserId>,
        username: &str,
        address: Option<std::net::IpAddr>,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin_for(org).await?;
        if let Some(u) = user {
            q("INSERT INTO login_failures (user_id, at) VALUES ($1, $2)")
                .bind(u.0)
                .bind(us(now))
                .execute(tx.c())
                .await
                .map_err(db)?;
        }
        tx.append(
            org,
            now,
            vec![session::login_failed(user, username, address)],
        )
        .await?;
        tx.commit(&self.bus).await
    }

    async fn record_login_attack(
        &self,
        org: OrgId,
        user: UserId,
        role: careline_core::model::Role,
        failures: u32,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin_for(org).await?;
        tx.append(org, now, vec![session::login_attack(user, role, failures)])
            .await?;
        tx.commit(&self.bus).await
    }

    async fn record_login_throttled(
        &self,
        org: OrgId,
        user: UserId,
        address: std::net::IpAddr,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin_for(org).await?;
        tx.append(org, now, vec![session::login_throttled(user, address)])
            .await?;
        tx.commit(&self.bus).await
    }

    async fn load_principal(
        &self,
        token_hash: &str,
        now: Timestamp,
        idle: jiff::SignedDuration,
        mark_used: bool,
    ) -> Result<Option<Principal>> {
        let mut c = self.conn().await?;
        let row = q("SELECT u.*, COALESCE(s.last_seen_at, s.created_at) AS seen, s.mfa_pending AS mfa_pending
                     FROM sessions s JOIN users u ON u.id = s.user_id
                     WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.revoked_at IS NULL AND NOT u.disabled")
            .bind(token_hash)
            .bind(us(now))
            .fetch_optional(&mut *c)
            .await
            .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let user = rows::user(&row)?;
        let seen = rows::ts(&row, "seen")?;
        let enrolment_only: bool = get(&row, "mfa_pending")?;
        if session::lapsed(seen, now, idle) {
            return Ok(None);
        }
        let team_ids = rows::team_ids(&mut c, user.id).await?;
        let proxy_for = if user.role == Role::Proxy {
            proxy_scopes(&mut c, user.id, now).await?
        } else {
            Vec::new()
        };
        let mut grants = Vec::new();
        if user.role.is_staff() {
            let tagged: Vec<(Uuid,)> = sqlx_core::query_as::query_as(
                "SELECT member_id FROM collaborators WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
            )
            .bind(user.id.0)
            .bind(us(now))
            .fetch_all(&mut *c)
            .await
            .map_err(db)?;
            grants.extend(tagged.into_iter().map(|(m,)| (MemberId(m), Grant::Tagged)));
            let paged: Vec<(Uuid, String, String)> = sqlx_core::query_as::query_as(
                "SELECT DISTINCT p.member_id, p.level, p.targets FROM pages p JOIN tickets t ON t.id = p.ticket_id
                 WHERE p.org_id = $1 AND t.status NOT IN ('solved', 'closed')",
            )
            .bind(user.org_id.0)
            .fetch_all(&mut *c)
            .await
            .map_err(db)?;
            for (m, level, targets) in paged {
                if session::paged_by(&user, &level, &targets) {
                    grants.push((MemberId(m), Grant::Paged));
                }
            }
            let glass: Vec<(Uuid,)> = sqlx_core::query_as::query_as(
                "SELECT member_id FROM break_glass WHERE user_id = $1 AND expires_at > $2",
            )
            .bind(user.id.0)
            .bind(us(now))
            .fetch_all(&mut *c)
            .await
            .map_err(db)?;
            grants.extend(
                glass
                    .into_iter()
                    .map(|(m,)| (MemberId(m), Grant::BreakGlass)),
            );
        }
        if mark_used && session::touch_due(seen, now) {
            q("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
                .bind(us(now))
                .bind(token_hash)
                .execute(&mut *c)
                .await
                .map_err(db)?;
        }
        Ok(Some(session::principal(
            user,
            team_ids,
            proxy_for,
            grants,
            enrolment_only,
        )))
    }

    async fn session_facts(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<careline_core::stream::SessionFacts>> {
        let mut c = self.conn().await?;
        let row = q("SELECT s.expires_at, s.revoked_at, COALESCE(s.last_seen_at, s.created_at) AS seen, u.disabled,
                (SELECT MIN(c.expires_at) FROM collaborators c WHERE c.user_id = s.user_id AND c.revoked_at IS NULL AND c.expires_at > $2) AS tag_until,
                (SELECT MIN(b.expires_at) FROM break_glass b WHERE b.user_id = s.user_id AND b.expires_at > $2) AS glass_until,
                (SELECT MIN(x.expires_at) FROM proxies x WHERE x.proxy_user_id = s.user_id AND x.expires_at > $2) AS proxy_until
              FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1")
            .bind(token_hash)
            .bind(us(now))
            .fetch_optional(&mut *c)
            .await
            .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let mut grant_expiries = Vec::new();
        for col in ["tag_until", "glass_until", "proxy_until"] {
            grant_expiries.extend(rows::opt_ts(&row, col)?);
        }
        Ok(Some(careline_core::stream::SessionFacts {
            expires_at: rows::ts(&row, "expires_at")?,
            revoked_at: rows::opt_ts(&row, "revoked_at")?,
            seen: rows::ts(&row, "seen")?,
            disabled: get(&row, "disabled")?,
            grant_expiries,
        }))
    }

    async fn revoke_session(&self, token_hash: &str, now: Timestamp) -> Result<()> {
        let found: Option<(Uuid, Uuid)> = {
            let mut c = self.conn().await?;
            sqlx_core::query_as::query_as(
                "SELECT user_id, org_id FROM sessions WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(token_hash)
            .fetch_optional(&mut *c)
            .await
            .map_err(db)?
        };
        let Some((user, org)) = found else {
            return Ok(());
        };
        let (user, org) = (UserId(user), OrgId(org));
        let mut tx = self.begin_for(org).await?;
        let n =
            q("UPDATE sessions SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL")
                .bind(us(now))
                .bind(token_hash)
                .execute(tx.c())
                .await
                .map_err(db)?
                .rows_affected();
        if n > 0 {
            tx.append(org, now, vec![session::revoked_current(user)])
                .await?;
        }
        tx.commit(&self.bus).await
    }

    async fn revoke_user_sessions(
        &self,
        p: &Principal,
        user: UserId,
        now: Timestamp,
    ) -> Result<u64> {
        session::revoke_others_request(p)?;
        let mut tx = self.begin_for(p.org_id).await?;
        let u = rows::load_user(tx.c(), user)
            .await?
            .filter(|u| u.org_id == p.org_id)
            .ok_or(Error::NotFound("user"))?;
        let n = q("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND expires_at > $1")
            .bind(us(now))
            .bind(u.id.0)
            .execute(tx.c())
            .await
            .map_err(db)?
            .rows_affected();
        tx.append(
            p.org_id,
            now,
            vec![session::revoked_all(p.user_id, u.id, n)],
        )
        .await?;
        tx.commit(&self.bus).await?;
        Ok(n)
    }

    async fn mfa_state(&self, user: UserId) -> Result<MfaState> {
        self.mfa_state_(user).await
    }

    async fn set_totp_secret(&self, p: &Principal, secret: String, _now: Timestamp) -> Result<()> {
        self.set_totp_secret_(p, secret).await
    }

    async fn enable_totp(
        &self,
        p: &Principal,
        step: i64,
        recovery_hashes: Vec<String>,
        now: Timestamp,
    ) -> Result<()> {
        self.enable_totp_(p, step, recovery_hashes, now).await
    }

    async fn record_totp_step(&self, user: UserId, step: i64) -> Result<bool> {
        self.record_totp_step_(user, step).await
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<bool> {
        self.use_recovery_code_(user, code_hash, now).await
    }

    async fn record_contact(&self, req: ContactRequest, now: Timestamp) -> Result<ContactOutcome> {
        let member = {
            let mut c = self.conn().await?;
            rows::load_member(&mut c, &self.crypto, req.member_id).await?
        };
        // Refused before it queues behind other writes; the plan checks again.
        ingest::check_sender(&req.principal, req.contact.kind, &member)?;
        let store = self.clone();
        let org = member.org_id;
        self.groups
            .write(org, move |tx| {
                async move { store.contact_in(tx, member, req, now).await }.boxed()
            })
            .await
    }

    async fn thread(
        &self,
        p: &Principal,
        id: ThreadId,
        now: Timestamp,
    ) -> Result<(Thread, Vec<Message>)> {
        let (thread, msgs, read) = {
            let mut c = self.conn().await?;
            let thread = rows::load_thread(&mut c, id).await?;
            let member = rows::load_member(&mut c, &self.crypto, thread.member_id).await?;
            let grant = p.thread_access(&member)?;
            let found = q("SELECT * FROM messages WHERE thread_id = $1 ORDER BY created_at, id")
                .bind(id.0)
                .fetch_all(&mut *c)
                .await
                .map_err(db)?;
            let mut msgs = Vec::with_capacity(found.len());
            for r in &found {
                msgs.push(rows::message(&mut c, &self.crypto, r).await?);
            }
            msgs.retain(|m| p.sees_message(m));
            let read = PhiRead::thread(&thread, grant);
            (thread, msgs, read)
        };
        self.log_reads(p, vec![read], now).await?;
        Ok((thread, msgs))
    }

    async fn ticket(&self, p: &Principal, id: TicketId, now: Timestamp) -> Result<(Ticket, Queue)> {
        let (t, q) = {
            let mut c = self.conn().await?;
            ticket_with_queue(&mut c, &self.crypto, p, id).await?
        };
        let grant = p.ticket_access(&t)?;
        self.log_reads(p, vec![PhiRead::ticket(&t, "ticket", grant)], now)
            .await?;
        Ok((t, q))
    }

    async fn tickets(
        &self,
        p: &Principal,
        f: TicketFilter,
        now: Timestamp,
    ) -> Result<Vec<(Ticket, Queue)>> {
        let Some(scope) = p.ticket_scope() else {
            return Ok(Vec::new());
        };
        let teams: Vec<Uuid> = scope.teams.iter().map(|t| t.0).collect();
        let members: Vec<Uuid> = scope.members.iter().map(|m| m.0).collect();
        let found = q(
            "SELECT t.*, q.id AS q_id, q.team_id AS q_team_id, q.name AS q_name, q.kind AS q_kind
                       FROM tickets t JOIN queues q ON q.id = t.queue_id
                       WHERE t.org_id = $1 AND (t.team_id = ANY($2) OR t.member_id = ANY($3))
                         AND ($4::uuid IS NULL OR t.queue_id = $4)
                         AND ($5::text IS NULL OR t.status = $5)
                         AND ($6::text IS NULL OR t.priority = $6)
                         AND ($7::uuid IS NULL OR t.member_id = $7)
                         AND (NOT $9 OR t.review_due IS NOT NULL)
                       ORDER BY t.priority_rank DESC, (t.next_due IS NULL), t.next_due, t.created_at
                       LIMIT $8",
        )
        .bind(p.org_id.0)
        .bind(teams)
        .bind(members)
        .bind(f.queue.map(|x| x.0))
        .bind(f.status.map(|s| s.as_str().to_owned()))
        .bind(f.priority.map(|s| s.as_str().to_owned()))
        .bind(f.member.map(|x| x.0))
        .bind(i64::from(f.page_size()))
        .bind(f.review_pending)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut out = Vec::with_capacity(found.len());
        {
            let mut c = self.conn().await?;
            for r in &found {
                let queue = Queue {
                    id: QueueId(rows::uuid(r, "q_id")?),
                    team_id: TeamId(rows::uuid(r, "q_team_id")?),
                    name: get(r, "q_name")?,
                    kind: rows::parsed(r, "q_kind")?,
                };
                out.push((rows::ticket(&mut c, &self.crypto, r).await?, queue));
            }
        }
        self.log_reads(p, reads::ticket_list(p, out.iter().map(|(t, _)| t)), now)
            .await?;
        Ok(out)
    }

    async fn queues(&self, p: &Principal) -> Result<Vec<QueueSummary>> {
        let found = q("SELECT q.*, tm.name AS team_name,
                          COUNT(t.id) FILTER (WHERE t.status NOT IN ('solved', 'closed')) AS open,
                          COUNT(t.id) FILTER (WHERE t.status NOT IN ('solved', 'closed') AND t.assignee_id IS NULL) AS unassigned,
                          COUNT(t.id) FILTER (WHERE t.status NOT IN ('solved', 'closed') AND t.priority = 'emergency') AS emergency,
                          COUNT(t.id) FILTER (WHERE t.status NOT IN ('solved', 'closed') AND t.priority = 'urgent') AS urgent
                       FROM queues q JOIN teams tm ON tm.id = q.team_id
                       LEFT JOIN tickets t ON t.queue_id = q.id
                       WHERE q.org_id = $1
                       GROUP BY q.id, tm.name ORDER BY tm.name, q.kind DESC")
            .bind(p.org_id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let mut all = Vec::with_capacity(found.len());
        for r in &found {
            all.push(QueueSummary {
                queue: rows::queue(r)?,
                team_name: get(r, "team_name")?,
                open: get(r, "open")?,
                unassigned: get(r, "unassigned")?,
                emergency: get(r, "emergency")?,
                urgent: get(r, "urgent")?,
            });
        }
        Ok(all
            .into_iter()
            .filter(|q| p.sees_team(q.queue.team_id))
            .collect())
    }

    async fn queue(&self, p: &Principal, id: QueueId) -> Result<Queue> {
        let mut c = self.conn().await?;
        let (queue, org) = rows::load_queue(&mut c, id).await?;
        if org != p.org_id {
            return Err(Error::NotFound("queue"));
        }
        Ok(queue)
    }

    async fn member(&self, p: &Principal, id: MemberId, now: Timestamp) -> Result<(Member, Grant)> {
        let m = {
            let mut c = self.conn().await?;
            rows::load_member(&mut c, &self.crypto, id).await?
        };
        let grant = p.record_access(m.org_id, m.id, m.team_id)?;
        self.log_reads(p, vec![PhiRead::member(&m, grant)], now)
            .await?;
        Ok((m, grant))
    }

    async fn access_log(
        &self,
        p: &Principal,
        member: MemberId,
        limit: u32,
    ) -> Result<Vec<AccessEntry>> {
        let mut c = self.conn().await?;
        let m = rows::load_member(&mut c, &self.crypto, member).await?;
        p.see_access_log(&m)?;
        let found = q("SELECT e.at, e.actor_id, e.payload, u.name, u.role FROM events e LEFT JOIN users u ON u.id = e.actor_id
                       WHERE e.member_id = $1 AND e.kind = 'phi.read' ORDER BY e.at DESC, e.seq DESC LIMIT $2")
            .bind(member.0)
            .bind(i64::from(limit.clamp(1, 5000)))
            .fetch_all(&mut *c)
            .await
            .map_err(db)?;
        found
            .iter()
            .map(|r| {
                Ok(AccessEntry::from_event(
                    rows::ts(r, "at")?,
                    rows::opt_uuid(r, "actor_id")?.map(UserId),
                    &get::<String>(r, "payload")?,
                    get(r, "name")?,
                    get(r, "role")?,
                ))
            })
            .collect()
    }

    async fn add_collaborator(
        &self,
        p: &Principal,
        thread: ThreadId,
        user: UserId,
        reason: String,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Collaborator> {
        self.add_collaborator_(p, thread, user, reason, expires_at, now)
            .await
    }

    async fn remove_collaborator(
        &self,
        p: &Principal,
        thread: ThreadId,
        user: UserId,
        now: Timestamp,
    ) -> Result<()> {
        self.remove_collaborator_(p, thread, user, now).await
    }

    async fn collaborators(&self, p: &Principal, thread: ThreadId) -> Result<Vec<Collaborator>> {
        self.collaborators_(p, thread).await
    }

    async fn break_glass(
        &self,
        p: &Principal,
        member: MemberId,
        reason: String,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<BreakGlass> {
        self.break_glass_(p, member, reason, until, now).await
    }

    async fn break_glass_reviews(&self, p: &Principal, open_only: bool) -> Result<Vec<BreakGlass>> {
        self.break_glass_reviews_(p, open_only).await
    }

    async fn review_break_glass(
        &self,
        p: &Principal,
        id: Uuid,
        note: String,
        now: Timestamp,
    ) -> Result<BreakGlass> {
        self.review_break_glass_(p, id, note, now).await
    }

    async fn reply(
        &self,
        p: &Principal,
        id: TicketId,
        text: MessageText,
        internal: bool,
        files: Vec<AttachmentId>,
        now: Timestamp,
    ) -> Result<(Message, Ticket)> {
        let mut tx = self.begin_for(p.org_id).await?;
        let mut t = rows::load_ticket(tx.c(), &self.crypto, id).await?;
        p.work_ticket(&t)?;
        let (m, events) = t.staff_reply(&p.actor(), text, internal, now)?;
        rows::insert_message(tx.c(), &self.crypto, &m).await?;
        rows::upsert_ticket(tx.c(), &self.crypto, &t).await?;
        tx.append(t.org_id, now, events).await?;
        attachments::link(self, &mut tx, p, &m, t.member_id, t.team_id, &files, now).await?;
        tx.commit(&self.bus).await?;
        Ok((m, t))
    }

    async fn assign(
        &self,
        p: &Principal,
        id: TicketId,
        to: Option<UserId>,
        now: Timestamp,
    ) -> Result<Ticket> {
        let mut tx = self.begin_for(p.org_id).await?;
        let mut t = rows::load_ticket(tx.c(), &self.crypto, id).await?;
        p.work_ticket(&t)?;
        if let Some(to) = to {
            let assignee = rows::load_user(tx.c(), to).await?;
            let teams = match &assignee {
                Some(u) => rows::team_ids(tx.c(), u.id).await?,
                None => Vec::new(),
            };
            t.check_assignee(assignee.as_ref(), &teams)?;
        }
        let events = t.assign(&p.actor(), to, now);
        rows::upsert_ticket(tx.c(), &self.crypto, &t).await?;
        tx.append(t.org_id, now, events).await?;
        tx.commit(&self.bus).await?;
        Ok(t)
    }

    async fn transition(
        &self,
        p: &Principal,
        id: TicketId,
        to: TicketStatus,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<Ticket> {
        let what = ticket::transition_attempt(to);
        let r = self.write_transition(p, id, to, reason, now).await;
        self.refused(p, id, what, r, now).await
    }

    async fn rota(&self, p: &Principal, team: TeamId) -> Result<Rota> {
        let mut c = self.conn().await?;
        p.see_rota(&rows::load_team(&mut c, team).await?)?;
        rota_of(&mut c, team).await
    }

    async fn set_rota(&self, p: &Principal, team: TeamId, r: Rota, now: Timestamp) -> Result<Rota> {
        let mut tx = self.begin_for(p.org_id).await?;
        p.manage_rota(&rows::load_team(tx.c(), team).await?)?;
        for (u, place) in r.named() {
            place.check(p.org_id, rows::load_user(tx.c(), u).await?.as_ref())?;
        }
        q("INSERT INTO rotas (team_id, org_id, primary_id, backup_id, physician_id, supervisors, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (team_id) DO UPDATE SET primary_id = excluded.primary_id, backup_id = excluded.backup_id,
              physician_id = excluded.physician_id, supervisors = excluded.supervisors, updated_at = excluded.updated_at")
            .bind(team.0)
            .bind(p.org_id.0)
            .bind(r.primary.map(|x| x.0))
            .bind(r.backup.map(|x| x.0))
            .bind(r.physician.map(|x| x.0))
            .bind(rows::to_json(&r.supervisors)?)
            .bind(us(now))
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(p.org_id, now, vec![r.set_event(p.user_id, team)])
            .await?;
        tx.commit(&self.bus).await?;
        Ok(r)
    }

    async fn ticket_pages(
        &self,
        p: &Principal,
        ticket: TicketId,
        now: Timestamp,
    ) -> Result<Vec<Page>> {
        let (pages, read) = {
            let mut c = self.conn().await?;
            let t = rows::load_ticket(&mut c, &self.crypto, ticket).await?;
            let grant = p.ticket_access(&t)?;
            let found =
                q("SELECT * FROM pages WHERE ticket_id = $1 ORDER BY created_at DESC, id DESC")
                    .bind(ticket.0)
                    .fetch_all(&mut *c)
                    .await
                    .map_err(db)?;
            (rows::pages(&found)?, PhiRead::ticket(&t, "pages", grant))
        };
        self.log_reads(p, vec![read], now).await?;
        Ok(pages)
    }

    async fn my_pages(&self, p: &Principal) -> Result<Vec<Page>> {
        let found =
            q("SELECT * FROM pages WHERE org_id = $1 AND status = 'open' ORDER BY created_at")
                .bind(p.org_id.0)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        let actor = p.actor();
        Ok(rows::pages(&found)?
            .into_iter()
            .filter(|pg| pg.may_ack(&actor))
            .collect())
    }

    async fn ack_page(&self, p: &Principal, page: PageId, now: Timestamp) -> Result<Page> {
        let mut tx = self.begin_for(p.org_id).await?;
        let row = q("SELECT * FROM pages WHERE id = $1 AND org_id = $2 FOR UPDATE")
            .bind(page.0)
            .bind(p.org_id.0)
            .fetch_optional(tx.c())
            .await
            .map_err(db)?
            .ok_or(Error::NotFound("page"))?;
        let mut pg = rows::page(&row)?;
        let events = pg.acknowledge(&p.actor(), now)?;
        rows::upsert_page(tx.c(), &pg).await?;
        tx.append(pg.org_id, now, events).await?;
        tx.commit(&self.bus).await?;
        Ok(pg)
    }

    async fn escalate_due(&self, now: Timestamp, limit: u32) -> Result<Vec<Page>> {
        // Candidates are read without locks; each organization's share is
        // then re-selected and escalated under that organization's chain
        // lock (see `escalate_org`), which makes each escalation happen once.
        let due: Vec<(Uuid, Uuid)> = sqlx_core::query_as::query_as(
            "SELECT id, org_id FROM pages WHERE status = 'open' AND deadline IS NOT NULL AND deadline <= $1 ORDER BY deadline LIMIT $2",
        )
        .bind(us(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut fired = Vec::new();
        for (org, ids) in by_org(due) {
            fired.extend(self.escalate_org(org, ids, now).await?);
        }
        Ok(fired)
    }

    async fn next_page_deadline(&self) -> Result<Option<Timestamp>> {
        let (v,): (Option<i64>,) = sqlx_core::query_as::query_as(
            "SELECT MIN(deadline) FROM pages WHERE status = 'open' AND deadline IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(v.and_then(|us| Timestamp::from_microsecond(us).ok()))
    }

    async fn clear(
        &self,
        p: &Principal,
        id: TicketId,
        disposition: careline_core::Disposition,
        note: String,
        now: Timestamp,
    ) -> Result<Ticket> {
        let mut tx = self.begin_for(p.org_id).await?;
        let mut t = rows::load_ticket(tx.c(), &self.crypto, id).await?;
        // A clinician paged on the ticket may clear it from outside the team.
        if let Err(e) = p.ticket_access(&t)
            && !(p.role.is_clinical() && paged_on(tx.c(), p, id).await?)
        {
            return Err(e);
        }
        let team = rows::load_team(tx.c(), t.team_id).await?;
        let mut events = t.clear(&p.actor(), disposition, &note, &team, now)?;
        events.extend(supersede_cleared(tx.c(), id).await?);
        rows::upsert_ticket(tx.c(), &self.crypto, &t).await?;
        tx.append(t.org_id, now, events).await?;
        tx.commit(&self.bus).await?;
        Ok(t)
    }

    async fn mark_judgement(
        &self,
        p: &Principal,
        ticket: TicketId,
        message: MessageId,
        should_be: careline_core::Disposition,
        note: String,
        now: Timestamp,
    ) -> Result<JudgementMark> {
        let mut tx = self.begin_for(p.org_id).await?;
        let t = rows::load_ticket(tx.c(), &self.crypto, ticket).await?;
        let m = rows::load_message(tx.c(), &self.crypto, p.org_id, message).await?;
        let (mark, ev) = feedback::mark(p, &t, &m, should_be, &note, now)?;
        rows::insert_mark(tx.c(), &self.crypto, &mark).await?;
        tx.append(mark.org_id, now, vec![ev]).await?;
        tx.commit(&self.bus).await?;
        Ok(mark)
    }

    async fn judgement_marks(
        &self,
        p: &Principal,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<MarkedContact>> {
        feedback::list_request(p)?;
        let org = p.org_id;
        let found = q(
            "SELECT * FROM judgement_marks WHERE org_id = $1 ORDER BY created_at DESC, id LIMIT $2",
        )
        .bind(org.0)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut out = Vec::with_capacity(found.len());
        {
            let mut c = self.conn().await?;
            for r in &found {
                let mark = rows::mark(&mut c, &self.crypto, r).await?;
                let m = rows::load_message(&mut c, &self.crypto, org, mark.message_id).await?;
                let member = rows::load_member(&mut c, &self.crypto, mark.member_id).await?;
                out.push(MarkedContact::new(mark, &m, member.language));
            }
        }
        self.log_reads(p, out.iter().map(MarkedContact::read).collect(), now)
            .await?;
        Ok(out)
    }

    async fn clear_review(
        &self,
        p: &Principal,
        id: TicketId,
        note: String,
        now: Timestamp,
    ) -> Result<Ticket> {
        let mut tx = self.begin_for(p.org_id).await?;
        let mut t = rows::load_ticket(tx.c(), &self.crypto, id).await?;
        p.work_ticket(&t)?;
        let team = rows::load_team(tx.c(), t.team_id).await?;
        let events = t.clear_review(&p.actor(), &note, &team, now)?;
        rows::upsert_ticket(tx.c(), &self.crypto, &t).await?;
        tx.append(t.org_id, now, events).await?;
        tx.commit(&self.bus).await?;
        Ok(t)
    }

    async fn set_priority(
        &self,
        p: &Principal,
        id: TicketId,
        to: careline_core::Disposition,
        reason: String,
        now: Timestamp,
    ) -> Result<Ticket> {
        let r = self.write_set_priority(p, id, to, reason, now).await;
        self.refused(p, id, "lower the priority", r, now).await
    }

    async fn book_visit(
        &self,
        p: &Principal,
        id: TicketId,
        kind: VisitKind,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<Visit> {
        let r = self.write_book_visit(p, id, kind, at, now).await;
        self.refused(p, id, "book a routine visit", r, now).await
    }

    async fn settings(&self, org: OrgId) -> Result<OrgSettings> {
        let mut c = self.conn().await?;
        settings_of(&mut c, org).await
    }

    async fn set_settings(&self, p: &Principal, new: OrgSettings, now: Timestamp) -> Result<()> {
        let ev = new.change_event(p)?;
        let mut tx = self.begin_for(p.org_id).await?;
        q("UPDATE organizations SET settings = $1 WHERE id = $2")
            .bind(rows::to_json(&new)?)
            .bind(p.org_id.0)
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(p.org_id, now, vec![ev]).await?;
        tx.commit(&self.bus).await
    }

    async fn create_webhook(
        &self,
        p: &Principal,
        url: String,
        secret: String,
        events: Vec<String>,
        now: Timestamp,
    ) -> Result<Webhook> {
        self.create_webhook_(p, url, secret, events, now).await
    }

    async fn webhooks(&self, p: &Principal) -> Result<Vec<Webhook>> {
        self.webhooks_(p).await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        self.claim_deliveries_(now, lease_until, limit).await
    }

    async fn renew_deliveries(&self, ids: Vec<DeliveryId>, lease_until: Timestamp) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut c = self.conn().await?;
        q("UPDATE deliveries SET lease_until = $1 WHERE id = ANY($2) AND status = 'pending'")
            .bind(crate::rows::us(lease_until))
            .bind(ids.into_iter().map(|d| d.0).collect::<Vec<Uuid>>())
            .execute(&mut *c)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn delivery_attempted(
        &self,
        id: DeliveryId,
        ok: bool,
        error: Option<String>,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<()> {
        self.delivery_attempted_(id, ok, error, retry_at, now).await
    }

    async fn deliveries(&self, p: &Principal, status: &str, limit: u32) -> Result<Vec<Delivery>> {
        self.deliveries_(p, status, limit).await
    }

    async fn replay_delivery(
        &self,
        p: &Principal,
        id: DeliveryId,
        now: Timestamp,
    ) -> Result<Delivery> {
        self.replay_delivery_(p, id, now).await
    }

    async fn contacts(
        &self,
        since: Timestamp,
        until: Timestamp,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<PastContact>> {
        self.contacts_(since, until, after, limit).await
    }

    async fn contact_count(&self, since: Timestamp, until: Timestamp) -> Result<i64> {
        self.contact_count_(since, until).await
    }

    async fn ticket_histories(
        &self,
        tickets: Vec<TicketId>,
    ) -> Result<std::collections::HashMap<TicketId, TicketHistory>> {
        self.ticket_histories_(tickets).await
    }

    async fn file_findings(&self, findings: Vec<NewFinding>, now: Timestamp) -> Result<usize> {
        self.file_findings_(findings, now).await
    }

    async fn safety_reviews(
        &self,
        p: &Principal,
        status: Option<String>,
    ) -> Result<Vec<SafetyReview>> {
        self.safety_reviews_(p, status).await
    }

    async fn resolve_review(
        &self,
        p: &Principal,
        id: ReviewId,
        note: String,
        now: Timestamp,
    ) -> Result<SafetyReview> {
        self.resolve_review_(p, id, note, now).await
    }

    async fn safety_report(
        &self,
        p: &Principal,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<SafetyReport> {
        self.safety_report_(p, since, until).await
    }

    async fn create_org(&self, name: &str, now: Timestamp) -> Result<Organization> {
        let (o, ev) = admin::new_org(name, now)?;
        let mut tx = self.begin().await?;
        q("INSERT INTO organizations (id, name, settings, created_at) VALUES ($1, $2, $3, $4)")
            .bind(o.id.0)
            .bind(o.name.clone())
            .bind(rows::to_json(&OrgSettings::default())?)
            .bind(us(now))
            .execute(tx.c())
            .await
            .map_err(db)?;
        self.crypto.ensure_org_key(tx.c(), o.id, us(now)).await?;
        tx.append(o.id, now, vec![ev]).await?;
        tx.commit(&self.bus).await?;
        Ok(o)
    }

    async fn org_by_name(&self, name: &str) -> Result<Option<Organization>> {
        let row = q("SELECT * FROM organizations WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(rows::org).transpose()
    }

    async fn orgs(&self) -> Result<Vec<Organization>> {
        let found = q("SELECT * FROM organizations ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        found.iter().map(rows::org).collect()
    }

    async fn create_team(
        &self,
        org: OrgId,
        name: &str,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<CareTeam> {
        let (t, ev) = admin::new_team(org, name, actor)?;
        let mut tx = self.begin_for(org).await?;
        q("INSERT INTO teams (id, org_id, name, team_queue, clinical_queue, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(t.id.0)
            .bind(org.0)
            .bind(t.name.clone())
            .bind(t.team_queue.0)
            .bind(t.clinical_queue.0)
            .bind(us(now))
            .execute(tx.c())
            .await
            .map_err(db)?;
        for (qid, kind, name) in admin::team_queues(&t) {
            q("INSERT INTO queues (id, org_id, team_id, name, kind) VALUES ($1, $2, $3, $4, $5)")
                .bind(qid.0)
                .bind(org.0)
                .bind(t.id.0)
                .bind(name)
                .bind(kind.as_str())
                .execute(tx.c())
                .await
                .map_err(db)?;
        }
        tx.append(org, now, vec![ev]).await?;
        tx.commit(&self.bus).await?;
        Ok(t)
    }

    async fn teams(&self, org: OrgId) -> Result<Vec<CareTeam>> {
        let found = q("SELECT * FROM teams WHERE org_id = $1 ORDER BY name")
            .bind(org.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        found.iter().map(rows::team).collect()
    }

    async fn create_user(&self, u: NewUser, actor: Option<UserId>, now: Timestamp) -> Result<User> {
        let user = u.user()?;
        let mut tx = self.begin_for(u.org_id).await?;
        if let Some(m) = u.member_id {
            let member = rows::load_member(tx.c(), &self.crypto, m).await?;
            if member.org_id != u.org_id {
                return Err(Error::NotFound("member"));
            }
        }
        insert_user(&mut tx, &user, &u.password_hash, actor, now).await?;
        tx.commit(&self.bus).await?;
        Ok(user)
    }

    async fn users(&self, org: OrgId) -> Result<Vec<User>> {
        let found = q("SELECT * FROM users WHERE org_id = $1 ORDER BY username")
            .bind(org.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        found.iter().map(rows::user).collect()
    }

    async fn add_to_team(
        &self,
        org: OrgId,
        team: TeamId,
        user: UserId,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin_for(org).await?;
        let t = rows::load_team(tx.c(), team).await?;
        let u = rows::load_user(tx.c(), user)
            .await?
            .ok_or(Error::NotFound("user"))?;
        admin::check_team_join(org, &t, &u)?;
        let n =
            q("INSERT INTO team_members (team_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(team.0)
                .bind(user.0)
                .execute(tx.c())
                .await
                .map_err(db)?
                .rows_affected();
        if n > 0 {
            tx.append(org, now, vec![admin::team_joined(team, user, actor)])
                .await?;
        }
        tx.commit(&self.bus).await
    }

    async fn remove_from_team(
        &self,
        org: OrgId,
        team: TeamId,
        user: UserId,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin_for(org).await?;
        let t = rows::load_team(tx.c(), team).await?;
        let u = rows::load_user(tx.c(), user)
            .await?
            .ok_or(Error::NotFound("user"))?;
        admin::check_team_join(org, &t, &u)?;
        let n = q("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
            .bind(team.0)
            .bind(user.0)
            .execute(tx.c())
            .await
            .map_err(db)?
            .rows_affected();
        if n > 0 {
            tx.append(org, now, vec![admin::team_left(team, user, actor)])
                .await?;
        }
        tx.commit(&self.bus).await?;
        Ok(n > 0)
    }

    async fn create_members(
        &self,
        members: Vec<(NewMember, Option<MemberLogin>)>,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<Vec<(Member, Option<User>)>> {
        let Some(org) = members.first().map(|(m, _)| m.org_id) else {
            return Ok(Vec::new());
        };
        let mut tx = self.begin_for(org).await?;
        let mut out = Vec::with_capacity(members.len());
        for (m, login) in members {
            if m.org_id != org {
                return Err(Error::invalid(
                    "members are created one organization at a time",
                ));
            }
            let member = m.member(now)?;
            let team = rows::load_team(tx.c(), m.team_id).await?;
            if team.org_id != m.org_id {
                return Err(Error::NotFound("team"));
            }
            rows::insert_member(tx.c(), &self.crypto, &member, m.external_ref.as_deref()).await?;
            tx.append(
                member.org_id,
                now,
                vec![admin::member_created(
                    &member,
                    m.external_ref.as_deref(),
                    actor,
                )],
            )
            .await?;
            let user = match login {
                Some(l) => {
                    let user = l.for_member(&member).user()?;
                    insert_user(&mut tx, &user, &l.password_hash, actor, now).await?;
                    Some(user)
                }
                None => None,
            };
            out.push((member, user));
        }
        tx.commit(&self.bus).await?;
        Ok(out)
    }

    async fn members(&self, org: OrgId) -> Result<Vec<Member>> {
        let mut c = self.conn().await?;
        let found = q("SELECT * FROM members WHERE org_id = $1")
            .bind(org.0)
            .fetch_all(&mut *c)
            .await
            .map_err(db)?;
        let mut all = Vec::with_capacity(found.len());
        for r in &found {
            all.push(rows::member(&mut c, &self.crypto, r).await?);
        }
        // Names are sealed, so the database cannot order them.
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn member_names(
        &self,
        org: OrgId,
        ids: Vec<MemberId>,
    ) -> Result<std::collections::HashMap<MemberId, String>> {
        let mut c = self.conn().await?;
        let found = q("SELECT * FROM members WHERE org_id = $1 AND id = ANY($2)")
            .bind(org.0)
            .bind(ids.iter().map(|m| m.0).collect::<Vec<Uuid>>())
            .fetch_all(&mut *c)
            .await
            .map_err(db)?;
        let mut out = std::collections::HashMap::with_capacity(found.len());
        for r in &found {
            let m = rows::member(&mut c, &self.crypto, r).await?;
            out.insert(m.id, m.name);
        }
        Ok(out)
    }

    async fn grant_proxy(
        &self,
        org: OrgId,
        proxy: UserId,
        member: MemberId,
        scope: careline_core::authz::ProxyScope,
        expires_at: Option<Timestamp>,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin_for(org).await?;
        proxies::grant(
            &mut tx,
            &self.crypto,
            org,
            proxy,
            member,
            scope,
            expires_at,
            actor,
            now,
        )
        .await?;
        tx.commit(&self.bus).await
    }

    async fn grant_proxy_as_member(
        &self,
        p: &Principal,
        member: MemberId,
        proxy_username: &str,
        scope: careline_core::authz::ProxyScope,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<ProxyEntry> {
        self.grant_proxy_as_member_(p, member, proxy_username, scope, expires_at, now)
            .await
    }

    async fn revoke_proxy(
        &self,
        p: &Principal,
        member: MemberId,
        proxy: UserId,
        now: Timestamp,
    ) -> Result<()> {
        self.revoke_proxy_(p, member, proxy, now).await
    }

    async fn member_proxies(
        &self,
        p: &Principal,
        member: MemberId,
        now: Timestamp,
    ) -> Result<Vec<ProxyEntry>> {
        self.member_proxies_(p, member, now).await
    }

    async fn my_proxy_grants(&self, p: &Principal, now: Timestamp) -> Result<Vec<ProxyEntry>> {
        self.my_proxy_grants_(p, now).await
    }

    async fn set_consent(
        &self,
        p: &Principal,
        member: MemberId,
        change: ConsentChange,
        now: Timestamp,
    ) -> Result<Vec<SensitiveCategory>> {
        self.set_consent_(p, member, change, now).await
    }

    async fn consents(&self, p: &Principal, member: MemberId) -> Result<Vec<SensitiveCategory>> {
        self.consents_(p, member).await
    }

    async fn redact_message(
        &self,
        p: &Principal,
        id: MessageId,
        reason: &str,
        now: Timestamp,
    ) -> Result<Message> {
        let reason = privacy::redaction_request(p, reason)?;
        let mut tx = self.begin_for(p.org_id).await?;
        let row = q("SELECT * FROM messages WHERE id = $1 AND org_id = $2")
            .bind(id.0)
            .bind(p.org_id.0)
            .fetch_optional(tx.c())
            .await
            .map_err(db)?
            .ok_or(Error::NotFound("message"))?;
        let mut m = rows::message(tx.c(), &self.crypto, &row).await?;
        let thread = rows::load_thread(tx.c(), m.thread_id).await?;
        let member = rows::load_member(tx.c(), &self.crypto, thread.member_id).await?;
        let ev = privacy::redact(p, &mut m, &member, &reason, now)?;
        q("UPDATE messages SET redacted_at = $1, redacted_by = $2, redacted_by_role = $3, redaction_reason = $4 WHERE id = $5 AND redacted_at IS NULL")
            .bind(us(now))
            .bind(p.user_id.0)
            .bind(p.role.as_str())
            .bind(reason.clone())
            .bind(id.0)
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(m.org_id, now, vec![ev]).await?;
        tx.commit(&self.bus).await?;
        Ok(m)
    }

    async fn reach_member(&self, p: &Principal, member: MemberId) -> Result<Grant> {
        let mut c = self.conn().await?;
        let m = rows::load_member(&mut c, &self.crypto, member).await?;
        p.member_access(m.org_id, m.id, m.team_id)
    }

    async fn blob_key(&self, org: OrgId) -> Result<careline_crypto::DataKey> {
        let mut c = self.conn().await?;
        self.crypto.key(&mut c, org).await
    }

    async fn create_attachments(
        &self,
        p: &Principal,
        files: Vec<NewAttachment>,
        now: Timestamp,
    ) -> Result<Vec<careline_core::attachment::Attachment>> {
        self.create_attachments_(p, files, now).await
    }

    async fn attachment(
        &self,
        p: &Principal,
        id: AttachmentId,
    ) -> Result<careline_core::attachment::Attachment> {
        self.attachment_(p, id).await
    }

    async fn download_attachment(
        &self,
        p: &Principal,
        id: AttachmentId,
        now: Timestamp,
    ) -> Result<careline_core::attachment::Attachment> {
        self.download_attachment_(p, id, now).await
    }

    async fn thread_attachments(
        &self,
        p: &Principal,
        thread: ThreadId,
    ) -> Result<Vec<careline_core::attachment::Attachment>> {
        self.thread_attachments_(p, thread).await
    }

    async fn claim_scans(
        &self,
        now: Timestamp,
        lease: jiff::SignedDuration,
        limit: u32,
    ) -> Result<Vec<careline_core::attachment::Attachment>> {
        self.claim_scans_(now, lease, limit).await
    }

    async fn finish_scan(
        &self,
        id: AttachmentId,
        outcome: ScanOutcome,
        now: Timestamp,
    ) -> Result<careline_core::attachment::Attachment> {
        self.finish_scan_(id, outcome, now).await
    }

    async fn export_attachment(
        &self,
        p: &Principal,
        id: AttachmentId,
        reason: &str,
        now: Timestamp,
    ) -> Result<careline_core::attachment::Attachment> {
        self.export_attachment_(p, id, reason, now).await
    }

    async fn verify_chains(&self) -> Result<Vec<ChainReport>> {
        chain::verify_all(&self.pool).await
    }

    async fn verify_rows(
        &self,
        progress: Option<careline_store::deep::Progress>,
    ) -> Result<Vec<careline_store::deep::RowReport>> {
        self.verify_rows_(progress).await
    }

    async fn events(&self, org: OrgId, after_seq: i64, limit: u32) -> Result<Vec<Event>> {
        let found = q("SELECT * FROM events WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(org.0)
            .bind(after_seq)
            .bind(i64::from(limit.clamp(1, 10_000)))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        found.iter().map(rows::event).collect()
    }

    async fn search_members(
        &self,
        p: &Principal,
        query: &str,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<MemberSummary>> {
        self.search_members_(p, query, limit, now).await
    }

    async fn ticket_member(&self, p: &Principal, ticket: TicketId) -> Result<MemberId> {
        self.ticket_member_(p, ticket).await
    }
}

/// A staff, member or proxy account, and its event.
async fn insert_user(
    tx: &mut Tx,
    user: &User,
    password_hash: &str,
    actor: Option<UserId>,
    now: Timestamp,
) -> Result<()> {
    q("INSERT INTO users (id, org_id, username, name, role, member_id, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(user.id.0)
        .bind(user.org_id.0)
        .bind(user.username.clone())
        .bind(user.name.clone())
        .bind(user.role.as_str())
        .bind(user.member_id.map(|m| m.0))
        .bind(password_hash.to_owned())
        .bind(us(now))
        .execute(tx.c())
        .await
        .map_err(db)?;
    tx.append(user.org_id, now, vec![admin::user_created(user, actor)])
        .await
}
