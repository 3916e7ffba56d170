//! Health of the node's background workers. Every worker (escalation clock,
//! webhook sender, event relay, scanner, login recorder) runs under one
//! supervisor that registers it here, marks it up or down, and counts its
//! restarts; the worker itself beats a heartbeat each time round its loop.
//! `/readyz` refuses traffic while a critical worker is down or has stopped
//! beating (a node that cannot escalate pages or relay other nodes' red
//! flags must not take nurses' connections), and `/metrics` shows all of it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct State {
    critical: bool,
    up: bool,
    stale_after: Duration,
    last_beat: Instant,
    restarts: u64,
    last_error: Option<String>,
}

/// Every registered worker, by name.
#[derive(Debug, Default)]
pub struct Workers {
    inner: Mutex<BTreeMap<&'static str, State>>,
}

/// Why a worker keeps the node from being ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unready {
    pub worker: &'static str,
    pub reason: String,
}

/// A worker's heartbeat: call [`Heartbeat::beat`] every time round the loop.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    name: &'static str,
    workers: Arc<Workers>,
}

impl Heartbeat {
    pub fn beat(&self) {
        self.workers
            .with(self.name, |s| s.last_beat = Instant::now());
    }
}

impl Workers {
    fn with(&self, name: &'static str, f: impl FnOnce(&mut State)) {
        // A panic elsewhere while holding this lock leaves plain data
        // behind: keep using it rather than lose every worker's health.
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = g.get_mut(name) {
            f(s);
        }
    }

    /// Register a worker (down until the supervisor starts it). A critical
    /// worker that is down, or silent for longer than `stale_after`, makes
    /// the node unready.
    pub fn register(
        self: &Arc<Self>,
        name: &'static str,
        critical: bool,
        stale_after: Duration,
    ) -> Heartbeat {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                name,
                State {
                    critical,
                    up: false,
                    stale_after,
                    last_beat: Instant::now(),
                    restarts: 0,
                    last_error: None,
                },
            );
        Heartbeat {
            name,
            workers: self.clone(),
        }
    }

    /// The worker is (re)started.
    pub fn up(&self, name: &'static str) {
        self.with(name, |s| {
            s.up = true;
            s.last_beat = Instant::now();
        });
    }

    /// The worker failed; it will be restarted after a delay.
    pub fn down(&self, name: &'static str, error: &str) {
        self.with(name, |s| {
            s.up = false;
            s.restarts += 1;
            s.last_error = Some(error.to_owned());
        });
    }

    /// The worker stopped because the node is shutting down.
    pub fn stopped(&self, name: &'static str) {
        self.with(name, |s| s.up = false);
    }

    /// Whether `name` is registered and running.
    pub fn is_up(&self, name: &str) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .is_some_and(|s| s.up)
    }

    /// How many times `name` has failed and been restarted.
    pub fn restarts(&self, name: &str) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .map_or(0, |s| s.restarts)
    }

    /// The critical workers that keep this node from being ready, and why.
    pub fn unready(&self) -> Vec<Unready> {
        let now = Instant::now();
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.iter()
            .filter(|(_, s)| s.critical)
            .filter_map(|(name, s)| {
                let silent = now.saturating_duration_since(s.last_beat);
                let reason = if !s.up {
                    Some(match &s.last_error {
                        Some(e) => format!("down: {e}"),
                        None => "not started".to_owned(),
                    })
                } else if silent > s.stale_after {
                    Some(format!("no heartbeat for {} s", silent.as_secs()))
                } else {
                    None
                };
                reason.map(|reason| Unready {
                    worker: name,
                    reason,
                })
            })
            .collect()
    }

    /// The workers' gauges and counters in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let now = Instant::now();
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = writeln!(
            out,
            "# HELP careline_worker_up Whether a background worker is running (1) or down awaiting restart (0).\n# TYPE careline_worker_up gauge"
        );
        for (name, s) in g.iter() {
            let _ = writeln!(
                out,
                "careline_worker_up{{worker=\"{name}\",critical=\"{}\"}} {}",
                s.critical,
                u8::from(s.up)
            );
        }
        let _ = writeln!(
            out,
            "# HELP careline_worker_restarts_total Times a background worker failed and was restarted.\n# TYPE careline_worker_restarts_total counter"
        );
        for (name, s) in g.iter() {
            let _ = writeln!(
                out,
                "careline_worker_restarts_total{{worker=\"{name}\"}} {}",
                s.restarts
            );
        }
        let _ = writeln!(
            out,
            "# HELP careline_worker_heartbeat_age_seconds Seconds since a background worker last went round its loop.\n# TYPE careline_worker_heartbeat_age_seconds gauge"
        );
        for (name, s) in g.iter() {
            let _ = writeln!(
                out,
                "careline_worker_heartbeat_age_seconds{{worker=\"{name}\"}} {:.3}",
                now.saturating_duration_since(s.last_beat).as_secs_f64()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_critical_worker_that_is_down_or_silent_makes_the_node_unready() {
        let w = Arc::new(Workers::default());
        let clock = w.register("escalation-clock", true, Duration::from_millis(20));
        let _scanner = w.register("attachment-scanner", false, Duration::from_millis(20));
        assert_eq!(w.unready().len(), 1, "not started yet");
        w.up("escalation-clock");
        w.up("attachment-scanner");
        assert!(w.unready().is_empty());
        w.down("escalation-clock", "database unreachable");
        let u = w.unready();
        assert_eq!(u[0].worker, "escalation-clock");
        assert!(u[0].reason.contains("database unreachable"), "{u:?}");
        w.up("escalation-clock");
        std::thread::sleep(Duration::from_millis(40));
        assert!(w.unready()[0].reason.contains("no heartbeat"));
        clock.beat();
        assert!(
            w.unready().is_empty(),
            "a non-critical worker never blocks readiness"
        );
        assert_eq!(w.restarts("escalation-clock"), 1);
        let mut m = String::new();
        w.render(&mut m);
        assert!(m.contains("careline_worker_up{worker=\"escalation-clock\",critical=\"true\"} 1"));
        assert!(m.contains("careline_worker_restarts_total{worker=\"escalation-clock\"} 1"));
    }
}
