//! Damage stays where it is (issue 10): one damaged or missing object never hides the good data
//! before it, never lets a writer reuse an offset, and is named, with the way out, by the errors
//! and by `pail doctor` (`Pail::doctor`). Every scenario runs on memory, a directory and S3.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use pail_core::storage::keys;
use pail_core::{
    ErrorKind, FetchLimits, OffsetSpec, Pail, Producer, ProducerConfig, Record, TopicConfig,
    TopicName,
};
use pail_tests::{Backend, TestStore, assert_contiguous, on_every_store};
use std::time::Duration;

on_every_store!(
    a_damaged_middle_segment_hides_nothing_before_it,
    a_deleted_middle_segment_is_named_not_its_neighbour,
    a_deleted_first_segment_says_what_is_missing,
    junk_at_the_next_key_blocks_writes_not_reads,
    a_truncated_newest_segment_blocks_writes_not_reads,
    damage_past_a_missing_version_blocks_writes,
    a_head_deleted_after_a_producer_closed_is_noticed,
    an_idle_partition_whose_segments_all_expired_refuses_writes,
    a_producer_writes_one_final_hint_per_partition,
    a_quiet_partition_is_hinted_without_closing,
);

/// Records per segment in these scenarios.
const PER_SEGMENT: usize = 50;

async fn setup(b: Backend, partitions: u32) -> Option<(TestStore, Pail, TopicName)> {
    let ts = TestStore::new(b).await?;
    let pail = ts.client();
    let topic = pail_tests::unique("damage-");
    pail.create_topic(&topic, TopicConfig::new(partitions))
        .await
        .unwrap();
    Some((ts, pail, TopicName::new(&topic).unwrap()))
}

/// [`setup`] with two partitions: `segments` of [`fill`] in partition 0, 3 records in 1.
async fn two_partitions(b: Backend, segments: u64) -> Option<(TestStore, Pail, TopicName)> {
    let (ts, pail, topic) = setup(b, 2).await?;
    fill(&pail, &topic, segments).await;
    pail.append(topic.as_str(), 1, values(3, "p1"))
        .await
        .unwrap();
    Some((ts, pail, topic))
}

fn values(n: usize, tag: &str) -> Vec<Record> {
    (0..n)
        .map(|i| Record::from_value(format!("{tag}-{i}")))
        .collect()
}

/// Appends `segments` segments of [`PER_SEGMENT`] records to partition 0: versions 1..=n,
/// segment `v` holding offsets `(v-1)*50 .. v*50`.
async fn fill(pail: &Pail, topic: &TopicName, segments: u64) {
    for v in 1..=segments {
        let got = pail
            .append(topic.as_str(), 0, values(PER_SEGMENT, &format!("v{v}")))
            .await
            .unwrap();
        assert_eq!(got.base_offset, (v - 1) * PER_SEGMENT as u64);
    }
}

/// The key of version `v` of partition 0 as [`fill`] lays it out.
fn seg(topic: &TopicName, v: u64) -> Path {
    keys::segment(topic, 0, (v - 1) * PER_SEGMENT as u64, v)
}

async fn put(ts: &TestStore, key: &Path, bytes: impl Into<Bytes>) {
    let bytes: Bytes = bytes.into();
    ts.store
        .object_store()
        .put(key, bytes.into())
        .await
        .unwrap();
}

/// Cuts the object at `key` to half its size, as a disk or a careless copy might.
async fn truncate(ts: &TestStore, key: &Path) {
    let whole = ts.store.get(key).await.unwrap().unwrap();
    put(ts, key, whole.slice(..whole.len() / 2)).await;
}

async fn delete(ts: &TestStore, key: &Path) {
    ts.store.object_store().delete(key).await.unwrap();
}

/// Waits until the partition's hint names `version` (hints are written off the commit's
/// critical path). Bounded: fails the test if it never does.
async fn hint_names(ts: &TestStore, topic: &TopicName, partition: u32, version: u64) {
    let key = keys::hint(topic, partition);
    for _ in 0..500 {
        if let Some(bytes) = ts.store.get(&key).await.unwrap() {
            let hint: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            if hint["version"] == version {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the hint of {topic}/{partition} never named version {version}");
}

async fn fetch(pail: &Pail, topic: &TopicName, from: i64, max: u32) -> pail_core::Result<Vec<u64>> {
    let limits = FetchLimits {
        max_records: max,
        ..FetchLimits::default()
    };
    let got = pail
        .fetch(topic.as_str(), 0, OffsetSpec::At(from), limits)
        .await?;
    assert_contiguous(&got.records, from as u64);
    Ok(got.records.iter().map(|r| r.offset).collect())
}

/// Asserts `e` is corruption that names `key`, and returns its text.
fn names(e: &pail_core::Error, key: &Path) -> String {
    let text = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{text}");
    assert!(text.contains(key.as_ref()), "should name {key}: {text}");
    text
}

/// Asserts that `writer` refuses to append to partition 0, naming `key` and the way out.
async fn refuses_naming(writer: &Pail, topic: &TopicName, key: &Path) {
    let e = writer
        .append(topic.as_str(), 0, values(3, "reused?"))
        .await
        .unwrap_err();
    let text = names(&e, key);
    assert!(text.contains("pail doctor"), "{text}");
}

/// Asserts that a fresh client describes partition 0 as ending at `next_offset` and blocked
/// by `key`.
async fn describes_blocked(ts: &TestStore, topic: &TopicName, next_offset: u64, key: &Path) {
    let d = fresh(ts).describe_topic(topic.as_str()).await.unwrap();
    assert_eq!(d.partitions[0].next_offset, next_offset, "{d:?}");
    let blocked = d.partitions[0].blocked.as_deref().unwrap_or_default();
    assert!(blocked.contains(key.as_ref()), "{d:?}");
}

/// A client that knows nothing yet (a fresh process).
fn fresh(ts: &TestStore) -> Pail {
    ts.client()
}

async fn a_damaged_middle_segment_hides_nothing_before_it(b: Backend) {
    let Some((ts, pail, topic)) = setup(b, 1).await else {
        return;
    };
    fill(&pail, &topic, 4).await;
    truncate(&ts, &seg(&topic, 2)).await;
    for reader in [fresh(&ts), fresh(&ts)] {
        // The good records come first, in one fetch that asked for more...
        let got = fetch(&reader, &topic, 0, 10_000).await.unwrap();
        assert_eq!(got.len(), PER_SEGMENT, "every record before the damage");
        // ...and the next fetch reports the damage, naming the object.
        let e = fetch(&reader, &topic, PER_SEGMENT as i64, 10_000)
            .await
            .unwrap_err();
        names(&e, &seg(&topic, 2));
    }
    // Readers past the damage and writers are not held up by it: no offset is at risk.
    let got = fetch(&fresh(&ts), &topic, 150, 10).await.unwrap();
    assert_eq!(got, (150..160).collect::<Vec<_>>());
    let appended = fresh(&ts)
        .append(topic.as_str(), 0, values(1, "after"))
        .await
        .unwrap();
    assert_eq!(appended.base_offset, 200);
}

async fn a_deleted_middle_segment_is_named_not_its_neighbour(b: Backend) {
    let Some((ts, pail, topic)) = setup(b, 1).await else {
        return;
    };
    fill(&pail, &topic, 4).await;
    delete(&ts, &seg(&topic, 2)).await;
    // A client that followed the chain before the deletion, and a fresh one that must list.
    for reader in [pail.clone(), fresh(&ts)] {
        let got = fetch(&reader, &topic, 0, 10_000).await.unwrap();
        assert_eq!(got.len(), PER_SEGMENT);
        for from in [50, 75] {
            let e = fetch(&reader, &topic, from, 10).await.unwrap_err();
            let text = names(&e, &seg(&topic, 2));
            assert!(text.contains("missing"), "{text}");
            assert!(
                !text.contains(seg(&topic, 1).as_ref()),
                "the intact segment before it is not to blame: {text}"
            );
        }
    }
}

async fn a_deleted_first_segment_says_what_is_missing(b: Backend) {
    let Some((ts, pail, topic)) = setup(b, 1).await else {
        return;
    };
    fill(&pail, &topic, 4).await;
    delete(&ts, &seg(&topic, 1)).await;
    for reader in [pail.clone(), fresh(&ts)] {
        for from in [OffsetSpec::Earliest, OffsetSpec::At(0), OffsetSpec::At(10)] {
            let e = reader
                .fetch(topic.as_str(), 0, from, FetchLimits::default())
                .await
                .unwrap_err();
            let text = names(&e, &seg(&topic, 1));
            assert!(
                text.contains("missing") && !text.contains("out of range"),
                "{from:?}: {text}"
            );
        }
        // What follows is intact and readable.
        let got = fetch(&reader, &topic, 50, 10).await.unwrap();
        assert_eq!(got, (50..60).collect::<Vec<_>>());
    }
}

async fn junk_at_the_next_key_blocks_writes_not_reads(b: Backend) {
    let Some((ts, pail, topic)) = two_partitions(b, 3).await else {
        return;
    };
    let junk = seg(&topic, 4);
    put(&ts, &junk, Bytes::from_static(b"junk\n")).await;
    for reader in [fresh(&ts), fresh(&ts)] {
        assert_eq!(
            fetch(&reader, &topic, 0, 5).await.unwrap(),
            vec![0, 1, 2, 3, 4]
        );
        let got = fetch(&reader, &topic, 100, 10_000).await.unwrap();
        assert_eq!(got.len(), PER_SEGMENT, "up to the damage");
        names(&fetch(&reader, &topic, 150, 10).await.unwrap_err(), &junk);
    }
    describes_blocked(&ts, &topic, 150, &junk).await;
    let d = fresh(&ts).describe_topic(topic.as_str()).await.unwrap();
    assert_eq!(d.partitions[1].blocked, None);
    // Writers refuse, naming the object and the way out; a warm writer as well as a cold one.
    for writer in [pail.clone(), fresh(&ts)] {
        refuses_naming(&writer, &topic, &junk).await;
    }
    // The other partition is untouched.
    let got = fresh(&ts)
        .append(topic.as_str(), 1, values(1, "yes"))
        .await
        .unwrap();
    assert_eq!(got.base_offset, 3);
}

async fn a_truncated_newest_segment_blocks_writes_not_reads(b: Backend) {
    let Some((ts, pail, topic)) = setup(b, 1).await else {
        return;
    };
    fill(&pail, &topic, 3).await;
    let newest = seg(&topic, 3);
    truncate(&ts, &newest).await;
    let reader = fresh(&ts);
    assert_eq!(
        fetch(&reader, &topic, 0, 5).await.unwrap(),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(fetch(&reader, &topic, 50, 10_000).await.unwrap().len(), 50);
    names(&fetch(&reader, &topic, 100, 10).await.unwrap_err(), &newest);
    describes_blocked(&ts, &topic, 100, &newest).await;
    refuses_naming(&fresh(&ts), &topic, &newest).await;
}

async fn damage_past_a_missing_version_blocks_writes(b: Backend) {
    let Some((ts, pail, topic)) = setup(b, 1).await else {
        return;
    };
    fill(&pail, &topic, 4).await;
    // Version 3 deleted, version 4 damaged: the damaged object still says version 4 existed,
    // so version 3 did too, and its offsets were handed out.
    delete(&ts, &seg(&topic, 3)).await;
    truncate(&ts, &seg(&topic, 4)).await;
    refuses_naming(&fresh(&ts), &topic, &seg(&topic, 3)).await;
    describes_blocked(&ts, &topic, 100, &seg(&topic, 3)).await;
    assert_eq!(
        fetch(&fresh(&ts), &topic, 0, 10_000).await.unwrap().len(),
        100
    );
}

async fn a_head_deleted_after_a_producer_closed_is_noticed(b: Backend) {
    let Some((ts, pail, topic)) = setup(b, 1).await else {
        return;
    };
    // A producer's batches; the producer hints the partition's newest version as it closes.
    let producer = Producer::new(pail.clone(), topic.as_str(), ProducerConfig::default())
        .await
        .unwrap();
    for round in 0..3 {
        send_all(&producer, 0, values(PER_SEGMENT, &format!("r{round}"))).await;
    }
    producer.close().await;
    let tip = fresh(&ts).partition_tip(topic.as_str(), 0).await.unwrap();
    let (version, base) = (tip.state.version, tip.state.base_offset);
    assert!(version >= 2 && tip.state.next_offset == 150, "{tip:?}");
    hint_names(&ts, &topic, 0, version).await;
    // The newest segment deleted by hand: its offsets were handed out and read.
    let newest = keys::segment(&topic, 0, base, version);
    delete(&ts, &newest).await;
    refuses_naming(&fresh(&ts), &topic, &newest).await;
    // So does an idempotent producer, whose first step looks the partition up for retries.
    let producer = Producer::new(fresh(&ts), topic.as_str(), ProducerConfig::default())
        .await
        .unwrap();
    let delivery = producer
        .send(Record::from_value("no"), Some(0))
        .await
        .unwrap();
    names(&delivery.await.unwrap_err(), &newest);
    producer.close().await;
    // Nothing was written, reads below still work, describe says why writes stop.
    assert_eq!(
        fetch(&fresh(&ts), &topic, 0, 5).await.unwrap(),
        vec![0, 1, 2, 3, 4]
    );
    describes_blocked(&ts, &topic, base, &newest).await;
    assert!(ts.store.get(&newest).await.unwrap().is_none());
}

/// Sends `records` to `partition` and waits for every acknowledgement.
async fn send_all(producer: &Producer, partition: u32, records: Vec<Record>) {
    let mut acks = Vec::new();
    for r in records {
        acks.push(producer.send(r, Some(partition)).await.unwrap());
    }
    producer.flush().await;
    for a in acks {
        a.await.unwrap();
    }
}

async fn an_idle_partition_whose_segments_all_expired_refuses_writes(b: Backend) {
    let Some((ts, pail, topic)) = setup(b, 1).await else {
        return;
    };
    // Plain appends, no producer to close: the partition's first version is hinted.
    fill(&pail, &topic, 3).await;
    hint_names(&ts, &topic, 0, 1).await;
    // A lifecycle rule on the partition's folder expires every segment; the hint survives.
    for v in 1..=3 {
        delete(&ts, &seg(&topic, v)).await;
    }
    refuses_naming(&fresh(&ts), &topic, &seg(&topic, 1)).await;
    assert!(
        ts.store
            .list_after(&keys::partition_dir(&topic, 0), None)
            .await
            .unwrap()
            .is_empty(),
        "nothing was written at offset 0 again"
    );
}

async fn a_producer_writes_one_final_hint_per_partition(b: Backend) {
    let Some((ts, _, topic)) = setup(b, 3).await else {
        return;
    };
    let (store, counts) = ts.metered();
    let pail = Pail::new(store);
    let producer = Producer::new(pail.clone(), topic.as_str(), ProducerConfig::default())
        .await
        .unwrap();
    // Two partitions written, in several batches each; one left alone.
    for round in 0..3 {
        for p in [0, 2] {
            send_all(&producer, p, values(10, &format!("r{round}"))).await;
        }
    }
    // Each partition's first version was hinted (off the critical path); let those land.
    hint_names(&ts, &topic, 0, 1).await;
    hint_names(&ts, &topic, 2, 1).await;
    let before_close = counts.snapshot();
    producer.close().await;
    let closing = counts.snapshot().since(&before_close);
    assert_eq!(
        closing.puts, 2,
        "one hint per partition written: {closing:?}"
    );
    for p in [0, 2] {
        let tip = ts.client().partition_tip(topic.as_str(), p).await.unwrap();
        hint_names(&ts, &topic, p, tip.state.version).await;
    }
    assert!(
        ts.store
            .get(&keys::hint(&topic, 1))
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_quiet_partition_is_hinted_without_closing(b: Backend) {
    let Some((ts, _, topic)) = setup(b, 1).await else {
        return;
    };
    let (store, counts) = ts.metered();
    let pail = Pail::new(store);
    let config = ProducerConfig {
        idle_hint_ms: 20,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(pail.clone(), topic.as_str(), config)
        .await
        .unwrap();
    for round in 0..3 {
        send_all(&producer, 0, values(10, &format!("r{round}"))).await;
    }
    // A long-lived producer that goes quiet: its newest version gets hinted all the same.
    let tip = ts.client().partition_tip(topic.as_str(), 0).await.unwrap();
    hint_names(&ts, &topic, 0, tip.state.version).await;
    // So deleting it is refused...
    let newest = keys::segment(&topic, 0, tip.state.base_offset, tip.state.version);
    delete(&ts, &newest).await;
    refuses_naming(&fresh(&ts), &topic, &newest).await;
    // ...and closing has nothing left to hint: no PUT.
    let before_close = counts.snapshot();
    producer.close().await;
    assert_eq!(counts.snapshot().since(&before_close).puts, 0);
}

// ---------------------------------------------------------------------------------------------
// pail doctor (`Pail::doctor`, `Pail::repair`).

mod doctor_on {
    pail_tests::on_every_store!(
        a_healthy_store,
        junk_at_the_next_key,
        damage_that_may_be_committed,
        missing_segments,
        strays,
        links_rows_and_totals,
        a_damaged_descriptor,
    );
    use super::doctor::*;
}

mod doctor {
    use super::*;
    use pail_core::doctor::{Finding, Problem, Report};
    use pail_core::manifest::{Edit, PartitionManifest};

    /// The one finding of `report`, which must have this problem, key and repairability.
    fn only(report: Report, problem: Problem, key: &str, repairable: bool) -> Finding {
        assert_eq!(report.findings.len(), 1, "{report:#?}");
        let f = report.findings[0].clone();
        assert_eq!(
            (f.problem, f.key.as_str(), f.repairable),
            (problem, key, repairable),
            "{f:#?}"
        );
        assert!(!f.action.is_empty());
        f
    }

    async fn doctor(ts: &TestStore, topic: &TopicName) -> Report {
        fresh(ts).doctor(Some(topic.as_str())).await.unwrap()
    }

    pub async fn a_healthy_store(b: Backend) {
        let Some((ts, pail, topic)) = setup(b, 3).await else {
            return;
        };
        fill(&pail, &topic, 3).await;
        pail.commit_control(topic.as_str(), 1, Edit::AcquireLease { lease_ms: 10 })
            .await
            .unwrap();
        pail.append(topic.as_str(), 1, values(2, "x"))
            .await
            .unwrap();
        let other = pail_tests::unique("other-");
        pail.create_topic(&other, TopicConfig::new(1))
            .await
            .unwrap();
        for _ in 0..3 {
            pail.append(&other, 0, values(1, "o")).await.unwrap();
        }
        pail.write_hint(&other, 0).await.unwrap();
        let report = fresh(&ts).doctor(None).await.unwrap();
        assert!(report.healthy(), "{report:#?}");
        assert_eq!(
            (
                report.topics,
                report.partitions,
                report.segments,
                report.objects
            ),
            (2, 4, 8, 8)
        );
        let e = fresh(&ts).doctor(Some("no-such-topic")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }

    pub async fn junk_at_the_next_key(b: Backend) {
        let Some((ts, pail, topic)) = setup(b, 2).await else {
            return;
        };
        fill(&pail, &topic, 3).await;
        let junk = seg(&topic, 4);
        put(&ts, &junk, Bytes::from_static(b"junk\n")).await;
        let f = only(
            doctor(&ts, &topic).await,
            Problem::Foreign,
            junk.as_ref(),
            true,
        );
        assert!(f.detail.contains("not a Parquet file"), "{f:?}");
        assert!(f.action.contains("--repair"), "{f:?}");
        let repaired = fresh(&ts).repair(Some(topic.as_str())).await.unwrap();
        assert!(repaired.after.healthy(), "{repaired:#?}");
        assert!(repaired.not_moved.is_empty(), "{repaired:#?}");
        assert_eq!(repaired.moved.len(), 1, "{repaired:#?}");
        let moved = &repaired.moved[0];
        assert_eq!(moved.from, junk.as_ref());
        assert!(moved.to.starts_with("_quarantine/"), "{moved:?}");
        assert!(moved.to.ends_with(junk.as_ref()), "{moved:?}");
        // Copied first, deleted second: the junk is kept, out of the chain's way.
        let kept = ts.store.get(&Path::from(moved.to.as_str())).await.unwrap();
        assert_eq!(kept.as_deref(), Some(&b"junk\n"[..]));
        assert!(ts.store.get(&junk).await.unwrap().is_none());
        // Writes go on where the log ends: no offset is reused, none skipped.
        let got = fresh(&ts)
            .append(topic.as_str(), 0, values(1, "after"))
            .await
            .unwrap();
        assert_eq!(got.base_offset, 150);
        assert!(doctor(&ts, &topic).await.healthy());
        // The quarantine is no topic.
        let topics = fresh(&ts).list_topics().await.unwrap();
        assert_eq!(topics, vec![topic.clone()]);
    }

    pub async fn damage_that_may_be_committed(b: Backend) {
        let Some((ts, pail, topic)) = setup(b, 1).await else {
            return;
        };
        fill(&pail, &topic, 4).await;
        // A truncated newest segment: its offsets were handed out.
        truncate(&ts, &seg(&topic, 4)).await;
        // Junk over a middle segment: version 4 builds on it, so it was committed.
        put(&ts, &seg(&topic, 2), Bytes::from_static(b"junk\n")).await;
        let report = doctor(&ts, &topic).await;
        assert_eq!(report.findings.len(), 2, "{report:#?}");
        let (middle, newest) = (&report.findings[0], &report.findings[1]);
        assert_eq!(
            (middle.problem, middle.key.as_str(), middle.repairable),
            (Problem::Foreign, seg(&topic, 2).as_ref(), false),
            "{middle:#?}"
        );
        assert!(middle.detail.contains("builds on it"), "{middle:?}");
        assert_eq!(
            (newest.problem, newest.key.as_str(), newest.repairable),
            (Problem::Damaged, seg(&topic, 4).as_ref(), false),
            "{newest:#?}"
        );
        assert!(newest.action.contains("backup"), "{newest:?}");
        let repaired = fresh(&ts).repair(Some(topic.as_str())).await.unwrap();
        assert!(repaired.moved.is_empty(), "{repaired:#?}");
        assert_eq!(repaired.after, report);
        for v in [2, 4] {
            assert!(ts.store.get(&seg(&topic, v)).await.unwrap().is_some());
        }
        // Junk at the newest key, named by the hint: committed too, so it stays.
        let Some((ts, pail, topic)) = setup(b, 1).await else {
            return;
        };
        fill(&pail, &topic, 4).await;
        // Once the first version's hint (written in the background) has landed.
        hint_names(&ts, &topic, 0, 1).await;
        assert!(pail.write_hint(topic.as_str(), 0).await.unwrap());
        put(&ts, &seg(&topic, 4), Bytes::from_static(b"junk\n")).await;
        let f = only(
            doctor(&ts, &topic).await,
            Problem::Foreign,
            seg(&topic, 4).as_ref(),
            false,
        );
        assert!(f.detail.contains("hint names version 4"), "{f:?}");
        let repaired = fresh(&ts).repair(Some(topic.as_str())).await.unwrap();
        assert!(repaired.moved.is_empty(), "{repaired:#?}");
    }

    pub async fn missing_segments(b: Backend) {
        let Some((ts, pail, topic)) = setup(b, 1).await else {
            return;
        };
        fill(&pail, &topic, 5).await;
        // Once the first version's hint (written in the background) has landed.
        hint_names(&ts, &topic, 0, 1).await;
        assert!(pail.write_hint(topic.as_str(), 0).await.unwrap());
        for v in [1, 3, 5] {
            delete(&ts, &seg(&topic, v)).await;
        }
        let report = doctor(&ts, &topic).await;
        let missing: Vec<(&str, &str)> = report
            .findings
            .iter()
            .map(|f| {
                assert_eq!(
                    (f.problem, f.repairable),
                    (Problem::Missing, false),
                    "{f:#?}"
                );
                (f.key.as_str(), f.detail.as_str())
            })
            .collect();
        assert_eq!(missing.len(), 3, "{report:#?}");
        assert_eq!(missing[0].0, seg(&topic, 1).as_ref());
        assert!(
            missing[0].1.contains("version 1 (offsets 0..50)"),
            "{missing:?}"
        );
        assert_eq!(missing[1].0, seg(&topic, 3).as_ref());
        assert!(
            missing[1].1.contains("version 3 (offsets 100..150)"),
            "{missing:?}"
        );
        assert_eq!(missing[2].0, seg(&topic, 5).as_ref());
        assert!(missing[2].1.contains("the hint names"), "{missing:?}");
        let repaired = fresh(&ts).repair(Some(topic.as_str())).await.unwrap();
        assert!(repaired.moved.is_empty());
        assert_eq!(repaired.after, report);
    }

    pub async fn strays(b: Backend) {
        let Some((ts, _, topic)) = two_partitions(b, 2).await else {
            return;
        };
        let dir = keys::partition_dir(&topic, 0);
        let notes = dir.clone().join("notes.txt");
        put(&ts, &notes, Bytes::from_static(b"remember the milk")).await;
        // A readable segment copied beside itself, and another partition's at the next key.
        let first = ts.store.get(&seg(&topic, 1)).await.unwrap().unwrap();
        let half = dir.clone().join("half.parquet");
        put(&ts, &half, first.slice(..first.len() / 2)).await;
        let backup = dir.join("backup.parquet");
        put(&ts, &backup, first).await;
        let foreign_seg = ts
            .store
            .get(&keys::segment(&topic, 1, 0, 1))
            .await
            .unwrap()
            .unwrap();
        put(&ts, &seg(&topic, 3), foreign_seg).await;
        let stray_dir = keys::partition_dir(&topic, 7);
        put(
            &ts,
            &stray_dir.clone().join("x.parquet"),
            Bytes::from_static(b"x"),
        )
        .await;
        let hint = keys::hint(&topic, 1);
        hint_names(&ts, &topic, 1, 1).await;
        put(&ts, &hint, Bytes::from_static(b"{not json")).await;
        let report = doctor(&ts, &topic).await;
        let by_key = |key: &str| {
            report
                .findings
                .iter()
                .find(|f| f.key == key)
                .unwrap_or_else(|| panic!("nothing about {key}: {report:#?}"))
        };
        let expect = [
            (notes.to_string(), Problem::Foreign, true),
            (backup.to_string(), Problem::Misplaced, false),
            (half.to_string(), Problem::Damaged, false),
            (seg(&topic, 3).to_string(), Problem::Misplaced, false),
            (format!("{stray_dir}/"), Problem::Misplaced, false),
            (hint.to_string(), Problem::Hint, true),
        ];
        assert_eq!(report.findings.len(), expect.len(), "{report:#?}");
        for (key, problem, repairable) in &expect {
            let f = by_key(key);
            assert_eq!((f.problem, f.repairable), (*problem, *repairable), "{f:#?}");
        }
        let repaired = fresh(&ts).repair(Some(topic.as_str())).await.unwrap();
        let mut moved: Vec<&str> = repaired.moved.iter().map(|m| m.from.as_str()).collect();
        moved.sort();
        let mut want = vec![notes.as_ref(), hint.as_ref()];
        want.sort();
        assert_eq!(moved, want, "{repaired:#?}");
        assert_eq!(repaired.after.findings.len(), 4, "{repaired:#?}");
        assert!(
            by_key(half.as_ref()).detail.contains("Parquet"),
            "{report:#?}"
        );
        // Readable segments are never moved, wherever they are.
        for key in [&backup, &seg(&topic, 3), &half] {
            assert!(ts.store.get(key).await.unwrap().is_some(), "{key}");
        }
    }

    pub async fn links_rows_and_totals(b: Backend) {
        let Some((ts, pail, topic)) = two_partitions(b, 3).await else {
            return;
        };
        // A well-formed version 4 of partition 0 that leaves a gap of offsets.
        let at = plant(&ts, &pail, &topic, 0, |m| {
            (m.version, m.base_offset, m.next_offset) = (4, 999, 999);
        })
        .await;
        let f = only(
            doctor(&ts, &topic).await,
            Problem::BrokenLink,
            at.as_ref(),
            false,
        );
        assert!(f.detail.contains("gap or overlap"), "{f:?}");
        delete(&ts, &at).await;
        // A version 2 of partition 1 that links, but miscounts what came before it.
        let at = plant(&ts, &pail, &topic, 1, |m| {
            (m.version, m.base_offset, m.prior_segments) = (2, m.next_offset, 41);
        })
        .await;
        let f = only(
            doctor(&ts, &topic).await,
            Problem::Totals,
            at.as_ref(),
            false,
        );
        assert!(f.detail.contains("counts 42 segments"), "{f:?}");
        delete(&ts, &at).await;
        // A segment whose footer holds 2 rows while its manifest says 3: one of pail's own,
        // damaged, so the repair leaves it alone.
        let tip = pail.partition_tip(topic.as_str(), 0).await.unwrap();
        let mut m: PartitionManifest = (*tip.state).clone();
        (m.version, m.base_offset, m.record_count, m.next_offset) = (4, 150, 2, 152);
        let bytes = pail_core::segment::encode(&values(2, "r"), &[0, 0], &m).unwrap();
        let bytes = replace(&bytes, b"\"record_count\":2,", b"\"record_count\":3,");
        let bytes = replace(&bytes, b"\"next_offset\":152,", b"\"next_offset\":153,");
        let at = seg(&topic, 4);
        put(&ts, &at, bytes).await;
        let f = only(
            doctor(&ts, &topic).await,
            Problem::Damaged,
            at.as_ref(),
            false,
        );
        assert!(f.detail.contains("2 rows but the manifest says 3"), "{f:?}");
        let repaired = fresh(&ts).repair(Some(topic.as_str())).await.unwrap();
        assert!(repaired.moved.is_empty(), "{repaired:#?}");
    }

    /// `bytes` with the one occurrence of `from` replaced by `to` (of the same length).
    fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
        let mut out = bytes.to_vec();
        out[at..at + to.len()].copy_from_slice(to);
        out
    }

    /// Writes, where `edit` says, a control version made from the partition's tip by `edit`,
    /// as a writer with a bug (or a tool) might. Returns its key.
    async fn plant(
        ts: &TestStore,
        pail: &Pail,
        topic: &TopicName,
        partition: u32,
        edit: impl FnOnce(&mut PartitionManifest),
    ) -> Path {
        let tip = pail.partition_tip(topic.as_str(), partition).await.unwrap();
        let mut m: PartitionManifest = (*tip.state).clone();
        edit(&mut m);
        m.record_count = 0;
        m.next_offset = m.base_offset;
        let at = keys::segment(topic, partition, m.base_offset, m.version);
        put(ts, &at, pail_core::segment::encode(&[], &[], &m).unwrap()).await;
        at
    }

    pub async fn a_damaged_descriptor(b: Backend) {
        let Some((ts, pail, topic)) = setup(b, 1).await else {
            return;
        };
        fill(&pail, &topic, 1).await;
        let other = TopicName::new(pail_tests::unique("other-")).unwrap();
        pail.create_topic(other.as_str(), TopicConfig::new(1))
            .await
            .unwrap();
        put(
            &ts,
            &keys::segment(&other, 0, 0, 1),
            Bytes::from_static(b"junk"),
        )
        .await;
        let descriptor = keys::topic_descriptor(&topic);
        put(&ts, &descriptor, Bytes::from_static(b"{\"format\": 7}")).await;
        let report = fresh(&ts).doctor(None).await.unwrap();
        assert_eq!(report.findings.len(), 2, "{report:#?}");
        let f = report
            .findings
            .iter()
            .find(|f| f.key == descriptor.as_ref())
            .unwrap();
        assert_eq!((f.problem, f.repairable), (Problem::Damaged, false));
        // The other topic was checked all the same.
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.chain == format!("{other}/0"))
        );
    }
}
