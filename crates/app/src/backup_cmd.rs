//! `careline backup`, and the manifest the restore check `careline audit
//! verify` reads (see `audit_cmd`).
//!
//! A backup is a directory: the database copy (`careline.db` from the
//! embedded store, `careline.pgdump` from `pg_dump` on PostgreSQL), the local
//! attachment blobs, and `manifest.json`. The manifest records, per
//! organization, the head of its hash chain (seq and hash) as verified in
//! the snapshot that was copied, plus the time, the schema version and the
//! id of the master key the copy needs (never the key).
//!
//! After a restore, `audit verify --against manifest.json` recomputes every
//! chain and checks that each organization's chain reaches the manifest's
//! seq with the manifest's hash at that seq. Because every event's hash
//! covers its predecessor, that one match proves every event up to the
//! backup is there, unaltered: a restore that verifies on its own but lost
//! the tail (an older dump, a partial restore) is caught. A good backup is
//! also recorded in the data directory (`last-backup.json`), so that a plain
//! `audit verify` checks against the latest one.

use anyhow::{Context, Result, anyhow};
use careline_core::ids::OrgId;
use careline_store::ChainReport;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The manifest's file name inside a backup directory.
pub const MANIFEST: &str = "manifest.json";
/// The dump's file name inside a PostgreSQL backup directory.
pub const PG_DUMP_FILE: &str = "careline.pgdump";
/// What `format` says, so a future layout can be told apart.
const FORMAT: &str = "careline-backup/1";

/// `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// `embedded` or `postgres`.
    pub backend: String,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub taken_at: jiff::Timestamp,
    /// The database copy, relative to the manifest.
    pub database: String,
    /// The newest schema migration in the copy.
    pub schema_version: i64,
    /// The master key(s) the copy's data keys are wrapped by: keep that key
    /// for as long as the backup.
    pub master_key_ids: Vec<String>,
    /// How attachment blobs were backed up, in words.
    pub blobs: String,
    /// Every organization's chain head in the copy.
    pub organizations: Vec<ChainHead>,
}

/// One organization's chain head as the backup verified it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChainHead {
    pub org_id: OrgId,
    pub name: String,
    /// Events in the chain (the head's seq; 0 for an empty chain).
    pub seq: i64,
    /// The hash of event `seq` (the genesis hash for an empty chain).
    pub hash: String,
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the backup manifest {}", path.display()))?;
        let m: Manifest = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{} is not a careline backup manifest: {e}", path.display()))?;
        if m.format != FORMAT {
            return Err(anyhow!(
                "{} is a backup manifest of format '{}', not {FORMAT}",
                path.display(),
                m.format
            ));
        }
        Ok(m)
    }
}

fn heads(reports: &[ChainReport]) -> Vec<ChainHead> {
    reports
        .iter()
        .map(|r| ChainHead {
            org_id: r.org_id,
            name: r.org_name.clone(),
            seq: r.events,
            hash: r.last_hash.clone(),
        })
        .collect()
}

/// Print one line per chain; true when all verify.
fn print_reports(reports: &[ChainReport]) -> bool {
    let mut ok = true;
    for r in reports {
        match &r.error {
            None => println!("OK {} events — {}", r.events, r.org_name),
            Some(e) => {
                ok = false;
                println!("FAILED {} — {e}", r.org_name);
            }
        }
    }
    ok
}

/// Refuses an `out` that exists and is not an empty directory; creates it.
fn prepare_out(out: &Path) -> Result<()> {
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .with_context(|| format!("{} exists and is not a directory", out.display()))?
            .next()
            .is_none();
        if !empty {
            return Err(anyhow!(
                "{} is not empty: back up into a new directory",
                out.display()
            ));
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))
}

fn write_manifest(out: &Path, m: &Manifest) -> Result<()> {
    let path = out.join(MANIFEST);
    let text = serde_json::to_string_pretty(m).map_err(|e| anyhow!("manifest: {e}"))?;
    std::fs::write(&path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

/// `careline backup`: the embedded database, or PostgreSQL when
/// CARELINE_DATABASE_URL is set.
pub async fn backup(dir: &Path, out: &Path, pg_dump: Option<&Path>) -> Result<()> {
    match crate::cli::database_url() {
        Some(url) => backup_postgres(&url, dir, out, pg_dump).await,
        None => backup_embedded(dir, out).await,
    }
}

async fn backup_embedded(dir: &Path, out: &Path) -> Result<()> {
    if !dir.join(careline_store_sqlite::DB_FILE).exists() {
        return Err(anyhow!("no careline database in {}", dir.display()));
    }
    prepare_out(out)?;
    let store = crate::cli::open_store(dir)?;
    let taken_at = jiff::Timestamp::now();
    let reports = store
        .backup_to(&out.join(careline_store_sqlite::DB_FILE))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    // Blobs are written before the rows that name them and never change, so
    // every blob the snapshot refers to is already there to copy.
    let copied = copy_local_blobs(dir, out)?;
    let ok = print_reports(&reports);
    if ok {
        write_manifest(
            out,
            &Manifest {
                format: FORMAT.to_owned(),
                backend: "embedded".to_owned(),
                taken_at,
                database: careline_store_sqlite::DB_FILE.to_owned(),
                schema_version: i64::from(careline_store_sqlite::schema::latest()),
                master_key_ids: vec![store.master_key_id().to_owned()],
                blobs: format!("{copied} local blob file(s) copied"),
                organizations: heads(&reports),
            },
        )?;
        remember(dir, out, taken_at);
    }
    println!(
        "backup written to {} ({} attachment blob file(s) copied)",
        out.display(),
        copied
    );
    finish(ok, store.master_key_id(), out)
}

async fn backup_postgres(url: &str, dir: &Path, out: &Path, pg_dump: Option<&Path>) -> Result<()> {
    crate::config::check_database_url(url)?;
    prepare_out(out)?;
    let taken_at = jiff::Timestamp::now();
    let dump = careline_store_pg::backup::dump(url, &out.join(PG_DUMP_FILE), pg_dump)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let settings = crate::config::Settings::resolve(None, None, Some(dir.to_path_buf()), None)?;
    let blobs = match settings.attachments.blob_store.as_deref() {
        None | Some("local") => {
            let n = copy_local_blobs(dir, out)?;
            format!("{n} local blob file(s) copied")
        }
        Some(other) => format!(
            "not copied: they are in {}; back that store up separately (bucket versioning and replication)",
            other.split('?').next().unwrap_or(other)
        ),
    };
    let ok = print_reports(&dump.chains);
    let key_ids = dump.master_key_ids.join(", ");
    if ok {
        write_manifest(
            out,
            &Manifest {
                format: FORMAT.to_owned(),
                backend: "postgres".to_owned(),
                taken_at,
                database: PG_DUMP_FILE.to_owned(),
                schema_version: i64::from(dump.schema_version),
                master_key_ids: dump.master_key_ids.clone(),
                blobs: blobs.clone(),
                organizations: heads(&dump.chains),
            },
        )?;
        remember(dir, out, taken_at);
    }
    println!(
        "backup written to {} ({PG_DUMP_FILE} by pg_dump {} from PostgreSQL {}; attachment blobs: {blobs})",
        out.display(),
        dump.pg_dump_version,
        dump.server_version
    );
    println!(
        "restore: pg_restore --no-owner --dbname=URL {}, then careline audit verify --against {}",
        out.join(PG_DUMP_FILE).display(),
        out.join(MANIFEST).display()
    );
    finish(ok, &key_ids, out)
}

/// Record the new backup as the latest in `dir`; a data directory that
/// cannot take the note does not spoil the backup, but is said out loud.
fn remember(dir: &Path, out: &Path, taken_at: jiff::Timestamp) {
    match crate::audit_cmd::remember_backup(dir, &out.join(MANIFEST), taken_at) {
        Ok(p) => println!(
            "recorded in {} as the latest backup: careline audit verify checks against it",
            p.display()
        ),
        Err(e) => println!(
            "WARNING the backup is good but could not be recorded as the latest ({e:#}): run careline audit verify with --against {}",
            out.join(MANIFEST).display()
        ),
    }
}

fn finish(ok: bool, key_ids: &str, out: &Path) -> Result<()> {
    println!(
        "the master key is NOT in the backup: keep master key {key_ids} (the key file or CARELINE_MASTER_KEY) safe separately; without it the backup cannot be read"
    );
    if !ok {
        return Err(anyhow!(
            "the copy's event record does not verify: {} is not a good backup (no manifest written)",
            out.display()
        ));
    }
    Ok(())
}

/// Copy `<dir>/blobs` into `<out>/blobs`, if there is one.
fn copy_local_blobs(dir: &Path, out: &Path) -> Result<usize> {
    let blobs = dir.join("blobs");
    if blobs.is_dir() {
        copy_tree(&blobs, &out.join("blobs"))
    } else {
        Ok(0)
    }
}

/// Copies a directory tree; returns how many files were copied.
fn copy_tree(from: &Path, to: &Path) -> Result<usize> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let mut n = 0;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            n += copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
            n += 1;
        }
    }
    Ok(n)
}
