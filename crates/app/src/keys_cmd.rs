//! `careline keys rotate`: a new master key re-wraps every organization's
//! data key in one transaction, on the embedded database or on PostgreSQL.
//! Message ciphertexts do not change.
//!
//! No interruption leaves a database that no key opens:
//! - with a key file, the new key is written beside the old one
//!   (`master.key.next`) before the transaction and installed after it (the
//!   old one is kept as `master.key.retired-<time>`); a start that finds the
//!   database under the `.next` key finishes the installation
//!   ([`connect_pg`], and `SqliteStore::open` for the embedded store);
//! - with `CARELINE_MASTER_KEY`, the new key is printed before the
//!   transaction commits, and the command says whether it did.
//!
//! On PostgreSQL, nodes that are running keep serving with the data keys
//! they hold; every node started afterwards needs the new key, and one
//! started with the old key refuses to start, naming both key ids.

use anyhow::{Result, anyhow};
use careline_crypto::MasterKey;
use careline_store_pg::PgStore;
use careline_store_sqlite::{SqliteStore, key_file, load_master, next_key_file};
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Generate a new master key and re-wrap every data key under it.
    Rotate(crate::cli::DataDir),
}

/// The store whose keys are rotated.
enum Target {
    Embedded(SqliteStore),
    Postgres(PgStore),
}

impl Target {
    async fn rewrap(&self, new: &MasterKey) -> careline_core::Result<usize> {
        match self {
            Target::Embedded(s) => s.rewrap_keys(new.clone()).await,
            Target::Postgres(s) => s.rewrap_keys(new.clone()).await,
        }
    }
}

pub async fn run(cmd: KeysCmd) -> Result<()> {
    let KeysCmd::Rotate(d) = cmd;
    let url = crate::cli::database_url();
    let target = match &url {
        Some(url) => {
            crate::config::check_database_url(url)?;
            // Rotating needs the key in use; never create one here.
            let file = key_file(&d.data_dir);
            if !next_key_file(&file).exists() {
                MasterKey::from_env_or_file("CARELINE_MASTER_KEY", &file, false)
                    .map_err(|e| anyhow!("{e}"))?;
            }
            Target::Postgres(connect_pg(url, &d.data_dir, &key_file(&d.data_dir), 2).await?)
        }
        None => {
            if !d.data_dir.join(careline_store_sqlite::DB_FILE).exists() {
                return Err(anyhow!("no careline database in {}", d.data_dir.display()));
            }
            Target::Embedded(SqliteStore::open(&d.data_dir).map_err(|e| anyhow!("{e}"))?)
        }
    };
    let new = MasterKey::generate().map_err(|e| anyhow!("{e}"))?;
    let after = if url.is_some() {
        "every node needs it before its next start (running nodes keep serving until they restart; one started with the old key refuses to start, naming both keys)"
    } else {
        "careline needs it from its next start"
    };
    if std::env::var_os("CARELINE_MASTER_KEY").is_some() {
        // Shown before the commit: a commit whose key was never seen would
        // leave a database no one can open.
        println!(
            "new master key {} (shown once; it takes effect only if the next line says re-wrapped):",
            new.id()
        );
        println!("{}", new.to_hex().as_str());
        let n = target.rewrap(&new).await.map_err(|e| {
            anyhow!("{e} — the rotation failed: keep the old key (if the commit went through after all, a start with it refuses and names the key above)")
        })?;
        println!("re-wrapped {n} data key(s) under master key {}", new.id());
        println!("set CARELINE_MASTER_KEY to it: {after}");
        return Ok(());
    }
    let file = key_file(&d.data_dir);
    let next = next_key_file(&file);
    new.write_new_file(&next)
        .map_err(|e| anyhow!("{e} (a rotation may be pending: start careline once to finish it, or remove {} if it never committed)", next.display()))?;
    // On failure the new key stays beside the old one: if the commit went
    // through after all, the next start finds the database under it and
    // installs it.
    let n = target.rewrap(&new).await.map_err(|e| {
        anyhow!(
            "{e} — the rotation failed; {} is kept: the next start uses it only if the database needs it (remove it afterwards otherwise)",
            next.display()
        )
    })?;
    let retired = install_next_key(&file, &next)?;
    println!(
        "re-wrapped {n} data key(s) under master key {} (in {})",
        new.id(),
        file.display()
    );
    println!(
        "the old key is kept as {} for backups taken before now; destroy it when those backups expire",
        retired.display()
    );
    if url.is_some() {
        println!("copy {} to the other nodes: {after}", file.display());
    }
    Ok(())
}

/// After a rotation committed: keep the old key file as
/// `<file>.retired-<unix time>` and move `next` into its place. Returns
/// where the old key went.
pub fn install_next_key(file: &Path, next: &Path) -> Result<PathBuf> {
    let now = jiff::Timestamp::now().as_second();
    // Never replace a key retired earlier (two rotations in one second).
    let retired = (0..)
        .map(|n| {
            let mut name = file.as_os_str().to_owned();
            name.push(match n {
                0 => format!(".retired-{now}"),
                n => format!(".retired-{now}-{n}"),
            });
            PathBuf::from(name)
        })
        .find(|p| !p.exists())
        .ok_or_else(|| anyhow!("no free name to keep the old key under"))?;
    if file.exists() {
        std::fs::rename(file, &retired).map_err(|e| anyhow!("keeping the old key: {e}"))?;
    }
    std::fs::rename(next, file).map_err(|e| anyhow!("installing the new key: {e}"))?;
    Ok(retired)
}

/// Connect a node to PostgreSQL with the master key from
/// `CARELINE_MASTER_KEY` or `file`. If the database is
/// wrapped by the key a rotation left beside the key file (it committed but
/// did not get to install the key), use that key and install it.
pub async fn connect_pg(
    url: &str,
    data_dir: &Path,
    file: &Path,
    pool_size: u32,
) -> Result<PgStore> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| anyhow!("cannot create {}: {e}", data_dir.display()))?;
    careline_store_sqlite::warn_if_key_in_data_dir(data_dir, file);
    let file = file.to_path_buf();
    let master = load_master(&file).map_err(|e| anyhow!("{e}"))?;
    let next = next_key_file(&file);
    match PgStore::connect(url, master, pool_size).await {
        Ok(store) => Ok(store),
        Err(e) if std::env::var_os("CARELINE_MASTER_KEY").is_none() && next.exists() => {
            let (pending, _) = MasterKey::read_file(&next).map_err(|e| anyhow!("{e}"))?;
            if !e.to_string().contains(pending.id()) {
                return Err(anyhow!("{e}"));
            }
            let store = PgStore::connect(url, pending, pool_size)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            let retired = install_next_key(&file, &next)?;
            tracing::warn!(path = %file.display(), retired = %retired.display(), "finished an interrupted master-key rotation");
            Ok(store)
        }
        Err(e) => Err(anyhow!("{e}")),
    }
}
