//! Access beyond the care team, and the privacy office's tools.
//!
//! - A colleague tagged into a member's thread (staff only, with a reason,
//!   for at most 30 days, revocable).
//! - Breaking the glass (clinicians only, with a reason, for at most
//!   8 hours, alerting privacy officers and queued for their review).
//! - Redacting a message's content from every view ([`redact`]).
//!
//! Each step is checked here and returns the event it records; the stores
//! load the people involved and write the rows. The records a tag or a
//! break-glass grant returns are the store contract's (`careline_store`).

use crate::authz::Principal;
use crate::event::{EventKind, NewEvent};
use crate::ids::*;
use crate::ingest::text_digest;
use crate::model::{Member, Message, Redaction, Role, User};
use crate::validate::reason;
use crate::{Error, Result};
use jiff::Timestamp;
use serde_json::json;

/// Longest a tag lasts, in seconds.
const MAX_TAG_SECONDS: i64 = 30 * 86_400;
/// Longest a break-glass grant lasts, in seconds.
const MAX_BREAK_GLASS_SECONDS: i64 = 8 * 3600;

/// Access beyond the care team that a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Tagging a colleague into a member's thread.
    Tag,
    /// Breaking the glass to reach a member.
    BreakGlass,
}

impl Ask {
    /// Why a caller with `role` may not ask: staff tag colleagues, only
    /// nurses and physicians break the glass.
    fn refusal(self, role: Role) -> Option<Error> {
        match self {
            Ask::Tag if !role.is_staff() => Some(Error::forbidden(
                "staff-only",
                "only staff tag colleagues into a thread",
            )),
            Ask::BreakGlass if !role.is_clinical() => Some(Error::forbidden(
                "clinician-only",
                "only nurses and physicians may break the glass",
            )),
            _ => None,
        }
    }
}

/// Checks a request for access beyond the care team before anything is
/// loaded: who asks, the reason they give (returned trimmed; 1–1000
/// characters for a tag, 10–1000 to break the glass), and that it ends
/// `until` a moment in the future, within 30 days for a tag and 8 hours
/// for a break-glass grant.
pub fn check_ask(
    p: &Principal,
    ask: Ask,
    why: &str,
    until: Timestamp,
    now: Timestamp,
) -> Result<String> {
    if let Some(refused) = ask.refusal(p.role) {
        return Err(refused);
    }
    let why = match ask {
        Ask::Tag => reason(why, 1..=1000, "a tag needs a reason of 1–1000 characters")?,
        Ask::BreakGlass => reason(
            why,
            10..=1000,
            "breaking the glass needs a reason of 10–1000 characters: privacy officers will review it",
        )?,
    };
    let (longest, refusal) = match ask {
        Ask::Tag => (
            MAX_TAG_SECONDS,
            "a tag must expire in the future and within 30 days",
        ),
        Ask::BreakGlass => (
            MAX_BREAK_GLASS_SECONDS,
            "a break-glass grant lasts between a minute and 8 hours",
        ),
    };
    if until <= now || until.as_second() - now.as_second() > longest {
        return Err(Error::invalid(refusal));
    }
    Ok(why)
}

/// Who may be tagged into a member's thread by `p`: a colleague of the
/// same organization (`colleague`, the user named, if found) who works
/// queues.
pub fn check_colleague<'u>(p: &Principal, colleague: Option<&'u User>) -> Result<&'u User> {
    let u = colleague
        .filter(|u| u.org_id == p.org_id)
        .ok_or_else(|| Error::invalid("user_id does not name a colleague in this organization"))?;
    if !u.role.works_queues() {
        return Err(Error::invalid(format!(
            "a {} cannot be tagged into a member's thread",
            u.role
        )));
    }
    Ok(u)
}

/// The event recording that `p` tagged `colleague` into member `m`'s
/// thread until `expires_at`, as tag `id`.
pub fn tagged(
    p: &Principal,
    m: &Member,
    thread: ThreadId,
    id: uuid::Uuid,
    colleague: UserId,
    expires_at: Timestamp,
) -> NewEvent {
    NewEvent::new(
        EventKind::CollaboratorAdded,
        json!({"collaborator_id": id, "user_id": colleague, "expires_at": expires_at}),
    )
    .actor(Some(p.user_id))
    .member(m.id)
    .thread(thread)
    .team(m.team_id)
}

/// Only staff manage who is tagged into a thread.
pub fn untag_request(p: &Principal) -> Result<()> {
    if !p.role.is_staff() {
        return Err(Error::forbidden(
            "staff-only",
            "only staff manage who is tagged into a thread",
        ));
    }
    Ok(())
}

/// Whoever reaches the member `m` may revoke a tag on their thread; so may
/// the tagged colleague (`user`) themself.
pub fn may_untag(p: &Principal, m: &Member, user: UserId) -> Result<()> {
    if p.user_id != user {
        p.member_access(m.org_id, m.id, m.team_id)?;
    }
    Ok(())
}

/// The event recording that `p` removed `user`'s tag from `m`'s thread.
pub fn untagged(p: &Principal, m: &Member, thread: ThreadId, user: UserId) -> NewEvent {
    NewEvent::new(EventKind::CollaboratorRemoved, json!({"user_id": user}))
        .actor(Some(p.user_id))
        .member(m.id)
        .thread(thread)
        .team(m.team_id)
}

/// The event recording that `p` broke the glass for member `m` until
/// `until`, as grant `id` (privacy officers are alerted by it).
pub fn glass_broken(
    p: &Principal,
    m: &Member,
    id: uuid::Uuid,
    until: Timestamp,
) -> Result<NewEvent> {
    if m.org_id != p.org_id {
        return Err(Error::NotFound("member"));
    }
    Ok(NewEvent::new(
        EventKind::BreakGlass,
        json!({"break_glass_id": id, "user_id": p.user_id, "role": p.role, "expires_at": until}),
    )
    .actor(Some(p.user_id))
    .member(m.id))
}

/// Only privacy officers review break-glass access.
pub fn reviewer(p: &Principal) -> Result<()> {
    p.require(
        &[Role::PrivacyOfficer],
        "privacy-officers",
        "only privacy officers review break-glass access",
    )
}

/// A privacy officer's review note, 1–4000 characters (returned trimmed).
pub fn review_request(p: &Principal, note: &str) -> Result<String> {
    reviewer(p)?;
    reason(note, 1..=4000, "a review needs a note of 1–4000 characters")
}

/// Privacy officer `p` reviews break-glass grant `id` for `member`;
/// `reviewed` says whether someone already did (each grant is reviewed once).
pub fn glass_reviewed(
    p: &Principal,
    id: uuid::Uuid,
    member: MemberId,
    reviewed: bool,
) -> Result<NewEvent> {
    if reviewed {
        return Err(Error::conflict(
            "already-reviewed",
            "this break-glass access was already reviewed",
        ));
    }
    Ok(
        NewEvent::new(EventKind::BreakGlassReviewed, json!({"break_glass_id": id}))
            .actor(Some(p.user_id))
            .member(member),
    )
}

/// Only privacy officers redact, each time with a reason of 1–1000
/// characters (returned trimmed).
pub fn redaction_request(p: &Principal, why: &str) -> Result<String> {
    p.require(
        &[Role::PrivacyOfficer],
        "privacy-officers",
        "only privacy officers redact messages",
    )?;
    reason(
        why,
        1..=1000,
        "a redaction needs a reason of 1–1000 characters",
    )
}

/// Privacy officer `p` hides message `m` (of member `member`'s thread)
/// from every view, once; the stored text and its hash in the record stay.
pub fn redact(
    p: &Principal,
    m: &mut Message,
    member: &Member,
    reason: &str,
    now: Timestamp,
) -> Result<NewEvent> {
    if m.redaction.is_some() {
        return Err(Error::conflict(
            "already-redacted",
            "this message was already redacted",
        ));
    }
    let mut ev = NewEvent::new(
        EventKind::MessageRedacted,
        json!({"message_id": m.id, "reason": reason, "text_sha256": text_digest(&m.text)}),
    )
    .actor(Some(p.user_id))
    .member(member.id)
    .thread(m.thread_id)
    .team(member.team_id);
    if let Some(t) = m.ticket_id {
        ev = ev.ticket(t);
    }
    m.redaction = Some(Redaction {
        at: now,
        by: p.user_id,
        by_role: p.role,
        reason: reason.to_owned(),
    });
    Ok(ev)
}
