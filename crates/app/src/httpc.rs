//! A small HTTP/1.1 client over one keep-alive connection, for the load
//! generator and the tests. It speaks exactly what careline's server
//! answers: `Content-Length` or chunked bodies, JSON in and out.

use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One connection.
pub struct Conn {
    addr: SocketAddr,
    io: BufReader<TcpStream>,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Conn {
            addr,
            io: BufReader::new(s),
        })
    }

    /// Connect from a chosen local address (a test posing as another client).
    pub async fn connect_from(local: std::net::IpAddr, addr: SocketAddr) -> io::Result<Conn> {
        let socket = match local {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(local, 0))?;
        let s = socket.connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Conn {
            addr,
            io: BufReader::new(s),
        })
    }

    /// Send a request with an optional bearer token and JSON body, and read the response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> io::Result<Response> {
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        self.send_raw(
            method,
            path,
            token,
            body.map(|_| "application/json"),
            payload.as_bytes(),
        )
        .await
    }

    /// POST-style request with extra headers.
    pub async fn send_with_headers(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        content_type: &str,
        body: &[u8],
    ) -> io::Result<Response> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\n",
            self.addr
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let w = self.io.get_mut();
        w.write_all(head.as_bytes()).await?;
        w.write_all(body).await?;
        w.flush().await?;
        self.read_response().await
    }

    /// Send raw bytes as the body, with the given content type.
    pub async fn send_raw(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> io::Result<Response> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n",
            self.addr
        );
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let w = self.io.get_mut();
        w.write_all(head.as_bytes()).await?;
        w.write_all(body).await?;
        w.flush().await?;
        self.read_response().await
    }

    async fn read_head(&mut self) -> io::Result<(u16, Vec<(String, String)>)> {
        let mut line = String::new();
        if self.io.read_line(&mut line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.io.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        Ok((status, headers))
    }

    async fn read_response(&mut self) -> io::Result<Response> {
        let (status, headers) = self.read_head().await?;
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let body = if let Some(len) = get("content-length") {
            let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
            let mut b = vec![0u8; len];
            self.io.read_exact(&mut b).await?;
            b
        } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            let mut b = Vec::new();
            loop {
                let mut size = String::new();
                self.io.read_line(&mut size).await?;
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| bad("bad chunk size"))?;
                let mut chunk = vec![0u8; n + 2];
                self.io.read_exact(&mut chunk).await?;
                chunk.truncate(n);
                b.extend_from_slice(&chunk);
                if n == 0 {
                    break;
                }
            }
            b
        } else {
            Vec::new()
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Open an event stream: send the request and return once headers arrive.
    pub async fn open_stream(mut self, path: &str, token: &str) -> io::Result<EventStream> {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nAuthorization: Bearer {token}\r\n\r\n",
            self.addr
        );
        self.io.get_mut().write_all(head.as_bytes()).await?;
        let (status, _) = self.read_head().await?;
        Ok(EventStream {
            conn: self,
            status,
            seen: String::new(),
        })
    }
}

/// A Server-Sent Events stream being read.
pub struct EventStream {
    conn: Conn,
    pub status: u16,
    /// Everything read so far (chunk framing included; fine for searching).
    pub seen: String,
}

impl EventStream {
    /// Read until `needle` has appeared or `timeout` passes; true if found.
    pub async fn wait_for(&mut self, needle: &str, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            match tokio::time::timeout_at(deadline, self.conn.io.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self
                    .seen
                    .push_str(&String::from_utf8_lossy(buf.get(..n).unwrap_or_default())),
                _ => return false,
            }
        }
        true
    }
}

/// One request on a fresh connection.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> io::Result<Response> {
    Conn::connect(addr)
        .await?
        .request(method, path, token, body)
        .await
}
