//! Configuration: defaults, then a TOML file (`--config`), then `CARELINE_*`
//! environment variables, then command-line flags — each overriding the last.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The settings file, every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// A directory of protocol files replacing the embedded set.
    pub protocols: Option<PathBuf>,
    pub session_ttl_hours: Option<i64>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// PEM certificate chain and private key: serve HTTPS instead of HTTP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The ClamAV daemon: `unix:/run/clamav/clamd.ctl`, `/path/to/socket` or `host:port`.
    pub clamd: Option<String>,
    /// Where attachment blobs go: `local` (default, under the data dir),
    /// `file:///abs/dir` or `s3://bucket/prefix?endpoint=…&region=…`.
    pub blob_store: Option<String>,
    /// Largest attachment in megabytes (default 25).
    pub attachment_max_mb: Option<u64>,
    /// Most attachments per message (default 10).
    pub attachment_max_files: Option<usize>,
    /// `postgres://…` for PostgreSQL; unset for the embedded database in the data directory.
    pub database_url: Option<String>,
    /// Connections this node keeps to PostgreSQL (default 16).
    pub database_pool: Option<u32>,
    /// Seconds a client may take to send a request's headers (default 10).
    pub header_timeout_secs: Option<u64>,
    /// Seconds a client may take to send a request's body (default 60).
    pub body_timeout_secs: Option<u64>,
    /// Seconds a connection may sit with nothing sent either way (default 60).
    pub keep_alive_timeout_secs: Option<u64>,
    /// Seconds from a request's headers to its answer (default 60; event streams excepted).
    pub request_timeout_secs: Option<u64>,
    /// Seconds in-flight requests and background work get to finish at shutdown (default 10).
    pub shutdown_grace_secs: Option<u64>,
    /// Networks outbound requests (webhooks) may reach although they are
    /// loopback, private or link-local: `["10.20.0.0/16", "127.0.0.1"]`.
    pub outbound_allow: Option<Vec<String>>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!("{}: {}", path.display(), e.to_string().replace('\n', " "))
        })
    }
}

/// The resolved settings `serve` runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub protocols: Option<PathBuf>,
    pub session_ttl: jiff::SignedDuration,
    pub log_json: bool,
    /// Certificate chain and key (PEM) when careline terminates TLS itself.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub attachments: AttachmentSettings,
    /// PostgreSQL (`postgres://…`); `None` is the embedded database.
    pub database_url: Option<String>,
    /// Connections to PostgreSQL this node keeps at most.
    pub database_pool: u32,
    /// How long a client may take over each part of a request.
    pub timeouts: careline_web::limits::Timeouts,
    /// Where webhooks may be delivered.
    pub outbound: careline_core::outbound::OutboundPolicy,
    /// The master key file (unless `CARELINE_MASTER_KEY` is set):
    /// `CARELINE_MASTER_KEY_FILE`, else the one an older data directory
    /// holds, else `<data dir>.key` beside the data directory.
    pub key_file: PathBuf,
}

/// Where attachments are stored and scanned, and their limits.
#[derive(Debug, Clone)]
pub struct AttachmentSettings {
    /// The ClamAV daemon's address; without one, files stay quarantined.
    pub clamd: Option<String>,
    /// The blob store (see [`FileConfig::blob_store`]); `None` is local.
    pub blob_store: Option<String>,
    pub max_bytes: u64,
    pub max_files: usize,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./careline-data";

impl Settings {
    /// Merge flags (already merged with env by clap) over the file over defaults.
    pub fn resolve(
        file: Option<&Path>,
        listen: Option<String>,
        data_dir: Option<PathBuf>,
        protocols: Option<PathBuf>,
    ) -> Result<Settings> {
        let f = match file {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let listen_s = listen.or(f.listen).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen_s.parse::<SocketAddr>().with_context(|| {
            format!("listen address '{listen_s}' is not HOST:PORT (for example 127.0.0.1:8080)")
        })?;
        let hours = std::env::var("CARELINE_SESSION_TTL_HOURS")
            .ok()
            .map(|v| {
                v.parse::<i64>()
                    .with_context(|| format!("CARELINE_SESSION_TTL_HOURS '{v}' is not a number"))
            })
            .transpose()?
            .or(f.session_ttl_hours)
            .unwrap_or(12);
        if !(1..=24 * 30).contains(&hours) {
            anyhow::bail!("session TTL must be between 1 and 720 hours (got {hours})");
        }
        let log = std::env::var("CARELINE_LOG_FORMAT")
            .ok()
            .or(f.log_format)
            .unwrap_or_else(|| "text".into());
        let log_json = match log.as_str() {
            "json" => true,
            "text" => false,
            o => anyhow::bail!("log format '{o}' is not text or json"),
        };
        let env_path = |k: &str| std::env::var_os(k).map(PathBuf::from);
        let cert = env_path("CARELINE_TLS_CERT").or(f.tls_cert);
        let key = env_path("CARELINE_TLS_KEY").or(f.tls_key);
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => anyhow::bail!("TLS needs both a certificate and a key (tls_cert and tls_key)"),
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let number = |k: &str, v: Option<u64>| -> Result<Option<u64>> {
            match env(k) {
                Some(x) => x
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| anyhow::anyhow!("{k} '{x}' is not a whole number")),
                None => Ok(v),
            }
        };
        let max_mb = number("CARELINE_ATTACHMENT_MAX_MB", f.attachment_max_mb)?.unwrap_or(25);
        if !(1..=2048).contains(&max_mb) {
            anyhow::bail!("the attachment size limit must be between 1 and 2048 MB (got {max_mb})");
        }
        let max_files = number(
            "CARELINE_ATTACHMENT_MAX_FILES",
            f.attachment_max_files.map(|n| n as u64),
        )?
        .unwrap_or(10);
        if !(1..=100).contains(&max_files) {
            anyhow::bail!(
                "the attachments-per-message limit must be between 1 and 100 (got {max_files})"
            );
        }
        let attachments = AttachmentSettings {
            clamd: env("CARELINE_CLAMD").or(f.clamd),
            blob_store: env("CARELINE_BLOB_STORE").or(f.blob_store),
            max_bytes: max_mb * 1024 * 1024,
            max_files: usize::try_from(max_files).unwrap_or(10),
        };
        let database_url = env("CARELINE_DATABASE_URL").or(f.database_url);
        if let Some(u) = &database_url {
            check_database_url(u)?;
        }
        let database_pool = number("CARELINE_DATABASE_POOL", f.database_pool.map(u64::from))?
            .unwrap_or(u64::from(careline_store_pg::DEFAULT_POOL_SIZE));
        if !(2..=1000).contains(&database_pool) {
            anyhow::bail!(
                "the database pool must be between 2 and 1000 connections (got {database_pool})"
            );
        }
        let defaults = careline_web::limits::Timeouts::default();
        let secs = |k: &str,
                    file: Option<u64>,
                    default: std::time::Duration|
         -> Result<std::time::Duration> {
            let v = number(k, file)?.unwrap_or(default.as_secs());
            if !(1..=3600).contains(&v) {
                let key = k.trim_start_matches("CARELINE_").to_lowercase();
                anyhow::bail!(
                    "{k} ({key} in the config file) must be between 1 and 3600 seconds (got {v})"
                );
            }
            Ok(std::time::Duration::from_secs(v))
        };
        let timeouts = careline_web::limits::Timeouts {
            header: secs(
                "CARELINE_HEADER_TIMEOUT_SECS",
                f.header_timeout_secs,
                defaults.header,
            )?,
            body: secs(
                "CARELINE_BODY_TIMEOUT_SECS",
                f.body_timeout_secs,
                defaults.body,
            )?,
            keep_alive: secs(
                "CARELINE_KEEP_ALIVE_TIMEOUT_SECS",
                f.keep_alive_timeout_secs,
                defaults.keep_alive,
            )?,
            request: secs(
                "CARELINE_REQUEST_TIMEOUT_SECS",
                f.request_timeout_secs,
                defaults.request,
            )?,
            shutdown: secs(
                "CARELINE_SHUTDOWN_GRACE_SECS",
                f.shutdown_grace_secs,
                defaults.shutdown,
            )?,
        };
        let allow: Vec<String> = match env("CARELINE_OUTBOUND_ALLOW") {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            None => f.outbound_allow.unwrap_or_default(),
        };
        let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
        let outbound = careline_core::outbound::OutboundPolicy::new(&allow)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let data_dir = data_dir
            .or(f.data_dir)
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        Ok(Settings {
            timeouts,
            outbound,
            key_file: careline_store_sqlite::key_file(&data_dir),
            database_url,
            database_pool: u32::try_from(database_pool)
                .unwrap_or(careline_store_pg::DEFAULT_POOL_SIZE),
            attachments,
            listen,
            data_dir,
            protocols: protocols.or(f.protocols),
            session_ttl: jiff::SignedDuration::from_hours(hours),
            log_json,
            tls,
        })
    }
}

/// Only PostgreSQL URLs are accepted: anything else is an error, never a
/// silent new embedded database.
pub fn check_database_url(url: &str) -> Result<()> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        "postgres" | "postgresql" => Ok(()),
        _ => anyhow::bail!(
            "database URL '{}' is not postgres://…; leave it unset for the embedded database in the data directory",
            url.split('@').next_back().unwrap_or(url)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(text: &str) -> Result<Settings> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("careline.toml");
        std::fs::write(&path, text)?;
        Settings::resolve(Some(&path), None, None, None)
    }

    #[test]
    fn connection_limits_and_the_outbound_allow_list_come_from_the_config_file() {
        let s = with_file(
            "header_timeout_secs = 5\nbody_timeout_secs = 90\nkeep_alive_timeout_secs = 30\nrequest_timeout_secs = 120\nshutdown_grace_secs = 3\noutbound_allow = [\"10.20.0.0/16\", \"127.0.0.1\"]\n",
        )
        .unwrap();
        assert_eq!(s.timeouts.header.as_secs(), 5);
        assert_eq!(s.timeouts.body.as_secs(), 90);
        assert_eq!(s.timeouts.keep_alive.as_secs(), 30);
        assert_eq!(s.timeouts.request.as_secs(), 120);
        assert_eq!(s.timeouts.shutdown.as_secs(), 3);
        assert_eq!(s.outbound.allowed().len(), 2);
        let d = with_file("").unwrap();
        assert_eq!(d.timeouts, careline_web::limits::Timeouts::default());
        assert!(
            d.outbound.allowed().is_empty(),
            "nothing restricted is allowed by default"
        );
    }

    #[test]
    fn a_bad_allow_list_entry_or_a_zero_timeout_is_refused_at_start() {
        let e = with_file("outbound_allow = [\"metadata.internal\"]\n").unwrap_err();
        assert!(e.to_string().contains("metadata.internal"), "{e}");
        let e = with_file("header_timeout_secs = 0\n").unwrap_err();
        assert!(
            e.to_string().contains("CARELINE_HEADER_TIMEOUT_SECS"),
            "{e}"
        );
    }
}
