//! Attachments (invariant 7): quarantined on arrival, scanned under a lease
//! by one worker at a time, served only after a clean verdict, linked to the
//! message they were sent with in the same write.

use crate::Fresh;
use crate::fixture::*;
use careline_core::attachment::{Attachment, AttachmentState};
use careline_core::authz::Principal;
use careline_core::ids::*;
use careline_core::model::MessageKind;
use careline_store::{NewAttachment, ScanOutcome, Store};
use jiff::SignedDuration;
use std::collections::HashSet;
use std::sync::Arc;

async fn upload(
    s: &Arc<dyn Store>,
    p: &Principal,
    member: MemberId,
    name: &str,
    now: jiff::Timestamp,
) -> Attachment {
    s.create_attachment(
        p,
        NewAttachment {
            member_id: member,
            file_name: name.into(),
            content_type: "image/png".into(),
            size: 1234,
            sha256: text_digest_of(name),
            blob: format!("blobs/{}", uuid::Uuid::now_v7()),
            metadata_removed: vec!["exif".into()],
        },
        now,
    )
    .await
    .expect("create_attachment")
}

fn text_digest_of(s: &str) -> String {
    careline_core::ingest::text_digest(s)
}

fn ids(v: &[Attachment]) -> HashSet<AttachmentId> {
    v.iter().map(|a| a.id).collect()
}

pub async fn attachment_scan_lifecycle(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Scan Clinic").await;
    let me = o.login(&o.member_user, at(1)).await;
    let lease = SignedDuration::from_mins(1);
    let mut files = Vec::new();
    for i in 0..4 {
        let a = upload(s, &me, o.member.id, &format!("photo-{i}.png"), at(1)).await;
        assert_eq!(
            (a.state, a.scan_attempts, a.uploaded_by),
            (AttachmentState::Quarantined, 0, o.member_user.id)
        );
        assert_eq!(
            (a.message_id, a.size, a.content_type.as_str()),
            (None, 1234, "image/png")
        );
        files.push(a);
    }
    let got = s.attachment(&me, files[0].id).await.unwrap();
    assert_eq!(got.file_name, "photo-0.png");
    conflict(
        s.download_attachment(&me, files[0].id, at(1)).await,
        "attachment-not-released",
    );
    conflict(
        s.finish_scan(files[0].id, ScanOutcome::Clean, at(1)).await,
        "attachment-state",
    );
    hidden(
        s.create_attachment(
            &me,
            NewAttachment {
                member_id: o.member2.id,
                file_name: "x.png".into(),
                content_type: "image/png".into(),
                size: 1,
                sha256: text_digest_of("x"),
                blob: "blobs/x".into(),
                metadata_removed: vec![],
            },
            at(1),
        )
        .await,
    );

    // Two scanners at once never get the same file.
    let (a, b) = tokio::join!(
        s.claim_scans(at(2), lease, 3),
        s.claim_scans(at(2), lease, 3)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        ids(&a).is_disjoint(&ids(&b)),
        "two scanners got the same file"
    );
    let rest = s.claim_scans(at(2), lease, 10).await.unwrap();
    let mut all: Vec<Attachment> = a.into_iter().chain(b).chain(rest).collect();
    assert_eq!(
        ids(&all),
        ids(&files),
        "every quarantined file is claimed once"
    );
    assert!(
        all.iter()
            .all(|x| x.state == AttachmentState::Scanning && x.scan_attempts == 1)
    );
    assert!(
        s.claim_scans(at(2), lease, 10).await.unwrap().is_empty(),
        "leased files are skipped"
    );
    all.sort_by_key(|x| x.file_name.clone());
    let (clean, infected, failed, lapsed) = (&all[0], &all[1], &all[2], &all[3]);

    let c = s
        .finish_scan(clean.id, ScanOutcome::Clean, at(2))
        .await
        .unwrap();
    assert_eq!(
        (c.state, c.detail.as_deref()),
        (AttachmentState::Clean, None)
    );
    let i = s
        .finish_scan(
            infected.id,
            ScanOutcome::Infected {
                signature: "Eicar-Test-Signature".into(),
            },
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(
        (i.state, i.detail.as_deref()),
        (AttachmentState::Infected, Some("Eicar-Test-Signature"))
    );
    let fl = s
        .finish_scan(
            failed.id,
            ScanOutcome::Failed {
                error: "clamd unreachable".into(),
                retry_at: at(10),
            },
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(
        (fl.state, fl.detail.as_deref()),
        (AttachmentState::Failed, Some("clamd unreachable"))
    );
    conflict(
        s.finish_scan(
            clean.id,
            ScanOutcome::Infected {
                signature: "late".into(),
            },
            at(2),
        )
        .await,
        "attachment-state",
    );
    conflict(
        s.finish_scan(infected.id, ScanOutcome::Clean, at(2)).await,
        "attachment-state",
    );

    // Only the clean file is served; fail closed for the rest.
    let d = s.download_attachment(&me, clean.id, at(3)).await.unwrap();
    assert_eq!(d.state, AttachmentState::Clean);
    for x in [infected, failed, lapsed] {
        conflict(
            s.download_attachment(&me, x.id, at(3)).await,
            "attachment-not-released",
        );
    }
    // The lapsed lease comes back; the failed file waits for its retry time.
    let back = s.claim_scans(at(3), lease, 10).await.unwrap();
    assert_eq!(ids(&back), HashSet::from([lapsed.id]));
    assert_eq!(back[0].scan_attempts, 2);
    s.finish_scan(lapsed.id, ScanOutcome::Clean, at(3))
        .await
        .unwrap();
    assert!(s.claim_scans(at(9), lease, 10).await.unwrap().is_empty());
    let retry = s.claim_scans(at(10), lease, 10).await.unwrap();
    assert_eq!(ids(&retry), HashSet::from([failed.id]));
    assert_eq!(retry[0].scan_attempts, 2);
    s.finish_scan(failed.id, ScanOutcome::Clean, at(10))
        .await
        .unwrap();
    s.download_attachment(&me, failed.id, at(11)).await.unwrap();

    let evs = o.events().await;
    assert_eq!(count(&evs, "attachment.quarantined"), 4);
    assert_eq!(count(&evs, "attachment.scanning"), 6);
    assert_eq!(count(&evs, "attachment.clean"), 3);
    assert_eq!(count(&evs, "attachment.infected"), 1);
    assert_eq!(count(&evs, "attachment.scan_failed"), 1);
    assert_eq!(
        count(&evs, "phi.read"),
        0,
        "a member's own downloads are not recorded"
    );

    // A privacy officer exports what was never released, with a reason.
    let privacy = o.login(&o.privacy, at(12)).await;
    let ex = s
        .export_attachment(&privacy, infected.id, "security review", at(12))
        .await
        .unwrap();
    assert_eq!(ex.state, AttachmentState::Infected);
    conflict(
        s.export_attachment(&privacy, clean.id, "why", at(12)).await,
        "attachment-released",
    );
    forbidden(
        s.export_attachment(&me, infected.id, "mine", at(12)).await,
        "privacy-officers",
    );
    assert_eq!(count(&o.events().await, "attachment.exported"), 1);
}

pub async fn attachments_link_through_contacts(f: Fresh) {
    let s = &f.store;
    let o = Org::new(s, "Link Clinic").await;
    let me = o.login(&o.member_user, at(1)).await;
    let file = upload(s, &me, o.member.id, "rash.png", at(1)).await;
    let guide = o.login(&o.guide, at(1)).await;
    hidden(s.attachment(&guide, file.id).await);

    let out = s
        .record_contact(
            message(
                &me,
                o.member.id,
                "Here is a photo of the rash on my arm",
                vec![file.id],
            ),
            at(2),
        )
        .await
        .unwrap();
    let a = s.attachment(&me, file.id).await.unwrap();
    assert_eq!(
        (a.message_id, a.thread_id, a.ticket_id),
        (
            Some(out.message.id),
            Some(out.message.thread_id),
            Some(out.ticket.id)
        )
    );
    let evs = o.events().await;
    let e = evs
        .iter()
        .find(|e| e.kind == "attachment.attached")
        .expect("attachment.attached");
    assert_eq!(
        (e.ticket_id, e.thread_id, e.actor_id),
        (
            Some(out.ticket.id),
            Some(out.message.thread_id),
            Some(o.member_user.id)
        )
    );

    // A file goes with one message only; a refused contact writes nothing.
    let mark = last_seq(&evs);
    invalid(
        s.record_contact(message(&me, o.member.id, ROUTINE, vec![file.id]), at(3))
            .await,
    );
    let other = upload(
        s,
        &o.login(&o.member2_user, at(3)).await,
        o.member2.id,
        "other.png",
        at(3),
    )
    .await;
    invalid(
        s.record_contact(message(&me, o.member.id, ROUTINE, vec![other.id]), at(3))
            .await,
    );
    let (_, msgs) = s.thread(&me, out.message.thread_id, at(4)).await.unwrap();
    assert_eq!(
        msgs.iter()
            .filter(|m| m.kind == MessageKind::Member)
            .count(),
        1
    );
    let new = since(&o.events().await, mark);
    assert!(
        new.iter()
            .all(|e| e.kind == "attachment.quarantined" || e.kind == "session.created"),
        "refused contacts left events: {:?}",
        kinds(&new)
    );

    // Staff see it once sent; their downloads of a clean file are PHI reads.
    let listed = s
        .thread_attachments(&guide, out.message.thread_id)
        .await
        .unwrap();
    assert_eq!(ids(&listed), HashSet::from([file.id]));
    assert_eq!(
        ids(&s
            .thread_attachments(&me, out.message.thread_id)
            .await
            .unwrap()),
        HashSet::from([file.id])
    );
    conflict(
        s.download_attachment(&guide, file.id, at(4)).await,
        "attachment-not-released",
    );
    let claimed = s
        .claim_scans(at(5), SignedDuration::from_mins(1), 10)
        .await
        .unwrap();
    assert!(ids(&claimed).contains(&file.id));
    s.finish_scan(file.id, ScanOutcome::Clean, at(5))
        .await
        .unwrap();
    let mark = last_seq(&o.events().await);
    s.download_attachment(&guide, file.id, at(6)).await.unwrap();
    s.download_attachment(&me, file.id, at(6)).await.unwrap();
    let reads: Vec<_> = since(&o.events().await, mark)
        .into_iter()
        .filter(|e| e.kind == "phi.read")
        .collect();
    assert_eq!(
        reads.len(),
        1,
        "the guide's download is recorded, the member's is not"
    );
    assert_eq!(
        (reads[0].actor_id, payload(&reads[0])["resource"].clone()),
        (Some(o.guide.id), "attachment".into())
    );
    let south = o.login(&o.guide_south, at(6)).await;
    forbidden(
        s.download_attachment(&south, file.id, at(6)).await,
        "not-on-care-team",
    );

    // Staff attach their own uploads to replies.
    let note_file = upload(s, &guide, o.member.id, "lab.pdf", at(7)).await;
    let (note, _) = s
        .reply(
            &guide,
            out.ticket.id,
            careline_core::validate::MessageText::parse("lab attached").unwrap(),
            true,
            vec![note_file.id],
            at(7),
        )
        .await
        .unwrap();
    assert_eq!(
        s.attachment(&guide, note_file.id).await.unwrap().message_id,
        Some(note.id)
    );
    hidden(s.attachment(&me, note_file.id).await);
    assert!(
        !ids(&s
            .thread_attachments(&me, out.message.thread_id)
            .await
            .unwrap())
        .contains(&note_file.id)
    );
    assert_chain(s, o.org.id).await;
}
