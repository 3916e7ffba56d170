//! Protocol files: the TOML schema the clinical reviewers edit, and the first
//! load stage (parse + validate) that turns every mistake into a
//! [`LoadError::Invalid`] naming the file, the line and the field.
//!
//! A protocol set is a directory of files:
//! - `set.toml` holds `[set] version = "…"` (exactly one file may have it);
//! - any `*.toml` may hold `[protocol]` (with `[[protocol.rule]]`),
//!   `[[concept]]` lexicons, `[[trigger]]` context rules, `[normalize]`
//!   abbreviations, `[macros]` and `[[nonclinical]]` senses;
//! - `*.txt` files are word lists of real words that must never be
//!   "spell-corrected" into a symptom word (one word per line, `#` comments).

use crate::{Disposition, LoadError};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// One parsed `.toml` file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDoc {
    #[serde(default)]
    pub set: Option<SetDoc>,
    #[serde(default)]
    pub protocol: Option<ProtocolDoc>,
    #[serde(default)]
    pub concept: Vec<ConceptDoc>,
    #[serde(default)]
    pub trigger: Vec<TriggerDoc>,
    #[serde(default)]
    pub normalize: Option<NormalizeDoc>,
    #[serde(default)]
    pub macros: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub nonclinical: Vec<NonClinicalDoc>,
}

/// `[set]`: identity of the whole protocol set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetDoc {
    pub version: Spanned<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub name: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub notes: Option<String>,
}

/// `[protocol]`: one triage protocol.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProtocolDoc {
    pub id: Spanned<String>,
    pub title: Spanned<String>,
    /// Why this protocol exists, in a clinician's words (required: reviewed).
    pub rationale: Spanned<String>,
    /// Which published guidance it follows (required: reviewed).
    pub source: Spanned<String>,
    /// Body system, for the catalogue ("heart and circulation").
    #[serde(default)]
    pub system: Option<Spanned<String>>,
    /// Who it is for, for the catalogue ("adult", "children", "pregnancy
    /// and after birth").
    #[serde(default)]
    pub population: Option<Spanned<String>>,
    #[serde(default)]
    pub guidance: Option<GuidanceDoc>,
    #[serde(default)]
    pub rule: Vec<RuleDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GuidanceDoc {
    pub en: String,
    pub es: String,
}

/// `[[protocol.rule]]`: fires `disposition` when every concept in `all` and at
/// least one in `any` (if given) are present and affirmed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleDoc {
    pub disposition: Spanned<String>,
    #[serde(default)]
    pub all: Vec<Spanned<String>>,
    #[serde(default)]
    pub any: Vec<Spanned<String>>,
    /// Modifiers that escalate this rule to emergency (shorthand for a second
    /// rule with `any = escalate_with`).
    #[serde(default)]
    pub escalate_with: Vec<Spanned<String>>,
    /// The rule does not fire when any of these concepts is present
    /// (e.g. chest pain reproduced by pressing on the ribs).
    #[serde(default)]
    pub unless: Vec<Spanned<String>>,
}

/// `[[concept]]`: a symptom or modifier with its phrases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConceptDoc {
    pub id: Spanned<String>,
    /// Short human label used in explanations ("chest pain").
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub en: Vec<Spanned<String>>,
    #[serde(default)]
    pub es: Vec<Spanned<String>>,
    /// Phrases for non-clinical senses of this concept ("blood test").
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    /// What a resolved mention means: "suppress" (default), "keep", "urgent".
    #[serde(default)]
    pub resolved: Option<Spanned<String>>,
    /// Context kinds that do not suppress this concept (e.g. suicidal
    /// thoughts phrased hypothetically are still suicidal thoughts).
    #[serde(default)]
    pub ignore_context: Vec<Spanned<String>>,
}

/// `[[trigger]]`: a ConText-style context trigger.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerDoc {
    pub kind: Spanned<String>,
    #[serde(default)]
    pub direction: Option<Spanned<String>>,
    #[serde(default)]
    pub window: Option<usize>,
    #[serde(default)]
    pub comma_ends: bool,
    /// Restrict the trigger to these concepts (e.g. "after my workout" makes
    /// sore calves benign, but never exertional chest pain).
    #[serde(default)]
    pub only: Vec<Spanned<String>>,
    pub phrases: Vec<Spanned<String>>,
}

/// `[normalize]`: token-level rewriting applied before matching.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct NormalizeDoc {
    /// Tokens removed from the match stream (articles, possessives, fillers).
    #[serde(default)]
    pub drop: Vec<String>,
    /// Token (or `a/b` shorthand) → replacement words, any case.
    #[serde(default)]
    pub replace: BTreeMap<String, Spanned<String>>,
    /// Replacements applied only when the token is written in capitals
    /// ("HA" is a headache, "ha" is a laugh).
    #[serde(default)]
    pub replace_upper: BTreeMap<String, Spanned<String>>,
}

/// `[[nonclinical]]`: phrases whose words look like symptoms but are not.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NonClinicalDoc {
    pub reason: String,
    pub phrases: Vec<Spanned<String>>,
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(src: &str, offset: usize) -> usize {
    let end = offset.min(src.len());
    src.as_bytes()
        .get(..end)
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        + 1
}

pub(crate) fn invalid(
    file: &str,
    src: &str,
    span: std::ops::Range<usize>,
    field: &str,
    message: impl Into<String>,
) -> LoadError {
    LoadError::Invalid {
        file: file.to_string(),
        line: line_of(src, span.start),
        field: field.to_string(),
        message: message.into(),
    }
}

/// Parse one TOML file, mapping serde/TOML errors to file:line:field.
pub(crate) fn parse_file(file: &str, src: &str) -> Result<FileDoc, LoadError> {
    toml::from_str::<FileDoc>(src).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(src, s.start));
        let msg = e.message().trim().to_string();
        let field = field_from_message(&msg).unwrap_or_else(|| "(syntax)".to_string());
        LoadError::Invalid {
            file: file.to_string(),
            line,
            field,
            message: msg,
        }
    })
}

/// TOML/serde messages name the field in backquotes ("missing field `id`").
fn field_from_message(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let rest = msg.get(start..)?;
    let end = rest.find('`')?;
    rest.get(..end).map(str::to_string)
}

pub(crate) fn parse_disposition(
    file: &str,
    src: &str,
    s: &Spanned<String>,
    field: &str,
) -> Result<Disposition, LoadError> {
    s.get_ref()
        .parse::<Disposition>()
        .map_err(|m| invalid(file, src, s.span(), field, m))
}

/// Parse a word-list file: one word per line, `#` starts a comment.
pub(crate) fn parse_words(src: &str) -> impl Iterator<Item = &str> {
    src.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
}
