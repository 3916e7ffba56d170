//! The event record: append-only, hash-chained, verifiable by `careline audit verify`.

use crate::support::*;
use serde_json::json;
use std::process::Command;

fn verify(dir: &std::path::Path) -> (bool, String) {
    verify_with(dir, &[])
}

/// `careline audit verify --data-dir DIR ARGS…` (on the app's PostgreSQL
/// database when it has one): whether it passed, and what it printed.
fn verify_with(dir: &std::path::Path, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = careline_in(
        dir,
        &[&["audit".as_ref(), "verify".as_ref()], args].concat(),
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `careline ARGS… --data-dir DIR`, on the app's PostgreSQL database when it has one.
fn careline_in(dir: &std::path::Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("CARELINE_MASTER_KEY")
        .env_remove("CARELINE_BACKUP_MANIFEST");
    match database_of(dir) {
        Some(url) => cmd.env("CARELINE_DATABASE_URL", url),
        None => cmd.env_remove("CARELINE_DATABASE_URL"),
    };
    cmd.output().unwrap()
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

// ---- deep verification: the rows the API serves, against the record ----
//
// Each tampering below changes a row beside the event record, as anyone
// holding the database can once a guard trigger is dropped. Plain `audit
// verify` passes every one of them (the chain is intact), which each test
// shows first; `audit verify --deep` names the row. They run on the embedded
// database and, with CARELINE_TEST_BACKEND=postgres, on PostgreSQL.

/// The database behind an app's data directory, on either backend.
enum Tamper {
    Sqlite(rusqlite::Connection),
    Pg(String),
}

impl Tamper {
    fn of(dir: &std::path::Path) -> Tamper {
        match database_of(dir) {
            Some(url) => Tamper::Pg(url),
            None => Tamper::Sqlite(db(dir)),
        }
    }

    fn psql(url: &str, sql: &str) -> String {
        psql(url, sql)
    }

    fn exec(&self, sql: &str) {
        match self {
            Tamper::Sqlite(c) => c.execute_batch(sql).unwrap(),
            Tamper::Pg(url) => {
                Self::psql(url, sql);
            }
        }
    }

    /// The first column of the first row, as text.
    fn one(&self, sql: &str) -> String {
        match self {
            Tamper::Sqlite(c) => c
                .query_row(sql, [], |r| r.get::<_, String>(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Tamper::Pg(url) => {
                let v = Self::psql(url, sql);
                assert!(!v.is_empty(), "{sql}: no row");
                v.lines().next().unwrap().to_owned()
            }
        }
    }

    /// An id as a literal of the column's type.
    fn id(&self, id: &str) -> String {
        match self {
            Tamper::Sqlite(_) => format!("'{id}'"),
            Tamper::Pg(_) => format!("'{id}'::uuid"),
        }
    }

    /// Drop the guard triggers of `table`, as someone with the database can.
    fn unguard(&self, table: &str) {
        match self {
            Tamper::Sqlite(c) => {
                let names: Vec<String> = c
                    .prepare(
                        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?1",
                    )
                    .unwrap()
                    .query_map([table], |r| r.get(0))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                for n in names {
                    c.execute_batch(&format!("DROP TRIGGER {n}")).unwrap();
                }
            }
            Tamper::Pg(url) => {
                Self::psql(url, &format!("ALTER TABLE {table} DISABLE TRIGGER USER"));
            }
        }
    }
}

/// Demo Clinic with one of everything the deep check rebuilds: member
/// messages and a staff reply on a ticket, an emergency with its page and
/// automatic reply, an attachment sent with a message, and a redacted
/// message. Returns the stopped app's data directory.
async fn app_with_every_kind_of_row() -> tempfile::TempDir {
    let app = App::spawn().await;
    let member = app.login("member01").await;
    let first = app
        .send(&member, "Need a refill of my metformin please")
        .await;
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
    let r = app
        .post(
            "/api/v1/messages",
            &member,
            json!({"text": "Here is my blood pressure log", "attachment_ids": [file]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let ticket = first["ticket"]["id"].as_str().unwrap().to_owned();
    let guide = app.login("guide.north1").await;
    let r = app
        .post(
            &format!("/api/v1/tickets/{ticket}/replies"),
            &guide,
            json!({"text": "Sent to your pharmacy, ready after 4pm.", "internal": false}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let m2 = app.login("member02").await;
    let red = app
        .send(
            &m2,
            "crushing chest pain going down my left arm and I am sweating",
        )
        .await;
    assert!(red["page"]["id"].is_string(), "{red}");
    let oops = app.send(&member, "my neighbour's phone is 555-0199").await;
    let privacy = app.login("privacy").await;
    let r = app
        .post(
            &format!(
                "/api/v1/messages/{}/redact",
                oops["message"]["id"].as_str().unwrap()
            ),
            &privacy,
            json!({"reason": "another person's number"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    app.stop().await
}

/// Plain verify passes (the chain is intact) and `--deep` fails, naming
/// `id` and saying `what`.
fn only_deep_catches(dir: &std::path::Path, id: &str, what: &str) -> String {
    let (ok, out) = verify(dir);
    assert!(ok, "plain verify passes this tampering: {out}");
    let (ok, out) = verify_with(dir, &["--deep".as_ref()]);
    assert!(!ok, "--deep must fail: {out}");
    assert!(
        out.lines().any(|l| l.contains(id) && l.contains(what)),
        "--deep must name {id} ({what}): {out}"
    );
    assert!(out.contains("disagree with the event record"), "{out}");
    out
}

#[tokio::test]
async fn deep_verify_passes_an_untouched_database_with_a_redacted_message() {
    let dir = app_with_every_kind_of_row().await;
    let (ok, out) = verify_with(dir.path(), &["--deep".as_ref()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("every message, ticket, page and attachment row agrees with the record"),
        "{out}"
    );
    // member01: refill, log, redacted; the guide's reply; member02's
    // emergency and its automatic reply.
    assert!(
        out.contains("6 message(s), 2 ticket(s), 1 page(s), 1 attachment(s) agree"),
        "{out}"
    );
    let out = careline_in(
        dir.path(),
        &["audit", "verify", "--deep", "--format", "json"].map(std::ffi::OsStr::new),
    );
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["rows"][0]["findings"], json!([]), "{report}");
}

#[tokio::test]
async fn deep_verify_catches_a_deleted_message_row_that_plain_verify_passes() {
    let dir = app_with_every_kind_of_row().await;
    let t = Tamper::of(dir.path());
    let id = t.one("SELECT id FROM messages WHERE kind = 'staff'");
    t.unguard("messages");
    t.exec(&format!("DELETE FROM messages WHERE id = {}", t.id(&id)));
    drop(t);
    only_deep_catches(dir.path(), &format!("message {id}"), "the row is missing");
}

#[tokio::test]
async fn deep_verify_catches_a_ticket_closed_in_the_database_that_plain_verify_passes() {
    let dir = app_with_every_kind_of_row().await;
    let t = Tamper::of(dir.path());
    let id = t.one("SELECT id FROM tickets WHERE priority = 'emergency'");
    t.unguard("tickets");
    t.exec(&format!(
        "UPDATE tickets SET status = 'closed' WHERE id = {}",
        t.id(&id)
    ));
    drop(t);
    only_deep_catches(
        dir.path(),
        &format!("ticket {id}"),
        "status is 'closed' but the record says 'new'",
    );
}

#[tokio::test]
async fn deep_verify_catches_two_swapped_message_bodies_that_plain_verify_passes() {
    let dir = app_with_every_kind_of_row().await;
    let t = Tamper::of(dir.path());
    let a = t.one("SELECT id FROM messages WHERE kind = 'member' ORDER BY created_at, id LIMIT 1");
    let b = t.one("SELECT id FROM messages WHERE kind = 'staff'");
    let body_a = t.one(&format!(
        "SELECT body FROM messages WHERE id = {}",
        t.id(&a)
    ));
    let body_b = t.one(&format!(
        "SELECT body FROM messages WHERE id = {}",
        t.id(&b)
    ));
    assert!(!body_a.contains('\'') && !body_b.contains('\''));
    t.unguard("messages");
    t.exec(&format!(
        "UPDATE messages SET body = '{body_b}' WHERE id = {}; UPDATE messages SET body = '{body_a}' WHERE id = {};",
        t.id(&a),
        t.id(&b)
    ));
    drop(t);
    let out = only_deep_catches(
        dir.path(),
        &format!("message {a}"),
        "does not open under this row's id",
    );
    assert!(
        out.lines()
            .any(|l| l.contains(&format!("message {b}")) && l.contains("does not open")),
        "{out}"
    );
}

#[tokio::test]
async fn deep_verify_catches_a_page_acknowledged_in_the_database_that_plain_verify_passes() {
    let dir = app_with_every_kind_of_row().await;
    let t = Tamper::of(dir.path());
    let id = t.one("SELECT id FROM pages");
    t.unguard("pages");
    // An acknowledged page stops climbing the rota: nobody is paged again.
    t.exec(&format!(
        "UPDATE pages SET status = 'acknowledged' WHERE id = {}",
        t.id(&id)
    ));
    drop(t);
    only_deep_catches(
        dir.path(),
        &format!("page {id}"),
        "status is 'acknowledged' but the record says 'open'",
    );
}

#[tokio::test]
async fn deep_verify_catches_an_attachment_released_in_the_database_that_plain_verify_passes() {
    let dir = app_with_every_kind_of_row().await;
    let t = Tamper::of(dir.path());
    let id = t.one("SELECT id FROM attachments");
    let state = t.one("SELECT state FROM attachments");
    assert_ne!(state, "clean", "no scanner runs in this test");
    t.unguard("attachments");
    // A file nobody scanned, released to be served.
    t.exec(&format!(
        "UPDATE attachments SET state = 'clean' WHERE id = {}",
        t.id(&id)
    ));
    drop(t);
    only_deep_catches(
        dir.path(),
        &format!("attachment {id}"),
        &format!("scan state is 'clean' but the record says '{state}'"),
    );
}

#[tokio::test]
async fn deep_verify_catches_a_message_row_that_no_event_created_that_plain_verify_passes() {
    let dir = app_with_every_kind_of_row().await;
    let t = Tamper::of(dir.path());
    let source = t.one("SELECT id FROM messages WHERE kind = 'staff'");
    let forged = careline_core::ids::MessageId::new().to_string();
    // A reply nobody wrote, slipped into the member's thread.
    t.exec(&format!(
        "INSERT INTO messages (id, org_id, thread_id, ticket_id, kind, author_id, author_name, body, triage, created_at)
         SELECT {}, org_id, thread_id, ticket_id, kind, author_id, author_name, body, triage, created_at + 1
         FROM messages WHERE id = {}",
        t.id(&forged),
        t.id(&source)
    ));
    drop(t);
    only_deep_catches(
        dir.path(),
        &format!("message {forged}"),
        "no event created it",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_verify_checks_the_latest_backup_and_catches_a_tail_cut_with_its_head() {
    let dir = app_with_traffic().await;
    let backups = tempfile::tempdir().unwrap();
    let out = backups.path().join("b1");
    let ran = careline_in(
        dir.path(),
        &["backup".as_ref(), "--out".as_ref(), out.as_os_str()],
    );
    let said = String::from_utf8_lossy(&ran.stdout).into_owned();
    assert!(
        ran.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(said.contains("as the latest backup"), "{said}");
    let (ok, text) = verify(dir.path());
    assert!(
        ok && text.contains("reaches the heads of the latest backup"),
        "{text}"
    );
    // Someone cuts the last events and rolls the recorded head back with
    // them: every chain still verifies on its own.
    let t = Tamper::of(dir.path());
    let org = t.one("SELECT id FROM organizations WHERE name = 'Demo Clinic'");
    let head: i64 = t
        .one(&format!(
            "SELECT CAST(seq AS TEXT) FROM chain_heads WHERE org_id = {}",
            t.id(&org)
        ))
        .parse()
        .unwrap();
    let keep = head - 3;
    t.unguard("events");
    t.exec(&format!(
        "DELETE FROM events WHERE org_id = {o} AND seq > {keep};
         UPDATE chain_heads SET seq = {keep},
             hash = (SELECT hash FROM events WHERE org_id = {o} AND seq = {keep})
           WHERE org_id = {o};",
        o = t.id(&org)
    ));
    drop(t);
    // Without being told where the backup is, verify finds it and fails.
    let (ok, text) = verify(dir.path());
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "ends at event {keep}, before the backup's head (event {head})"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn invariant_2_a_corrupt_rota_alarms_every_supervisor_at_the_first_page() {
    let app = App::spawn().await;
    let clock = app.clock.clone();
    let dir = app.stop().await;
    // Someone with the database damages the supervisors' rung of every rota.
    Tamper::of(dir.path()).exec("UPDATE rotas SET supervisors = '[\"not-an-id'");
    let app = App::restart(dir, clock).await;
    let member = app.login("member01").await;
    let out = app
        .send(
            &member,
            "crushing chest pain going down my left arm and I am sweating",
        )
        .await;
    assert_eq!(out["ticket"]["triage"]["disposition"], "emergency");
    let alarms = app.recorded("escalation.alarm").await;
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert!(
        alarms[0]["rota_unreadable"]
            .as_str()
            .is_some_and(|why| why.contains("rota supervisors is corrupt")),
        "{alarms:?}"
    );
    // The primary nurse is still paged as usual.
    assert_eq!(app.recorded("page.created").await.len(), 1);
    app.stop().await;
}
