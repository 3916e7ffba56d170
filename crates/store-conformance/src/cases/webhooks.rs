//! The webhook outbox: filled in the same write as the events, claimed with
//! a lease (no two claimers share a delivery), retried, dead-lettered and
//! replayed.

use crate::Fresh;
use crate::fixture::*;
use careline_store::Delivery;
use std::collections::HashSet;

pub async fn webhook_outbox_lease_retry_dead_letter_replay(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Hook Clinic").await;
    o.north_rota().await;
    let admin = o.login(&o.admin, at(1)).await;
    let guide = o.login(&o.guide, at(1)).await;
    let secret = "0123456789abcdef0123".to_owned();
    forbidden(
        s.create_webhook(
            &guide,
            "http://pager.example/hook".into(),
            secret.clone(),
            vec!["page.*".into()],
            at(1),
        )
        .await,
        "admin-only",
    );
    invalid(
        s.create_webhook(
            &admin,
            "http://pager.example/hook".into(),
            "short".into(),
            vec!["page.*".into()],
            at(1),
        )
        .await,
    );
    invalid(
        s.create_webhook(
            &admin,
            "http://pager.example/hook".into(),
            secret.clone(),
            vec![],
            at(1),
        )
        .await,
    );
    let hook = s
        .create_webhook(
            &admin,
            "http://pager.example/hook".into(),
            secret.clone(),
            vec!["page.*".into(), "ticket.created".into()],
            at(1),
        )
        .await
        .unwrap();
    assert!(hook.active);
    assert_eq!(
        s.webhooks(&admin)
            .await
            .unwrap()
            .iter()
            .map(|w| w.id)
            .collect::<Vec<_>>(),
        vec![hook.id]
    );
    assert!(
        s.claim_deliveries(at(1), at(2), 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing to deliver yet"
    );

    // Three emergencies from three members: a ticket.created and a page.created each.
    let mut texts = Vec::new();
    for (m, u) in [(&o.member, &o.member_user), (&o.member2, &o.member2_user)] {
        let p = o.login(u, at(2)).await;
        texts.push(o.send(&p, m.id, EMERGENCY, at(2)).await);
    }
    let south = new_member(s, o.org.id, o.north.id, "Third Member", "en").await;
    let su = member_login(s, &south, "third@hook-clinic.example").await;
    o.send(&o.login(&su, at(2)).await, south.id, EMERGENCY, at(2))
        .await;
    let pending = s.deliveries(&admin, "pending", 100).await.unwrap();
    assert_eq!(
        pending.len(),
        6,
        "one delivery per subscribed event: {:?}",
        pending.iter().map(|d| &d.event_kind).collect::<Vec<_>>()
    );
    assert!(
        pending
            .iter()
            .all(|d| d.webhook_id == hook.id && d.attempts == 0 && d.url == hook.url)
    );
    assert!(
        pending.iter().all(|d| !d.body.contains("crushing")),
        "deliveries carry no message text"
    );
    let by_kind = |k: &str| pending.iter().filter(|d| d.event_kind == k).count();
    assert_eq!((by_kind("page.created"), by_kind("ticket.created")), (3, 3));

    // Two claimers at once never share a delivery.
    let (a, b) = tokio::join!(
        s.claim_deliveries(at(3), at(4), 4),
        s.claim_deliveries(at(3), at(4), 4)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let ids = |v: &[Delivery]| v.iter().map(|d| d.id).collect::<HashSet<_>>();
    assert!(
        ids(&a).is_disjoint(&ids(&b)),
        "two claimers got the same delivery"
    );
    let rest = s.claim_deliveries(at(3), at(4), 10).await.unwrap();
    let mut claimed = ids(&a);
    claimed.extend(ids(&b));
    assert!(claimed.is_disjoint(&ids(&rest)));
    claimed.extend(ids(&rest));
    assert_eq!(
        claimed,
        ids(&pending),
        "every due delivery is claimed exactly once"
    );
    assert!(
        a.iter().chain(&b).chain(&rest).all(|d| d.secret == secret),
        "a claim carries the signing secret"
    );
    assert!(
        s.claim_deliveries(at(3), at(5), 10)
            .await
            .unwrap()
            .is_empty(),
        "leased deliveries are skipped"
    );

    // Outcomes: delivered, retried later, dead-lettered; an unanswered lease lapses.
    let all: Vec<Delivery> = a.into_iter().chain(b).chain(rest).collect();
    let (ok, retry, dead, lapsed) = (&all[0], &all[1], &all[2], &all[3]);
    s.delivery_attempted(ok.id, true, None, None, at(3))
        .await
        .unwrap();
    s.delivery_attempted(
        retry.id,
        false,
        Some("HTTP 503".into()),
        Some(at(10)),
        at(3),
    )
    .await
    .unwrap();
    s.delivery_attempted(dead.id, false, Some("HTTP 410".into()), None, at(3))
        .await
        .unwrap();
    let again = s.claim_deliveries(at(4), at(5), 10).await.unwrap();
    assert_eq!(
        ids(&again),
        HashSet::from([lapsed.id, all[4].id, all[5].id]),
        "lapsed leases are claimable again"
    );
    for d in &again {
        s.delivery_attempted(d.id, true, None, None, at(4))
            .await
            .unwrap();
    }
    assert!(
        s.claim_deliveries(at(9), at(10), 10)
            .await
            .unwrap()
            .is_empty(),
        "a retry waits for its time"
    );
    let due = s.claim_deliveries(at(10), at(11), 10).await.unwrap();
    assert_eq!(ids(&due), HashSet::from([retry.id]));
    assert_eq!(
        (due[0].attempts, due[0].last_error.as_deref()),
        (1, Some("HTTP 503"))
    );
    s.delivery_attempted(retry.id, true, None, None, at(10))
        .await
        .unwrap();

    let delivered = s.deliveries(&admin, "delivered", 100).await.unwrap();
    assert_eq!(delivered.len(), 5);
    let dl = s.deliveries(&admin, "dead", 100).await.unwrap();
    assert_eq!(ids(&dl), HashSet::from([dead.id]));
    assert_eq!(
        (dl[0].attempts, dl[0].last_error.as_deref()),
        (1, Some("HTTP 410"))
    );
    assert!(
        s.deliveries(&admin, "pending", 100)
            .await
            .unwrap()
            .is_empty()
    );
    invalid(s.deliveries(&admin, "bogus", 100).await);
    forbidden(s.deliveries(&guide, "dead", 100).await, "admin-only");
    let evs = o.events().await;
    assert_eq!(count(&evs, "webhook.dead_lettered"), 1);

    // Replay puts a dead letter back in the outbox, once.
    forbidden(
        s.replay_delivery(&guide, dead.id, at(20)).await,
        "admin-only",
    );
    conflict(
        s.replay_delivery(&admin, ok.id, at(20)).await,
        "not-dead-lettered",
    );
    let r = s.replay_delivery(&admin, dead.id, at(20)).await.unwrap();
    assert_eq!((r.status.as_str(), r.attempts), ("pending", 0));
    conflict(
        s.replay_delivery(&admin, dead.id, at(20)).await,
        "not-dead-lettered",
    );
    let due = s.claim_deliveries(at(20), at(21), 10).await.unwrap();
    assert_eq!(ids(&due), HashSet::from([dead.id]));
    let evs = o.events().await;
    assert_eq!(count(&evs, "webhook.replayed"), 1);

    // Another organization's admin sees none of it.
    let other = Org::new(s, "Other Hooks").await;
    let oa = other.login(&other.admin, at(30)).await;
    assert!(s.webhooks(&oa).await.unwrap().is_empty());
    assert!(
        s.deliveries(&oa, "delivered", 100)
            .await
            .unwrap()
            .is_empty()
    );
    hidden(s.replay_delivery(&oa, dead.id, at(30)).await);
}
