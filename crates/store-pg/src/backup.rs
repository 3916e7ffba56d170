//! A backup of the PostgreSQL database that is known to be whole, taken while
//! every node keeps serving (a snapshot blocks no writer).
//!
//! One `REPEATABLE READ` transaction exports its snapshot
//! (`pg_export_snapshot()`); `pg_dump --snapshot` writes exactly that
//! snapshot in its custom format, while the same transaction recomputes
//! every organization's hash chain in it. So the chain heads returned are
//! those of the dump, and a restore can later be checked to reach them.
//!
//! No master key is needed: the dump holds the data keys wrapped, as the
//! database does, and [`Dump::master_key_ids`] says which master key wrapped
//! them. `pg_dump` must be at least as new as the server; it is looked for
//! where Debian and Red Hat install each major version, then on `PATH`. The
//! password, if the URL has one, reaches it in `PGPASSWORD`, never on its
//! command line.

use crate::chain;
use crate::rows::{db, q};
use careline_core::{Error, Result};
use careline_store::ChainReport;
use sqlx_core::connection::Connection;
use sqlx_postgres::PgConnection;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a backup wrote and found.
#[derive(Debug, Clone)]
pub struct Dump {
    /// Every organization's chain as verified in the dumped snapshot; an
    /// intact one's head is (`events`, `last_hash`).
    pub chains: Vec<ChainReport>,
    /// The newest migration applied in the snapshot.
    pub schema_version: i32,
    /// The master key(s) the dumped data keys are wrapped by: one, unless
    /// the database was written by nodes with different keys.
    pub master_key_ids: Vec<String>,
    /// The server's version, as `SHOW server_version` says it.
    pub server_version: String,
    /// The `pg_dump` that wrote the file, and its version.
    pub pg_dump: PathBuf,
    pub pg_dump_version: String,
}

/// Dump the database at `url` into `file` (which must not exist) with
/// `pg_dump` (`pg_dump` given, or found to match the server), and verify
/// every chain in the same snapshot.
pub async fn dump(url: &str, file: &Path, pg_dump: Option<&Path>) -> Result<Dump> {
    if file.exists() {
        return Err(Error::invalid(format!("{} already exists", file.display())));
    }
    let (target, password) = libpq_target(url)?;
    let mut c = PgConnection::connect(url)
        .await
        .map_err(|e| Error::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
    let (version_num,): (String,) = sqlx_core::query_as::query_as("SHOW server_version_num")
        .fetch_one(&mut c)
        .await
        .map_err(db)?;
    let (server_version,): (String,) = sqlx_core::query_as::query_as("SHOW server_version")
        .fetch_one(&mut c)
        .await
        .map_err(db)?;
    let server_major = version_num
        .trim()
        .parse::<u32>()
        .map(|n| n / 10_000)
        .map_err(|_| Error::internal(format!("server_version_num '{version_num}'")))?;
    let (pg_dump, pg_dump_version) = find_pg_dump(pg_dump, server_major)?;

    let mut tx = c.begin().await.map_err(db)?;
    q("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let (schema,): (Option<String>,) =
        sqlx_core::query_as::query_as("SELECT to_regclass('schema_migrations')::text")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
    if schema.is_none() {
        return Err(Error::invalid(
            "no careline schema in this database (run careline migrate, or check CARELINE_DATABASE_URL)",
        ));
    }
    let (snapshot,): (String,) = sqlx_core::query_as::query_as("SELECT pg_export_snapshot()")
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    let (schema_version,): (i32,) =
        sqlx_core::query_as::query_as("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
    let ids: Vec<(String,)> = sqlx_core::query_as::query_as(
        "SELECT DISTINCT split_part(wrapped, ':', 2) FROM org_keys ORDER BY 1",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;

    // pg_dump imports the snapshot while this transaction holds it open and
    // walks the same snapshot's chains.
    let run = {
        let (program, file, snapshot) = (pg_dump.clone(), file.to_owned(), snapshot.clone());
        tokio::task::spawn_blocking(move || {
            run_pg_dump(&program, &target, password.as_deref(), &snapshot, &file)
        })
    };
    let (ran, chains) = tokio::join!(run, chain::verify_in(&mut tx));
    let ran = ran
        .map_err(|e| Error::internal(format!("pg_dump task: {e}")))
        .and_then(|r| r);
    if let Err(e) = ran {
        // A partial file must not pass for a backup.
        let _ = std::fs::remove_file(file);
        return Err(e);
    }
    let chains = chains?;
    tx.rollback().await.map_err(db)?;
    Ok(Dump {
        chains,
        schema_version,
        master_key_ids: ids.into_iter().map(|(id,)| id).collect(),
        server_version,
        pg_dump,
        pg_dump_version,
    })
}

fn run_pg_dump(
    program: &Path,
    target: &str,
    password: Option<&str>,
    snapshot: &str,
    file: &Path,
) -> Result<()> {
    let mut cmd = Command::new(program);
    cmd.arg("--format=custom")
        .arg(format!("--snapshot={snapshot}"))
        .arg("--file")
        .arg(file)
        .arg("--no-password")
        .arg("--dbname")
        .arg(target);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd
        .output()
        .map_err(|e| Error::Unavailable(format!("cannot run {}: {e}", program.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let said = said
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Err(Error::Unavailable(format!(
        "pg_dump failed ({}): {said}",
        out.status
    )))
}

/// The `pg_dump` to use and its version: the one given, else the one
/// installed for the server's major version, else the one on `PATH`. It must
/// be at least as new as the server (an older one refuses, or misses what it
/// does not know).
fn find_pg_dump(given: Option<&Path>, server_major: u32) -> Result<(PathBuf, String)> {
    let candidates: Vec<PathBuf> = match given {
        Some(p) => vec![p.to_owned()],
        None => vec![
            PathBuf::from(format!("/usr/lib/postgresql/{server_major}/bin/pg_dump")),
            PathBuf::from(format!("/usr/pgsql-{server_major}/bin/pg_dump")),
            PathBuf::from("pg_dump"),
        ],
    };
    for program in candidates {
        let out = match Command::new(&program).arg("--version").output() {
            Ok(out) if out.status.success() => out,
            Ok(_) | Err(_) if given.is_none() => continue,
            Ok(out) => {
                return Err(Error::invalid(format!(
                    "{} --version failed ({})",
                    program.display(),
                    out.status
                )));
            }
            Err(e) => {
                return Err(Error::invalid(format!(
                    "cannot run pg_dump at {}: {e}",
                    program.display()
                )));
            }
        };
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let (major, version) = dump_version(&text).ok_or_else(|| {
            Error::invalid(format!(
                "{} does not look like pg_dump (it says '{text}')",
                program.display()
            ))
        })?;
        if major < server_major {
            return Err(Error::invalid(format!(
                "{} is pg_dump {version}, older than the PostgreSQL {server_major} server: install the PostgreSQL {server_major} client tools or pass --pg-dump PATH",
                program.display()
            )));
        }
        return Ok((program, version));
    }
    Err(Error::invalid(format!(
        "no pg_dump found (looked in /usr/lib/postgresql/{server_major}/bin, /usr/pgsql-{server_major}/bin and on PATH): install the PostgreSQL {server_major} client tools or pass --pg-dump PATH"
    )))
}

/// Major version and version text from `pg_dump (PostgreSQL) 15.7 (Debian …)`.
fn dump_version(text: &str) -> Option<(u32, String)> {
    if !text.starts_with("pg_dump") {
        return None;
    }
    let version = text
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((major, version.to_owned()))
}

/// The URL as libpq reads it, without its password (returned apart, for
/// `PGPASSWORD`): the driver's own spellings of the TLS settings become
/// libpq's, and settings libpq does not know are left out (it would refuse
/// the whole URL).
fn libpq_target(url: &str) -> Result<(String, Option<String>)> {
    let mut u = url::Url::parse(url)
        .map_err(|e| Error::invalid(format!("the database URL is not a URL: {e}")))?;
    let password = u.password().map(|p| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .into_owned()
    });
    if password.is_some() && u.set_password(None).is_err() {
        return Err(Error::invalid("the database URL cannot carry a password"));
    }
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter_map(|(k, v)| {
            let key = match k.as_ref() {
                "sslmode" | "ssl-mode" => "sslmode",
                "sslrootcert" | "ssl-root-cert" | "ssl-ca" => "sslrootcert",
                "sslcert" | "ssl-cert" => "sslcert",
                "sslkey" | "ssl-key" => "sslkey",
                "host" => "host",
                "hostaddr" => "hostaddr",
                "port" => "port",
                "user" => "user",
                "dbname" => "dbname",
                "application_name" => "application_name",
                "options" => "options",
                "connect_timeout" => "connect_timeout",
                _ => return None,
            };
            Some((key.to_owned(), v.into_owned()))
        })
        .collect();
    u.set_query(None);
    if !pairs.is_empty() {
        u.query_pairs_mut().extend_pairs(pairs);
    }
    Ok((u.to_string(), password))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_password_never_reaches_the_command_line() {
        let (target, password) =
            libpq_target("postgres://careline:s%40cr%2Bt@db.internal:5433/careline").unwrap();
        assert_eq!(target, "postgres://careline@db.internal:5433/careline");
        assert_eq!(password.as_deref(), Some("s@cr+t"));
        let (target, password) = libpq_target("postgresql://db/careline").unwrap();
        assert_eq!(target, "postgresql://db/careline");
        assert_eq!(password, None);
    }

    #[test]
    fn tls_settings_are_spelled_for_libpq_and_unknown_ones_dropped() {
        let (target, _) = libpq_target(
            "postgres://u@db/c?ssl-mode=verify-full&ssl-root-cert=/etc/ca.pem&statement-cache-capacity=10",
        )
        .unwrap();
        assert_eq!(
            target,
            "postgres://u@db/c?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem"
        );
    }

    #[test]
    fn pg_dump_versions_are_read() {
        assert_eq!(
            dump_version("pg_dump (PostgreSQL) 15.7 (Debian 15.7-0+deb12u1)"),
            Some((15, "15.7".to_owned()))
        );
        assert_eq!(
            dump_version("pg_dump (PostgreSQL) 9.6.24"),
            Some((9, "9.6.24".to_owned()))
        );
        assert_eq!(dump_version("bash 5.2"), None);
    }
}
