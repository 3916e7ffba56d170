//! Attachments against real components: a clamd started for the test with
//! a signature database written at run time, blobs on the local filesystem
//! and on an S3-compatible server. Invariant 7: nothing is served before a
//! clean verdict, infected files never are, and a scanner outage loses
//! nothing.

use crate::privacy::files_under;
use crate::support::*;
use careline_attach::EICAR;
use careline_attach::testing::TestClamd;
use serde_json::{Value, json};

const MB: u64 = 1024 * 1024;

fn pdf(marker: &str) -> Vec<u8> {
    format!(
        "%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n% {marker}\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    )
    .into_bytes()
}

/// A 1×1 baseline JPEG whose EXIF block carries a GPS position.
fn jpeg_with_gps() -> Vec<u8> {
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    // IFD0: one entry, the GPS IFD pointer (0x8825) → offset 26.
    tiff.extend_from_slice(&[0x00, 0x01, 0x88, 0x25, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 26]);
    tiff.extend_from_slice(&[0, 0, 0, 0]);
    // GPS IFD: GPSLatitudeRef = "N", GPSLongitudeRef = "W".
    tiff.extend_from_slice(&[0x00, 0x02]);
    tiff.extend_from_slice(&[0x00, 0x01, 0x00, 0x02, 0, 0, 0, 2, b'N', 0, 0, 0]);
    tiff.extend_from_slice(&[0x00, 0x03, 0x00, 0x02, 0, 0, 0, 2, b'W', 0, 0, 0]);
    tiff.extend_from_slice(&[0, 0, 0, 0]);
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend_from_slice(&tiff);
    let mut j = vec![0xFF, 0xD8, 0xFF, 0xE1];
    j.extend_from_slice(&u16::try_from(app1.len() + 2).unwrap().to_be_bytes());
    j.extend_from_slice(&app1);
    // SOF0: 8-bit, 1×1, one component.
    j.extend_from_slice(&[
        0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00,
    ]);
    // SOS, a few bytes of scan data, EOI.
    j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
    j.extend_from_slice(&[0xD2, 0xCF, 0x20, 0xFF, 0xD9]);
    j
}

/// A zip archive holding EICAR as a stored (uncompressed) entry.
fn zip_with_eicar() -> Vec<u8> {
    let name = b"eicar.com";
    let crc = crc32(EICAR);
    let len = u32::try_from(EICAR.len()).unwrap();
    let mut z = Vec::new();
    z.extend_from_slice(b"PK\x03\x04\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00");
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&u16::try_from(name.len()).unwrap().to_le_bytes());
    z.extend_from_slice(&[0, 0]);
    z.extend_from_slice(name);
    z.extend_from_slice(EICAR);
    z
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for b in data {
        c ^= u32::from(*b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Uploads one file as `token` and returns its record (asserting 201).
async fn upload_ok(app: &App, token: &str, name: &str, ctype: &str, bytes: &[u8]) -> Value {
    let r = app.upload(token, None, name, ctype, bytes).await;
    assert_eq!(r.status, 201, "upload {name}: {}", r.text());
    let v = r.json()["items"][0].clone();
    assert_eq!(
        v["state"], "quarantined",
        "every file starts quarantined: {v}"
    );
    v
}

/// Waits until the attachment reaches `state` (the scanner runs in the background).
async fn wait_state(app: &App, token: &str, id: &str, state: &str) -> Value {
    let path = format!("/api/v1/attachments/{id}");
    let mut last = Value::Null;
    let reached = app
        .wait_until(30, || {
            let path = path.clone();
            async move { app.get(&path, token).await.json()["state"] == state }
        })
        .await;
    if !reached {
        last = app.get(&path, token).await.json();
    }
    assert!(reached, "attachment {id} never became {state}: {last}");
    app.get(&path, token).await.json()
}

async fn send_with(app: &App, token: &str, text: &str, ids: &[&str]) -> Value {
    let r = app
        .post(
            "/api/v1/messages",
            token,
            json!({"text": text, "attachment_ids": ids}),
        )
        .await;
    assert_eq!(r.status, 201, "send: {}", r.text());
    r.json()
}

/// The whole intake → scan → release / refuse path against one blob store.
async fn suite(app: &App) {
    let member = app.login("member01").await;
    let nurse = app.login("nurse.north").await;
    let privacy = app.login("privacy").await;

    // A clean PDF is released, served to the care team with the right headers and ranges.
    let letter = pdf("discharge-letter-marker-8842");
    let a = upload_ok(
        app,
        &member,
        "../../discharge letter.pdf",
        "application/pdf",
        &letter,
    )
    .await;
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(
        a["file_name"], "discharge letter.pdf",
        "directories are stripped from names"
    );
    wait_state(app, &member, &id, "clean").await;
    let out = send_with(
        app,
        &member,
        "Here is my discharge letter from Tuesday",
        &[&id],
    )
    .await;
    assert_eq!(out["message"]["attachments"][0]["state"], "clean", "{out}");
    let content = format!("/api/v1/attachments/{id}/content");
    let r = app.get(&content, &nurse).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, letter);
    assert_eq!(r.header("content-type").unwrap(), "application/pdf");
    assert_eq!(r.header("x-content-type-options").unwrap(), "nosniff");
    assert!(
        r.header("content-disposition")
            .unwrap()
            .starts_with("attachment;")
    );
    let part = app
        .get_with(&content, &nurse, &[("Range", "bytes=0-3".into())])
        .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, b"%PDF");
    assert_eq!(
        part.header("content-range").unwrap(),
        format!("bytes 0-3/{}", letter.len())
    );
    let past = app
        .get_with(&content, &nurse, &[("Range", "bytes=99999-".into())])
        .await;
    assert_eq!(past.status, 416);
    // The nurse's download is in member01's access history; another team's guide gets nothing.
    let log = app.get("/api/v1/me/access-log", &member).await.text();
    assert!(log.contains("\"what\":\"attachment\""), "{log}");
    let south = app.login("guide.south1").await;
    assert!(matches!(app.get(&content, &south).await.status, 403 | 404));
    assert_eq!(
        app.get(&content, &app.login("proxy07").await).await.status,
        404
    );

    // A photo is stripped of its GPS position before it is stored.
    let photo = upload_ok(app, &member, "rash.jpg", "image/jpeg", &jpeg_with_gps()).await;
    let removed = photo["metadata_removed"].to_string();
    assert!(
        removed.contains("GPS") && removed.contains("EXIF"),
        "{photo}"
    );
    let pid = photo["id"].as_str().unwrap().to_owned();
    wait_state(app, &member, &pid, "clean").await;
    send_with(app, &member, "photo of the rash on my arm", &[&pid]).await;
    let served = app
        .get(&format!("/api/v1/attachments/{pid}/content"), &nurse)
        .await;
    assert_eq!(served.status, 200);
    assert!(served.body.starts_with(&[0xFF, 0xD8]), "still a JPEG");
    assert!(
        !contains(&served.body, b"Exif") && !contains(&served.body, &[0x88, 0x25]),
        "the GPS tag is gone"
    );

    // EICAR: refused by the scanner, never served, the member told, staff noted, security alerted.
    let bad = upload_ok(app, &member, "notes.txt", "text/plain", EICAR).await;
    let bid = bad["id"].as_str().unwrap().to_owned();
    let infected = wait_state(app, &member, &bid, "infected").await;
    assert!(
        infected["detail"].is_null(),
        "members do not see signature names"
    );
    let out = send_with(app, &member, "my notes from the pharmacy", &[&bid]).await;
    let thread = out["message"]["thread_id"].as_str().unwrap().to_owned();
    let bad_content = format!("/api/v1/attachments/{bid}/content");
    assert_problem(
        &app.get(&bad_content, &member).await,
        409,
        "attachment-not-released",
    );
    assert_problem(
        &app.get(&bad_content, &nurse).await,
        409,
        "attachment-not-released",
    );
    let seen = app
        .get(&format!("/api/v1/threads/{thread}"), &member)
        .await
        .text();
    assert!(
        seen.contains("could not accept the file") && seen.contains("notes.txt"),
        "{seen}"
    );
    assert!(
        !seen.contains("virus scanner ("),
        "members do not see the staff note"
    );
    let staff_view = app
        .get(&format!("/api/v1/threads/{thread}"), &nurse)
        .await
        .json();
    assert!(
        staff_view.to_string().contains("Careline-Test-EICAR"),
        "{staff_view}"
    );
    assert!(!app.recorded("attachment.infected").await.is_empty());
    // Only a privacy officer exports it, with a reason that is recorded.
    let export = format!("/api/v1/attachments/{bid}/export");
    assert_problem(
        &app.post(&export, &nurse, json!({"reason": "curious"}))
            .await,
        403,
        "privacy-officers",
    );
    assert_problem(
        &app.post(&export, &privacy, json!({"reason": " "})).await,
        422,
        "invalid-input",
    );
    let r = app
        .post(
            &export,
            &privacy,
            json!({"reason": "incident 2026-114: forwarded to security"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, EICAR);
    assert_eq!(app.recorded("attachment.exported").await.len(), 1);

    // EICAR buried in a PDF is found too; a zip is refused at the door.
    let mut buried = pdf("looks-innocent");
    buried.extend_from_slice(EICAR);
    buried.extend_from_slice(b"\n%%EOF\n");
    let b2 = upload_ok(app, &member, "letter2.pdf", "application/pdf", &buried).await;
    wait_state(app, &member, b2["id"].as_str().unwrap(), "infected").await;
    let r = app
        .upload(
            &member,
            None,
            "eicar.zip",
            "application/zip",
            &zip_with_eicar(),
        )
        .await;
    assert_problem(&r, 415, "attachment-type");
    assert!(r.text().contains("ZIP"), "{}", r.text());
    // The declared type must match the content; sizes are limited.
    let r = app
        .upload(&member, None, "rash.png", "image/png", &jpeg_with_gps())
        .await;
    assert_problem(&r, 415, "attachment-type-mismatch");
    let big = vec![b'a'; usize::try_from(MB + 1).unwrap()];
    assert_problem(
        &app.upload(&member, None, "big.txt", "text/plain", &big)
            .await,
        413,
        "attachment-too-large",
    );
    // An upload cannot be sent by someone else, nor twice.
    let other = app.login("member02").await;
    let r = app
        .post(
            "/api/v1/messages",
            &other,
            json!({"text": "hello", "attachment_ids": [id]}),
        )
        .await;
    assert_problem(&r, 422, "invalid-input");
}

#[tokio::test]
async fn invariant_7_nothing_unscanned_is_ever_served_and_infected_files_never_are() {
    let clamd = TestClamd::start().expect("clamd for the attachment tests");
    let app = App::spawn_with_files(Some(clamd.addr().to_string()), None, MB).await;
    suite(&app).await;
    // The local store holds only ciphertext: no file under the data dir has the letter's text.
    for f in files_under(app.dir.path()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, b"discharge-letter-marker-8842"),
            "{} holds plaintext",
            f.display()
        );
    }
}

#[tokio::test]
async fn invariant_7_same_behaviour_with_blobs_on_an_s3_server() {
    let clamd = TestClamd::start().expect("clamd for the attachment tests");
    let s3 = careline_blob::testing::TestS3::start().expect("an S3 test server (moto)");
    let blobs = s3.store("careline-test").unwrap();
    let app = App::spawn_with_files(Some(clamd.addr().to_string()), Some(blobs.clone()), MB).await;
    suite(&app).await;
    // The objects are there, sealed.
    if embedded_only("the last check reads blob locations from the embedded database") {
        return;
    }
    let c = rusqlite::Connection::open(app.dir.path().join("careline.db")).unwrap();
    let mut st = c.prepare("SELECT blob FROM attachments").unwrap();
    let locations: Vec<String> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(locations.len() >= 4);
    for loc in locations {
        let stored = blobs.read_stored(&loc).await.unwrap();
        assert!(
            !contains(&stored, b"discharge-letter-marker-8842"),
            "S3 holds only ciphertext"
        );
        assert!(!contains(&stored, EICAR), "S3 holds only ciphertext");
    }
}

#[tokio::test]
async fn invariant_7_a_scanner_outage_keeps_files_quarantined_until_a_clean_verdict() {
    let mut clamd = TestClamd::start().expect("clamd for the attachment tests");
    let app = App::spawn_with_files(Some(clamd.addr().to_string()), None, MB).await;
    let member = app.login("member01").await;
    let nurse = app.login("nurse.north").await;
    clamd.stop();
    let a = upload_ok(
        &app,
        &member,
        "x-ray report.pdf",
        "application/pdf",
        &pdf("xray"),
    )
    .await;
    let id = a["id"].as_str().unwrap().to_owned();
    send_with(&app, &member, "x-ray report attached", &[&id]).await;
    let failed = wait_state(&app, &nurse, &id, "failed").await;
    assert!(
        failed["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "staff see why: {failed}"
    );
    let content = format!("/api/v1/attachments/{id}/content");
    assert_problem(
        &app.get(&content, &nurse).await,
        409,
        "attachment-not-released",
    );
    // The scanner is back, but the retry is not due yet: still not served.
    clamd.start_again().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(
        app.get(&format!("/api/v1/attachments/{id}"), &nurse)
            .await
            .json()["state"],
        "failed"
    );
    assert_problem(
        &app.get(&content, &nurse).await,
        409,
        "attachment-not-released",
    );
    // Once the backoff has passed, the retry gets a clean verdict and the file is released.
    app.clock.advance(jiff::SignedDuration::from_mins(11));
    wait_state(&app, &nurse, &id, "clean").await;
    assert_eq!(app.get(&content, &nurse).await.status, 200);
    assert!(!app.recorded("attachment.scan_failed").await.is_empty());
    assert_eq!(app.recorded("attachment.clean").await.len(), 1);
}

#[tokio::test]
async fn without_a_scanner_uploads_are_kept_but_never_served() {
    let app = App::spawn().await;
    let member = app.login("member01").await;
    let a = upload_ok(&app, &member, "letter.pdf", "application/pdf", &pdf("kept")).await;
    let id = a["id"].as_str().unwrap();
    app.clock.advance(jiff::SignedDuration::from_hours(2));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let member = app.login("member01").await;
    assert_eq!(
        app.get(&format!("/api/v1/attachments/{id}"), &member)
            .await
            .json()["state"],
        "quarantined"
    );
    assert_problem(
        &app.get(&format!("/api/v1/attachments/{id}/content"), &member)
            .await,
        409,
        "attachment-not-released",
    );
}

#[tokio::test]
async fn an_upload_with_one_refused_file_stores_none_of_its_files() {
    let app = App::spawn().await;
    let member = app.login("member01").await;
    let blobs = |app: &App| {
        let dir = app.dir.path().join("blobs");
        if dir.exists() {
            files_under(&dir).len()
        } else {
            0
        }
    };
    let (events, objects) = (
        app.recorded("attachment.quarantined").await.len(),
        blobs(&app),
    );

    // Eleven files where ten are allowed: 413, and not the first ten either.
    let docs: Vec<Vec<u8>> = (0..11).map(|i| pdf(&format!("page {i}"))).collect();
    let names: Vec<String> = (0..11).map(|i| format!("scan{i}.pdf")).collect();
    let files: Vec<(&str, &str, &[u8])> = names
        .iter()
        .zip(&docs)
        .map(|(n, d)| (n.as_str(), "application/pdf", d.as_slice()))
        .collect();
    let r = app.upload_many(&member, None, &files).await;
    assert_problem(&r, 413, "too-many-attachments");
    assert_eq!(app.recorded("attachment.quarantined").await.len(), events);
    assert_eq!(
        blobs(&app),
        objects,
        "no blob of the refused upload is kept"
    );

    // A good PDF first, then a file of a type careline refuses: 415, and the PDF is not kept.
    let good = pdf("a good one");
    let r = app
        .upload_many(
            &member,
            None,
            &[
                ("letter.pdf", "application/pdf", good.as_slice()),
                (
                    "setup.exe",
                    "application/octet-stream",
                    b"MZ\x90\x00\x03\x00\x00\x00 not a document",
                ),
            ],
        )
        .await;
    assert_problem(&r, 415, "attachment-type");
    assert_eq!(app.recorded("attachment.quarantined").await.len(), events);
    assert_eq!(
        blobs(&app),
        objects,
        "no blob of the refused upload is kept"
    );

    // The same good PDF alone is stored.
    let r = app
        .upload_many(
            &member,
            None,
            &[("letter.pdf", "application/pdf", good.as_slice())],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        app.recorded("attachment.quarantined").await.len(),
        events + 1
    );
}
