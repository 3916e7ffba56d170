//! Finding a caller during call intake: how a query is read and how a
//! member is compared with it, the same for every store. Text is compared
//! without regard to case, accents or apostrophes ("lucia" finds "Lucía"),
//! numbers as digits (phones, references), dates of birth in ISO or US
//! form. Which members may be searched at all is the authorization rule's
//! business, not this module's.

use crate::{Error, Result};
use jiff::civil::Date;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Shortest query accepted: one letter would list half the organization.
pub const MIN_QUERY_CHARS: usize = 2;
/// Longest query accepted.
pub const MAX_QUERY_CHARS: usize = 100;
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

fn is_phone_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.' | ' ')
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

/// A parsed query; a member must match every term.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    terms: Vec<Term>,
}

impl Query {
    pub fn parse(query: &str) -> Result<Query> {
        let q = query.trim();
        let n = fold(q).chars().filter(|c| !c.is_whitespace()).count();
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
            return Ok(Query {
                terms: vec![Term::Number(digits(q))],
            });
        }
        let terms = q
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(|w| match w.parse::<Date>().ok().or_else(|| us_date(w)) {
                Some(d) => Term::Date(d),
                None if w.chars().all(is_phone_char) && !digits(w).is_empty() => {
                    Term::Number(digits(w))
                }
                None => Term::Text(fold(w)),
            })
            .collect();
        Ok(Query { terms })
    }

    /// `None` when the member does not match; otherwise a rank, lower first:
    /// 0 when every word starts a part of the name (or is the exact
    /// reference), 1 for a match inside a name.
    pub fn rank(&self, m: &Searchable) -> Option<u8> {
        if !self.terms.iter().all(|t| m.matches(t)) {
            return None;
        }
        let starts = self.terms.iter().all(|t| match t {
            Term::Text(w) => {
                m.name.split_whitespace().any(|n| n.starts_with(w.as_str())) || m.reference == *w
            }
            _ => true,
        });
        Some(u8::from(!starts))
    }
}

/// One call-taker's search: the query read, and the members it matched so
/// far with their rank. Generic over what the store returns for a member.
#[derive(Debug, Clone)]
pub struct Search<T> {
    query: Query,
    limit: usize,
    hits: Vec<(u8, String, T)>,
}

impl<T> Search<T> {
    /// Staff who take calls search, for at most `limit` members (1–[`MAX_RESULTS`]).
    pub fn start(p: &crate::authz::Principal, query: &str, limit: u32) -> Result<Search<T>> {
        if !p.role.works_queues() {
            return Err(Error::forbidden(
                "call-takers-only",
                "member search is for staff who take calls",
            ));
        }
        Ok(Search {
            query: Query::parse(query)?,
            limit: usize::try_from(limit.clamp(1, MAX_RESULTS)).unwrap_or(20),
            hits: Vec::new(),
        })
    }

    /// Keep `item` if the member it stands for (`candidate`) matches.
    pub fn offer(&mut self, candidate: Searchable, item: T) {
        if let Some(rank) = self.query.rank(&candidate) {
            self.hits.push((rank, candidate.name, item));
        }
    }

    /// The best matches, best first (then by name), at most the limit.
    pub fn best(mut self) -> Vec<T> {
        self.hits
            .sort_by(|(ra, a, _), (rb, b, _)| ra.cmp(rb).then_with(|| a.cmp(b)));
        self.hits
            .into_iter()
            .take(self.limit)
            .map(|(_, _, m)| m)
            .collect()
    }
}

/// A member as the search compares them.
#[derive(Debug, Clone)]
pub struct Searchable {
    /// The folded name, also the tie-breaker when sorting results.
    pub name: String,
    phone: String,
    reference: String,
    date_of_birth: Option<Date>,
}

impl Searchable {
    pub fn new(
        name: &str,
        phone: Option<&str>,
        reference: Option<&str>,
        date_of_birth: Option<Date>,
    ) -> Searchable {
        Searchable {
            name: fold(name),
            phone: phone.map(digits).unwrap_or_default(),
            reference: reference.map(fold).unwrap_or_default(),
            date_of_birth,
        }
    }

    fn matches(&self, t: &Term) -> bool {
        match t {
            Term::Date(d) => self.date_of_birth == Some(*d),
            Term::Number(n) => {
                (n.len() >= MIN_PHONE_DIGITS && self.phone.contains(n.as_str()))
                    || self.reference.contains(n.as_str())
            }
            Term::Text(w) => self.name.contains(w.as_str()) || self.reference.contains(w.as_str()),
        }
    }
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
        let terms = |q: &str| Query::parse(q).map(|q| q.terms);
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

    #[test]
    fn members_match_every_term_and_name_starts_rank_first() {
        let dob = Date::new(1946, 3, 14).ok();
        let m = Searchable::new(
            "Margaret Ellis",
            Some("+1 555-0101"),
            Some("DEMO-0001"),
            dob,
        );
        let q = |s: &str| Query::parse(s).unwrap();
        assert_eq!(q("ellis").rank(&m), Some(0));
        assert_eq!(q("llis").rank(&m), Some(1));
        assert_eq!(q("margaret 3/14/1946").rank(&m), Some(0));
        assert_eq!(q("555 0101").rank(&m), Some(0));
        assert_eq!(q("ellis 1950-01-01").rank(&m), None);
    }
}
