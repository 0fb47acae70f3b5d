//! Consumer groups on every store: members split partitions, hand them over in two phases,
//! fence zombies, survive kills, and report lag (issue 11).
#![allow(clippy::unwrap_used)]

use pail_core::consumer::{Consumer, ConsumerConfig, OffsetReset};
use pail_core::group::TopicPartition;
use pail_core::{ErrorKind, Pail, PailOptions, Record, Store, TopicConfig};
use pail_tests::{Backend, TestStore, TokioClock, on_every_store};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

on_every_store!(
    members_split_the_partitions_and_read_every_record_once,
    lag_is_the_end_offset_minus_the_committed_offset,
    thirty_two_members_join_at_once_without_giving_up,
    offsets_reset_to_a_time_land_on_the_first_record_at_or_after_it,
);

fn config(group: &str, topic: &str) -> ConsumerConfig {
    ConsumerConfig {
        session_timeout_ms: 3_000,
        heartbeat_interval_ms: 50,
        renew_interval_ms: 1_000,
        auto_commit_interval_ms: 200,
        auto_offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::new(group, &[topic])
    }
}

async fn topic_with(pail: &Pail, partitions: u32, per_partition: usize) -> String {
    let topic = pail_tests::unique("grp-");
    pail.create_topic(&topic, TopicConfig::new(partitions))
        .await
        .unwrap();
    for p in 0..partitions {
        let records = (0..per_partition)
            .map(|i| Record::from_value(format!("{p}-{i}")))
            .collect();
        pail.append(&topic, p, records).await.unwrap();
    }
    topic
}

type Seen = BTreeMap<(u32, u64), usize>;

async fn poll_into(c: &mut Consumer, seen: &mut Seen) {
    let got = c.poll(Duration::from_millis(20)).await.unwrap();
    for r in got.records {
        *seen.entry((r.partition, r.record.offset)).or_default() += 1;
    }
}

/// Two members over four partitions: the second joiner gets half once the first releases it,
/// and between them every record is read, each exactly once (no failures, auto-commit).
async fn members_split_the_partitions_and_read_every_record_once(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    let topic = topic_with(&pail, 4, 50).await;
    let group = pail_tests::unique("g");
    let mut a = Consumer::join(ts.client(), config(&group, &topic))
        .await
        .unwrap();
    let mut seen = Seen::new();
    poll_into(&mut a, &mut seen).await;
    let mut b2 = Consumer::join(ts.client(), config(&group, &topic))
        .await
        .unwrap();
    for _ in 0..400 {
        poll_into(&mut a, &mut seen).await;
        poll_into(&mut b2, &mut seen).await;
        if seen.len() == 200 && a.assignment().len() == 2 && b2.assignment().len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 200, "every record was read");
    assert!(seen.values().all(|&n| n == 1), "no record twice: {seen:?}");
    let (sa, sb): (BTreeSet<_>, BTreeSet<_>) = (
        a.assignment().into_iter().collect(),
        b2.assignment().into_iter().collect(),
    );
    assert_eq!((sa.len(), sb.len()), (2, 2), "balanced: {sa:?} {sb:?}");
    assert!(sa.is_disjoint(&sb));
    a.commit().await.unwrap();
    b2.commit().await.unwrap();
    let d = pail.describe_group(&group).await.unwrap();
    assert!(d.partitions.iter().all(|p| p.lag == 0), "{d:?}");
    a.leave().await.unwrap();
    b2.leave().await.unwrap();
    assert_eq!(pail.describe_group(&group).await.unwrap().state, "empty");
}

async fn lag_is_the_end_offset_minus_the_committed_offset(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    let topic = topic_with(&pail, 2, 10).await;
    let group = pail_tests::unique("g");
    let mut c = Consumer::join(ts.client(), config(&group, &topic))
        .await
        .unwrap();
    let tp0 = TopicPartition::new(topic.clone(), 0);
    c.seek(&tp0, 4).unwrap();
    c.commit().await.unwrap();
    let d = pail.describe_group(&group).await.unwrap();
    let p0 = d.partitions.iter().find(|p| p.partition == 0).unwrap();
    assert_eq!((p0.committed, p0.end_offset, p0.lag), (Some(4), 10, 6));
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.state, "stable");
    // Operators cannot move offsets under a live member...
    let err = pail
        .reset_group_offsets(&group, &topic, pail_core::group::ResetTo::Earliest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("live members"), "{err}");
    c.leave().await.unwrap();
    // ...but can once it left.
    pail.reset_group_offsets(&group, &topic, pail_core::group::ResetTo::Offset(1))
        .await
        .unwrap();
    let d = pail.describe_group(&group).await.unwrap();
    assert!(
        d.partitions
            .iter()
            .all(|p| p.committed == Some(1) && p.lag == 9)
    );
    pail.delete_group(&group).await.unwrap();
    let err = pail.describe_group(&group).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// Every member writes the one chain; losing races must not make any member give up.
async fn thirty_two_members_join_at_once_without_giving_up(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let members = if b == Backend::S3 { 8 } else { 32 };
    let pail = ts.client();
    let topic = topic_with(&pail, 8, 1).await;
    let group = pail_tests::unique("g");
    let joins = (0..members).map(|_| {
        let (pail, cfg) = (ts.client(), config(&group, &topic));
        tokio::spawn(async move { Consumer::join(pail, cfg).await })
    });
    let mut joined = Vec::new();
    for j in joins {
        joined.push(j.await.unwrap().unwrap());
    }
    let state = pail.group_state(&group).await.unwrap();
    assert_eq!(state.members.len(), members);
    assert_eq!(state.assignment.len(), 8);
}

fn paused_client(store: &Store) -> Pail {
    Pail::with_options(
        store.clone(),
        PailOptions {
            clock: TokioClock::shared(),
            ..PailOptions::default()
        },
    )
}

/// A member killed without leaving: its partitions go to the survivor within the session
/// timeout plus one renewal interval, and the survivor resumes from the last commit (records
/// read after it are delivered again, none is skipped).
#[tokio::test(start_paused = true)]
async fn a_killed_members_partitions_move_within_the_session_timeout() {
    let store = Store::memory();
    let pail = paused_client(&store);
    let topic = topic_with(&pail, 2, 20).await;
    let mut a = Consumer::join(paused_client(&store), config("g", &topic))
        .await
        .unwrap();
    let mut seen = Seen::new();
    poll_into(&mut a, &mut seen).await;
    let mut b = Consumer::join(paused_client(&store), config("g", &topic))
        .await
        .unwrap();
    while a.assignment().len() != 1 || b.assignment().len() != 1 {
        poll_into(&mut a, &mut seen).await;
        poll_into(&mut b, &mut seen).await;
    }
    let a_had = a.assignment();
    drop(a); // killed: no leave, no commit
    let killed_at = tokio::time::Instant::now();
    while b.assignment().len() != 2 {
        poll_into(&mut b, &mut seen).await;
    }
    let took = killed_at.elapsed();
    assert!(
        took <= Duration::from_millis(3_000 + 1_000 + 100),
        "{took:?}"
    );
    for _ in 0..50 {
        poll_into(&mut b, &mut seen).await;
    }
    for p in 0..2 {
        for o in 0..20 {
            assert!(seen.contains_key(&(p, o)), "{p}/{o} was never delivered");
        }
    }
    assert!(b.assignment().contains(&a_had[0]));
}

/// A member paused past its session: meanwhile its partitions moved on; when it wakes, its
/// commit is refused (it is no longer a member), and it comes back as a new member.
#[tokio::test(start_paused = true)]
async fn a_paused_members_late_commit_is_refused() {
    let store = Store::memory();
    let pail = paused_client(&store);
    let topic = topic_with(&pail, 1, 10).await;
    let mut zombie = Consumer::join(paused_client(&store), config("g", &topic))
        .await
        .unwrap();
    let tp = TopicPartition::new(topic.clone(), 0);
    zombie.seek(&tp, 7).unwrap();
    let old_id = zombie.member_id().to_string();
    tokio::time::sleep(Duration::from_millis(5_000)).await;
    let mut b = Consumer::join(paused_client(&store), config("g", &topic))
        .await
        .unwrap();
    b.seek(&tp, 2).unwrap();
    b.commit().await.unwrap();
    zombie.commit().await.unwrap(); // refused inside, then rejoined as a new member
    assert_ne!(zombie.member_id(), old_id);
    let state = pail.group_state("g").await.unwrap();
    assert_eq!(
        state.offsets[&tp].offset, 2,
        "the zombie's offset 7 was not committed"
    );
    assert!(state.member(&old_id).is_none());
}

/// A static member that restarts within its session timeout gets its partitions back with no
/// rebalance (no generation bump).
#[tokio::test(start_paused = true)]
async fn a_static_member_restarting_keeps_its_partitions() {
    let store = Store::memory();
    let pail = paused_client(&store);
    let topic = topic_with(&pail, 4, 1).await;
    let cfg = |instance: &str| ConsumerConfig {
        instance_id: Some(instance.into()),
        ..config("g", &topic)
    };
    let mut one = Consumer::join(paused_client(&store), cfg("one"))
        .await
        .unwrap();
    let mut two = Consumer::join(paused_client(&store), cfg("two"))
        .await
        .unwrap();
    while one.assignment().len() != 2 || two.assignment().len() != 2 {
        one.poll(Duration::from_millis(20)).await.unwrap();
        two.poll(Duration::from_millis(20)).await.unwrap();
    }
    let (had, generation) = (one.assignment(), one.generation());
    drop(one);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let again = Consumer::join(paused_client(&store), cfg("one"))
        .await
        .unwrap();
    assert_eq!(again.assignment(), had);
    assert_eq!(again.generation(), generation, "no rebalance");
}

/// `--to-datetime`: the first record whose timestamp is at or after the time, per partition,
/// even when timestamps do not grow with offsets; the end of the log when none is.
async fn offsets_reset_to_a_time_land_on_the_first_record_at_or_after_it(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    let topic = pail_tests::unique("grp-");
    pail.create_topic(&topic, TopicConfig::new(2))
        .await
        .unwrap();
    let at = |t: i64| Record {
        timestamp_ms: Some(t),
        ..Record::from_value(format!("{t}"))
    };
    let base = 1_700_000_000_000;
    let p0 = vec![at(base), at(base + 30), at(base + 10), at(base + 40)];
    pail.append(&topic, 0, p0).await.unwrap();
    pail.append(&topic, 1, vec![at(base), at(base + 5)])
        .await
        .unwrap();
    let group = pail_tests::unique("g");
    let set = pail
        .reset_group_offsets(
            &group,
            &topic,
            pail_core::group::ResetTo::Timestamp(base + 20),
        )
        .await
        .unwrap();
    let got: Vec<u64> = set.values().copied().collect();
    assert_eq!(got, vec![1, 2]);
    let d = pail.describe_group(&group).await.unwrap();
    let committed: Vec<Option<u64>> = d.partitions.iter().map(|p| p.committed).collect();
    assert_eq!(committed, vec![Some(1), Some(2)]);
}

/// A static member's old process still running after a new one took its instance id: the old
/// one is fenced (Kafka's FENCED_INSTANCE_ID) and must not rejoin and take the partitions back,
/// or the two would steal them from each other for ever.
#[tokio::test(start_paused = true)]
async fn a_replaced_static_member_is_fenced_and_does_not_take_its_place_back() {
    let store = Store::memory();
    let pail = paused_client(&store);
    let topic = topic_with(&pail, 2, 1).await;
    let cfg = ConsumerConfig {
        instance_id: Some("host-1".into()),
        ..config("g", &topic)
    };
    let mut old = Consumer::join(paused_client(&store), cfg.clone())
        .await
        .unwrap();
    let new = Consumer::join(paused_client(&store), cfg).await.unwrap();
    let err = old.commit().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
    assert!(err.to_string().contains("host-1"), "{err}");
    let state = pail.group_state("g").await.unwrap();
    assert_eq!(state.members.len(), 1);
    assert_eq!(state.members[0].id, new.member_id());
    assert_eq!(state.fetchable(new.member_id()).len(), 2);
}

/// A session timeout out of range is refused by name before anything is written, however
/// short the intervals derived from it.
#[tokio::test(start_paused = true)]
async fn a_session_timeout_out_of_range_is_refused_by_name() {
    let store = Store::memory();
    let pail = paused_client(&store);
    let topic = topic_with(&pail, 1, 1).await;
    for ms in [10, 999, 3_600_001] {
        let cfg = ConsumerConfig {
            session_timeout_ms: ms,
            renew_interval_ms: (ms / 3).max(1),
            heartbeat_interval_ms: (ms / 4).clamp(1, 1_000),
            ..config("g", &topic)
        };
        let Err(err) = Consumer::join(paused_client(&store), cfg).await else {
            panic!("{ms} ms accepted");
        };
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("session timeout"), "{err}");
    }
    assert_eq!(pail.group_state("g").await.unwrap().version, 0);
}
