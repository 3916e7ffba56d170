//! The event record: every change (and, later, every read of PHI) is an
//! append-only event, chained by SHA-256 per organization. Each event stores
//! the previous event's hash and its own hash over a canonical encoding, so
//! an edited, removed or reordered event breaks the chain where it happened.

use crate::ids::*;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash that the first event of an organization points back to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Encoding version, part of every hash so the format can evolve.
const CANONICAL_VERSION: &str = "careline-event-v1";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "organization.created")]
    OrganizationCreated,
    #[serde(rename = "team.created")]
    TeamCreated,
    #[serde(rename = "user.created")]
    UserCreated,
    #[serde(rename = "user.team_joined")]
    UserTeamJoined,
    #[serde(rename = "user.team_left")]
    UserTeamLeft,
    #[serde(rename = "member.created")]
    MemberCreated,
    #[serde(rename = "proxy.granted")]
    ProxyGranted,
    #[serde(rename = "proxy.revoked")]
    ProxyRevoked,
    #[serde(rename = "message.redacted")]
    MessageRedacted,
    #[serde(rename = "attachment.quarantined")]
    AttachmentQuarantined,
    #[serde(rename = "attachment.scanning")]
    AttachmentScanning,
    #[serde(rename = "attachment.clean")]
    AttachmentClean,
    #[serde(rename = "attachment.infected")]
    AttachmentInfected,
    #[serde(rename = "attachment.scan_failed")]
    AttachmentScanFailed,
    #[serde(rename = "attachment.attached")]
    AttachmentAttached,
    #[serde(rename = "attachment.exported")]
    AttachmentExported,
    #[serde(rename = "consent.recorded")]
    ConsentRecorded,
    #[serde(rename = "consent.withdrawn")]
    ConsentWithdrawn,
    #[serde(rename = "session.login_throttled")]
    LoginThrottled,
    #[serde(rename = "session.created")]
    SessionCreated,
    #[serde(rename = "session.login_failed")]
    LoginFailed,
    #[serde(rename = "thread.created")]
    ThreadCreated,
    #[serde(rename = "message.created")]
    MessageCreated,
    #[serde(rename = "call.created")]
    CallCreated,
    #[serde(rename = "triage.judged")]
    TriageJudged,
    #[serde(rename = "triage.marked")]
    TriageMarked,
    #[serde(rename = "ticket.created")]
    TicketCreated,
    #[serde(rename = "ticket.status_changed")]
    TicketStatusChanged,
    #[serde(rename = "ticket.priority_raised")]
    TicketPriorityRaised,
    #[serde(rename = "ticket.routed")]
    TicketRouted,
    #[serde(rename = "ticket.assigned")]
    TicketAssigned,
    #[serde(rename = "ticket.transition_refused")]
    TicketTransitionRefused,
    #[serde(rename = "page.created")]
    PageCreated,
    #[serde(rename = "page.escalated")]
    PageEscalated,
    #[serde(rename = "page.acknowledged")]
    PageAcknowledged,
    #[serde(rename = "page.superseded")]
    PageSuperseded,
    #[serde(rename = "escalation.alarm")]
    EscalationAlarm,
    #[serde(rename = "ticket.cleared")]
    TicketCleared,
    #[serde(rename = "ticket.review_flagged")]
    ReviewFlagged,
    #[serde(rename = "ticket.review_cleared")]
    ReviewCleared,
    #[serde(rename = "ticket.priority_lowered")]
    TicketPriorityLowered,
    #[serde(rename = "ticket.override_refused")]
    OverrideRefused,
    #[serde(rename = "visit.booked")]
    VisitBooked,
    #[serde(rename = "message.auto_reply")]
    AutoReplySent,
    #[serde(rename = "rota.set")]
    RotaSet,
    #[serde(rename = "webhook.registered")]
    WebhookRegistered,
    #[serde(rename = "webhook.dead_lettered")]
    DeliveryDeadLettered,
    #[serde(rename = "webhook.replayed")]
    DeliveryReplayed,
    #[serde(rename = "safety.finding")]
    SafetyFinding,
    #[serde(rename = "safety.review_resolved")]
    SafetyReviewResolved,
    #[serde(rename = "session.revoked")]
    SessionRevoked,
    #[serde(rename = "thread.collaborator_added")]
    CollaboratorAdded,
    #[serde(rename = "thread.collaborator_removed")]
    CollaboratorRemoved,
    #[serde(rename = "privacy.break_glass")]
    BreakGlass,
    #[serde(rename = "privacy.break_glass_reviewed")]
    BreakGlassReviewed,
    /// Repeated failed logins for a privileged account: an alert.
    #[serde(rename = "privacy.login_attack")]
    LoginAttack,
    #[serde(rename = "mfa.enrolled")]
    MfaEnrolled,
    #[serde(rename = "mfa.recovery_code_used")]
    MfaRecoveryUsed,
    /// A read of PHI by anyone but the member themself.
    #[serde(rename = "phi.read")]
    PhiRead,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::OrganizationCreated => "organization.created",
            EventKind::TeamCreated => "team.created",
            EventKind::UserCreated => "user.created",
            EventKind::UserTeamJoined => "user.team_joined",
            EventKind::UserTeamLeft => "user.team_left",
            EventKind::MemberCreated => "member.created",
            EventKind::ProxyGranted => "proxy.granted",
            EventKind::ProxyRevoked => "proxy.revoked",
            EventKind::MessageRedacted => "message.redacted",
            EventKind::AttachmentQuarantined => "attachment.quarantined",
            EventKind::AttachmentScanning => "attachment.scanning",
            EventKind::AttachmentClean => "attachment.clean",
            EventKind::AttachmentInfected => "attachment.infected",
            EventKind::AttachmentScanFailed => "attachment.scan_failed",
            EventKind::AttachmentAttached => "attachment.attached",
            EventKind::AttachmentExported => "attachment.exported",
            EventKind::ConsentRecorded => "consent.recorded",
            EventKind::ConsentWithdrawn => "consent.withdrawn",
            EventKind::LoginThrottled => "session.login_throttled",
            EventKind::SessionCreated => "session.created",
            EventKind::LoginFailed => "session.login_failed",
            EventKind::ThreadCreated => "thread.created",
            EventKind::MessageCreated => "message.created",
            EventKind::CallCreated => "call.created",
            EventKind::TriageJudged => "triage.judged",
            EventKind::TriageMarked => "triage.marked",
            EventKind::TicketCreated => "ticket.created",
            EventKind::TicketStatusChanged => "ticket.status_changed",
            EventKind::TicketPriorityRaised => "ticket.priority_raised",
            EventKind::TicketRouted => "ticket.routed",
            EventKind::TicketAssigned => "ticket.assigned",
            EventKind::TicketTransitionRefused => "ticket.transition_refused",
            EventKind::PageCreated => "page.created",
            EventKind::PageEscalated => "page.escalated",
            EventKind::PageAcknowledged => "page.acknowledged",
            EventKind::PageSuperseded => "page.superseded",
            EventKind::EscalationAlarm => "escalation.alarm",
            EventKind::TicketCleared => "ticket.cleared",
            EventKind::ReviewFlagged => "ticket.review_flagged",
            EventKind::ReviewCleared => "ticket.review_cleared",
            EventKind::TicketPriorityLowered => "ticket.priority_lowered",
            EventKind::OverrideRefused => "ticket.override_refused",
            EventKind::VisitBooked => "visit.booked",
            EventKind::AutoReplySent => "message.auto_reply",
            EventKind::RotaSet => "rota.set",
            EventKind::WebhookRegistered => "webhook.registered",
            EventKind::DeliveryDeadLettered => "webhook.dead_lettered",
            EventKind::DeliveryReplayed => "webhook.replayed",
            EventKind::SafetyFinding => "safety.finding",
            EventKind::SafetyReviewResolved => "safety.review_resolved",
            EventKind::SessionRevoked => "session.revoked",
            EventKind::CollaboratorAdded => "thread.collaborator_added",
            EventKind::CollaboratorRemoved => "thread.collaborator_removed",
            EventKind::BreakGlass => "privacy.break_glass",
            EventKind::BreakGlassReviewed => "privacy.break_glass_reviewed",
            EventKind::LoginAttack => "privacy.login_attack",
            EventKind::MfaEnrolled => "mfa.enrolled",
            EventKind::MfaRecoveryUsed => "mfa.recovery_code_used",
            EventKind::PhiRead => "phi.read",
        }
    }
}

/// Event kinds after which a cached caller (session, roles, teams, grants) may be stale.
pub fn changes_access(kind: &str) -> bool {
    kind.starts_with("session.")
        || kind.starts_with("mfa.")
        || kind.starts_with("user.")
        || kind.starts_with("proxy.")
        || kind.starts_with("thread.collaborator")
        || kind.starts_with("privacy.break_glass")
        || kind.starts_with("page.")
        || kind.starts_with("escalation.")
        || kind == "ticket.status_changed"
        || kind == "member.created"
}

/// An event as the domain produces it, before it has a place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub actor_id: Option<UserId>,
    pub member_id: Option<MemberId>,
    pub ticket_id: Option<TicketId>,
    pub thread_id: Option<ThreadId>,
    pub team_id: Option<TeamId>,
    pub payload: serde_json::Value,
}

impl NewEvent {
    pub fn new(kind: EventKind, payload: serde_json::Value) -> Self {
        NewEvent {
            kind,
            actor_id: None,
            member_id: None,
            ticket_id: None,
            thread_id: None,
            team_id: None,
            payload,
        }
    }
    pub fn actor(mut self, a: Option<UserId>) -> Self {
        self.actor_id = a;
        self
    }
    pub fn member(mut self, m: MemberId) -> Self {
        self.member_id = Some(m);
        self
    }
    pub fn ticket(mut self, t: TicketId) -> Self {
        self.ticket_id = Some(t);
        self
    }
    pub fn thread(mut self, t: ThreadId) -> Self {
        self.thread_id = Some(t);
        self
    }
    pub fn team(mut self, t: TeamId) -> Self {
        self.team_id = Some(t);
        self
    }
}

/// An event in its place in the chain, exactly as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub org_id: OrgId,
    /// 1, 2, 3 … per organization, without gaps.
    pub seq: i64,
    /// Microseconds since the Unix epoch.
    pub at_us: i64,
    pub kind: String,
    pub actor_id: Option<UserId>,
    pub member_id: Option<MemberId>,
    pub ticket_id: Option<TicketId>,
    pub thread_id: Option<ThreadId>,
    pub team_id: Option<TeamId>,
    /// The payload's JSON text, byte for byte what was hashed.
    pub payload: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Event {
    /// Give `new` its place after (`seq - 1`, `prev_hash`) and seal it.
    pub fn seal(org_id: OrgId, seq: i64, prev_hash: &str, at: Timestamp, new: NewEvent) -> Event {
        let mut e = Event {
            id: EventId::new(),
            org_id,
            seq,
            at_us: at.as_microsecond(),
            kind: new.kind.as_str().to_owned(),
            actor_id: new.actor_id,
            member_id: new.member_id,
            ticket_id: new.ticket_id,
            thread_id: new.thread_id,
            team_id: new.team_id,
            payload: new.payload.to_string(),
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }

    pub fn at(&self) -> Timestamp {
        Timestamp::from_microsecond(self.at_us).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// The event as integrations receive it (event stream and webhooks):
    /// identifiers, kind, time and payload; never message text.
    pub fn public_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "seq": self.seq,
            "kind": self.kind,
            "at": self.at().to_string(),
            "org_id": self.org_id,
            "ticket_id": self.ticket_id,
            "thread_id": self.thread_id,
            "member_id": self.member_id,
            "team_id": self.team_id,
            "actor_id": self.actor_id,
            "payload": serde_json::from_str::<serde_json::Value>(&self.payload).unwrap_or_default(),
        })
    }

    /// SHA-256 over the canonical encoding: a JSON array of every stored
    /// field but the hash itself, in a fixed order.
    pub fn compute_hash(&self) -> String {
        let opt = |u: Option<uuid::Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
        let canonical = serde_json::json!([
            CANONICAL_VERSION,
            self.id.to_string(),
            self.org_id.to_string(),
            self.seq,
            self.at_us,
            self.kind,
            opt(self.actor_id.map(|x| x.0)),
            opt(self.member_id.map(|x| x.0)),
            opt(self.ticket_id.map(|x| x.0)),
            opt(self.thread_id.map(|x| x.0)),
            opt(self.team_id.map(|x| x.0)),
            self.payload,
            self.prev_hash,
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// Why the chain does not verify, at the first event where it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("event seq {seq} (id {id}): content does not match its hash (edited)")]
    Edited { seq: i64, id: String },
    #[error(
        "event seq {seq} (id {id}): expected seq {expected} (an event is missing or out of order)"
    )]
    Gap { seq: i64, id: String, expected: i64 },
    #[error(
        "event seq {seq} (id {id}): previous-hash link is broken (an event was removed, replaced or reordered)"
    )]
    BrokenLink { seq: i64, id: String },
    #[error(
        "chain ends at seq {last} but the recorded head is seq {head} (events were removed from the end)"
    )]
    Truncated { last: i64, head: i64 },
    #[error("chain ends with hash {last} but the recorded head is {head}")]
    HeadMismatch { last: String, head: String },
}

/// Walks one organization's events in `seq` order.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    next_seq: i64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
        }
    }
}

impl ChainVerifier {
    pub fn check(&mut self, e: &Event) -> Result<(), ChainError> {
        if e.seq != self.next_seq {
            return Err(ChainError::Gap {
                seq: e.seq,
                id: e.id.to_string(),
                expected: self.next_seq,
            });
        }
        if e.compute_hash() != e.hash {
            return Err(ChainError::Edited {
                seq: e.seq,
                id: e.id.to_string(),
            });
        }
        if e.prev_hash != self.prev_hash {
            return Err(ChainError::BrokenLink {
                seq: e.seq,
                id: e.id.to_string(),
            });
        }
        self.next_seq += 1;
        self.prev_hash.clone_from(&e.hash);
        Ok(())
    }

    /// Events verified so far.
    pub fn count(&self) -> i64 {
        self.next_seq - 1
    }

    /// The hash of the last event verified (the genesis hash before the
    /// first): with [`ChainVerifier::count`], the head a backup records.
    pub fn last_hash(&self) -> &str {
        &self.prev_hash
    }

    /// Compare the end of the walk with the recorded head of the chain.
    pub fn finish(&self, head: Option<(i64, &str)>) -> Result<i64, ChainError> {
        let (head_seq, head_hash) = head.unwrap_or((0, GENESIS_HASH));
        if head_seq != self.count() {
            return Err(ChainError::Truncated {
                last: self.count(),
                head: head_seq,
            });
        }
        if head_hash != self.prev_hash {
            return Err(ChainError::HeadMismatch {
                last: self.prev_hash.clone(),
                head: head_hash.to_owned(),
            });
        }
        Ok(self.count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<Event> {
        let org = OrgId::new();
        let mut prev = GENESIS_HASH.to_owned();
        let at: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        (1..=n as i64)
            .map(|seq| {
                let e = Event::seal(
                    org,
                    seq,
                    &prev,
                    at,
                    NewEvent::new(EventKind::MessageCreated, serde_json::json!({"n": seq})),
                );
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn verify(events: &[Event]) -> Result<i64, ChainError> {
        let mut v = ChainVerifier::default();
        for e in events {
            v.check(e)?;
        }
        let last = events.last().map(|e| (e.seq, e.hash.as_str()));
        v.finish(last)
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn nothing_is_deleted_verify_detects_edit_removal_and_reorder() {
        let mut edited = chain(5);
        edited[2].payload = r#"{"n":99}"#.into();
        assert!(matches!(
            verify(&edited),
            Err(ChainError::Edited { seq: 3, .. })
        ));

        let mut removed = chain(5);
        removed.remove(1);
        assert!(matches!(
            verify(&removed),
            Err(ChainError::Gap {
                seq: 3,
                expected: 2,
                ..
            })
        ));

        let mut reordered = chain(5);
        reordered.swap(1, 2);
        let (a, b) = (reordered[1].seq, reordered[2].seq);
        reordered[1].seq = b;
        reordered[2].seq = a;
        assert!(verify(&reordered).is_err());

        let full = chain(5);
        let mut v = ChainVerifier::default();
        for e in &full[..4] {
            v.check(e).unwrap();
        }
        assert!(matches!(
            v.finish(Some((5, &full[4].hash))),
            Err(ChainError::Truncated { .. })
        ));
    }
}
