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

/// Deep verification (`verify_rows`) after every kind of change the record
/// knows of a message, ticket, page and attachment: no row disagrees, and
/// every row is counted.
pub async fn every_row_agrees_with_the_record_after_a_day_of_work(f: Fresh) {
    use careline_core::Disposition;
    use careline_core::model::TicketStatus;
    use careline_core::validate::MessageText;
    use careline_store::{NewAttachment, ScanOutcome};
    let s = &f.store;
    let o = Org::new(s, "Deep Alpha").await;
    let other = Org::new(s, "Deep Beta").await;
    o.north_rota().await;
    let me = o.login(&o.member_user, at(1)).await;
    let guide = o.login(&o.guide, at(1)).await;
    let nurse = o.login(&o.nurse, at(1)).await;
    let privacy = o.login(&o.privacy, at(1)).await;
    // A routine ticket: claimed, answered, reopened, solved, closed.
    let routine = o.send(&me, o.member.id, ROUTINE, at(1)).await;
    let t = routine.ticket.id;
    s.assign(&guide, t, Some(o.guide.id), at(2)).await.unwrap();
    let text = |t: &str| MessageText::parse(t).unwrap();
    s.reply(&guide, t, text("Sent it over."), false, vec![], at(3))
        .await
        .unwrap();
    s.reply(
        &guide,
        t,
        text("Pharmacy called back."),
        true,
        vec![],
        at(3),
    )
    .await
    .unwrap();
    let again = o.send(&me, o.member.id, "Thanks, got it", at(4)).await;
    s.transition(&guide, t, TicketStatus::Solved, None, at(5))
        .await
        .unwrap();
    s.transition(&guide, t, TicketStatus::Closed, None, at(6))
        .await
        .unwrap();
    // An attachment: uploaded, scanned clean, sent with a message.
    let file = s
        .create_attachment(
            &me,
            NewAttachment {
                member_id: o.member.id,
                file_name: "log.png".into(),
                content_type: "image/png".into(),
                size: 42,
                sha256: careline_core::ingest::text_digest("log.png"),
                blob: "blobs/deep-log".into(),
                metadata_removed: vec![],
            },
            at(7),
        )
        .await
        .unwrap();
    assert_eq!(
        s.claim_scans(at(7), SignedDuration::from_mins(5), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    s.finish_scan(file.id, ScanOutcome::Clean, at(7))
        .await
        .unwrap();
    s.record_contact(
        message(&me, o.member.id, "Here is my log", vec![file.id]),
        at(8),
    )
    .await
    .unwrap();
    // An emergency: paged, escalated once, acknowledged, cleared down,
    // raised again by hand (paging anew).
    let red = o.send(&me, o.member.id, EMERGENCY, at(10)).await;
    assert!(red.page.is_some() && red.auto_reply.is_some());
    let escalated = s.escalate_due(at(30), 10).await.unwrap();
    assert_eq!(escalated.len(), 1);
    let nurse2 = o.login(&o.nurse2, at(31)).await;
    s.ack_page(&nurse2, escalated[0].id, at(31)).await.unwrap();
    s.clear(
        &nurse,
        red.ticket.id,
        Disposition::Routine,
        "Spoke to her, reflux".into(),
        at(32),
    )
    .await
    .unwrap();
    s.set_priority(
        &nurse,
        red.ticket.id,
        Disposition::Urgent,
        "called back, worse".into(),
        at(33),
    )
    .await
    .unwrap();
    // A redaction keeps the sealed text and its hash.
    s.redact_message(&privacy, again.message.id, "wrong member", at(34))
        .await
        .unwrap();
    // The other organization's rows are checked under it.
    let them = other.login(&other.member_user, at(1)).await;
    other.send(&them, other.member.id, URGENT, at(1)).await;

    let reports = s.verify_rows(None).await.unwrap();
    for r in &reports {
        assert!(r.findings.is_empty(), "{}: {:#?}", r.org_name, r.findings);
    }
    let a = reports.iter().find(|r| r.org_name == "Deep Alpha").unwrap();
    // Routine, two replies, thanks, log; emergency and its automatic reply.
    assert_eq!((a.messages, a.tickets, a.attachments), (7, 2, 1), "{a:?}");
    assert!(
        a.pages >= 3,
        "first page, its escalation, the new page: {a:?}"
    );
    let b = reports.iter().find(|r| r.org_name == "Deep Beta").unwrap();
    assert_eq!((b.messages, b.tickets), (1, 1), "{b:?}");
}
