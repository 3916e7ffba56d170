//! Encryption at rest for careline's protected health information.
//!
//! # Envelope scheme
//!
//! ```text
//! master key (32 bytes, env var or key file, never in the data dir)
//!   └─ wraps ─> data key per organization and version (AES-256-GCM),
//!               stored in the database as  clwk1:<master id>:<base64>
//!                 └─ seals ─> message bodies, internal notes, call notes:
//!                               clx1:<base64(nonce || ciphertext || tag)>
//!                             attachment blobs:
//!                               CLB1 || nonce || ciphertext || tag
//!                             large attachment blobs, readable by range:
//!                               CLS1 header || segment || segment || ...
//! ```
//!
//! - [`MasterKey`] is loaded by [`MasterKey::from_env_or_file`] (64 hex
//!   characters or base64 of 32 bytes), created with mode 0600 if asked. Its
//!   id (first 8 hex characters of SHA-256 of the key) is written into every
//!   wrapped key, so starting with the wrong master key is reported as
//!   "wrapped by master key X, loaded key is Y".
//! - [`DataKey`] seals fields ([`DataKey::seal`], [`DataKey::seal_str`]) and
//!   blobs ([`DataKey::seal_bytes`]) with AES-256-GCM under a fresh random
//!   96-bit nonce per call.
//! - [`SegmentSealer`] and [`SegmentOpener`] seal large blobs as `CLS1`: 64 KiB
//!   segments, each its own AES-256-GCM message under a key derived for that
//!   blob, so a blob is written one segment at a time and any byte range is
//!   read by opening only the segments that cover it. [`SegmentLayout`] maps
//!   plaintext ranges to segments; the format is specified in its module.
//! - Every seal takes associated data (AAD) that is authenticated but not
//!   stored: pass the row's identity (e.g. `b"message:<id>"`) so a ciphertext
//!   copied into another row, or another organization, fails to open instead
//!   of being displayed there.
//! - [`Keyring`] holds the master key and the unwrapped data keys by key id
//!   (`"<org>:<version>"`, see [`Keyring::key_id`]).
//! - [`rotate_master`] re-wraps one stored data key under a new master key;
//!   `careline keys rotate` runs [`rotate_master_all`] over every wrapped key
//!   of the store, in one transaction. Data keys, and so every existing
//!   ciphertext, are unchanged, and it can be re-run after an interruption.
//!
//! # What this protects against
//!
//! Someone who obtains the data directory — the database and its WAL, a
//! backup, a disk image, the attachment blobs — but not the master key gets
//! ciphertext and wrapped data keys. Without the master key file or
//! environment variable these reveal nothing of the sealed content beyond
//! its length and which rows exist. Anyone who can also write to the database
//! cannot forge, alter or swap sealed fields between rows undetected, as long
//! as the caller binds each ciphertext to its row with AAD.
//!
//! # What it does not protect against
//!
//! - A running careline process: it holds the master key and the unwrapped
//!   data keys in memory, so whoever can read its memory, attach a debugger,
//!   or run code as its user can read everything.
//! - Someone holding both the database and the master key (for instance
//!   because the key file sits in the same backup or the same directory with
//!   the same permissions). Keep the key file outside the data directory, or
//!   in the environment, and out of database backups.
//! - Metadata that is not sealed: which fields are sealed is the caller's
//!   choice, and lengths, timestamps and row relationships stay visible.
//! - Rolling a whole row back to an older version of itself: AAD binds a
//!   ciphertext to a row, not to a point in time.

mod aead;
mod data;
mod error;
mod keyring;
mod master;
mod stream;

pub use data::{BLOB_MAGIC, DataKey, FIELD_PREFIX, is_sealed, is_sealed_blob};
pub use error::{CryptoError, Result};
pub use keyring::Keyring;
pub use master::{
    KeySource, MasterKey, WRAPPED_PREFIX, rotate_master, rotate_master_all, wrapped_by,
};
pub use stream::{
    DEFAULT_SEGMENT_SIZE, MAX_SEGMENT_SIZE, SEGMENT_OVERHEAD, STREAM_HEADER_LEN, STREAM_MAGIC,
    STREAM_VERSION, SegmentLayout, SegmentOpener, SegmentSealer, SegmentSpan, open_segmented,
    seal_segmented,
};
