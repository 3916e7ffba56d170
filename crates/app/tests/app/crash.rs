//! Durability under SIGKILL: the real binary is killed at random moments
//! while members send messages; every acknowledged message must be present
//! exactly once afterwards and the event chain must verify.

use crate::support::*;
use careline::httpc::{self, Conn};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    addr: SocketAddr,
}

fn start(dir: &std::path::Path) -> Server {
    let (child, url) = serve_child(
        Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            // The key stays in the temporary directory and goes away with it.
            .env("CARELINE_MASTER_KEY_FILE", dir.join("master.key")),
    );
    Server {
        child,
        addr: addr_of(&url),
    }
}

/// A small deterministic generator, seeded per run so failures can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_sigkill_loses_no_acknowledged_message_and_chain_verifies() {
    if embedded_only("runs the binary on the data directory") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seeded = Command::new(bin())
        .args(["demo", "--data-dir"])
        .arg(dir.path())
        .env("CARELINE_MASTER_KEY_FILE", dir.path().join("master.key"))
        .output()
        .unwrap();
    assert!(seeded.status.success());
    let members = 8;
    let server = start(dir.path());
    let mut tokens = Vec::new();
    for n in 1..=members {
        let r = httpc::call(
            server.addr,
            "POST",
            "/api/v1/sessions",
            None,
            Some(&json!({"username": format!("member{n:02}@demo.careline"), "password": PASSWORD})),
        )
        .await
        .unwrap();
        tokens.push(r.json()["token"].as_str().unwrap().to_owned());
    }
    let mut server = Some(server);
    let acked: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let rounds = 20;
    for round in 0..rounds {
        let s = server.take().unwrap_or_else(|| start(dir.path()));
        let addr = s.addr;
        let mut workers = Vec::new();
        for (w, token) in tokens.iter().enumerate() {
            let token = token.clone();
            let acked = acked.clone();
            workers.push(tokio::spawn(async move {
                let Ok(mut c) = Conn::connect(addr).await else {
                    return;
                };
                for k in 0.. {
                    let text = format!(
                        "crash-test round {round} member {w} message {k}: need a refill please"
                    );
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
                            acked.lock().unwrap().insert(text, w);
                        }
                        _ => return,
                    }
                }
            }));
        }
        let kill_after = Duration::from_millis(100 + rng.next() % 500);
        tokio::time::sleep(kill_after).await;
        let mut s = s;
        s.child.kill().unwrap(); // SIGKILL
        s.child.wait().unwrap();
        for w in workers {
            let _ = w.await;
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > rounds * 10,
        "the load actually ran (acked {})",
        acked.len()
    );

    // Every acknowledged message is there exactly once; nothing is there twice.
    let mut s = start(dir.path());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for token in &tokens {
        let list = httpc::call(s.addr, "GET", "/api/v1/tickets", Some(token), None)
            .await
            .unwrap()
            .json();
        let thread = list["items"][0]["thread_id"].as_str().unwrap().to_owned();
        let t = httpc::call(
            s.addr,
            "GET",
            &format!("/api/v1/threads/{thread}"),
            Some(token),
            None,
        )
        .await
        .unwrap()
        .json();
        for m in t["messages"].as_array().unwrap() {
            *seen
                .entry(m["text"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    for text in acked.keys() {
        assert_eq!(
            seen.get(text),
            Some(&1),
            "acknowledged message lost or duplicated (seed {seed}): {text}"
        );
    }
    assert!(
        seen.values().all(|n| *n == 1),
        "a message was stored twice (seed {seed})"
    );
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let v = Command::new(bin())
        .args(["audit", "verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "chain after {rounds} SIGKILLs: {}",
        String::from_utf8_lossy(&v.stdout)
    );
    eprintln!(
        "crash test: {rounds} SIGKILLs, {} acknowledged messages all present once (seed {seed})",
        acked.len()
    );
}

#[test]
fn graceful_shutdown_on_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path());
    let pid = s.child.id();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            assert!(st.success(), "exit status after SIGTERM: {st}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_terminates_tls_and_sends_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let (mut child, url) = serve_child(
        Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .arg("--data-dir")
            .arg(dir.path().join("data")),
    );
    assert!(url.starts_with("https://"), "{url}");
    let r = Command::new("curl")
        .args(["-s", "-i", "--cacert"])
        .arg(&cert)
        .arg(format!("{url}/healthz"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&r.stdout).to_lowercase();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        text.starts_with("http/1.1 200") || text.starts_with("http/2 200"),
        "{text}"
    );
    assert!(
        text.contains("strict-transport-security: max-age=31536000"),
        "{text}"
    );
    // Plain HTTP to the TLS port gets nothing useful.
    let plain = url.replacen("https://", "http://", 1);
    let r = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{plain}/healthz"),
        ])
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&r.stdout), "200");
}
