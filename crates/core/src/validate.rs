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
        if t.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(Error::invalid("text contains control characters"));
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
    if n.is_empty() || n.chars().count() > 200 || n.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{what} must be 1–200 printable characters"
        )));
    }
    Ok(n.to_owned())
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
