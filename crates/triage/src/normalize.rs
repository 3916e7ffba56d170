//! Normalization: turns raw text into a folded token stream that keeps an
//! exact map back to byte offsets in the original text.
//!
//! Per character: NFKD compatibility decomposition with combining marks
//! removed (NFKC + accent stripping: "á"→"a", "ñ"→"n", full-width → ASCII),
//! then lower-casing. Words are runs of letters, numbers runs of digits (with a
//! decimal point or comma), and sentence punctuation becomes its own token so
//! phrases never match across it. Then per word: elongations collapse
//! ("soooo"), abbreviations expand ("SOB" → "short of breath", "c/o" →
//! "complains of"), fillers drop ("the", "my", "muy"), and unknown words are
//! spell-corrected onto the protocol vocabulary (see [`crate::lexicon`]).
//!
//! The match stream (`norm`) is the tokens joined by single spaces; numbers
//! appear as `#` (their values live in the token) so phrases like
//! "# years ago" can be written.

use crate::lexicon::{Action, Lexicon};
use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// Token kinds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Word,
    /// A number; `NaN` for the `#` placeholder written in patterns.
    Num(f32),
    /// Sentence end (`.`, `!`, `;`, newline) — written `.` in the stream.
    Stop,
    /// `?` (also a sentence end).
    Question,
    /// `,`
    Comma,
    /// `/` (kept so "188/108" can be read as a blood pressure).
    Slash,
}

/// One token of the match stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tok {
    /// Byte span in the original text (on char boundaries).
    pub os: u32,
    pub oe: u32,
    /// Byte span in the match stream.
    pub ns: u32,
    pub ne: u32,
    pub kind: Kind,
    /// No whitespace between this token and the previous one ("78F", "x2h").
    pub glued: bool,
}

impl Tok {
    pub fn is_boundary(&self) -> bool {
        matches!(self.kind, Kind::Stop | Kind::Question)
    }
}

/// The normalized text.
#[derive(Debug, Default)]
pub(crate) struct Normalized {
    pub toks: Vec<Tok>,
    pub norm: String,
    /// Reused working buffers (folded characters, raw runs).
    fbuf: String,
    raws: Vec<Raw>,
}

impl Normalized {
    pub fn text(&self, t: &Tok) -> &str {
        self.norm.get(t.ns as usize..t.ne as usize).unwrap_or("")
    }
    pub fn word(&self, i: usize) -> &str {
        self.toks.get(i).map_or("", |t| self.text(t))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    Alpha,
    Digit,
    Stop,
    Question,
    Comma,
    Slash,
    /// `°` / `º`: becomes the word "deg".
    Deg,
    /// `&`, `+`: become the word "and".
    And,
}

#[derive(Debug, Clone, Copy)]
struct Raw {
    os: u32,
    oe: u32,
    fs: u32,
    fe: u32,
    class: Class,
    glued: bool,
    upper: bool,
}

/// Fold one character: compatibility decomposition, accents removed, lower case.
#[inline]
fn fold_char(c: char, mut f: impl FnMut(char)) {
    if c.is_ascii() {
        f(c.to_ascii_lowercase());
        return;
    }
    match c {
        '\u{2019}' | '\u{2018}' | '\u{02BC}' | '\u{00B4}' => f('\''),
        '\u{00B0}' | '\u{00BA}' => f('\u{00B0}'),
        '\u{00DF}' => {
            f('s');
            f('s');
        }
        _ => decompose_compatible(c, |d| {
            if !is_combining_mark(d) {
                for l in d.to_lowercase() {
                    if !is_combining_mark(l) {
                        f(l);
                    }
                }
            }
        }),
    }
}

fn classify(c: char) -> Option<Class> {
    match c {
        'a'..='z' => Some(Class::Alpha),
        '0'..='9' | '#' => Some(Class::Digit),
        '.' | '!' | ';' | '\n' | '\r' => Some(Class::Stop),
        '?' => Some(Class::Question),
        ',' => Some(Class::Comma),
        '/' => Some(Class::Slash),
        '\u{00B0}' => Some(Class::Deg),
        '&' | '+' => Some(Class::And),
        c if c.is_ascii() => None,
        c if c.is_alphabetic() => Some(Class::Alpha),
        _ => None,
    }
}

/// Split the original text into raw runs, folding into `fbuf`.
fn raw_tokens(text: &str, fbuf: &mut String, raws: &mut Vec<Raw>) {
    let bytes = text.as_bytes();
    let mut cur: Option<Raw> = None;
    let mut cur_has_lower = false;
    let mut last_end: Option<u32> = None;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let i32_ = u32::try_from(i).unwrap_or(u32::MAX);
        let end = u32::try_from(i + c.len_utf8()).unwrap_or(u32::MAX);
        let next_byte = bytes.get(i + c.len_utf8()).copied();
        // Decimal separators inside numbers.
        if let Some(r) = cur.as_mut() {
            if r.class == Class::Digit
                && (c == '.' || c == ',')
                && next_byte.is_some_and(|b| b.is_ascii_digit())
            {
                let digits_after = bytes
                    .get(i + 1..)
                    .map_or(0, |s| s.iter().take_while(|b| b.is_ascii_digit()).count());
                if c == '.' || digits_after <= 2 {
                    fbuf.push('.');
                    r.oe = end;
                    r.fe = fbuf.len() as u32;
                    continue;
                }
                if digits_after == 3 {
                    // thousands separator: "1,000"
                    r.oe = end;
                    continue;
                }
            }
            if r.class == Class::Alpha
                && (c == '\'' || c == '\u{2019}')
                && next_byte.is_some_and(|b| b.is_ascii_alphabetic())
            {
                let s_alone = matches!(next_byte, Some(b's' | b'S'))
                    && !bytes
                        .get(i + c.len_utf8() + 1)
                        .is_some_and(|b| b.is_ascii_alphabetic());
                if !s_alone {
                    r.oe = end;
                    continue;
                }
            }
            if r.class == Class::Alpha && c != ' ' && !c.is_ascii() && is_combining_mark(c) {
                // Decomposed accent in the input: part of the word.
                r.oe = end;
                continue;
            }
        }
        let mut folded = [' '; 4];
        let mut nf = 0usize;
        fold_char(c, |d| {
            if let Some(s) = folded.get_mut(nf) {
                *s = d;
            }
            nf += 1;
        });
        let is_lower = c.is_lowercase();
        let mut any = false;
        for &d in folded.iter().take(nf.min(4)) {
            let Some(class) = classify(d) else { continue };
            any = true;
            let continues = cur.as_ref().is_some_and(|r| {
                r.class == class
                    && matches!(class, Class::Alpha | Class::Digit)
                    && (r.oe == i32_ || r.oe == end)
            });
            if continues {
                if let Some(r) = cur.as_mut() {
                    fbuf.push(d);
                    r.oe = end;
                    r.fe = fbuf.len() as u32;
                    cur_has_lower |= is_lower;
                }
                continue;
            }
            if let Some(mut r) = cur.take() {
                r.upper = r.class == Class::Alpha && !cur_has_lower && (r.fe - r.fs) >= 2;
                last_end = Some(r.oe);
                push_raw(raws, r);
            }
            // Collapse repeated sentence punctuation ("!!!", "...").
            if matches!(class, Class::Stop | Class::Question)
                && let Some(prev) = raws.last_mut()
                && matches!(prev.class, Class::Stop | Class::Question)
                && last_end == Some(i32_)
            {
                prev.oe = end;
                if class == Class::Question {
                    prev.class = Class::Question;
                }
                last_end = Some(end);
                continue;
            }
            let fs = fbuf.len() as u32;
            fbuf.push(d);
            let r = Raw {
                os: i32_,
                oe: end,
                fs,
                fe: fbuf.len() as u32,
                class,
                glued: last_end == Some(i32_),
                upper: false,
            };
            cur_has_lower = is_lower;
            if matches!(class, Class::Alpha | Class::Digit) {
                cur = Some(r);
            } else {
                last_end = Some(end);
                push_raw(raws, r);
            }
        }
        if !any {
            if let Some(mut r) = cur.take() {
                r.upper = r.class == Class::Alpha && !cur_has_lower && (r.fe - r.fs) >= 2;
                push_raw(raws, r);
            }
            last_end = None;
        }
        let _ = iter.peek();
    }
    if let Some(mut r) = cur.take() {
        r.upper = r.class == Class::Alpha && !cur_has_lower && (r.fe - r.fs) >= 2;
        push_raw(raws, r);
    }
}

#[inline]
fn push_raw(raws: &mut Vec<Raw>, r: Raw) {
    raws.push(r);
}

/// Collapse runs of 3+ identical letters to `keep` letters.
fn collapse(w: &str, keep: usize, out: &mut String) {
    out.clear();
    let mut last = '\0';
    let mut run = 0usize;
    for c in w.chars() {
        if c == last {
            run += 1;
        } else {
            last = c;
            run = 1;
        }
        if run <= keep {
            out.push(c);
        }
    }
}

fn has_elongation(w: &str) -> bool {
    let mut last = '\0';
    let mut run = 0;
    for c in w.chars() {
        if c == last {
            run += 1;
            if run >= 3 && c.is_alphabetic() {
                return true;
            }
        } else {
            last = c;
            run = 1;
        }
    }
    false
}

/// Options for normalizing user text vs. protocol phrases.
#[derive(Clone, Copy)]
pub(crate) struct Mode {
    /// Spell-correct unknown words onto the vocabulary (user text only).
    pub fuzzy: bool,
    /// Apply capitals-only abbreviations ("HA").
    pub upper: bool,
}

/// Normalize `text` into `out`.
pub(crate) fn normalize(text: &str, lex: &Lexicon, mode: Mode, out: &mut Normalized) {
    let mut fbuf = std::mem::take(&mut out.fbuf);
    let mut raws = std::mem::take(&mut out.raws);
    fbuf.clear();
    raws.clear();
    raw_tokens(text, &mut fbuf, &mut raws);
    out.toks.clear();
    out.norm.clear();
    out.norm.reserve(text.len() + 16);
    let mut scratch = String::new();
    let mut key = String::new();
    let mut i = 0usize;
    while let Some(r) = raws.get(i).copied() {
        let fw = fbuf.get(r.fs as usize..r.fe as usize).unwrap_or("");
        match r.class {
            Class::Alpha => {
                // Merge shorthand: "n/v", "c/o", "w/", "spo2".
                let mut span_end = r.oe;
                let mut consumed = 1usize;
                let mut word: &str = fw;
                key.clear();
                if let (Some(s), Some(b)) = (raws.get(i + 1), raws.get(i + 2))
                    && s.class == Class::Slash
                    && s.glued
                    && b.glued
                    && b.class == Class::Alpha
                {
                    key.push_str(fw);
                    key.push('/');
                    key.push_str(fbuf.get(b.fs as usize..b.fe as usize).unwrap_or(""));
                    if lex.get(&key).is_some() {
                        span_end = b.oe;
                        consumed = 3;
                    } else {
                        key.clear();
                    }
                }
                if key.is_empty()
                    && let Some(s) = raws.get(i + 1)
                    && s.class == Class::Slash
                    && s.glued
                    && !raws.get(i + 2).is_some_and(|b| b.glued)
                {
                    key.push_str(fw);
                    key.push('/');
                    if lex.get(&key).is_some() {
                        span_end = s.oe;
                        consumed = 2;
                    } else {
                        key.clear();
                    }
                }
                if key.is_empty()
                    && let Some(d) = raws.get(i + 1)
                    && d.class == Class::Digit
                    && d.glued
                {
                    key.push_str(fw);
                    key.push_str(fbuf.get(d.fs as usize..d.fe as usize).unwrap_or(""));
                    if lex.get(&key).is_some() {
                        span_end = d.oe;
                        consumed = 2;
                    } else {
                        key.clear();
                    }
                }
                if !key.is_empty() {
                    word = key.as_str();
                }
                let mut w: &str = word;
                if key.is_empty() && has_elongation(w) {
                    collapse(w, 2, &mut scratch);
                    if lex.get(&scratch).is_none() {
                        let mut one = String::new();
                        collapse(w, 1, &mut one);
                        if lex.get(&one).is_some() {
                            scratch = one;
                        }
                    }
                    w = scratch.as_str();
                }
                // Number words count as numbers ("for four days", "tres dias").
                if let Some(v) = number_word(w) {
                    emit(out, "#", Kind::Num(v), r.os, span_end, r.glued);
                    i += consumed;
                    continue;
                }
                let info = lex.get(w);
                let os = r.os;
                let glued = r.glued;
                match info {
                    Some(inf) => {
                        if let (true, true, Some(u)) = (mode.upper, r.upper, inf.upper) {
                            emit_replacement(out, lex, u, os, span_end, glued);
                        } else {
                            match inf.action {
                                Action::Keep => emit(out, w, Kind::Word, os, span_end, glued),
                                Action::Drop => {
                                    // "74a" (años), "2a": a dropped letter glued to a number is a unit.
                                    let after_num = i > 0
                                        && raws.get(i - 1).is_some_and(|p| p.class == Class::Digit);
                                    if glued && after_num && w.len() == 1 {
                                        emit(out, w, Kind::Word, os, span_end, glued);
                                    }
                                }
                                Action::Replace(k) => {
                                    emit_replacement(out, lex, k, os, span_end, glued)
                                }
                            }
                        }
                    }
                    None => {
                        let fixed = if mode.fuzzy { lex.correct(w) } else { None };
                        match fixed {
                            Some(fx) => {
                                let fx = fx.to_string();
                                emit(out, &fx, Kind::Word, os, span_end, glued);
                            }
                            None => emit(out, w, Kind::Word, os, span_end, glued),
                        }
                    }
                }
                i += consumed;
                continue;
            }
            Class::Digit => {
                let v = if fw.starts_with('#') {
                    f32::NAN
                } else {
                    fw.parse::<f32>().unwrap_or(f32::NAN)
                };
                emit(out, "#", Kind::Num(v), r.os, r.oe, r.glued);
            }
            Class::Stop => emit(out, ".", Kind::Stop, r.os, r.oe, r.glued),
            Class::Question => emit(out, "?", Kind::Question, r.os, r.oe, r.glued),
            Class::Comma => emit(out, ",", Kind::Comma, r.os, r.oe, r.glued),
            Class::Slash => emit(out, "/", Kind::Slash, r.os, r.oe, r.glued),
            Class::Deg => emit(out, "deg", Kind::Word, r.os, r.oe, r.glued),
            Class::And => emit(out, "and", Kind::Word, r.os, r.oe, r.glued),
        }
        i += 1;
    }
    out.fbuf = fbuf;
    out.raws = raws;
}

/// Spelled-out numbers two..twelve and tens (English and Spanish). "One",
/// "uno" and "una" stay words: they are usually articles or "one side".
fn number_word(w: &str) -> Option<f32> {
    Some(match w {
        "two" | "dos" => 2.0,
        "three" | "tres" => 3.0,
        "four" | "cuatro" => 4.0,
        "five" | "cinco" => 5.0,
        "six" | "seis" => 6.0,
        "seven" | "siete" => 7.0,
        "eight" | "ocho" => 8.0,
        "nine" | "nueve" => 9.0,
        "ten" | "diez" => 10.0,
        "eleven" => 11.0,
        "twelve" | "doce" => 12.0,
        "twenty" | "veinte" => 20.0,
        "thirty" | "treinta" => 30.0,
        _ => return None,
    })
}

fn emit_replacement(out: &mut Normalized, lex: &Lexicon, k: u32, os: u32, oe: u32, glued: bool) {
    if let Some(words) = lex.replacements.get(k as usize) {
        for w in words {
            emit(out, w, Kind::Word, os, oe, glued);
        }
    }
}

#[inline]
fn emit(out: &mut Normalized, w: &str, kind: Kind, os: u32, oe: u32, glued: bool) {
    if !out.norm.is_empty() {
        out.norm.push(' ');
    }
    let ns = out.norm.len() as u32;
    out.norm.push_str(w);
    out.toks.push(Tok {
        os,
        oe,
        ns,
        ne: out.norm.len() as u32,
        kind,
        glued,
    });
}

/// Fold a phrase word the same way user text is folded (for word lists).
pub(crate) fn fold_word(w: &str) -> String {
    let mut s = String::with_capacity(w.len());
    for c in w.chars() {
        fold_char(c, |d| s.push(d));
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn run(text: &str, lex: &Lexicon) -> Normalized {
        let mut n = Normalized::default();
        normalize(
            text,
            lex,
            Mode {
                fuzzy: true,
                upper: true,
            },
            &mut n,
        );
        n
    }

    #[test]
    fn folds_accents_case_and_keeps_offsets() {
        let lex = Lexicon::default();
        let text = "Dolor de PECHO, ¡sangré!";
        let n = run(text, &lex);
        assert_eq!(n.norm, "dolor de pecho , sangre .");
        let t = n.toks[4];
        assert_eq!(&text[t.os as usize..t.oe as usize], "sangré");
    }

    #[test]
    fn numbers_units_and_glue() {
        let lex = Lexicon::default();
        let n = run("78F temp 101.5F bp 188/108 x2h 38,5", &lex);
        assert_eq!(n.norm, "# f temp # f bp # / # x # h #");
        assert!(matches!(n.toks[0].kind, Kind::Num(v) if v == 78.0));
        assert!(n.toks[1].glued);
        assert!(matches!(n.toks[3].kind, Kind::Num(v) if (v - 101.5).abs() < 0.01));
        assert!(matches!(n.toks[12].kind, Kind::Num(v) if (v - 38.5).abs() < 0.01));
    }

    #[test]
    fn elongation_and_apostrophes() {
        let mut lex = Lexicon::default();
        lex.add_vocab("so");
        lex.add_vocab("pain");
        let n = run("soooo much paaaain, can't breathe, mom's arm", &lex);
        assert_eq!(n.norm, "so much pain , cant breathe , mom s arm");
    }
}
