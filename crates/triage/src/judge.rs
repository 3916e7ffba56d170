//! From findings in context to a [`Judgement`]: evaluates every protocol's
//! rules over the affirmed concepts, picks the highest disposition, collects
//! the evidence spans and the suppressed findings, and writes the short
//! explanation a nurse reads.

use crate::compile::Model;
use crate::context::{Judged, Status, span_text};
use crate::normalize::Normalized;
use crate::{Disposition, Evidence, FiredProtocol, Judgement, Suppressed};
use std::fmt::Write as _;

/// Caps that keep output bounded on huge inputs.
const MAX_EVIDENCE_PER_PROTOCOL: usize = 8;
const MAX_SUPPRESSED: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Presence {
    Absent,
    /// Present only through resolved mentions capped at urgent.
    Capped,
    Full,
}

pub(crate) fn build(model: &Model, text: &str, n: &Normalized, judged: &[Judged]) -> Judgement {
    if judged.is_empty() {
        // Nothing matched: the common case for administrative messages.
        return Judgement {
            disposition: Disposition::Routine,
            protocols: Vec::new(),
            evidence: Vec::new(),
            suppressed: Vec::new(),
            protocol_version: model.version.clone(),
            protocol_hash: model.hash.clone(),
            explanation: "ROUTINE — no red flags found.".to_string(),
            guidance: None,
            second_reader: None,
            clinical_content: None,
        };
    }
    let mut presence = vec![Presence::Absent; model.concepts.len()];
    for j in judged {
        let Some(p) = presence.get_mut(j.f.concept as usize) else {
            continue;
        };
        match j.status {
            Status::Affirmed => *p = Presence::Full,
            Status::ResolvedUrgent => {
                if *p == Presence::Absent {
                    *p = Presence::Capped;
                }
            }
            Status::Suppressed { .. } => {}
        }
    }
    let mut fired = fire(model, &presence);
    // Fail-safe: a suppression that is not an explicit denial or told
    // history (a question, a resolution, a benign cause, a figure of speech)
    // never silences an emergency sign completely. With every such finding
    // counted, would an emergency rule fire? Then the message is at least
    // urgent, and the explanation says why.
    let mut fail_safe: Option<(usize, Vec<u16>)> = None;
    if fired.iter().all(|f| f.1 < Disposition::Urgent) {
        let mut lifted = presence.clone();
        let mut any = false;
        for j in judged {
            // Only an explicit denial ("no chest pain"), history told as history
            // ("a stroke 5 years ago") and an animal's symptoms keep an
            // emergency sign silent.
            if let Status::Suppressed { reason } = &j.status
                && !reason.starts_with("negated")
                && !reason.starts_with("past history")
                && !reason.starts_with("about an animal")
                && let Some(p) = lifted.get_mut(j.f.concept as usize)
            {
                *p = Presence::Full;
                any = true;
            }
        }
        if any {
            fail_safe = fire(model, &lifted)
                .into_iter()
                .filter(|f| f.1 == Disposition::Emergency)
                .map(|f| (f.0, f.2))
                .next();
        }
    }
    if let Some((pi, used)) = &fail_safe {
        fired.retain(|f| f.0 != *pi);
        fired.push((*pi, Disposition::Urgent, used.clone()));
    }
    fired.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let disposition = fired.first().map_or(Disposition::Routine, |f| f.1);

    let mut protocols = Vec::with_capacity(fired.len());
    let mut evidence = Vec::new();
    let mut explanation = String::with_capacity(128);
    explanation.push_str(match disposition {
        Disposition::Routine => "ROUTINE",
        Disposition::Urgent => "URGENT",
        Disposition::Emergency => "EMERGENCY",
    });
    if fired.is_empty() {
        explanation.push_str(" — no red flags found.");
    }
    for (k, (pi, d, used)) in fired.iter().enumerate() {
        let Some(p) = model.protocols.get(*pi) else {
            continue;
        };
        protocols.push(FiredProtocol {
            id: p.id.clone(),
            title: p.title.clone(),
            disposition: *d,
        });
        let _ = write!(
            explanation,
            "{}{} ({}, {}):",
            if k == 0 { " — " } else { "; " },
            p.title,
            p.id,
            d.as_str()
        );
        let is_fail_safe = fail_safe.as_ref().is_some_and(|(fp, _)| fp == pi);
        let mut n_ev = 0;
        let mut first = true;
        for j in judged {
            if n_ev >= MAX_EVIDENCE_PER_PROTOCOL {
                break;
            }
            if (matches!(j.status, Status::Suppressed { .. }) && !is_fail_safe)
                || !used.contains(&j.f.concept)
            {
                continue;
            }
            let (s, e, snip) = span_text(text, n, &j.f);
            if evidence
                .iter()
                .any(|ev: &Evidence| ev.protocol == p.id && ev.start == s && ev.end == e)
            {
                continue;
            }
            let concept = model
                .concepts
                .get(j.f.concept as usize)
                .map_or("", |c| c.id.as_str());
            let _ = write!(explanation, "{}'{}'", if first { " " } else { " + " }, snip);
            if j.status == Status::ResolvedUrgent {
                explanation.push_str(" (resolved)");
            }
            if let Status::Suppressed { reason } = &j.status {
                let _ = write!(
                    explanation,
                    " (read as {reason}, but an emergency sign if it is happening: escalated for a clinician to read today)"
                );
            }
            first = false;
            evidence.push(Evidence {
                protocol: p.id.clone(),
                concept: concept.to_string(),
                start: s,
                end: e,
                text: snip.to_string(),
            });
            n_ev += 1;
        }
    }
    if !fired.is_empty() {
        explanation.push('.');
    }
    // Drop evidence spans contained in another span of the same protocol.
    let keep: Vec<bool> = (0..evidence.len())
        .map(|me| {
            let Some(e) = evidence.get(me) else {
                return true;
            };
            !evidence.iter().enumerate().any(|(k, o)| {
                k != me
                    && o.protocol == e.protocol
                    && o.start <= e.start
                    && o.end >= e.end
                    && ((o.start, o.end) != (e.start, e.end) || k < me)
            })
        })
        .collect();
    let mut idx = 0usize;
    evidence.retain(|_| {
        idx += 1;
        keep.get(idx - 1).copied().unwrap_or(true)
    });

    let mut suppressed = Vec::new();
    for j in judged {
        if suppressed.len() >= MAX_SUPPRESSED {
            break;
        }
        let Status::Suppressed { reason } = &j.status else {
            continue;
        };
        let Some(Some(pi)) = model.concept_protocol.get(j.f.concept as usize) else {
            continue;
        };
        let (s, e, snip) = span_text(text, n, &j.f);
        if suppressed
            .iter()
            .any(|x: &Suppressed| x.start <= s && x.end >= e)
        {
            continue;
        }
        let protocol = model
            .protocols
            .get(*pi as usize)
            .map_or("", |p| p.id.as_str());
        let concept = model
            .concepts
            .get(j.f.concept as usize)
            .map_or("", |c| c.id.as_str());
        suppressed.push(Suppressed {
            protocol: protocol.to_string(),
            concept: concept.to_string(),
            start: s,
            end: e,
            text: snip.to_string(),
            reason: reason.clone(),
        });
    }
    if !suppressed.is_empty() {
        explanation.push_str(" Ignored: ");
        for (k, s) in suppressed.iter().take(6).enumerate() {
            let _ = write!(
                explanation,
                "{}'{}' ({})",
                if k == 0 { "" } else { "; " },
                s.text,
                s.reason
            );
        }
        if suppressed.len() > 6 {
            let _ = write!(explanation, "; and {} more", suppressed.len() - 6);
        }
        explanation.push('.');
    }

    let guidance = fired
        .iter()
        .filter_map(|(pi, _, _)| model.protocols.get(*pi))
        .find_map(|p| p.guidance.clone());
    Judgement {
        disposition,
        protocols,
        evidence,
        suppressed,
        protocol_version: model.version.clone(),
        protocol_hash: model.hash.clone(),
        explanation,
        guidance,
        second_reader: None,
        clinical_content: None,
    }
}

/// The review net's word list: the first few words of `n` (a trailing
/// "s" dropped if need be) that make a message clinical.
pub(crate) fn clinical_by_words(
    model: &Model,
    text: &str,
    n: &Normalized,
) -> Option<crate::ClinicalContent> {
    if model.clinical_words.is_empty() {
        return None;
    }
    let mut words = Vec::new();
    for t in &n.toks {
        if !matches!(t.kind, crate::normalize::Kind::Word) {
            continue;
        }
        let w = n.text(t);
        let hit = model.clinical_words.contains_key(w)
            || w.strip_suffix('s')
                .is_some_and(|s| s.len() > 2 && model.clinical_words.contains_key(s));
        if !hit {
            continue;
        }
        let (s, e) = (t.os as usize, t.oe as usize);
        if let Some(original) = text.get(s..e) {
            words.push(Evidence {
                protocol: "review_net".into(),
                concept: "clinical_word".into(),
                start: s,
                end: e,
                text: original.to_owned(),
            });
        }
        if words.len() == 4 {
            break;
        }
    }
    (!words.is_empty()).then(|| crate::ClinicalContent {
        by: "vocabulary".into(),
        words,
    })
}

/// The rules' view of whether a message is clinical: any protocol concept
/// they found, affirmed or set aside by context ("no chest pain" is still
/// about the chest).
pub(crate) fn clinical_by_rules(j: &Judgement) -> Option<crate::ClinicalContent> {
    if j.protocols.is_empty() && j.suppressed.is_empty() {
        return None;
    }
    let mut words: Vec<Evidence> = j.evidence.clone();
    words.extend(j.suppressed.iter().map(|s| Evidence {
        protocol: s.protocol.clone(),
        concept: s.concept.clone(),
        start: s.start,
        end: s.end,
        text: s.text.clone(),
    }));
    words.sort_by_key(|w| (w.start, w.end));
    words.dedup_by_key(|w| (w.start, w.end));
    Some(crate::ClinicalContent {
        by: "rules".into(),
        words,
    })
}

/// Apply the second reader's raise to the rules' judgement: the new
/// disposition, its words as evidence, a plain-words explanation, and
/// emergency guidance when no protocol gave any.
pub(crate) fn second_reader(
    j: &mut Judgement,
    sr: crate::reader::SecondReader,
    settings: &crate::reader::ReaderSettings,
) {
    let was = j.disposition;
    j.disposition = sr.to;
    let words: Vec<String> = sr.words.iter().map(|w| format!("'{}'", w.text)).collect();
    let head = match sr.to {
        Disposition::Emergency => "EMERGENCY",
        Disposition::Urgent => "URGENT",
        Disposition::Routine => "ROUTINE",
    };
    let rest = j
        .explanation
        .split_once(" — ")
        .map(|(_, r)| r.to_owned())
        .unwrap_or_default();
    let mut e = format!(
        "{head} — escalated for review by the second reader (a model trained on labelled messages; the rules alone said {}): ",
        was.as_str()
    );
    let _ = write!(e, "{} weighed most.", words.join(", "));
    if !rest.is_empty() && rest != "no red flags found." {
        let _ = write!(e, " Rules: {rest}");
    }
    j.explanation = e;
    j.evidence.extend(sr.words.iter().cloned());
    if sr.to == Disposition::Emergency && j.guidance.is_none() {
        j.guidance = Some(settings.guidance.clone());
    }
    j.second_reader = Some(sr);
}

/// Every protocol whose rules fire on `presence`: (protocol, disposition, concepts used).
fn fire(model: &Model, presence: &[Presence]) -> Vec<(usize, Disposition, Vec<u16>)> {
    let get = |c: u16| {
        presence
            .get(c as usize)
            .copied()
            .unwrap_or(Presence::Absent)
    };
    let mut fired: Vec<(usize, Disposition, Vec<u16>)> = Vec::new();
    for (pi, p) in model.protocols.iter().enumerate() {
        let mut best: Option<(Disposition, Vec<u16>)> = None;
        for r in &p.rules {
            if r.all.iter().any(|&c| get(c) == Presence::Absent)
                || r.unless.iter().any(|&c| get(c) != Presence::Absent)
            {
                continue;
            }
            let any_hit: Vec<u16> = r
                .any
                .iter()
                .copied()
                .filter(|&c| get(c) != Presence::Absent)
                .collect();
            if !r.any.is_empty() && any_hit.is_empty() {
                continue;
            }
            let capped = r.all.iter().any(|&c| get(c) == Presence::Capped)
                || (!any_hit.is_empty() && any_hit.iter().all(|&c| get(c) == Presence::Capped));
            let d = if capped {
                r.disposition.min(Disposition::Urgent)
            } else {
                r.disposition
            };
            let mut used = r.all.clone();
            used.extend(any_hit);
            match &mut best {
                Some((bd, bu)) if *bd == d => {
                    for c in used {
                        if !bu.contains(&c) {
                            bu.push(c);
                        }
                    }
                }
                Some((bd, _)) if *bd > d => {}
                _ => best = Some((d, used)),
            }
        }
        if let Some((d, used)) = best {
            fired.push((pi, d, used));
        }
    }
    fired
}
