//! Background work, started in one place with names and a shutdown path:
//! the escalation clock (re-pages the next rung when an acknowledgement
//! deadline passes; durable, because deadlines live in the database) and
//! the webhook sender (signed deliveries, retried with backoff and jitter,
//! dead-lettered when they keep failing).

use crate::httpc::Conn;
use crate::server::spawn_named;
use careline_core::escalation::PageLevel;
use careline_store::Delivery;
use careline_web::AppState;
use hmac::{KeyInit, Mac};
use jiff::{SignedDuration, Timestamp};
use std::time::Duration;
use tokio::sync::watch;

/// How the workers pace themselves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How often the escalation clock looks for missed deadlines.
    pub tick: Duration,
    /// First retry delay of a failed webhook delivery; doubles each time.
    pub retry_base: SignedDuration,
    /// Longest retry delay.
    pub retry_cap: SignedDuration,
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: i64,
    /// How long one HTTP attempt may take.
    pub send_timeout: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            tick: Duration::from_millis(200),
            retry_base: SignedDuration::from_secs(5),
            retry_cap: SignedDuration::from_hours(1),
            max_attempts: 8,
            send_timeout: Duration::from_secs(10),
        }
    }
}

/// Start every background worker; they stop when `shutdown` turns true.
pub fn start(
    state: &AppState,
    cfg: WorkerConfig,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut workers = vec![
        spawn_named(
            "escalation-clock",
            escalation_clock(state.clone(), cfg.clone(), shutdown.clone()),
        ),
        spawn_named(
            "webhook-sender",
            webhook_sender(state.clone(), cfg, shutdown.clone()),
        ),
    ];
    if let Some(rx) = state.login_notes.take_receiver() {
        workers.push(spawn_named(
            "login-recorder",
            careline_web::auth::record_login_notes(state.clone(), rx, shutdown.clone()),
        ));
    }
    workers.extend(crate::scanning::start(state, shutdown));
    workers
}

async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => !*shutdown.borrow(),
        _ = shutdown.changed() => false,
    }
}

/// One pass of the escalation clock: escalate every page whose deadline passed.
pub async fn escalate_once(state: &AppState) -> usize {
    let now = state.clock.now();
    match state.store.escalate_due(now, 500).await {
        Ok(pages) => {
            for p in &pages {
                state.metrics.escalations.inc();
                if p.level == PageLevel::OrgAlarm {
                    state.metrics.alarms.inc();
                    tracing::warn!(ticket = %p.ticket_id, disposition = p.disposition.as_str(), "escalation chain exhausted: organization-wide alarm");
                } else {
                    tracing::warn!(ticket = %p.ticket_id, level = p.level.as_str(), "page not acknowledged in time: escalated");
                }
            }
            pages.len()
        }
        Err(e) => {
            tracing::error!(error = %e, "escalation clock could not run");
            0
        }
    }
}

async fn escalation_clock(state: AppState, cfg: WorkerConfig, mut shutdown: watch::Receiver<bool>) {
    loop {
        escalate_once(&state).await;
        if !pause(cfg.tick, &mut shutdown).await {
            return;
        }
    }
}

/// The signature header value for `body` sent at `t`.
pub fn sign(secret: &str, t: i64, body: &str) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| {
            // HMAC accepts keys of any length; this branch cannot be taken.
            <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"careline")
                .unwrap_or_else(|_| unreachable!())
        });
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Backoff for the `attempt`-th failure: base·2^(attempt-1), capped, times a jitter in [0.5, 1.5).
pub fn retry_delay(cfg: &WorkerConfig, attempt: i64, jitter_seed: u128) -> SignedDuration {
    let exp = cfg.retry_base.as_secs_f64()
        * 2f64.powi(i32::try_from(attempt.clamp(1, 30) - 1).unwrap_or(0));
    let capped = exp.min(cfg.retry_cap.as_secs_f64());
    let jitter = 0.5
        + ((jitter_seed as u64 ^ (attempt as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) % 1000)
            as f64
            / 1000.0;
    SignedDuration::from_secs_f64(capped * jitter)
}

async fn send(
    d: &Delivery,
    policy: &careline_core::outbound::OutboundPolicy,
    now: Timestamp,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        // Resolved and checked now, and the checked address is the one
        // connected to: a name that has come to point at a refused address
        // since registration is refused here.
        let (addrs, path) = careline_web::outbound::resolve(policy, &d.url)
            .await
            .map_err(|e| e.to_string())?;
        let mut last = String::from("no address");
        let mut conn = None;
        for addr in addrs {
            match Conn::connect(addr).await {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        let mut c = conn.ok_or(last)?;
        let t = now.as_second();
        let headers = [
            ("X-Careline-Signature", sign(&d.secret, t, &d.body)),
            ("X-Careline-Event", d.event_kind.clone()),
            ("X-Careline-Delivery", d.id.to_string()),
        ];
        let r = c
            .send_with_headers(
                "POST",
                &path,
                &headers,
                "application/json",
                d.body.as_bytes(),
            )
            .await
            .map_err(|e| e.to_string())?;
        if (200..300).contains(&r.status) {
            Ok(())
        } else {
            Err(format!("receiver answered {}", r.status))
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// How long a claimed delivery is this node's before another may take it.
const DELIVERY_LEASE: Duration = Duration::from_secs(60);

/// How many deliveries one claim takes: as many as can be sent, each taking
/// its whole timeout, well within the lease, so another node never takes up
/// a delivery this one is still sending.
fn deliveries_per_lease(send_timeout: Duration) -> u32 {
    let usable = DELIVERY_LEASE.saturating_sub(Duration::from_secs(10));
    let n = usable.as_millis() / send_timeout.as_millis().max(1);
    u32::try_from(n).unwrap_or(u32::MAX).clamp(1, 32)
}

/// One pass of the webhook sender; returns how many deliveries it tried.
/// At shutdown it stops between deliveries: the rest stay leased.
pub async fn deliver_once(
    state: &AppState,
    cfg: &WorkerConfig,
    shutdown: &watch::Receiver<bool>,
) -> usize {
    let now = state.clock.now();
    let lease = now
        .checked_add(
            SignedDuration::try_from(DELIVERY_LEASE).unwrap_or(SignedDuration::from_secs(60)),
        )
        .unwrap_or(now);
    let per_lease = deliveries_per_lease(cfg.send_timeout);
    let batch = match state.store.claim_deliveries(now, lease, per_lease).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "webhook sender could not claim deliveries");
            return 0;
        }
    };
    let mut tried = 0;
    for d in &batch {
        if *shutdown.borrow() {
            break;
        }
        tried += 1;
        let result = send(d, &state.config.outbound, now, cfg.send_timeout).await;
        let now = state.clock.now();
        let (ok, err, retry) = match result {
            Ok(()) => (true, None, None),
            Err(e) => {
                let attempt = d.attempts + 1;
                let retry = (attempt < cfg.max_attempts).then(|| {
                    now.checked_add(retry_delay(cfg, attempt, d.id.0.as_u128()))
                        .unwrap_or(now)
                });
                tracing::warn!(delivery = %d.id, url = %d.url, attempt, error = %e, dead = retry.is_none(), "webhook delivery failed");
                (false, Some(e), retry)
            }
        };
        if let Err(e) = state
            .store
            .delivery_attempted(d.id, ok, err, retry, now)
            .await
        {
            tracing::error!(error = %e, "could not record a webhook attempt");
        }
    }
    tried
}

async fn webhook_sender(state: AppState, cfg: WorkerConfig, mut shutdown: watch::Receiver<bool>) {
    let mut bus = state.store.bus().subscribe();
    loop {
        if *shutdown.borrow() {
            return;
        }
        if deliver_once(&state, &cfg, &shutdown).await > 0 {
            continue;
        }
        // Wake on the next committed event or on the tick, whichever comes first.
        tokio::select! {
            _ = bus.recv() => {},
            _ = tokio::time::sleep(cfg.tick) => {},
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        // One look at the outbox serves every commit that woke us: a busy
        // store commits many events a second, each already in the outbox.
        while bus.try_recv().is_ok() {}
    }
}
