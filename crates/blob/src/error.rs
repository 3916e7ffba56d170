//! The one error type of this crate.
//!
//! Messages name the store (as [`BlobStore::describe`](crate::BlobStore::describe)
//! puts it), locations and local file paths, never credentials, keys or
//! plaintext.

use std::ops::Range;
use std::path::PathBuf;

/// Everything that can go wrong configuring a blob store, storing a blob or
/// reading one back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The store URL or configuration is unusable; the message says why.
    #[error("blob store configuration: {0}")]
    Config(String),

    /// The startup check could not write, read back or delete a probe
    /// object: the store is down, unreachable, or refuses these credentials.
    #[error("{store} unreachable ({step} of a probe object failed): {source}")]
    Unavailable {
        /// The store, as described by `BlobStore::describe`.
        store: String,
        /// Which step failed: `write`, `read` or `delete`.
        step: &'static str,
        /// What the store said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A local file (the plaintext being stored, or the store's directory)
    /// could not be read or created.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The plaintext file changed while it was being stored (its length or
    /// SHA-256 differed between the two passes). Nothing was stored.
    #[error("{0} changed while it was being stored; nothing was stored")]
    FileChanged(PathBuf),

    /// An organization name or location that this crate would not have
    /// produced.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// `organization` or `location`.
        what: &'static str,
        /// The rejected text.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// No object at this location.
    #[error("no blob at {0}")]
    NotFound(String),

    /// A byte range outside the blob (HTTP 416).
    #[error("range {}..{} is not within the blob ({size} bytes)", range.start, range.end)]
    RangeNotSatisfiable {
        /// The range asked for.
        range: Range<u64>,
        /// The blob's plaintext length.
        size: u64,
    },

    /// The stored object is not what was stored: it failed authentication
    /// (wrong key or AAD, or modified), is truncated, or is not a `CLS1`
    /// blob. No byte of a segment that failed is ever returned.
    #[error("blob {location} failed its integrity check: {reason}")]
    Integrity {
        /// The blob's location.
        location: String,
        /// What failed.
        reason: String,
    },

    /// `put_file` found an object with this content address already, but it
    /// does not open with the given key and AAD (typically sealed under an
    /// older data key version). The existing object was left alone.
    #[error(
        "blob {location} already exists but does not open with this key and AAD (sealed under another data key, or modified)"
    )]
    Conflict {
        /// The blob's location.
        location: String,
    },

    /// The object store failed an operation.
    #[error("{store}: {op} {location} failed: {source}")]
    Store {
        /// The store, as described by `BlobStore::describe`.
        store: String,
        /// The operation: `put`, `get`, `head`, `delete`, `upload`.
        op: &'static str,
        /// The object's location.
        location: String,
        /// What the store said.
        source: Box<object_store::Error>,
    },

    /// Encryption failed (random number generator or a misuse bug).
    #[error("encryption failed: {0}")]
    Crypto(#[from] careline_crypto::CryptoError),
}

impl BlobError {
    /// Whether this is an integrity failure: the stored bytes are not what
    /// was stored under this key and AAD.
    pub fn is_integrity(&self) -> bool {
        matches!(self, Self::Integrity { .. })
    }

    /// Whether no blob exists at the location.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_))
    }
}
