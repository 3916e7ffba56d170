//! Administration through the API and the CLI.

use crate::support::*;
use serde_json::json;
use std::process::Command;

#[tokio::test]
async fn admin_creates_team_staff_member_and_proxy_others_cannot() {
    let app = App::spawn().await;
    let admin = app.login("admin").await;
    let guide = app.login("guide.north1").await;
    assert_problem(
        &app.post("/api/v1/admin/teams", &guide, json!({"name": "East"}))
            .await,
        403,
        "admin-only",
    );
    let team = app
        .post("/api/v1/admin/teams", &admin, json!({"name": "East"}))
        .await;
    assert_eq!(team.status, 201, "{}", team.text());
    let team_id = team.json()["id"].as_str().unwrap().to_owned();
    assert_problem(
        &app.post("/api/v1/admin/teams", &admin, json!({"name": "East"}))
            .await,
        409,
        "duplicate",
    );
    let staff = app
        .post("/api/v1/admin/staff", &admin, json!({"username": "guide.east@demo.careline", "name": "Eve East", "role": "care_guide", "password": "long-enough-pw", "team_ids": [team_id]}))
        .await;
    assert_eq!(staff.status, 201, "{}", staff.text());
    let weak = app
        .post("/api/v1/admin/staff", &admin, json!({"username": "weak@demo.careline", "name": "W", "role": "nurse", "password": "short"}))
        .await;
    assert_problem(&weak, 422, "invalid-input");
    let member = app
        .post("/api/v1/admin/members", &admin, json!({"name": "Erin East", "team_id": team_id, "language": "es", "date_of_birth": "1950-01-02", "conditions": ["asthma"], "username": "erin@demo.careline", "password": "erin-password-1"}))
        .await;
    assert_eq!(member.status, 201, "{}", member.text());
    let member_id = member.json()["id"].as_str().unwrap().to_owned();
    let r = app
        .post("/api/v1/admin/proxies", &admin, json!({"member_id": member_id, "username": "son@demo.careline", "name": "Son", "password": "son-password-1"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // The new member's message lands in East's queue, seen by East's guide.
    let r = app
        .call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(json!({"username": "erin@demo.careline", "password": "erin-password-1"})),
        )
        .await;
    let erin = r.json()["token"].as_str().unwrap().to_owned();
    let out = app
        .send(&erin, "Necesito una cita para el control de mi asma")
        .await;
    assert_eq!(out["ticket"]["queue"]["name"], "East team");
    let r = app
        .call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(json!({"username": "guide.east@demo.careline", "password": "long-enough-pw"})),
        )
        .await;
    let east = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/api/v1/tickets", &east).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn import_members_reports_bad_rows_by_number_and_imports_nothing_then_imports_good_file() {
    if embedded_only("the admin commands work on the embedded database") {
        return;
    }
    let dir = App::spawn().await.stop().await;
    let csv_bad = dir.path().join("bad.csv");
    std::fs::write(
        &csv_bad,
        "name,team,language,date_of_birth,conditions\nAnn Able,North,en,1960-01-01,asthma;gout\nBob Bad,Nowhere,en,1960-01-01,\nCy Date,South,en,01/02/1960,\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args([
            "admin",
            "import-members",
            "--org",
            "Demo Clinic",
            "--data-dir",
        ])
        .arg(dir.path())
        .arg(&csv_bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("row 3: team: no care team named 'Nowhere'"),
        "{err}"
    );
    assert!(err.contains("row 4: date_of_birth"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "name,team,language,external_ref\nAnn Able,North,en,MRN-1\nBea Bueno,South,es,MRN-2\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args([
            "admin",
            "import-members",
            "--org",
            "Demo Clinic",
            "--data-dir",
        ])
        .arg(dir.path())
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 2 member(s)"));
    let out = Command::new(bin())
        .args([
            "admin",
            "import-members",
            "--org",
            "Demo Clinic",
            "--data-dir",
        ])
        .arg(dir.path())
        .arg(&good)
        .output()
        .unwrap();
    // Importing the same file again is refused whole (one transaction).
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a member with that external reference exists")
            && err.contains("nothing was imported"),
        "{err}"
    );
}

#[test]
fn a_database_from_a_newer_careline_stops_the_cli_with_one_line_naming_both_versions() {
    if embedded_only(
        "the stored schema version is set on the embedded database here; the PostgreSQL store has its own test",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let migrate = || {
        Command::new(bin())
            .args(["migrate", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    assert!(migrate().status.success());
    let known = careline_store_sqlite::schema::latest();
    rusqlite::Connection::open(dir.path().join(careline_store_sqlite::DB_FILE))
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {}", known + 1))
        .unwrap();
    let out = migrate();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "the database is at schema version {} but this careline knows only up to {known}: upgrade careline",
            known + 1
        )),
        "{err}"
    );
}

#[test]
fn cli_errors_are_one_line_and_non_zero() {
    let out = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "not-an-address",
            "--data-dir",
            "/nonexistent/x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not-an-address"), "{err}");
}

#[tokio::test]
async fn input_hygiene_control_characters_bidi_overrides_formulas_and_malformed_contacts_are_refused()
 {
    let app = App::spawn().await;
    let admin = app.login("admin").await;
    let team = app
        .get("/api/v1/queues", &app.login("guide.north1").await)
        .await
        .json()["items"][0]["team_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let good = json!({"name": "Nina Nuevo", "team_id": team, "email": "nina@example.org", "phone": "+1 555 010 0199", "plan": "Gold PPO"});
    for (field, bad) in [
        ("email", "nina\u{0}@example.org"),
        ("email", "not-an-address"),
        ("phone", "call me\u{7}"),
        ("phone", "12"),
        ("plan", "Gold \u{202E}OPP"),
        ("name", "=cmd|' /C calc'!A0"),
        ("name", "Nina\u{7}"),
    ] {
        let mut body = good.clone();
        body[field] = json!(bad);
        let r = app.post("/api/v1/admin/members", &admin, body).await;
        assert_problem(&r, 422, "invalid-input");
        assert!(
            r.json()["detail"].as_str().unwrap().contains(field),
            "{field}: {}",
            r.text()
        );
    }
    let r = app
        .post(
            "/api/v1/admin/members",
            &admin,
            json!({"name": "Nina Nuevo", "team_id": team, "conditions": ["asthma", "@SUM(1)"]}),
        )
        .await;
    assert_problem(&r, 422, "invalid-input");
    let r = app.post("/api/v1/admin/members", &admin, good).await;
    assert_eq!(r.status, 201, "{}", r.text());

    // A member's message with a right-to-left override is refused, and nothing is recorded.
    let member = app.login("member01").await;
    let before = app.recorded("message.created").await.len();
    let r = app
        .post(
            "/api/v1/messages",
            &member,
            json!({"text": "please refill \u{202E}gnp.exe\u{202C} thanks"}),
        )
        .await;
    assert_problem(&r, 422, "invalid-input");
    assert!(r.text().contains("U+202E"), "{}", r.text());
    assert_eq!(app.recorded("message.created").await.len(), before);
    // Right-to-left writing itself is fine.
    let r = app
        .post(
            "/api/v1/messages",
            &member,
            json!({"text": "أحتاج إعادة صرف الدواء"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

/// `careline admin import-members` of a CSV file written with `body`.
fn import_csv(dir: &std::path::Path, name: &str, body: &str) -> std::process::Output {
    let f = dir.join(name);
    std::fs::write(&f, body).unwrap();
    Command::new(bin())
        .args([
            "admin",
            "import-members",
            "--org",
            "Demo Clinic",
            "--data-dir",
        ])
        .arg(dir)
        .arg(&f)
        .output()
        .unwrap()
}

#[tokio::test]
async fn import_refuses_formula_cells_and_rows_repeated_in_the_file_and_imports_nothing() {
    if embedded_only("the admin commands work on the embedded database") {
        return;
    }
    let dir = App::spawn().await.stop().await;
    let out = import_csv(
        dir.path(),
        "members.csv",
        "name,team,external_ref,phone\nAnn Able,North,MRN-10,+1 555 010 0101\n=cmd|' /C calc'!A0,North,MRN-11,\nBea Bueno,South,mrn-10,\nCy Call,South,MRN-12,call me\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("row 3: ") && err.contains("formula"), "{err}");
    assert!(
        err.contains("row 4: external_ref: 'mrn-10' is also on row 2"),
        "{err}"
    );
    assert!(err.contains("row 5: ") && err.contains("phone"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    // Ann (row 2) was fine, and still was not imported.
    let out = import_csv(
        dir.path(),
        "ann.csv",
        "name,team,external_ref\nAnn Able,North,MRN-10\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A row that only the database can refuse (Ann's reference is now taken)
    // takes the good row before it down with it: one transaction.
    let out = import_csv(
        dir.path(),
        "clash.csv",
        "name,team,external_ref\nEve Early,North,MRN-31\nFay Late,South,MRN-10\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    // Eve was not written: importing her alone now succeeds.
    let out = import_csv(
        dir.path(),
        "eve.csv",
        "name,team,external_ref\nEve Early,North,MRN-31\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 1 member(s)"));
}
