use careline_attach::{Detected, Kind, Sniffer, check_declared, sniff_file};
use tempfile::TempDir;

use crate::samples::{self, write};

fn sniff(bytes: &[u8]) -> Detected {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "upload", bytes);
    let from_file = sniff_file(&path).unwrap();
    // Streaming in awkward pieces must agree with reading the file.
    let mut sniffer = Sniffer::new();
    for piece in bytes.chunks(7) {
        sniffer.update(piece);
    }
    assert_eq!(sniffer.finish(), from_file);
    from_file
}

fn refused_as(bytes: &[u8]) -> &'static str {
    match sniff(bytes) {
        Detected::Refused { what, .. } => what,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn accepted_kinds_are_recognised_from_content() {
    let cases = [
        (samples::jpeg_with_metadata().bytes, Kind::Jpeg),
        (samples::png_with_metadata(), Kind::Png),
        (samples::webp_with_metadata(), Kind::Webp),
        (samples::heic_with_metadata(false).bytes, Kind::Heic),
        (samples::pdf(), Kind::Pdf),
        (samples::SPANISH_TEXT.as_bytes().to_vec(), Kind::Text),
    ];
    for (bytes, kind) in cases {
        assert_eq!(sniff(&bytes), Detected::Allowed(kind), "{kind:?}");
    }
}

#[test]
fn text_with_a_bom_and_a_split_multibyte_character_is_text() {
    let text = "\u{FEFF}niño ñandú 🩺\n";
    let mut sniffer = Sniffer::new();
    for b in text.as_bytes() {
        sniffer.update(std::slice::from_ref(b));
    }
    assert_eq!(sniffer.finish(), Detected::Allowed(Kind::Text));
}

#[test]
fn text_is_checked_over_the_whole_file() {
    // 200 KB of clean text, then one NUL: not text.
    let mut bytes = "línea de notas clínicas\n".repeat(8_000).into_bytes();
    bytes.push(0);
    bytes.extend_from_slice(b"more\n");
    assert_eq!(refused_as(&bytes), "binary data of unknown type");
    // Invalid UTF-8 far into the file.
    let mut latin1 = "ok\n".repeat(50_000).into_bytes();
    latin1.push(0xE9);
    assert_eq!(refused_as(&latin1), "binary data of unknown type");
}

#[test]
fn control_characters_and_escapes_are_not_text() {
    assert_eq!(
        refused_as(b"hello\x1b[31mred"),
        "binary data of unknown type"
    );
    assert_eq!(
        refused_as("C1 \u{85} control".as_bytes()),
        "binary data of unknown type"
    );
    assert_eq!(refused_as(b"del\x7f"), "binary data of unknown type");
    assert_eq!(
        refused_as(b"text with NUL\0"),
        "binary data of unknown type"
    );
}

#[test]
fn other_formats_are_refused_with_a_name() {
    assert_eq!(
        refused_as(&samples::zip_stored("a.txt", b"hi")),
        "a ZIP archive"
    );
    let mut pe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xFF\xFF".to_vec();
    pe.resize(256, 0);
    assert_eq!(refused_as(&pe), "a Windows executable");
    assert_eq!(
        refused_as(b"GIF89a\x01\x00\x01\x00\x80\x00\x00"),
        "a GIF image"
    );
    assert_eq!(
        refused_as(b"<!DOCTYPE html><html><body>hi</body></html>"),
        "an HTML document"
    );
    assert_eq!(
        refused_as(b"\n  <script>alert(1)</script>"),
        "an HTML document"
    );
    assert_eq!(
        refused_as(b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
        "an SVG image"
    );
    let mut elf = b"\x7FELF\x02\x01\x01".to_vec();
    elf.resize(64, 0);
    assert_eq!(refused_as(&elf), "an ELF executable (Linux program)");
    assert_eq!(
        refused_as(b"#!/bin/sh\nrm -rf /\n"),
        "a script (it starts with #!)"
    );
    assert_eq!(refused_as(b""), "an empty file");
    let mut docx = samples::zip_stored("[Content_Types].xml", b"<Types/>");
    docx.extend(samples::zip_stored("word/document.xml", b"<w/>"));
    assert_eq!(refused_as(&docx), "a Word document (DOCX)");
    let utf16: Vec<u8> = [0xFF, 0xFE, b'h', 0, b'i', 0].to_vec();
    assert_eq!(
        refused_as(&utf16),
        "UTF-16 text (only UTF-8 text is accepted)"
    );

    let mut mp4 = 24u32.to_be_bytes().to_vec();
    mp4.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2");
    assert_eq!(refused_as(&mp4), "an MP4 video");
    let mut avif = 24u32.to_be_bytes().to_vec();
    avif.extend_from_slice(b"ftypavif\0\0\0\0mif1avif");
    assert_eq!(refused_as(&avif), "an AVIF image");
}

#[test]
fn refusals_carry_a_media_type() {
    match sniff(b"GIF87a....") {
        Detected::Refused { mime, .. } => assert_eq!(mime, "image/gif"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sniff(&samples::zip_stored("x", b"")).mime(),
        "application/zip"
    );
}

#[test]
fn short_signatures_do_not_beat_plain_text() {
    // Initials that happen to match the executable and bitmap signatures.
    assert_eq!(
        sniff(b"MZ: tomar 1 comprimido\n"),
        Detected::Allowed(Kind::Text)
    );
    assert_eq!(sniff(b"BM 23 kg\n"), Detected::Allowed(Kind::Text));
}

#[test]
fn declared_type_is_compared_with_the_content() {
    assert_eq!(check_declared(None, Kind::Jpeg), Ok(()));
    assert_eq!(
        check_declared(Some("application/octet-stream"), Kind::Pdf),
        Ok(())
    );
    assert_eq!(check_declared(Some("image/jpg"), Kind::Jpeg), Ok(()));
    assert_eq!(check_declared(Some("IMAGE/PJPEG"), Kind::Jpeg), Ok(()));
    assert_eq!(check_declared(Some("image/heif"), Kind::Heic), Ok(()));
    assert_eq!(
        check_declared(Some("text/plain; charset=UTF-8"), Kind::Text),
        Ok(())
    );
    assert_eq!(check_declared(Some("text/csv"), Kind::Text), Ok(()));

    let err = check_declared(Some("image/png"), Kind::Jpeg).unwrap_err();
    assert_eq!(err.declared, "image/png");
    assert_eq!(err.detected, Kind::Jpeg);
    assert_eq!(
        err.to_string(),
        "the file was declared as image/png but its content is a JPEG image"
    );
    assert!(check_declared(Some("text/html"), Kind::Text).is_err());
    assert!(check_declared(Some("application/pdf"), Kind::Text).is_err());
}

#[test]
fn kinds_map_to_and_from_media_types() {
    for kind in Kind::ALL {
        assert_eq!(Kind::from_mime(kind.mime()), Some(kind));
        assert!(kind.accepted_extensions().contains(&kind.extension()));
    }
    assert_eq!(Kind::from_mime(" image/heic-sequence "), Some(Kind::Heic));
    assert_eq!(Kind::from_mime("image/gif"), None);
    assert!(Kind::Heic.is_image());
    assert!(!Kind::Pdf.is_image());
    assert_eq!(Kind::Text.mime(), "text/plain; charset=utf-8");
}
