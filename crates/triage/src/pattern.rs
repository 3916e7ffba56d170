//! The phrase mini-language reviewers write in protocol files, expanded at load
//! time into plain phrases for the Aho-Corasick automaton.
//!
//! - `{name}` inserts a macro from `[macros]` (e.g. `{cant}` →
//!   `(cant|cannot|unable to|not able to)`);
//! - `(a|b c|d)` is an alternation, `(…)?` an optional group;
//! - `word*` (last word of a segment only) matches any word starting so
//!   ("vomit*" matches "vomiting", "vomited");
//! - ` ~ ` is a gap of up to [`GAP`] words inside one sentence
//!   ("chest ~ tight*" matches "chest feels so tight").

use std::collections::BTreeMap;

/// Maximum number of words a `~` may skip.
pub(crate) const GAP: usize = 4;
/// Maximum number of expansions of one phrase.
const MAX_VARIANTS: usize = 20_000;

/// Substitute `{macro}` references (nested up to depth 4).
pub(crate) fn expand_macros(s: &str, macros: &BTreeMap<String, String>) -> Result<String, String> {
    let mut cur = s.to_string();
    for _ in 0..5 {
        if !cur.contains('{') {
            return Ok(cur);
        }
        let mut out = String::with_capacity(cur.len() * 2);
        let mut rest = cur.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(rest.get(..open).unwrap_or(""));
            let after = rest.get(open + 1..).unwrap_or("");
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in '{s}'"))?;
            let name = after.get(..close).unwrap_or("").trim();
            let body = macros
                .get(name)
                .ok_or_else(|| format!("unknown macro '{{{name}}}' in '{s}'"))?;
            out.push_str(body);
            rest = after.get(close + 1..).unwrap_or("");
        }
        out.push_str(rest);
        cur = out;
    }
    Err(format!("macros nested too deeply in '{s}'"))
}

/// Expand alternations and optional groups (which may nest) into plain variants.
#[cfg(test)]
pub(crate) fn expand_groups(s: &str) -> Result<Vec<String>, String> {
    expand_groups_with(s, &mut |chunk: &str| chunk.to_string())
}

/// Like [`expand_groups`], but every literal chunk goes through `leaf` once
/// (normalization), so shared words are not normalized per variant.
pub(crate) fn expand_groups_with(
    s: &str,
    leaf: &mut dyn FnMut(&str) -> String,
) -> Result<Vec<String>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut pos = 0usize;
    // Literal chunks are tidied once each; variants are then built from
    // tidy parts with single spaces, so no variant needs tidying.
    let mut tidy_leaf = |chunk: &str| tidy(&leaf(chunk));
    let mut out = parse_seq(&chars, &mut pos, s, 0, &mut tidy_leaf)?;
    if pos < chars.len() {
        return Err(format!("unbalanced ')' in '{s}'"));
    }
    out.retain(|v| !v.is_empty());
    Ok(out)
}

/// Words separated by single spaces, without leading or trailing space.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// `a` then `b`, tidy if both are.
fn joined(a: &str, b: &str) -> String {
    let mut n = String::with_capacity(a.len() + b.len() + 1);
    n.push_str(a);
    if !a.is_empty() && !b.is_empty() {
        n.push(' ');
    }
    n.push_str(b);
    n
}

/// sequence := (literal | group)* — stops at ')' or '|' (left for the caller).
fn parse_seq(
    c: &[char],
    pos: &mut usize,
    src: &str,
    depth: usize,
    leaf: &mut dyn FnMut(&str) -> String,
) -> Result<Vec<String>, String> {
    if depth > 8 {
        return Err(format!("groups nested too deeply in '{src}'"));
    }
    let mut variants = vec![String::new()];
    while let Some(&ch) = c.get(*pos) {
        match ch {
            ')' | '|' => break,
            '(' => {
                *pos += 1;
                let mut alts: Vec<String> = Vec::new();
                loop {
                    let a = parse_seq(c, pos, src, depth + 1, leaf)?;
                    alts.extend(a);
                    match c.get(*pos) {
                        Some('|') => *pos += 1,
                        Some(')') => {
                            *pos += 1;
                            break;
                        }
                        _ => return Err(format!("unclosed '(' in '{src}'")),
                    }
                }
                if c.get(*pos) == Some(&'?') {
                    *pos += 1;
                    alts.push(String::new());
                }
                let mut next = Vec::with_capacity(variants.len() * alts.len());
                for v in &variants {
                    for a in &alts {
                        next.push(joined(v, a));
                    }
                }
                if next.len() > MAX_VARIANTS {
                    return Err(format!(
                        "'{src}' expands to more than {MAX_VARIANTS} phrases"
                    ));
                }
                variants = next;
            }
            _ => {
                let start = *pos;
                while c.get(*pos).is_some_and(|ch| !matches!(ch, '(' | ')' | '|')) {
                    *pos += 1;
                }
                let chunk: String = c.get(start..*pos).unwrap_or(&[]).iter().collect();
                let norm = leaf(&chunk);
                if !norm.is_empty() {
                    for v in &mut variants {
                        if !v.is_empty() {
                            v.push(' ');
                        }
                        v.push_str(&norm);
                    }
                }
            }
        }
    }
    Ok(variants)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn groups_expand() {
        let v = expand_groups("(sharp|crushing)? chest (pain|pressure)").unwrap();
        assert_eq!(v.len(), 6);
        assert!(v.contains(&"chest pain".to_string()));
        assert!(v.contains(&"crushing chest pressure".to_string()));
        assert!(expand_groups("chest (pain").is_err());
        assert!(expand_groups("chest pain)").is_err());
        let n = expand_groups("(a (b|c)|d)").unwrap();
        assert_eq!(
            n,
            vec!["a b".to_string(), "a c".to_string(), "d".to_string()]
        );
    }

    #[test]
    fn macros_and_leaf_normalization() {
        let mut m = BTreeMap::new();
        m.insert("cant".to_string(), "(cant|cannot)".to_string());
        assert_eq!(
            expand_macros("{cant} breathe", &m).unwrap(),
            "(cant|cannot) breathe"
        );
        assert!(expand_macros("{nope} x", &m).is_err());
        let v = expand_groups_with("(vomit*|throw up) (blood)?", &mut |c: &str| {
            c.to_uppercase()
        })
        .unwrap();
        assert!(v.contains(&"VOMIT* BLOOD".to_string()));
        assert!(v.contains(&"THROW UP".to_string()));
    }
}
