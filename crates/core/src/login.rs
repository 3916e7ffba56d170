//! Login defence without lockout. A hard lock after N failures lets anyone
//! lock anyone out (the on-call nurse included) and tells an attacker which
//! usernames exist. Instead, following NIST SP 800-63B (limit consecutive
//! failures, by rate rather than by lock):
//!
//! - each (username, source address) pair gets a few free failures, then
//!   must wait before its next attempt, twice as long after each further
//!   failure, up to [`LoginPolicy::max_delay`];
//! - a source address gets a fixed number of attempts a minute, whatever
//!   usernames it names;
//! - past a much looser account-wide count of failures from every source
//!   together, every source that has failed for that username waits the
//!   longest delay. A source that has never failed for the username is
//!   never held back by the username's state, so a clinician signs in from
//!   her own device while someone elsewhere guesses her password.
//!
//! State is keyed by the username as typed (trimmed, lower-cased), never by
//! whether an account exists, so an unknown name is throttled exactly like
//! a real one. It lives in memory on each node and is lost on restart: with
//! several nodes an attacker's allowance is multiplied by their number.

use crate::Error;
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The limits the throttle applies.
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    /// Failures a (username, source) pair may make before it has to wait.
    pub free_failures: u32,
    /// The wait after the first failure past the free ones; doubles after each.
    pub first_delay: SignedDuration,
    /// The longest wait; also what every failed source waits past the account cap.
    pub max_delay: SignedDuration,
    /// Attempts one source address may make a minute, for any usernames.
    pub source_attempts_per_minute: u32,
    /// Failures for one username from all sources within the window after
    /// which every source that failed for it waits [`Self::max_delay`].
    pub account_cap: u32,
    /// Failures for one username within the window that raise an alert (once a window).
    pub alert_after: u32,
    /// How long failures are remembered after the last one.
    pub window: SignedDuration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            free_failures: 3,
            first_delay: SignedDuration::from_secs(1),
            max_delay: SignedDuration::from_mins(15),
            source_attempts_per_minute: 30,
            account_cap: 100,
            alert_after: 10,
            window: SignedDuration::from_hours(1),
        }
    }
}

/// Past this many remembered keys, stale ones are dropped (then the oldest).
const MAX_ENTRIES: usize = 100_000;

/// Consecutive failures of one username from one source.
#[derive(Debug, Clone, Copy)]
struct Pair {
    failures: u32,
    last: Timestamp,
}

/// Failures of one username from every source, in the current window.
#[derive(Debug, Clone, Copy)]
struct Account {
    failures: u32,
    last: Timestamp,
    alerted: bool,
}

/// Attempts (and refusals worth recording) of one source in one minute.
#[derive(Debug, Clone, Copy)]
struct Source {
    minute: i64,
    attempts: u32,
    recorded: u32,
}

#[derive(Debug, Default)]
struct State {
    pairs: HashMap<(String, IpAddr), Pair>,
    accounts: HashMap<String, Account>,
    sources: HashMap<IpAddr, Source>,
}

/// An attempt the throttle refused before any password was checked.
#[derive(Debug)]
pub struct Refusal {
    /// The answer (429, with the seconds to wait).
    pub error: Error,
    /// Whether to record the refusal as an event: the first few each minute
    /// per source, so a flood cannot flood the record.
    pub record: bool,
}

/// What a failure did to the username's account-wide count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Failures for the username from every source in the window, this one included.
    pub account_failures: u32,
    /// This failure crossed [`LoginPolicy::alert_after`] (once a window).
    pub alert: bool,
}

/// The login throttle of one node.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    policy: LoginPolicy,
    /// A `std` mutex whose poisoning is ignored: the critical sections only
    /// touch counters, so a panic elsewhere while holding it leaves nothing
    /// half-done worth refusing over, and the throttle must keep working.
    state: Mutex<State>,
}

/// The key a username is throttled by: as typed, trimmed and lower-cased.
pub fn account_key(username: &str) -> String {
    username.trim().to_lowercase()
}

/// Whole seconds from `now` until `until`, at least one.
fn secs_until(until: Timestamp, now: Timestamp) -> u64 {
    let us = until.as_microsecond().saturating_sub(now.as_microsecond());
    u64::try_from(us.saturating_add(999_999) / 1_000_000)
        .unwrap_or(1)
        .max(1)
}

impl LoginThrottle {
    pub fn new(policy: LoginPolicy) -> Self {
        LoginThrottle {
            policy,
            state: Mutex::default(),
        }
    }

    pub fn policy(&self) -> &LoginPolicy {
        &self.policy
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The wait a pair owes after `failures` consecutive failures.
    pub fn delay_after(&self, failures: u32) -> SignedDuration {
        let p = &self.policy;
        let Some(past) = failures.checked_sub(p.free_failures) else {
            return SignedDuration::ZERO;
        };
        let factor = 2i32.saturating_pow(past.min(30));
        p.first_delay
            .checked_mul(factor)
            .unwrap_or(p.max_delay)
            .min(p.max_delay)
    }

    fn fresh(&self, last: Timestamp, now: Timestamp) -> bool {
        now.duration_since(last) < self.policy.window
    }

    /// Count an attempt by `source` for `account` and say whether it may go on
    /// to the password check.
    pub fn admit(&self, account: &str, source: IpAddr, now: Timestamp) -> Result<(), Refusal> {
        let minute = now.as_second().div_euclid(60);
        let limit = self.policy.source_attempts_per_minute;
        let mut st = self.state();
        self.prune(&mut st, now, minute);
        let src = st.sources.entry(source).or_insert(Source {
            minute,
            attempts: 0,
            recorded: 0,
        });
        if src.minute != minute {
            *src = Source {
                minute,
                attempts: 0,
                recorded: 0,
            };
        }
        src.attempts = src.attempts.saturating_add(1);
        let over_rate = src.attempts > limit;
        let retry_rate = 60 - u64::try_from(now.as_second().rem_euclid(60)).unwrap_or(0);
        let mut record = || {
            src.recorded = src.recorded.saturating_add(1);
            src.recorded <= limit
        };
        if over_rate {
            let record = record();
            return Err(Refusal {
                error: Error::RateLimited {
                    rule: "too-many-attempts",
                    detail: format!(
                        "more than {limit} login attempts from your address this minute"
                    ),
                    retry_after_secs: retry_rate.max(1),
                },
                record,
            });
        }
        let key = (account.to_owned(), source);
        let Some(pair) = st
            .pairs
            .get(&key)
            .copied()
            .filter(|p| self.fresh(p.last, now))
        else {
            return Ok(());
        };
        let capped = st
            .accounts
            .get(account)
            .is_some_and(|a| self.fresh(a.last, now) && a.failures >= self.policy.account_cap);
        let delay = if capped {
            self.policy.max_delay
        } else {
            self.delay_after(pair.failures)
        };
        let until = pair.last.checked_add(delay).unwrap_or(pair.last);
        if until <= now {
            return Ok(());
        }
        let wait = secs_until(until, now);
        let src = st.sources.get_mut(&source);
        let record = src.is_some_and(|s| {
            s.recorded = s.recorded.saturating_add(1);
            s.recorded <= limit
        });
        Err(Refusal {
            error: Error::RateLimited {
                rule: "login-throttled",
                detail: format!(
                    "too many failed logins with this username from your address; wait {wait} s before trying again"
                ),
                retry_after_secs: wait,
            },
            record,
        })
    }

    /// A password (or second factor) check failed.
    pub fn failed(&self, account: &str, source: IpAddr, now: Timestamp) -> Failure {
        let mut st = self.state();
        let fresh_pair = |p: &Pair| self.fresh(p.last, now);
        let pair = st
            .pairs
            .entry((account.to_owned(), source))
            .or_insert(Pair {
                failures: 0,
                last: now,
            });
        if !fresh_pair(pair) {
            pair.failures = 0;
        }
        pair.failures = pair.failures.saturating_add(1);
        pair.last = now;
        let acc = st.accounts.entry(account.to_owned()).or_insert(Account {
            failures: 0,
            last: now,
            alerted: false,
        });
        if now.duration_since(acc.last) >= self.policy.window {
            *acc = Account {
                failures: 0,
                last: now,
                alerted: false,
            };
        }
        acc.failures = acc.failures.saturating_add(1);
        acc.last = now;
        let alert = !acc.alerted && acc.failures >= self.policy.alert_after;
        if alert {
            acc.alerted = true;
        }
        Failure {
            account_failures: acc.failures,
            alert,
        }
    }

    /// The right password (and second factor) from `source`: its pair starts over.
    pub fn succeeded(&self, account: &str, source: IpAddr) {
        self.state().pairs.remove(&(account.to_owned(), source));
    }

    /// Keep memory bounded: forget what lapsed, then, if a flood of names or
    /// addresses still fills the maps, the least recently failed.
    fn prune(&self, st: &mut State, now: Timestamp, minute: i64) {
        if st.sources.len() > MAX_ENTRIES {
            st.sources.retain(|_, s| s.minute == minute);
        }
        if st.pairs.len() > MAX_ENTRIES {
            st.pairs
                .retain(|_, p| now.duration_since(p.last) < self.policy.window);
            if st.pairs.len() > MAX_ENTRIES {
                let mut lasts: Vec<Timestamp> = st.pairs.values().map(|p| p.last).collect();
                lasts.sort_unstable();
                if let Some(cut) = lasts.get(lasts.len() / 2).copied() {
                    st.pairs.retain(|_, p| p.last > cut);
                }
            }
        }
        if st.accounts.len() > MAX_ENTRIES {
            st.accounts
                .retain(|_, a| now.duration_since(a.last) < self.policy.window);
            if st.accounts.len() > MAX_ENTRIES {
                let mut lasts: Vec<Timestamp> = st.accounts.values().map(|a| a.last).collect();
                lasts.sort_unstable();
                if let Some(cut) = lasts.get(lasts.len() / 2).copied() {
                    st.accounts.retain(|_, a| a.last > cut);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn wait(r: Result<(), Refusal>) -> Option<(&'static str, u64)> {
        match r {
            Ok(()) => None,
            Err(Refusal {
                error:
                    Error::RateLimited {
                        rule,
                        retry_after_secs,
                        ..
                    },
                ..
            }) => Some((rule, retry_after_secs)),
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }

    #[test]
    fn three_failures_are_free_then_each_further_failure_doubles_the_wait() {
        let t = LoginThrottle::default();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(wait(t.admit("nurse", a, at(0))), None);
            t.failed("nurse", a, at(0));
        }
        assert_eq!(
            wait(t.admit("nurse", a, at(0))),
            Some(("login-throttled", 1))
        );
        assert_eq!(wait(t.admit("nurse", a, at(1))), None);
        t.failed("nurse", a, at(1));
        assert_eq!(
            wait(t.admit("nurse", a, at(2))),
            Some(("login-throttled", 1))
        );
        assert_eq!(
            wait(t.admit("nurse", a, at(1))),
            Some(("login-throttled", 2))
        );
        assert_eq!(wait(t.admit("nurse", a, at(3))), None);
        assert_eq!(t.delay_after(40), SignedDuration::from_mins(15), "capped");
        t.succeeded("nurse", a);
        assert_eq!(
            wait(t.admit("nurse", a, at(3))),
            None,
            "success starts over"
        );
    }

    #[test]
    fn a_source_that_never_failed_is_admitted_while_another_source_is_held_back() {
        let t = LoginThrottle::default();
        let attacker = ip("198.51.100.7");
        for i in 0..200 {
            t.failed("nurse", attacker, at(i));
        }
        assert_eq!(
            wait(t.admit("nurse", attacker, at(200))).map(|w| w.0),
            Some("login-throttled")
        );
        assert_eq!(wait(t.admit("nurse", ip("192.0.2.10"), at(200))), None);
    }

    #[test]
    fn past_the_account_cap_every_failed_source_waits_the_longest_and_fresh_ones_do_not() {
        let t = LoginThrottle::default();
        // 100 sources, one failure each: none past its free failures.
        for i in 0..100u8 {
            let src = IpAddr::from([203, 0, 113, i]);
            assert_eq!(wait(t.admit("admin", src, at(0))), None);
            t.failed("admin", src, at(0));
        }
        let one = IpAddr::from([203, 0, 113, 1]);
        assert_eq!(
            wait(t.admit("admin", one, at(10))),
            Some(("login-throttled", 890))
        );
        assert_eq!(wait(t.admit("admin", ip("192.0.2.99"), at(10))), None);
        // An hour without failures and the count is gone.
        assert_eq!(wait(t.admit("admin", one, at(3601))), None);
    }

    #[test]
    fn a_source_gets_thirty_attempts_a_minute_whatever_names_it_tries() {
        let t = LoginThrottle::default();
        let a = ip("192.0.2.5");
        // at(40) starts a minute.
        for i in 0..30 {
            assert_eq!(wait(t.admit(&format!("user{i}"), a, at(40 + i))), None);
        }
        assert_eq!(
            wait(t.admit("user99", a, at(70))),
            Some(("too-many-attempts", 30))
        );
        assert_eq!(wait(t.admit("user99", a, at(100))), None, "a new minute");
    }

    #[test]
    fn the_alert_fires_once_a_window_when_failures_reach_the_threshold() {
        let t = LoginThrottle::default();
        let alerts: Vec<bool> = (0..25)
            .map(|i| t.failed("admin", IpAddr::from([10, 0, 0, i]), at(0)).alert)
            .collect();
        assert_eq!(alerts.iter().filter(|a| **a).count(), 1);
        assert!(alerts[9]);
        assert!(t.failed("admin", ip("10.1.1.1"), at(7200)).account_failures == 1);
    }

    #[test]
    fn a_panic_while_the_state_is_held_does_not_turn_the_throttle_off() {
        let t = std::sync::Arc::new(LoginThrottle::default());
        let a = ip("192.0.2.1");
        for _ in 0..4 {
            t.failed("nurse", a, at(0));
        }
        let t2 = t.clone();
        let panicked = std::thread::spawn(move || {
            let _held = t2.state.lock();
            panic!("a bug elsewhere");
        })
        .join();
        assert!(panicked.is_err());
        assert!(t.state.is_poisoned());
        assert_eq!(
            wait(t.admit("nurse", a, at(0))).map(|w| w.0),
            Some("login-throttled")
        );
    }

    #[test]
    fn usernames_are_keyed_as_typed_trimmed_and_lower_cased() {
        assert_eq!(
            account_key("  Nurse.North@Demo.Careline "),
            "nurse.north@demo.careline"
        );
    }
}
