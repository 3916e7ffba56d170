//! A throwaway clamd for tests (feature `testing`).
//!
//! [`TestClamd`] runs the real ClamAV daemon in the foreground with a
//! private configuration and a signature database written at start-up that
//! only knows the EICAR test file, so it needs no downloaded signatures. It
//! needs the `clamav-daemon` package (`apt-get install clamav-daemon`).

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::{ClamdAddr, EICAR};

/// How long clamd gets to load its database and answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Name of the whole-file (MD5) signature for EICAR. clamd reports it with
/// `.UNOFFICIAL` appended.
pub const EICAR_HASH_SIGNATURE: &str = "Careline-Test-EICAR";
/// Name of the body signature that finds EICAR inside larger files.
pub const EICAR_BODY_SIGNATURE: &str = "Careline-Test-EICAR-Body";

/// A running clamd, killed when dropped.
#[derive(Debug)]
pub struct TestClamd {
    dir: tempfile::TempDir,
    binary: PathBuf,
    addr: ClamdAddr,
    child: Option<Child>,
}

impl TestClamd {
    /// Starts clamd listening on a Unix socket in a fresh temporary
    /// directory and waits until it answers PING.
    pub fn start() -> Result<TestClamd, String> {
        Self::launch(Transport::Unix)
    }

    /// Starts clamd listening on TCP at 127.0.0.1 on a free port.
    pub fn start_tcp() -> Result<TestClamd, String> {
        Self::launch(Transport::Tcp)
    }

    /// Where this clamd listens.
    pub fn addr(&self) -> ClamdAddr {
        self.addr.clone()
    }

    /// The temporary directory holding the configuration, database, socket
    /// and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills clamd and waits for it to exit. Clients then get
    /// "unavailable" (the socket file may stay behind; nobody listens).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts clamd again with the same configuration and address, and
    /// waits until it answers PING.
    pub fn start_again(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
    }

    /// The last lines of clamd's log and console output, for diagnostics.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for name in ["clamd.log", "clamd.out"] {
            let text = fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(20);
            out.push_str(&format!("--- {name} ---\n"));
            for line in lines.iter().skip(from) {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    fn launch(transport: Transport) -> Result<TestClamd, String> {
        let binary = find_clamd()
            .ok_or_else(|| "clamd is not installed: apt-get install clamav-daemon".to_owned())?;
        let dir = tempfile::Builder::new()
            .prefix("careline-clamd-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let root = dir.path();
        let db = root.join("db");
        fs::create_dir(&db).map_err(|e| format!("cannot create {}: {e}", db.display()))?;
        write_signatures(&db)?;

        let mut conf = String::new();
        conf.push_str(&format!("DatabaseDirectory {}\n", db.display()));
        let addr = match transport {
            Transport::Unix => {
                let socket = root.join("clamd.sock");
                conf.push_str(&format!("LocalSocket {}\n", socket.display()));
                conf.push_str("FixStaleSocket yes\n");
                ClamdAddr::Unix(socket)
            }
            Transport::Tcp => {
                let port = free_port()?;
                conf.push_str(&format!("TCPSocket {port}\nTCPAddr 127.0.0.1\n"));
                ClamdAddr::Tcp(format!("127.0.0.1:{port}"))
            }
        };
        conf.push_str("Foreground yes\n");
        if running_as_root(root) {
            conf.push_str("User root\n");
        }
        conf.push_str("StreamMaxLength 30M\n");
        conf.push_str("SelfCheck 0\n");
        conf.push_str(&format!("LogFile {}\n", root.join("clamd.log").display()));
        conf.push_str(&format!("PidFile {}\n", root.join("clamd.pid").display()));
        conf.push_str(&format!("TemporaryDirectory {}\n", root.display()));
        let conf_path = root.join("clamd.conf");
        fs::write(&conf_path, conf).map_err(|e| format!("cannot write clamd.conf: {e}"))?;

        let mut clamd = TestClamd {
            dir,
            binary,
            addr,
            child: None,
        };
        clamd.spawn()?;
        Ok(clamd)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let root = self.dir.path();
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("clamd.out"))
            .map_err(|e| format!("cannot create clamd.out: {e}"))?;
        let console_err = console
            .try_clone()
            .map_err(|e| format!("cannot create clamd.out: {e}"))?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(root.join("clamd.conf"))
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console_err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        self.child = Some(child);

        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "clamd exited during start-up ({status})\n{}",
                    self.log_tail()
                ));
            }
            if ping(&self.addr) {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                self.stop();
                return Err(format!(
                    "clamd did not answer PING within {} s\n{}",
                    READY_TIMEOUT.as_secs(),
                    self.log_tail()
                ));
            }
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestClamd {
    fn drop(&mut self) {
        self.stop();
    }
}

enum Transport {
    Unix,
    Tcp,
}

/// `/usr/sbin/clamd`, or `clamd` found on `PATH`.
fn find_clamd() -> Option<PathBuf> {
    let standard = PathBuf::from("/usr/sbin/clamd");
    if standard.is_file() {
        return Some(standard);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("clamd"))
        .find(|candidate| candidate.is_file())
}

/// Writes the EICAR signatures: an MD5 signature for the file itself and a
/// body signature that also finds it inside archives and larger files.
fn write_signatures(db: &Path) -> Result<(), String> {
    let hdb = format!(
        "{}:{}:{EICAR_HASH_SIGNATURE}\n",
        md5_hex(EICAR),
        EICAR.len()
    );
    let hex: String = EICAR.iter().map(|b| format!("{b:02x}")).collect();
    let ndb = format!("{EICAR_BODY_SIGNATURE}:0:*:{hex}\n");
    fs::write(db.join("careline-test.hdb"), hdb).map_err(|e| format!("cannot write .hdb: {e}"))?;
    fs::write(db.join("careline-test.ndb"), ndb).map_err(|e| format!("cannot write .ndb: {e}"))?;
    Ok(())
}

/// Whether this process runs as root: a directory it just created is owned
/// by uid 0.
#[cfg(unix)]
fn running_as_root(created: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(created).is_ok_and(|m| m.uid() == 0)
}

#[cfg(not(unix))]
fn running_as_root(_created: &Path) -> bool {
    false
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// A blocking PING, used while waiting for start-up.
fn ping(addr: &ClamdAddr) -> bool {
    fn exchange(mut stream: impl Read + Write) -> bool {
        if stream.write_all(b"zPING\0").is_err() {
            return false;
        }
        let mut reply = Vec::new();
        let _ = stream.take(64).read_to_end(&mut reply);
        reply.strip_suffix(b"\0").unwrap_or(&reply) == b"PONG"
    }
    let limit = Some(Duration::from_secs(2));
    match addr {
        #[cfg(unix)]
        ClamdAddr::Unix(path) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(stream) => {
                let _ = stream.set_read_timeout(limit);
                let _ = stream.set_write_timeout(limit);
                exchange(stream)
            }
            Err(_) => false,
        },
        #[cfg(not(unix))]
        ClamdAddr::Unix(_) => false,
        ClamdAddr::Tcp(host_port) => match std::net::TcpStream::connect(host_port.as_str()) {
            Ok(stream) => {
                let _ = stream.set_read_timeout(limit);
                let _ = stream.set_write_timeout(limit);
                exchange(stream)
            }
            Err(_) => false,
        },
    }
}

/// MD5 of `data` as lower-case hex (RFC 1321). Only for writing the test
/// signature database; MD5 is not used for anything security-related.
pub fn md5_hex(data: &[u8]) -> String {
    md5(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Per-round left-rotation amounts.
const SHIFTS: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];

fn md5(data: &[u8]) -> [u8; 16] {
    // The sine-derived constants: floor(|sin(i + 1)| * 2^32).
    let table: Vec<u32> = (0..64u32)
        .map(|i| (f64::from(i + 1).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_le_bytes());

    for block in message.chunks_exact(64) {
        let words: Vec<u32> = block
            .chunks_exact(4)
            .map(|w| w.try_into().map(u32::from_le_bytes).unwrap_or_default())
            .collect();
        let [mut a, mut b, mut c, mut d] = state;
        for (i, &k) in table.iter().enumerate() {
            let round = i / 16;
            let (f, g) = match round {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let shift = SHIFTS.get(round * 4 + i % 4).copied().unwrap_or_default();
            let word = words.get(g).copied().unwrap_or_default();
            let sum = a.wrapping_add(f).wrapping_add(k).wrapping_add(word);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(sum.rotate_left(shift));
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }

    let mut digest = [0u8; 16];
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_le_bytes());
    }
    digest
}
