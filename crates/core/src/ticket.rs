//! The ticket state machine. Every transition is a function that checks the
//! rule, changes the ticket and returns the events it caused; an illegal
//! transition is a typed error, never a silent no-op.
//!
//! ```text
//! new ─► open ─► pending_member ─► solved ─► closed
//!   │      ▲ ╲──► pending_internal ─╯  │
//!   │      └────────── member writes ◄─┘
//! ```

use crate::event::{EventKind, NewEvent};
use crate::ids::*;
use crate::model::{
    CareTeam, Clearance, Message, MessageKind, NurseReview, QueueKind, ReviewCleared, Role, Ticket,
    TicketStatus, User, Visit, VisitKind,
};
use crate::settings::{ClinicalReview, OrgSettings};
use crate::sla::{self, SlaPolicies};
use crate::validate::MessageText;
use crate::{Error, Result};
use careline_triage::{Disposition, Judgement};
use jiff::Timestamp;
use serde_json::json;

/// Who is acting.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    pub user_id: UserId,
    pub role: Role,
    pub name: String,
}

/// The rule a refusal by the red-flag interlock carries (invariant 4).
pub const INTERLOCK: &str = "red-flag-uncleared";

/// Whether an attempt was refused by the red-flag interlock. The stores
/// then record the attempt ([`Ticket::override_refused`]) in a transaction
/// of its own, since the attempt itself rolled back.
pub fn refused_by_interlock<T>(attempt: &Result<T>) -> bool {
    matches!(attempt, Err(Error::Forbidden { rule, .. }) if *rule == INTERLOCK)
}

/// What a move to `to` attempts, as a refusal words it: close, or solve.
pub fn transition_attempt(to: TicketStatus) -> &'static str {
    if to == TicketStatus::Closed {
        "close"
    } else {
        "solve"
    }
}

/// Whether `from → to` is a legal move for a staff user.
pub fn can_transition(from: TicketStatus, to: TicketStatus) -> bool {
    use TicketStatus::*;
    matches!(
        (from, to),
        (New, Open | PendingInternal | PendingMember | Solved)
            | (Open, PendingMember | PendingInternal | Solved)
            | (PendingMember, Open | PendingInternal | Solved)
            | (PendingInternal, Open | PendingMember | Solved)
            | (Solved, Open | Closed)
    )
}

impl Ticket {
    /// A new ticket for a contact on a thread that has no open ticket.
    pub fn open_for_contact(
        thread: &crate::model::Thread,
        team: &CareTeam,
        judgement: &Judgement,
        policies: &SlaPolicies,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> (Ticket, Vec<NewEvent>) {
        let priority = judgement.disposition;
        let queue_kind = QueueKind::for_priority(priority);
        let ticket = Ticket {
            id: TicketId::new(),
            org_id: thread.org_id,
            thread_id: thread.id,
            member_id: thread.member_id,
            team_id: team.id,
            queue_id: team.queue_for(queue_kind),
            queue_kind,
            status: TicketStatus::New,
            priority,
            assignee_id: None,
            triage: judgement.clone(),
            sla: sla::start(policies.for_priority(priority), now),
            clearance: None,
            review: None,
            created_at: now,
            updated_at: now,
        };
        let ev = ticket
            .event(EventKind::TicketCreated, actor)
            .payload_with(json!({
                "status": ticket.status,
                "priority": priority,
                "queue_id": ticket.queue_id,
                "queue_kind": queue_kind,
                "sla": ticket.sla,
            }));
        (ticket, vec![ev])
    }

    fn event(&self, kind: EventKind, actor: Option<UserId>) -> NewEvent {
        NewEvent::new(kind, serde_json::Value::Null)
            .actor(actor)
            .member(self.member_id)
            .ticket(self.id)
            .thread(self.thread_id)
            .team(self.team_id)
    }

    fn set_status(
        &mut self,
        to: TicketStatus,
        actor: Option<UserId>,
        reason: Option<&str>,
        now: Timestamp,
    ) -> NewEvent {
        let from = self.status;
        self.status = to;
        self.updated_at = now;
        if to == TicketStatus::Solved {
            sla::resolved(&mut self.sla, now);
        }
        self.event(EventKind::TicketStatusChanged, actor)
            .payload_with(json!({"from": from, "to": to, "reason": reason}))
    }

    /// A new contact (member message or call note) arrived on this ticket:
    /// a pending or solved ticket goes back to `open`; a stronger judgement
    /// raises the priority (never lowers it) and re-routes to the clinical queue.
    pub fn on_contact(
        &mut self,
        team: &CareTeam,
        judgement: &Judgement,
        policies: &SlaPolicies,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Vec<NewEvent> {
        let mut events = Vec::new();
        if matches!(
            self.status,
            TicketStatus::PendingMember | TicketStatus::Solved
        ) {
            events.push(self.set_status(TicketStatus::Open, actor, Some("member wrote"), now));
        }
        if judgement.disposition.is_red_flag()
            && let Some(c) = self.clearance.take()
        {
            // A new red flag after a clinician's decision is a new red flag.
            if judgement.disposition <= self.priority {
                self.triage = judgement.clone();
                events.push(
                    self.event(EventKind::TicketPriorityRaised, actor)
                        .payload_with(json!({
                            "from": self.priority,
                            "to": self.priority,
                            "protocols": judgement.protocols,
                            "reopens_clearance_by": c.by,
                        })),
                );
            }
        }
        if judgement.disposition > self.priority {
            let from = self.priority;
            self.priority = judgement.disposition;
            self.triage = judgement.clone();
            sla::tighten(&mut self.sla, policies.for_priority(self.priority), now);
            events.push(
                self.event(EventKind::TicketPriorityRaised, actor)
                    .payload_with(json!({
                        "from": from,
                        "to": self.priority,
                        "protocols": judgement.protocols,
                        "sla": self.sla,
                    })),
            );
            let why = format!("priority raised to {}", self.priority.as_str());
            events.extend(self.reroute(team, actor, &why));
        }
        sla::member_wrote(&mut self.sla, policies.for_priority(self.priority), now);
        self.updated_at = now;
        events
    }

    /// A staff member replied. A public reply answers the member (SLA) and
    /// waits for them; an internal note changes nothing but the record.
    pub fn on_staff_reply(
        &mut self,
        actor: &Actor,
        internal: bool,
        now: Timestamp,
    ) -> Result<Vec<NewEvent>> {
        if self.status == TicketStatus::Closed {
            return Err(Error::conflict(
                "ticket-closed",
                "this ticket is closed; a new message from the member opens a new ticket",
            ));
        }
        let mut events = Vec::new();
        if !internal {
            sla::staff_replied(&mut self.sla, now);
            if self.status != TicketStatus::PendingMember {
                events.push(self.set_status(
                    TicketStatus::PendingMember,
                    Some(actor.user_id),
                    Some("staff replied"),
                    now,
                ));
            }
        }
        self.updated_at = now;
        Ok(events)
    }

    /// A staff reply or internal note on this ticket: the message to store
    /// and the events it causes (its own first).
    pub fn staff_reply(
        &mut self,
        actor: &Actor,
        text: MessageText,
        internal: bool,
        now: Timestamp,
    ) -> Result<(Message, Vec<NewEvent>)> {
        let mut events = self.on_staff_reply(actor, internal, now)?;
        let m = Message {
            id: MessageId::new(),
            org_id: self.org_id,
            thread_id: self.thread_id,
            ticket_id: Some(self.id),
            kind: if internal {
                MessageKind::InternalNote
            } else {
                MessageKind::Staff
            },
            author_id: Some(actor.user_id),
            author_name: actor.name.clone(),
            text: text.into_inner(),
            triage: None,
            created_at: now,
            redaction: None,
        };
        events.insert(
            0,
            self.event(EventKind::MessageCreated, Some(actor.user_id))
                .payload_with(json!({"message_id": m.id, "kind": m.kind, "text_sha256": crate::ingest::text_digest(&m.text), "chars": m.text.chars().count()})),
        );
        Ok((m, events))
    }

    /// Whom this ticket may be assigned to: a user of its organization
    /// (`assignee`, if found) who works the queues of its care team
    /// (`assignee_teams`: the teams they belong to).
    pub fn check_assignee(&self, assignee: Option<&User>, assignee_teams: &[TeamId]) -> Result<()> {
        let assignee = assignee
            .filter(|u| u.org_id == self.org_id)
            .ok_or_else(|| {
                Error::invalid("staff_id does not name a staff user of this organization")
            })?;
        if !assignee.role.works_queues() || !assignee_teams.contains(&self.team_id) {
            return Err(Error::invalid(format!(
                "{} is not on this ticket's care team",
                assignee.name
            )));
        }
        Ok(())
    }

    /// A staff user moves the ticket. Illegal moves are a conflict; a
    /// non-clinician may not solve or close a red-flag ticket.
    pub fn transition(
        &mut self,
        actor: &Actor,
        to: TicketStatus,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<NewEvent>> {
        if !actor.role.is_staff() {
            return Err(Error::forbidden(
                "staff-only",
                "only staff can change a ticket's state",
            ));
        }
        if !can_transition(self.status, to) {
            return Err(Error::conflict(
                "illegal-transition",
                format!("a ticket cannot go from {} to {}", self.status, to),
            ));
        }
        if matches!(to, TicketStatus::Solved | TicketStatus::Closed) {
            self.interlock(actor, transition_attempt(to))?;
        }
        Ok(vec![self.set_status(to, Some(actor.user_id), reason, now)])
    }

    /// Claim (`to` = the actor), assign to a colleague, or unassign (`None`).
    /// Assigning a `new` ticket opens it.
    pub fn assign(&mut self, actor: &Actor, to: Option<UserId>, now: Timestamp) -> Vec<NewEvent> {
        let from = self.assignee_id;
        self.assignee_id = to;
        self.updated_at = now;
        let mut events = vec![
            self.event(EventKind::TicketAssigned, Some(actor.user_id))
                .payload_with(json!({
                    "from": from,
                    "to": to,
                })),
        ];
        if to.is_some() && self.status == TicketStatus::New {
            events.push(self.set_status(
                TicketStatus::Open,
                Some(actor.user_id),
                Some("assigned"),
                now,
            ));
        }
        events
    }

    /// Whether this ticket carries a red flag no clinician has decided on.
    pub fn red_flag_uncleared(&self) -> bool {
        self.priority.is_red_flag() && self.clearance.is_none()
    }

    /// Invariant 4: while a red flag is uncleared, only a clinician may `what` it.
    pub fn interlock(&self, actor: &Actor, what: &str) -> Result<()> {
        if self.red_flag_uncleared() && !actor.role.is_clinical() {
            return Err(Error::forbidden(
                INTERLOCK,
                format!(
                    "this ticket carries an uncleared {} red flag ({}); a {} may not {what} it until a nurse or physician records a clinical clearance",
                    self.priority.as_str(),
                    self.flag_names(),
                    actor.role.as_str(),
                ),
            ));
        }
        Ok(())
    }

    /// The event recording a refused attempt to bury a red flag.
    pub fn override_refused(&self, actor: &Actor, attempted: &str) -> NewEvent {
        self.event(EventKind::OverrideRefused, Some(actor.user_id))
            .payload_with(json!({
                "attempted": attempted,
                "role": actor.role,
                "priority": self.priority,
                "protocols": self.triage.protocols.iter().map(|p| &p.id).collect::<Vec<_>>(),
            }))
    }

    /// A clinician records a decision; the ticket follows the cleared
    /// disposition from now on (and its queue with it).
    pub fn clear(
        &mut self,
        actor: &Actor,
        disposition: Disposition,
        note: &str,
        team: &CareTeam,
        now: Timestamp,
    ) -> Result<Vec<NewEvent>> {
        clinician_only(actor, "record a clinical clearance")?;
        if !self.priority.is_red_flag() && self.clearance.is_none() {
            return Err(Error::conflict(
                "no-red-flag",
                "this ticket carries no red flag to clear",
            ));
        }
        let note = note.trim();
        if note.is_empty() || note.chars().count() > 4000 {
            return Err(Error::invalid(
                "a clearance needs a note of 1–4000 characters saying what was decided",
            ));
        }
        let cleared = self.priority;
        self.clearance = Some(Clearance {
            by: actor.user_id,
            by_name: actor.name.clone(),
            role: actor.role,
            disposition,
            cleared_priority: cleared,
            note: note.to_owned(),
            at: now,
        });
        self.priority = disposition;
        // A clinician deciding on the red flag has read the ticket: a
        // review-net mark from before the red flag is answered too.
        if let Some(r) = self.review.as_mut().filter(|r| r.pending()) {
            r.cleared = Some(reviewed_by(actor, note, now));
        }
        let mut events = vec![
            self.event(EventKind::TicketCleared, Some(actor.user_id))
                .payload_with(json!({
                    "cleared_priority": cleared,
                    "disposition": disposition,
                    "note_sha256": crate::ingest::text_digest(note),
                })),
        ];
        events.extend(self.reroute(team, Some(actor.user_id), "clinical clearance"));
        self.updated_at = now;
        Ok(events)
    }

    /// Change priority by hand. Raising is open to staff; lowering an
    /// uncleared red flag is a clinician's decision and records a clearance.
    pub fn set_priority(
        &mut self,
        actor: &Actor,
        to: Disposition,
        reason: &str,
        team: &CareTeam,
        policies: &SlaPolicies,
        now: Timestamp,
    ) -> Result<Vec<NewEvent>> {
        if to == self.priority {
            return Err(Error::conflict(
                "same-priority",
                format!("the ticket is already {}", to.as_str()),
            ));
        }
        if to < self.priority {
            self.interlock(actor, "lower the priority of")?;
            if self.red_flag_uncleared() {
                return self.clear(actor, to, reason, team, now);
            }
            let from = self.priority;
            self.priority = to;
            let mut ev = vec![
                self.event(EventKind::TicketPriorityLowered, Some(actor.user_id))
                    .payload_with(json!({"from": from, "to": to, "reason": reason})),
            ];
            ev.extend(self.reroute(team, Some(actor.user_id), "priority lowered"));
            self.updated_at = now;
            return Ok(ev);
        }
        let from = self.priority;
        self.priority = to;
        self.clearance = None;
        sla::tighten(&mut self.sla, policies.for_priority(to), now);
        let mut ev = vec![
            self.event(EventKind::TicketPriorityRaised, Some(actor.user_id))
                .payload_with(json!({"from": from, "to": to, "reason": reason, "by_hand": true})),
        ];
        ev.extend(self.reroute(team, Some(actor.user_id), "priority raised"));
        self.updated_at = now;
        Ok(ev)
    }

    /// The queue this ticket belongs in: its priority's, or the clinical
    /// queue while a review the organization routes there is pending.
    fn home_queue(&self) -> QueueKind {
        if self
            .review
            .as_ref()
            .is_some_and(|r| r.routed && r.pending())
        {
            QueueKind::Clinical
        } else {
            QueueKind::for_priority(self.priority)
        }
    }

    fn reroute(&mut self, team: &CareTeam, actor: Option<UserId>, why: &str) -> Vec<NewEvent> {
        let kind = self.home_queue();
        if kind == self.queue_kind {
            return Vec::new();
        }
        let from_queue = self.queue_id;
        self.queue_kind = kind;
        self.queue_id = team.queue_for(kind);
        vec![
            self.event(EventKind::TicketRouted, actor)
                .payload_with(json!({
                    "from_queue": from_queue,
                    "to_queue": self.queue_id,
                    "queue_kind": kind,
                    "reason": why,
                })),
        ]
    }

    /// Book a visit. A routine visit for an uncleared red flag is how the
    /// contact centre in the mission failed; only a clinician may book one.
    pub fn book_visit(
        &self,
        actor: &Actor,
        kind: VisitKind,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<(Visit, Vec<NewEvent>)> {
        if !actor.role.is_staff() {
            return Err(Error::forbidden("staff-only", "only staff book visits"));
        }
        if self.status == TicketStatus::Closed {
            return Err(Error::conflict("ticket-closed", "this ticket is closed"));
        }
        if kind == VisitKind::Routine {
            self.interlock(actor, "book a routine visit for")?;
            self.review_interlock(actor)?;
        }
        let visit = Visit {
            id: VisitId::new(),
            org_id: self.org_id,
            ticket_id: self.id,
            member_id: self.member_id,
            kind,
            at,
            booked_by: actor.user_id,
            created_at: now,
        };
        let events = vec![
            self.event(EventKind::VisitBooked, Some(actor.user_id))
                .payload_with(json!({"visit_id": visit.id, "kind": kind, "at": at})),
        ];
        Ok((visit, events))
    }

    /// The review net after a contact was applied to this ticket: a routine
    /// ticket whose new contact reads as clinical is marked for a
    /// clinician's review within the organization's same-day clock (and,
    /// under `route`, moved to the clinical queue). A red-flag ticket is
    /// already in front of a clinician; a pending mark stays as it is.
    pub fn review_contact(
        &mut self,
        judgement: &Judgement,
        settings: &OrgSettings,
        team: &CareTeam,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Vec<NewEvent> {
        let Some(clinical) = judgement.clinical_content.as_ref() else {
            return Vec::new();
        };
        if settings.clinical_review == ClinicalReview::Off
            || self.priority.is_red_flag()
            || judgement.disposition.is_red_flag()
            || self.review.as_ref().is_some_and(NurseReview::pending)
        {
            return Vec::new();
        }
        let within = jiff::SignedDuration::from_mins(i64::from(settings.review_within_minutes));
        let due_at = now.checked_add(within).unwrap_or(Timestamp::MAX);
        let mut words: Vec<String> = clinical.words.iter().map(|w| w.text.clone()).collect();
        words.dedup();
        let routed = settings.clinical_review == ClinicalReview::Route;
        self.review = Some(NurseReview {
            flagged_at: now,
            due_at,
            by: clinical.by.clone(),
            words,
            routed,
            cleared: None,
        });
        self.updated_at = now;
        let mut events = vec![
            self.event(EventKind::ReviewFlagged, actor)
                .payload_with(json!({
                    "policy": settings.clinical_review.as_str(),
                    "by": clinical.by,
                    "due_at": due_at,
                })),
        ];
        events.extend(self.reroute(team, actor, "nurse review of clinical content"));
        events
    }

    /// Whether a review-net mark waits for a clinician.
    pub fn review_pending(&self) -> bool {
        self.review.as_ref().is_some_and(NurseReview::pending)
    }

    /// A clinician records their review of a marked ticket, with a note; a
    /// ticket the policy routed to the clinical queue goes back to its own.
    pub fn clear_review(
        &mut self,
        actor: &Actor,
        note: &str,
        team: &CareTeam,
        now: Timestamp,
    ) -> Result<Vec<NewEvent>> {
        clinician_only(actor, "clear a nurse-review mark")?;
        let note = crate::validate::reason(
            note,
            1..=4000,
            "a review needs a note of 1–4000 characters saying what the clinician decided",
        )?;
        let Some(review) = self.review.as_mut().filter(|r| r.pending()) else {
            return Err(Error::conflict(
                "no-review-pending",
                "this ticket has no nurse-review mark waiting for a clinician",
            ));
        };
        review.cleared = Some(reviewed_by(actor, &note, now));
        let late = now > review.due_at;
        let mut events = vec![
            self.event(EventKind::ReviewCleared, Some(actor.user_id))
                .payload_with(json!({
                    "note_sha256": crate::ingest::text_digest(&note),
                    "late": late,
                })),
        ];
        events.extend(self.reroute(team, Some(actor.user_id), "nurse review recorded"));
        self.updated_at = now;
        Ok(events)
    }

    /// The review net's part of the interlock: while a mark is pending,
    /// only a clinician books a routine visit (as for an urgent flag).
    fn review_interlock(&self, actor: &Actor) -> Result<()> {
        if self.review_pending() && !actor.role.is_clinical() {
            return Err(Error::forbidden(
                INTERLOCK,
                format!(
                    "this ticket is marked for nurse review (its message reads as clinical) and no clinician has reviewed it yet; a {} may not book a routine visit for it until a nurse or physician records the review",
                    actor.role.as_str(),
                ),
            ));
        }
        Ok(())
    }

    /// Whether this contact's judgement calls for a page: a new red flag, a
    /// stronger one, or a red flag arriving after a clinician cleared the last.
    pub fn needs_page(before: Option<&Ticket>, after: &Ticket) -> bool {
        if !after.red_flag_uncleared() {
            return false;
        }
        match before {
            None => true,
            Some(b) => {
                after.priority > b.priority || b.clearance.is_some() || !b.priority.is_red_flag()
            }
        }
    }

    /// The red-flag protocols on this ticket, for messages a person reads.
    pub fn flag_names(&self) -> String {
        let names: Vec<&str> = self
            .triage
            .protocols
            .iter()
            .filter(|p| p.disposition.is_red_flag())
            .map(|p| p.title.as_str())
            .collect();
        if names.is_empty() {
            self.priority.as_str().to_owned()
        } else {
            names.join(", ")
        }
    }

    pub fn is_red_flag(&self) -> bool {
        self.priority > Disposition::Routine
    }
}

/// Only a nurse or physician may `what`.
fn clinician_only(actor: &Actor, what: &str) -> Result<()> {
    if actor.role.is_clinical() {
        return Ok(());
    }
    Err(Error::forbidden(
        "clinician-only",
        format!("only a nurse or physician can {what}"),
    ))
}

/// A clinician's review of a nurse-review mark, as recorded.
fn reviewed_by(actor: &Actor, note: &str, now: Timestamp) -> ReviewCleared {
    ReviewCleared {
        by: actor.user_id,
        by_name: actor.name.clone(),
        role: actor.role,
        note: note.to_owned(),
        at: now,
    }
}

trait PayloadWith {
    fn payload_with(self, v: serde_json::Value) -> Self;
}

impl PayloadWith for NewEvent {
    fn payload_with(mut self, v: serde_json::Value) -> Self {
        self.payload = v;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use careline_triage::FiredProtocol;

    fn judgement(d: Disposition) -> Judgement {
        Judgement {
            disposition: d,
            protocols: if d.is_red_flag() {
                vec![FiredProtocol {
                    id: "chest_pain".into(),
                    title: "Chest pain".into(),
                    disposition: d,
                }]
            } else {
                vec![]
            },
            evidence: vec![],
            suppressed: vec![],
            protocol_version: "test".into(),
            protocol_hash: "x".into(),
            explanation: String::new(),
            guidance: None,
            second_reader: None,
            clinical_content: None,
        }
    }

    fn team() -> CareTeam {
        CareTeam {
            id: TeamId::new(),
            org_id: OrgId::new(),
            name: "North".into(),
            team_queue: QueueId::new(),
            clinical_queue: QueueId::new(),
        }
    }

    fn now() -> Timestamp {
        "2026-03-02T10:00:00Z".parse().unwrap()
    }

    fn ticket(d: Disposition) -> (Ticket, CareTeam) {
        let t = team();
        let thread = crate::model::Thread {
            id: ThreadId::new(),
            org_id: t.org_id,
            member_id: MemberId::new(),
            created_at: now(),
        };
        let (tk, _) = Ticket::open_for_contact(
            &thread,
            &t,
            &judgement(d),
            &SlaPolicies::default(),
            None,
            now(),
        );
        (tk, t)
    }

    fn guide() -> Actor {
        Actor {
            user_id: UserId::new(),
            role: Role::CareGuide,
            name: "Guide".into(),
        }
    }

    #[test]
    fn routine_goes_to_team_queue_red_flags_to_clinical_queue() {
        let (t, team) = ticket(Disposition::Routine);
        assert_eq!((t.queue_id, t.status), (team.team_queue, TicketStatus::New));
        let (t, team) = ticket(Disposition::Urgent);
        assert_eq!(t.queue_id, team.clinical_queue);
    }

    #[test]
    fn staff_reply_waits_for_member_and_member_reply_reopens() {
        let (mut t, team) = ticket(Disposition::Routine);
        let ev = t.on_staff_reply(&guide(), false, now()).unwrap();
        assert_eq!(t.status, TicketStatus::PendingMember);
        assert_eq!(ev.len(), 1);
        assert!(t.sla.first_response_at.is_some());
        t.on_contact(
            &team,
            &judgement(Disposition::Routine),
            &SlaPolicies::default(),
            None,
            now(),
        );
        assert_eq!(t.status, TicketStatus::Open);
        assert!(t.sla.next_response_due.is_some());
    }

    #[test]
    fn internal_note_does_not_change_state_or_answer_the_member() {
        let (mut t, _) = ticket(Disposition::Routine);
        t.on_staff_reply(&guide(), true, now()).unwrap();
        assert_eq!(t.status, TicketStatus::New);
        assert!(t.sla.first_response_at.is_none());
    }

    #[test]
    fn solved_ticket_reopens_when_member_writes() {
        let (mut t, team) = ticket(Disposition::Routine);
        t.transition(&guide(), TicketStatus::Solved, None, now())
            .unwrap();
        t.on_contact(
            &team,
            &judgement(Disposition::Routine),
            &SlaPolicies::default(),
            None,
            now(),
        );
        assert_eq!(t.status, TicketStatus::Open);
        assert!(t.sla.resolved_at.is_none());
    }

    #[test]
    fn new_message_raises_priority_and_reroutes_but_never_lowers() {
        let (mut t, team) = ticket(Disposition::Routine);
        let ev = t.on_contact(
            &team,
            &judgement(Disposition::Emergency),
            &SlaPolicies::default(),
            None,
            now(),
        );
        assert_eq!(t.priority, Disposition::Emergency);
        assert_eq!(t.queue_id, team.clinical_queue);
        assert!(ev.iter().any(|e| e.kind == EventKind::TicketRouted));
        t.on_contact(
            &team,
            &judgement(Disposition::Routine),
            &SlaPolicies::default(),
            None,
            now(),
        );
        assert_eq!(t.priority, Disposition::Emergency);
        assert_eq!(t.queue_id, team.clinical_queue);
    }

    #[test]
    fn illegal_transitions_are_conflicts() {
        let (mut t, _) = ticket(Disposition::Routine);
        let err = t
            .transition(&guide(), TicketStatus::Closed, None, now())
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Conflict {
                rule: "illegal-transition",
                ..
            }
        ));
        t.transition(&guide(), TicketStatus::Solved, None, now())
            .unwrap();
        t.transition(&guide(), TicketStatus::Closed, None, now())
            .unwrap();
        for to in TicketStatus::ALL {
            assert!(
                t.transition(&guide(), to, None, now()).is_err(),
                "closed is final, {to} refused"
            );
        }
        assert!(t.on_staff_reply(&guide(), false, now()).is_err());
    }

    #[test]
    fn non_clinician_cannot_solve_red_flag_ticket() {
        let (mut t, _) = ticket(Disposition::Urgent);
        let err = t
            .transition(&guide(), TicketStatus::Solved, None, now())
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Forbidden {
                    rule: "red-flag-uncleared",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("Chest pain"));
        let nurse = Actor {
            user_id: UserId::new(),
            role: Role::Nurse,
            name: "N".into(),
        };
        t.transition(&nurse, TicketStatus::Solved, None, now())
            .unwrap();
    }

    #[test]
    fn assigning_a_new_ticket_opens_it() {
        let (mut t, _) = ticket(Disposition::Routine);
        let g = guide();
        let ev = t.assign(&g, Some(g.user_id), now());
        assert_eq!(t.status, TicketStatus::Open);
        assert_eq!(ev.len(), 2);
        t.assign(&g, None, now());
        assert_eq!(t.assignee_id, None);
        assert_eq!(t.status, TicketStatus::Open);
    }
}
