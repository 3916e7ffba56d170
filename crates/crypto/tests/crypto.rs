//! Behaviour of careline-crypto as its callers see it: sealing fields and
//! blobs, wrapping data keys, loading and creating the master key, rotation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::ffi::OsStr;
use std::path::Path;

use base64ct::{Base64, Encoding};
use careline_crypto::{
    CryptoError, DEFAULT_SEGMENT_SIZE, DataKey, KeySource, Keyring, MasterKey, STREAM_HEADER_LEN,
    SegmentLayout, SegmentOpener, SegmentSealer, is_sealed, is_sealed_blob, open_segmented,
    rotate_master, rotate_master_all, seal_segmented, wrapped_by,
};
use proptest::prelude::*;

const TEXT: &str = "Patient reports chest pain since 03:00, taking aspirin";
const AAD: &[u8] = b"message:01JABCDEF";

fn key() -> DataKey {
    DataKey::generate().unwrap()
}

fn master() -> MasterKey {
    MasterKey::generate().unwrap()
}

fn load(path: &Path, create: bool) -> careline_crypto::Result<(MasterKey, KeySource)> {
    MasterKey::from_env_value_or_file("CARELINE_TEST_MASTER_KEY", None, path, create)
}

/// Decodes a sealed field's body, flips one byte, re-encodes.
fn flip_field_byte(sealed: &str, index: usize) -> String {
    let mut raw = Base64::decode_vec(sealed.strip_prefix("clx1:").unwrap()).unwrap();
    raw[index] ^= 0x01;
    format!("clx1:{}", Base64::encode_string(&raw))
}

// ---- fields ----

#[test]
fn field_round_trips() {
    let k = key();
    let sealed = k.seal_str(TEXT, AAD).unwrap();
    assert_eq!(k.open_str(&sealed, AAD).unwrap(), TEXT);
    let empty = k.seal(b"", AAD).unwrap();
    assert_eq!(k.open(&empty, AAD).unwrap(), b"");
}

#[test]
fn sealed_field_does_not_contain_the_plaintext() {
    let sealed = key().seal_str(TEXT, AAD).unwrap();
    assert!(sealed.starts_with("clx1:"));
    assert!(is_sealed(&sealed));
    assert!(!sealed.contains(TEXT));
    assert!(!sealed.contains("chest pain"));
    assert!(!sealed.contains(&Base64::encode_string(TEXT.as_bytes())));
}

#[test]
fn two_seals_of_the_same_text_differ() {
    let k = key();
    let a = k.seal_str(TEXT, AAD).unwrap();
    let b = k.seal_str(TEXT, AAD).unwrap();
    assert_ne!(a, b);
    assert_eq!(k.open_str(&a, AAD).unwrap(), k.open_str(&b, AAD).unwrap());
}

#[test]
fn wrong_aad_fails_so_ciphertexts_cannot_move_between_rows() {
    let k = key();
    let sealed = k.seal_str(TEXT, b"message:1").unwrap();
    let err = k.open_str(&sealed, b"message:2").unwrap_err();
    assert!(matches!(err, CryptoError::DecryptionFailed), "{err}");
    assert!(k.open_str(&sealed, b"").is_err());
}

#[test]
fn tampered_field_fails_at_every_byte() {
    let k = key();
    let sealed = k.seal_str(TEXT, AAD).unwrap();
    let raw_len = Base64::decode_vec(&sealed[5..]).unwrap().len();
    assert_eq!(raw_len, 12 + TEXT.len() + 16);
    for i in 0..raw_len {
        let err = k.open(&flip_field_byte(&sealed, i), AAD).unwrap_err();
        assert!(
            matches!(err, CryptoError::DecryptionFailed),
            "byte {i}: {err}"
        );
    }
}

#[test]
fn truncated_or_garbage_field_is_malformed_not_a_panic() {
    let k = key();
    let sealed = k.seal_str(TEXT, AAD).unwrap();
    for bad in [
        "",
        "clx1:",
        "clx1:AAAA",
        "clx1:!!!!",
        "hello",
        &sealed[..sealed.len() - 4],
    ] {
        assert!(k.open(bad, AAD).is_err(), "{bad:?} opened");
    }
    assert!(matches!(
        k.open("plain text", AAD).unwrap_err(),
        CryptoError::Malformed {
            what: "sealed field"
        }
    ));
}

#[test]
fn another_data_key_cannot_open() {
    let sealed = key().seal_str(TEXT, AAD).unwrap();
    assert!(matches!(
        key().open_str(&sealed, AAD).unwrap_err(),
        CryptoError::DecryptionFailed
    ));
}

#[test]
fn open_str_rejects_non_utf8() {
    let k = key();
    let sealed = k.seal(&[0xff, 0xfe], AAD).unwrap();
    assert!(matches!(
        k.open_str(&sealed, AAD).unwrap_err(),
        CryptoError::NotUtf8
    ));
}

#[test]
fn is_sealed_recognizes_only_sealed_fields() {
    let k = key();
    assert!(is_sealed(&k.seal(b"", b"").unwrap()));
    assert!(!is_sealed(TEXT));
    assert!(!is_sealed("clx1:"));
    assert!(!is_sealed("clx1:not base64!"));
}

// ---- blobs ----

#[test]
fn blob_round_trips_and_hides_the_plaintext() {
    let k = key();
    let blob: Vec<u8> = TEXT.as_bytes().repeat(1000);
    let sealed = k.seal_bytes(&blob, b"attachment:7").unwrap();
    assert!(sealed.starts_with(b"CLB1"));
    assert!(is_sealed_blob(&sealed));
    assert_eq!(sealed.len(), 4 + 12 + blob.len() + 16);
    assert!(!sealed.windows(10).any(|w| w == &TEXT.as_bytes()[..10]));
    assert_eq!(k.open_bytes(&sealed, b"attachment:7").unwrap(), blob);
    assert_ne!(sealed, k.seal_bytes(&blob, b"attachment:7").unwrap());
}

#[test]
fn tampered_or_misbound_blob_fails() {
    let k = key();
    let mut sealed = k.seal_bytes(b"scan.pdf contents", b"attachment:7").unwrap();
    assert!(k.open_bytes(&sealed, b"attachment:8").is_err());
    let last = sealed.len() - 1;
    sealed[last] ^= 0x80;
    assert!(matches!(
        k.open_bytes(&sealed, b"attachment:7").unwrap_err(),
        CryptoError::DecryptionFailed
    ));
    assert!(k.open_bytes(b"CLB1short", b"").is_err());
    assert!(k.open_bytes(b"", b"").is_err());
    assert!(!is_sealed_blob(b"%PDF-1.7"));
}

#[test]
fn a_blob_cannot_be_passed_off_as_a_field_or_vice_versa() {
    let k = key();
    let blob = k.seal_bytes(TEXT.as_bytes(), AAD).unwrap();
    let as_field = format!("clx1:{}", Base64::encode_string(&blob[4..]));
    assert!(matches!(
        k.open(&as_field, AAD).unwrap_err(),
        CryptoError::DecryptionFailed
    ));
    let field = k.seal_str(TEXT, AAD).unwrap();
    let mut as_blob = b"CLB1".to_vec();
    as_blob.extend(Base64::decode_vec(&field[5..]).unwrap());
    assert!(matches!(
        k.open_bytes(&as_blob, AAD).unwrap_err(),
        CryptoError::DecryptionFailed
    ));
}

// ---- wrapping ----

#[test]
fn wrapped_data_key_round_trips_and_opens_old_ciphertext() {
    let m = master();
    let k = key();
    let sealed = k.seal_str(TEXT, AAD).unwrap();
    let wrapped = m.wrap(&k).unwrap();
    assert!(wrapped.starts_with(&format!("clwk1:{}:", m.id())));
    assert_eq!(wrapped_by(&wrapped).unwrap(), m.id());
    let back = m.unwrap(&wrapped).unwrap();
    assert_eq!(back.open_str(&sealed, AAD).unwrap(), TEXT);
    assert_ne!(wrapped, m.wrap(&k).unwrap(), "fresh nonce per wrap");
}

#[test]
fn unwrapping_with_the_wrong_master_names_the_expected_id() {
    let right = master();
    let wrong = master();
    let wrapped = right.wrap(&key()).unwrap();
    let err = wrong.unwrap(&wrapped).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(right.id()), "{msg}");
    assert!(msg.contains(wrong.id()), "{msg}");
    assert!(matches!(err, CryptoError::WrongMasterKey { .. }));
}

#[test]
fn wrong_master_with_a_forged_id_still_fails() {
    let right = master();
    let wrong = master();
    let wrapped = right.wrap(&key()).unwrap();
    let forged = wrapped.replacen(right.id(), wrong.id(), 1);
    assert!(matches!(
        wrong.unwrap(&forged).unwrap_err(),
        CryptoError::DecryptionFailed
    ));
}

#[test]
fn tampered_or_malformed_wrapped_key_fails() {
    let m = master();
    let wrapped = m.wrap(&key()).unwrap();
    let (head, body) = wrapped.rsplit_once(':').unwrap();
    let mut raw = Base64::decode_vec(body).unwrap();
    raw[20] ^= 1;
    let tampered = format!("{head}:{}", Base64::encode_string(&raw));
    assert!(matches!(
        m.unwrap(&tampered).unwrap_err(),
        CryptoError::DecryptionFailed
    ));
    for bad in [
        "",
        "clwk1:",
        "clwk1:abc",
        "xxx:yyy:zzz",
        &format!("clwk1:{}:AAAA", m.id()),
    ] {
        assert!(m.unwrap(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn master_key_id_is_first_8_hex_of_sha256() {
    // SHA-256 of 32 zero bytes is 66687aad...
    assert_eq!(MasterKey::from_bytes([0; 32]).id(), "66687aad");
    let m = master();
    assert_eq!(m.id().len(), 8);
    assert!(m.id().bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn debug_output_never_shows_key_bytes() {
    let m = MasterKey::from_bytes([0xab; 32]);
    let shown = format!("{m:?} {:?}", key());
    assert!(!shown.to_lowercase().contains("abab"), "{shown}");
    assert!(shown.contains(m.id()));
}

// ---- master key text, env and file ----

#[test]
fn master_key_parses_hex_and_base64_with_whitespace() {
    let m = MasterKey::from_bytes([7; 32]);
    let hex = m.to_hex();
    assert_eq!(hex.len(), 64);
    assert_eq!(
        MasterKey::parse(&format!("  {}\n", *hex)).unwrap().id(),
        m.id()
    );
    assert_eq!(MasterKey::parse(&hex.to_uppercase()).unwrap().id(), m.id());
    let b64 = Base64::encode_string(&[7; 32]);
    assert_eq!(MasterKey::parse(&format!("{b64}\n")).unwrap().id(), m.id());
    for bad in [
        "",
        "abcd",
        &hex[..62],
        &format!("{}00", *hex),
        &Base64::encode_string(&[7; 31]),
    ] {
        assert!(
            matches!(
                MasterKey::parse(bad),
                Err(CryptoError::InvalidMasterKey { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn env_value_takes_precedence_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    MasterKey::from_bytes([1; 32])
        .write_new_file(&path)
        .unwrap();
    let env = MasterKey::from_bytes([2; 32]);
    let (m, source) = MasterKey::from_env_value_or_file(
        "CARELINE_MASTER_KEY",
        Some(OsStr::new(env.to_hex().as_str())),
        &path,
        false,
    )
    .unwrap();
    assert_eq!(m.id(), env.id());
    assert_eq!(
        source,
        KeySource::Env {
            var: "CARELINE_MASTER_KEY".into()
        }
    );
}

#[test]
fn invalid_or_empty_env_value_is_an_error_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    for value in ["", "not a key"] {
        let err = MasterKey::from_env_value_or_file(
            "CARELINE_MASTER_KEY",
            Some(OsStr::new(value)),
            &path,
            true,
        )
        .unwrap_err();
        assert!(err.to_string().contains("CARELINE_MASTER_KEY"), "{err}");
    }
    assert!(!path.exists(), "a bad env value must not create a key file");
}

#[test]
fn the_real_environment_is_consulted() {
    // The variable is unset in the test environment, so the file is used.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let (m, _) = MasterKey::from_env_or_file("CARELINE_TEST_UNSET_7F3A", &path, true).unwrap();
    assert_eq!(load(&path, false).unwrap().0.id(), m.id());
}

#[test]
fn missing_file_without_create_is_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let err = load(&path, false).unwrap_err();
    assert!(matches!(err, CryptoError::MasterKeyMissing { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("CARELINE_TEST_MASTER_KEY") && msg.contains("master.key"),
        "{msg}"
    );
    assert!(!path.exists());
}

#[cfg(unix)]
#[test]
fn created_key_file_has_mode_0600_and_is_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys").join("master.key");

    let (first, source) = load(&path, true).unwrap();
    assert_eq!(source, KeySource::Created { path: path.clone() });
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    let contents = std::fs::read_to_string(&path).unwrap();
    assert_eq!(contents.trim(), first.to_hex().as_str());

    let (second, source) = load(&path, true).unwrap();
    assert_eq!(second.id(), first.id());
    assert_eq!(
        source,
        KeySource::File {
            path: path.clone(),
            loose_permissions: false
        }
    );

    let err = master().write_new_file(&path).unwrap_err();
    assert!(
        matches!(&err, CryptoError::MasterKeyIo { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), contents);
    // No temporary files are left behind.
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );
}

#[test]
fn concurrent_creators_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| load(&path, true).unwrap().0.id().to_owned()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let on_disk = load(&path, false).unwrap().0;
    assert!(ids.iter().all(|id| id == on_disk.id()), "{ids:?}");
}

#[cfg(unix)]
#[test]
fn readable_key_file_is_flagged_as_loose() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    std::fs::write(&path, format!("{}\n", Base64::encode_string(&[9; 32]))).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (m, source) = load(&path, true).unwrap();
    assert_eq!(m.id(), MasterKey::from_bytes([9; 32]).id());
    assert_eq!(
        source,
        KeySource::File {
            path,
            loose_permissions: true
        }
    );
}

#[test]
fn invalid_key_file_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.key");
    for contents in [&b"0123abcd"[..], b"", &[0xff; 64]] {
        std::fs::write(&path, contents).unwrap();
        let err = load(&path, true).unwrap_err();
        assert!(matches!(err, CryptoError::InvalidMasterKey { .. }), "{err}");
        assert!(err.to_string().contains("broken.key"), "{err}");
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![0xff; 64],
        "not overwritten"
    );
}

// ---- rotation ----

#[test]
fn rotation_rewraps_and_the_data_key_still_opens_old_ciphertexts() {
    let old = master();
    let new = master();
    let k = key();
    let sealed = k.seal_str(TEXT, AAD).unwrap();
    let blob = k.seal_bytes(TEXT.as_bytes(), AAD).unwrap();
    let wrapped = old.wrap(&k).unwrap();

    let rotated = rotate_master(&old, &new, &wrapped).unwrap();
    assert_ne!(rotated, wrapped);
    assert_eq!(wrapped_by(&rotated).unwrap(), new.id());
    assert!(matches!(
        old.unwrap(&rotated).unwrap_err(),
        CryptoError::WrongMasterKey { .. }
    ));
    let k2 = new.unwrap(&rotated).unwrap();
    assert_eq!(k2.open_str(&sealed, AAD).unwrap(), TEXT);
    assert_eq!(k2.open_bytes(&blob, AAD).unwrap(), TEXT.as_bytes());

    // An interrupted rotation can be run again.
    assert_eq!(rotate_master(&old, &new, &rotated).unwrap(), rotated);
}

#[test]
fn rotation_with_the_wrong_old_master_fails() {
    let actual = master();
    let wrapped = actual.wrap(&key()).unwrap();
    let err = rotate_master(&master(), &master(), &wrapped).unwrap_err();
    assert!(err.to_string().contains(actual.id()), "{err}");
}

#[test]
fn rotating_a_store_is_all_or_nothing() {
    let (old, new) = (master(), master());
    let keys: Vec<(u32, String)> = (0..3).map(|i| (i, old.wrap(&key()).unwrap())).collect();
    let rotated = rotate_master_all(&old, &new, keys.clone()).unwrap();
    assert_eq!(rotated.len(), 3);
    assert!(
        rotated
            .iter()
            .all(|(_, w)| wrapped_by(w).unwrap() == new.id())
    );
    // Run again after an interruption: nothing changes.
    assert_eq!(
        rotate_master_all(&old, &new, rotated.clone()).unwrap(),
        rotated
    );
    // One key under a third master key: an error, and nothing to write.
    let mut mixed = keys;
    mixed.push((9, master().wrap(&key()).unwrap()));
    let err = rotate_master_all(&old, &new, mixed).unwrap_err();
    assert!(matches!(err, CryptoError::WrongMasterKey { .. }), "{err}");
}

// ---- keyring ----

#[test]
fn keyring_creates_loads_and_looks_up_data_keys() {
    let m = master();
    let id = Keyring::key_id("org-1", 1);
    assert_eq!(id, "org-1:1");

    let mut ring = Keyring::new(m.clone());
    let wrapped = ring.create(&id).unwrap();
    assert!(matches!(
        ring.create(&id).unwrap_err(),
        CryptoError::DataKeyExists(_)
    ));
    let sealed = ring.get(&id).unwrap().seal_str(TEXT, AAD).unwrap();

    // A fresh process: load the stored wrapped key.
    let mut restarted = Keyring::new(m);
    assert!(!restarted.contains(&id));
    let err = restarted.get(&id).unwrap_err();
    assert!(err.to_string().contains("org-1:1"), "{err}");
    restarted.load(id.clone(), &wrapped).unwrap();
    assert_eq!(
        restarted.get(&id).unwrap().open_str(&sealed, AAD).unwrap(),
        TEXT
    );
    assert!(format!("{restarted:?}").contains("org-1:1"));

    let mut other = Keyring::new(master());
    assert!(matches!(
        other.load(id, &wrapped).unwrap_err(),
        CryptoError::WrongMasterKey { .. }
    ));
}

// ---- segmented blobs (CLS1) ----

const SEG_AAD: &[u8] = b"blob:org-1:5f2c";

/// Deterministic, non-repeating-looking content with a marker to search for.
fn blob_content(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x: u32 = 0x9E37_79B9;
    while out.len() < len {
        if out.len() % 4096 == 0 {
            out.extend_from_slice(b"MRN-4471-CHEST-XRAY");
        }
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push((x >> 24) as u8);
    }
    out.truncate(len);
    out
}

/// Opens plaintext bytes `range` reading only the header and the segments
/// covering it, as a ranged reader would.
fn open_range(
    k: &DataKey,
    sealed: &[u8],
    aad: &[u8],
    range: std::ops::Range<u64>,
) -> careline_crypto::Result<Vec<u8>> {
    let opener = SegmentOpener::new(k, &sealed[..STREAM_HEADER_LEN], aad)?;
    let layout = opener.layout();
    let span = layout.segment_range_for(range.clone()).unwrap();
    let fetched = &sealed[span.sealed.start as usize..span.sealed.end as usize];
    let mut plain = Vec::new();
    let mut at = 0usize;
    for index in span.segments.clone() {
        let r = layout.segment_sealed_range(index).unwrap();
        let len = (r.end - r.start) as usize;
        plain.extend(opener.open_segment(index, &fetched[at..at + len])?);
        at += len;
    }
    assert_eq!(at, fetched.len());
    let skip = (range.start
        - layout
            .segment_plain_range(span.segments.start)
            .unwrap()
            .start) as usize;
    Ok(plain[skip..skip + (range.end - range.start) as usize].to_vec())
}

fn segments_of(sealed: &[u8]) -> Vec<std::ops::Range<usize>> {
    let layout = SegmentLayout::from_header(sealed).unwrap();
    (0..layout.segment_count())
        .map(|i| {
            let r = layout.segment_sealed_range(i).unwrap();
            r.start as usize..r.end as usize
        })
        .collect()
}

#[test]
fn segmented_blob_round_trips_across_segment_boundaries() {
    let k = key();
    for len in [0usize, 1, 65_535, 65_536, 65_537, 3_000_000] {
        let plain = blob_content(len);
        let mut sealer = SegmentSealer::new(&k, SEG_AAD, len as u64).unwrap();
        let layout = sealer.layout();
        let mut sealed = sealer.header().to_vec();
        while let Some(n) = sealer.next_len() {
            let start = (sealer.next_index() * u64::from(DEFAULT_SEGMENT_SIZE)) as usize;
            sealed.extend(
                sealer
                    .seal_segment(&plain[start..start + n as usize])
                    .unwrap(),
            );
        }
        assert!(sealer.is_finished());
        assert!(sealed.starts_with(b"CLS1\x01"));
        assert_eq!(sealed.len() as u64, layout.sealed_len(), "len {len}");
        let segments = (len as u64).div_ceil(65_536).max(1);
        assert_eq!(layout.segment_count(), segments);
        assert_eq!(sealed.len() as u64, 40 + len as u64 + 16 * segments);
        assert_eq!(
            open_segmented(&k, &sealed, SEG_AAD).unwrap(),
            plain,
            "len {len}"
        );
        if len > 0 {
            assert!(!sealed.windows(19).any(|w| w == b"MRN-4471-CHEST-XRAY"));
        }
        // The in-memory helper writes the same format.
        let again = seal_segmented(&k, &plain, SEG_AAD, DEFAULT_SEGMENT_SIZE).unwrap();
        assert_eq!(again.len(), sealed.len());
        assert_ne!(again, sealed, "fresh salt and nonce prefix per blob");
        assert_eq!(open_segmented(&k, &again, SEG_AAD).unwrap(), plain);
    }
}

#[test]
fn segment_layout_maps_ranges_to_segments() {
    let layout = SegmentLayout::new(250, 100).unwrap();
    assert_eq!(layout.segment_count(), 3);
    assert_eq!(layout.sealed_len(), 40 + 250 + 3 * 16);
    assert_eq!(layout.segment_plain_range(2), Some(200..250));
    assert_eq!(layout.segment_plain_range(3), None);
    assert_eq!(layout.segment_sealed_range(0), Some(40..156));
    assert_eq!(layout.segment_sealed_range(1), Some(156..272));
    assert_eq!(layout.segment_sealed_range(2), Some(272..338));
    let span = layout.segment_range_for(99..101).unwrap();
    assert_eq!(span.segments, 0..2);
    assert_eq!(span.sealed, 40..272);
    let span = layout.segment_range_for(249..250).unwrap();
    assert_eq!(span.segments, 2..3);
    assert_eq!(span.sealed, 272..338);
    assert_eq!(layout.segment_range_for(0..250).unwrap().sealed, 40..338);
    assert_eq!(layout.segment_range_for(10..10), None);
    assert_eq!(layout.segment_range_for(0..251), None);
    assert_eq!(layout.segment_of(249), Some(2));
    assert_eq!(layout.segment_of(250), None);
    let empty = SegmentLayout::new(0, 100).unwrap();
    assert_eq!(empty.segment_count(), 1);
    assert_eq!(empty.segment_sealed_range(0), Some(40..56));
    assert!(SegmentLayout::new(10, 0).is_err());
    assert!(SegmentLayout::new(10, 16 * 1024 * 1024 + 1).is_err());
    assert!(SegmentLayout::new(u64::MAX, 1).is_err());
}

#[test]
fn every_modified_header_byte_is_detected() {
    let k = key();
    let sealed = seal_segmented(&k, &blob_content(300), SEG_AAD, 128).unwrap();
    for i in 0..STREAM_HEADER_LEN {
        for bit in [0x01u8, 0x80] {
            let mut bad = sealed.clone();
            bad[i] ^= bit;
            assert!(open_segmented(&k, &bad, SEG_AAD).is_err(), "byte {i}");
            // A reader that trusts only the header it was handed still fails
            // at the first segment it opens, whatever the header claims.
            if let Ok(opener) = SegmentOpener::new(&k, &bad, SEG_AAD) {
                let r = opener.layout().segment_sealed_range(0).unwrap();
                if let Some(seg) = bad.get(r.start as usize..r.end as usize) {
                    assert!(opener.open_segment(0, seg).is_err(), "byte {i}");
                }
            }
        }
    }
}

#[test]
fn a_modified_segment_fails_alone() {
    let k = key();
    let plain = blob_content(1000);
    let sealed = seal_segmented(&k, &plain, SEG_AAD, 256).unwrap();
    let segments = segments_of(&sealed);
    assert_eq!(segments.len(), 4);
    for target in 0..segments.len() {
        for at in [segments[target].start, segments[target].end - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 0x20;
            assert!(matches!(
                open_segmented(&k, &bad, SEG_AAD).unwrap_err(),
                CryptoError::DecryptionFailed
            ));
            let opener = SegmentOpener::new(&k, &bad, SEG_AAD).unwrap();
            for (i, r) in segments.iter().enumerate() {
                let result = opener.open_segment(i as u64, &bad[r.clone()]);
                if i == target {
                    assert!(matches!(result, Err(CryptoError::DecryptionFailed)));
                } else {
                    assert_eq!(result.unwrap(), plain[i * 256..(i * 256 + 256).min(1000)]);
                }
            }
        }
    }
}

#[test]
fn truncated_or_shortened_segmented_blob_fails() {
    let k = key();
    let sealed = seal_segmented(&k, &blob_content(600), SEG_AAD, 200).unwrap();
    let segments = segments_of(&sealed);
    // Cut anywhere, including exactly before the last segment.
    for cut in [0, 10, 39, 40, 41, segments[2].start, sealed.len() - 1] {
        assert!(
            open_segmented(&k, &sealed[..cut], SEG_AAD).is_err(),
            "cut {cut}"
        );
    }
    // Presenting the second-to-last segment as the last fails: the last
    // flag is in the nonce.
    let opener = SegmentOpener::new(&k, &sealed, SEG_AAD).unwrap();
    let forged_last = &sealed[segments[1].clone()];
    assert!(opener.open_segment(2, forged_last).is_err());
    // A segment of the wrong length is malformed, not a panic.
    assert!(matches!(
        opener.open_segment(0, &sealed[segments[0].start..segments[0].end - 1]),
        Err(CryptoError::Malformed { .. })
    ));
    assert!(matches!(
        opener.open_segment(3, &sealed[segments[0].clone()]),
        Err(CryptoError::SegmentMisuse(_))
    ));
}

#[test]
fn reordered_segments_fail() {
    let k = key();
    let sealed = seal_segmented(&k, &blob_content(600), SEG_AAD, 200).unwrap();
    let s = segments_of(&sealed);
    let mut swapped = sealed[..40].to_vec();
    swapped.extend_from_slice(&sealed[s[1].clone()]);
    swapped.extend_from_slice(&sealed[s[0].clone()]);
    swapped.extend_from_slice(&sealed[s[2].clone()]);
    assert_eq!(swapped.len(), sealed.len());
    assert!(matches!(
        open_segmented(&k, &swapped, SEG_AAD).unwrap_err(),
        CryptoError::DecryptionFailed
    ));
    let opener = SegmentOpener::new(&k, &sealed, SEG_AAD).unwrap();
    assert!(opener.open_segment(0, &sealed[s[1].clone()]).is_err());
}

#[test]
fn segments_and_headers_cannot_move_between_blobs() {
    let k = key();
    let plain = blob_content(600);
    // Same key, same AAD, same plaintext, same layout.
    let a = seal_segmented(&k, &plain, SEG_AAD, 200).unwrap();
    let b = seal_segmented(&k, &plain, SEG_AAD, 200).unwrap();
    let s = segments_of(&a);
    let mut mixed = a.clone();
    mixed[s[1].clone()].copy_from_slice(&b[s[1].clone()]);
    assert!(open_segmented(&k, &mixed, SEG_AAD).is_err());
    let mut header_swapped = b[..40].to_vec();
    header_swapped.extend_from_slice(&a[40..]);
    assert!(open_segmented(&k, &header_swapped, SEG_AAD).is_err());
}

#[test]
fn segmented_blob_needs_the_same_key_and_aad() {
    let k = key();
    let sealed = seal_segmented(&k, b"scan.pdf contents", SEG_AAD, 1024).unwrap();
    assert!(matches!(
        open_segmented(&key(), &sealed, SEG_AAD).unwrap_err(),
        CryptoError::DecryptionFailed
    ));
    assert!(matches!(
        open_segmented(&k, &sealed, b"blob:org-2:5f2c").unwrap_err(),
        CryptoError::DecryptionFailed
    ));
    assert!(open_segmented(&k, &sealed, b"").is_err());
    let empty = seal_segmented(&k, b"", SEG_AAD, 1024).unwrap();
    assert_eq!(empty.len(), 56);
    assert!(open_segmented(&key(), &empty, SEG_AAD).is_err());
    assert!(open_segmented(&k, &empty, b"other").is_err());
    // Neither whole-blob format is accepted as the other.
    assert!(k.open_bytes(&sealed, SEG_AAD).is_err());
    let clb1 = k.seal_bytes(b"scan.pdf contents", SEG_AAD).unwrap();
    assert!(open_segmented(&k, &clb1, SEG_AAD).is_err());
}

#[test]
fn sealer_enforces_the_layout() {
    let k = key();
    let mut sealer = SegmentSealer::with_segment_size(&k, SEG_AAD, 150, 100).unwrap();
    assert_eq!(sealer.next_len(), Some(100));
    assert!(matches!(
        sealer.seal_segment(&[0u8; 99]),
        Err(CryptoError::SegmentMisuse(_))
    ));
    sealer.seal_segment(&[0u8; 100]).unwrap();
    assert_eq!(sealer.next_len(), Some(50));
    assert!(sealer.seal_segment(&[0u8; 100]).is_err());
    sealer.seal_segment(&[0u8; 50]).unwrap();
    assert!(sealer.is_finished());
    assert_eq!(sealer.next_len(), None);
    assert!(matches!(
        sealer.seal_segment(&[]),
        Err(CryptoError::SegmentMisuse(_))
    ));
    assert!(SegmentSealer::with_segment_size(&k, SEG_AAD, 1, 0).is_err());
    assert!(!format!("{sealer:?}").contains("key"));
}

// ---- properties ----

proptest! {
    #[test]
    fn open_of_seal_is_identity(
        plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
        aad in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let k = key();
        let sealed = k.seal(&plaintext, &aad).unwrap();
        prop_assert!(is_sealed(&sealed));
        prop_assert_eq!(k.open(&sealed, &aad).unwrap(), plaintext.clone());
        let blob = k.seal_bytes(&plaintext, &aad).unwrap();
        prop_assert_eq!(k.open_bytes(&blob, &aad).unwrap(), plaintext);
    }

    #[test]
    fn open_never_panics_on_arbitrary_input(s in "clx1:[A-Za-z0-9+/=]{0,80}", b in proptest::collection::vec(any::<u8>(), 0..80)) {
        let k = key();
        prop_assert!(k.open(&s, b"").is_err());
        prop_assert!(k.open_bytes(&b, b"").is_err());
        prop_assert!(master().unwrap(&s).is_err());
    }

    #[test]
    fn range_decrypt_equals_slice_of_plaintext(
        plain in proptest::collection::vec(any::<u8>(), 1..3000),
        segment_size in 1u32..400,
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        let k = key();
        let sealed = seal_segmented(&k, &plain, SEG_AAD, segment_size).unwrap();
        let (x, y) = (a.index(plain.len() + 1), b.index(plain.len() + 1));
        let range = x.min(y)..x.max(y);
        prop_assume!(!range.is_empty());
        let got = open_range(&k, &sealed, SEG_AAD, range.start as u64..range.end as u64).unwrap();
        prop_assert_eq!(&got[..], &plain[range]);
    }

    #[test]
    fn segmented_open_never_panics_on_arbitrary_input(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let k = key();
        prop_assert!(open_segmented(&k, &b, b"").is_err());
        let mut with_magic = b"CLS1\x01".to_vec();
        with_magic.extend(&b);
        prop_assert!(open_segmented(&k, &with_magic, b"").is_err());
    }
}
