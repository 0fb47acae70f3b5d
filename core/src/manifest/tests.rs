use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

fn ctx<'a>(writer: &'a str, now_ms: i64) -> CommitContext<'a> {
    CommitContext {
        digest: "d",
        writer,
        commit_id: "c",
        now_ms,
        prev_size: 100,
    }
}

fn append(n: u32) -> Edit {
    Edit::Append(AppendEdit {
        key: None,
        topic_id: String::new(),
        min_timestamp_ms: 0,
        max_timestamp_ms: 0,
        record_count: n,
        leader: None,
        producer: None,
    })
}

fn next(prev: &PartitionManifest, edit: &Edit, c: &CommitContext<'_>) -> PartitionManifest {
    match apply(prev, edit, c).unwrap() {
        Applied::Next(m) => *m,
        other => panic!("expected a new version, got {other:?}"),
    }
}

#[test]
fn appends_assign_contiguous_offsets_and_count_objects() {
    let g = PartitionManifest::genesis("t", 0);
    let v1 = next(&g, &append(3), &ctx("w", 0));
    assert_eq!((v1.version, v1.base_offset, v1.next_offset), (1, 0, 3));
    assert_eq!(
        (v1.prior_segments, v1.prior_bytes),
        (0, 100),
        "genesis is not an object"
    );
    let v2 = next(&v1, &append(2), &ctx("w", 0));
    assert_eq!((v2.version, v2.base_offset, v2.next_offset), (2, 3, 5));
    assert_eq!(v2.prior_segments, 1);
    assert_eq!(v2.last_offset(), Some(4));
    assert!(apply(&v2, &append(0), &ctx("w", 0)).is_err());
}

#[test]
fn decode_rejects_unknown_format_and_broken_arithmetic() {
    let g = PartitionManifest::genesis("t", 0);
    let v1 = next(&g, &append(3), &ctx("w", 0));
    assert_eq!(
        PartitionManifest::decode(&v1.encode().unwrap()).unwrap(),
        v1
    );
    let mut bad = v1.clone();
    bad.format = 2;
    assert!(
        PartitionManifest::decode(&bad.encode().unwrap())
            .unwrap_err()
            .contains("unknown manifest format 2")
    );
    let mut bad = v1.clone();
    bad.next_offset = 7;
    assert!(PartitionManifest::decode(&bad.encode().unwrap()).is_err());
    assert!(PartitionManifest::decode("{not json").is_err());
}

#[test]
fn lease_keeps_other_writers_out_until_it_expires() {
    let g = PartitionManifest::genesis("t", 0);
    let led = next(&g, &Edit::AcquireLease { lease_ms: 1000 }, &ctx("a", 0));
    assert_eq!(led.leader_epoch, 1);
    assert_eq!(led.record_count, 0);
    let err = apply(&led, &append(1), &ctx("b", 500)).unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::NotLeader {
                remaining_ms: 500,
                ..
            }
        ),
        "{err:?}"
    );
    let err = apply(&led, &Edit::AcquireLease { lease_ms: 10 }, &ctx("b", 999)).unwrap_err();
    assert!(matches!(err, ApplyError::NotLeader { .. }));
    // The holder may write without claiming, and anyone may once the lease has run out.
    next(&led, &append(1), &ctx("a", 500));
    let taken = next(&led, &Edit::AcquireLease { lease_ms: 10 }, &ctx("b", 1000));
    assert_eq!(taken.leader_epoch, 2);
}

#[test]
fn old_epoch_is_fenced_whatever_the_clock_says() {
    let g = PartitionManifest::genesis("t", 0);
    let a = next(&g, &Edit::AcquireLease { lease_ms: 10 }, &ctx("a", 0));
    let b = next(&a, &Edit::AcquireLease { lease_ms: 10 }, &ctx("b", 100));
    let zombie = Edit::Append(AppendEdit {
        key: None,
        topic_id: String::new(),
        min_timestamp_ms: 0,
        max_timestamp_ms: 0,
        record_count: 1,
        leader: Some(LeaderClaim {
            epoch: 1,
            lease_ms: 10,
        }),
        producer: None,
    });
    // Even with a clock from before b took over, epoch 1 cannot commit.
    let err = apply(&b, &zombie, &ctx("a", 1)).unwrap_err();
    assert_eq!(
        err,
        ApplyError::Fenced {
            epoch: 1,
            current: 2
        }
    );
}

fn idem(producer: &str, seq: u64, n: u32) -> Edit {
    Edit::Append(AppendEdit {
        key: None,
        topic_id: String::new(),
        min_timestamp_ms: 0,
        max_timestamp_ms: 0,
        record_count: n,
        leader: None,
        producer: Some(ProducerBatch {
            producer_id: producer.into(),
            first_sequence: seq,
        }),
    })
}

#[test]
fn retried_batch_gets_its_original_offsets() {
    let g = PartitionManifest::genesis("t", 0);
    let v1 = next(&g, &idem("p", 0, 4), &ctx("w", 0));
    let v2 = next(&v1, &append(10), &ctx("w", 0));
    let dup = apply(&v2, &idem("p", 0, 4), &ctx("w", 0)).unwrap();
    assert_eq!(
        dup,
        Applied::Duplicate {
            base_offset: 0,
            record_count: 4
        }
    );
    let v3 = next(&v2, &idem("p", 4, 1), &ctx("w", 0));
    assert_eq!(v3.base_offset, 14);
    let gap = apply(&v3, &idem("p", 9, 1), &ctx("w", 0)).unwrap_err();
    assert!(
        matches!(gap, ApplyError::Sequence(ref m) if m.contains("expected sequence 5")),
        "{gap:?}"
    );
    let resized = apply(&v3, &idem("p", 0, 3), &ctx("w", 0)).unwrap_err();
    assert!(matches!(resized, ApplyError::Sequence(_)));
}

#[test]
fn producer_state_is_bounded() {
    let mut m = PartitionManifest::genesis("t", 0);
    for seq in 0..10 {
        m = next(&m, &idem("p", seq, 1), &ctx("w", 0));
    }
    assert_eq!(m.producers[0].batches.len(), PRODUCER_BATCHES_MAX);
    let too_old = apply(&m, &idem("p", 2, 1), &ctx("w", 0)).unwrap_err();
    assert!(matches!(too_old, ApplyError::Sequence(ref s) if s.contains("older than the last 5")));
    for i in 0..(PRODUCERS_MAX + 3) {
        m = next(&m, &idem(&format!("q{i}"), 0, 1), &ctx("w", 0));
    }
    assert_eq!(m.producers.len(), PRODUCERS_MAX);
    assert!(
        m.producers.iter().all(|s| s.id != "p"),
        "least recently active evicted first"
    );
}

#[derive(Clone, Debug)]
enum Op {
    Append(u32),
    Idem(u8, u32),
    Retry(u8),
    Lease(u8, u64),
    Tick(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u32..50).prop_map(Op::Append),
        (0u8..4, 1u32..20).prop_map(|(p, n)| Op::Idem(p, n)),
        (0u8..4).prop_map(Op::Retry),
        (0u8..3, 1u64..100).prop_map(|(w, l)| Op::Lease(w, l)),
        (0i64..80).prop_map(Op::Tick),
    ]
}

proptest! {
    /// Any sequence of edits keeps offsets contiguous, versions dense, epochs monotone, and
    /// gives a retried batch exactly the offsets its first commit got.
    #[test]
    fn every_successor_keeps_the_invariants(ops in proptest::collection::vec(op(), 1..120)) {
        let mut m = PartitionManifest::genesis("t", 0);
        let mut now = 0i64;
        let mut next_seq: HashMap<u8, u64> = HashMap::new();
        let mut committed: HashMap<(u8, u64), (u64, u32)> = HashMap::new();
        let mut last_batch: HashMap<u8, (u64, u32)> = HashMap::new();
        for op in ops {
            let (edit, writer, tag) = match op {
                Op::Append(n) => (append(n), "w0".to_string(), None),
                Op::Idem(p, n) => {
                    let seq = *next_seq.get(&p).unwrap_or(&0);
                    (idem(&format!("p{p}"), seq, n), "w0".to_string(), Some((p, seq, n)))
                }
                Op::Retry(p) => match last_batch.get(&p) {
                    Some(&(seq, n)) => (idem(&format!("p{p}"), seq, n), "w0".to_string(), Some((p, seq, n))),
                    None => continue,
                },
                Op::Lease(w, l) => (Edit::AcquireLease { lease_ms: l }, format!("w{w}"), None),
                Op::Tick(t) => { now += t; continue; }
            };
            match apply(&m, &edit, &ctx(&writer, now)) {
                Ok(Applied::Next(n)) => {
                    prop_assert!(check_successor(&m, &n).is_ok());
                    prop_assert_eq!(n.base_offset, m.next_offset);
                    if let Some((p, seq, count)) = tag {
                        prop_assert!(!committed.contains_key(&(p, seq)), "batch appended twice");
                        committed.insert((p, seq), (n.base_offset, count));
                        last_batch.insert(p, (seq, count));
                        next_seq.insert(p, seq + u64::from(count));
                    }
                    m = *n;
                }
                Ok(Applied::Duplicate { base_offset, record_count }) => {
                    let (p, seq, _) = tag.expect("only idempotent batches are duplicates");
                    prop_assert_eq!(committed.get(&(p, seq)).copied(), Some((base_offset, record_count)));
                }
                Err(ApplyError::NotLeader { .. }) => {
                    let lease = m.lease.clone().expect("NotLeader needs a lease");
                    prop_assert!(lease.holder != writer && lease.expires_at_ms > now);
                }
                Err(e) => prop_assert!(false, "unexpected error {e:?}"),
            }
        }
    }
}
