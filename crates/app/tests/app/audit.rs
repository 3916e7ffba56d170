//! The event record: append-only, hash-chained, verifiable by `careline audit verify`.

use crate::support::*;
use serde_json::json;
use std::process::Command;

fn verify(dir: &std::path::Path) -> (bool, String) {
    verify_with(dir, &[])
}

/// `careline audit verify --data-dir DIR ARGS…`: whether it passed, and what it printed.
fn verify_with(dir: &std::path::Path, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(bin())
        .args(["audit", "verify", "--data-dir"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn db(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("careline.db")).unwrap()
}

async fn app_with_traffic() -> tempfile::TempDir {
    let app = App::spawn().await;
    let m = app.login("member01").await;
    app.send(&m, "Need a refill of my metformin please").await;
    app.send(
        &m,
        "Also my chest feels tight when I climb stairs since yesterday",
    )
    .await;
    app.stop().await
}

#[tokio::test]
async fn invariant_1_no_contact_is_stored_without_a_triage_result() {
    if embedded_only("reads the embedded database file") {
        return;
    }
    let dir = app_with_traffic().await;
    let c = db(dir.path());
    let untriaged: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE kind IN ('member','call_note') AND triage IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(untriaged, 0);
    let judged: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'triage.judged'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(judged, 2, "each contact's triage is an event");
    // The schema itself refuses an untriaged contact.
    let (org, thread): (String, String) = c
        .query_row("SELECT org_id, id FROM threads LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let err = c
        .execute(
            "INSERT INTO messages (id, org_id, thread_id, kind, author_name, body, created_at) VALUES ('x', ?1, ?2, 'member', 'x', 'x', 0)",
            [org, thread],
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("messages_contact_triaged"),
        "{err}"
    );
}

#[tokio::test]
async fn invariant_5_nothing_is_deleted_events_refuse_update_and_delete() {
    if embedded_only(
        "edits the embedded database file (the PostgreSQL triggers have their own tests in careline-store-pg)",
    ) {
        return;
    }
    let dir = app_with_traffic().await;
    let c = db(dir.path());
    let e = c
        .execute("UPDATE events SET payload = '{}' WHERE seq = 3", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = c
        .execute("DELETE FROM events WHERE seq = 3", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = c.execute("DELETE FROM messages", []).unwrap_err();
    assert!(e.to_string().contains("never deleted"), "{e}");
    let (ok, out) = verify(dir.path());
    assert!(ok, "{out}");
    assert!(
        out.contains("OK") && out.contains("every chain verifies"),
        "{out}"
    );
}

#[tokio::test]
async fn invariant_5_verify_detects_an_edited_event_and_names_it() {
    if embedded_only("tampers with the embedded database file") {
        return;
    }
    let dir = app_with_traffic().await;
    let c = db(dir.path());
    let (seq, id): (i64, String) = c
        .query_row(
            "SELECT seq, id FROM events WHERE kind = 'triage.judged' ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // Someone with the database file drops the guard and rewrites history.
    c.execute_batch("DROP TRIGGER events_append_only_update")
        .unwrap();
    c.execute(r#"UPDATE events SET payload = replace(payload, '"disposition":"', '"disposition":"not-') WHERE id = ?1"#, [&id]).unwrap();
    drop(c);
    let (ok, out) = verify(dir.path());
    assert!(!ok, "tampering must fail verification: {out}");
    assert!(
        out.contains(&format!("seq {seq}")) && out.contains(&id) && out.contains("edited"),
        "{out}"
    );
}

#[tokio::test]
async fn invariant_5_verify_detects_a_removed_event_and_a_truncated_tail() {
    if embedded_only("tampers with the embedded database file") {
        return;
    }
    let dir = app_with_traffic().await;
    let c = db(dir.path());
    c.execute_batch("DROP TRIGGER events_append_only_delete")
        .unwrap();
    let max: i64 = c
        .query_row(
            "SELECT MAX(seq) FROM events e JOIN organizations o ON o.id = e.org_id",
            [],
            |r| r.get(0),
        )
        .unwrap();
    c.execute("DELETE FROM events WHERE seq = ?1", [max - 2])
        .unwrap();
    drop(c);
    let (ok, out) = verify(dir.path());
    assert!(!ok && out.contains("missing or out of order"), "{out}");

    let dir = app_with_traffic().await;
    let c = db(dir.path());
    c.execute_batch("DROP TRIGGER events_append_only_delete")
        .unwrap();
    c.execute(
        "DELETE FROM events WHERE seq = (SELECT MAX(seq) FROM events)",
        [],
    )
    .unwrap();
    drop(c);
    let (ok, out) = verify(dir.path());
    assert!(!ok && out.contains("removed from the end"), "{out}");
}

#[test]
fn audit_verify_on_a_missing_data_dir_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = verify(&dir.path().join("nothing-here"));
    assert!(!ok);
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(out.contains("no careline database"), "{out}");
}

#[tokio::test]
async fn invariant_5_redaction_hides_content_keeps_the_hash_and_is_an_event_with_a_reason() {
    let app = App::spawn().await;
    let member = app.login("member01").await;
    let words = "my neighbour's SSN is 078-05-1120, please update her file";
    let out = app.send(&member, words).await;
    let id = out["message"]["id"].as_str().unwrap().to_owned();
    let thread = out["message"]["thread_id"].as_str().unwrap().to_owned();
    let redact = format!("/api/v1/messages/{id}/redact");
    let privacy = app.login("privacy").await;
    let nurse = app.login("nurse.north").await;
    // Only a privacy officer redacts, and only with a reason.
    assert_problem(
        &app.post(&redact, &nurse, json!({"reason": "x"})).await,
        403,
        "privacy-officers",
    );
    assert_problem(
        &app.post(&redact, &privacy, json!({"reason": "  "})).await,
        422,
        "invalid-input",
    );
    let reason = "another person's identifier posted by mistake; ticket PRIV-311";
    let r = app.post(&redact, &privacy, json!({"reason": reason})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_problem(
        &app.post(&redact, &privacy, json!({"reason": reason})).await,
        409,
        "already-redacted",
    );
    // Every view hides the words; staff see why, the member sees that it happened.
    let path = format!("/api/v1/threads/{thread}");
    for (token, staff) in [(&member, false), (&nurse, true)] {
        let view = app.get(&path, token).await;
        assert!(!view.text().contains("078-05-1120"), "{}", view.text());
        let msg = view.json()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == json!(id))
            .cloned()
            .unwrap();
        assert_eq!(msg["text"], "");
        assert!(msg["triage"].is_null());
        assert_eq!(msg["redacted"]["by_role"], "privacy_officer");
        assert_eq!(msg["redacted"]["reason"].is_string(), staff, "{msg}");
    }
    // Nothing was deleted: the record still proves the original text.
    let created = app.recorded("message.created").await;
    let digest = careline_core::ingest::text_digest(words);
    assert!(created.iter().any(|e| e["text_sha256"] == json!(digest)));
    let redacted = app.recorded("message.redacted").await;
    assert_eq!(redacted.len(), 1);
    assert_eq!(redacted[0]["reason"], reason);
    assert_eq!(redacted[0]["text_sha256"], json!(digest));
    let reports = app
        .running
        .as_ref()
        .unwrap()
        .state
        .store
        .verify_chains()
        .await
        .unwrap();
    assert!(reports.iter().all(|r| r.error.is_none()), "{reports:?}");
    // And a redaction cannot be undone, even in the database.
    if embedded_only("the last check edits the embedded database file") {
        return;
    }
    let dir = app.stop().await;
    let c = rusqlite::Connection::open(dir.path().join("careline.db")).unwrap();
    let undo = c.execute(
        "UPDATE messages SET redacted_at = NULL WHERE id = ?1",
        [&id],
    );
    assert!(undo.unwrap_err().to_string().contains("redaction is final"));
    let delete = c.execute("DELETE FROM messages WHERE id = ?1", [&id]);
    assert!(delete.is_err());
}

#[tokio::test]
async fn backup_while_serving_restores_to_a_working_verified_copy() {
    if embedded_only("copies the embedded database (PostgreSQL: backup.rs)") {
        return;
    }
    let app = App::spawn().await;
    let member = app.login("member01").await;
    let out = app
        .send(&member, "backup check: my blood pressure log for this week")
        .await;
    let thread = out["message"]["thread_id"].as_str().unwrap().to_owned();
    let up = app
        .upload(
            &member,
            None,
            "bp-log.txt",
            "text/plain",
            b"Mon 128/82\nTue 131/85\n",
        )
        .await;
    assert_eq!(up.status, 201, "{}", up.text());
    let file = up.json()["items"][0]["id"].as_str().unwrap().to_owned();
    // The backup runs in another process while this one keeps serving.
    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("copy");
    let run = std::process::Command::new(bin())
        .args(["backup", "--data-dir"])
        .arg(app.dir.path())
        .arg("--out")
        .arg(&target)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        said.contains("OK ") && said.contains("master key is NOT in the backup"),
        "{said}"
    );
    assert!(app.send(&member, "still serving during the backup").await["message"].is_object());
    // Restore: the copy plus the master key is a data directory that serves the same record.
    std::fs::copy(app.dir.path().join("master.key"), target.join("master.key")).unwrap();
    let (ok, text) = verify(&target);
    assert!(ok, "{text}");
    // The manifest records the copy's chain heads; the copy reaches them,
    // and a copy that lost events since would not.
    let manifest = target.join("manifest.json");
    let against = |dir: &std::path::Path, manifest: &std::path::Path| {
        verify_with(dir, &["--against".as_ref(), manifest.as_os_str()])
    };
    let (ok, text) = against(&target, &manifest);
    assert!(ok && text.contains("reaches the backup's head"), "{text}");
    let (ok, text) = against(app.dir.path(), &manifest);
    assert!(ok, "the live database went on from the backup: {text}");
    let mut later: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    for o in later["organizations"].as_array_mut().unwrap() {
        o["seq"] = json!(o["seq"].as_i64().unwrap() + 5);
    }
    let later_path = restored.path().join("later-manifest.json");
    std::fs::write(&later_path, later.to_string()).unwrap();
    let (ok, text) = against(&target, &later_path);
    assert!(!ok && text.contains("events were lost"), "{text}");
    std::fs::remove_file(&later_path).unwrap();
    let copy = tempfile::TempDir::new_in(restored.path()).unwrap();
    for e in std::fs::read_dir(&target).unwrap() {
        let e = e.unwrap();
        std::fs::rename(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    let again = App::restart(copy, app.clock.clone()).await;
    let member = again.login("member01").await;
    let seen = again
        .get(&format!("/api/v1/threads/{thread}"), &member)
        .await;
    assert!(
        seen.text().contains("blood pressure log"),
        "{}",
        seen.text()
    );
    assert_eq!(
        again
            .get(&format!("/api/v1/attachments/{file}"), &member)
            .await
            .json()["file_name"],
        "bp-log.txt"
    );
}
