//! Encryption at rest, exactly as the embedded store does it (so a migration
//! tool can move rows between the two unchanged): each organization has an
//! AES-256-GCM data key wrapped by the master key in `org_keys`; message
//! bodies, triage results, clearances, TOTP secrets and safety findings are
//! sealed with it, bound to their row by associated data `table:id:field`.
//!
//! Several nodes share the table, and every wrapped key in it names the
//! master key that wrapped it (`clwk1:<id>:…`). Three rules keep every node
//! able to open the database, whatever is interrupted:
//!
//! - A node unwraps every stored key when it starts ([`Crypto::load_all`]),
//!   and refuses to start, naming both key ids, when its master key is not
//!   the one the keys are wrapped by. A node started with the old key after
//!   a rotation stops there, before it reads or writes anything. Keys of
//!   organizations created later are loaded when the node first needs them
//!   or when its event relay first hears of them ([`Crypto::preload`]).
//! - A rotation ([`rewrap_all`]) re-wraps every row in one transaction that
//!   holds `org_keys` in `SHARE ROW EXCLUSIVE` mode. Data keys do not change,
//!   so nodes already running keep serving with the keys they hold.
//! - A new organization's key is inserted under the same lock, after
//!   checking that no row is wrapped by another master key. So a node still
//!   running with the old key after a rotation cannot add a key only the old
//!   master opens; it gets an error telling it to restart with the new key.
//!   Concurrent creators agree on one key (`ON CONFLICT DO NOTHING`, then
//!   read back).

use crate::rows::{db, q};
use careline_core::ids::OrgId;
use careline_core::{Error, Result};
use careline_crypto::{CryptoError, DataKey, MasterKey, is_sealed, wrapped_by};
use sqlx_postgres::{PgConnection, PgPool};
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

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// The id of this node's master key (never the key).
    pub fn master_id(&self) -> &str {
        self.master.id()
    }

    fn unwrap_key(&self, org: OrgId, wrapped: &str) -> Result<DataKey> {
        self.master.unwrap(wrapped).map_err(|e| match e {
            CryptoError::WrongMasterKey { expected, actual } => wrong_master(&expected, &actual),
            e => Error::internal(format!(
                "cannot unwrap the data key of organization {org}: {e}"
            )),
        })
    }

    /// Unwrap every stored data key now, so a wrong master key is refused at
    /// start rather than at the first read, and nodes already running keep
    /// every key they need across a rotation. Organizations without a key
    /// (imports) get one. Returns how many keys were loaded.
    pub async fn load_all(&self, pool: &PgPool) -> Result<usize> {
        let stored: Vec<(uuid::Uuid, String)> =
            sqlx_core::query_as::query_as("SELECT org_id, wrapped FROM org_keys WHERE version = 1")
                .fetch_all(pool)
                .await
                .map_err(db)?;
        for (org, wrapped) in &stored {
            let org = OrgId(*org);
            let dk = self.unwrap_key(org, wrapped)?;
            self.remember(org, dk)?;
        }
        let missing: Vec<(uuid::Uuid,)> = sqlx_core::query_as::query_as(
            "SELECT id FROM organizations WHERE id NOT IN (SELECT org_id FROM org_keys)",
        )
        .fetch_all(pool)
        .await
        .map_err(db)?;
        for (org,) in missing {
            let mut tx = pool.begin().await.map_err(db)?;
            self.ensure_org_key(&mut tx, OrgId(org), 0).await?;
            tx.commit().await.map_err(db)?;
        }
        Ok(stored.len())
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

    /// Hold `org`'s data key from now on if it is not held yet.
    pub async fn preload(&self, pool: &PgPool, org: OrgId) -> Result<()> {
        if self.cached(org)?.is_some() {
            return Ok(());
        }
        let mut c = pool.acquire().await.map_err(db)?;
        self.key(&mut c, org).await.map(drop)
    }

    /// Make sure `org` has a data key (inside the caller's transaction,
    /// which then holds `org_keys` locked against a rotation until it ends).
    pub async fn ensure_org_key(
        &self,
        c: &mut PgConnection,
        org: OrgId,
        now_us: i64,
    ) -> Result<()> {
        if self.cached(org)?.is_some() {
            return Ok(());
        }
        q("LOCK TABLE org_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *c)
            .await
            .map_err(db)?;
        // Under the lock no rotation is running: every row names the master
        // key in use. A key wrapped by another one would lock out every node
        // started with the current key.
        let prefix = format!("{}{}:", careline_crypto::WRAPPED_PREFIX, self.master.id());
        let other: Option<(String,)> = sqlx_core::query_as::query_as(
            "SELECT wrapped FROM org_keys WHERE NOT starts_with(wrapped, $1) LIMIT 1",
        )
        .bind(prefix)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?;
        if let Some((wrapped,)) = other {
            let current = wrapped_by(&wrapped).unwrap_or("unknown");
            return Err(wrong_master(current, self.master.id()));
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

/// Seal `text` with an organization's data key already in hand (for a row
/// with several sealed fields).
pub fn seal_with(dk: &DataKey, text: &str, aad: &str) -> Result<String> {
    dk.seal_str(text, aad.as_bytes()).map_err(crypto_err)
}

/// Open a field the schema says is sealed: anything else is an error, never
/// shown as it is.
pub fn open_sealed(dk: &DataKey, stored: &str, aad: &str) -> Result<String> {
    dk.open_str(stored, aad.as_bytes()).map_err(crypto_err)
}

/// Seal the identifiers and health markers of member rows written before
/// they were sealed (or by a node of an older version during an upgrade),
/// in one transaction: every such row or none. The rows are locked, so two
/// nodes starting at once do not seal a row twice: the second finds it
/// sealed. Returns how many rows this call sealed.
pub async fn seal_plain_members(pool: &PgPool, k: &Crypto) -> Result<usize> {
    let mut tx = pool.begin().await.map_err(db)?;
    let plain = q("SELECT * FROM members WHERE sealed = 0 FOR UPDATE")
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
    for r in &plain {
        let m = crate::rows::member(&mut tx, k, r).await?;
        crate::rows::update_member(&mut tx, k, &m).await?;
    }
    tx.commit().await.map_err(db)?;
    Ok(plain.len())
}

/// The one-line refusal when this node's master key is not the one the
/// database's data keys are wrapped by. `Unavailable` (503 on a request):
/// this node cannot serve, another with the current key can.
fn wrong_master(current: &str, this_node: &str) -> Error {
    Error::Unavailable(format!(
        "the data keys in this database are wrapped by master key {current}, but this node's master key is {this_node}: start it with key {current} (after `careline keys rotate`, every node needs the new key)"
    ))
}

/// Re-wrap every data key from `old` to `new` in one transaction, under the
/// lock that new keys are created under: every key or none. Message
/// ciphertexts are untouched (the data keys do not change). Returns how many
/// keys were re-wrapped.
pub async fn rewrap_all(pool: &PgPool, old: &MasterKey, new: &MasterKey) -> Result<usize> {
    let mut tx = pool.begin().await.map_err(db)?;
    q("LOCK TABLE org_keys IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let rows: Vec<(uuid::Uuid, i32, String)> =
        sqlx_core::query_as::query_as("SELECT org_id, version, wrapped FROM org_keys")
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
    let rows = rows
        .into_iter()
        .map(|(org, version, wrapped)| ((org, version), wrapped))
        .collect();
    let rewrapped = careline_crypto::rotate_master_all(old, new, rows).map_err(|e| match e {
        CryptoError::WrongMasterKey { expected, actual } => wrong_master(&expected, &actual),
        e => crypto_err(e),
    })?;
    for ((org, version), wrapped) in &rewrapped {
        q("UPDATE org_keys SET wrapped = $1 WHERE org_id = $2 AND version = $3")
            .bind(wrapped)
            .bind(org)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(rewrapped.len())
}
