//! The one domain error. The web layer maps it to problem+json exactly once;
//! the CLI prints its `Display` on one line.

/// What went wrong, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that does not meet the rules (size, format, missing field).
    #[error("{0}")]
    Invalid(String),
    /// Well-formed input that a named rule refuses (HTTP 422 with the rule as its type).
    #[error("{detail}")]
    Unprocessable { rule: &'static str, detail: String },
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but this subject may not do this.
    #[error("{detail}")]
    Forbidden { rule: &'static str, detail: String },
    /// Not there — or not visible to the caller, which must look the same.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with current state (illegal transition, duplicate name).
    #[error("{detail}")]
    Conflict { rule: &'static str, detail: String },
    /// Storage or another internal failure. The text is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
    /// Too many attempts; try again after the given number of seconds.
    #[error("{detail}")]
    RateLimited {
        rule: &'static str,
        detail: String,
        retry_after_secs: u64,
    },
    /// The service is shutting down or overloaded; try again.
    #[error("{0}")]
    Unavailable(String),
    /// An upload of a kind careline does not accept (HTTP 415).
    #[error("{detail}")]
    Unsupported { rule: &'static str, detail: String },
    /// An upload past a size or count limit (HTTP 413).
    #[error("{detail}")]
    TooLarge { rule: &'static str, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
    pub fn internal(msg: impl std::fmt::Display) -> Self {
        Error::Internal(msg.to_string())
    }
    pub fn forbidden(rule: &'static str, detail: impl Into<String>) -> Self {
        Error::Forbidden {
            rule,
            detail: detail.into(),
        }
    }
    pub fn conflict(rule: &'static str, detail: impl Into<String>) -> Self {
        Error::Conflict {
            rule,
            detail: detail.into(),
        }
    }
}
