//! The contract's own records, as every backend makes them: what a request
//! must satisfy before anything is loaded, the record a write returns and
//! the events it appends, and how results are shaped from what was loaded.
//! The rules come from `careline_core`; a backend only loads, writes and
//! commits, so each one answers exactly alike.

use crate::*;
use careline_core::attachment::{self, Attachment, AttachmentState};
use careline_core::authz::Principal;
use careline_core::escalation::Page;
use careline_core::event::{EventKind, NewEvent};
use careline_core::ingest::{self, ContactPlan, text_digest};
use careline_core::privacy;
use careline_core::{Error, Result};
use serde_json::json;
use std::collections::BTreeMap;

/// Most tickets one list shows.
const MAX_TICKETS: u32 = 1000;
/// What a list shows when the filter names no limit.
const DEFAULT_TICKETS: u32 = 200;
/// Longest endpoint error kept with a delivery, in characters.
const MAX_DELIVERY_ERROR_CHARS: usize = 500;

impl TicketFilter {
    /// How many tickets the list shows at most.
    pub fn page_size(&self) -> u32 {
        if self.limit == 0 {
            DEFAULT_TICKETS
        } else {
            self.limit.min(MAX_TICKETS)
        }
    }
}

impl ContactOutcome {
    /// What a planned contact became once written (its events already
    /// appended): the ticket's queue, the call record, the page sent, and
    /// the paged clinician's name (`nurse`), which fills in the agent's
    /// guidance.
    pub fn planned(
        plan: ContactPlan,
        queue: Queue,
        call_id: Option<CallId>,
        page: Option<Page>,
        nurse: Option<&str>,
    ) -> ContactOutcome {
        ContactOutcome {
            message: plan.message,
            ticket: plan.ticket,
            queue,
            new_ticket: plan.new_ticket,
            call_id,
            auto_reply: plan.auto_reply,
            agent_guidance: plan.agent_guidance.map(|g| ingest::name_nurse(&g, nurse)),
            page,
        }
    }
}

impl AccessEntry {
    /// One `phi.read` event as the member sees it: when, who (`name` and
    /// `role` of the actor, if they are still known) and what the event's
    /// `payload` says was read and why.
    pub fn from_event(
        at: Timestamp,
        user_id: Option<UserId>,
        payload: &str,
        name: Option<String>,
        role: Option<String>,
    ) -> AccessEntry {
        let v: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
        let field = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        AccessEntry {
            at,
            user_id,
            name: name.unwrap_or_else(|| "(unknown)".into()),
            role: role.unwrap_or_default(),
            what: field("resource"),
            why: field("grant"),
        }
    }
}

impl Collaborator {
    /// `p` tags `colleague` (the user named, if found) into the thread of
    /// member `m` until `expires_at`, with a reason checked by
    /// `careline_core::privacy::check_ask`: `p` must reach the member.
    pub fn tag(
        p: &Principal,
        m: &Member,
        thread: ThreadId,
        colleague: Option<&User>,
        reason: String,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(Collaborator, NewEvent)> {
        p.member_access(m.org_id, m.id, m.team_id)?;
        let u = privacy::check_colleague(p, colleague)?;
        let id = uuid::Uuid::now_v7();
        let ev = privacy::tagged(p, m, thread, id, u.id, expires_at);
        let c = Collaborator {
            id,
            thread_id: thread,
            member_id: m.id,
            user_id: u.id,
            name: u.name.clone(),
            granted_by: p.user_id,
            reason,
            expires_at,
            revoked_at: None,
            created_at: now,
        };
        Ok((c, ev))
    }
}

impl BreakGlass {
    /// `p` breaks the glass for member `m` until `until`, with a reason
    /// checked by `careline_core::privacy::check_ask`.
    pub fn open(
        p: &Principal,
        m: &Member,
        reason: String,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(BreakGlass, NewEvent)> {
        let id = uuid::Uuid::now_v7();
        let ev = privacy::glass_broken(p, m, id, until)?;
        let b = BreakGlass {
            id,
            member_id: m.id,
            user_id: p.user_id,
            user_name: p.name.clone(),
            reason,
            expires_at: until,
            created_at: now,
            reviewed_by: None,
            reviewed_at: None,
            review_note: None,
        };
        Ok((b, ev))
    }

    /// Privacy officer `p` reviews this grant with `note` (see
    /// `careline_core::privacy::review_request`), once.
    pub fn review(
        self,
        p: &Principal,
        note: String,
        now: Timestamp,
    ) -> Result<(BreakGlass, NewEvent)> {
        let ev = privacy::glass_reviewed(p, self.id, self.member_id, self.reviewed_at.is_some())?;
        let b = BreakGlass {
            reviewed_by: Some(p.user_id),
            reviewed_at: Some(now),
            review_note: Some(note),
            ..self
        };
        Ok((b, ev))
    }
}

impl NewFinding {
    /// The event recording this finding, filed as review `id`.
    pub fn filed(&self, id: ReviewId) -> NewEvent {
        NewEvent::new(
            EventKind::SafetyFinding,
            json!({"review_id": id, "message_id": self.message_id, "disposition": self.disposition, "protocol_version": self.protocol_version}),
        )
        .member(self.member_id)
        .ticket(self.ticket_id)
    }
}

impl SafetyReview {
    /// `p` resolves this review with `note` (see
    /// `careline_core::safety::resolve_request`); a review is resolved once.
    pub fn resolve(
        self,
        p: &Principal,
        note: String,
        now: Timestamp,
    ) -> Result<(SafetyReview, NewEvent)> {
        if self.status == "resolved" {
            return Err(Error::conflict(
                "already-resolved",
                "this safety review is already resolved",
            ));
        }
        let ev = NewEvent::new(
            EventKind::SafetyReviewResolved,
            json!({"review_id": self.id, "note_sha256": text_digest(&note)}),
        )
        .actor(Some(p.user_id))
        .member(self.member_id)
        .ticket(self.ticket_id);
        let r = SafetyReview {
            status: "resolved".into(),
            resolved_by: Some(p.user_id),
            resolution: Some(note),
            resolved_at: Some(now),
            ..self
        };
        Ok((r, ev))
    }
}

impl ConsentChange {
    /// `p` records or withdraws this consent for member `m` (see
    /// `careline_core::proxies::change_consent`): the event, or `None` when
    /// it already stood as asked.
    pub fn apply(&self, p: &Principal, m: &mut Member) -> Result<Option<NewEvent>> {
        careline_core::proxies::change_consent(
            p,
            m,
            self.category,
            self.granted,
            self.reason.as_deref(),
        )
    }
}

impl ProxyEntry {
    /// The grant `proxy` just received for member `m`.
    pub fn granted(
        proxy: User,
        m: Member,
        scope: ProxyScope,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> ProxyEntry {
        ProxyEntry {
            proxy_user_id: proxy.id,
            proxy_name: proxy.name,
            member_id: m.id,
            member_name: m.name,
            scope,
            expires_at,
            created_at: now,
        }
    }
}

impl NewUser {
    /// The account to create (see `careline_core::admin::new_user`).
    pub fn user(&self) -> Result<User> {
        careline_core::admin::new_user(
            self.org_id,
            &self.username,
            &self.name,
            self.role,
            self.member_id,
        )
    }
}

impl NewMember {
    /// The member to create: a display name and a supported language.
    pub fn member(&self, now: Timestamp) -> Result<Member> {
        use careline_core::validate::{display_name, email, language, phone, short_text};
        let short = |v: &Option<String>, what: &str| {
            v.as_deref().map(|v| short_text(v, what, 200)).transpose()
        };
        let list = |v: &[String], what: &str| {
            v.iter()
                .map(|x| short_text(x, what, 200))
                .collect::<Result<Vec<_>>>()
        };
        if let Some(r) = &self.external_ref {
            short_text(r, "external_ref", 200)?;
        }
        let m = &self.markers;
        Ok(Member {
            id: MemberId::new(),
            org_id: self.org_id,
            name: display_name(&self.name, "member name")?,
            date_of_birth: self.date_of_birth,
            sex: short(&self.sex, "sex")?,
            language: language(&self.language)?,
            phone: self.phone.as_deref().map(phone).transpose()?,
            email: self.email.as_deref().map(email).transpose()?,
            plan: short(&self.plan, "plan")?,
            team_id: self.team_id,
            markers: HealthMarkers {
                conditions: list(&m.conditions, "conditions")?,
                medications: list(&m.medications, "medications")?,
                allergies: list(&m.allergies, "allergies")?,
                sensitive: m.sensitive.clone(),
                consented_categories: m.consented_categories.clone(),
            },
            created_at: now,
        })
    }
}

impl NewAttachment {
    /// `p`, who reaches member `m`, uploaded this file: it is quarantined
    /// until a scan releases it.
    pub fn quarantine(
        self,
        p: &Principal,
        m: &Member,
        now: Timestamp,
    ) -> Result<(Attachment, NewEvent)> {
        p.member_access(m.org_id, m.id, m.team_id)?;
        let a = Attachment {
            id: AttachmentId::new(),
            org_id: m.org_id,
            member_id: m.id,
            uploaded_by: p.user_id,
            file_name: self.file_name,
            content_type: self.content_type,
            size: self.size,
            sha256: self.sha256,
            blob: self.blob,
            state: AttachmentState::Quarantined,
            detail: None,
            scan_attempts: 0,
            metadata_removed: self.metadata_removed,
            message_id: None,
            thread_id: None,
            ticket_id: None,
            created_at: now,
            updated_at: now,
        };
        let ev = attachment::event(
            EventKind::AttachmentQuarantined,
            &a,
            None,
            json!({"sha256": a.sha256, "metadata_removed": a.metadata_removed}),
        )
        .actor(Some(p.user_id));
        Ok((a, ev))
    }
}

impl ScanOutcome {
    /// When a failed scan is tried again.
    pub fn retry_at(&self) -> Option<Timestamp> {
        match self {
            ScanOutcome::Failed { retry_at, .. } => Some(*retry_at),
            _ => None,
        }
    }

    /// Records this verdict on `a` (whose member is of `team`) and returns
    /// its event; the file must be being scanned.
    pub fn apply(&self, a: &mut Attachment, team: TeamId, now: Timestamp) -> Result<NewEvent> {
        let (to, detail) = match self {
            ScanOutcome::Clean => (AttachmentState::Clean, None),
            ScanOutcome::Infected { signature } => {
                (AttachmentState::Infected, Some(signature.clone()))
            }
            ScanOutcome::Failed { error, .. } => (AttachmentState::Failed, Some(error.clone())),
        };
        a.finish_scan(to, detail, now)?;
        let (kind, extra) = match self {
            ScanOutcome::Clean => (EventKind::AttachmentClean, json!({})),
            ScanOutcome::Infected { signature } => (
                EventKind::AttachmentInfected,
                json!({"signature": signature}),
            ),
            ScanOutcome::Failed { error, retry_at } => (
                EventKind::AttachmentScanFailed,
                json!({"error": error, "retry_at": retry_at, "attempt": a.scan_attempts}),
            ),
        };
        Ok(attachment::event(kind, a, Some(team), extra))
    }
}

impl Webhook {
    /// Only administrators manage webhooks and their deliveries.
    pub fn manage_request(p: &Principal) -> Result<()> {
        p.require(
            &[Role::Admin],
            "admin-only",
            "only administrators manage webhooks",
        )
    }

    /// Administrator `p` registers an endpoint: a plain-HTTP address, a
    /// signing secret of 16 characters or more, the event kinds it wants.
    pub fn register(
        p: &Principal,
        url: &str,
        secret: &str,
        events: Vec<String>,
        now: Timestamp,
    ) -> Result<(Webhook, NewEvent)> {
        Webhook::manage_request(p)?;
        let url = url.trim().to_owned();
        if !url.starts_with("http://") || url.len() > 2000 {
            return Err(Error::invalid(
                "url must be an http:// address of at most 2000 characters (this version delivers over plain HTTP: put a TLS relay on the receiving side)",
            ));
        }
        if secret.len() < 16 {
            return Err(Error::invalid(
                "secret must be at least 16 characters: it signs every delivery",
            ));
        }
        if events.is_empty() || events.iter().any(|e| e.is_empty() || e.len() > 100) {
            return Err(Error::invalid(
                "events must list event kinds such as \"page.*\" or \"escalation.alarm\"",
            ));
        }
        let w = Webhook {
            id: WebhookId::new(),
            org_id: p.org_id,
            url,
            events,
            active: true,
            created_at: now,
        };
        let ev = NewEvent::new(
            EventKind::WebhookRegistered,
            json!({"webhook_id": w.id, "url": w.url, "events": w.events}),
        )
        .actor(Some(p.user_id));
        Ok((w, ev))
    }
}

impl Delivery {
    /// Administrator `p` lists deliveries with `status`: pending, delivered or dead.
    pub fn list_request(p: &Principal, status: &str) -> Result<()> {
        Webhook::manage_request(p)?;
        if !matches!(status, "pending" | "delivered" | "dead") {
            return Err(Error::invalid("status must be pending, delivered or dead"));
        }
        Ok(())
    }

    /// A failed attempt's error as kept: its first 500 characters.
    pub fn attempt_error(error: Option<String>) -> Option<String> {
        error.map(|e| e.chars().take(MAX_DELIVERY_ERROR_CHARS).collect())
    }

    /// The event recording that delivery `id` of an `event_kind` event gave
    /// up after `error`.
    pub fn dead_lettered(id: DeliveryId, event_kind: &str, error: Option<&str>) -> NewEvent {
        NewEvent::new(
            EventKind::DeliveryDeadLettered,
            json!({"delivery_id": id, "event_kind": event_kind, "error": error}),
        )
    }

    /// Administrator `p` sends a dead-lettered delivery again, from now.
    pub fn replay(self, p: &Principal, now: Timestamp) -> Result<(Delivery, NewEvent)> {
        if self.status != "dead" {
            return Err(Error::conflict(
                "not-dead-lettered",
                format!(
                    "this delivery is {}; only dead-lettered deliveries are replayed",
                    self.status
                ),
            ));
        }
        let ev = NewEvent::new(EventKind::DeliveryReplayed, json!({"delivery_id": self.id}))
            .actor(Some(p.user_id));
        let d = Delivery {
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: now,
            ..self
        };
        Ok((d, ev))
    }
}

impl SafetyReport {
    /// Adds the acknowledgements (milliseconds from red flag to
    /// acknowledgement, and the red flag's disposition), in order.
    pub fn add_acks(&mut self, acks: Vec<(i64, String)>) {
        for (ms, disposition) in acks {
            add_timing(
                &mut self.ack_ms,
                &mut self.ack_ms_by_disposition,
                ms,
                disposition,
            );
        }
    }

    /// Adds the first clinician replies after each red flag (microseconds
    /// from red flag to reply, none if nobody replied; the disposition),
    /// fastest first.
    pub fn add_replies(&mut self, replies: Vec<(Option<i64>, String)>) {
        let mut replies: Vec<(i64, String)> = replies
            .into_iter()
            .filter_map(|(us, d)| us.map(|us| (us / 1000, d)))
            .collect();
        replies.sort_unstable();
        for (ms, disposition) in replies {
            let by = &mut self.reply_ms_by_disposition;
            add_timing(&mut self.clinician_reply_ms, by, ms, disposition);
        }
    }
}

/// One timing of the report, overall and under its disposition.
fn add_timing(
    all: &mut Vec<i64>,
    by: &mut BTreeMap<String, Vec<i64>>,
    ms: i64,
    disposition: String,
) {
    all.push(ms);
    by.entry(disposition).or_default().push(ms);
}
