//! Finding the caller during call intake, with the embedded store's rules:
//! only among members the caller already reaches in their own organization,
//! text compared without regard to case or accents, numbers compared as
//! digits, dates of birth in ISO or US form; each member returned is a
//! recorded read. Also here: which member a ticket is about.
//!
//! The matching runs in Rust over the caller's reachable members (their
//! teams plus their grants), not in SQL, so both stores fold text exactly
//! alike without depending on the `unaccent` extension.

use crate::rows::{self, db, get, q};
use crate::{PgStore, PhiRead};
use careline_core::authz::Principal;
use careline_core::ids::{MemberId, TeamId, TicketId};
use careline_core::{Error, Result};
use careline_store::MemberSummary;
use jiff::Timestamp;
use jiff::civil::Date;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use uuid::Uuid;

/// Shortest query accepted: one letter would list half the organization.
const MIN_QUERY_CHARS: usize = 2;
/// Longest query accepted.
const MAX_QUERY_CHARS: usize = 100;
/// Most members one search returns.
const MAX_RESULTS: u32 = 50;
/// Digits a number needs before it is compared with phone numbers.
const MIN_PHONE_DIGITS: usize = 4;

/// Text for comparison: decomposed, accents and apostrophes dropped, lower case.
fn fold(s: &str) -> String {
    s.nfkd()
        .filter(|c| !is_combining_mark(*c) && !matches!(c, '\'' | '\u{2019}' | '`'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn is_phone_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.' | ' ')
}

/// One word of the query and what it can match.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Date(Date),
    /// Digits only: a phone number or part of a reference.
    Number(String),
    /// Folded: part of a name or reference.
    Text(String),
}

/// Month/day/year, as call-takers in the US write a date.
fn us_date(s: &str) -> Option<Date> {
    let parts: Vec<&str> = s.split('/').collect();
    let [m, d, y] = parts.as_slice() else {
        return None;
    };
    if y.len() != 4 {
        return None;
    }
    Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()
}

/// The query as terms; a member must match every one.
fn terms(query: &str) -> Result<Vec<Term>> {
    let text = query.trim();
    let letters = fold(text).chars().filter(|c| !c.is_whitespace()).count();
    if letters < MIN_QUERY_CHARS {
        return Err(Error::invalid(format!(
            "a search needs at least {MIN_QUERY_CHARS} characters"
        )));
    }
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::invalid(format!(
            "a search is at most {MAX_QUERY_CHARS} characters"
        )));
    }
    // "555 0101" is one phone number, not two words.
    if text.contains(char::is_whitespace)
        && text.chars().all(is_phone_char)
        && digits(text).len() >= MIN_PHONE_DIGITS
    {
        return Ok(vec![Term::Number(digits(text))]);
    }
    Ok(text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(|w| match w.parse::<Date>().ok().or_else(|| us_date(w)) {
            Some(d) => Term::Date(d),
            None if w.chars().all(is_phone_char) && !digits(w).is_empty() => {
                Term::Number(digits(w))
            }
            None => Term::Text(fold(w)),
        })
        .collect())
}

/// A member as the search compares them.
struct Candidate {
    summary: MemberSummary,
    name: String,
    phone: String,
    reference: String,
}

impl Candidate {
    fn matches(&self, t: &Term) -> bool {
        match t {
            Term::Date(d) => self.summary.date_of_birth == Some(*d),
            Term::Number(n) => {
                (n.len() >= MIN_PHONE_DIGITS && self.phone.contains(n.as_str()))
                    || self.reference.contains(n.as_str())
            }
            Term::Text(w) => self.name.contains(w.as_str()) || self.reference.contains(w.as_str()),
        }
    }

    /// 0 when every word starts a name part (or is the exact reference), else 1.
    fn rank(&self, terms: &[Term]) -> u8 {
        let starts = terms.iter().all(|t| match t {
            Term::Text(w) => {
                self.name
                    .split_whitespace()
                    .any(|n| n.starts_with(w.as_str()))
                    || self.reference == *w
            }
            _ => true,
        });
        u8::from(!starts)
    }
}

impl PgStore {
    pub(crate) async fn search_members_(
        &self,
        p: &Principal,
        query: &str,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<MemberSummary>> {
        if !p.role.works_queues() {
            return Err(Error::forbidden(
                "call-takers-only",
                "member search is for staff who take calls",
            ));
        }
        let terms = terms(query)?;
        let limit = usize::try_from(limit.clamp(1, MAX_RESULTS)).unwrap_or(20);
        let teams: Vec<Uuid> = p.team_ids.iter().map(|t| t.0).collect();
        let granted: Vec<Uuid> = p.grants.iter().map(|(m, _)| m.0).collect();
        let found = q("SELECT m.id, m.name, m.date_of_birth, m.phone, m.external_ref, m.language, m.team_id, t.name AS team_name
                       FROM members m JOIN teams t ON t.id = m.team_id
                       WHERE m.org_id = $1 AND (m.team_id = ANY($2) OR m.id = ANY($3))")
            .bind(p.org_id.0)
            .bind(teams)
            .bind(granted)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let mut hits: Vec<(u8, Candidate)> = Vec::new();
        for r in &found {
            let id = MemberId(rows::uuid(r, "id")?);
            let team_id = TeamId(rows::uuid(r, "team_id")?);
            // The domain's rule decides, and names the grant to record.
            let Ok(access) = p.member_access(p.org_id, id, team_id) else {
                continue;
            };
            let name: String = get(r, "name")?;
            let phone: Option<String> = get(r, "phone")?;
            let external_ref: Option<String> = get(r, "external_ref")?;
            let dob: Option<String> = get(r, "date_of_birth")?;
            let cand = Candidate {
                name: fold(&name),
                phone: phone.as_deref().map(digits).unwrap_or_default(),
                reference: external_ref.as_deref().map(fold).unwrap_or_default(),
                summary: MemberSummary {
                    id,
                    name,
                    date_of_birth: dob.and_then(|d| d.parse::<Date>().ok()),
                    phone,
                    external_ref,
                    language: get(r, "language")?,
                    team_id,
                    team_name: get(r, "team_name")?,
                    access,
                },
            };
            if terms.iter().all(|t| cand.matches(t)) {
                hits.push((cand.rank(&terms), cand));
            }
        }
        hits.sort_by(|(ra, a), (rb, b)| ra.cmp(rb).then_with(|| a.name.cmp(&b.name)));
        let out: Vec<MemberSummary> = hits
            .into_iter()
            .take(limit)
            .map(|(_, c)| c.summary)
            .collect();
        let reads = out
            .iter()
            .map(|m| PhiRead {
                org: p.org_id,
                member: m.id,
                what: "search",
                id: m.id.to_string(),
                grant: m.access,
            })
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn folding_ignores_case_accents_and_apostrophes() {
        assert_eq!(fold("Lucía Fernández"), "lucia fernandez");
        assert_eq!(fold("Kevin O'Brien"), "kevin obrien");
    }

    #[test]
    fn a_query_becomes_terms_of_the_right_kind() {
        assert_eq!(
            terms("555 0101").unwrap(),
            vec![Term::Number("5550101".into())]
        );
        assert_eq!(
            terms("Ellis 3/14/1946").unwrap(),
            vec![
                Term::Text("ellis".into()),
                Term::Date(Date::new(1946, 3, 14).unwrap())
            ]
        );
        assert_eq!(
            terms("DEMO-0001").unwrap(),
            vec![Term::Text("demo-0001".into())]
        );
        assert!(terms(" é ").is_err());
        assert!(terms(&"x".repeat(101)).is_err());
    }
}
