//! Finding the caller during call intake. A call-taker types part of a name,
//! a phone number, the organization's reference (MRN) or a date of birth;
//! the search looks only among members the caller already reaches (care
//! team, tag, page, break-glass) in their own organization, compares text
//! without regard to case or accents ("lucia" finds "Lucía"), and records
//! each member it returns as a read of their data, so the member sees the
//! search in their access history.
//!
//! Names, phones and birth dates are sealed at rest, so the comparison
//! cannot happen in SQL: the members the caller reaches are opened and
//! compared in memory. That set is what SQL fetched before sealing too (the
//! rule of reach narrows it, the text match was always in memory), and it
//! keeps every kind of match the call-taker relies on: a part of a name,
//! without accents, the last digits of a phone. Keyed hashes would allow
//! only whole-value equality. Also here: which member a ticket is
//! about, for a clinician who must break the glass to open it.

use crate::SqliteStore;
use crate::rows::{self, db};
use careline_core::authz::Principal;
use careline_core::ids::{MemberId, TicketId};
use careline_core::reads::PhiRead;
use careline_core::search::{Search, Searchable};
use careline_core::{Error, Result};
use careline_store::MemberSummary;
use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

pub async fn search_members(
    s: &SqliteStore,
    p: &Principal,
    query: &str,
    limit: u32,
    now: Timestamp,
) -> Result<Vec<MemberSummary>> {
    let mut search = Search::start(p, query, limit)?;
    let pc = p.clone();
    let found = s
        .read(move |c, k| {
            let teams: Vec<String> = pc.team_ids.iter().map(|t| t.to_string()).collect();
            let granted: Vec<String> = pc.grants.iter().map(|(m, _)| m.to_string()).collect();
            let as_json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
            let mut st = c
                .prepare_cached(
                    "SELECT m.*, t.name AS team_name
                     FROM members m JOIN teams t ON t.id = m.team_id
                     WHERE m.org_id = $1
                       AND (m.team_id IN (SELECT value FROM json_each($2)) OR m.id IN (SELECT value FROM json_each($3)))",
                )
                .map_err(db)?;
            let read_member = rows::member(k);
            let rows = st
                .query_map(params![pc.org_id.to_string(), as_json(&teams), as_json(&granted)], |r| {
                    Ok((
                        read_member(r)?,
                        r.get::<_, Option<String>>("external_ref")?,
                        r.get::<_, String>("team_name")?,
                    ))
                })
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db)?;
            for (m, external_ref, team_name) in rows {
                // The domain's rule decides, and names the grant to record.
                let Ok(access) = pc.member_access(pc.org_id, m.id, m.team_id) else {
                    continue;
                };
                let cand = Searchable::new(&m.name, m.phone.as_deref(), external_ref.as_deref(), m.date_of_birth);
                search.offer(cand, MemberSummary { id: m.id, name: m.name, date_of_birth: m.date_of_birth, phone: m.phone, external_ref, language: m.language, team_id: m.team_id, team_name, access });
            }
            Ok(search.best())
        })
        .await?;
    let reads = found
        .iter()
        .map(|m| PhiRead::search(p.org_id, m.id, m.access))
        .collect();
    s.log_reads(p, reads, now).await?;
    Ok(found)
}

pub async fn ticket_member(s: &SqliteStore, p: &Principal, ticket: TicketId) -> Result<MemberId> {
    if !p.role.is_staff() {
        return Err(Error::NotFound("ticket"));
    }
    let org = p.org_id.to_string();
    s.read(move |c, _| {
        let found: Option<String> = c
            .prepare_cached("SELECT member_id FROM tickets WHERE id = $1 AND org_id = $2")
            .and_then(|mut st| {
                st.query_row(params![ticket.to_string(), org], |r| r.get(0))
                    .optional()
            })
            .map_err(db)?;
        found
            .ok_or(Error::NotFound("ticket"))?
            .parse()
            .map_err(|_| Error::internal("bad member id"))
    })
    .await
}
