//! Background workers under their supervisor: readiness follows the
//! critical ones, the event relay recovers from a lost connection without
//! losing a banner, and webhook leases are renewed so that two nodes never
//! send one delivery twice.

use crate::support::*;
use careline::workers::WorkerConfig;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const EMERGENCY: &str = "crushing chest pain going down my left arm and I am sweating";
const WAIT: Duration = Duration::from_secs(15);

async fn readyz(app: &App) -> u16 {
    app.call("GET", "/readyz", None, None).await.status
}

#[tokio::test]
async fn readiness_and_metrics_show_every_background_worker() {
    let app = App::spawn().await;
    assert!(
        app.wait_until(5, || async { readyz(&app).await == 200 })
            .await
    );
    let r = app.call("GET", "/metrics", None, None).await;
    let text = r.text();
    for line in [
        "careline_worker_up{worker=\"escalation-clock\",critical=\"true\"} 1",
        "careline_worker_up{worker=\"webhook-sender\",critical=\"false\"} 1",
        "careline_worker_restarts_total{worker=\"escalation-clock\"} 0",
        "careline_worker_heartbeat_age_seconds{worker=\"escalation-clock\"}",
    ] {
        assert!(text.contains(line), "metrics lack {line}:\n{text}");
    }
    if on_postgres() {
        assert!(text.contains("careline_worker_up{worker=\"event-relay\",critical=\"true\"} 1"));
    }
    app.stop().await;
}

/// A receiver that takes `app_secs` of the shared clock per delivery (a
/// slow receiver, in the app's time) and records each delivery id it gets.
async fn slow_receiver(
    clock: Arc<careline_core::clock::FakeClock>,
    app_secs: i64,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let text = read_request(&mut s).await;
            if let Some(id) = text.lines().find_map(|l| {
                l.to_lowercase()
                    .starts_with("x-careline-delivery:")
                    .then(|| l.split_once(':').unwrap().1.trim().to_owned())
            }) {
                seen.lock().unwrap().push(id);
            }
            clock.advance(jiff::SignedDuration::from_secs(app_secs));
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _ = s
                .write_all(
                    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
    });
    (addr, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_and_a_slow_receiver_get_each_webhook_delivery_once() {
    let app = App::spawn().await;
    let admin = app.login("admin").await;
    let member = app.login("member02").await;
    let clock = app.clock.clone();
    // Each delivery takes the receiver 40 s of the shared clock: a claim of
    // several deliveries under a 60 s lease outlives its lease by the third
    // unless the sender renews what it still holds.
    let (addr, got) = slow_receiver(clock.clone(), 40).await;
    let r = app
        .post(
            "/api/v1/admin/webhooks",
            &admin,
            json!({"url": format!("http://{addr}/hooks"), "secret": "slow-receiver-secret", "events": ["message.*", "ticket.*"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Queue the deliveries while no sender runs, then start two nodes.
    let dir = app.stop().await;
    let cfg = WorkerConfig {
        tick: Duration::from_millis(20),
        send_timeout: Duration::from_secs(5),
        ..WorkerConfig::default()
    };
    let a = App::restart_with(dir, clock.clone(), cfg.clone(), |_| {}).await;
    for i in 0..6 {
        a.send(
            &member,
            &format!("question {i} about my appointment next week"),
        )
        .await;
    }
    let b = App::restart_shared_with(&a, cfg).await;
    let store = a.store();
    let org = store.org_by_name("Demo Clinic").await.unwrap().unwrap();
    let expected = store
        .events(org.id, 0, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.starts_with("message.") || e.kind.starts_with("ticket."))
        .count();
    assert!(
        expected >= 6,
        "enough deliveries to span several leases: {expected}"
    );
    assert!(
        a.wait_until(60, || async { got.lock().unwrap().len() >= expected })
            .await,
        "not all delivered: {} of {expected}",
        got.lock().unwrap().len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids = got.lock().unwrap().clone();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        ids.len(),
        unique.len(),
        "a delivery reached the receiver twice: {ids:?}"
    );
    assert_eq!(unique.len(), expected);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_relay_connection_makes_the_node_unready_and_banners_resume_when_it_recovers() {
    if !on_postgres() {
        eprintln!(
            "runs with CARELINE_TEST_BACKEND=postgres only: the relay carries events between nodes on one database"
        );
        return;
    }
    let a = App::spawn().await;
    let cfg = WorkerConfig {
        restart: careline::supervisor::Backoff {
            base: Duration::from_secs(3),
            cap: Duration::from_secs(3),
        },
        ..WorkerConfig::default()
    };
    let b = App::restart_shared_with(&a, cfg).await;
    assert!(b.wait_until(5, || async { readyz(&b).await == 200 }).await);
    let nurse = b.login("nurse.north").await;
    let mut banners = b.events(&nurse).await;

    // Cut every connection listening for other nodes' commits.
    let url = a.database_url().unwrap();
    psql(
        &url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'",
    );
    assert!(
        b.wait_until(5, || async { readyz(&b).await == 503 }).await,
        "a node whose relay is down still says it is ready"
    );
    let why = b.call("GET", "/readyz", None, None).await.json();
    assert!(
        why["detail"].as_str().unwrap_or("").contains("event-relay"),
        "{why}"
    );

    // A red flag raised on the other node while this one is not listening…
    let member = a.login("member01").await;
    let out = a.send(&member, EMERGENCY).await;
    let ticket = out["ticket"]["id"].as_str().unwrap().to_owned();
    // …reaches this node's nurse once the relay is back, and it is ready again.
    assert!(
        banners.wait_for(&ticket, WAIT).await,
        "the banner never arrived after the relay recovered: {}",
        banners.seen
    );
    assert!(b.wait_until(10, || async { readyz(&b).await == 200 }).await);
    let metrics = b.call("GET", "/metrics", None, None).await.text();
    assert!(
        metrics.contains("careline_worker_restarts_total{worker=\"event-relay\"} 1"),
        "{metrics}"
    );
    b.stop().await;
    a.stop().await;
}
