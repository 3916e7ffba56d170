//! Encryption at rest inside the store: each organization has a data key
//! (AES-256-GCM) wrapped by the master key and kept in `org_keys`; message
//! bodies (member messages, replies, internal notes, call notes), triage
//! results (they quote the member's words), clinical clearances and safety
//! findings are sealed with it, bound to their row by associated data.
//! Rows written before encryption existed are read as they are; member rows
//! from before their fields were sealed are sealed when the store opens
//! ([`seal_plain_members`]).

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

    /// Open a field the schema says is sealed: anything else is an error,
    /// never shown as it is.
    pub fn open_sealed(&self, org: OrgId, stored: &str, aad: &str) -> Result<String> {
        let keys = self
            .keys
            .read()
            .map_err(|_| Error::internal("key map poisoned"))?;
        let dk = keys
            .get(&org)
            .ok_or_else(|| Error::internal(format!("no data key for organization {org}")))?;
        dk.open_str(stored, aad.as_bytes()).map_err(crypto_err)
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

/// Seal the identifiers and health markers of member rows written before
/// they were sealed, in one transaction: every such row, or (on any error)
/// none. Rows already sealed are left alone, so running it again does
/// nothing. Returns how many rows it sealed.
///
/// The plaintext must not linger in the files either: `secure_delete`
/// zeroes the space the old values leave in their pages, and a truncating
/// checkpoint afterwards drops the WAL frames that still held them. (Copies
/// taken before, such as backups, still hold them.)
pub fn seal_plain_members(c: &mut Connection, k: &Crypto) -> Result<usize> {
    let waiting: i64 = c
        .query_row("SELECT count(*) FROM members WHERE sealed = 0", [], |r| {
            r.get(0)
        })
        .map_err(db)?;
    if waiting == 0 {
        return Ok(0);
    }
    c.execute_batch("PRAGMA secure_delete = ON;").map_err(db)?;
    let tx = c
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db)?;
    let plain = {
        let mut s = tx
            .prepare("SELECT * FROM members WHERE sealed = 0")
            .map_err(db)?;
        s.query_map([], crate::rows::member(k))
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)?
    };
    for m in &plain {
        crate::rows::update_member(&tx, k, m)?;
    }
    tx.commit().map_err(db)?;
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(db)?;
    // Everything written from here on is sealed already.
    c.execute_batch("PRAGMA secure_delete = OFF;").map_err(db)?;
    Ok(plain.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use crate::SqliteStore;
    use careline_core::ids::MemberId;
    use careline_crypto::MasterKey;
    use careline_store::Store;
    use rusqlite::{Connection, params};

    /// The files a copy of the data directory would hold.
    fn files(dir: &std::path::Path) -> Vec<u8> {
        let mut all = std::fs::read(dir.join(crate::DB_FILE)).unwrap();
        if let Ok(wal) = std::fs::read(dir.join(format!("{}-wal", crate::DB_FILE))) {
            all.extend(wal);
        }
        all
    }

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    const SECRETS: [&str; 5] = [
        "Dolores Quintana",
        "1951-08-30",
        "+1-555-0199",
        "dolores@example.org",
        "bipolar disorder",
    ];

    #[tokio::test]
    async fn members_stored_in_plaintext_by_the_previous_version_are_sealed_when_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate().unwrap();
        let now = jiff::Timestamp::from_second(1_900_000_000).unwrap();
        // The version before members were sealed: its schema (the last three
        // migrations undone) and a member
        // inserted exactly as it inserted them.
        let (org, team) = {
            let store = SqliteStore::open_with_key(dir.path(), master.clone()).unwrap();
            let org = store.create_org("Old Clinic", now).await.unwrap();
            let team = store.create_team(org.id, "North", None, now).await.unwrap();
            (org, team)
        };
        let member = MemberId::default();
        {
            let c = Connection::open(dir.path().join(crate::DB_FILE)).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            c.execute_batch(&format!(
                "DROP TABLE judgement_marks; DROP INDEX tickets_review; ALTER TABLE tickets DROP COLUMN review_due; \
                 ALTER TABLE tickets DROP COLUMN review; ALTER TABLE members DROP COLUMN sealed; PRAGMA user_version = {};",
                crate::schema::latest() - 3
            ))
            .unwrap();
            c.execute(
                "INSERT INTO members (id, org_id, name, date_of_birth, sex, language, phone, email, plan, team_id, markers, external_ref, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                params![
                    member.to_string(),
                    org.id.to_string(),
                    SECRETS[0],
                    SECRETS[1],
                    "F",
                    "es",
                    SECRETS[2],
                    SECRETS[3],
                    "Medicaid",
                    team.id.to_string(),
                    format!(r#"{{"conditions":["{}"],"medications":["lithium 300 mg"]}}"#, SECRETS[4]),
                    "OLD-1",
                    now.as_microsecond()
                ],
            )
            .unwrap();
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        }
        assert!(
            contains(&files(dir.path()), SECRETS[4]),
            "the old row is plaintext"
        );

        let store = SqliteStore::open_with_key(dir.path(), master.clone()).unwrap();
        let found = store.members(org.id).await.unwrap();
        assert_eq!(found.len(), 1);
        let m = &found[0];
        assert_eq!(m.id, member);
        assert_eq!(m.name, SECRETS[0]);
        assert_eq!(m.date_of_birth.unwrap().to_string(), SECRETS[1]);
        assert_eq!(m.phone.as_deref(), Some(SECRETS[2]));
        assert_eq!(m.email.as_deref(), Some(SECRETS[3]));
        assert_eq!(m.markers.conditions, vec![SECRETS[4].to_owned()]);
        assert_eq!(m.markers.medications, vec!["lithium 300 mg".to_owned()]);
        assert_eq!(m.language, "es");
        let on_disk = files(dir.path());
        for secret in SECRETS.iter().chain(&["lithium 300 mg", "Medicaid"]) {
            assert!(
                !contains(&on_disk, secret),
                "{secret} is still readable in the data directory"
            );
        }
        let sealed_once: String = Connection::open(dir.path().join(crate::DB_FILE))
            .unwrap()
            .query_row("SELECT markers FROM members", [], |r| r.get(0))
            .unwrap();
        drop(store);

        // Opening again seals nothing twice and reads the same member.
        let store = SqliteStore::open_with_key(dir.path(), master).unwrap();
        let sealed_twice: String = Connection::open(dir.path().join(crate::DB_FILE))
            .unwrap()
            .query_row("SELECT markers FROM members", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sealed_once, sealed_twice);
        assert_eq!(store.members(org.id).await.unwrap()[0].name, SECRETS[0]);
    }
}
