//! JPEG: drop metadata segments, copy everything else byte for byte.

use std::io::Write;

use super::{Source, StripError, StripReport, malformed};

const SOS: u8 = 0xDA;
const EOI: u8 = 0xD9;
const SOI: u8 = 0xD8;
const COM: u8 = 0xFE;

pub(crate) fn strip(
    src: &mut Source,
    out: &mut impl Write,
    report: &mut StripReport,
) -> Result<(), StripError> {
    if src.len() < 2 {
        return Err(malformed("not a JPEG file: it is too short"));
    }
    let mut soi = [0u8; 2];
    src.read_exact(&mut soi)?;
    if soi != [0xFF, SOI] {
        return Err(malformed(
            "not a JPEG file: it does not start with a start-of-image marker",
        ));
    }
    out.write_all(&soi)?;

    let mut segment = Vec::new();
    let mut pending = None;
    let mut wrote_orientation = false;
    loop {
        let (marker, at) = match pending.take() {
            Some(found) => found,
            None => read_marker(src, out)?,
        };
        match marker {
            EOI => {
                out.write_all(&[0xFF, EOI])?;
                if src.remaining() > 0 {
                    report.add("trailing data");
                }
                return Ok(());
            }
            // Standalone markers without a length.
            0x01 | 0xD0..=0xD7 => out.write_all(&[0xFF, marker])?,
            0x00 | SOI => {
                return Err(malformed(format!(
                    "unexpected JPEG marker 0xFF{marker:02X} at byte {at}"
                )));
            }
            _ => {
                if src.remaining() < 2 {
                    return Err(past_end(at));
                }
                let mut len_bytes = [0u8; 2];
                src.read_exact(&mut len_bytes)?;
                let len = u16::from_be_bytes(len_bytes);
                if len < 2 {
                    return Err(malformed(format!(
                        "JPEG segment at byte {at} has an invalid length {len}"
                    )));
                }
                let body = len - 2;
                if u64::from(body) > src.remaining() {
                    return Err(past_end(at));
                }
                if matches!(marker, 0xE0..=0xEF | COM) {
                    src.read_into(usize::from(body), &mut segment)?;
                    match drop_label(marker, &segment) {
                        Some("EXIF") => {
                            report.add_exif(&segment);
                            if let Some(value) = super::exif::orientation(&segment)
                                && !wrote_orientation
                            {
                                wrote_orientation = true;
                                let fresh = super::exif::orientation_only(value);
                                let len = u16::try_from(fresh.len() + 2).unwrap_or(u16::MAX);
                                out.write_all(&[0xFF, 0xE1])?;
                                out.write_all(&len.to_be_bytes())?;
                                out.write_all(&fresh)?;
                            }
                        }
                        Some(label) => report.add(label),
                        None => {
                            out.write_all(&[0xFF, marker])?;
                            out.write_all(&len_bytes)?;
                            out.write_all(&segment)?;
                        }
                    }
                } else {
                    out.write_all(&[0xFF, marker])?;
                    out.write_all(&len_bytes)?;
                    src.copy_to(u64::from(body), out)?;
                    if marker == SOS {
                        pending = Some(copy_entropy(src, out, at)?);
                    }
                }
            }
        }
    }
}

fn past_end(at: u64) -> StripError {
    malformed(format!(
        "JPEG segment at byte {at} runs past the end of the file"
    ))
}

fn no_end(at: u64) -> StripError {
    malformed(format!(
        "JPEG file ends at byte {at} without an end-of-image marker"
    ))
}

/// Reads the next marker between segments, keeping any fill bytes (extra
/// 0xFF before a marker). Returns the marker code and where it starts.
fn read_marker(src: &mut Source, out: &mut impl Write) -> Result<(u8, u64), StripError> {
    let at = src.pos();
    if src.remaining() == 0 {
        return Err(no_end(at));
    }
    let first = src.read_u8()?;
    if first != 0xFF {
        return Err(malformed(format!(
            "expected a JPEG marker at byte {at}, found 0x{first:02X}"
        )));
    }
    loop {
        if src.remaining() == 0 {
            return Err(no_end(src.pos()));
        }
        let code = src.read_u8()?;
        if code != 0xFF {
            return Ok((code, at));
        }
        out.write_all(&[0xFF])?;
    }
}

/// Copies entropy-coded data after a start-of-scan header up to the next
/// marker that is not a stuffed byte (0xFF00) or a restart marker, which
/// it returns unwritten (fill bytes before it are written).
fn copy_entropy(
    src: &mut Source,
    out: &mut impl Write,
    sos_at: u64,
) -> Result<(u8, u64), StripError> {
    loop {
        let (consumed, found_ff) = {
            let buf = src.fill_buf()?;
            if buf.is_empty() {
                return Err(malformed(format!(
                    "JPEG image data starting at byte {sos_at} ends without an end-of-image marker"
                )));
            }
            match buf.iter().position(|&b| b == 0xFF) {
                None => {
                    out.write_all(buf)?;
                    (buf.len(), false)
                }
                Some(i) => {
                    out.write_all(buf.get(..i).unwrap_or_default())?;
                    (i + 1, true)
                }
            }
        };
        src.consume(consumed);
        if !found_ff {
            continue;
        }
        let at = src.pos() - 1;
        let mut fills = 0usize;
        let code = loop {
            if src.remaining() == 0 {
                return Err(no_end(src.pos()));
            }
            let b = src.read_u8()?;
            if b != 0xFF {
                break b;
            }
            fills += 1;
        };
        if code == 0x00 || (0xD0..=0xD7).contains(&code) {
            out.write_all(&vec![0xFF; fills + 1])?;
            out.write_all(&[code])?;
        } else {
            out.write_all(&vec![0xFF; fills])?;
            return Ok((code, at + fills as u64));
        }
    }
}

/// The report label for a metadata segment that is dropped, or `None` for
/// one that is kept.
fn drop_label(marker: u8, body: &[u8]) -> Option<&'static str> {
    let label = match marker {
        // JFIF / JFXX: resolution and an optional thumbnail; no location.
        0xE0 => return None,
        0xE1 if body.starts_with(b"Exif") => "EXIF",
        0xE1 if body.starts_with(b"http://ns.adobe.com/xap/1.0/\0")
            || body.starts_with(b"http://ns.adobe.com/xmp/extension/\0") =>
        {
            "XMP"
        }
        // The colour profile is needed to show the photo correctly.
        0xE2 if body.starts_with(b"ICC_PROFILE\0") => return None,
        0xED if body.starts_with(b"Photoshop 3.0\0") => "IPTC",
        // Adobe's segment says how to convert the colour channels.
        0xEE if body.starts_with(b"Adobe") => return None,
        COM => "comment",
        _ => "other metadata",
    };
    Some(label)
}
