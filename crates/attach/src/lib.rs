//! Attachment intake for careline.
//!
//! Members upload photos, PDFs and text. The server streams each upload to a
//! temporary file and then uses this crate to:
//!
//! 1. decide what the file is from its content ([`sniff_file`], [`Sniffer`])
//!    and compare that with what the client claimed ([`check_declared`]);
//! 2. make the client's file name safe to display and to send back in a
//!    `Content-Disposition` header ([`sanitize_filename`],
//!    [`content_disposition`]);
//! 3. remove privacy metadata (EXIF with its GPS position, XMP, comments)
//!    from images ([`strip_metadata`]);
//! 4. scan the file with a ClamAV daemon ([`Scanner`]).
//!
//! Nothing here reads a whole file into memory: files are processed through
//! buffers of 64 KiB, plus one buffer per metadata section being inspected
//! (a JPEG segment is at most 64 KiB; a HEIF `meta` box is capped at 16 MiB).
//!
//! [`sniff_file`] and [`strip_metadata`] do blocking file I/O; call them from
//! `tokio::task::spawn_blocking` in async code. [`Scanner`] is async.

mod clamd;
mod filename;
mod kind;
mod sniff;
mod strip;
#[cfg(feature = "testing")]
pub mod testing;

pub use clamd::{AddrParseError, ClamdAddr, ScanError, ScanOptions, Scanner, Verdict};
pub use filename::{content_disposition, sanitize_filename};
pub use kind::Kind;
pub use sniff::{Detected, Mismatch, Sniffer, check_declared, sniff_file};
pub use strip::{StripError, StripReport, strip_metadata};

/// The standard 68-byte EICAR anti-virus test file. Harmless; every scanner
/// is expected to report it, and the test clamd in [`testing`] is set up to.
pub const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
