//! The record: one hash chain per organization, gap-free and verifiable,
//! however many writers append at once.

use crate::Fresh;
use crate::fixture::*;
use jiff::SignedDuration;
use std::collections::HashSet;

pub async fn event_chain_is_gap_free_and_verifies(f: Fresh) {
    let s = &f.store;
    let a = Org::new(s, "Chain Alpha").await;
    let b = Org::new(s, "Chain Beta").await;
    let first = a.events().await;
    assert_eq!(first[0].kind, "organization.created");
    assert_eq!(first[0].seq, 1);
    for o in [&a, &b] {
        let me = o.login(&o.member_user, at(1)).await;
        o.send(&me, o.member.id, ROUTINE, at(1)).await;
        let guide = o.login(&o.guide, at(2)).await;
        s.thread(
            &guide,
            o.send(&me, o.member.id, URGENT, at(2))
                .await
                .message
                .thread_id,
            at(3),
        )
        .await
        .unwrap();
    }
    let ea = assert_chain(s, a.org.id).await;
    let eb = assert_chain(s, b.org.id).await;
    assert!(ea.len() > 20 && eb.len() > 20);
    // Each organization counts from one; event ids are unique across them.
    assert_eq!(eb[0].seq, 1);
    let ids: HashSet<_> = ea.iter().chain(eb.iter()).map(|e| e.id).collect();
    assert_eq!(ids.len(), ea.len() + eb.len());
    // Paging through `events` from any point.
    let page = s.events(a.org.id, 5, 3).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [6, 7, 8]);
    assert_eq!(page, ea[5..8].to_vec());
    assert!(
        s.events(a.org.id, last_seq(&ea), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Every report is intact, including organizations nobody wrote to since.
    let c = s.create_org("Chain Gamma", at(4)).await.unwrap();
    let reports = s.verify_chains().await.unwrap();
    assert!(reports.iter().all(|r| r.error.is_none()), "{reports:?}");
    assert_eq!(
        reports.iter().find(|r| r.org_id == c.id).map(|r| r.events),
        Some(1)
    );
    // Organization names are unique.
    assert!(
        s.create_org("Chain Gamma", at(4)).await.is_err(),
        "a second organization took a taken name"
    );
    assert_eq!(
        s.org_by_name("Chain Gamma").await.unwrap().map(|o| o.id),
        Some(c.id)
    );
    assert_eq!(s.orgs().await.unwrap().len(), 3);
}

/// Many tasks writing at once (contacts, sessions, reads, failed logins) in
/// two organizations still leave one gap-free chain each.
// Real tasks on the runtime's worker threads, so the backend sees true
// concurrency (the app routes its own background work through a named task set).
#[allow(clippy::disallowed_methods)]
pub async fn concurrent_writers_keep_one_chain(f: Fresh) {
    let s = &f.store;
    let a = Org::new(s, "Busy Alpha").await;
    let b = Org::new(s, "Busy Beta").await;
    let mut members = Vec::new();
    for o in [&a, &b] {
        for i in 0..3 {
            let m = new_member(s, o.org.id, o.north.id, &format!("Member {i}"), "en").await;
            let u = member_login(
                s,
                &m,
                &format!(
                    "m{i}@{}.example",
                    o.org.name.replace(' ', "-").to_lowercase()
                ),
            )
            .await;
            members.push((o.org.id, m, u));
        }
    }
    let before_a = last_seq(&a.events().await);
    let before_b = last_seq(&b.events().await);
    let tasks: Vec<_> = (0..16)
        .map(|i: usize| {
            let s = s.clone();
            let (org, m, u) = members[i % members.len()].clone();
            let guide = if org == a.org.id {
                a.guide.clone()
            } else {
                b.guide.clone()
            };
            tokio::spawn(async move {
                let now = at(10) + SignedDuration::from_millis(i as i64);
                let me = login(&s, &u, now).await;
                for k in 0..5 {
                    let text = if k == 2 { URGENT } else { ROUTINE };
                    s.record_contact(message(&me, m.id, text, vec![]), now)
                        .await
                        .expect("record_contact");
                }
                let g = login(&s, &guide, now).await;
                s.reach_member(&g, m.id)
                    .await
                    .expect("care team reaches the member");
                s.member(&g, m.id, now).await.expect("member read");
                s.record_login_failure(org, Some(guide.id), "guide", None, now)
                    .await
                    .unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer task");
    }
    let ea = assert_chain(s, a.org.id).await;
    let eb = assert_chain(s, b.org.id).await;
    let new_a = since(&ea, before_a);
    let new_b = since(&eb, before_b);
    assert_eq!(
        count(&new_a, "message.created") + count(&new_b, "message.created"),
        16 * 5
    );
    assert_eq!(
        count(&new_a, "triage.judged") + count(&new_b, "triage.judged"),
        16 * 5
    );
    assert_eq!(
        count(&new_a, "session.login_failed") + count(&new_b, "session.login_failed"),
        16
    );
    assert_eq!(
        count(&new_a, "ticket.created") + count(&new_b, "ticket.created"),
        members.len()
    );
    assert_eq!(count(&new_a, "phi.read") + count(&new_b, "phi.read"), 16);
}
