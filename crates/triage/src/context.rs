//! Context, judged per finding with scope (ConText-style, own EN+ES lexicon):
//! negation ("no", "denies", "sin"), hypothetical and educational questions
//! ("what are the signs of", "if … should I", "si"), past history ("history
//! of", "in 2019", "years ago") unless a recurrence marker ("again", "came
//! back", "otra vez") is in the same sentence, resolved symptoms ("went away",
//! "ya pasó") and non-clinical senses ("blood test", "bleeding money").
//!
//! A trigger's scope is limited to its window, stops at sentence punctuation,
//! at terminators ("but", "pero", "however") and, for triggers that ask for it,
//! at commas. Triggers inside a finding ("no puedo respirar") or inside a
//! longer trigger ("no longer", "not sure") do nothing. Who the symptom
//! belongs to is deliberately ignored: a caregiver's report counts. When no
//! rule clearly applies the finding stands — uncertainty escalates.
//!
//! Work per finding is bounded by the window (binary search over sorted
//! triggers), so the whole pass is linear in the text length.

use crate::compile::{Model, Resolved, TrigKind};
use crate::matcher::{ExclHit, Finding, Hits, TrigHit};
use crate::normalize::{Kind, Normalized};

/// Reused per-text buffers: prefix counts of scope breakers.
#[derive(Debug, Default)]
pub(crate) struct ScopeBufs {
    sent: Vec<u32>,
    comma: Vec<u32>,
    conj: Vec<u32>,
    negend: Vec<u32>,
    is_term: Vec<bool>,
    is_negend: Vec<bool>,
}

/// What context decided about one finding.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Status {
    Affirmed,
    /// Resolved, still counts but at most urgent.
    ResolvedUrgent,
    /// Ignored, with the reason and the token span of what caused it.
    Suppressed {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Judged {
    pub f: Finding,
    pub status: Status,
}

fn orig<'a>(text: &'a str, n: &Normalized, ts: u32, te: u32) -> &'a str {
    let (Some(a), Some(b)) = (n.toks.get(ts as usize), n.toks.get(te as usize)) else {
        return "";
    };
    text.get(a.os as usize..b.oe as usize).unwrap_or("")
}

/// Remove duplicate findings of one concept whose span lies inside another.
pub(crate) fn dedupe(findings: &mut Vec<Finding>) {
    findings.sort_unstable_by(|a, b| {
        (a.concept, a.ts, std::cmp::Reverse(a.te)).cmp(&(b.concept, b.ts, std::cmp::Reverse(b.te)))
    });
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings.iter() {
        if let Some(last) = out.last_mut() {
            // Overlapping mentions of one concept become one span.
            if last.concept == f.concept && f.ts <= last.te {
                last.te = last.te.max(f.te);
                last.fuzzy |= f.fuzzy;
                continue;
            }
        }
        out.push(*f);
    }
    *findings = out;
}

/// Drop triggers contained in a longer trigger or inside a finding.
fn mask_triggers(model: &Model, hits: &mut Hits) {
    let trig = &mut hits.triggers;
    trig.sort_unstable_by(|a, b| {
        (a.ts, std::cmp::Reverse(a.te)).cmp(&(b.ts, std::cmp::Reverse(b.te)))
    });
    let mut kept: Vec<TrigHit> = Vec::with_capacity(trig.len());
    let mut best: Option<(u32, u32)> = None;
    for t in trig.iter() {
        if let Some((bs, be)) = best
            && be >= t.te
            && (bs, be) != (t.ts, t.te)
        {
            continue;
        }
        if best.is_none_or(|(_, be)| t.te > be) {
            best = Some((t.ts, t.te));
        }
        kept.push(*t);
    }
    // Overlapping a pseudo-trigger ("not sure", "won't go away").
    let mut pseudo: Vec<(u32, u32)> = kept
        .iter()
        .filter(|t| {
            model
                .triggers
                .get(t.trig as usize)
                .is_some_and(|d| d.kind == TrigKind::Pseudo)
        })
        .map(|t| (t.ts, t.te))
        .collect();
    pseudo.sort_unstable();
    kept.retain(|t| {
        let is_pseudo = model
            .triggers
            .get(t.trig as usize)
            .is_some_and(|d| d.kind == TrigKind::Pseudo);
        let i = pseudo.partition_point(|s| s.0 <= t.te);
        is_pseudo
            || pseudo
                .get(i.saturating_sub(8)..i)
                .unwrap_or(&[])
                .iter()
                .all(|s| s.1 < t.ts || s.0 > t.te)
    });
    // Overlapping a finding (only findings that matter to some protocol).
    let mut spans: Vec<(u32, u32)> = hits
        .findings
        .iter()
        .filter(|f| {
            f.te > f.ts
                && f.concept as usize >= crate::compile::BUILTINS.len()
                && model
                    .concept_protocol
                    .get(f.concept as usize)
                    .is_some_and(Option::is_some)
        })
        .map(|f| (f.ts, f.te))
        .collect();
    spans.sort_unstable();
    kept.retain(|t| {
        let is_term = model
            .triggers
            .get(t.trig as usize)
            .is_some_and(|d| matches!(d.kind, TrigKind::Terminator | TrigKind::NegationEnd));
        let i = spans.partition_point(|s| s.0 <= t.te);
        // Candidates start at or before t.te; spans are short, look back a little.
        is_term
            || spans
                .get(i.saturating_sub(16)..i)
                .unwrap_or(&[])
                .iter()
                .all(|s| s.1 < t.ts || s.0 > t.te)
    });
    *trig = kept;
}

/// Judge every finding in context.
pub(crate) fn judge(model: &Model, text: &str, n: &Normalized, hits: &mut Hits) -> Vec<Judged> {
    if hits.findings.is_empty() {
        return Vec::new();
    }
    dedupe(&mut hits.findings);
    year_triggers(model, n, hits);
    mask_triggers(model, hits);
    hits.excls.sort_unstable_by_key(|e| e.ts);

    // Prefix counts of scope breakers.
    let len = n.toks.len();
    let mut bufs = std::mem::take(&mut hits.scope);
    let ScopeBufs {
        sent,
        comma,
        conj,
        negend,
        is_term,
        is_negend,
    } = &mut bufs;
    sent.clear();
    comma.clear();
    conj.clear();
    conj.resize(len + 1, 0);
    negend.clear();
    is_term.clear();
    is_term.resize(len, false);
    is_negend.clear();
    is_negend.resize(len, false);
    let (mut s, mut c) = (0u32, 0u32);
    sent.push(0);
    comma.push(0);
    for t in &hits.triggers {
        let kind = model.triggers.get(t.trig as usize).map(|d| d.kind);
        let target = match kind {
            Some(TrigKind::Terminator) => &mut *is_term,
            Some(TrigKind::NegationEnd) => &mut *is_negend,
            _ => continue,
        };
        if let Some(slot) = target.get_mut(t.ts as usize) {
            *slot = true;
        }
    }
    negend.push(0u32);
    let mut ne = 0u32;
    for flag in is_negend.iter() {
        if *flag {
            ne += 1;
        }
        negend.push(ne);
    }
    let mut k = 0u32;
    for (i, t) in n.toks.iter().enumerate() {
        if t.is_boundary() {
            s += 1;
        }
        if t.kind == Kind::Comma {
            c += 1;
        }
        if is_term.get(i).copied().unwrap_or(false) {
            k += 1;
        }
        sent.push(s);
        comma.push(c);
        if let Some(slot) = conj.get_mut(i + 1) {
            *slot = k;
        }
    }
    // Count of breakers strictly between token a and token b (a < b).
    let between = |v: &Vec<u32>, a: u32, b: u32| -> u32 {
        if b <= a + 1 {
            return 0;
        }
        v.get(b as usize)
            .copied()
            .unwrap_or(0)
            .saturating_sub(v.get(a as usize + 1).copied().unwrap_or(0))
    };

    let reach = model.max_window + 12;
    let mut out = Vec::with_capacity(hits.findings.len());
    for f in &hits.findings {
        // Non-clinical senses overlapping the finding.
        let lo = hits.excls.partition_point(|e| e.ts + 16 < f.ts);
        let excl: Option<&ExclHit> = hits
            .excls
            .get(lo..)
            .unwrap_or(&[])
            .iter()
            .take_while(|e| e.ts <= f.te)
            .find(|e| {
                e.ts <= f.ts && e.te >= f.te && (e.concept == f.concept || e.concept == u16::MAX)
            });
        if let Some(e) = excl {
            let why = model
                .reasons
                .get(e.reason as usize)
                .map_or("non-clinical sense", String::as_str);
            let reason = format!("{why}: '{}'", orig(text, n, e.ts, e.te));
            out.push(Judged {
                f: *f,
                status: Status::Suppressed { reason },
            });
            continue;
        }
        let mut neg: Option<&TrigHit> = None;
        let mut hyp: Option<&TrigHit> = None;
        let mut hist: Option<&TrigHit> = None;
        let mut res: Option<&TrigHit> = None;
        let mut benign: Option<&TrigHit> = None;
        let mut animal: Option<&TrigHit> = None;
        let mut rec = false;
        let mut cur = false;
        let lo = hits.triggers.partition_point(|t| t.ts + reach < f.ts);
        for t in hits.triggers.get(lo..).unwrap_or(&[]) {
            if t.ts > f.te + reach {
                break;
            }
            let Some(def) = model.triggers.get(t.trig as usize) else {
                continue;
            };
            if matches!(
                def.kind,
                TrigKind::Pseudo | TrigKind::Terminator | TrigKind::NegationEnd
            ) {
                continue;
            }
            if !def.only.is_empty() && !def.only.contains(&f.concept) {
                continue;
            }
            if t.ts <= f.te && t.te >= f.ts {
                continue;
            }
            let in_scope = if t.te < f.ts {
                def.forward
                    && f.ts - t.te - 1 <= def.window
                    && between(sent, t.te, f.ts) == 0
                    && between(conj, t.te, f.ts) == 0
                    && (!matches!(def.kind, TrigKind::Negation | TrigKind::History)
                        || between(negend, t.te, f.ts) == 0)
                    && (!def.comma_ends || between(comma, t.te, f.ts) == 0)
            } else {
                def.backward
                    && t.ts - f.te - 1 <= def.window
                    // "…a reason to call 911? He has it right now.": a report
                    // that it is happening reaches back across sentences.
                    && (def.kind == TrigKind::Current || between(sent, f.te, t.ts) == 0)
                    // "chest pain but it went away": "but" does not cut a resolution.
                    // "… never had one before but I just had one": nor a current report.
                    // "seen in the ER for chest pain, but it's still hurting": nor a recurrence.
                    && (matches!(
                        def.kind,
                        TrigKind::Resolved | TrigKind::Current | TrigKind::Recurrence
                    )
                        || between(conj, f.te, t.ts) == 0)
                    && (!matches!(def.kind, TrigKind::Negation | TrigKind::History)
                        || between(negend, f.te, t.ts) == 0)
                    && (!def.comma_ends || between(comma, f.te, t.ts) == 0)
            };
            if !in_scope {
                continue;
            }
            match def.kind {
                TrigKind::Negation => neg = neg.or(Some(t)),
                TrigKind::Hypothetical => hyp = hyp.or(Some(t)),
                TrigKind::History => hist = hist.or(Some(t)),
                TrigKind::Resolved => res = res.or(Some(t)),
                TrigKind::Recurrence => rec = true,
                TrigKind::Current => cur = true,
                TrigKind::Benign => benign = benign.or(Some(t)),
                TrigKind::Animal => animal = animal.or(Some(t)),
                TrigKind::Pseudo | TrigKind::Terminator | TrigKind::NegationEnd => {}
            }
        }
        if rec || cur {
            hist = None;
            res = None;
        }
        if cur {
            // "…a reason to call 911? asking because he has it right now":
            // a later statement that it is happening re-affirms a finding
            // that was asked about, denied, or told as history.
            neg = None;
            hyp = None;
        }
        if let Some(c) = model.concepts.get(f.concept as usize) {
            for k in &c.ignore {
                match k {
                    TrigKind::Negation => neg = None,
                    TrigKind::Hypothetical => hyp = None,
                    TrigKind::History => hist = None,
                    TrigKind::Resolved => res = None,
                    TrigKind::Benign => benign = None,
                    _ => {}
                }
            }
        }
        // "I've never had chest pain like this": the comparison makes it current
        // ("like this" is filler in the match stream, so look at the original).
        if neg.is_some() && compared_to_now(text, n, f) {
            neg = None;
        }
        // "I don't have chest pain anymore": negated *and* resolved is resolved.
        if neg.is_some() && res.is_some() {
            neg = None;
        }
        let status = if let Some(t) = animal {
            Status::Suppressed {
                reason: format!("about an animal ('{}')", orig(text, n, t.ts, t.te)),
            }
        } else if let Some(t) = neg {
            Status::Suppressed {
                reason: format!("negated by '{}'", orig(text, n, t.ts, t.te)),
            }
        } else if let Some(t) = hyp {
            Status::Suppressed {
                reason: format!(
                    "hypothetical or educational ('{}')",
                    orig(text, n, t.ts, t.te)
                ),
            }
        } else if let Some(t) = hist {
            Status::Suppressed {
                reason: format!("past history ('{}')", orig(text, n, t.ts, t.te)),
            }
        } else if let Some(t) = benign {
            Status::Suppressed {
                reason: format!("benign cause ('{}')", orig(text, n, t.ts, t.te)),
            }
        } else if let Some(t) = res {
            match model
                .concepts
                .get(f.concept as usize)
                .map_or(Resolved::Suppress, |c| c.resolved)
            {
                Resolved::Keep => Status::Affirmed,
                Resolved::Urgent => Status::ResolvedUrgent,
                Resolved::Suppress => Status::Suppressed {
                    reason: format!("resolved ('{}')", orig(text, n, t.ts, t.te)),
                },
            }
        } else {
            Status::Affirmed
        };
        out.push(Judged { f: *f, status });
    }
    hits.scope = bufs;
    out
}

/// The finding is followed, or itself ends, with "like this" / "like that"
/// ("never had pain like this (in my chest)").
fn compared_to_now(text: &str, n: &Normalized, f: &Finding) -> bool {
    let (s, e, _) = span_text(text, n, f);
    let end = (e + 16).min(text.len());
    let Some(win) = (s..=end)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .and_then(|end| text.get(s..end))
    else {
        return false;
    };
    let win = win.to_lowercase();
    // "nunca había sentido un dolor de pecho así": only right after the finding.
    let next = win.get(e - s..).unwrap_or("");
    let so = next.starts_with(" así que") || next.starts_with(" asi que");
    if !so
        && [" así", " asi", " como este", " como esta"]
            .iter()
            .any(|p| next.starts_with(p))
    {
        return true;
    }
    [" like this", " like that", " like it before"]
        .iter()
        .any(|p| {
            win.find(p)
                .and_then(|i| win.get(..i))
                .is_some_and(|head| !head.contains(['.', ',', ';', '?', '!']))
        })
}

pub(crate) fn span_text<'a>(text: &'a str, n: &Normalized, f: &Finding) -> (usize, usize, &'a str) {
    let (Some(a), Some(b)) = (n.toks.get(f.ts as usize), n.toks.get(f.te as usize)) else {
        return (0, 0, "");
    };
    let (s, e) = (a.os as usize, b.oe as usize);
    (s, e, text.get(s..e).unwrap_or(""))
}

/// Past years ("in 2019", "since 2015", "back in 2010") date what is near them.
fn year_triggers(model: &Model, n: &Normalized, hits: &mut Hits) {
    let Some(trig) = model.year_trigger else {
        return;
    };
    for (i, t) in n.toks.iter().enumerate() {
        let Kind::Num(v) = t.kind else { continue };
        if v.fract() != 0.0 {
            continue;
        }
        // "had a heart attack at 50": an age in the past dates what is near it.
        let prev = i.checked_sub(1).map_or("", |p| n.word(p));
        let after = n.word(i + 1);
        if (20.0..=110.0).contains(&v)
            && matches!(prev, "at" | "aged")
            && !matches!(
                after,
                "am" | "pm"
                    | "p"
                    | "a"
                    | "oclock"
                    | "o"
                    | "hours"
                    | "minutes"
                    | "min"
                    | "percent"
                    | "deg"
                    | "f"
                    | "c"
                    | "/"
                    | "mg"
                    | "ml"
                    | "units"
                    | "lbs"
                    | "pounds"
                    | "kg"
                    | "degrees"
            )
        {
            let ts = u32::try_from(i.saturating_sub(1)).unwrap_or(0);
            hits.triggers.push(TrigHit {
                trig,
                ts,
                te: i as u32,
            });
            continue;
        }
        if !(1940.0..=2025.0).contains(&v) {
            continue;
        }
        // Four-digit years only (not "2000 mg"), and not part of a date like 12/25/2019 BP.
        let next = n.word(i + 1);
        if matches!(
            next,
            "mg" | "mcg" | "ml" | "units" | "steps" | "calories" | "cal" | "ft" | "feet" | "mg/dl"
        ) {
            continue;
        }
        hits.triggers.push(TrigHit {
            trig,
            ts: i as u32,
            te: i as u32,
        });
    }
}
