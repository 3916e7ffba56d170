//! The retrospective safety audit's reads and writes, and the safety report.

use crate::Fresh;
use crate::fixture::*;
use careline_core::Disposition;
use careline_core::model::MessageKind;
use careline_core::validate::MessageText;
use careline_store::NewFinding;
use serde_json::json;

pub async fn safety_audit_basics(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Safety Clinic").await;
    o.north_rota().await;
    let me = o.login(&o.member_user, at(1)).await;
    let routine = o.send(&me, o.member.id, ROUTINE, at(1)).await;
    let emergency = o.send(&me, o.member.id, EMERGENCY, at(2)).await;
    let agent = o.login(&o.agent, at(3)).await;
    let call = s
        .record_contact(
            contact(
                &agent,
                o.member2.id,
                careline_core::ingest::ContactKind::CallNote,
                URGENT,
                vec![],
            ),
            at(3),
        )
        .await
        .unwrap();
    let guide = o.login(&o.guide, at(4)).await;
    s.reply(
        &guide,
        routine.ticket.id,
        MessageText::parse("Done.").unwrap(),
        false,
        vec![],
        at(4),
    )
    .await
    .unwrap();
    let nurse = o.login(&o.nurse, at(4)).await;
    s.ack_page(&nurse, emergency.page.as_ref().unwrap().id, at(4))
        .await
        .unwrap();
    s.clear(
        &nurse,
        emergency.ticket.id,
        Disposition::Urgent,
        "Sent to urgent care".into(),
        at(5),
    )
    .await
    .unwrap();

    // Contacts: member messages and call notes only, in the period, paged by id.
    let past = s.contacts(at(0), at(60), None, 100).await.unwrap();
    assert_eq!(
        past.len(),
        3,
        "staff replies and automatic replies are not contacts"
    );
    assert!(
        past.iter()
            .all(|c| matches!(c.kind, MessageKind::Member | MessageKind::CallNote))
    );
    let mids: Vec<_> = past.iter().map(|c| c.message_id).collect();
    assert!(
        mids.contains(&routine.message.id)
            && mids.contains(&emergency.message.id)
            && mids.contains(&call.message.id)
    );
    let e = past
        .iter()
        .find(|c| c.message_id == emergency.message.id)
        .unwrap();
    assert_eq!(
        (
            e.text.as_str(),
            e.ticket_id,
            e.member_id,
            e.org_id,
            e.created_at
        ),
        (EMERGENCY, emergency.ticket.id, o.member.id, o.org.id, at(2))
    );
    let first = s.contacts(at(0), at(60), None, 2).await.unwrap();
    let second = s
        .contacts(at(0), at(60), first.last().map(|c| c.message_id), 2)
        .await
        .unwrap();
    assert_eq!(first.len() + second.len(), 3);
    assert!(
        first
            .iter()
            .all(|a| second.iter().all(|b| a.message_id != b.message_id))
    );
    assert_eq!(
        s.contacts(at(2), at(3), None, 100).await.unwrap().len(),
        1,
        "since is inclusive, until exclusive"
    );
    assert_eq!(s.contact_count(at(0), at(60)).await.unwrap(), 3);
    assert_eq!(s.contact_count(at(3), at(60)).await.unwrap(), 1);

    // Ticket histories: pages, acknowledgements, clearances.
    // (The routine message and the emergency share the member's one open ticket.)
    assert_eq!(routine.ticket.id, emergency.ticket.id);
    let h = s
        .ticket_histories(vec![emergency.ticket.id, call.ticket.id])
        .await
        .unwrap();
    let eh = &h[&emergency.ticket.id];
    assert_eq!(
        (eh.paged.clone(), eh.acked.clone(), eh.cleared.clone()),
        (vec![at(2)], vec![at(4)], vec![at(5)])
    );
    let ch = &h[&call.ticket.id];
    assert_eq!(
        (ch.paged.clone(), ch.acked.len(), ch.cleared.len()),
        (vec![at(3)], 0, 0)
    );

    // Findings are filed once per message and protocol version.
    let finding = NewFinding {
        org_id: o.org.id,
        message_id: call.message.id,
        ticket_id: call.ticket.id,
        member_id: o.member2.id,
        disposition: "urgent".into(),
        finding: json!({"summary": "no clinician within 15 minutes"}),
        protocol_version: "conformance-1".into(),
    };
    assert_eq!(
        s.file_findings(vec![finding.clone()], at(30))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.file_findings(vec![finding.clone()], at(31))
            .await
            .unwrap(),
        0,
        "idempotent"
    );
    let newer = NewFinding {
        protocol_version: "conformance-2".into(),
        ..finding.clone()
    };
    assert_eq!(s.file_findings(vec![newer], at(31)).await.unwrap(), 1);
    forbidden(s.safety_reviews(&guide, None).await, "safety-reviewers");
    let reviewer = o.login(&o.safety, at(32)).await;
    let open = s
        .safety_reviews(&reviewer, Some("open".into()))
        .await
        .unwrap();
    assert_eq!(open.len(), 2);
    let r = &open[0];
    assert_eq!((r.message_id, r.status.as_str()), (call.message.id, "open"));
    assert_eq!(r.finding["summary"], "no clinician within 15 minutes");
    invalid(s.safety_reviews(&reviewer, Some("bogus".into())).await);
    invalid(s.resolve_review(&reviewer, r.id, " ".into(), at(33)).await);
    forbidden(
        s.resolve_review(&guide, r.id, "fine".into(), at(33)).await,
        "safety-reviewers",
    );
    let done = s
        .resolve_review(&reviewer, r.id, "Discussed with the team.".into(), at(33))
        .await
        .unwrap();
    assert_eq!(
        (done.status.as_str(), done.resolved_by, done.resolved_at),
        ("resolved", Some(o.safety.id), Some(at(33)))
    );
    conflict(
        s.resolve_review(&reviewer, r.id, "again".into(), at(34))
            .await,
        "already-resolved",
    );
    assert_eq!(
        s.safety_reviews(&reviewer, Some("resolved".into()))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.safety_reviews(&reviewer, None).await.unwrap().len(), 2);
    let evs = o.events().await;
    assert_eq!(count(&evs, "safety.finding"), 2);
    assert_eq!(count(&evs, "safety.review_resolved"), 1);

    // The report counts what happened in the period.
    forbidden(
        s.safety_report(&guide, at(0), at(60)).await,
        "safety-report",
    );
    let rep = s.safety_report(&reviewer, at(0), at(60)).await.unwrap();
    assert_eq!((rep.contacts, rep.emergency, rep.urgent), (3, 1, 1));
    assert_eq!((rep.pages, rep.pages_acknowledged, rep.alarms), (2, 1, 0));
    assert_eq!(rep.ack_ms, vec![2 * 60 * 1000]);
    assert_eq!((rep.open_safety_reviews, rep.failures_to_escalate), (1, 2));
    let empty = s.safety_report(&reviewer, at(-60), at(0)).await.unwrap();
    assert_eq!((empty.contacts, empty.pages), (0, 0));
    // Another organization's report is its own.
    let other = Org::new(s, "Other Safety").await;
    let rep = s
        .safety_report(&other.login(&other.supervisor, at(40)).await, at(0), at(60))
        .await
        .unwrap();
    assert_eq!(
        (rep.contacts, rep.pages, rep.failures_to_escalate),
        (0, 0, 0)
    );
}
