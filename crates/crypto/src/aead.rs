//! The one place AES-256-GCM is called.
//!
//! The whole-value formats in this crate are `nonce(12) || ciphertext ||
//! tag(16)` under a fresh random nonce, with the caller's associated data
//! prefixed by a per-format domain tag. The prefix keeps a ciphertext of one
//! format (say a blob) from being accepted as another (a field) even under the
//! same key and caller AAD.
//!
//! The segmented format (`CLS1`, see `stream.rs`) instead computes each
//! segment's nonce from its header and position, under a key derived for that
//! one blob; [`SegmentCipher`] is its entry point.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};

/// Length of every key in this crate (AES-256).
pub(crate) const KEY_LEN: usize = 32;
/// AES-GCM's standard 96-bit nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// AES-GCM's 128-bit authentication tag.
pub(crate) const TAG_LEN: usize = 16;

/// Which format a ciphertext belongs to; mixed into the associated data.
#[derive(Clone, Copy)]
pub(crate) enum Domain {
    Field,
    Blob,
    WrappedKey,
    Segmented,
}

impl Domain {
    fn tag(self) -> &'static [u8] {
        match self {
            Domain::Field => b"careline clx1\0",
            Domain::Blob => b"careline CLB1\0",
            Domain::WrappedKey => b"careline clwk1\0",
            Domain::Segmented => b"careline CLS1\0",
        }
    }
}

pub(crate) fn full_aad(domain: Domain, aad: &[u8]) -> Vec<u8> {
    let tag = domain.tag();
    let mut full = Vec::with_capacity(tag.len() + aad.len());
    full.extend_from_slice(tag);
    full.extend_from_slice(aad);
    full
}

fn cipher(key: &Zeroizing<[u8; KEY_LEN]>) -> Result<Aes256Gcm> {
    // The length is fixed by the type, so this cannot fail; map it anyway
    // rather than unwrap.
    Aes256Gcm::new_from_slice(key.as_slice()).map_err(|_| CryptoError::EncryptionFailed)
}

/// Fills a buffer from the operating system's random number generator.
pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(CryptoError::Rng)?;
    Ok(out)
}

/// Encrypts under a fresh random nonce; returns `nonce || ciphertext || tag`.
pub(crate) fn seal(
    key: &Zeroizing<[u8; KEY_LEN]>,
    domain: Domain,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    let nonce_bytes: [u8; NONCE_LEN] = random()?;
    let nonce = Nonce::from(nonce_bytes);
    let aad = full_aad(domain, aad);
    let ciphertext = cipher(key)?
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| CryptoError::EncryptionFailed)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Reverses [`seal`]; `what` names the format in the error for short input.
pub(crate) fn open(
    key: &Zeroizing<[u8; KEY_LEN]>,
    domain: Domain,
    sealed: &[u8],
    aad: &[u8],
    what: &'static str,
) -> Result<Vec<u8>> {
    let (nonce_bytes, ciphertext) = sealed
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(CryptoError::Malformed { what })?;
    if ciphertext.len() < TAG_LEN {
        return Err(CryptoError::Malformed { what });
    }
    let nonce = Nonce::from(*nonce_bytes);
    let aad = full_aad(domain, aad);
    cipher(key)?
        .decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| CryptoError::DecryptionFailed)
}

/// AES-256-GCM under one key with nonces chosen by the caller, for the
/// segmented format. The caller must never use a nonce twice under one key:
/// `stream.rs` derives a fresh key per blob and numbers its segments.
pub(crate) struct SegmentCipher {
    cipher: Aes256Gcm,
}

impl SegmentCipher {
    pub(crate) fn new(key: &Zeroizing<[u8; KEY_LEN]>) -> Result<Self> {
        Ok(Self {
            cipher: cipher(key)?,
        })
    }

    /// Returns `ciphertext || tag`.
    pub(crate) fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
        full_aad: &[u8],
    ) -> Result<Vec<u8>> {
        self.cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: full_aad,
                },
            )
            .map_err(|_| CryptoError::EncryptionFailed)
    }

    /// Reverses [`SegmentCipher::seal`]; the plaintext is returned only if
    /// the tag verifies.
    pub(crate) fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        sealed: &[u8],
        full_aad: &[u8],
    ) -> Result<Vec<u8>> {
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: full_aad,
                },
            )
            .map_err(|_| CryptoError::DecryptionFailed)
    }
}
