//! Lookup by time (issue 12): the first offset whose timestamp is at or after T, exactly as a
//! brute-force scan over the records kept says, with CreateTime timestamps out of order, and
//! still after compaction merged segments and retention dropped some.
#![allow(clippy::unwrap_used)]

use pail_core::maintain::MaintainOptions;
use pail_core::{Pail, Record, StoredRecord, TimeMatch, TopicConfig};
use pail_tests::{Backend, TestStore, on_every_store, read_all};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::BTreeSet;

on_every_store!(lookup_by_time_matches_a_brute_force_scan);

/// Kafka's definition, by brute force: the smallest offset whose timestamp is `>= t`.
fn brute_force(records: &[StoredRecord], t: i64) -> Option<TimeMatch> {
    records
        .iter()
        .find(|r| r.timestamp_ms >= t)
        .map(|r| TimeMatch {
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
        })
}

/// Every timestamp kept, one either side, and beyond both ends.
fn probes(records: &[StoredRecord]) -> BTreeSet<i64> {
    let mut out = BTreeSet::from([i64::MIN, 0, i64::MAX]);
    for r in records {
        out.extend([r.timestamp_ms - 1, r.timestamp_ms, r.timestamp_ms + 1]);
    }
    out
}

async fn check_against_scan(pail: &Pail, topic: &str, stage: &str) {
    let records = read_all(pail, topic, 0).await;
    for t in probes(&records) {
        let got = pail.offset_for_time(topic, 0, t).await.unwrap();
        assert_eq!(got, brute_force(&records, t), "{stage}: T = {t}");
    }
}

/// A first segment of 10 records stamped far in the future, then 40 small segments whose
/// CreateTime timestamps jitter backwards and forwards around a rising clock, so a segment's
/// own maximum can exceed a later one's, and every later segment's is below the first's.
async fn produce_out_of_order(pail: &Pail, topic: &str) {
    let future = (0..10)
        .map(|i| Record {
            timestamp_ms: Some(9_000_000 + i),
            ..Record::from_value(format!("future-{i}"))
        })
        .collect();
    pail.append(topic, 0, future).await.unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    for seg in 0..40i64 {
        let n = rng.random_range(1..5);
        let records = (0..n)
            .map(|i| Record {
                timestamp_ms: Some(1_000_000 + seg * 100 + rng.random_range(-450..450)),
                ..Record::from_value(format!("{seg}-{i}"))
            })
            .collect();
        pail.append(topic, 0, records).await.unwrap();
    }
}

async fn lookup_by_time_matches_a_brute_force_scan(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    let topic = pail_tests::unique("time-");
    pail.create_topic(&topic, TopicConfig::new(1))
        .await
        .unwrap();
    assert_eq!(pail.offset_for_time(&topic, 0, 0).await.unwrap(), None);
    produce_out_of_order(&pail, &topic).await;
    check_against_scan(&pail, &topic, "as produced").await;

    // Runs are cut at 8 records, so the 10-record first segment stays as it is and the merged
    // segments after it must still say that the partition's running maximum is its 9,000,000.
    let compact = [
        ("compact.min.segments".to_string(), "4".to_string()),
        ("compact.target.records".to_string(), "8".to_string()),
    ];
    pail.alter_topic(&topic, &compact, None).await.unwrap();
    let now = MaintainOptions {
        grace_ms: 0,
        ..MaintainOptions::default()
    };
    let report = pail.maintain(Some(&topic), now).await.unwrap();
    assert!(
        !report[0].merged.is_empty(),
        "compaction merged: {report:?}"
    );
    check_against_scan(&Pail::new(ts.store.clone()), &topic, "compacted").await;

    // Keep about the newest half by bytes: the record that raised the running maximum may go.
    let total = pail.describe_topic(&topic).await.unwrap().partitions[0].bytes;
    let keep = [("retention.bytes".to_string(), (total / 2).to_string())];
    pail.alter_topic(&topic, &keep, None).await.unwrap();
    let report = pail.maintain(Some(&topic), now).await.unwrap();
    assert!(
        report[0].dropped_segments > 0,
        "retention dropped: {report:?}"
    );
    check_against_scan(&Pail::new(ts.store.clone()), &topic, "after retention").await;
}
