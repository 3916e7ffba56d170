//! A month of contact-centre load on a virtual clock: 200,000 contacts, a
//! few percent red flags, clinicians who acknowledge after random delays and
//! sometimes never, and the process restarted several times. Every red flag
//! must reach a clinician or the organization-wide alarm, and no rung of any
//! chain may fire twice. Deterministic: the same seed gives the same month.

use careline_core::authz::Principal;
use careline_core::clock::{Clock, FakeClock};
use careline_core::escalation::{Page, PageLevel};
use careline_core::ids::*;
use careline_core::ingest::{ContactIn, ContactKind};
use careline_core::model::Role;
use careline_core::validate::MessageText;
use careline_store::{ContactRequest, Store};
use careline_store_sqlite::SqliteStore;
use careline_triage::{Context, Disposition, Engine};
use jiff::{SignedDuration, Timestamp};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

/// splitmix64: small, fast, deterministic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn exp_secs(&mut self, mean: f64) -> SignedDuration {
        SignedDuration::from_secs_f64(-mean * (1.0 - self.unit()).ln())
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[(self.next() % v.len() as u64) as usize]
    }
}

const ROUTINE: &[&str] = &[
    "Can you send a refill of my metformin to the CVS on Elm Street?",
    "I need to move my appointment on Thursday to next week please",
    "Question about a bill I got for my last visit, it looks like a duplicate charge",
    "My lab results are in the portal, what does a slightly high LDL mean?",
    "Mild cold for three days, runny nose, no fever. What can I take?",
    "Please send me a copy of my immunization record for school",
    "Thank you so much for the help yesterday!",
    "Can I get a referral to a dermatologist for a mole check?",
    "Necesito una cita para mi chequeo anual",
    "what time does the clinic open on saturday",
];

const RED_FLAGS: &[&str] = &[
    "I have crushing chest pain going down my left arm and I'm sweating",
    "my mom is slurring her words and her face is drooping on one side",
    "My blood pressure is 188/108 this morning",
    "my calf is swollen and painful since my flight yesterday",
    "I threw up blood twice this morning",
    "worst headache of my life came on suddenly 20 minutes ago",
    "tengo dolor de pecho y me falta el aire",
    "my 6 week old has a fever of 100.8",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    /// The page's target tries to acknowledge it.
    Ack(PageId),
    /// After acknowledging, the clinician records a decision.
    Clear(TicketId, UserId),
}

struct World {
    store: Arc<SqliteStore>,
    engine: Engine,
    clock: Arc<FakeClock>,
    members: Vec<Principal>,
    staff: HashMap<UserId, Principal>,
    supervisors: Vec<UserId>,
    rng: Rng,
    agenda: BinaryHeap<Reverse<(Timestamp, Action)>>,
    open_deadlines: BTreeMap<PageId, Timestamp>,
    pages: HashMap<PageId, Page>,
}

impl World {
    fn page_opened(&mut self, p: Page) {
        if let Some(d) = p.deadline {
            self.open_deadlines.insert(p.id, d);
        }
        let now = self.clock.now();
        let when = if p.level == PageLevel::OrgAlarm {
            // Somebody always answers the alarm, within minutes.
            Some(now + self.rng.exp_secs(120.0))
        } else if self.rng.unit() < 0.92 {
            let mean = if p.disposition == Disposition::Emergency {
                50.0
            } else {
                360.0
            };
            Some(now + self.rng.exp_secs(mean))
        } else {
            None // never answers
        };
        if let Some(t) = when {
            self.agenda.push(Reverse((t, Action::Ack(p.id))));
        }
        self.pages.insert(p.id, p);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a month of load (about 5 minutes in a debug build): scripts/test.sh runs it on its own after the other tests"]
async fn simulation_month_of_contacts_every_red_flag_reaches_a_clinician_or_the_alarm_and_nothing_fires_twice()
 {
    let contacts: usize = std::env::var("CARELINE_SIM_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let seed: u64 = std::env::var("CARELINE_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_123);
    let dir = tempfile::tempdir().unwrap();
    let start: Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
    let clock = Arc::new(FakeClock::new(start));
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    careline::demo::seed(store.as_ref(), "careline-demo", start)
        .await
        .unwrap();
    let org = store.org_by_name("Demo Clinic").await.unwrap().unwrap();
    let users = store.users(org.id).await.unwrap();
    let teams = store.teams(org.id).await.unwrap();
    let team_of = |name: &str| teams.iter().find(|t| t.name == name).unwrap().id;
    let mut staff = HashMap::new();
    let mut members = Vec::new();
    for u in &users {
        let p = Principal {
            user_id: u.id,
            org_id: org.id,
            role: u.role,
            name: u.name.clone(),
            member_id: u.member_id,
            proxy_for: vec![],
            team_ids: vec![],
            grants: vec![],
            enrolment_only: false,
        };
        match u.role {
            Role::Member => members.push(p),
            r if r.is_staff() => {
                let mut p = p;
                if u.username.contains("north") {
                    p.team_ids = vec![team_of("North")];
                } else if u.username.contains("south") {
                    p.team_ids = vec![team_of("South")];
                } else {
                    p.team_ids = teams.iter().map(|t| t.id).collect();
                }
                staff.insert(u.id, p);
            }
            _ => {}
        }
    }
    let supervisors = users
        .iter()
        .filter(|u| u.role == Role::Supervisor)
        .map(|u| u.id)
        .collect();
    let mut w = World {
        store,
        engine: Engine::embedded().unwrap(),
        clock: clock.clone(),
        members,
        staff,
        supervisors,
        rng: Rng(seed),
        agenda: BinaryHeap::new(),
        open_deadlines: BTreeMap::new(),
        pages: HashMap::new(),
    };
    let month = SignedDuration::from_hours(24 * 30);
    let mean_gap = month.as_secs_f64() / contacts as f64;
    let restarts = [5, 12, 19, 26].map(|d| start + SignedDuration::from_hours(24 * d));
    let mut next_restart = 0;
    let mut next_arrival = start + w.rng.exp_secs(mean_gap);
    let (mut sent, mut red_flag_contacts) = (0usize, Vec::new());
    let wall = std::time::Instant::now();
    while sent < contacts {
        let deadline = w.open_deadlines.values().min().copied();
        let agenda = w.agenda.peek().map(|Reverse((t, _))| *t);
        let next = [Some(next_arrival), deadline, agenda]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
        if next_restart < restarts.len() && restarts[next_restart] <= next {
            // The process dies and comes back; only the database survives.
            clock.set(restarts[next_restart]);
            next_restart += 1;
            w.store = Arc::new(SqliteStore::open(dir.path()).unwrap());
            continue;
        }
        clock.set(next);
        let now = next;
        if deadline == Some(next) {
            let fired = w.store.escalate_due(now, 1000).await.unwrap();
            let due: Vec<PageId> = w
                .open_deadlines
                .iter()
                .filter(|(_, d)| **d <= now)
                .map(|(id, _)| *id)
                .collect();
            for id in due {
                w.open_deadlines.remove(&id);
            }
            for p in fired {
                w.page_opened(p);
            }
        } else if agenda == Some(next) {
            let Reverse((_, action)) = w.agenda.pop().unwrap();
            match action {
                Action::Ack(id) => {
                    let page = w.pages[&id].clone();
                    let who = if page.level == PageLevel::OrgAlarm {
                        *w.rng.pick(&w.supervisors)
                    } else {
                        page.targets[0]
                    };
                    let principal = w.staff[&who].clone();
                    match w.store.ack_page(&principal, id, now).await {
                        Ok(_) => {
                            w.open_deadlines.remove(&id);
                            let at = now + w.rng.exp_secs(600.0);
                            w.agenda
                                .push(Reverse((at, Action::Clear(page.ticket_id, who))));
                        }
                        // Too late: the page had already escalated or been superseded.
                        Err(careline_core::Error::Conflict { .. }) => {}
                        Err(e) => panic!("ack: {e}"),
                    }
                }
                Action::Clear(ticket, who) => {
                    let mut p = w.staff[&who].clone();
                    if !p.role.is_clinical() {
                        // A supervisor who took an alarm hands the decision to the physician.
                        p = w
                            .staff
                            .values()
                            .find(|s| s.role == Role::Physician)
                            .unwrap()
                            .clone();
                    }
                    match w
                        .store
                        .clear(
                            &p,
                            ticket,
                            Disposition::Routine,
                            "assessed by phone; safe for routine care".into(),
                            now,
                        )
                        .await
                    {
                        Ok(_) | Err(careline_core::Error::Conflict { .. }) => {}
                        Err(e) => panic!("clear: {e}"),
                    }
                }
            }
        } else {
            next_arrival = now + w.rng.exp_secs(mean_gap);
            let member = w.rng.pick(&w.members).clone();
            let text = if w.rng.unit() < 0.03 {
                *w.rng.pick(RED_FLAGS)
            } else {
                *w.rng.pick(ROUTINE)
            };
            let judgement = w.engine.judge(text, &Context::default());
            let red = judgement.disposition.is_red_flag();
            let contact = ContactIn {
                kind: ContactKind::Message,
                author_id: member.user_id,
                author_name: member.name.clone(),
                text: MessageText::parse(text).unwrap(),
                judgement,
            };
            let out = w
                .store
                .record_contact(
                    ContactRequest {
                        principal: member.clone(),
                        member_id: member.member_id.unwrap(),
                        contact,
                        attachments: Vec::new(),
                    },
                    now,
                )
                .await
                .unwrap();
            if red {
                red_flag_contacts.push((out.ticket.id, now));
            }
            if let Some(p) = out.page {
                // A newer page supersedes the older open one on the same ticket.
                let old: Vec<PageId> = w
                    .pages
                    .values()
                    .filter(|o| o.ticket_id == p.ticket_id && w.open_deadlines.contains_key(&o.id))
                    .map(|o| o.id)
                    .collect();
                for id in old {
                    w.open_deadlines.remove(&id);
                }
                w.page_opened(p);
            }
            sent += 1;
        }
    }
    // Let every chain finish: run the clock forward until nothing is open.
    let mut now = clock.now();
    while !w.open_deadlines.is_empty() || !w.agenda.is_empty() {
        now += SignedDuration::from_secs(30);
        clock.set(now);
        for p in w.store.escalate_due(now, 1000).await.unwrap() {
            w.page_opened(p);
        }
        w.open_deadlines.retain(|_, d| *d > now);
        while w.agenda.peek().is_some_and(|Reverse((t, _))| *t <= now) {
            let Reverse((_, action)) = w.agenda.pop().unwrap();
            if let Action::Ack(id) = action {
                let page = w.pages[&id].clone();
                let who = if page.level == PageLevel::OrgAlarm {
                    w.supervisors[0]
                } else {
                    page.targets[0]
                };
                let _ = w.store.ack_page(&w.staff[&who], id, now).await;
            }
        }
    }
    let elapsed = wall.elapsed();
    drop(w.store);

    // Read the month back from the database itself.
    let c = rusqlite::Connection::open(dir.path().join("careline.db")).unwrap();
    let dup: i64 = c
        .query_row("SELECT COUNT(*) FROM (SELECT ticket_id, flagged_at, level, COUNT(*) n FROM pages GROUP BY 1, 2, 3 HAVING n > 1)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(dup, 0, "a rung of a chain fired twice");
    let escalated: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM pages WHERE status = 'escalated'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let escalation_events: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'page.escalated'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        escalated, escalation_events,
        "each escalation recorded exactly once"
    );
    // Every red-flag contact reached a clinician or the alarm.
    let mut reached = c
        .prepare("SELECT COUNT(*) FROM pages WHERE ticket_id = ?1 AND flagged_at <= ?2 AND (acked_at IS NOT NULL OR level = 'org_alarm')")
        .unwrap();
    for (ticket, at) in &red_flag_contacts {
        let n: i64 = reached
            .query_row(
                rusqlite::params![ticket.to_string(), at.as_microsecond()],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            n > 0,
            "red flag on ticket {ticket} at {at} never reached a clinician or the alarm"
        );
    }
    let open: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM pages WHERE status = 'open' AND level != 'org_alarm'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(open, 0, "no page left waiting");
    // Time to clinician: from each red flag's commit to its first acknowledgement.
    let mut s = c
        .prepare("SELECT disposition, MIN(acked_at) - flagged_at, MAX(level = 'org_alarm') FROM pages GROUP BY ticket_id, flagged_at")
        .unwrap();
    let mut by: HashMap<String, Vec<i64>> = HashMap::new();
    let mut alarms = 0;
    for row in s
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .unwrap()
    {
        let (d, us, alarm) = row.unwrap();
        alarms += alarm;
        if let Some(us) = us {
            by.entry(d).or_default().push(us / 1_000_000);
        }
    }
    eprintln!(
        "simulation: {contacts} contacts over 30 days (seed {seed}), {} red-flag contacts, {} chains, {escalated} escalations, {alarms} alarms, {} restarts, {:.1}s wall",
        red_flag_contacts.len(),
        by.values().map(Vec::len).sum::<usize>(),
        restarts.len(),
        elapsed.as_secs_f64()
    );
    for (d, v) in &mut by {
        v.sort_unstable();
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        eprintln!(
            "  time to clinician, {d}: n={} p50 {}s p90 {}s p99 {}s max {}s",
            v.len(),
            q(0.5),
            q(0.9),
            q(0.99),
            v[v.len() - 1]
        );
    }
    assert!(!red_flag_contacts.is_empty());
}
