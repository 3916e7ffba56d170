//! Clinicians' marks on triage judgements: a nurse or physician who reads a
//! contact and disagrees with the engine (over- or under-triage) says so from
//! the ticket, with the disposition it should have had and why. Each mark is
//! an event, is listed for safety reviewers, and is exported as a labelled
//! line in the corpus format (`crates/triage/eval/`), so the next protocol
//! release learns from real traffic.

use crate::authz::Principal;
use crate::event::{EventKind, NewEvent};
use crate::ids::*;
use crate::model::{Message, MessageKind, Role, Ticket};
use crate::{Error, Result};
use careline_triage::Disposition;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Which way the engine was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The engine judged it less urgent than it was.
    UnderTriage,
    /// The engine judged it more urgent than it was.
    OverTriage,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::UnderTriage => "under_triage",
            Direction::OverTriage => "over_triage",
        }
    }
}

impl std::str::FromStr for Direction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "under_triage" => Ok(Direction::UnderTriage),
            "over_triage" => Ok(Direction::OverTriage),
            other => Err(Error::invalid(format!(
                "direction must be under_triage or over_triage, not {other:?}"
            ))),
        }
    }
}

/// One clinician's mark on one contact's judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgementMark {
    pub id: MarkId,
    pub org_id: OrgId,
    pub ticket_id: TicketId,
    pub message_id: MessageId,
    pub member_id: MemberId,
    pub by: UserId,
    pub by_name: String,
    pub role: Role,
    /// What the engine said.
    pub judged: Disposition,
    /// What the clinician says it should have been.
    pub should_be: Disposition,
    pub direction: Direction,
    pub note: String,
    pub protocol_version: String,
    pub protocol_hash: String,
    pub created_at: Timestamp,
}

/// Who marks judgements: the clinicians who read them.
const MARKERS: &[Role] = &[Role::Nurse, Role::Physician];

/// Who lists and exports marks: the safety-review queue's people.
const REVIEWERS: &[Role] = &[Role::SafetyReviewer, Role::Supervisor];

/// A clinician `p` with access to `ticket` marks the judgement of `message`
/// (a member message or call note on that ticket) as wrong: it should have
/// been `should_be`, for the reason `note` (1–4000 characters).
pub fn mark(
    p: &Principal,
    ticket: &Ticket,
    message: &Message,
    should_be: Disposition,
    note: &str,
    now: Timestamp,
) -> Result<(JudgementMark, NewEvent)> {
    p.require(
        MARKERS,
        "clinician-only",
        "only a nurse or physician marks a triage judgement as wrong",
    )?;
    p.ticket_access(ticket)?;
    if message.ticket_id != Some(ticket.id)
        || !matches!(message.kind, MessageKind::Member | MessageKind::CallNote)
    {
        return Err(Error::invalid(
            "message_id must name a member message or call note on this ticket",
        ));
    }
    if message.redaction.is_some() {
        return Err(Error::conflict(
            "message-redacted",
            "this message was redacted: its words can no longer teach the triage engine",
        ));
    }
    let Some(j) = message.triage.as_ref() else {
        return Err(Error::invalid("this message carries no triage judgement"));
    };
    if should_be == j.disposition {
        return Err(Error::conflict(
            "same-disposition",
            format!(
                "the engine already judged this message {}: a mark says what it should have been instead",
                j.disposition.as_str()
            ),
        ));
    }
    let note = crate::validate::reason(
        note,
        1..=4000,
        "a mark needs a note of 1–4000 characters saying why the judgement was wrong",
    )?;
    let direction = if should_be > j.disposition {
        Direction::UnderTriage
    } else {
        Direction::OverTriage
    };
    let m = JudgementMark {
        id: MarkId::new(),
        org_id: ticket.org_id,
        ticket_id: ticket.id,
        message_id: message.id,
        member_id: ticket.member_id,
        by: p.user_id,
        by_name: p.name.clone(),
        role: p.role,
        judged: j.disposition,
        should_be,
        direction,
        note,
        protocol_version: j.protocol_version.clone(),
        protocol_hash: j.protocol_hash.clone(),
        created_at: now,
    };
    let ev = NewEvent::new(
        EventKind::TriageMarked,
        json!({
            "mark_id": m.id,
            "message_id": m.message_id,
            "judged": m.judged,
            "should_be": m.should_be,
            "direction": m.direction,
            "protocol_version": m.protocol_version,
            "protocol_hash": m.protocol_hash,
            "note_sha256": crate::ingest::text_digest(&m.note),
        }),
    )
    .actor(Some(p.user_id))
    .member(m.member_id)
    .ticket(m.ticket_id)
    .thread(ticket.thread_id)
    .team(ticket.team_id);
    Ok((m, ev))
}

/// Safety reviewers and supervisors list and export marks.
pub fn list_request(p: &Principal) -> Result<()> {
    p.require(
        REVIEWERS,
        "safety-reviewers",
        "only safety reviewers and supervisors see clinicians' marks on triage judgements",
    )
}

/// One mark as a labelled corpus line (`crates/triage/eval/` format): the
/// member's words, the clinician's disposition as the label, the note as
/// the reason. `text`: the message's words; `channel`: `portal` or
/// `call_note`; `language`: the member's.
pub fn corpus_line(
    m: &JudgementMark,
    text: &str,
    channel: &str,
    language: &str,
) -> serde_json::Value {
    json!({
        "id": format!("mark-{}", m.id),
        "text": text,
        "channel": channel,
        "language": language,
        "expected": m.should_be,
        "tags": ["clinician-mark", m.direction.as_str(), format!("engine-{}", m.judged.as_str())],
        "why": m.note,
        "protocol_version": m.protocol_version,
    })
}
