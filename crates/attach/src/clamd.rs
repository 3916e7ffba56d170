//! A client for the ClamAV daemon (clamd).
//!
//! Commands use the NUL-delimited form (`zINSTREAM\0`, `zPING\0`,
//! `zVERSION\0`); clamd then ends its reply with a NUL too. Files are sent
//! with INSTREAM: chunks each prefixed with their length as a 4-byte
//! big-endian number, then a zero length.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// Longest reply accepted from clamd.
const MAX_REPLY: usize = 4096;

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClamdAddr {
    /// A Unix socket (clamd's `LocalSocket`).
    Unix(PathBuf),
    /// A TCP `host:port` (clamd's `TCPSocket` and `TCPAddr`).
    Tcp(String),
}

/// An address string that is not a clamd address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid clamd address {0:?}: use unix:/path/to/clamd.sock, /path/to/clamd.sock, tcp://host:port or host:port"
)]
pub struct AddrParseError(pub String);

impl FromStr for ClamdAddr {
    type Err = AddrParseError;

    /// Accepts `unix:/path`, an absolute path, `tcp://host:port` and
    /// `host:port` (with `[v6]:port` for IPv6).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let err = || AddrParseError(s.to_owned());
        if let Some(path) = s.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(err());
            }
            return Ok(ClamdAddr::Unix(PathBuf::from(path)));
        }
        if s.starts_with('/') {
            return Ok(ClamdAddr::Unix(PathBuf::from(s)));
        }
        let host_port = s.strip_prefix("tcp://").unwrap_or(s);
        let host_port = host_port.strip_suffix('/').unwrap_or(host_port);
        let (host, port) = host_port.rsplit_once(':').ok_or_else(err)?;
        let host_ok = !host.is_empty()
            && !host.contains('/')
            && (host.starts_with('[') == host.ends_with(']'))
            && (!host.contains(':') || host.starts_with('['));
        let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
        if host_ok && port_ok {
            Ok(ClamdAddr::Tcp(host_port.to_owned()))
        } else {
            Err(err())
        }
    }
}

impl fmt::Display for ClamdAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClamdAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            ClamdAddr::Tcp(host_port) => write!(f, "tcp://{host_port}"),
        }
    }
}

/// Limits and timeouts for [`Scanner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for each single read or write on the connection
    /// (including waiting for the verdict once the file is sent).
    pub io_timeout: Duration,
    /// Time allowed for a whole command, including waiting for a free
    /// connection slot.
    pub overall_timeout: Duration,
    /// Size of the INSTREAM chunks (and of the file read buffer).
    pub chunk_size: usize,
    /// Files larger than this are refused with [`ScanError::TooLarge`]
    /// before connecting. Keep it at or below clamd's `StreamMaxLength`:
    /// past that limit clamd just closes the connection.
    pub max_stream_len: u64,
    /// How many connections to clamd may be open at once.
    pub max_concurrent: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(30),
            overall_timeout: Duration::from_secs(120),
            chunk_size: 64 * 1024,
            max_stream_len: 25 * 1024 * 1024,
            max_concurrent: 4,
        }
    }
}

/// The outcome of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No signature matched.
    Clean,
    /// A signature matched. The name is as clamd reported it (signatures
    /// from unofficial databases carry a `.UNOFFICIAL` suffix).
    Infected { signature: String },
}

/// Why a scan gave no verdict.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// clamd could not be reached (socket missing, connection refused,
    /// unknown host).
    #[error("clamd is unavailable: {0}")]
    Unavailable(String),
    /// A timeout from [`ScanOptions`] expired.
    #[error("clamd timed out while {0}")]
    Timeout(&'static str),
    /// clamd answered something this client does not understand, or closed
    /// the connection without answering.
    #[error("unexpected reply from clamd: {0}")]
    Protocol(String),
    /// clamd reported an error, such as "INSTREAM size limit exceeded".
    #[error("clamd reported an error: {0}")]
    ClamdError(String),
    /// The file is larger than [`ScanOptions::max_stream_len`]; nothing was
    /// sent.
    #[error("the file is {size} bytes, more than the {limit}-byte scan limit")]
    TooLarge { size: u64, limit: u64 },
    /// Reading the file or talking to clamd failed.
    #[error("I/O error while scanning: {0}")]
    Io(#[from] io::Error),
}

impl ScanError {
    /// Whether trying again later may succeed. Everything but
    /// [`ScanError::TooLarge`] is: the daemon may be restarting, busy or
    /// reloading its database.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ScanError::TooLarge { .. })
    }
}

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// A clamd client with a bounded number of concurrent connections. Cheap to
/// clone; clones share the connection limit.
#[derive(Debug, Clone)]
pub struct Scanner {
    addr: ClamdAddr,
    opts: ScanOptions,
    slots: Arc<Semaphore>,
}

impl Scanner {
    /// A scanner for the clamd at `addr`. Does not connect.
    pub fn new(addr: ClamdAddr, opts: ScanOptions) -> Self {
        let slots = Arc::new(Semaphore::new(opts.max_concurrent.max(1)));
        Scanner { addr, opts, slots }
    }

    /// The address this scanner talks to.
    pub fn addr(&self) -> &ClamdAddr {
        &self.addr
    }

    /// The options this scanner uses.
    pub fn options(&self) -> &ScanOptions {
        &self.opts
    }

    /// Checks clamd answers `PING` with `PONG`.
    pub async fn ping(&self) -> Result<(), ScanError> {
        let reply = self.simple_command(b"zPING\0").await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(ScanError::Protocol(format!("expected PONG, got {reply:?}")))
        }
    }

    /// clamd's version line, such as `ClamAV 1.4.3` or
    /// `ClamAV 1.4.3/27400/Mon Sep 1 08:00:00 2025` when it has the
    /// official database.
    pub async fn version(&self) -> Result<String, ScanError> {
        let reply = self.simple_command(b"zVERSION\0").await?;
        if reply.is_empty() {
            Err(ScanError::Protocol("empty VERSION reply".into()))
        } else {
            Ok(reply)
        }
    }

    /// Streams the file to clamd with INSTREAM and returns its verdict.
    ///
    /// Files larger than [`ScanOptions::max_stream_len`] are refused before
    /// connecting. The file is read in chunks of
    /// [`ScanOptions::chunk_size`].
    pub async fn scan_file(&self, path: &Path) -> Result<Verdict, ScanError> {
        let limit = self.opts.max_stream_len;
        let size = tokio::fs::metadata(path).await?.len();
        if size > limit {
            return Err(ScanError::TooLarge { size, limit });
        }
        let file = tokio::fs::File::open(path).await?;
        self.scan_reader(file, size).await
    }

    /// Streams `len` bytes from `reader` to clamd with INSTREAM and returns
    /// its verdict: for content that is not in a plain file (for example a
    /// blob decrypted on the fly). `len` is checked against
    /// [`ScanOptions::max_stream_len`] before connecting; the bytes actually
    /// read are counted too.
    pub async fn scan_reader<R>(&self, reader: R, len: u64) -> Result<Verdict, ScanError>
    where
        R: AsyncRead + Unpin + Send,
    {
        let limit = self.opts.max_stream_len;
        if len > limit {
            return Err(ScanError::TooLarge { size: len, limit });
        }
        self.bounded(async {
            let mut conn = self.connect().await?;
            let reply = self.stream(&mut conn, reader).await?;
            parse_scan_reply(&reply)
        })
        .await
    }

    async fn simple_command(&self, command: &[u8]) -> Result<String, ScanError> {
        self.bounded(async {
            let mut conn = self.connect().await?;
            self.write(&mut conn, command).await?;
            self.read_reply(&mut conn).await
        })
        .await
    }

    /// Runs `work` holding a connection slot, within the overall timeout.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, ScanError>>,
    ) -> Result<T, ScanError> {
        let guarded = async {
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| ScanError::Unavailable("the scanner was shut down".into()))?;
            work.await
        };
        timeout(self.opts.overall_timeout, guarded)
            .await
            .map_err(|_| ScanError::Timeout("completing the request"))?
    }

    async fn connect(&self) -> Result<Box<dyn Conn>, ScanError> {
        let unavailable = |e: io::Error| ScanError::Unavailable(format!("{}: {e}", self.addr));
        let limit = self.opts.connect_timeout;
        match &self.addr {
            ClamdAddr::Unix(path) => {
                #[cfg(unix)]
                {
                    let stream = timeout(limit, tokio::net::UnixStream::connect(path))
                        .await
                        .map_err(|_| ScanError::Timeout("connecting"))?
                        .map_err(unavailable)?;
                    Ok(Box::new(stream))
                }
                #[cfg(not(unix))]
                {
                    let _ = (path, limit);
                    Err(ScanError::Unavailable(
                        "Unix sockets are not supported on this platform".into(),
                    ))
                }
            }
            ClamdAddr::Tcp(host_port) => {
                let stream = timeout(limit, tokio::net::TcpStream::connect(host_port.as_str()))
                    .await
                    .map_err(|_| ScanError::Timeout("connecting"))?
                    .map_err(unavailable)?;
                Ok(Box::new(stream))
            }
        }
    }

    async fn write(&self, conn: &mut Box<dyn Conn>, bytes: &[u8]) -> Result<(), io::Error> {
        match timeout(self.opts.io_timeout, conn.write_all(bytes)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
        }
    }

    /// Sends the INSTREAM command and the file, then reads the reply. If
    /// clamd closes the connection early (it does past its
    /// `StreamMaxLength`), its reply is still read to report the reason.
    async fn stream<R: AsyncRead + Unpin + Send>(
        &self,
        conn: &mut Box<dyn Conn>,
        mut file: R,
    ) -> Result<String, ScanError> {
        let sent = self.send_file(conn, &mut file).await;
        match sent {
            Ok(()) => self.read_reply(conn).await,
            Err(SendError::Scan(e)) => Err(e),
            Err(SendError::Socket(e)) if e.kind() == io::ErrorKind::TimedOut => {
                Err(ScanError::Timeout("sending the file"))
            }
            Err(SendError::Socket(e)) => match self.read_reply(conn).await {
                Ok(reply) if !reply.is_empty() => Ok(reply),
                _ => Err(ScanError::Io(e)),
            },
        }
    }

    async fn send_file<R: AsyncRead + Unpin + Send>(
        &self,
        conn: &mut Box<dyn Conn>,
        file: &mut R,
    ) -> Result<(), SendError> {
        self.write(conn, b"zINSTREAM\0")
            .await
            .map_err(SendError::Socket)?;
        let chunk = self.opts.chunk_size.clamp(1, u32::MAX as usize);
        // Room for the length prefix, then the chunk.
        let mut buf = vec![0u8; chunk + 4];
        let mut total: u64 = 0;
        loop {
            let n = match buf.get_mut(4..) {
                Some(space) => file.read(space).await.map_err(ScanError::Io)?,
                None => 0,
            };
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > self.opts.max_stream_len {
                return Err(SendError::Scan(ScanError::TooLarge {
                    size: total,
                    limit: self.opts.max_stream_len,
                }));
            }
            let len = u32::try_from(n).unwrap_or(u32::MAX);
            if let Some(prefix) = buf.get_mut(..4) {
                prefix.copy_from_slice(&len.to_be_bytes());
            }
            let frame = buf.get(..n + 4).unwrap_or_default();
            self.write(conn, frame).await.map_err(SendError::Socket)?;
        }
        self.write(conn, &[0, 0, 0, 0])
            .await
            .map_err(SendError::Socket)?;
        Ok(())
    }

    /// Reads a reply up to its terminating NUL (or the end of the stream).
    async fn read_reply(&self, conn: &mut Box<dyn Conn>) -> Result<String, ScanError> {
        let mut reply = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let n = timeout(self.opts.io_timeout, conn.read(&mut buf))
                .await
                .map_err(|_| ScanError::Timeout("waiting for the reply"))??;
            if n == 0 {
                break;
            }
            let got = buf.get(..n).unwrap_or_default();
            if let Some(end) = got.iter().position(|&b| b == 0) {
                reply.extend_from_slice(got.get(..end).unwrap_or_default());
                break;
            }
            reply.extend_from_slice(got);
            if reply.len() > MAX_REPLY {
                return Err(ScanError::Protocol("reply too long".into()));
            }
        }
        if reply.is_empty() {
            return Err(ScanError::Protocol(
                "clamd closed the connection without replying".into(),
            ));
        }
        let text = String::from_utf8_lossy(&reply);
        Ok(text.trim_end_matches(['\n', '\r']).trim().to_owned())
    }
}

enum SendError {
    /// Writing to clamd failed; its reply may still explain why.
    Socket(io::Error),
    /// Anything else; reported as is.
    Scan(ScanError),
}

impl From<ScanError> for SendError {
    fn from(e: ScanError) -> Self {
        SendError::Scan(e)
    }
}

/// Interprets an INSTREAM reply: `stream: OK`, `stream: <name> FOUND` or
/// `<message> ERROR`.
fn parse_scan_reply(reply: &str) -> Result<Verdict, ScanError> {
    if let Some(message) = reply.strip_suffix("ERROR") {
        let message = message.trim_end();
        let message = message.strip_prefix("stream:").unwrap_or(message).trim();
        return Err(ScanError::ClamdError(message.to_owned()));
    }
    if let Some(found) = reply.strip_suffix(" FOUND") {
        let name = found.strip_prefix("stream:").unwrap_or(found).trim();
        if name.is_empty() {
            return Err(ScanError::Protocol(reply.to_owned()));
        }
        return Ok(Verdict::Infected {
            signature: name.to_owned(),
        });
    }
    match reply.strip_prefix("stream:").map(str::trim) {
        Some("OK") => Ok(Verdict::Clean),
        _ => Err(ScanError::Protocol(reply.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(parse_scan_reply("stream: OK").unwrap(), Verdict::Clean);
        assert_eq!(
            parse_scan_reply("stream: Eicar-Test.UNOFFICIAL FOUND").unwrap(),
            Verdict::Infected {
                signature: "Eicar-Test.UNOFFICIAL".into()
            }
        );
        match parse_scan_reply("INSTREAM size limit exceeded. ERROR") {
            Err(ScanError::ClamdError(m)) => assert_eq!(m, "INSTREAM size limit exceeded."),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_scan_reply("hello"),
            Err(ScanError::Protocol(_))
        ));
    }
}
