//! Content sniffing: what a file is, judged from its bytes alone.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::kind::{Kind, essence};

/// How many leading bytes are kept for magic-number checks.
const HEAD_LEN: usize = 4096;
/// Read buffer used by [`sniff_file`].
const READ_BUF: usize = 64 * 1024;

/// What a file's content turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// One of the accepted kinds.
    Allowed(Kind),
    /// Something careline does not accept. `mime` is the media type the
    /// content looks like; `what` is a phrase for the member ("a ZIP
    /// archive", "a Windows executable", ...) that reads well after
    /// "this file looks like".
    Refused {
        mime: &'static str,
        what: &'static str,
    },
}

impl Detected {
    /// The accepted kind, if any.
    pub fn kind(self) -> Option<Kind> {
        match self {
            Detected::Allowed(kind) => Some(kind),
            Detected::Refused { .. } => None,
        }
    }

    /// The media type of what was detected.
    pub fn mime(self) -> &'static str {
        match self {
            Detected::Allowed(kind) => kind.mime(),
            Detected::Refused { mime, .. } => mime,
        }
    }

    /// A short phrase describing what was detected.
    pub fn what(self) -> &'static str {
        match self {
            Detected::Allowed(kind) => kind.description(),
            Detected::Refused { what, .. } => what,
        }
    }
}

impl fmt::Display for Detected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what())
    }
}

const fn refused(mime: &'static str, what: &'static str) -> Detected {
    Detected::Refused { mime, what }
}

const UNKNOWN: Detected = refused("application/octet-stream", "binary data of unknown type");
const EMPTY: Detected = refused("application/x-empty", "an empty file");

/// Sniffs a file by streaming through it with a 64 KiB buffer.
///
/// Reading stops as soon as the answer cannot change (a known binary
/// signature was seen, or the content can no longer be plain text);
/// otherwise the whole file is read to confirm it is clean UTF-8 text.
pub fn sniff_file(path: &Path) -> io::Result<Detected> {
    let mut file = File::open(path)?;
    let mut sniffer = Sniffer::new();
    let mut buf = vec![0u8; READ_BUF];
    while sniffer.needs_more() {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sniffer.update(buf.get(..n).unwrap_or_default());
    }
    Ok(sniffer.finish())
}

/// Incremental content sniffer for callers that stream an upload: feed every
/// chunk to [`Sniffer::update`], then call [`Sniffer::finish`].
///
/// Memory use is constant: the first 4 KiB are kept for signature checks and
/// the rest is only run through a UTF-8/control-character check.
#[derive(Debug, Clone)]
pub struct Sniffer {
    head: Vec<u8>,
    total: u64,
    text: TextCheck,
}

impl Default for Sniffer {
    fn default() -> Self {
        Self::new()
    }
}

impl Sniffer {
    /// A sniffer that has seen nothing yet.
    pub fn new() -> Self {
        Sniffer {
            head: Vec::with_capacity(HEAD_LEN),
            total: 0,
            text: TextCheck::new(),
        }
    }

    /// Feeds the next chunk of content.
    pub fn update(&mut self, chunk: &[u8]) {
        let room = HEAD_LEN.saturating_sub(self.head.len());
        self.head
            .extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        self.total = self.total.saturating_add(chunk.len() as u64);
        self.text.feed(chunk);
    }

    /// Whether more content could still change the answer. Once this is
    /// false, a caller may stop feeding (the rest is ignored anyway).
    pub fn needs_more(&self) -> bool {
        if self.head.len() < HEAD_LEN {
            return true;
        }
        self.text.ok && strong_magic(&self.head).is_none()
    }

    /// How many bytes have been fed.
    pub fn bytes_seen(&self) -> u64 {
        self.total
    }

    /// The verdict on everything fed so far.
    pub fn finish(self) -> Detected {
        if self.total == 0 {
            return EMPTY;
        }
        if let Some(found) = strong_magic(&self.head) {
            return found;
        }
        if self.text.is_valid() {
            return text_like(&self.head);
        }
        weak_magic(&self.head).unwrap_or(UNKNOWN)
    }
}

/// Streaming check that content is UTF-8 without control characters other
/// than tab, line feed, form feed and carriage return. C1 controls
/// (U+0080..U+009F) and DEL are refused too.
#[derive(Debug, Clone)]
struct TextCheck {
    ok: bool,
    /// Continuation bytes still expected for the current character.
    need: u8,
    /// Code point bits gathered so far.
    cp: u32,
    /// Allowed range for the next continuation byte.
    lo: u8,
    hi: u8,
}

impl TextCheck {
    fn new() -> Self {
        TextCheck {
            ok: true,
            need: 0,
            cp: 0,
            lo: 0x80,
            hi: 0xBF,
        }
    }

    fn is_valid(&self) -> bool {
        self.ok && self.need == 0
    }

    fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if !self.ok {
                return;
            }
            self.push(b);
        }
    }

    fn push(&mut self, b: u8) {
        if self.need > 0 {
            if b < self.lo || b > self.hi {
                self.ok = false;
                return;
            }
            self.cp = (self.cp << 6) | u32::from(b & 0x3F);
            self.need -= 1;
            self.lo = 0x80;
            self.hi = 0xBF;
            if self.need == 0 && (0x80..=0x9F).contains(&self.cp) {
                self.ok = false;
            }
            return;
        }
        let (need, bits, lo, hi) = match b {
            0x09 | 0x0A | 0x0C | 0x0D | 0x20..=0x7E => return,
            0xC2..=0xDF => (1, b & 0x1F, 0x80, 0xBF),
            0xE0 => (2, b & 0x0F, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, b & 0x0F, 0x80, 0xBF),
            0xED => (2, b & 0x0F, 0x80, 0x9F),
            0xF0 => (3, b & 0x07, 0x90, 0xBF),
            0xF1..=0xF3 => (3, b & 0x07, 0x80, 0xBF),
            0xF4 => (3, b & 0x07, 0x80, 0x8F),
            _ => {
                self.ok = false;
                return;
            }
        };
        self.need = need;
        self.cp = u32::from(bits);
        self.lo = lo;
        self.hi = hi;
    }
}

fn at(head: &[u8], offset: usize, sig: &[u8]) -> bool {
    offset
        .checked_add(sig.len())
        .and_then(|end| head.get(offset..end))
        == Some(sig)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Signatures that decide the matter whatever follows.
fn strong_magic(h: &[u8]) -> Option<Detected> {
    let start = |sig: &[u8]| h.starts_with(sig);
    let found = if start(b"\xFF\xD8\xFF") {
        Detected::Allowed(Kind::Jpeg)
    } else if start(b"\x89PNG\r\n\x1A\n") {
        Detected::Allowed(Kind::Png)
    } else if start(b"%PDF-") {
        Detected::Allowed(Kind::Pdf)
    } else if start(b"RIFF") && h.len() >= 12 {
        riff(h)
    } else if at(h, 4, b"ftyp") {
        iso_media(h)
    } else if start(b"PK\x03\x04") || start(b"PK\x05\x06") || start(b"PK\x07\x08") {
        zip(h)
    } else if start(b"GIF87a") || start(b"GIF89a") {
        refused("image/gif", "a GIF image")
    } else if start(b"\x7FELF") {
        refused(
            "application/x-executable",
            "an ELF executable (Linux program)",
        )
    } else if start(b"\xFE\xED\xFA\xCE")
        || start(b"\xFE\xED\xFA\xCF")
        || start(b"\xCE\xFA\xED\xFE")
        || start(b"\xCF\xFA\xED\xFE")
    {
        refused("application/x-mach-binary", "a macOS executable")
    } else if start(b"\xCA\xFE\xBA\xBE") {
        refused(
            "application/java-vm",
            "a Java class file or macOS universal executable",
        )
    } else if start(b"\x00asm") {
        refused("application/wasm", "a WebAssembly module")
    } else if start(b"7z\xBC\xAF\x27\x1C") {
        refused("application/x-7z-compressed", "a 7-Zip archive")
    } else if start(b"Rar!\x1A\x07") {
        refused("application/vnd.rar", "a RAR archive")
    } else if start(b"\x1F\x8B") {
        refused("application/gzip", "a gzip-compressed file")
    } else if start(b"\xFD7zXZ\x00") {
        refused("application/x-xz", "an XZ-compressed file")
    } else if start(b"\x28\xB5\x2F\xFD") {
        refused("application/zstd", "a Zstandard-compressed file")
    } else if start(b"MSCF\x00\x00\x00\x00") {
        refused(
            "application/vnd.ms-cab-compressed",
            "a Windows cabinet archive",
        )
    } else if at(h, 257, b"ustar") {
        refused("application/x-tar", "a tar archive")
    } else if start(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        refused(
            "application/x-ole-storage",
            "a legacy Microsoft Office document (DOC, XLS, PPT or MSG)",
        )
    } else if start(b"SQLite format 3\x00") {
        refused("application/vnd.sqlite3", "an SQLite database")
    } else if start(b"II*\x00") || start(b"MM\x00*") {
        refused("image/tiff", "a TIFF image")
    } else if start(b"\x00\x00\x01\x00") {
        refused("image/vnd.microsoft.icon", "a Windows icon")
    } else if start(b"\xFF\x0A") || start(b"\x00\x00\x00\x0CJXL \x0D\x0A\x87\x0A") {
        refused("image/jxl", "a JPEG XL image")
    } else if start(b"\x00\x00\x00\x0CjP  \x0D\x0A\x87\x0A") {
        refused("image/jp2", "a JPEG 2000 image")
    } else if start(b"8BPS") {
        refused("image/vnd.adobe.photoshop", "a Photoshop document")
    } else if start(b"OggS") {
        refused("application/ogg", "an Ogg audio or video file")
    } else if start(b"fLaC") {
        refused("audio/flac", "a FLAC audio file")
    } else if start(b"\x1A\x45\xDF\xA3") {
        refused("video/webm", "a WebM or Matroska video")
    } else if start(b"%!PS") {
        refused("application/postscript", "a PostScript document")
    } else if start(b"{\\rtf") {
        refused("application/rtf", "an RTF document")
    } else if start(b"\xFF\xFE") || start(b"\xFE\xFF") {
        refused(
            "text/plain; charset=utf-16",
            "UTF-16 text (only UTF-8 text is accepted)",
        )
    } else {
        return None;
    };
    Some(found)
}

/// Short signatures that plain text could also start with; only used once
/// the content is known not to be text.
fn weak_magic(h: &[u8]) -> Option<Detected> {
    let start = |sig: &[u8]| h.starts_with(sig);
    let found = if start(b"MZ") {
        refused(
            "application/vnd.microsoft.portable-executable",
            "a Windows executable",
        )
    } else if start(b"BM") {
        refused("image/bmp", "a BMP image")
    } else if start(b"BZh") {
        refused("application/x-bzip2", "a bzip2-compressed file")
    } else if start(b"ID3") || start(b"\xFF\xFB") || start(b"\xFF\xF3") || start(b"\xFF\xF2") {
        refused("audio/mpeg", "an MP3 audio file")
    } else {
        return None;
    };
    Some(found)
}

fn riff(h: &[u8]) -> Detected {
    if at(h, 8, b"WEBP") {
        Detected::Allowed(Kind::Webp)
    } else if at(h, 8, b"WAVE") {
        refused("audio/wav", "a WAV audio file")
    } else if at(h, 8, b"AVI ") {
        refused("video/x-msvideo", "an AVI video")
    } else {
        refused(
            "application/octet-stream",
            "a RIFF container of unknown type",
        )
    }
}

/// ISO base media files (HEIF, MP4, QuickTime, ...), told apart by the
/// brands in the leading `ftyp` box.
fn iso_media(h: &[u8]) -> Detected {
    let declared = h
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes) as usize;
    let end = declared.clamp(16, h.len().max(16)).min(h.len());
    let major = h.get(8..12).unwrap_or_default();
    let brands: Vec<&[u8]> = std::iter::once(major)
        .chain(h.get(16..end).unwrap_or_default().chunks_exact(4))
        .collect();
    let any = |names: &[&[u8]]| brands.iter().any(|b| names.contains(b));
    if any(&[b"avif", b"avis"]) {
        refused("image/avif", "an AVIF image")
    } else if any(&[
        b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1",
    ]) {
        Detected::Allowed(Kind::Heic)
    } else if major == b"qt  " {
        refused("video/quicktime", "a QuickTime video")
    } else if major == b"M4A " || major == b"M4B " {
        refused("audio/mp4", "an MPEG-4 audio file")
    } else if major.starts_with(b"3g") {
        refused("video/3gpp", "a 3GP video")
    } else {
        refused("video/mp4", "an MP4 video")
    }
}

fn zip(h: &[u8]) -> Detected {
    let name_len = h
        .get(26..28)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u16::from_le_bytes) as usize;
    let first_name = h.get(30..30 + name_len).unwrap_or_default();
    if first_name == b"mimetype" && contains(h, b"application/vnd.oasis.opendocument") {
        refused(
            "application/vnd.oasis.opendocument",
            "an OpenDocument file (ODT, ODS or ODP)",
        )
    } else if contains(h, b"word/") {
        refused(
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "a Word document (DOCX)",
        )
    } else if contains(h, b"xl/") {
        refused(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "an Excel workbook (XLSX)",
        )
    } else if contains(h, b"ppt/") {
        refused(
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "a PowerPoint presentation (PPTX)",
        )
    } else if first_name == b"AndroidManifest.xml" || contains(h, b"classes.dex") {
        refused(
            "application/vnd.android.package-archive",
            "an Android app (APK)",
        )
    } else if first_name.starts_with(b"META-INF/") {
        refused("application/java-archive", "a Java archive (JAR)")
    } else {
        refused("application/zip", "a ZIP archive")
    }
}

/// Valid UTF-8 text may still be markup or a script that a browser or
/// desktop would treat as active content.
fn text_like(h: &[u8]) -> Detected {
    let body = h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h);
    let skip = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let body = body.get(skip..).unwrap_or_default();
    let lower: Vec<u8> = body.iter().take(1024).map(u8::to_ascii_lowercase).collect();
    let html = refused("text/html", "an HTML document");
    if lower.starts_with(b"<?xml") {
        return if contains(&lower, b"<svg") {
            refused("image/svg+xml", "an SVG image")
        } else if contains(&lower, b"<html") {
            html
        } else {
            refused("application/xml", "an XML document")
        };
    }
    if lower.starts_with(b"<svg") {
        return refused("image/svg+xml", "an SVG image");
    }
    if lower.starts_with(b"<!--") || lower.starts_with(b"<!doctype html") {
        return html;
    }
    const TAGS: [&[u8]; 17] = [
        b"html", b"head", b"body", b"script", b"iframe", b"h1", b"div", b"font", b"table", b"a",
        b"style", b"title", b"b", b"br", b"p", b"meta", b"object",
    ];
    if let Some(rest) = lower.strip_prefix(b"<") {
        for tag in TAGS {
            if let Some(after) = rest.strip_prefix(tag)
                && matches!(
                    after.first(),
                    Some(b' ' | b'>' | b'\t' | b'\n' | b'\r' | b'/')
                )
            {
                return html;
            }
        }
    }
    if body.starts_with(b"#!") {
        return refused("text/x-shellscript", "a script (it starts with #!)");
    }
    Detected::Allowed(Kind::Text)
}

/// A declared type that disagrees with the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the file was declared as {declared} but its content is {detected}")]
pub struct Mismatch {
    /// The declared `Content-Type`, trimmed.
    pub declared: String,
    /// What the content actually is.
    pub detected: Kind,
}

/// Media types that make no claim about the content.
const NO_CLAIM: [&str; 4] = [
    "application/octet-stream",
    "binary/octet-stream",
    "application/unknown",
    "application/x-unknown",
];

/// `text/*` types that claim active content rather than plain text.
const ACTIVE_TEXT: [&str; 5] = [
    "text/html",
    "text/xml",
    "text/javascript",
    "text/ecmascript",
    "text/css",
];

/// Compares the client's declared `Content-Type` with the detected kind.
///
/// No declaration, an empty one or `application/octet-stream` is no claim
/// and always passes. Aliases count as the same type (`image/jpg` for a
/// JPEG, `image/heif` for HEIC). Because browsers derive the declared type
/// from the file extension, text content also passes with any `text/*`
/// type except markup and script types (`text/csv` and `text/markdown` are
/// fine; `text/html` is a mismatch).
pub fn check_declared(declared: Option<&str>, detected: Kind) -> Result<(), Mismatch> {
    let Some(declared) = declared else {
        return Ok(());
    };
    let claimed = essence(declared);
    if claimed.is_empty() || NO_CLAIM.contains(&claimed.as_str()) {
        return Ok(());
    }
    if Kind::from_mime(&claimed) == Some(detected) {
        return Ok(());
    }
    if detected == Kind::Text
        && claimed.starts_with("text/")
        && !ACTIVE_TEXT.contains(&claimed.as_str())
    {
        return Ok(());
    }
    Err(Mismatch {
        declared: declared.trim().to_owned(),
        detected,
    })
}
