//! The attachment scanner: claims quarantined files (and failed ones whose
//! retry is due) with a lease, streams each from the blob store into clamd,
//! and records the verdict. A scanner that is down, slow or erring leaves
//! the file quarantined (`failed`, retried with backoff): only a clean
//! verdict releases a file (invariant 7). Nothing is written to disk in
//! plaintext: the bytes go from the blob store to the scanner in memory,
//! one segment at a time.

use careline_attach::{Scanner, Verdict};
use careline_blob::blob_aad;
use careline_core::attachment::{self, Attachment};
use careline_store::ScanOutcome;
use careline_web::AppState;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::watch;

/// How long a claimed scan may take before another worker may take it over.
const LEASE: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);
/// How often the scanner looks for due retries when nothing wakes it.
const IDLE: Duration = Duration::from_millis(500);

/// The scanner's run (supervised: see `workers.rs`), until shutdown.
pub async fn run(
    state: AppState,
    scanner: std::sync::Arc<Scanner>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let wake = state.attachments.wake.clone();
    loop {
        let n = scan_once(&state, &scanner).await?;
        if n > 0 {
            continue;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(IDLE) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return Ok(());
        }
    }
}

/// One pass: claim what is due and scan it, several at a time (the
/// scanner's own pool bounds how many streams reach clamd at once).
pub async fn scan_once(state: &AppState, scanner: &Scanner) -> Result<usize, String> {
    let limit = u32::try_from(scanner.options().max_concurrent.max(1)).unwrap_or(4);
    let claimed = state
        .store
        .claim_scans(state.clock.now(), LEASE, limit)
        .await
        .map_err(|e| format!("cannot claim attachments to scan: {e}"))?;
    let n = claimed.len();
    let scans = claimed.into_iter().map(|a| async move {
        let outcome = match scan(state, scanner, &a).await {
            Ok(Verdict::Clean) => ScanOutcome::Clean,
            Ok(Verdict::Infected { signature }) => {
                tracing::warn!(attachment = %a.id, %signature, "attachment refused: the scanner found malware");
                ScanOutcome::Infected { signature }
            }
            Err(error) => {
                let wait = attachment::retry_delay(a.scan_attempts);
                // Up to a quarter more, so files that failed together do not retry together.
                let jitter = (a.id.0.as_u128() % 250) as f64 / 1000.0;
                let wait = jiff::SignedDuration::from_secs_f64(wait.as_secs_f64() * (1.0 + jitter));
                let retry_at = state.clock.now().checked_add(wait).unwrap_or(state.clock.now());
                tracing::warn!(attachment = %a.id, attempt = a.scan_attempts, %error, %retry_at, "scan failed; the file stays quarantined");
                ScanOutcome::Failed { error, retry_at }
            }
        };
        if let Err(e) = state.store.finish_scan(a.id, outcome, state.clock.now()).await {
            tracing::error!(attachment = %a.id, error = %e, "cannot record a scan verdict");
        }
    });
    futures_util::future::join_all(scans).await;
    Ok(n)
}

async fn scan(state: &AppState, scanner: &Scanner, a: &Attachment) -> Result<Verdict, String> {
    let key = state
        .store
        .blob_key(a.org_id)
        .await
        .map_err(|e| e.to_string())?;
    let org = a.org_id.to_string();
    let stream = state
        .attachments
        .blobs
        .open(&a.blob, &key, &blob_aad(&org, &a.sha256), None)
        .await
        .map_err(|e| format!("reading the stored file: {e}"))?;
    let len = stream.len();
    let reader =
        tokio_util::io::StreamReader::new(stream.map(|r| r.map_err(std::io::Error::other)));
    scanner
        .scan_reader(reader, len)
        .await
        .map_err(|e| e.to_string())
}
