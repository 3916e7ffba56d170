//! Caregivers acting for members, and the member's consent to share
//! sensitive categories: what each grant, revocation and consent change
//! requires and the event it records. Who may ask is decided in [`authz`]
//! ([`Principal::manage_proxies`], [`Principal::record_consent`]); the
//! stores load the people involved, call in here, and write the rows.
//!
//! [`authz`]: crate::authz

use crate::authz::{Principal, ProxyScope};
use crate::event::{EventKind, NewEvent};
use crate::ids::*;
use crate::model::{Member, Role, SensitiveCategory, User};
use crate::{Error, Result};
use jiff::Timestamp;
use serde_json::json;

/// Whose caregiver grants a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyList {
    /// Everyone who acts for this member.
    OfMember(MemberId),
    /// Everyone this proxy user acts for.
    OfProxy(UserId),
}

/// A grant of caregiver access, in `org`, to `proxy` for `m` (replacing any
/// earlier grant between the two): both must be of the organization, the
/// grantee a proxy user, and an expiry in the future. Returns its event.
pub fn grant(
    org: OrgId,
    m: &Member,
    proxy: &User,
    scope: ProxyScope,
    expires_at: Option<Timestamp>,
    actor: Option<UserId>,
    now: Timestamp,
) -> Result<NewEvent> {
    if m.org_id != org || proxy.org_id != org {
        return Err(Error::NotFound("member"));
    }
    if proxy.role != Role::Proxy {
        return Err(Error::invalid(
            "proxy access is granted to users with the proxy role",
        ));
    }
    if expires_at.is_some_and(|e| e <= now) {
        return Err(Error::invalid("expires_at must be in the future"));
    }
    Ok(NewEvent::new(
        EventKind::ProxyGranted,
        json!({"proxy_user_id": proxy.id, "scope": scope, "expires_at": expires_at}),
    )
    .actor(actor)
    .member(m.id))
}

/// The caregiver a member names by username (`found`: the user of that
/// name in the caller's organization, if any): an enabled proxy account.
pub fn named_caregiver(username: &str, found: Option<User>) -> Result<User> {
    found
        .filter(|u| u.role == Role::Proxy && !u.disabled)
        .ok_or_else(|| {
            Error::invalid(format!(
                "'{username}' is not a caregiver account of this organization; ask the clinic to create one"
            ))
        })
}

/// Whether `p` may end `proxy`'s access to `m`: the caregiver may always
/// step back from their own access; otherwise whoever manages the
/// member's caregivers (privacy officers included).
pub fn may_revoke(p: &Principal, m: &Member, proxy: UserId) -> Result<()> {
    let own_grant = p.role == Role::Proxy && p.user_id == proxy && p.org_id == m.org_id;
    if own_grant {
        return Ok(());
    }
    p.manage_proxies(m, true)
}

/// The event recording that `p` ended `proxy`'s access to `member`.
pub fn revoked(p: &Principal, member: MemberId, proxy: UserId) -> NewEvent {
    NewEvent::new(EventKind::ProxyRevoked, json!({"proxy_user_id": proxy}))
        .actor(Some(p.user_id))
        .member(member)
}

/// The caregiver grants a member or proxy sees of their own; anyone else
/// lists a member's through the member.
pub fn own_list(p: &Principal) -> Result<ProxyList> {
    match (p.role, p.member_id) {
        (Role::Proxy, _) => Ok(ProxyList::OfProxy(p.user_id)),
        (Role::Member, Some(m)) => Ok(ProxyList::OfMember(m)),
        _ => Err(Error::forbidden(
            "members-only",
            "caregiver access is between members and their proxies; administrators use /api/v1/members/{id}/proxies",
        )),
    }
}

/// `p` records (`granted`) or withdraws consent to share `category` for
/// `m`, changing `m`'s markers. Returns the event, or `None` when the
/// consent already stood as asked (nothing to write).
pub fn change_consent(
    p: &Principal,
    m: &mut Member,
    category: SensitiveCategory,
    granted: bool,
    reason: Option<&str>,
) -> Result<Option<NewEvent>> {
    let (on_behalf, reason) = p.record_consent(m, reason)?;
    let list = &mut m.markers.consented_categories;
    if list.contains(&category) == granted {
        return Ok(None);
    }
    if granted {
        list.push(category);
    } else {
        list.retain(|c| *c != category);
    }
    let kind = if granted {
        EventKind::ConsentRecorded
    } else {
        EventKind::ConsentWithdrawn
    };
    Ok(Some(
        NewEvent::new(
            kind,
            json!({"category": category, "on_behalf": on_behalf, "reason": reason}),
        )
        .actor(Some(p.user_id))
        .member(m.id),
    ))
}
