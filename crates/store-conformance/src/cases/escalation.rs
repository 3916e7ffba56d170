//! Pages: sent in the same write as the red flag (invariant 2), answered
//! only by whoever was paged, escalated at the deadline exactly once.

use crate::Fresh;
use crate::fixture::*;
use careline_core::Disposition;
use careline_core::escalation::{PageLevel, PageStatus};
use careline_core::model::*;
use jiff::SignedDuration;
use std::collections::HashSet;

pub async fn emergency_contact_pages_in_the_same_write(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Paging Clinic").await;
    o.north_rota().await;
    let now = at(10);
    let me = o.login(&o.member_user, now).await;
    let before = o.events().await;
    let out = o.send(&me, o.member.id, EMERGENCY, now).await;

    assert_eq!(out.ticket.priority, Disposition::Emergency);
    assert_eq!(out.ticket.queue_id, o.north.clinical_queue);
    assert_eq!(out.queue.kind, QueueKind::Clinical);
    let page = out
        .page
        .clone()
        .expect("an emergency pages in the same write");
    assert_eq!(page.ticket_id, out.ticket.id);
    assert_eq!(page.member_id, o.member.id);
    assert_eq!(page.level, PageLevel::Primary);
    assert_eq!(page.targets, vec![o.nurse.id]);
    assert_eq!(page.status, PageStatus::Open);
    assert_eq!(page.flagged_at, now);
    assert_eq!(
        page.deadline,
        Some(now + SignedDuration::from_mins(2)),
        "default emergency window"
    );
    // Invariant 3: the member's guidance is in the thread at once.
    let reply = out
        .auto_reply
        .clone()
        .expect("an emergency gets the automatic reply");
    assert_eq!(reply.kind, MessageKind::System);
    assert!(!reply.text.is_empty());
    let (_, msgs) = s.thread(&me, out.message.thread_id, now).await.unwrap();
    assert!(msgs.iter().any(|m| m.id == reply.id));

    let new = since(&o.events().await, last_seq(&before));
    for k in [
        "message.created",
        "triage.judged",
        "ticket.created",
        "message.auto_reply",
        "page.created",
    ] {
        assert_eq!(
            count(&new, k),
            1,
            "{k} in the contact's write: {:?}",
            kinds(&new)
        );
    }
    assert!(new.iter().all(|e| e.at() == now));
    let pe = new.iter().find(|e| e.kind == "page.created").unwrap();
    assert_eq!(pe.ticket_id, Some(out.ticket.id));

    let nurse = o.login(&o.nurse, now).await;
    assert_eq!(s.my_pages(&nurse).await.unwrap(), vec![page.clone()]);
    assert!(
        s.my_pages(&o.login(&o.guide, now).await)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.my_pages(&o.login(&o.nurse2, now).await)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.ticket_pages(&nurse, out.ticket.id, now).await.unwrap(),
        vec![page.clone()]
    );
    assert_eq!(s.next_page_deadline().await.unwrap(), page.deadline);

    // An urgent contact pages too, on the urgent window; a routine one does not.
    let me2 = o.login(&o.member2_user, now).await;
    assert!(
        o.send(&me2, o.member2.id, ROUTINE, now)
            .await
            .page
            .is_none()
    );
    let urgent = o.send(&me2, o.member2.id, URGENT, at(11)).await;
    assert_eq!(disposition(URGENT), Disposition::Urgent);
    let up = urgent.page.expect("an urgent contact pages");
    assert_eq!(up.deadline, Some(at(11) + SignedDuration::from_mins(15)));
    assert!(
        urgent.auto_reply.is_none(),
        "only emergencies get the automatic reply"
    );
    assert_eq!(
        s.next_page_deadline().await.unwrap(),
        page.deadline,
        "the earliest deadline"
    );
}

pub async fn page_acknowledged_only_by_the_paged_user(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Ack Clinic").await;
    o.north_rota().await;
    let now = at(10);
    let me = o.login(&o.member_user, now).await;
    let page = o.send(&me, o.member.id, EMERGENCY, now).await.page.unwrap();
    for u in [
        &o.guide,
        &o.nurse2,
        &o.physician,
        &o.supervisor,
        &o.nurse_south,
    ] {
        let p = o.login(u, now).await;
        forbidden(s.ack_page(&p, page.id, at(11)).await, "not-paged");
    }
    let me_ack = s.ack_page(&me, page.id, at(11)).await;
    assert!(me_ack.is_err(), "a member acknowledged a page: {me_ack:?}");
    let nurse = o.login(&o.nurse, now).await;
    let acked = s.ack_page(&nurse, page.id, at(11)).await.unwrap();
    assert_eq!(acked.status, PageStatus::Acknowledged);
    assert_eq!(
        (acked.acked_by, acked.acked_at),
        (Some(o.nurse.id), Some(at(11)))
    );
    conflict(
        s.ack_page(&nurse, page.id, at(11)).await,
        "page-acknowledged",
    );
    assert!(s.my_pages(&nurse).await.unwrap().is_empty());
    assert_eq!(s.next_page_deadline().await.unwrap(), None);
    assert!(
        s.escalate_due(at(60), 10).await.unwrap().is_empty(),
        "an acknowledged page never escalates"
    );
    let evs = o.events().await;
    assert_eq!(count(&evs, "page.acknowledged"), 1);
    assert_eq!(count(&evs, "page.escalated"), 0);
    let e = evs.iter().find(|e| e.kind == "page.acknowledged").unwrap();
    assert_eq!(e.actor_id, Some(o.nurse.id));
    let pages = s
        .ticket_pages(&nurse, page.ticket_id, at(12))
        .await
        .unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].status, PageStatus::Acknowledged);
}

// Real tasks on the runtime's worker threads, so the backend sees true
// concurrency (the app routes its own background work through a named task set).
#[allow(clippy::disallowed_methods)]
pub async fn due_pages_escalate_exactly_once_under_race(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Race Clinic").await;
    o.north_rota().await;
    let now = at(10);
    let mut pages = Vec::new();
    for (i, (m, u)) in [(&o.member, &o.member_user), (&o.member2, &o.member2_user)]
        .into_iter()
        .enumerate()
    {
        let p = o.login(u, now).await;
        let out = o
            .send(
                &p,
                m.id,
                EMERGENCY,
                now + SignedDuration::from_secs(i as i64),
            )
            .await;
        pages.push(out.page.unwrap());
    }
    assert!(
        s.escalate_due(at(11), 10).await.unwrap().is_empty(),
        "nothing is due before the deadline"
    );

    // Eight callers at once, past both deadlines: each page climbs one rung, once.
    let due = at(13);
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.escalate_due(due, 10).await })
        })
        .collect();
    let mut fired = Vec::new();
    for r in racers {
        fired.extend(r.await.expect("task").expect("escalate_due"));
    }
    assert_eq!(
        fired.len(),
        2,
        "each due page escalates exactly once: {fired:#?}"
    );
    let tickets: HashSet<_> = fired.iter().map(|p| p.ticket_id).collect();
    assert_eq!(tickets.len(), 2);
    for p in &fired {
        assert_eq!(p.level, PageLevel::Backup);
        assert_eq!(p.targets, vec![o.nurse2.id]);
        assert_eq!(p.status, PageStatus::Open);
        assert_eq!(
            p.flagged_at,
            pages
                .iter()
                .find(|x| x.ticket_id == p.ticket_id)
                .unwrap()
                .flagged_at
        );
        assert_eq!(p.deadline, Some(due + SignedDuration::from_mins(2)));
    }
    let evs = o.events().await;
    assert_eq!(count(&evs, "page.escalated"), 2);
    assert!(
        s.escalate_due(due, 10).await.unwrap().is_empty(),
        "already escalated"
    );

    // The old page is escalated; the first page can no longer be acknowledged.
    let nurse = o.login(&o.nurse, due).await;
    let first = &pages[0];
    let history = s.ticket_pages(&nurse, first.ticket_id, due).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history
            .iter()
            .filter(|p| p.status == PageStatus::Open)
            .count(),
        1
    );
    assert_eq!(
        history.iter().find(|p| p.id == first.id).unwrap().status,
        PageStatus::Escalated
    );
    conflict(s.ack_page(&nurse, first.id, due).await, "page-not-open");

    // Up the chain to the alarm, which has no deadline and never fires again.
    let mut t = due;
    let mut levels = vec![PageLevel::Backup];
    loop {
        t += SignedDuration::from_mins(16);
        let (a, b) = tokio::join!(s.escalate_due(t, 10), s.escalate_due(t, 10));
        let mut next = a.unwrap();
        next.extend(b.unwrap());
        if next.is_empty() {
            break;
        }
        assert_eq!(next.len(), 2, "one escalation per ticket per rung");
        assert_eq!(next[0].level, next[1].level);
        levels.push(next[0].level);
        assert!(levels.len() < 10, "the chain must end");
    }
    assert_eq!(
        levels,
        [
            PageLevel::Backup,
            PageLevel::Physician,
            PageLevel::Supervisors,
            PageLevel::OrgAlarm
        ]
    );
    assert_eq!(s.next_page_deadline().await.unwrap(), None);
    let evs = o.events().await;
    assert_eq!(count(&evs, "escalation.alarm"), 2);
    assert_eq!(count(&evs, "page.escalated"), 8);
    // The alarm is for any clinician or supervisor of the organization.
    let south = o.login(&o.nurse_south, t).await;
    let alarms = s.my_pages(&south).await.unwrap();
    assert_eq!(alarms.len(), 2);
    assert!(
        alarms
            .iter()
            .all(|p| p.level == PageLevel::OrgAlarm && p.deadline.is_none())
    );
    s.ack_page(&south, alarms[0].id, t).await.unwrap();
    forbidden(
        s.ack_page(&o.login(&o.guide, t).await, alarms[1].id, t)
            .await,
        "not-paged",
    );
    assert_chain(s, o.org.id).await;
}
