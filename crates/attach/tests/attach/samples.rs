//! Small sample files built byte by byte, and helpers to inspect results.

use std::path::PathBuf;

use tempfile::TempDir;

/// Writes `bytes` to a new file in `dir` and returns its path.
pub fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// CRC-32 (ISO-HDLC), as used by PNG and ZIP.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// A big-endian TIFF/EXIF block: IFD0 with Make and a GPS IFD pointer, and
/// a GPS IFD whose processing method says "GPS".
pub fn exif_tiff_with_gps() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"MM\0*");
    t.extend_from_slice(&8u32.to_be_bytes());
    // IFD0 at 8: 2 entries (2 + 24 bytes) + next-IFD offset (4) = 30 bytes.
    let make_at: u32 = 8 + 30;
    let gps_ifd_at: u32 = make_at + 6;
    t.extend_from_slice(&2u16.to_be_bytes());
    // Make: ASCII, 6 bytes, stored at make_at.
    t.extend_from_slice(&0x010Fu16.to_be_bytes());
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&6u32.to_be_bytes());
    t.extend_from_slice(&make_at.to_be_bytes());
    // GPS IFD pointer: LONG, 1 value.
    t.extend_from_slice(&0x8825u16.to_be_bytes());
    t.extend_from_slice(&4u16.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&gps_ifd_at.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(b"Phone\0");
    // GPS IFD: 3 entries + next offset = 2 + 36 + 4 = 42 bytes.
    let method_at: u32 = gps_ifd_at + 42;
    t.extend_from_slice(&3u16.to_be_bytes());
    // GPSVersionID: BYTE x4, inline.
    t.extend_from_slice(&0u16.to_be_bytes());
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&4u32.to_be_bytes());
    t.extend_from_slice(&[2, 2, 0, 0]);
    // GPSLatitudeRef: ASCII "N\0", inline.
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&2u32.to_be_bytes());
    t.extend_from_slice(b"N\0\0\0");
    // GPSProcessingMethod: UNDEFINED, 11 bytes at method_at.
    t.extend_from_slice(&0x001Bu16.to_be_bytes());
    t.extend_from_slice(&7u16.to_be_bytes());
    t.extend_from_slice(&11u32.to_be_bytes());
    t.extend_from_slice(&method_at.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(b"ASCII\0\0\0GPS");
    t
}

pub const XMP_PACKET: &[u8] = b"<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF><rdf:Description exif:GPSLatitude=\"40,25.0N\"/></rdf:RDF></x:xmpmeta>";

fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&u16::try_from(body.len() + 2).unwrap().to_be_bytes());
    out.extend_from_slice(body);
}

/// JPEG pieces: metadata segments first, then the frame.
pub struct Jpeg {
    pub bytes: Vec<u8>,
    /// Offset of the SOS marker.
    pub sos_at: usize,
}

/// The frame of an 8x8 grey JPEG: DQT, SOF0, DHT (one-code DC and AC
/// tables), SOS and entropy data, then EOI.
fn frame(out: &mut Vec<u8>, entropy: &[u8]) -> usize {
    let mut dqt = vec![0u8];
    dqt.extend(1..=64u8);
    segment(out, 0xDB, &dqt);
    segment(out, 0xC0, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0]);
    let mut dc = vec![0x00, 1];
    dc.extend_from_slice(&[0; 15]);
    dc.push(0);
    segment(out, 0xC4, &dc);
    let mut ac = vec![0x10, 1];
    ac.extend_from_slice(&[0; 15]);
    ac.push(0);
    segment(out, 0xC4, &ac);
    let sos_at = out.len();
    segment(out, 0xDA, &[1, 1, 0x00, 0, 63, 0]);
    out.extend_from_slice(entropy);
    out.extend_from_slice(&[0xFF, 0xD9]);
    sos_at
}

/// A JPEG with JFIF, EXIF (with GPS), XMP, ICC, IPTC, Adobe and a comment.
pub fn jpeg_with_metadata() -> Jpeg {
    jpeg_with_entropy(&[0x3F])
}

pub fn jpeg_with_entropy(entropy: &[u8]) -> Jpeg {
    jpeg_with(&exif_tiff_with_gps(), entropy)
}

/// A little-endian EXIF block with an orientation and a GPS directory.
pub fn exif_tiff_rotated_with_gps(orientation: u16) -> Vec<u8> {
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    // IFD0 at 8: 2 entries -> 30 bytes; GPS IFD right after, at 38.
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&0x0112u16.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&orientation.to_le_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0x8825u16.to_le_bytes());
    t.extend_from_slice(&4u16.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&38u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    // GPS IFD: GPSLatitudeRef "S".
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&2u32.to_le_bytes());
    t.extend_from_slice(b"S\0\0\0");
    t.extend_from_slice(&0u32.to_le_bytes());
    t
}

/// A JPEG whose EXIF segment holds `tiff`, plus XMP, ICC, IPTC, Adobe and a
/// comment.
pub fn jpeg_with(tiff: &[u8], entropy: &[u8]) -> Jpeg {
    let mut b = vec![0xFF, 0xD8];
    segment(&mut b, 0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend_from_slice(tiff);
    segment(&mut b, 0xE1, &exif);
    let mut xmp = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    xmp.extend_from_slice(XMP_PACKET);
    segment(&mut b, 0xE1, &xmp);
    segment(&mut b, 0xE2, b"ICC_PROFILE\0\x01\x01fake-colour-profile");
    segment(
        &mut b,
        0xED,
        b"Photoshop 3.0\08BIM\x04\x04\0\0\0\0\0\x0cCity: Leon",
    );
    segment(&mut b, 0xEE, b"Adobe\0\x64\0\0\0\0\x01");
    segment(&mut b, 0xFE, b"taken at Calle Mayor 5");
    let sos_at = frame(&mut b, entropy);
    Jpeg { bytes: b, sos_at }
}

/// The same frame with only JFIF: nothing to strip.
pub fn jpeg_plain() -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8];
    segment(&mut b, 0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    frame(&mut b, &[0x3F]);
    b
}

/// (marker, body) for every segment before SOS, panicking on bad structure.
pub fn jpeg_segments(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    assert_eq!(&bytes[..2], &[0xFF, 0xD8]);
    let mut out = Vec::new();
    let mut pos = 2;
    loop {
        assert_eq!(bytes[pos], 0xFF, "marker expected at {pos}");
        let marker = bytes[pos + 1];
        let len = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
        out.push((marker, bytes[pos + 4..pos + 2 + len].to_vec()));
        pos += 2 + len;
        if marker == 0xDA {
            return out;
        }
    }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A 1x1 grey PNG with tEXt, iTXt (XMP), eXIf (with GPS) and tIME chunks.
pub fn png_with_metadata() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1A\n".to_vec();
    chunk(&mut b, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]);
    chunk(&mut b, b"tEXt", b"Comment\0rash on left arm");
    let mut itxt = b"XML:com.adobe.xmp\0\0\0\0\0".to_vec();
    itxt.extend_from_slice(XMP_PACKET);
    chunk(&mut b, b"iTXt", &itxt);
    chunk(&mut b, b"eXIf", &exif_tiff_with_gps());
    chunk(&mut b, b"tIME", &[0x07, 0xEA, 3, 14, 9, 30, 0]);
    // zlib stream with one stored block holding the scanline: filter 0, pixel 0.
    chunk(
        &mut b,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x02, 0x00, 0xFD, 0xFF, 0, 0, 0x00, 0x02, 0x00, 0x01,
        ],
    );
    chunk(&mut b, b"IEND", &[]);
    b
}

/// Walks PNG chunks, checking every CRC; returns their types.
pub fn png_chunks(bytes: &[u8]) -> Vec<String> {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1A\n");
    let mut pos = 8;
    let mut kinds = Vec::new();
    while pos < bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let typed = &bytes[pos + 4..pos + 8 + len];
        let crc = u32::from_be_bytes(bytes[pos + 8 + len..pos + 12 + len].try_into().unwrap());
        assert_eq!(crc32(typed), crc, "bad CRC at {pos}");
        kinds.push(String::from_utf8(bytes[pos + 4..pos + 8].to_vec()).unwrap());
        pos += 12 + len;
    }
    assert_eq!(pos, bytes.len());
    kinds
}

fn riff_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(kind);
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
}

/// Odd-sized stand-in for image data, so padding is exercised.
pub const VP8L_DATA: &[u8] = b"\x2f\x00\x00\x00\x00";

/// An extended WebP (VP8X) with EXIF (with GPS) and XMP chunks.
pub fn webp_with_metadata() -> Vec<u8> {
    let mut body = b"WEBP".to_vec();
    // Flags: EXIF (0x08) and XMP (0x04); canvas 1x1.
    riff_chunk(&mut body, b"VP8X", &[0x0C, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    riff_chunk(&mut body, b"VP8L", VP8L_DATA);
    riff_chunk(&mut body, b"EXIF", &exif_tiff_with_gps());
    riff_chunk(&mut body, b"XMP ", XMP_PACKET);
    let mut b = b"RIFF".to_vec();
    b.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
    b.extend(body);
    b
}

/// Walks RIFF chunks after the WEBP tag; returns (fourcc, data).
pub fn webp_chunks(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WEBP");
    let mut pos = 12;
    let mut out = Vec::new();
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        out.push((
            String::from_utf8(bytes[pos..pos + 4].to_vec()).unwrap(),
            bytes[pos + 8..pos + 8 + len].to_vec(),
        ));
        pos += 8 + len + len % 2;
    }
    assert_eq!(pos, bytes.len());
    out
}

fn iso_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = u32::try_from(body.len() + 8)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(body);
    b
}

fn full_box(kind: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
    let mut b = vec![version, 0, 0, 0];
    b.extend_from_slice(body);
    iso_box(kind, &b)
}

fn infe(id: u16, item_type: &[u8; 4], content_type: Option<&str>) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(item_type);
    b.push(0);
    if let Some(ct) = content_type {
        b.extend_from_slice(ct.as_bytes());
        b.push(0);
    }
    full_box(b"infe", 2, &b)
}

/// A HEIC file and where its items' bytes are.
pub struct Heic {
    pub bytes: Vec<u8>,
    pub image: std::ops::Range<usize>,
    pub exif: std::ops::Range<usize>,
    pub xmp: std::ops::Range<usize>,
}

pub const HEVC_DATA: &[u8] = b"not-really-hevc-but-image-bytes";

/// The EXIF item payload: offset to the TIFF header, "Exif\0\0", TIFF.
pub fn heif_exif_payload() -> Vec<u8> {
    let mut p = 6u32.to_be_bytes().to_vec();
    p.extend_from_slice(b"Exif\0\0");
    p.extend(exif_tiff_with_gps());
    p
}

/// A minimal HEIC: ftyp, meta (hdlr, pitm, iinf, iloc[, idat]) and mdat.
/// With `in_idat`, the EXIF item is stored in the meta box's idat
/// (construction method 1) instead of mdat.
pub fn heic_with_metadata(in_idat: bool) -> Heic {
    let exif = heif_exif_payload();
    let mut ftyp_body = b"heic".to_vec();
    ftyp_body.extend_from_slice(&0u32.to_be_bytes());
    ftyp_body.extend_from_slice(b"mif1heic");
    let ftyp = iso_box(b"ftyp", &ftyp_body);

    let build_meta = |image_at: u32, exif_at: u32, xmp_at: u32| -> Vec<u8> {
        let mut hdlr = 0u32.to_be_bytes().to_vec();
        hdlr.extend_from_slice(b"pict");
        hdlr.extend_from_slice(&[0; 12]);
        hdlr.push(0);
        let mut iinf_body = 3u16.to_be_bytes().to_vec();
        iinf_body.extend(infe(1, b"hvc1", None));
        iinf_body.extend(infe(2, b"Exif", None));
        iinf_body.extend(infe(3, b"mime", Some("application/rdf+xml")));
        // iloc version 1: offset 4, length 4, base 0, index 0.
        let mut iloc = vec![0x44, 0x00];
        iloc.extend_from_slice(&3u16.to_be_bytes());
        let mut item = |id: u16, method: u16, at: u32, len: usize| {
            iloc.extend_from_slice(&id.to_be_bytes());
            iloc.extend_from_slice(&method.to_be_bytes());
            iloc.extend_from_slice(&0u16.to_be_bytes());
            iloc.extend_from_slice(&1u16.to_be_bytes());
            iloc.extend_from_slice(&at.to_be_bytes());
            iloc.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
        };
        item(1, 0, image_at, HEVC_DATA.len());
        item(2, u16::from(in_idat), exif_at, exif.len());
        item(3, 0, xmp_at, XMP_PACKET.len());
        let mut meta_body = iso_box(b"hdlr", &[&[0u8; 4][..], &hdlr].concat());
        meta_body.extend(full_box(b"pitm", 0, &1u16.to_be_bytes()));
        meta_body.extend(full_box(b"iinf", 0, &iinf_body));
        meta_body.extend(full_box(b"iloc", 1, &iloc));
        if in_idat {
            meta_body.extend(iso_box(b"idat", &exif));
        }
        full_box(b"meta", 0, &meta_body)
    };
    let meta_len = build_meta(0, 0, 0).len();
    let mdat_data_at = ftyp.len() + meta_len + 8;
    let image_at = mdat_data_at;
    let (exif_in_mdat, xmp_at) = if in_idat {
        (None, image_at + HEVC_DATA.len())
    } else {
        let exif_at = image_at + HEVC_DATA.len();
        (Some(exif_at), exif_at + exif.len())
    };
    let exif_iloc = exif_in_mdat.unwrap_or(0);
    let meta = build_meta(
        u32::try_from(image_at).unwrap(),
        u32::try_from(exif_iloc).unwrap(),
        u32::try_from(xmp_at).unwrap(),
    );
    assert_eq!(meta.len(), meta_len);
    let mut mdat_body = HEVC_DATA.to_vec();
    if !in_idat {
        mdat_body.extend_from_slice(&exif);
    }
    mdat_body.extend_from_slice(XMP_PACKET);
    let mut bytes = ftyp;
    bytes.extend(meta);
    bytes.extend(iso_box(b"mdat", &mdat_body));
    let exif_at = match exif_in_mdat {
        Some(at) => at,
        // The idat box is the last thing in meta; its body ends where mdat starts.
        None => mdat_data_at - 8 - exif.len(),
    };
    Heic {
        image: image_at..image_at + HEVC_DATA.len(),
        exif: exif_at..exif_at + exif.len(),
        xmp: xmp_at..xmp_at + XMP_PACKET.len(),
        bytes,
    }
}

/// A one-page PDF with a correct cross-reference table.
pub fn pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
        "<< /Length 0 >>\nstream\n\nendstream",
    ];
    let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{obj}\nendobj\n", i + 1).as_bytes());
    }
    let xref_at = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A ZIP archive with one stored (uncompressed) entry.
pub fn zip_stored(name: &str, data: &[u8]) -> Vec<u8> {
    let crc = crc32(data);
    let size = u32::try_from(data.len()).unwrap();
    let name_len = u16::try_from(name.len()).unwrap();
    let mut out = Vec::new();
    // Local file header.
    out.extend_from_slice(b"PK\x03\x04");
    out.extend_from_slice(&10u16.to_le_bytes()); // version needed
    out.extend_from_slice(&0u16.to_le_bytes()); // flags
    out.extend_from_slice(&0u16.to_le_bytes()); // method: stored
    out.extend_from_slice(&0u16.to_le_bytes()); // time
    out.extend_from_slice(&0x0021u16.to_le_bytes()); // date: 1980-01-01
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // extra length
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(data);
    // Central directory.
    let cd_at = u32::try_from(out.len()).unwrap();
    let cd_start = out.len();
    out.extend_from_slice(b"PK\x01\x02");
    out.extend_from_slice(&20u16.to_le_bytes()); // made by
    out.extend_from_slice(&10u16.to_le_bytes()); // needed
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0x0021u16.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // extra and comment lengths
    out.extend_from_slice(&[0; 4]); // disk number, internal attributes
    out.extend_from_slice(&[0; 4]); // external attributes
    out.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    out.extend_from_slice(name.as_bytes());
    let cd_size = u32::try_from(out.len() - cd_start).unwrap();
    // End of central directory.
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

pub const SPANISH_TEXT: &str = "Paciente: María Muñoz\r\nDolor en la pierna izquierda desde el miércoles.\n\tTemperatura: 38,5 °C — ¿acudir a urgencias?\x0c\n";
