//! The in-process bus of committed events. Backends publish after commit,
//! never before, so a subscriber (the SSE stream, later webhooks and
//! escalation timers) never sees an event that could still roll back.

use careline_core::event::Event;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Fan-out of committed events. Slow subscribers lose the oldest events
/// (and are told so) instead of slowing the writer.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl Bus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Bus { tx }
    }
    pub fn publish(&self, events: impl IntoIterator<Item = Event>) {
        for e in events {
            // No subscribers is fine: the event is already durable.
            let _ = self.tx.send(Arc::new(e));
        }
    }
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}
