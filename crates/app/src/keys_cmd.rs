//! `careline keys rotate`: a new master key re-wraps every organization's
//! data key in one transaction. Message ciphertexts do not change. The new
//! key is written beside the old one before the transaction and installed
//! after it, so an interruption at any point leaves a store that opens.

use anyhow::{Result, anyhow};
use careline_crypto::MasterKey;
use careline_store_sqlite::{SqliteStore, key_file, next_key_file};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Generate a new master key and re-wrap every data key under it.
    Rotate(crate::cli::DataDir),
}

pub async fn run(cmd: KeysCmd) -> Result<()> {
    let KeysCmd::Rotate(d) = cmd;
    crate::cli::embedded_only("keys rotate")?;
    if !d.data_dir.join(careline_store_sqlite::DB_FILE).exists() {
        return Err(anyhow!("no careline database in {}", d.data_dir.display()));
    }
    let store = SqliteStore::open(&d.data_dir).map_err(|e| anyhow!("{e}"))?;
    let new = MasterKey::generate().map_err(|e| anyhow!("{e}"))?;
    if std::env::var_os("CARELINE_MASTER_KEY").is_some() {
        let n = store
            .rewrap_keys(new.clone())
            .await
            .map_err(|e| anyhow!("{e}"))?;
        println!("re-wrapped {n} data key(s) under master key {}", new.id());
        println!("set CARELINE_MASTER_KEY to this value before the next start (it is shown once):");
        println!("{}", new.to_hex().as_str());
        return Ok(());
    }
    let file = key_file(&d.data_dir);
    let next = next_key_file(&file);
    new.write_new_file(&next)
        .map_err(|e| anyhow!("{e} (a rotation may be pending: start careline once to finish it, or remove {} if it never committed)", next.display()))?;
    let n = store
        .rewrap_keys(new.clone())
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let mut retired = file.as_os_str().to_owned();
    retired.push(format!(".retired-{}", jiff::Timestamp::now().as_second()));
    std::fs::rename(&file, &retired).map_err(|e| anyhow!("keeping the old key: {e}"))?;
    std::fs::rename(&next, &file).map_err(|e| anyhow!("installing the new key: {e}"))?;
    println!(
        "re-wrapped {n} data key(s) under master key {} (in {})",
        new.id(),
        file.display()
    );
    println!(
        "the old key is kept as {} for backups taken before now; destroy it when those backups expire",
        std::path::Path::new(&retired).display()
    );
    Ok(())
}
