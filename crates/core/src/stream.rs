//! A live event stream outlives the request that opened it, so the caller's
//! right to it is judged again while it runs: when an event that may change
//! their access passes by, and when the session or one of their grants runs
//! out on its own. This module holds those two judgements; the web layer
//! asks the store for the facts and ends the stream when they say so.

use crate::authz::{Grant, Principal};
use crate::event::Event;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

/// Why a session can no longer carry a stream; sent as the stream's last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    /// Logged out, or ended by an administrator (or the token is unknown).
    Revoked,
    /// Past the session's lifetime.
    Expired,
    /// Unused for longer than the idle timeout.
    Idle,
    /// The account was disabled.
    Disabled,
}

impl SessionEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEnd::Revoked => "revoked",
            SessionEnd::Expired => "expired",
            SessionEnd::Idle => "idle",
            SessionEnd::Disabled => "disabled",
        }
    }
}

/// What the store knows about a session and the time limits on its user's
/// grants, read as it stands (revoked or expired sessions included, so the
/// stream can say why it ends).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFacts {
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// Last use (or creation), for the idle timeout.
    pub seen: Timestamp,
    pub disabled: bool,
    /// When each of the user's time-limited grants still in force runs out:
    /// tags, break-glass, proxy grants.
    pub grant_expiries: Vec<Timestamp>,
}

/// Whether a session still carries a stream at `now`: the instant until
/// which its answer cannot change by time alone (the session's expiry or
/// idle lapse, or the first grant that runs out), or why it ended.
pub fn standing(
    f: &SessionFacts,
    now: Timestamp,
    idle: SignedDuration,
) -> Result<Timestamp, SessionEnd> {
    if f.revoked_at.is_some() {
        return Err(SessionEnd::Revoked);
    }
    if f.disabled {
        return Err(SessionEnd::Disabled);
    }
    if f.expires_at <= now {
        return Err(SessionEnd::Expired);
    }
    if crate::session::lapsed(f.seen, now, idle) {
        return Err(SessionEnd::Idle);
    }
    let lapse = f.seen.checked_add(idle).unwrap_or(f.expires_at);
    Ok(f.grant_expiries
        .iter()
        .copied()
        .filter(|t| *t > now)
        .chain([f.expires_at, lapse])
        .min()
        .unwrap_or(f.expires_at))
}

/// A session's standing as a stream needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    /// The caller as they are now, unchanged by time alone until `until`.
    Live {
        principal: Principal,
        until: Timestamp,
    },
    Ended(SessionEnd),
}

/// Whether a committed event may change what `p` may see, so that a stream
/// holding `p` must load the caller again before it delivers anything more.
/// It errs towards yes: a needless reload costs a read, a missed one leaks.
pub fn may_change_access(p: &Principal, e: &Event) -> bool {
    if e.org_id != p.org_id || !crate::event::changes_access(&e.kind) {
        return false;
    }
    let me = p.user_id.to_string();
    if e.actor_id == Some(p.user_id) || e.payload.contains(&me) {
        return true;
    }
    match e.kind.as_str() {
        // An alarm reaches every clinician and supervisor.
        "escalation.alarm" => true,
        // A page of a ticket that resolves no longer grants its member.
        "ticket.status_changed" => e.member_id.is_some_and(|m| {
            p.grants
                .iter()
                .any(|(g, how)| *g == m && *how == Grant::Paged)
        }),
        "member.created" => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(min: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + min * 60).unwrap()
    }

    fn facts() -> SessionFacts {
        SessionFacts {
            expires_at: at(600),
            revoked_at: None,
            seen: at(0),
            disabled: false,
            grant_expiries: vec![],
        }
    }

    const IDLE: SignedDuration = SignedDuration::from_mins(30);

    #[test]
    fn a_live_session_holds_until_its_idle_lapse_or_first_grant_expiry() {
        assert_eq!(standing(&facts(), at(1), IDLE), Ok(at(30)));
        let f = SessionFacts {
            grant_expiries: vec![at(20), at(10)],
            ..facts()
        };
        assert_eq!(standing(&f, at(1), IDLE), Ok(at(10)));
        let f = SessionFacts {
            seen: at(590),
            ..facts()
        };
        assert_eq!(standing(&f, at(591), IDLE), Ok(at(600)), "capped by expiry");
    }

    #[test]
    fn an_ended_session_says_why() {
        let revoked = SessionFacts {
            revoked_at: Some(at(1)),
            ..facts()
        };
        assert_eq!(standing(&revoked, at(2), IDLE), Err(SessionEnd::Revoked));
        assert_eq!(standing(&facts(), at(600), IDLE), Err(SessionEnd::Expired));
        assert_eq!(standing(&facts(), at(31), IDLE), Err(SessionEnd::Idle));
        let disabled = SessionFacts {
            disabled: true,
            ..facts()
        };
        assert_eq!(standing(&disabled, at(1), IDLE), Err(SessionEnd::Disabled));
    }
}
