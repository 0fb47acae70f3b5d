//! Retention, compaction, cleanup and topic deletion on every store (issue 12): exactly the
//! expired segments go, merged segments hold exactly what they replace, counters stay true,
//! a paused writer cannot resurrect what was deleted, and a deleted topic's writers never
//! write into its successor.
#![allow(clippy::unwrap_used)]

use pail_core::maintain::MaintainOptions;
use pail_core::producer::{Producer, ProducerConfig};
use pail_core::storage::keys;
use pail_core::{
    AppendOptions, ErrorKind, FetchLimits, ManualClock, OffsetSpec, Pail, PailOptions, Record,
    StoredRecord, TopicConfig, TopicName,
};
use pail_tests::{Backend, TestStore, on_every_store, read_all};
use std::sync::Arc;

on_every_store!(
    retention_by_age_drops_exactly_the_expired_segments,
    retention_by_bytes_keeps_the_newest,
    compaction_keeps_every_record_and_offset_with_far_fewer_objects,
    a_segment_that_fills_the_target_alone_does_not_stop_compaction,
    a_reader_during_compaction_sees_no_gap_or_duplicate,
    a_paused_writer_cannot_resurrect_deleted_segments,
    a_recreated_topic_never_takes_a_record_from_a_writer_of_the_old_one,
    two_passes_at_once_are_safe,
    settings_change_and_partitions_only_grow,
);

fn at(ts: &TestStore, clock: &ManualClock) -> Pail {
    Pail::with_options(
        ts.store.clone(),
        PailOptions {
            clock: Arc::new(clock.clone()),
            ..PailOptions::default()
        },
    )
}

async fn setup(ts: &TestStore, pail: &Pail, partitions: u32) -> String {
    let topic = pail_tests::unique("mnt-");
    pail.create_topic(&topic, TopicConfig::new(partitions))
        .await
        .unwrap();
    let _ = ts;
    topic
}

fn batch(tag: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record::from_value(format!("{tag}-{i}")))
        .collect()
}

/// Segment objects in a partition folder (chain versions and merged segments).
async fn objects(ts: &TestStore, topic: &str, p: u32) -> usize {
    let name = TopicName::new(topic).unwrap();
    ts.store
        .list_after(&keys::partition_dir(&name, p), None)
        .await
        .unwrap()
        .iter()
        .filter(|m| keys::parse_segment_object(&m.location).is_some())
        .count()
}

fn now_grace() -> MaintainOptions {
    MaintainOptions {
        grace_ms: 0,
        ..MaintainOptions::default()
    }
}

fn values(records: &[StoredRecord]) -> Vec<(u64, String)> {
    records
        .iter()
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap(),
            )
        })
        .collect()
}

async fn retention_by_age_drops_exactly_the_expired_segments(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let clock = ManualClock::new(1_000_000_000);
    let pail = at(&ts, &clock);
    let topic = setup(&ts, &pail, 1).await;
    for i in 0..5 {
        pail.append(&topic, 0, batch(&format!("s{i}"), 10))
            .await
            .unwrap();
        clock.advance_ms(60_000);
    }
    // Records of the first three segments are more than 150 s old now; the fourth's are 120 s.
    let setting = [("retention.ms".to_string(), "150000".to_string())];
    pail.alter_topic(&topic, &setting, None).await.unwrap();
    let fresh = at(&ts, &clock);
    let report = fresh.maintain(Some(&topic), now_grace()).await.unwrap();
    assert_eq!(report[0].dropped_segments, 3, "{report:?}");
    assert_eq!(report[0].log_start_offset, Some(30));
    let got = read_all(&fresh, &topic, 0).await;
    assert_eq!(got.first().map(|r| r.offset), Some(30));
    assert_eq!(got.len(), 20);
    let err = fresh
        .fetch(&topic, 0, OffsetSpec::At(5), FetchLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OffsetOutOfRange, "{err}");
    assert!(
        err.to_string().contains("30.."),
        "names the new start: {err}"
    );
    // The counters stay true: the live objects are what the store holds.
    let d = fresh.describe_topic(&topic).await.unwrap().partitions[0].clone();
    assert_eq!(d.log_start_offset, 30);
    assert_eq!(d.segments as usize, objects(&ts, &topic, 0).await, "{d:?}");
    // Offsets survive retention: the next record continues where the log ended.
    clock.advance_ms(10_000_000);
    fresh.maintain(Some(&topic), now_grace()).await.unwrap();
    let at_end = fresh.append(&topic, 0, batch("later", 1)).await.unwrap();
    assert_eq!(
        at_end.base_offset, 50,
        "an expired topic continues at its old next offset"
    );
}

async fn retention_by_bytes_keeps_the_newest(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    let topic = setup(&ts, &pail, 1).await;
    for i in 0..6 {
        pail.append(&topic, 0, batch(&format!("s{i}"), 20))
            .await
            .unwrap();
    }
    let d = pail.describe_topic(&topic).await.unwrap().partitions[0].clone();
    let per_segment = d.bytes / d.segments;
    let limit = per_segment * 2 + per_segment / 2;
    let setting = [("retention.bytes".to_string(), limit.to_string())];
    pail.alter_topic(&topic, &setting, None).await.unwrap();
    let report = ts
        .client()
        .maintain(Some(&topic), now_grace())
        .await
        .unwrap();
    let d = ts.client().describe_topic(&topic).await.unwrap().partitions[0].clone();
    assert!(d.bytes <= limit + per_segment, "{d:?} {report:?}");
    assert!(d.log_start_offset >= 60, "{d:?}");
    assert_eq!(d.next_offset, 120);
    assert_eq!(d.segments as usize, objects(&ts, &topic, 0).await);
}

async fn compaction_keeps_every_record_and_offset_with_far_fewer_objects(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let commits = match b {
        Backend::Memory => 10_000,
        Backend::Local => 2_000,
        Backend::S3 => 500,
    };
    let pail = ts.client();
    let topic = setup(&ts, &pail, 1).await;
    for i in 0..commits {
        pail.append(
            &topic,
            0,
            vec![Record::keyed(format!("k{i}"), format!("v{i}"))],
        )
        .await
        .unwrap();
    }
    let before = values(&read_all(&ts.client(), &topic, 0).await);
    let objects_before = objects(&ts, &topic, 0).await;
    let report = ts
        .client()
        .maintain(Some(&topic), now_grace())
        .await
        .unwrap();
    assert!(!report[0].merged.is_empty(), "{report:?}");
    let after = values(&read_all(&ts.client(), &topic, 0).await);
    assert_eq!(after, before, "identical records at identical offsets");
    let objects_after = objects(&ts, &topic, 0).await;
    assert!(
        objects_before >= 100 * objects_after,
        "{objects_before} objects became {objects_after}"
    );
    // Writers carry on after the merged range; counters match the store.
    let next = pail.append(&topic, 0, batch("after", 1)).await.unwrap();
    assert_eq!(next.base_offset, commits as u64);
    let d = ts.client().describe_topic(&topic).await.unwrap().partitions[0].clone();
    assert_eq!(d.segments as usize, objects(&ts, &topic, 0).await, "{d:?}");
}

async fn a_reader_during_compaction_sees_no_gap_or_duplicate(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    let topic = setup(&ts, &pail, 1).await;
    let commits = if b == Backend::S3 { 60 } else { 200 };
    for i in 0..commits {
        pail.append(&topic, 0, batch(&format!("c{i}"), 2))
            .await
            .unwrap();
    }
    let reader = ts.client();
    let limits = FetchLimits {
        max_records: 7,
        ..FetchLimits::default()
    };
    // Half read before the pass, the rest after its swap and deletes.
    let mut next = 0u64;
    let mut seen = Vec::new();
    while next < commits as u64 {
        let got = reader
            .fetch(&topic, 0, OffsetSpec::At(next as i64), limits)
            .await
            .unwrap();
        seen.extend(got.records);
        next = seen.last().unwrap().offset + 1;
    }
    ts.client()
        .maintain(Some(&topic), now_grace())
        .await
        .unwrap();
    loop {
        let got = reader
            .fetch(&topic, 0, OffsetSpec::At(next as i64), limits)
            .await
            .unwrap();
        if got.records.is_empty() {
            break;
        }
        next = got.next_offset;
        seen.extend(got.records);
    }
    pail_tests::assert_contiguous(&seen, 0);
    assert_eq!(seen.len(), 2 * commits);
}

async fn a_paused_writer_cannot_resurrect_deleted_segments(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let clock = ManualClock::new(1_000_000_000);
    let stale = at(&ts, &clock);
    let topic = setup(&ts, &stale, 1).await;
    // The stale writer caches the tip after its own append, then pauses.
    stale.append(&topic, 0, batch("stale-0", 3)).await.unwrap();
    let other = at(&ts, &clock);
    for i in 0..4 {
        other
            .append(&topic, 0, batch(&format!("o{i}"), 3))
            .await
            .unwrap();
    }
    clock.advance_ms(10_000_000);
    let setting = [("retention.ms".to_string(), "1000".to_string())];
    other.alter_topic(&topic, &setting, None).await.unwrap();
    let report = other.maintain(Some(&topic), now_grace()).await.unwrap();
    assert_eq!(report[0].log_start_offset, Some(15), "{report:?}");
    // Its cached tip's successor key is free again; its append must not land below the start.
    let landed = stale.append(&topic, 0, batch("late", 2)).await.unwrap();
    assert_eq!(landed.base_offset, 15, "{landed:?}");
    let got = read_all(&ts.client(), &topic, 0).await;
    assert_eq!(
        values(&got),
        vec![(15, "late-0".into()), (16, "late-1".into())]
    );
    // Nothing was left below the log start for a glob to see.
    ts.client()
        .maintain(Some(&topic), now_grace())
        .await
        .unwrap();
    let d = ts.client().describe_topic(&topic).await.unwrap().partitions[0].clone();
    assert_eq!(d.segments as usize, objects(&ts, &topic, 0).await, "{d:?}");
}

async fn a_recreated_topic_never_takes_a_record_from_a_writer_of_the_old_one(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    let topic = setup(&ts, &pail, 2).await;
    let old_id = pail.topic(&topic).await.unwrap().id.clone();
    // A producer is bound to the topic it was made for; so is an append naming its id.
    let old_producer = Producer::new(ts.client(), &topic, ProducerConfig::default())
        .await
        .unwrap();
    let sent = old_producer
        .send(Record::from_value("old-0"), Some(0))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(sent.offset, 0);
    let bound = |tag: &str| {
        let (pail, topic, id) = (ts.client(), topic.clone(), old_id.clone());
        let records = batch(tag, 1);
        async move {
            let opts = AppendOptions {
                topic_id: Some(id),
                ..AppendOptions::default()
            };
            pail.append_with(&topic, 0, records, opts).await
        }
    };
    bound("old-1").await.unwrap();
    let old_reader = ts.client();
    assert_eq!(read_all(&old_reader, &topic, 0).await.len(), 2);
    let admin = ts.client();
    admin.delete_topic(&topic).await.unwrap();
    assert_eq!(
        admin.describe_topic(&topic).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(
        !admin
            .list_topics()
            .await
            .unwrap()
            .iter()
            .any(|t| t.as_str() == topic)
    );
    admin
        .create_topic(&topic, TopicConfig::new(2))
        .await
        .unwrap();
    // Writers of the old incarnation are refused, before and after the new one writes.
    let err = bound("zombie").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let new_writer = ts.client();
    let first = new_writer.append(&topic, 0, batch("new", 2)).await.unwrap();
    assert_eq!(first.base_offset, 2, "offsets are never reused");
    let err = bound("zombie").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = old_producer
        .send(Record::from_value("zombie"), Some(0))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    // A reader of the old incarnation never reads the new one's records.
    let err = old_reader
        .fetch(&topic, 0, OffsetSpec::At(2), FetchLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let got = read_all(&ts.client(), &topic, 0).await;
    assert_eq!(values(&got), vec![(2, "new-0".into()), (3, "new-1".into())]);
}

async fn two_passes_at_once_are_safe(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    let topic = setup(&ts, &pail, 2).await;
    let commits = if b == Backend::S3 { 40 } else { 120 };
    for i in 0..commits {
        pail.append(&topic, (i % 2) as u32, batch(&format!("c{i}"), 3))
            .await
            .unwrap();
    }
    let mut expected = Vec::new();
    for p in 0..2 {
        expected.push(values(&read_all(&ts.client(), &topic, p).await));
    }
    let passes: Vec<_> = (0..3)
        .map(|_| {
            let (pail, topic) = (ts.client(), topic.clone());
            tokio::spawn(async move { pail.maintain(Some(&topic), now_grace()).await })
        })
        .collect();
    for p in passes {
        p.await.unwrap().unwrap();
    }
    ts.client()
        .maintain(Some(&topic), now_grace())
        .await
        .unwrap();
    for p in 0..2u32 {
        let got = values(&read_all(&ts.client(), &topic, p).await);
        assert_eq!(got, expected[p as usize], "partition {p}");
        let d = ts.client().describe_topic(&topic).await.unwrap().partitions[p as usize].clone();
        assert_eq!(d.segments as usize, objects(&ts, &topic, p).await, "{d:?}");
    }
}

async fn settings_change_and_partitions_only_grow(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    let topic = setup(&ts, &pail, 2).await;
    let set = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    let meta = pail
        .alter_topic(&topic, &set("retention.ms", "86400000"), Some(4))
        .await
        .unwrap();
    assert_eq!(
        (meta.config.partitions, meta.config.retention_ms),
        (4, Some(86_400_000))
    );
    let seen = ts.client().describe_topic(&topic).await.unwrap();
    assert_eq!(seen.partitions.len(), 4);
    assert_eq!(seen.config.retention_ms, Some(86_400_000));
    let err = pail.alter_topic(&topic, &[], Some(3)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("only grow"), "{err}");
    let err = pail
        .alter_topic(&topic, &set("cleanup.policy", "compact"), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("retention.ms"),
        "names what can change: {err}"
    );
    let err = pail
        .alter_topic(&topic, &set("retention.ms", "0"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    pail.append(&topic, 3, batch("new-partition", 1))
        .await
        .unwrap();
}

/// A batch as large as the target on its own, then small ones: the small ones are still merged
/// (the large one joins the first run rather than blocking the compaction watermark).
async fn a_segment_that_fills_the_target_alone_does_not_stop_compaction(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    let topic = setup(&ts, &pail, 1).await;
    let settings = [("compact.target.records".to_string(), "8".to_string())];
    pail.alter_topic(&topic, &settings, None).await.unwrap();
    pail.append(&topic, 0, batch("large", 10)).await.unwrap();
    for i in 0..30 {
        pail.append(&topic, 0, batch(&format!("s{i}"), 1))
            .await
            .unwrap();
    }
    let before = values(&read_all(&ts.client(), &topic, 0).await);
    let report = ts
        .client()
        .maintain(Some(&topic), now_grace())
        .await
        .unwrap();
    let merged: u64 = report[0].merged.iter().map(|m| m.2).sum();
    assert!(merged >= 24, "most segments merged: {report:?}");
    assert_eq!(values(&read_all(&ts.client(), &topic, 0).await), before);
    let d = ts.client().describe_topic(&topic).await.unwrap().partitions[0].clone();
    assert_eq!(d.segments as usize, objects(&ts, &topic, 0).await, "{d:?}");
}
