//! Segmented blobs (`CLS1`): encryption for attachments too large to hold in
//! memory, readable in pieces.
//!
//! The plaintext is cut into segments of a fixed size (64 KiB by default).
//! Each segment is sealed on its own with AES-256-GCM, so a writer needs one
//! segment in memory at a time and a reader can decrypt any byte range by
//! fetching the header and only the segments that cover it.
//!
//! # Format
//!
//! ```text
//! header (40 bytes)
//!   magic "CLS1" (4) || version 1 (1) || segment size, u32 BE (4)
//!   || plaintext length, u64 BE (8) || salt (16) || nonce prefix (7)
//! segment 0 .. segment n-1
//!   ciphertext || tag (16)
//! ```
//!
//! - Every segment holds exactly `segment size` bytes of plaintext except the
//!   last, which holds the rest (1 to `segment size` bytes; an empty blob is
//!   one empty segment). So n = max(1, ceil(length / segment size)), and the
//!   sealed length is `40 + length + 16 n`.
//! - Segment key: HMAC-SHA256(data key, `"careline CLS1 segment key\0"` ||
//!   salt). The salt is random per blob, so each blob has its own key and
//!   nonces cannot repeat across blobs.
//! - Nonce of segment i: nonce prefix (7) || i as u32 BE (4) || last flag (1:
//!   `0x01` for segment n-1, else `0x00`). This is the STREAM construction.
//! - Associated data of every segment: `"careline CLS1\0"` || the whole
//!   header || the caller's AAD.
//!
//! What this detects: a changed header (every tag covers it), segments
//! reordered or moved (the index is in the nonce), a segment copied from
//! another blob (other key, other header), a truncated blob or a dropped last
//! segment (the length in the header fixes which segment must carry the last
//! flag and how long each is), and the wrong key or AAD.

use std::ops::Range;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::aead::{self, Domain, KEY_LEN, NONCE_LEN, SegmentCipher, TAG_LEN};
use crate::data::DataKey;
use crate::error::{CryptoError, Result};

/// First bytes of a segmented blob.
pub const STREAM_MAGIC: &[u8; 4] = b"CLS1";
/// The format version this crate writes and reads.
pub const STREAM_VERSION: u8 = 1;
/// Length of the header that starts every segmented blob.
pub const STREAM_HEADER_LEN: usize = 40;
/// Bytes each segment adds to its plaintext (the GCM tag).
pub const SEGMENT_OVERHEAD: usize = TAG_LEN;
/// Plaintext bytes per segment unless the writer chooses otherwise.
pub const DEFAULT_SEGMENT_SIZE: u32 = 64 * 1024;
/// Largest segment size accepted, so a reader never has to hold more.
pub const MAX_SEGMENT_SIZE: u32 = 16 * 1024 * 1024;

const SALT_LEN: usize = 16;
const PREFIX_LEN: usize = 7;
const HEADER_WHAT: &str = "segmented blob header";
const SEGMENT_WHAT: &str = "sealed segment";
const SUBKEY_LABEL: &[u8] = b"careline CLS1 segment key\0";
/// Segment indices are 32 bits in the nonce.
const MAX_SEGMENTS: u64 = 1 << 32;

/// Where each segment of a segmented blob lies, in the plaintext and in the
/// sealed bytes. Computed from the header alone: no key needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentLayout {
    plain_len: u64,
    segment_size: u32,
}

/// The segments covering a plaintext byte range and the bytes of the sealed
/// blob that hold them: fetch `sealed`, then open segments `segments` in
/// order (segment `segments.start` starts at `sealed.start`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSpan {
    /// Indices of the segments, end exclusive.
    pub segments: Range<u64>,
    /// Byte range of those segments in the sealed blob.
    pub sealed: Range<u64>,
}

impl SegmentLayout {
    /// The layout of a blob of `plain_len` bytes in segments of
    /// `segment_size` bytes. Fails if the segment size is 0 or above
    /// [`MAX_SEGMENT_SIZE`], or the blob would need more than 2^32 segments.
    pub fn new(plain_len: u64, segment_size: u32) -> Result<Self> {
        if segment_size == 0 || segment_size > MAX_SEGMENT_SIZE {
            return Err(CryptoError::SegmentMisuse(
                "segment size must be between 1 byte and 16 MiB",
            ));
        }
        let layout = Self {
            plain_len,
            segment_size,
        };
        if layout.segment_count() > MAX_SEGMENTS {
            return Err(CryptoError::SegmentMisuse(
                "blob too long for its segment size (more than 2^32 segments)",
            ));
        }
        Ok(layout)
    }

    /// The layout recorded in a header (the first [`STREAM_HEADER_LEN`] bytes
    /// of `sealed`; anything after them is ignored). Checks the shape only:
    /// the header is authenticated when a segment is opened.
    pub fn from_header(sealed: &[u8]) -> Result<Self> {
        Ok(Header::parse(sealed)?.layout)
    }

    /// Length of the plaintext.
    pub fn plain_len(&self) -> u64 {
        self.plain_len
    }

    /// Plaintext bytes per segment (all but the last).
    pub fn segment_size(&self) -> u32 {
        self.segment_size
    }

    /// Number of segments: at least one, even for an empty blob.
    pub fn segment_count(&self) -> u64 {
        self.plain_len.div_ceil(u64::from(self.segment_size)).max(1)
    }

    /// Total length of the sealed blob, header included.
    pub fn sealed_len(&self) -> u64 {
        STREAM_HEADER_LEN as u64 + self.plain_len + self.segment_count() * SEGMENT_OVERHEAD as u64
    }

    /// The plaintext bytes that segment `index` holds, or `None` past the
    /// last segment.
    pub fn segment_plain_range(&self, index: u64) -> Option<Range<u64>> {
        if index >= self.segment_count() {
            return None;
        }
        let start = index * u64::from(self.segment_size);
        let end = (start + u64::from(self.segment_size)).min(self.plain_len);
        Some(start..end)
    }

    /// Where segment `index` (ciphertext and tag) lies in the sealed blob, or
    /// `None` past the last segment.
    pub fn segment_sealed_range(&self, index: u64) -> Option<Range<u64>> {
        let plain = self.segment_plain_range(index)?;
        let stride = u64::from(self.segment_size) + SEGMENT_OVERHEAD as u64;
        let start = STREAM_HEADER_LEN as u64 + index * stride;
        Some(start..start + (plain.end - plain.start) + SEGMENT_OVERHEAD as u64)
    }

    /// The segments to fetch and open to read plaintext bytes `plain`, or
    /// `None` unless `plain` is non-empty and lies within the plaintext.
    pub fn segment_range_for(&self, plain: Range<u64>) -> Option<SegmentSpan> {
        if plain.start >= plain.end || plain.end > self.plain_len {
            return None;
        }
        let size = u64::from(self.segment_size);
        let first = plain.start / size;
        let last = (plain.end - 1) / size;
        let start = self.segment_sealed_range(first)?.start;
        let end = self.segment_sealed_range(last)?.end;
        Some(SegmentSpan {
            segments: first..last + 1,
            sealed: start..end,
        })
    }

    /// Which segment holds plaintext byte `offset`, or `None` past the end.
    pub fn segment_of(&self, offset: u64) -> Option<u64> {
        (offset < self.plain_len).then(|| offset / u64::from(self.segment_size))
    }
}

/// A parsed header and the bytes it was parsed from.
struct Header {
    bytes: [u8; STREAM_HEADER_LEN],
    layout: SegmentLayout,
    salt: [u8; SALT_LEN],
    prefix: [u8; PREFIX_LEN],
}

impl Header {
    fn new(layout: SegmentLayout) -> Result<Self> {
        let salt: [u8; SALT_LEN] = aead::random()?;
        let prefix: [u8; PREFIX_LEN] = aead::random()?;
        let mut bytes = Vec::with_capacity(STREAM_HEADER_LEN);
        bytes.extend_from_slice(STREAM_MAGIC);
        bytes.push(STREAM_VERSION);
        bytes.extend_from_slice(&layout.segment_size.to_be_bytes());
        bytes.extend_from_slice(&layout.plain_len.to_be_bytes());
        bytes.extend_from_slice(&salt);
        bytes.extend_from_slice(&prefix);
        let bytes: [u8; STREAM_HEADER_LEN] = bytes
            .try_into()
            .map_err(|_| CryptoError::Malformed { what: HEADER_WHAT })?;
        Ok(Self {
            bytes,
            layout,
            salt,
            prefix,
        })
    }

    fn parse(sealed: &[u8]) -> Result<Self> {
        let bad = || CryptoError::Malformed { what: HEADER_WHAT };
        let (bytes, _) = sealed
            .split_first_chunk::<STREAM_HEADER_LEN>()
            .ok_or_else(bad)?;
        let (magic, rest) = bytes.split_first_chunk::<4>().ok_or_else(bad)?;
        let (version, rest) = rest.split_first().ok_or_else(bad)?;
        if magic != STREAM_MAGIC || *version != STREAM_VERSION {
            return Err(bad());
        }
        let (size, rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
        let (len, rest) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
        let (salt, rest) = rest.split_first_chunk::<SALT_LEN>().ok_or_else(bad)?;
        let (prefix, _) = rest.split_first_chunk::<PREFIX_LEN>().ok_or_else(bad)?;
        let layout = SegmentLayout::new(u64::from_be_bytes(*len), u32::from_be_bytes(*size))
            .map_err(|_| bad())?;
        Ok(Self {
            bytes: *bytes,
            layout,
            salt: *salt,
            prefix: *prefix,
        })
    }
}

/// The per-blob key, nonce prefix and associated data shared by sealer and
/// opener.
struct Keyed {
    cipher: SegmentCipher,
    prefix: [u8; PREFIX_LEN],
    full_aad: Vec<u8>,
    layout: SegmentLayout,
}

impl Keyed {
    fn new(key: &DataKey, header: &Header, aad: &[u8]) -> Result<Self> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.bytes().as_slice())
            .map_err(|_| CryptoError::EncryptionFailed)?;
        mac.update(SUBKEY_LABEL);
        mac.update(&header.salt);
        let mut subkey = Zeroizing::new([0u8; KEY_LEN]);
        subkey.copy_from_slice(mac.finalize().into_bytes().as_slice());
        let mut suffix = Vec::with_capacity(STREAM_HEADER_LEN + aad.len());
        suffix.extend_from_slice(&header.bytes);
        suffix.extend_from_slice(aad);
        Ok(Self {
            cipher: SegmentCipher::new(&subkey)?,
            prefix: header.prefix,
            full_aad: aead::full_aad(Domain::Segmented, &suffix),
            layout: header.layout,
        })
    }

    /// Checks `index` and returns its nonce and expected plaintext length.
    fn nonce(&self, index: u64) -> Result<([u8; NONCE_LEN], usize)> {
        let plain = self
            .layout
            .segment_plain_range(index)
            .ok_or(CryptoError::SegmentMisuse(
                "segment index past the last segment",
            ))?;
        let counter = u32::try_from(index)
            .map_err(|_| CryptoError::SegmentMisuse("segment index past 2^32"))?;
        let last = index + 1 == self.layout.segment_count();
        let mut nonce = [0u8; NONCE_LEN];
        let (head, tail) = nonce.split_at_mut(PREFIX_LEN);
        head.copy_from_slice(&self.prefix);
        let (count, flag) = tail.split_at_mut(4);
        count.copy_from_slice(&counter.to_be_bytes());
        flag.fill(u8::from(last));
        let len = usize::try_from(plain.end - plain.start)
            .map_err(|_| CryptoError::SegmentMisuse("segment too long for this platform"))?;
        Ok((nonce, len))
    }
}

/// Writes a segmented blob one segment at a time: emit [`Self::header`],
/// then the result of [`Self::seal_segment`] for each segment in order.
pub struct SegmentSealer {
    keyed: Keyed,
    header: [u8; STREAM_HEADER_LEN],
    next: u64,
}

impl std::fmt::Debug for SegmentSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentSealer")
            .field("layout", &self.keyed.layout)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl SegmentSealer {
    /// Starts sealing a plaintext of exactly `plain_len` bytes in segments
    /// of [`DEFAULT_SEGMENT_SIZE`], bound to `aad` (see the crate docs).
    pub fn new(key: &DataKey, aad: &[u8], plain_len: u64) -> Result<Self> {
        Self::with_segment_size(key, aad, plain_len, DEFAULT_SEGMENT_SIZE)
    }

    /// [`SegmentSealer::new`] with a chosen segment size.
    pub fn with_segment_size(
        key: &DataKey,
        aad: &[u8],
        plain_len: u64,
        segment_size: u32,
    ) -> Result<Self> {
        let header = Header::new(SegmentLayout::new(plain_len, segment_size)?)?;
        Ok(Self {
            keyed: Keyed::new(key, &header, aad)?,
            header: header.bytes,
            next: 0,
        })
    }

    /// The header: the first bytes of the sealed blob.
    pub fn header(&self) -> &[u8; STREAM_HEADER_LEN] {
        &self.header
    }

    /// Where everything will lie in the sealed blob.
    pub fn layout(&self) -> SegmentLayout {
        self.keyed.layout
    }

    /// Index of the segment [`Self::seal_segment`] expects next.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Plaintext length the next segment must have, or `None` when every
    /// segment has been sealed.
    pub fn next_len(&self) -> Option<u64> {
        self.keyed
            .layout
            .segment_plain_range(self.next)
            .map(|r| r.end - r.start)
    }

    /// Whether every segment has been sealed.
    pub fn is_finished(&self) -> bool {
        self.next >= self.keyed.layout.segment_count()
    }

    /// Seals the next segment, returning `ciphertext || tag`. Its plaintext
    /// must be exactly [`Self::next_len`] bytes: the segment size for all
    /// but the last, the rest for the last.
    pub fn seal_segment(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let (nonce, len) = self.keyed.nonce(self.next)?;
        if plaintext.len() != len {
            return Err(CryptoError::SegmentMisuse(
                "segment plaintext length differs from the layout",
            ));
        }
        let sealed = self
            .keyed
            .cipher
            .seal(nonce, plaintext, &self.keyed.full_aad)?;
        self.next += 1;
        Ok(sealed)
    }
}

/// Opens the segments of a segmented blob, in any order: random access.
pub struct SegmentOpener {
    keyed: Keyed,
}

impl std::fmt::Debug for SegmentOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentOpener")
            .field("layout", &self.keyed.layout)
            .finish_non_exhaustive()
    }
}

impl SegmentOpener {
    /// Reads the header (the first [`STREAM_HEADER_LEN`] bytes of `sealed`;
    /// anything after them is ignored). A malformed header fails here; a
    /// forged one, or the wrong key or AAD, fails at the first
    /// [`Self::open_segment`].
    pub fn new(key: &DataKey, sealed: &[u8], aad: &[u8]) -> Result<Self> {
        let header = Header::parse(sealed)?;
        Ok(Self {
            keyed: Keyed::new(key, &header, aad)?,
        })
    }

    /// Where everything lies in the sealed blob, as the header claims.
    pub fn layout(&self) -> SegmentLayout {
        self.keyed.layout
    }

    /// Decrypts and verifies segment `index` (`ciphertext || tag`, as found
    /// at [`SegmentLayout::segment_sealed_range`]). Returns the plaintext only
    /// if it is authentic, in this position, in this blob.
    pub fn open_segment(&self, index: u64, sealed: &[u8]) -> Result<Vec<u8>> {
        let (nonce, len) = self.keyed.nonce(index)?;
        if sealed.len() != len + SEGMENT_OVERHEAD {
            return Err(CryptoError::Malformed { what: SEGMENT_WHAT });
        }
        self.keyed.cipher.open(nonce, sealed, &self.keyed.full_aad)
    }
}

/// Seals a whole in-memory plaintext into a segmented blob. For small inputs
/// and tests; large ones go through [`SegmentSealer`] piece by piece.
pub fn seal_segmented(
    key: &DataKey,
    plaintext: &[u8],
    aad: &[u8],
    segment_size: u32,
) -> Result<Vec<u8>> {
    let plain_len = u64::try_from(plaintext.len()).map_err(|_| CryptoError::EncryptionFailed)?;
    let mut sealer = SegmentSealer::with_segment_size(key, aad, plain_len, segment_size)?;
    let layout = sealer.layout();
    let sealed_len =
        usize::try_from(layout.sealed_len()).map_err(|_| CryptoError::EncryptionFailed)?;
    let mut out = Vec::with_capacity(sealed_len);
    out.extend_from_slice(sealer.header());
    let size = usize::try_from(segment_size).map_err(|_| CryptoError::EncryptionFailed)?;
    if plaintext.is_empty() {
        out.extend(sealer.seal_segment(&[])?);
    }
    for chunk in plaintext.chunks(size) {
        out.extend(sealer.seal_segment(chunk)?);
    }
    Ok(out)
}

/// Opens a whole segmented blob held in memory, checking its exact length.
pub fn open_segmented(key: &DataKey, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let opener = SegmentOpener::new(key, sealed, aad)?;
    let layout = opener.layout();
    if u64::try_from(sealed.len()).ok() != Some(layout.sealed_len()) {
        return Err(CryptoError::Malformed {
            what: "segmented blob",
        });
    }
    let mut out = Vec::new();
    for index in 0..layout.segment_count() {
        let range = layout
            .segment_sealed_range(index)
            .and_then(|r| Some(usize::try_from(r.start).ok()?..usize::try_from(r.end).ok()?))
            .ok_or(CryptoError::Malformed { what: SEGMENT_WHAT })?;
        let segment = sealed
            .get(range)
            .ok_or(CryptoError::Malformed { what: SEGMENT_WHAT })?;
        out.extend(opener.open_segment(index, segment)?);
    }
    Ok(out)
}
