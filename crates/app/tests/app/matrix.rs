//! The authorization matrix: every route of the router's own table × every
//! kind of caller, against member01's data. The expected outcome comes from
//! a policy written here, independently of the implementation; a route added
//! to the router without a policy fails the test.

use crate::support::*;
use careline_core::model::Role;
use careline_store::NewUser;
use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Debug, Clone)]
struct Subject {
    label: &'static str,
    token: Option<String>,
    role: Option<Role>,
    /// Reaches member01's thread and tickets through a relationship (own,
    /// care team, tag, break-glass, a proxy with the messages scope).
    access: bool,
    /// Reaches member01's record (profile, access history, consent): staff
    /// as for the thread, a proxy only with the record scope.
    record: bool,
    /// A proxy for member01, with this scope.
    proxy_scope: Option<&'static str>,
    own: bool,
    same_org: bool,
    /// On the North team (rota managers), for supervisors.
    north_supervisor: bool,
    paged: bool,
}

#[derive(Debug, PartialEq)]
enum Expect {
    Allow,
    Deny,
}

/// The policy: who may call each route against member01's resources.
fn policy(method: &str, path: &str, s: &Subject) -> Option<Expect> {
    use Expect::*;
    let authed = s.token.is_some();
    let role = s.role;
    let staff = role.is_some_and(Role::is_staff);
    let is = |r: &[Role]| role.is_some_and(|x| r.contains(&x)) && s.same_org;
    let allow = |b: bool| if b { Allow } else { Deny };
    let p = path.strip_prefix("/api/v1").unwrap_or(path);
    Some(match (method, p) {
        ("GET", "/openapi.json") => Allow,
        ("GET", "/me" | "/queues" | "/tickets" | "/pages") => allow(authed),
        ("GET", "/me/access-log") => {
            allow(is(&[Role::Member]) || (is(&[Role::Proxy]) && s.proxy_scope != Some("messages")))
        }
        ("GET", "/me/proxies") => allow(is(&[Role::Member, Role::Proxy])),
        ("POST", "/messages") => allow(s.own || s.proxy_scope == Some("messages")),
        // Live triage reads only the text sent: any organization's call-takers.
        ("POST", "/triage") => allow(role.is_some_and(|r| {
            [
                Role::Agent,
                Role::CareGuide,
                Role::Nurse,
                Role::Physician,
                Role::Supervisor,
            ]
            .contains(&r)
        })),
        // The search looks only within the caller's own organization and
        // relationships: a call-taker elsewhere gets an empty list, never a leak.
        ("GET", "/members") => allow(role.is_some_and(|r| {
            [
                Role::Agent,
                Role::CareGuide,
                Role::Nurse,
                Role::Physician,
                Role::Supervisor,
            ]
            .contains(&r)
        })),
        // A call note writes into the member's thread and answers with
        // their ticket: call-takers who reach the member, as for a read.
        ("POST", "/calls") => allow(
            s.access
                && is(&[
                    Role::Agent,
                    Role::CareGuide,
                    Role::Nurse,
                    Role::Physician,
                    Role::Supervisor,
                ]),
        ),
        (
            "GET",
            "/threads/{id}"
            | "/tickets/{id}"
            | "/tickets/{id}/pages"
            | "/threads/{id}/collaborators",
        ) => allow(s.access),
        ("GET", "/members/{id}") => allow(s.record),
        ("GET", "/members/{id}/access-log") => {
            allow(s.own || s.proxy_scope == Some("record") || is(&[Role::PrivacyOfficer]))
        }
        ("GET", "/members/{id}/consents") => allow(s.record || is(&[Role::PrivacyOfficer])),
        ("POST", "/members/{id}/consents") => {
            allow(s.own || s.proxy_scope == Some("record") || is(&[Role::PrivacyOfficer]))
        }
        ("GET", "/members/{id}/proxies") | ("DELETE", "/members/{id}/proxies/{user_id}") => {
            allow(s.own || is(&[Role::Admin, Role::PrivacyOfficer]))
        }
        ("POST", "/members/{id}/proxies") => allow(s.own || is(&[Role::Admin])),
        ("POST", "/attachments") | ("GET", "/attachments/{id}" | "/attachments/{id}/content") => {
            allow(s.access)
        }
        ("POST", "/attachments/{id}/export") => allow(is(&[Role::PrivacyOfficer])),
        ("POST", "/messages/{id}/redact") => allow(is(&[Role::PrivacyOfficer])),
        ("POST", "/members/{id}/break-glass") => allow(is(&[Role::Nurse, Role::Physician])),
        ("POST", "/threads/{id}/collaborators")
        | ("DELETE", "/threads/{id}/collaborators/{user_id}") => allow(s.access && staff),
        (
            "POST",
            "/tickets/{id}/replies"
            | "/tickets/{id}/assign"
            | "/tickets/{id}/transitions"
            | "/tickets/{id}/priority"
            | "/tickets/{id}/visits",
        ) => allow(s.access && staff),
        ("POST", "/tickets/{id}/clearance" | "/tickets/{id}/review") => {
            allow(s.access && is(&[Role::Nurse, Role::Physician]))
        }
        ("POST", "/pages/{id}/ack") => allow(s.paged),
        ("GET", "/teams/{id}/rota") => allow(staff && s.same_org),
        ("PUT", "/teams/{id}/rota") => allow(is(&[Role::Admin]) || s.north_supervisor),
        ("POST", "/tickets/{id}/judgement-marks") => {
            allow(s.access && is(&[Role::Nurse, Role::Physician]))
        }
        ("GET", "/judgement-marks")
        | ("GET", "/safety-reviews")
        | ("POST", "/safety-reviews/{id}/resolve") => {
            allow(is(&[Role::SafetyReviewer, Role::Supervisor]))
        }
        ("GET", "/reports/safety") => {
            allow(is(&[Role::SafetyReviewer, Role::Supervisor, Role::Admin]))
        }
        ("GET", "/privacy/break-glass") | ("POST", "/privacy/break-glass/{id}/review") => {
            allow(is(&[Role::PrivacyOfficer]))
        }
        ("POST", "/me/mfa/totp" | "/me/mfa/totp/verify") => allow(staff && authed),
        (_, a) if a.starts_with("/admin/") => allow(is(&[Role::Admin])),
        // Exercised by their own tests: logging in, logging out, the live stream.
        ("POST", "/sessions") | ("DELETE", "/sessions/current") | ("GET", "/events") => {
            return None;
        }
        _ => panic!("no authorization policy for {method} {path}: add one to the matrix"),
    })
}

#[tokio::test]
async fn authorization_matrix_every_route_by_every_caller_allows_or_denies_as_specified_without_leaks()
 {
    let app = App::spawn().await;
    let store = app.running.as_ref().unwrap().state.store.clone();
    let now = app.clock.now_ts();
    // Another organization with its own nurse and member.
    let other = store.create_org("Other Clinic", now).await.unwrap();
    let team = store
        .create_team(other.id, "East", None, now)
        .await
        .unwrap();
    let hash = careline_web::auth::hash_password(PASSWORD).unwrap();
    let nurse_b = store
        .create_user(
            NewUser {
                org_id: other.id,
                username: "nurse@other.example".into(),
                name: "Olga Other".into(),
                role: Role::Nurse,
                member_id: None,
                password_hash: hash.clone(),
            },
            None,
            now,
        )
        .await
        .unwrap();
    store
        .add_to_team(other.id, team.id, nurse_b.id, None, now)
        .await
        .unwrap();
    let op = careline_core::authz::Principal {
        user_id: nurse_b.id,
        org_id: other.id,
        role: Role::Admin,
        name: "setup".into(),
        member_id: None,
        proxy_for: vec![],
        team_ids: vec![],
        grants: vec![],
        enrolment_only: false,
    };
    let mut st = store.settings(other.id).await.unwrap();
    st.mfa_required_roles.clear();
    store.set_settings(&op, st, now).await.unwrap();
    // A South nurse who will break the glass for member01.
    let org = store.org_by_name("Demo Clinic").await.unwrap().unwrap();
    store
        .create_user(
            NewUser {
                org_id: org.id,
                username: "nurse.glass@demo.careline".into(),
                name: "Gwen Glass".into(),
                role: Role::Nurse,
                member_id: None,
                password_hash: hash,
            },
            None,
            now,
        )
        .await
        .unwrap();

    // A nurse whose break-glass for member01 expired an hour ago.
    let expired = store
        .create_user(
            NewUser {
                org_id: org.id,
                username: "nurse.expired@demo.careline".into(),
                name: "Ed Expired".into(),
                role: Role::Nurse,
                member_id: None,
                password_hash: careline_web::auth::hash_password(PASSWORD).unwrap(),
            },
            None,
            now,
        )
        .await
        .unwrap();
    // Two caregivers of member01: one for messages, one for the record.
    let m01 = store
        .members(org.id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "Margaret Ellis")
        .unwrap();
    for (name, scope) in [
        ("proxy.msg", careline_core::authz::ProxyScope::Messages),
        ("proxy.rec", careline_core::authz::ProxyScope::Record),
    ] {
        let u = store
            .create_user(
                NewUser {
                    org_id: org.id,
                    username: format!("{name}@demo.careline"),
                    name: format!("Carer {name}"),
                    role: Role::Proxy,
                    member_id: None,
                    password_hash: careline_web::auth::hash_password(PASSWORD).unwrap(),
                },
                None,
                now,
            )
            .await
            .unwrap();
        store
            .grant_proxy(org.id, u.id, m01.id, scope, None, None, now)
            .await
            .unwrap();
    }
    // member01 writes an emergency: thread, ticket, page to nurse.north.
    let member = app.login("member01").await;
    let secret = "crushing chest pain radiating to my jaw, matrix-secret-8812";
    // With a file (no scanner here, so it stays quarantined).
    let up = app
        .upload(
            &member,
            None,
            "ecg.pdf",
            "application/pdf",
            b"%PDF-1.4\n% matrix\n%%EOF\n",
        )
        .await;
    assert_eq!(up.status, 201, "{}", up.text());
    let attachment = up.json()["items"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/v1/messages",
            &member,
            json!({"text": secret, "attachment_ids": [attachment]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let out = r.json();
    let message = out["message"]["id"].as_str().unwrap().to_owned();
    let thread = out["message"]["thread_id"].as_str().unwrap().to_owned();
    let ticket = out["ticket"]["id"].as_str().unwrap().to_owned();
    let page = out["page"]["id"].as_str().unwrap().to_owned();
    let member_id = app.me(&member).await["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let team_north = out["ticket"]["team_id"].as_str().unwrap().to_owned();

    let mut tokens: HashMap<&str, String> = HashMap::new();
    for n in [
        "nurse.expired",
        "member02",
        "proxy07",
        "proxy.msg",
        "proxy.rec",
        "guide.north1",
        "guide.north2",
        "guide.south1",
        "agent1",
        "nurse.north",
        "nurse.south",
        "nurse.glass",
        "doctor",
        "supervisor",
        "safety",
        "privacy",
        "admin",
    ] {
        tokens.insert(n, app.login(n).await);
    }
    let r = app
        .call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(json!({"username": "nurse@other.example", "password": PASSWORD})),
        )
        .await;
    let other_token = r.json()["token"].as_str().unwrap().to_owned();
    let south_id = app.me(&tokens["nurse.south"]).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let north2_id = app.me(&tokens["guide.north2"]).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Tag nurse.south in; nurse.glass breaks the glass.
    let r = app
        .post(
            &format!("/api/v1/threads/{thread}/collaborators"),
            &tokens["guide.north1"],
            json!({"user_id": south_id, "reason": "second look"}),
        )
        .await;
    assert_eq!(r.status, 201);
    // Its break-glass for member01 started two hours ago and ended one hour ago.
    let expired_nurse = careline_core::authz::Principal {
        user_id: expired.id,
        org_id: org.id,
        role: Role::Nurse,
        name: "Ed Expired".into(),
        member_id: None,
        proxy_for: vec![],
        team_ids: vec![],
        grants: vec![],
        enrolment_only: false,
    };
    store
        .break_glass(
            &expired_nurse,
            careline_core::ids::MemberId(member_id.parse().unwrap()),
            "earlier emergency".into(),
            now.checked_sub(jiff::SignedDuration::from_hours(1))
                .unwrap(),
            now.checked_sub(jiff::SignedDuration::from_hours(2))
                .unwrap(),
        )
        .await
        .unwrap();
    let r = app
        .post(
            &format!("/api/v1/members/{member_id}/break-glass"),
            &tokens["nurse.glass"],
            json!({"reason": "member at the South clinic, unwell"}),
        )
        .await;
    assert_eq!(r.status, 201);

    let sub =
        |label: &'static str, token: Option<String>, role: Option<Role>, access: bool| Subject {
            label,
            token,
            role,
            access,
            record: access,
            proxy_scope: None,
            own: false,
            same_org: true,
            north_supervisor: false,
            paged: false,
        };
    let t = |n: &str| Some(tokens[n].clone());
    let mut subjects = vec![
        Subject {
            same_org: false,
            ..sub("anonymous", None, None, false)
        },
        Subject {
            own: true,
            ..sub(
                "member01 (own)",
                Some(member.clone()),
                Some(Role::Member),
                true,
            )
        },
        sub(
            "member02 (another member)",
            t("member02"),
            Some(Role::Member),
            false,
        ),
        sub(
            "proxy07 (proxy, out of scope)",
            t("proxy07"),
            Some(Role::Proxy),
            false,
        ),
        Subject {
            proxy_scope: Some("messages"),
            record: false,
            ..sub(
                "proxy.msg (member01's proxy, messages scope)",
                t("proxy.msg"),
                Some(Role::Proxy),
                true,
            )
        },
        Subject {
            proxy_scope: Some("record"),
            record: true,
            ..sub(
                "proxy.rec (member01's proxy, record scope)",
                t("proxy.rec"),
                Some(Role::Proxy),
                false,
            )
        },
        sub(
            "guide.north1 (care team)",
            t("guide.north1"),
            Some(Role::CareGuide),
            true,
        ),
        sub(
            "guide.south1 (other team, untagged)",
            t("guide.south1"),
            Some(Role::CareGuide),
            false,
        ),
        sub(
            "agent1 (contact centre, both teams)",
            t("agent1"),
            Some(Role::Agent),
            true,
        ),
        Subject {
            paged: true,
            ..sub(
                "nurse.north (care team, paged)",
                t("nurse.north"),
                Some(Role::Nurse),
                true,
            )
        },
        sub(
            "nurse.south (other team, tagged)",
            t("nurse.south"),
            Some(Role::Nurse),
            true,
        ),
        sub(
            "nurse.glass (no team, break-glass)",
            t("nurse.glass"),
            Some(Role::Nurse),
            true,
        ),
        sub(
            "nurse.expired (break-glass expired)",
            t("nurse.expired"),
            Some(Role::Nurse),
            false,
        ),
        sub(
            "doctor (both teams)",
            t("doctor"),
            Some(Role::Physician),
            true,
        ),
        Subject {
            north_supervisor: true,
            ..sub(
                "supervisor (both teams)",
                t("supervisor"),
                Some(Role::Supervisor),
                true,
            )
        },
        sub(
            "safety (safety reviewer)",
            t("safety"),
            Some(Role::SafetyReviewer),
            false,
        ),
        sub(
            "privacy (privacy officer)",
            t("privacy"),
            Some(Role::PrivacyOfficer),
            false,
        ),
        sub("admin", t("admin"), Some(Role::Admin), false),
        Subject {
            same_org: false,
            ..sub(
                "nurse of another organization",
                Some(other_token),
                Some(Role::Nurse),
                false,
            )
        },
    ];
    subjects.sort_by_key(|s| s.paged); // the paged nurse acknowledges last

    let random = "0192f5d4-0000-7000-8000-00000000abcd";
    let fill = |path: &str| -> String {
        let id = if path.contains("/threads/") {
            &thread
        } else if path.contains("/admin/teams/") {
            // Taking guide.north2 (no subject here) off North.
            &team_north
        } else if path.contains("/members/") {
            &member_id
        } else if path.contains("/tickets/") {
            &ticket
        } else if path.contains("/messages/") {
            &message
        } else if path.contains("/attachments/") {
            &attachment
        } else if path.contains("/pages/") {
            &page
        } else if path.contains("/teams/") {
            &team_north
        } else if path.contains("/admin/users/") {
            &north2_id
        } else {
            random
        };
        path.replace("{id}", id).replace("{user_id}", &north2_id)
    };
    let body = |method: &str, path: &str| -> Option<Value> {
        if method == "GET" || method == "DELETE" {
            return None;
        }
        let p = path.strip_prefix("/api/v1").unwrap();
        Some(match p {
            "/messages" => {
                json!({"text": "matrix follow-up: also a little dizzy", "member_id": member_id})
            }
            "/calls" => {
                json!({"member_id": member_id, "notes": "pt called to confirm appointment"})
            }
            "/triage" => json!({"text": "pt c/o chest pain"}),
            "/members/{id}/break-glass" => json!({"reason": "matrix: checking access rules hold"}),
            "/threads/{id}/collaborators" => json!({"user_id": north2_id, "reason": "matrix"}),
            "/tickets/{id}/replies" => json!({"text": "matrix note", "internal": true}),
            "/tickets/{id}/assign" => json!({"staff_id": null}),
            "/tickets/{id}/transitions" => json!({"to": "open"}),
            "/tickets/{id}/priority" => json!({"priority": "emergency", "reason": "matrix"}),
            "/tickets/{id}/visits" => json!({"kind": "ed", "at": "2026-05-05T10:00:00Z"}),
            "/tickets/{id}/clearance" => {
                json!({"disposition": "emergency", "note": "matrix: confirmed, EMS called"})
            }
            "/tickets/{id}/review" => {
                json!({"note": "matrix: read it, nothing clinical to act on"})
            }
            "/tickets/{id}/judgement-marks" => {
                json!({"message_id": message, "should_be": "emergency", "note": "matrix: under-triaged"})
            }
            "/pages/{id}/ack" => json!({}),
            "/me/mfa/totp/verify" => json!({"code": "000000"}),
            "/teams/{id}/rota" => json!({"supervisors": []}),
            "/safety-reviews/{id}/resolve" | "/privacy/break-glass/{id}/review" => {
                json!({"note": "matrix"})
            }
            "/admin/teams" => json!({"name": "Matrix"}),
            "/admin/staff" => {
                json!({"username": "matrix@demo.careline", "name": "M", "role": "nope", "password": "long-enough-password"})
            }
            "/admin/members" => json!({"name": "M", "team_id": team_north}),
            "/admin/proxies" => json!({"member_id": member_id}),
            "/attachments/{id}/export" => json!({"reason": "matrix"}),
            "/messages/{id}/redact" => json!({"reason": "matrix: posted in the wrong thread"}),
            "/members/{id}/proxies" => {
                json!({"username": "nobody@demo.careline", "scope": "messages"})
            }
            "/members/{id}/consents" => {
                json!({"category": "hiv", "granted": false, "reason": "matrix"})
            }
            "/admin/settings" => json!({}),
            "/admin/webhooks" => {
                json!({"url": "ftp://nowhere", "secret": "0123456789abcdef", "events": ["page.*"]})
            }
            _ => json!({}),
        })
    };

    let mut routes = careline_web::route_table();
    // Breaking the glass grants access: do it after every other route, so
    // each caller's relationship to member01 holds for the whole walk.
    // Redacting hides member01's words: last of all.
    routes.sort_by_key(|(m, p)| {
        (
            p.ends_with("/redact"),
            *m == "POST" && p.ends_with("/break-glass"),
        )
    });
    let mut cases = 0;
    let mut failures = Vec::new();
    for (method, path) in &routes {
        for s in &subjects {
            let Some(expect) = policy(method, path, s) else {
                continue;
            };
            cases += 1;
            // Uploads name the member in the query string.
            let target = if path.ends_with("/attachments") {
                format!("{path}?member_id={member_id}")
            } else if path == "/api/v1/members" {
                format!("{path}?q=margaret")
            } else {
                fill(path)
            };
            let r = app
                .call(method, &target, s.token.as_deref(), body(method, path))
                .await;
            let text = r.text();
            let denied = matches!(r.status, 401 | 403 | 404)
                && !(r.status == 404
                    && ![
                        "thread",
                        "member",
                        "ticket",
                        "page",
                        "team",
                        "attachment",
                        "message",
                    ]
                    .iter()
                    .any(|w| text.contains(&format!("{w} not found")))
                    && expect == Expect::Allow);
            let ok = match expect {
                Expect::Allow => {
                    !denied
                        && !(r.status == 403
                            && (text.contains("not-on-care-team")
                                || text.contains("no-phi-for-role")))
                }
                Expect::Deny => {
                    matches!(r.status, 401 | 403 | 404)
                        && !text.contains("matrix-secret")
                        && !text.contains("Margaret Ellis")
                }
            };
            // Lists never show member01's ticket to someone without access.
            // Safety reviewers read the words behind clinicians' marks (each
            // listing recorded as a read).
            let may_see = s.access
                || s.paged
                || (s.record && path.starts_with("/api/v1/members/"))
                || (path == "/api/v1/judgement-marks"
                    && s.same_org
                    && matches!(s.role, Some(Role::SafetyReviewer | Role::Supervisor)));
            let leak = !may_see
                && (text.contains(&ticket)
                    || text.contains("matrix-secret")
                    || (path == "/api/v1/members" && text.contains("Margaret Ellis")));
            // Writes that answer with the member's data leak as reads do.
            let answers_with_phi = *method == "GET" || path.ends_with("/calls");
            if !ok || (leak && answers_with_phi) {
                failures.push(format!(
                    "{method} {path} as {}: expected {expect:?}, got {} {}",
                    s.label,
                    r.status,
                    text.chars().take(160).collect::<String>()
                ));
            }
        }
    }
    eprintln!(
        "authorization matrix: {} routes × {} callers = {cases} cases, {} failures",
        routes.len(),
        subjects.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} cases wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cases > 500);
}
