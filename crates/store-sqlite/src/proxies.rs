//! Caregivers acting for members (proxies, each with a scope and an optional
//! expiry, granted by the member or an administrator and revocable by
//! either side) and the member's consent to share sensitive categories.

use crate::SqliteStore;
use crate::rows::{self, db, us};
use crate::writer::Tx;
use careline_core::authz::{Principal, ProxyScope};
use careline_core::event::{EventKind, NewEvent};
use careline_core::ids::*;
use careline_core::model::{Role, SensitiveCategory};
use careline_core::{Error, Result};
use careline_store::{ConsentChange, ProxyEntry};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;

/// The members a proxy user acts for now, with their scopes.
pub fn scopes(c: &Connection, user: UserId, now: Timestamp) -> Result<Vec<(MemberId, ProxyScope)>> {
    let mut st = c
        .prepare_cached(
            "SELECT member_id, scope FROM proxies WHERE proxy_user_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .map_err(db)?;
    st.query_map(params![user.to_string(), us(now)], |r| {
        let scope: String = r.get("scope")?;
        Ok((
            rows::id::<MemberId>(r, "member_id")?,
            ProxyScope::parse(&scope).unwrap_or(ProxyScope::Messages),
        ))
    })
    .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
    .map_err(db)
}

/// Stores a grant (replacing an earlier one between the same two) and its event.
#[allow(clippy::too_many_arguments)]
pub fn grant(
    tx: &Tx<'_>,
    org: OrgId,
    proxy: UserId,
    member: MemberId,
    scope: ProxyScope,
    expires_at: Option<Timestamp>,
    actor: Option<UserId>,
    now: Timestamp,
) -> Result<()> {
    let m = rows::load_member(tx.conn, member)?;
    let u = rows::load_user(tx.conn, proxy)?.ok_or(Error::NotFound("user"))?;
    if m.org_id != org || u.org_id != org {
        return Err(Error::NotFound("member"));
    }
    if u.role != Role::Proxy {
        return Err(Error::invalid(
            "proxy access is granted to users with the proxy role",
        ));
    }
    if expires_at.is_some_and(|e| e <= now) {
        return Err(Error::invalid("expires_at must be in the future"));
    }
    tx.conn
        .prepare_cached(
            "INSERT INTO proxies (proxy_user_id, member_id, expires_at, created_at, scope, granted_by) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (proxy_user_id, member_id) DO UPDATE SET expires_at = excluded.expires_at, scope = excluded.scope,
                 granted_by = excluded.granted_by, created_at = excluded.created_at",
        )
        .and_then(|mut s| {
            s.execute(params![
                proxy.to_string(),
                member.to_string(),
                expires_at.map(us),
                us(now),
                scope.as_str(),
                actor.map(|a| a.to_string())
            ])
        })
        .map_err(db)?;
    tx.append(
        org,
        now,
        vec![
            NewEvent::new(
                EventKind::ProxyGranted,
                json!({"proxy_user_id": proxy, "scope": scope, "expires_at": expires_at}),
            )
            .actor(actor)
            .member(member),
        ],
    )
}

fn entry(r: &Row<'_>) -> rusqlite::Result<ProxyEntry> {
    let scope: String = r.get("scope")?;
    Ok(ProxyEntry {
        proxy_user_id: rows::id(r, "proxy_user_id")?,
        proxy_name: r.get("proxy_name")?,
        member_id: rows::id(r, "member_id")?,
        member_name: r.get("member_name")?,
        scope: ProxyScope::parse(&scope).unwrap_or(ProxyScope::Messages),
        expires_at: rows::opt_ts(r, "expires_at")?,
        created_at: rows::ts(r, "created_at")?,
    })
}

const SELECT_ENTRY: &str = "SELECT p.*, u.name AS proxy_name, m.name AS member_name FROM proxies p
     JOIN users u ON u.id = p.proxy_user_id JOIN members m ON m.id = p.member_id";

fn entries(c: &Connection, filter: &str, arg: String, now: Timestamp) -> Result<Vec<ProxyEntry>> {
    let sql = format!(
        "{SELECT_ENTRY} WHERE {filter} = $1 AND (p.expires_at IS NULL OR p.expires_at > $2) ORDER BY p.created_at"
    );
    let mut st = c.prepare_cached(&sql).map_err(db)?;
    st.query_map(params![arg, us(now)], entry)
        .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(db)
}

pub async fn grant_as_member(
    s: &SqliteStore,
    p: &Principal,
    member: MemberId,
    username: &str,
    scope: ProxyScope,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<ProxyEntry> {
    let p = p.clone();
    let username = username.trim().to_owned();
    s.write(move |tx| {
        let m = rows::load_member(tx.conn, member)?;
        p.manage_proxies(&m, false)?;
        let proxy = tx
            .conn
            .prepare_cached("SELECT * FROM users WHERE username = $1 AND org_id = $2")
            .and_then(|mut st| st.query_row(params![username, p.org_id.to_string()], rows::user).optional())
            .map_err(db)?
            .filter(|u| u.role == Role::Proxy && !u.disabled)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "'{username}' is not a caregiver account of this organization; ask the clinic to create one"
                ))
            })?;
        grant(tx, p.org_id, proxy.id, member, scope, expires_at, Some(p.user_id), now)?;
        Ok(ProxyEntry {
            proxy_user_id: proxy.id,
            proxy_name: proxy.name,
            member_id: member,
            member_name: m.name,
            scope,
            expires_at,
            created_at: now,
        })
    })
    .await
}

pub async fn revoke(
    s: &SqliteStore,
    p: &Principal,
    member: MemberId,
    proxy: UserId,
    now: Timestamp,
) -> Result<()> {
    let p = p.clone();
    s.write(move |tx| {
        let m = rows::load_member(tx.conn, member)?;
        // The caregiver may always step back from their own access.
        let own_grant = p.role == Role::Proxy && p.user_id == proxy && p.org_id == m.org_id;
        if !own_grant {
            p.manage_proxies(&m, true)?;
        }
        let n = tx
            .conn
            .prepare_cached("DELETE FROM proxies WHERE proxy_user_id = $1 AND member_id = $2")
            .and_then(|mut st| st.execute(params![proxy.to_string(), member.to_string()]))
            .map_err(db)?;
        if n == 0 {
            return Err(Error::NotFound("proxy"));
        }
        tx.append(
            m.org_id,
            now,
            vec![
                NewEvent::new(EventKind::ProxyRevoked, json!({"proxy_user_id": proxy}))
                    .actor(Some(p.user_id))
                    .member(member),
            ],
        )
    })
    .await
}

pub async fn member_proxies(
    s: &SqliteStore,
    p: &Principal,
    member: MemberId,
    now: Timestamp,
) -> Result<Vec<ProxyEntry>> {
    let p = p.clone();
    s.read(move |c, _| {
        let m = rows::load_member(c, member)?;
        p.manage_proxies(&m, true)?;
        entries(c, "p.member_id", member.to_string(), now)
    })
    .await
}

pub async fn my_grants(s: &SqliteStore, p: &Principal, now: Timestamp) -> Result<Vec<ProxyEntry>> {
    let p = p.clone();
    s.read(move |c, _| match (p.role, p.member_id) {
        (Role::Proxy, _) => entries(c, "p.proxy_user_id", p.user_id.to_string(), now),
        (Role::Member, Some(m)) => entries(c, "p.member_id", m.to_string(), now),
        _ => Err(Error::forbidden(
            "members-only",
            "caregiver access is between members and their proxies; administrators use /api/v1/members/{id}/proxies",
        )),
    })
    .await
}

pub async fn consents(
    s: &SqliteStore,
    p: &Principal,
    member: MemberId,
) -> Result<Vec<SensitiveCategory>> {
    let p = p.clone();
    s.read(move |c, _| {
        let m = rows::load_member(c, member)?;
        p.see_consents(&m)?;
        Ok(m.markers.consented_categories)
    })
    .await
}

pub async fn set_consent(
    s: &SqliteStore,
    p: &Principal,
    member: MemberId,
    change: ConsentChange,
    now: Timestamp,
) -> Result<Vec<SensitiveCategory>> {
    let p = p.clone();
    s.write(move |tx| {
        let mut m = rows::load_member(tx.conn, member)?;
        let (on_behalf, reason) = p.record_consent(&m, change.reason.as_deref())?;
        let list = &mut m.markers.consented_categories;
        let had = list.contains(&change.category);
        if had == change.granted {
            return Ok(list.clone());
        }
        if change.granted {
            list.push(change.category);
        } else {
            list.retain(|c| *c != change.category);
        }
        let markers = serde_json::to_string(&m.markers).map_err(Error::internal)?;
        tx.conn
            .prepare_cached("UPDATE members SET markers = $1 WHERE id = $2")
            .and_then(|mut st| st.execute(params![markers, member.to_string()]))
            .map_err(db)?;
        let kind = if change.granted {
            EventKind::ConsentRecorded
        } else {
            EventKind::ConsentWithdrawn
        };
        tx.append(
            m.org_id,
            now,
            vec![
                NewEvent::new(
                    kind,
                    json!({"category": change.category, "on_behalf": on_behalf, "reason": reason}),
                )
                .actor(Some(p.user_id))
                .member(member),
            ],
        )?;
        Ok(m.markers.consented_categories)
    })
    .await
}
