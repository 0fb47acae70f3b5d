//! The store conformance suite: every core behaviour, written once, run on the in-memory store,
//! a local directory and an S3-compatible server (moto on loopback in CI).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use pail_core::storage::faults::{Fault, Faults, Op, Rule};
use pail_core::storage::keys;
use pail_core::{
    AppendOptions, ErrorKind, FetchLimits, Header, OffsetSpec, Pail, Record, TimestampType,
    TopicConfig, TopicName,
};
use pail_tests::{Backend, TestStore, assert_contiguous, on_every_store, read_all};
use std::collections::HashMap;
use std::time::Duration;

on_every_store!(
    topics_are_created_listed_and_described,
    records_round_trip_byte_exact,
    fetch_honours_offsets_and_limits,
    log_append_time_stamps_the_commit,
    bad_requests_get_clear_errors,
    racing_writers_get_contiguous_unique_offsets,
    crash_before_the_commit_leaves_nothing_visible,
    crash_after_the_commit_before_the_ack_keeps_the_record_once,
    lost_answer_is_resolved_by_reading_back,
    failed_creates_are_retried_then_reported_unknown,
    idempotent_retry_returns_the_original_offsets,
    corrupt_objects_are_reported_and_contained,
    fetch_reads_only_the_rows_it_needs,
    cold_start_cost_does_not_grow_with_the_log,
    describe_counts_match_the_store,
);

async fn setup(b: Backend, partitions: u32) -> Option<(TestStore, Pail, String)> {
    let ts = TestStore::new(b).await?;
    let pail = ts.client();
    let topic = pail_tests::unique("topic-");
    pail.create_topic(&topic, TopicConfig::new(partitions))
        .await
        .unwrap();
    Some((ts, pail, topic))
}

fn values(n: usize, tag: &str) -> Vec<Record> {
    (0..n)
        .map(|i| Record::from_value(format!("{tag}-{i}")))
        .collect()
}

async fn topics_are_created_listed_and_described(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    assert!(pail.list_topics().await.unwrap().is_empty());
    pail.create_topic("b.topic", TopicConfig::new(3))
        .await
        .unwrap();
    pail.create_topic("a_topic", TopicConfig::new(1))
        .await
        .unwrap();
    let err = pail
        .create_topic("a_topic", TopicConfig::new(5))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    // A second client sees the same topics; the first descriptor won.
    let other = ts.client();
    let names: Vec<String> = other
        .list_topics()
        .await
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(names, vec!["a_topic", "b.topic"]);
    let d = other.describe_topic("a_topic").await.unwrap();
    assert_eq!(d.config.partitions, 1);
    let d = other.describe_topic("b.topic").await.unwrap();
    assert_eq!(d.partitions.len(), 3);
    assert!(
        d.partitions
            .iter()
            .all(|p| p.next_offset == 0 && p.segments == 0 && p.bytes == 0)
    );
}

async fn records_round_trip_byte_exact(b: Backend) {
    let Some((_ts, pail, topic)) = setup(b, 2).await else {
        return;
    };
    let records = vec![
        Record {
            key: Some(Bytes::from_static(b"\x00\xffkey")),
            value: Some(Bytes::from_static(b"v\x00\x01")),
            headers: vec![
                Header {
                    key: "trace".into(),
                    value: Some(Bytes::from_static(b"\xde\xad")),
                },
                Header {
                    key: "empty".into(),
                    value: None,
                },
            ],
            timestamp_ms: Some(1_600_000_000_123),
        },
        Record::default(),
        Record::keyed("", ""),
    ];
    let at = pail.append(&topic, 1, records.clone()).await.unwrap();
    assert_eq!(
        (at.base_offset, at.last_offset, at.duplicate),
        (0, 2, false)
    );
    let got = read_all(&ts_client(&pail), &topic, 1).await;
    assert_eq!(got.len(), 3);
    for (r, want) in got.iter().zip(&records) {
        assert_eq!(
            (&r.key, &r.value, &r.headers),
            (&want.key, &want.value, &want.headers)
        );
    }
    assert_eq!(got[0].timestamp_ms, 1_600_000_000_123);
    assert!(
        got[1].timestamp_ms > 1_600_000_000_123,
        "no timestamp given: the producer's clock stands in"
    );
    assert!(
        read_all(&pail, &topic, 0).await.is_empty(),
        "partitions are independent"
    );
}

/// A fresh client on the same store, so reads prove what is stored, not what is cached.
fn ts_client(pail: &Pail) -> Pail {
    Pail::new(pail.store().clone())
}

async fn fetch_honours_offsets_and_limits(b: Backend) {
    let Some((_ts, pail, topic)) = setup(b, 1).await else {
        return;
    };
    for batch in 0..5 {
        pail.append(&topic, 0, values(20, &format!("b{batch}")))
            .await
            .unwrap();
    }
    let reader = ts_client(&pail);
    let limits = |n| FetchLimits {
        max_records: n,
        max_bytes: 1 << 20,
    };
    let got = reader
        .fetch(&topic, 0, OffsetSpec::At(37), limits(30))
        .await
        .unwrap();
    assert_eq!(got.records.first().unwrap().offset, 37);
    assert_eq!(got.records.len(), 30, "a fetch spans segments");
    assert_contiguous(&got.records, 37);
    assert_eq!(
        (got.next_offset, got.high_watermark, got.log_start_offset),
        (67, 100, 0)
    );
    assert_eq!(got.records[0].value.as_deref(), Some(&b"b1-17"[..]));
    let latest = reader
        .fetch(&topic, 0, OffsetSpec::Latest, limits(10))
        .await
        .unwrap();
    assert!(latest.records.is_empty());
    assert_eq!(latest.next_offset, 100);
    let at_end = reader
        .fetch(&topic, 0, OffsetSpec::At(100), limits(10))
        .await
        .unwrap();
    assert!(at_end.records.is_empty());
    // max_bytes: the first values are 4 bytes; 11 bytes allow two, and at least one always
    // comes back.
    let bytes = |n| FetchLimits {
        max_records: 100,
        max_bytes: n,
    };
    assert_eq!(
        reader
            .fetch(&topic, 0, OffsetSpec::At(0), bytes(11))
            .await
            .unwrap()
            .records
            .len(),
        2
    );
    assert_eq!(
        reader
            .fetch(&topic, 0, OffsetSpec::At(0), bytes(1))
            .await
            .unwrap()
            .records
            .len(),
        1
    );
    let all = read_all(&reader, &topic, 0).await;
    assert_eq!(all.len(), 100);
    assert_contiguous(&all, 0);
}

async fn log_append_time_stamps_the_commit(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    let config = TopicConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..TopicConfig::new(1)
    };
    pail.create_topic("lat", config).await.unwrap();
    let mut r = Record::from_value("x");
    r.timestamp_ms = Some(5);
    pail.append("lat", 0, vec![r.clone(), r]).await.unwrap();
    let got = read_all(&pail, "lat", 0).await;
    assert!(
        got.iter().all(|r| r.timestamp_ms > 1_600_000_000_000),
        "client timestamps are replaced"
    );
    assert_eq!(
        got[0].timestamp_ms, got[1].timestamp_ms,
        "one commit, one time"
    );
}

async fn bad_requests_get_clear_errors(b: Backend) {
    let Some((_ts, pail, topic)) = setup(b, 2).await else {
        return;
    };
    pail.append(&topic, 0, values(3, "x")).await.unwrap();
    let kind = |r: pail_core::Result<_>| r.map(|_: ()| ()).unwrap_err().kind();
    for bad in ["../x", "a/b", "", &"x".repeat(250)] {
        let err = pail
            .create_topic(bad, TopicConfig::new(1))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}: {err}");
    }
    assert_eq!(
        kind(
            pail.create_topic("zero", TopicConfig::new(0))
                .await
                .map(|_| ())
        ),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(
            pail.create_topic("many", TopicConfig::new(10_001))
                .await
                .map(|_| ())
        ),
        ErrorKind::InvalidInput
    );
    let err = pail.append("nope", 0, values(1, "x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("unknown topic \"nope\""), "{err}");
    let err = pail.append(&topic, 2, values(1, "x")).await.unwrap_err();
    assert!(err.to_string().contains("it has 2 partitions"), "{err}");
    let err = pail.append(&topic, 0, vec![]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = pail
        .append(&topic, 0, vec![Record::default(); 100_001])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("batch has 100001 records, over the limit of 100000"),
        "{err}"
    );
    let big = Record::from_value(vec![0u8; 1024 * 1024 + 1]);
    let err = pail.append(&topic, 0, vec![big]).await.unwrap_err();
    assert!(
        err.to_string().contains("over the limit of 1048576 bytes"),
        "{err}"
    );
    let limits = FetchLimits::default();
    for offset in [-1, 4, i64::MAX] {
        let err = pail
            .fetch(&topic, 0, OffsetSpec::At(offset), limits)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OffsetOutOfRange);
        assert!(err.to_string().contains("valid offsets are 0..=3"), "{err}");
    }
    let zero = FetchLimits {
        max_records: 0,
        ..limits
    };
    assert_eq!(
        pail.fetch(&topic, 0, OffsetSpec::Earliest, zero)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    // Nothing above damaged the log.
    assert_eq!(read_all(&pail, &topic, 0).await.len(), 3);
}

/// 16 writers, each its own client (as separate Lambda invocations would be), race on one
/// partition. Every acknowledged record must appear exactly once, at the offset it was given.
async fn racing_writers_get_contiguous_unique_offsets(b: Backend) {
    let Some((ts, pail, topic)) = setup(b, 1).await else {
        return;
    };
    let writers = 16;
    let batches = if b == Backend::S3 { 4 } else { 8 };
    let mut tasks = Vec::new();
    for w in 0..writers {
        let client = ts.client();
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..batches {
                let records = values(3, &format!("w{w}-b{i}"));
                let at = client.append(&topic, 0, records.clone()).await.unwrap();
                for (j, r) in records.into_iter().enumerate() {
                    acked.push((at.base_offset + j as u64, r.value.unwrap()));
                }
            }
            acked
        }));
    }
    let mut acked: HashMap<u64, Bytes> = HashMap::new();
    for t in tasks {
        for (offset, value) in t.await.unwrap() {
            assert!(
                acked.insert(offset, value).is_none(),
                "offset {offset} acknowledged twice"
            );
        }
    }
    let log = read_all(&ts_client(&pail), &topic, 0).await;
    assert_eq!(log.len(), writers * batches * 3);
    assert_contiguous(&log, 0);
    for r in &log {
        assert_eq!(
            acked.get(&r.offset),
            r.value.as_ref(),
            "record at {} is not what was acknowledged there",
            r.offset
        );
    }
}

fn segment_prefix(topic: &str, partition: u32) -> String {
    keys::partition_dir(&TopicName::new(topic).unwrap(), partition).to_string()
}

/// Runs `append` on a task until it is stuck in the hang `faults` put it in, then kills the
/// task: a writer that crashed at exactly that point. Fails if the append ends first (the fault
/// never fired).
async fn crash_at_the_hang<T: Send + 'static>(
    faults: &Faults,
    append: impl Future<Output = T> + Send + 'static,
) {
    // Only a guard against a hang elsewhere: the wait ends at the fault's event.
    const POLLS_MAX: u32 = 12_000;
    let task = tokio::spawn(append);
    for _ in 0..POLLS_MAX {
        if faults.hung() > 0 {
            task.abort();
            assert!(task.await.is_err_and(|e| e.is_cancelled()));
            return;
        }
        assert!(
            !task.is_finished(),
            "the append ended without reaching the fault"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the append never reached the fault");
}

async fn crash_before_the_commit_leaves_nothing_visible(b: Backend) {
    let Some((ts, pail, topic)) = setup(b, 1).await else {
        return;
    };
    pail.append(&topic, 0, values(2, "before")).await.unwrap();
    let (store, faults) = ts.faulty(1);
    faults.add(
        Rule::always(
            Op::Put,
            segment_prefix(&topic, 0),
            Fault::Hang { landed: false },
        )
        .times(1),
    );
    let doomed = Pail::new(store);
    let t = topic.clone();
    crash_at_the_hang(&faults, async move {
        doomed.append(&t, 0, values(2, "lost")).await
    })
    .await;
    let fresh = ts_client(&pail);
    let log = read_all(&fresh, &topic, 0).await;
    assert_eq!(log.len(), 2, "nothing uncommitted is visible");
    let at = fresh.append(&topic, 0, values(1, "after")).await.unwrap();
    assert_eq!(at.base_offset, 2, "the next commit takes the next offset");
    let listed = ts
        .store
        .list_after(
            &keys::partition_dir(&TopicName::new(&topic).unwrap(), 0),
            None,
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "no orphan objects in the segment folder");
}

async fn crash_after_the_commit_before_the_ack_keeps_the_record_once(b: Backend) {
    let Some((ts, pail, topic)) = setup(b, 1).await else {
        return;
    };
    let (store, faults) = ts.faulty(2);
    faults.add(
        Rule::always(
            Op::Put,
            segment_prefix(&topic, 0),
            Fault::Hang { landed: true },
        )
        .times(1),
    );
    let doomed = Pail::new(store);
    let t = topic.clone();
    crash_at_the_hang(&faults, async move {
        doomed.append(&t, 0, values(3, "c")).await
    })
    .await;
    let log = read_all(&ts_client(&pail), &topic, 0).await;
    assert_eq!(
        log.len(),
        3,
        "the committed batch is there once, though never acknowledged"
    );
    assert_contiguous(&log, 0);
    let at = pail.append(&topic, 0, values(1, "d")).await.unwrap();
    assert_eq!(at.base_offset, 3);
}

async fn lost_answer_is_resolved_by_reading_back(b: Backend) {
    let Some((ts, _pail, topic)) = setup(b, 1).await else {
        return;
    };
    let (store, faults) = ts.faulty(3);
    faults.add(Rule::always(Op::Put, segment_prefix(&topic, 0), Fault::LostAnswer).times(1));
    let client = Pail::new(store);
    let at = client.append(&topic, 0, values(4, "x")).await.unwrap();
    assert_eq!(
        (at.base_offset, at.last_offset, at.duplicate),
        (0, 3, false)
    );
    assert_eq!(faults.injected(), 1);
    let log = read_all(&ts.client(), &topic, 0).await;
    assert_eq!(log.len(), 4, "one commit, not two");
}

async fn failed_creates_are_retried_then_reported_unknown(b: Backend) {
    let Some((ts, _pail, topic)) = setup(b, 1).await else {
        return;
    };
    let (store, faults) = ts.faulty(4);
    faults.add(Rule::always(Op::Put, segment_prefix(&topic, 0), Fault::SlowDown).times(2));
    let client = Pail::new(store);
    let at = client.append(&topic, 0, values(1, "x")).await.unwrap();
    assert_eq!(
        at.base_offset, 0,
        "transient failures that never landed are retried"
    );
    faults.add(Rule::always(
        Op::Put,
        segment_prefix(&topic, 0),
        Fault::Error,
    ));
    faults.add(Rule::always(
        Op::Get,
        segment_prefix(&topic, 0),
        Fault::Error,
    ));
    let err = client.append(&topic, 0, values(1, "y")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    faults.clear();
    assert_eq!(read_all(&ts.client(), &topic, 0).await.len(), 1);
}

async fn idempotent_retry_returns_the_original_offsets(b: Backend) {
    let Some((_ts, pail, topic)) = setup(b, 1).await else {
        return;
    };
    let tag = |seq| AppendOptions {
        producer: Some(pail_core::manifest::ProducerBatch {
            producer_id: "prod-1".into(),
            first_sequence: seq,
        }),
        leader: None,
        ..AppendOptions::default()
    };
    let first = pail
        .append_with(&topic, 0, values(5, "a"), tag(0))
        .await
        .unwrap();
    pail.append(&topic, 0, values(2, "other")).await.unwrap();
    // The same batch again, from a client with no cached state (a retried Lambda, say).
    let retry = ts_client(&pail)
        .append_with(&topic, 0, values(5, "a"), tag(0))
        .await
        .unwrap();
    assert_eq!(
        (retry.base_offset, retry.last_offset, retry.duplicate),
        (first.base_offset, first.last_offset, true)
    );
    let next = pail
        .append_with(&topic, 0, values(1, "b"), tag(5))
        .await
        .unwrap();
    assert_eq!(next.base_offset, 7);
    let gap = pail
        .append_with(&topic, 0, values(1, "c"), tag(9))
        .await
        .unwrap_err();
    assert!(
        gap.to_string().contains("producer prod-1")
            && gap.to_string().contains("expected sequence 6"),
        "{gap}"
    );
    assert_eq!(read_all(&pail, &topic, 0).await.len(), 8);
}

async fn corrupt_objects_are_reported_and_contained(b: Backend) {
    let Some((ts, pail, topic)) = setup(b, 2).await else {
        return;
    };
    pail.append(&topic, 0, values(2, "x")).await.unwrap();
    pail.append(&topic, 1, values(2, "y")).await.unwrap();
    let name = TopicName::new(&topic).unwrap();
    // Garbage where partition 0's next version would go.
    let next = keys::segment(&name, 0, 2, 2);
    ts.store
        .object_store()
        .put(&next, Bytes::from_static(b"not parquet").into())
        .await
        .unwrap();
    let fresh = ts_client(&pail);
    let err = fresh.append(&topic, 0, values(1, "z")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(
        err.to_string().contains(next.as_ref()) && err.to_string().contains("pail doctor"),
        "the error names the object and the way out: {err}"
    );
    // Reads below the damage keep working, from a client that knew nothing of it...
    for reader in [ts_client(&pail), fresh.clone()] {
        let got = reader
            .fetch(&topic, 0, OffsetSpec::Earliest, FetchLimits::default())
            .await
            .unwrap();
        assert_eq!(
            got.records.len(),
            2,
            "the healthy records before the damage"
        );
        // ...and the damage is reported where it is.
        let err = reader
            .fetch(&topic, 0, OffsetSpec::At(2), FetchLimits::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.to_string().contains(next.as_ref()), "{err}");
    }
    let described = ts_client(&pail).describe_topic(&topic).await.unwrap();
    assert_eq!(described.partitions[0].next_offset, 2);
    assert!(
        described.partitions[0]
            .blocked
            .as_deref()
            .is_some_and(|b| b.contains(next.as_ref())),
        "describe names what blocks the partition: {described:?}"
    );
    // The other partition is untouched and still writable.
    assert_eq!(
        fresh
            .append(&topic, 1, values(1, "w"))
            .await
            .unwrap()
            .base_offset,
        2
    );
    // A valid segment copied to another partition's next key is not data there.
    let foreign = ts
        .store
        .get(&keys::segment(&name, 1, 0, 1))
        .await
        .unwrap()
        .unwrap();
    let misplaced = keys::segment(&name, 1, 3, 3);
    ts.store
        .object_store()
        .put(&misplaced, foreign.into())
        .await
        .unwrap();
    let err = ts_client(&pail)
        .append(&topic, 1, values(1, "v"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("found at this key"), "{err}");
    // A damaged topic descriptor is corruption too, for that topic only.
    ts.store
        .object_store()
        .put(
            &keys::topic_descriptor(&name),
            Bytes::from_static(b"{\"format\": 7}").into(),
        )
        .await
        .unwrap();
    let err = ts_client(&pail).describe_topic(&topic).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

use object_store::ObjectStoreExt;

async fn fetch_reads_only_the_rows_it_needs(b: Backend) {
    let Some((ts, pail, topic)) = setup(b, 1).await else {
        return;
    };
    // Incompressible values, so the segment is as large on the store as in memory.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    };
    let big: Vec<Record> = (0..4000)
        .map(|_| Record::from_value((0..1024).map(|_| noise()).collect::<Vec<u8>>()))
        .collect();
    pail.append(&topic, 0, big).await.unwrap();
    let segment_bytes = pail.describe_topic(&topic).await.unwrap().partitions[0].bytes;
    let (store, counts) = ts.metered();
    let reader = Pail::new(store);
    let limits = FetchLimits {
        max_records: 10,
        max_bytes: 1 << 20,
    };
    let got = reader
        .fetch(&topic, 0, OffsetSpec::At(2000), limits)
        .await
        .unwrap();
    assert_eq!(got.records.len(), 10);
    assert_contiguous(&got.records, 2000);
    let read = counts.snapshot().get_bytes;
    assert!(
        read * 4 < segment_bytes,
        "read {read} bytes of a {segment_bytes}-byte segment for 10 records"
    );
}

async fn cold_start_cost_does_not_grow_with_the_log(b: Backend) {
    let Some((ts, pail, topic)) = setup(b, 1).await else {
        return;
    };
    let commits = if b == Backend::S3 { 70 } else { 200 };
    for i in 0..commits {
        pail.append(&topic, 0, values(1, &format!("{i}")))
            .await
            .unwrap();
    }
    let (store, counts) = ts.metered();
    let cold = Pail::new(store);
    cold.topic(&topic).await.unwrap();
    let before = counts.snapshot();
    let tip = cold.partition_tip(&topic, 0).await.unwrap();
    assert_eq!(tip.state.next_offset, commits as u64);
    let cost = counts.snapshot().since(&before);
    assert!(
        cost.gets <= 2 && cost.lists <= 1,
        "cold tip discovery cost {cost:?}"
    );
    // Warm: one probe per look.
    let before = counts.snapshot();
    cold.partition_tip(&topic, 0).await.unwrap();
    let cost = counts.snapshot().since(&before);
    assert_eq!((cost.gets, cost.lists, cost.puts), (1, 0, 0));
    // A consumer polling at the end, from "latest" or from its offset: one probe, not two.
    for from in [OffsetSpec::Latest, OffsetSpec::At(commits as i64)] {
        let before = counts.snapshot();
        let got = cold
            .fetch(&topic, 0, from, FetchLimits::default())
            .await
            .unwrap();
        assert!(got.records.is_empty());
        let cost = counts.snapshot().since(&before);
        assert_eq!((cost.gets, cost.lists), (1, 0), "{from:?}: {cost:?}");
    }
    // One object written per commit, and nothing else.
    let before = counts.snapshot();
    cold.append(&topic, 0, values(5, "w")).await.unwrap();
    let cost = counts.snapshot().since(&before);
    assert_eq!((cost.puts, cost.lists), (1, 0), "{cost:?}");
}

async fn describe_counts_match_the_store(b: Backend) {
    let Some((ts, pail, topic)) = setup(b, 2).await else {
        return;
    };
    for i in 0..7 {
        pail.append(&topic, i % 2, values(3 + i as usize, "v"))
            .await
            .unwrap();
    }
    let d = ts_client(&pail).describe_topic(&topic).await.unwrap();
    for p in &d.partitions {
        let dir = keys::partition_dir(&TopicName::new(&topic).unwrap(), p.partition);
        let listed = ts.store.list_after(&dir, None).await.unwrap();
        assert_eq!(p.segments, listed.len() as u64);
        assert_eq!(p.bytes, listed.iter().map(|m| m.size).sum::<u64>());
    }
    assert_eq!(d.partitions[0].next_offset, 3 + 5 + 7 + 9);
    assert_eq!(d.partitions[1].next_offset, 4 + 6 + 8);
}
