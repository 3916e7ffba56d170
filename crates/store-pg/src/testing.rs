//! A private PostgreSQL 15 server for tests: `initdb` into a temporary
//! directory, started on a free loopback port, a fresh database per call of
//! [`TestPg::fresh_url`], stopped when the [`TestPg`] is dropped.
//!
//! It needs the Debian `postgresql-15` binaries (`apt-get install -y
//! postgresql-15`), found in `/usr/lib/postgresql/15/bin` unless
//! `CARELINE_PG_BIN` names another directory. `initdb` refuses to run as
//! root, so as root the server runs as the `postgres` user (through
//! `runuser`) in a directory handed over to it.
//!
//! [`Options::tls`] makes the server offer TLS with a certificate the test
//! made, so clients can be tried with every `sslmode`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where Debian installs the server binaries.
const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";

/// How to start a [`TestPg`]; the default is a plain server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Offer TLS (besides plain connections) with this certificate and key.
    pub tls: Option<ServerTls>,
}

/// A server certificate chain and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A running throw-away server.
pub struct TestPg {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
    tls: bool,
    next_db: AtomicU32,
    /// Removed (with the cluster in it) after the server stops.
    _dir: tempfile::TempDir,
}

impl TestPg {
    /// Create a cluster and start it. Takes about a second.
    pub fn start() -> Result<TestPg, String> {
        Self::start_with(Options::default())
    }

    /// Create a cluster and start it with `options`.
    pub fn start_with(options: Options) -> Result<TestPg, String> {
        let bin = std::env::var_os("CARELINE_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN));
        if !bin.join("initdb").exists() {
            return Err(format!(
                "no initdb in {}: install postgresql-15 (apt-get install -y postgresql-15) or set CARELINE_PG_BIN",
                bin.display()
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("careline-pg-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path()))?;
        }
        if let Some(tls) = &options.tls {
            // The server reads its key only if no one else may.
            for (name, pem) in [("server.crt", &tls.cert_pem), ("server.key", &tls.key_pem)] {
                let path = dir.path().join(name);
                std::fs::write(&path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
                run(Command::new("chmod").arg("600").arg(&path))?;
                if as_postgres {
                    run(Command::new("chown").arg("postgres:postgres").arg(&path))?;
                }
            }
        }
        let data = dir.path().join("data");
        let mut pg = TestPg {
            bin,
            data,
            port: 0,
            as_postgres,
            tls: options.tls.is_some(),
            next_db: AtomicU32::new(0),
            _dir: dir,
        };
        pg.initdb()?;
        // A port found free may be taken before the server binds it: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            pg.port = free_port()?;
            match pg.pg_ctl_start() {
                Ok(()) => return Ok(pg),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the server's binaries (`pg_restore`, `psql`, …).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// A new, empty database, as a connection URL.
    pub fn fresh_url(&self) -> Result<String, String> {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("careline_test_{n}");
        let mut cmd = self.command("createdb");
        cmd.arg("-h")
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-U")
            .arg("postgres")
            .arg(&name);
        run(&mut cmd)?;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
    }

    /// For a server kept in a `static` (never dropped): a small watchdog
    /// process stops it and removes its directory once this process ends.
    pub fn stop_when_process_exits(&self) -> Result<(), String> {
        let owner = std::process::id();
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- {} -D {} -m immediate stop",
                pg_ctl.display(),
                self.data.display()
            )
        } else {
            format!(
                "{} -D {} -m immediate stop",
                pg_ctl.display(),
                self.data.display()
            )
        };
        let script = format!(
            "while kill -0 {owner} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {}",
            self.socket_dir().display()
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|e| format!("cannot start the watchdog: {e}"))
    }

    fn socket_dir(&self) -> &Path {
        self.data.parent().unwrap_or(&self.data)
    }

    /// `name` from the server's binaries, as the `postgres` user when we are root.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.arg("-u").arg("postgres").arg("--").arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn initdb(&self) -> Result<(), String> {
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .args(["--locale=C.UTF-8", "--no-sync"]);
        run(&mut cmd)
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        // Durability is pointless for a throw-away cluster; many tests run at once.
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.socket_dir().display()
        );
        if self.tls {
            let dir = self.socket_dir();
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                dir.join("server.crt").display(),
                dir.join("server.key").display()
            ));
        }
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-w")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.socket_dir().join("server.log"))
            .arg("-o")
            .arg(options)
            .arg("start");
        run(&mut cmd)
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        if let Err(e) = run(&mut cmd) {
            eprintln!("stopping the test PostgreSQL server: {e}");
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("free port: {e}"))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
