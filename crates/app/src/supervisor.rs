//! One supervisor for every background worker. A worker is a function that
//! makes a run: a future that works until shutdown and returns `Ok`, or
//! fails with an error. A run that fails, panics, or returns while the node
//! is not shutting down is logged, marked down in the node's health (a
//! critical worker down makes `/readyz` refuse traffic), counted in
//! `/metrics`, and started again after a delay that doubles on each failure
//! in a row (1 s, 2 s, 4 s… up to 30 s; back to 1 s after a minute of
//! healthy running).

use crate::server::spawn_named;
use careline_web::health::{Heartbeat, Workers};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Delays between a failed run and the next.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay after the `failures`-th failure in a row (1-based).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        self.base.saturating_mul(factor).min(self.cap)
    }
}

/// What the supervisor knows about one worker.
pub struct Worker {
    pub name: &'static str,
    /// Whether the node is unready while this worker is down or silent.
    pub critical: bool,
    /// How long the worker may go without a heartbeat before it counts as stuck.
    pub stale_after: Duration,
}

/// A run that has been going this long without failing resets the backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Aborts a spawned run when the supervisor itself is stopped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Start `w` under supervision: `run` is called for each (re)start with
/// the worker's heartbeat. Ends when `shutdown` turns true.
pub fn supervise<F, Fut>(
    w: Worker,
    workers: &Arc<Workers>,
    backoff: Backoff,
    mut shutdown: watch::Receiver<bool>,
    mut run: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut(Heartbeat) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let workers = workers.clone();
    let beat = workers.register(w.name, w.critical, w.stale_after);
    spawn_named(w.name, async move {
        let mut failures = 0u32;
        loop {
            if *shutdown.borrow() {
                workers.stopped(w.name);
                return;
            }
            workers.up(w.name);
            let started = Instant::now();
            // Each run is its own task, so that a panic ends the run, not the supervisor.
            let task = spawn_named(w.name, run(beat.clone()));
            let _abort = AbortOnDrop(task.abort_handle());
            let error = match task.await {
                Ok(Ok(())) if *shutdown.borrow() => {
                    workers.stopped(w.name);
                    return;
                }
                Ok(Ok(())) => "stopped unexpectedly".to_owned(),
                Ok(Err(e)) => e,
                Err(e) if e.is_panic() => {
                    let p = e.into_panic();
                    let msg = p
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".to_owned());
                    format!("panicked: {msg}")
                }
                Err(_) => "cancelled".to_owned(),
            };
            if started.elapsed() >= HEALTHY_RUN {
                failures = 0;
            }
            failures += 1;
            let delay = backoff.delay(failures);
            workers.down(w.name, &error);
            if w.critical {
                tracing::error!(worker = w.name, %error, restart_in = ?delay, "a critical background worker failed: this node is not ready until it runs again");
            } else {
                tracing::warn!(worker = w.name, %error, restart_in = ?delay, "a background worker failed; restarting it");
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|s| *s) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff::default();
        let secs: Vec<u64> = (1..=7).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30]);
    }

    #[tokio::test]
    async fn a_worker_that_fails_or_panics_is_restarted_and_marked_down_meanwhile() {
        let workers = Arc::new(Workers::default());
        let (tx, rx) = watch::channel(false);
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let handle = supervise(
            Worker {
                name: "flaky",
                critical: true,
                stale_after: Duration::from_secs(5),
            },
            &workers,
            Backoff {
                base: Duration::from_millis(400),
                cap: Duration::from_millis(400),
            },
            rx.clone(),
            move |beat| {
                let n = r.fetch_add(1, Ordering::SeqCst);
                let mut rx = rx.clone();
                async move {
                    beat.beat();
                    match n {
                        0 => Err("database unreachable".to_owned()),
                        1 => panic!("a bug"),
                        _ => {
                            let _ = rx.wait_for(|s| *s).await;
                            Ok(())
                        }
                    }
                }
            },
        );
        async fn until(what: impl Fn() -> bool) -> bool {
            for _ in 0..500 {
                if what() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        }
        assert!(
            until(|| workers.restarts("flaky") == 1).await,
            "the failed run is counted"
        );
        assert!(!workers.is_up("flaky"), "down while it waits to restart");
        assert!(workers.unready()[0].reason.contains("database unreachable"));
        assert!(
            until(|| runs.load(Ordering::SeqCst) == 3 && workers.is_up("flaky")).await,
            "restarted after the error and the panic"
        );
        assert!(workers.is_up("flaky"));
        assert!(workers.unready().is_empty());
        assert_eq!(workers.restarts("flaky"), 2);
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), handle)
            .await
            .unwrap()
            .unwrap();
        assert!(!workers.is_up("flaky"));
    }
}
