//! Second load stage: turns parsed protocol files into the immutable matching
//! model the engine judges with — the word lexicon, one Aho-Corasick automaton
//! over every concept phrase, context trigger and non-clinical sense, and the
//! protocol rules with concept references resolved to indices.
//!
//! Every reference is checked here (unknown concept in a rule, duplicate ids,
//! phrases that normalize to nothing, bad pattern syntax), so a protocol set
//! that loads is internally consistent.

use crate::lexicon::{FxMap, Lexicon};
use crate::normalize::{Mode, Normalized, normalize};
use crate::pattern::{expand_groups_with, expand_macros};
use crate::protocol::{FileDoc, invalid, parse_disposition, parse_file, parse_words};
use crate::{Disposition, Guidance, LoadError};
use aho_corasick::{AhoCorasick, MatchKind};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use toml::Spanned;

/// What a resolved ("went away") mention of a concept means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// Ignore it (default).
    Suppress,
    /// Still counts fully (transient stroke signs).
    Keep,
    /// Still counts, but at most urgent (chest pain in the last days).
    Urgent,
}

#[derive(Debug, Clone)]
pub(crate) struct Concept {
    pub id: String,
    #[allow(dead_code)]
    pub label: String,
    pub resolved: Resolved,
    /// Context kinds that never suppress this concept.
    pub ignore: Vec<TrigKind>,
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub disposition: Disposition,
    pub all: Vec<u16>,
    pub any: Vec<u16>,
    /// Concepts whose presence stops the rule.
    pub unless: Vec<u16>,
}

#[derive(Debug, Clone)]
pub(crate) struct Protocol {
    pub id: String,
    pub title: String,
    #[allow(dead_code)]
    pub rationale: String,
    pub source: String,
    pub system: String,
    pub population: String,
    /// The file it was read from, inside the set.
    pub file: String,
    pub guidance: Option<Guidance>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrigKind {
    Negation,
    Hypothetical,
    History,
    Recurrence,
    Resolved,
    /// A benign cause that explains the listed concepts ("after my workout").
    Benign,
    /// Looks like a trigger but is not ("not sure", "won't go away"): masks
    /// the triggers it overlaps.
    Pseudo,
    /// Ends the scope of other triggers ("but", "pero", "however").
    Terminator,
    /// Ends only negation scope ("denies CP, c/o SOB").
    NegationEnd,
    /// A later clause reporting the finding now ("never had one before but
    /// I just had one"): cancels negation, history and resolution.
    Current,
    /// The finding is an animal's ("my dog is vomiting blood"): not the
    /// member's, and not a person's, so it is silenced like a denial.
    Animal,
}

impl TrigKind {
    #[allow(dead_code)]
    pub fn describe(self) -> &'static str {
        match self {
            TrigKind::Negation => "negated",
            TrigKind::Hypothetical => "hypothetical or educational",
            TrigKind::History => "past history",
            TrigKind::Recurrence => "recurrence",
            TrigKind::Resolved => "resolved",
            TrigKind::Benign => "benign cause",
            TrigKind::Pseudo => "pseudo-trigger",
            TrigKind::Terminator => "scope end",
            TrigKind::NegationEnd => "negation scope end",
            TrigKind::Current => "current",
            TrigKind::Animal => "about an animal",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Trigger {
    pub kind: TrigKind,
    pub forward: bool,
    pub backward: bool,
    pub window: u32,
    pub comma_ends: bool,
    /// When non-empty, the only concepts this trigger applies to.
    pub only: Vec<u16>,
}

/// What an automaton pattern means.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// Segment `seg` of concept phrase `phrase`.
    Seg {
        phrase: u32,
        seg: u8,
        prefix: bool,
    },
    Trig {
        trig: u32,
        prefix: bool,
    },
    /// A non-clinical sense; `concept == u16::MAX` applies to every concept.
    Excl {
        concept: u16,
        reason: u16,
        prefix: bool,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Phrase {
    pub concept: u16,
    pub nsegs: u8,
}

/// Concepts computed from numbers rather than phrases.
pub(crate) const BUILTINS: &[(&str, &str)] = &[
    ("bp_crisis", "blood pressure at or above 180/120"),
    ("bp_high", "blood pressure at or above 160/100"),
    (
        "bp_severe",
        "blood pressure at or above 160 systolic and 100 diastolic together",
    ),
    ("bp_low", "low blood pressure (systolic under 90)"),
    ("temp_fever", "fever (100.4 °F / 38 °C or more)"),
    ("temp_high", "high fever (103 °F / 39.4 °C or more)"),
    (
        "temp_very_high",
        "very high fever (105 °F / 40.5 °C or more)",
    ),
    ("temp_low", "low temperature (under 96 °F / 35.5 °C)"),
    ("temp_39", "fever of 102.2 °F / 39 °C or more"),
    ("age_under_18", "a child (under 18)"),
    ("age_under_3mo", "infant under 3 months"),
    ("age_under_2y", "child under 2 years"),
    ("age_65_plus", "age 65 or older"),
    ("duration_3d_plus", "lasting 3 days or more"),
    ("spo2_low", "oxygen saturation 92% or lower"),
    ("hr_high", "heart rate 130 or more"),
    ("hr_low", "heart rate under 40"),
    ("glucose_high", "blood sugar 400 or more"),
    ("glucose_300", "blood sugar 300 or more"),
    ("glucose_low", "blood sugar 60 or less"),
    ("inr_high", "INR 5 or more"),
];

/// The compiled, immutable model.
pub(crate) struct Model {
    pub lex: Lexicon,
    pub ac: Option<AhoCorasick>,
    pub targets: Vec<Vec<Target>>,
    pub phrases: Vec<Phrase>,
    pub concepts: Vec<Concept>,
    pub protocols: Vec<Protocol>,
    pub triggers: Vec<Trigger>,
    pub reasons: Vec<String>,
    /// For each concept, the first protocol whose rules mention it.
    pub concept_protocol: Vec<Option<u16>>,
    pub builtin_ids: HashMap<&'static str, u16>,
    pub max_window: u32,
    /// Built-in history trigger used for past years ("in 2019").
    pub year_trigger: Option<u32>,
    pub version: String,
    pub hash: String,
    /// The second reader, when the set has one (`reader/`).
    pub reader: Option<crate::reader::Reader>,
    /// Folded words that make a message clinical for the review net
    /// (`clinical_words.txt`).
    pub clinical_words: FxMap<String, ()>,
}

/// The word list the review net reads clinical content from.
pub const CLINICAL_WORDS_FILE: &str = "clinical_words.txt";

const PHRASE_MODE: Mode = Mode {
    fuzzy: false,
    upper: false,
};

struct Builder {
    lex: Lexicon,
    /// Normalized form of each literal chunk already seen (vocab, known).
    leaf_cache: [FxMap<String, String>; 2],
    patterns: Vec<String>,
    pat_index: FxMap<String, usize>,
    targets: Vec<Vec<Target>>,
    scratch: Normalized,
}

impl Builder {
    /// Normalize a phrase variant segment; registers its words as vocabulary.
    fn norm_segment(&mut self, text: &str, vocab: bool) -> String {
        normalize(text, &self.lex, PHRASE_MODE, &mut self.scratch);
        let s = self.scratch.norm.clone();
        for w in s.split(' ') {
            if w.chars().all(char::is_alphabetic) && !w.is_empty() {
                if vocab {
                    self.lex.add_vocab(w);
                } else {
                    // Trigger and exclusion words are real words: never "correct" them.
                    self.lex.add_known(w);
                }
            }
        }
        s
    }

    fn add_pattern(&mut self, s: String, t: Target) {
        let idx = match self.pat_index.get(&s) {
            Some(&i) => i,
            None => {
                let i = self.patterns.len();
                self.pat_index.insert(s.clone(), i);
                self.patterns.push(s);
                self.targets.push(Vec::new());
                i
            }
        };
        if let Some(v) = self.targets.get_mut(idx) {
            v.push(t);
        }
    }
}

/// One `~`-separated part of a phrase: its normalized alternatives.
type Segment = Vec<(String, bool)>;

/// Split on `~` outside parentheses.
fn split_gaps(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '~' if depth == 0 => {
                out.push(s.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            '~' => return Err(format!("'~' inside a group is not supported in '{s}'")),
            _ => {}
        }
    }
    out.push(s.get(start..).unwrap_or(""));
    Ok(out)
}

/// Expand one written phrase into its phrases: each a list of segments, each
/// segment a list of normalized alternatives. Alternatives stay grouped per
/// segment (no cartesian product across gaps), which keeps the automaton
/// small; a segment that may be empty yields variants with and without it.
#[allow(clippy::too_many_arguments)] // one call site per phrase kind; a struct would only rename them
fn expand_phrase(
    b: &mut Builder,
    macros: &BTreeMap<String, String>,
    file: &str,
    src: &str,
    sp: &Spanned<String>,
    field: &str,
    allow_gaps: bool,
    vocab: bool,
) -> Result<Vec<Vec<Segment>>, LoadError> {
    let err = |m: String| invalid(file, src, sp.span(), field, m);
    let expanded = expand_macros(sp.get_ref(), macros).map_err(err)?;
    let parts = split_gaps(&expanded).map_err(err)?;
    if parts.len() > 1 && !allow_gaps {
        return Err(err(format!(
            "'~' gaps are only allowed in concept phrases ('{expanded}')"
        )));
    }
    if parts.len() > 8 {
        return Err(err(format!("too many '~' gaps in '{expanded}'")));
    }
    let literal = !sp.get_ref().contains(['(', '{']);
    // (alternatives, may be empty)
    let mut segs: Vec<(Segment, bool)> = Vec::with_capacity(parts.len());
    for part in parts {
        if let Some(i) = part.find('*') {
            let rest = part.get(i + 1..).unwrap_or("").trim_start();
            if !(rest.is_empty() || rest.starts_with([')', '|'])) {
                return Err(err(format!(
                    "'*' may only end the last word before a '~' or the end in '{part}'"
                )));
            }
        }
        let mut leaf = |chunk: &str| -> String {
            let slot = usize::from(vocab);
            if let Some(n) = b.leaf_cache.get(slot).and_then(|c| c.get(chunk)) {
                return n.clone();
            }
            let star = chunk.trim_end().ends_with('*');
            let mut n = b.norm_segment(chunk.trim().trim_end_matches('*'), vocab);
            if star && !n.is_empty() {
                n.push('*');
            }
            if let Some(c) = b.leaf_cache.get_mut(slot) {
                c.insert(chunk.to_string(), n.clone());
            }
            n
        };
        let variants = expand_groups_with(part, &mut leaf).map_err(err)?;
        let mut alts: Segment = Vec::new();
        let mut optional = variants.is_empty();
        for v in variants {
            let prefix = v.ends_with('*');
            let n = v.trim_end_matches('*').trim().to_string();
            if literal && part.split_whitespace().count() > 1 && !n.contains(' ') && !n.is_empty() {
                return Err(err(format!(
                    "'{}' shrinks to the single word '{n}' once filler words are dropped, so it would match far more than intended",
                    part.trim()
                )));
            }
            if n.is_empty() {
                optional = true;
                continue;
            }
            if n.contains('*') {
                return Err(err(format!(
                    "'*' may only end the last word before a '~' or the end in '{part}'"
                )));
            }
            alts.push((n, prefix));
        }
        alts.sort_unstable();
        alts.dedup();
        if part.trim().is_empty() {
            optional = true;
        }
        segs.push((alts, optional));
    }
    // Variants over optional segments (few: at most 2^k with small k).
    let opt_idx: Vec<usize> = segs
        .iter()
        .enumerate()
        .filter(|(_, (_, o))| *o)
        .map(|(i, _)| i)
        .collect();
    if opt_idx.len() > 4 {
        return Err(err(format!(
            "too many optional gap segments in '{expanded}'"
        )));
    }
    let mut out = Vec::new();
    for mask in 0u32..(1u32 << opt_idx.len()) {
        let mut phrase: Vec<Segment> = Vec::new();
        for (i, (alts, optional)) in segs.iter().enumerate() {
            let include = if *optional {
                let bit = opt_idx.iter().position(|&x| x == i).unwrap_or(0);
                mask & (1 << bit) != 0
            } else {
                true
            };
            if include {
                if alts.is_empty() {
                    phrase.clear();
                    break;
                }
                phrase.push(alts.clone());
            }
        }
        if !phrase.is_empty() && !out.contains(&phrase) {
            out.push(phrase);
        }
    }
    if out.is_empty() {
        return Err(err(format!(
            "phrase '{}' normalizes to nothing (only filler words?)",
            sp.get_ref()
        )));
    }
    Ok(out)
}

/// Sort files, hash them, parse them, compile the model.
pub(crate) fn compile(files: &[(String, String)]) -> Result<Model, LoadError> {
    let mut sorted: Vec<&(String, String)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    for (name, content) in &sorted {
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        hasher.update(content.as_bytes());
        hasher.update([0u8]);
    }
    let hash = hex::encode(hasher.finalize());

    let mut docs: Vec<(&str, &str, FileDoc)> = Vec::new();
    let mut b = Builder {
        lex: Lexicon::default(),
        leaf_cache: [FxMap::default(), FxMap::default()],
        patterns: Vec::new(),
        pat_index: FxMap::with_capacity_and_hasher(32_768, Default::default()),
        targets: Vec::new(),
        scratch: Normalized::default(),
    };
    let mut reader_files: [Option<&str>; 2] = [None, None];
    let mut clinical_words: FxMap<String, ()> = FxMap::default();
    for (name, content) in &sorted {
        if name == crate::reader::SETTINGS_FILE {
            reader_files[0] = Some(content.as_str());
            continue;
        }
        if name == crate::reader::WEIGHTS_FILE {
            reader_files[1] = Some(content.as_str());
            continue;
        }
        if name.ends_with(".toml") {
            docs.push((name.as_str(), content.as_str(), parse_file(name, content)?));
        } else if name.ends_with(".txt") {
            if name == CLINICAL_WORDS_FILE {
                for w in parse_words(content) {
                    clinical_words.insert(crate::normalize::fold_word(w), ());
                }
            }
            b.lex.reserve_dictionary(content.lines().count());
            for w in parse_words(content) {
                if w.bytes().all(|c| c.is_ascii_lowercase()) {
                    b.lex.add_dictionary_word(w);
                } else {
                    b.lex.add_dictionary_word(&crate::normalize::fold_word(w));
                }
            }
        }
    }

    // Set identity.
    let mut version: Option<String> = None;
    for (file, src, d) in &docs {
        if let Some(set) = &d.set {
            if version.is_some() {
                return Err(invalid(
                    file,
                    src,
                    set.version.span(),
                    "set.version",
                    "a second [set] table; exactly one file may define the set",
                ));
            }
            let v = set.version.get_ref().trim();
            if v.is_empty() {
                return Err(invalid(
                    file,
                    src,
                    set.version.span(),
                    "set.version",
                    "must not be empty",
                ));
            }
            version = Some(v.to_string());
        }
    }
    let version = version.ok_or_else(|| LoadError::Invalid {
        file: "set.toml".into(),
        line: 0,
        field: "set.version".into(),
        message: "no [set] table with a version in the protocol set".into(),
    })?;

    // Normalization: drops first, then replacements (which may expand into words).
    for (file, src, d) in &docs {
        if let Some(n) = &d.normalize {
            for w in &n.drop {
                b.lex.add_drop(&crate::normalize::fold_word(w));
            }
            for (upper, map) in [(false, &n.replace), (true, &n.replace_upper)] {
                for (k, v) in map {
                    let words: Vec<Box<str>> = crate::normalize::fold_word(v.get_ref())
                        .split_whitespace()
                        .map(Into::into)
                        .collect();
                    if words.is_empty() {
                        return Err(invalid(
                            file,
                            src,
                            v.span(),
                            &format!("normalize.replace.{k}"),
                            "replacement is empty",
                        ));
                    }
                    b.lex
                        .add_replacement(&crate::normalize::fold_word(k), words, upper);
                }
            }
        }
    }
    // Replacement words are vocabulary too.
    let repl_words: Vec<String> = b
        .lex
        .replacements
        .iter()
        .flatten()
        .map(|w| w.to_string())
        .collect();
    for w in &repl_words {
        b.lex.add_known(w);
    }

    let mut macros: BTreeMap<String, String> = BTreeMap::new();
    for (_, _, d) in &docs {
        for (k, v) in &d.macros {
            macros.insert(k.clone(), v.get_ref().clone());
        }
    }

    // Concepts.
    let mut concepts: Vec<Concept> = Vec::new();
    let mut concept_ids: HashMap<String, u16> = HashMap::new();
    let mut builtin_ids: HashMap<&'static str, u16> = HashMap::new();
    for (id, label) in BUILTINS {
        let i = u16::try_from(concepts.len()).unwrap_or(u16::MAX);
        concepts.push(Concept {
            id: (*id).to_string(),
            label: (*label).to_string(),
            resolved: Resolved::Suppress,
            ignore: Vec::new(),
        });
        concept_ids.insert((*id).to_string(), i);
        builtin_ids.insert(id, i);
    }
    let mut phrases: Vec<Phrase> = Vec::new();
    for (file, src, d) in &docs {
        for c in &d.concept {
            let id = c.id.get_ref().trim().to_string();
            if id.is_empty() {
                return Err(invalid(
                    file,
                    src,
                    c.id.span(),
                    "concept.id",
                    "must not be empty",
                ));
            }
            if concept_ids.contains_key(&id) {
                return Err(invalid(
                    file,
                    src,
                    c.id.span(),
                    "concept.id",
                    format!("duplicate concept id '{id}'"),
                ));
            }
            let resolved = match c.resolved.as_ref().map(|r| r.get_ref().as_str()) {
                None | Some("suppress") => Resolved::Suppress,
                Some("keep") => Resolved::Keep,
                Some("urgent") => Resolved::Urgent,
                Some(other) => {
                    let span = c.resolved.as_ref().map_or(c.id.span(), Spanned::span);
                    return Err(invalid(
                        file,
                        src,
                        span,
                        "concept.resolved",
                        format!("'{other}' (expected suppress, keep or urgent)"),
                    ));
                }
            };
            if c.en.is_empty() && c.es.is_empty() {
                return Err(invalid(
                    file,
                    src,
                    c.id.span(),
                    "concept.en",
                    format!("concept '{id}' has no phrases"),
                ));
            }
            let ci = u16::try_from(concepts.len())
                .map_err(|_| invalid(file, src, c.id.span(), "concept.id", "too many concepts"))?;
            concept_ids.insert(id.clone(), ci);
            let label = c.label.clone().unwrap_or_else(|| id.replace('_', " "));
            let mut ignore = Vec::new();
            for k in &c.ignore_context {
                ignore.push(match k.get_ref().as_str() {
                    "negation" => TrigKind::Negation,
                    "hypothetical" => TrigKind::Hypothetical,
                    "history" => TrigKind::History,
                    "resolved" => TrigKind::Resolved,
                    "benign" => TrigKind::Benign,
                    other => {
                        return Err(invalid(
                            file,
                            src,
                            k.span(),
                            "concept.ignore_context",
                            format!(
                                "'{other}' (expected negation, hypothetical, history or resolved)"
                            ),
                        ));
                    }
                });
            }
            concepts.push(Concept {
                id,
                label,
                resolved,
                ignore,
            });
            for (field, list) in [("concept.en", &c.en), ("concept.es", &c.es)] {
                for sp in list {
                    for segs in expand_phrase(&mut b, &macros, file, src, sp, field, true, true)? {
                        let pi = u32::try_from(phrases.len()).unwrap_or(u32::MAX);
                        let nsegs = u8::try_from(segs.len()).unwrap_or(u8::MAX);
                        phrases.push(Phrase { concept: ci, nsegs });
                        for (k, alts) in segs.into_iter().enumerate() {
                            for (s, prefix) in alts {
                                b.add_pattern(
                                    s,
                                    Target::Seg {
                                        phrase: pi,
                                        seg: u8::try_from(k).unwrap_or(u8::MAX),
                                        prefix,
                                    },
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    // Non-clinical senses: per concept and global.
    let mut reasons: Vec<String> = Vec::new();
    for (file, src, d) in &docs {
        for c in &d.concept {
            let Some(&ci) = concept_ids.get(c.id.get_ref().trim()) else {
                continue;
            };
            for sp in &c.exclude {
                let r = u16::try_from(reasons.len()).unwrap_or(u16::MAX);
                reasons.push(format!("non-clinical sense '{}'", sp.get_ref()));
                for segs in expand_phrase(
                    &mut b,
                    &macros,
                    file,
                    src,
                    sp,
                    "concept.exclude",
                    false,
                    false,
                )? {
                    for (s, prefix) in segs.into_iter().flatten() {
                        b.add_pattern(
                            s,
                            Target::Excl {
                                concept: ci,
                                reason: r,
                                prefix,
                            },
                        );
                    }
                }
            }
        }
        for n in &d.nonclinical {
            let r = u16::try_from(reasons.len()).unwrap_or(u16::MAX);
            reasons.push(n.reason.clone());
            for sp in &n.phrases {
                for segs in expand_phrase(
                    &mut b,
                    &macros,
                    file,
                    src,
                    sp,
                    "nonclinical.phrases",
                    false,
                    false,
                )? {
                    for (s, prefix) in segs.into_iter().flatten() {
                        b.add_pattern(
                            s,
                            Target::Excl {
                                concept: u16::MAX,
                                reason: r,
                                prefix,
                            },
                        );
                    }
                }
            }
        }
    }

    // Context triggers.
    let mut triggers: Vec<Trigger> = Vec::new();
    let mut max_window = 0u32;
    for (file, src, d) in &docs {
        for t in &d.trigger {
            let kind = match t.kind.get_ref().as_str() {
                "negation" => TrigKind::Negation,
                "hypothetical" => TrigKind::Hypothetical,
                "history" => TrigKind::History,
                "recurrence" => TrigKind::Recurrence,
                "current" => TrigKind::Current,
                "resolved" => TrigKind::Resolved,
                "pseudo" => TrigKind::Pseudo,
                "terminator" => TrigKind::Terminator,
                "negation_end" => TrigKind::NegationEnd,
                "benign" => TrigKind::Benign,
                "animal" => TrigKind::Animal,
                other => {
                    return Err(invalid(
                        file,
                        src,
                        t.kind.span(),
                        "trigger.kind",
                        format!(
                            "'{other}' (expected negation, hypothetical, history, recurrence, current, resolved, benign, pseudo or terminator)"
                        ),
                    ));
                }
            };
            let (forward, backward) = match t.direction.as_ref().map(|d| d.get_ref().as_str()) {
                None | Some("forward") => (true, false),
                Some("backward") => (false, true),
                Some("both") => (true, true),
                Some(other) => {
                    let span = t.direction.as_ref().map_or(t.kind.span(), Spanned::span);
                    return Err(invalid(
                        file,
                        src,
                        span,
                        "trigger.direction",
                        format!("'{other}' (expected forward, backward or both)"),
                    ));
                }
            };
            let window = u32::try_from(t.window.unwrap_or(6).clamp(1, 30)).unwrap_or(6);
            max_window = max_window.max(window);
            let ti = u32::try_from(triggers.len()).unwrap_or(u32::MAX);
            let mut only = Vec::new();
            for o in &t.only {
                let c = concept_ids
                    .get(o.get_ref().trim())
                    .copied()
                    .ok_or_else(|| {
                        invalid(
                            file,
                            src,
                            o.span(),
                            "trigger.only",
                            format!("unknown concept '{}'", o.get_ref()),
                        )
                    })?;
                only.push(c);
            }
            if kind == TrigKind::Benign && only.is_empty() {
                return Err(invalid(
                    file,
                    src,
                    t.kind.span(),
                    "trigger.only",
                    "a benign trigger must list the concepts it applies to",
                ));
            }
            triggers.push(Trigger {
                kind,
                forward,
                backward,
                window,
                comma_ends: t.comma_ends,
                only,
            });
            for sp in &t.phrases {
                for segs in expand_phrase(
                    &mut b,
                    &macros,
                    file,
                    src,
                    sp,
                    "trigger.phrases",
                    false,
                    false,
                )? {
                    for (s, prefix) in segs.into_iter().flatten() {
                        b.add_pattern(s, Target::Trig { trig: ti, prefix });
                    }
                }
            }
        }
    }

    let year_trigger = u32::try_from(triggers.len()).ok();
    triggers.push(Trigger {
        kind: TrigKind::History,
        forward: true,
        backward: true,
        window: 6,
        comma_ends: true,
        only: Vec::new(),
    });
    max_window = max_window.max(8);

    // Protocols.
    let mut protocols: Vec<Protocol> = Vec::new();
    let mut protocol_ids: HashMap<String, ()> = HashMap::new();
    for (file, src, d) in &docs {
        let Some(p) = &d.protocol else { continue };
        let id = p.id.get_ref().trim().to_string();
        if id.is_empty() || protocol_ids.insert(id.clone(), ()).is_some() {
            return Err(invalid(
                file,
                src,
                p.id.span(),
                "protocol.id",
                format!("empty or duplicate protocol id '{id}'"),
            ));
        }
        for (field, v) in [
            ("protocol.title", &p.title),
            ("protocol.rationale", &p.rationale),
            ("protocol.source", &p.source),
        ] {
            if v.get_ref().trim().is_empty() {
                return Err(invalid(file, src, v.span(), field, "must not be empty"));
            }
        }
        if p.rule.is_empty() {
            return Err(invalid(
                file,
                src,
                p.id.span(),
                "protocol.rule",
                format!("protocol '{id}' has no rules"),
            ));
        }
        let resolve = |list: &Vec<Spanned<String>>, field: &str| -> Result<Vec<u16>, LoadError> {
            list.iter()
                .map(|s| {
                    concept_ids.get(s.get_ref().trim()).copied().ok_or_else(|| {
                        invalid(
                            file,
                            src,
                            s.span(),
                            field,
                            format!("unknown concept '{}'", s.get_ref()),
                        )
                    })
                })
                .collect()
        };
        let mut rules = Vec::new();
        for r in &p.rule {
            let disposition =
                parse_disposition(file, src, &r.disposition, "protocol.rule.disposition")?;
            let all = resolve(&r.all, "protocol.rule.all")?;
            let any = resolve(&r.any, "protocol.rule.any")?;
            if all.is_empty() && any.is_empty() {
                return Err(invalid(
                    file,
                    src,
                    r.disposition.span(),
                    "protocol.rule.all",
                    "a rule needs `all` or `any` concepts",
                ));
            }
            let esc = resolve(&r.escalate_with, "protocol.rule.escalate_with")?;
            let unless = resolve(&r.unless, "protocol.rule.unless")?;
            if !esc.is_empty() {
                if any.is_empty() {
                    rules.push(Rule {
                        disposition: Disposition::Emergency,
                        all: all.clone(),
                        any: esc,
                        unless: unless.clone(),
                    });
                } else {
                    // (all ∧ any ∧ any-of-escalate): encode as one rule per `any` member.
                    for a in &any {
                        let mut all3 = all.clone();
                        all3.push(*a);
                        rules.push(Rule {
                            disposition: Disposition::Emergency,
                            all: all3,
                            any: esc.clone(),
                            unless: unless.clone(),
                        });
                    }
                }
            }
            rules.push(Rule {
                disposition,
                all,
                any,
                unless,
            });
        }
        let guidance = p.guidance.as_ref().map(|g| Guidance {
            en: g.en.clone(),
            es: g.es.clone(),
        });
        let text = |v: &Option<Spanned<String>>| {
            v.as_ref()
                .map(|s| s.get_ref().trim().to_owned())
                .unwrap_or_default()
        };
        protocols.push(Protocol {
            id,
            title: p.title.get_ref().clone(),
            rationale: p.rationale.get_ref().clone(),
            source: p.source.get_ref().clone(),
            system: text(&p.system),
            population: text(&p.population),
            file: (*file).to_owned(),
            guidance,
            rules,
        });
    }
    if protocols.is_empty() {
        return Err(LoadError::Invalid {
            file: "(set)".into(),
            line: 0,
            field: "protocol".into(),
            message: "the protocol set defines no protocols".into(),
        });
    }
    let mut concept_protocol = vec![None; concepts.len()];
    for (pi, p) in protocols.iter().enumerate() {
        for r in &p.rules {
            for &c in r.all.iter().chain(&r.any) {
                if let Some(slot) = concept_protocol.get_mut(c as usize)
                    && slot.is_none()
                {
                    *slot = u16::try_from(pi).ok();
                }
            }
        }
    }

    let ac = if b.patterns.is_empty() {
        None
    } else {
        Some(
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(&b.patterns)
                .map_err(|e| LoadError::Invalid {
                    file: "(set)".into(),
                    line: 0,
                    field: "phrases".into(),
                    message: format!("cannot build the phrase automaton: {e}"),
                })?,
        )
    };

    let reader = match reader_files {
        [Some(settings), Some(weights)] => Some(crate::reader::Reader::parse(settings, weights)?),
        [None, None] => None,
        _ => {
            return Err(LoadError::Invalid {
                file: crate::reader::SETTINGS_FILE.into(),
                line: 0,
                field: "reader".into(),
                message: format!(
                    "the second reader needs both {} and {}",
                    crate::reader::SETTINGS_FILE,
                    crate::reader::WEIGHTS_FILE
                ),
            });
        }
    };

    Ok(Model {
        lex: b.lex,
        ac,
        targets: b.targets,
        phrases,
        concepts,
        protocols,
        triggers,
        reasons,
        concept_protocol,
        builtin_ids,
        max_window,
        year_trigger,
        version,
        hash,
        reader,
        clinical_words,
    })
}
