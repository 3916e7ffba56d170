//! Test support: spawn the app on port 0 against a temporary data directory
//! with the demo organization and a clock the test controls.

use careline::config::Settings;
use careline::httpc::{self, Response};
use careline::server::{Running, build_state, start_with};
use careline_core::clock::{Clock, FakeClock};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

pub trait ClockExt {
    fn now_ts(&self) -> jiff::Timestamp;
}

impl ClockExt for Arc<FakeClock> {
    fn now_ts(&self) -> jiff::Timestamp {
        self.now()
    }
}

pub struct App {
    pub addr: SocketAddr,
    pub clock: Arc<FakeClock>,
    pub dir: tempfile::TempDir,
    pub running: Option<Running>,
}

pub const PASSWORD: &str = "careline-demo";

/// The suite runs on the embedded database, or on PostgreSQL when
/// `CARELINE_TEST_BACKEND=postgres` (a private server started once per run,
/// a fresh database per app).
pub fn on_postgres() -> bool {
    std::env::var("CARELINE_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A test that inspects or edits the embedded database's files, or runs a
/// command that works on them, says so and steps aside on PostgreSQL.
pub fn embedded_only(why: &str) -> bool {
    if on_postgres() {
        eprintln!("not on PostgreSQL: {why}");
    }
    on_postgres()
}

static PG: std::sync::OnceLock<careline_store_pg::testing::TestPg> = std::sync::OnceLock::new();

/// A new empty PostgreSQL database for one app.
pub fn fresh_database() -> String {
    PG.get_or_init(|| {
        let pg = careline_store_pg::testing::TestPg::start()
            .expect("a private PostgreSQL for the tests");
        // Statics are never dropped: stop the server when the test process ends.
        pg.stop_when_process_exits()
            .expect("a watchdog for the test server");
        pg
    })
    .fresh_url()
    .expect("a fresh database")
}

/// A client program of the test PostgreSQL server (`pg_restore`, `psql`).
pub fn pg_tool(name: &str) -> std::path::PathBuf {
    PG.get()
        .expect("the test PostgreSQL server is started by fresh_database")
        .bin_dir()
        .join(name)
}

/// Run one SQL statement with `psql` against `url`; its output, trimmed.
pub fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new(pg_tool("psql"))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-At", "-d"])
        .arg(url)
        .arg("-c")
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Read one HTTP/1.1 request (head and a `Content-Length` body) from `s`.
pub async fn read_request(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let k = s.read(&mut chunk).await.unwrap_or(0);
        buf.extend_from_slice(&chunk[..k]);
        let text = String::from_utf8_lossy(&buf);
        let done = text.find("\r\n\r\n").is_some_and(|i| {
            let cl: usize = text
                .lines()
                .find_map(|l| {
                    l.to_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            buf.len() >= i + 4 + cl
        });
        if done || k == 0 {
            return String::from_utf8_lossy(&buf).into_owned();
        }
    }
}

/// The PostgreSQL database of the app in `dir` (on PostgreSQL only).
pub fn database_of(dir: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(dir.join("test-database-url")).ok()
}

/// The database an app in `dir` uses: remembered in the data directory so
/// that restarts and second nodes find it.
fn database_for(dir: &std::path::Path) -> Option<String> {
    if !on_postgres() {
        return None;
    }
    let file = dir.join("test-database-url");
    match std::fs::read_to_string(&file) {
        Ok(url) => Some(url),
        Err(_) => {
            let url = fresh_database();
            std::fs::write(&file, &url).unwrap();
            Some(url)
        }
    }
}

/// Webhook receivers in the tests listen on 127.0.0.1, which careline
/// refuses unless the outbound allow-list names it.
pub fn test_outbound() -> careline_core::outbound::OutboundPolicy {
    careline_core::outbound::OutboundPolicy::new(&["127.0.0.1"]).unwrap()
}

impl App {
    pub async fn spawn() -> App {
        Self::spawn_with_files(None, None, 25 * 1024 * 1024).await
    }

    /// The demo app with attachments scanned by `clamd` (if any), stored in
    /// `blobs` (default: local under the data dir), limited to `max_bytes`.
    pub async fn spawn_with_files(
        clamd: Option<String>,
        blobs: Option<careline_blob::BlobStore>,
        max_bytes: u64,
    ) -> App {
        Self::spawn_custom(clamd, blobs, max_bytes, |_| {}).await
    }

    /// The demo app with settings changed by `tweak` (timeouts, the outbound allow-list).
    pub async fn spawn_with_settings(tweak: impl FnOnce(&mut Settings)) -> App {
        Self::spawn_custom(None, None, 25 * 1024 * 1024, tweak).await
    }

    async fn spawn_custom(
        clamd: Option<String>,
        blobs: Option<careline_blob::BlobStore>,
        max_bytes: u64,
        tweak: impl FnOnce(&mut Settings),
    ) -> App {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FakeClock::new("2026-05-04T09:00:00Z".parse().unwrap()));
        let mut settings = Settings::resolve(
            None,
            Some("127.0.0.1:0".into()),
            Some(dir.path().to_path_buf()),
            None,
        )
        .unwrap();
        // The key stays in the temporary directory, so it goes away with it;
        // the tests that copy or rotate it find it there.
        settings.key_file = dir.path().join("master.key");
        settings.attachments.clamd = clamd;
        settings.attachments.max_bytes = max_bytes;
        settings.database_url = database_for(dir.path());
        settings.outbound = test_outbound();
        tweak(&mut settings);
        let (mut state, shutdown) = build_state(&settings, clock.clone() as Arc<dyn Clock>)
            .await
            .unwrap();
        if let Some(b) = blobs {
            let a = &state.attachments;
            state.attachments = Arc::new(careline_web::attachments::AttachmentConfig {
                blobs: b,
                spool: a.spool.clone(),
                max_bytes: a.max_bytes,
                max_files: a.max_files,
                scanner: a.scanner.clone(),
                wake: a.wake.clone(),
            });
        }
        careline::demo::seed(state.store.as_ref(), PASSWORD, clock.now())
            .await
            .unwrap();
        let running = start_with(settings.listen, state, shutdown).await.unwrap();
        App {
            addr: running.addr,
            clock,
            dir,
            running: Some(running),
        }
    }

    /// Upload one file as multipart form data.
    pub async fn upload(
        &self,
        token: &str,
        member_id: Option<&str>,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Response {
        self.upload_many(token, member_id, &[(file_name, content_type, bytes)])
            .await
    }

    /// Upload several files in one multipart request: (name, type, bytes).
    pub async fn upload_many(
        &self,
        token: &str,
        member_id: Option<&str>,
        files: &[(&str, &str, &[u8])],
    ) -> Response {
        let boundary = "careline-test-boundary-7d1f";
        let mut body = Vec::new();
        for (file_name, content_type, bytes) in files {
            body.extend_from_slice(format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
            ).as_bytes());
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let path = match member_id {
            Some(m) => format!("/api/v1/attachments?member_id={m}"),
            None => "/api/v1/attachments".into(),
        };
        httpc::Conn::connect(self.addr)
            .await
            .unwrap()
            .send_with_headers(
                "POST",
                &path,
                &[("Authorization", format!("Bearer {token}"))],
                &format!("multipart/form-data; boundary={boundary}"),
                &body,
            )
            .await
            .unwrap()
    }

    /// A GET with extra headers.
    pub async fn get_with(&self, path: &str, token: &str, headers: &[(&str, String)]) -> Response {
        let mut h = vec![("Authorization", format!("Bearer {token}"))];
        h.extend(headers.iter().cloned());
        httpc::Conn::connect(self.addr)
            .await
            .unwrap()
            .send_with_headers("GET", path, &h, "application/json", b"")
            .await
            .unwrap()
    }

    /// Waits (on real time, at most `secs`) until `check` holds.
    pub async fn wait_until<F, Fut>(&self, secs: u64, mut check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < end {
            if check().await {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    }

    /// Start again on an existing data directory.
    pub async fn restart(dir: tempfile::TempDir, clock: Arc<FakeClock>) -> App {
        let running = Self::node(
            dir.path(),
            clock.clone(),
            careline::workers::WorkerConfig::default(),
            |_| {},
        )
        .await;
        App {
            addr: running.addr,
            clock,
            dir,
            running: Some(running),
        }
    }

    /// A second node on the same data directory and clock (as a second process would be).
    pub async fn restart_shared(other: &App) -> App {
        Self::restart_shared_with(other, careline::workers::WorkerConfig::default()).await
    }

    /// A second node on the same data directory and clock, with worker settings `cfg`.
    pub async fn restart_shared_with(other: &App, cfg: careline::workers::WorkerConfig) -> App {
        let running = Self::node(other.dir.path(), other.clock.clone(), cfg, |_| {}).await;
        App {
            addr: running.addr,
            clock: other.clock.clone(),
            dir: tempfile::tempdir().unwrap(),
            running: Some(running),
        }
    }

    /// An app whose webhook retries come fast, for delivery tests.
    pub async fn spawn_with_fast_retries() -> App {
        let app = App::spawn().await;
        let clock = app.clock.clone();
        let dir = app.stop().await;
        let cfg = careline::workers::WorkerConfig {
            tick: std::time::Duration::from_millis(50),
            retry_base: jiff::SignedDuration::from_millis(1),
            retry_cap: jiff::SignedDuration::from_millis(5),
            max_attempts: 3,
            send_timeout: std::time::Duration::from_secs(2),
            ..careline::workers::WorkerConfig::default()
        };
        Self::restart_with(dir, clock, cfg, |_| {}).await
    }

    /// Start again on an existing data directory with worker settings `cfg`
    /// and settings changed by `tweak`.
    pub async fn restart_with(
        dir: tempfile::TempDir,
        clock: Arc<FakeClock>,
        cfg: careline::workers::WorkerConfig,
        tweak: impl FnOnce(&mut Settings),
    ) -> App {
        let running = Self::node(dir.path(), clock.clone(), cfg, tweak).await;
        App {
            addr: running.addr,
            clock,
            dir,
            running: Some(running),
        }
    }

    async fn node(
        dir: &std::path::Path,
        clock: Arc<FakeClock>,
        cfg: careline::workers::WorkerConfig,
        tweak: impl FnOnce(&mut Settings),
    ) -> Running {
        let settings = Settings::resolve(
            None,
            Some("127.0.0.1:0".into()),
            Some(dir.to_path_buf()),
            None,
        )
        .unwrap();
        let mut settings = settings;
        settings.database_url = database_for(dir);
        settings.outbound = test_outbound();
        tweak(&mut settings);
        let (state, shutdown) = build_state(&settings, clock as Arc<dyn Clock>)
            .await
            .unwrap();
        careline::server::start_full(settings.listen, state, shutdown, cfg)
            .await
            .unwrap()
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        httpc::call(self.addr, method, path, token, body.as_ref())
            .await
            .unwrap()
    }

    pub async fn login(&self, name: &str) -> String {
        let r = self
            .call(
                "POST",
                "/api/v1/sessions",
                None,
                Some(json!({"username": format!("{name}@demo.careline"), "password": PASSWORD})),
            )
            .await;
        assert_eq!(r.status, 201, "login {name}: {}", r.text());
        r.json()["token"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.call("POST", path, Some(token), Some(body)).await
    }

    /// Send a message as `member` and return the response JSON (asserting 201).
    pub async fn send(&self, token: &str, text: &str) -> Value {
        let r = self
            .post("/api/v1/messages", token, json!({"text": text}))
            .await;
        assert_eq!(r.status, 201, "send: {}", r.text());
        r.json()
    }

    /// Open the caller's event stream and wait until it says it is ready.
    pub async fn events(&self, token: &str) -> httpc::EventStream {
        let mut stream = httpc::Conn::connect(self.addr)
            .await
            .unwrap()
            .open_stream("/api/v1/events", token)
            .await
            .unwrap();
        assert_eq!(stream.status, 200);
        assert!(
            stream
                .wait_for("event: ready", std::time::Duration::from_secs(5))
                .await,
            "stream never became ready"
        );
        stream
    }

    /// Payloads (with actor and member ids) of the Demo Clinic's recorded events of one kind.
    pub async fn recorded(&self, kind: &str) -> Vec<Value> {
        let store = &self.running.as_ref().unwrap().state.store;
        let org = store.org_by_name("Demo Clinic").await.unwrap().unwrap();
        store
            .events(org.id, 0, 1_000_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| {
                let mut v: Value = serde_json::from_str(&e.payload).unwrap();
                v["actor_id"] = json!(e.actor_id);
                v["member_id"] = json!(e.member_id);
                v
            })
            .collect()
    }

    /// The node's store.
    pub fn store(&self) -> Arc<dyn careline_store::Store> {
        self.running.as_ref().unwrap().state.store.clone()
    }

    /// The PostgreSQL database this app runs on, if any.
    pub fn database_url(&self) -> Option<String> {
        database_for(self.dir.path())
    }

    pub async fn me(&self, token: &str) -> Value {
        self.get("/api/v1/me", token).await.json()
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
        self.dir
    }
}

/// Assert a problem+json response with this status and type suffix.
pub fn assert_problem(r: &Response, status: u16, type_suffix: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{}",
        r.text()
    );
    let j = r.json();
    let t = j["type"].as_str().unwrap_or_default();
    assert!(
        t.ends_with(type_suffix),
        "problem type {t} should end with {type_suffix}"
    );
    assert!(j["detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(j["status"], status);
}

/// The path of the built `careline` binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_careline")
}

/// Start `careline serve` as a child process (`cmd` holds the binary and
/// its arguments; `--listen 127.0.0.1:0` is the caller's) and wait until it
/// says where it listens. Returns the child and its URL (`http://…` or
/// `https://…`). Its output keeps being drained so it never blocks on a
/// full pipe.
#[allow(clippy::zombie_processes)] // the caller kills and waits on the child it gets back
pub fn serve_child(cmd: &mut std::process::Command) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .env("CARELINE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "careline serve exited before listening"
        );
        if let Some(url) = line
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
        {
            let url = url.to_owned();
            std::thread::spawn(move || for _ in out.lines() {});
            return (child, url);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "careline serve did not start"
        );
    }
}

/// The address in a URL `scheme://host:port`.
pub fn addr_of(url: &str) -> SocketAddr {
    url.split("://").nth(1).unwrap().parse().unwrap()
}
