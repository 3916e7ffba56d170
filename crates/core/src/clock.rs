//! Time as a parameter. SLA clocks, deadlines and audit timestamps ask a
//! `Clock`, so tests move time forward instead of sleeping.

use jiff::Timestamp;
use std::sync::Mutex;

/// Where "now" comes from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;

    /// The longest a task waiting for a moment on this clock may sleep
    /// before it looks again. The wall clock runs at the speed of sleep, so
    /// a task sleeps exactly until its moment; a clock that can be moved
    /// (tests) has to be looked at often.
    fn recheck(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to. A `std::sync::Mutex` is enough: the
/// critical section is a copy, never held across an await.
#[derive(Debug)]
pub struct FakeClock(Mutex<Timestamp>);

impl FakeClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Mutex::new(start))
    }
    pub fn set(&self, t: Timestamp) {
        if let Ok(mut g) = self.0.lock() {
            *g = t;
        }
    }
    pub fn advance(&self, by: jiff::SignedDuration) {
        if let Ok(mut g) = self.0.lock() {
            *g = g.saturating_add(by).unwrap_or(*g);
        }
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        self.0.lock().map(|g| *g).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn recheck(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_millis(50))
    }
}
