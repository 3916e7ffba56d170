//! The domain's records: organizations, people, teams, queues, threads,
//! messages, calls and tickets, as the rest of careline sees them.

use crate::ids::*;
use careline_triage::{Disposition, Judgement};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a user is. Staff roles come first; `Member` and `Proxy` log in to the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    CareGuide,
    Agent,
    Nurse,
    Physician,
    Supervisor,
    SafetyReviewer,
    PrivacyOfficer,
    Admin,
    /// An integration's service account.
    Service,
    Member,
    /// A caregiver with delegated access to one or more members.
    Proxy,
}

impl Role {
    pub const STAFF: [Role; 9] = [
        Role::CareGuide,
        Role::Agent,
        Role::Nurse,
        Role::Physician,
        Role::Supervisor,
        Role::SafetyReviewer,
        Role::PrivacyOfficer,
        Role::Admin,
        Role::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::CareGuide => "care_guide",
            Role::Agent => "agent",
            Role::Nurse => "nurse",
            Role::Physician => "physician",
            Role::Supervisor => "supervisor",
            Role::SafetyReviewer => "safety_reviewer",
            Role::PrivacyOfficer => "privacy_officer",
            Role::Admin => "admin",
            Role::Service => "service",
            Role::Member => "member",
            Role::Proxy => "proxy",
        }
    }
    pub fn is_staff(self) -> bool {
        !matches!(self, Role::Member | Role::Proxy)
    }
    /// Nurses and physicians: the only roles that may clear a red flag.
    pub fn is_clinical(self) -> bool {
        matches!(self, Role::Nurse | Role::Physician)
    }
    /// Roles that work tickets in their teams' queues.
    pub fn works_queues(self) -> bool {
        matches!(
            self,
            Role::CareGuide | Role::Agent | Role::Nurse | Role::Physician | Role::Supervisor
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "care_guide" => Role::CareGuide,
            "agent" => Role::Agent,
            "nurse" => Role::Nurse,
            "physician" => Role::Physician,
            "supervisor" => Role::Supervisor,
            "safety_reviewer" => Role::SafetyReviewer,
            "privacy_officer" => Role::PrivacyOfficer,
            "admin" => Role::Admin,
            "service" => Role::Service,
            "member" => Role::Member,
            "proxy" => Role::Proxy,
            other => {
                return Err(crate::Error::invalid(format!(
                    "unknown role '{other}' (expected one of care_guide, agent, nurse, physician, supervisor, safety_reviewer, privacy_officer, admin, service, member, proxy)"
                )));
            }
        })
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
}

/// Someone who logs in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub org_id: OrgId,
    pub username: String,
    pub name: String,
    pub role: Role,
    /// For a member's own login: the member it is.
    pub member_id: Option<MemberId>,
    pub disabled: bool,
}

/// Health markers shown to clinical roles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthMarkers {
    #[serde(default)]
    pub conditions: Vec<String>,
    #[serde(default)]
    pub medications: Vec<String>,
    #[serde(default)]
    pub allergies: Vec<String>,
    /// Items in sensitive categories: seen only by clinicians on the care
    /// team, or by any clinician with access where the member consented.
    #[serde(default)]
    pub sensitive: Vec<SensitiveItem>,
    /// Sensitive categories the member agreed to share with every clinician who has access.
    #[serde(default)]
    pub consented_categories: Vec<SensitiveCategory>,
}

/// Categories of data that law and decency protect beyond ordinary PHI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensitiveCategory {
    BehavioralHealth,
    SubstanceUse,
    SexualReproductiveHealth,
    Hiv,
}

/// One sensitive item (a condition or medication) with its category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensitiveItem {
    pub category: SensitiveCategory,
    pub item: String,
}

impl HealthMarkers {
    /// The sensitive items a clinician may see given how they reach the member.
    pub fn visible_sensitive(&self, grant: crate::authz::Grant) -> Vec<SensitiveItem> {
        self.sensitive
            .iter()
            .filter(|s| {
                grant == crate::authz::Grant::CareTeam
                    || self.consented_categories.contains(&s.category)
            })
            .cloned()
            .collect()
    }
}

/// A patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub id: MemberId,
    pub org_id: OrgId,
    pub name: String,
    pub date_of_birth: Option<jiff::civil::Date>,
    pub sex: Option<String>,
    /// Preferred language, "en" or "es"; drives automatic replies.
    pub language: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub plan: Option<String>,
    pub team_id: TeamId,
    pub markers: HealthMarkers,
    pub created_at: Timestamp,
}

/// Which of a team's two queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    /// Administrative and routine work, worked by care guides.
    Team,
    /// Red flags, worked by clinicians.
    Clinical,
}

impl QueueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::Team => "team",
            QueueKind::Clinical => "clinical",
        }
    }
    /// The queue a ticket of this priority belongs in.
    pub fn for_priority(p: Disposition) -> QueueKind {
        if p.is_red_flag() {
            QueueKind::Clinical
        } else {
            QueueKind::Team
        }
    }
}

impl FromStr for QueueKind {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "team" => Ok(QueueKind::Team),
            "clinical" => Ok(QueueKind::Clinical),
            o => Err(crate::Error::invalid(format!("unknown queue kind '{o}'"))),
        }
    }
}

/// A care team and its two queues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CareTeam {
    pub id: TeamId,
    pub org_id: OrgId,
    pub name: String,
    pub team_queue: QueueId,
    pub clinical_queue: QueueId,
}

impl CareTeam {
    pub fn queue_for(&self, kind: QueueKind) -> QueueId {
        match kind {
            QueueKind::Team => self.team_queue,
            QueueKind::Clinical => self.clinical_queue,
        }
    }
}

/// A queue as listed for a caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    pub id: QueueId,
    pub team_id: TeamId,
    pub name: String,
    pub kind: QueueKind,
}

/// Who wrote a message, and who may see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// From the member or their proxy.
    Member,
    /// A staff reply the member sees.
    Staff,
    /// Staff-only.
    InternalNote,
    /// Written by careline itself (for example emergency guidance).
    System,
    /// An agent's note of a phone call; staff-only.
    CallNote,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Member => "member",
            MessageKind::Staff => "staff",
            MessageKind::InternalNote => "internal_note",
            MessageKind::System => "system",
            MessageKind::CallNote => "call_note",
        }
    }
    /// Whether a member (or proxy) sees messages of this kind.
    pub fn member_visible(self) -> bool {
        matches!(
            self,
            MessageKind::Member | MessageKind::Staff | MessageKind::System
        )
    }
    /// Kinds that are contacts and therefore must carry a triage result.
    pub fn is_contact(self) -> bool {
        matches!(self, MessageKind::Member | MessageKind::CallNote)
    }
}

impl FromStr for MessageKind {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "member" => MessageKind::Member,
            "staff" => MessageKind::Staff,
            "internal_note" => MessageKind::InternalNote,
            "system" => MessageKind::System,
            "call_note" => MessageKind::CallNote,
            o => return Err(crate::Error::invalid(format!("unknown message kind '{o}'"))),
        })
    }
}

/// One message of a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub org_id: OrgId,
    pub thread_id: ThreadId,
    pub ticket_id: Option<TicketId>,
    pub kind: MessageKind,
    pub author_id: Option<UserId>,
    pub author_name: String,
    pub text: String,
    /// Present on every contact (member message, call note): invariant 1.
    pub triage: Option<Judgement>,
    pub created_at: Timestamp,
    /// Set when a privacy officer redacted the message: views show the
    /// notice instead of the text; the stored text and its hash stay.
    #[serde(default)]
    pub redaction: Option<Redaction>,
}

/// Who hid a message's content from every view, when and why (invariant 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Redaction {
    pub at: Timestamp,
    pub by: UserId,
    pub by_role: Role,
    pub reason: String,
}

/// A member's conversation with their care team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    pub id: ThreadId,
    pub org_id: OrgId,
    pub member_id: MemberId,
    pub created_at: Timestamp,
}

/// A phone contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub id: CallId,
    pub org_id: OrgId,
    pub member_id: MemberId,
    pub agent_id: UserId,
    pub message_id: MessageId,
    pub ticket_id: TicketId,
    pub notes: String,
    pub triage: Judgement,
    pub created_at: Timestamp,
}

/// Ticket states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    New,
    Open,
    PendingMember,
    PendingInternal,
    Solved,
    Closed,
}

impl TicketStatus {
    pub const ALL: [TicketStatus; 6] = [
        TicketStatus::New,
        TicketStatus::Open,
        TicketStatus::PendingMember,
        TicketStatus::PendingInternal,
        TicketStatus::Solved,
        TicketStatus::Closed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::New => "new",
            TicketStatus::Open => "open",
            TicketStatus::PendingMember => "pending_member",
            TicketStatus::PendingInternal => "pending_internal",
            TicketStatus::Solved => "solved",
            TicketStatus::Closed => "closed",
        }
    }
}

impl fmt::Display for TicketStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TicketStatus {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TicketStatus::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                crate::Error::invalid(format!(
                    "unknown ticket status '{s}' (expected new, open, pending_member, pending_internal, solved or closed)"
                ))
            })
    }
}

/// The service-level clocks of one ticket.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct SlaClocks {
    pub first_response_due: Option<Timestamp>,
    pub first_response_at: Option<Timestamp>,
    /// Set when the member writes again after a staff reply; cleared by the next reply.
    pub next_response_due: Option<Timestamp>,
    pub resolution_due: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
}

/// The unit of work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    pub org_id: OrgId,
    pub thread_id: ThreadId,
    pub member_id: MemberId,
    pub team_id: TeamId,
    pub queue_id: QueueId,
    pub queue_kind: QueueKind,
    pub status: TicketStatus,
    pub priority: Disposition,
    pub assignee_id: Option<UserId>,
    /// The strongest triage judgement seen on this ticket.
    pub triage: Judgement,
    pub sla: SlaClocks,
    /// A clinician's recorded decision on the current red flag, if any.
    #[serde(default)]
    pub clearance: Option<Clearance>,
    /// The review net's mark: a routine contact that reads as clinical,
    /// which a nurse or physician reviews the same day.
    #[serde(default)]
    pub review: Option<NurseReview>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The review net's mark on a routine ticket whose contact reads as
/// clinical (a symptom, body part, medicine, lab value or vital sign): a
/// clinician reviews it by `due_at`. Only a clinician clears it; until then
/// a routine visit is booked only by a clinician, as for an urgent flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NurseReview {
    pub flagged_at: Timestamp,
    pub due_at: Timestamp,
    /// What read as clinical: `rules` or `reader`.
    pub by: String,
    /// The member's words that read as clinical.
    pub words: Vec<String>,
    /// The organization routed it to the clinical queue (`route` policy).
    #[serde(default)]
    pub routed: bool,
    #[serde(default)]
    pub cleared: Option<ReviewCleared>,
}

/// A clinician's review of a marked ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewCleared {
    pub by: UserId,
    pub by_name: String,
    pub role: Role,
    pub note: String,
    pub at: Timestamp,
}

impl NurseReview {
    /// Not yet reviewed by a clinician.
    pub fn pending(&self) -> bool {
        self.cleared.is_none()
    }
}

/// A clinician's decision on a red-flag ticket: the disposition it should
/// follow from now on, and why. Required before a non-clinician may solve,
/// close, downgrade or book a routine visit for a red-flag ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clearance {
    pub by: UserId,
    pub by_name: String,
    pub role: Role,
    /// The disposition the clinician judged.
    pub disposition: Disposition,
    /// The red flag that was cleared.
    pub cleared_priority: Disposition,
    pub note: String,
    pub at: Timestamp,
}

/// What kind of visit is booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitKind {
    /// An ordinary office visit — exactly what must never be booked for an uncleared red flag.
    Routine,
    SameDay,
    UrgentCare,
    Ed,
}

impl VisitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VisitKind::Routine => "routine",
            VisitKind::SameDay => "same_day",
            VisitKind::UrgentCare => "urgent_care",
            VisitKind::Ed => "ed",
        }
    }
}

impl FromStr for VisitKind {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "routine" => VisitKind::Routine,
            "same_day" => VisitKind::SameDay,
            "urgent_care" => VisitKind::UrgentCare,
            "ed" => VisitKind::Ed,
            o => {
                return Err(crate::Error::invalid(format!(
                    "unknown visit kind '{o}' (expected routine, same_day, urgent_care or ed)"
                )));
            }
        })
    }
}

/// A booked visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    pub id: VisitId,
    pub org_id: OrgId,
    pub ticket_id: TicketId,
    pub member_id: MemberId,
    pub kind: VisitKind,
    pub at: Timestamp,
    pub booked_by: UserId,
    pub created_at: Timestamp,
}
