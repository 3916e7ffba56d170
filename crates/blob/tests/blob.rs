//! careline-blob as its callers see it, against both backends: a local
//! directory and a real S3-compatible server (moto, see
//! `careline_blob::testing`). Each case is written once and run on both.
//!
//! Without moto the S3 half fails with the install command; set
//! `CARELINE_TEST_S3=skip` to skip it instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use careline_blob::testing::TestS3;
use careline_blob::{BlobError, BlobRef, BlobStore, BlobStream, blob_aad};
use careline_crypto::DataKey;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// Appears every 4 KiB of every test plaintext; must never appear stored.
const MARKER: &[u8] = b"CARELINE-PLAINTEXT-MARKER-7Q";
const ORG: &str = "org-0192a5";
const SEGMENT: u64 = 64 * 1024;

struct Backend {
    store: BlobStore,
    /// The local store's directory.
    dir: Option<TempDir>,
    s3: Option<TestS3>,
    /// Plaintext files to upload.
    files: TempDir,
    key: DataKey,
}

impl Backend {
    fn local() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(&dir.path().join("blobs")).unwrap();
        Self {
            store,
            dir: Some(dir),
            s3: None,
            files: tempfile::tempdir().unwrap(),
            key: DataKey::generate().unwrap(),
        }
    }

    /// `None` only when moto is missing and `CARELINE_TEST_S3=skip`.
    fn s3() -> Option<Self> {
        let server = match TestS3::start() {
            Ok(server) => server,
            Err(e) if std::env::var("CARELINE_TEST_S3").as_deref() == Ok("skip") => {
                eprintln!("skipping the S3 backend (CARELINE_TEST_S3=skip): {e}");
                return None;
            }
            Err(e) => panic!("cannot start the test S3 server: {e}"),
        };
        let store = server.store("careline/blobs").unwrap();
        Some(Self {
            store,
            dir: None,
            s3: Some(server),
            files: tempfile::tempdir().unwrap(),
            key: DataKey::generate().unwrap(),
        })
    }

    fn is_local(&self) -> bool {
        self.dir.is_some()
    }

    fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.files.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    async fn put(&self, name: &str, content: &[u8]) -> BlobRef {
        let path = self.write(name, content);
        let sha = hex::encode(Sha256::digest(content));
        self.store
            .put_file(ORG, &path, &self.key, &blob_aad(ORG, &sha))
            .await
            .unwrap()
    }

    async fn open(
        &self,
        blob: &BlobRef,
        range: Option<Range<u64>>,
    ) -> Result<BlobStream, BlobError> {
        self.store
            .open(
                &blob.location,
                &self.key,
                &blob_aad(ORG, &blob.sha256),
                range,
            )
            .await
    }

    async fn read(&self, blob: &BlobRef, range: Option<Range<u64>>) -> Result<Vec<u8>, BlobError> {
        collect(self.open(blob, range).await?).await
    }

    /// Changes the stored object: on disk for the local store (as someone
    /// with the data directory would), by overwriting it in S3.
    async fn tamper(&self, blob: &BlobRef, change: impl FnOnce(&mut Vec<u8>)) {
        if let Some(dir) = &self.dir {
            let file = dir.path().join("blobs").join(&blob.location);
            let mut bytes = std::fs::read(&file).unwrap();
            change(&mut bytes);
            std::fs::write(&file, bytes).unwrap();
        } else {
            let mut bytes = self
                .store
                .read_stored(&blob.location)
                .await
                .unwrap()
                .to_vec();
            change(&mut bytes);
            self.store
                .write_stored(&blob.location, Bytes::from(bytes))
                .await
                .unwrap();
        }
    }

    /// Every file under the local store's directory.
    fn local_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        if let Some(dir) = &self.dir {
            walk(dir.path(), &mut out);
        }
        out
    }
}

/// Test content: pseudo-random bytes with [`MARKER`] every 4 KiB.
fn content(len: usize, seed: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed | 1;
    while out.len() < len {
        if out.len() % 4096 == 0 {
            out.extend_from_slice(MARKER);
        }
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads a stream to the end, checking each chunk is at most one segment.
async fn collect(mut stream: BlobStream) -> Result<Vec<u8>, BlobError> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        assert!(!chunk.is_empty() && chunk.len() as u64 <= SEGMENT);
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads a stream until it fails; returns the bytes yielded before the error.
async fn read_until_error(mut stream: BlobStream) -> (Vec<u8>, Option<BlobError>) {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(e) => {
                assert!(
                    stream.next().await.is_none(),
                    "stream goes on after an error"
                );
                return (out, Some(e));
            }
        }
    }
    (out, None)
}

// ---- the cases, run on both backends ----

async fn round_trips(b: &Backend) {
    let mut sizes = vec![0usize, 1, 100_000, 5 * 1024 * 1024 + 12_345];
    sizes.push(26_000_000);
    for (i, len) in sizes.into_iter().enumerate() {
        let plain = content(len, 17 + i as u32);
        let started = Instant::now();
        let blob = b.put(&format!("file-{i}"), &plain).await;
        let put_time = started.elapsed();
        assert_eq!(blob.sha256, hex::encode(Sha256::digest(&plain)));
        assert_eq!(blob.size, len as u64);
        assert_eq!(blob.location, format!("{ORG}/{}", blob.sha256));
        let segments = (len as u64).div_ceil(SEGMENT).max(1);
        assert_eq!(blob.stored_size, 40 + len as u64 + 16 * segments);
        assert_eq!(
            b.store.stored_size(&blob.location).await.unwrap(),
            Some(blob.stored_size)
        );

        let stream = b.open(&blob, None).await.unwrap();
        assert_eq!(
            (stream.range(), stream.total_len()),
            (0..len as u64, len as u64)
        );
        assert_eq!(stream.len(), len as u64);
        let started = Instant::now();
        let back = collect(stream).await.unwrap();
        let get_time = started.elapsed();
        assert!(back == plain, "round trip of {len} bytes differs");
        eprintln!("{len} bytes: put {put_time:?}, get {get_time:?}");

        let stored = b.store.read_stored(&blob.location).await.unwrap();
        assert_eq!(stored.len() as u64, blob.stored_size);
        assert!(stored.starts_with(b"CLS1"));
        if len >= MARKER.len() {
            assert!(!contains(&stored, MARKER), "plaintext in the stored object");
            assert!(!contains(&stored, &plain[100.min(len - 16)..][..16]));
        }
    }
    for file in b.local_files() {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!contains(&bytes, MARKER), "plaintext in {}", file.display());
    }
}

async fn deduplicates(b: &Backend) {
    let plain = content(150_000, 5);
    let first = b.put("a.pdf", &plain).await;
    let stored = b.store.read_stored(&first.location).await.unwrap();
    let second = b.put("b.pdf", &plain).await;
    assert!(first.written, "the first upload wrote the object");
    assert!(!second.written, "the second found it stored and shares it");
    assert_eq!(
        (
            &first.sha256,
            first.size,
            first.stored_size,
            &first.location
        ),
        (
            &second.sha256,
            second.size,
            second.stored_size,
            &second.location
        )
    );
    // Not uploaded again: a new upload would have a new salt and nonces.
    assert_eq!(b.store.read_stored(&first.location).await.unwrap(), stored);
    if b.is_local() {
        assert_eq!(b.local_files().len(), 1, "{:?}", b.local_files());
    }
    // Other content, or another organization, is another object.
    let other = b.put("c.pdf", &content(150_000, 6)).await;
    assert_ne!(other.location, first.location);
    let path = b.write("d.pdf", &plain);
    let elsewhere = b
        .store
        .put_file(
            "org-other",
            &path,
            &b.key,
            &blob_aad("org-other", &first.sha256),
        )
        .await
        .unwrap();
    assert_eq!(elsewhere.location, format!("org-other/{}", first.sha256));
    assert_eq!(elsewhere.sha256, first.sha256);
    // The same content under another data key does not silently reuse the
    // object it could not open.
    let err = b
        .store
        .put_file(
            ORG,
            &path,
            &DataKey::generate().unwrap(),
            &blob_aad(ORG, &first.sha256),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Conflict { .. }), "{err}");
    assert_eq!(b.store.read_stored(&first.location).await.unwrap(), stored);
    assert_eq!(b.read(&first, None).await.unwrap(), plain);
}

async fn reads_ranges(b: &Backend) {
    let len = 300_000u64;
    let plain = content(len as usize, 9);
    let blob = b.put("scan.pdf", &plain).await;
    let ranges = [
        0..1,
        0..len,
        7..8,
        65_535..65_536,
        65_535..65_537,
        65_536..131_072,
        1_000..200_000,
        131_071..196_609,
        len - 1..len,
        250_000..len,
    ];
    for range in ranges {
        let stream = b.open(&blob, Some(range.clone())).await.unwrap();
        assert_eq!(stream.range(), range);
        assert_eq!(stream.total_len(), len);
        let got = collect(stream).await.unwrap();
        assert!(
            got == plain[range.start as usize..range.end as usize],
            "range {range:?}"
        );
    }
    for empty in [0..0, 70_000..70_000, len..len] {
        let stream = b.open(&blob, Some(empty.clone())).await.unwrap();
        assert!(stream.is_empty());
        assert!(collect(stream).await.unwrap().is_empty(), "{empty:?}");
    }
    #[allow(clippy::reversed_empty_ranges)]
    for bad in [0..len + 1, len..len + 1, len + 5..len + 9, 10..5] {
        let err = b.open(&blob, Some(bad.clone())).await.unwrap_err();
        assert!(
            matches!(&err, BlobError::RangeNotSatisfiable { range, size } if *range == bad && *size == len),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains("300000 bytes"), "{err}");
    }
    // Only the segments covering a range are read: damage outside it does
    // not matter to it.
    b.tamper(&blob, |bytes| {
        bytes[40 + 10] ^= 1; // segment 0
        let last = bytes.len() - 5; // segment 4
        bytes[last] ^= 1;
    })
    .await;
    let middle = 70_000..250_000;
    assert_eq!(
        b.read(&blob, Some(middle.clone())).await.unwrap(),
        plain[middle.start as usize..middle.end as usize]
    );
    assert!(b.read(&blob, Some(0..10)).await.unwrap_err().is_integrity());
}

async fn detects_tampering(b: &Backend) {
    let plain = content(300_000, 11);
    let blob = b.put("photo.jpg", &plain).await;
    let original = b.store.read_stored(&blob.location).await.unwrap().to_vec();
    let segment_start = |i: u64| 40 + (i * (SEGMENT + 16)) as usize;

    // A flipped byte in segment 2: segments 0 and 1 stream, then the error,
    // and not one byte of segment 2.
    b.tamper(&blob, |bytes| bytes[segment_start(2) + 1234] ^= 0x40)
        .await;
    let stream = b.open(&blob, None).await.unwrap();
    let (got, err) = read_until_error(stream).await;
    let err = err.expect("tampered segment must fail");
    assert!(err.is_integrity(), "{err}");
    assert!(err.to_string().contains("segment 2"), "{err}");
    assert_eq!(got.len() as u64, 2 * SEGMENT);
    assert!(got == plain[..got.len()]);
    // A range starting in the bad segment fails before yielding anything.
    let err = b.open(&blob, Some(140_000..140_010)).await.unwrap_err();
    assert!(err.is_integrity(), "{err}");

    // The tag of the last segment.
    b.tamper(&blob, |bytes| {
        bytes.copy_from_slice(&original);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
    })
    .await;
    let (got, err) = read_until_error(b.open(&blob, None).await.unwrap()).await;
    assert!(err.unwrap().is_integrity());
    assert_eq!(got.len() as u64, 4 * SEGMENT);

    // Any header byte: open itself fails.
    for at in [0usize, 4, 8, 16, 20, 39] {
        b.tamper(&blob, |bytes| {
            bytes.copy_from_slice(&original);
            bytes[at] ^= 0x02;
        })
        .await;
        let err = b.open(&blob, None).await.unwrap_err();
        assert!(err.is_integrity(), "header byte {at}: {err}");
    }

    // Truncated, or with the last segment dropped.
    let cut = segment_start(4);
    b.tamper(&blob, |bytes| bytes.truncate(cut)).await;
    let err = b.open(&blob, None).await.unwrap_err();
    assert!(err.is_integrity(), "{err}");
    b.tamper(&blob, |bytes| bytes.truncate(10)).await;
    let err = b.open(&blob, None).await.unwrap_err();
    assert!(err.is_integrity(), "{err}");

    // Segments swapped.
    b.tamper(&blob, |bytes| {
        bytes.clear();
        bytes.extend_from_slice(&original);
        let (s1, s2) = (segment_start(1), segment_start(2));
        let one = original[s1..s2].to_vec();
        let two = original[s2..segment_start(3)].to_vec();
        bytes[s1..s2].copy_from_slice(&two);
        bytes[s2..segment_start(3)].copy_from_slice(&one);
    })
    .await;
    let (got, err) = read_until_error(b.open(&blob, None).await.unwrap()).await;
    assert!(err.unwrap().is_integrity());
    assert_eq!(got.len() as u64, SEGMENT);

    // Restored, it reads again.
    b.tamper(&blob, |bytes| {
        bytes.clear();
        bytes.extend_from_slice(&original);
    })
    .await;
    assert!(b.read(&blob, None).await.unwrap() == plain);
}

async fn needs_the_right_key_and_aad(b: &Backend) {
    for len in [0usize, 200_000] {
        let plain = content(len, 21);
        let blob = b.put(&format!("note-{len}"), &plain).await;
        let aad = blob_aad(ORG, &blob.sha256);
        let other_key = DataKey::generate().unwrap();
        for range in [None, Some(0..0), Some(150_000.min(len as u64)..len as u64)] {
            let err = b
                .store
                .open(&blob.location, &other_key, &aad, range.clone())
                .await
                .unwrap_err();
            assert!(err.is_integrity(), "{range:?}: {err}");
            let err = b
                .store
                .open(
                    &blob.location,
                    &b.key,
                    &blob_aad("org-other", &blob.sha256),
                    range,
                )
                .await
                .unwrap_err();
            assert!(err.is_integrity(), "{err}");
        }
        assert!(b.read(&blob, None).await.unwrap() == plain);
    }
}

async fn missing_blobs_and_deletion(b: &Backend) {
    let blob = b.put("gone.txt", &content(1000, 3)).await;
    b.store.delete(&blob.location).await.unwrap();
    assert_eq!(b.store.stored_size(&blob.location).await.unwrap(), None);
    let err = b.open(&blob, None).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    b.store.delete(&blob.location).await.unwrap();
    // Stored again after deletion.
    let again = b.put("gone.txt", &content(1000, 3)).await;
    assert_eq!(again, blob);
    assert_eq!(b.read(&again, None).await.unwrap(), content(1000, 3));

    let missing = b.files.path().join("no-such-file");
    let err = b
        .store
        .put_file(ORG, &missing, &b.key, b"")
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Io { .. }), "{err}");
}

async fn rejects_bad_names(b: &Backend) {
    let path = b.write("x", b"x");
    for org in [
        "",
        ".hidden",
        "a/b",
        "..",
        "org id",
        "ørg",
        &"o".repeat(129),
    ] {
        let err = b.store.put_file(org, &path, &b.key, b"").await.unwrap_err();
        assert!(
            matches!(
                err,
                BlobError::InvalidName {
                    what: "organization",
                    ..
                }
            ),
            "{org:?}: {err}"
        );
    }
    let sha = "a".repeat(64);
    for location in [
        String::new(),
        "org".to_owned(),
        format!("../{sha}"),
        format!("org/{}", "A".repeat(64)),
        format!("org/{sha}/x"),
        format!("org/{}", &sha[1..]),
        format!("/{sha}"),
    ] {
        let err = b.store.stored_size(&location).await.unwrap_err();
        assert!(
            matches!(
                err,
                BlobError::InvalidName {
                    what: "location",
                    ..
                }
            ),
            "{location:?}: {err}"
        );
        assert!(b.store.delete(&location).await.is_err());
        assert!(b.store.open(&location, &b.key, b"", None).await.is_err());
    }
}

async fn check_passes(b: &Backend) {
    b.store.check().await.unwrap();
    // The probe leaves nothing behind.
    assert!(b.local_files().is_empty(), "{:?}", b.local_files());
    let description = b.store.describe();
    if b.is_local() {
        assert!(
            description.starts_with("local filesystem at /"),
            "{description}"
        );
    } else {
        let server = b.s3.as_ref().unwrap();
        assert_eq!(
            description,
            format!(
                "S3 bucket careline-test at endpoint {} under careline/blobs/",
                server.endpoint()
            )
        );
    }
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn local() {
                super::$case(&super::Backend::local()).await;
            }

            #[tokio::test]
            async fn s3() {
                if let Some(backend) = super::Backend::s3() {
                    super::$case(&backend).await;
                }
            }
        }
    )*};
}

on_both_backends!(
    round_trips,
    deduplicates,
    reads_ranges,
    detects_tampering,
    needs_the_right_key_and_aad,
    missing_blobs_and_deletion,
    rejects_bad_names,
    check_passes,
);

// ---- configuration ----

fn env_of(pairs: Env) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

type Env = &'static [(&'static str, &'static str)];

const CREDS: Env = &[
    ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
    ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-very-secret"),
];

#[test]
fn from_url_picks_local_directories() {
    let data = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(data.path()).unwrap();
    let none = env_of(&[]);
    for url in ["", "local", "  local "] {
        let store = BlobStore::from_url_with_env(url, data.path(), &none).unwrap();
        assert_eq!(
            store.describe(),
            format!("local filesystem at {}", root.join("blobs").display())
        );
    }
    assert!(root.join("blobs").is_dir());
    let url = format!("file://{}/elsewhere%20x", root.display());
    let store = BlobStore::from_url_with_env(&url, data.path(), &none).unwrap();
    assert_eq!(
        store.describe(),
        format!("local filesystem at {}", root.join("elsewhere x").display())
    );
    for bad in [
        "file://relative/dir",
        "file:///x?y=1",
        "file:///bad%zz",
        "blobs",
    ] {
        let err = BlobStore::from_url_with_env(bad, data.path(), &none).unwrap_err();
        assert!(matches!(err, BlobError::Config(_)), "{bad}: {err}");
    }
}

#[test]
fn from_url_configures_s3() {
    let data = tempfile::tempdir().unwrap();
    let store = BlobStore::from_url_with_env(
        "s3://attachments/prod/blobs/?endpoint=http://127.0.0.1:9000&region=eu-west-1",
        data.path(),
        env_of(CREDS),
    )
    .unwrap();
    assert_eq!(
        store.describe(),
        "S3 bucket attachments at endpoint http://127.0.0.1:9000 under prod/blobs/"
    );
    assert!(!format!("{store:?}").contains("secret"));
    let store =
        BlobStore::from_url_with_env("s3://attachments", data.path(), env_of(CREDS)).unwrap();
    assert_eq!(
        store.describe(),
        "S3 bucket attachments in AWS region us-east-1"
    );
    // careline's own variables win over the AWS ones.
    let both: &[(&str, &str)] = &[
        ("CARELINE_S3_ACCESS_KEY_ID", "mine"),
        ("CARELINE_S3_SECRET_ACCESS_KEY", "mine-secret"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_REGION", "ap-south-1"),
    ];
    let store = BlobStore::from_url_with_env("s3://b/p", data.path(), env_of(both)).unwrap();
    assert_eq!(
        store.describe(),
        "S3 bucket b in AWS region ap-south-1 under p/"
    );
    // An encoded endpoint is decoded.
    let store = BlobStore::from_url_with_env(
        "s3://b?endpoint=https%3A%2F%2Fminio.internal%3A9000",
        data.path(),
        env_of(CREDS),
    )
    .unwrap();
    assert_eq!(
        store.describe(),
        "S3 bucket b at endpoint https://minio.internal:9000"
    );
}

#[test]
fn from_url_errors_are_clear_and_keep_secrets() {
    let data = tempfile::tempdir().unwrap();
    let cases: &[(&str, Env, &str)] = &[
        (
            "gs://bucket/secret-path",
            CREDS,
            "unsupported blob store URL scheme \"gs\"",
        ),
        ("azure://x", CREDS, "scheme \"azure\""),
        ("s3://bucket", &[], "CARELINE_S3_ACCESS_KEY_ID"),
        (
            "s3://bucket",
            &[("AWS_ACCESS_KEY_ID", "AKID")],
            "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ),
        (
            "s3://AKID:hunter2@bucket",
            CREDS,
            "credentials in the s3: URL are not accepted",
        ),
        (
            "s3://bucket?endpoint=http://AKID:hunter2@host",
            CREDS,
            "credentials in the s3: endpoint",
        ),
        ("s3://", CREDS, "needs a bucket name"),
        (
            "s3://bucket?color=blue",
            CREDS,
            "unknown s3: URL parameter \"color\"",
        ),
        (
            "s3://bucket?endpoint=ftp://host",
            CREDS,
            "must start with http:// or https://",
        ),
        (
            "s3://bucket?allow_http=maybe",
            CREDS,
            "allow_http must be true or false",
        ),
    ];
    for (url, env, expected) in cases {
        let err = BlobStore::from_url_with_env(url, data.path(), env_of(env)).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, BlobError::Config(_)), "{url}: {message}");
        assert!(message.contains(expected), "{url}: {message}");
        assert!(
            !message.contains("hunter2") && !message.contains("secret-path"),
            "{message}"
        );
        assert!(!message.contains("wJalrXUtnFEMI"), "{message}");
    }
}

#[test]
fn s3_config_debug_hides_the_secret() {
    let config = careline_blob::S3Config {
        bucket: "b".into(),
        endpoint: None,
        region: "us-east-1".into(),
        access_key_id: "AKID".into(),
        secret_access_key: "wJalrXUtnFEMI".into(),
        allow_http: false,
        prefix: String::new(),
    };
    let shown = format!("{config:?}");
    assert!(
        shown.contains("AKID") && !shown.contains("wJalrXUtnFEMI"),
        "{shown}"
    );
    // An endpoint carrying user info is described without it.
    let store = BlobStore::s3(careline_blob::S3Config {
        endpoint: Some("http://user:hunter2@127.0.0.1:9000/".into()),
        allow_http: true,
        ..config
    })
    .unwrap();
    assert_eq!(
        store.describe(),
        "S3 bucket b at endpoint http://127.0.0.1:9000/"
    );
    assert!(!format!("{store:?}").contains("hunter2"));
}

#[tokio::test]
async fn s3_from_url_round_trips_and_check_reports_a_stopped_server() {
    let Some(mut backend) = Backend::s3() else {
        return;
    };
    let server = backend.s3.as_mut().unwrap();
    let data = tempfile::tempdir().unwrap();
    let store =
        BlobStore::from_url_with_env(&server.url("via-url"), data.path(), TestS3::env).unwrap();
    store.check().await.unwrap();
    let plain = content(70_000, 2);
    let path = backend.files.path().join("f");
    std::fs::write(&path, &plain).unwrap();
    let sha = hex::encode(Sha256::digest(&plain));
    let blob = store
        .put_file(ORG, &path, &backend.key, &blob_aad(ORG, &sha))
        .await
        .unwrap();
    let stream = store
        .open(&blob.location, &backend.key, &blob_aad(ORG, &sha), None)
        .await
        .unwrap();
    assert!(collect(stream).await.unwrap() == plain);

    let endpoint = server.endpoint().to_owned();
    server.stop();
    let started = Instant::now();
    let err = store.check().await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, BlobError::Unavailable { step: "write", .. }),
        "{message}"
    );
    assert!(
        message.starts_with(&format!(
            "S3 bucket careline-test at endpoint {endpoint} under via-url/ unreachable"
        )),
        "{message}"
    );
    assert!(!message.contains("careline-test-secret"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
