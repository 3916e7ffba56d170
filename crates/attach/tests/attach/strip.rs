use careline_attach::{Kind, StripError, StripReport, strip_metadata};
use tempfile::TempDir;

use crate::samples::{self, contains, write};

/// Strips `bytes` as `kind`; returns the report and the output bytes.
fn strip(kind: Kind, bytes: &[u8]) -> (StripReport, Vec<u8>) {
    let dir = TempDir::new().unwrap();
    let src = write(&dir, "in", bytes);
    let dst = dir.path().join("out");
    let report = strip_metadata(kind, &src, &dst).unwrap();
    (report, std::fs::read(&dst).unwrap())
}

fn strip_err(kind: Kind, bytes: &[u8]) -> StripError {
    let dir = TempDir::new().unwrap();
    let src = write(&dir, "in", bytes);
    let dst = dir.path().join("out");
    let err = strip_metadata(kind, &src, &dst).unwrap_err();
    assert!(
        !dst.exists(),
        "a failed strip must not leave a partial file"
    );
    err
}

#[test]
fn jpeg_loses_exif_gps_xmp_and_comments_but_keeps_image_data() {
    let jpeg = samples::jpeg_with_metadata();
    let (report, out) = strip(Kind::Jpeg, &jpeg.bytes);

    assert_eq!(
        report.removed,
        ["EXIF", "GPS", "XMP", "IPTC", "comment"],
        "report: {report:?}"
    );
    for gone in [
        &b"Exif"[..],
        b"GPS",
        b"\x88\x25",
        b"\x25\x88",
        b"ns.adobe.com",
        b"Calle Mayor",
        b"Leon",
    ] {
        assert!(
            !contains(&out, gone),
            "{:?} is still there",
            String::from_utf8_lossy(gone)
        );
    }
    let markers: Vec<u8> = samples::jpeg_segments(&out).iter().map(|s| s.0).collect();
    assert_eq!(markers, [0xE0, 0xE2, 0xEE, 0xDB, 0xC0, 0xC4, 0xC4, 0xDA]);
    assert!(contains(&out, b"ICC_PROFILE\0"), "colour profile kept");
    assert!(contains(&out, b"Adobe"), "Adobe colour transform kept");
    // Everything from SOS to EOI is byte-identical.
    let sos_out = samples::find(&out, &[0xFF, 0xDA]).unwrap();
    assert_eq!(&out[sos_out..], &jpeg.bytes[jpeg.sos_at..]);
    // The stripped file is itself clean.
    let (again, same) = strip(Kind::Jpeg, &out);
    assert!(again.is_empty());
    assert_eq!(same, out);
}

#[test]
fn jpeg_orientation_survives_in_a_fresh_exif_block() {
    let jpeg = samples::jpeg_with(&samples::exif_tiff_rotated_with_gps(6), &[0x3F]);
    let (report, out) = strip(Kind::Jpeg, &jpeg.bytes);
    assert!(
        report.contains("EXIF") && report.contains("GPS"),
        "{report:?}"
    );
    let segments = samples::jpeg_segments(&out);
    let app1: Vec<&Vec<u8>> = segments
        .iter()
        .filter(|s| s.0 == 0xE1)
        .map(|s| &s.1)
        .collect();
    assert_eq!(app1.len(), 1);
    // Exif id, big-endian TIFF header, one entry: orientation SHORT 1 = 6.
    assert_eq!(
        app1[0].as_slice(),
        b"Exif\0\0MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0"
    );
    assert!(!contains(&out, b"\x25\x88") && !contains(&out, b"\x88\x25"));

    // Upright photos get no EXIF block at all.
    let upright = samples::jpeg_with(&samples::exif_tiff_rotated_with_gps(1), &[0x3F]);
    let (_, out) = strip(Kind::Jpeg, &upright.bytes);
    assert!(!contains(&out, b"Exif"));
}

#[test]
fn jpeg_entropy_data_with_stuffing_restarts_and_fill_bytes_is_copied_exactly() {
    let entropy = [
        0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0x00, 0xFF, 0xD7, 0x78,
    ];
    let jpeg = samples::jpeg_with_entropy(&entropy);
    let (_, out) = strip(Kind::Jpeg, &jpeg.bytes);
    let sos_out = samples::find(&out, &[0xFF, 0xDA]).unwrap();
    assert_eq!(&out[sos_out..], &jpeg.bytes[jpeg.sos_at..]);
}

#[test]
fn jpeg_without_metadata_is_unchanged() {
    let plain = samples::jpeg_plain();
    let (report, out) = strip(Kind::Jpeg, &plain);
    assert!(report.is_empty(), "{report:?}");
    assert_eq!(out, plain);
}

#[test]
fn jpeg_trailing_data_is_dropped() {
    let mut bytes = samples::jpeg_plain();
    let len = bytes.len();
    bytes.extend_from_slice(b"\xFF\xD8appended second picture with its own Exif");
    let (report, out) = strip(Kind::Jpeg, &bytes);
    assert_eq!(report.removed, ["trailing data"]);
    assert_eq!(out.len(), len);
    assert!(out.ends_with(&[0xFF, 0xD9]));
}

#[test]
fn truncated_jpeg_is_a_clear_error() {
    let jpeg = samples::jpeg_with_metadata();
    // Cut inside the EXIF segment, which starts right after the JFIF one.
    let exif_at = 2 + 18;
    let cut = &jpeg.bytes[..exif_at + 30];
    let err = strip_err(Kind::Jpeg, cut);
    assert!(matches!(err, StripError::Malformed(_)));
    assert_eq!(
        err.to_string(),
        format!("JPEG segment at byte {exif_at} runs past the end of the file")
    );

    let no_eoi = &jpeg.bytes[..jpeg.bytes.len() - 2];
    let err = strip_err(Kind::Jpeg, no_eoi);
    assert!(
        err.to_string().contains("without an end-of-image marker"),
        "{err}"
    );

    let err = strip_err(Kind::Jpeg, &samples::png_with_metadata());
    assert_eq!(
        err.to_string(),
        "not a JPEG file: it does not start with a start-of-image marker"
    );

    let mut bad_len = samples::jpeg_plain();
    bad_len[4] = 0;
    bad_len[5] = 1;
    assert_eq!(
        strip_err(Kind::Jpeg, &bad_len).to_string(),
        "JPEG segment at byte 2 has an invalid length 1"
    );
}

#[test]
fn png_loses_text_exif_and_time_chunks_and_still_parses() {
    let png = samples::png_with_metadata();
    let (report, out) = strip(Kind::Png, &png);
    assert_eq!(
        report.removed,
        ["comment", "XMP", "EXIF", "GPS", "timestamp"]
    );
    assert_eq!(samples::png_chunks(&out), ["IHDR", "IDAT", "IEND"]);
    assert!(!contains(&out, b"GPS"));
    assert!(!contains(&out, b"rash"));
    // Kept chunks are byte-identical (IHDR and IDAT with their CRCs).
    let idat_in = samples::find(&png, b"IDAT").unwrap();
    let idat_out = samples::find(&out, b"IDAT").unwrap();
    assert_eq!(&out[idat_out - 4..], &png[idat_in - 4..]);
    assert_eq!(&out[..33], &png[..33]);
}

#[test]
fn png_errors_are_reported() {
    let png = samples::png_with_metadata();
    let err = strip_err(Kind::Png, &png[..40]);
    assert_eq!(
        err.to_string(),
        "PNG chunk at byte 33 runs past the end of the file"
    );
    let without_iend = &png[..png.len() - 12];
    let err = strip_err(Kind::Png, without_iend);
    assert!(err.to_string().contains("without an IEND chunk"), "{err}");
}

#[test]
fn webp_loses_exif_and_xmp_and_gets_a_correct_riff_size() {
    let webp = samples::webp_with_metadata();
    let (report, out) = strip(Kind::Webp, &webp);
    assert_eq!(report.removed, ["EXIF", "GPS", "XMP"]);
    let riff_size = u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize;
    assert_eq!(riff_size, out.len() - 8);
    let chunks = samples::webp_chunks(&out);
    let names: Vec<&str> = chunks.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, ["VP8X", "VP8L"]);
    assert_eq!(chunks[0].1[0] & 0x0C, 0, "EXIF and XMP flags cleared");
    assert_eq!(chunks[0].1[1..], [0u8; 9]);
    assert_eq!(chunks[1].1, samples::VP8L_DATA);
    assert!(!contains(&out, b"GPS"));
}

#[test]
fn webp_chunk_overrunning_the_riff_is_an_error() {
    let mut webp = samples::webp_with_metadata();
    // Make the VP8L chunk claim more bytes than there are.
    webp[34..38].copy_from_slice(&1000u32.to_le_bytes());
    let err = strip_err(Kind::Webp, &webp);
    assert_eq!(
        err.to_string(),
        "WebP chunk at byte 30 runs past the end of the RIFF data"
    );
}

#[test]
fn heic_exif_and_xmp_items_are_blanked_in_place() {
    for in_idat in [false, true] {
        let heic = samples::heic_with_metadata(in_idat);
        let (report, out) = strip(Kind::Heic, &heic.bytes);
        assert_eq!(report.removed, ["EXIF", "GPS", "XMP"], "idat: {in_idat}");
        assert_eq!(out.len(), heic.bytes.len());
        // EXIF item: an empty EXIF block (offset 0, TIFF header, IFD0 with
        // no entries), then zeros.
        let exif = &out[heic.exif.clone()];
        assert_eq!(&exif[..18], b"\0\0\0\0MM\0*\0\0\0\x08\0\0\0\0\0\0");
        assert!(exif[18..].iter().all(|&b| b == 0));
        // XMP item: an empty packet padded with spaces.
        let xmp = &out[heic.xmp.clone()];
        let empty = b"<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"/>";
        assert_eq!(&xmp[..empty.len()], empty);
        assert!(xmp[empty.len()..].iter().all(|&b| b == b' '));
        assert_eq!(&out[heic.image.clone()], samples::HEVC_DATA);
        for (i, (a, b)) in heic.bytes.iter().zip(&out).enumerate() {
            if !heic.exif.contains(&i) && !heic.xmp.contains(&i) {
                assert_eq!(a, b, "byte {i} changed");
            }
        }
        assert!(!contains(&out, b"GPS"));
    }
}

#[test]
fn heic_item_past_the_end_is_an_error() {
    let heic = samples::heic_with_metadata(false);
    // Drop the tail of mdat (the XMP item) and shrink mdat to match.
    let cut = heic.xmp.start;
    let mut bytes = heic.bytes[..cut].to_vec();
    let mdat_at = samples::find(&bytes, b"mdat").unwrap() - 4;
    let mdat_len = u32::try_from(bytes.len() - mdat_at).unwrap();
    bytes[mdat_at..mdat_at + 4].copy_from_slice(&mdat_len.to_be_bytes());
    let err = strip_err(Kind::Heic, &bytes);
    assert_eq!(
        err.to_string(),
        "HEIF XMP item 3 runs past the end of the file"
    );

    let err = strip_err(Kind::Heic, &heic.bytes[..heic.bytes.len() - 1]);
    assert!(
        err.to_string().starts_with("HEIF box 'mdat' at byte"),
        "{err}"
    );
}

#[test]
fn pdf_and_text_are_copied_unchanged() {
    for (kind, bytes) in [
        (Kind::Pdf, samples::pdf()),
        (Kind::Text, samples::SPANISH_TEXT.as_bytes().to_vec()),
    ] {
        let (report, out) = strip(kind, &bytes);
        assert!(report.is_empty());
        assert_eq!(out, bytes);
    }
}

#[test]
fn missing_source_is_an_io_error() {
    let dir = TempDir::new().unwrap();
    let err = strip_metadata(
        Kind::Jpeg,
        &dir.path().join("nope"),
        &dir.path().join("out"),
    )
    .unwrap_err();
    assert!(matches!(err, StripError::Io(_)));
}
