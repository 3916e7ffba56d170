//! Second factor: TOTP (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits),
//! enrolment with one-time recovery codes, and the check at login.
//! Organizations choose the roles that must use it (by default the clinical,
//! privacy and administrative ones); until such a user enrols, their session
//! may do nothing but enrol.

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiResult, Problem};
use crate::extract::Body;
use axum::Json;
use axum::extract::State;
use careline_core::Error;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

const STEP_SECS: i64 = 30;
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for b in bytes {
        buf = (buf << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                ALPHABET
                    .get(((buf >> bits) & 31) as usize)
                    .copied()
                    .unwrap_or(b'A'),
            ));
        }
    }
    if bits > 0 {
        out.push(char::from(
            ALPHABET
                .get(((buf << (5 - bits)) & 31) as usize)
                .copied()
                .unwrap_or(b'A'),
        ));
    }
    out
}

pub fn unbase32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase())? as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buf >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// The 6-digit code for a time step.
pub fn code_at(secret: &[u8], step: i64) -> u32 {
    let Ok(mut mac) = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret) else {
        return 0;
    };
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = usize::from(h.get(19).copied().unwrap_or(0) & 0x0f);
    let word = h
        .get(off..off + 4)
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .map(|w| u32::from_be_bytes(w) & 0x7fff_ffff)
        .unwrap_or(0);
    word % 1_000_000
}

/// The step a code matches, allowing one step of clock drift either way.
pub fn verify(secret: &[u8], code: &str, unix: i64) -> Option<i64> {
    let code = code.trim().replace(' ', "");
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = code.parse().ok()?;
    let now = unix.div_euclid(STEP_SECS);
    [now, now - 1, now + 1]
        .into_iter()
        .find(|s| code_at(secret, *s) == n)
}

pub fn recovery_hash(code: &str) -> String {
    let normalized: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_uppercase();
    hex::encode(Sha256::digest(
        format!("careline-recovery:{normalized}").as_bytes(),
    ))
}

fn random(n: usize) -> Result<Vec<u8>, Error> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    Ok(b)
}

/// Check the second factor at login. `Ok(())` when the user has none enrolled.
pub async fn check_login(
    s: &AppState,
    user: careline_core::ids::UserId,
    totp: Option<&str>,
    recovery: Option<&str>,
    now: jiff::Timestamp,
) -> Result<(), Error> {
    let st = s.store.mfa_state(user).await?;
    if !st.enabled {
        return Ok(());
    }
    if let Some(code) = recovery {
        if s.store
            .use_recovery_code(user, &recovery_hash(code), now)
            .await?
        {
            return Ok(());
        }
        return Err(Error::Unauthenticated(
            "unknown username, wrong password or wrong second factor".into(),
        ));
    }
    let Some(code) = totp else {
        return Err(Error::forbidden(
            "mfa-required",
            "this account uses a second factor: send \"totp\" (the 6-digit code) or a \"recovery_code\"",
        ));
    };
    let secret = st
        .secret
        .as_deref()
        .and_then(unbase32)
        .ok_or_else(|| Error::internal("TOTP secret unreadable"))?;
    match verify(&secret, code, now.as_second()) {
        Some(step) if s.store.record_totp_step(user, step).await? => Ok(()),
        _ => Err(Error::Unauthenticated(
            "unknown username, wrong password or wrong second factor".into(),
        )),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// Base32 secret to type into an authenticator app.
    pub secret: String,
    /// The same as an otpauth:// URI (for a QR code).
    pub otpauth_uri: String,
}

/// Start TOTP enrolment: a new secret (replacing a pending one).
#[utoipa::path(post, path = "/api/v1/me/mfa/totp", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = TotpEnrolment), (status = 409, body = Problem)))]
pub async fn start(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<TotpEnrolment>> {
    if !p.role.is_staff() {
        return Err(Error::forbidden("staff-only", "second factors are for staff accounts").into());
    }
    let secret = base32(&random(20)?);
    s.store
        .set_totp_secret(&p, secret.clone(), s.clock.now())
        .await?;
    let label = p.name.replace(|c: char| !c.is_ascii_alphanumeric(), "");
    Ok(Json(TotpEnrolment {
        otpauth_uri: format!(
            "otpauth://totp/careline:{label}?secret={secret}&issuer=careline&digits=6&period=30"
        ),
        secret,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Enrolled {
    pub enabled: bool,
    /// Ten one-time codes for a lost phone. Shown once; stored only as hashes.
    pub recovery_codes: Vec<String>,
}

/// Finish enrolment with a current code.
#[utoipa::path(post, path = "/api/v1/me/mfa/totp/verify", tag = "sessions", security(("bearer" = [])), request_body = VerifyRequest,
    responses((status = 200, body = Enrolled), (status = 401, body = Problem), (status = 409, body = Problem)))]
pub async fn finish(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(req): Body<VerifyRequest>,
) -> ApiResult<Json<Enrolled>> {
    if !p.role.is_staff() {
        return Err(Error::forbidden("staff-only", "second factors are for staff accounts").into());
    }
    let now = s.clock.now();
    let st = s.store.mfa_state(p.user_id).await?;
    if st.enabled {
        return Err(Error::conflict("mfa-enrolled", "a second factor is already enrolled").into());
    }
    let secret = st.secret.as_deref().and_then(unbase32).ok_or_else(|| {
        Error::conflict(
            "mfa-not-pending",
            "start enrolment first (POST /api/v1/me/mfa/totp)",
        )
    })?;
    let step = verify(&secret, &req.code, now.as_second()).ok_or_else(|| {
        Error::invalid(
            "that code does not match; check the authenticator's clock and try the current code",
        )
    })?;
    let mut codes = Vec::new();
    for _ in 0..10 {
        let c = base32(&random(5)?);
        codes.push(format!(
            "{}-{}",
            c.get(..4).unwrap_or(""),
            c.get(4..).unwrap_or("")
        ));
    }
    s.store
        .enable_totp(
            &p,
            step,
            codes.iter().map(|c| recovery_hash(c)).collect(),
            now,
        )
        .await?;
    Ok(Json(Enrolled {
        enabled: true,
        recovery_codes: codes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_test_vectors() {
        // RFC 6238 appendix B, SHA-1, 8 digits truncated to 6.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59 / 30), 287_082);
        assert_eq!(code_at(secret, 1_111_111_109 / 30), 81_804);
        assert_eq!(code_at(secret, 1_234_567_890 / 30), 5_924);
        assert_eq!(verify(secret, "287082", 59), Some(1));
        assert_eq!(
            verify(secret, "287082", 59 + 30),
            Some(1),
            "one step of drift"
        );
        assert_eq!(verify(secret, "287082", 59 + 90), None);
        assert_eq!(verify(secret, "28708", 59), None);
    }

    #[test]
    fn base32_round_trips() {
        for n in 0..25 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(unbase32(&base32(&bytes)).unwrap(), bytes);
        }
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }
}
