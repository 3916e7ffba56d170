//! PNG: drop metadata chunks, copy every other chunk unchanged.

use std::io::Write;

use super::{Source, StripError, StripReport, malformed};

const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1A\n";

pub(crate) fn strip(
    src: &mut Source,
    out: &mut impl Write,
    report: &mut StripReport,
) -> Result<(), StripError> {
    let mut signature = [0u8; 8];
    if src.len() < 8 {
        return Err(malformed("not a PNG file: it is too short"));
    }
    src.read_exact(&mut signature)?;
    if &signature != SIGNATURE {
        return Err(malformed("not a PNG file: the signature is wrong"));
    }
    out.write_all(&signature)?;

    let mut peek = Vec::new();
    let mut first = true;
    loop {
        let at = src.pos();
        if src.remaining() == 0 {
            return Err(malformed(format!(
                "PNG file ends at byte {at} without an IEND chunk"
            )));
        }
        if src.remaining() < 12 {
            return Err(past_end(at));
        }
        let mut header = [0u8; 8];
        src.read_exact(&mut header)?;
        let (len_bytes, kind) = header.split_at(4);
        let len = u32::from_be_bytes(len_bytes.try_into().unwrap_or_default());
        if len > 0x7FFF_FFFF {
            return Err(malformed(format!(
                "PNG chunk at byte {at} has an invalid length {len}"
            )));
        }
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(malformed(format!(
                "PNG chunk at byte {at} has an invalid type"
            )));
        }
        if first && kind != b"IHDR" {
            return Err(malformed("PNG file does not start with an IHDR chunk"));
        }
        first = false;
        // Data plus the 4-byte CRC.
        let rest = u64::from(len) + 4;
        if rest > src.remaining() {
            return Err(past_end(at));
        }
        match drop_label(kind) {
            Some(label) => {
                src.peek_and_skip(u64::from(len), &mut peek)?;
                src.skip(4)?;
                match label {
                    "text chunk" => report.add(text_label(&peek)),
                    "EXIF" => report.add_exif(&peek),
                    other => report.add(other),
                }
            }
            None => {
                out.write_all(&header)?;
                src.copy_to(rest, out)?;
            }
        }
        if kind == b"IEND" {
            if src.remaining() > 0 {
                report.add("trailing data");
            }
            return Ok(());
        }
    }
}

fn past_end(at: u64) -> StripError {
    malformed(format!(
        "PNG chunk at byte {at} runs past the end of the file"
    ))
}

fn drop_label(kind: &[u8]) -> Option<&'static str> {
    let label = match kind {
        b"eXIf" => "EXIF",
        b"tEXt" | b"zTXt" | b"iTXt" => "text chunk",
        b"tIME" => "timestamp",
        b"caBX" => "content credentials",
        _ => return None,
    };
    Some(label)
}

/// A finer label for a text chunk, from its keyword.
fn text_label(data: &[u8]) -> &'static str {
    let keyword = data.split(|&b| b == 0).next().unwrap_or_default();
    match keyword {
        b"XML:com.adobe.xmp" | b"Raw profile type xmp" => "XMP",
        b"Raw profile type exif" | b"Raw profile type APP1" => "EXIF",
        b"Raw profile type iptc" => "IPTC",
        b"Comment" => "comment",
        _ => "text chunk",
    }
}
