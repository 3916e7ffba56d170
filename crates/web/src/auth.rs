//! Authentication: argon2id password hashes, opaque bearer tokens (stored
//! only as SHA-256 hashes), and the extractor that turns a request's token
//! into the domain's `Principal`.

use crate::AppState;
use crate::error::ApiError;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use careline_core::Error;
use careline_core::authz::Principal;
use sha2::{Digest, Sha256};

/// Hash a password with argon2id and a fresh salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, Error> {
    careline_core::validate::check_password(password)?;
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| Error::internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("password hashing failed: {e}")))
}

/// Check a password against a stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A stored hash to verify against when the username does not exist, so a
/// wrong username costs as much time as a wrong password. Made once, on the
/// blocking pool at start (see the server's wiring), so that no login pays
/// for making it.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy-password-never-matches").unwrap_or_default())
}

/// A new session token (256 random bits, URL-safe hex) and its stored hash.
pub fn new_token() -> Result<(String, String), Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    let token = format!("cl_{}", hex::encode(bytes));
    let hash = token_hash(&token);
    Ok((token, hash))
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Callers recently loaded from the store, by token hash. An entry serves
/// for a few seconds of the app's clock and only while no event that changes
/// access (a revoked session, a new tag, a page, a break-glass…) has
/// committed since it was loaded; the idle clock is refreshed on each reload.
#[derive(Debug, Default)]
pub struct PrincipalCache {
    map: std::sync::Mutex<std::collections::HashMap<String, (Principal, jiff::Timestamp, u64)>>,
}

/// What a session that must enrol a second factor may still call.
const ENROLMENT_PATHS: &[&str] = &[
    "/me",
    "/me/mfa/totp",
    "/me/mfa/totp/verify",
    "/sessions/current",
];

/// How long a cached caller serves.
const PRINCIPAL_TTL_US: i64 = 5_000_000;

impl PrincipalCache {
    pub fn get(&self, hash: &str, now: jiff::Timestamp, epoch: u64) -> Option<Principal> {
        let map = self.map.lock().ok()?;
        let (p, at, e) = map.get(hash)?;
        let fresh = *e == epoch
            && (0..PRINCIPAL_TTL_US).contains(&(now.as_microsecond() - at.as_microsecond()));
        fresh.then(|| p.clone())
    }

    pub fn put(&self, hash: String, p: Principal, now: jiff::Timestamp, epoch: u64) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() > 50_000 {
                map.clear();
            }
            map.insert(hash, (p, now, epoch));
        }
    }
}

/// The authenticated caller. Handlers that take `Auth` cannot run without one.
pub struct Auth(pub Principal);

/// The session cookie the web pages use (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "careline_session";

/// The anti-forgery token for a cookie session: derived from the session
/// token, which page scripts cannot read, so another site cannot produce it.
pub fn csrf_token(token: &str) -> String {
    hex::encode(Sha256::digest(format!("careline-csrf:{token}").as_bytes()))
}

/// The value of the cookie `name` in a request.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The session token of a request: a bearer header (API clients) or the
/// session cookie (web pages, which must also send `X-CSRF-Token` on any
/// request that changes something).
pub fn request_token(parts: &Parts) -> Result<String, Error> {
    if let Some(header) = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .ok_or_else(|| {
                Error::Unauthenticated("the Authorization header must be 'Bearer <token>'".into())
            });
    }
    let Some(token) = cookie(parts, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
        return Err(Error::Unauthenticated(
            "send 'Authorization: Bearer <token>' from POST /api/v1/sessions".into(),
        ));
    };
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe {
        let sent = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if sent != csrf_token(token) {
            return Err(Error::forbidden(
                "csrf",
                "a cookie session must send the X-CSRF-Token header from login with every change",
            ));
        }
    }
    Ok(token.to_owned())
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = request_token(parts)?;
        let now = state.clock.now();
        let hash = token_hash(&token);
        let epoch = state.store.bus().access_epoch();
        let p = match state.principals.get(&hash, now, epoch) {
            Some(p) => Some(p),
            None => {
                let p = state
                    .store
                    .principal(&hash, now, state.config.idle_timeout)
                    .await?;
                if let Some(p) = &p {
                    state.principals.put(hash, p.clone(), now, epoch);
                }
                p
            }
        };
        match p {
            Some(p) if p.enrolment_only && !ENROLMENT_PATHS.contains(&parts.uri.path().trim_start_matches("/api/v1")) => Err(Error::forbidden(
                "mfa-enrolment-required",
                "your organization requires a second factor for your role: enrol with POST /api/v1/me/mfa/totp, then POST /api/v1/me/mfa/totp/verify",
            )
            .into()),
            Some(p) => Ok(Auth(p)),
            None => Err(Error::Unauthenticated("the session token is unknown or expired; log in again".into()).into()),
        }
    }
}

/// The caller and the hash of the token they used (to end that session).
pub struct Session(pub Principal, pub String);

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Auth(p) = Auth::from_request_parts(parts, state).await?;
        let token = request_token(parts)?;
        Ok(Session(p, token_hash(&token)))
    }
}

/// A login outcome on its way to the event record.
#[derive(Debug, Clone)]
pub enum LoginNote {
    /// A wrong password or second factor for the username as typed; `alert`
    /// carries the username's failure count when it crossed the alert threshold.
    Failed {
        username: String,
        address: std::net::IpAddr,
        at: jiff::Timestamp,
        alert: Option<u32>,
    },
    /// An attempt the throttle refused before any password was checked.
    Throttled {
        username: String,
        address: std::net::IpAddr,
        at: jiff::Timestamp,
    },
}

/// Login outcomes are recorded after the answer, by one background task:
/// whether a username is an account then costs the answer no time (no store
/// write for real accounts that an unknown name would not get).
#[derive(Debug)]
pub struct LoginNotes {
    tx: tokio::sync::mpsc::Sender<LoginNote>,
    rx: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<LoginNote>>>,
}

/// Outcomes waiting to be recorded at most; past that, a flood is logged, not queued.
const LOGIN_NOTES_QUEUE: usize = 4096;

impl Default for LoginNotes {
    fn default() -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(LOGIN_NOTES_QUEUE);
        LoginNotes {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }
}

impl LoginNotes {
    pub fn send(&self, note: LoginNote) {
        if self.tx.try_send(note).is_err() {
            tracing::warn!("too many login outcomes waiting: one was not recorded");
        }
    }

    /// The receiving end, once: for the task that records them.
    pub fn take_receiver(&self) -> Option<tokio::sync::mpsc::Receiver<LoginNote>> {
        self.rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Record login outcomes until `shutdown`, then whatever is still queued.
pub async fn record_login_notes(
    state: AppState,
    rx: &mut tokio::sync::mpsc::Receiver<LoginNote>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let note = tokio::select! {
            n = rx.recv() => n,
            _ = shutdown.changed() => None,
        };
        match note {
            Some(n) => record_note(&state, n).await,
            None => break,
        }
    }
    while let Ok(n) = rx.try_recv() {
        record_note(&state, n).await;
    }
}

async fn record_note(s: &AppState, note: LoginNote) {
    let result = async {
        match note {
            LoginNote::Failed {
                username,
                address,
                at,
                alert,
            } => {
                let Some(c) = s.store.credentials(&username).await? else {
                    return Ok(());
                };
                let u = c.user;
                s.store
                    .record_login_failure(u.org_id, Some(u.id), &u.username, Some(address), at)
                    .await?;
                if let Some(failures) = alert
                    && careline_core::session::alerts_when_attacked(u.role)
                {
                    tracing::warn!(user = %u.id, role = u.role.as_str(), failures, "repeated failed logins for a privileged account");
                    s.store
                        .record_login_attack(u.org_id, u.id, u.role, failures, at)
                        .await?;
                }
            }
            LoginNote::Throttled {
                username,
                address,
                at,
            } => {
                if let Some(c) = s.store.credentials(&username).await? {
                    s.store
                        .record_login_throttled(c.user.org_id, c.user.id, address, at)
                        .await?;
                }
            }
        }
        Ok::<(), Error>(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not record a login outcome");
    }
}
