//! Store configuration: [`S3Config`] and the `blob_store` URL forms that
//! [`BlobStore::from_url`](crate::BlobStore::from_url) accepts.

use std::path::{Path, PathBuf};

use crate::error::BlobError;

/// Region used when neither the URL nor `AWS_REGION` names one. S3-compatible
/// servers (MinIO, Garage, Ceph, moto) accept it.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Environment variables holding S3 credentials, in order of precedence:
/// careline's own pair first, then the standard AWS pair.
pub const CREDENTIAL_VARS: [(&str, &str); 2] = [
    ("CARELINE_S3_ACCESS_KEY_ID", "CARELINE_S3_SECRET_ACCESS_KEY"),
    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
];

/// Where and how to reach an S3-compatible bucket.
#[derive(Clone)]
pub struct S3Config {
    /// Bucket name; the bucket must exist.
    pub bucket: String,
    /// Base URL of an S3-compatible server, e.g. `http://127.0.0.1:9000`
    /// (path-style requests). `None` means AWS itself, in `region`.
    pub endpoint: Option<String>,
    /// Signing region.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key; never shown by `Debug` or in messages.
    pub secret_access_key: String,
    /// Allow plain `http://` endpoints (test servers, a server on loopback).
    pub allow_http: bool,
    /// Key prefix under which blobs are stored, e.g. `careline/blobs`
    /// (no leading or trailing `/`); empty for the bucket root.
    pub prefix: String,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("allow_http", &self.allow_http)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// What a store URL asks for.
#[derive(Debug)]
pub(crate) enum Target {
    Local(PathBuf),
    S3(S3Config),
}

fn config_error(message: impl Into<String>) -> BlobError {
    BlobError::Config(message.into())
}

const FORMS: &str = "use \"local\", file:///absolute/path or s3://bucket/prefix?endpoint=http://host:port&region=us-east-1";

/// Parses a store URL; `env` looks up environment variables.
pub(crate) fn parse(
    url: &str,
    data_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, BlobError> {
    let url = url.trim();
    if url.is_empty() || url == "local" {
        return Ok(Target::Local(data_dir.join("blobs")));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(config_error(format!(
            "blob store URL is not a URL: {FORMS}"
        )));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "file" => parse_file(rest),
        "s3" => parse_s3(rest, env).map(Target::S3),
        other => {
            // The scheme is safe to echo; the rest might hold a secret.
            let shown: String = other.chars().take(16).collect();
            Err(config_error(format!(
                "unsupported blob store URL scheme {shown:?}: {FORMS}"
            )))
        }
    }
}

fn parse_file(rest: &str) -> Result<Target, BlobError> {
    if rest.contains('?') || rest.contains('#') {
        return Err(config_error(
            "file: blob store URLs take no query or fragment",
        ));
    }
    // file:///abs/path has an empty authority; file://localhost/abs is also
    // accepted. Anything else would name another machine.
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return Err(config_error(
            "file: blob store URL must name an absolute path, as file:///var/lib/careline/blobs",
        ));
    }
    Ok(Target::Local(PathBuf::from(percent_decode(path)?)))
}

fn parse_s3(rest: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<S3Config, BlobError> {
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    if before_query.contains('#') || query.is_some_and(|q| q.contains('#')) {
        return Err(config_error("s3: blob store URLs take no fragment"));
    }
    let (bucket, prefix) = match before_query.split_once('/') {
        Some((b, p)) => (b, p),
        None => (before_query, ""),
    };
    if bucket.contains('@') {
        return Err(config_error(
            "credentials in the s3: URL are not accepted; set CARELINE_S3_ACCESS_KEY_ID and CARELINE_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
        ));
    }
    if bucket.is_empty()
        || !bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(config_error(
            "s3: URL needs a bucket name of letters, digits, '.', '-' or '_', as s3://bucket/prefix",
        ));
    }
    let prefix = percent_decode(prefix.trim_matches('/'))?;

    let mut endpoint = None;
    let mut region = None;
    let mut allow_http = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)?;
        match key {
            "endpoint" => endpoint = Some(value),
            "region" => region = Some(value),
            "allow_http" => {
                allow_http = Some(match value.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(config_error("s3: URL allow_http must be true or false")),
                });
            }
            _ => {
                let shown: String = key.chars().take(32).collect();
                return Err(config_error(format!(
                    "unknown s3: URL parameter {shown:?} (known: endpoint, region, allow_http)"
                )));
            }
        }
    }
    if let Some(e) = &endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(config_error(
                "s3: URL endpoint must start with http:// or https://",
            ));
        }
        if e.contains('@') {
            return Err(config_error(
                "credentials in the s3: endpoint are not accepted; use the environment",
            ));
        }
    }
    let allow_http = allow_http.unwrap_or_else(|| {
        endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
    });
    let region = region
        .filter(|r| !r.is_empty())
        .or_else(|| env("AWS_REGION").filter(|r| !r.is_empty()))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    let (access_key_id, secret_access_key) = credentials(env)?;
    Ok(S3Config {
        bucket: bucket.to_owned(),
        endpoint,
        region,
        access_key_id,
        secret_access_key,
        allow_http,
        prefix,
    })
}

fn credentials(env: &dyn Fn(&str) -> Option<String>) -> Result<(String, String), BlobError> {
    for (id_var, secret_var) in CREDENTIAL_VARS {
        let id = env(id_var).filter(|v| !v.is_empty());
        let secret = env(secret_var).filter(|v| !v.is_empty());
        match (id, secret) {
            (Some(id), Some(secret)) => return Ok((id, secret)),
            (None, None) => {}
            _ => {
                return Err(config_error(format!(
                    "set both {id_var} and {secret_var}, or neither"
                )));
            }
        }
    }
    Err(config_error(
        "s3: blob store needs credentials: set CARELINE_S3_ACCESS_KEY_ID and CARELINE_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
    ))
}

/// Decodes `%XX` escapes (URL components are otherwise taken literally).
fn percent_decode(text: &str) -> Result<String, BlobError> {
    let bad = || config_error("invalid %-escape in blob store URL");
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(|c| char::from(c).to_digit(16));
            let lo = bytes.next().and_then(|c| char::from(c).to_digit(16));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(bad());
            };
            out.push(u8::try_from(hi * 16 + lo).map_err(|_| bad())?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Endpoint text safe for logs: anything before an `@` in the authority is
/// dropped (endpoints with credentials are rejected, but a hand-built
/// [`S3Config`] could still carry one).
pub(crate) fn redact_endpoint(endpoint: &str) -> String {
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return endpoint.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{path}"),
        None => endpoint.to_owned(),
    }
}
