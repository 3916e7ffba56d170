//! Webhooks may not point careline at loopback, link-local (cloud
//! metadata), private or shared addresses unless the outbound allow-list
//! names them: refused at registration with a 422 naming the rule, and
//! refused again at delivery, on the addresses the name resolves to then.

use crate::support::*;
use careline_core::outbound::OutboundPolicy;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const SECRET: &str = "a-webhook-secret-of-some-length";

#[tokio::test]
async fn webhooks_to_metadata_private_and_loopback_addresses_are_refused_at_registration() {
    let app = App::spawn_with_settings(|s| s.outbound = OutboundPolicy::default()).await;
    let admin = app.login("admin").await;
    for (url, why) in [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://10.1.2.3/hooks", "private"),
        ("http://[::1]:8080/hooks", "loopback"),
        ("http://localhost:9/hooks", "loopback"),
        ("http://127.0.0.1:9/hooks", "loopback"),
    ] {
        let r = app
            .post(
                "/api/v1/admin/webhooks",
                &admin,
                json!({"url": url, "secret": SECRET, "events": ["page.*"]}),
            )
            .await;
        assert_problem(&r, 422, "outbound-address-not-allowed");
        let detail = r.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(why), "{url}: {detail}");
    }
    let r = app.get("/api/v1/admin/webhooks", &admin).await;
    assert_eq!(r.json()["items"], json!([]), "nothing was registered");
    assert!(app.recorded("webhook.registered").await.is_empty());
}

#[tokio::test]
async fn the_allow_list_admits_a_named_internal_receiver_and_nothing_else() {
    let app = App::spawn_with_settings(|s| {
        s.outbound = OutboundPolicy::new(&["10.20.0.0/16"]).unwrap();
    })
    .await;
    let admin = app.login("admin").await;
    let post = |url: &'static str| {
        app.post(
            "/api/v1/admin/webhooks",
            &admin,
            json!({"url": url, "secret": SECRET, "events": ["page.*"]}),
        )
    };
    assert_eq!(post("http://10.20.1.5:8080/pager").await.status, 201);
    assert_problem(
        &post("http://10.21.1.5/pager").await,
        422,
        "outbound-address-not-allowed",
    );
}

#[tokio::test]
async fn deliveries_are_refused_when_the_address_is_no_longer_allowed() {
    // A receiver that counts every connection it gets.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let receiver = tokio::spawn(async move {
        while let Ok((_s, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
        }
    });
    // Registered while the allow-list named them all …
    let app = App::spawn_with_settings(|s| {
        s.outbound =
            OutboundPolicy::new(&["127.0.0.1", "::1", "169.254.169.254", "10.0.0.0/8"]).unwrap();
    })
    .await;
    let admin = app.login("admin").await;
    let urls = [
        format!("http://localhost:{port}/hooks"),
        format!("http://127.0.0.1:{port}/hooks"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.1.2.3/hooks".to_owned(),
        "http://[::1]:9/hooks".to_owned(),
    ];
    for url in &urls {
        let r = app
            .post(
                "/api/v1/admin/webhooks",
                &admin,
                json!({"url": url, "secret": SECRET, "events": ["page.*"]}),
            )
            .await;
        assert_eq!(r.status, 201, "{url}: {}", r.text());
    }
    // … then the node restarts with none of them allowed.
    let clock = app.clock.clone();
    let dir = app.stop().await;
    let cfg = careline::workers::WorkerConfig {
        tick: std::time::Duration::from_millis(50),
        retry_base: jiff::SignedDuration::from_millis(1),
        retry_cap: jiff::SignedDuration::from_millis(5),
        max_attempts: 2,
        send_timeout: std::time::Duration::from_secs(2),
        ..careline::workers::WorkerConfig::default()
    };
    let app = App::restart_with(dir, clock, cfg, |s| s.outbound = OutboundPolicy::default()).await;
    let admin = app.login("admin").await;
    let member = app.login("member02").await;
    app.send(
        &member,
        "crushing chest pain going down my left arm and I am sweating",
    )
    .await;
    let dead = || async {
        app.get("/api/v1/admin/webhooks/deliveries?status=dead", &admin)
            .await
            .json()["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    for _ in 0..200 {
        if dead().await.len() >= urls.len() {
            break;
        }
        // Retries come due on the app's clock.
        app.clock.advance(jiff::SignedDuration::from_millis(100));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        dead().await.len() >= urls.len(),
        "every delivery is refused and dead-lettered: {:?}",
        dead().await
    );
    for d in dead().await {
        let err = d["last_error"].as_str().unwrap_or_default();
        assert!(
            err.contains("careline does not send to"),
            "{}: {err}",
            d["url"]
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the receiver was never reached"
    );
    receiver.abort();
}
