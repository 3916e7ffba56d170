//! Login defence: repeated failures slow a username down per source
//! address instead of locking the account, answer alike for real and
//! unknown usernames, never hold back a source that has not failed, and
//! alert the privacy officers when a privileged login is under attack.

use crate::support::*;
use careline::httpc::{Conn, Response};
use serde_json::{Value, json};
use std::net::IpAddr;

/// A login attempt from the loopback address `from` (127.0.0.0/8 reaches
/// the server from any of its addresses, so each is a distinct client).
async fn login_from(app: &App, from: &str, username: &str, password: &str) -> Response {
    let ip: IpAddr = from.parse().unwrap();
    Conn::connect_from(ip, app.addr)
        .await
        .unwrap()
        .request(
            "POST",
            "/api/v1/sessions",
            None,
            Some(&json!({"username": username, "password": password})),
        )
        .await
        .unwrap()
}

/// Everything a client could tell two answers apart by.
fn answer(r: &Response) -> (u16, Value, Value, Option<String>) {
    let j = r.json();
    (
        r.status,
        j["type"].clone(),
        j["detail"].clone(),
        r.header("retry-after").map(String::from),
    )
}

const WRONG: &str = "not-the-password";

#[tokio::test]
async fn an_unknown_username_gets_exactly_the_answers_a_real_one_gets() {
    let app = App::spawn().await;
    let mut real = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..6 {
        real.push(answer(
            &login_from(&app, "127.0.0.2", "guide.south1@demo.careline", WRONG).await,
        ));
        unknown.push(answer(
            &login_from(&app, "127.0.0.3", "nobody.here@demo.careline", WRONG).await,
        ));
    }
    assert_eq!(real, unknown, "an existing account must not be told apart");
    assert_eq!(real[0].0, 401);
    assert_eq!(real[5].0, 429, "{real:?}");
    // The right password from the throttled address is refused the same way
    // (before any password check), so it reveals nothing either.
    let right =
        answer(&login_from(&app, "127.0.0.2", "guide.south1@demo.careline", PASSWORD).await);
    let other = answer(&login_from(&app, "127.0.0.3", "nobody.here@demo.careline", PASSWORD).await);
    assert_eq!(right, other);
    assert!(
        right.1.as_str().unwrap().ends_with("/login-throttled"),
        "{right:?}"
    );
}

#[tokio::test]
async fn after_three_failures_each_wait_doubles_and_passes_with_the_clock() {
    let app = App::spawn().await;
    let nurse = "nurse.south@demo.careline";
    for _ in 0..3 {
        assert_problem(
            &login_from(&app, "127.0.0.4", nurse, WRONG).await,
            401,
            "unauthenticated",
        );
    }
    let r = login_from(&app, "127.0.0.4", nurse, WRONG).await;
    assert_problem(&r, 429, "login-throttled");
    assert_eq!(r.header("retry-after"), Some("1"));
    app.clock.advance(jiff::SignedDuration::from_secs(1));
    assert_problem(
        &login_from(&app, "127.0.0.4", nurse, WRONG).await,
        401,
        "unauthenticated",
    );
    let r = login_from(&app, "127.0.0.4", nurse, PASSWORD).await;
    assert_problem(&r, 429, "login-throttled");
    assert_eq!(r.header("retry-after"), Some("2"), "twice as long");
    app.clock.advance(jiff::SignedDuration::from_secs(2));
    assert_eq!(
        login_from(&app, "127.0.0.4", nurse, PASSWORD).await.status,
        201
    );
    // Signing in starts the count over.
    assert_problem(
        &login_from(&app, "127.0.0.4", nurse, WRONG).await,
        401,
        "unauthenticated",
    );
}

#[tokio::test]
async fn a_clinician_signs_in_from_her_own_address_while_another_address_guesses_her_password() {
    let app = App::spawn().await;
    let nurse = "nurse.north@demo.careline";
    let mut failures = 0;
    while failures < 12 {
        let r = login_from(&app, "127.0.0.5", nurse, WRONG).await;
        match r.status {
            401 => failures += 1,
            429 => {
                let wait: i64 = r.header("retry-after").unwrap().parse().unwrap();
                app.clock.advance(jiff::SignedDuration::from_secs(wait));
            }
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    // The attacker's address is held back even with the right password …
    assert_problem(
        &login_from(&app, "127.0.0.5", nurse, PASSWORD).await,
        429,
        "login-throttled",
    );
    // … while the nurse, on her own device, signs in at once.
    let r = login_from(&app, "127.0.0.6", nurse, PASSWORD).await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test]
async fn repeated_failures_on_a_privileged_login_alert_the_privacy_officers() {
    let app = App::spawn().await;
    let privacy = app.login("privacy").await;
    let mut stream = app.events(&privacy).await;
    // Twelve failures for the administrator, three from each of four addresses
    // (each within its free failures, so only the account-wide count tells).
    for i in 0..12 {
        let from = format!("127.0.1.{}", i % 4 + 1);
        assert_eq!(
            login_from(&app, &from, "admin@demo.careline", WRONG)
                .await
                .status,
            401
        );
    }
    // The same for a care guide: no alert, the role is not privileged.
    for i in 0..12 {
        let from = format!("127.0.2.{}", i % 4 + 1);
        assert_eq!(
            login_from(&app, &from, "guide.north1@demo.careline", WRONG)
                .await
                .status,
            401
        );
    }
    assert!(
        stream
            .wait_for("privacy.login_attack", std::time::Duration::from_secs(10))
            .await,
        "the privacy officer's console hears of it: {}",
        stream.seen
    );
    assert!(
        app.wait_until(10, || async {
            app.recorded("session.login_failed").await.len() == 24
        })
        .await,
        "every failure is recorded"
    );
    let alerts = app.recorded("privacy.login_attack").await;
    assert_eq!(
        alerts.len(),
        1,
        "one alert a window, none for the guide: {alerts:?}"
    );
    assert_eq!(alerts[0]["role"], "admin");
    assert_eq!(alerts[0]["failures"], 10);
}
