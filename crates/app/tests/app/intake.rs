//! Call intake and the supervisor's figures: the audited member search that
//! finds a caller only among members the call-taker reaches, and time to a
//! clinician split by disposition.

use crate::support::*;
use serde_json::{Value, json};

const EMERGENCY: &str = "I have crushing chest pain going down my left arm and I'm sweating a lot";
const URGENT_BP: &str = "My blood pressure is 188/108 this morning, I feel fine otherwise";

async fn search(app: &App, token: &str, q: &str) -> (u16, Value) {
    let encoded: String = q
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let r = app
        .get(&format!("/api/v1/members?q={encoded}"), token)
        .await;
    (r.status, r.json())
}

fn names(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn member_search_finds_a_caller_by_name_phone_reference_or_birth_date_ignoring_case_and_accents()
 {
    let app = App::spawn().await;
    let agent = app.login("agent1").await;
    for q in ["lucia fernandez", "FERNÁNDEZ", "fern", "luc"] {
        let (status, v) = search(&app, &agent, q).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(names(&v), vec!["Lucía Fernández"], "query {q:?}");
    }
    for q in [
        "555-0101",
        "+1 555 0101",
        "DEMO-0001",
        "demo-0001",
        "1946-03-14",
        "3/14/1946",
        "ellis 1946-03-14",
    ] {
        let (_, v) = search(&app, &agent, q).await;
        assert_eq!(names(&v), vec!["Margaret Ellis"], "query {q:?}");
    }
    // A summary to confirm who is calling, and no health information.
    let (_, v) = search(&app, &agent, "margaret").await;
    let m = &v["items"][0];
    assert_eq!(m["date_of_birth"], "1946-03-14");
    assert_eq!(m["phone"], "+1-555-0101");
    assert_eq!(m["external_ref"], "DEMO-0001");
    assert_eq!(m["team_name"], "North");
    assert_eq!(m["access"], "care_team");
    assert!(!v.to_string().contains("apixaban"), "{v}");
    // Names that start with the words typed come first.
    let (_, v) = search(&app, &agent, "ma").await;
    let found = names(&v);
    assert!(found.len() >= 3, "{found:?}");
    assert!(found[0].starts_with("Ma"), "{found:?}");
    // Too short, and results are capped.
    let (status, v) = search(&app, &agent, "a").await;
    assert_eq!(status, 422, "{v}");
    let (status, _) = search(&app, &agent, "").await;
    assert_eq!(status, 422);
    let r = app.get("/api/v1/members?q=e&limit=500", &agent).await;
    assert_eq!(r.status, 422);
    let (_, v) = search(&app, &agent, "55").await;
    assert!(
        v["items"].as_array().unwrap().is_empty(),
        "two digits are no phone number: {v}"
    );
    let r = app.get("/api/v1/members?q=an&limit=500", &agent).await;
    assert!(r.json()["items"].as_array().unwrap().len() <= 20);
}

#[tokio::test]
async fn member_search_looks_only_among_members_the_caller_reaches_and_records_each_one_found() {
    let app = App::spawn().await;
    let south = app.login("guide.south1").await;
    // Lucía is on the North team: a South care guide does not find her …
    let (status, v) = search(&app, &south, "lucia").await;
    assert_eq!(status, 200);
    assert!(names(&v).is_empty(), "{v}");
    // … but finds the South team's members.
    let (_, v) = search(&app, &south, "henry").await;
    assert_eq!(names(&v), vec!["Henry Adams"]);
    // Roles that do not take calls may not search at all.
    for who in ["admin", "privacy", "safety", "member01", "proxy07"] {
        let (status, v) = search(&app, &app.login(who).await, "margaret").await;
        assert_eq!(status, 403, "{who}: {v}");
    }

    // Tagged into Margaret's thread, the South guide finds her, and the result says why.
    let member = app.login("member01").await;
    let out = app
        .send(&member, "Could I get a refill of my metoprolol?")
        .await;
    let thread = out["message"]["thread_id"].as_str().unwrap();
    let south_id = app.me(&south).await["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/threads/{thread}/collaborators"),
            &app.login("guide.north1").await,
            json!({"user_id": south_id, "reason": "covering the North desk"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let south = app.login("guide.south1").await;
    let (_, v) = search(&app, &south, "margaret").await;
    assert_eq!(names(&v), vec!["Margaret Ellis"]);
    assert_eq!(v["items"][0]["access"], "tagged");

    // Margaret sees each search that returned her: by whom, and why it was allowed.
    let agent = app.login("agent1").await;
    search(&app, &agent, "ellis").await;
    search(&app, &agent, "nobody-by-this-name").await;
    let log = app.get("/api/v1/me/access-log", &member).await.json();
    let searches: Vec<(String, String)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["what"] == "search")
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["why"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        searches,
        vec![
            ("Alex Agent".to_owned(), "care_team".to_owned()),
            ("Gloria South".to_owned(), "tagged".to_owned()),
        ],
        "{log}"
    );
    // One phi.read event per member returned, and none for the members not found.
    let events = app.recorded("phi.read").await;
    let of_search = events.iter().filter(|e| e["resource"] == "search").count();
    let (_, v) = search(&app, &agent, "ma").await;
    let returned = v["items"].as_array().unwrap().len();
    let after = app
        .recorded("phi.read")
        .await
        .iter()
        .filter(|e| e["resource"] == "search")
        .count();
    assert_eq!(after - of_search, returned);
}

#[tokio::test]
async fn the_safety_report_splits_time_to_clinician_by_disposition() {
    let app = App::spawn().await;
    let nurse = app.login("nurse.north").await;
    let emergency = app.send(&app.login("member01").await, EMERGENCY).await;
    let urgent = app.send(&app.login("member02").await, URGENT_BP).await;
    assert_eq!(urgent["ticket"]["priority"], "urgent");
    // The emergency is acknowledged after 30 s, the urgent one after 90 s.
    app.clock.advance(jiff::SignedDuration::from_secs(30));
    let page = emergency["page"]["id"].as_str().unwrap();
    let r = app
        .post(&format!("/api/v1/pages/{page}/ack"), &nurse, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    app.clock.advance(jiff::SignedDuration::from_secs(60));
    let page = urgent["page"]["id"].as_str().unwrap();
    let r = app
        .post(&format!("/api/v1/pages/{page}/ack"), &nurse, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The nurse answers the urgent member two minutes after their message.
    app.clock.advance(jiff::SignedDuration::from_secs(30));
    let ticket = urgent["ticket"]["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/tickets/{ticket}/replies"),
            &nurse,
            json!({"text": "Please recheck in 15 minutes and call us.", "internal": false}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    let report = app
        .get(
            "/api/v1/reports/safety?since=2026-01-01T00:00:00Z",
            &app.login("supervisor").await,
        )
        .await
        .json();
    // The figures over every red flag are still there, as before.
    assert_eq!(report["time_to_acknowledgement"]["count"], 2, "{report}");
    let ack = &report["time_to_acknowledgement_by_disposition"];
    assert_eq!(ack["emergency"]["count"], 1, "{report}");
    assert_eq!(ack["emergency"]["p50_ms"], 30_000);
    assert_eq!(ack["urgent"]["count"], 1);
    assert_eq!(ack["urgent"]["p50_ms"], 90_000);
    let reply = &report["time_to_clinician_reply_by_disposition"];
    assert_eq!(reply["urgent"]["count"], 1, "{report}");
    assert_eq!(reply["urgent"]["p50_ms"], 120_000);
    assert!(
        reply.get("emergency").is_none(),
        "nobody answered the emergency in writing"
    );
}

#[tokio::test]
async fn a_clinician_outside_the_care_team_is_offered_break_glass_for_a_ticket_and_then_reaches_it()
{
    let app = App::spawn().await;
    let out = app
        .send(
            &app.login("member01").await,
            "Could I get a refill of my metoprolol?",
        )
        .await;
    let ticket = out["ticket"]["id"].as_str().unwrap().to_owned();
    let member_id = app.me(&app.login("member01").await).await["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = format!("/console/tickets/{ticket}");
    // A South nurse: refused, told why, and offered the glass for the right member.
    let nurse = app.login("nurse.south").await;
    let r = app.get(&page, &nurse).await;
    assert_eq!(r.status, 403);
    let html = r.text();
    assert!(html.contains("Break the glass"), "{html}");
    assert!(
        html.contains(&format!("/api/v1/members/{member_id}/break-glass")),
        "{html}"
    );
    assert!(
        !html.contains("metoprolol"),
        "nothing of the ticket is shown"
    );
    // A care guide outside the team is refused without the offer: only clinicians break the glass.
    let guide = app.login("guide.south1").await;
    let r = app.get(&page, &guide).await;
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("Break the glass"));
    // Another organization's ticket id reveals nothing either way.
    let r = app
        .get(
            "/console/tickets/0192f5d4-0000-7000-8000-00000000abcd",
            &nurse,
        )
        .await;
    assert_eq!(r.status, 404);
    // With the glass broken, the ticket opens.
    let r = app
        .post(
            &format!("/api/v1/members/{member_id}/break-glass"),
            &nurse,
            json!({"reason": "covering the North desk this afternoon"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = app.get(&page, &nurse).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("metoprolol"));
}

#[tokio::test]
async fn a_call_note_for_a_member_the_call_taker_does_not_reach_is_refused_and_leaks_nothing() {
    let app = App::spawn().await;
    // Margaret (North) wrote something only her care team should read.
    let member = app.login("member01").await;
    let secret = "I took 40 of my sleeping pills last night, intake-secret-5521";
    let out = app.send(&member, secret).await;
    let ticket = out["ticket"]["id"].as_str().unwrap().to_owned();
    let member_id = app.me(&member).await["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = app.recorded("call.created").await.len();
    let log_before = app.get("/api/v1/me/access-log", &member).await.json()["items"]
        .as_array()
        .unwrap()
        .len();

    // A South care guide knows her member id, and tries to log a call for her.
    let south = app.login("guide.south1").await;
    let r = app
        .post(
            "/api/v1/calls",
            &south,
            json!({"member_id": member_id, "notes": "pt called, wants an update"}),
        )
        .await;
    assert_problem(&r, 403, "not-on-care-team");
    assert!(!r.text().contains("intake-secret"), "{}", r.text());
    assert!(!r.text().contains(&ticket), "{}", r.text());
    // Nothing was written into her thread, and she saw no read by the South guide.
    assert_eq!(app.recorded("call.created").await.len(), before);
    let thread = app
        .get(
            &format!(
                "/api/v1/threads/{}",
                out["message"]["thread_id"].as_str().unwrap()
            ),
            &app.login("guide.north1").await,
        )
        .await
        .json();
    assert_eq!(thread["messages"].as_array().unwrap().len(), 2, "{thread}");
    let log = app.get("/api/v1/me/access-log", &member).await.json();
    assert!(
        !log.to_string().contains("Gloria South"),
        "the refused caller read nothing: {log}"
    );

    // The contact-centre agent on her team records the call: it joins her open
    // ticket, whose triage quotes her earlier words, so that read is on her history.
    let agent = app.login("agent1").await;
    let r = app
        .post(
            "/api/v1/calls",
            &agent,
            json!({"member_id": member_id, "notes": "pt called back, feeling drowsy"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["ticket"]["id"], ticket.as_str());
    assert_eq!(app.recorded("call.created").await.len(), before + 1);
    let log = app.get("/api/v1/me/access-log", &member).await.json();
    let items = log["items"].as_array().unwrap();
    assert!(items.len() > log_before, "{log}");
    assert!(
        items
            .iter()
            .any(|e| e["name"] == "Alex Agent" && e["what"] == "ticket" && e["why"] == "care_team"),
        "the agent's read of the ticket through the call is recorded: {log}"
    );
}

#[tokio::test]
async fn a_ticket_raised_by_the_second_reader_says_so_in_plain_words() {
    let app = App::spawn().await;
    let member = app.login("member01").await;
    let out = app
        .send(
            &member,
            "my dad keeps grabbing at the middle of his chest, he's gone grey and clammy",
        )
        .await;
    let triage = &out["ticket"]["triage"];
    assert_ne!(triage["disposition"], "routine", "{out}");
    assert!(triage["second_reader"]["from"].is_string(), "{out}");
    let ticket = out["ticket"]["id"].as_str().unwrap();
    let nurse = app.login("nurse.north").await;
    let page = app.get(&format!("/console/tickets/{ticket}"), &nurse).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains("Escalated for review by the second reader"),
        "{html}"
    );
    assert!(html.contains("where the protocols alone said"), "{html}");
}
