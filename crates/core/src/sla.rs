//! Service-level clocks: how long a ticket of each priority may wait for a
//! first response, a next response after the member writes again, and a
//! resolution. Computed from an injected clock; breaches are derived, never stored.

use crate::model::SlaClocks;
use careline_triage::Disposition;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// Targets for one priority, in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    pub first_response_minutes: i64,
    pub next_response_minutes: i64,
    pub resolution_minutes: i64,
}

impl SlaPolicy {
    fn minutes(m: i64) -> SignedDuration {
        SignedDuration::from_mins(m)
    }
}

/// An organization's targets per priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicies {
    pub emergency: SlaPolicy,
    pub urgent: SlaPolicy,
    pub routine: SlaPolicy,
}

impl Default for SlaPolicies {
    /// Emergencies are answered in minutes, urgent contacts within the hour,
    /// routine ones within a working day.
    fn default() -> Self {
        SlaPolicies {
            emergency: SlaPolicy {
                first_response_minutes: 5,
                next_response_minutes: 15,
                resolution_minutes: 4 * 60,
            },
            urgent: SlaPolicy {
                first_response_minutes: 60,
                next_response_minutes: 120,
                resolution_minutes: 24 * 60,
            },
            routine: SlaPolicy {
                first_response_minutes: 24 * 60,
                next_response_minutes: 24 * 60,
                resolution_minutes: 72 * 60,
            },
        }
    }
}

impl SlaPolicies {
    pub fn for_priority(&self, p: Disposition) -> SlaPolicy {
        match p {
            Disposition::Emergency => self.emergency,
            Disposition::Urgent => self.urgent,
            Disposition::Routine => self.routine,
        }
    }
}

/// Which target was missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaBreach {
    FirstResponse,
    NextResponse,
    Resolution,
}

fn add(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

fn earlier(a: Option<Timestamp>, b: Timestamp) -> Timestamp {
    a.map_or(b, |a| a.min(b))
}

/// Clocks for a ticket opened at `created_at`.
pub fn start(policy: SlaPolicy, created_at: Timestamp) -> SlaClocks {
    SlaClocks {
        first_response_due: Some(add(
            created_at,
            SlaPolicy::minutes(policy.first_response_minutes),
        )),
        first_response_at: None,
        next_response_due: None,
        resolution_due: Some(add(
            created_at,
            SlaPolicy::minutes(policy.resolution_minutes),
        )),
        resolved_at: None,
    }
}

/// A raised priority tightens the clocks, measured from the moment the
/// stronger judgement arrived (`now`); it never loosens them.
pub fn tighten(clocks: &mut SlaClocks, policy: SlaPolicy, now: Timestamp) {
    if clocks.first_response_at.is_none() {
        let due = add(now, SlaPolicy::minutes(policy.first_response_minutes));
        clocks.first_response_due = Some(earlier(clocks.first_response_due, due));
    }
    if let Some(next) = clocks.next_response_due {
        clocks.next_response_due =
            Some(next.min(add(now, SlaPolicy::minutes(policy.next_response_minutes))));
    }
    if clocks.resolved_at.is_none() {
        let due = add(now, SlaPolicy::minutes(policy.resolution_minutes));
        clocks.resolution_due = Some(earlier(clocks.resolution_due, due));
    }
}

/// The member wrote again: a response is owed. The first-response clock,
/// if still running, keeps running instead.
pub fn member_wrote(clocks: &mut SlaClocks, policy: SlaPolicy, now: Timestamp) {
    if clocks.first_response_at.is_some() && clocks.next_response_due.is_none() {
        clocks.next_response_due = Some(add(now, SlaPolicy::minutes(policy.next_response_minutes)));
    }
    if clocks.resolved_at.is_some() {
        // Reopened: the resolution clock runs again from now.
        clocks.resolved_at = None;
        clocks.resolution_due = Some(add(now, SlaPolicy::minutes(policy.resolution_minutes)));
    }
}

/// A public staff reply answers whatever was owed.
pub fn staff_replied(clocks: &mut SlaClocks, now: Timestamp) {
    if clocks.first_response_at.is_none() {
        clocks.first_response_at = Some(now);
    }
    clocks.next_response_due = None;
}

/// The ticket was solved.
pub fn resolved(clocks: &mut SlaClocks, now: Timestamp) {
    clocks.resolved_at = Some(now);
    clocks.next_response_due = None;
}

/// Targets missed as of `now`. A target met late stays breached.
pub fn breaches(clocks: &SlaClocks, now: Timestamp) -> Vec<SlaBreach> {
    let mut out = Vec::new();
    if let Some(due) = clocks.first_response_due
        && clocks.first_response_at.map_or(now, |t| t) > due
    {
        out.push(SlaBreach::FirstResponse);
    }
    if let Some(due) = clocks.next_response_due
        && now > due
    {
        out.push(SlaBreach::NextResponse);
    }
    if let Some(due) = clocks.resolution_due
        && clocks.resolved_at.map_or(now, |t| t) > due
    {
        out.push(SlaBreach::Resolution);
    }
    out
}

/// The next deadline this ticket is working against, for ordering queues.
pub fn next_due(clocks: &SlaClocks) -> Option<Timestamp> {
    let mut due: Option<Timestamp> = None;
    let mut consider = |t: Option<Timestamp>| {
        if let Some(t) = t {
            due = Some(due.map_or(t, |d| d.min(t)));
        }
    };
    if clocks.first_response_at.is_none() {
        consider(clocks.first_response_due);
    }
    consider(clocks.next_response_due);
    if clocks.resolved_at.is_none() {
        consider(clocks.resolution_due);
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FakeClock};

    fn t0() -> Timestamp {
        "2026-01-05T09:00:00Z".parse().unwrap()
    }

    #[test]
    fn routine_first_response_breaches_after_a_day_on_a_fake_clock() {
        let clock = FakeClock::new(t0());
        let p = SlaPolicies::default();
        let c = start(p.routine, clock.now());
        clock.advance(SignedDuration::from_hours(23));
        assert!(breaches(&c, clock.now()).is_empty());
        clock.advance(SignedDuration::from_hours(2));
        assert_eq!(breaches(&c, clock.now()), vec![SlaBreach::FirstResponse]);
    }

    #[test]
    fn reply_in_time_meets_first_response_and_member_reply_starts_next_response() {
        let clock = FakeClock::new(t0());
        let p = SlaPolicies::default().urgent;
        let mut c = start(p, clock.now());
        clock.advance(SignedDuration::from_mins(30));
        staff_replied(&mut c, clock.now());
        clock.advance(SignedDuration::from_hours(5));
        assert!(breaches(&c, clock.now()).is_empty());
        member_wrote(&mut c, p, clock.now());
        assert_eq!(
            c.next_response_due,
            Some(clock.now() + SignedDuration::from_hours(2))
        );
        clock.advance(SignedDuration::from_hours(3));
        assert_eq!(breaches(&c, clock.now()), vec![SlaBreach::NextResponse]);
        staff_replied(&mut c, clock.now());
        assert!(breaches(&c, clock.now()).is_empty());
    }

    #[test]
    fn late_first_response_stays_breached() {
        let clock = FakeClock::new(t0());
        let p = SlaPolicies::default().emergency;
        let mut c = start(p, clock.now());
        clock.advance(SignedDuration::from_mins(7));
        staff_replied(&mut c, clock.now());
        assert_eq!(breaches(&c, clock.now()), vec![SlaBreach::FirstResponse]);
    }

    #[test]
    fn raised_priority_tightens_but_never_loosens() {
        let p = SlaPolicies::default();
        let created = t0();
        let mut c = start(p.routine, created);
        let now = created + SignedDuration::from_mins(10);
        tighten(&mut c, p.emergency, now);
        assert_eq!(
            c.first_response_due,
            Some(now + SignedDuration::from_mins(5))
        );
        assert_eq!(c.resolution_due, Some(now + SignedDuration::from_hours(4)));
        let before = c;
        tighten(&mut c, p.routine, now);
        assert_eq!(c, before);
    }

    #[test]
    fn next_due_orders_by_the_earliest_open_deadline() {
        let p = SlaPolicies::default();
        let c = start(p.urgent, t0());
        assert_eq!(next_due(&c), Some(t0() + SignedDuration::from_hours(1)));
    }
}
