//! Reads of PHI are recorded (invariant 6), consent is an event, and
//! redaction hides content without deleting anything (invariant 5).

use crate::Fresh;
use crate::fixture::*;
use careline_core::ingest::text_digest;
use careline_core::model::*;
use careline_store::{ConsentChange, TicketFilter};

pub async fn phi_reads_recorded_for_staff_not_members(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Audit Clinic").await;
    let me = o.login(&o.member_user, at(1)).await;
    let out = o.send(&me, o.member.id, ROUTINE, at(1)).await;
    let before = o.events().await;

    // The member's own reads are not recorded.
    s.thread(&me, out.message.thread_id, at(2)).await.unwrap();
    s.ticket(&me, out.ticket.id, at(2)).await.unwrap();
    s.member(&me, o.member.id, at(2)).await.unwrap();
    s.tickets(&me, TicketFilter::default(), at(2))
        .await
        .unwrap();
    let own = since(&o.events().await, last_seq(&before));
    assert_eq!(
        count(&own, "phi.read"),
        0,
        "a member's own reads were recorded: {:?}",
        kinds(&own)
    );

    // Every read by staff is.
    let guide = o.login(&o.guide, at(3)).await;
    let mark = last_seq(&o.events().await);
    s.thread(&guide, out.message.thread_id, at(3))
        .await
        .unwrap();
    s.ticket(&guide, out.ticket.id, at(3)).await.unwrap();
    s.member(&guide, o.member.id, at(3)).await.unwrap();
    assert_eq!(
        s.tickets(&guide, TicketFilter::default(), at(3))
            .await
            .unwrap()
            .len(),
        1
    );
    s.ticket_pages(&guide, out.ticket.id, at(3)).await.unwrap();
    let reads: Vec<_> = since(&o.events().await, mark)
        .into_iter()
        .filter(|e| e.kind == "phi.read")
        .collect();
    assert_eq!(reads.len(), 5, "one phi.read per staff read");
    for e in &reads {
        assert_eq!(
            (e.actor_id, e.member_id, e.at()),
            (Some(o.guide.id), Some(o.member.id), at(3))
        );
        assert_eq!(payload(e)["grant"], "care_team");
    }
    let what: Vec<String> = reads
        .iter()
        .map(|e| {
            payload(e)["resource"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for w in ["thread", "ticket", "member", "ticket_list", "pages"] {
        assert!(what.iter().any(|x| x == w), "no phi.read for {w}: {what:?}");
    }
    // A refused read is not a read.
    let south = o.login(&o.guide_south, at(4)).await;
    let mark = last_seq(&o.events().await);
    assert!(
        s.thread(&south, out.message.thread_id, at(4))
            .await
            .is_err()
    );
    assert_eq!(count(&since(&o.events().await, mark), "phi.read"), 0);

    // The member sees who read their data; staff other than privacy officers do not.
    let log = s.access_log(&me, o.member.id, 100).await.unwrap();
    assert_eq!(log.len(), 5);
    assert!(
        log.iter().all(|a| a.user_id == Some(o.guide.id)
            && a.why == "care_team"
            && a.role == "care_guide")
    );
    forbidden(
        s.access_log(&guide, o.member.id, 100).await,
        "privacy-officers",
    );
    let privacy = o.login(&o.privacy, at(5)).await;
    assert_eq!(
        s.access_log(&privacy, o.member.id, 100)
            .await
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        s.access_log(&privacy, o.member.id, 2).await.unwrap().len(),
        2
    );
    hidden(s.access_log(&me, o.member2.id, 100).await);
}

pub async fn consent_set_and_withdraw(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Consent Clinic").await;
    let me = o.login(&o.member_user, at(1)).await;
    let bh = SensitiveCategory::BehavioralHealth;
    let give = |granted: bool, reason: Option<&str>| ConsentChange {
        category: bh,
        granted,
        reason: reason.map(str::to_owned),
    };
    assert!(s.consents(&me, o.member.id).await.unwrap().is_empty());
    assert_eq!(
        s.set_consent(&me, o.member.id, give(true, None), at(2))
            .await
            .unwrap(),
        vec![bh]
    );
    assert_eq!(
        s.set_consent(&me, o.member.id, give(true, None), at(3))
            .await
            .unwrap(),
        vec![bh],
        "idempotent"
    );
    assert_eq!(s.consents(&me, o.member.id).await.unwrap(), vec![bh]);
    let guide = o.login(&o.guide, at(3)).await;
    assert_eq!(s.consents(&guide, o.member.id).await.unwrap(), vec![bh]);
    let (m, _) = s.member(&guide, o.member.id, at(3)).await.unwrap();
    assert_eq!(m.markers.consented_categories, vec![bh]);
    forbidden(
        s.set_consent(&guide, o.member.id, give(false, Some("asked")), at(4))
            .await,
        "consent-by-member",
    );
    hidden(
        s.set_consent(&me, o.member2.id, give(true, None), at(4))
            .await,
    );
    assert!(
        s.set_consent(&me, o.member.id, give(false, None), at(5))
            .await
            .unwrap()
            .is_empty()
    );

    let privacy = o.login(&o.privacy, at(6)).await;
    invalid(
        s.set_consent(&privacy, o.member.id, give(true, None), at(6))
            .await,
    );
    assert_eq!(
        s.set_consent(
            &privacy,
            o.member.id,
            give(true, Some("signed form 2030-03-01")),
            at(6)
        )
        .await
        .unwrap(),
        vec![bh]
    );
    let evs = o.events().await;
    let consent: Vec<_> = evs
        .iter()
        .filter(|e| e.kind.starts_with("consent."))
        .collect();
    assert_eq!(
        consent.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["consent.recorded", "consent.withdrawn", "consent.recorded"]
    );
    assert!(consent.iter().all(|e| e.member_id == Some(o.member.id)));
    assert_eq!(consent[0].actor_id, Some(o.member_user.id));
    assert_eq!(payload(consent[0])["on_behalf"], false);
    assert_eq!(
        (
            consent[2].actor_id,
            payload(consent[2])["on_behalf"].clone()
        ),
        (Some(o.privacy.id), true.into())
    );
}

pub async fn message_redaction(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Redaction Clinic").await;
    let me = o.login(&o.member_user, at(1)).await;
    let text = "My neighbour's HIV status is positive, please note it in my file";
    let out = o.send(&me, o.member.id, text, at(1)).await;
    let id = out.message.id;
    let guide = o.login(&o.guide, at(2)).await;
    let privacy = o.login(&o.privacy, at(2)).await;
    forbidden(
        s.redact_message(&guide, id, "wrong person", at(2)).await,
        "privacy-officers",
    );
    forbidden(
        s.redact_message(&me, id, "wrong person", at(2)).await,
        "privacy-officers",
    );
    invalid(s.redact_message(&privacy, id, "  ", at(2)).await);
    not_found(
        s.redact_message(
            &privacy,
            careline_core::ids::MessageId::new(),
            "nothing",
            at(2),
        )
        .await,
    );

    let m = s
        .redact_message(&privacy, id, "third-party information", at(3))
        .await
        .unwrap();
    let r = m
        .redaction
        .clone()
        .expect("redaction recorded on the message");
    assert_eq!(
        (r.at, r.by, r.by_role, r.reason.as_str()),
        (
            at(3),
            o.privacy.id,
            Role::PrivacyOfficer,
            "third-party information"
        )
    );
    conflict(
        s.redact_message(&privacy, id, "again", at(4)).await,
        "already-redacted",
    );

    // Nothing is deleted: the message stays in the thread, marked, for staff and member.
    for p in [&guide, &me] {
        let (_, msgs) = s.thread(p, out.message.thread_id, at(5)).await.unwrap();
        let kept = msgs
            .iter()
            .find(|x| x.id == id)
            .expect("a redacted message is not deleted");
        assert_eq!(
            kept.redaction.as_ref().map(|r| r.reason.as_str()),
            Some("third-party information")
        );
        assert!(kept.triage.is_some());
    }
    let evs = o.events().await;
    let e = evs
        .iter()
        .find(|e| e.kind == "message.redacted")
        .expect("message.redacted event");
    let p = payload(e);
    assert_eq!(
        p["text_sha256"],
        text_digest(text),
        "the record keeps the hash of the text"
    );
    assert_eq!(p["reason"], "third-party information");
    assert_eq!(
        (e.actor_id, e.member_id, e.thread_id),
        (
            Some(o.privacy.id),
            Some(o.member.id),
            Some(out.message.thread_id)
        )
    );
    assert!(!e.payload.contains("HIV"), "the record keeps no text");
    let created = evs.iter().find(|e| e.kind == "message.created").unwrap();
    assert_eq!(
        payload(created)["text_sha256"],
        text_digest(text),
        "the original event is unchanged"
    );
    assert_chain(s, o.org.id).await;
}
