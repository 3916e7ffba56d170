//! The command line. Every failure prints one line to stderr and exits non-zero.

use crate::config::{DEFAULT_DATA_DIR, Settings};
use anyhow::{Result, anyhow};
use careline_store_sqlite::SqliteStore;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "careline",
    version,
    about = "Every member conversation becomes a triaged, routed, audited ticket."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives.
#[derive(Args, Clone)]
pub struct DataDir {
    /// Data directory (database and blobs).
    #[arg(long, env = "CARELINE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate(DataDir),
    /// Seed the demo organization (idempotent), then exit.
    Demo(DataDir),
    /// Judge text with the triage engine (one text, or JSON lines on stdin).
    Triage(crate::triage_cmd::TriageArgs),
    /// The hash-chained event record.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Administration: organizations, teams, staff, members, proxies.
    #[command(subcommand)]
    Admin(crate::admin_cmd::AdminCmd),
    /// Re-triage past contacts and list every failure to clinically escalate.
    SafetyAudit(crate::safety_cmd::SafetyAuditArgs),
    /// Encryption keys.
    #[command(subcommand)]
    Keys(crate::keys_cmd::KeysCmd),
    /// Load generators.
    #[command(subcommand)]
    Bench(crate::bench::BenchCmd),
    /// Copy the database (a consistent snapshot, safe while serving; pg_dump
    /// on PostgreSQL) and the local attachment blobs to a new directory,
    /// verify the copy's chains, and record their heads in manifest.json.
    Backup(BackupArgs),
}

#[derive(Args)]
struct BackupArgs {
    /// Data directory to back up (default ./careline-data).
    #[arg(long, env = "CARELINE_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// New directory to write the backup into (must not exist, or be empty).
    #[arg(long)]
    out: PathBuf,
    /// On PostgreSQL: the pg_dump to run (default: the one installed for the
    /// server's major version, else pg_dump on PATH).
    #[arg(long, env = "CARELINE_PG_DUMP")]
    pg_dump: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CARELINE_LISTEN")]
    listen: Option<String>,
    /// Data directory (default ./careline-data).
    #[arg(long, env = "CARELINE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Settings file (TOML).
    #[arg(long, env = "CARELINE_CONFIG")]
    config: Option<PathBuf>,
    /// Protocol directory replacing the embedded triage protocols.
    #[arg(long, env = "CARELINE_PROTOCOLS")]
    protocols: Option<PathBuf>,
    /// Seed the demo organization first (idempotent).
    #[arg(long)]
    demo: bool,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "CARELINE_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, env = "CARELINE_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// The ClamAV daemon that scans attachments: unix:/path, /path or host:port.
    /// Without one, attachments stay quarantined.
    #[arg(long)]
    clamd: Option<String>,
    /// Where attachment blobs go: local (default), file:///dir or s3://bucket/prefix?endpoint=URL&region=R.
    #[arg(long)]
    blob_store: Option<String>,
    /// PostgreSQL (postgres://user@host/db) instead of the embedded database;
    /// also CARELINE_DATABASE_URL. Several nodes may share one database.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Recompute every organization's hash chain and check it reaches the
    /// latest backup's heads; with --deep, also every row against the record.
    Verify(VerifyArgs),
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    data: DataDir,
    /// A backup's manifest.json (or its directory): check that every
    /// organization's chain reaches the head the backup recorded (after a
    /// restore: nothing from before the backup is lost). Default: the latest
    /// backup `careline backup` recorded in the data directory.
    #[arg(long, value_name = "MANIFEST", env = "CARELINE_BACKUP_MANIFEST")]
    against: Option<PathBuf>,
    /// Also rebuild from the record what every message, ticket, page and
    /// attachment row must be (opening each message body) and report every
    /// row that disagrees, is missing, or has no event.
    #[arg(long)]
    deep: bool,
    /// text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CARELINE_LOG")
        .unwrap_or_else(|_| "info".into());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow!("cannot start runtime: {e}"))
}

/// The PostgreSQL URL from the environment, if one is set.
pub fn database_url() -> Option<String> {
    std::env::var("CARELINE_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// Open the store in `dir` for a one-shot command that works on the
/// embedded database only; refuses when a PostgreSQL URL is set rather
/// than quietly creating an embedded database beside it.
pub fn open_store(dir: &std::path::Path) -> Result<SqliteStore> {
    if database_url().is_some() {
        return Err(anyhow!(
            "this command works on the embedded database only; unset CARELINE_DATABASE_URL to use the one in {}",
            dir.display()
        ));
    }
    SqliteStore::open(dir).map_err(|e| anyhow!("{}: {e}", dir.display()))
}

/// Open whichever store is configured: PostgreSQL when CARELINE_DATABASE_URL
/// is set, else the embedded database in `dir`.
pub async fn open_any(dir: &std::path::Path) -> Result<std::sync::Arc<dyn careline_store::Store>> {
    let mut settings = crate::config::Settings::resolve(None, None, Some(dir.to_path_buf()), None)?;
    settings.database_url = database_url();
    crate::server::open_store(&settings).await
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Triage(args) => return crate::triage_cmd::run(args),
        Command::Serve(a) => (|| {
            let settings =
                Settings::resolve(a.config.as_deref(), a.listen, a.data_dir, a.protocols)?;
            let mut settings = settings;
            match (a.tls_cert, a.tls_key) {
                (Some(c), Some(k)) => settings.tls = Some((c, k)),
                (None, None) => {}
                _ => anyhow::bail!("--tls-cert and --tls-key go together"),
            }
            if a.clamd.is_some() {
                settings.attachments.clamd = a.clamd;
            }
            if a.blob_store.is_some() {
                settings.attachments.blob_store = a.blob_store;
            }
            if let Some(u) = a.database_url {
                crate::config::check_database_url(&u)?;
                settings.database_url = Some(u);
            }
            init_logging(settings.log_json);
            runtime()?.block_on(crate::server::serve(settings, a.demo))
        })(),
        Command::Migrate(d) if database_url().is_some() => (|| {
            runtime()?.block_on(async {
                open_any(&d.data_dir).await?;
                println!("PostgreSQL schema migrated (CARELINE_DATABASE_URL)");
                Ok(())
            })
        })(),
        Command::Migrate(d) => (|| {
            let store = open_store(&d.data_dir)?;
            println!(
                "schema at version {} in {}",
                careline_store_sqlite::schema::latest(),
                store.path().display()
            );
            Ok(())
        })(),
        Command::Demo(d) => (|| {
            runtime()?.block_on(async {
                let store = open_any(&d.data_dir).await?;
                let now = jiff::Timestamp::now();
                println!(
                    "{}",
                    crate::demo::seed(store.as_ref(), &crate::demo::password(), now).await?
                );
                Ok(())
            })
        })(),
        Command::Audit(AuditCmd::Verify(a)) => runtime().and_then(|rt| {
            rt.block_on(crate::audit_cmd::audit_verify(
                &a.data.data_dir,
                crate::audit_cmd::VerifyOptions {
                    against: a.against,
                    deep: a.deep,
                    json: a.format == "json",
                },
            ))
        }),
        Command::Admin(cmd) => {
            init_logging(false);
            runtime().and_then(|rt| rt.block_on(crate::admin_cmd::run(cmd)))
        }
        Command::SafetyAudit(a) => runtime().and_then(|rt| rt.block_on(crate::safety_cmd::run(a))),
        Command::Keys(cmd) => runtime().and_then(|rt| rt.block_on(crate::keys_cmd::run(cmd))),
        Command::Bench(cmd) => runtime().and_then(|rt| rt.block_on(crate::bench::run(cmd))),
        Command::Backup(a) => runtime().and_then(|rt| {
            rt.block_on(crate::backup_cmd::backup(
                &a.data_dir,
                &a.out,
                a.pg_dump.as_deref(),
            ))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("careline: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
