//! `careline backup` on PostgreSQL: `pg_dump` of one snapshot while a node
//! keeps writing, the chains of that snapshot recorded in `manifest.json`,
//! and `careline audit verify --against` proving a restore holds everything
//! up to the backup — and catching one that does not.

use crate::support::*;
use std::path::Path;
use std::process::{Command, Output};

fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn careline(url: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("CARELINE_DATABASE_URL", url)
        .env_remove("CARELINE_MASTER_KEY")
        .output()
        .unwrap()
}

fn verify_against(url: &str, dir: &Path, manifest: &Path) -> (bool, String) {
    let out = Command::new(bin())
        .args(["audit", "verify", "--against"])
        .arg(manifest)
        .arg("--data-dir")
        .arg(dir)
        .env("CARELINE_DATABASE_URL", url)
        .env_remove("CARELINE_MASTER_KEY")
        .output()
        .unwrap();
    (out.status.success(), said(&out))
}

/// A fresh database holding the dump.
fn restore(dump: &Path) -> String {
    let url = fresh_database();
    let out = Command::new(pg_tool("pg_restore"))
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(&url)
        .arg(dump)
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_restore: {}", said(&out));
    url
}

fn psql(url: &str, sql: &str) {
    let out = Command::new(pg_tool("psql"))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-d"])
        .arg(url)
        .arg("-c")
        .arg(sql)
        .output()
        .unwrap();
    assert!(out.status.success(), "psql: {}", said(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backup_while_writing_restores_to_a_copy_that_reaches_its_manifest() {
    if !on_postgres() {
        eprintln!("runs with CARELINE_TEST_BACKEND=postgres only: it backs up with pg_dump");
        return;
    }
    let app = App::spawn().await;
    let member = app.login("member01").await;
    app.send(&member, "before the backup: please refill my metformin")
        .await;
    let url = database_of(app.dir.path()).unwrap();
    let backups = tempfile::tempdir().unwrap();
    let out = backups.path().join("backup");

    // The backup runs in another process while this node keeps taking messages.
    let run = {
        let (url, dir, out) = (url.clone(), app.dir.path().to_owned(), out.clone());
        tokio::task::spawn_blocking(move || {
            careline(&url, &["backup", "--out", out.to_str().unwrap()], &dir)
        })
    };
    let mut during = 0;
    while !run.is_finished() {
        app.send(&member, &format!("written during the backup, #{during}"))
            .await;
        during += 1;
    }
    let ran = run.await.unwrap();
    let text = said(&ran);
    assert!(ran.status.success(), "{text}");
    assert!(
        text.contains("OK ") && text.contains("master key is NOT in the backup"),
        "{text}"
    );
    assert!(
        during > 0,
        "the node stopped taking messages during the backup"
    );

    let master = std::fs::read_to_string(app.dir.path().join("master.key")).unwrap();
    let key_id = careline_crypto::MasterKey::parse(&master)
        .unwrap()
        .id()
        .to_owned();
    let manifest_path = out.join("manifest.json");
    let manifest_text = std::fs::read_to_string(&manifest_path).unwrap();
    assert!(
        !manifest_text.contains(master.trim()),
        "the master key is in the manifest"
    );
    let manifest: serde_json::Value = serde_json::from_str(&manifest_text).unwrap();
    assert_eq!(manifest["backend"], "postgres");
    assert_eq!(manifest["master_key_ids"], serde_json::json!([key_id]));
    let demo = manifest["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Demo Clinic")
        .unwrap()
        .clone();
    let (org, head) = (
        demo["org_id"].as_str().unwrap().to_owned(),
        demo["seq"].as_i64().unwrap(),
    );
    assert!(head > 0, "{manifest_text}");

    // A restore into a fresh database reaches every recorded head.
    let dump = out.join("careline.pgdump");
    let restored = restore(&dump);
    let (ok, text) = verify_against(&restored, app.dir.path(), &manifest_path);
    assert!(ok && text.contains("reaches the backup's head"), "{text}");
    // So does the live database, which went on writing after the snapshot.
    let (ok, text) = verify_against(&url, app.dir.path(), &manifest_path);
    assert!(ok, "{text}");

    // A restore that lost its last events: its chain verifies on its own,
    // but not against the backup.
    let truncated = restore(&dump);
    let keep = head - 3;
    psql(
        &truncated,
        &format!(
            "SET session_replication_role = replica;
             DELETE FROM events WHERE org_id = '{org}' AND seq > {keep};
             UPDATE chain_heads SET seq = {keep},
                 hash = (SELECT hash FROM events WHERE org_id = '{org}' AND seq = {keep})
               WHERE org_id = '{org}';"
        ),
    );
    // The node's data directory remembers its latest backup, so even a
    // plain verify checks against it.
    let plain = careline(&truncated, &["audit", "verify"], app.dir.path());
    assert!(!plain.status.success(), "{}", said(&plain));
    assert!(
        said(&plain).contains("events were lost"),
        "{}",
        said(&plain)
    );
    let (ok, text) = verify_against(&truncated, app.dir.path(), &manifest_path);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "ends at event {keep}, before the backup's head (event {head})"
        )),
        "{text}"
    );

    // A manifest of another history: the event at its head differs.
    let forged = backups.path().join("other-manifest.json");
    let other = manifest_text.replace(demo["hash"].as_str().unwrap(), &"0".repeat(64));
    std::fs::write(&forged, other).unwrap();
    let (ok, text) = verify_against(&restored, app.dir.path(), &forged);
    assert!(!ok && text.contains("differs from the backup's"), "{text}");
}

#[tokio::test]
async fn postgres_backup_refuses_clearly() {
    if !on_postgres() {
        eprintln!("runs with CARELINE_TEST_BACKEND=postgres only: it backs up with pg_dump");
        return;
    }
    let app = App::spawn().await;
    let url = database_of(app.dir.path()).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let one_line = |o: &Output| {
        assert!(!o.status.success(), "{}", said(o));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        err
    };

    let full = scratch.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("something"), "kept").unwrap();
    let err = one_line(&careline(
        &url,
        &["backup", "--out", full.to_str().unwrap()],
        app.dir.path(),
    ));
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(full.join("something")).unwrap(),
        "kept"
    );

    let with_pg_dump = |out: &str, pg_dump: &str| {
        let out = scratch.path().join(out);
        one_line(&careline(
            &url,
            &[
                "backup",
                "--out",
                out.to_str().unwrap(),
                "--pg-dump",
                pg_dump,
            ],
            app.dir.path(),
        ))
    };
    let err = with_pg_dump("a", "/nonexistent/pg_dump");
    assert!(
        err.contains("cannot run pg_dump at /nonexistent/pg_dump"),
        "{err}"
    );

    // A pg_dump older than the server.
    let old = scratch.path().join("old-pg_dump");
    std::fs::write(&old, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let err = with_pg_dump("b", old.to_str().unwrap());
    assert!(
        err.contains("is pg_dump 9.6.24, older than the PostgreSQL"),
        "{err}"
    );
    assert!(!scratch.path().join("b").join("careline.pgdump").exists());
}
