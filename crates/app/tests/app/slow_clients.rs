//! Slow and silent clients are cut off: real sockets on 127.0.0.1 that send
//! nothing, dribble their headers or their body, or leave a keep-alive
//! connection open, against a server whose limits are set to a second or
//! two. The event stream is exempt from the per-request limit and stays
//! open, kept alive by comments.

use crate::support::*;
use careline_web::limits::Timeouts;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn short(header: u64, body: u64, keep_alive: u64, request: u64) -> Timeouts {
    Timeouts {
        header: Duration::from_secs(header),
        body: Duration::from_secs(body),
        keep_alive: Duration::from_secs(keep_alive),
        request: Duration::from_secs(request),
        ..Timeouts::default()
    }
}

async fn app_with(t: Timeouts) -> App {
    App::spawn_with_settings(|s| s.timeouts = t).await
}

/// Write `head` at once, then `drip` one byte every `every` until the
/// server closes the connection; returns what the server sent and how long
/// the connection lasted (at most `give_up`).
async fn dribble(
    addr: std::net::SocketAddr,
    head: &[u8],
    drip: &[u8],
    every: Duration,
    give_up: Duration,
) -> (String, Duration) {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    if !head.is_empty() {
        wr.write_all(head).await.unwrap();
    }
    let drip = drip.to_vec();
    let writer = tokio::spawn(async move {
        for b in drip {
            tokio::time::sleep(every).await;
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
        }
        // Nothing more to send: keep the socket open and say nothing.
        std::future::pending::<()>().await;
    });
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + give_up;
    loop {
        match tokio::time::timeout_at(end, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
    writer.abort();
    (
        String::from_utf8_lossy(&seen).into_owned(),
        started.elapsed(),
    )
}

const GIVE_UP: Duration = Duration::from_secs(12);

#[tokio::test]
async fn a_client_that_connects_and_sends_nothing_is_disconnected() {
    let app = app_with(short(1, 2, 5, 5)).await;
    let (seen, lasted) = dribble(app.addr, b"", b"", Duration::ZERO, GIVE_UP).await;
    assert!(
        lasted < Duration::from_secs(4),
        "open for {lasted:?}: {seen}"
    );
    assert!(!seen.contains(" 200 "), "{seen}");
}

#[tokio::test]
async fn a_client_sending_its_headers_a_byte_at_a_time_is_disconnected() {
    let app = app_with(short(2, 5, 5, 5)).await;
    let (seen, lasted) = dribble(
        app.addr,
        b"GET /healthz HTTP/1.1\r\n",
        b"Host: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
        Duration::from_millis(300),
        GIVE_UP,
    )
    .await;
    assert!(
        lasted < Duration::from_secs(5),
        "open for {lasted:?}: {seen}"
    );
    assert!(!seen.contains(" 200 "), "{seen}");
}

#[tokio::test]
async fn a_client_sending_its_body_a_byte_at_a_time_is_answered_408_and_disconnected() {
    let app = app_with(short(5, 2, 5, 10)).await;
    let body = br#"{"username":"nurse.north@demo.careline","password":"careline-demo","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    let head = format!(
        "POST /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (seen, lasted) = dribble(
        app.addr,
        head.as_bytes(),
        body,
        Duration::from_millis(300),
        GIVE_UP,
    )
    .await;
    assert!(
        lasted < Duration::from_secs(5),
        "open for {lasted:?}: {seen}"
    );
    assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
    assert!(seen.contains("request-timeout"), "{seen}");
}

#[tokio::test]
async fn a_request_not_answered_within_the_request_limit_is_abandoned() {
    // The body limit is generous here, so it is the per-request limit that ends it.
    let app = app_with(short(5, 30, 30, 2)).await;
    let body = br#"{"username":"nurse.north@demo.careline","password":"careline-demo","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    let head = format!(
        "POST /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (seen, lasted) = dribble(
        app.addr,
        head.as_bytes(),
        body,
        Duration::from_millis(300),
        GIVE_UP,
    )
    .await;
    assert!(
        lasted < Duration::from_secs(5),
        "open for {lasted:?}: {seen}"
    );
    assert!(seen.starts_with("HTTP/1.1 503"), "{seen}");
    assert!(seen.contains("request-timeout"), "{seen}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = app_with(short(10, 10, 1, 10)).await;
    let started = Instant::now();
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(GIVE_UP, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("HTTP/1.1 200"), "answered first: {seen}");
    let lasted = started.elapsed();
    assert!(
        lasted < Duration::from_secs(4),
        "kept open for {lasted:?} though idle"
    );
}

#[tokio::test]
async fn an_event_stream_outlives_the_request_limit_and_is_kept_alive() {
    let app = app_with(short(1, 1, 1, 1)).await;
    let nurse = app.login("nurse.north").await;
    let mut stream = app.events(&nurse).await;
    // Three seconds: past the request and keep-alive limits.
    assert!(
        !stream
            .wait_for("no such thing", Duration::from_secs(3))
            .await
    );
    let pings = stream.seen.matches(":\n\n").count();
    assert!(
        pings >= 2,
        "keep-alive comments while quiet: {:?}",
        stream.seen
    );
    let member = app.login("member01").await;
    app.send(
        &member,
        "Could you send a refill of my blood pressure pills?",
    )
    .await;
    assert!(
        stream
            .wait_for("message.created", Duration::from_secs(5))
            .await,
        "the stream is still open: {:?}",
        stream.seen
    );
}

#[tokio::test]
async fn a_silent_client_of_the_tls_listener_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("CARELINE_HEADER_TIMEOUT_SECS", "1")
        .env("CARELINE_KEEP_ALIVE_TIMEOUT_SECS", "1");
    if let Some(url) = database_of(dir.path()) {
        cmd.env("CARELINE_DATABASE_URL", url);
    }
    let (mut child, url) = serve_child(&mut cmd);
    let (seen, lasted) = dribble(addr_of(&url), b"", b"", Duration::ZERO, GIVE_UP).await;
    // A client that starts a handshake and stalls is cut off the same way.
    let (_, stalled) = dribble(
        addr_of(&url),
        &[0x16, 0x03, 0x01],
        b"",
        Duration::ZERO,
        GIVE_UP,
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        lasted < Duration::from_secs(4),
        "open for {lasted:?}: {seen}"
    );
    assert!(stalled < Duration::from_secs(4), "open for {stalled:?}");
}
