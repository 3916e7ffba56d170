//! Logins, sessions and second factors: when repeated failures lock an
//! account, when a session lapses, and the events each step records. The
//! stores keep sessions by the hash of their token and call in here.

use crate::authz::{Grant, Principal, ProxyScope};
use crate::event::{EventKind, NewEvent};
use crate::ids::*;
use crate::model::{Role, User};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

/// Failed logins within the window that lock an account.
pub const LOCKOUT_FAILURES: u32 = 5;
/// The lockout window, and how long a lock lasts after the last failure.
pub const LOCKOUT_WINDOW: SignedDuration = SignedDuration::from_mins(15);
/// How often a session's last use is written down, at most.
const TOUCH_EVERY: SignedDuration = SignedDuration::from_mins(1);

/// Failures after this instant count towards a lock.
pub fn lockout_since(now: Timestamp) -> Timestamp {
    now.checked_sub(LOCKOUT_WINDOW).unwrap_or(Timestamp::MIN)
}

/// Until when the account is locked, given its most recent failures since
/// [`lockout_since`] (newest first, at most [`LOCKOUT_FAILURES`]).
pub fn locked_until(recent: &[Timestamp], now: Timestamp) -> Option<Timestamp> {
    if recent.len() < LOCKOUT_FAILURES as usize {
        return None;
    }
    let last = recent.first()?;
    last.checked_add(LOCKOUT_WINDOW).ok().filter(|u| *u > now)
}

/// A session last used at `seen` has lapsed after `idle` without use.
pub fn lapsed(seen: Timestamp, now: Timestamp, idle: SignedDuration) -> bool {
    now.duration_since(seen) > idle
}

/// Whether a session last used at `seen` should be marked used now.
pub fn touch_due(seen: Timestamp, now: Timestamp) -> bool {
    now.duration_since(seen) > TOUCH_EVERY
}

/// Whether a staff user is paged about a member by a page of an unresolved
/// ticket at `level` naming `targets` (both as stored): they are among the
/// targets, or it is an alarm and they are a clinician or supervisor.
pub fn paged_by(user: &User, level: &str, targets: &str) -> bool {
    let alarm_ok = user.role.is_clinical() || user.role == Role::Supervisor;
    targets.contains(&user.id.to_string()) || (level == "org_alarm" && alarm_ok)
}

/// The caller behind a live session: the user, with the teams, proxy
/// grants and relationship grants that were loaded for them.
pub fn principal(
    user: User,
    team_ids: Vec<TeamId>,
    proxy_for: Vec<(MemberId, ProxyScope)>,
    grants: Vec<(MemberId, Grant)>,
    enrolment_only: bool,
) -> Principal {
    Principal {
        user_id: user.id,
        org_id: user.org_id,
        role: user.role,
        name: user.name,
        member_id: user.member_id,
        proxy_for,
        team_ids,
        grants,
        enrolment_only,
    }
}

/// Only administrators end other users' sessions.
pub fn revoke_others_request(p: &Principal) -> crate::Result<()> {
    p.require(
        &[Role::Admin],
        "admin-only",
        "only administrators revoke other users' sessions",
    )
}

/// A session was created for `user`.
pub fn created(user: UserId, expires_at: Timestamp) -> NewEvent {
    NewEvent::new(EventKind::SessionCreated, json!({"expires_at": expires_at})).actor(Some(user))
}

/// A login failed (for an account, if the name was one).
pub fn login_failed(
    user: Option<UserId>,
    username: &str,
    address: Option<std::net::IpAddr>,
) -> NewEvent {
    NewEvent::new(
        EventKind::LoginFailed,
        json!({"username": username, "address": address}),
    )
    .actor(user)
}

/// A login for `user` was refused by the per-address throttle.
pub fn login_throttled(user: UserId, address: std::net::IpAddr) -> NewEvent {
    NewEvent::new(EventKind::LoginThrottled, json!({"address": address})).actor(Some(user))
}

/// `user` logged out of one session.
pub fn revoked_current(user: UserId) -> NewEvent {
    NewEvent::new(EventKind::SessionRevoked, json!({"scope": "current"})).actor(Some(user))
}

/// `by` ended `sessions` sessions of `user`.
pub fn revoked_all(by: UserId, user: UserId, sessions: u64) -> NewEvent {
    NewEvent::new(
        EventKind::SessionRevoked,
        json!({"scope": "all", "user_id": user, "sessions": sessions}),
    )
    .actor(Some(by))
}

/// `user` enrolled a TOTP second factor with `recovery_codes` codes.
pub fn mfa_enrolled(user: UserId, recovery_codes: usize) -> NewEvent {
    NewEvent::new(
        EventKind::MfaEnrolled,
        json!({"method": "totp", "recovery_codes": recovery_codes}),
    )
    .actor(Some(user))
}

/// `user` spent a recovery code.
pub fn recovery_used(user: UserId) -> NewEvent {
    NewEvent::new(EventKind::MfaRecoveryUsed, json!({})).actor(Some(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(min: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + min * 60).unwrap()
    }

    #[test]
    fn five_recent_failures_lock_for_the_window_after_the_last() {
        let now = at(10);
        let four = [at(9), at(8), at(7), at(6)];
        assert_eq!(locked_until(&four, now), None);
        let five = [at(9), at(8), at(7), at(6), at(5)];
        assert_eq!(locked_until(&five, now), Some(at(24)));
        assert_eq!(locked_until(&five, at(30)), None, "the lock ran out");
        assert_eq!(lockout_since(now), at(-5));
    }

    #[test]
    fn sessions_lapse_when_idle_and_are_touched_once_a_minute() {
        let idle = SignedDuration::from_mins(30);
        assert!(!lapsed(at(0), at(30), idle));
        assert!(lapsed(at(0), at(31), idle));
        assert!(!touch_due(at(0), at(1)));
        assert!(touch_due(at(0), at(2)));
    }
}
