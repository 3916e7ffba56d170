//! Display-safe file names and `Content-Disposition` headers.

use std::fmt::Write as _;

use crate::kind::Kind;

/// Longest name [`sanitize_filename`] returns, in bytes.
const MAX_NAME_BYTES: usize = 120;
/// Longest extension (without the dot) still treated as an extension.
const MAX_EXT_BYTES: usize = 10;
/// Stem used when nothing usable is left of the client's name.
const FALLBACK_STEM: &str = "attachment";

/// Device names Windows reserves whatever the extension (`CON.txt` too).
const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Characters removed outright: controls (C0, DEL, C1), bidirectional
/// embeddings, overrides, isolates and marks (which can make
/// `photo<U+202E>gpj.exe` display as `photoexe.jpg`), and invisible
/// zero-width characters.
fn is_removed(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{061C}'
                | '\u{200B}'
                | '\u{2060}'
                | '\u{FEFF}'
        )
}

/// Characters Windows forbids in names; replaced with `_`.
fn is_replaced(c: char) -> bool {
    matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*')
}

/// Makes a client-supplied file name safe to display and to offer as a
/// download name.
///
/// - Only the last path component is kept (`/` and `\` both separate), so
///   `C:\Users\x\rash.jpg` becomes `rash.jpg` and `../../etc/passwd`
///   becomes `passwd` (plus an extension, see below).
/// - Control characters, bidi controls and zero-width characters are
///   removed; `< > : " | ? *` become `_`.
/// - Whitespace runs become one space; leading dots and spaces, and
///   trailing dots and spaces, are trimmed.
/// - A Windows device name (`CON`, `nul.txt`, `COM1.pdf`, ...) gets a
///   leading `_`.
/// - The extension must suit `kind` (see [`Kind::accepted_extensions`]);
///   otherwise the kind's extension is appended, so `report.exe` that is
///   really a PDF becomes `report.exe.pdf` and opens with a PDF viewer.
/// - The result is at most 120 bytes; the stem is shortened (on a
///   character boundary) and the extension kept.
/// - When nothing is left, the name is `attachment.<ext>`.
pub fn sanitize_filename(name: &str, kind: Kind) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();

    let mut cleaned = String::with_capacity(last.len());
    let mut pending_space = false;
    for c in last.chars() {
        if is_removed(c) {
            continue;
        }
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && !cleaned.is_empty() {
            cleaned.push(' ');
        }
        pending_space = false;
        cleaned.push(if is_replaced(c) { '_' } else { c });
    }
    let trimmed = cleaned
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);

    let (stem, ext) = match trimmed.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && !ext.is_empty()
                && ext.len() <= MAX_EXT_BYTES
                && ext.chars().all(|c| c.is_ascii_alphanumeric())
                && kind
                    .accepted_extensions()
                    .contains(&ext.to_ascii_lowercase().as_str()) =>
        {
            (stem.trim_end_matches(['.', ' ']), ext)
        }
        _ => (trimmed, kind.extension()),
    };

    let mut stem = stem.to_owned();
    let device = stem.split('.').next().unwrap_or_default().trim_end();
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(device)) {
        stem.insert(0, '_');
    }

    let budget = MAX_NAME_BYTES.saturating_sub(ext.len() + 1);
    if stem.len() > budget {
        let mut cut = budget;
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        stem.truncate(cut);
        let kept = stem.trim_end_matches(['.', ' ']).len();
        stem.truncate(kept);
    }
    if stem.is_empty() {
        stem.push_str(FALLBACK_STEM);
    }
    format!("{stem}.{ext}")
}

/// A `Content-Disposition` value offering `name` as a download, following
/// RFC 6266 and RFC 8187:
///
/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>`
///
/// The fallback drops quotes, backslashes, `%` and control characters,
/// turns common accented Latin letters into their base letter (`é` → `e`,
/// `ñ` → `n`) and anything else non-ASCII into `_`. Pass a name that went
/// through [`sanitize_filename`] first.
pub fn content_disposition(name: &str) -> String {
    let mut fallback = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii() {
            if c.is_ascii_control() || matches!(c, '"' | '\\' | '%') {
                continue;
            }
            fallback.push(c);
        } else if is_removed(c) {
            continue;
        } else {
            fallback.push(fold_latin(c).unwrap_or('_'));
        }
    }
    let fallback = fallback.trim();
    let fallback = if fallback.is_empty() {
        FALLBACK_STEM
    } else {
        fallback
    };

    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            let _ = write!(encoded, "%{b:02X}");
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// The unaccented letter for common Latin-1 letters with diacritics.
fn fold_latin(c: char) -> Option<char> {
    let base = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'A',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'È' | 'É' | 'Ê' | 'Ë' => 'E',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => 'O',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'Ù' | 'Ú' | 'Û' | 'Ü' => 'U',
        'ñ' => 'n',
        'Ñ' => 'N',
        'ç' => 'c',
        'Ç' => 'C',
        'ý' | 'ÿ' => 'y',
        'Ý' => 'Y',
        _ => return None,
    };
    Some(base)
}
