//! Training the second reader and measuring it honestly: leave-one-writer-out.
//!
//! The corpus is a directory of labelled JSONL files. Every file directly
//! in it (the team's development, regression and blind sets) is training
//! data only: the rules were tuned on them. Every file in its `writers/`
//! subdirectory is one independent writer's lines, and is also a fold: the
//! reader is trained on everything but that writer, and measured on that
//! writer, for each writer in turn. The figures reported are per writer
//! (mean and worst), for the rules alone and for rules + reader, so no
//! figure comes from lines the model or its threshold saw.

use crate::eval::{Example, read_examples};
use crate::reader::{self, Sample, TrainOptions, Weights};
use crate::{Disposition, Engine};
use std::fmt::Write as _;
use std::path::Path;

/// One writer's (or one set's) lines.
#[derive(Debug, Clone)]
pub struct Writer {
    pub name: String,
    pub examples: Vec<Example>,
    /// Whether this writer is held out in turn (writers/), or training only.
    pub fold: bool,
}

/// Read a corpus directory (see the module documentation).
pub fn read_corpus(dir: &Path) -> Result<Vec<Writer>, String> {
    let mut writers = Vec::new();
    for (sub, fold) in [(dir.to_path_buf(), false), (dir.join("writers"), true)] {
        let Ok(entries) = std::fs::read_dir(&sub) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        for f in files {
            let file = std::fs::File::open(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            let (examples, errors) = read_examples(std::io::BufReader::new(file));
            if let Some((line, e)) = errors.first() {
                return Err(format!("{}:{line}: {e}", f.display()));
            }
            let name = f
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            writers.push(Writer {
                name,
                examples,
                fold,
            });
        }
    }
    if writers.is_empty() {
        return Err(format!("{}: no labelled *.jsonl files", dir.display()));
    }
    Ok(writers)
}

/// One line, judged by the rules and turned into features once.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub writer: usize,
    pub expected: Disposition,
    pub rules: Disposition,
    pub hashes: Vec<u32>,
    /// The rules found a clinical concept, affirmed or not, or the message
    /// has a word of the review net's list.
    pub found: bool,
}

/// Judge every line by the rules alone and extract its features.
pub fn prepare(engine: &Engine, writers: &[Writer], char_ngrams: &[usize]) -> Vec<Prepared> {
    let mut out = Vec::new();
    for (w, wr) in writers.iter().enumerate() {
        for e in &wr.examples {
            let (j, f) = engine.rules_and_features(&e.text, char_ngrams);
            out.push(Prepared {
                writer: w,
                expected: e.expected,
                rules: j.disposition,
                found: j.clinical_content.is_some(),
                hashes: f.hashes,
            });
        }
    }
    out
}

fn samples<'a>(it: impl Iterator<Item = &'a Prepared>) -> Vec<Sample> {
    it.map(|p| Sample {
        hashes: p.hashes.clone(),
        label: p.expected,
    })
    .collect()
}

/// Train on everything.
pub fn train_all(prepared: &[Prepared], o: &TrainOptions) -> Weights {
    reader::train(&samples(prepared.iter()), o)
}

/// Leave-one-writer-out probabilities: for each fold writer, a model
/// trained on every other line scores that writer's lines. Lines of
/// non-fold sets get `None`.
pub fn lowo(
    prepared: &[Prepared],
    writers: &[Writer],
    settings: &reader::ReaderSettings,
    o: &TrainOptions,
) -> Vec<Option<[f32; 2]>> {
    let mut probs = vec![None; prepared.len()];
    for (w, wr) in writers.iter().enumerate() {
        if !wr.fold {
            continue;
        }
        let weights = reader::train(&samples(prepared.iter().filter(|p| p.writer != w)), o);
        let r = reader::Reader::from_weights(settings.clone(), &weights);
        let mut f = reader::Features::default();
        for (p, slot) in prepared.iter().zip(probs.iter_mut()) {
            if p.writer == w {
                f.hashes.clone_from(&p.hashes);
                *slot = Some(r.score(&f));
            }
        }
    }
    probs
}

/// One writer's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    /// Lines expected at least urgent that were judged at least urgent.
    pub escalated: (usize, usize),
    /// Emergencies judged emergency.
    pub emergency: (usize, usize),
    /// Routine lines judged routine.
    pub routine: (usize, usize),
}

fn ratio(a: (usize, usize)) -> f64 {
    if a.1 == 0 {
        1.0
    } else {
        a.0 as f64 / a.1 as f64
    }
}

impl Figures {
    pub fn sensitivity(&self) -> f64 {
        ratio(self.escalated)
    }
    pub fn emergency_sensitivity(&self) -> f64 {
        ratio(self.emergency)
    }
    pub fn specificity(&self) -> f64 {
        ratio(self.routine)
    }
    fn add(&mut self, expected: Disposition, got: Disposition) {
        if expected.is_red_flag() {
            self.escalated.1 += 1;
            self.escalated.0 += usize::from(got.is_red_flag());
        }
        if expected == Disposition::Emergency {
            self.emergency.1 += 1;
            self.emergency.0 += usize::from(got == Disposition::Emergency);
        }
        if expected == Disposition::Routine {
            self.routine.1 += 1;
            self.routine.0 += usize::from(got == Disposition::Routine);
        }
    }
}

/// The combined disposition at thresholds `t` (urgent, emergency).
pub fn combined(line: &Prepared, p: Option<[f32; 2]>, t: [f32; 2]) -> Disposition {
    let rules = line.rules;
    let Some(p) = p else { return rules };
    let reader = if p[1] >= t[1] {
        Disposition::Emergency
    } else if p[0] >= t[0] {
        Disposition::Urgent
    } else {
        Disposition::Routine
    };
    rules.max(reader)
}

/// Per fold writer: figures for the rules alone and for rules + reader at `t`.
pub fn per_writer(
    prepared: &[Prepared],
    writers: &[Writer],
    probs: &[Option<[f32; 2]>],
    t: [f32; 2],
) -> Vec<(String, Figures, Figures)> {
    let mut out: Vec<(String, Figures, Figures)> = writers
        .iter()
        .map(|w| (w.name.clone(), Figures::default(), Figures::default()))
        .collect();
    for (p, prob) in prepared.iter().zip(probs) {
        if !writers.get(p.writer).is_some_and(|w| w.fold) {
            continue;
        }
        if let Some(row) = out.get_mut(p.writer) {
            row.1.add(p.expected, p.rules);
            row.2.add(p.expected, combined(p, *prob, t));
        }
    }
    out.into_iter()
        .zip(writers)
        .filter(|(_, w)| w.fold)
        .map(|(r, _)| r)
        .collect()
}

/// Mean and worst of one figure over writers.
fn mean_worst(
    rows: &[(String, Figures, Figures)],
    f: impl Fn(&(String, Figures, Figures)) -> f64,
) -> (f64, f64) {
    let v: Vec<f64> = rows.iter().map(f).collect();
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let worst = v.iter().copied().fold(f64::INFINITY, f64::min);
    (mean, if worst.is_finite() { worst } else { 0.0 })
}

/// The thresholds a release uses: the highest urgent threshold whose worst
/// writer's escalation sensitivity is at least `target_sensitivity` (the
/// highest keeps the most routine specificity), and the same for
/// emergencies judged emergency; when no threshold reaches a target, the
/// one that comes closest.
pub fn choose_thresholds(
    prepared: &[Prepared],
    writers: &[Writer],
    probs: &[Option<[f32; 2]>],
    target_sensitivity: f64,
    target_emergency: f64,
) -> [f32; 2] {
    let grid: Vec<f32> = (1..40).map(|i| i as f32 * 0.025).collect();
    // The emergency threshold first (the reader raising to emergency only),
    // then the urgent one with that emergency threshold in place.
    let pick = |k: usize, other: f32, target: f64| -> f32 {
        let mut best: Option<(f32, f64)> = None;
        let mut reached: Option<f32> = None;
        for &t in &grid {
            let th = if k == 0 { [t, other] } else { [1.0, t] };
            let rows = per_writer(prepared, writers, probs, th);
            let worst = if k == 0 {
                mean_worst(&rows, |r| r.2.sensitivity()).1
            } else {
                mean_worst(&rows, |r| r.2.emergency_sensitivity()).1
            };
            if worst >= target {
                reached = Some(t);
            }
            if best.is_none_or(|(_, b)| worst > b) {
                best = Some((t, worst));
            }
        }
        reached.or(best.map(|(t, _)| t)).unwrap_or(0.5)
    };
    let emergency = pick(1, 1.0, target_emergency);
    [pick(0, emergency, target_sensitivity), emergency]
}

/// What the review net does on held-out lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Net {
    /// Red flags the engine (rules and reader) judged routine.
    pub missed: usize,
    /// Of those, the ones read as clinical content.
    pub caught: usize,
    /// Routine lines judged routine.
    pub routine: usize,
    /// Of those, the ones read as clinical content (added clinician reading).
    pub flagged: usize,
}

/// The review net on held-out lines: a line judged routine is clinical
/// when the rules found a concept or it has a word of the review net's
/// list (what `Engine::judge` does).
pub fn net(prepared: &[Prepared], probs: &[Option<[f32; 2]>], t: [f32; 2]) -> Net {
    let mut n = Net::default();
    for (p, prob) in prepared.iter().zip(probs) {
        if prob.is_none() || combined(p, *prob, t) != Disposition::Routine {
            continue;
        }
        if p.expected.is_red_flag() {
            n.missed += 1;
            n.caught += usize::from(p.found);
        } else {
            n.routine += 1;
            n.flagged += usize::from(p.found);
        }
    }
    n
}

/// The leave-one-writer-out report: per writer, mean and worst, rules
/// alone beside rules + reader, and the curve of the urgent threshold.
pub fn report(
    prepared: &[Prepared],
    writers: &[Writer],
    probs: &[Option<[f32; 2]>],
    t: [f32; 2],
) -> String {
    let rows = per_writer(prepared, writers, probs, t);
    let mut out = String::new();
    let pct = |x: f64| format!("{:5.1}%", x * 100.0);
    let _ = writeln!(
        out,
        "leave-one-writer-out over {} writers; thresholds urgent {:.3}, emergency {:.3}",
        rows.len(),
        t[0],
        t[1]
    );
    let _ = writeln!(
        out,
        "{:<10} {:>6} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
        "writer", "lines", "rules esc", "emerg", "routine", "+reader", "emerg", "routine"
    );
    for (name, r, c) in &rows {
        let n = r.escalated.1 + r.routine.1;
        let _ = writeln!(
            out,
            "{:<10} {:>6} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
            name,
            n,
            pct(r.sensitivity()),
            pct(r.emergency_sensitivity()),
            pct(r.specificity()),
            pct(c.sensitivity()),
            pct(c.emergency_sensitivity()),
            pct(c.specificity()),
        );
    }
    for (label, pick) in [("mean", 0usize), ("worst", 1)] {
        let g = |f: &dyn Fn(&(String, Figures, Figures)) -> f64| {
            let (m, w) = mean_worst(&rows, f);
            if pick == 0 { m } else { w }
        };
        let _ = writeln!(
            out,
            "{:<10} {:>6} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
            label,
            "",
            pct(g(&|r| r.1.sensitivity())),
            pct(g(&|r| r.1.emergency_sensitivity())),
            pct(g(&|r| r.1.specificity())),
            pct(g(&|r| r.2.sensitivity())),
            pct(g(&|r| r.2.emergency_sensitivity())),
            pct(g(&|r| r.2.specificity())),
        );
    }
    // The review net: of the red flags still judged routine, how many read
    // as clinical, and what share of the routine lines it adds to
    // clinicians' reading; then each of those red flags.
    let n = net(prepared, probs, t);
    let _ = writeln!(
        out,
        "\nreview net (held-out): red flags judged routine that read as clinical {} of {}; routine lines it flags {} ({} of {})",
        n.caught,
        n.missed,
        pct(ratio((n.flagged, n.routine))),
        n.flagged,
        n.routine,
    );
    let texts = writers.iter().flat_map(|wr| {
        wr.examples
            .iter()
            .map(move |e| (wr.name.as_str(), e.text.as_str()))
    });
    for ((p, prob), (name, text)) in prepared.iter().zip(probs).zip(texts) {
        if prob.is_none()
            || !p.expected.is_red_flag()
            || combined(p, *prob, t) != Disposition::Routine
        {
            continue;
        }
        let by = if p.found { "caught" } else { "NOT CAUGHT" };
        let _ = writeln!(
            out,
            "  {name:<10} {:<9} {by:<10} {text}",
            p.expected.as_str()
        );
    }
    let _ = writeln!(
        out,
        "\nurgent-threshold curve (emergency threshold {:.3}): threshold, mean / worst escalation sensitivity, mean / worst routine specificity",
        t[1]
    );
    for i in (2..=36).step_by(2) {
        let u = i as f32 * 0.025;
        let rows = per_writer(prepared, writers, probs, [u, t[1]]);
        let s = mean_worst(&rows, |r| r.2.sensitivity());
        let sp = mean_worst(&rows, |r| r.2.specificity());
        let _ = writeln!(
            out,
            "  {u:.3}  {} / {}   {} / {}",
            pct(s.0),
            pct(s.1),
            pct(sp.0),
            pct(sp.1)
        );
    }
    let _ = writeln!(
        out,
        "\nemergency-threshold curve (urgent threshold {:.3}): threshold, mean / worst emergencies judged emergency, mean / worst routine specificity",
        t[0]
    );
    for i in (2..=36).step_by(2) {
        let e = i as f32 * 0.025;
        let rows = per_writer(prepared, writers, probs, [t[0], e]);
        let s = mean_worst(&rows, |r| r.2.emergency_sensitivity());
        let sp = mean_worst(&rows, |r| r.2.specificity());
        let _ = writeln!(
            out,
            "  {e:.3}  {} / {}   {} / {}",
            pct(s.0),
            pct(s.1),
            pct(sp.0),
            pct(sp.1)
        );
    }
    out
}

/// How many corpus lines each protocol's rules fire on (any disposition,
/// context applied), by protocol id; every protocol of the set is present.
pub fn coverage(engine: &Engine, writers: &[Writer]) -> std::collections::BTreeMap<String, usize> {
    let mut n: std::collections::BTreeMap<String, usize> =
        engine.catalogue().into_iter().map(|p| (p.id, 0)).collect();
    for e in writers.iter().flat_map(|w| &w.examples) {
        let (j, _) = engine.rules_and_features(&e.text, &[]);
        for p in &j.protocols {
            if let Some(c) = n.get_mut(&p.id) {
                *c += 1;
            }
        }
    }
    n
}

/// The catalogue page (`protocols/CATALOGUE.md`): every protocol with its
/// system, population, dispositions, source, and how many labelled lines
/// of the corpus in `dir` it fires on.
pub fn catalogue_page(engine: &Engine, writers: &[Writer], dir: &str) -> String {
    let cover = coverage(engine, writers);
    let lines: usize = writers.iter().map(|w| w.examples.len()).sum();
    let cat = engine.catalogue();
    let mut out = String::new();
    let _ = writeln!(out, "# Protocol catalogue\n");
    let _ = writeln!(
        out,
        "Generated by `careline triage --catalogue {dir}` from protocol set {}; do not edit by hand. \
         {} protocols. *Lines* counts the labelled evaluation lines ({lines} in all, every set and writer) \
         on which the protocol's rules fire, after context.\n",
        engine.version(),
        cat.len()
    );
    let _ = writeln!(
        out,
        "| Protocol | Title | System | Population | Dispositions | Lines | Source |\n|---|---|---|---|---|---|---|"
    );
    let cell = |s: &str| {
        let s = s.replace('|', "\\|").replace('\n', " ");
        if s.is_empty() { "—".to_owned() } else { s }
    };
    for p in &cat {
        let d: Vec<&str> = p.dispositions.iter().map(|d| d.as_str()).collect();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            p.id,
            cell(&p.title),
            cell(&p.system),
            cell(&p.population),
            d.join(", "),
            cover.get(&p.id).copied().unwrap_or(0),
            cell(&p.source)
        );
    }
    out
}
