//! Logins, sessions and second factors: when a session lapses, whose
//! attacked login alerts the privacy officers, and the events each step
//! records. The stores keep sessions by the hash of their token and call in
//! here; how repeated failures are slowed down is in [`crate::login`].

use crate::authz::{Grant, Principal, ProxyScope};
use crate::event::{EventKind, NewEvent};
use crate::ids::*;
use crate::model::{Role, User};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

/// How often a session's last use is written down, at most.
const TOUCH_EVERY: SignedDuration = SignedDuration::from_mins(1);

/// Roles whose login under attack alerts the privacy officers: those who
/// reach many members' records or change who may (administrators, privacy
/// officers, supervisors) and the clinicians, whose accounts see red-flag
/// tickets across teams through pages and break-glass.
pub fn alerts_when_attacked(role: Role) -> bool {
    matches!(
        role,
        Role::Admin | Role::PrivacyOfficer | Role::Supervisor | Role::Nurse | Role::Physician
    )
}

/// Failed logins for a privileged account crossed the alert threshold: an
/// alert for the privacy officers (their event stream carries `privacy.*`).
pub fn login_attack(user: UserId, role: Role, failures: u32) -> NewEvent {
    NewEvent::new(
        EventKind::LoginAttack,
        json!({"user_id": user, "role": role.as_str(), "failures": failures}),
    )
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
    fn privileged_and_clinical_logins_alert_when_attacked_and_others_do_not() {
        assert!(alerts_when_attacked(Role::Nurse));
        assert!(alerts_when_attacked(Role::Admin));
        assert!(!alerts_when_attacked(Role::CareGuide));
        assert!(!alerts_when_attacked(Role::Member));
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
