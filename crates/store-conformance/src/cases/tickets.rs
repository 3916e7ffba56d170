//! The ticket state machine and the red-flag interlock (invariant 4).

use crate::Fresh;
use crate::fixture::*;
use careline_core::Disposition;
use careline_core::escalation::PageStatus;
use careline_core::model::*;
use careline_core::validate::MessageText;

pub async fn ticket_state_machine(f: Fresh) {
    use TicketStatus::*;
    let s = &f.store;
    let o = Org::new(s, "Workflow Clinic").await;
    let me = o.login(&o.member_user, at(1)).await;
    let out = o.send(&me, o.member.id, ROUTINE, at(1)).await;
    let id = out.ticket.id;
    let guide = o.login(&o.guide, at(2)).await;

    // Members do not work tickets.
    forbidden(s.transition(&me, id, Open, None, at(2)).await, "staff-only");
    // Assigning a new ticket opens it.
    let t = s.assign(&guide, id, Some(o.guide.id), at(2)).await.unwrap();
    assert_eq!((t.status, t.assignee_id), (Open, Some(o.guide.id)));
    // A colleague off the team cannot be assigned.
    invalid(s.assign(&guide, id, Some(o.guide_south.id), at(2)).await);

    let mut now = 3;
    let mut step = |from: TicketStatus, to: TicketStatus, legal: bool| {
        now += 1;
        let n = now;
        let s = s.clone();
        let guide = guide.clone();
        async move {
            let r = s
                .transition(&guide, id, to, Some("conformance".into()), at(n))
                .await;
            if legal {
                let t = r.unwrap_or_else(|e| panic!("{from} → {to} must be legal: {e}"));
                assert_eq!(t.status, to);
                assert_eq!(t.updated_at, at(n));
            } else {
                conflict(r, "illegal-transition");
            }
        }
    };
    step(Open, Open, false).await;
    step(Open, Closed, false).await;
    step(Open, New, false).await;
    step(Open, PendingInternal, true).await;
    step(PendingInternal, PendingMember, true).await;
    step(PendingMember, Open, true).await;
    step(Open, Solved, true).await;
    step(Solved, PendingMember, false).await;
    step(Solved, Open, true).await;
    step(Open, Solved, true).await;
    step(Solved, Closed, true).await;
    for to in TicketStatus::ALL {
        step(Closed, to, false).await;
    }
    let (t, _) = s.ticket(&guide, id, at(30)).await.unwrap();
    assert_eq!(t.status, Closed);
    assert!(t.sla.resolved_at.is_some());

    // Every legal move is one status event naming from and to; refusals change nothing.
    let evs = o.events().await;
    let moves: Vec<(String, String)> = evs
        .iter()
        .filter(|e| e.kind == "ticket.status_changed" && e.ticket_id == Some(id))
        .map(|e| {
            let p = payload(e);
            (
                p["from"].as_str().unwrap().to_owned(),
                p["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("new", "open"),
        ("open", "pending_internal"),
        ("pending_internal", "pending_member"),
        ("pending_member", "open"),
        ("open", "solved"),
        ("solved", "open"),
        ("open", "solved"),
        ("solved", "closed"),
    ];
    assert_eq!(
        moves,
        want.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect::<Vec<_>>()
    );

    // A closed ticket takes no reply; the member's next message opens a new one.
    conflict(
        s.reply(
            &guide,
            id,
            MessageText::parse("hello").unwrap(),
            false,
            vec![],
            at(31),
        )
        .await,
        "ticket-closed",
    );
    let next = o.send(&me, o.member.id, ROUTINE, at(32)).await;
    assert!(next.new_ticket);
    assert_ne!(next.ticket.id, id);
    assert_eq!(next.message.thread_id, out.message.thread_id);

    // A staff reply waits for the member; the member's answer reopens.
    let (reply, t) = s
        .reply(
            &guide,
            next.ticket.id,
            MessageText::parse("Sent to your pharmacy.").unwrap(),
            false,
            vec![],
            at(33),
        )
        .await
        .unwrap();
    assert_eq!(reply.kind, MessageKind::Staff);
    assert_eq!(t.status, PendingMember);
    assert_eq!(t.sla.first_response_at, Some(at(33)));
    let (note, t) = s
        .reply(
            &guide,
            next.ticket.id,
            MessageText::parse("internal only").unwrap(),
            true,
            vec![],
            at(34),
        )
        .await
        .unwrap();
    assert_eq!(note.kind, MessageKind::InternalNote);
    assert_eq!(t.status, PendingMember, "an internal note moves nothing");
    let (_, msgs) = s.thread(&me, next.message.thread_id, at(34)).await.unwrap();
    assert!(
        msgs.iter().all(|m| m.id != note.id),
        "members do not see internal notes"
    );
    let again = o.send(&me, o.member.id, "Thank you, got it", at(35)).await;
    assert_eq!(again.ticket.id, next.ticket.id);
    assert_eq!(again.ticket.status, Open);
    s.transition(&guide, next.ticket.id, Solved, None, at(36))
        .await
        .unwrap();
    let again = o
        .send(&me, o.member.id, "One more question about the dose", at(37))
        .await;
    assert_eq!(again.ticket.id, next.ticket.id, "a solved ticket reopens");
    assert_eq!(again.ticket.status, Open);
    assert_chain(s, o.org.id).await;
}

pub async fn red_flag_interlock_and_clearance(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Interlock Clinic").await;
    o.north_rota().await;
    assert_eq!(disposition(EMERGENCY), Disposition::Emergency);
    let me = o.login(&o.member_user, at(1)).await;
    let out = o.send(&me, o.member.id, EMERGENCY, at(1)).await;
    let id = out.ticket.id;
    let guide = o.login(&o.guide, at(2)).await;
    let supervisor = o.login(&o.supervisor, at(2)).await;
    let before = o.events().await;

    s.assign(&guide, id, Some(o.guide.id), at(2)).await.unwrap();
    forbidden(
        s.transition(&guide, id, TicketStatus::Solved, None, at(3))
            .await,
        "red-flag-uncleared",
    );
    forbidden(
        s.transition(&supervisor, id, TicketStatus::Solved, None, at(3))
            .await,
        "red-flag-uncleared",
    );
    forbidden(
        s.set_priority(&guide, id, Disposition::Routine, "looks fine".into(), at(3))
            .await,
        "red-flag-uncleared",
    );
    forbidden(
        s.book_visit(&guide, id, VisitKind::Routine, at(60 * 24 * 7), at(3))
            .await,
        "red-flag-uncleared",
    );
    forbidden(
        s.clear(
            &guide,
            id,
            Disposition::Routine,
            "not a clinician".into(),
            at(3),
        )
        .await,
        "clinician-only",
    );
    // An emergency visit is never refused.
    let v = s
        .book_visit(&guide, id, VisitKind::Ed, at(10), at(3))
        .await
        .unwrap();
    assert_eq!((v.kind, v.ticket_id), (VisitKind::Ed, id));

    let (t, _) = s.ticket(&guide, id, at(4)).await.unwrap();
    assert_eq!(
        (t.status, t.priority),
        (TicketStatus::Open, Disposition::Emergency)
    );
    let evs = since(&o.events().await, last_seq(&before));
    let refusals: Vec<String> = evs
        .iter()
        .filter(|e| e.kind == "ticket.override_refused")
        .map(|e| {
            payload(e)["attempted"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        refusals.len(),
        4,
        "each refused attempt is recorded: {refusals:?}"
    );
    assert!(
        evs.iter()
            .filter(|e| e.kind == "ticket.override_refused")
            .all(|e| e.actor_id.is_some())
    );

    // A clinician clears; the ticket follows the decision and its pages stop.
    let nurse = o.login(&o.nurse, at(5)).await;
    invalid(
        s.clear(&nurse, id, Disposition::Routine, "   ".into(), at(5))
            .await,
    );
    let t = s
        .clear(
            &nurse,
            id,
            Disposition::Routine,
            "Called back: muscular pain after gym.".into(),
            at(5),
        )
        .await
        .unwrap();
    let c = t.clearance.as_ref().expect("clearance recorded");
    assert_eq!(
        (c.by, c.role, c.cleared_priority),
        (o.nurse.id, Role::Nurse, Disposition::Emergency)
    );
    assert_eq!(t.priority, Disposition::Routine);
    assert_eq!(t.queue_id, o.north.team_queue);
    let pages = s.ticket_pages(&nurse, id, at(5)).await.unwrap();
    assert!(
        pages.iter().all(|p| p.status != PageStatus::Open),
        "clearance leaves no page open"
    );
    assert_eq!(s.next_page_deadline().await.unwrap(), None);
    assert!(s.escalate_due(at(60), 10).await.unwrap().is_empty());
    let evs = since(&o.events().await, last_seq(&evs));
    assert!(kinds(&evs).contains(&"ticket.cleared"));
    assert!(kinds(&evs).contains(&"page.superseded"));

    // Now a care guide may finish the work.
    s.book_visit(&guide, id, VisitKind::Routine, at(60 * 24), at(6))
        .await
        .unwrap();
    let t = s
        .transition(&guide, id, TicketStatus::Solved, None, at(7))
        .await
        .unwrap();
    assert_eq!(t.status, TicketStatus::Solved);

    // A routine ticket has nothing to clear.
    let other = o
        .send(
            &o.login(&o.member2_user, at(8)).await,
            o.member2.id,
            ROUTINE,
            at(8),
        )
        .await;
    conflict(
        s.clear(
            &nurse,
            other.ticket.id,
            Disposition::Routine,
            "nothing".into(),
            at(9),
        )
        .await,
        "no-red-flag",
    );
    // A new red flag after clearance is a new red flag.
    let again = o.send(&me, o.member.id, EMERGENCY, at(10)).await;
    assert_eq!(again.ticket.id, id);
    assert!(again.ticket.clearance.is_none());
    assert!(again.page.is_some());
    forbidden(
        s.transition(&guide, id, TicketStatus::Solved, None, at(11))
            .await,
        "red-flag-uncleared",
    );
    assert_chain(s, o.org.id).await;
}
