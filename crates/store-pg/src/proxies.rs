//! Caregivers acting for members (proxies, each with a scope and an optional
//! expiry, granted by the member or an administrator and revocable by
//! either side) and the member's consent to share sensitive categories.

use crate::PgStore;
use crate::rows::{self, db, get, q, us};
use crate::tx::Tx;
use careline_core::authz::{Principal, ProxyScope};
use careline_core::event::{EventKind, NewEvent};
use careline_core::ids::*;
use careline_core::model::{Role, SensitiveCategory};
use careline_core::{Error, Result};
use careline_store::{ConsentChange, ProxyEntry};
use jiff::Timestamp;
use serde_json::json;
use sqlx_postgres::PgRow;

/// Stores a grant (replacing an earlier one between the same two) and its event.
#[allow(clippy::too_many_arguments)]
pub async fn grant(
    tx: &mut Tx,
    org: OrgId,
    proxy: UserId,
    member: MemberId,
    scope: ProxyScope,
    expires_at: Option<Timestamp>,
    actor: Option<UserId>,
    now: Timestamp,
) -> Result<()> {
    let m = rows::load_member(tx.c(), member).await?;
    let u = rows::load_user(tx.c(), proxy)
        .await?
        .ok_or(Error::NotFound("user"))?;
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
    q("INSERT INTO proxies (proxy_user_id, member_id, expires_at, created_at, scope, granted_by) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (proxy_user_id, member_id) DO UPDATE SET expires_at = excluded.expires_at, scope = excluded.scope,
           granted_by = excluded.granted_by, created_at = excluded.created_at")
        .bind(proxy.0)
        .bind(member.0)
        .bind(expires_at.map(us))
        .bind(us(now))
        .bind(scope.as_str())
        .bind(actor.map(|a| a.0))
        .execute(tx.c())
        .await
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
    .await
}

fn entry(r: &PgRow) -> Result<ProxyEntry> {
    let scope: String = get(r, "scope")?;
    Ok(ProxyEntry {
        proxy_user_id: UserId(rows::uuid(r, "proxy_user_id")?),
        proxy_name: get(r, "proxy_name")?,
        member_id: MemberId(rows::uuid(r, "member_id")?),
        member_name: get(r, "member_name")?,
        scope: ProxyScope::parse(&scope).unwrap_or(ProxyScope::Messages),
        expires_at: rows::opt_ts(r, "expires_at")?,
        created_at: rows::ts(r, "created_at")?,
    })
}

/// Live grants of one member, or of one proxy.
enum Of {
    Member(MemberId),
    Proxy(UserId),
}

async fn entries(s: &PgStore, of: Of, now: Timestamp) -> Result<Vec<ProxyEntry>> {
    let (sql, id) = match of {
        Of::Member(m) => (
            "SELECT p.*, u.name AS proxy_name, m.name AS member_name FROM proxies p
             JOIN users u ON u.id = p.proxy_user_id JOIN members m ON m.id = p.member_id
             WHERE p.member_id = $1 AND (p.expires_at IS NULL OR p.expires_at > $2) ORDER BY p.created_at",
            m.0,
        ),
        Of::Proxy(u) => (
            "SELECT p.*, u.name AS proxy_name, m.name AS member_name FROM proxies p
             JOIN users u ON u.id = p.proxy_user_id JOIN members m ON m.id = p.member_id
             WHERE p.proxy_user_id = $1 AND (p.expires_at IS NULL OR p.expires_at > $2) ORDER BY p.created_at",
            u.0,
        ),
    };
    let found = q(sql)
        .bind(id)
        .bind(us(now))
        .fetch_all(&s.pool)
        .await
        .map_err(db)?;
    found.iter().map(entry).collect()
}

impl PgStore {
    pub(crate) async fn grant_proxy_as_member_(
        &self,
        p: &Principal,
        member: MemberId,
        username: &str,
        scope: ProxyScope,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<ProxyEntry> {
        let username = username.trim().to_owned();
        let mut tx = self.begin_for(p.org_id).await?;
        let m = rows::load_member(tx.c(), member).await?;
        p.manage_proxies(&m, false)?;
        let row = q("SELECT * FROM users WHERE username = $1 AND org_id = $2")
            .bind(username.clone())
            .bind(p.org_id.0)
            .fetch_optional(tx.c())
            .await
            .map_err(db)?;
        let proxy = row
            .as_ref()
            .map(rows::user)
            .transpose()?
            .filter(|u| u.role == Role::Proxy && !u.disabled)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "'{username}' is not a caregiver account of this organization; ask the clinic to create one"
                ))
            })?;
        grant(
            &mut tx,
            p.org_id,
            proxy.id,
            member,
            scope,
            expires_at,
            Some(p.user_id),
            now,
        )
        .await?;
        tx.commit(&self.bus).await?;
        Ok(ProxyEntry {
            proxy_user_id: proxy.id,
            proxy_name: proxy.name,
            member_id: member,
            member_name: m.name,
            scope,
            expires_at,
            created_at: now,
        })
    }

    pub(crate) async fn revoke_proxy_(
        &self,
        p: &Principal,
        member: MemberId,
        proxy: UserId,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin_for(p.org_id).await?;
        let m = rows::load_member(tx.c(), member).await?;
        // The caregiver may always step back from their own access.
        let own_grant = p.role == Role::Proxy && p.user_id == proxy && p.org_id == m.org_id;
        if !own_grant {
            p.manage_proxies(&m, true)?;
        }
        let n = q("DELETE FROM proxies WHERE proxy_user_id = $1 AND member_id = $2")
            .bind(proxy.0)
            .bind(member.0)
            .execute(tx.c())
            .await
            .map_err(db)?
            .rows_affected();
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
        .await?;
        tx.commit(&self.bus).await
    }

    pub(crate) async fn member_proxies_(
        &self,
        p: &Principal,
        member: MemberId,
        now: Timestamp,
    ) -> Result<Vec<ProxyEntry>> {
        let m = {
            let mut c = self.conn().await?;
            rows::load_member(&mut c, member).await?
        };
        p.manage_proxies(&m, true)?;
        entries(self, Of::Member(member), now).await
    }

    pub(crate) async fn my_proxy_grants_(
        &self,
        p: &Principal,
        now: Timestamp,
    ) -> Result<Vec<ProxyEntry>> {
        match (p.role, p.member_id) {
            (Role::Proxy, _) => entries(self, Of::Proxy(p.user_id), now).await,
            (Role::Member, Some(m)) => entries(self, Of::Member(m), now).await,
            _ => Err(Error::forbidden(
                "members-only",
                "caregiver access is between members and their proxies; administrators use /api/v1/members/{id}/proxies",
            )),
        }
    }

    pub(crate) async fn consents_(
        &self,
        p: &Principal,
        member: MemberId,
    ) -> Result<Vec<SensitiveCategory>> {
        let m = {
            let mut c = self.conn().await?;
            rows::load_member(&mut c, member).await?
        };
        p.see_consents(&m)?;
        Ok(m.markers.consented_categories)
    }

    pub(crate) async fn set_consent_(
        &self,
        p: &Principal,
        member: MemberId,
        change: ConsentChange,
        now: Timestamp,
    ) -> Result<Vec<SensitiveCategory>> {
        let mut tx = self.begin_for(p.org_id).await?;
        let mut m = rows::load_member(tx.c(), member).await?;
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
        q("UPDATE members SET markers = $1 WHERE id = $2")
            .bind(rows::to_json(&m.markers)?)
            .bind(member.0)
            .execute(tx.c())
            .await
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
        )
        .await?;
        tx.commit(&self.bus).await?;
        Ok(m.markers.consented_categories)
    }
}
