//! The one error type of this crate.
//!
//! Messages name files, environment variables and key ids so an operator can
//! act on them, but never contain key material or plaintext.

use std::path::PathBuf;

/// Everything that can go wrong loading keys, wrapping them or sealing data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The master key text is not 64 hex characters or base64 of 32 bytes.
    #[error(
        "master key from {origin} is invalid: {reason} (expected 64 hex characters or base64 of 32 bytes)"
    )]
    InvalidMasterKey {
        /// Where the text came from, e.g. `file /var/lib/careline/master.key`.
        origin: String,
        /// What is wrong with it, without echoing it.
        reason: &'static str,
    },

    /// The master key file could not be read or created.
    #[error("master key file {path}: {source}")]
    MasterKeyIo {
        /// The file that was being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// Neither the environment variable nor the file holds a master key, and
    /// the caller did not ask for one to be created.
    #[error("no master key: environment variable {var} is not set and {path} does not exist")]
    MasterKeyMissing {
        /// The environment variable that was consulted.
        var: String,
        /// The file that was consulted.
        path: PathBuf,
    },

    /// A wrapped data key names a different master key than the one loaded:
    /// the operator started with the wrong key file or environment.
    #[error("data key was wrapped by master key {expected}, but the loaded master key is {actual}")]
    WrongMasterKey {
        /// The id recorded in the wrapped key.
        expected: String,
        /// The id of the master key that was used.
        actual: String,
    },

    /// The input does not have the shape of the named format (prefix, base64,
    /// length); it was never produced by this crate or was truncated.
    #[error("malformed {what}")]
    Malformed {
        /// Which format: `sealed field`, `sealed blob`, `wrapped data key`,
        /// `segmented blob header` or `sealed segment`.
        what: &'static str,
    },

    /// Authentication failed: wrong key, wrong associated data, or the
    /// ciphertext was modified. AES-GCM deliberately cannot tell these apart.
    #[error("decryption failed: wrong key, wrong associated data, or tampered ciphertext")]
    DecryptionFailed,

    /// Encryption was refused (input longer than AES-GCM's 64 GiB limit).
    #[error("encryption failed: input too long")]
    EncryptionFailed,

    /// `open_str` decrypted bytes that are not UTF-8.
    #[error("decrypted field is not valid UTF-8")]
    NotUtf8,

    /// A [`Keyring`](crate::Keyring) lookup for a key id it does not hold.
    #[error("no data key {0} in the keyring")]
    UnknownDataKey(String),

    /// [`Keyring::create`](crate::Keyring::create) for a key id it already
    /// holds.
    #[error("data key {0} already exists in the keyring")]
    DataKeyExists(String),

    /// A segmented blob (`CLS1`) was sealed or opened out of order, with a
    /// segment of the wrong length, or with an unsupported segment size: a
    /// bug in the caller, not a property of the data.
    #[error("segmented blob: {0}")]
    SegmentMisuse(&'static str),

    /// The operating system's random number generator failed.
    #[error("operating system random number generator failed: {0}")]
    Rng(getrandom::Error),
}

/// Shorthand used throughout the crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;
