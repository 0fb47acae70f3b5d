//! Arbitrary and damaged bytes where pail expects its own objects: every decoder must return an
//! error, never panic (the same entry points the cargo-fuzz targets in `core/fuzz` drive).
#![allow(clippy::unwrap_used)]

use pail_core::fuzzing;
use pail_core::manifest::{AppendEdit, Applied, CommitContext, Edit, PartitionManifest, apply};
use pail_core::segment::encode;
use pail_core::{ErrorKind, Header, Record};
use proptest::prelude::*;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// pail contains a panic of the Parquet decoder and reports corruption, so a panic would not
/// fail these tests by itself. This hook counts every panic outside that containment (a bug in
/// pail, or a decoder panic pail failed to contain) and each test asserts there were none.
/// Contained decoder panics are counted apart: the parquet crate has some (docs/bad-inputs.md).
static PANICS: AtomicUsize = AtomicUsize::new(0);
static CONTAINED: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if pail_core::segment::panic_is_contained() {
                CONTAINED.fetch_add(1, Ordering::SeqCst);
            } else {
                PANICS.fetch_add(1, Ordering::SeqCst);
                default(info);
            }
        }));
    });
}

fn assert_no_panics() {
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "a decoder panicked (see the message above)"
    );
}

fn valid_segment() -> Vec<u8> {
    let mut prev = PartitionManifest::genesis("t", 0);
    prev.next_offset = 40;
    let ctx = CommitContext {
        digest: "d",
        writer: "w",
        commit_id: "c",
        now_ms: 1,
        prev_size: 0,
    };
    let edit = Edit::Append(AppendEdit {
        key: None,
        topic_id: String::new(),
        min_timestamp_ms: 0,
        max_timestamp_ms: 0,
        record_count: 30,
        leader: None,
        producer: None,
    });
    let Applied::Next(m) = apply(&prev, &edit, &ctx).unwrap() else {
        unreachable!()
    };
    let records: Vec<Record> = (0..30)
        .map(|i| Record {
            key: (i % 2 == 0).then(|| format!("k{i}").into()),
            value: Some(vec![i as u8; i * 7].into()),
            headers: vec![Header {
                key: "h".into(),
                value: Some(vec![1, 2, 3].into()),
            }],
            timestamp_ms: Some(i as i64),
        })
        .collect();
    let ts: Vec<i64> = (0..30).collect();
    encode(&records, &ts, &m).unwrap().to_vec()
}

fn valid_manifest() -> Vec<u8> {
    PartitionManifest::genesis("t", 0)
        .encode()
        .unwrap()
        .into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        count_panics();
                fuzzing::manifest(&data);
        fuzzing::topic_descriptor(&data);
        fuzzing::segment(&data);
        assert_no_panics();
    }

    /// A real segment with bytes flipped anywhere (data pages, page index, footer, metadata).
    #[test]
    fn damaged_segments_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        count_panics();
        let mut data = valid_segment();
        for (at, byte) in flips {
            let i = at.index(data.len());
            data[i] ^= byte | 1;
        }
        fuzzing::segment(&data);
        assert_no_panics();
    }

    /// A real segment cut short or with garbage appended.
    #[test]
    fn truncated_or_extended_segments_never_panic(cut in any::<prop::sample::Index>(), extra in proptest::collection::vec(any::<u8>(), 0..64)) {
        count_panics();
        let mut data = valid_segment();
        data.truncate(cut.index(data.len()));
                data.extend_from_slice(&extra);
        fuzzing::segment(&data);
        assert_no_panics();
    }

    #[test]
    fn damaged_manifests_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        count_panics();
        let mut data = valid_manifest();
        for (at, byte) in flips {
            let i = at.index(data.len());
                        data[i] = byte;
        }
        fuzzing::manifest(&data);
        assert_no_panics();
    }
}

/// Inputs the fuzzer found, kept as regression tests.
#[test]
fn fuzzer_findings_stay_fixed() {
    count_panics();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let got = fuzzing::segment(&data);
        assert_eq!(
            got,
            Some(ErrorKind::Corrupt),
            "{} must read as corrupt",
            path.display()
        );
        fuzzing::manifest(&data);
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
    assert_no_panics();
}
