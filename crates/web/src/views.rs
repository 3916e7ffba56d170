//! What the API sends and accepts. These shapes are a contract with
//! integrations, kept apart from the domain's records so either can change
//! without surprising the other.

use careline_core::authz::Principal;
use careline_core::model::*;
use careline_core::sla;
use careline_core::{Disposition, Judgement};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

// ---------- request field schemas ----------

/// Schemas for request fields the domain accepts only from a fixed list,
/// built from the domain's own names so the document cannot drift from
/// what the handlers parse.
pub mod names {
    use careline_core::Disposition;
    use careline_core::model::{Role, TicketStatus};
    use utoipa::openapi::schema::{ObjectBuilder, Type};

    fn one_of(values: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values))
    }

    /// Ticket states, as `POST /tickets/{id}/transitions` and `?status=` take them.
    pub fn ticket_status() -> ObjectBuilder {
        one_of(TicketStatus::ALL.map(TicketStatus::as_str))
    }

    /// Dispositions and priorities.
    pub fn disposition() -> ObjectBuilder {
        one_of(
            [
                Disposition::Emergency,
                Disposition::Urgent,
                Disposition::Routine,
            ]
            .map(Disposition::as_str),
        )
    }

    /// Roles a staff account can be created with.
    pub fn staff_role() -> ObjectBuilder {
        one_of(
            [
                Role::CareGuide,
                Role::Agent,
                Role::Nurse,
                Role::Physician,
                Role::Supervisor,
                Role::SafetyReviewer,
                Role::PrivacyOfficer,
                Role::Admin,
                Role::Service,
            ]
            .map(Role::as_str),
        )
    }

    /// Kinds of visit that can be booked.
    pub fn visit_kind() -> ObjectBuilder {
        one_of(["routine", "same_day", "urgent_care", "ed"])
    }

    /// What a proxy may do for a member.
    pub fn proxy_scope() -> ObjectBuilder {
        one_of(["messages", "record", "full"])
    }

    /// Sensitive categories a member can consent to share.
    pub fn sensitive_category() -> ObjectBuilder {
        one_of([
            "behavioral_health",
            "substance_use",
            "sexual_reproductive_health",
            "hiv",
        ])
    }

    /// Languages careline writes to members in.
    pub fn language() -> ObjectBuilder {
        one_of(["en", "es"])
    }
}

// ---------- requests ----------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// E-mail style username, e.g. `member01@demo.careline`.
    pub username: String,
    pub password: String,
    /// The current 6-digit code, for accounts with a second factor.
    pub totp: Option<String>,
    /// Or one of the one-time recovery codes.
    pub recovery_code: Option<String>,
    /// For the web pages: also set an HttpOnly session cookie, and return the
    /// anti-forgery token every changing request must send as `X-CSRF-Token`.
    #[serde(default)]
    pub cookie: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// 1–20,000 characters once trimmed.
    #[schema(min_length = 1, max_length = 20000)]
    pub text: String,
    /// Required for a proxy acting for more than one member; a member may omit it.
    pub member_id: Option<Uuid>,
    /// Files uploaded with `POST /api/v1/attachments` to send with this message.
    #[serde(default)]
    pub attachment_ids: Vec<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReply {
    /// 1–20,000 characters once trimmed.
    #[schema(min_length = 1, max_length = 20000)]
    pub text: String,
    /// An internal note is visible to staff only.
    #[serde(default)]
    pub internal: bool,
    /// Files uploaded with `POST /api/v1/attachments` to send with this reply.
    #[serde(default)]
    pub attachment_ids: Vec<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// The staff user to assign; `null` unassigns.
    pub staff_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// new, open, pending_member, pending_internal, solved or closed.
    #[schema(schema_with = names::ticket_status)]
    pub to: String,
    /// At most 2,000 characters.
    #[schema(max_length = 2000)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCall {
    pub member_id: Uuid,
    /// 1–20,000 characters once trimmed.
    #[schema(min_length = 1, max_length = 20000)]
    pub notes: String,
}

#[derive(Debug, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TicketQuery {
    /// Only this queue's tickets.
    pub queue: Option<Uuid>,
    /// Only tickets in this state.
    #[param(schema_with = names::ticket_status)]
    pub status: Option<String>,
    /// Only tickets of this priority.
    #[param(schema_with = names::disposition)]
    pub priority: Option<String>,
    /// Only this member's tickets.
    pub member: Option<Uuid>,
    /// `pending`: only tickets whose review-net mark waits for a clinician.
    pub review: Option<String>,
    /// At most 1000; default 200.
    pub limit: Option<u32>,
}

/// The states `GET /api/v1/safety-reviews?status=` filters on.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ReviewStatus {
    Open,
    Resolved,
}

/// The states `GET /api/v1/admin/webhooks/deliveries?status=` lists.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// The dead-letter list.
    Dead,
}

/// The form `POST /api/v1/attachments` reads (documentation only: the
/// handler streams the parts as they arrive).
#[derive(Debug, ToSchema)]
pub struct UploadForm {
    /// A file: JPEG, PNG, HEIC/HEIF or WebP image, PDF or plain text.
    /// Send one part named `file` per file.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

// ---------- responses ----------

#[derive(Debug, Serialize, ToSchema)]
pub struct UserSummary {
    pub id: Uuid,
    pub role: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionCreated {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// True when the organization requires a second factor for this role and
    /// none is enrolled: the session may only enrol (POST /api/v1/me/mfa/totp).
    pub mfa_enrolment_required: bool,
    /// With `cookie: true`: send as `X-CSRF-Token` on POST, PUT and DELETE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    pub expires_at: String,
    pub user: UserSummary,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: Uuid,
    pub role: String,
    pub name: String,
    pub org_id: Uuid,
    /// For members: their own member record. For proxies: the first member they act for.
    pub member_id: Option<Uuid>,
    /// For proxies: every member they act for.
    pub acting_for: Vec<Uuid>,
    /// For proxies: what they may do for each member.
    pub proxy_scopes: Vec<ProxyScopeView>,
    pub team_ids: Vec<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProxyScopeView {
    pub member_id: Uuid,
    /// `messages`, `record` or `full`.
    pub scope: String,
}

impl From<&Principal> for Me {
    fn from(p: &Principal) -> Self {
        Me {
            id: p.user_id.0,
            role: p.role.as_str().into(),
            name: p.name.clone(),
            org_id: p.org_id.0,
            member_id: p
                .member_id
                .map(|m| m.0)
                .or_else(|| p.proxy_for.first().map(|(m, _)| m.0)),
            acting_for: p.proxy_for.iter().map(|(m, _)| m.0).collect(),
            proxy_scopes: p
                .proxy_for
                .iter()
                .map(|(m, s)| ProxyScopeView {
                    member_id: m.0,
                    scope: s.as_str().into(),
                })
                .collect(),
            team_ids: p.team_ids.iter().map(|t| t.0).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueRef {
    pub id: Uuid,
    pub name: String,
    /// `team` or `clinical`.
    pub kind: String,
}

impl From<&Queue> for QueueRef {
    fn from(q: &Queue) -> Self {
        QueueRef {
            id: q.id.0,
            name: q.name.clone(),
            kind: q.kind.as_str().into(),
        }
    }
}

/// A triage result as integrations see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriageView {
    /// `emergency`, `urgent` or `routine`.
    pub disposition: String,
    #[schema(value_type = Vec<Object>)]
    pub protocols: serde_json::Value,
    #[schema(value_type = Vec<Object>)]
    pub evidence: serde_json::Value,
    #[schema(value_type = Vec<Object>)]
    pub suppressed: serde_json::Value,
    pub protocol_version: String,
    pub protocol_hash: String,
    pub explanation: String,
    /// Present when the second reader raised the protocols' disposition:
    /// `from`, `to`, `score`, `threshold` and the `words` that weighed most.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub second_reader: Option<serde_json::Value>,
    /// Present when the message reads as clinical (the review net): `by`
    /// (`rules` or `reader`) and the `words` that made it so.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub clinical_content: Option<serde_json::Value>,
}

impl From<&Judgement> for TriageView {
    fn from(j: &Judgement) -> Self {
        TriageView {
            disposition: j.disposition.as_str().into(),
            protocols: serde_json::to_value(&j.protocols).unwrap_or_default(),
            evidence: serde_json::to_value(&j.evidence).unwrap_or_default(),
            suppressed: serde_json::to_value(&j.suppressed).unwrap_or_default(),
            protocol_version: j.protocol_version.clone(),
            protocol_hash: j.protocol_hash.clone(),
            explanation: j.explanation.clone(),
            second_reader: j
                .second_reader
                .as_ref()
                .and_then(|sr| serde_json::to_value(sr).ok()),
            clinical_content: j
                .clinical_content
                .as_ref()
                .and_then(|c| serde_json::to_value(c).ok()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlaView {
    pub first_response_due: Option<String>,
    pub first_response_at: Option<String>,
    pub next_response_due: Option<String>,
    pub resolution_due: Option<String>,
    pub resolved_at: Option<String>,
    /// Targets missed as of now: `first_response`, `next_response`, `resolution`.
    pub breaches: Vec<String>,
}

fn ts(t: Option<Timestamp>) -> Option<String> {
    t.map(|t| t.to_string())
}

impl SlaView {
    fn new(c: &SlaClocks, now: Timestamp) -> Self {
        SlaView {
            first_response_due: ts(c.first_response_due),
            first_response_at: ts(c.first_response_at),
            next_response_due: ts(c.next_response_due),
            resolution_due: ts(c.resolution_due),
            resolved_at: ts(c.resolved_at),
            breaches: sla::breaches(c, now)
                .into_iter()
                .filter_map(|b| {
                    serde_json::to_value(b)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketView {
    pub id: Uuid,
    pub status: String,
    pub priority: String,
    pub queue: QueueRef,
    pub triage: TriageView,
    pub member_id: Uuid,
    pub thread_id: Uuid,
    pub team_id: Uuid,
    pub assignee_id: Option<Uuid>,
    pub sla: SlaView,
    /// True while a red flag waits for a clinician's decision (the interlock is on).
    pub red_flag_uncleared: bool,
    #[schema(value_type = Option<Object>)]
    pub clearance: Option<serde_json::Value>,
    /// True while the review net's mark waits for a clinician.
    pub review_pending: bool,
    /// The review net's mark, when the ticket has one.
    pub review: Option<ReviewView>,
    pub created_at: String,
    pub updated_at: String,
}

/// The review net's mark as a view shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewView {
    pub flagged_at: String,
    pub due_at: String,
    /// Still waiting for a clinician past `due_at`.
    pub overdue: bool,
    /// `rules` or `reader`: what read the message as clinical.
    pub by: String,
    /// The member's words that read as clinical.
    pub words: Vec<String>,
    /// The organization's `route` policy moved it to the clinical queue.
    pub routed: bool,
    pub cleared_by: Option<String>,
    pub cleared_at: Option<String>,
    pub note: Option<String>,
}

impl ReviewView {
    pub fn new(r: &careline_core::model::NurseReview, now: Timestamp) -> Self {
        ReviewView {
            flagged_at: r.flagged_at.to_string(),
            due_at: r.due_at.to_string(),
            overdue: r.pending() && now > r.due_at,
            by: r.by.clone(),
            words: r.words.clone(),
            routed: r.routed,
            cleared_by: r.cleared.as_ref().map(|c| c.by_name.clone()),
            cleared_at: r.cleared.as_ref().map(|c| c.at.to_string()),
            note: r.cleared.as_ref().map(|c| c.note.clone()),
        }
    }
}

impl TicketView {
    pub fn new(t: &Ticket, q: &Queue, now: Timestamp) -> Self {
        TicketView {
            id: t.id.0,
            status: t.status.as_str().into(),
            priority: t.priority.as_str().into(),
            queue: q.into(),
            triage: (&t.triage).into(),
            member_id: t.member_id.0,
            thread_id: t.thread_id.0,
            team_id: t.team_id.0,
            assignee_id: t.assignee_id.map(|a| a.0),
            sla: SlaView::new(&t.sla, now),
            red_flag_uncleared: t.red_flag_uncleared(),
            clearance: t
                .clearance
                .as_ref()
                .and_then(|c| serde_json::to_value(c).ok()),
            review_pending: t.review_pending(),
            review: t.review.as_ref().map(|r| ReviewView::new(r, now)),
            created_at: t.created_at.to_string(),
            updated_at: t.updated_at.to_string(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Author {
    pub id: Option<Uuid>,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    pub thread_id: Uuid,
    pub ticket_id: Option<Uuid>,
    /// `member`, `staff`, `internal_note`, `system` or `call_note`.
    pub kind: String,
    pub author: Author,
    pub text: String,
    pub created_at: String,
    /// Present on contacts (member messages, call notes), for staff.
    pub triage: Option<TriageView>,
    /// Files sent with the message, with their scan state.
    pub attachments: Vec<AttachmentView>,
    /// Present when the message was redacted: the text, triage and files
    /// are no longer shown.
    pub redacted: Option<RedactedView>,
}

/// A redaction as a view shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RedactedView {
    pub at: String,
    /// The role of who redacted it.
    pub by_role: String,
    /// Staff only.
    pub reason: Option<String>,
}

/// An uploaded file and where its scan stands. Only `clean` files can be
/// downloaded (`GET /api/v1/attachments/{id}/content`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttachmentView {
    pub id: Uuid,
    pub file_name: String,
    /// Decided from the content.
    pub content_type: String,
    pub size: u64,
    /// `quarantined`, `scanning`, `clean`, `infected` or `failed`.
    pub state: String,
    /// Staff only: the signature found, or the scanner's last error.
    pub detail: Option<String>,
    /// Metadata removed before storage (EXIF, GPS, XMP, comments).
    pub metadata_removed: Vec<String>,
    pub message_id: Option<Uuid>,
    pub created_at: String,
}

impl AttachmentView {
    pub fn new(a: &careline_core::attachment::Attachment, staff: bool) -> Self {
        AttachmentView {
            id: a.id.0,
            file_name: a.file_name.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            state: a.state.as_str().into(),
            detail: if staff { a.detail.clone() } else { None },
            metadata_removed: a.metadata_removed.clone(),
            message_id: a.message_id.map(|m| m.0),
            created_at: a.created_at.to_string(),
        }
    }
}

impl MessageView {
    pub fn new(m: &Message, staff: bool) -> Self {
        MessageView {
            id: m.id.0,
            thread_id: m.thread_id.0,
            ticket_id: m.ticket_id.map(|t| t.0),
            kind: m.kind.as_str().into(),
            author: Author {
                id: m.author_id.map(|a| a.0),
                name: m.author_name.clone(),
            },
            text: if m.redaction.is_some() {
                String::new()
            } else {
                m.text.clone()
            },
            created_at: m.created_at.to_string(),
            triage: if staff && m.redaction.is_none() {
                m.triage.as_ref().map(Into::into)
            } else {
                None
            },
            attachments: Vec::new(),
            redacted: m.redaction.as_ref().map(|r| RedactedView {
                at: r.at.to_string(),
                by_role: r.by_role.as_str().into(),
                reason: staff.then(|| r.reason.clone()),
            }),
        }
    }

    /// With the files among `all` that were sent with this message.
    pub fn with_attachments(
        mut self,
        all: &[careline_core::attachment::Attachment],
        staff: bool,
    ) -> Self {
        if self.redacted.is_some() {
            return self;
        }
        self.attachments = all
            .iter()
            .filter(|a| a.message_id.map(|m| m.0) == Some(self.id))
            .map(|a| AttachmentView::new(a, staff))
            .collect();
        self
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactCreated {
    pub message: MessageView,
    pub ticket: TicketView,
    /// For an emergency: the automatic reply already in the member's thread.
    pub auto_reply: Option<MessageView>,
    /// The page sent to the on-call clinician, for a red flag.
    pub page: Option<crate::safety::PageView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadView {
    pub id: Uuid,
    pub member_id: Uuid,
    pub messages: Vec<MessageView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueView {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub team_id: Uuid,
    pub team_name: String,
    /// Tickets not yet solved or closed.
    pub open: i64,
    pub unassigned: i64,
    pub emergency: i64,
    pub urgent: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    pub items: Vec<QueueView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketList {
    pub items: Vec<TicketView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyCreated {
    pub message: MessageView,
    pub ticket: TicketView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallView {
    pub id: Uuid,
    pub member_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub message_id: Uuid,
    pub notes: String,
    pub created_at: String,
    pub triage: TriageView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallCreated {
    pub call: CallView,
    pub ticket: TicketView,
    /// For an emergency: what the agent must tell the caller, now.
    pub agent_guidance: Option<String>,
    /// The page sent to the on-call clinician, for a red flag.
    pub page: Option<crate::safety::PageView>,
}

pub fn parse_disposition(s: &str) -> Result<Disposition, careline_core::Error> {
    s.parse::<Disposition>()
        .map_err(careline_core::Error::Invalid)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::names;
    use careline_core::Disposition;
    use careline_core::model::{Role, TicketStatus, VisitKind};
    use utoipa::openapi::schema::ObjectBuilder;

    fn values(b: ObjectBuilder) -> Vec<String> {
        b.build()
            .enum_values
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn every_name_the_document_offers_is_one_the_domain_accepts() {
        for s in values(names::ticket_status()) {
            s.parse::<TicketStatus>().unwrap();
        }
        for s in values(names::disposition()) {
            s.parse::<Disposition>().unwrap();
        }
        for s in values(names::visit_kind()) {
            s.parse::<VisitKind>().unwrap();
        }
        let roles = values(names::staff_role());
        for s in &roles {
            assert!(s.parse::<Role>().unwrap().is_staff(), "{s}");
        }
        assert_eq!(roles.len(), 9, "every staff role");
        for s in values(names::proxy_scope()) {
            crate::admin::parse_scope(Some(&s)).unwrap();
        }
        for s in values(names::language()) {
            careline_core::validate::language(&s).unwrap();
        }
        for s in values(names::sensitive_category()) {
            serde_json::from_value::<careline_core::model::SensitiveCategory>(
                serde_json::Value::String(s),
            )
            .unwrap();
        }
    }
}
