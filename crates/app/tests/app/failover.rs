//! Two careline processes on one PostgreSQL database: one is killed with
//! SIGKILL under load and while pages wait for their deadline. Every
//! acknowledged message must be in the record exactly once, every page must
//! escalate exactly once (by the survivor), the chain must verify, and an
//! event stream on the surviving node must keep receiving events.

use crate::support::*;
use careline::httpc::{self, Conn};
use careline_store::Store;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "5f0a1c2e3d4b5a6978877665544332211000ffeeddccbbaa9988776655443322";

fn start_node(dir: &std::path::Path, url: &str) -> (Child, SocketAddr) {
    let (child, at) = serve_child(
        Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("CARELINE_DATABASE_URL", url)
            .env("CARELINE_MASTER_KEY", KEY),
    );
    (child, addr_of(&at))
}

async fn login(addr: SocketAddr, name: &str) -> String {
    let r = httpc::call(
        addr,
        "POST",
        "/api/v1/sessions",
        None,
        Some(&json!({"username": format!("{name}@demo.careline"), "password": PASSWORD})),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_a_node_killed_mid_load_and_mid_escalation_loses_nothing_and_fires_nothing_twice()
{
    if !on_postgres() {
        eprintln!("runs with CARELINE_TEST_BACKEND=postgres only: it needs a shared database");
        return;
    }
    let url = fresh_database();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let seeded = Command::new(bin())
        .args(["demo", "--data-dir"])
        .arg(dir_a.path())
        .env("CARELINE_DATABASE_URL", &url)
        .env("CARELINE_MASTER_KEY", KEY)
        .output()
        .unwrap();
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let (mut a, addr_a) = start_node(dir_a.path(), &url);
    let (mut b, addr_b) = start_node(dir_b.path(), &url);

    // Pages go unacknowledged for one minute before they climb.
    let admin = login(addr_a, "admin").await;
    let mut settings = httpc::call(addr_a, "GET", "/api/v1/admin/settings", Some(&admin), None)
        .await
        .unwrap()
        .json();
    settings["ack"]["emergency_minutes"] = json!(1);
    let r = httpc::call(
        addr_a,
        "PUT",
        "/api/v1/admin/settings",
        Some(&admin),
        Some(&settings),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    // The North nurse watches node B, the one that will survive.
    let nurse = login(addr_b, "nurse.north").await;
    let mut stream = Conn::connect(addr_b)
        .await
        .unwrap()
        .open_stream("/api/v1/events", &nurse)
        .await
        .unwrap();
    assert!(
        stream
            .wait_for("event: ready", Duration::from_secs(10))
            .await
    );

    // Emergencies through node A: their pages wait on the clock.
    let mut pages = Vec::new();
    for n in 1..=3 {
        let t = login(addr_a, &format!("member{n:02}")).await;
        let r = httpc::call(
            addr_a,
            "POST",
            "/api/v1/messages",
            Some(&t),
            Some(&json!({"text": "crushing chest pain and sweating for twenty minutes"})),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 201, "{}", r.text());
        pages.push(r.json()["page"]["id"].as_str().unwrap().to_owned());
    }

    // Load on both nodes: members 4–10 alternate between A and B.
    let acked: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let mut workers = Vec::new();
    for n in 4..=10usize {
        let addr = if n % 2 == 0 { addr_a } else { addr_b };
        let token = login(addr, &format!("member{n:02}")).await;
        let acked = acked.clone();
        workers.push(tokio::spawn(async move {
            let Ok(mut c) = Conn::connect(addr).await else {
                return;
            };
            for k in 0..400 {
                let text = format!("failover member {n} message {k}: refill for my inhaler please");
                match c
                    .request(
                        "POST",
                        "/api/v1/messages",
                        Some(&token),
                        Some(&json!({"text": text})),
                    )
                    .await
                {
                    Ok(r) if r.status == 201 => {
                        acked.lock().unwrap().insert(text, n);
                    }
                    _ => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.kill().unwrap(); // SIGKILL, mid-load and before any page's deadline
    a.wait().unwrap();
    let killed_at = stream.seen.len();
    for w in workers {
        let _ = w.await;
    }

    // The survivor escalates every page once its deadline passes.
    let escalated = stream
        .wait_for("page.escalated", Duration::from_secs(120))
        .await;
    assert!(escalated, "the surviving node never escalated a page");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        stream.seen.len() > killed_at,
        "the stream on the surviving node went quiet"
    );
    b.kill().unwrap();
    b.wait().unwrap();

    // The record: read it straight from the shared database.
    let master = careline_crypto::MasterKey::parse(KEY).unwrap();
    let store = careline_store_pg::PgStore::connect(&url, master, 2)
        .await
        .unwrap();
    let org = store.org_by_name("Demo Clinic").await.unwrap().unwrap();
    let events = store.events(org.id, 0, 10_000_000).await.unwrap();
    let mut digests: HashMap<String, usize> = HashMap::new();
    for e in events.iter().filter(|e| e.kind == "message.created") {
        let v: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
        if let Some(d) = v["text_sha256"].as_str() {
            *digests.entry(d.to_owned()).or_default() += 1;
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "too little load to mean anything: {}",
        acked.len()
    );
    for text in acked.keys() {
        let d = careline_core::ingest::text_digest(text);
        assert_eq!(
            digests.get(&d).copied(),
            Some(1),
            "acknowledged message not exactly once: {text}"
        );
    }
    for page in &pages {
        let rungs: Vec<&str> = events
            .iter()
            .filter(|e| e.kind == "page.escalated" && e.payload.contains(page.as_str()))
            .map(|e| e.payload.as_str())
            .collect();
        assert_eq!(
            rungs.len(),
            1,
            "page {page} escalated {} times: {rungs:?}",
            rungs.len()
        );
    }
    let reports = store.verify_chains().await.unwrap();
    assert!(reports.iter().all(|r| r.error.is_none()), "{reports:?}");
    eprintln!(
        "failover: {} acknowledged messages each recorded once, {} pages escalated once each by the survivor, {} events verify",
        acked.len(),
        pages.len(),
        events.len()
    );
}
