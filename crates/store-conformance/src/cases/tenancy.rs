//! Nothing crosses organizations: another tenant's data looks absent.

use crate::Fresh;
use crate::fixture::*;
use careline_core::escalation::PageLevel;
use careline_core::{Disposition, Error};
use careline_store::TicketFilter;

/// Members, tickets, threads, pages, messages and events of organization A
/// are invisible to every principal of organization B.
pub async fn organization_isolation(f: Fresh) {
    let s = &f.store;
    let a = Org::new(s, "Alpha Clinic").await;
    let b = Org::new(s, "Beta Clinic").await;
    a.north_rota().await;
    let now = at(1);
    let am = a.login(&a.member_user, now).await;
    let out = a.send(&am, a.member.id, EMERGENCY, now).await;
    let page = out.page.clone().expect("an emergency pages");
    let ticket = out.ticket.id;
    let thread = out.message.thread_id;

    let b_staff = [
        &b.admin,
        &b.guide,
        &b.nurse,
        &b.physician,
        &b.supervisor,
        &b.agent,
        &b.privacy,
        &b.safety,
        &b.member_user,
    ];
    for u in b_staff {
        let p = b.login(u, now).await;
        let who = format!("{} of Beta", u.role);
        hidden(s.thread(&p, thread, now).await);
        hidden(s.ticket(&p, ticket, now).await);
        hidden(s.member(&p, a.member.id, now).await);
        hidden(s.reach_member(&p, a.member.id).await);
        hidden(s.ticket_pages(&p, ticket, now).await);
        hidden(s.queue(&p, a.north.team_queue).await);
        let listed = s
            .tickets(&p, TicketFilter::default(), now)
            .await
            .expect("tickets");
        assert!(
            listed.iter().all(|(t, _)| t.org_id == b.org.id),
            "{who} lists Alpha's tickets"
        );
        let queues = s.queues(&p).await.expect("queues");
        assert!(
            queues.iter().all(|q| q.queue.team_id != a.north.id),
            "{who} sees Alpha's queues"
        );
        assert!(
            s.my_pages(&p)
                .await
                .expect("my_pages")
                .iter()
                .all(|pg| pg.org_id == b.org.id),
            "{who} is asked to acknowledge Alpha's page"
        );
        let acked = s.ack_page(&p, page.id, now).await;
        assert!(acked.is_err(), "{who} acknowledged Alpha's page: {acked:?}");
    }
    let b_privacy = b.login(&b.privacy, now).await;
    hidden(
        s.redact_message(&b_privacy, out.message.id, "wrong tenant", now)
            .await,
    );
    hidden(s.access_log(&b_privacy, a.member.id, 10).await);
    hidden(s.consents(&b_privacy, a.member.id).await);
    let b_nurse = b.login(&b.nurse, now).await;
    hidden(
        s.break_glass(
            &b_nurse,
            a.member.id,
            "checking a patient who called".into(),
            at(30),
            now,
        )
        .await,
    );
    let b_guide = b.login(&b.guide, now).await;
    hidden(s.collaborators(&b_guide, thread).await);
    assert!(
        s.assign(&b_guide, ticket, Some(b.guide.id), now)
            .await
            .is_err(),
        "Beta's guide assigned Alpha's ticket"
    );
    let b_admin = b.login(&b.admin, now).await;
    hidden(s.rota(&b_admin, a.north.id).await);

    // Names asked for by id keep to the organization, and to the ids asked.
    let a_members: Vec<careline_core::ids::MemberId> = s
        .members(a.org.id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    let b_members = s.members(b.org.id).await.unwrap();
    let asked = vec![b_members[0].id, a_members[0]];
    let names = s.member_names(b.org.id, asked).await.unwrap();
    assert_eq!(names.len(), 1, "another organization's member was named");
    assert_eq!(names[&b_members[0].id], b_members[0].name);
    assert!(s.member_names(b.org.id, vec![]).await.unwrap().is_empty());

    // Lists by organization keep to it.
    assert!(
        s.members(b.org.id)
            .await
            .unwrap()
            .iter()
            .all(|m| m.org_id == b.org.id)
    );
    assert!(
        s.users(b.org.id)
            .await
            .unwrap()
            .iter()
            .all(|u| u.org_id == b.org.id)
    );
    assert!(
        s.teams(b.org.id)
            .await
            .unwrap()
            .iter()
            .all(|t| t.org_id == b.org.id)
    );
    let b_events = b.events().await;
    for e in &b_events {
        assert_eq!(e.org_id, b.org.id);
        assert_ne!(
            e.member_id,
            Some(a.member.id),
            "Beta's record names Alpha's member"
        );
        assert_ne!(
            e.ticket_id,
            Some(ticket),
            "Beta's record names Alpha's ticket"
        );
        assert_ne!(
            e.thread_id,
            Some(thread),
            "Beta's record names Alpha's thread"
        );
    }
    // Alpha's ticket is untouched by all of the above.
    let a_guide = a.login(&a.guide, now).await;
    let (t, _) = s.ticket(&a_guide, ticket, now).await.unwrap();
    assert_eq!(t.priority, Disposition::Emergency);
    assert_eq!(t.assignee_id, None);
    assert!(t.clearance.is_none());
    assert_chain(s, a.org.id).await;
    assert_chain(s, b.org.id).await;
    assert_eq!(page.level, PageLevel::Primary);
}

/// A clinician of another organization cannot record a clinical clearance
/// on a ticket, even when its page has become an organization-wide alarm
/// (which any clinician *of that organization* may take).
pub async fn clearance_is_tenant_scoped(f: Fresh) {
    let s = &f.store;
    // No rota: the first page is already the organization-wide alarm.
    let a = Org::new(s, "Alpha Clinic").await;
    let b = Org::new(s, "Beta Clinic").await;
    let now = at(1);
    let am = a.login(&a.member_user, now).await;
    let out = a.send(&am, a.member.id, EMERGENCY, now).await;
    assert_eq!(
        out.page.as_ref().map(|p| p.level),
        Some(PageLevel::OrgAlarm),
        "with no rota the chain starts at the alarm"
    );
    let before = a.events().await;
    let b_nurse = b.login(&b.nurse, now).await;
    let r = s
        .clear(
            &b_nurse,
            out.ticket.id,
            Disposition::Routine,
            "cleared from the wrong tenant".into(),
            at(2),
        )
        .await;
    hidden(r);
    let a_guide = a.login(&a.guide, now).await;
    let (t, _) = s.ticket(&a_guide, out.ticket.id, at(2)).await.unwrap();
    assert!(
        t.clearance.is_none(),
        "Alpha's red flag was cleared by Beta"
    );
    let after = a.events().await;
    assert!(
        since(&after, last_seq(&before))
            .iter()
            .all(|e| e.actor_id != Some(b.nurse.id)),
        "Alpha's record shows an act by Beta's nurse"
    );
    // Alpha's own clinicians may take the alarm, off their team or not.
    let a_nurse_south = a.login(&a.nurse_south, now).await;
    let t = s
        .clear(
            &a_nurse_south,
            out.ticket.id,
            Disposition::Urgent,
            "seen, sent to urgent care".into(),
            at(3),
        )
        .await
        .expect("a clinician of the organization takes the alarm");
    assert_eq!(t.priority, Disposition::Urgent);
}

/// A review-net mark and a clinician's mark on a judgement stay within the
/// organization: another tenant's nurse cannot clear or mark, and another
/// tenant's safety reviewer lists nothing of it.
pub async fn review_and_judgement_marks_are_tenant_scoped(f: Fresh) {
    let s = &f.store;
    let a = Org::new(s, "Alpha Review Clinic").await;
    let b = Org::new(s, "Beta Review Clinic").await;
    let now = at(1);
    let am = a.login(&a.member_user, now).await;
    let out = a.send(&am, a.member.id, ROUTINE, now).await;
    assert!(out.ticket.review_pending(), "a refill names a medicine");
    let b_nurse = b.login(&b.nurse, now).await;
    hidden(
        s.clear_review(
            &b_nurse,
            out.ticket.id,
            "from the wrong tenant".into(),
            at(2),
        )
        .await,
    );
    hidden(
        s.mark_judgement(
            &b_nurse,
            out.ticket.id,
            out.message.id,
            Disposition::Urgent,
            "from the wrong tenant".into(),
            at(2),
        )
        .await,
    );
    // Alpha's guide may neither clear nor mark; Alpha's nurse does both.
    let a_guide = a.login(&a.guide, now).await;
    assert!(matches!(
        s.clear_review(&a_guide, out.ticket.id, "fine".into(), at(2))
            .await,
        Err(Error::Forbidden { .. })
    ));
    let a_nurse = a.login(&a.nurse, now).await;
    let t = s
        .clear_review(&a_nurse, out.ticket.id, "Refill is routine.".into(), at(3))
        .await
        .unwrap();
    assert!(!t.review_pending());
    let (t, _) = s.ticket(&a_nurse, out.ticket.id, at(3)).await.unwrap();
    assert_eq!(
        t.review.and_then(|r| r.cleared).map(|c| c.by),
        Some(a.nurse.id),
        "the review is stored with who made it"
    );
    let m = s
        .mark_judgement(
            &a_nurse,
            out.ticket.id,
            out.message.id,
            Disposition::Urgent,
            "Should have been same-day.".into(),
            at(4),
        )
        .await
        .unwrap();
    assert_eq!(m.judged, Disposition::Routine);
    let b_safety = b.login(&b.safety, now).await;
    assert!(
        s.judgement_marks(&b_safety, 100, at(5))
            .await
            .unwrap()
            .is_empty()
    );
    let a_safety = a.login(&a.safety, now).await;
    let listed = s.judgement_marks(&a_safety, 100, at(5)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].mark, m);
    assert_eq!(listed[0].text.as_deref(), Some(ROUTINE));
    assert!(matches!(
        s.judgement_marks(&a_nurse, 100, at(5)).await,
        Err(Error::Forbidden { .. })
    ));
}
