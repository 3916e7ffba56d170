//! Request bodies that fail the way an integrator can act on: every
//! rejection (bad JSON, unknown field, wrong type, too large, wrong content
//! type) is problem+json naming what was wrong.

use crate::error::problem;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;

/// A JSON body with problem+json rejections.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rej) => Err(match rej {
                JsonRejection::JsonDataError(e) => problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-body",
                    "Invalid request body",
                    e.body_text(),
                ),
                JsonRejection::JsonSyntaxError(e) => problem(
                    StatusCode::BAD_REQUEST,
                    "malformed-json",
                    "Malformed JSON",
                    e.body_text(),
                ),
                JsonRejection::MissingJsonContentType(_) => problem(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Unsupported media type",
                    "send the body as JSON with 'Content-Type: application/json'",
                ),
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "Request body too large",
                    "the request body exceeds the limit of 256 KiB",
                ),
                other => problem(
                    other.status(),
                    "invalid-body",
                    "Invalid request body",
                    other.body_text(),
                ),
            }),
        }
    }
}

/// An optional RFC 3339 time from a request field named `what`.
pub fn time_field(
    what: &str,
    value: Option<&str>,
) -> Result<Option<jiff::Timestamp>, careline_core::Error> {
    value
        .map(|t| {
            t.parse::<jiff::Timestamp>().map_err(|_| {
                careline_core::Error::invalid(format!("{what} '{t}' is not an RFC 3339 time"))
            })
        })
        .transpose()
}
