//! The plan for one contact (a member message or a call note): which thread
//! it lands on, which ticket it opens or toggles, where that ticket is routed
//! and which events record it. Pure: the store executes the plan inside one
//! transaction, so the sender is acknowledged only after all of it commits.

use crate::authz::{Grant, Principal};
use crate::event::{EventKind, NewEvent};
use crate::ids::*;
use crate::model::{CareTeam, Member, Message, MessageKind, Role, Thread, Ticket, TicketStatus};
use crate::reads::{PhiRead, recorded};
use crate::settings::OrgSettings;
use crate::validate::MessageText;
use crate::{Error, Result};
use careline_triage::Judgement;
use jiff::Timestamp;
use serde_json::json;
use sha2::{Digest, Sha256};

/// A contact as it arrives, already triaged. Holding a `Judgement` is how
/// the type system keeps invariant 1: no contact without a triage result.
#[derive(Debug, Clone)]
pub struct ContactIn {
    pub kind: ContactKind,
    pub author_id: UserId,
    pub author_name: String,
    pub text: MessageText,
    pub judgement: Judgement,
}

/// The two ways a contact arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactKind {
    /// From the member or their proxy through the portal or API.
    Message,
    /// An agent's note of a phone call.
    CallNote,
}

impl ContactKind {
    pub fn message_kind(self) -> MessageKind {
        match self {
            ContactKind::Message => MessageKind::Member,
            ContactKind::CallNote => MessageKind::CallNote,
        }
    }
}

/// What the store found for the member before planning.
#[derive(Debug, Clone, Default)]
pub struct Existing {
    pub thread: Option<Thread>,
    /// The thread's most recent ticket, if any (closed ones included).
    pub ticket: Option<Ticket>,
}

/// What to write.
#[derive(Debug, Clone)]
pub struct ContactPlan {
    pub thread: Thread,
    pub new_thread: bool,
    pub message: Message,
    pub ticket: Ticket,
    pub new_ticket: bool,
    /// For a member's emergency: the automatic reply, already in the thread.
    pub auto_reply: Option<Message>,
    /// For a call note's emergency: what the agent must tell the caller.
    pub agent_guidance: Option<String>,
    /// Whether the store must page a clinician in the same transaction.
    pub page_needed: bool,
    pub events: Vec<NewEvent>,
}

/// Who may record a contact about member `m`, and the grant that lets
/// them: a portal message comes from the member or their proxy; a call note
/// from contact-centre or care-team staff who reach the member the way any
/// staff read does (care team, tag, page or break-glass). A call-taker who
/// does not reach the member may not write into their thread, and learns
/// nothing about it from the refusal.
pub fn check_sender(p: &Principal, kind: ContactKind, m: &Member) -> Result<Grant> {
    match kind {
        ContactKind::Message => {
            let grant = p.member_access(m.org_id, m.id, m.team_id)?;
            if p.role.is_staff() {
                return Err(Error::forbidden(
                    "members-only",
                    "only a member or their proxy sends portal messages",
                ));
            }
            Ok(grant)
        }
        ContactKind::CallNote => {
            if p.org_id != m.org_id {
                return Err(Error::NotFound("member"));
            }
            p.require(
                &[
                    Role::Agent,
                    Role::CareGuide,
                    Role::Nurse,
                    Role::Physician,
                    Role::Supervisor,
                ],
                "call-intake",
                "only contact-centre and care-team staff record calls",
            )?;
            p.member_access(m.org_id, m.id, m.team_id)
        }
    }
}

/// A plan's guidance for the agent with the paged clinician named
/// (`nurse`: their name, if someone was paged and found).
pub fn name_nurse(guidance: &str, nurse: Option<&str>) -> String {
    guidance.replace("{nurse}", nurse.unwrap_or("on call"))
}

/// SHA-256 of a text, recorded in events so the log proves content without copying it.
pub fn text_digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Plan one contact by `p` for `member`, whose care team is `team`, after
/// checking that `p` may record it ([`check_sender`]). A contact that joins
/// an open ticket shows its sender that ticket (its triage may quote the
/// member's earlier words), so for anyone but the member it also records
/// that read.
pub fn plan_contact(
    p: &Principal,
    member: &Member,
    team: &CareTeam,
    existing: Existing,
    input: ContactIn,
    settings: &OrgSettings,
    now: Timestamp,
) -> Result<ContactPlan> {
    let grant = check_sender(p, input.kind, member)?;
    let policies = &settings.sla;
    let mut events = Vec::new();
    let actor = Some(input.author_id);
    let (thread, new_thread) = match existing.thread {
        Some(t) => (t, false),
        None => {
            let t = Thread {
                id: ThreadId::new(),
                org_id: member.org_id,
                member_id: member.id,
                created_at: now,
            };
            events.push(
                NewEvent::new(EventKind::ThreadCreated, json!({}))
                    .actor(actor)
                    .member(member.id)
                    .thread(t.id)
                    .team(team.id),
            );
            (t, true)
        }
    };

    let before = existing
        .ticket
        .clone()
        .filter(|t| t.status != TicketStatus::Closed);
    let (mut ticket, new_ticket, mut ticket_events) = match existing.ticket {
        Some(mut t) if t.status != TicketStatus::Closed => {
            let ev = t.on_contact(team, &input.judgement, policies, actor, now);
            (t, false, ev)
        }
        _ => {
            let (t, ev) =
                Ticket::open_for_contact(&thread, team, &input.judgement, policies, actor, now);
            (t, true, ev)
        }
    };
    ticket_events.extend(ticket.review_contact(&input.judgement, settings, team, actor, now));

    let message = Message {
        id: MessageId::new(),
        org_id: member.org_id,
        thread_id: thread.id,
        ticket_id: Some(ticket.id),
        kind: input.kind.message_kind(),
        author_id: actor,
        author_name: input.author_name,
        text: input.text.into_inner(),
        triage: Some(input.judgement.clone()),
        created_at: now,
        redaction: None,
    };

    let scope = |e: NewEvent| {
        e.actor(actor)
            .member(member.id)
            .thread(thread.id)
            .ticket(ticket.id)
            .team(team.id)
    };
    let kind_event = match input.kind {
        ContactKind::Message => EventKind::MessageCreated,
        ContactKind::CallNote => EventKind::CallCreated,
    };
    events.push(scope(NewEvent::new(
        kind_event,
        json!({
            "message_id": message.id,
            "kind": message.kind,
            "text_sha256": text_digest(&message.text),
            "chars": message.text.chars().count(),
        }),
    )));
    let j = &input.judgement;
    events.push(scope(NewEvent::new(
        EventKind::TriageJudged,
        json!({
            "message_id": message.id,
            "disposition": j.disposition,
            "protocols": j.protocols.iter().map(|p| &p.id).collect::<Vec<_>>(),
            "evidence": j.evidence.iter().map(|e| json!({"protocol": e.protocol, "start": e.start, "end": e.end})).collect::<Vec<_>>(),
            "suppressed": j.suppressed.len(),
            "protocol_version": j.protocol_version,
            "protocol_hash": j.protocol_hash,
        }),
    )));
    events.extend(ticket_events);

    let emergency = input.judgement.disposition == careline_triage::Disposition::Emergency;
    let auto_reply = (emergency && input.kind == ContactKind::Message).then(|| {
        let text = settings
            .emergency
            .member_reply(&member.language, &input.judgement);
        Message {
            id: MessageId::new(),
            org_id: member.org_id,
            thread_id: thread.id,
            ticket_id: Some(ticket.id),
            kind: MessageKind::System,
            author_id: None,
            author_name: "careline".into(),
            text,
            triage: None,
            created_at: now,
            redaction: None,
        }
    });
    if let Some(m) = &auto_reply {
        events.push(scope(NewEvent::new(
            EventKind::AutoReplySent,
            json!({"message_id": m.id, "language": member.language, "text_sha256": text_digest(&m.text), "in_reply_to": message.id}),
        )).actor(None));
    }
    let agent_guidance = (emergency && input.kind == ContactKind::CallNote).then(|| {
        settings
            .emergency
            .agent_guidance(&input.judgement, "{nurse}")
    });
    let page_needed = Ticket::needs_page(before.as_ref(), &ticket);
    if !new_ticket {
        let read = PhiRead::ticket(&ticket, "ticket", grant);
        events.extend(recorded(p, &[read]).into_iter().flat_map(|(_, e)| e));
    }

    Ok(ContactPlan {
        thread,
        new_thread,
        message,
        ticket,
        new_ticket,
        auto_reply,
        agent_guidance,
        page_needed,
        events,
    })
}
