//! Data keys and the two ciphertext formats they produce.
//!
//! - Fields (message bodies, internal notes, call notes) become printable
//!   strings `clx1:<base64(nonce || ciphertext || tag)>` that fit in a TEXT
//!   column.
//! - Blobs (attachments) become binary `CLB1 || nonce || ciphertext || tag`,
//!   with no base64 overhead.
//!
//! Both take associated data (AAD): bytes that are authenticated but not
//! stored. Pass something that identifies the row or file the ciphertext
//! belongs to, e.g. `b"message:01J..."`. Opening then fails unless the same
//! AAD is given, so someone who can write to the database cannot move a
//! ciphertext from one row (or organization) to another and have it shown
//! there. An empty AAD is allowed but gives up that protection.

use base64ct::{Base64, Encoding};
use zeroize::Zeroizing;

use crate::aead::{self, Domain, KEY_LEN, NONCE_LEN, TAG_LEN};
use crate::error::{CryptoError, Result};

/// Prefix of a sealed field.
pub const FIELD_PREFIX: &str = "clx1:";
/// First bytes of a sealed blob.
pub const BLOB_MAGIC: &[u8; 4] = b"CLB1";

/// An AES-256-GCM key that seals one organization's data. It is stored only
/// wrapped by the [`MasterKey`](crate::MasterKey), and zeroed on drop.
///
/// Each seal draws a random 96-bit nonce, which is safe for about 2^32
/// seals under one key; create a new key version long before that.
#[derive(Clone)]
pub struct DataKey {
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<Self> {
        Ok(Self::from_bytes(aead::random()?))
    }

    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self {
            key: Zeroizing::new(bytes),
        }
    }

    pub(crate) fn bytes(&self) -> &Zeroizing<[u8; KEY_LEN]> {
        &self.key
    }

    /// Encrypts a field to `clx1:<base64>`. Two seals of the same input
    /// differ (fresh nonce), so equal plaintexts are not visible as equal.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String> {
        let sealed = aead::seal(&self.key, Domain::Field, plaintext, aad)?;
        let mut out = String::with_capacity(FIELD_PREFIX.len() + sealed.len().div_ceil(3) * 4);
        out.push_str(FIELD_PREFIX);
        out.push_str(&Base64::encode_string(&sealed));
        Ok(out)
    }

    /// Decrypts a field made by [`DataKey::seal`] with the same AAD.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>> {
        const WHAT: &str = "sealed field";
        let body = sealed
            .strip_prefix(FIELD_PREFIX)
            .ok_or(CryptoError::Malformed { what: WHAT })?;
        let raw = Base64::decode_vec(body).map_err(|_| CryptoError::Malformed { what: WHAT })?;
        aead::open(&self.key, Domain::Field, &raw, aad, WHAT)
    }

    /// [`DataKey::seal`] for text.
    pub fn seal_str(&self, plaintext: &str, aad: &[u8]) -> Result<String> {
        self.seal(plaintext.as_bytes(), aad)
    }

    /// [`DataKey::open`] for text sealed with [`DataKey::seal_str`].
    pub fn open_str(&self, sealed: &str, aad: &[u8]) -> Result<String> {
        String::from_utf8(self.open(sealed, aad)?).map_err(|_| CryptoError::NotUtf8)
    }

    /// Encrypts a blob to `CLB1 || nonce || ciphertext || tag` (28 bytes of
    /// overhead). Holds the whole blob in memory; attachments are bounded.
    pub fn seal_bytes(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let sealed = aead::seal(&self.key, Domain::Blob, plaintext, aad)?;
        let mut out = Vec::with_capacity(BLOB_MAGIC.len() + sealed.len());
        out.extend_from_slice(BLOB_MAGIC);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts a blob made by [`DataKey::seal_bytes`] with the same AAD.
    pub fn open_bytes(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        const WHAT: &str = "sealed blob";
        let body = sealed
            .strip_prefix(BLOB_MAGIC.as_slice())
            .ok_or(CryptoError::Malformed { what: WHAT })?;
        aead::open(&self.key, Domain::Blob, body, aad, WHAT)
    }
}

/// Whether `text` has the shape of a sealed field: the `clx1:` prefix
/// followed by base64 long enough for a nonce and tag.
///
/// Meant for migrations that encrypt existing plaintext rows. It checks the
/// shape only: a user could type a message that looks sealed, so a column
/// that may hold either should be told apart by schema (a flag or a
/// migration version), not by this alone.
pub fn is_sealed(text: &str) -> bool {
    text.strip_prefix(FIELD_PREFIX)
        .and_then(|body| Base64::decode_vec(body).ok())
        .is_some_and(|raw| raw.len() >= NONCE_LEN + TAG_LEN)
}

/// Whether `bytes` starts like a sealed blob (magic and minimum length).
pub fn is_sealed_blob(bytes: &[u8]) -> bool {
    bytes.starts_with(BLOB_MAGIC) && bytes.len() >= BLOB_MAGIC.len() + NONCE_LEN + TAG_LEN
}
