//! careline's triage engine: reads a member message or a call note and decides
//! how fast a clinician must look at it — `emergency`, `urgent` or `routine` —
//! and says why.
//!
//! Pipeline (pure, no I/O while judging):
//! [`normalize`] (fold, tokenize, expand abbreviations, spell-correct) →
//! [`numbers`] (blood pressure, temperature, age, duration) and [`matcher`]
//! (one Aho-Corasick pass over every phrase and trigger) → [`context`]
//! (negation, hypothetical, history, resolved, non-clinical senses) →
//! [`judge`] (protocol rules, evidence, explanation). Protocols are data
//! files in `protocols/` ([`protocol`] parses them, [`compile`] builds the
//! model), embedded at build time and overridable with a directory.
//!
//! PUBLIC API CONTRACT (other crates depend on these names; the implementation
//! behind them is free to change):
//! - `Engine::embedded()`, `Engine::load_dir(&Path)`, `Engine::from_sources(..)`
//! - `Engine::version()`, `Engine::hash()`, `Engine::judge(&str, &Context) -> Judgement`
//! - `Disposition` (ordered Routine < Urgent < Emergency, serde lower-case)
//! - `Judgement` (Serialize + Deserialize + Clone) with the fields below.

pub mod compile;
pub mod context;
pub mod eval;
pub mod jsonl;
pub mod judge;
pub mod lexicon;
pub mod matcher;
pub mod normalize;
pub mod numbers;
pub mod pattern;
pub mod protocol;
pub mod reader;
pub mod train;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

use serde::{Deserialize, Serialize};
use std::path::Path;

/// How fast a clinician must look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Routine,
    Urgent,
    Emergency,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Routine => "routine",
            Disposition::Urgent => "urgent",
            Disposition::Emergency => "emergency",
        }
    }
    pub fn is_red_flag(self) -> bool {
        self != Disposition::Routine
    }
}

impl std::str::FromStr for Disposition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "routine" => Ok(Disposition::Routine),
            "urgent" => Ok(Disposition::Urgent),
            "emergency" => Ok(Disposition::Emergency),
            other => Err(format!(
                "unknown disposition '{other}' (expected emergency, urgent or routine)"
            )),
        }
    }
}

/// Where the text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    #[default]
    Portal,
    CallNote,
}

/// What the caller knows about the text besides its words.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub channel: Channel,
    /// BCP-47-ish language hint ("en", "es"); the engine reads both languages regardless.
    pub language: Option<String>,
}

/// A protocol that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiredProtocol {
    pub id: String,
    pub title: String,
    pub disposition: Disposition,
}

/// A span of the original text that supports a finding. Offsets are byte offsets
/// into the original text and always fall on character boundaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub protocol: String,
    pub concept: String,
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// A finding that context suppressed, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppressed {
    pub protocol: String,
    pub concept: String,
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub reason: String,
}

/// Guidance to show a member (or read to a caller) for an emergency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guidance {
    pub en: String,
    pub es: String,
}

/// The engine's judgement of one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub disposition: Disposition,
    pub protocols: Vec<FiredProtocol>,
    pub evidence: Vec<Evidence>,
    pub suppressed: Vec<Suppressed>,
    pub protocol_version: String,
    pub protocol_hash: String,
    pub explanation: String,
    /// Emergency guidance of the highest-disposition protocol, when one has it.
    pub guidance: Option<Guidance>,
    /// Set when the second reader raised the rules' disposition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_reader: Option<reader::SecondReader>,
    /// Whether the message is clinical at all (a symptom, body part,
    /// medicine, lab value or vital sign), read for recall: `None` for an
    /// administrative message. Every red flag is clinical; a routine
    /// judgement with clinical content is what the review net puts in front
    /// of a clinician.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinical_content: Option<ClinicalContent>,
}

/// One protocol as the catalogue lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProtocolInfo {
    pub id: String,
    pub title: String,
    pub system: String,
    pub population: String,
    /// The dispositions its rules can give, most urgent first.
    pub dispositions: Vec<Disposition>,
    pub source: String,
    /// The file it was read from, inside the set.
    pub file: String,
}

/// Why a message reads as clinical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClinicalContent {
    /// `rules` (a protocol concept was found, affirmed or not),
    /// `vocabulary` (a symptom, body part, medicine, lab or vital-sign word
    /// from the set's `clinical_words.txt`) or `reader` (the second reader's
    /// probability of "at least urgent" passed its clinical floor).
    pub by: String,
    /// The words that made it clinical, as spans of the original text.
    pub words: Vec<Evidence>,
}

/// Why a protocol set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}:{line}: {field}: {message}")]
    Invalid {
        file: String,
        line: usize,
        field: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

/// A compiled protocol set. Immutable after load, so `Send + Sync`: share it
/// behind an `Arc` across threads.
pub struct Engine {
    model: compile::Model,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("version", &self.model.version)
            .field("hash", &self.model.hash)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// The protocol set compiled into the binary from `protocols/`.
    pub fn embedded() -> Result<Engine, LoadError> {
        let files: Vec<(String, String)> = embedded::EMBEDDED
            .iter()
            .map(|(n, c)| ((*n).to_string(), (*c).to_string()))
            .collect();
        Self::from_sources(&files)
    }

    /// The file names and contents of the embedded protocol set.
    pub fn embedded_sources() -> Vec<(String, String)> {
        embedded::EMBEDDED
            .iter()
            .map(|(n, c)| ((*n).to_string(), (*c).to_string()))
            .collect()
    }

    /// A protocol set read from a directory at run time (`*.toml` and `*.txt`
    /// files, recursively; names are relative paths).
    pub fn load_dir(path: &Path) -> Result<Engine, LoadError> {
        let mut files = Vec::new();
        read_dir_rec(path, path, &mut files)?;
        if files.is_empty() {
            return Err(LoadError::Io {
                path: path.display().to_string(),
                message: "no protocol files (*.toml) found".into(),
            });
        }
        Self::from_sources(&files)
    }

    /// A protocol set from (file name, contents) pairs.
    pub fn from_sources(files: &[(String, String)]) -> Result<Engine, LoadError> {
        Ok(Engine {
            model: compile::compile(files)?,
        })
    }

    /// The protocol-set version (from `set.toml`).
    pub fn version(&self) -> &str {
        &self.model.version
    }

    /// SHA-256 over the protocol files (names and contents, sorted by name).
    pub fn hash(&self) -> &str {
        &self.model.hash
    }

    /// The protocols in the set: (id, title).
    pub fn protocols(&self) -> impl Iterator<Item = (&str, &str)> {
        self.model
            .protocols
            .iter()
            .map(|p| (p.id.as_str(), p.title.as_str()))
    }

    /// The second reader's settings, when the set has one.
    pub fn reader_settings(&self) -> Option<&reader::ReaderSettings> {
        self.model.reader.as_ref().map(|r| &r.settings)
    }

    /// Every protocol of the set, in the order the set defines them.
    pub fn catalogue(&self) -> Vec<ProtocolInfo> {
        self.model
            .protocols
            .iter()
            .map(|p| {
                let mut dispositions: Vec<Disposition> =
                    p.rules.iter().map(|r| r.disposition).collect();
                dispositions.sort_by(|a, b| b.cmp(a));
                dispositions.dedup();
                ProtocolInfo {
                    id: p.id.clone(),
                    title: p.title.clone(),
                    system: p.system.clone(),
                    population: p.population.clone(),
                    dispositions,
                    source: p.source.clone(),
                    file: p.file.clone(),
                }
            })
            .collect()
    }

    /// This set with the second reader replaced (`None`: rules alone), for
    /// evaluating weights before they are written into a protocol set.
    pub fn with_reader(mut self, r: Option<(reader::ReaderSettings, &reader::Weights)>) -> Engine {
        self.model.reader = r.map(|(s, w)| reader::Reader::from_weights(s, w));
        self
    }

    /// The rules' judgement of `text` (without the second reader; its
    /// clinical content from the rules and the word list) and the
    /// text's features for a reader taking character n-grams `char_ngrams`:
    /// what training and evaluation need, from one normalization.
    pub fn rules_and_features(
        &self,
        text: &str,
        char_ngrams: &[usize],
    ) -> (Judgement, reader::Features) {
        let mut n = normalize::Normalized::default();
        let mut hits = matcher::Hits::default();
        let (mut j, judged) = self.rules(text, &mut n, &mut hits);
        j.clinical_content = judge::clinical_by_rules(&j)
            .or_else(|| judge::clinical_by_words(&self.model, text, &n));
        let mut f = reader::Features::default();
        reader::extract(&n, char_ngrams, &mut f);
        reader::concept_features(&self.model, &judged, j.disposition, &mut f);
        (j, f)
    }

    /// Judge one text. Pure: no I/O, never panics.
    pub fn judge(&self, text: &str, ctx: &Context) -> Judgement {
        // Working buffers are reused per thread (no state crosses calls:
        // everything is cleared first); a re-entrant call gets fresh ones.
        thread_local! {
            static SCRATCH: std::cell::RefCell<(normalize::Normalized, matcher::Hits)> =
                std::cell::RefCell::new(Default::default());
        }
        let _ = ctx.channel;
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut guard) => {
                let (n, hits) = &mut *guard;
                self.judge_with(text, n, hits)
            }
            Err(_) => self.judge_with(text, &mut Default::default(), &mut Default::default()),
        })
    }

    fn judge_with(
        &self,
        text: &str,
        n: &mut normalize::Normalized,
        hits: &mut matcher::Hits,
    ) -> Judgement {
        let (mut j, judged) = self.rules(text, n, hits);
        j.clinical_content =
            judge::clinical_by_rules(&j).or_else(|| judge::clinical_by_words(&self.model, text, n));
        // Nothing is above emergency: the second reader has nothing to add.
        if let Some(r) = self
            .model
            .reader
            .as_ref()
            .filter(|_| j.disposition < Disposition::Emergency)
        {
            thread_local! {
                static FEATURES: std::cell::RefCell<reader::Features> =
                    std::cell::RefCell::new(Default::default());
            }
            let raised = FEATURES.with(|cell| {
                let mut fresh = reader::Features::default();
                let mut guard = cell.try_borrow_mut();
                let f = match guard.as_deref_mut() {
                    Ok(f) => f,
                    Err(_) => &mut fresh,
                };
                reader::extract(n, &r.settings.char_ngrams, f);
                reader::concept_features(&self.model, &judged, j.disposition, f);
                let p = r.score(f);
                r.raise(text, n, f, p, j.disposition)
            });
            if let Some(sr) = raised {
                judge::second_reader(&mut j, sr, &r.settings);
            }
        }
        // Do not keep huge buffers alive after a huge input.
        if n.norm.capacity() > 1 << 20 {
            *n = normalize::Normalized::default();
            *hits = matcher::Hits::default();
        }
        j
    }

    /// The rules alone, and the findings they judged in context.
    fn rules(
        &self,
        text: &str,
        n: &mut normalize::Normalized,
        hits: &mut matcher::Hits,
    ) -> (Judgement, Vec<context::Judged>) {
        let mode = normalize::Mode {
            fuzzy: true,
            upper: true,
        };
        normalize::normalize(text, &self.model.lex, mode, n);
        hits.clear();
        matcher::find(&self.model, n, hits);
        if n.toks
            .iter()
            .any(|t| matches!(t.kind, normalize::Kind::Num(_)))
        {
            numbers::scan(n, &self.model.builtin_ids, &mut hits.findings);
        }
        let judged = context::judge(&self.model, text, n, hits);
        let j = judge::build(&self.model, text, n, &judged);
        (j, judged)
    }
}

fn read_dir_rec(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> Result<(), LoadError> {
    let io = |p: &Path, e: std::io::Error| LoadError::Io {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let p = entry.path();
        if p.is_dir() {
            read_dir_rec(base, &p, out)?;
        } else if p.extension().is_some_and(|e| e == "toml" || e == "txt") {
            let content = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
            let rel = p
                .strip_prefix(base)
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, content));
        }
    }
    Ok(())
}

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn engine_is_send_and_sync() {
        assert_send_sync::<super::Engine>();
    }
}
