//! Producer semantics on every store: group commit, linger, idempotent retries under faults,
//! partition leadership and fencing, backpressure.
#![allow(clippy::unwrap_used)]

use pail_core::manifest::{AppendEdit, Edit, LeaderClaim};
use pail_core::producer::{Producer, ProducerConfig};
use pail_core::storage::faults::{Fault, Op, Rule};
use pail_core::{AppendOptions, ErrorKind, ManualClock, Pail, PailOptions, Record, TopicConfig};
use pail_tests::{Backend, TestStore, assert_contiguous, on_every_store, read_all};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

on_every_store!(
    concurrent_senders_share_commits,
    linger_gathers_records_into_one_commit,
    retries_after_lost_answers_and_errors_deliver_each_record_once,
    a_lease_keeps_other_writers_off_until_it_expires,
    a_fenced_old_leader_cannot_commit,
    producer_leadership_renews_and_yields,
    a_full_buffer_waits_then_fails_clearly,
);

async fn topic(ts: &TestStore, partitions: u32) -> String {
    let name = pail_tests::unique("prod-");
    ts.client()
        .create_topic(&name, TopicConfig::new(partitions))
        .await
        .unwrap();
    name
}

fn value(i: usize) -> Record {
    Record::from_value(format!("v{i:05}"))
}

/// 16 tasks send at once on one partition through one producer: every record is acknowledged
/// once, at a distinct offset, and they share far fewer commits than there are records.
async fn concurrent_senders_share_commits(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let name = topic(&ts, 1).await;
    let (store, counts) = ts.metered();
    let producer = Producer::new(Pail::new(store), &name, ProducerConfig::default())
        .await
        .unwrap();
    let per_task = 25;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let producer = producer.clone();
        tasks.push(tokio::spawn(async move {
            let mut deliveries = Vec::new();
            for i in 0..per_task {
                deliveries.push(
                    producer
                        .send(value(t * per_task + i), Some(0))
                        .await
                        .unwrap(),
                );
            }
            let mut offsets = Vec::new();
            for d in deliveries {
                offsets.push(d.await.unwrap().offset);
            }
            offsets
        }));
    }
    let mut offsets = HashSet::new();
    for t in tasks {
        for o in t.await.unwrap() {
            assert!(offsets.insert(o), "offset {o} acknowledged twice");
        }
    }
    let total = 16 * per_task;
    assert_eq!(offsets.len(), total);
    let log = read_all(&ts.client(), &name, 0).await;
    assert_eq!(log.len(), total);
    assert_contiguous(&log, 0);
    let segment_puts = counts.snapshot().puts;
    assert!(
        segment_puts * 4 <= total as u64,
        "{total} records took {segment_puts} object writes: appends are not sharing commits"
    );
}

/// Records sent while the first one lingers join its commit. The linger is a minute, so no
/// timing is involved: `flush` ends the wait once all five are queued.
async fn linger_gathers_records_into_one_commit(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let name = topic(&ts, 1).await;
    let config = ProducerConfig {
        linger_ms: 60_000,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(ts.client(), &name, config).await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..5 {
        deliveries.push(producer.send(value(i), None).await.unwrap());
    }
    producer.flush().await;
    let partitions: HashSet<u32> = futures::future::join_all(deliveries)
        .await
        .into_iter()
        .map(|d| d.unwrap().partition)
        .collect();
    assert_eq!(
        partitions.len(),
        1,
        "unkeyed records stick to one partition within a batch"
    );
    let d = ts.client().describe_topic(&name).await.unwrap();
    assert_eq!(
        d.partitions[0].segments, 1,
        "five records sent within the linger make one segment"
    );
}

/// Linger on tokio's paused clock, over the in-memory store (where nothing else takes time):
/// the first record waits exactly its linger for company, a record sent meanwhile joins it, and
/// one sent after the commit starts the next batch.
#[tokio::test(start_paused = true)]
async fn linger_holds_the_first_record_exactly_its_linger() {
    let ts = TestStore::new(Backend::Memory).await.unwrap();
    let name = topic(&ts, 1).await;
    let config = ProducerConfig {
        linger_ms: 300,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(ts.client(), &name, config).await.unwrap();
    let segments =
        || async { ts.client().describe_topic(&name).await.unwrap().partitions[0].segments };
    let start = tokio::time::Instant::now();
    let first = producer.send(value(0), Some(0)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = producer.send(value(1), Some(0)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(199)).await;
    assert_eq!(
        segments().await,
        0,
        "nothing is committed before the linger runs out"
    );
    assert_eq!(first.await.unwrap().offset, 0);
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(300),
        "the commit starts when the first record's linger runs out"
    );
    assert_eq!(second.await.unwrap().offset, 1);
    assert_eq!(segments().await, 1, "both records in one commit");
    let third = producer.send(value(2), Some(0)).await.unwrap();
    assert_eq!(third.await.unwrap().offset, 2);
    assert_eq!(start.elapsed(), Duration::from_millis(600));
    assert_eq!(
        segments().await,
        2,
        "a record sent after the commit is the next batch"
    );
}

/// A steady trickle (one 1 KiB record a millisecond, 1 MB/s) fills batches up to
/// `linger_until_bytes` or `linger_max_ms` instead of committing every `linger_ms`: a few PUTs
/// a second.
#[tokio::test(start_paused = true)]
async fn a_steady_trickle_lingers_until_its_batch_is_worth_a_put() {
    let ts = TestStore::new(Backend::Memory).await.unwrap();
    let name = topic(&ts, 1).await;
    let producer = Producer::new(ts.client(), &name, ProducerConfig::default())
        .await
        .unwrap();
    let record = || Record::from_value(vec![b'x'; 1024]);
    let mut deliveries = Vec::new();
    let start = tokio::time::Instant::now();
    for _ in 0..2000 {
        deliveries.push(producer.send(record(), Some(0)).await.unwrap());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for d in deliveries {
        d.await.unwrap();
    }
    let elapsed = start.elapsed();
    let segments = ts.client().describe_topic(&name).await.unwrap().partitions[0].segments;
    // 2 MB over ~2 s: at most one commit per 512 KiB (or per 300 ms), not one per 5 ms.
    assert!(
        segments <= 10,
        "{segments} commits for 2,000 records in {elapsed:?}"
    );
    assert!(
        segments >= 7,
        "batches stop at about 512 KiB or 300 ms: {segments} commits"
    );
}

/// The same trickle against S3's latencies (PUTs of ~30 ms median, on tokio's paused clock):
/// records that queue while a commit is in flight must still linger on with the next batch,
/// so commits carry about `linger_until_bytes` (not just what arrived during one PUT), and the
/// oldest record of a batch is answered within `linger_max_ms` plus the commit.
#[tokio::test(start_paused = true)]
async fn a_trickle_on_s3_latencies_still_batches_to_the_target() {
    use pail_core::storage::latency::{LatencyProfile, LatencyStore};
    let store = pail_core::Store::memory().layered(|inner| {
        Arc::new(LatencyStore::new(inner, LatencyProfile::S3_STANDARD, 1))
            as Arc<dyn object_store::ObjectStore>
    });
    let pail = Pail::new(store);
    let name = pail_tests::unique("trickle-");
    pail.create_topic(&name, TopicConfig::new(1)).await.unwrap();
    let producer = Producer::new(pail.clone(), &name, ProducerConfig::default())
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for _ in 0..4000 {
        let sent = tokio::time::Instant::now();
        let d = producer
            .send(Record::from_value(vec![b'x'; 1024]), Some(0))
            .await
            .unwrap();
        deliveries.push(tokio::spawn(async move {
            d.await.unwrap();
            sent.elapsed()
        }));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut waits = Vec::new();
    for d in deliveries {
        waits.push(d.await.unwrap());
    }
    waits.sort();
    let p99 = waits[waits.len() * 99 / 100];
    let commits = pail.describe_topic(&name).await.unwrap().partitions[0].segments;
    // 4 MB at 1 MB/s: about 13 commits (one per 300 ms), not one per PUT round trip (~60).
    assert!(
        commits >= 10,
        "batches are bounded by linger_max_ms: {commits}"
    );
    assert!(commits <= 20, "{commits} commits for 4,000 records");
    assert!(p99 < Duration::from_millis(500), "ack p99 {p99:?}");
}

/// A closed loop (one record in flight, the next sent on its acknowledgement) gets no extra
/// wait: with nothing arriving, the batch goes after its first linger step.
#[tokio::test(start_paused = true)]
async fn a_closed_loop_is_not_slowed_by_the_lingering() {
    let ts = TestStore::new(Backend::Memory).await.unwrap();
    let name = topic(&ts, 1).await;
    let producer = Producer::new(ts.client(), &name, ProducerConfig::default())
        .await
        .unwrap();
    let linger = Duration::from_millis(ProducerConfig::default().linger_ms);
    for i in 0..20 {
        let sent = tokio::time::Instant::now();
        producer
            .send(value(i), Some(0))
            .await
            .unwrap()
            .await
            .unwrap();
        // The first step of the linger, and one more step to see that nothing arrived.
        assert!(
            sent.elapsed() <= linger * 2,
            "record {i} waited {:?}",
            sent.elapsed()
        );
    }
}

/// The segment create loses its answer or fails outright now and then; the producer retries
/// each batch under its original sequence number, so nothing is appended twice.
async fn retries_after_lost_answers_and_errors_deliver_each_record_once(b: Backend) {
    // At most 7 records per commit: at least 43 commits, so the faults fire dozens of times.
    const RECORDS: usize = 300;
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let name = topic(&ts, 2).await;
    let (store, faults) = ts.faulty(11);
    faults.add(Rule::always(Op::Put, "", Fault::LostAnswer).probability(0.3));
    faults.add(Rule::always(Op::Put, "", Fault::Error).probability(0.2));
    faults.add(Rule::always(Op::Get, "", Fault::Error).probability(0.1));
    let config = ProducerConfig {
        linger_ms: 1,
        batch_records_max: 7,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(Pail::new(store), &name, config)
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..RECORDS {
        let key = format!("k{}", i % 10);
        let mut r = value(i);
        r.key = Some(key.into());
        deliveries.push(producer.send(r, None).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    assert!(faults.injected() > 10, "the faults fired");
    faults.clear();
    let reader = ts.client();
    let mut seen = HashSet::new();
    for p in 0..2 {
        let log = read_all(&reader, &name, p).await;
        assert_contiguous(&log, 0);
        for r in log {
            assert!(
                seen.insert(r.value.clone().unwrap()),
                "{:?} appended twice",
                r.value
            );
        }
    }
    assert_eq!(seen.len(), RECORDS);
}

fn client_at(ts: &TestStore, clock: &ManualClock, writer: &str) -> Pail {
    Pail::with_options(
        ts.store.clone(),
        PailOptions {
            clock: Arc::new(clock.clone()),
            writer_id: Some(writer.into()),
            ..PailOptions::default()
        },
    )
}

fn claim(epoch: u64) -> AppendOptions {
    AppendOptions {
        producer: None,
        leader: Some(LeaderClaim {
            epoch,
            lease_ms: 1000,
        }),
        ..AppendOptions::default()
    }
}

async fn a_lease_keeps_other_writers_off_until_it_expires(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let name = topic(&ts, 1).await;
    let clock = ManualClock::new(1_000_000);
    let (a, other) = (client_at(&ts, &clock, "a"), client_at(&ts, &clock, "b"));
    let tip = a
        .commit_control(&name, 0, Edit::AcquireLease { lease_ms: 1000 })
        .await
        .unwrap();
    assert_eq!(tip.state.leader_epoch, 1);
    a.append_with(&name, 0, vec![value(0)], claim(1))
        .await
        .unwrap();
    let err = other.append(&name, 0, vec![value(1)]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotLeader, "{err}");
    assert!(
        err.to_string().contains("led by writer a (epoch 1)"),
        "{err}"
    );
    clock.advance_ms(1001);
    // The lease has run out: anyone may write, and take the lead.
    other.append(&name, 0, vec![value(2)]).await.unwrap();
    let tip = other
        .commit_control(&name, 0, Edit::AcquireLease { lease_ms: 1000 })
        .await
        .unwrap();
    assert_eq!(tip.state.leader_epoch, 2);
}

async fn a_fenced_old_leader_cannot_commit(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let name = topic(&ts, 1).await;
    let clock = ManualClock::new(1_000_000);
    let (a, other) = (client_at(&ts, &clock, "a"), client_at(&ts, &clock, "b"));
    a.commit_control(&name, 0, Edit::AcquireLease { lease_ms: 100 })
        .await
        .unwrap();
    a.append_with(&name, 0, vec![value(0)], claim(1))
        .await
        .unwrap();
    clock.advance_ms(2000);
    other
        .commit_control(&name, 0, Edit::AcquireLease { lease_ms: 100 })
        .await
        .unwrap();
    // A's clock says nothing happened (it was paused); its cached view predates epoch 2.
    clock.set_ms(1_000_050);
    let err = a
        .append_with(&name, 0, vec![value(1)], claim(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
    assert!(
        err.to_string().contains("epoch 1") && err.to_string().contains("superseded by epoch 2"),
        "{err}"
    );
    // A raw edit built from epoch 1 is refused by the pure transition as well.
    let edit = Edit::Append(AppendEdit {
        key: None,
        topic_id: String::new(),
        min_timestamp_ms: 0,
        max_timestamp_ms: 0,
        record_count: 1,
        leader: Some(LeaderClaim {
            epoch: 1,
            lease_ms: 1,
        }),
        producer: None,
    });
    let err = a.commit_control(&name, 0, edit).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced);
    let log = read_all(&ts.client(), &name, 0).await;
    assert_eq!(log.len(), 1, "nothing from the fenced leader landed");
}

/// A leading producer takes the lead on its first batch and keeps it; a non-leading producer
/// meanwhile gets NotLeader until its delivery timeout.
async fn producer_leadership_renews_and_yields(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let name = topic(&ts, 1).await;
    let leader_config = ProducerConfig {
        lead_lease_ms: Some(60_000),
        ..ProducerConfig::default()
    };
    let leader = Producer::new(ts.client(), &name, leader_config)
        .await
        .unwrap();
    for i in 0..3 {
        leader.send(value(i), Some(0)).await.unwrap().await.unwrap();
    }
    let follower_config = ProducerConfig {
        delivery_timeout_ms: 300,
        ..ProducerConfig::default()
    };
    let follower = Producer::new(ts.client(), &name, follower_config)
        .await
        .unwrap();
    let err = follower
        .send(value(9), Some(0))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotLeader, "{err}");
    let d = ts.client().describe_topic(&name).await.unwrap();
    assert_eq!(
        d.partitions[0].leader_epoch, 1,
        "one takeover, then renewals"
    );
    assert_eq!(d.partitions[0].next_offset, 3);
}

async fn a_full_buffer_waits_then_fails_clearly(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let name = topic(&ts, 1).await;
    let (store, faults) = ts.faulty(5);
    faults.add(Rule::always(
        Op::Put,
        "topics/",
        Fault::Hang { landed: false },
    ));
    let config = ProducerConfig {
        buffer_bytes_max: 4096,
        batch_bytes_max: 4096,
        max_block_ms: 200,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(Pail::new(store), &name, config)
        .await
        .unwrap();
    let mut held = Vec::new();
    let err = loop {
        match producer
            .send(Record::from_value(vec![7u8; 1000]), Some(0))
            .await
        {
            Ok(d) => held.push(d),
            Err(e) => break e,
        }
        assert!(held.len() < 10, "the buffer never filled");
    };
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.to_string().contains("buffer full: waited 200 ms"),
        "{err}"
    );
}
