//! The word-level lexicon: what each folded input word becomes before phrase
//! matching (kept, dropped, expanded from an abbreviation), the vocabulary of
//! real words that must never be "corrected", and the bounded fuzzy matcher
//! that maps a misspelt word ("pian", "strok", "seizur") onto a word the
//! protocol phrases use.
//!
//! Fuzzy correction only touches words that are not in the lexicon and not in
//! the real-word lists, are at least 4 letters long, and share their first
//! letter with the target: length 4 allows one adjacent transposition, 5–7
//! letters one edit, 8+ letters two edits (optimal string alignment distance).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A small, fast, non-cryptographic hasher for short keys (FxHash).
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(buf)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
        self.0 = h;
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Hasher for keys that are already hashes.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

fn word_hash(w: &str) -> u64 {
    use std::hash::Hasher as _;
    let mut h = FxHasher::default();
    h.write(w.as_bytes());
    // Mix the length in so prefixes of one another differ more.
    h.write_usize(w.len());
    h.finish()
}

/// What happens to a folded word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// A real word or a phrase word: kept as is, never fuzzy-corrected.
    Keep,
    /// Removed from the match stream (articles, possessives, fillers).
    Drop,
    /// Replaced by the words of `replacements[i]` (abbreviations).
    Replace(u32),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct WordInfo {
    pub action: Action,
    /// Replacement used only when the word is written in capitals.
    pub upper: Option<u32>,
}

/// Word map plus fuzzy vocabulary.
#[derive(Default)]
pub(crate) struct Lexicon {
    /// Keyed by [`word_hash`] (64-bit; collisions among a few thousand words
    /// are negligible), so a lookup hashes the word once.
    words: HashMap<u64, WordInfo, BuildHasherDefault<IdHasher>>,
    /// Hashes of real dictionary words (tens of thousands): membership only,
    /// no per-word allocation, so the set loads in milliseconds.
    known: std::collections::HashSet<u64, BuildHasherDefault<IdHasher>>,
    pub replacements: Vec<Vec<Box<str>>>,
    /// Phrase vocabulary bucketed by (first char, length in chars).
    buckets: FxMap<(char, u8), Vec<u32>>,
    vocab: Vec<Box<str>>,
    /// Per vocabulary word: its characters and a letter-set mask, so most
    /// candidates are rejected by a popcount before any DP.
    vocab_chars: Vec<(Box<[char]>, u32)>,
    /// Vocabulary words of 5+ letters keyed by the hash of all but their
    /// first letter (`u32::MAX` when two words share it), so a wrong first
    /// letter ("xhest", "zeizure") can still be corrected.
    tails: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
}

impl Lexicon {
    pub fn get(&self, w: &str) -> Option<WordInfo> {
        let h = word_hash(w);
        match self.words.get(&h) {
            Some(i) => Some(*i),
            None if self.known.contains(&h) => Some(WordInfo {
                action: Action::Keep,
                upper: None,
            }),
            None => None,
        }
    }

    /// Room for `n` more dictionary words (one allocation, no rehashing).
    pub fn reserve_dictionary(&mut self, n: usize) {
        self.known.reserve(n);
    }

    /// A dictionary word (never corrected).
    pub fn add_dictionary_word(&mut self, w: &str) {
        self.known.insert(word_hash(w));
    }

    pub fn add_replacement(&mut self, key: &str, words: Vec<Box<str>>, upper_only: bool) {
        let idx = u32::try_from(self.replacements.len()).unwrap_or(u32::MAX);
        self.replacements.push(words);
        let e = self.words.entry(word_hash(key)).or_insert(WordInfo {
            action: Action::Keep,
            upper: None,
        });
        if upper_only {
            e.upper = Some(idx);
        } else {
            e.action = Action::Replace(idx);
        }
    }

    pub fn add_drop(&mut self, key: &str) {
        let e = self.words.entry(word_hash(key)).or_insert(WordInfo {
            action: Action::Drop,
            upper: None,
        });
        if e.action == Action::Keep {
            e.action = Action::Drop;
        }
    }

    /// A real word: never corrected (does not override drop/replace).
    pub fn add_known(&mut self, key: &str) {
        self.words.entry(word_hash(key)).or_insert(WordInfo {
            action: Action::Keep,
            upper: None,
        });
    }

    /// A word used by some concept phrase: a fuzzy-correction target.
    pub fn add_vocab(&mut self, w: &str) {
        self.add_known(w);
        let n = w.chars().count();
        if n < 4 || !w.chars().all(char::is_alphabetic) {
            return;
        }
        let Some(first) = w.chars().next() else {
            return;
        };
        let len = u8::try_from(n.min(255)).unwrap_or(255);
        // Equal words share (first letter, length): look only in that bucket,
        // not the whole vocabulary (loading stays linear in phrase count).
        if self.buckets.get(&(first, len)).is_some_and(|list| {
            list.iter()
                .any(|&i| self.vocab.get(i as usize).is_some_and(|v| &**v == w))
        }) {
            return;
        }
        let idx = u32::try_from(self.vocab.len()).unwrap_or(u32::MAX);
        self.vocab.push(w.into());
        let chars: Box<[char]> = w.chars().collect();
        let mask = letter_mask(&chars);
        if n >= 5 {
            let tail: String = chars.iter().skip(1).collect();
            self.tails
                .entry(word_hash(&tail))
                .and_modify(|v| *v = u32::MAX)
                .or_insert(idx);
        }
        self.vocab_chars.push((chars, mask));
        self.buckets.entry((first, len)).or_default().push(idx);
    }

    /// Correct an unknown word to a phrase word within the edit bound.
    pub fn correct(&self, w: &str) -> Option<&str> {
        let mut chars = [' '; 32];
        let mut n = 0usize;
        for c in w.chars() {
            if n >= 32 || !c.is_alphabetic() {
                return None;
            }
            if let Some(slot) = chars.get_mut(n) {
                *slot = c;
            }
            n += 1;
        }
        if n < 4 {
            return None;
        }
        let a = chars.get(..n)?;
        let first = *a.first()?;
        let max_d = if n >= 8 { 2 } else { 1 };
        let amask = letter_mask(a);
        let mut best: Option<(usize, &str)> = None;
        let lo = n.saturating_sub(max_d).max(4);
        for len in lo..=(n + max_d) {
            let key = (first, u8::try_from(len).unwrap_or(255));
            let Some(list) = self.buckets.get(&key) else {
                continue;
            };
            for &i in list {
                let (Some(cand), Some((bs, bmask))) =
                    (self.vocab.get(i as usize), self.vocab_chars.get(i as usize))
                else {
                    continue;
                };
                // Each edit changes the letter set by at most two letters.
                if (amask ^ bmask).count_ones() as usize > 2 * max_d {
                    continue;
                }
                let d = if n == 4 {
                    transposition_only(a, bs)
                } else {
                    osa_bounded(a, bs, max_d)
                };
                if let Some(d) = d
                    && best.is_none_or(|(bd, _)| d < bd)
                {
                    best = Some((d, cand));
                }
            }
        }
        if best.is_none() && n >= 5 {
            return self.correct_first_letter(a);
        }
        best.map(|(_, s)| s)
    }

    /// A wrong first letter ("xhest") or swapped first two letters ("hcest")
    /// in a word of 5+ letters, when exactly one phrase word fits.
    fn correct_first_letter(&self, a: &[char]) -> Option<&str> {
        let tail: String = a.iter().skip(1).collect();
        if let Some(&i) = self.tails.get(&word_hash(&tail))
            && i != u32::MAX
            && let Some((bs, _)) = self.vocab_chars.get(i as usize)
            && bs.get(1..) == a.get(1..)
        {
            return self.vocab.get(i as usize).map(|v| &**v);
        }
        let (&c0, &c1) = (a.first()?, a.get(1)?);
        let len = u8::try_from(a.len()).ok()?;
        let list = self.buckets.get(&(c1, len))?;
        let mut found = list.iter().filter_map(|&i| {
            let (bs, _) = self.vocab_chars.get(i as usize)?;
            (bs.get(1) == Some(&c0) && bs.get(2..) == a.get(2..))
                .then(|| self.vocab.get(i as usize).map(|v| &**v))
                .flatten()
        });
        let first = found.next();
        if found.next().is_some() { None } else { first }
    }
}

/// A 32-bit set of the letters in a word (non a–z letters share bits).
fn letter_mask(chars: &[char]) -> u32 {
    chars
        .iter()
        .fold(0u32, |m, &c| m | (1u32 << (u32::from(c) % 32)))
}

/// Distance 1 if `b` is `a` with two adjacent letters swapped.
fn transposition_only(a: &[char], b: &[char]) -> Option<usize> {
    if a.len() != b.len() {
        return None;
    }
    let diffs: Vec<usize> = (0..a.len()).filter(|&i| a.get(i) != b.get(i)).collect();
    match diffs.as_slice() {
        [i, j] if *j == i + 1 && a.get(*i) == b.get(*j) && a.get(*j) == b.get(*i) => Some(1),
        _ => None,
    }
}

/// Optimal-string-alignment distance if it is ≤ `max`, with early bailout.
fn osa_bounded(a: &[char], b: &[char], max: usize) -> Option<usize> {
    let (n, m) = (a.len(), b.len());
    if n.abs_diff(m) > max || n > 32 || m > 34 {
        return None;
    }
    // Three rolling rows of the DP table.
    let mut prev2 = [0usize; 36];
    let mut prev = [0usize; 36];
    let mut cur = [0usize; 36];
    for (j, slot) in prev.iter_mut().enumerate().take(m + 1) {
        *slot = j;
    }
    for i in 1..=n {
        if let Some(c0) = cur.get_mut(0) {
            *c0 = i;
        }
        let mut row_min = i;
        let ai = a.get(i - 1).copied().unwrap_or(' ');
        for j in 1..=m {
            let bj = b.get(j - 1).copied().unwrap_or(' ');
            let cost = usize::from(ai != bj);
            let del = prev.get(j).copied().unwrap_or(usize::MAX / 2) + 1;
            let ins = cur.get(j - 1).copied().unwrap_or(usize::MAX / 2) + 1;
            let sub = prev.get(j - 1).copied().unwrap_or(usize::MAX / 2) + cost;
            let mut v = del.min(ins).min(sub);
            if i > 1 && j > 1 && Some(&ai) == b.get(j - 2) && a.get(i - 2) == Some(&bj) {
                v = v.min(prev2.get(j - 2).copied().unwrap_or(usize::MAX / 2) + 1);
            }
            if let Some(slot) = cur.get_mut(j) {
                *slot = v;
            }
            row_min = row_min.min(v);
        }
        if row_min > max {
            return None;
        }
        prev2 = prev;
        prev = cur;
    }
    let d = prev.get(m).copied()?;
    (d <= max).then_some(d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn osa_counts_transpositions_as_one() {
        assert_eq!(
            osa_bounded(&chars("siezure"), &chars("seizure"), 1),
            Some(1)
        );
        assert_eq!(osa_bounded(&chars("strok"), &chars("stroke"), 1), Some(1));
        assert_eq!(osa_bounded(&chars("abcdef"), &chars("uvwxyz"), 2), None);
        assert_eq!(transposition_only(&chars("pian"), &chars("pain")), Some(1));
    }

    #[test]
    fn correction_respects_known_words_and_first_letter() {
        let mut lx = Lexicon::default();
        lx.add_vocab("seizure");
        lx.add_vocab("pain");
        lx.add_vocab("breathing");
        assert_eq!(lx.correct("seizur"), Some("seizure"));
        assert_eq!(lx.correct("pian"), Some("pain"));
        assert_eq!(lx.correct("brething"), Some("breathing"));
        assert_eq!(lx.correct("eizure"), None);
        // A wrong or swapped first letter, in words of five letters or more.
        assert_eq!(lx.correct("zeizure"), Some("seizure"));
        assert_eq!(lx.correct("rbeathing"), Some("breathing"));
        assert_eq!(lx.correct("xain"), None);
    }
}
