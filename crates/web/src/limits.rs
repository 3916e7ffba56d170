//! How long a client may take. A client that sends its request a byte at a
//! time, or nothing at all, holds a connection and a file descriptor for as
//! long as the server lets it; these limits cut it off. The header, first
//! request and keep-alive limits are the connection's (set where the
//! listener is built); the body and per-request limits are enforced here,
//! around every request.

use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use std::time::Duration;

/// The limits on one client, all configurable (see the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From connecting (or the end of the previous response) to the end of
    /// the request's headers; also the TLS handshake's limit.
    pub header: Duration,
    /// From the request's headers to the last byte of its body.
    pub body: Duration,
    /// A connection on which nothing is read or written for this long is closed.
    pub keep_alive: Duration,
    /// From the request's headers to the response's headers. Streamed
    /// response bodies (the event stream, downloads) are not limited by it:
    /// the event stream sends keep-alive comments instead.
    pub request: Duration,
    /// At shutdown: how long in-flight requests and background work get to
    /// finish. Work not finished by then stays leased in the database, and
    /// another node (or this one, restarted) takes it up when the lease ends.
    pub shutdown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header: Duration::from_secs(10),
            body: Duration::from_secs(60),
            keep_alive: Duration::from_secs(60),
            request: Duration::from_secs(60),
            shutdown: Duration::from_secs(10),
        }
    }
}

/// The answer when a client or a request ran out of time; the connection
/// is closed after it.
fn timed_out(status: StatusCode, detail: String) -> Response {
    let mut r = crate::error::problem(status, "request-timeout", "Request timeout", detail);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Bound the body's arrival and the time to answer.
pub async fn enforce(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let t = s.config.timeouts;
    let deadline = tokio::time::Instant::now() + t.body;
    let (parts, body) = req.into_parts();
    let frames = body.into_data_stream();
    let expired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = expired.clone();
    let timed = futures_util::stream::unfold(Some(frames), move |frames| {
        let flag = flag.clone();
        async move {
            let mut frames = frames?;
            match tokio::time::timeout_at(deadline, frames.next()).await {
                Ok(Some(Ok(bytes))) => Some((Ok::<Bytes, std::io::Error>(bytes), Some(frames))),
                Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e)), None)),
                Ok(None) => None,
                Err(_) => {
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the request body did not arrive in time",
                        )),
                        None,
                    ))
                }
            }
        }
    });
    let req = Request::from_parts(parts, Body::from_stream(timed));
    match tokio::time::timeout(t.request, next.run(req)).await {
        Ok(resp) => {
            if expired.load(std::sync::atomic::Ordering::Relaxed) {
                // The body ran out of time: say so, and close the connection.
                return timed_out(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} s",
                        t.body.as_secs_f64()
                    ),
                );
            }
            resp
        }
        Err(_) => timed_out(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request was not answered within {} s and was abandoned; try again",
                t.request.as_secs_f64()
            ),
        ),
    }
}
