//! The one place an error becomes HTTP: RFC 9457 problem+json with a
//! stable `type`, a short `title` and a human `detail`. Domain errors are
//! mapped here, and so are the framework's own refusals (a path segment or
//! query string that does not parse, a body that cannot be read), which
//! `reject_as_problem` rewrites on their way out. Internal error text is
//! logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use careline_core::Error;
use serde::Serialize;
use utoipa::ToSchema;

/// Base of every problem `type`.
pub const PROBLEM_BASE: &str = "https://careline.dev/problems/";

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `https://careline.dev/problems/illegal-transition`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

/// The media type of every error the API sends.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Longest framework refusal text kept as a problem's `detail`.
const MAX_REJECTION_DETAIL: usize = 1000;

/// Whether `resp` is an error that is not yet problem+json: a refusal made
/// by the framework before any handler ran (extractor rejections), since
/// every handler and fallback already answers errors with [`problem`].
pub fn is_bare_error(resp: &Response) -> bool {
    let status = resp.status();
    (status.is_client_error() || status.is_server_error())
        && resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|ct| !ct.starts_with(PROBLEM_JSON))
}

/// What kind of refusal a framework error is, from its status and text:
/// the status to answer, the problem `type` slug and its title.
fn classify_rejection(status: StatusCode, text: &str) -> (StatusCode, &'static str, &'static str) {
    if text.starts_with("Failed to deserialize query string") {
        // The same answer a handler gives for a query value it cannot use.
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-query",
            "Invalid query string",
        );
    }
    if status == StatusCode::BAD_REQUEST && text.starts_with("Invalid URL") {
        return (status, "invalid-path", "Invalid path parameter");
    }
    match status {
        StatusCode::BAD_REQUEST => (status, "bad-request", "Bad request"),
        StatusCode::UNAUTHORIZED => (status, "unauthenticated", "Authentication required"),
        StatusCode::FORBIDDEN => (status, "forbidden", "Forbidden"),
        StatusCode::NOT_FOUND => (status, "not-found", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => (status, "method-not-allowed", "Method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => (status, "body-too-large", "Request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (status, "unsupported-media-type", "Unsupported media type")
        }
        StatusCode::UNPROCESSABLE_ENTITY => (status, "invalid-input", "Invalid input"),
        StatusCode::SERVICE_UNAVAILABLE => (status, "unavailable", "Service unavailable"),
        s if s.is_server_error() => (status, "internal", "Internal error"),
        _ => (status, "bad-request", "Bad request"),
    }
}

/// Rewrites a framework refusal (see [`is_bare_error`]) as problem+json.
/// A client error keeps its text as the detail, since it says which
/// parameter was wrong; a server error's text is logged, never sent.
/// Headers such as `Allow` or `Retry-After` are kept.
pub async fn reject_as_problem(resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let (status, slug, title) = classify_rejection(parts.status, &text);
    let detail = if status.is_server_error() {
        tracing::error!(status = status.as_u16(), error = %text, "request refused by the server");
        "something went wrong on our side; the request was not applied".to_owned()
    } else if text.is_empty() {
        title.to_owned()
    } else {
        text.chars().take(MAX_REJECTION_DETAIL).collect()
    };
    let mut out = problem(status, slug, title, detail);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub fn problem(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Response {
    let body = Problem {
        type_: format!("{PROBLEM_BASE}{slug}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail: detail.into(),
    };
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self.0 {
            Error::Invalid(d) => problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-input",
                "Invalid input",
                d,
            ),
            Error::Unprocessable { rule, detail } => problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                rule,
                "Unprocessable",
                detail,
            ),
            Error::Unauthenticated(d) => {
                let mut r = problem(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "Authentication required",
                    d,
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"careline\""),
                );
                r
            }
            Error::Forbidden { rule, detail } => {
                problem(StatusCode::FORBIDDEN, rule, "Forbidden", detail)
            }
            Error::NotFound(what) => problem(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                format!("{what} not found"),
            ),
            Error::Conflict { rule, detail } => {
                problem(StatusCode::CONFLICT, rule, "Conflict", detail)
            }
            Error::RateLimited {
                rule,
                detail,
                retry_after_secs,
            } => {
                let mut r = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    rule,
                    "Too many attempts",
                    detail,
                );
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
            Error::Unsupported { rule, detail } => problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                rule,
                "Unsupported attachment",
                detail,
            ),
            Error::TooLarge { rule, detail } => {
                problem(StatusCode::PAYLOAD_TOO_LARGE, rule, "Too large", detail)
            }
            Error::Unavailable(d) => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                d,
            ),
            Error::Internal(d) => {
                tracing::error!(error = %d, "internal error");
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "something went wrong on our side; the request was not applied",
                )
            }
        }
    }
}
