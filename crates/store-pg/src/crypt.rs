//! Encryption at rest, exactly as the embedded store does it (so a migration
//! tool can move rows between the two unchanged): each organization has an
//! AES-256-GCM data key wrapped by the master key in `org_keys`; message
//! bodies, triage results, clearances, TOTP secrets and safety findings are
//! sealed with it, bound to their row by associated data `table:id:field`.
//!
//! Several nodes share the table: a node that does not know an
//! organization's key loads it, and a key is created with
//! `ON CONFLICT DO NOTHING` and then read back, so every node uses the one
//! that won.

use crate::rows::db;
use careline_core::ids::OrgId;
use careline_core::{Error, Result};
use careline_crypto::{DataKey, MasterKey, is_sealed};
use sqlx_postgres::PgConnection;
use std::collections::HashMap;
use std::sync::RwLock;

/// The master key and the data keys this node has unwrapped so far.
pub struct Crypto {
    master: MasterKey,
    keys: RwLock<HashMap<OrgId, DataKey>>,
}

fn crypto_err(e: careline_crypto::CryptoError) -> Error {
    Error::internal(format!("encryption: {e}"))
}

/// Associated data binding a sealed field to its row (the embedded store's format).
pub fn aad(table: &str, id: &impl std::fmt::Display, field: &str) -> String {
    format!("{table}:{id}:{field}")
}

impl Crypto {
    pub fn new(master: MasterKey) -> Self {
        Crypto {
            master,
            keys: RwLock::new(HashMap::new()),
        }
    }

    fn cached(&self, org: OrgId) -> Result<Option<DataKey>> {
        Ok(self
            .keys
            .read()
            .map_err(|_| Error::internal("key map poisoned"))?
            .get(&org)
            .cloned())
    }

    fn remember(&self, org: OrgId, dk: DataKey) -> Result<()> {
        self.keys
            .write()
            .map_err(|_| Error::internal("key map poisoned"))?
            .insert(org, dk);
        Ok(())
    }

    fn unwrap_key(&self, org: OrgId, wrapped: &str) -> Result<DataKey> {
        self.master.unwrap(wrapped).map_err(|e| {
            Error::internal(format!(
                "cannot unwrap the data key of organization {org}: {e} (is the master key the one this database was created with?)"
            ))
        })
    }

    /// The organization's data key: cached, or read from `org_keys`.
    pub async fn key(&self, c: &mut PgConnection, org: OrgId) -> Result<DataKey> {
        if let Some(dk) = self.cached(org)? {
            return Ok(dk);
        }
        let wrapped: Option<(String,)> = sqlx_core::query_as::query_as(
            "SELECT wrapped FROM org_keys WHERE org_id = $1 AND version = 1",
        )
        .bind(org.0)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?;
        let (wrapped,) = wrapped
            .ok_or_else(|| Error::internal(format!("no data key for organization {org}")))?;
        let dk = self.unwrap_key(org, &wrapped)?;
        self.remember(org, dk.clone())?;
        Ok(dk)
    }

    /// Make sure `org` has a data key (inside the caller's transaction).
    pub async fn ensure_org_key(
        &self,
        c: &mut PgConnection,
        org: OrgId,
        now_us: i64,
    ) -> Result<()> {
        if self.cached(org)?.is_some() {
            return Ok(());
        }
        let dk = DataKey::generate().map_err(crypto_err)?;
        let wrapped = self.master.wrap(&dk).map_err(crypto_err)?;
        sqlx_core::query::query(
            "INSERT INTO org_keys (org_id, version, wrapped, created_at) VALUES ($1, 1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(org.0)
        .bind(wrapped)
        .bind(now_us)
        .execute(&mut *c)
        .await
        .map_err(db)?;
        // Another node may have won the race: use whatever is stored.
        self.key(c, org).await.map(|_| ())
    }

    /// Seal `text` for `org`, bound to `aad`.
    pub async fn seal(
        &self,
        c: &mut PgConnection,
        org: OrgId,
        text: &str,
        aad: &str,
    ) -> Result<String> {
        let dk = self.key(c, org).await?;
        dk.seal_str(text, aad.as_bytes()).map_err(crypto_err)
    }

    /// Open what `seal` produced; plaintext from before encryption passes through.
    pub async fn open(
        &self,
        c: &mut PgConnection,
        org: OrgId,
        stored: &str,
        aad: &str,
    ) -> Result<String> {
        if !is_sealed(stored) {
            return Ok(stored.to_owned());
        }
        let dk = self.key(c, org).await?;
        dk.open_str(stored, aad.as_bytes()).map_err(crypto_err)
    }
}
