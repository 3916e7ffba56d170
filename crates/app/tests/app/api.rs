//! The REST API as members, staff and integrators use it.

use crate::support::*;
use careline::httpc::{self, Conn, Response};
use serde_json::json;
use std::time::Duration;

const ROUTINE: &str = "Hi, could you send a refill of my lisinopril to the pharmacy? Thanks!";
const EMERGENCY: &str = "I have crushing chest pain going down my left arm and I'm sweating a lot";

#[tokio::test]
async fn member_message_becomes_triaged_ticket_in_team_queue_and_guide_works_it() {
    let app = App::spawn().await;
    let member = app.login("member01").await;
    let out = app.send(&member, ROUTINE).await;
    let ticket = &out["ticket"];
    assert_eq!(ticket["status"], "new");
    assert_eq!(ticket["priority"], "routine");
    assert_eq!(ticket["queue"]["kind"], "team");
    assert_eq!(ticket["queue"]["name"], "North team");
    assert_eq!(ticket["triage"]["disposition"], "routine");
    assert!(
        ticket["triage"]["protocol_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    let thread_id = out["message"]["thread_id"].as_str().unwrap().to_owned();
    let ticket_id = ticket["id"].as_str().unwrap().to_owned();

    // The North guide sees it in the North team queue; the South guide does not.
    let guide = app.login("guide.north1").await;
    let queues = app.get("/api/v1/queues", &guide).await.json();
    let team_q = queues["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["kind"] == "team")
        .unwrap()
        .clone();
    assert_eq!(team_q["open"], 1);
    let list = app
        .get(
            &format!("/api/v1/tickets?queue={}", team_q["id"].as_str().unwrap()),
            &guide,
        )
        .await
        .json();
    assert_eq!(list["items"][0]["id"], ticket_id.as_str());
    let south = app.login("guide.south1").await;
    assert_eq!(
        app.get("/api/v1/tickets", &south).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_problem(
        &app.get(&format!("/api/v1/tickets/{ticket_id}"), &south)
            .await,
        403,
        "not-on-care-team",
    );

    // Claim, reply: the ticket waits for the member; the member's answer reopens it.
    let r = app
        .post(
            &format!("/api/v1/tickets/{ticket_id}/assign"),
            &guide,
            json!({"staff_id": app.me(&guide).await["id"]}),
        )
        .await;
    assert_eq!(r.json()["status"], "open");
    let r = app
        .post(
            &format!("/api/v1/tickets/{ticket_id}/replies"),
            &guide,
            json!({"text": "Sent to your pharmacy.", "internal": false}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["ticket"]["status"], "pending_member");
    assert!(r.json()["ticket"]["sla"]["first_response_at"].is_string());
    app.post(
        &format!("/api/v1/tickets/{ticket_id}/replies"),
        &guide,
        json!({"text": "Pharmacy confirmed by phone.", "internal": true}),
    )
    .await;
    let again = app.send(&member, "Thank you! When will it be ready?").await;
    assert_eq!(again["ticket"]["id"], ticket_id.as_str());
    assert_eq!(again["ticket"]["status"], "open");
    assert!(again["ticket"]["sla"]["next_response_due"].is_string());

    // The member sees their messages and the reply, never the internal note.
    let thread = app
        .get(&format!("/api/v1/threads/{thread_id}"), &member)
        .await
        .json();
    let kinds: Vec<&str> = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["member", "staff", "member"]);
    let staff_view = app
        .get(&format!("/api/v1/threads/{thread_id}"), &guide)
        .await
        .json();
    assert_eq!(staff_view["messages"].as_array().unwrap().len(), 4);
    assert!(staff_view["messages"][0]["triage"]["disposition"].is_string());
}

#[tokio::test]
async fn red_flag_message_routes_to_clinical_queue_and_raises_priority_of_open_ticket() {
    let app = App::spawn().await;
    let member = app.login("member03").await;
    let first = app.send(&member, ROUTINE).await;
    assert_eq!(first["ticket"]["queue"]["kind"], "team");
    let second = app.send(&member, EMERGENCY).await;
    assert_eq!(
        second["ticket"]["id"], first["ticket"]["id"],
        "same open ticket"
    );
    assert_eq!(second["ticket"]["priority"], "emergency");
    assert_eq!(second["ticket"]["queue"]["kind"], "clinical");
    assert!(
        !second["ticket"]["triage"]["evidence"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // A later routine message never lowers it.
    let third = app
        .send(&member, "Also, what time does the clinic open on Saturday?")
        .await;
    assert_eq!(third["ticket"]["priority"], "emergency");
    assert_eq!(third["ticket"]["queue"]["kind"], "clinical");
    // Clinical queue shows it first for the nurse.
    let nurse = app.login("nurse.north").await;
    let list = app
        .get("/api/v1/tickets?priority=emergency", &nurse)
        .await
        .json();
    assert_eq!(list["items"][0]["id"], first["ticket"]["id"]);
}

#[tokio::test]
async fn invariant_4_non_clinician_cannot_solve_red_flag_ticket() {
    let app = App::spawn().await;
    let member = app.login("member02").await;
    let t = app.send(&member, EMERGENCY).await["ticket"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let guide = app.login("guide.north1").await;
    let r = app
        .post(
            &format!("/api/v1/tickets/{t}/transitions"),
            &guide,
            json!({"to": "solved"}),
        )
        .await;
    assert_problem(&r, 403, "red-flag-uncleared");
    assert!(r.json()["detail"].as_str().unwrap().contains("red flag"));
    let nurse = app.login("nurse.north").await;
    let r = app
        .post(
            &format!("/api/v1/tickets/{t}/transitions"),
            &nurse,
            json!({"to": "solved", "reason": "called member, went to ED"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "solved");
}

#[tokio::test]
async fn illegal_transition_is_409_and_closed_ticket_means_new_ticket() {
    let app = App::spawn().await;
    let member = app.login("member04").await;
    let t = app.send(&member, ROUTINE).await["ticket"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let guide = app.login("guide.north2").await;
    let r = app
        .post(
            &format!("/api/v1/tickets/{t}/transitions"),
            &guide,
            json!({"to": "closed"}),
        )
        .await;
    assert_problem(&r, 409, "illegal-transition");
    let r = app
        .post(
            &format!("/api/v1/tickets/{t}/transitions"),
            &guide,
            json!({"to": "sideways"}),
        )
        .await;
    assert_problem(&r, 422, "invalid-input");
    for to in ["solved", "closed"] {
        let r = app
            .post(
                &format!("/api/v1/tickets/{t}/transitions"),
                &guide,
                json!({"to": to}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = app
        .post(
            &format!("/api/v1/tickets/{t}/replies"),
            &guide,
            json!({"text": "late"}),
        )
        .await;
    assert_problem(&r, 409, "ticket-closed");
    let next = app.send(&member, "One more question about my refill").await;
    assert_ne!(next["ticket"]["id"], t.as_str());
    assert_eq!(next["ticket"]["status"], "new");
}

#[tokio::test]
async fn solved_ticket_reopens_when_member_writes() {
    let app = App::spawn().await;
    let member = app.login("member06").await;
    let t = app.send(&member, ROUTINE).await["ticket"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let guide = app.login("guide.north1").await;
    app.post(
        &format!("/api/v1/tickets/{t}/transitions"),
        &guide,
        json!({"to": "solved"}),
    )
    .await;
    let again = app
        .send(&member, "Actually it wasn't at the pharmacy")
        .await;
    assert_eq!(again["ticket"]["id"], t.as_str());
    assert_eq!(again["ticket"]["status"], "open");
}

#[tokio::test]
async fn sla_breach_is_visible_on_the_ticket_when_time_passes() {
    let app = App::spawn().await;
    let member = app.login("member08").await;
    let t = app.send(&member, ROUTINE).await["ticket"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let guide = app.login("guide.north1").await;
    let before = app
        .get(&format!("/api/v1/tickets/{t}"), &guide)
        .await
        .json();
    assert_eq!(before["sla"]["breaches"], json!([]));
    app.clock.advance(jiff::SignedDuration::from_hours(25));
    // The morning's session has expired by now; the next shift logs in.
    assert_problem(
        &app.get(&format!("/api/v1/tickets/{t}"), &guide).await,
        401,
        "unauthenticated",
    );
    let guide = app.login("guide.north2").await;
    let after = app
        .get(&format!("/api/v1/tickets/{t}"), &guide)
        .await
        .json();
    assert_eq!(after["sla"]["breaches"], json!(["first_response"]));
}

#[tokio::test]
async fn calls_are_triaged_like_messages_and_only_staff_record_them() {
    let app = App::spawn().await;
    let agent = app.login("agent1").await;
    let member = app.login("member12").await;
    let member_id = app.me(&member).await["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            "/api/v1/calls",
            &agent,
            json!({"member_id": member_id, "notes": "pt c/o CP x2h radiating L arm, diaphoretic"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let j = r.json();
    assert_eq!(j["ticket"]["priority"], "emergency");
    assert_eq!(j["ticket"]["queue"]["name"], "South clinical");
    assert_eq!(j["call"]["triage"]["disposition"], "emergency");
    // The member never sees the agent's call note.
    let thread = app
        .get(
            &format!(
                "/api/v1/threads/{}",
                j["ticket"]["thread_id"].as_str().unwrap()
            ),
            &member,
        )
        .await
        .json();
    assert_eq!(thread["messages"].as_array().unwrap().len(), 0);
    // Members cannot record calls.
    let r = app
        .post(
            "/api/v1/calls",
            &member,
            json!({"member_id": member_id, "notes": "hello"}),
        )
        .await;
    assert_problem(&r, 403, "call-intake");
}

#[tokio::test]
async fn members_and_proxies_reach_only_their_own_threads() {
    let app = App::spawn().await;
    let m1 = app.login("member01").await;
    let m2 = app.login("member02").await;
    let out = app.send(&m1, ROUTINE).await;
    let thread = out["message"]["thread_id"].as_str().unwrap();
    let ticket = out["ticket"]["id"].as_str().unwrap();
    assert_problem(
        &app.get(&format!("/api/v1/threads/{thread}"), &m2).await,
        404,
        "not-found",
    );
    assert_problem(
        &app.get(&format!("/api/v1/tickets/{ticket}"), &m2).await,
        404,
        "not-found",
    );
    assert_problem(
        &app.get("/api/v1/threads/0192f5d4-0000-7000-8000-000000000000", &m1)
            .await,
        404,
        "not-found",
    );
    // member07's caregiver writes for her, and sees her thread; not member08's.
    let proxy = app.login("proxy07").await;
    let me = app.me(&proxy).await;
    assert_eq!(me["role"], "proxy");
    let m7 = me["member_id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/v1/messages",
            &proxy,
            json!({"text": "My mom is slurring her words since this morning", "member_id": m7}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["ticket"]["priority"], "emergency");
    let m8 = app.login("member08").await;
    let m8_id = app.me(&m8).await["member_id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/v1/messages",
            &proxy,
            json!({"text": "hello", "member_id": m8_id}),
        )
        .await;
    assert_problem(&r, 404, "not-found");
    // Staff cannot post portal messages.
    let guide = app.login("guide.north1").await;
    assert_problem(
        &app.post("/api/v1/messages", &guide, json!({"text": "hi"}))
            .await,
        403,
        "members-only",
    );
}

#[tokio::test]
async fn bad_input_gets_problem_json_and_changes_nothing() {
    let app = App::spawn().await;
    let member = app.login("member01").await;
    assert_problem(
        &app.post(
            "/api/v1/messages",
            &member,
            json!({"text": "hi", "priority": "low"}),
        )
        .await,
        422,
        "invalid-body",
    );
    assert_problem(
        &app.post("/api/v1/messages", &member, json!({"text": "   "}))
            .await,
        422,
        "invalid-input",
    );
    assert_problem(
        &app.post(
            "/api/v1/messages",
            &member,
            json!({"text": "x".repeat(20_001)}),
        )
        .await,
        422,
        "invalid-input",
    );
    let mut c = Conn::connect(app.addr).await.unwrap();
    let r = c
        .send_raw(
            "POST",
            "/api/v1/messages",
            Some(&member),
            Some("application/json"),
            b"{\"text\": ",
        )
        .await
        .unwrap();
    assert_problem(&r, 400, "malformed-json");
    let r = c
        .send_raw(
            "POST",
            "/api/v1/messages",
            Some(&member),
            Some("text/plain"),
            b"hello",
        )
        .await
        .unwrap();
    assert_problem(&r, 415, "unsupported-media-type");
    let big = vec![b'a'; 300 * 1024];
    let r = c
        .send_raw(
            "POST",
            "/api/v1/messages",
            Some(&member),
            Some("application/json"),
            &big,
        )
        .await
        .unwrap();
    assert_problem(&r, 413, "body-too-large");
    assert_problem(
        &app.call("GET", "/api/v1/me", None, None).await,
        401,
        "unauthenticated",
    );
    assert_problem(
        &app.call("GET", "/api/v1/me", Some("cl_forged"), None).await,
        401,
        "unauthenticated",
    );
    let r = app
        .call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(json!({"username": "member01@demo.careline", "password": "wrong-password!"})),
        )
        .await;
    assert_problem(&r, 401, "unauthenticated");
    assert_problem(&app.get("/api/v1/nowhere", &member).await, 404, "not-found");
    // Nothing was stored by any of that.
    let tickets = app.get("/api/v1/tickets", &member).await.json();
    assert_eq!(tickets["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn team_sees_new_messages_on_the_event_stream() {
    let app = App::spawn().await;
    let guide = app.login("guide.north1").await;
    let south = app.login("guide.south1").await;
    let mut north_stream = app.events(&guide).await;
    let mut south_stream = app.events(&south).await;
    let member = app.login("member01").await;
    let out = app.send(&member, ROUTINE).await;
    let ticket = out["ticket"]["id"].as_str().unwrap();
    assert!(
        north_stream
            .wait_for("event: message.created", Duration::from_secs(5))
            .await,
        "{}",
        north_stream.seen
    );
    assert!(north_stream.wait_for(ticket, Duration::from_secs(5)).await);
    assert!(
        !north_stream.seen.contains("refill"),
        "events carry no message text"
    );
    assert!(
        !south_stream
            .wait_for("message.created", Duration::from_millis(500))
            .await,
        "South is not alerted for North's members"
    );
}

#[tokio::test]
async fn openapi_health_readiness_and_metrics_are_served() {
    let app = App::spawn().await;
    let doc = app
        .call("GET", "/api/v1/openapi.json", None, None)
        .await
        .json();
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    for p in [
        "/api/v1/sessions",
        "/api/v1/messages",
        "/api/v1/tickets/{id}/transitions",
        "/api/v1/calls",
        "/api/v1/events",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} documented");
    }
    assert_eq!(app.call("GET", "/healthz", None, None).await.status, 200);
    assert_eq!(app.call("GET", "/readyz", None, None).await.status, 200);
    let member = app.login("member01").await;
    app.send(&member, EMERGENCY).await;
    let m = app.call("GET", "/metrics", None, None).await.text();
    assert!(
        m.contains("careline_contacts_total{disposition=\"emergency\"} 1"),
        "{m}"
    );
    let r = app.get("/api/v1/me", &member).await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

/// Sends a request with an optional content type and body, as a client
/// that gets the details wrong would.
async fn raw(app: &App, method: &str, path: &str, token: &str, ct: Option<&str>) -> Response {
    Conn::connect(app.addr)
        .await
        .unwrap()
        .send_raw(method, path, Some(token), ct, b"hello")
        .await
        .unwrap()
}

#[tokio::test]
async fn refusals_before_any_handler_are_problem_json_with_the_right_status() {
    let app = App::spawn().await;
    let guide = app.login("guide.north1").await;
    let agent = app.login("agent1").await;
    let safety = app.login("safety").await;
    let nil = "00000000-0000-0000-0000-000000000000";

    // Query strings that do not parse: 422, like a body field of the wrong type.
    assert_problem(
        &app.get("/api/v1/tickets?limit=abc", &guide).await,
        422,
        "invalid-input",
    );
    assert_problem(
        &app.get("/api/v1/members?q=ann&limit=abc", &agent).await,
        422,
        "invalid-query",
    );
    let r = app
        .get("/api/v1/safety-reviews?status=open&colour=red", &safety)
        .await;
    assert_problem(&r, 422, "invalid-query");
    assert!(r.json()["detail"].as_str().unwrap().contains("colour"));
    assert_problem(
        &app.get("/api/v1/reports/safety?since=1&since=2", &safety)
            .await,
        422,
        "invalid-query",
    );

    // Ids in the path that are not UUIDs: 400, naming the parameter.
    let r = app.get("/api/v1/tickets/not-a-uuid", &guide).await;
    assert_problem(&r, 400, "invalid-path");
    assert!(r.json()["detail"].as_str().unwrap().contains("not-a-uuid"));
    assert_problem(
        &app.call(
            "DELETE",
            &format!("/api/v1/threads/{nil}/collaborators/nobody"),
            Some(&guide),
            None,
        )
        .await,
        400,
        "invalid-path",
    );

    // A body that is not JSON, or has no content type at all.
    let reply = format!("/api/v1/tickets/{nil}/replies");
    assert_problem(
        &raw(&app, "POST", &reply, &guide, Some("text/plain")).await,
        415,
        "unsupported-media-type",
    );
    assert_problem(
        &raw(&app, "POST", &reply, &guide, None).await,
        415,
        "unsupported-media-type",
    );

    // An upload whose query string or form is wrong.
    assert_problem(
        &raw(
            &app,
            "POST",
            "/api/v1/attachments?member_id=zz",
            &guide,
            Some("multipart/form-data; boundary=x"),
        )
        .await,
        422,
        "invalid-query",
    );

    // Unknown routes and wrong methods, under the API and outside it.
    assert_problem(
        &app.get("/api/v1/tickets/x/y/z", &guide).await,
        404,
        "not-found",
    );
    assert_problem(
        &app.call("GET", "/no/such/page", None, None).await,
        404,
        "not-found",
    );
    let r = app
        .call("PATCH", "/api/v1/tickets", Some(&guide), None)
        .await;
    assert_problem(&r, 405, "method-not-allowed");
    assert!(r.header("allow").is_some_and(|a| a.contains("GET")));
    assert_problem(
        &app.call("DELETE", "/api/v1/me", Some(&guide), None).await,
        405,
        "method-not-allowed",
    );
}

/// The operations of the served OpenAPI document: (method, path, operation).
fn operations(doc: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn openapi_declares_query_parameters_in_the_query_and_path_parameters_in_the_path() {
    let app = App::spawn().await;
    let doc = app
        .call("GET", "/api/v1/openapi.json", None, None)
        .await
        .json();
    let ops = operations(&doc);
    assert!(ops.len() > 60, "{} operations", ops.len());
    // Every schema a parameter, body or response refers to is in the document.
    fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                    out.push(r.to_owned());
                }
                m.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} is not in the document"
        );
    }
    for (method, path, op) in &ops {
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        for p in &params {
            let name = p["name"].as_str().unwrap();
            match p["in"].as_str().unwrap() {
                "path" => {
                    assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: path parameter '{name}' is not in the path"
                    );
                    assert_eq!(p["required"], true, "{method} {path} {name}");
                }
                "query" => {}
                other => panic!("{method} {path}: '{name}' declared in {other}"),
            }
        }
        // Every `{name}` of the template is declared as a path parameter.
        for seg in path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path"),
                    "{method} {path}: '{name}' is not declared"
                );
            }
        }
    }
    // The query strings the handlers read; only a member search needs its words.
    for (path, names) in [
        (
            "/api/v1/tickets",
            &["queue", "status", "priority", "member", "limit"][..],
        ),
        ("/api/v1/members", &["q", "limit"][..]),
        ("/api/v1/safety-reviews", &["status"][..]),
        ("/api/v1/reports/safety", &["since", "until"][..]),
        ("/api/v1/privacy/break-glass", &["status"][..]),
        ("/api/v1/admin/webhooks/deliveries", &["status"][..]),
        ("/api/v1/attachments", &["member_id"][..]),
    ] {
        let (_, _, op) = ops.iter().find(|(_, p, _)| p == path).unwrap();
        for name in names {
            let p = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == *name)
                .unwrap_or_else(|| panic!("{path}: '{name}' is not declared"));
            assert_eq!(p["in"], "query", "{path} {name}");
            let required = (path, *name) == ("/api/v1/members", "q");
            assert_eq!(p["required"] == true, required, "{path} {name}");
        }
    }
    let status = &ops
        .iter()
        .find(|(m, p, _)| m == "get" && p == "/api/v1/tickets")
        .unwrap()
        .2["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "status")
        .unwrap()["schema"]["enum"];
    assert!(
        status
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "pending_member")
    );
}

#[tokio::test]
async fn openapi_declares_the_problems_each_operation_can_answer_as_problem_json() {
    let app = App::spawn().await;
    let doc = app
        .call("GET", "/api/v1/openapi.json", None, None)
        .await
        .json();
    for (method, path, op) in operations(&doc) {
        let responses = op["responses"].as_object().unwrap();
        let declares = |s: &str| responses.contains_key(s);
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let json_body = op["requestBody"]["content"]["application/json"].is_object();
        if secured {
            assert!(declares("401") && declares("403"), "{method} {path}");
        }
        if params.iter().any(|p| p["in"] == "path") {
            assert!(declares("400") && declares("404"), "{method} {path}");
        }
        if json_body || params.iter().any(|p| p["in"] == "query") {
            assert!(declares("422"), "{method} {path}");
        }
        if json_body {
            assert!(
                declares("400") && declares("413") && declares("415"),
                "{method} {path}"
            );
        }
        for (status, r) in responses {
            assert!(
                r["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{method} {path} {status}: every response has a description"
            );
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    r["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
                assert!(r["content"]["application/json"].is_null());
            }
        }
    }
    // Request bodies carry the limits the domain enforces.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["NewMessage"]["properties"]["text"]["maxLength"],
        20_000
    );
    assert_eq!(schemas["NewMessage"]["properties"]["text"]["minLength"], 1);
    assert_eq!(
        schemas["BreakGlassRequest"]["properties"]["reason"]["minLength"],
        10
    );
    assert_eq!(
        schemas["ClearanceRequest"]["properties"]["disposition"]["enum"],
        json!(["emergency", "urgent", "routine"])
    );
    assert!(
        schemas["StaffSpec"]["properties"]["role"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r != "member" && r != "proxy")
    );
}

#[tokio::test]
async fn an_account_refused_for_a_wrong_team_or_member_leaves_nothing_behind() {
    let app = App::spawn().await;
    let admin = app.login("admin").await;
    let nowhere = "00000000-0000-0000-0000-000000000001";
    let team = app.get("/api/v1/admin/teams", &admin).await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let staff = |teams: Vec<&str>| {
        json!({"username": "new.nurse@demo.careline", "name": "New Nurse", "role": "nurse",
               "password": "a-long-password", "team_ids": teams})
    };
    assert_problem(
        &app.post("/api/v1/admin/staff", &admin, staff(vec![nowhere]))
            .await,
        404,
        "not-found",
    );
    // The same request with the right team goes through: nothing was left half-made.
    let r = app
        .post("/api/v1/admin/staff", &admin, staff(vec![&team]))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // A member whose login is taken is not created without it.
    let members_before = app.get("/api/v1/admin/members", &admin).await.json();
    let r = app
        .post(
            "/api/v1/admin/members",
            &admin,
            json!({"name": "Ann Again", "team_id": team,
                   "username": "member01@demo.careline", "password": "a-long-password"}),
        )
        .await;
    assert_problem(&r, 409, "duplicate");
    assert_eq!(
        app.get("/api/v1/admin/members", &admin).await.json(),
        members_before
    );

    // A caregiver for a member who does not exist gets no account.
    let proxy = |member: &str| {
        json!({"member_id": member, "username": "new.carer@demo.careline", "name": "New Carer",
               "password": "a-long-password"})
    };
    assert_problem(
        &app.post("/api/v1/admin/proxies", &admin, proxy(nowhere))
            .await,
        404,
        "not-found",
    );
    let member = members_before[0]["id"].as_str().unwrap();
    let r = app
        .post("/api/v1/admin/proxies", &admin, proxy(member))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test]
async fn settings_sent_in_part_are_refused_and_nothing_is_reset() {
    let app = App::spawn().await;
    let admin = app.login("admin").await;
    let before = app.get("/api/v1/admin/settings", &admin).await.json();
    let put = |body: serde_json::Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            httpc::call(
                app.addr,
                "PUT",
                "/api/v1/admin/settings",
                Some(&admin),
                Some(&body),
            )
            .await
            .unwrap()
        }
    };
    let r = put(json!({"ack": {"emergency_minutes": 3, "urgent_minutes": 20}})).await;
    assert_problem(&r, 422, "invalid-input");
    assert!(r.json()["detail"].as_str().unwrap().contains("missing"));
    assert_problem(&put(json!({})).await, 422, "invalid-input");
    let mut unknown = before.clone();
    unknown["colour"] = json!("red");
    assert_problem(&put(unknown).await, 422, "invalid-input");
    let mut partial_sla = before.clone();
    partial_sla["sla"]
        .as_object_mut()
        .unwrap()
        .remove("routine");
    assert_problem(&put(partial_sla).await, 422, "invalid-input");
    assert_eq!(
        app.get("/api/v1/admin/settings", &admin).await.json(),
        before
    );

    // The whole document, changed, is accepted.
    let mut changed = before.clone();
    changed["ack"]["emergency_minutes"] = json!(3);
    let r = put(changed.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        app.get("/api/v1/admin/settings", &admin).await.json(),
        changed
    );
}
