//! Evaluation against a labelled JSONL set (`expected` per line): confusion
//! matrix, sensitivity and specificity per class, the safety floor (every
//! emergency and urgent message escalated) and the list of misses.

use crate::{Channel, Context, Disposition, Engine};
use serde::Deserialize;
use std::fmt::Write as _;
use std::io::BufRead;

/// One labelled example.
#[derive(Debug, Clone, Deserialize)]
pub struct Example {
    #[serde(default)]
    pub id: serde_json::Value,
    pub text: String,
    #[serde(default)]
    pub channel: Option<Channel>,
    #[serde(default)]
    pub language: Option<String>,
    pub expected: Disposition,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A disagreement between the engine and the label.
#[derive(Debug, Clone)]
pub struct Miss {
    pub id: String,
    pub expected: Disposition,
    pub got: Disposition,
    pub text: String,
    pub explanation: String,
}

/// Evaluation results.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `confusion[expected][predicted]`, indices routine=0, urgent=1, emergency=2.
    pub confusion: [[usize; 3]; 3],
    pub total: usize,
    pub misses: Vec<Miss>,
    /// Lines that could not be parsed: (line number, error).
    pub errors: Vec<(usize, String)>,
}

const CLASSES: [Disposition; 3] = [
    Disposition::Routine,
    Disposition::Urgent,
    Disposition::Emergency,
];

fn idx(d: Disposition) -> usize {
    match d {
        Disposition::Routine => 0,
        Disposition::Urgent => 1,
        Disposition::Emergency => 2,
    }
}

fn id_string(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parse a labelled JSONL set; bad lines are returned as errors.
pub fn read_examples<R: BufRead>(input: R) -> (Vec<Example>, Vec<(usize, String)>) {
    let mut ex = Vec::new();
    let mut errs = Vec::new();
    for (i, line) in input.lines().enumerate() {
        match line {
            Ok(l) if l.trim().is_empty() => {}
            Ok(l) => match serde_json::from_str::<Example>(&l) {
                Ok(e) => ex.push(e),
                Err(e) => errs.push((i + 1, e.to_string())),
            },
            Err(e) => errs.push((i + 1, e.to_string())),
        }
    }
    (ex, errs)
}

/// Judge every example and tally.
pub fn evaluate(engine: &Engine, examples: &[Example]) -> Report {
    let mut r = Report::default();
    for e in examples {
        let ctx = Context {
            channel: e.channel.unwrap_or_default(),
            language: e.language.clone(),
        };
        let j = engine.judge(&e.text, &ctx);
        if let Some(row) = r.confusion.get_mut(idx(e.expected))
            && let Some(cell) = row.get_mut(idx(j.disposition))
        {
            *cell += 1;
        }
        r.total += 1;
        if j.disposition != e.expected {
            r.misses.push(Miss {
                id: id_string(&e.id),
                expected: e.expected,
                got: j.disposition,
                text: e.text.clone(),
                explanation: j.explanation,
            });
        }
    }
    r
}

impl Report {
    fn cell(&self, e: usize, p: usize) -> usize {
        self.confusion
            .get(e)
            .and_then(|r| r.get(p))
            .copied()
            .unwrap_or(0)
    }

    /// Sensitivity (recall) of class `c`: predicted c among expected c.
    pub fn sensitivity(&self, c: Disposition) -> f64 {
        let i = idx(c);
        let pos: usize = (0..3).map(|p| self.cell(i, p)).sum();
        ratio(self.cell(i, i), pos)
    }

    /// Specificity of class `c`: not predicted c among not expected c.
    pub fn specificity(&self, c: Disposition) -> f64 {
        let i = idx(c);
        let mut neg = 0;
        let mut tn = 0;
        for e in 0..3 {
            if e == i {
                continue;
            }
            for p in 0..3 {
                neg += self.cell(e, p);
                if p != i {
                    tn += self.cell(e, p);
                }
            }
        }
        ratio(tn, neg)
    }

    /// Share of red-flag messages (expected ≥ urgent) judged ≥ urgent.
    pub fn red_flag_escalation(&self) -> f64 {
        let pos: usize = (1..3)
            .flat_map(|e| (0..3).map(move |p| (e, p)))
            .map(|(e, p)| self.cell(e, p))
            .sum();
        let ok: usize = (1..3)
            .flat_map(|e| (1..3).map(move |p| (e, p)))
            .map(|(e, p)| self.cell(e, p))
            .sum();
        ratio(ok, pos)
    }

    /// Share of emergency messages judged emergency.
    pub fn emergency_sensitivity(&self) -> f64 {
        self.sensitivity(Disposition::Emergency)
    }

    /// Exact-class accuracy.
    pub fn accuracy(&self) -> f64 {
        ratio((0..3).map(|i| self.cell(i, i)).sum(), self.total)
    }

    /// Red-flag messages (expected ≥ urgent) judged routine.
    pub fn unescalated(&self) -> impl Iterator<Item = &Miss> {
        self.misses
            .iter()
            .filter(|m| m.expected.is_red_flag() && !m.got.is_red_flag())
    }

    /// A human-readable report.
    pub fn render(&self, show_misses: bool) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "examples: {}   exact accuracy: {:.3}",
            self.total,
            self.accuracy()
        );
        let _ = writeln!(
            s,
            "red flags escalated (expected >= urgent judged >= urgent): {:.3}",
            self.red_flag_escalation()
        );
        let _ = writeln!(s, "\nclass        sensitivity  specificity  support");
        for c in CLASSES {
            let support: usize = (0..3).map(|p| self.cell(idx(c), p)).sum();
            let _ = writeln!(
                s,
                "{:<12} {:>11.3}  {:>11.3}  {:>7}",
                c.as_str(),
                self.sensitivity(c),
                self.specificity(c),
                support
            );
        }
        let _ = writeln!(s, "\nconfusion (rows = expected, columns = judged)");
        let _ = writeln!(
            s,
            "{:<12} {:>9} {:>9} {:>9}",
            "", "routine", "urgent", "emergency"
        );
        for c in CLASSES {
            let i = idx(c);
            let _ = writeln!(
                s,
                "{:<12} {:>9} {:>9} {:>9}",
                c.as_str(),
                self.cell(i, 0),
                self.cell(i, 1),
                self.cell(i, 2)
            );
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "\nunreadable lines: {}", self.errors.len());
            for (l, e) in &self.errors {
                let _ = writeln!(s, "  line {l}: {e}");
            }
        }
        if show_misses && !self.misses.is_empty() {
            let _ = writeln!(s, "\ndisagreements ({}):", self.misses.len());
            for m in &self.misses {
                let _ = writeln!(
                    s,
                    "  [{}] expected {} got {}: {}\n      {}",
                    m.id,
                    m.expected.as_str(),
                    m.got.as_str(),
                    m.text,
                    m.explanation
                );
            }
        }
        s
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}
