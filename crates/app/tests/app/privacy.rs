//! Minimum-necessary access: default deny, grants that explain themselves,
//! every PHI read recorded and visible to the member, sessions that end.

use crate::support::*;
use serde_json::json;

const TEXT: &str = "Refill please: my sertraline and lisinopril, same pharmacy as last time";

async fn id_of(app: &App, token: &str, field: &str) -> String {
    app.me(token).await[field].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn invariant_6_every_phi_read_by_staff_is_an_event_and_the_member_sees_who_read() {
    let app = App::spawn().await;
    let member = app.login("member01").await;
    let out = app.send(&member, TEXT).await;
    let (thread, ticket) = (
        out["message"]["thread_id"].as_str().unwrap(),
        out["ticket"]["id"].as_str().unwrap(),
    );
    let member_id = id_of(&app, &member, "member_id").await;
    // The member reading their own thread is not an access by someone else.
    app.get(&format!("/api/v1/threads/{thread}"), &member).await;
    assert_eq!(
        app.get("/api/v1/me/access-log", &member).await.json()["items"],
        json!([])
    );

    let guide = app.login("guide.north1").await;
    assert_eq!(
        app.get(&format!("/api/v1/threads/{thread}"), &guide)
            .await
            .status,
        200
    );
    assert_eq!(
        app.get(&format!("/api/v1/tickets/{ticket}"), &guide)
            .await
            .status,
        200
    );
    let nurse = app.login("nurse.north").await;
    assert_eq!(
        app.get(&format!("/api/v1/members/{member_id}"), &nurse)
            .await
            .status,
        200
    );
    let log = app.get("/api/v1/me/access-log", &member).await.json();
    let items = log["items"].as_array().unwrap();
    let seen: Vec<(String, String, String, String)> = items
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["role"].as_str().unwrap().into(),
                e["what"].as_str().unwrap().into(),
                e["why"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        seen.contains(&(
            "Grace North".into(),
            "care_guide".into(),
            "thread".into(),
            "care_team".into()
        )),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(
            "Grace North".into(),
            "care_guide".into(),
            "ticket".into(),
            "care_team".into()
        )),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(
            "Nadia Nurse (North)".into(),
            "nurse".into(),
            "member".into(),
            "care_team".into()
        )),
        "{seen:?}"
    );
    assert!(items.iter().all(|e| e["at"].is_string()));
    // Privacy officers may look at anyone's history; a care guide may not.
    let privacy = app.login("privacy").await;
    assert_eq!(
        app.get(&format!("/api/v1/members/{member_id}/access-log"), &privacy)
            .await
            .json()["items"]
            .as_array()
            .unwrap()
            .len(),
        items.len()
    );
    assert_problem(
        &app.get(&format!("/api/v1/members/{member_id}/access-log"), &guide)
            .await,
        403,
        "privacy-officers",
    );
    // Listing tickets shows triage evidence: that is a read too.
    app.get("/api/v1/tickets", &guide).await;
    let log = app.get("/api/v1/me/access-log", &member).await.json();
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["what"] == "ticket_list")
    );
}

#[tokio::test]
async fn invariant_8_default_deny_staff_reach_a_member_only_through_team_tag_page_or_break_glass() {
    let app = App::spawn().await;
    let member = app.login("member01").await;
    let out = app.send(&member, TEXT).await;
    let thread = out["message"]["thread_id"].as_str().unwrap().to_owned();
    let member_id = id_of(&app, &member, "member_id").await;
    let outsider = app.login("nurse.south").await;
    let outsider_id = id_of(&app, &outsider, "id").await;
    let path = format!("/api/v1/threads/{thread}");
    let denied = app.get(&path, &outsider).await;
    assert_problem(&denied, 403, "not-on-care-team");
    assert!(
        !denied.text().contains("sertraline"),
        "no leak in the denial"
    );
    let admin = app.login("admin").await;
    assert_problem(&app.get(&path, &admin).await, 403, "no-phi-for-role");

    // Tagged in by a colleague with access: in, with a reason; revoked: out again.
    let guide = app.login("guide.north1").await;
    let r = app
        .post(
            &format!("{path}/collaborators"),
            &guide,
            json!({"user_id": outsider_id, "reason": "second opinion on the refill interaction"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(app.get(&path, &outsider).await.status, 200);
    let log = app.get("/api/v1/me/access-log", &member).await.json();
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["why"] == "tagged" && e["name"] == "Nicolás Nurse (South)")
    );
    let r = app
        .call(
            "DELETE",
            &format!("{path}/collaborators/{outsider_id}"),
            Some(&guide),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_problem(&app.get(&path, &outsider).await, 403, "not-on-care-team");
    // Someone without access cannot tag themselves in.
    let r = app
        .post(
            &format!("{path}/collaborators"),
            &outsider,
            json!({"user_id": outsider_id, "reason": "curious"}),
        )
        .await;
    assert_problem(&r, 403, "not-on-care-team");

    // Break-glass: clinicians only, with a reason, alerting privacy officers, for one hour.
    let guide_south = app.login("guide.south1").await;
    assert_problem(
        &app.post(
            &format!("/api/v1/members/{member_id}/break-glass"),
            &guide_south,
            json!({"reason": "member called the South line, urgent"}),
        )
        .await,
        403,
        "clinician-only",
    );
    assert_problem(
        &app.post(
            &format!("/api/v1/members/{member_id}/break-glass"),
            &outsider,
            json!({"reason": "x"}),
        )
        .await,
        422,
        "invalid-input",
    );
    let r = app
        .post(
            &format!("/api/v1/members/{member_id}/break-glass"),
            &outsider,
            json!({"reason": "member collapsed at the South clinic, need allergies now"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(app.get(&path, &outsider).await.status, 200);
    let privacy = app.login("privacy").await;
    let q = app
        .get("/api/v1/privacy/break-glass?status=open", &privacy)
        .await
        .json();
    assert_eq!(q["items"].as_array().unwrap().len(), 1);
    let bg = q["items"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/privacy/break-glass/{bg}/review"),
            &privacy,
            json!({"note": "appropriate: emergency at South clinic"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // An hour later the grant is gone (the session stayed alive by use).
    for _ in 0..4 {
        app.clock.advance(jiff::SignedDuration::from_mins(16));
        app.get("/api/v1/me", &outsider).await;
    }
    assert_problem(&app.get(&path, &outsider).await, 403, "not-on-care-team");
}

#[tokio::test]
async fn invariant_8_a_paged_clinician_reaches_the_member_for_the_life_of_the_escalation() {
    let app = App::spawn().await;
    let member = app.login("member02").await;
    let out = app
        .send(
            &member,
            "crushing chest pain and sweating, it started 10 minutes ago",
        )
        .await;
    let ticket = out["ticket"]["id"].as_str().unwrap().to_owned();
    let thread = out["message"]["thread_id"].as_str().unwrap().to_owned();
    let backup = app.login("nurse.south").await;
    assert_problem(
        &app.get(&format!("/api/v1/threads/{thread}"), &backup).await,
        403,
        "not-on-care-team",
    );
    // The North nurse does not answer in two minutes: the South nurse is paged as backup.
    app.clock.advance(jiff::SignedDuration::from_secs(125));
    let mut reached = false;
    for _ in 0..40 {
        if app
            .get(&format!("/api/v1/threads/{thread}"), &backup)
            .await
            .status
            == 200
        {
            reached = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(reached, "the paged backup can open the thread");
    let log = app.get("/api/v1/me/access-log", &member).await.json();
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["why"] == "paged")
    );
    // Once a clinician has cleared and solved it, the page no longer grants access.
    let nurse = app.login("nurse.north").await;
    app.post(
        &format!("/api/v1/tickets/{ticket}/clearance"),
        &nurse,
        json!({"disposition": "emergency", "note": "EMS dispatched"}),
    )
    .await;
    let r = app
        .post(
            &format!("/api/v1/tickets/{ticket}/transitions"),
            &nurse,
            json!({"to": "solved"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_problem(
        &app.get(&format!("/api/v1/threads/{thread}"), &backup).await,
        403,
        "not-on-care-team",
    );
}

#[tokio::test]
async fn minimum_necessary_member_view_is_shaped_by_role_and_sensitive_categories_stay_with_the_care_team()
 {
    let app = App::spawn().await;
    let m15 = app.login("member15").await;
    let id = id_of(&app, &m15, "member_id").await;
    let path = format!("/api/v1/members/{id}");
    let guide = app
        .get(&path, &app.login("guide.south1").await)
        .await
        .json();
    assert!(guide["phone"].is_string());
    assert!(
        guide["health_markers"].is_null() && guide["sensitive"].is_null(),
        "care guides see no clinical data: {guide}"
    );
    let nurse = app.get(&path, &app.login("nurse.south").await).await.json();
    assert_eq!(nurse["health_markers"]["conditions"], json!(["migraine"]));
    assert!(
        nurse["sensitive"]
            .to_string()
            .contains("major depressive disorder"),
        "care-team clinician sees sensitive items: {nurse}"
    );
    // A clinician from another team who breaks the glass sees health markers but not sensitive items.
    let other = app.login("nurse.north").await;
    app.post(
        &format!("{path}/break-glass"),
        &other,
        json!({"reason": "member walked in to North clinic unwell"}),
    )
    .await;
    let bg = app.get(&path, &other).await.json();
    assert_eq!(bg["access"], "break_glass");
    assert!(bg["health_markers"].is_object());
    assert_eq!(bg["sensitive"], json!([]), "no consent on file: {bg}");
    // The member sees everything of their own.
    assert!(
        app.get(&path, &m15).await.json()["sensitive"]
            .to_string()
            .contains("sertraline")
    );
    // The member consents to share behavioural health: the break-glass
    // clinician now sees it; withdrawn, it is hidden again.
    let consents = format!("{path}/consents");
    let r = app
        .post(
            &consents,
            &m15,
            json!({"category": "behavioral_health", "granted": true}),
        )
        .await;
    assert_eq!(
        r.json()["consented"],
        json!(["behavioral_health"]),
        "{}",
        r.text()
    );
    assert!(
        app.get(&path, &other).await.json()["sensitive"]
            .to_string()
            .contains("major depressive disorder")
    );
    app.post(
        &consents,
        &m15,
        json!({"category": "behavioral_health", "granted": false}),
    )
    .await;
    assert_eq!(app.get(&path, &other).await.json()["sensitive"], json!([]));
    // A privacy officer may record it on the member's behalf, with a reason; a clinician may not.
    let privacy = app.login("privacy").await;
    assert_problem(
        &app.post(
            &consents,
            &privacy,
            json!({"category": "hiv", "granted": true}),
        )
        .await,
        422,
        "invalid-input",
    );
    let r = app
        .post(&consents, &privacy, json!({"category": "hiv", "granted": true, "reason": "signed consent form received 2026-11-20"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_problem(
        &app.post(
            &consents,
            &other,
            json!({"category": "hiv", "granted": false}),
        )
        .await,
        403,
        "consent-by-member",
    );
    assert_eq!(
        app.get(&consents, &m15).await.json()["consented"],
        json!(["hiv"])
    );
    assert_eq!(app.recorded("consent.recorded").await.len(), 2);
    let withdrawn = app.recorded("consent.withdrawn").await;
    assert_eq!(withdrawn.len(), 1);
    assert_eq!(withdrawn[0]["category"], "behavioral_health");
}

#[tokio::test]
async fn sessions_end_on_logout_on_admin_revocation_and_when_idle() {
    let app = App::spawn().await;
    let t = app.login("guide.north1").await;
    assert_eq!(
        app.call("DELETE", "/api/v1/sessions/current", Some(&t), None)
            .await
            .status,
        204
    );
    assert_problem(&app.get("/api/v1/me", &t).await, 401, "unauthenticated");

    let t1 = app.login("guide.north2").await;
    let t2 = app.login("guide.north2").await;
    let uid = id_of(&app, &t1, "id").await;
    let admin = app.login("admin").await;
    let r = app
        .post(
            &format!("/api/v1/admin/users/{uid}/revoke-sessions"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.json()["sessions"], 2);
    assert_problem(&app.get("/api/v1/me", &t1).await, 401, "unauthenticated");
    assert_problem(&app.get("/api/v1/me", &t2).await, 401, "unauthenticated");

    let t = app.login("nurse.north").await;
    app.clock.advance(jiff::SignedDuration::from_mins(29));
    assert_eq!(app.get("/api/v1/me", &t).await.status, 200, "still active");
    app.clock.advance(jiff::SignedDuration::from_mins(31));
    assert_problem(&app.get("/api/v1/me", &t).await, 401, "unauthenticated");
}

#[tokio::test]
async fn failed_logins_are_recorded_and_one_address_hammering_many_usernames_is_throttled() {
    let app = App::spawn().await;
    let bad = json!({"username": "guide.south1@demo.careline", "password": "not-the-password"});
    for _ in 0..3 {
        assert_problem(
            &app.call("POST", "/api/v1/sessions", None, Some(bad.clone()))
                .await,
            401,
            "unauthenticated",
        );
    }
    // One address hammering many usernames is throttled.
    let mut last = 0;
    for i in 0..40 {
        let r = app.call("POST", "/api/v1/sessions", None, Some(json!({"username": format!("nobody{i}@demo.careline"), "password": "whatever-password"}))).await;
        last = r.status;
    }
    assert_eq!(last, 429);
    // A throttled attempt at a real account is recorded against that account,
    // before any password is checked; failures carry the address too.
    let south = json!({"username": "guide.south1@demo.careline", "password": PASSWORD});
    let r = app
        .call("POST", "/api/v1/sessions", None, Some(south))
        .await;
    assert_problem(&r, 429, "too-many-attempts");
    assert!(r.header("retry-after").is_some());
    assert!(
        app.wait_until(10, || async {
            app.recorded("session.login_throttled").await.len() == 1
                && app.recorded("session.login_failed").await.len() == 3
        })
        .await
    );
    let throttled = app.recorded("session.login_throttled").await;
    assert_eq!(throttled[0]["address"], "127.0.0.1");
    let failed = app.recorded("session.login_failed").await;
    assert!(failed.iter().all(|f| f["address"] == "127.0.0.1"));
}

#[tokio::test]
async fn proxies_act_within_the_scope_the_member_granted_and_either_side_can_end_it() {
    let app = App::spawn().await;
    let m01 = app.login("member01").await;
    let m01_id = id_of(&app, &m01, "member_id").await;
    let carer = app.login("proxy07").await;
    let carer_id = id_of(&app, &carer, "id").await;
    let grant = |scope: &'static str| json!({"username": "proxy07@demo.careline", "scope": scope});
    let proxies = format!("/api/v1/members/{m01_id}/proxies");
    let profile = format!("/api/v1/members/{m01_id}");

    // Nobody acts for member01 yet: the caregiver of member07 sees nothing of them.
    assert_eq!(app.get(&profile, &carer).await.status, 404);
    // member01 lets the caregiver handle messages only.
    let r = app.post(&proxies, &m01, grant("messages")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["scope"], "messages");
    let me = app.me(&carer).await;
    assert!(me["proxy_scopes"].to_string().contains(&m01_id), "{me}");
    let r = app
        .post(
            "/api/v1/messages",
            &carer,
            json!({"text": "Mum needs her repeat prescription", "member_id": m01_id}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let ticket = r.json()["ticket"]["id"].as_str().unwrap().to_owned();
    assert!(
        app.get("/api/v1/tickets", &carer)
            .await
            .text()
            .contains(&ticket)
    );
    assert_problem(&app.get(&profile, &carer).await, 403, "outside-proxy-scope");
    assert_problem(
        &app.get(&format!("{profile}/access-log"), &carer).await,
        403,
        "outside-proxy-scope",
    );
    // Changing the scope to the record swaps what the caregiver may do.
    assert_eq!(app.post(&proxies, &m01, grant("record")).await.status, 201);
    assert_eq!(app.get(&profile, &carer).await.json()["access"], "proxy");
    assert_problem(
        &app.post(
            "/api/v1/messages",
            &carer,
            json!({"text": "one more thing", "member_id": m01_id}),
        )
        .await,
        403,
        "outside-proxy-scope",
    );
    assert!(
        !app.get("/api/v1/tickets", &carer)
            .await
            .text()
            .contains(&ticket)
    );
    // Both sides see the relationship.
    let mine = app.get("/api/v1/me/proxies", &m01).await.json();
    assert_eq!(mine["items"][0]["proxy_name"], app.me(&carer).await["name"]);
    assert_eq!(mine["items"][0]["scope"], "record");
    assert_eq!(
        app.get("/api/v1/me/proxies", &carer).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Staff cannot hand out access to a member's record; an unknown caregiver is a clear error.
    assert_problem(
        &app.post(&proxies, &app.login("guide.north1").await, grant("full"))
            .await,
        403,
        "proxy-management",
    );
    assert_problem(
        &app.post(
            &proxies,
            &m01,
            json!({"username": "guide.north1@demo.careline"}),
        )
        .await,
        422,
        "invalid-input",
    );
    assert_problem(
        &app.post(&proxies, &m01, grant("everything")).await,
        422,
        "invalid-input",
    );
    // The member revokes; the access ends at once.
    let r = app
        .call("DELETE", &format!("{proxies}/{carer_id}"), Some(&m01), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(app.get(&profile, &carer).await.status, 404);
    // The caregiver steps back from member07 on their own.
    let m07 = app.me(&carer).await["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .call(
            "DELETE",
            &format!("/api/v1/members/{m07}/proxies/{carer_id}"),
            Some(&carer),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(
        app.me(&carer).await["acting_for"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Every change is in the record.
    let granted = app.recorded("proxy.granted").await;
    assert!(
        granted
            .iter()
            .any(|g| g["scope"] == "messages" && g["member_id"] == json!(m01_id))
    );
    assert_eq!(app.recorded("proxy.revoked").await.len(), 2);
}

pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[tokio::test]
async fn encrypted_at_rest_no_file_under_the_data_dir_contains_a_message_text() {
    if embedded_only(
        "greps the embedded database files (careline-store-pg tests encryption on PostgreSQL)",
    ) {
        return;
    }
    let app = App::spawn().await;
    let secret =
        "zebra-quartz note 4471: my HIV meds are making me dizzy and I have chest pressure";
    let member = app.login("member01").await;
    let out = app.send(&member, secret).await;
    let ticket = out["ticket"]["id"].as_str().unwrap();
    let nurse = app.login("nurse.north").await;
    app.post(
        &format!("/api/v1/tickets/{ticket}/replies"),
        &nurse,
        json!({"text": "zebra-quartz internal: call back re 4471", "internal": true}),
    )
    .await;
    // Readable through the API …
    let thread = app
        .get(
            &format!(
                "/api/v1/threads/{}",
                out["message"]["thread_id"].as_str().unwrap()
            ),
            &member,
        )
        .await
        .text();
    assert!(thread.contains("zebra-quartz note 4471"));
    // … and nowhere on disk: database, WAL, shared memory, key file.
    let running = app.running.as_ref().unwrap();
    let _ = running;
    let dir = app.stop().await;
    let files = files_under(dir.path());
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().ends_with("careline.db"))
    );
    for f in &files {
        // SQLite may remove its -wal/-shm files as the last connection closes.
        let Ok(bytes) = std::fs::read(f) else {
            continue;
        };
        for needle in ["zebra-quartz", "note 4471", "HIV meds"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} found in {}",
                f.display()
            );
        }
    }
}

/// `careline` with the app's database (PostgreSQL when the suite runs there).
fn careline_on(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(bin());
    cmd.args(args).arg("--data-dir").arg(dir);
    cmd.env_remove("CARELINE_MASTER_KEY");
    match database_of(dir) {
        Some(url) => cmd.env("CARELINE_DATABASE_URL", url),
        None => cmd.env_remove("CARELINE_DATABASE_URL"),
    };
    cmd.output().unwrap()
}

/// member03's thread opens and still reads the message sent before the rotation.
async fn reads_renewal(app: &App, thread: &str) {
    let member = app.login("member03").await;
    let t = app
        .get(&format!("/api/v1/threads/{thread}"), &member)
        .await
        .json();
    assert_eq!(
        t["messages"][0]["text"],
        "please renew my albuterol inhaler prescription"
    );
}

#[tokio::test]
async fn keys_rotate_rewraps_data_keys_and_messages_still_read() {
    let app = App::spawn().await;
    let member = app.login("member03").await;
    let out = app
        .send(&member, "please renew my albuterol inhaler prescription")
        .await;
    let thread = out["message"]["thread_id"].as_str().unwrap().to_owned();
    let clock = app.clock.clone();
    let dir = app.stop().await;
    let key = dir.path().join("master.key");
    let before = std::fs::read_to_string(&key).unwrap();
    let out = careline_on(dir.path(), &["keys", "rotate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = std::fs::read_to_string(&key).unwrap();
    assert_ne!(before, after, "a new master key is installed");
    let app = App::restart(dir, clock.clone()).await;
    reads_renewal(&app, &thread).await;
    // The old key alone no longer opens the store, and says which key it needs.
    let dir = app.stop().await;
    let retired = files_under(dir.path())
        .into_iter()
        .find(|f| f.to_string_lossy().contains("retired"))
        .unwrap();
    std::fs::copy(&retired, &key).unwrap();
    let out = careline_on(dir.path(), &["audit", "verify"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        err.contains("master key") && err.trim().lines().count() == 1,
        "{err}"
    );
    // A rotation that committed but did not install its key (the new key
    // still beside the old one): the next start finishes it.
    std::fs::write(dir.path().join("master.key.next"), &after).unwrap();
    let app = App::restart(dir, clock).await;
    reads_renewal(&app, &thread).await;
    let dir = app.stop().await;
    assert_eq!(std::fs::read_to_string(&key).unwrap(), after);
    assert!(!dir.path().join("master.key.next").exists());
}

#[tokio::test]
async fn cookie_sessions_for_web_pages_require_the_csrf_token_to_change_anything() {
    let app = App::spawn().await;
    let r = app
        .call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(
                json!({"username": "member01@demo.careline", "password": PASSWORD, "cookie": true}),
            ),
        )
        .await;
    assert_eq!(r.status, 201);
    let set = r.header("set-cookie").unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let csrf = r.json()["csrf_token"].as_str().unwrap().to_owned();
    let mut c = careline::httpc::Conn::connect(app.addr).await.unwrap();
    let me = c
        .send_with_headers(
            "GET",
            "/api/v1/me",
            &[("Cookie", cookie.clone())],
            "application/json",
            b"",
        )
        .await
        .unwrap();
    assert_eq!(me.status, 200, "{}", me.text());
    let body = json!({"text": "hello from the portal"}).to_string();
    let forged = c
        .send_with_headers(
            "POST",
            "/api/v1/messages",
            &[("Cookie", cookie.clone())],
            "application/json",
            body.as_bytes(),
        )
        .await
        .unwrap();
    assert_problem(&forged, 403, "csrf");
    let ok = c
        .send_with_headers(
            "POST",
            "/api/v1/messages",
            &[("Cookie", cookie.clone()), ("X-CSRF-Token", csrf.clone())],
            "application/json",
            body.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 201, "{}", ok.text());
    let out = c
        .send_with_headers(
            "DELETE",
            "/api/v1/sessions/current",
            &[("Cookie", cookie.clone()), ("X-CSRF-Token", csrf)],
            "application/json",
            b"",
        )
        .await
        .unwrap();
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let after = c
        .send_with_headers(
            "GET",
            "/api/v1/me",
            &[("Cookie", cookie)],
            "application/json",
            b"",
        )
        .await
        .unwrap();
    assert_eq!(after.status, 401);
}

#[tokio::test]
async fn organization_policy_requires_totp_enrolment_then_every_login_needs_the_second_factor() {
    let app = App::spawn().await;
    let admin = app.login("admin").await;
    let mut settings = app.get("/api/v1/admin/settings", &admin).await.json();
    settings["mfa_required_roles"] = json!(["nurse"]);
    assert_eq!(
        app.call(
            "PUT",
            "/api/v1/admin/settings",
            Some(&admin),
            Some(settings)
        )
        .await
        .status,
        200
    );

    // A nurse without a second factor gets a session that can only enrol.
    let r = app
        .call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(json!({"username": "nurse.north@demo.careline", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["mfa_enrolment_required"], true);
    let t = r.json()["token"].as_str().unwrap().to_owned();
    assert_problem(
        &app.get("/api/v1/queues", &t).await,
        403,
        "mfa-enrolment-required",
    );
    let e = app.post("/api/v1/me/mfa/totp", &t, json!({})).await.json();
    let secret = careline_web::mfa::unbase32(e["secret"].as_str().unwrap()).unwrap();
    assert!(
        e["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let step = app.clock.now_ts().as_second() / 30;
    let code = |s: i64| format!("{:06}", careline_web::mfa::code_at(&secret, s));
    assert_problem(
        &app.post("/api/v1/me/mfa/totp/verify", &t, json!({"code": "000000"}))
            .await,
        422,
        "invalid-input",
    );
    let done = app
        .post(
            "/api/v1/me/mfa/totp/verify",
            &t,
            json!({"code": code(step)}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text());
    let recovery: Vec<String> = done.json()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    assert_eq!(
        app.get("/api/v1/queues", &t).await.status,
        200,
        "enrolled: the session is whole"
    );

    // From now on the password alone is not enough.
    let login = |extra: serde_json::Value| {
        let mut b = json!({"username": "nurse.north@demo.careline", "password": PASSWORD});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    assert_problem(
        &app.call("POST", "/api/v1/sessions", None, Some(login(json!({}))))
            .await,
        403,
        "mfa-required",
    );
    assert_problem(
        &app.call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(login(json!({"totp": "123456"}))),
        )
        .await,
        401,
        "unauthenticated",
    );
    app.clock.advance(jiff::SignedDuration::from_secs(30));
    let ok = app
        .call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(login(json!({"totp": code(step + 1)}))),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    assert_eq!(ok.json()["mfa_enrolment_required"], false);
    assert_problem(
        &app.call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(login(json!({"totp": code(step + 1)}))),
        )
        .await,
        401,
        "unauthenticated",
    );
    let rc = app
        .call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(login(json!({"recovery_code": recovery[0]}))),
        )
        .await;
    assert_eq!(rc.status, 201, "{}", rc.text());
    assert_problem(
        &app.call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(login(json!({"recovery_code": recovery[0]}))),
        )
        .await,
        401,
        "unauthenticated",
    );
}

/// Everything the database holds, as someone with a copy of the data
/// directory (the database file and its WAL), or a dump of the PostgreSQL
/// tables, would read it.
fn raw_database(app: &App) -> Vec<u8> {
    match database_of(app.dir.path()) {
        Some(url) => {
            let out = std::process::Command::new(pg_tool("pg_dump"))
                .args(["--data-only", "--dbname", &url])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
        None => {
            let db = app.dir.path().join("careline.db");
            let mut all = std::fs::read(&db).unwrap();
            if let Ok(wal) = std::fs::read(app.dir.path().join("careline.db-wal")) {
                all.extend(wal);
            }
            all
        }
    }
}

#[tokio::test]
async fn demo_members_health_markers_and_identifiers_are_not_readable_in_the_database() {
    let app = App::spawn().await;
    let store = &app.running.as_ref().unwrap().state.store;
    let org = store.org_by_name("Demo Clinic").await.unwrap().unwrap();
    let members = store.members(org.id).await.unwrap();
    assert_eq!(members.len(), 20);
    let mut secrets: Vec<String> = Vec::new();
    for m in &members {
        let k = &m.markers;
        secrets.extend(
            k.conditions
                .iter()
                .chain(&k.medications)
                .chain(&k.allergies)
                .cloned(),
        );
        secrets.extend(k.sensitive.iter().map(|s| s.item.clone()));
        secrets.extend(m.date_of_birth.map(|d| d.to_string()));
        secrets.extend(m.phone.clone());
        secrets.extend(m.email.clone());
    }
    assert!(secrets.iter().any(|s| s == "major depressive disorder"));
    assert!(secrets.len() > 80, "{secrets:?}");
    let raw = raw_database(&app);
    let readable: Vec<&String> = secrets
        .iter()
        .filter(|s| raw.windows(s.len()).any(|w| w == s.as_bytes()))
        .collect();
    assert!(
        readable.is_empty(),
        "readable in the database: {readable:?}"
    );
}

#[tokio::test]
async fn console_pages_name_only_the_members_on_the_rows_they_show() {
    let app = App::spawn().await;
    let name_of = |v: serde_json::Value| v["name"].as_str().unwrap().to_owned();
    let m01 = app.login("member01").await;
    let m01_id = app.me(&m01).await["member_id"].as_str().unwrap().to_owned();
    let m01_name = name_of(app.me(&m01).await);
    let m20_name = name_of(app.me(&app.login("member20").await).await);
    let m12_name = name_of(app.me(&app.login("member12").await).await);
    app.send(
        &app.login("member12").await,
        "Can I move my appointment to Friday?",
    )
    .await;

    // The privacy officer's page names only the members under review.
    let privacy = app.login("privacy").await;
    let page = app.get("/console/privacy", &privacy).await;
    assert_eq!(page.status, 200);
    for name in [&m01_name, &m20_name] {
        assert!(!page.text().contains(name.as_str()), "{name} listed");
    }
    let nurse = app.login("nurse.south").await;
    let r = app
        .post(
            &format!("/api/v1/members/{m01_id}/break-glass"),
            &nurse,
            json!({"reason": "member called the South line with chest pain"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let page = app.get("/console/privacy", &privacy).await.text();
    assert!(page.contains(&m01_name), "the member under review is named");
    assert!(page.contains(&format!("/console/privacy?member={m01_id}")));
    assert!(!page.contains(&m20_name));

    // A South guide's queue names the South member who wrote, and no one else.
    let guide = app.login("guide.south1").await;
    let queue = app.get("/console", &guide).await;
    assert_eq!(queue.status, 200);
    let html = queue.text();
    assert!(html.contains(&m12_name), "the member on the row is named");
    for name in [&m01_name, &m20_name] {
        assert!(
            !html.contains(name.as_str()),
            "{name} appears on a queue page"
        );
    }
}
