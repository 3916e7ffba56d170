//! Caregivers acting for members (proxies, each with a scope and an optional
//! expiry, granted by the member or an administrator and revocable by
//! either side) and the member's consent to share sensitive categories.

use crate::PgStore;
use crate::crypt::{Crypto, aad, open_sealed};
use crate::rows::{self, db, get, q, us};
use crate::tx::Tx;
use careline_core::authz::{Principal, ProxyScope};
use careline_core::ids::*;
use careline_core::model::SensitiveCategory;
use careline_core::proxies::{self, ProxyList};
use careline_core::{Error, Result};
use careline_store::{ConsentChange, ProxyEntry};
use jiff::Timestamp;
use sqlx_postgres::PgRow;

/// Stores a grant (replacing an earlier one between the same two) and its event.
#[allow(clippy::too_many_arguments)]
pub async fn grant(
    tx: &mut Tx,
    k: &Crypto,
    org: OrgId,
    proxy: UserId,
    member: MemberId,
    scope: ProxyScope,
    expires_at: Option<Timestamp>,
    actor: Option<UserId>,
    now: Timestamp,
) -> Result<()> {
    let m = rows::load_member(tx.c(), k, member).await?;
    let u = rows::load_user(tx.c(), proxy)
        .await?
        .ok_or(Error::NotFound("user"))?;
    let ev = proxies::grant(org, &m, &u, scope, expires_at, actor, now)?;
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
    tx.append(org, now, vec![ev]).await
}

/// The member's name in a grant row, opened if sealed.
async fn member_name(s: &PgStore, r: &PgRow) -> Result<String> {
    let name: String = get(r, "member_name")?;
    let sealed: i16 = get(r, "member_sealed")?;
    if sealed == 0 {
        return Ok(name);
    }
    let member = MemberId(rows::uuid(r, "member_id")?);
    let org = OrgId(rows::uuid(r, "member_org")?);
    let mut c = s.conn().await?;
    let dk = s.crypto.key(&mut c, org).await?;
    open_sealed(&dk, &name, &aad("member", &member, "name"))
}

async fn entry(s: &PgStore, r: &PgRow) -> Result<ProxyEntry> {
    let scope: String = get(r, "scope")?;
    Ok(ProxyEntry {
        proxy_user_id: UserId(rows::uuid(r, "proxy_user_id")?),
        proxy_name: get(r, "proxy_name")?,
        member_id: MemberId(rows::uuid(r, "member_id")?),
        member_name: member_name(s, r).await?,
        scope: ProxyScope::parse(&scope).unwrap_or(ProxyScope::Messages),
        expires_at: rows::opt_ts(r, "expires_at")?,
        created_at: rows::ts(r, "created_at")?,
    })
}

/// Live grants of one member, or of one proxy.
async fn entries(s: &PgStore, of: ProxyList, now: Timestamp) -> Result<Vec<ProxyEntry>> {
    let (sql, id) = match of {
        ProxyList::OfMember(m) => (
            "SELECT p.*, u.name AS proxy_name, m.name AS member_name, m.sealed AS member_sealed, m.org_id AS member_org FROM proxies p
             JOIN users u ON u.id = p.proxy_user_id JOIN members m ON m.id = p.member_id
             WHERE p.member_id = $1 AND (p.expires_at IS NULL OR p.expires_at > $2) ORDER BY p.created_at",
            m.0,
        ),
        ProxyList::OfProxy(u) => (
            "SELECT p.*, u.name AS proxy_name, m.name AS member_name, m.sealed AS member_sealed, m.org_id AS member_org FROM proxies p
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
    let mut out = Vec::with_capacity(found.len());
    for r in &found {
        out.push(entry(s, r).await?);
    }
    Ok(out)
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
        let m = rows::load_member(tx.c(), &self.crypto, member).await?;
        p.manage_proxies(&m, false)?;
        let row = q("SELECT * FROM users WHERE username = $1 AND org_id = $2")
            .bind(username.clone())
            .bind(p.org_id.0)
            .fetch_optional(tx.c())
            .await
            .map_err(db)?;
        let proxy = proxies::named_caregiver(&username, row.as_ref().map(rows::user).transpose()?)?;
        grant(
            &mut tx,
            &self.crypto,
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
        Ok(ProxyEntry::granted(proxy, m, scope, expires_at, now))
    }

    pub(crate) async fn revoke_proxy_(
        &self,
        p: &Principal,
        member: MemberId,
        proxy: UserId,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin_for(p.org_id).await?;
        let m = rows::load_member(tx.c(), &self.crypto, member).await?;
        proxies::may_revoke(p, &m, proxy)?;
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
        tx.append(m.org_id, now, vec![proxies::revoked(p, member, proxy)])
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
            rows::load_member(&mut c, &self.crypto, member).await?
        };
        p.manage_proxies(&m, true)?;
        entries(self, ProxyList::OfMember(member), now).await
    }

    pub(crate) async fn my_proxy_grants_(
        &self,
        p: &Principal,
        now: Timestamp,
    ) -> Result<Vec<ProxyEntry>> {
        entries(self, proxies::own_list(p)?, now).await
    }

    pub(crate) async fn consents_(
        &self,
        p: &Principal,
        member: MemberId,
    ) -> Result<Vec<SensitiveCategory>> {
        let m = {
            let mut c = self.conn().await?;
            rows::load_member(&mut c, &self.crypto, member).await?
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
        let mut m = rows::load_member(tx.c(), &self.crypto, member).await?;
        let Some(ev) = change.apply(p, &mut m)? else {
            return Ok(m.markers.consented_categories);
        };
        rows::update_member(tx.c(), &self.crypto, &m).await?;
        tx.append(m.org_id, now, vec![ev]).await?;
        tx.commit(&self.bus).await?;
        Ok(m.markers.consented_categories)
    }
}
