//! Removal of privacy metadata from images.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::kind::Kind;

mod exif;
mod heif;
mod jpeg;
mod png;
mod webp;

/// Buffer size for reading and writing.
const BUF: usize = 64 * 1024;
/// How much of a dropped metadata block is looked at to label it.
const PEEK: usize = 64 * 1024;

/// What [`strip_metadata`] removed, as short labels in the order first met:
/// `"EXIF"`, `"GPS"` (the EXIF block pointed to a GPS directory), `"XMP"`,
/// `"IPTC"`, `"comment"`, `"text chunk"`, `"timestamp"`,
/// `"content credentials"` (C2PA manifests, which can embed a location),
/// `"trailing data"` (bytes after the end of the image, where phones append
/// extra pictures or videos), and `"other metadata"`. Each label appears
/// once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StripReport {
    pub removed: Vec<&'static str>,
}

impl StripReport {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty()
    }

    /// Whether `label` was removed.
    pub fn contains(&self, label: &str) -> bool {
        self.removed.contains(&label)
    }

    pub(crate) fn add(&mut self, label: &'static str) {
        if !self.removed.contains(&label) {
            self.removed.push(label);
        }
    }

    /// Adds "EXIF", and "GPS" when `tiff` (a TIFF header and what follows)
    /// points to a GPS directory.
    pub(crate) fn add_exif(&mut self, tiff: &[u8]) {
        self.add("EXIF");
        if exif::has_gps_pointer(tiff) {
            self.add("GPS");
        }
    }
}

/// Why metadata could not be stripped.
#[derive(Debug, thiserror::Error)]
pub enum StripError {
    /// The file is not a well-formed file of the given kind. The message is
    /// one line naming the problem and where it is.
    #[error("{0}")]
    Malformed(String),
    /// The file is valid but uses a structure this crate cannot clean
    /// safely (for example HEIF image sequences).
    #[error("{0}")]
    Unsupported(String),
    /// Reading the source or writing the copy failed.
    #[error("I/O error while stripping metadata: {0}")]
    Io(#[from] io::Error),
}

pub(crate) fn malformed(msg: impl Into<String>) -> StripError {
    StripError::Malformed(msg.into())
}

/// Copies `src` to `dst` (created or truncated) without privacy metadata and
/// reports what was removed. Blocking; run it on a blocking thread.
///
/// - **JPEG**: drops APP1 (EXIF, XMP), APP2 except `ICC_PROFILE`, APP3 to
///   APP15 except the APP14 `Adobe` segment (it tells decoders how to
///   interpret colours), COM comments, and anything after the end-of-image
///   marker. All other segments and the entropy-coded image data are copied
///   byte for byte. One thing survives from the EXIF block: a rotated
///   orientation (phones record portrait photos that way), written back as
///   a new EXIF block holding only that tag, so the photo is not shown on
///   its side. An upright photo gets no EXIF block at all.
/// - **PNG**: drops `eXIf`, `tEXt`, `zTXt`, `iTXt`, `tIME` and `caBX`
///   (content credentials) chunks and anything after `IEND`. Kept chunks,
///   CRCs included, are copied unchanged.
/// - **WebP**: drops the `EXIF` and `XMP ` chunks, clears the matching
///   flags in `VP8X` and rewrites the RIFF size.
/// - **HEIC/HEIF**: the EXIF and XMP items (found through `iinf` and
///   `iloc`) are blanked in the copy: overwritten with zeros, except that an
///   EXIF item starts with an empty, well-formed EXIF block and an XMP item
///   holds an empty XMP packet padded with spaces, so readers that still
///   open the items do not fail. Removing the items would shift every
///   later offset recorded in `iloc`; blanking in place keeps the file
///   layout, and so every other item, valid. The file length is unchanged.
///   Files with a `moov` box (image sequences) are refused as unsupported,
///   since their track metadata is not inspected.
/// - **PDF and text** are copied unchanged with an empty report. PDF
///   document metadata (author, producer, dates) does not locate the
///   member; photos embedded in a PDF are not rewritten.
///
/// On error `dst` is removed.
pub fn strip_metadata(kind: Kind, src: &Path, dst: &Path) -> Result<StripReport, StripError> {
    let result = run(kind, src, dst);
    if result.is_err() {
        let _ = fs::remove_file(dst);
    }
    result
}

fn run(kind: Kind, src: &Path, dst: &Path) -> Result<StripReport, StripError> {
    let mut source = Source::open(src)?;
    let file = File::create(dst)?;
    let mut report = StripReport::default();
    match kind {
        Kind::Jpeg => {
            let mut out = BufWriter::with_capacity(BUF, file);
            jpeg::strip(&mut source, &mut out, &mut report)?;
            out.flush()?;
        }
        Kind::Png => {
            let mut out = BufWriter::with_capacity(BUF, file);
            png::strip(&mut source, &mut out, &mut report)?;
            out.flush()?;
        }
        Kind::Webp => {
            let mut out = BufWriter::with_capacity(BUF, file);
            let riff_size = webp::strip(&mut source, &mut out, &mut report)?;
            let mut file = out.into_inner().map_err(|e| e.into_error())?;
            file.seek(SeekFrom::Start(4))?;
            file.write_all(&riff_size.to_le_bytes())?;
        }
        Kind::Heic => {
            let blanks = heif::plan(&mut source, &mut report)?;
            source.rewind()?;
            let mut out = BufWriter::with_capacity(BUF, file);
            let len = source.len();
            source.copy_to(len, &mut out)?;
            let mut file = out.into_inner().map_err(|e| e.into_error())?;
            for blank in blanks {
                file.seek(SeekFrom::Start(blank.start))?;
                let mut left = blank.len;
                if (blank.prefix.len() as u64) <= left {
                    file.write_all(blank.prefix)?;
                    left -= blank.prefix.len() as u64;
                }
                let filler = vec![blank.filler; left.min(BUF as u64) as usize];
                while left > 0 {
                    let n = left.min(BUF as u64) as usize;
                    file.write_all(filler.get(..n).unwrap_or_default())?;
                    left -= n as u64;
                }
            }
        }
        Kind::Pdf | Kind::Text => {
            let mut out = BufWriter::with_capacity(BUF, file);
            let len = source.len();
            source.copy_to(len, &mut out)?;
            out.flush()?;
        }
    }
    Ok(report)
}

/// A buffered file reader that knows its position and the file length, so
/// parsers can check a structure fits before reading it.
pub(crate) struct Source {
    inner: BufReader<File>,
    pos: u64,
    len: u64,
}

impl Source {
    fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Source {
            inner: BufReader::with_capacity(BUF, file),
            pos: 0,
            len,
        })
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn rewind(&mut self) -> io::Result<()> {
        self.seek_to(0)
    }

    pub(crate) fn seek_to(&mut self, pos: u64) -> io::Result<()> {
        self.inner.seek(SeekFrom::Start(pos))?;
        self.pos = pos;
        Ok(())
    }

    pub(crate) fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    pub(crate) fn read_u8(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b)?;
        Ok(u8::from_be_bytes(b))
    }

    /// Reads `n` bytes into `buf`, replacing its contents.
    pub(crate) fn read_into(&mut self, n: usize, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.clear();
        buf.resize(n, 0);
        self.read_exact(buf)
    }

    /// Reads up to [`PEEK`] of the next `n` bytes into `buf` and skips the
    /// rest.
    pub(crate) fn peek_and_skip(&mut self, n: u64, buf: &mut Vec<u8>) -> io::Result<()> {
        let keep = n.min(PEEK as u64);
        self.read_into(keep as usize, buf)?;
        self.skip(n - keep)
    }

    pub(crate) fn skip(&mut self, n: u64) -> io::Result<()> {
        let offset = i64::try_from(n).map_err(|_| io::Error::other("skip too large"))?;
        self.inner.seek_relative(offset)?;
        self.pos += n;
        Ok(())
    }

    /// Copies exactly `n` bytes to `out`.
    pub(crate) fn copy_to(&mut self, n: u64, out: &mut impl Write) -> io::Result<()> {
        let copied = io::copy(&mut (&mut self.inner).take(n), out)?;
        self.pos += copied;
        if copied < n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file became shorter while it was being read",
            ));
        }
        Ok(())
    }

    pub(crate) fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.inner.consume(n);
        self.pos += n as u64;
    }
}
