//! Unkeyed batches leave a busy partition (issue 13): a commit asked to give up after lost races
//! does so only when nothing of it can be in the store, and `Pail::append_unkeyed` places such
//! a batch on another partition. Every test runs on tokio's paused clock, against racers that
//! commit once a millisecond while the writer under test sees its creates delayed.
#![allow(clippy::unwrap_used)]

use pail_core::storage::faults::{Fault, Faults, Op, Rule};
use pail_core::{AppendOptions, Error, ErrorKind, Pail, Record, Store, TopicConfig};
use pail_tests::read_all;
use pail_tests::sim::{client, clock, faulty};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

const TOPIC: &str = "t";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn topic(partitions: u32) -> Store {
    let store = Store::memory();
    Pail::new(store.clone())
        .create_topic(TOPIC, TopicConfig::new(partitions))
        .await
        .unwrap();
    store
}

fn value(tag: &str) -> Vec<Record> {
    vec![Record::from_value(tag.to_string())]
}

/// A writer committing one record a millisecond to `partition` until `stop` is set (or `limit`
/// commits are made): it takes every key the writer under test is slow to create.
fn racer(store: &Store, partition: u32, limit: u32, stop: &Arc<AtomicBool>) -> JoinHandle<u32> {
    let pail = client(store, &clock(), "racer", 7);
    let stop = Arc::clone(stop);
    tokio::spawn(async move {
        let mut n = 0;
        while n < limit && !stop.load(Ordering::SeqCst) {
            pail.append(TOPIC, partition, value("racer")).await.unwrap();
            n += 1;
            tokio::time::sleep(ms(1)).await;
        }
        n
    })
}

/// A topic whose partition 0 a racer keeps busy until the flag is set.
async fn busy(partitions: u32) -> (Store, Arc<AtomicBool>, JoinHandle<u32>) {
    let store = topic(partitions).await;
    let stop = Arc::new(AtomicBool::new(false));
    let racing = racer(&store, 0, u32::MAX, &stop);
    (store, stop, racing)
}

/// A client whose segment creates on `partition` reach the store 10 ms late, after `first`
/// (a fault for its first create there, if any).
fn slow_writer(store: &Store, partition: u32, first: Option<Fault>) -> (Pail, Arc<Faults>) {
    let faults = Faults::new(1);
    let prefix = format!("topics/{TOPIC}/partition={partition}");
    if let Some(fault) = first {
        faults.add(Rule::always(Op::Put, prefix.clone(), fault).times(1));
    }
    faults.add(Rule::always(Op::Put, prefix, Fault::Latency(ms(10))));
    let pail = client(&faulty(store, Arc::clone(&faults)), &clock(), "slow", 1);
    (pail, faults)
}

fn giving_up_after(n: u32) -> AppendOptions {
    AppendOptions {
        give_up_after_lost_races: Some(n),
        ..AppendOptions::default()
    }
}

fn count(records: &[pail_core::StoredRecord], tag: &str) -> usize {
    records
        .iter()
        .filter(|r| r.value.as_deref() == Some(tag.as_bytes()))
        .count()
}

/// Three clean losses in a row: `Busy`, and nothing of the batch anywhere in the log.
#[tokio::test(start_paused = true)]
async fn a_commit_that_only_lost_races_gives_up_with_nothing_written() {
    let (store, stop, racing) = busy(1).await;
    let (slow, faults) = slow_writer(&store, 0, None);
    let err = slow
        .append_with(TOPIC, 0, value("slow"), giving_up_after(3))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Busy { lost: 3, .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Conflict, "retriable, no effect");
    assert_eq!(faults.injected(), 3, "one create per lost race");
    stop.store(true, Ordering::SeqCst);
    racing.await.unwrap();
    // Anything still in flight would land within the fault's delay.
    tokio::time::sleep(ms(100)).await;
    let log = read_all(&Pail::new(store), TOPIC, 0).await;
    assert_eq!(
        count(&log, "slow"),
        0,
        "a batch reported Busy is not in the log"
    );
    assert!(count(&log, "racer") > 0);
}

/// One attempt whose outcome was unclear for a while (its create timed out, or timed out and
/// landed later) among lost races: the commit never claims "no effect" and settles on its
/// partition, once.
#[tokio::test(start_paused = true)]
async fn an_unclear_attempt_among_lost_races_forbids_giving_up() {
    for first in [Fault::Timeout(ms(10)), Fault::LandsLater(ms(5))] {
        let store = topic(1).await;
        let stop = Arc::new(AtomicBool::new(false));
        // The racer stops after 60 commits, so the slow writer gets through in the end.
        let racing = racer(&store, 0, 60, &stop);
        let (slow, _faults) = slow_writer(&store, 0, Some(first.clone()));
        let landed = slow
            .append_with(TOPIC, 0, value("slow"), giving_up_after(3))
            .await;
        let landed = landed.unwrap_or_else(|e| panic!("{first:?}: {e}"));
        racing.await.unwrap();
        tokio::time::sleep(ms(100)).await;
        let log = read_all(&Pail::new(store), TOPIC, 0).await;
        assert_eq!(count(&log, "slow"), 1, "{first:?}: once");
        let at = log
            .iter()
            .find(|r| r.value.as_deref() == Some(&b"slow"[..]));
        assert_eq!(at.unwrap().offset, landed.base_offset, "{first:?}");
    }
}

/// A create repeated by the hedge (D8) leaves one request in flight when the other answers:
/// such an attempt is never a clean loss, so the commit settles on its partition.
#[tokio::test(start_paused = true)]
async fn a_hedged_create_among_lost_races_forbids_giving_up() {
    let store = topic(1).await;
    let (slow, faults) = slow_writer(&store, 0, None);
    // Creates of 10 ms teach the hedge to repeat a create after 20 ms.
    for i in 0..5 {
        slow.append(TOPIC, 0, value(&format!("warm-{i}")))
            .await
            .unwrap();
    }
    faults.clear();
    let prefix = format!("topics/{TOPIC}/partition=0");
    faults.add(Rule::always(Op::Put, prefix, Fault::Latency(ms(100))));
    let stop = Arc::new(AtomicBool::new(false));
    let racing = racer(&store, 0, 400, &stop);
    let landed = slow
        .append_with(TOPIC, 0, value("slow"), giving_up_after(2))
        .await
        .unwrap();
    racing.await.unwrap();
    let log = read_all(&Pail::new(store), TOPIC, 0).await;
    let at: Vec<_> = log
        .iter()
        .filter(|r| r.value.as_deref() == Some(&b"slow"[..]))
        .map(|r| r.offset)
        .collect();
    assert_eq!(at, vec![landed.base_offset], "once, where acknowledged");
}

/// `append_unkeyed` moves a batch off the busy partition, reports where it landed, and the
/// batch is there once and nowhere else.
#[tokio::test(start_paused = true)]
async fn an_unkeyed_batch_moves_off_a_busy_partition() {
    let (store, stop, racing) = busy(2).await;
    let (slow, _faults) = slow_writer(&store, 0, None);
    let landed = slow
        .append_unkeyed(TOPIC, 0, value("slow"), AppendOptions::default())
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    racing.await.unwrap();
    assert_eq!(landed.partition, 1, "moved to the only other partition");
    let reader = Pail::new(store);
    assert_eq!(count(&read_all(&reader, TOPIC, 0).await, "slow"), 0);
    let other = read_all(&reader, TOPIC, 1).await;
    assert_eq!(count(&other, "slow"), 1);
    assert_eq!(other[0].offset, landed.base_offset);
}

/// Batches whose partition a retry depends on never get a bound on lost races, and keyed
/// records never go through `append_unkeyed`.
#[tokio::test(start_paused = true)]
async fn pinned_batches_are_never_offered_a_move() {
    let store = topic(2).await;
    let pail = Pail::new(store);
    let keyed = AppendOptions {
        idempotency_key: Some("k".into()),
        ..giving_up_after(2)
    };
    let err = pail
        .append_with(TOPIC, 0, value("x"), keyed)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = pail
        .append_with(TOPIC, 0, value("x"), giving_up_after(0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
    let err = pail
        .append_unkeyed(
            TOPIC,
            0,
            vec![Record::keyed("key", "x")],
            AppendOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let log = read_all(&pail, TOPIC, 0).await;
    assert!(log.is_empty(), "nothing was written");
}

mod http {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use pail_core::producer::partitioner::partition_for_key;
    use pail_functions::http::{AppState, router};
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use tower::ServiceExt;

    const PARTITIONS: u32 = 2;

    /// One produce request of one record; the reply's status and body.
    async fn produce(app: &axum::Router, record: Value, idem: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::post(format!("/v1/topics/{TOPIC}/records"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(k) = idem {
            req = req.header("idempotency-key", k);
        }
        let body = Body::from(json!({ "records": [record] }).to_string());
        let response = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// What one request sent, and the partition it must land on if it may not move.
    struct Sent {
        value: String,
        pinned_to: Option<u32>,
        record: Value,
        idem: Option<String>,
    }

    fn requests(n: usize) -> Vec<Sent> {
        (0..n)
            .map(|i| {
                let value = format!("v{i}");
                match i % 4 {
                    // Keyed: the key's partition.
                    0 => Sent {
                        pinned_to: Some(partition_for_key(format!("k{i}").as_bytes(), PARTITIONS)),
                        record: json!({"key": format!("k{i}"), "value": value}),
                        idem: None,
                        value,
                    },
                    // Unkeyed with an Idempotency-Key: the idempotency key's partition.
                    1 => Sent {
                        pinned_to: Some(partition_for_key(format!("i{i}").as_bytes(), PARTITIONS)),
                        record: json!({ "value": value }),
                        idem: Some(format!("i{i}")),
                        value,
                    },
                    _ => Sent {
                        pinned_to: None,
                        record: json!({ "value": value }),
                        idem: None,
                        value,
                    },
                }
            })
            .collect()
    }

    /// Every (partition, offset) of the topic with the value found there.
    async fn log_of(store: &Store) -> BTreeMap<(u32, u64), String> {
        let reader = Pail::new(store.clone());
        let mut log = BTreeMap::new();
        for p in 0..PARTITIONS {
            for r in read_all(&reader, TOPIC, p).await {
                let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                log.insert((p, r.offset), v);
            }
        }
        log
    }

    /// 96 concurrent one-record requests on two partitions whose creates take 10 ms: every
    /// record is acknowledged once, at the partition and offset its reply names; unkeyed
    /// requests moved off busy partitions, keyed and idempotency-keyed ones never did.
    #[tokio::test(start_paused = true)]
    async fn concurrent_unkeyed_produces_move_and_every_reply_is_true() {
        let store = topic(PARTITIONS).await;
        let faults = Faults::new(3);
        faults.add(Rule::always(
            Op::Put,
            format!("topics/{TOPIC}/partition="),
            Fault::Latency(ms(10)),
        ));
        let state = AppState::new(&faulty(&store, faults));
        let app = router(state.clone(), None);
        let sent = requests(96);
        let replies = futures::future::join_all(
            sent.iter()
                .map(|s| produce(&app, s.record.clone(), s.idem.as_deref())),
        )
        .await;
        let log = log_of(&store).await;
        assert_eq!(log.len(), sent.len(), "every record once, nothing else");
        for (s, (status, body)) in sent.iter().zip(&replies) {
            assert_eq!(*status, StatusCode::OK, "{body}");
            let at = &body["offsets"][0];
            let partition = at["partition"].as_u64().unwrap() as u32;
            let offset = at["offset"].as_u64().unwrap();
            assert_eq!(log.get(&(partition, offset)), Some(&s.value), "{body}");
            if let Some(p) = s.pinned_to {
                assert_eq!(partition, p, "{} never moves", s.value);
            }
        }
        let metrics = state.metrics.render();
        let moves: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("pail_produce_moves_total "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(moves > 0, "some unkeyed requests moved:\n{metrics}");
    }
}

mod simulation {
    use super::*;
    use pail_tests::sim::{run_paused, seeds};
    use std::collections::BTreeMap;

    const PARTITIONS: u32 = 3;
    const WRITERS: u64 = 12;
    const BATCHES: u64 = 4;

    /// A writer's store: creates slow, and now and then timed out, landing late, or answered
    /// with an error after they landed; reads now and then failing.
    fn unreliable(store: &Store, seed: u64) -> Store {
        let faults = Faults::new(seed);
        let parts = format!("topics/{TOPIC}/partition=");
        for fault in [
            Fault::Timeout(ms(5)),
            Fault::LandsLater(ms(20)),
            Fault::LostAnswer,
        ] {
            faults.add(Rule::always(Op::Put, parts.clone(), fault).probability(0.04));
        }
        faults.add(Rule::always(Op::Get, parts.clone(), Fault::Error).probability(0.02));
        faults.add(Rule::always(Op::Put, parts, Fault::Latency(ms(10))));
        faulty(store, faults)
    }

    /// How one batch ended: where it was acknowledged, or the kind of its error.
    type Ended = Result<(u32, u64), ErrorKind>;

    /// Where a writer's batch starts: spread, so that the writers race on every partition.
    fn first_partition(w: u64, b: u64) -> u32 {
        ((w + b) % u64::from(PARTITIONS)) as u32
    }

    async fn write(store: Store, seed: u64, w: u64) -> Vec<(String, Ended)> {
        let name = format!("w{w}");
        let pail = client(&unreliable(&store, seed ^ w), &clock(), &name, seed);
        let mut ended = Vec::new();
        for b in 0..BATCHES {
            let tag = format!("{name}-{b}");
            let first = first_partition(w, b);
            let result = pail
                .append_unkeyed(TOPIC, first, value(&tag), AppendOptions::default())
                .await;
            let end = result
                .map(|a| (a.partition, a.base_offset))
                .map_err(|e| e.kind());
            ended.push((tag, end));
        }
        ended
    }

    /// Runs one seed; returns how many acknowledged batches moved.
    async fn run(seed: u64) -> usize {
        let store = topic(PARTITIONS).await;
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(write(store.clone(), seed, w)))
            .collect();
        let mut ended = Vec::new();
        for w in writers {
            ended.extend(w.await.unwrap());
        }
        // Let every late landing land (or be refused).
        tokio::time::sleep(Duration::from_secs(5)).await;
        let reader = Pail::new(store);
        let mut found: BTreeMap<String, Vec<(u32, u64)>> = BTreeMap::new();
        for p in 0..PARTITIONS {
            for r in read_all(&reader, TOPIC, p).await {
                let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                found.entry(v).or_default().push((p, r.offset));
            }
        }
        let mut acked = 0;
        for (tag, end) in &ended {
            let at = found.get(tag).cloned().unwrap_or_default();
            match end {
                Ok(spot) => {
                    acked += 1;
                    assert_eq!(
                        at,
                        vec![*spot],
                        "seed {seed}: {tag} acknowledged once, there"
                    );
                }
                // Busy and Conflict promise that nothing was written.
                Err(ErrorKind::Conflict) => assert!(at.is_empty(), "seed {seed}: {tag} {at:?}"),
                Err(_) => assert!(at.len() <= 1, "seed {seed}: {tag} {at:?}"),
            }
        }
        let tags: usize = found.values().map(Vec::len).sum();
        assert!(
            tags <= ended.len(),
            "seed {seed}: nothing but the batches sent"
        );
        assert!(
            acked > ended.len() / 2,
            "seed {seed}: {acked} acknowledged: {ended:?}"
        );
        moved(&ended)
    }

    fn moved(ended: &[(String, Ended)]) -> usize {
        let mut n = 0;
        for (i, (_, end)) in ended.iter().enumerate() {
            let (w, b) = (i as u64 / BATCHES, i as u64 % BATCHES);
            n += usize::from(matches!(end, Ok((p, _)) if *p != first_partition(w, b)));
        }
        n
    }

    /// Racing unkeyed writers moving between partitions on unreliable stores: every
    /// acknowledged batch is in the log once where it was acknowledged, and no batch reported
    /// as having no effect is anywhere.
    #[test]
    fn racing_unkeyed_writers_on_unreliable_stores_keep_every_promise() {
        let moved: usize = seeds(16).into_iter().map(|s| run_paused(run(s))).sum();
        assert!(moved > 0, "some batches moved");
    }
}
