//! Background work, started in one place with names and a shutdown path:
//! the escalation clock (re-pages the next rung when an acknowledgement
//! deadline passes; durable, because deadlines live in the database) and
//! the webhook sender (signed deliveries, retried with backoff and jitter,
//! dead-lettered when they keep failing).

use crate::httpc::Conn;
use crate::supervisor::{Worker, supervise};
use careline_core::escalation::PageLevel;
use careline_store::Delivery;
use careline_web::AppState;
use careline_web::health::Heartbeat;
use hmac::{KeyInit, Mac};
use jiff::{SignedDuration, Timestamp};
use std::time::Duration;
use tokio::sync::watch;

/// How the workers pace themselves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How often an idle webhook sender looks for retries that fell due.
    pub tick: Duration,
    /// First retry delay of a failed webhook delivery; doubles each time.
    pub retry_base: SignedDuration,
    /// Longest retry delay.
    pub retry_cap: SignedDuration,
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: i64,
    /// How long one HTTP attempt may take.
    pub send_timeout: Duration,
    /// How long a claimed delivery is this node's before another may take
    /// it; renewed before each send, and at least twice `send_timeout`.
    pub delivery_lease: Duration,
    /// Delays between a failed worker run and its restart.
    pub restart: crate::supervisor::Backoff,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            tick: Duration::from_millis(200),
            retry_base: SignedDuration::from_secs(5),
            retry_cap: SignedDuration::from_hours(1),
            max_attempts: 8,
            send_timeout: Duration::from_secs(10),
            delivery_lease: Duration::from_secs(60),
            restart: crate::supervisor::Backoff::default(),
        }
    }
}

/// The longest the escalation clock sleeps: it beats its heartbeat at least this often.
const CLOCK_HEARTBEAT: Duration = Duration::from_secs(5);
/// A critical worker silent for this long counts as stuck (`/readyz`).
const STALE: Duration = Duration::from_secs(30);

/// Start every background worker under the supervisor; they stop when
/// `shutdown` turns true.
pub fn start(
    state: &AppState,
    cfg: WorkerConfig,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let workers = &state.workers;
    let backoff = cfg.restart;
    let worker = |name, critical| Worker {
        name,
        critical,
        stale_after: STALE,
    };
    let mut handles = Vec::new();
    {
        let (state, rx) = (state.clone(), shutdown.clone());
        handles.push(supervise(
            worker("escalation-clock", true),
            workers,
            backoff,
            shutdown.clone(),
            move |beat| escalation_clock(state.clone(), rx.clone(), beat),
        ));
    }
    {
        let (state, rx, cfg) = (state.clone(), shutdown.clone(), cfg.clone());
        handles.push(supervise(
            worker("webhook-sender", false),
            workers,
            backoff,
            shutdown.clone(),
            move |beat| webhook_sender(state.clone(), cfg.clone(), rx.clone(), beat),
        ));
    }
    if state.store.shared() {
        let (state, rx) = (state.clone(), shutdown.clone());
        handles.push(supervise(
            worker("event-relay", true),
            workers,
            backoff,
            shutdown.clone(),
            move |beat| {
                let (store, mut rx) = (state.store.clone(), rx.clone());
                async move {
                    let stop = Box::pin(async move {
                        let _ = rx.wait_for(|s| *s).await;
                    });
                    store
                        .relay(stop, &move || beat.beat())
                        .await
                        .map_err(|e| e.to_string())
                }
            },
        ));
    }
    if let Some(rx) = state.login_notes.take_receiver() {
        let notes = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        let (state, stop) = (state.clone(), shutdown.clone());
        handles.push(supervise(
            worker("login-recorder", false),
            workers,
            backoff,
            shutdown.clone(),
            move |_beat| {
                let (state, notes, stop) = (state.clone(), notes.clone(), stop.clone());
                async move {
                    let mut rx = notes.lock().await;
                    careline_web::auth::record_login_notes(state, &mut rx, stop).await;
                    Ok(())
                }
            },
        ));
    }
    if let Some(scanner) = state.attachments.scanner.clone() {
        let (state, rx) = (state.clone(), shutdown.clone());
        handles.push(supervise(
            worker("attachment-scanner", false),
            workers,
            backoff,
            shutdown,
            move |_beat| crate::scanning::run(state.clone(), scanner.clone(), rx.clone()),
        ));
    }
    handles
}

/// One pass of the escalation clock: escalate every page whose deadline passed.
pub async fn escalate_once(state: &AppState) -> Result<usize, String> {
    let now = state.clock.now();
    let pages = state
        .store
        .escalate_due(now, 500)
        .await
        .map_err(|e| format!("cannot escalate due pages: {e}"))?;
    for p in &pages {
        state.metrics.escalations.inc();
        if p.level == PageLevel::OrgAlarm {
            state.metrics.alarms.inc();
            tracing::warn!(ticket = %p.ticket_id, disposition = p.disposition.as_str(), "escalation chain exhausted: organization-wide alarm");
        } else {
            tracing::warn!(ticket = %p.ticket_id, level = p.level.as_str(), "page not acknowledged in time: escalated");
        }
    }
    Ok(pages.len())
}

/// The escalation clock: escalates what is due, then sleeps until the next
/// page deadline (or a new page, or at most a few seconds, to beat its
/// heartbeat). Deadlines live in the database, so a restart loses none.
async fn escalation_clock(
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
    beat: Heartbeat,
) -> Result<(), String> {
    let mut bus = state.store.bus().subscribe();
    loop {
        beat.beat();
        if escalate_once(&state).await? >= 500 {
            continue;
        }
        let next = state
            .store
            .next_page_deadline()
            .await
            .map_err(|e| format!("cannot read the next page deadline: {e}"))?;
        let now = state.clock.now();
        let until = next.map_or(CLOCK_HEARTBEAT, |t| {
            Duration::try_from(now.duration_until(t)).unwrap_or(Duration::ZERO)
        });
        let wait = until
            .min(CLOCK_HEARTBEAT)
            .min(state.clock.recheck().unwrap_or(CLOCK_HEARTBEAT));
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                e = bus.recv() => match e {
                    // A new page may be due before the one slept for.
                    Ok(e) if e.kind.starts_with("page.") => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err("the event bus closed".to_owned());
                    }
                },
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
            }
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

/// How many deliveries one claim takes: as many as can be sent within one
/// lease, each taking its whole timeout. The lease of what is left is
/// renewed before each send as well, so another node never takes up a
/// delivery this one is still working through.
fn deliveries_per_lease(cfg: &WorkerConfig) -> u32 {
    let n = cfg.delivery_lease.as_millis() / cfg.send_timeout.as_millis().max(1);
    u32::try_from(n).unwrap_or(u32::MAX).clamp(1, 32)
}

/// The lease end for a claim or renewal made at `now`.
fn lease_end(cfg: &WorkerConfig, now: Timestamp) -> Timestamp {
    SignedDuration::try_from(cfg.delivery_lease)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(now)
}

/// One pass of the webhook sender; returns how many deliveries it tried.
/// At shutdown it stops between deliveries: the rest stay leased.
pub async fn deliver_once(
    state: &AppState,
    cfg: &WorkerConfig,
    shutdown: &watch::Receiver<bool>,
) -> Result<usize, String> {
    let now = state.clock.now();
    let batch = state
        .store
        .claim_deliveries(now, lease_end(cfg, now), deliveries_per_lease(cfg))
        .await
        .map_err(|e| format!("cannot claim webhook deliveries: {e}"))?;
    let mut tried = 0;
    for (i, d) in batch.iter().enumerate() {
        if *shutdown.borrow() {
            break;
        }
        if i > 0 {
            // Everything still held gets a whole lease again before this send.
            let held = batch.get(i..).unwrap_or(&[]).iter().map(|d| d.id).collect();
            state
                .store
                .renew_deliveries(held, lease_end(cfg, state.clock.now()))
                .await
                .map_err(|e| format!("cannot renew webhook delivery leases: {e}"))?;
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
        state
            .store
            .delivery_attempted(d.id, ok, err, retry, now)
            .await
            .map_err(|e| format!("cannot record a webhook attempt: {e}"))?;
    }
    Ok(tried)
}

async fn webhook_sender(
    state: AppState,
    cfg: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
    beat: Heartbeat,
) -> Result<(), String> {
    let mut bus = state.store.bus().subscribe();
    loop {
        beat.beat();
        if *shutdown.borrow() {
            return Ok(());
        }
        if deliver_once(&state, &cfg, &shutdown).await? > 0 {
            continue;
        }
        // Wake on the next committed event or on the tick, whichever comes first.
        tokio::select! {
            _ = bus.recv() => {},
            _ = tokio::time::sleep(cfg.tick) => {},
            _ = shutdown.changed() => return Ok(()),
        }
        if *shutdown.borrow() {
            return Ok(());
        }
        // One look at the outbox serves every commit that woke us: a busy
        // store commits many events a second, each already in the outbox.
        while bus.try_recv().is_ok() {}
    }
}
