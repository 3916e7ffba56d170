//! The one place a domain error becomes HTTP: RFC 9457 problem+json with a
//! stable `type`, a short `title` and a human `detail`. Internal error text
//! is logged, never sent.

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
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
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
