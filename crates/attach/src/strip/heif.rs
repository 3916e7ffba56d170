//! HEIC/HEIF (ISO base media file format): locate the EXIF and XMP items so
//! the copy can have their bytes overwritten with zeros.
//!
//! Items are described in the top-level `meta` box: `iinf` lists them with
//! their type, `iloc` says where their bytes are (in the file, usually inside
//! `mdat`, or inside the `meta` box's own `idat`). Blanking the bytes in
//! place, rather than removing the items, keeps every offset in `iloc`
//! valid without rewriting the box tree.
//!
//! Plain zeros make some readers fail when they parse the (still listed)
//! EXIF item, so when the item is large enough its first bytes become an
//! empty but well-formed EXIF block, and an XMP item becomes an empty XMP
//! packet padded with spaces. Everything else is zeros.

use super::{PEEK, Source, StripError, StripReport, malformed};

/// Largest `meta` box read into memory.
const MAX_META: u64 = 16 * 1024 * 1024;

/// A byte range of the file: (start, length).
type Range = (u64, u64);

/// An EXIF item holding nothing: the 4-byte offset to the TIFF header (0),
/// a big-endian TIFF header pointing to IFD0 at 8, and an IFD0 with no
/// entries and no next IFD.
const EMPTY_EXIF: &[u8] = b"\0\0\0\0MM\0\x2A\0\0\0\x08\0\0\0\0\0\0";
/// An XMP packet holding nothing.
const EMPTY_XMP: &[u8] = b"<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"/>";

/// How to overwrite one range of the copy: `prefix` first when it fits in
/// `len` bytes, then `filler` bytes up to `len`.
pub(crate) struct Blank {
    pub(crate) start: u64,
    pub(crate) len: u64,
    pub(crate) prefix: &'static [u8],
    pub(crate) filler: u8,
}

pub(crate) fn plan(src: &mut Source, report: &mut StripReport) -> Result<Vec<Blank>, StripError> {
    let file_len = src.len();
    if file_len == 0 {
        return Err(malformed("not a HEIF file: it is empty"));
    }
    let mut pos = 0;
    let mut meta = None;
    while pos < file_len {
        src.seek_to(pos)?;
        let header = read_top_header(src, pos, file_len)?;
        if pos == 0 && &header.kind != b"ftyp" {
            return Err(malformed(
                "not a HEIF file: it does not start with an ftyp box",
            ));
        }
        match &header.kind {
            b"meta" if meta.is_some() => {
                return Err(malformed(format!(
                    "HEIF file has a second top-level meta box at byte {pos}"
                )));
            }
            b"meta" => meta = Some(header),
            b"moov" => {
                return Err(StripError::Unsupported(
                    "HEIF image sequences (files with a moov box) are not supported".into(),
                ));
            }
            _ => {}
        }
        pos += header.size;
    }
    let meta = meta.ok_or_else(|| malformed("HEIF file has no top-level meta box"))?;
    let body_len = meta.size - meta.header_len;
    if body_len > MAX_META {
        return Err(StripError::Unsupported(format!(
            "HEIF meta box at byte {} is larger than {} MiB",
            meta.start,
            MAX_META >> 20
        )));
    }
    let body_at = meta.start + meta.header_len;
    src.seek_to(body_at)?;
    let mut body = Vec::new();
    src.read_into(body_len as usize, &mut body)?;
    let index = parse_meta(&body, body_at)?;

    let mut blanks = Vec::new();
    let mut peek = Vec::new();
    for item in &index.targets {
        let item_ranges = locate(item, &index, file_len)?;
        match item.what {
            Target::Exif => {
                report.add("EXIF");
                if let Some(&(start, len)) = item_ranges.first() {
                    src.seek_to(start)?;
                    src.read_into(len.min(PEEK as u64) as usize, &mut peek)?;
                    if exif_payload_has_gps(&peek) {
                        report.add("GPS");
                    }
                }
            }
            Target::Xmp => report.add("XMP"),
        }
        let (prefix, filler) = match item.what {
            Target::Exif => (EMPTY_EXIF, 0),
            Target::Xmp => (EMPTY_XMP, b' '),
        };
        for (i, (start, len)) in item_ranges.into_iter().enumerate() {
            blanks.push(Blank {
                start,
                len,
                prefix: if i == 0 { prefix } else { b"" },
                filler,
            });
        }
    }
    Ok(blanks)
}

/// An EXIF item starts with a 4-byte offset from its end to the TIFF header.
fn exif_payload_has_gps(data: &[u8]) -> bool {
    let skip = data
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .and_then(|n| usize::try_from(n).ok())
        .and_then(|n| n.checked_add(4));
    let via_offset = skip
        .and_then(|at| data.get(at..))
        .is_some_and(super::exif::has_gps_pointer);
    via_offset || data.get(4..).is_some_and(super::exif::has_gps_pointer)
}

#[derive(Clone, Copy)]
struct TopHeader {
    kind: [u8; 4],
    start: u64,
    header_len: u64,
    size: u64,
}

fn read_top_header(src: &mut Source, start: u64, file_len: u64) -> Result<TopHeader, StripError> {
    let left = file_len - start;
    if left < 8 {
        return Err(malformed(format!(
            "HEIF box at byte {start} runs past the end of the file"
        )));
    }
    let mut raw = [0u8; 8];
    src.read_exact(&mut raw)?;
    let (size_bytes, kind_bytes) = raw.split_at(4);
    let kind: [u8; 4] = kind_bytes.try_into().unwrap_or_default();
    let small = u32::from_be_bytes(size_bytes.try_into().unwrap_or_default());
    let (size, header_len) = match small {
        0 => (left, 8),
        1 => {
            if left < 16 {
                return Err(overrun(&kind, start));
            }
            let mut large = [0u8; 8];
            src.read_exact(&mut large)?;
            (u64::from_be_bytes(large), 16)
        }
        n => (u64::from(n), 8),
    };
    if size < header_len {
        return Err(malformed(format!(
            "HEIF box '{}' at byte {start} has an invalid size {size}",
            fourcc(&kind)
        )));
    }
    if size > left {
        return Err(overrun(&kind, start));
    }
    Ok(TopHeader {
        kind,
        start,
        header_len,
        size,
    })
}

fn overrun(kind: &[u8], at: u64) -> StripError {
    malformed(format!(
        "HEIF box '{}' at byte {at} runs past the end of the file",
        fourcc(kind)
    ))
}

fn fourcc(kind: &[u8]) -> String {
    kind.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

/// A box inside an in-memory buffer.
struct Child<'a> {
    kind: [u8; 4],
    /// Absolute file offset of the box.
    at: u64,
    /// Absolute file offset of the body.
    body_at: u64,
    body: &'a [u8],
}

/// Splits `data` (which starts at file offset `base`) into boxes.
fn children(data: &[u8], base: u64) -> Result<Vec<Child<'_>>, StripError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let at = base + pos as u64;
        let rest = data.get(pos..).unwrap_or_default();
        let mut c = Cursor::new(rest);
        let (Some(small), Some(kind)) = (c.u32(), c.array4()) else {
            return Err(malformed(format!(
                "HEIF box at byte {at} runs past the end of its parent box"
            )));
        };
        let (size, header_len) = match small {
            0 => (rest.len() as u64, 8u64),
            1 => match c.u64() {
                Some(large) => (large, 16),
                None => return Err(inner_overrun(&kind, at)),
            },
            n => (u64::from(n), 8),
        };
        if size < header_len {
            return Err(malformed(format!(
                "HEIF box '{}' at byte {at} has an invalid size {size}",
                fourcc(&kind)
            )));
        }
        if size > rest.len() as u64 {
            return Err(inner_overrun(&kind, at));
        }
        let body = rest
            .get(header_len as usize..size as usize)
            .unwrap_or_default();
        out.push(Child {
            kind,
            at,
            body_at: at + header_len,
            body,
        });
        pos += size as usize;
    }
    Ok(out)
}

fn inner_overrun(kind: &[u8], at: u64) -> StripError {
    malformed(format!(
        "HEIF box '{}' at byte {at} runs past the end of its parent box",
        fourcc(kind)
    ))
}

fn truncated(what: &str, at: u64) -> StripError {
    malformed(format!("HEIF {what} box at byte {at} is truncated"))
}

#[derive(Clone, Copy)]
enum Target {
    Exif,
    Xmp,
}

struct Item {
    id: u32,
    what: Target,
}

struct Location {
    id: u32,
    method: u16,
    data_ref: u16,
    base: u64,
    extents: Vec<(u64, u64)>,
}

struct Index {
    targets: Vec<Item>,
    locations: Vec<Location>,
    /// Absolute offset and length of the `idat` body, if any.
    idat: Option<(u64, u64)>,
}

fn parse_meta(body: &[u8], body_at: u64) -> Result<Index, StripError> {
    // `meta` is a full box: version and flags first.
    let boxes = body.get(4..).ok_or_else(|| truncated("meta", body_at))?;
    let mut index = Index {
        targets: Vec::new(),
        locations: Vec::new(),
        idat: None,
    };
    let mut seen_iinf = false;
    let mut seen_iloc = false;
    for child in children(boxes, body_at + 4)? {
        match &child.kind {
            b"iinf" if !seen_iinf => {
                seen_iinf = true;
                index.targets = parse_iinf(&child)?;
            }
            b"iloc" if !seen_iloc => {
                seen_iloc = true;
                index.locations = parse_iloc(&child)?;
            }
            b"idat" if index.idat.is_none() => {
                index.idat = Some((child.body_at, child.body.len() as u64));
            }
            b"iinf" | b"iloc" | b"idat" => {
                return Err(malformed(format!(
                    "HEIF meta box has a second '{}' box at byte {}",
                    fourcc(&child.kind),
                    child.at
                )));
            }
            _ => {}
        }
    }
    Ok(index)
}

fn parse_iinf(iinf: &Child<'_>) -> Result<Vec<Item>, StripError> {
    let mut c = Cursor::new(iinf.body);
    let version = c.u8().ok_or_else(|| truncated("iinf", iinf.at))?;
    c.skip(3).ok_or_else(|| truncated("iinf", iinf.at))?;
    let count_len = if version == 0 { 2 } else { 4 };
    c.skip(count_len)
        .ok_or_else(|| truncated("iinf", iinf.at))?;
    let start = 4 + count_len;
    let entries = iinf.body.get(start..).unwrap_or_default();
    let mut items = Vec::new();
    for entry in children(entries, iinf.body_at + start as u64)? {
        if &entry.kind != b"infe" {
            continue;
        }
        if let Some(item) = parse_infe(&entry)? {
            items.push(item);
        }
    }
    Ok(items)
}

/// The EXIF or XMP item an `infe` box describes, if it is one.
fn parse_infe(infe: &Child<'_>) -> Result<Option<Item>, StripError> {
    let bad = || truncated("infe", infe.at);
    let mut c = Cursor::new(infe.body);
    let version = c.u8().ok_or_else(bad)?;
    c.skip(3).ok_or_else(bad)?;
    let (id, item_type) = match version {
        0 | 1 => {
            let id = u32::from(c.u16().ok_or_else(bad)?);
            c.skip(2).ok_or_else(bad)?;
            (id, *b"mime")
        }
        2 | 3 => {
            let id = if version == 2 {
                u32::from(c.u16().ok_or_else(bad)?)
            } else {
                c.u32().ok_or_else(bad)?
            };
            c.skip(2).ok_or_else(bad)?;
            (id, c.array4().ok_or_else(bad)?)
        }
        v => {
            return Err(StripError::Unsupported(format!(
                "HEIF infe box at byte {} has unknown version {v}",
                infe.at
            )));
        }
    };
    let what = match &item_type {
        b"Exif" => Some(Target::Exif),
        b"mime" => {
            let _name = c.cstr();
            let content_type = c.cstr();
            let essence = content_type
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default();
            essence
                .trim_ascii()
                .eq_ignore_ascii_case(b"application/rdf+xml")
                .then_some(Target::Xmp)
        }
        _ => None,
    };
    Ok(what.map(|what| Item { id, what }))
}

fn parse_iloc(iloc: &Child<'_>) -> Result<Vec<Location>, StripError> {
    let bad = || truncated("iloc", iloc.at);
    let mut c = Cursor::new(iloc.body);
    let version = c.u8().ok_or_else(bad)?;
    c.skip(3).ok_or_else(bad)?;
    if version > 2 {
        return Err(StripError::Unsupported(format!(
            "HEIF iloc box at byte {} has unknown version {version}",
            iloc.at
        )));
    }
    let sizes_a = c.u8().ok_or_else(bad)?;
    let sizes_b = c.u8().ok_or_else(bad)?;
    let offset_size = sizes_a >> 4;
    let length_size = sizes_a & 0x0F;
    let base_size = sizes_b >> 4;
    let index_size = if version >= 1 { sizes_b & 0x0F } else { 0 };
    if [offset_size, length_size, base_size, index_size]
        .iter()
        .any(|s| !matches!(s, 0 | 4 | 8))
    {
        return Err(malformed(format!(
            "HEIF iloc box at byte {} uses an invalid field size",
            iloc.at
        )));
    }
    let count = if version < 2 {
        u32::from(c.u16().ok_or_else(bad)?)
    } else {
        c.u32().ok_or_else(bad)?
    };
    let mut locations = Vec::new();
    for _ in 0..count {
        let id = if version < 2 {
            u32::from(c.u16().ok_or_else(bad)?)
        } else {
            c.u32().ok_or_else(bad)?
        };
        let method = if version >= 1 {
            c.u16().ok_or_else(bad)? & 0x0F
        } else {
            0
        };
        let data_ref = c.u16().ok_or_else(bad)?;
        let base = c.uint(base_size).ok_or_else(bad)?;
        let extent_count = c.u16().ok_or_else(bad)?;
        let mut extents = Vec::new();
        for _ in 0..extent_count {
            if index_size > 0 {
                c.uint(index_size).ok_or_else(bad)?;
            }
            let offset = c.uint(offset_size).ok_or_else(bad)?;
            let length = c.uint(length_size).ok_or_else(bad)?;
            extents.push((offset, length));
        }
        locations.push(Location {
            id,
            method,
            data_ref,
            base,
            extents,
        });
    }
    Ok(locations)
}

/// Absolute byte ranges holding an item's data.
fn locate(item: &Item, index: &Index, file_len: u64) -> Result<Vec<Range>, StripError> {
    let id = item.id;
    let label = match item.what {
        Target::Exif => "EXIF",
        Target::Xmp => "XMP",
    };
    let loc = index.locations.iter().find(|l| l.id == id).ok_or_else(|| {
        malformed(format!(
            "HEIF {label} item {id} has no entry in the iloc box"
        ))
    })?;
    if loc.data_ref != 0 {
        return Err(StripError::Unsupported(format!(
            "HEIF {label} item {id} refers to data outside the file, which is not supported"
        )));
    }
    let (region_start, region_len) = match loc.method {
        0 => (0, file_len),
        1 => index.idat.ok_or_else(|| {
            malformed(format!(
                "HEIF {label} item {id} is stored in an idat box that does not exist"
            ))
        })?,
        m => {
            return Err(StripError::Unsupported(format!(
                "HEIF {label} item {id} uses construction method {m}, which is not supported"
            )));
        }
    };
    let region_end = region_start + region_len;
    let overrun = || {
        malformed(format!(
            "HEIF {label} item {id} runs past the end of the file"
        ))
    };
    let mut ranges = Vec::new();
    for &(offset, length) in &loc.extents {
        let start = region_start
            .checked_add(loc.base)
            .and_then(|s| s.checked_add(offset))
            .filter(|&s| s <= region_end)
            .ok_or_else(overrun)?;
        let length = if length == 0 {
            region_end - start
        } else {
            length
        };
        let end = start.checked_add(length).ok_or_else(overrun)?;
        if end > region_end {
            return Err(overrun());
        }
        ranges.push((start, length));
    }
    Ok(ranges)
}

/// Bounds-checked big-endian reads from a byte slice.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn array4(&mut self) -> Option<[u8; 4]> {
        self.take(4)?.try_into().ok()
    }

    /// An unsigned field of 0, 4 or 8 bytes.
    fn uint(&mut self, size: u8) -> Option<u64> {
        match size {
            0 => Some(0),
            4 => self.u32().map(u64::from),
            8 => self.u64(),
            _ => None,
        }
    }

    /// A NUL-terminated string; the rest of the data if there is no NUL.
    fn cstr(&mut self) -> &'a [u8] {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        match rest.iter().position(|&b| b == 0) {
            Some(n) => {
                self.pos += n + 1;
                rest.get(..n).unwrap_or_default()
            }
            None => {
                self.pos = self.data.len();
                rest
            }
        }
    }
}
