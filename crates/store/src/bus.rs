//! The in-process bus of committed events. Backends publish after commit,
//! never before, so a subscriber (the SSE stream, later webhooks and
//! escalation timers) never sees an event that could still roll back.

use careline_core::event::Event;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast;

/// Fan-out of committed events. Slow subscribers lose the oldest events
/// (and are told so) instead of slowing the writer.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Arc<Event>>,
    /// Bumped, before the writer answers, by every committed event that can
    /// change who may see what; caches of callers' grants compare it.
    access_epoch: Arc<AtomicU64>,
}

pub use careline_core::event::changes_access;

impl Default for Bus {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl Bus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Bus {
            tx,
            access_epoch: Arc::new(AtomicU64::new(0)),
        }
    }
    pub fn publish(&self, events: impl IntoIterator<Item = Event>) {
        for e in events {
            if changes_access(&e.kind) {
                self.access_epoch.fetch_add(1, Ordering::SeqCst);
            }
            // No subscribers is fine: the event is already durable.
            let _ = self.tx.send(Arc::new(e));
        }
    }
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
    /// The current access epoch (see `changes_access`).
    pub fn access_epoch(&self) -> u64 {
        self.access_epoch.load(Ordering::SeqCst)
    }
}
