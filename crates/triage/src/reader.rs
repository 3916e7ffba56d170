//! The second reader: a compact linear model over the words of a message,
//! trained on the labelled corpus, that reads what the rules were not
//! written for (paraphrase, a caregiver's everyday words, a red flag
//! framed as a question). It only ever **raises** the rules' disposition,
//! never lowers it: the rules stay the floor and the explanation.
//!
//! Features come from the same normalized tokens the rules match (folded,
//! spell-corrected, abbreviations expanded): word unigrams and bigrams,
//! character n-grams within words, number magnitudes, a question mark;
//! a word within a short negation scope ("no", "denies", "sin", …) is a
//! different feature from the same word affirmed. Each feature is hashed
//! into a fixed table of weights, two per bucket: one for "at least
//! urgent", one for "emergency". Scoring is a sum of table lookups.
//!
//! Its weights are data in `protocols/reader/` (`reader.toml` for the
//! settings and thresholds, `weights.txt` for the table), embedded and
//! covered by the protocol set's content hash like every protocol. They
//! are made by `careline triage --train` from the corpus in the
//! repository, deterministically: the same files give the same weights.

use crate::normalize::{Kind, Normalized};
use crate::{Disposition, Evidence, Guidance, LoadError};
use serde::{Deserialize, Serialize};

/// Settings file of the second reader, relative to the protocol set.
pub const SETTINGS_FILE: &str = "reader/reader.toml";
/// Weights file of the second reader, relative to the protocol set.
pub const WEIGHTS_FILE: &str = "reader/weights.txt";

/// How a message's feature sum is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// Divided by the square root of the feature count (logistic regression).
    #[default]
    Sqrt,
    /// Not scaled (naive Bayes log-count ratios).
    None,
}

/// `reader.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub reader: ReaderSettings,
}

/// The `[reader]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderSettings {
    /// Model family the weights come from (`logistic` or `naive_bayes`).
    pub family: String,
    /// log2 of the number of hash buckets.
    pub bits: u32,
    /// Character n-gram lengths taken within words.
    pub char_ngrams: Vec<usize>,
    #[serde(default)]
    pub norm: Norm,
    /// Probability of "at least urgent" at or above which the reader raises to urgent.
    pub urgent_threshold: f64,
    /// Probability of "emergency" at or above which the reader raises to emergency.
    pub emergency_threshold: f64,
    /// Emergency guidance when the reader raises to emergency and no protocol gave any.
    pub guidance: Guidance,
    /// How the weights were made (command, corpus, date): for reviewers.
    #[serde(default)]
    pub trained: String,
}

/// A loaded second reader.
#[derive(Debug, Clone)]
pub(crate) struct Reader {
    pub settings: ReaderSettings,
    mask: u32,
    bias: [f32; 2],
    /// `[at least urgent, emergency]` per bucket.
    table: Vec<[f32; 2]>,
}

/// What the second reader made of a message when it raised the disposition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondReader {
    /// The rules' disposition.
    pub from: Disposition,
    /// The disposition after the second reader.
    pub to: Disposition,
    /// The model's probability for `to` (at least urgent, or emergency).
    pub score: f32,
    /// The threshold it passed.
    pub threshold: f64,
    /// The words that weighed most, as spans of the original text.
    pub words: Vec<Evidence>,
}

/// The hashed features of one message, with the token each came from.
#[derive(Debug, Default, Clone)]
pub struct Features {
    pub hashes: Vec<u32>,
    pub toks: Vec<u16>,
}

impl Features {
    fn push(&mut self, h: u32, tok: usize) {
        self.hashes.push(h);
        self.toks.push(u16::try_from(tok).unwrap_or(u16::MAX));
    }
    pub fn clear(&mut self) {
        self.hashes.clear();
        self.toks.clear();
    }
}

// Words that open a negation scope ("can't" and "cannot" do not: "I can't
// breathe" denies nothing), and words that end one ("no fever but now she
// is limp"): see `is_negation` and `is_scope_break`.

/// Words never shown as what weighed most: they only glue the others.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "and", "the", "to", "of", "in", "on", "at", "for", "with", "is", "it", "its", "be",
    "am", "are", "was", "were", "my", "me", "i", "he", "she", "his", "her", "they", "we", "you",
    "your", "that", "this", "so", "or", "as", "all", "just", "up", "de", "la", "el", "y", "en",
    "que", "mi", "me", "se", "lo", "le", "un", "una", "es", "por", "con", "los", "las", "del",
    "al",
];

/// One `match` instead of a scan of the lists: this runs for every word.
fn is_negation(w: &str) -> bool {
    matches!(
        w,
        "no" | "not"
            | "denies"
            | "deny"
            | "denied"
            | "denying"
            | "without"
            | "never"
            | "negative"
            | "neither"
            | "nor"
            | "none"
            | "dont"
            | "doesnt"
            | "didnt"
            | "isnt"
            | "wasnt"
            | "arent"
            | "havent"
            | "hasnt"
            | "hadnt"
            | "sin"
            | "niega"
            | "nunca"
            | "tampoco"
            | "ni"
    )
}

fn is_scope_break(w: &str) -> bool {
    matches!(
        w,
        "but" | "pero" | "however" | "although" | "though" | "aunque" | "except" | "now" | "ahora"
    )
}

/// Tokens a negation scope covers at most.
const NEGATION_SCOPE: u8 = 4;

const SEED_WORD: u32 = 0x1000_0001;
const SEED_NEG: u32 = 0x2000_0003;
const SEED_NUM: u32 = 0x3000_0005;
const SEED_QUESTION: u32 = 0x4000_0007;

#[inline]
fn fnv(seed: u32, bytes: &[u8]) -> u32 {
    let mut h = 0x811c_9dc5 ^ seed;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[inline]
fn mix(a: u32, b: u32) -> u32 {
    (a ^ b.rotate_left(13))
        .wrapping_mul(0x9E37_79B1)
        .rotate_left(7)
        ^ 0x5bd1_e995
}

/// The features of a normalized message, appended to `out` (cleared first).
// `buf` is indexed below its length, checked just before.
#[allow(clippy::indexing_slicing)]
pub(crate) fn extract(n: &Normalized, char_ngrams: &[usize], out: &mut Features) {
    out.clear();
    let mut prev: Option<u32> = None;
    let mut neg_left: u8 = 0;
    let mut buf = [0u8; 66];
    for (i, t) in n.toks.iter().enumerate() {
        match t.kind {
            Kind::Word => {
                let w = n.text(t);
                if is_negation(w) {
                    neg_left = NEGATION_SCOPE;
                    let u = fnv(SEED_WORD, w.as_bytes());
                    out.push(u, i);
                    prev = Some(u);
                    continue;
                }
                if is_scope_break(w) {
                    neg_left = 0;
                }
                let seed = if neg_left > 0 {
                    neg_left -= 1;
                    SEED_NEG
                } else {
                    SEED_WORD
                };
                let u = fnv(seed, w.as_bytes());
                out.push(u, i);
                if let Some(p) = prev {
                    out.push(mix(p, u), i);
                }
                prev = Some(u);
                let bytes = w.as_bytes();
                if bytes.len() >= 3 && bytes.len() + 2 <= buf.len() {
                    let len = bytes.len() + 2;
                    if let Some(slot) = buf.get_mut(1..=bytes.len()) {
                        slot.copy_from_slice(bytes);
                    }
                    buf[0] = b'<';
                    buf[len - 1] = b'>';
                    for &k in char_ngrams {
                        if k > len {
                            continue;
                        }
                        let s = seed.wrapping_add(u32::try_from(k).unwrap_or(0) << 8);
                        for win in buf.get(..len).unwrap_or(&[]).windows(k) {
                            out.push(fnv(s, win), i);
                        }
                    }
                }
            }
            Kind::Num(v) => {
                let bucket: u8 = if v.is_finite() {
                    // 0–1, 2–3, 4–7, … : magnitudes, not values.
                    (v.abs().max(1.0).log2() as u8).saturating_add(1).min(24)
                } else {
                    0
                };
                // Only with the word before it ("glucose 450", "temp 104"): a
                // number alone (a phone number, a date) says nothing.
                let u = fnv(SEED_NUM, &[bucket]);
                if let Some(p) = prev {
                    out.push(mix(p, u), i);
                }
                prev = Some(u);
            }
            Kind::Question => {
                out.push(fnv(SEED_QUESTION, b"?"), i);
                prev = None;
                neg_left = 0;
            }
            Kind::Stop | Kind::Comma => {
                prev = None;
                neg_left = 0;
            }
            Kind::Slash => {}
        }
    }
}

const SEED_CONCEPT: u32 = 0x5000_000b;
const SEED_RULES: u32 = 0x6000_000d;

/// Features from what the rules found: each concept with how it was read
/// in context (affirmed, resolved, or suppressed and by what kind of
/// context), and the rules' disposition. Concepts are named by id, so the
/// features survive protocol edits that renumber them.
pub(crate) fn concept_features(
    model: &crate::compile::Model,
    judged: &[crate::context::Judged],
    rules: Disposition,
    out: &mut Features,
) {
    use crate::context::Status;
    for j in judged {
        let Some(c) = model.concepts.get(j.f.concept as usize) else {
            continue;
        };
        let status: &[u8] = match &j.status {
            Status::Affirmed => b"+",
            Status::ResolvedUrgent => b"~",
            Status::Suppressed { reason } => {
                reason.split_whitespace().next().unwrap_or("-").as_bytes()
            }
        };
        let h = fnv(SEED_CONCEPT, c.id.as_bytes());
        out.push(mix(h, fnv(SEED_CONCEPT, status)), j.f.ts as usize);
        if matches!(j.status, Status::Affirmed) {
            out.push(h, j.f.ts as usize);
        }
    }
    out.push(fnv(SEED_RULES, rules.as_str().as_bytes()), 0);
}

#[inline]
fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

impl Reader {
    /// A reader from its settings and weights text.
    pub fn parse(settings_src: &str, weights_src: &str) -> Result<Reader, LoadError> {
        let invalid = |file: &str, line: usize, field: &str, message: String| LoadError::Invalid {
            file: file.to_owned(),
            line,
            field: field.to_owned(),
            message,
        };
        let s: Settings = toml::from_str(settings_src)
            .map_err(|e| invalid(SETTINGS_FILE, 1, "reader", e.message().to_owned()))?;
        let r = s.reader;
        if !(8..=24).contains(&r.bits) {
            return Err(invalid(
                SETTINGS_FILE,
                1,
                "reader.bits",
                format!("{} is outside 8..=24", r.bits),
            ));
        }
        for (f, t) in [
            ("reader.urgent_threshold", r.urgent_threshold),
            ("reader.emergency_threshold", r.emergency_threshold),
        ] {
            if !(t > 0.0 && t <= 1.0) {
                return Err(invalid(
                    SETTINGS_FILE,
                    1,
                    f,
                    format!("{t} is not a probability in (0, 1]"),
                ));
            }
        }
        let size = 1usize << r.bits;
        let mut table = vec![[0f32; 2]; size];
        let mut bias = [0f32; 2];
        for (i, line) in weights_src.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_ascii_whitespace();
            let (Some(key), Some(a), Some(b), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(invalid(
                    WEIGHTS_FILE,
                    i + 1,
                    "weights",
                    "expected three fields: bucket (or 'bias'), urgent weight, emergency weight"
                        .into(),
                ));
            };
            let num = |v: &str| {
                v.parse::<f32>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| {
                        invalid(
                            WEIGHTS_FILE,
                            i + 1,
                            "weights",
                            format!("'{v}' is not a number"),
                        )
                    })
            };
            let w = [num(a)?, num(b)?];
            if key == "bias" {
                bias = w;
                continue;
            }
            let bucket = usize::from_str_radix(key, 16).map_err(|_| {
                invalid(
                    WEIGHTS_FILE,
                    i + 1,
                    "weights",
                    format!("'{key}' is not a hexadecimal bucket"),
                )
            })?;
            let Some(slot) = table.get_mut(bucket) else {
                return Err(invalid(
                    WEIGHTS_FILE,
                    i + 1,
                    "weights",
                    format!("bucket {key} is outside the table of 2^{} buckets", r.bits),
                ));
            };
            *slot = w;
        }
        Ok(Reader {
            mask: u32::try_from(size - 1).unwrap_or(u32::MAX),
            settings: r,
            bias,
            table,
        })
    }

    /// A reader from trained weights (see [`train`]).
    pub fn from_weights(settings: ReaderSettings, w: &Weights) -> Reader {
        Reader {
            mask: u32::try_from(w.table.len().saturating_sub(1)).unwrap_or(u32::MAX),
            settings,
            bias: w.bias,
            table: w.table.clone(),
        }
    }

    fn scale(&self, n: usize) -> f32 {
        match self.settings.norm {
            Norm::Sqrt => 1.0 / (n.max(1) as f32).sqrt(),
            Norm::None => 1.0,
        }
    }

    /// `[P(at least urgent), P(emergency)]` for the features `f`.
    pub fn score(&self, f: &Features) -> [f32; 2] {
        let mut z = [0f32; 2];
        for h in &f.hashes {
            if let Some(w) = self.table.get((h & self.mask) as usize) {
                z[0] += w[0];
                z[1] += w[1];
            }
        }
        let s = self.scale(f.hashes.len());
        [
            sigmoid(self.bias[0] + z[0] * s),
            sigmoid(self.bias[1] + z[1] * s),
        ]
    }

    /// The disposition the reader alone gives for probabilities `p`.
    pub fn disposition(&self, p: [f32; 2]) -> Disposition {
        if f64::from(p[1]) >= self.settings.emergency_threshold {
            Disposition::Emergency
        } else if f64::from(p[0]) >= self.settings.urgent_threshold {
            Disposition::Urgent
        } else {
            Disposition::Routine
        }
    }

    /// The reader's view (probabilities `p` for features `f`) of a message
    /// the rules judged `from`: `Some` when it raises the disposition, with
    /// the words that weighed most.
    pub fn raise(
        &self,
        text: &str,
        n: &Normalized,
        f: &Features,
        p: [f32; 2],
        from: Disposition,
    ) -> Option<SecondReader> {
        let to = self.disposition(p);
        if to <= from {
            return None;
        }
        let k = usize::from(to == Disposition::Emergency);
        let (score, threshold) = if k == 1 {
            (p[1], self.settings.emergency_threshold)
        } else {
            (p[0], self.settings.urgent_threshold)
        };
        // A raise names the words that carried it; the model's prior alone
        // (no word weighing towards a red flag, as in "my neighbour's phone
        // is 555-0199") never makes one.
        let words = self.weighed_words(text, n, f, k);
        if words.is_empty() {
            return None;
        }
        Some(SecondReader {
            from,
            to,
            score,
            threshold,
            words,
        })
    }

    /// The few words that weighed most towards output `k` (0: at least
    /// urgent, 1: emergency), as spans of the original text, in text order.
    pub fn weighed_words(
        &self,
        text: &str,
        n: &Normalized,
        f: &Features,
        k: usize,
    ) -> Vec<Evidence> {
        // Each token's share of the deciding sum; the heaviest few are shown.
        let mut share = vec![0f32; n.toks.len()];
        for (h, t) in f.hashes.iter().zip(&f.toks) {
            let w = self
                .table
                .get((h & self.mask) as usize)
                .map_or(0.0, |w| if k == 1 { w[1] } else { w[0] });
            if let Some(c) = share.get_mut(usize::from(*t)) {
                *c += w;
            }
        }
        let mut per_tok: Vec<(usize, f32)> = share.into_iter().enumerate().collect();
        // Words that carry meaning, not the glue between them.
        per_tok.retain(|(i, c)| {
            *c > 0.0
                && n.toks
                    .get(*i)
                    .is_some_and(|t| !FUNCTION_WORDS.contains(&n.text(t)) && n.text(t).len() > 1)
        });
        per_tok.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        per_tok.truncate(4);
        per_tok.sort_by_key(|(i, _)| *i);
        per_tok
            .iter()
            .filter_map(|(i, _)| {
                let t = n.toks.get(*i)?;
                let (s, e) = (t.os as usize, t.oe as usize);
                Some(Evidence {
                    protocol: "second_reader".into(),
                    concept: "weighed".into(),
                    start: s,
                    end: e,
                    text: text.get(s..e)?.to_owned(),
                })
            })
            .collect()
    }
}

// ---- training ----

/// One training example: its features and label.
#[derive(Debug, Clone)]
pub struct Sample {
    pub hashes: Vec<u32>,
    pub label: Disposition,
}

/// A trained weight table.
#[derive(Debug, Clone)]
pub struct Weights {
    pub bias: [f32; 2],
    pub table: Vec<[f32; 2]>,
}

/// How to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub family: String,
    pub bits: u32,
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
    /// Weigh both classes of each output equally (else by their frequency).
    pub balanced: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            family: "logistic".into(),
            bits: 18,
            epochs: 12,
            learning_rate: 0.4,
            l2: 1e-5,
            balanced: true,
        }
    }
}

fn targets(d: Disposition) -> [f32; 2] {
    [
        f32::from(u8::from(d != Disposition::Routine)),
        f32::from(u8::from(d == Disposition::Emergency)),
    ]
}

/// A deterministic permutation (xorshift), so training is reproducible.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x = seed | 1;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = usize::try_from(x % (i as u64 + 1)).unwrap_or(0);
        v.swap(i, j);
    }
    v
}

/// Train a weight table on `samples` (features already extracted).
pub fn train(samples: &[Sample], o: &TrainOptions) -> Weights {
    match o.family.as_str() {
        "naive_bayes" => train_nb(samples, o),
        _ => train_logistic(samples, o),
    }
}

// Buckets are masked to the table's size and k is 0 or 1.
#[allow(clippy::indexing_slicing)]
fn train_logistic(samples: &[Sample], o: &TrainOptions) -> Weights {
    let size = 1usize << o.bits;
    let mask = u32::try_from(size - 1).unwrap_or(u32::MAX);
    let mut table = vec![[0f32; 2]; size];
    let mut grad2 = vec![[1e-6f32; 2]; size];
    let mut bias = [0f32; 2];
    let mut bias_g2 = [1e-6f32; 2];
    // Balanced classes: each side of each output weighs the same in total.
    let mut pos = [0usize; 2];
    for s in samples {
        let t = targets(s.label);
        pos[0] += usize::from(t[0] > 0.5);
        pos[1] += usize::from(t[1] > 0.5);
    }
    let n = samples.len().max(1) as f32;
    let class_weight = |k: usize, y: f32| -> f32 {
        if !o.balanced {
            return 1.0;
        }
        let p = (pos[k].max(1) as f32) / n;
        if y > 0.5 {
            0.5 / p
        } else {
            0.5 / (1.0 - p).max(1e-3)
        }
    };
    let mut buckets: Vec<usize> = Vec::new();
    for epoch in 0..o.epochs {
        for &i in &shuffled(samples.len(), 0x5eed_0000 + epoch as u64) {
            let Some(s) = samples.get(i) else { continue };
            buckets.clear();
            buckets.extend(s.hashes.iter().map(|h| (h & mask) as usize));
            let scale = 1.0 / (buckets.len().max(1) as f32).sqrt();
            let y = targets(s.label);
            for k in 0..2 {
                let mut z = bias[k];
                for &b in &buckets {
                    z += table[b][k] * scale;
                }
                let g = (sigmoid(z) - y[k]) * class_weight(k, y[k]);
                bias_g2[k] += g * g;
                bias[k] -= o.learning_rate * g / bias_g2[k].sqrt();
                for &b in &buckets {
                    let gi = g * scale + o.l2 * table[b][k];
                    grad2[b][k] += gi * gi;
                    table[b][k] -= o.learning_rate * gi / grad2[b][k].sqrt();
                }
            }
        }
    }
    Weights { bias, table }
}

/// Multinomial naive Bayes as log-count ratios: the weight of a bucket is
/// how much likelier it is among positives than negatives.
// Buckets are masked to the table's size and k is 0 or 1.
#[allow(clippy::indexing_slicing)]
fn train_nb(samples: &[Sample], o: &TrainOptions) -> Weights {
    let size = 1usize << o.bits;
    let mask = u32::try_from(size - 1).unwrap_or(u32::MAX);
    let mut counts = vec![[[0f32; 2]; 2]; size];
    let mut totals = [[0f32; 2]; 2];
    let mut docs = [[0f32; 2]; 2];
    for s in samples {
        let y = targets(s.label);
        for k in 0..2 {
            let c = usize::from(y[k] > 0.5);
            docs[k][c] += 1.0;
            for h in &s.hashes {
                counts[(h & mask) as usize][k][c] += 1.0;
                totals[k][c] += 1.0;
            }
        }
    }
    let alpha = 0.5f32;
    let v = size as f32;
    let mut table = vec![[0f32; 2]; size];
    for (slot, c) in table.iter_mut().zip(&counts) {
        for k in 0..2 {
            if c[k][0] + c[k][1] == 0.0 {
                continue;
            }
            let p1 = (c[k][1] + alpha) / (totals[k][1] + alpha * v);
            let p0 = (c[k][0] + alpha) / (totals[k][0] + alpha * v);
            slot[k] = (p1 / p0).ln();
        }
    }
    // Balanced prior: the evidence alone decides.
    let _ = docs;
    Weights {
        bias: [0.0, 0.0],
        table,
    }
}

/// The weights file text: only buckets with a weight worth keeping, four
/// significant digits, so that the file stays small and diffs stay readable.
pub fn weights_text(w: &Weights, header: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(w.table.len() * 8);
    for line in header.lines() {
        let _ = writeln!(out, "# {line}");
    }
    let _ = writeln!(out, "bias {:.4} {:.4}", w.bias[0], w.bias[1]);
    for (i, v) in w.table.iter().enumerate() {
        if v[0].abs() >= 5e-4 || v[1].abs() >= 5e-4 {
            let _ = writeln!(out, "{i:x} {:.4} {:.4}", v[0], v[1]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_is_deterministic() {
        let samples: Vec<Sample> = (0u32..50)
            .map(|i| Sample {
                hashes: vec![i, i * 7, 99],
                label: if i % 3 == 0 {
                    Disposition::Emergency
                } else {
                    Disposition::Routine
                },
            })
            .collect();
        let o = TrainOptions {
            bits: 10,
            ..TrainOptions::default()
        };
        let a = weights_text(&train(&samples, &o), "");
        let b = weights_text(&train(&samples, &o), "");
        assert_eq!(a, b);
    }
}
