//! One pass of the Aho-Corasick automaton over the normalized match stream
//! finds every concept phrase (segment), context trigger and non-clinical
//! sense at once; word boundaries are checked per match, and phrases with
//! `~` gaps are chained from their segments inside one sentence.

use crate::compile::{Model, Target};
use crate::normalize::{Kind, Normalized};
use crate::pattern::GAP;

/// A concept mention, as a token range (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Finding {
    pub concept: u16,
    pub ts: u32,
    pub te: u32,
    /// Some word in it was spell-corrected (shown in explanations).
    pub fuzzy: bool,
}

/// A context trigger occurrence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrigHit {
    pub trig: u32,
    pub ts: u32,
    pub te: u32,
}

/// A non-clinical sense occurrence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExclHit {
    pub concept: u16,
    pub reason: u16,
    pub ts: u32,
    pub te: u32,
}

#[derive(Debug, Clone, Copy)]
struct SegHit {
    phrase: u32,
    seg: u8,
    ts: u32,
    te: u32,
}

/// Everything the automaton found.
#[derive(Default)]
pub(crate) struct Hits {
    pub findings: Vec<Finding>,
    pub triggers: Vec<TrigHit>,
    pub excls: Vec<ExclHit>,
    /// Reused working buffers.
    segs: Vec<SegHit>,
    punct: Vec<u32>,
    pub(crate) scope: crate::context::ScopeBufs,
}

impl Hits {
    pub fn clear(&mut self) {
        self.findings.clear();
        self.triggers.clear();
        self.excls.clear();
    }
}

fn tok_at_start(n: &Normalized, pos: usize) -> Option<usize> {
    let i = n.toks.partition_point(|t| (t.ns as usize) < pos);
    n.toks.get(i).filter(|t| t.ns as usize == pos).map(|_| i)
}

fn tok_containing_end(n: &Normalized, end: usize) -> Option<usize> {
    let i = n.toks.partition_point(|t| (t.ns as usize) < end);
    i.checked_sub(1)
}

/// Run the automaton and collect hits.
pub(crate) fn find(model: &Model, n: &Normalized, hits: &mut Hits) {
    let Some(ac) = &model.ac else { return };
    let bytes = n.norm.as_bytes();
    let mut segs = std::mem::take(&mut hits.segs);
    segs.clear();
    for m in ac.find_overlapping_iter(&n.norm) {
        let (s, e) = (m.start(), m.end());
        if s > 0 && bytes.get(s - 1) != Some(&b' ') {
            continue;
        }
        let exact_end = e == bytes.len() || bytes.get(e) == Some(&b' ');
        let Some(targets) = model.targets.get(m.pattern().as_usize()) else {
            continue;
        };
        let (Some(ts), Some(te)) = (tok_at_start(n, s), tok_containing_end(n, e)) else {
            continue;
        };
        let (ts, te) = (ts as u32, te as u32);
        for t in targets {
            match *t {
                Target::Seg {
                    phrase,
                    seg,
                    prefix,
                } => {
                    if exact_end || prefix {
                        segs.push(SegHit {
                            phrase,
                            seg,
                            ts,
                            te,
                        });
                    }
                }
                Target::Trig { trig, prefix } => {
                    if exact_end || prefix {
                        hits.triggers.push(TrigHit { trig, ts, te });
                    }
                }
                Target::Excl {
                    concept,
                    reason,
                    prefix,
                } => {
                    if exact_end || prefix {
                        hits.excls.push(ExclHit {
                            concept,
                            reason,
                            ts,
                            te,
                        });
                    }
                }
            }
        }
    }
    let mut punct = std::mem::take(&mut hits.punct);
    chain(model, n, &mut segs, &mut punct, &mut hits.findings);
    hits.segs = segs;
    hits.punct = punct;
}

/// Combine segment hits into phrase findings.
fn chain(
    model: &Model,
    n: &Normalized,
    segs: &mut [SegHit],
    punct: &mut Vec<u32>,
    out: &mut Vec<Finding>,
) {
    // Prefix count of punctuation tokens, to keep gaps inside one clause.
    punct.clear();
    if segs.is_empty() {
        return;
    }
    let mut acc = 0u32;
    punct.push(0);
    for t in &n.toks {
        // Gaps stay inside one clause: no punctuation in between.
        if !matches!(t.kind, Kind::Word | Kind::Num(_)) {
            acc += 1;
        }
        punct.push(acc);
    }
    let punct_between = |a: u32, b: u32| -> bool {
        punct.get(b as usize).copied().unwrap_or(0)
            > punct.get(a as usize + 1).copied().unwrap_or(0)
    };
    segs.sort_unstable_by_key(|h| (h.phrase, h.seg, h.ts));
    let mut i = 0usize;
    while let Some(first) = segs.get(i).copied() {
        let mut j = i;
        while segs.get(j).is_some_and(|h| h.phrase == first.phrase) {
            j += 1;
        }
        let group = segs.get(i..j).unwrap_or(&[]);
        let Some(ph) = model.phrases.get(first.phrase as usize) else {
            i = j;
            continue;
        };
        if ph.nsegs <= 1 {
            for h in group {
                out.push(Finding {
                    concept: ph.concept,
                    ts: h.ts,
                    te: h.te,
                    fuzzy: false,
                });
            }
        } else {
            let seg_start = |k: u8| group.partition_point(|h| h.seg < k);
            for h0 in group.iter().take_while(|h| h.seg == 0) {
                let mut end = h0.te;
                let mut ok = true;
                for k in 1..ph.nsegs {
                    let (lo, hi) = (seg_start(k), seg_start(k + 1));
                    let slice = group.get(lo..hi).unwrap_or(&[]);
                    let p = slice.partition_point(|h| h.ts <= end);
                    let next = slice
                        .get(p)
                        .filter(|h| (h.ts - end - 1) as usize <= GAP && !punct_between(end, h.ts));
                    match next {
                        Some(h) => end = h.te,
                        None => {
                            ok = false;
                            break;
                        }
                    }
                }
                if ok {
                    out.push(Finding {
                        concept: ph.concept,
                        ts: h0.ts,
                        te: end,
                        fuzzy: false,
                    });
                }
            }
        }
        i = j;
    }
}
