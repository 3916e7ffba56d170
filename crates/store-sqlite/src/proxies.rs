//! Caregivers acting for members (proxies, each with a scope and an optional
//! expiry, granted by the member or an administrator and revocable by
//! either side) and the member's consent to share sensitive categories.

use crate::SqliteStore;
use crate::crypt::Crypto;
use crate::rows::{self, db, us};
use crate::writer::Tx;
use careline_core::authz::{Principal, ProxyScope};
use careline_core::ids::*;
use careline_core::model::SensitiveCategory;
use careline_core::proxies::{self, ProxyList};
use careline_core::{Error, Result};
use careline_store::{ConsentChange, ProxyEntry};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

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
    let m = rows::load_member(tx.conn, tx.crypto, member)?;
    let u = rows::load_user(tx.conn, proxy)?.ok_or(Error::NotFound("user"))?;
    let ev = proxies::grant(org, &m, &u, scope, expires_at, actor, now)?;
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
    tx.append(org, now, vec![ev])
}

fn entry(k: &Crypto) -> impl Fn(&Row<'_>) -> rusqlite::Result<ProxyEntry> + '_ {
    move |r| {
        let scope: String = r.get("scope")?;
        let member_id: MemberId = rows::id(r, "member_id")?;
        let member_name: String = r.get("member_name")?;
        let member_name = if r.get::<_, i64>("member_sealed")? != 0 {
            let org = rows::id(r, "member_org")?;
            k.open_sealed(org, &member_name, &rows::aad("member", &member_id, "name"))
                .map_err(rows::sealed_err)?
        } else {
            member_name
        };
        Ok(ProxyEntry {
            proxy_user_id: rows::id(r, "proxy_user_id")?,
            proxy_name: r.get("proxy_name")?,
            member_id,
            member_name,
            scope: ProxyScope::parse(&scope).unwrap_or(ProxyScope::Messages),
            expires_at: rows::opt_ts(r, "expires_at")?,
            created_at: rows::ts(r, "created_at")?,
        })
    }
}

const SELECT_ENTRY: &str = "SELECT p.*, u.name AS proxy_name, m.name AS member_name, m.sealed AS member_sealed, m.org_id AS member_org FROM proxies p
     JOIN users u ON u.id = p.proxy_user_id JOIN members m ON m.id = p.member_id";

fn entries(c: &Connection, k: &Crypto, of: ProxyList, now: Timestamp) -> Result<Vec<ProxyEntry>> {
    let (filter, arg) = match of {
        ProxyList::OfMember(m) => ("p.member_id", m.to_string()),
        ProxyList::OfProxy(u) => ("p.proxy_user_id", u.to_string()),
    };
    let sql = format!(
        "{SELECT_ENTRY} WHERE {filter} = $1 AND (p.expires_at IS NULL OR p.expires_at > $2) ORDER BY p.created_at"
    );
    let mut st = c.prepare_cached(&sql).map_err(db)?;
    st.query_map(params![arg, us(now)], entry(k))
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
        let m = rows::load_member(tx.conn, tx.crypto, member)?;
        p.manage_proxies(&m, false)?;
        let found = tx
            .conn
            .prepare_cached("SELECT * FROM users WHERE username = $1 AND org_id = $2")
            .and_then(|mut st| {
                st.query_row(params![username, p.org_id.to_string()], rows::user)
                    .optional()
            })
            .map_err(db)?;
        let proxy = proxies::named_caregiver(&username, found)?;
        grant(
            tx,
            p.org_id,
            proxy.id,
            member,
            scope,
            expires_at,
            Some(p.user_id),
            now,
        )?;
        Ok(ProxyEntry::granted(proxy, m, scope, expires_at, now))
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
        let m = rows::load_member(tx.conn, tx.crypto, member)?;
        proxies::may_revoke(&p, &m, proxy)?;
        let n = tx
            .conn
            .prepare_cached("DELETE FROM proxies WHERE proxy_user_id = $1 AND member_id = $2")
            .and_then(|mut st| st.execute(params![proxy.to_string(), member.to_string()]))
            .map_err(db)?;
        if n == 0 {
            return Err(Error::NotFound("proxy"));
        }
        tx.append(m.org_id, now, vec![proxies::revoked(&p, member, proxy)])
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
    s.read(move |c, k| {
        let m = rows::load_member(c, k, member)?;
        p.manage_proxies(&m, true)?;
        entries(c, k, ProxyList::OfMember(member), now)
    })
    .await
}

pub async fn my_grants(s: &SqliteStore, p: &Principal, now: Timestamp) -> Result<Vec<ProxyEntry>> {
    let of = proxies::own_list(p)?;
    s.read(move |c, k| entries(c, k, of, now)).await
}

pub async fn consents(
    s: &SqliteStore,
    p: &Principal,
    member: MemberId,
) -> Result<Vec<SensitiveCategory>> {
    let p = p.clone();
    s.read(move |c, k| {
        let m = rows::load_member(c, k, member)?;
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
        let mut m = rows::load_member(tx.conn, tx.crypto, member)?;
        let Some(ev) = change.apply(&p, &mut m)? else {
            return Ok(m.markers.consented_categories);
        };
        rows::update_member(tx.conn, tx.crypto, &m)?;
        tx.append(m.org_id, now, vec![ev])?;
        Ok(m.markers.consented_categories)
    })
    .await
}
