//! Validated input types. Once you hold a `MessageText` it is within limits
//! and clean; once you hold a `Username` it is normalized.

use crate::{Error, Result};
use serde::Serialize;

/// Longest message or call note accepted, in characters.
pub const MAX_MESSAGE_CHARS: usize = 20_000;

/// The text of a message, reply or call note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(raw: &str) -> Result<Self> {
        let t = raw.trim();
        if t.is_empty() {
            return Err(Error::invalid("text must not be empty"));
        }
        let chars = t.chars().count();
        if chars > MAX_MESSAGE_CHARS {
            return Err(Error::invalid(format!(
                "text is {chars} characters; the limit is {MAX_MESSAGE_CHARS}"
            )));
        }
        if let Some(c) = t
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(Error::invalid(format!(
                "text contains the control character {}; only line breaks and tabs are allowed",
                code_point(c)
            )));
        }
        if let Some(c) = t.chars().find(|c| is_bidi_override(*c)) {
            return Err(Error::invalid(format!(
                "text contains the bidirectional embedding or override character {}, which can disguise what a text says (a file name shown backwards, say); send the text without it",
                code_point(c)
            )));
        }
        Ok(MessageText(t.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A login name: e-mail style, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self> {
        let u = raw.trim().to_lowercase();
        let ok = u.len() <= 254
            && u.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && u.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "@._+-".contains(c))
            });
        if !ok {
            return Err(Error::invalid(format!(
                "'{}' is not a valid username (expected name@domain)",
                raw.trim()
            )));
        }
        Ok(Username(u))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The password policy: long enough to resist guessing, short enough to hash.
pub fn check_password(pw: &str) -> Result<()> {
    let n = pw.chars().count();
    if n < 12 {
        return Err(Error::invalid("password must be at least 12 characters"));
    }
    if n > 256 {
        return Err(Error::invalid("password must be at most 256 characters"));
    }
    Ok(())
}

/// A person's or team's display name.
pub fn display_name(raw: &str, what: &str) -> Result<String> {
    let n = raw.trim();
    if n.is_empty() || n.chars().count() > 200 {
        return Err(Error::invalid(format!(
            "{what} must be 1–200 printable characters"
        )));
    }
    field(n, what)?;
    Ok(n.to_owned())
}

/// `U+202E` for a character, as an error names it.
fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// Explicit bidirectional embeddings and overrides (LRE, RLE, PDF, LRO,
/// RLO): the Unicode algorithm lays out right-to-left text without them, and
/// an override makes "gnp.exe" read "exe.png". Marks (LRM, RLM, ALM) and the
/// isolates chat apps add when a text is copied stay allowed in messages.
fn is_bidi_override(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}')
}

/// Isolates (LRI, RLI, FSI, PDI): harmless inside a message, but never part
/// of a name, a phone number or an identifier.
fn is_bidi_isolate(c: char) -> bool {
    matches!(c, '\u{2066}'..='\u{2069}')
}

/// A one-line field (a name, a plan, a health marker, an identifier): no
/// control characters, no bidirectional controls, and no leading `=`, `+`,
/// `-` or `@`, which a spreadsheet opening an export would run as a formula.
pub fn field(v: &str, what: &str) -> Result<()> {
    if let Some(c) = v
        .chars()
        .find(|c| c.is_control() || is_bidi_override(*c) || is_bidi_isolate(*c))
    {
        return Err(Error::invalid(format!(
            "{what} contains the control character {}",
            code_point(c)
        )));
    }
    if v.starts_with(['=', '+', '-', '@']) {
        return Err(Error::invalid(format!(
            "{what} must not start with '=', '+', '-' or '@' (a spreadsheet would read it as a formula)"
        )));
    }
    Ok(())
}

/// A short optional one-line value (plan, sex, external reference, a
/// health marker): trimmed, at most `max` characters, a clean [`field`].
pub fn short_text(raw: &str, what: &str, max: usize) -> Result<String> {
    let v = raw.trim();
    if v.chars().count() > max {
        return Err(Error::invalid(format!(
            "{what} is limited to {max} characters"
        )));
    }
    field(v, what)?;
    Ok(v.to_owned())
}

/// A contact e-mail address: one `@`, a local part and a dotted domain of
/// the characters addresses are written with, at most 254 characters.
pub fn email(raw: &str) -> Result<String> {
    let e = raw.trim();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && !local.starts_with(['=', '+', '-', '@', '.'])
                && local
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._%+'-".contains(c))
                && domain.contains('.')
                && !domain.starts_with(['.', '-'])
                && !domain.ends_with('.')
                && !domain.contains("..")
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
        });
    if !ok {
        return Err(Error::invalid(format!(
            "email '{}' is not an e-mail address (expected name@example.org)",
            e.escape_default()
        )));
    }
    Ok(e.to_owned())
}

/// A telephone number as people write it: digits with spaces, dots,
/// dashes or brackets between them and an optional leading `+`; 7 to 15
/// digits (the E.164 maximum).
pub fn phone(raw: &str) -> Result<String> {
    let p = raw.trim();
    let body = p.strip_prefix('+').unwrap_or(p);
    let digits = body.chars().filter(char::is_ascii_digit).count();
    let ok = (7..=15).contains(&digits)
        && body.starts_with(|c: char| c.is_ascii_digit() || c == '(')
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || " .-()".contains(c));
    if !ok {
        return Err(Error::invalid(format!(
            "phone '{}' is not a telephone number (7 to 15 digits, for example +1 555 010 0199)",
            p.escape_default()
        )));
    }
    Ok(p.to_owned())
}

/// "en" or "es": the languages careline writes automatic replies in.
pub fn language(raw: &str) -> Result<String> {
    match raw.trim().to_lowercase().as_str() {
        "en" | "english" => Ok("en".into()),
        "es" | "spanish" | "español" | "espanol" => Ok("es".into()),
        o => Err(Error::invalid(format!(
            "unsupported language '{o}' (expected en or es)"
        ))),
    }
}

/// A reason or note someone must give (for a tag, a break-glass, a
/// redaction, an export, a review): trimmed, its length in characters
/// within `chars`; otherwise `refusal`, which says what is needed.
pub fn reason(raw: &str, chars: std::ops::RangeInclusive<usize>, refusal: &str) -> Result<String> {
    let r = raw.trim();
    if !chars.contains(&r.chars().count()) {
        return Err(Error::invalid(refusal));
    }
    if let Some(c) = r
        .chars()
        .find(|c| (c.is_control() && !matches!(c, '\n' | '\r' | '\t')) || is_bidi_override(*c))
    {
        return Err(Error::invalid(format!(
            "the reason contains the control character {}",
            code_point(c)
        )));
    }
    Ok(r.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_text_is_trimmed_and_bounded() {
        assert_eq!(MessageText::parse("  hi \n").unwrap().as_str(), "hi");
        assert!(MessageText::parse("   ").is_err());
        assert!(MessageText::parse(&"a".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
        assert!(MessageText::parse("nul\0byte").is_err());
        assert!(MessageText::parse("línea uno\nlínea dos").is_ok());
    }

    #[test]
    fn texts_refuse_control_characters_and_bidi_overrides_but_keep_right_to_left_writing() {
        for bad in [
            "ring\u{7}bell",
            "nul\0",
            "refill \u{202E}gnp.exe\u{202C} please",
            "a\u{85}next",
        ] {
            let e = MessageText::parse(bad).unwrap_err().to_string();
            assert!(e.contains("U+"), "{bad:?}: {e}");
        }
        // Arabic and Hebrew need no override; marks and copied isolates stay.
        assert!(MessageText::parse("عندي ألم في الصدر").is_ok());
        assert!(MessageText::parse("\u{2068}Dr Cohen\u{2069} said \u{200F}שלום").is_ok());
        assert!(MessageText::parse("tab\tand\r\nnew line").is_ok());
    }

    #[test]
    fn names_and_identifiers_refuse_controls_isolates_and_formula_starts() {
        assert!(display_name("María José Núñez", "name").is_ok());
        for bad in [
            "=cmd|calc!A1",
            "+SUM(A1)",
            "@import",
            "-2+3",
            "Bell\u{7}",
            "Ann\u{2066}x",
            "A\u{202E}B",
        ] {
            assert!(display_name(bad, "name").is_err(), "{bad:?}");
            assert!(short_text(bad, "plan", 200).is_err(), "{bad:?}");
        }
        assert!(short_text(&"x".repeat(201), "plan", 200).is_err());
        assert_eq!(short_text(" Gold PPO ", "plan", 200).unwrap(), "Gold PPO");
    }

    #[test]
    fn emails_and_phones_are_validated() {
        assert_eq!(
            email(" ana.lopez+care@example.org ").unwrap(),
            "ana.lopez+care@example.org"
        );
        for bad in [
            "ana",
            "ana@",
            "@example.org",
            "ana@example",
            "ana@exa mple.org",
            "a\0@b.org",
            "=x@b.org",
            "ana@b..org",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        for good in [
            "+1 555 010 0199",
            "(555) 010-0199",
            "555.010.0199",
            "+44 20 7946 0958",
        ] {
            assert_eq!(phone(good).unwrap(), good);
        }
        for bad in [
            "call me",
            "123",
            "+1 555 0100 0199 0000 1",
            "555\u{7}0100199",
            "=1+2",
            "555-0100 x12",
        ] {
            assert!(phone(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usernames_are_email_style() {
        assert_eq!(
            Username::parse("Guide.North1@Demo.Careline")
                .unwrap()
                .as_str(),
            "guide.north1@demo.careline"
        );
        assert!(Username::parse("nobody").is_err());
        assert!(Username::parse("a@b").is_err());
    }
}
