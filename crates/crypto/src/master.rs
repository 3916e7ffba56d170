//! The master key: where it comes from, and wrapping data keys with it.
//!
//! The master key is the one secret that must live outside the data
//! directory: in an environment variable, or in a file the operator keeps
//! elsewhere (or at least with mode 0600). It never encrypts data directly,
//! only data keys, so rotating it rewrites a few short strings, not every row.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use base64ct::{Base64, Encoding};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::aead::{self, Domain, KEY_LEN};
use crate::data::DataKey;
use crate::error::{CryptoError, Result};

/// Prefix of a wrapped data key.
pub const WRAPPED_PREFIX: &str = "clwk1:";

/// Length of a master key id in hex characters.
const ID_LEN: usize = 8;

/// The 32-byte key that wraps every data key. Zeroed on drop; `Debug` shows
/// only its id.
#[derive(Clone)]
pub struct MasterKey {
    key: Zeroizing<[u8; KEY_LEN]>,
    /// First 8 hex characters of SHA-256 of the key. Public: recorded in
    /// every wrapped key so a mismatch is reported by name, not as a bare
    /// decryption failure.
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Where [`MasterKey::from_env_or_file`] found the key, so the caller can log
/// it (and warn) without the library logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Read from this environment variable.
    Env {
        /// The variable's name.
        var: String,
    },
    /// Read from an existing file.
    File {
        /// The file.
        path: PathBuf,
        /// True when group or others may access the file (unix mode & 0o077):
        /// the caller should warn, as anyone who can read it can read all data.
        loose_permissions: bool,
    },
    /// Generated and written to this new file (mode 0600).
    Created {
        /// The file.
        path: PathBuf,
    },
}

impl MasterKey {
    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let id = hex::encode(Sha256::digest(bytes))
            .get(..ID_LEN)
            .unwrap_or_default()
            .to_owned();
        Self {
            key: Zeroizing::new(bytes),
            id,
        }
    }

    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<Self> {
        Ok(Self::from_bytes(aead::random()?))
    }

    /// Parses 64 hex characters or standard base64 of 32 bytes; surrounding
    /// whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self> {
        decode(text)
            .map(Self::from_bytes)
            .map_err(|reason| CryptoError::InvalidMasterKey {
                origin: "the given text".to_owned(),
                reason,
            })
    }

    /// The key's id: first 8 hex characters of SHA-256 of the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as 64 lowercase hex characters, the form written to files, for
    /// a CLI that shows a newly generated key once (e.g. to put it in the
    /// environment). Zeroed on drop.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.key.as_slice()))
    }

    /// Loads the master key: from `env_var` if it is set, else from the file
    /// at `path`; if neither exists and `create_if_missing`, generates a key
    /// and writes it to `path` with mode 0600.
    ///
    /// The variable and the file hold 64 hex characters or base64 of 32
    /// bytes, surrounding whitespace ignored. A variable that is set but
    /// empty is an error rather than a fall-through to the file, so a
    /// misconfigured deployment does not silently start with a new key.
    ///
    /// Creation never overwrites: if another process creates the file first,
    /// its key is read and used.
    pub fn from_env_or_file(
        env_var: &str,
        path: &Path,
        create_if_missing: bool,
    ) -> Result<(Self, KeySource)> {
        Self::from_env_value_or_file(
            env_var,
            std::env::var_os(env_var).as_deref(),
            path,
            create_if_missing,
        )
    }

    /// [`MasterKey::from_env_or_file`] with the variable's value passed in
    /// (`None` when unset), so callers and tests need not mutate the process
    /// environment, which Rust 2024 makes `unsafe`.
    pub fn from_env_value_or_file(
        env_var: &str,
        env_value: Option<&OsStr>,
        path: &Path,
        create_if_missing: bool,
    ) -> Result<(Self, KeySource)> {
        if let Some(value) = env_value {
            let origin = || format!("environment variable {env_var}");
            let text = value
                .to_str()
                .ok_or_else(|| CryptoError::InvalidMasterKey {
                    origin: origin(),
                    reason: "not valid UTF-8",
                })?;
            let bytes = decode(text).map_err(|reason| CryptoError::InvalidMasterKey {
                origin: origin(),
                reason,
            })?;
            return Ok((
                Self::from_bytes(bytes),
                KeySource::Env {
                    var: env_var.to_owned(),
                },
            ));
        }
        match Self::read_file(path) {
            Ok(found) => Ok(found),
            Err(CryptoError::MasterKeyIo { source, .. })
                if source.kind() == ErrorKind::NotFound && create_if_missing =>
            {
                let key = Self::generate()?;
                match key.write_new_file(path) {
                    Ok(()) => Ok((
                        key,
                        KeySource::Created {
                            path: path.to_owned(),
                        },
                    )),
                    // Another process won the race; use its key.
                    Err(CryptoError::MasterKeyIo { source, .. })
                        if source.kind() == ErrorKind::AlreadyExists =>
                    {
                        Self::read_file(path)
                    }
                    Err(other) => Err(other),
                }
            }
            Err(CryptoError::MasterKeyIo { source, .. })
                if source.kind() == ErrorKind::NotFound =>
            {
                Err(CryptoError::MasterKeyMissing {
                    var: env_var.to_owned(),
                    path: path.to_owned(),
                })
            }
            Err(other) => Err(other),
        }
    }

    /// Reads a key file written by [`MasterKey::write_new_file`] or by hand.
    pub fn read_file(path: &Path) -> Result<(Self, KeySource)> {
        let io_err = |source| CryptoError::MasterKeyIo {
            path: path.to_owned(),
            source,
        };
        let raw = Zeroizing::new(fs::read(path).map_err(io_err)?);
        let invalid = |reason| CryptoError::InvalidMasterKey {
            origin: format!("file {}", path.display()),
            reason,
        };
        let text = std::str::from_utf8(&raw).map_err(|_| invalid("not valid UTF-8"))?;
        let key = Self::from_bytes(decode(text).map_err(invalid)?);
        let loose_permissions = loose_permissions(path).map_err(io_err)?;
        Ok((
            key,
            KeySource::File {
                path: path.to_owned(),
                loose_permissions,
            },
        ))
    }

    /// Writes the key as hex to a new file with mode 0600, creating parent
    /// directories. Fails with an `AlreadyExists` I/O error if the file
    /// exists.
    ///
    /// The key is written to a temporary file in the same directory, synced,
    /// then hard-linked into place, so the file appears complete or not at
    /// all and concurrent creators never overwrite each other. On a
    /// filesystem without hard links it falls back to `create_new` in place.
    pub fn write_new_file(&self, path: &Path) -> Result<()> {
        let io_err = |source| CryptoError::MasterKeyIo {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(io_err)?;
        let name = path
            .file_name()
            .ok_or_else(|| io_err(std::io::Error::from(ErrorKind::InvalidInput)))?;
        let suffix: [u8; 8] = aead::random()?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}", hex::encode(suffix)));
        let tmp = dir.join(tmp_name);

        let hex = self.to_hex();
        if let Err(e) = write_private(&tmp, hex.as_bytes()) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e));
        }
        let linked = fs::hard_link(&tmp, path);
        // The temporary name is removed whether or not the link succeeded.
        let removed = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(io_err(e)),
            // A filesystem without hard links: create the file in place. This
            // still never overwrites; a concurrent reader could only see it
            // half written, and would then fail rather than use a wrong key.
            Err(_) => write_private(path, hex.as_bytes()).map_err(io_err)?,
        }
        removed.map_err(io_err)?;
        // Make the new directory entry durable; not every platform can open
        // a directory, so this is best effort.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Wraps (encrypts) a data key for storage: `clwk1:<master id>:<base64>`.
    pub fn wrap(&self, data_key: &DataKey) -> Result<String> {
        let sealed = aead::seal(
            &self.key,
            Domain::WrappedKey,
            data_key.bytes().as_slice(),
            self.id.as_bytes(),
        )?;
        Ok(format!(
            "{WRAPPED_PREFIX}{}:{}",
            self.id,
            Base64::encode_string(&sealed)
        ))
    }

    /// Unwraps a key made by [`MasterKey::wrap`]. If it was wrapped by another
    /// master key, fails with [`CryptoError::WrongMasterKey`] naming both ids.
    pub fn unwrap(&self, wrapped: &str) -> Result<DataKey> {
        const WHAT: &str = "wrapped data key";
        let (id, body) = split_wrapped(wrapped)?;
        if id != self.id {
            return Err(CryptoError::WrongMasterKey {
                expected: id.to_owned(),
                actual: self.id.clone(),
            });
        }
        let raw = Base64::decode_vec(body).map_err(|_| CryptoError::Malformed { what: WHAT })?;
        let plain = Zeroizing::new(aead::open(
            &self.key,
            Domain::WrappedKey,
            &raw,
            self.id.as_bytes(),
            WHAT,
        )?);
        let bytes: [u8; KEY_LEN] = plain
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Malformed { what: WHAT })?;
        Ok(DataKey::from_bytes(bytes))
    }
}

/// The id of the master key that wrapped `wrapped`, without unwrapping it.
/// `careline keys rotate` can use it to report or skip keys already rotated.
pub fn wrapped_by(wrapped: &str) -> Result<&str> {
    split_wrapped(wrapped).map(|(id, _)| id)
}

/// Re-wraps one stored data key from `old` to `new` master key; this is what
/// `careline keys rotate` runs over every wrapped key. The data key itself is
/// unchanged, so every existing ciphertext still opens.
///
/// A key already wrapped by `new` is returned unchanged after checking that
/// `new` unwraps it, so an interrupted rotation can simply be run again.
pub fn rotate_master(old: &MasterKey, new: &MasterKey, wrapped: &str) -> Result<String> {
    if wrapped_by(wrapped)? == new.id() {
        new.unwrap(wrapped)?;
        return Ok(wrapped.to_owned());
    }
    new.wrap(&old.unwrap(wrapped)?)
}

/// Re-wraps every stored data key of a store from `old` to `new`, as
/// [`rotate_master`] does one; both stores' `rewrap_keys` call it inside the
/// transaction that writes the result. All or nothing: every key is
/// re-wrapped in memory first, so on the first key that does not open (say,
/// one wrapped by a third master key) the caller gets the error and writes
/// nothing. `K` is whatever names a row (organization and version).
pub fn rotate_master_all<K>(
    old: &MasterKey,
    new: &MasterKey,
    keys: Vec<(K, String)>,
) -> Result<Vec<(K, String)>> {
    keys.into_iter()
        .map(|(row, wrapped)| rotate_master(old, new, &wrapped).map(|w| (row, w)))
        .collect()
}

fn split_wrapped(wrapped: &str) -> Result<(&str, &str)> {
    wrapped
        .strip_prefix(WRAPPED_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .ok_or(CryptoError::Malformed {
            what: "wrapped data key",
        })
}

/// Decodes key text; the error says why without echoing the text.
fn decode(text: &str) -> Result<[u8; KEY_LEN], &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("it is empty");
    }
    let mut out = [0u8; KEY_LEN];
    if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode_to_slice(text, &mut out).map_err(|_| "invalid hex")?;
        return Ok(out);
    }
    let mut buf = Zeroizing::new([0u8; KEY_LEN + 3]);
    match Base64::decode(text, buf.as_mut_slice()) {
        Ok(decoded) if decoded.len() == KEY_LEN => {
            out.copy_from_slice(decoded);
            Ok(out)
        }
        Ok(_) => Err("base64 that does not decode to 32 bytes"),
        Err(_) if text.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Err("hex of the wrong length (need 64 characters)")
        }
        Err(_) => Err("neither hex nor base64 of the right length"),
    }
}

/// Creates `path` exclusively, readable and writable by the owner only.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(unix)]
fn loose_permissions(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    Ok(fs::metadata(path)?.permissions().mode() & 0o077 != 0)
}

#[cfg(not(unix))]
fn loose_permissions(_path: &Path) -> std::io::Result<bool> {
    Ok(false)
}
