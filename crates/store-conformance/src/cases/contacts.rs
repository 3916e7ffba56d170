//! Recording contacts: message, ticket and events in one write, every
//! contact with its triage result (invariant 1), nothing left by a refusal.

use crate::Fresh;
use crate::fixture::*;
use careline_core::Disposition;
use careline_core::ids::AttachmentId;
use careline_core::ingest::{ContactKind, text_digest};
use careline_core::model::*;
use careline_store::TicketFilter;

pub async fn record_contact_commits_message_ticket_and_events(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Contact Clinic").await;
    assert_eq!(disposition(ROUTINE), Disposition::Routine);
    let now = at(5);
    let me = o.login(&o.member_user, now).await;
    let before = o.events().await;
    let out = o.send(&me, o.member.id, ROUTINE, now).await;

    assert!(out.new_ticket);
    assert_eq!(out.message.kind, MessageKind::Member);
    assert_eq!(out.message.text, ROUTINE);
    assert_eq!(out.message.ticket_id, Some(out.ticket.id));
    let triage = out
        .message
        .triage
        .as_ref()
        .expect("a contact carries its triage result");
    assert_eq!(triage.disposition, Disposition::Routine);
    assert!(!triage.protocol_version.is_empty());
    assert_eq!(out.ticket.status, TicketStatus::New);
    assert_eq!(out.ticket.priority, Disposition::Routine);
    assert_eq!(out.ticket.member_id, o.member.id);
    assert_eq!(out.ticket.team_id, o.north.id);
    assert_eq!(out.ticket.queue_id, o.north.team_queue);
    assert_eq!(out.queue.id, o.north.team_queue);
    assert_eq!(out.queue.kind, QueueKind::Team);
    assert!(out.page.is_none() && out.auto_reply.is_none() && out.call_id.is_none());
    assert!(
        out.ticket.sla.first_response_due.is_some(),
        "SLA clocks start with the ticket"
    );

    // The events of the write, in one run, scoped to the contact.
    let new = since(&o.events().await, last_seq(&before));
    assert_eq!(
        kinds(&new),
        [
            "thread.created",
            "message.created",
            "triage.judged",
            "ticket.created",
            "ticket.review_flagged"
        ],
        "a refill names a medicine: the review net marks it for a nurse's same-day look"
    );
    assert!(out.ticket.review_pending(), "{:?}", out.ticket.review);
    for e in &new {
        assert_eq!(e.member_id, Some(o.member.id));
        assert_eq!(e.thread_id, Some(out.message.thread_id));
        assert_eq!(e.at(), now);
    }
    let created = payload(&new[1]);
    assert_eq!(created["message_id"], out.message.id.to_string());
    assert_eq!(created["text_sha256"], text_digest(ROUTINE));
    assert!(
        !new[1].payload.contains("lisinopril"),
        "events carry a digest, not the text"
    );
    assert_eq!(payload(&new[2])["disposition"], "routine");
    assert_eq!(new[3].ticket_id, Some(out.ticket.id));

    // What was committed reads back the same.
    let (thread, msgs) = s.thread(&me, out.message.thread_id, now).await.unwrap();
    assert_eq!(thread.member_id, o.member.id);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].id, out.message.id);
    assert_eq!(
        msgs[0].triage.as_ref().map(|j| j.disposition),
        Some(Disposition::Routine)
    );
    let (t, q) = s.ticket(&me, out.ticket.id, now).await.unwrap();
    assert_eq!(t, out.ticket);
    assert_eq!(q, out.queue);

    // A second contact lands on the same thread and ticket; a stronger one raises it.
    let out2 = o.send(&me, o.member.id, URGENT, at(6)).await;
    assert!(!out2.new_ticket);
    assert_eq!(out2.ticket.id, out.ticket.id);
    assert_eq!(out2.message.thread_id, out.message.thread_id);
    assert!(
        out2.ticket.priority >= Disposition::Urgent,
        "a stronger judgement raises the ticket"
    );
    assert_eq!(out2.ticket.queue_id, o.north.clinical_queue);
    let new = since(&o.events().await, last_seq(&new));
    assert!(kinds(&new).contains(&"ticket.priority_raised"));
    assert!(kinds(&new).contains(&"ticket.routed"));

    // Invariant 1 over everything stored: every contact has a triage result.
    let guide = o.login(&o.guide, at(7)).await;
    let (_, msgs) = s
        .thread(&guide, out.message.thread_id, at(7))
        .await
        .unwrap();
    assert!(msgs.len() >= 2);
    for m in msgs.iter().filter(|m| m.kind.is_contact()) {
        assert!(m.triage.is_some(), "contact {} stored without triage", m.id);
    }
    assert_chain(s, o.org.id).await;
}

/// A refused contact (bad attachment, wrong sender) writes nothing at all.
pub async fn refused_contact_leaves_no_trace(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Refusal Clinic").await;
    let now = at(5);
    let me = o.login(&o.member_user, now).await;
    let guide = o.login(&o.guide, now).await;
    let before = o.events().await;

    // A file that does not exist: the whole write rolls back.
    invalid(
        s.record_contact(
            message(&me, o.member.id, EMERGENCY, vec![AttachmentId::new()]),
            now,
        )
        .await,
    );
    // Staff do not send portal messages.
    forbidden(
        s.record_contact(message(&guide, o.member.id, ROUTINE, vec![]), now)
            .await,
        "members-only",
    );
    // A member writes only as themself.
    hidden(
        s.record_contact(message(&me, o.member2.id, ROUTINE, vec![]), now)
            .await,
    );

    assert_eq!(
        kinds(&since(&o.events().await, last_seq(&before))),
        Vec::<&str>::new(),
        "a refused contact left events"
    );
    let listed = s.tickets(&me, TicketFilter::default(), now).await.unwrap();
    assert!(listed.is_empty(), "a refused contact left a ticket");
    let listed = s
        .tickets(&guide, TicketFilter::default(), now)
        .await
        .unwrap();
    assert!(listed.is_empty(), "a refused contact left a ticket");
    assert!(
        s.my_pages(&o.login(&o.supervisor, now).await)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.contact_count(at(0), at(60)).await.unwrap(), 0);
    assert_chain(s, o.org.id).await;
}

/// Call notes are contacts too: triaged, ticketed, hidden from the member.
pub async fn call_notes_are_triaged_and_staff_only(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Call Clinic").await;
    o.north_rota().await;
    let now = at(5);
    let agent = o.login(&o.agent, now).await;
    let out = s
        .record_contact(
            contact(
                &agent,
                o.member.id,
                ContactKind::CallNote,
                EMERGENCY,
                vec![],
            ),
            now,
        )
        .await
        .expect("an agent records a call");
    assert_eq!(out.message.kind, MessageKind::CallNote);
    assert!(out.call_id.is_some());
    assert_eq!(
        out.message.triage.as_ref().map(|j| j.disposition),
        Some(Disposition::Emergency)
    );
    assert!(out.agent_guidance.as_deref().is_some_and(|g| !g.is_empty()));
    assert!(
        out.auto_reply.is_none(),
        "a caller is told by the agent, not by a thread message"
    );
    assert!(out.page.is_some());
    assert_eq!(out.ticket.queue_id, o.north.clinical_queue);
    let evs = o.events().await;
    assert_eq!(count(&evs, "call.created"), 1);

    let me = o.login(&o.member_user, now).await;
    let (_, msgs) = s.thread(&me, out.message.thread_id, now).await.unwrap();
    assert!(
        msgs.iter().all(|m| m.kind != MessageKind::CallNote),
        "members do not see call notes"
    );
    let (_, msgs) = s.thread(&agent, out.message.thread_id, now).await.unwrap();
    assert!(msgs.iter().any(|m| m.id == out.message.id));

    // Privacy officers do not take calls.
    let privacy = o.login(&o.privacy, now).await;
    forbidden(
        s.record_contact(
            contact(
                &privacy,
                o.member.id,
                ContactKind::CallNote,
                ROUTINE,
                vec![],
            ),
            now,
        )
        .await,
        "call-intake",
    );
    let past = s.contacts(at(0), at(60), None, 100).await.unwrap();
    assert_eq!(past.len(), 1);
    assert_eq!(past[0].kind, MessageKind::CallNote);
}
