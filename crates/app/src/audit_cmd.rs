//! `careline audit verify`: recompute every organization's hash chain; check
//! that each reaches the heads a backup recorded; and with `--deep`, that
//! every message, ticket, page and attachment row is what the event record
//! makes it (see `careline_store::deep`).
//!
//! Which backup: the manifest named with `--against` (or
//! `CARELINE_BACKUP_MANIFEST`), a `manifest.json` or the backup directory
//! holding one. Without it, the latest backup `careline backup` took of this
//! data directory: every good backup records where its manifest is in
//! `<data dir>/last-backup.json`. A chain whose tail was cut off and whose
//! recorded head was rolled back with it verifies on its own; only a head
//! kept elsewhere catches it, so `verify` checks against one whenever one
//! is known, and says so when none is.

use crate::backup_cmd::{ChainHead, MANIFEST, Manifest};
use anyhow::{Context, Result, anyhow};
use careline_store::deep::{Progress, RowReport};
use careline_store::{ChainReport, Store};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The file in the data directory that names the latest good backup.
pub const LAST_BACKUP: &str = "last-backup.json";

/// `<data dir>/last-backup.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LastBackup {
    /// The backup's manifest, as an absolute path.
    pub manifest: PathBuf,
    pub taken_at: jiff::Timestamp,
}

/// Record in `data_dir` that the backup whose manifest is `manifest` is the
/// latest, so that a plain `audit verify` checks against it.
pub fn remember_backup(
    data_dir: &Path,
    manifest: &Path,
    taken_at: jiff::Timestamp,
) -> Result<PathBuf> {
    let manifest = std::fs::canonicalize(manifest)
        .with_context(|| format!("cannot resolve {}", manifest.display()))?;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join(LAST_BACKUP);
    let text = serde_json::to_string_pretty(&LastBackup { manifest, taken_at })
        .map_err(|e| anyhow!("{e}"))?;
    std::fs::write(&path, text + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// What `careline audit verify` was asked to do.
pub struct VerifyOptions {
    /// A manifest (or a backup directory) to check the chain heads against.
    pub against: Option<PathBuf>,
    /// Also compare every row with the record.
    pub deep: bool,
    /// One JSON document on stdout instead of lines of text.
    pub json: bool,
}

/// The backup the heads are checked against, and how it was chosen.
struct Checkpoint {
    manifest: Manifest,
    path: PathBuf,
    /// `given` (flag or environment) or `latest backup` (last-backup.json).
    source: &'static str,
}

/// A manifest path, or the manifest inside a backup directory.
fn manifest_in(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join(MANIFEST)
    } else {
        p.to_owned()
    }
}

/// The backup to check against: the one given, else the latest recorded in
/// `dir`. A recorded backup whose manifest cannot be read is an error in
/// words (the second value): the check it stood for cannot be done.
fn checkpoint(dir: &Path, against: Option<&Path>) -> Result<(Option<Checkpoint>, Option<String>)> {
    if let Some(p) = against {
        let path = manifest_in(p);
        let manifest = Manifest::read(&path)?;
        return Ok((
            Some(Checkpoint {
                manifest,
                path,
                source: "given",
            }),
            None,
        ));
    }
    let pointer = dir.join(LAST_BACKUP);
    let Ok(text) = std::fs::read_to_string(&pointer) else {
        return Ok((None, None));
    };
    let last: LastBackup = match serde_json::from_str(&text) {
        Ok(l) => l,
        Err(e) => {
            return Ok((
                None,
                Some(format!(
                    "{} does not name a backup ({e}); name one with --against",
                    pointer.display()
                )),
            ));
        }
    };
    match Manifest::read(&last.manifest) {
        Ok(manifest) => Ok((
            Some(Checkpoint {
                manifest,
                path: last.manifest,
                source: "latest backup",
            }),
            None,
        )),
        Err(e) => Ok((
            None,
            Some(format!(
                "the latest backup (taken {}) cannot be checked against: {e:#}; restore its manifest, name another with --against, or remove {}",
                last.taken_at,
                pointer.display()
            )),
        )),
    }
}

/// One organization's head in the backup, as checked.
#[derive(Serialize)]
struct HeadCheck {
    org_id: String,
    name: String,
    seq: i64,
    /// `None` when the chain reaches it.
    problem: Option<String>,
}

/// Print one line per chain; true when all verify.
fn print_chains(reports: &[ChainReport]) -> bool {
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

fn print_rows(reports: &[RowReport]) {
    for r in reports {
        let counts = format!(
            "{} message(s), {} ticket(s), {} page(s), {} attachment(s)",
            r.messages, r.tickets, r.pages, r.attachments
        );
        if r.ok() {
            println!("OK rows — {}: {counts} agree with the record", r.org_name);
        } else {
            println!(
                "FAILED rows — {}: {} disagreement(s) with the record ({counts} read)",
                r.org_name,
                r.findings.len()
            );
            for f in &r.findings {
                println!("  {f}");
            }
        }
    }
}

/// The deep check, with a progress bar on stderr when `bar`.
async fn verify_rows(store: &dyn Store, bar: bool) -> Result<Vec<RowReport>> {
    // The bar and the last count it was told, shared with the store's thread.
    let shown = Arc::new(Mutex::new((
        crate::safety_cmd::Progress::new(bar, 0),
        0_u64,
    )));
    let progress: Option<Progress> = bar.then(|| {
        let shown = shown.clone();
        Arc::new(move |done: u64, total: u64| {
            if let Ok(mut s) = shown.lock() {
                s.0.total = total;
                s.1 = done;
                s.0.show(done, false);
            }
        }) as Progress
    });
    let reports = store
        .verify_rows(progress)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    if bar && let Ok(mut s) = shown.lock() {
        let done = s.1;
        s.0.show(done, true);
    }
    Ok(reports)
}

/// `careline audit verify`: prints a line per check (or one JSON
/// document) and fails when any check fails.
pub async fn audit_verify(dir: &Path, o: VerifyOptions) -> Result<()> {
    let (checkpoint, unchecked) = checkpoint(dir, o.against.as_deref())?;
    let url = crate::cli::database_url();
    if url.is_none() && !dir.join(careline_store_sqlite::DB_FILE).exists() {
        return Err(anyhow!("no careline database in {}", dir.display()));
    }
    let store = crate::cli::open_any(dir)
        .await
        .map_err(|e| match &checkpoint {
            Some(c) => anyhow!(
                "{e:#} (the backup was taken under master key {})",
                c.manifest.master_key_ids.join(", ")
            ),
            None => e,
        })?;
    let chains = store.verify_chains().await.map_err(|e| anyhow!("{e}"))?;
    let text = !o.json;
    let chains_ok = chains.iter().all(|r| r.error.is_none());
    if text {
        print_chains(&chains);
    }
    let total: i64 = chains.iter().map(|r| r.events).sum();

    let mut heads = Vec::new();
    if let Some(c) = &checkpoint {
        for head in &c.manifest.organizations {
            let problem = reaches(store.as_ref(), &chains, head).await?;
            if text {
                match &problem {
                    None => println!(
                        "OK {} reaches the backup's head (event {})",
                        head.name, head.seq
                    ),
                    Some(why) => println!("FAILED {} — {why}", head.name),
                }
            }
            heads.push(HeadCheck {
                org_id: head.org_id.to_string(),
                name: head.name.clone(),
                seq: head.seq,
                problem,
            });
        }
    }
    let heads_ok = heads.iter().all(|h| h.problem.is_none()) && unchecked.is_none();
    if text {
        match (&checkpoint, &unchecked) {
            (_, Some(why)) => println!("FAILED backup heads — {why}"),
            (None, None) => println!(
                "NOTE no backup known: heads not checked against one (careline backup records it here; or --against MANIFEST)"
            ),
            (Some(_), None) => {}
        }
    }

    let rows = if o.deep {
        Some(verify_rows(store.as_ref(), text && std::io::stderr().is_terminal()).await?)
    } else {
        None
    };
    let disagreements: usize = rows.iter().flatten().map(|r| r.findings.len()).sum();
    if text && let Some(rows) = &rows {
        print_rows(rows);
    }

    let ok = chains_ok && heads_ok && disagreements == 0;
    if o.json {
        let out = serde_json::json!({
            "ok": ok,
            "events": total,
            "chains": chains,
            "backup": checkpoint.as_ref().map(|c| serde_json::json!({
                "manifest": c.path,
                "source": c.source,
                "taken_at": c.manifest.taken_at,
                "heads": heads,
            })),
            "backup_unchecked": unchecked,
            "rows": rows,
        });
        println!("{out}");
    }
    if !chains_ok {
        return Err(match &checkpoint {
            Some(_) => anyhow!("the event record does not verify against the backup"),
            None => anyhow!("the event record does not verify"),
        });
    }
    if !heads_ok {
        return Err(anyhow!(
            "the event record does not verify against the backup"
        ));
    }
    if disagreements > 0 {
        return Err(anyhow!(
            "{disagreements} row(s) disagree with the event record: the database was changed outside careline"
        ));
    }
    if text {
        println!(
            "OK {total} events in {} organization(s): every chain verifies{}{}",
            chains.len(),
            match &checkpoint {
                Some(c) => format!(
                    " and reaches the heads of the {} of {} ({})",
                    if c.source == "given" {
                        "backup"
                    } else {
                        "latest backup"
                    },
                    c.manifest.taken_at,
                    c.path.display()
                ),
                None => String::new(),
            },
            if o.deep {
                "; every message, ticket, page and attachment row agrees with the record"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Why `head` is not reached by the database behind `store`; `None` when it is.
async fn reaches(
    store: &dyn Store,
    reports: &[ChainReport],
    head: &ChainHead,
) -> Result<Option<String>> {
    let Some(r) = reports.iter().find(|r| r.org_id == head.org_id) else {
        return Ok(Some(format!(
            "organization {} is missing (the backup has {} events of it)",
            head.org_id, head.seq
        )));
    };
    if r.error.is_some() {
        return Ok(Some("its chain does not verify (see above)".to_owned()));
    }
    if r.events < head.seq {
        return Ok(Some(format!(
            "the chain ends at event {}, before the backup's head (event {}): events were lost",
            r.events, head.seq
        )));
    }
    if head.seq == 0 {
        return Ok(None);
    }
    let at = store
        .events(head.org_id, head.seq - 1, 1)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    match at.first() {
        Some(e) if e.seq == head.seq && e.hash == head.hash => Ok(None),
        Some(e) if e.seq == head.seq => Ok(Some(format!(
            "event {} differs from the backup's (hash {}, the backup has {}): this is not the history that was backed up",
            head.seq, e.hash, head.hash
        ))),
        _ => Ok(Some(format!("event {} is missing", head.seq))),
    }
}
