//! Malformed input must give an error, never a panic or a hang.

use careline_attach::{Kind, Sniffer, strip_metadata};
use proptest::prelude::*;
use tempfile::TempDir;

use crate::samples;

fn kinds() -> impl Strategy<Value = Kind> {
    prop::sample::select(Kind::ALL.to_vec())
}

fn valid_sample(kind: Kind) -> Vec<u8> {
    match kind {
        Kind::Jpeg => samples::jpeg_with_metadata().bytes,
        Kind::Png => samples::png_with_metadata(),
        Kind::Heic => samples::heic_with_metadata(false).bytes,
        Kind::Webp => samples::webp_with_metadata(),
        Kind::Pdf => samples::pdf(),
        Kind::Text => samples::SPANISH_TEXT.as_bytes().to_vec(),
    }
}

fn run(kind: Kind, bytes: &[u8]) {
    let dir = TempDir::new().unwrap();
    let src = samples::write(&dir, "in", bytes);
    let dst = dir.path().join("out");
    if let Ok(report) = strip_metadata(kind, &src, &dst) {
        let out = std::fs::metadata(&dst).unwrap().len();
        // Stripping never grows a file (WebP may add one missing pad byte).
        assert!(
            out <= bytes.len() as u64 + 1,
            "{kind:?}: {out} > {}",
            bytes.len()
        );
        assert!(report.removed.len() <= 12);
    }
    let mut sniffer = Sniffer::new();
    sniffer.update(bytes);
    let _ = sniffer.finish();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_bytes_never_panic(kind in kinds(), bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        run(kind, &bytes);
    }

    #[test]
    fn random_bytes_after_a_valid_signature_never_panic(
        kind in kinds(),
        tail in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let sample = valid_sample(kind);
        let mut bytes = sample[..sample.len().min(16)].to_vec();
        bytes.extend(tail);
        run(kind, &bytes);
    }

    #[test]
    fn damaged_samples_never_panic(
        kind in kinds(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        let mut bytes = valid_sample(kind);
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let keep = cut.index(bytes.len() + 1);
        bytes.truncate(keep);
        run(kind, &bytes);
    }
}
