//! Clinical safety: pages, deadlines and the re-escalation chain, emergency
//! guidance, the red-flag interlock, clearance, webhooks and the safety audit.

use crate::support::*;
use serde_json::{Value, json};
use std::time::Duration;

const EMERGENCY: &str = "I have crushing chest pain going down my left arm and I'm sweating a lot";
const URGENT_BP: &str = "My blood pressure is 188/108 this morning, I feel fine otherwise";

async fn user_id(app: &App, token: &str) -> String {
    app.me(token).await["id"].as_str().unwrap().to_owned()
}

/// Poll a ticket's pages until `pred` holds (the escalation clock ticks every 200 ms).
async fn pages_until(
    app: &App,
    token: &str,
    ticket: &str,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..50 {
        let r = app
            .get(&format!("/api/v1/tickets/{ticket}/pages"), token)
            .await
            .json();
        let items = r["items"].as_array().cloned().unwrap_or_default();
        if pred(&items) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("pages never reached the expected state");
}

#[tokio::test]
async fn invariant_2_red_flag_pages_the_on_call_clinician_within_one_second_of_commit() {
    let app = App::spawn().await;
    let nurse = app.login("nurse.north").await;
    let nurse_id = user_id(&app, &nurse).await;
    let mut stream = app.events(&nurse).await;
    let member = app.login("member01").await;
    let out = app.send(&member, EMERGENCY).await;
    assert_eq!(out["ticket"]["queue"]["kind"], "clinical");
    let page = &out["page"];
    assert_eq!(page["level"], "primary");
    assert_eq!(page["targets"], json!([nurse_id]));
    assert_eq!(page["status"], "open");
    // The page is written in the very transaction that stored the message:
    // zero seconds between commit and page, whatever the load.
    assert_eq!(page["created_at"], out["message"]["created_at"]);
    assert_eq!(page["flagged_at"], out["message"]["created_at"]);
    // Pushed to the nurse's live stream straight after commit (the bound here
    // only keeps a stalled test from hanging; latency is measured in bench/).
    assert!(
        stream
            .wait_for("event: page.created", Duration::from_secs(10))
            .await,
        "page reached the nurse's stream: {}",
        stream.seen
    );
    // The nurse's page list has it; a two-minute deadline for an emergency.
    let mine = app.get("/api/v1/pages", &nurse).await.json();
    assert_eq!(mine["items"][0]["id"], page["id"]);
    let created: jiff::Timestamp = page["created_at"].as_str().unwrap().parse().unwrap();
    let deadline: jiff::Timestamp = page["deadline"].as_str().unwrap().parse().unwrap();
    assert_eq!((deadline.as_second() - created.as_second()), 120);
    // Someone else cannot acknowledge it; the nurse can, once.
    let guide = app.login("guide.north1").await;
    let id = page["id"].as_str().unwrap();
    assert_problem(
        &app.post(&format!("/api/v1/pages/{id}/ack"), &guide, json!({}))
            .await,
        403,
        "not-paged",
    );
    let r = app
        .post(&format!("/api/v1/pages/{id}/ack"), &nurse, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "acknowledged");
    assert_problem(
        &app.post(&format!("/api/v1/pages/{id}/ack"), &nurse, json!({}))
            .await,
        409,
        "page-acknowledged",
    );
}

#[tokio::test]
async fn invariant_2_unacknowledged_page_climbs_the_chain_and_alarms_the_supervisors() {
    let app = App::spawn().await;
    let supervisor = app.login("supervisor").await;
    let mut sup_stream = app.events(&supervisor).await;
    let member = app.login("member02").await;
    let out = app.send(&member, URGENT_BP).await;
    assert_eq!(
        out["ticket"]["priority"], "urgent",
        "{}",
        out["ticket"]["triage"]
    );
    let ticket = out["ticket"]["id"].as_str().unwrap().to_owned();
    let nurse = app.login("nurse.north").await;
    let expected = ["primary", "backup", "physician", "supervisors", "org_alarm"];
    for (i, level) in expected.iter().enumerate().skip(1) {
        // Just before the deadline nothing moves; just after, the next rung is paged.
        app.clock
            .advance(jiff::SignedDuration::from_secs(14 * 60 + 50));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pages = app
            .get(&format!("/api/v1/tickets/{ticket}/pages"), &nurse)
            .await
            .json();
        assert_eq!(
            pages["items"].as_array().unwrap().len(),
            i,
            "no escalation before the 15-minute deadline"
        );
        app.clock.advance(jiff::SignedDuration::from_secs(11));
        let pages = pages_until(&app, &nurse, &ticket, |p| p.len() == i + 1).await;
        // The supervisor's console is in use meanwhile: the stream of a
        // session left idle past its timeout ends.
        assert_eq!(app.get("/api/v1/pages", &supervisor).await.status, 200);
        assert_eq!(pages[0]["level"], *level);
        assert_eq!(pages[1]["status"], "escalated");
    }
    assert!(
        sup_stream
            .wait_for("event: escalation.alarm", Duration::from_secs(2))
            .await,
        "{}",
        sup_stream.seen
    );
    // The alarm never escalates further and any clinician or supervisor can take it.
    app.clock.advance(jiff::SignedDuration::from_hours(1));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // An hour idle ends sessions: the next shift logs in.
    let nurse = app.login("nurse.north").await;
    let supervisor = app.login("supervisor").await;
    let pages = app
        .get(&format!("/api/v1/tickets/{ticket}/pages"), &nurse)
        .await
        .json();
    assert_eq!(
        pages["items"].as_array().unwrap().len(),
        5,
        "each rung fired exactly once"
    );
    let alarm = pages["items"][0]["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/pages/{alarm}/ack"),
            &supervisor,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let metrics = app.call("GET", "/metrics", None, None).await.text();
    assert!(metrics.contains("careline_alarms_total 1"), "{metrics}");
}

#[tokio::test]
async fn invariant_2_a_restart_loses_no_clock_and_two_nodes_fire_once() {
    let app = App::spawn().await;
    let member = app.login("member03").await;
    let out = app.send(&member, EMERGENCY).await;
    let ticket = out["ticket"]["id"].as_str().unwrap().to_owned();
    let nurse = app.login("nurse.north").await;
    let clock = app.clock.clone();
    let dir = app.stop().await;
    // While careline is down, the deadline passes.
    clock.advance(jiff::SignedDuration::from_mins(3));
    // Two nodes come up on the same database with the same clock.
    let a = App::restart(dir, clock.clone()).await;
    let b = App::restart_shared(&a).await;
    let pages = pages_until(&a, &nurse, &ticket, |p| p.len() == 2).await;
    assert_eq!(pages[0]["level"], "backup");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pages = a
        .get(&format!("/api/v1/tickets/{ticket}/pages"), &nurse)
        .await
        .json();
    assert_eq!(
        pages["items"].as_array().unwrap().len(),
        2,
        "the missed deadline fired exactly once across two nodes"
    );
    let escalated = b
        .get(&format!("/api/v1/tickets/{ticket}/pages"), &nurse)
        .await
        .json();
    assert_eq!(escalated["items"].as_array().unwrap().len(), 2);
    b.stop().await;
}

#[tokio::test]
async fn invariant_3_emergency_gets_guidance_in_the_members_language_at_once() {
    let app = App::spawn().await;
    let es = app.login("member05").await;
    let out = app
        .send(&es, "tengo un dolor de pecho muy fuerte y me falta el aire")
        .await;
    assert_eq!(
        out["ticket"]["priority"], "emergency",
        "{}",
        out["ticket"]["triage"]
    );
    let reply = out["auto_reply"]["text"].as_str().unwrap();
    assert!(reply.contains("Llame al 911"), "{reply}");
    assert_eq!(out["auto_reply"]["kind"], "system");
    let thread = app
        .get(
            &format!(
                "/api/v1/threads/{}",
                out["message"]["thread_id"].as_str().unwrap()
            ),
            &es,
        )
        .await
        .json();
    let msgs = thread["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1]["kind"], "system");
    assert_eq!(msgs[1]["text"].as_str().unwrap(), reply);

    let en = app.login("member01").await;
    let out = app.send(&en, EMERGENCY).await;
    let reply = out["auto_reply"]["text"].as_str().unwrap();
    assert!(
        reply.contains("Call 911 now") && reply.contains("chest"),
        "names the symptom in the member's words: {reply}"
    );
    // Routine messages get no automatic reply.
    assert!(app.send(&en, "and can I get a refill of my inhaler?").await["auto_reply"].is_null());

    // A call note's emergency tells the agent what to say, naming the nurse to transfer to.
    let agent = app.login("agent1").await;
    let m12 = app.login("member12").await;
    let member_id = app.me(&m12).await["member_id"].as_str().unwrap().to_owned();
    let r = app.post("/api/v1/calls", &agent, json!({"member_id": member_id, "notes": "78F c/o sudden slurred speech and R arm weakness x20min"})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let g = r.json()["agent_guidance"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(g.contains("911") && g.contains("Nicolás"), "{g}");
}

#[tokio::test]
async fn invariant_4_non_clinician_cannot_close_downgrade_or_book_a_routine_visit_for_an_uncleared_red_flag()
 {
    let app = App::spawn().await;
    let member = app.login("member04").await;
    let t = app.send(&member, EMERGENCY).await["ticket"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let guide = app.login("guide.north1").await;
    let at = "2026-05-06T10:00:00Z";
    for (path, body) in [
        ("transitions", json!({"to": "solved"})),
        (
            "priority",
            json!({"priority": "routine", "reason": "booked a visit instead"}),
        ),
        ("visits", json!({"kind": "routine", "at": at})),
    ] {
        let r = app
            .post(&format!("/api/v1/tickets/{t}/{path}"), &guide, body)
            .await;
        assert_problem(&r, 403, "red-flag-uncleared");
        assert!(
            r.json()["detail"].as_str().unwrap().contains("Chest"),
            "the detail names the flag: {}",
            r.text()
        );
    }
    // Sending them to the ED is always allowed.
    assert_eq!(
        app.post(
            &format!("/api/v1/tickets/{t}/visits"),
            &guide,
            json!({"kind": "ed", "at": at})
        )
        .await
        .status,
        201
    );
    // A guide cannot clear; the nurse can, and then the ticket follows her decision.
    assert_problem(
        &app.post(
            &format!("/api/v1/tickets/{t}/clearance"),
            &guide,
            json!({"disposition": "routine", "note": "x"}),
        )
        .await,
        403,
        "clinician-only",
    );
    let nurse = app.login("nurse.north").await;
    let r = app.post(&format!("/api/v1/tickets/{t}/clearance"), &nurse, json!({"disposition": "routine", "note": "Called member: pain was from a fall yesterday, chest wall tender, no cardiac features. Office visit this week."})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cleared = r.json();
    assert_eq!(cleared["priority"], "routine");
    assert_eq!(cleared["queue"]["kind"], "team");
    assert_eq!(cleared["red_flag_uncleared"], false);
    assert_eq!(
        app.post(
            &format!("/api/v1/tickets/{t}/visits"),
            &guide,
            json!({"kind": "routine", "at": at})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        app.post(
            &format!("/api/v1/tickets/{t}/transitions"),
            &guide,
            json!({"to": "solved"})
        )
        .await
        .status,
        200
    );
    // Every refused attempt is on the record.
    assert_eq!(app.recorded("ticket.override_refused").await.len(), 3);
    assert_eq!(app.recorded("ticket.cleared").await.len(), 1);
}

#[tokio::test]
async fn a_new_red_flag_after_clearance_pages_again() {
    let app = App::spawn().await;
    let member = app.login("member06").await;
    let t = app.send(&member, URGENT_BP).await["ticket"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let nurse = app.login("nurse.north").await;
    app.post(
        &format!("/api/v1/tickets/{t}/clearance"),
        &nurse,
        json!({"disposition": "urgent", "note": "recheck BP in 1 hour, call back"}),
    )
    .await;
    let again = app
        .send(
            &member,
            "Now I also have a terrible headache and blurry vision",
        )
        .await;
    assert_eq!(again["ticket"]["id"], t.as_str());
    assert_eq!(again["ticket"]["red_flag_uncleared"], true);
    assert!(again["page"].is_object(), "paged again: {again}");
}

#[tokio::test]
async fn webhooks_are_signed_retried_dead_lettered_and_replayed() {
    use tokio::io::AsyncWriteExt;
    let app = App::spawn_with_fast_retries().await;
    let admin = app.login("admin").await;
    // A receiver that fails the first two attempts, then accepts.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let seen = got.clone();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let request = read_request(&mut s).await;
            n += 1;
            seen.lock().unwrap().push(request);
            let status = if n <= 2 {
                "500 Internal Server Error"
            } else {
                "204 No Content"
            };
            let _ = s
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    let secret = "pager-gateway-shared-secret";
    let r = app.post("/api/v1/admin/webhooks", &admin, json!({"url": format!("http://{addr}/hooks/careline"), "secret": secret, "events": ["page.*"]})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let member = app.login("member01").await;
    app.send(&member, EMERGENCY).await;
    let mut ok = false;
    for _ in 0..100 {
        if got.lock().unwrap().len() >= 3 {
            ok = true;
            break;
        }
        app.clock.advance(jiff::SignedDuration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ok,
        "delivered after two retries: {:?}",
        got.lock().unwrap().len()
    );
    let req = got.lock().unwrap()[2].clone();
    let (head, body) = req.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /hooks/careline"));
    let sig = head
        .lines()
        .find_map(|l| l.strip_prefix("X-Careline-Signature: "))
        .unwrap();
    let t: i64 = sig
        .split(',')
        .next()
        .unwrap()
        .strip_prefix("t=")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        sig,
        careline::workers::sign(secret, t, body),
        "HMAC-SHA256 over '<t>.<body>'"
    );
    let event: Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["kind"], "page.created");
    assert!(!body.contains("crushing"), "webhooks carry no message text");

    // A receiver that never answers well ends in the dead-letter list, and replay sends it again.
    let r = app.post("/api/v1/admin/webhooks", &admin, json!({"url": "http://127.0.0.1:9/nowhere", "secret": secret, "events": ["escalation.alarm", "page.created"]})).await;
    assert_eq!(r.status, 201);
    app.send(&app.login("member02").await, EMERGENCY).await;
    let mut dead = Value::Null;
    for _ in 0..100 {
        dead = app
            .get("/api/v1/admin/webhooks/deliveries?status=dead", &admin)
            .await
            .json();
        if !dead["items"].as_array().unwrap().is_empty() {
            break;
        }
        app.clock.advance(jiff::SignedDuration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = &dead["items"][0];
    assert_eq!(d["attempts"], 3, "{d}");
    let id = d["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/admin/webhooks/deliveries/{id}/replay"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "pending");
    assert_problem(
        &app.post(
            "/api/v1/admin/webhooks",
            &admin,
            json!({"url": "ftp://x", "secret": secret, "events": ["page.*"]}),
        )
        .await,
        422,
        "invalid-input",
    );
}

#[tokio::test]
async fn invariant_9_safety_audit_lists_every_red_flag_without_timely_clinical_escalation() {
    if embedded_only("careline safety-audit works on the embedded database") {
        return;
    }
    let app = App::spawn().await;
    let nurse = app.login("nurse.north").await;
    // Handled in time: acknowledged within a minute.
    let handled = app.send(&app.login("member01").await, EMERGENCY).await;
    app.clock.advance(jiff::SignedDuration::from_secs(60));
    let page = handled["page"]["id"].as_str().unwrap();
    assert_eq!(
        app.post(&format!("/api/v1/pages/{page}/ack"), &nurse, json!({}))
            .await
            .status,
        200
    );
    // Not handled: nobody acknowledges, the chain runs, nobody clears.
    let missed = app
        .send(
            &app.login("member02").await,
            "My calf is swollen and painful since my flight and now I'm short of breath",
        )
        .await;
    assert!(
        missed["ticket"]["priority"] == "emergency" || missed["ticket"]["priority"] == "urgent",
        "{}",
        missed["ticket"]
    );
    // Routine traffic is never a finding.
    app.send(
        &app.login("member03").await,
        "please reschedule my physical to next month",
    )
    .await;
    app.clock.advance(jiff::SignedDuration::from_hours(2));
    let dir = app.stop().await;

    let out = std::process::Command::new(bin())
        .args(["safety-audit", "--format", "json", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["failures_to_clinically_escalate"]
        .as_array()
        .unwrap();
    assert_eq!(report["contacts"], 3);
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["message_id"], missed["message"]["id"]);
    assert!(
        findings[0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("failure to clinically escalate")
    );
    assert_eq!(report["filed_for_review"], 1);
    // Running it again files nothing twice.
    let again = std::process::Command::new(bin())
        .args(["safety-audit", "--format", "json", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["filed_for_review"], 0);

    // The finding waits in the safety reviewers' queue, who resolve it with a note.
    let app = App::restart(
        dir,
        std::sync::Arc::new(careline_core::clock::FakeClock::new(jiff::Timestamp::now())),
    )
    .await;
    let safety = app.login("safety").await;
    let q = app
        .get("/api/v1/safety-reviews?status=open", &safety)
        .await
        .json();
    assert_eq!(q["items"].as_array().unwrap().len(), 1);
    let id = q["items"][0]["id"].as_str().unwrap();
    let guide = app.login("guide.north1").await;
    assert_problem(
        &app.get("/api/v1/safety-reviews", &guide).await,
        403,
        "safety-reviewers",
    );
    let r = app
        .post(
            &format!("/api/v1/safety-reviews/{id}/resolve"),
            &safety,
            json!({"note": "Reviewed with the nurse lead; rota gap on nights fixed."}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let report = app
        .get(
            "/api/v1/reports/safety?since=2026-01-01T00:00:00Z",
            &app.login("supervisor").await,
        )
        .await
        .json();
    assert_eq!(report["failures_to_escalate"], 1, "{report}");
    assert_eq!(report["time_to_acknowledgement"]["count"], 1);
    assert_eq!(report["time_to_acknowledgement"]["p50_ms"], 60_000);
}

#[tokio::test]
async fn shutdown_ends_within_its_grace_while_a_webhook_receiver_never_answers() {
    let app = App::spawn().await;
    let clock = app.clock.clone();
    let dir = app.stop().await;
    // Sends may take 30 s each; shutdown gives in-flight work 1 s.
    let cfg = careline::workers::WorkerConfig {
        tick: std::time::Duration::from_millis(50),
        send_timeout: std::time::Duration::from_secs(30),
        ..Default::default()
    };
    let app = App::restart_with(dir, clock, cfg, |s| {
        s.timeouts.shutdown = std::time::Duration::from_secs(1);
    })
    .await;
    // A receiver that takes every connection and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut connected) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
            let _ = tx.send(());
        }
    });
    let admin = app.login("admin").await;
    let r = app.post("/api/v1/admin/webhooks", &admin, json!({"url": format!("http://{addr}/hooks"), "secret": "a-secret-of-sixteen", "events": ["*"]})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let member = app.login("member01").await;
    for _ in 0..3 {
        app.send(&member, EMERGENCY).await;
    }
    // A delivery is in flight, with more queued behind it.
    tokio::time::timeout(std::time::Duration::from_secs(10), connected.recv())
        .await
        .expect("a delivery reached the receiver");
    let started = std::time::Instant::now();
    app.stop().await;
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(10),
        "shutdown took {took:?}: it waited for a receiver that never answers"
    );
}

/// The review net (invariant 4 for clinical content the engine judged
/// routine): the mark waits for a clinician, holds routine visits for one,
/// and is cleared only by one; administrative messages stay with care guides.
#[tokio::test]
async fn invariant_4_a_routine_message_that_reads_as_clinical_waits_for_a_nurse_review() {
    let app = App::spawn().await;
    let guide = app.login("guide.north1").await;
    let nurse = app.login("nurse.north").await;
    let at = "2026-05-06T10:00:00Z";

    // An administrative message: no mark, care guides do everything.
    let admin_member = app.login("member05").await;
    let r = app
        .send(
            &admin_member,
            "Can I move my appointment to Friday afternoon?",
        )
        .await;
    let admin_ticket = r["ticket"]["id"].as_str().unwrap().to_owned();
    assert_eq!(r["ticket"]["review_pending"], false, "{r}");
    assert_eq!(
        app.post(
            &format!("/api/v1/tickets/{admin_ticket}/visits"),
            &guide,
            json!({"kind": "routine", "at": at})
        )
        .await
        .status,
        201
    );

    // A routine message about a symptom: marked, in the team queue, with
    // the same-day clock, and listed for clinicians.
    let member = app.login("member04").await;
    let r = app
        .send(
            &member,
            "my knee has been aching since I started running, can I get an appointment?",
        )
        .await;
    let t = r["ticket"]["id"].as_str().unwrap().to_owned();
    assert_eq!(r["ticket"]["priority"], "routine", "{r}");
    assert_eq!(r["ticket"]["queue"]["kind"], "team");
    assert_eq!(r["ticket"]["review_pending"], true, "{r}");
    assert!(
        r["ticket"]["review"]["words"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w == "aching"),
        "{r}"
    );
    let listed = app
        .get("/api/v1/tickets?review=pending", &nurse)
        .await
        .json();
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![t.as_str()], "only the marked ticket: {listed}");
    assert_problem(
        &app.get("/api/v1/tickets?review=maybe", &nurse).await,
        422,
        "invalid-input",
    );

    // A care guide may not book a routine visit or clear the mark.
    assert_problem(
        &app.post(
            &format!("/api/v1/tickets/{t}/visits"),
            &guide,
            json!({"kind": "routine", "at": at}),
        )
        .await,
        403,
        "red-flag-uncleared",
    );
    assert_problem(
        &app.post(
            &format!("/api/v1/tickets/{t}/review"),
            &guide,
            json!({"note": "looked fine to me"}),
        )
        .await,
        403,
        "clinician-only",
    );
    assert_problem(
        &app.post(
            &format!("/api/v1/tickets/{t}/review"),
            &nurse,
            json!({"note": "  "}),
        )
        .await,
        422,
        "invalid-input",
    );
    // The nurse reviews it; then the guide books the visit.
    let r = app
        .post(
            &format!("/api/v1/tickets/{t}/review"),
            &nurse,
            json!({"note": "Overuse knee pain, no swelling or locking: routine visit is right."}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["review_pending"], false);
    assert_eq!(r.json()["review"]["cleared_by"], "Nadia Nurse (North)");
    assert_problem(
        &app.post(
            &format!("/api/v1/tickets/{t}/review"),
            &nurse,
            json!({"note": "again"}),
        )
        .await,
        409,
        "no-review-pending",
    );
    assert_eq!(
        app.post(
            &format!("/api/v1/tickets/{t}/visits"),
            &guide,
            json!({"kind": "routine", "at": at})
        )
        .await
        .status,
        201
    );
    assert_eq!(app.recorded("ticket.review_flagged").await.len(), 1);
    assert_eq!(app.recorded("ticket.review_cleared").await.len(), 1);
    assert_eq!(app.recorded("ticket.override_refused").await.len(), 1);
}

/// An administrator sets the review net's policy (the whole settings document, changed).
async fn set_review_policy(app: &App, admin: &str, policy: &str) {
    let mut s = app.get("/api/v1/admin/settings", admin).await.json();
    s["clinical_review"] = json!(policy);
    let r = app
        .call("PUT", "/api/v1/admin/settings", Some(admin), Some(s))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The organization chooses: `route` sends clinical routine messages to the
/// clinical queue (routine SLA) until reviewed; `off` leaves them alone.
#[tokio::test]
async fn the_review_policy_routes_to_the_clinical_queue_or_is_off() {
    let app = App::spawn().await;
    let admin = app.login("admin").await;
    let nurse = app.login("nurse.north").await;
    let before = app.get("/api/v1/admin/settings", &admin).await.json();
    assert_eq!(before["clinical_review"], "flag", "the default is flag");
    let mut bad = before.clone();
    bad["review_within_minutes"] = json!(0);
    assert_problem(
        &app.call("PUT", "/api/v1/admin/settings", Some(&admin), Some(bad))
            .await,
        422,
        "invalid-input",
    );

    set_review_policy(&app, &admin, "route").await;
    let member = app.login("member04").await;
    let r = app
        .send(&member, "I need a new prescription for my allergy pills")
        .await;
    let t = r["ticket"]["id"].as_str().unwrap().to_owned();
    assert_eq!(r["ticket"]["priority"], "routine", "{r}");
    assert_eq!(r["ticket"]["queue"]["kind"], "clinical", "{r}");
    assert_eq!(r["ticket"]["review"]["routed"], true);
    let r = app
        .post(
            &format!("/api/v1/tickets/{t}/review"),
            &nurse,
            json!({"note": "Seasonal allergies, stable on cetirizine: prescription renewed."}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["queue"]["kind"], "team", "back to the care guides");

    set_review_policy(&app, &admin, "off").await;
    let other = app.login("member05").await;
    let r = app
        .send(&other, "I need a new prescription for my allergy pills")
        .await;
    assert_eq!(r["ticket"]["review_pending"], false, "{r}");
    assert!(r["ticket"]["review"].is_null());
}

/// Clinicians mark a wrong judgement from the ticket; each mark is an event,
/// listed for safety reviewers with the member's words, and exported as a
/// labelled corpus line the triage trainer reads.
#[tokio::test]
async fn clinicians_mark_wrong_judgements_for_the_safety_reviewer_and_the_next_release() {
    let app = App::spawn().await;
    let member = app.login("member04").await;
    let nurse = app.login("nurse.north").await;
    let guide = app.login("guide.north1").await;
    let words = "I need a new prescription for my allergy pills, and my lips and tongue started swelling an hour ago";
    let out = app.send(&member, words).await;
    let t = out["ticket"]["id"].as_str().unwrap().to_owned();
    let msg = out["message"]["id"].as_str().unwrap().to_owned();
    let judged = out["ticket"]["triage"]["disposition"]
        .as_str()
        .unwrap()
        .to_owned();
    let should_be = if judged == "emergency" {
        "urgent"
    } else {
        "emergency"
    };
    let path = format!("/api/v1/tickets/{t}/judgement-marks");
    let body =
        |should: &str, note: &str| json!({"message_id": msg, "should_be": should, "note": note});

    // Only clinicians mark; the mark must disagree and say why.
    assert_problem(
        &app.post(&path, &guide, body(should_be, "looks wrong"))
            .await,
        403,
        "clinician-only",
    );
    assert_problem(
        &app.post(&path, &nurse, body(&judged, "same as the engine"))
            .await,
        409,
        "same-disposition",
    );
    assert_problem(
        &app.post(&path, &nurse, body(should_be, " ")).await,
        422,
        "invalid-input",
    );
    assert_problem(
        &app.post(&path, &nurse, body("soon", "x")).await,
        422,
        "invalid-input",
    );
    let r = app
        .post(
            &path,
            &nurse,
            body(should_be, "Lip and tongue swelling is angioedema: 911."),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let mark = r.json();
    assert_eq!(mark["should_be"], should_be);
    assert_eq!(mark["judged"], judged.as_str());
    let direction = if should_be == "emergency" {
        "under_triage"
    } else {
        "over_triage"
    };
    assert_eq!(mark["direction"], direction);
    assert_eq!(app.recorded("triage.marked").await.len(), 1);

    // The safety reviewer lists it with the member's words; the listing is a recorded read.
    let reviewer = app.login("safety").await;
    assert_problem(
        &app.get("/api/v1/judgement-marks", &nurse).await,
        403,
        "safety-reviewers",
    );
    let reads_before = app.recorded("phi.read").await.len();
    let list = app.get("/api/v1/judgement-marks", &reviewer).await;
    assert_eq!(list.status, 200, "{}", list.text());
    let items = list.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["text"], words);
    assert!(
        app.recorded("phi.read").await.len() > reads_before,
        "the reviewer's read is on the record"
    );
    assert_problem(
        &app.get("/api/v1/judgement-marks?format=csv", &reviewer)
            .await,
        422,
        "invalid-input",
    );

    // The export is the corpus format: the trainer reads it as a labelled set.
    let export = app
        .get("/api/v1/judgement-marks?format=jsonl", &reviewer)
        .await;
    assert_eq!(export.status, 200);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("marks.jsonl"), export.text()).unwrap();
    let sets = careline_triage::train::read_corpus(dir.path()).unwrap();
    let ex = &sets[0].examples[0];
    assert_eq!(ex.text, words);
    assert_eq!(ex.expected.as_str(), should_be);
    assert!(ex.tags.iter().any(|t| t == direction), "{:?}", ex.tags);
}
