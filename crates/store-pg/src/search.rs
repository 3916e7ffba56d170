//! Finding the caller during call intake, with the embedded store's rules:
//! only among members the caller already reaches in their own organization,
//! text compared without regard to case or accents, numbers compared as
//! digits, dates of birth in ISO or US form; each member returned is a
//! recorded read. Also here: which member a ticket is about.
//!
//! The matching is `careline_core::search`, run over the caller's reachable
//! members (their teams plus their grants), not in SQL, so both stores
//! compare text exactly alike without depending on the `unaccent` extension.
//! It has to be: names, phones and birth dates are sealed at rest, so each
//! reachable member is opened first. Keyed hashes would allow only
//! whole-value equality, and call-takers type parts of names and the last
//! digits of phones.

use crate::PgStore;
use crate::rows::{self, db, get, q};
use careline_core::authz::Principal;
use careline_core::ids::{MemberId, TeamId, TicketId};
use careline_core::reads::PhiRead;
use careline_core::search::{Search, Searchable};
use careline_core::{Error, Result};
use careline_store::MemberSummary;
use jiff::Timestamp;
use uuid::Uuid;

impl PgStore {
    pub(crate) async fn search_members_(
        &self,
        p: &Principal,
        query: &str,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<MemberSummary>> {
        let mut search = Search::start(p, query, limit)?;
        let teams: Vec<Uuid> = p.team_ids.iter().map(|t| t.0).collect();
        let granted: Vec<Uuid> = p.grants.iter().map(|(m, _)| m.0).collect();
        let mut c = self.conn().await?;
        let found = q("SELECT m.*, t.name AS team_name
                       FROM members m JOIN teams t ON t.id = m.team_id
                       WHERE m.org_id = $1 AND (m.team_id = ANY($2) OR m.id = ANY($3))")
        .bind(p.org_id.0)
        .bind(teams)
        .bind(granted)
        .fetch_all(&mut *c)
        .await
        .map_err(db)?;
        for r in &found {
            let id = MemberId(rows::uuid(r, "id")?);
            let team_id = TeamId(rows::uuid(r, "team_id")?);
            // The domain's rule decides, and names the grant to record.
            let Ok(access) = p.member_access(p.org_id, id, team_id) else {
                continue;
            };
            let m = rows::member(&mut c, &self.crypto, r).await?;
            let external_ref: Option<String> = get(r, "external_ref")?;
            let cand = Searchable::new(
                &m.name,
                m.phone.as_deref(),
                external_ref.as_deref(),
                m.date_of_birth,
            );
            let summary = MemberSummary {
                id,
                name: m.name,
                date_of_birth: m.date_of_birth,
                phone: m.phone,
                external_ref,
                language: m.language,
                team_id,
                team_name: get(r, "team_name")?,
                access,
            };
            search.offer(cand, summary);
        }
        drop(c);
        let out = search.best();
        let reads = out
            .iter()
            .map(|m| PhiRead::search(p.org_id, m.id, m.access))
            .collect();
        self.log_reads(p, reads, now).await?;
        Ok(out)
    }

    pub(crate) async fn ticket_member_(&self, p: &Principal, ticket: TicketId) -> Result<MemberId> {
        if !p.role.is_staff() {
            return Err(Error::NotFound("ticket"));
        }
        let found: Option<(Uuid,)> = sqlx_core::query_as::query_as(
            "SELECT member_id FROM tickets WHERE id = $1 AND org_id = $2",
        )
        .bind(ticket.0)
        .bind(p.org_id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        found
            .map(|(m,)| MemberId(m))
            .ok_or(Error::NotFound("ticket"))
    }
}
