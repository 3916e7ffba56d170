//! A real S3-compatible server for tests: moto's `moto_server`, run as a
//! child process on a free loopback port.
//!
//! # Installing moto
//!
//! ```text
//! python3 -m venv target/test-tools/moto
//! target/test-tools/moto/bin/pip install 'moto[s3]' flask flask-cors
//! ```
//!
//! [`TestS3::start`] looks for the server, in order:
//!
//! 1. the path in the environment variable `CARELINE_TEST_MOTO`;
//! 2. `target/test-tools/moto/bin/moto_server` in the workspace (the venv
//!    above, created from the workspace root);
//! 3. `moto_server` on `PATH`.
//!
//! moto keeps objects in memory and accepts any credentials.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{BlobError, BlobStore, S3Config};

/// Environment variable naming the `moto_server` executable.
pub const MOTO_ENV: &str = "CARELINE_TEST_MOTO";
/// Where the workspace's test venv keeps `moto_server`, relative to the
/// workspace root.
pub const WORKSPACE_MOTO: &str = "target/test-tools/moto/bin/moto_server";
/// How to install moto into that venv, from the workspace root.
pub const INSTALL_HINT: &str = "python3 -m venv target/test-tools/moto && target/test-tools/moto/bin/pip install 'moto[s3]' flask flask-cors (or set CARELINE_TEST_MOTO to a moto_server executable)";

const BUCKET: &str = "careline-test";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const ACCESS_KEY: &str = "careline-test-key";
const SECRET_KEY: &str = "careline-test-secret";

/// A running moto S3 server with one bucket. Dropping it stops the server.
#[derive(Debug)]
pub struct TestS3 {
    child: Option<Child>,
    endpoint: String,
    log: PathBuf,
}

impl TestS3 {
    /// Finds `moto_server`, starts it on a free port of 127.0.0.1, waits
    /// until it answers (up to 60 s) and creates the bucket. The error says
    /// how to install moto when it is missing.
    pub fn start() -> Result<Self, String> {
        let program = find_moto()?;
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("careline-moto-{port}.log"));
        let log_file = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err_file = log_file
            .try_clone()
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let mut server = Self {
            child: Some(child),
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        server.wait_ready(addr)?;
        let status = http(addr, "PUT", &format!("/{BUCKET}"))
            .map_err(|e| format!("creating the test bucket: {e}"))?;
        if status != 200 {
            return Err(format!(
                "creating the test bucket: moto answered HTTP {status}"
            ));
        }
        Ok(server)
    }

    fn wait_ready(&mut self, addr: SocketAddr) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "moto_server exited with {status} before answering; its output:\n{}",
                    self.log_tail()
                ));
            }
            if http(addr, "GET", "/").is_ok() {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "moto_server did not answer on {addr} within {} s; its output:\n{}",
                    READY_TIMEOUT.as_secs(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .get(lines.len().saturating_sub(20)..)
            .unwrap_or_default()
            .join("\n")
    }

    /// The server's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The bucket the server was started with.
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// A `blob_store` URL for [`BlobStore::from_url`] (credentials still
    /// come from the environment; see [`TestS3::env`]).
    pub fn url(&self, prefix: &str) -> String {
        format!(
            "s3://{BUCKET}/{prefix}?endpoint={}&region=us-east-1",
            self.endpoint
        )
    }

    /// An environment lookup holding test credentials, for
    /// [`BlobStore::from_url_with_env`].
    pub fn env(name: &str) -> Option<String> {
        match name {
            "CARELINE_S3_ACCESS_KEY_ID" => Some(ACCESS_KEY.to_owned()),
            "CARELINE_S3_SECRET_ACCESS_KEY" => Some(SECRET_KEY.to_owned()),
            _ => None,
        }
    }

    /// Configuration for the bucket, under `prefix`.
    pub fn config(&self, prefix: &str) -> S3Config {
        S3Config {
            bucket: BUCKET.to_owned(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".to_owned(),
            access_key_id: ACCESS_KEY.to_owned(),
            secret_access_key: SECRET_KEY.to_owned(),
            allow_http: true,
            prefix: prefix.to_owned(),
        }
    }

    /// A blob store on the bucket, under `prefix`.
    pub fn store(&self, prefix: &str) -> Result<BlobStore, BlobError> {
        BlobStore::s3(self.config(prefix))
    }

    /// Stops the server now (to test an unreachable store).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn find_moto() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(MOTO_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{MOTO_ENV} is {}, which is not a file",
                path.display()
            ))
        };
    }
    // This crate sits at <workspace>/crates/blob.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = workspace.join(WORKSPACE_MOTO);
    if venv.is_file() {
        return Ok(venv);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| format!("moto_server not found; install it: {INSTALL_HINT}"))
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// One bodiless HTTP/1.1 request; returns the status code. Enough to probe
/// moto and create a bucket, which needs no signature.
fn http(addr: SocketAddr, method: &str, path: &str) -> Result<u16, String> {
    let timeout = Duration::from_secs(5);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("{addr}: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    text.strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{addr}: not an HTTP response"))
}
