//! The keys a running process holds: one master key and the unwrapped data
//! keys of the organizations it serves.
//!
//! Data keys are named by a key id string. The convention is
//! `"<owner>:<version>"` (see [`Keyring::key_id`]): the owner is the
//! organization id, and the version lets an organization move to a new data
//! key while old rows still name the version that sealed them. The store
//! keeps, per data key, its key id and wrapped form; per sealed row, which
//! version sealed it.

use std::collections::HashMap;

use crate::data::DataKey;
use crate::error::{CryptoError, Result};
use crate::master::MasterKey;

/// The master key plus the data keys unwrapped with it.
pub struct Keyring {
    master: MasterKey,
    keys: HashMap<String, DataKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("master", &self.master)
            .field("data_keys", &ids)
            .finish()
    }
}

impl Keyring {
    /// An empty keyring around a master key.
    pub fn new(master: MasterKey) -> Self {
        Self {
            master,
            keys: HashMap::new(),
        }
    }

    /// The conventional key id for an owner's data key version:
    /// `"<owner>:<version>"`.
    pub fn key_id(owner: &str, version: u32) -> String {
        format!("{owner}:{version}")
    }

    /// The master key, e.g. to show its id or to rotate.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// Unwraps a stored data key and holds it under `key_id`, replacing any
    /// key already held under that id. Fails with
    /// [`CryptoError::WrongMasterKey`] if another master key wrapped it.
    pub fn load(&mut self, key_id: impl Into<String>, wrapped: &str) -> Result<()> {
        let key = self.master.unwrap(wrapped)?;
        self.keys.insert(key_id.into(), key);
        Ok(())
    }

    /// Generates a new data key, holds it under `key_id`, and returns its
    /// wrapped form, which the caller must store before sealing anything with
    /// it. Refuses an id already held, so a key that sealed data is never
    /// silently replaced.
    pub fn create(&mut self, key_id: impl Into<String>) -> Result<String> {
        let key_id = key_id.into();
        if self.keys.contains_key(&key_id) {
            return Err(CryptoError::DataKeyExists(key_id));
        }
        let key = DataKey::generate()?;
        let wrapped = self.master.wrap(&key)?;
        self.keys.insert(key_id, key);
        Ok(wrapped)
    }

    /// The data key held under `key_id`.
    pub fn get(&self, key_id: &str) -> Result<&DataKey> {
        self.keys
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownDataKey(key_id.to_owned()))
    }

    /// Whether a data key is held under `key_id`.
    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }
}
