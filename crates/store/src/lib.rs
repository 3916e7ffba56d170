//! The storage contract. Each backend (embedded SQLite now, PostgreSQL when
//! an organization outgrows one machine) implements [`Store`]; nothing above
//! this crate knows which one it talks to.
//!
//! Operations are domain-level, not SQL-level: a backend loads what the
//! domain needs, calls the pure functions in `careline_core`, and writes the
//! result together with its events in one transaction. Operations that touch
//! a member's data take the caller's [`Principal`] and authorize inside, so
//! nothing can reach data without passing the domain's access rules.

pub mod bus;

use async_trait::async_trait;
use careline_core::authz::Principal;
use careline_core::event::Event;
use careline_core::ids::*;
use careline_core::ingest::ContactIn;
use careline_core::model::*;
use careline_core::sla::SlaPolicies;
use careline_core::validate::MessageText;
use careline_core::{Disposition, Result};
use jiff::Timestamp;
use serde::Serialize;

pub use bus::Bus;

/// A contact to record for `member_id`.
#[derive(Debug, Clone)]
pub struct ContactRequest {
    pub principal: Principal,
    pub member_id: MemberId,
    pub contact: ContactIn,
}

/// What was recorded, after commit.
#[derive(Debug, Clone)]
pub struct ContactOutcome {
    pub message: Message,
    pub ticket: Ticket,
    pub queue: Queue,
    pub new_ticket: bool,
    /// For call notes: the call record.
    pub call_id: Option<CallId>,
}

/// A queue with its work counts, as a caller sees it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueSummary {
    #[serde(flatten)]
    pub queue: Queue,
    pub team_name: String,
    /// Tickets not yet solved or closed.
    pub open: i64,
    pub unassigned: i64,
    pub emergency: i64,
    pub urgent: i64,
}

/// Filters for listing tickets.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub queue: Option<QueueId>,
    pub status: Option<TicketStatus>,
    pub priority: Option<Disposition>,
    pub member: Option<MemberId>,
    pub limit: u32,
}

/// A new login account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub org_id: OrgId,
    pub username: String,
    pub name: String,
    pub role: Role,
    pub member_id: Option<MemberId>,
    pub password_hash: String,
}

/// A new member; `id` lets an import be idempotent.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub org_id: OrgId,
    pub name: String,
    pub date_of_birth: Option<jiff::civil::Date>,
    pub sex: Option<String>,
    pub language: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub plan: Option<String>,
    pub team_id: TeamId,
    pub markers: HealthMarkers,
    /// The organization's own identifier (MRN); unique per organization.
    pub external_ref: Option<String>,
}

/// A login session, stored by the hash of its token only.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub expires_at: Timestamp,
}

/// Result of verifying one organization's chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    pub org_id: OrgId,
    pub org_name: String,
    pub events: i64,
    /// `None` when intact; otherwise the first break, in words.
    pub error: Option<String>,
}

/// A user's account with its password hash, for login.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

/// Everything careline stores.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The bus on which every event is published after it commits.
    fn bus(&self) -> &Bus;

    /// Whether the store can serve requests (for `/readyz`).
    async fn ready(&self) -> Result<()>;

    // ---- authentication ----
    async fn credentials(&self, username: &str) -> Result<Option<Credentials>>;
    async fn create_session(&self, session: NewSession, now: Timestamp) -> Result<()>;
    async fn record_login_failure(&self, org_id: OrgId, user_id: Option<UserId>, username: &str, now: Timestamp) -> Result<()>;
    /// The caller behind a session token hash, if the session is live.
    async fn principal(&self, token_hash: &str, now: Timestamp) -> Result<Option<Principal>>;

    // ---- contacts ----
    /// Record a triaged contact: message, ticket, routing, SLA clocks and
    /// events in one transaction. Returns only after commit.
    async fn record_contact(&self, req: ContactRequest, now: Timestamp) -> Result<ContactOutcome>;

    // ---- reads (authorized inside) ----
    async fn thread(&self, p: &Principal, id: ThreadId) -> Result<(Thread, Vec<Message>)>;
    async fn ticket(&self, p: &Principal, id: TicketId) -> Result<(Ticket, Queue)>;
    async fn tickets(&self, p: &Principal, filter: TicketFilter) -> Result<Vec<(Ticket, Queue)>>;
    async fn queues(&self, p: &Principal) -> Result<Vec<QueueSummary>>;
    async fn member(&self, p: &Principal, id: MemberId) -> Result<Member>;

    // ---- ticket work ----
    async fn reply(&self, p: &Principal, id: TicketId, text: MessageText, internal: bool, now: Timestamp) -> Result<(Message, Ticket)>;
    async fn assign(&self, p: &Principal, id: TicketId, to: Option<UserId>, now: Timestamp) -> Result<Ticket>;
    async fn transition(&self, p: &Principal, id: TicketId, to: TicketStatus, reason: Option<String>, now: Timestamp) -> Result<Ticket>;

    // ---- administration (callers check the admin role) ----
    async fn create_org(&self, name: &str, now: Timestamp) -> Result<Organization>;
    async fn org_by_name(&self, name: &str) -> Result<Option<Organization>>;
    async fn orgs(&self) -> Result<Vec<Organization>>;
    async fn sla_policies(&self, org: OrgId) -> Result<SlaPolicies>;
    async fn create_team(&self, org: OrgId, name: &str, actor: Option<UserId>, now: Timestamp) -> Result<CareTeam>;
    async fn teams(&self, org: OrgId) -> Result<Vec<CareTeam>>;
    async fn create_user(&self, user: NewUser, actor: Option<UserId>, now: Timestamp) -> Result<User>;
    async fn users(&self, org: OrgId) -> Result<Vec<User>>;
    async fn add_to_team(&self, org: OrgId, team: TeamId, user: UserId, actor: Option<UserId>, now: Timestamp) -> Result<()>;
    async fn create_member(&self, m: NewMember, actor: Option<UserId>, now: Timestamp) -> Result<Member>;
    async fn members(&self, org: OrgId) -> Result<Vec<Member>>;
    async fn grant_proxy(&self, org: OrgId, proxy: UserId, member: MemberId, expires_at: Option<Timestamp>, actor: Option<UserId>, now: Timestamp) -> Result<()>;

    // ---- the record ----
    /// Recompute every organization's chain.
    async fn verify_chains(&self) -> Result<Vec<ChainReport>>;
    /// Events after `after_seq` for one organization, in order (replay for SSE and exports).
    async fn events(&self, org: OrgId, after_seq: i64, limit: u32) -> Result<Vec<Event>>;
}
