//! Encryption at rest inside the store: each organization has a data key
//! (AES-256-GCM) wrapped by the master key and kept in `org_keys`; message
//! bodies (member messages, replies, internal notes, call notes), triage
//! results (they quote the member's words), clinical clearances and safety
//! findings are sealed with it, bound to their row by associated data.
//! Rows written before encryption existed are read as they are.

use crate::rows::db;
use careline_core::ids::OrgId;
use careline_core::{Error, Result};
use careline_crypto::{DataKey, MasterKey, is_sealed};
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::sync::RwLock;

/// The master key and every organization's unwrapped data key.
pub struct Crypto {
    master: MasterKey,
    keys: RwLock<HashMap<OrgId, DataKey>>,
}

fn crypto_err(e: careline_crypto::CryptoError) -> Error {
    Error::internal(format!("encryption: {e}"))
}

impl Crypto {
    pub fn new(master: MasterKey) -> Self {
        Crypto {
            master,
            keys: RwLock::new(HashMap::new()),
        }
    }

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// Unwrap every stored data key; create keys for organizations that have none.
    pub fn load(&self, c: &Connection) -> Result<()> {
        let mut s = c
            .prepare("SELECT org_id, wrapped FROM org_keys WHERE version = 1")
            .map_err(db)?;
        let rows = s
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)?;
        let mut keys = self
            .keys
            .write()
            .map_err(|_| Error::internal("key map poisoned"))?;
        for (org, wrapped) in rows {
            let org: OrgId = org
                .parse()
                .map_err(|_| Error::internal("bad organization id in org_keys"))?;
            let dk = self.master.unwrap(&wrapped).map_err(|e| {
                Error::internal(format!(
                    "cannot unwrap the data key of organization {org}: {e} (is CARELINE_MASTER_KEY or the master key file the one this data directory was created with?)"
                ))
            })?;
            keys.insert(org, dk);
        }
        Ok(())
    }

    /// Make sure `org` has a data key (inside the caller's write transaction).
    pub fn ensure_org_key(&self, c: &Connection, org: OrgId, now_us: i64) -> Result<()> {
        if self
            .keys
            .read()
            .map_err(|_| Error::internal("key map poisoned"))?
            .contains_key(&org)
        {
            return Ok(());
        }
        let dk = DataKey::generate().map_err(crypto_err)?;
        let wrapped = self.master.wrap(&dk).map_err(crypto_err)?;
        c.prepare_cached("INSERT INTO org_keys (org_id, version, wrapped, created_at) VALUES ($1, 1, $2, $3) ON CONFLICT DO NOTHING")
            .and_then(|mut s| s.execute(params![org.to_string(), wrapped, now_us]))
            .map_err(db)?;
        self.keys
            .write()
            .map_err(|_| Error::internal("key map poisoned"))?
            .insert(org, dk);
        Ok(())
    }

    /// The organization's data key (for blobs, which are sealed outside the database).
    pub fn data_key(&self, org: OrgId) -> Result<DataKey> {
        self.keys
            .read()
            .map_err(|_| Error::internal("key map poisoned"))?
            .get(&org)
            .cloned()
            .ok_or_else(|| Error::internal(format!("no data key for organization {org}")))
    }

    /// Seal `text` for `org`, bound to `aad` (which row and field it belongs to).
    pub fn seal(&self, org: OrgId, text: &str, aad: &str) -> Result<String> {
        let keys = self
            .keys
            .read()
            .map_err(|_| Error::internal("key map poisoned"))?;
        let dk = keys
            .get(&org)
            .ok_or_else(|| Error::internal(format!("no data key for organization {org}")))?;
        dk.seal_str(text, aad.as_bytes()).map_err(crypto_err)
    }

    /// Open what `seal` produced; plaintext from before encryption passes through.
    pub fn open(&self, org: OrgId, stored: &str, aad: &str) -> Result<String> {
        if !is_sealed(stored) {
            return Ok(stored.to_owned());
        }
        let keys = self
            .keys
            .read()
            .map_err(|_| Error::internal("key map poisoned"))?;
        let dk = keys
            .get(&org)
            .ok_or_else(|| Error::internal(format!("no data key for organization {org}")))?;
        dk.open_str(stored, aad.as_bytes()).map_err(crypto_err)
    }
}

/// Re-wrap every data key under `new`, in the caller's transaction: all of
/// them, or (on the first that `old` does not open) none.
pub fn rewrap_all(c: &Connection, old: &MasterKey, new: &MasterKey) -> Result<usize> {
    let rows: Vec<((String, i64), String)> = {
        let mut s = c
            .prepare("SELECT org_id, version, wrapped FROM org_keys")
            .map_err(db)?;
        s.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)?
    };
    let rewrapped = careline_crypto::rotate_master_all(old, new, rows).map_err(crypto_err)?;
    for ((org, version), wrapped) in &rewrapped {
        c.execute(
            "UPDATE org_keys SET wrapped = $1 WHERE org_id = $2 AND version = $3",
            params![wrapped, org, version],
        )
        .map_err(db)?;
    }
    Ok(rewrapped.len())
}
