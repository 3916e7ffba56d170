//! Who the caller is (sessions) and what reaches a member's data (invariant
//! 8): care team, tags, break-glass, proxies — each with its expiry.

use crate::Fresh;
use crate::fixture::*;
use careline_core::authz::{Grant, ProxyScope};
use careline_core::model::*;
use careline_store::NewSession;
use jiff::SignedDuration;

pub async fn session_principal_lifecycle(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Session Clinic").await;
    let idle = SignedDuration::from_mins(30);
    let open = |user: &User, hours: i64| {
        let s = s.clone();
        let (uid, org) = (user.id, user.org_id);
        async move {
            let t = token();
            s.create_session(
                NewSession {
                    mfa_pending: false,
                    token_hash: t.clone(),
                    user_id: uid,
                    org_id: org,
                    expires_at: at(hours * 60),
                },
                at(0),
            )
            .await
            .unwrap();
            t
        }
    };

    let t = open(&o.guide, 8).await;
    let p = s
        .principal(&t, at(1), idle)
        .await
        .unwrap()
        .expect("a live session");
    assert_eq!(
        (p.user_id, p.org_id, p.role),
        (o.guide.id, o.org.id, Role::CareGuide)
    );
    assert_eq!(p.team_ids, vec![o.north.id]);
    assert!(p.grants.is_empty() && p.proxy_for.is_empty() && p.member_id.is_none());
    assert!(!p.enrolment_only);
    assert!(
        s.principal("no-such-token", at(1), idle)
            .await
            .unwrap()
            .is_none()
    );
    // Used within the idle window, the session stays alive.
    assert!(s.principal(&t, at(25), idle).await.unwrap().is_some());
    assert!(
        s.principal(&t, at(50), idle).await.unwrap().is_some(),
        "last use was at 25"
    );
    // Idle past the window: gone.
    assert!(
        s.principal(&t, at(81), idle).await.unwrap().is_none(),
        "idle for 31 minutes"
    );

    // Expiry is absolute, however recently the session was used.
    let long = SignedDuration::from_hours(4);
    let t = open(&o.nurse, 1).await;
    assert!(s.principal(&t, at(59), long).await.unwrap().is_some());
    assert!(
        s.principal(&t, at(60), long).await.unwrap().is_none(),
        "expired at 60"
    );

    // Revocation, one session or all of a user's.
    let t = open(&o.member_user, 8).await;
    let me = s.principal(&t, at(1), idle).await.unwrap().unwrap();
    assert_eq!((me.role, me.member_id), (Role::Member, Some(o.member.id)));
    s.revoke_session(&t, at(2)).await.unwrap();
    assert!(s.principal(&t, at(3), idle).await.unwrap().is_none());

    let t1 = open(&o.agent, 8).await;
    let t2 = open(&o.agent, 8).await;
    let guide = s
        .principal(&open(&o.guide, 8).await, at(1), idle)
        .await
        .unwrap()
        .unwrap();
    forbidden(
        s.revoke_user_sessions(&guide, o.agent.id, at(2)).await,
        "admin-only",
    );
    let admin = s
        .principal(&open(&o.admin, 8).await, at(1), idle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.revoke_user_sessions(&admin, o.agent.id, at(2))
            .await
            .unwrap(),
        2
    );
    assert!(s.principal(&t1, at(3), idle).await.unwrap().is_none());
    assert!(s.principal(&t2, at(3), idle).await.unwrap().is_none());
    let other = Org::new(s, "Other Clinic").await;
    hidden(s.revoke_user_sessions(&admin, other.agent.id, at(2)).await);

    // An enrolment-only session says so.
    let t = token();
    s.create_session(
        NewSession {
            mfa_pending: true,
            token_hash: t.clone(),
            user_id: o.nurse.id,
            org_id: o.org.id,
            expires_at: at(600),
        },
        at(0),
    )
    .await
    .unwrap();
    assert!(
        s.principal(&t, at(1), idle)
            .await
            .unwrap()
            .unwrap()
            .enrolment_only
    );
    let evs = o.events().await;
    assert!(count(&evs, "session.created") >= 8);
    assert!(count(&evs, "session.revoked") >= 2);
}

pub async fn care_team_and_tag_grants(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Grant Clinic").await;
    let me = o.login(&o.member_user, at(1)).await;
    let thread = o
        .send(&me, o.member.id, ROUTINE, at(1))
        .await
        .message
        .thread_id;
    let guide = o.login(&o.guide, at(2)).await;
    assert_eq!(
        s.reach_member(&guide, o.member.id).await.unwrap(),
        Grant::CareTeam
    );
    assert_eq!(s.reach_member(&me, o.member.id).await.unwrap(), Grant::Own);
    let south = o.login(&o.guide_south, at(2)).await;
    forbidden(
        s.reach_member(&south, o.member.id).await,
        "not-on-care-team",
    );
    forbidden(s.thread(&south, thread, at(2)).await, "not-on-care-team");
    let admin = o.login(&o.admin, at(2)).await;
    forbidden(s.reach_member(&admin, o.member.id).await, "no-phi-for-role");

    // A tag, with a reason and an expiry.
    forbidden(
        s.add_collaborator(&me, thread, o.guide_south.id, "help".into(), at(60), at(3))
            .await,
        "staff-only",
    );
    invalid(
        s.add_collaborator(&guide, thread, o.guide_south.id, " ".into(), at(60), at(3))
            .await,
    );
    invalid(
        s.add_collaborator(
            &guide,
            thread,
            o.guide_south.id,
            "help".into(),
            at(2),
            at(3),
        )
        .await,
    );
    forbidden(
        s.add_collaborator(
            &south,
            thread,
            o.guide_south.id,
            "self".into(),
            at(60),
            at(3),
        )
        .await,
        "not-on-care-team",
    );
    let c = s
        .add_collaborator(
            &guide,
            thread,
            o.guide_south.id,
            "Spanish speaker needed".into(),
            at(60),
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(
        (c.user_id, c.granted_by, c.expires_at, c.revoked_at),
        (o.guide_south.id, o.guide.id, at(60), None)
    );
    let south = o.login(&o.guide_south, at(4)).await;
    assert!(south.grants.contains(&(o.member.id, Grant::Tagged)));
    assert_eq!(
        s.reach_member(&south, o.member.id).await.unwrap(),
        Grant::Tagged
    );
    s.thread(&south, thread, at(4)).await.unwrap();
    // Expired: gone.
    let later = o.login(&o.guide_south, at(61)).await;
    assert!(
        later.grants.is_empty(),
        "an expired tag still grants: {:?}",
        later.grants
    );
    forbidden(s.thread(&later, thread, at(61)).await, "not-on-care-team");

    // Revoked: gone at once.
    s.add_collaborator(
        &guide,
        thread,
        o.nurse_south.id,
        "second opinion".into(),
        at(120),
        at(62),
    )
    .await
    .unwrap();
    let ns = o.login(&o.nurse_south, at(63)).await;
    assert_eq!(
        s.reach_member(&ns, o.member.id).await.unwrap(),
        Grant::Tagged
    );
    let guide = o.login(&o.guide, at(63)).await;
    s.remove_collaborator(&guide, thread, o.nurse_south.id, at(64))
        .await
        .unwrap();
    not_found(
        s.remove_collaborator(&guide, thread, o.nurse_south.id, at(64))
            .await,
    );
    let ns = o.login(&o.nurse_south, at(65)).await;
    assert!(
        ns.grants.is_empty(),
        "a revoked tag still grants: {:?}",
        ns.grants
    );
    let list = s.collaborators(&guide, thread).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list.iter()
            .find(|c| c.user_id == o.nurse_south.id)
            .unwrap()
            .revoked_at,
        Some(at(64))
    );
    let evs = o.events().await;
    assert_eq!(count(&evs, "thread.collaborator_added"), 2);
    assert_eq!(count(&evs, "thread.collaborator_removed"), 1);
}

pub async fn break_glass_expires_and_is_reviewed(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Glass Clinic").await;
    let now = at(1);
    let ns = o.login(&o.nurse_south, now).await;
    let guide = o.login(&o.guide_south, now).await;
    forbidden(
        s.break_glass(
            &guide,
            o.member.id,
            "member collapsed in the lobby".into(),
            at(60),
            now,
        )
        .await,
        "clinician-only",
    );
    invalid(
        s.break_glass(&ns, o.member.id, "urgent".into(), at(60), now)
            .await,
    );
    invalid(
        s.break_glass(
            &ns,
            o.member.id,
            "member collapsed in the lobby".into(),
            at(60 * 9),
            now,
        )
        .await,
    );
    forbidden(s.member(&ns, o.member.id, now).await, "not-on-care-team");
    let bg = s
        .break_glass(
            &ns,
            o.member.id,
            "member collapsed in the lobby".into(),
            at(60),
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        (bg.user_id, bg.member_id, bg.expires_at, bg.reviewed_at),
        (o.nurse_south.id, o.member.id, at(60), None)
    );
    let ns = o.login(&o.nurse_south, at(2)).await;
    assert!(ns.grants.contains(&(o.member.id, Grant::BreakGlass)));
    let (m, g) = s.member(&ns, o.member.id, at(2)).await.unwrap();
    assert_eq!((m.id, g), (o.member.id, Grant::BreakGlass));
    let late = o.login(&o.nurse_south, at(60)).await;
    assert!(
        late.grants.is_empty(),
        "break-glass outlived its limit: {:?}",
        late.grants
    );
    forbidden(
        s.member(&late, o.member.id, at(60)).await,
        "not-on-care-team",
    );

    // Privacy officers are alerted and review.
    forbidden(s.break_glass_reviews(&ns, true).await, "privacy-officers");
    let privacy = o.login(&o.privacy, at(61)).await;
    let open = s.break_glass_reviews(&privacy, true).await.unwrap();
    assert_eq!(open.iter().map(|b| b.id).collect::<Vec<_>>(), vec![bg.id]);
    invalid(
        s.review_break_glass(&privacy, bg.id, "".into(), at(62))
            .await,
    );
    let done = s
        .review_break_glass(&privacy, bg.id, "Justified: emergency.".into(), at(62))
        .await
        .unwrap();
    assert_eq!(
        (done.reviewed_by, done.reviewed_at),
        (Some(o.privacy.id), Some(at(62)))
    );
    conflict(
        s.review_break_glass(&privacy, bg.id, "again".into(), at(63))
            .await,
        "already-reviewed",
    );
    assert!(
        s.break_glass_reviews(&privacy, true)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.break_glass_reviews(&privacy, false).await.unwrap().len(),
        1
    );
    let evs = o.events().await;
    assert_eq!(count(&evs, "privacy.break_glass"), 1);
    assert_eq!(count(&evs, "privacy.break_glass_reviewed"), 1);
    let e = evs
        .iter()
        .find(|e| e.kind == "privacy.break_glass")
        .unwrap();
    assert_eq!(
        (e.actor_id, e.member_id),
        (Some(o.nurse_south.id), Some(o.member.id))
    );
}

pub async fn proxy_scopes(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Proxy Clinic").await;
    let proxy = user(s, o.org.id, "daughter@proxy.example", Role::Proxy).await;
    let me = o.login(&o.member_user, at(1)).await;
    let thread = o
        .send(&me, o.member.id, ROUTINE, at(1))
        .await
        .message
        .thread_id;

    // No grant: the member does not exist for this caller.
    let p = o.login(&proxy, at(2)).await;
    assert!(p.proxy_for.is_empty());
    hidden(s.thread(&p, thread, at(2)).await);

    // Messages scope: the thread, not the record.
    s.grant_proxy(
        o.org.id,
        proxy.id,
        o.member.id,
        ProxyScope::Messages,
        None,
        Some(o.admin.id),
        at(3),
    )
    .await
    .unwrap();
    let p = o.login(&proxy, at(4)).await;
    assert_eq!(p.proxy_for, vec![(o.member.id, ProxyScope::Messages)]);
    s.thread(&p, thread, at(4)).await.unwrap();
    let out = o
        .send(&p, o.member.id, "Mum needs her refill too please", at(4))
        .await;
    assert_eq!(out.message.author_id, Some(proxy.id));
    forbidden(
        s.member(&p, o.member.id, at(4)).await,
        "outside-proxy-scope",
    );
    hidden(s.member(&p, o.member2.id, at(4)).await);

    // Record scope, granted by the member: the record, not the thread.
    let entry = s
        .grant_proxy_as_member(
            &me,
            o.member.id,
            "daughter@proxy.example",
            ProxyScope::Record,
            None,
            at(5),
        )
        .await
        .unwrap();
    assert_eq!(
        (entry.proxy_user_id, entry.scope),
        (proxy.id, ProxyScope::Record)
    );
    let p = o.login(&proxy, at(6)).await;
    assert_eq!(
        p.proxy_for,
        vec![(o.member.id, ProxyScope::Record)],
        "a new grant replaces the old"
    );
    forbidden(s.thread(&p, thread, at(6)).await, "outside-proxy-scope");
    let (m, g) = s.member(&p, o.member.id, at(6)).await.unwrap();
    assert_eq!((m.id, g), (o.member.id, Grant::Proxy));
    s.consents(&p, o.member.id).await.unwrap();

    // Full scope with an expiry: both, until it lapses.
    s.grant_proxy_as_member(
        &me,
        o.member.id,
        "daughter@proxy.example",
        ProxyScope::Full,
        Some(at(60)),
        at(7),
    )
    .await
    .unwrap();
    let p = o.login(&proxy, at(8)).await;
    s.thread(&p, thread, at(8)).await.unwrap();
    s.member(&p, o.member.id, at(8)).await.unwrap();
    assert_eq!(s.my_proxy_grants(&p, at(8)).await.unwrap().len(), 1);
    assert_eq!(
        s.member_proxies(&me, o.member.id, at(8))
            .await
            .unwrap()
            .len(),
        1
    );
    let p = o.login(&proxy, at(60)).await;
    assert!(
        p.proxy_for.is_empty(),
        "an expired proxy grant still applies"
    );
    hidden(s.thread(&p, thread, at(60)).await);
    assert!(
        s.member_proxies(&me, o.member.id, at(60))
            .await
            .unwrap()
            .is_empty()
    );

    // Revocation by the member.
    s.grant_proxy(
        o.org.id,
        proxy.id,
        o.member.id,
        ProxyScope::Full,
        None,
        None,
        at(61),
    )
    .await
    .unwrap();
    s.revoke_proxy(&me, o.member.id, proxy.id, at(62))
        .await
        .unwrap();
    not_found(s.revoke_proxy(&me, o.member.id, proxy.id, at(62)).await);
    assert!(o.login(&proxy, at(63)).await.proxy_for.is_empty());

    // Only proxy accounts act for members; staff do not grant on a member's behalf.
    invalid(
        s.grant_proxy(
            o.org.id,
            o.guide.id,
            o.member.id,
            ProxyScope::Full,
            None,
            None,
            at(64),
        )
        .await,
    );
    invalid(
        s.grant_proxy_as_member(
            &me,
            o.member.id,
            "guide@proxy-clinic.example",
            ProxyScope::Full,
            None,
            at(64),
        )
        .await,
    );
    let guide = o.login(&o.guide, at(64)).await;
    forbidden(
        s.grant_proxy_as_member(
            &guide,
            o.member.id,
            "daughter@proxy.example",
            ProxyScope::Full,
            None,
            at(64),
        )
        .await,
        "proxy-management",
    );
    let evs = o.events().await;
    assert_eq!(count(&evs, "proxy.granted"), 4);
    assert_eq!(count(&evs, "proxy.revoked"), 1);
}
