//! Finding the caller during call intake. A call-taker types part of a name,
//! a phone number, the organization's reference (MRN) or a date of birth;
//! the search looks only among members the caller already reaches (care
//! team, tag, page, break-glass) in their own organization, compares text
//! without regard to case or accents ("lucia" finds "Lucía"), and records
//! each member it returns as a read of their data, so the member sees the
//! search in their access history. Also here: which member a ticket is
//! about, for a clinician who must break the glass to open it.

use crate::rows::{self, db};
use crate::{PhiRead, SqliteStore};
use careline_core::authz::Principal;
use careline_core::ids::{MemberId, TeamId, TicketId};
use careline_core::{Error, Result};
use careline_store::MemberSummary;
use jiff::Timestamp;
use jiff::civil::Date;
use rusqlite::{OptionalExtension, params};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Shortest query accepted: one letter would list half the organization.
pub const MIN_QUERY_CHARS: usize = 2;
/// Longest query accepted.
const MAX_QUERY_CHARS: usize = 100;
/// Most members one search returns.
pub const MAX_RESULTS: u32 = 50;
/// Digits a number needs before it is compared with phone numbers.
const MIN_PHONE_DIGITS: usize = 4;

/// Text for comparison: decomposed, accents and apostrophes dropped, lower case.
pub fn fold(s: &str) -> String {
    s.nfkd()
        .filter(|c| !is_combining_mark(*c) && !matches!(c, '\'' | '\u{2019}' | '`'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// One word of the query and what it can match.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    /// A date of birth: `1946-03-14` or `3/14/1946`.
    Date(Date),
    /// A number (phone or reference), digits only.
    Number(String),
    /// Part of a name or reference, folded.
    Text(String),
}

/// A US-style month/day/year date, as call-takers write it.
fn us_date(s: &str) -> Option<Date> {
    let mut parts = s.split('/');
    let (m, d, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 {
        return None;
    }
    Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()
}

fn is_phone_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.' | ' ')
}

/// Splits a query into terms; every term must match for a member to be found.
fn terms(query: &str) -> Result<Vec<Term>> {
    let q = query.trim();
    let folded = fold(q);
    let n = folded.chars().filter(|c| !c.is_whitespace()).count();
    if n < MIN_QUERY_CHARS {
        return Err(Error::invalid(format!(
            "a search needs at least {MIN_QUERY_CHARS} characters"
        )));
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::invalid(format!(
            "a search is at most {MAX_QUERY_CHARS} characters"
        )));
    }
    // A phone number typed with spaces ("555 0101") is one number.
    if q.contains(char::is_whitespace)
        && q.chars().all(is_phone_char)
        && digits(q).len() >= MIN_PHONE_DIGITS
    {
        return Ok(vec![Term::Number(digits(q))]);
    }
    Ok(q.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(|w| {
            if let Some(d) = w.parse::<Date>().ok().or_else(|| us_date(w)) {
                Term::Date(d)
            } else if w.chars().all(is_phone_char) && !digits(w).is_empty() {
                Term::Number(digits(w))
            } else {
                Term::Text(fold(w))
            }
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

    /// Lower is better: a name starting with the first word, or an exact
    /// reference, comes before a match inside a name.
    fn rank(&self, terms: &[Term]) -> u8 {
        let words: Vec<&str> = self.name.split_whitespace().collect();
        let starts = terms.iter().all(|t| match t {
            Term::Text(w) => {
                words.iter().any(|n| n.starts_with(w.as_str())) || self.reference == *w
            }
            _ => true,
        });
        if starts { 0 } else { 1 }
    }
}

pub async fn search_members(
    s: &SqliteStore,
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
    let pc = p.clone();
    let found = s
        .read(move |c, _| {
            let teams: Vec<String> = pc.team_ids.iter().map(|t| t.to_string()).collect();
            let granted: Vec<String> = pc.grants.iter().map(|(m, _)| m.to_string()).collect();
            let as_json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
            let mut st = c
                .prepare_cached(
                    "SELECT m.id, m.name, m.date_of_birth, m.phone, m.external_ref, m.language, m.team_id, t.name AS team_name
                     FROM members m JOIN teams t ON t.id = m.team_id
                     WHERE m.org_id = $1
                       AND (m.team_id IN (SELECT value FROM json_each($2)) OR m.id IN (SELECT value FROM json_each($3)))",
                )
                .map_err(db)?;
            let rows = st
                .query_map(params![pc.org_id.to_string(), as_json(&teams), as_json(&granted)], |r| {
                    let dob: Option<String> = r.get("date_of_birth")?;
                    Ok((
                        rows::id::<MemberId>(r, "id")?,
                        r.get::<_, String>("name")?,
                        dob.and_then(|d| d.parse::<Date>().ok()),
                        r.get::<_, Option<String>>("phone")?,
                        r.get::<_, Option<String>>("external_ref")?,
                        r.get::<_, String>("language")?,
                        rows::id::<TeamId>(r, "team_id")?,
                        r.get::<_, String>("team_name")?,
                    ))
                })
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db)?;
            let mut hits: Vec<(u8, Candidate)> = Vec::new();
            for (id, name, date_of_birth, phone, external_ref, language, team_id, team_name) in rows {
                // The domain's rule decides, and names the grant to record.
                let Ok(access) = pc.member_access(pc.org_id, id, team_id) else {
                    continue;
                };
                let cand = Candidate {
                    name: fold(&name),
                    phone: phone.as_deref().map(digits).unwrap_or_default(),
                    reference: external_ref.as_deref().map(fold).unwrap_or_default(),
                    summary: MemberSummary { id, name, date_of_birth, phone, external_ref, language, team_id, team_name, access },
                };
                if terms.iter().all(|t| cand.matches(t)) {
                    hits.push((cand.rank(&terms), cand));
                }
            }
            hits.sort_by(|(ra, a), (rb, b)| ra.cmp(rb).then_with(|| a.name.cmp(&b.name)));
            Ok(hits.into_iter().take(limit).map(|(_, c)| c.summary).collect::<Vec<_>>())
        })
        .await?;
    let reads = found
        .iter()
        .map(|m| PhiRead {
            org: p.org_id,
            member: m.id,
            what: "search",
            id: m.id.to_string(),
            grant: m.access,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_ignores_case_accents_and_apostrophes() {
        assert_eq!(fold("Lucía Fernández"), "lucia fernandez");
        assert_eq!(fold("Kevin O'Brien"), "kevin obrien");
        assert_eq!(fold("NICOLÁS"), "nicolas");
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
            terms("1946-03-14").unwrap(),
            vec![Term::Date(Date::new(1946, 3, 14).unwrap())]
        );
        assert_eq!(
            terms("DEMO-0001").unwrap(),
            vec![Term::Text("demo-0001".into())]
        );
        assert!(terms(" é ").is_err(), "one letter is too short");
        assert!(terms(&"x".repeat(101)).is_err());
    }
}
