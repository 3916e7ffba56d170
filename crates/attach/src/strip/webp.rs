//! WebP: drop the EXIF and XMP chunks and the flags announcing them.

use std::io::Write;

use super::{Source, StripError, StripReport, malformed};

/// VP8X flag bits for an EXIF chunk and an XMP chunk.
const FLAG_EXIF: u8 = 0x08;
const FLAG_XMP: u8 = 0x04;

/// Writes the stripped file with a placeholder RIFF size and returns the
/// real size, which the caller writes at offset 4.
pub(crate) fn strip(
    src: &mut Source,
    out: &mut impl Write,
    report: &mut StripReport,
) -> Result<u32, StripError> {
    if src.len() < 12 {
        return Err(malformed("not a WebP file: it is too short"));
    }
    let mut header = [0u8; 12];
    src.read_exact(&mut header)?;
    let (riff, rest) = header.split_at(4);
    let (size_bytes, form) = rest.split_at(4);
    if riff != b"RIFF" || form != b"WEBP" {
        return Err(malformed(
            "not a WebP file: the RIFF/WEBP header is missing",
        ));
    }
    let riff_size = u32::from_le_bytes(size_bytes.try_into().unwrap_or_default());
    let riff_end = 8 + u64::from(riff_size);
    if riff_size < 4 {
        return Err(malformed(format!(
            "WebP RIFF size {riff_size} is too small"
        )));
    }
    if riff_end > src.len() {
        return Err(malformed(format!(
            "WebP RIFF size {riff_size} runs past the end of the file ({} bytes)",
            src.len()
        )));
    }
    out.write_all(b"RIFF\0\0\0\0WEBP")?;
    // Counts "WEBP" and every chunk written.
    let mut out_size: u64 = 4;

    let mut payload = Vec::new();
    while src.pos() < riff_end {
        let at = src.pos();
        if riff_end - at < 8 {
            return Err(past_end(at));
        }
        let mut chunk_header = [0u8; 8];
        src.read_exact(&mut chunk_header)?;
        let (fourcc, len_bytes) = chunk_header.split_at(4);
        let len = u64::from(u32::from_le_bytes(len_bytes.try_into().unwrap_or_default()));
        let data_end = src.pos() + len;
        if data_end > riff_end {
            return Err(past_end(at));
        }
        // Chunks are padded to an even size. A missing pad byte after the
        // last chunk is tolerated (several encoders forget it) and added.
        let padded = len % 2 == 1;
        let pad_present = padded && data_end < riff_end;
        match fourcc {
            b"EXIF" => {
                src.peek_and_skip(len, &mut payload)?;
                report.add_exif(&payload);
            }
            b"XMP " => {
                src.skip(len)?;
                report.add("XMP");
            }
            b"VP8X" => {
                if len < 10 {
                    return Err(malformed(format!(
                        "WebP VP8X chunk at byte {at} is too short"
                    )));
                }
                src.read_into(len as usize, &mut payload)?;
                if let Some(flags) = payload.first_mut() {
                    *flags &= !(FLAG_EXIF | FLAG_XMP);
                }
                out.write_all(&chunk_header)?;
                out.write_all(&payload)?;
                out_size += 8 + len;
            }
            _ => {
                out.write_all(&chunk_header)?;
                src.copy_to(len, out)?;
                out_size += 8 + len;
            }
        }
        if pad_present {
            let pad = src.read_u8()?;
            if kept(fourcc) {
                out.write_all(&[pad])?;
                out_size += 1;
            }
        } else if padded && kept(fourcc) {
            out.write_all(&[0])?;
            out_size += 1;
        }
    }
    if src.remaining() > 0 {
        report.add("trailing data");
    }
    u32::try_from(out_size).map_err(|_| malformed("WebP output would exceed the RIFF size limit"))
}

fn kept(fourcc: &[u8]) -> bool {
    fourcc != b"EXIF" && fourcc != b"XMP "
}

fn past_end(at: u64) -> StripError {
    malformed(format!(
        "WebP chunk at byte {at} runs past the end of the RIFF data"
    ))
}
