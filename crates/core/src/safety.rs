//! The retrospective safety audit (invariant 9): re-judge a past contact
//! with today's protocols and decide whether it reached a clinician in time —
//! a page acknowledged, or a clinical clearance recorded, within the
//! acknowledgement deadline of its disposition. Anything else is a
//! "failure to clinically escalate".

use crate::authz::Principal;
use crate::escalation::AckPolicy;
use crate::ids::TicketId;
use crate::model::Role;
use crate::{Error, Result};
use careline_triage::{Disposition, Judgement};
use jiff::Timestamp;
use serde::Serialize;
use std::collections::HashMap;

/// What happened on a ticket that matters for timeliness.
#[derive(Debug, Clone, Default)]
pub struct TicketHistory {
    /// When pages were sent.
    pub paged: Vec<Timestamp>,
    /// When pages were acknowledged.
    pub acked: Vec<Timestamp>,
    /// When clinical clearances were recorded.
    pub cleared: Vec<Timestamp>,
}

/// Who works the safety-review queue.
const REVIEWERS: &[Role] = &[Role::SafetyReviewer, Role::Supervisor];

/// Safety reviewers and supervisors see the queue, filtered by `status`
/// (open or resolved) if given.
pub fn reviews_request(p: &Principal, status: Option<&str>) -> Result<()> {
    p.require(
        REVIEWERS,
        "safety-reviewers",
        "only safety reviewers and supervisors see the safety-review queue",
    )?;
    if let Some(st) = status
        && !matches!(st, "open" | "resolved")
    {
        return Err(Error::invalid("status must be open or resolved"));
    }
    Ok(())
}

/// Safety reviewers and supervisors resolve reviews, with a note of
/// 1–4000 characters (returned trimmed).
pub fn resolve_request(p: &Principal, note: &str) -> Result<String> {
    p.require(
        REVIEWERS,
        "safety-reviewers",
        "only safety reviewers and supervisors resolve safety reviews",
    )?;
    crate::validate::reason(
        note,
        1..=4000,
        "a resolution needs a note of 1–4000 characters",
    )
}

/// Supervisors, safety reviewers and administrators see safety figures.
pub fn report_request(p: &Principal) -> Result<()> {
    p.require(
        &[Role::SafetyReviewer, Role::Supervisor, Role::Admin],
        "safety-report",
        "only supervisors, safety reviewers and administrators see safety figures",
    )
}

/// The histories of `tickets` from their pages (ticket, sent, acknowledged)
/// and clearances (ticket, when), each in the order given; every ticket
/// asked for has one, empty if nothing happened on it.
pub fn histories(
    tickets: &[TicketId],
    pages: impl IntoIterator<Item = (TicketId, Timestamp, Option<Timestamp>)>,
    cleared: impl IntoIterator<Item = (TicketId, Timestamp)>,
) -> HashMap<TicketId, TicketHistory> {
    let mut out: HashMap<TicketId, TicketHistory> = tickets
        .iter()
        .map(|t| (*t, TicketHistory::default()))
        .collect();
    for (t, sent, acked) in pages {
        if let Some(h) = out.get_mut(&t) {
            h.paged.push(sent);
            h.acked.extend(acked);
        }
    }
    for (t, at) in cleared {
        if let Some(h) = out.get_mut(&t) {
            h.cleared.push(at);
        }
    }
    out
}

/// One failure to clinically escalate.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub disposition: Disposition,
    pub protocols: Vec<String>,
    pub evidence: Vec<String>,
    pub contact_at: Timestamp,
    pub deadline: Timestamp,
    pub first_page_at: Option<Timestamp>,
    pub first_ack_at: Option<Timestamp>,
    pub first_clearance_at: Option<Timestamp>,
    /// A sentence a safety reviewer reads.
    pub summary: String,
}

fn first_from(v: &[Timestamp], from: Timestamp) -> Option<Timestamp> {
    v.iter().copied().filter(|t| *t >= from).min()
}

/// Judge one contact's handling. `None` when it was not a red flag by
/// `judgement`, or when a clinician took it in time.
pub fn assess(
    judgement: &Judgement,
    contact_at: Timestamp,
    h: &TicketHistory,
    policy: &AckPolicy,
) -> Option<Finding> {
    if !judgement.disposition.is_red_flag() {
        return None;
    }
    let deadline = contact_at
        .checked_add(policy.window(judgement.disposition))
        .unwrap_or(Timestamp::MAX);
    // A clinician already engaged on the ticket (acknowledged or cleared
    // before this contact, without a newer red flag since) also counts only
    // if it happened at or after the contact: an old acknowledgement does
    // not cover a new red flag.
    let first_ack = first_from(&h.acked, contact_at);
    let first_clear = first_from(&h.cleared, contact_at);
    let first_page = first_from(&h.paged, contact_at);
    let timely =
        first_ack.is_some_and(|t| t <= deadline) || first_clear.is_some_and(|t| t <= deadline);
    if timely {
        return None;
    }
    let protocols: Vec<String> = judgement
        .protocols
        .iter()
        .filter(|p| p.disposition.is_red_flag())
        .map(|p| p.title.clone())
        .collect();
    let what = match (first_page, first_ack.or(first_clear)) {
        (None, _) => "no clinician was paged".to_owned(),
        (Some(p), None) => format!("paged at {p} but never acknowledged or cleared"),
        (Some(p), Some(a)) => format!(
            "paged at {p}, first taken by a clinician at {a}, after the deadline {deadline}"
        ),
    };
    Some(Finding {
        disposition: judgement.disposition,
        protocols: protocols.clone(),
        evidence: judgement.evidence.iter().map(|e| e.text.clone()).collect(),
        contact_at,
        deadline,
        first_page_at: first_page,
        first_ack_at: first_ack,
        first_clearance_at: first_clear,
        summary: format!(
            "failure to clinically escalate: {} ({}) at {contact_at}; {what}",
            judgement.disposition.as_str(),
            if protocols.is_empty() {
                "red flag".into()
            } else {
                protocols.join(", ")
            },
        ),
    })
}
