//! What only a shared database shows: several stores on one database, as
//! several careline nodes run behind a load balancer, and the guarantees
//! PostgreSQL itself enforces (append-only triggers, sealed bodies).

// Races need real concurrent tasks; there is no app task set in a store test.
#![allow(clippy::disallowed_methods)]

use careline_core::authz::Principal;
use careline_core::escalation::Rota;
use careline_core::ids::*;
use careline_core::ingest::{ContactIn, ContactKind};
use careline_core::model::*;
use careline_core::validate::MessageText;
use careline_crypto::MasterKey;
use careline_store::{ContactRequest, NewMember, NewSession, NewUser, Store};
use careline_store_pg::PgStore;
use careline_store_pg::testing::TestPg;
use careline_triage::{Context, Engine};
use jiff::{SignedDuration, Timestamp};
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

mod keys;
mod members;
mod tls;

const EMERGENCY: &str = "I have crushing chest pain going down my left arm and I'm sweating a lot";
const ROUTINE: &str = "Hi, could you send a refill of my lisinopril to the pharmacy? Thanks!";
const HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bm9kZXMtc2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn t0() -> Timestamp {
    "2030-05-06T08:00:00Z".parse().unwrap()
}

fn at(mins: i64) -> Timestamp {
    t0() + SignedDuration::from_mins(mins)
}

/// One database and `n` stores on it, sharing one master key.
struct Cluster {
    nodes: Vec<Arc<PgStore>>,
    url: String,
    master: MasterKey,
    _pg: TestPg,
}

async fn cluster(n: usize) -> Cluster {
    let pg = tokio::task::spawn_blocking(TestPg::start)
        .await
        .unwrap()
        .expect("a private PostgreSQL server");
    let url = pg.fresh_url().unwrap();
    let master = MasterKey::generate().unwrap();
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(Arc::new(
            PgStore::connect(&url, master.clone(), 8).await.unwrap(),
        ));
    }
    Cluster {
        nodes,
        url,
        master,
        _pg: pg,
    }
}

async fn login(s: &PgStore, u: &User, now: Timestamp) -> Principal {
    let token = format!("nodes-{}", uuid::Uuid::now_v7().simple());
    s.create_session(
        NewSession {
            mfa_pending: false,
            token_hash: token.clone(),
            user_id: u.id,
            org_id: u.org_id,
            expires_at: now + SignedDuration::from_hours(12),
        },
        now,
    )
    .await
    .unwrap();
    s.principal(&token, now, SignedDuration::from_hours(1))
        .await
        .unwrap()
        .unwrap()
}

async fn user(s: &PgStore, org: OrgId, name: &str, role: Role, member: Option<MemberId>) -> User {
    s.create_user(
        NewUser {
            org_id: org,
            username: format!("{name}@nodes.example"),
            name: name.into(),
            role,
            member_id: member,
            password_hash: HASH.into(),
        },
        None,
        t0(),
    )
    .await
    .unwrap()
}

/// An organization with one team, an admin, two nurses on the team, and
/// `members` members each with a login.
struct Clinic {
    org: Organization,
    team: CareTeam,
    admin: User,
    nurse: User,
    nurse2: User,
    members: Vec<(Member, User)>,
}

async fn clinic(s: &PgStore, name: &str, members: usize) -> Clinic {
    let org = s.create_org(name, t0()).await.unwrap();
    let team = s.create_team(org.id, "North", None, t0()).await.unwrap();
    let staff = |prefix: &'static str, role: Role| {
        let login = format!("{prefix}.{}", org.id.0.simple());
        async move { user(s, org.id, &login, role, None).await }
    };
    let admin = staff("admin", Role::Admin).await;
    let nurse = staff("nurse", Role::Nurse).await;
    let nurse2 = staff("nurse2", Role::Nurse).await;
    for u in [&nurse, &nurse2] {
        s.add_to_team(org.id, team.id, u.id, None, t0())
            .await
            .unwrap();
    }
    let mut ms = Vec::new();
    for i in 0..members {
        let m = s
            .create_member(
                NewMember {
                    org_id: org.id,
                    name: format!("Member {i}"),
                    date_of_birth: None,
                    sex: None,
                    language: "en".into(),
                    phone: None,
                    email: None,
                    plan: None,
                    team_id: team.id,
                    markers: HealthMarkers::default(),
                    external_ref: None,
                },
                None,
                t0(),
            )
            .await
            .unwrap();
        let u = user(
            s,
            org.id,
            &format!("m{i}.{}", org.id.0.simple()),
            Role::Member,
            Some(m.id),
        )
        .await;
        ms.push((m, u));
    }
    Clinic {
        org,
        team,
        admin,
        nurse,
        nurse2,
        members: ms,
    }
}

fn contact(p: &Principal, member: MemberId, text: &str) -> ContactRequest {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    let engine = ENGINE.get_or_init(|| Engine::embedded().unwrap());
    ContactRequest {
        principal: p.clone(),
        member_id: member,
        contact: ContactIn {
            kind: ContactKind::Message,
            author_id: p.user_id,
            author_name: p.name.clone(),
            text: MessageText::parse(text).unwrap(),
            judgement: engine.judge(text, &Context::default()),
        },
        attachments: vec![],
    }
}

async fn chain_ok(s: &PgStore, org: OrgId) -> i64 {
    let r = s.verify_chains().await.unwrap();
    let r = r.iter().find(|r| r.org_id == org).unwrap();
    assert_eq!(r.error, None, "chain of {} is broken", r.org_name);
    r.events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_nodes_starting_at_once_migrate_once() {
    let pg = tokio::task::spawn_blocking(TestPg::start)
        .await
        .unwrap()
        .unwrap();
    let url = pg.fresh_url().unwrap();
    let master = MasterKey::generate().unwrap();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let (url, master) = (url.clone(), master.clone());
            tokio::spawn(async move { PgStore::connect(&url, master, 2).await })
        })
        .collect();
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.unwrap().expect("every node starts"));
    }
    let (applied,): (i64,) =
        sqlx_core::query_as::query_as("SELECT COUNT(*) FROM schema_migrations")
            .fetch_one(nodes[0].pool())
            .await
            .unwrap();
    assert_eq!(applied, i64::from(careline_store_pg::schema::latest()));
}

#[tokio::test]
async fn a_database_from_a_newer_careline_is_refused_at_open_naming_both_versions() {
    let c = cluster(1).await;
    let known = careline_store_pg::schema::latest();
    let newer = known + 2;
    for v in known + 1..=newer {
        sqlx_core::query::query("INSERT INTO schema_migrations (version) VALUES ($1)")
            .bind(v)
            .execute(c.nodes[0].pool())
            .await
            .unwrap();
    }
    let refused = PgStore::connect(&c.url, c.master.clone(), 2)
        .await
        .err()
        .expect("an older careline refuses a newer schema");
    assert_eq!(
        refused.to_string(),
        format!(
            "the database is at schema version {newer} but this careline knows only up to {known}: upgrade careline before starting it against this database"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_keep_one_chain_per_organization() {
    let c = cluster(2).await;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let x = clinic(a, "Two Node Clinic", 4).await;
    let y = clinic(b, "Other Clinic", 2).await;
    let mut tasks = Vec::new();
    for (i, (m, u)) in x.members.iter().chain(y.members.iter()).enumerate() {
        for k in 0..2 {
            let node = c.nodes[(i + k) % 2].clone();
            let (m, u) = (m.clone(), u.clone());
            tasks.push(tokio::spawn(async move {
                let now = at(1);
                let p = login(&node, &u, now).await;
                for _ in 0..4 {
                    node.record_contact(contact(&p, m.id, ROUTINE), now)
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let nx = chain_ok(a, x.org.id).await;
    assert_eq!(chain_ok(b, x.org.id).await, nx);
    chain_ok(a, y.org.id).await;
    let events = b.events(x.org.id, 0, 10_000).await.unwrap();
    let created = events.iter().filter(|e| e.kind == "ticket.created").count();
    assert_eq!(
        created,
        x.members.len(),
        "one ticket per member, across nodes"
    );
    let messages = events
        .iter()
        .filter(|e| e.kind == "message.created")
        .count();
    assert_eq!(messages, x.members.len() * 2 * 4);
    // A body sealed by one node opens on the other (the data key is shared through the database).
    let (m, u) = &x.members[0];
    let p = login(b, u, at(2)).await;
    let out = a
        .record_contact(contact(&p, m.id, ROUTINE), at(2))
        .await
        .unwrap();
    let (_, msgs) = b.thread(&p, out.message.thread_id, at(2)).await.unwrap();
    assert!(msgs.iter().all(|m| m.text == ROUTINE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_due_page_escalates_once_across_nodes() {
    let c = cluster(3).await;
    let s = &c.nodes[0];
    let x = clinic(s, "Paging Clinic", 2).await;
    let admin = login(s, &x.admin, t0()).await;
    s.set_rota(
        &admin,
        x.team.id,
        Rota {
            primary: Some(x.nurse.id),
            backup: Some(x.nurse2.id),
            physician: None,
            supervisors: vec![],
            unreadable: None,
        },
        t0(),
    )
    .await
    .unwrap();
    let mut first = Vec::new();
    for (m, u) in &x.members {
        let p = login(s, u, at(1)).await;
        let out = s
            .record_contact(contact(&p, m.id, EMERGENCY), at(1))
            .await
            .unwrap();
        first.push(out.page.expect("an emergency pages"));
    }
    let due = at(30);
    let racers: Vec<_> = (0..9)
        .map(|i| {
            let node = c.nodes[i % 3].clone();
            tokio::spawn(async move { node.escalate_due(due, 10).await })
        })
        .collect();
    let mut fired = Vec::new();
    for r in racers {
        fired.extend(r.await.unwrap().unwrap());
    }
    assert_eq!(
        fired.len(),
        first.len(),
        "each page escalates once: {fired:#?}"
    );
    let tickets: HashSet<TicketId> = fired.iter().map(|p| p.ticket_id).collect();
    assert_eq!(tickets.len(), first.len());
    assert!(fired.iter().all(|p| p.targets == vec![x.nurse2.id]));
    chain_ok(&c.nodes[2], x.org.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delivery_is_claimed_by_one_node_at_a_time() {
    let c = cluster(2).await;
    let s = &c.nodes[0];
    let x = clinic(s, "Hook Clinic", 3).await;
    let admin = login(s, &x.admin, t0()).await;
    s.create_webhook(
        &admin,
        "http://pager.example/hook".into(),
        "0123456789abcdef0123".into(),
        vec!["message.*".into()],
        t0(),
    )
    .await
    .unwrap();
    for (m, u) in &x.members {
        let p = login(s, u, at(1)).await;
        for _ in 0..3 {
            s.record_contact(contact(&p, m.id, ROUTINE), at(1))
                .await
                .unwrap();
        }
    }
    let now = at(2);
    let lease = at(3);
    let claims: Vec<_> = (0..6)
        .map(|i| {
            let node = c.nodes[i % 2].clone();
            tokio::spawn(async move { node.claim_deliveries(now, lease, 4).await })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut total = 0;
    for cl in claims {
        for d in cl.await.unwrap().unwrap() {
            assert!(seen.insert(d.id), "delivery {} claimed twice", d.id);
            total += 1;
        }
    }
    assert_eq!(total, 9, "every due delivery is claimed, once");
    assert!(
        s.claim_deliveries(now, lease, 10).await.unwrap().is_empty(),
        "leased"
    );
    assert_eq!(
        c.nodes[1]
            .claim_deliveries(lease, at(4), 100)
            .await
            .unwrap()
            .len(),
        9,
        "a lapsed lease is due again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_refuses_to_rewrite_the_record() {
    let c = cluster(1).await;
    let s = &c.nodes[0];
    let x = clinic(s, "Triggers Clinic", 1).await;
    let (m, u) = &x.members[0];
    let p = login(s, u, at(1)).await;
    let out = s
        .record_contact(contact(&p, m.id, ROUTINE), at(1))
        .await
        .unwrap();
    let privacy = user(s, x.org.id, "privacy.triggers", Role::PrivacyOfficer, None).await;
    let privacy = login(s, &privacy, at(2)).await;
    s.redact_message(
        &privacy,
        out.message.id,
        "posted in the wrong thread",
        at(2),
    )
    .await
    .unwrap();
    let pool = s.pool();
    for sql in [
        "UPDATE events SET kind = 'edited'",
        "DELETE FROM events",
        "TRUNCATE events",
        "DELETE FROM messages",
        "TRUNCATE messages CASCADE",
        "UPDATE messages SET body = 'edited'",
        "UPDATE messages SET redacted_at = NULL, redacted_by = NULL, redacted_by_role = NULL, redaction_reason = NULL",
        "UPDATE messages SET redaction_reason = 'another reason'",
        "DELETE FROM tickets",
        "TRUNCATE pages CASCADE",
    ] {
        let r = sqlx_core::query::query(sqlx_core::sql_str::AssertSqlSafe(sql))
            .execute(pool)
            .await;
        assert!(r.is_err(), "the database allowed: {sql}");
    }
    // Bodies are sealed at rest; the store opens them.
    let bodies: Vec<(String,)> = sqlx_core::query_as::query_as("SELECT body FROM messages")
        .fetch_all(pool)
        .await
        .unwrap();
    assert!(!bodies.is_empty());
    assert!(
        bodies
            .iter()
            .all(|(b,)| careline_crypto::is_sealed(b) && !b.contains("lisinopril"))
    );
    chain_ok(s, x.org.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_with_another_master_key_is_refused_at_start_by_name() {
    let c = cluster(1).await;
    let s = &c.nodes[0];
    let x = clinic(s, "Keyed Clinic", 1).await;
    let (m, u) = &x.members[0];
    let p = login(s, u, at(1)).await;
    let out = s
        .record_contact(contact(&p, m.id, ROUTINE), at(1))
        .await
        .unwrap();
    // Refused at start, naming both keys, before it reads or writes anything.
    let other = MasterKey::generate().unwrap();
    let err = PgStore::connect(&c.url, other.clone(), 2)
        .await
        .err()
        .expect("a node with another master key does not start")
        .to_string();
    assert!(
        err.contains(s.master_key_id()) && err.contains(other.id()) && !err.contains('\n'),
        "{err}"
    );
    // The node with the right key still reads.
    let p = login(s, u, at(2)).await;
    let (_, msgs) = s.thread(&p, out.message.thread_id, at(2)).await.unwrap();
    assert_eq!(msgs[0].text, ROUTINE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_hears_every_commit_once() {
    let c = cluster(2).await;
    let (a, b) = (c.nodes[0].clone(), c.nodes[1].clone());
    let x = clinic(&a, "Relay Clinic", 2).await;
    let mut heard = b.bus().subscribe();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let relay = {
        let b = b.clone();
        tokio::spawn(async move {
            b.relay_events(
                async {
                    let _ = stop_rx.await;
                },
                &|| {},
            )
            .await
        })
    };
    // B's own write is published once, locally.
    let (m, u) = &x.members[0];
    let p = login(&b, u, at(1)).await;
    let own = b
        .record_contact(contact(&p, m.id, ROUTINE), at(1))
        .await
        .unwrap();
    // A's writes reach B's bus through the relay once it listens (what
    // committed before it started is history, not news): write until one arrives.
    let (m2, u2) = &x.members[1];
    let p2 = login(&a, u2, at(2)).await;
    let mut got: Vec<Arc<careline_core::event::Event>> = Vec::new();
    let mut arrived = false;
    for _ in 0..10 {
        let theirs = a
            .record_contact(contact(&p2, m2.id, ROUTINE), at(2))
            .await
            .unwrap();
        let id = theirs.message.id.to_string();
        let wait = tokio::time::timeout(std::time::Duration::from_secs(3), async {
            loop {
                let e = heard.recv().await.unwrap();
                let done = e.kind == "message.created" && e.payload.contains(&id);
                got.push(e);
                if done {
                    return;
                }
            }
        });
        if wait.await.is_ok() {
            arrived = true;
            break;
        }
    }
    assert!(arrived, "no commit of A reached B's bus");
    let ids: Vec<EventId> = got.iter().map(|e| e.id).collect();
    let unique: HashSet<EventId> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "an event was published twice on B");
    let seqs: Vec<i64> = got
        .iter()
        .filter(|e| e.org_id == x.org.id)
        .map(|e| e.seq)
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "out of order: {seqs:?}"
    );
    assert!(got.iter().any(|e| e.kind == "message.created"
        && e.payload.contains(&own.message.id.to_string())));
    stop_tx.send(()).unwrap();
    relay.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_acknowledges_each_write_once_and_a_failing_write_rolls_back_alone() {
    let c = cluster(2).await;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let x = clinic(a, "Busy Clinic", 8).await;
    let before = chain_ok(a, x.org.id).await;
    let mut heard = a.bus().subscribe();
    let mut tasks = Vec::new();
    for (i, (m, u)) in x.members.iter().enumerate() {
        let (m, u) = (m.clone(), u.clone());
        let node = c.nodes[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let p = login(&node, &u, at(1)).await;
            let writes: Vec<_> = (0..25)
                .map(|k| {
                    let node = node.clone();
                    let mut req = contact(&p, m.id, &format!("{ROUTINE} ({k})"));
                    // Every fifth write names a file that does not exist: it
                    // fails after its message and ticket were written.
                    if k % 5 == 4 {
                        req.attachments = vec![AttachmentId::new()];
                    }
                    tokio::spawn(async move { (k, node.record_contact(req, at(1)).await) })
                })
                .collect();
            let mut out = Vec::new();
            for w in writes {
                out.push(w.await.unwrap());
            }
            out
        }));
    }
    let mut acked = Vec::new();
    let mut refused = 0;
    for t in tasks {
        for (k, r) in t.await.unwrap() {
            match (k % 5 == 4, r) {
                (false, Ok(out)) => acked.push(out.message.id),
                (true, Err(_)) => refused += 1,
                (bad, r) => panic!(
                    "write {k} (bad: {bad}) answered {:?}",
                    r.map(|o| o.message.id)
                ),
            }
        }
    }
    assert_eq!(acked.len(), 8 * 20);
    assert_eq!(refused, 8 * 5);
    let events = b.events(x.org.id, before, 100_000).await.unwrap();
    let created: Vec<String> = events
        .iter()
        .filter(|e| e.kind == "message.created")
        .map(|e| e.payload.clone())
        .collect();
    assert_eq!(
        created.len(),
        acked.len(),
        "only the acknowledged writes are in the record"
    );
    for id in &acked {
        let id = id.to_string();
        assert_eq!(
            created.iter().filter(|p| p.contains(&id)).count(),
            1,
            "message {id} recorded once"
        );
    }
    let after = chain_ok(a, x.org.id).await;
    assert_eq!(after - before, events.len() as i64, "no gap in the chain");
    // This node published its own writes, once each, in chain order, and
    // nothing of the writes that rolled back.
    let mut got = Vec::new();
    while let Ok(e) = heard.try_recv() {
        got.push(e);
    }
    let mine: Vec<i64> = got
        .iter()
        .filter(|e| e.org_id == x.org.id && e.kind == "message.created")
        .map(|e| e.seq)
        .collect();
    assert_eq!(mine.len(), acked.len() / 2);
    assert!(
        mine.windows(2).all(|w| w[0] < w[1]),
        "out of order: {mine:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_write_queue_refuses_at_once_instead_of_growing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let c = cluster(1).await;
    let s = &c.nodes[0];
    let x = clinic(s, "Flooded Clinic", 2).await;
    let before = chain_ok(s, x.org.id).await;
    let mut principals = Vec::new();
    for (m, u) in &x.members {
        principals.push((m.id, login(s, u, at(1)).await));
    }
    // Another session holds the chain lock: the committer waits on it and
    // writes pile up in the queue.
    let mut holder = s.pool().begin().await.unwrap();
    sqlx_core::query::query("SELECT seq FROM chain_heads WHERE org_id = $1 FOR UPDATE")
        .bind(x.org.id.0)
        .execute(&mut *holder)
        .await
        .unwrap();
    let total = careline_store_pg::QUEUE_LIMIT + 100;
    let refused = Arc::new(AtomicUsize::new(0));
    let writes: Vec<_> = (0..total)
        .map(|k| {
            let (member, p) = principals[k % principals.len()].clone();
            let (node, refused) = (s.clone(), refused.clone());
            tokio::spawn(async move {
                let r = node
                    .record_contact(contact(&p, member, &format!("{ROUTINE} [{k}]")), at(1))
                    .await;
                if let Err(careline_core::Error::Unavailable(why)) = &r {
                    assert!(why.contains("already waiting"), "{why}");
                    refused.fetch_add(1, Ordering::SeqCst);
                }
                r.map(|o| o.message.id)
            })
        })
        .collect();
    // Everything past the queue (and the group the committer holds) is refused at once.
    let least = total - careline_store_pg::QUEUE_LIMIT - 64;
    let waited = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while refused.load(Ordering::SeqCst) < least {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "only {} refused",
        refused.load(Ordering::SeqCst)
    );
    holder.commit().await.unwrap();
    let mut acked = 0;
    for w in writes {
        match w.await.unwrap() {
            Ok(_) => acked += 1,
            Err(careline_core::Error::Unavailable(_)) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    let refused = refused.load(Ordering::SeqCst);
    assert_eq!(acked + refused, total);
    assert!(
        refused <= 100,
        "{refused} refused: the queue took fewer than its limit"
    );
    let events = s.events(x.org.id, before, 1_000_000).await.unwrap();
    let created = events
        .iter()
        .filter(|e| e.kind == "message.created")
        .count();
    assert_eq!(
        created, acked,
        "every write that was queued is recorded once"
    );
    chain_ok(s, x.org.id).await;
}
