//! The storage contract. Each backend (embedded SQLite now, PostgreSQL when
//! an organization outgrows one machine) implements [`Store`]; nothing above
//! this crate knows which one it talks to.
//!
//! Operations are domain-level, not SQL-level: a backend loads what the
//! domain needs, calls the pure functions in `careline_core`, and writes the
//! result together with its events in one transaction. Operations that touch
//! a member's data take the caller's [`Principal`] and authorize inside, so
//! nothing can reach data without passing the domain's access rules.
//! The contract's own records (a tag, a break-glass grant, a webhook …)
//! are made by methods on them (see `records.rs`), so every backend
//! returns and records them alike.

pub mod bus;
pub mod deep;
mod records;

use async_trait::async_trait;
use careline_core::attachment::Attachment;
use careline_core::authz::{Principal, ProxyScope};
use careline_core::escalation::{Page, Rota};
use careline_core::event::Event;
use careline_core::ids::*;
use careline_core::ingest::ContactIn;
use careline_core::model::*;
use careline_core::safety::TicketHistory;
use careline_core::settings::OrgSettings;
use careline_core::validate::MessageText;
use careline_core::{Disposition, Result};
use jiff::Timestamp;
use serde::Serialize;

pub use bus::Bus;

/// A stored JSON value that no longer parses: corruption, reported with
/// what was being read, never read as an empty default (an empty rota or
/// subscription list would silently skip an escalation step or a delivery).
#[derive(Debug)]
pub struct CorruptValue(pub String);

impl std::fmt::Display for CorruptValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CorruptValue {}

impl From<CorruptValue> for careline_core::Error {
    fn from(e: CorruptValue) -> careline_core::Error {
        careline_core::Error::internal(e)
    }
}

/// A webhook's stored event subscriptions, for fanning events out to it.
/// A corrupt list must not fail the commit (a member's message is never
/// refused for an integration's sake), and must not widen what leaves the
/// organization: nothing is queued for that webhook, the corruption is
/// logged as an error at every commit, and listing the organization's
/// webhooks fails with the same error until an administrator fixes it.
pub fn subscriptions(raw: &str) -> Vec<String> {
    stored_json("webhook event subscriptions", raw).unwrap_or_default()
}

/// A rota's stored supervisor list, and why it could not be read if it
/// could not: an unreadable list alarms the organization at the next page
/// (see `Rota::unreadable`) rather than reading as "no supervisors".
pub fn rota_supervisors(raw: &str) -> (Vec<UserId>, Option<String>) {
    match stored_json("rota supervisors", raw) {
        Ok(s) => (s, None),
        Err(e) => (Vec::new(), Some(e.0)),
    }
}

/// Parse a JSON value read back from storage; `what` names it in the error.
pub fn stored_json<T: serde::de::DeserializeOwned>(
    what: &str,
    raw: &str,
) -> std::result::Result<T, CorruptValue> {
    serde_json::from_str(raw).map_err(|e| {
        tracing::error!(%what, error = %e, "a stored value is corrupt");
        CorruptValue(format!("stored {what} is corrupt: {e}"))
    })
}

/// A contact to record for `member_id`.
#[derive(Debug, Clone)]
pub struct ContactRequest {
    pub principal: Principal,
    pub member_id: MemberId,
    pub contact: ContactIn,
    /// The sender's own uploads, attached to the message in the same transaction.
    pub attachments: Vec<AttachmentId>,
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
    /// For a member's emergency: the automatic reply recorded in the thread.
    pub auto_reply: Option<Message>,
    /// For a call note's emergency: what the agent must tell the caller.
    pub agent_guidance: Option<String>,
    /// The page sent in the same transaction, if the contact raised a red flag.
    pub page: Option<Page>,
}

/// A user's second factor.
#[derive(Debug, Clone, Default)]
pub struct MfaState {
    pub enabled: bool,
    /// Base32 TOTP secret (pending or enabled).
    pub secret: Option<String>,
    pub last_step: Option<i64>,
}

/// A file stored in the blob store, to be recorded.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub member_id: MemberId,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub blob: String,
    pub metadata_removed: Vec<String>,
}

/// What a scan found.
#[derive(Debug, Clone)]
pub enum ScanOutcome {
    Clean,
    Infected {
        signature: String,
    },
    /// The scanner was unavailable, timed out or erred: try again at `retry_at`.
    Failed {
        error: String,
        retry_at: Timestamp,
    },
}

/// A caregiver's access to a member.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyEntry {
    pub proxy_user_id: UserId,
    pub proxy_name: String,
    pub member_id: MemberId,
    pub member_name: String,
    pub scope: ProxyScope,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// Consent to share one sensitive category, recorded or withdrawn.
#[derive(Debug, Clone)]
pub struct ConsentChange {
    pub category: SensitiveCategory,
    pub granted: bool,
    /// Required when someone records it on the member's behalf.
    pub reason: Option<String>,
}

/// One read of a member's data, as the member sees it in their access history.
#[derive(Debug, Clone, Serialize)]
pub struct AccessEntry {
    pub at: Timestamp,
    pub user_id: Option<UserId>,
    pub name: String,
    pub role: String,
    /// What was read: thread, ticket, ticket_list, member, pages.
    pub what: String,
    /// Why it was allowed: care_team, tagged, paged, break_glass, proxy.
    pub why: String,
}

/// A colleague tagged into a thread.
#[derive(Debug, Clone, Serialize)]
pub struct Collaborator {
    pub id: uuid::Uuid,
    pub thread_id: ThreadId,
    pub member_id: MemberId,
    pub user_id: UserId,
    pub name: String,
    pub granted_by: UserId,
    pub reason: String,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// A break-glass grant and its privacy review.
#[derive(Debug, Clone, Serialize)]
pub struct BreakGlass {
    pub id: uuid::Uuid,
    pub member_id: MemberId,
    pub user_id: UserId,
    pub user_name: String,
    pub reason: String,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
    pub reviewed_by: Option<UserId>,
    pub reviewed_at: Option<Timestamp>,
    pub review_note: Option<String>,
}

/// An outbound webhook endpoint (its secret is shown only when created).
#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    pub id: WebhookId,
    pub org_id: OrgId,
    pub url: String,
    /// Event kinds delivered (`page.*` style prefixes allowed).
    pub events: Vec<String>,
    pub active: bool,
    pub created_at: Timestamp,
}

/// A delivery claimed for sending.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: DeliveryId,
    pub org_id: OrgId,
    pub webhook_id: WebhookId,
    pub url: String,
    #[serde(skip)]
    pub secret: String,
    pub event_kind: String,
    pub body: String,
    pub attempts: i64,
    pub status: String,
    pub last_error: Option<String>,
    pub next_attempt_at: Timestamp,
    pub created_at: Timestamp,
}

/// A past contact, for the safety audit.
#[derive(Debug, Clone)]
pub struct PastContact {
    pub message_id: MessageId,
    pub org_id: OrgId,
    pub ticket_id: TicketId,
    pub member_id: MemberId,
    pub kind: MessageKind,
    pub text: String,
    pub created_at: Timestamp,
}

/// A finding filed for safety reviewers.
#[derive(Debug, Clone, Serialize)]
pub struct SafetyReview {
    pub id: ReviewId,
    pub org_id: OrgId,
    pub message_id: MessageId,
    pub ticket_id: TicketId,
    pub member_id: MemberId,
    pub disposition: String,
    #[serde(rename = "finding")]
    pub finding: serde_json::Value,
    pub protocol_version: String,
    pub status: String,
    pub resolved_by: Option<UserId>,
    pub resolution: Option<String>,
    pub created_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

/// A new finding to file.
#[derive(Debug, Clone)]
pub struct NewFinding {
    pub org_id: OrgId,
    pub message_id: MessageId,
    pub ticket_id: TicketId,
    pub member_id: MemberId,
    pub disposition: String,
    pub finding: serde_json::Value,
    pub protocol_version: String,
}

/// Safety figures for a period.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SafetyReport {
    pub contacts: i64,
    pub emergency: i64,
    pub urgent: i64,
    pub pages: i64,
    pub pages_acknowledged: i64,
    pub alarms: i64,
    /// Milliseconds from the red flag's commit to a clinician's acknowledgement.
    pub ack_ms: Vec<i64>,
    /// Milliseconds from the red flag's commit to the first staff reply by a clinician.
    pub clinician_reply_ms: Vec<i64>,
    /// `ack_ms` split by the disposition of the red flag (`emergency`, `urgent`).
    pub ack_ms_by_disposition: std::collections::BTreeMap<String, Vec<i64>>,
    /// `clinician_reply_ms` split by the disposition of the red flag.
    pub reply_ms_by_disposition: std::collections::BTreeMap<String, Vec<i64>>,
    pub open_safety_reviews: i64,
    pub failures_to_escalate: i64,
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
    /// Only tickets whose review-net mark waits for a clinician.
    pub review_pending: bool,
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

/// A member's own portal login, created with the member.
#[derive(Debug, Clone)]
pub struct MemberLogin {
    pub username: String,
    /// Already hashed (Argon2id), never the password itself.
    pub password_hash: String,
}

impl MemberLogin {
    /// The account this login is for member `m`.
    pub fn for_member(&self, m: &Member) -> NewUser {
        NewUser {
            org_id: m.org_id,
            username: self.username.clone(),
            name: m.name.clone(),
            role: careline_core::model::Role::Member,
            member_id: Some(m.id),
            password_hash: self.password_hash.clone(),
        }
    }
}

/// A login session, stored by the hash of its token only.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The session may only enrol a second factor until it does.
    pub mfa_pending: bool,
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
    /// The hash of the last event verified: with `events` (its seq), the
    /// chain's head when the chain is intact. A backup records it, so a
    /// restore can be checked to reach it.
    pub last_hash: String,
    /// `None` when intact; otherwise the first break, in words.
    pub error: Option<String>,
}

/// The refusal to open a database whose schema a newer careline wrote: this
/// binary would misread tables it does not know, or write rows the newer
/// one no longer expects.
pub fn schema_too_new(found: i64, known: i64) -> careline_core::Error {
    careline_core::Error::Unavailable(format!(
        "the database is at schema version {found} but this careline knows only up to {known}: upgrade careline before starting it against this database"
    ))
}

/// A user's account with its password hash, for login.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

/// A member found by a call-taker's search: enough to confirm who is on the
/// line (name, date of birth, phone, the organization's own reference),
/// never health information. Each one returned is a recorded read.
#[derive(Debug, Clone, Serialize)]
pub struct MemberSummary {
    pub id: MemberId,
    pub name: String,
    pub date_of_birth: Option<jiff::civil::Date>,
    pub phone: Option<String>,
    /// The organization's own identifier (MRN).
    pub external_ref: Option<String>,
    pub language: String,
    pub team_id: TeamId,
    pub team_name: String,
    /// Why the caller may reach this member: care team, tag, page or break-glass.
    pub access: careline_core::authz::Grant,
}

/// Everything careline stores.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The bus on which every event is published after it commits.
    fn bus(&self) -> &Bus;

    /// Whether the store can serve requests (for `/readyz`).
    async fn ready(&self) -> Result<()>;

    /// Whether other nodes write to this store, so that their committed
    /// events must be relayed to this node's bus ([`Store::relay`]).
    fn shared(&self) -> bool {
        false
    }

    /// Relay other nodes' committed events to this node's bus until `stop`,
    /// calling `beat` at least every few seconds while healthy. Returns an
    /// error when it can no longer relay; run again, it resumes where it
    /// stopped. A store no other node writes to has nothing to relay.
    async fn relay(
        &self,
        stop: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
        beat: &(dyn Fn() + Send + Sync),
    ) -> Result<()> {
        let _ = beat;
        stop.await;
        Ok(())
    }

    // ---- authentication ----
    async fn credentials(&self, username: &str) -> Result<Option<Credentials>>;
    async fn create_session(&self, session: NewSession, now: Timestamp) -> Result<()>;
    async fn record_login_failure(
        &self,
        org_id: OrgId,
        user_id: Option<UserId>,
        username: &str,
        address: Option<std::net::IpAddr>,
        now: Timestamp,
    ) -> Result<()>;
    /// Failed logins for a privileged account crossed the alert threshold
    /// (see `careline_core::login`): an alert for the privacy officers.
    async fn record_login_attack(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: careline_core::model::Role,
        failures: u32,
        now: Timestamp,
    ) -> Result<()>;
    /// A login refused by the throttle before the password was checked,
    /// recorded against the account it named.
    async fn record_login_throttled(
        &self,
        org_id: OrgId,
        user_id: UserId,
        address: std::net::IpAddr,
        now: Timestamp,
    ) -> Result<()>;
    /// The caller behind a session token hash, if the session is live (not
    /// expired, not revoked, used within `idle`), with every grant they hold.
    async fn principal(
        &self,
        token_hash: &str,
        now: Timestamp,
        idle: jiff::SignedDuration,
    ) -> Result<Option<Principal>> {
        self.load_principal(token_hash, now, idle, true).await
    }
    /// As [`Store::principal`]; `mark_used` says whether this counts as a
    /// use of the session for its idle timeout (a request does; a stream
    /// checking its caller again does not, or an unattended console would
    /// never time out).
    async fn load_principal(
        &self,
        token_hash: &str,
        now: Timestamp,
        idle: jiff::SignedDuration,
        mark_used: bool,
    ) -> Result<Option<Principal>>;
    /// The session behind a token hash as it stands, live or not, with the
    /// expiries of its user's time-limited grants; `None` for an unknown token.
    async fn session_facts(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<careline_core::stream::SessionFacts>>;
    /// Whether a session still carries a live event stream: the caller as
    /// they are now and until when that holds, or why the session ended.
    /// Does not count as a use of the session.
    async fn session_standing(
        &self,
        token_hash: &str,
        now: Timestamp,
        idle: jiff::SignedDuration,
    ) -> Result<careline_core::stream::Standing> {
        use careline_core::stream::{SessionEnd, Standing, standing};
        let Some(facts) = self.session_facts(token_hash, now).await? else {
            return Ok(Standing::Ended(SessionEnd::Revoked));
        };
        let until = match standing(&facts, now, idle) {
            Ok(until) => until,
            Err(end) => return Ok(Standing::Ended(end)),
        };
        Ok(
            match self.load_principal(token_hash, now, idle, false).await? {
                Some(principal) => Standing::Live { principal, until },
                // Ended between the two reads.
                None => Standing::Ended(SessionEnd::Revoked),
            },
        )
    }
    async fn revoke_session(&self, token_hash: &str, now: Timestamp) -> Result<()>;
    /// An administrator ends every session of a user; returns how many.
    async fn revoke_user_sessions(
        &self,
        p: &Principal,
        user: UserId,
        now: Timestamp,
    ) -> Result<u64>;
    /// A user's second-factor state (the TOTP secret, opened).
    async fn mfa_state(&self, user: UserId) -> Result<MfaState>;
    /// Start TOTP enrolment: store a new secret, not yet enabled.
    async fn set_totp_secret(&self, p: &Principal, secret: String, now: Timestamp) -> Result<()>;
    /// Finish enrolment: enable TOTP, store the recovery codes' hashes, lift enrolment-only sessions.
    async fn enable_totp(
        &self,
        p: &Principal,
        step: i64,
        recovery_hashes: Vec<String>,
        now: Timestamp,
    ) -> Result<()>;
    /// Record a used TOTP time step; false if it (or a later one) was used already (replay).
    async fn record_totp_step(&self, user: UserId, step: i64) -> Result<bool>;
    /// Spend a recovery code; false if unknown or used.
    async fn use_recovery_code(
        &self,
        user: UserId,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<bool>;

    // ---- contacts ----
    /// Record a triaged contact: message, ticket, routing, SLA clocks and
    /// events in one transaction. Returns only after commit.
    async fn record_contact(&self, req: ContactRequest, now: Timestamp) -> Result<ContactOutcome>;

    // ---- reads (authorized inside; every read of PHI by anyone but the member is an event) ----
    async fn thread(
        &self,
        p: &Principal,
        id: ThreadId,
        now: Timestamp,
    ) -> Result<(Thread, Vec<Message>)>;
    async fn ticket(&self, p: &Principal, id: TicketId, now: Timestamp) -> Result<(Ticket, Queue)>;
    async fn tickets(
        &self,
        p: &Principal,
        filter: TicketFilter,
        now: Timestamp,
    ) -> Result<Vec<(Ticket, Queue)>>;
    async fn queues(&self, p: &Principal) -> Result<Vec<QueueSummary>>;
    /// A queue's name and kind (no PHI).
    async fn queue(&self, p: &Principal, id: QueueId) -> Result<Queue>;
    /// A member's record and the grant that allowed reading it.
    async fn member(
        &self,
        p: &Principal,
        id: MemberId,
        now: Timestamp,
    ) -> Result<(Member, careline_core::authz::Grant)>;
    /// Who read a member's data: the member (or their proxy) for themselves, privacy officers for anyone.
    async fn access_log(
        &self,
        p: &Principal,
        member: MemberId,
        limit: u32,
    ) -> Result<Vec<AccessEntry>>;

    // ---- relationships that grant access ----
    async fn add_collaborator(
        &self,
        p: &Principal,
        thread: ThreadId,
        user: UserId,
        reason: String,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Collaborator>;
    async fn remove_collaborator(
        &self,
        p: &Principal,
        thread: ThreadId,
        user: UserId,
        now: Timestamp,
    ) -> Result<()>;
    async fn collaborators(&self, p: &Principal, thread: ThreadId) -> Result<Vec<Collaborator>>;
    async fn break_glass(
        &self,
        p: &Principal,
        member: MemberId,
        reason: String,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<BreakGlass>;
    async fn break_glass_reviews(&self, p: &Principal, open_only: bool) -> Result<Vec<BreakGlass>>;
    async fn review_break_glass(
        &self,
        p: &Principal,
        id: uuid::Uuid,
        note: String,
        now: Timestamp,
    ) -> Result<BreakGlass>;

    // ---- ticket work ----
    /// A staff reply or internal note, with the caller's own uploads attached.
    async fn reply(
        &self,
        p: &Principal,
        id: TicketId,
        text: MessageText,
        internal: bool,
        attachments: Vec<AttachmentId>,
        now: Timestamp,
    ) -> Result<(Message, Ticket)>;
    async fn assign(
        &self,
        p: &Principal,
        id: TicketId,
        to: Option<UserId>,
        now: Timestamp,
    ) -> Result<Ticket>;
    async fn transition(
        &self,
        p: &Principal,
        id: TicketId,
        to: TicketStatus,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<Ticket>;

    // ---- escalation ----
    async fn rota(&self, p: &Principal, team: TeamId) -> Result<Rota>;
    async fn set_rota(
        &self,
        p: &Principal,
        team: TeamId,
        rota: Rota,
        now: Timestamp,
    ) -> Result<Rota>;
    /// Pages on a ticket, newest first.
    async fn ticket_pages(
        &self,
        p: &Principal,
        ticket: TicketId,
        now: Timestamp,
    ) -> Result<Vec<Page>>;
    /// Open pages the caller must answer (targets, or alarms for clinicians and supervisors).
    async fn my_pages(&self, p: &Principal) -> Result<Vec<Page>>;
    async fn ack_page(&self, p: &Principal, page: PageId, now: Timestamp) -> Result<Page>;
    /// Escalate every open page whose deadline has passed, exactly once each.
    async fn escalate_due(&self, now: Timestamp, limit: u32) -> Result<Vec<Page>>;
    /// The earliest deadline of any open page.
    async fn next_page_deadline(&self) -> Result<Option<Timestamp>>;
    async fn clear(
        &self,
        p: &Principal,
        id: TicketId,
        disposition: careline_core::Disposition,
        note: String,
        now: Timestamp,
    ) -> Result<Ticket>;
    /// A nurse or physician with access to the ticket marks the triage
    /// judgement of one of its contacts as wrong (careline_core::feedback).
    async fn mark_judgement(
        &self,
        p: &Principal,
        ticket: TicketId,
        message: MessageId,
        should_be: careline_core::Disposition,
        note: String,
        now: Timestamp,
    ) -> Result<careline_core::feedback::JudgementMark>;
    /// Clinicians' marks, newest first, with the words they are about, for
    /// safety reviewers and supervisors; each listing is recorded as a read.
    async fn judgement_marks(
        &self,
        p: &Principal,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<MarkedContact>>;
    /// A nurse or physician on the ticket's team records their review of a
    /// review-net mark, with a note.
    async fn clear_review(
        &self,
        p: &Principal,
        id: TicketId,
        note: String,
        now: Timestamp,
    ) -> Result<Ticket>;
    async fn set_priority(
        &self,
        p: &Principal,
        id: TicketId,
        to: careline_core::Disposition,
        reason: String,
        now: Timestamp,
    ) -> Result<Ticket>;
    async fn book_visit(
        &self,
        p: &Principal,
        id: TicketId,
        kind: VisitKind,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<Visit>;
    async fn settings(&self, org: OrgId) -> Result<OrgSettings>;
    async fn set_settings(
        &self,
        p: &Principal,
        settings: OrgSettings,
        now: Timestamp,
    ) -> Result<()>;

    // ---- webhooks ----
    async fn create_webhook(
        &self,
        p: &Principal,
        url: String,
        secret: String,
        events: Vec<String>,
        now: Timestamp,
    ) -> Result<Webhook>;
    async fn webhooks(&self, p: &Principal) -> Result<Vec<Webhook>>;
    /// Claim up to `limit` due deliveries until `lease_until`; other processes skip them meanwhile.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>>;
    /// Extend the lease of claimed deliveries still pending to `lease_until`:
    /// a sender renews what it holds before each send, so no claim it is
    /// still working through lapses to another process.
    async fn renew_deliveries(&self, ids: Vec<DeliveryId>, lease_until: Timestamp) -> Result<()>;
    /// Record an attempt: delivered, retry at `retry_at`, or dead-lettered (`retry_at` = None and not ok).
    async fn delivery_attempted(
        &self,
        id: DeliveryId,
        ok: bool,
        error: Option<String>,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<()>;
    async fn deliveries(&self, p: &Principal, status: &str, limit: u32) -> Result<Vec<Delivery>>;
    async fn replay_delivery(
        &self,
        p: &Principal,
        id: DeliveryId,
        now: Timestamp,
    ) -> Result<Delivery>;

    // ---- safety audit ----
    /// Contacts (member messages and call notes) after `after` (exclusive, by id) up to `limit`, in the period.
    async fn contacts(
        &self,
        since: Timestamp,
        until: Timestamp,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<PastContact>>;
    async fn contact_count(&self, since: Timestamp, until: Timestamp) -> Result<i64>;
    async fn ticket_histories(
        &self,
        tickets: Vec<TicketId>,
    ) -> Result<std::collections::HashMap<TicketId, TicketHistory>>;
    /// File findings (idempotent per message and protocol version); returns how many were new.
    async fn file_findings(&self, findings: Vec<NewFinding>, now: Timestamp) -> Result<usize>;
    async fn safety_reviews(
        &self,
        p: &Principal,
        status: Option<String>,
    ) -> Result<Vec<SafetyReview>>;
    async fn resolve_review(
        &self,
        p: &Principal,
        id: ReviewId,
        note: String,
        now: Timestamp,
    ) -> Result<SafetyReview>;
    async fn safety_report(
        &self,
        p: &Principal,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<SafetyReport>;

    // ---- administration (callers check the admin role) ----
    async fn create_org(&self, name: &str, now: Timestamp) -> Result<Organization>;
    async fn org_by_name(&self, name: &str) -> Result<Option<Organization>>;
    async fn orgs(&self) -> Result<Vec<Organization>>;
    async fn create_team(
        &self,
        org: OrgId,
        name: &str,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<CareTeam>;
    async fn teams(&self, org: OrgId) -> Result<Vec<CareTeam>>;
    async fn create_user(
        &self,
        user: NewUser,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<User>;
    async fn users(&self, org: OrgId) -> Result<Vec<User>>;
    async fn add_to_team(
        &self,
        org: OrgId,
        team: TeamId,
        user: UserId,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<()>;
    /// Take a staff user off a care team (their access through it ends at
    /// once); false if they were not on it.
    async fn remove_from_team(
        &self,
        org: OrgId,
        team: TeamId,
        user: UserId,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<bool>;
    /// Creates members, each with their portal login if one is given, in
    /// one transaction: all of them or, on any refusal, none.
    async fn create_members(
        &self,
        members: Vec<(NewMember, Option<MemberLogin>)>,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<Vec<(Member, Option<User>)>>;
    /// Creates one member without a login.
    async fn create_member(
        &self,
        m: NewMember,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<Member> {
        self.create_members(vec![(m, None)], actor, now)
            .await?
            .pop()
            .map(|(m, _)| m)
            .ok_or_else(|| careline_core::Error::internal("creating one member created none"))
    }
    async fn members(&self, org: OrgId) -> Result<Vec<Member>>;
    /// The names of the members `ids` of `org` (others are left out): for
    /// naming the members on rows a page already shows its caller, without
    /// loading and unsealing the whole organization's list.
    async fn member_names(
        &self,
        org: OrgId,
        ids: Vec<MemberId>,
    ) -> Result<std::collections::HashMap<MemberId, String>>;
    /// Lets a proxy user act for a member within `scope` (replacing any
    /// earlier grant between the two). Callers authorize: an administrator,
    /// or the member themself through [`Store::grant_proxy_as_member`].
    #[allow(clippy::too_many_arguments)]
    async fn grant_proxy(
        &self,
        org: OrgId,
        proxy: UserId,
        member: MemberId,
        scope: ProxyScope,
        expires_at: Option<Timestamp>,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<()>;
    /// The member (or an administrator) grants a caregiver, named by their
    /// username, access within `scope`.
    async fn grant_proxy_as_member(
        &self,
        p: &Principal,
        member: MemberId,
        proxy_username: &str,
        scope: ProxyScope,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<ProxyEntry>;
    /// Ends a proxy's access to a member: the member, the proxy themself,
    /// an administrator or a privacy officer.
    async fn revoke_proxy(
        &self,
        p: &Principal,
        member: MemberId,
        proxy: UserId,
        now: Timestamp,
    ) -> Result<()>;
    /// Who acts for a member (the member, administrators, privacy officers).
    async fn member_proxies(
        &self,
        p: &Principal,
        member: MemberId,
        now: Timestamp,
    ) -> Result<Vec<ProxyEntry>>;
    /// The members a proxy acts for, with names and scopes.
    async fn my_proxy_grants(&self, p: &Principal, now: Timestamp) -> Result<Vec<ProxyEntry>>;
    /// Records or withdraws the member's consent to share a sensitive
    /// category with every clinician who has access; returns the categories
    /// consented to afterwards. The member, a proxy with the record scope, or
    /// a privacy officer on the member's behalf (a reason is then required).
    async fn set_consent(
        &self,
        p: &Principal,
        member: MemberId,
        change: ConsentChange,
        now: Timestamp,
    ) -> Result<Vec<SensitiveCategory>>;
    /// The member's consents (anyone who may read the record, and privacy officers).
    async fn consents(&self, p: &Principal, member: MemberId) -> Result<Vec<SensitiveCategory>>;

    /// A privacy officer hides a message's content from every view, with a
    /// reason; the stored text, its hash in the record and the message stay.
    async fn redact_message(
        &self,
        p: &Principal,
        id: MessageId,
        reason: &str,
        now: Timestamp,
    ) -> Result<Message>;

    /// Whether the caller reaches a member's thread, and through which grant
    /// (nothing is read, so nothing is recorded).
    async fn reach_member(
        &self,
        p: &Principal,
        member: MemberId,
    ) -> Result<careline_core::authz::Grant>;

    // ---- attachments ----
    /// The organization's data key, which seals attachment blobs.
    async fn blob_key(&self, org: OrgId) -> Result<careline_crypto::DataKey>;
    /// Records the files of one upload (already in the blob store),
    /// quarantined, in one transaction: all of them or none.
    async fn create_attachments(
        &self,
        p: &Principal,
        files: Vec<NewAttachment>,
        now: Timestamp,
    ) -> Result<Vec<Attachment>>;
    /// Records one uploaded file, quarantined.
    async fn create_attachment(
        &self,
        p: &Principal,
        a: NewAttachment,
        now: Timestamp,
    ) -> Result<Attachment> {
        self.create_attachments(p, vec![a], now)
            .await?
            .pop()
            .ok_or_else(|| careline_core::Error::internal("an upload of one file recorded none"))
    }
    /// An attachment's record and state, for anyone who may see the thread.
    async fn attachment(&self, p: &Principal, id: AttachmentId) -> Result<Attachment>;
    /// The attachment to serve: it must be clean; the read is recorded.
    async fn download_attachment(
        &self,
        p: &Principal,
        id: AttachmentId,
        now: Timestamp,
    ) -> Result<Attachment>;
    /// Attachments of a thread's messages the caller may see (members never
    /// see those of internal notes or call notes).
    async fn thread_attachments(&self, p: &Principal, thread: ThreadId) -> Result<Vec<Attachment>>;
    /// Claims up to `limit` files due for a scan (new, failed and due for a
    /// retry, or whose earlier claim lapsed), marking them `scanning` with a
    /// lease so that no two workers scan one file.
    async fn claim_scans(
        &self,
        now: Timestamp,
        lease: jiff::SignedDuration,
        limit: u32,
    ) -> Result<Vec<Attachment>>;
    /// Records a scan's verdict. Infected: the member is told in their
    /// thread, the ticket gets an internal note, security staff are alerted.
    async fn finish_scan(
        &self,
        id: AttachmentId,
        outcome: ScanOutcome,
        now: Timestamp,
    ) -> Result<Attachment>;
    /// A privacy officer exports a file that was never released, with a reason.
    async fn export_attachment(
        &self,
        p: &Principal,
        id: AttachmentId,
        reason: &str,
        now: Timestamp,
    ) -> Result<Attachment>;

    // ---- the record ----
    /// Recompute every organization's chain.
    async fn verify_chains(&self) -> Result<Vec<ChainReport>>;
    /// Rebuild from the event record what every message, ticket, page and
    /// attachment row must be and compare the rows with it, in one snapshot
    /// (see [`deep`]); `progress` hears how far it got.
    async fn verify_rows(&self, progress: Option<deep::Progress>) -> Result<Vec<deep::RowReport>>;
    /// Events after `after_seq` for one organization, in order (replay for SSE and exports).
    async fn events(&self, org: OrgId, after_seq: i64, limit: u32) -> Result<Vec<Event>>;

    // ---- call intake ----
    /// Members of the caller's organization that the caller reaches (care
    /// team, tag, page, break-glass) whose name contains `query` (ignoring
    /// case and accents), or whose phone, external reference or date of
    /// birth matches it; at most `limit`, best matches first. Staff who take
    /// calls only; each member returned is recorded as a read (`search`).
    async fn search_members(
        &self,
        p: &Principal,
        query: &str,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<MemberSummary>>;
    /// Which member a ticket of the caller's organization is about, and
    /// nothing else (no PHI is read, so nothing is recorded): what a
    /// clinician refused a ticket needs to break the glass for its member.
    /// Staff only; another organization's ticket is not found.
    async fn ticket_member(&self, p: &Principal, ticket: TicketId) -> Result<MemberId>;
}

/// A clinician's mark on a triage judgement, with the contact it is about:
/// what a safety reviewer lists and exports.
#[derive(Debug, Clone)]
pub struct MarkedContact {
    pub mark: careline_core::feedback::JudgementMark,
    /// The member's words; `None` once the message was redacted.
    pub text: Option<String>,
    /// `portal` or `call_note`.
    pub channel: &'static str,
    /// The member's language.
    pub language: String,
}

impl MarkedContact {
    pub fn new(
        mark: careline_core::feedback::JudgementMark,
        m: &careline_core::model::Message,
        language: String,
    ) -> MarkedContact {
        MarkedContact {
            mark,
            text: m.redaction.is_none().then(|| m.text.clone()),
            channel: if m.kind == careline_core::model::MessageKind::CallNote {
                "call_note"
            } else {
                "portal"
            },
            language,
        }
    }

    /// The read of the member's words this listing is.
    pub fn read(&self) -> careline_core::reads::PhiRead {
        careline_core::reads::PhiRead {
            org: self.mark.org_id,
            member: self.mark.member_id,
            what: "judgement_mark",
            id: self.mark.id.to_string(),
            grant: careline_core::authz::Grant::SafetyReview,
        }
    }

    /// The labelled corpus line (None when the words were redacted).
    pub fn corpus_line(&self) -> Option<serde_json::Value> {
        let text = self.text.as_deref()?;
        Some(careline_core::feedback::corpus_line(
            &self.mark,
            text,
            self.channel,
            &self.language,
        ))
    }
}
