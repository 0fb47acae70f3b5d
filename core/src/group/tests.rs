use super::edit::*;
use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const SESSION: u64 = 10_000;

fn ctx(now_ms: i64) -> GroupCtx<'static> {
    GroupCtx {
        writer: "w",
        commit_id: "c",
        digest: "d",
        now_ms,
    }
}

fn join(id: &str, instance: Option<&str>, partitions: u32) -> GroupEdit {
    GroupEdit::Join(Join {
        member_id: id.into(),
        instance_id: instance.map(str::to_string),
        topics: BTreeSet::from(["t".to_string()]),
        session_timeout_ms: SESSION,
        client: String::new(),
        metadata: String::new(),
        partitions: BTreeMap::from([("t".to_string(), partitions)]),
        protocol: managed(Assignor::Sticky),
    })
}

fn heartbeat(s: &GroupState, id: &str, offsets: Vec<OffsetCommit>) -> GroupEdit {
    GroupEdit::Heartbeat(Heartbeat {
        member_id: id.into(),
        generation: s.generation,
        offsets,
        release: s.revoking(id),
        partitions: None,
    })
}

fn step(s: &GroupState, e: &GroupEdit, now: i64) -> GroupState {
    apply(s, e, &ctx(now)).unwrap()
}

fn genesis() -> GroupState {
    GroupState::genesis(&GroupName::new("g").unwrap())
}

fn commit(tp: u32, offset: u64) -> OffsetCommit {
    OffsetCommit {
        tp: TopicPartition::new("t", tp),
        offset,
        metadata: String::new(),
    }
}

#[test]
fn a_joiner_waits_for_the_owner_to_release() {
    let s = step(&genesis(), &join("a", None, 4), 0);
    assert_eq!(s.fetchable("a").len(), 4);
    let s = step(&s, &join("b", None, 4), 1);
    assert_eq!(
        s.fetchable("b").len(),
        0,
        "b may not fetch before a releases"
    );
    assert_eq!(s.revoking("a").len(), 2);
    assert_eq!(s.fetchable("a").len(), 2, "a keeps what it keeps");
    let s = step(&s, &heartbeat(&s, "a", vec![]), 2);
    assert_eq!((s.fetchable("a").len(), s.fetchable("b").len()), (2, 2));
}

#[test]
fn an_expired_owner_loses_its_partitions_at_once() {
    let s = step(&genesis(), &join("a", None, 4), 0);
    let s = step(&s, &join("b", None, 4), SESSION as i64 + 1);
    assert!(s.member("a").is_none(), "a's lease ran out");
    assert_eq!(s.fetchable("b").len(), 4);
}

#[test]
fn zombies_and_stale_generations_are_fenced() {
    let s = step(&genesis(), &join("a", None, 2), 0);
    let s = step(&s, &join("b", None, 2), 1);
    let moving = s.revoking("a");
    let s = step(&s, &heartbeat(&s, "a", vec![]), 2);
    // a no longer owns what moved: its commit for it is refused.
    let err = apply(
        &s,
        &heartbeat(&s, "a", vec![commit(moving[0].partition, 5)]),
        &ctx(3),
    )
    .unwrap_err();
    assert!(matches!(err, GroupError::Fenced(_)), "{err}");
    // A removed member is unknown.
    let late = step(&s, &heartbeat(&s, "b", vec![]), SESSION as i64 + 2);
    assert!(late.member("a").is_none());
    let err = apply(
        &late,
        &heartbeat(&late, "a", vec![]),
        &ctx(SESSION as i64 + 3),
    )
    .unwrap_err();
    assert!(matches!(err, GroupError::UnknownMember(_)), "{err}");
    // A commit from a generation before the member received the partition is refused.
    let owned = late.fetchable("b")[0].clone();
    let old = GroupEdit::Heartbeat(Heartbeat {
        member_id: "b".into(),
        generation: late.assignment[&owned].since_generation - 1,
        offsets: vec![commit(owned.partition, 1)],
        ..Heartbeat::default()
    });
    assert!(apply(&late, &old, &ctx(SESSION as i64 + 3)).is_err());
}

#[test]
fn a_static_member_returns_to_its_partitions_without_a_rebalance() {
    let s = step(&genesis(), &join("a1", Some("host-a"), 4), 0);
    let s = step(&s, &join("b", None, 4), 1);
    let s = step(&s, &heartbeat(&s, "a1", vec![]), 2);
    let before = (s.generation, s.fetchable("a1"));
    let s = step(&s, &join("a2", Some("host-a"), 4), 3);
    assert!(s.member("a1").is_none(), "the old incarnation is fenced");
    assert_eq!((s.generation, s.fetchable("a2")), before);
    // After its session timeout, returning is a new member and a rebalance.
    let late = step(&s, &join("a3", Some("host-a"), 4), 3 + SESSION as i64 + 1);
    assert!(late.generation > before.0);
}

#[test]
fn operators_cannot_reset_or_delete_a_live_group() {
    let s = step(&genesis(), &join("a", None, 1), 0);
    let reset = GroupEdit::ResetOffsets {
        offsets: BTreeMap::from([(TopicPartition::new("t", 0), 0)]),
    };
    assert!(matches!(
        apply(&s, &reset, &ctx(1)),
        Err(GroupError::Active(1))
    ));
    assert!(apply(&s, &GroupEdit::Delete, &ctx(1)).is_err());
    let later = SESSION as i64 + 1;
    let s = step(&s, &reset, later);
    assert_eq!(s.offsets[&TopicPartition::new("t", 0)].offset, 0);
    let s = step(&s, &GroupEdit::Delete, later);
    assert!(s.deleted && s.offsets.is_empty());
}

#[derive(Clone, Debug)]
enum Op {
    Join(u8),
    Beat(u8),
    Leave(u8),
    Tick(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6).prop_map(Op::Join),
        (0u8..6).prop_map(Op::Beat),
        (0u8..6).prop_map(Op::Leave),
        (0i64..6_000).prop_map(Op::Tick),
    ]
}

proptest! {
    /// Whatever members do: every partition has exactly one owner among the members, an owner
    /// changes only when it releases or leaves the group, the fetchable sets of members never
    /// overlap, generations never move backward, and committed offsets only change through the
    /// owner.
    #[test]
    fn ownership_is_exclusive_and_moves_only_by_release(ops in proptest::collection::vec(op(), 1..80)) {
        let mut s = genesis();
        let mut now = 0i64;
        let mut incarnation = [0u32; 6];
        for op in ops {
            let id = |m: u8, inc: &[u32; 6]| format!("m{m}.{}", inc[m as usize]);
            let edit = match op {
                Op::Tick(t) => { now += t; continue; }
                Op::Join(m) => {
                    incarnation[m as usize] += 1;
                    join(&id(m, &incarnation), None, 7)
                }
                Op::Beat(m) => {
                    let me = id(m, &incarnation);
                    let owned = s.fetchable(&me);
                    let offsets = owned.iter().map(|tp| OffsetCommit {
                        tp: tp.clone(), offset: now as u64, metadata: String::new(),
                    }).collect();
                    heartbeat(&s, &me, offsets)
                }
                Op::Leave(m) => GroupEdit::Leave {
                    member_id: id(m, &incarnation), generation: s.generation, offsets: vec![],
                },
            };
            let Ok(next) = apply(&s, &edit, &ctx(now)) else { continue };
            prop_assert!(next.generation >= s.generation);
            let members: BTreeSet<&str> = next.members.iter().map(|m| m.id.as_str()).collect();
            if !members.is_empty() {
                prop_assert_eq!(next.assignment.len(), 7, "every partition has an owner");
            }
            let mut seen = BTreeSet::new();
            for m in &members {
                for tp in next.fetchable(m) {
                    prop_assert!(seen.insert(tp), "two members may fetch one partition");
                }
            }
            for (tp, o) in &next.assignment {
                prop_assert!(members.contains(o.owner.as_str()));
                if let Some(before) = s.assignment.get(tp)
                    && before.owner != o.owner
                    && members.contains(before.owner.as_str())
                {
                    // The old owner is still a member: only its own release moves the partition.
                    let released = matches!(&edit, GroupEdit::Heartbeat(h) if h.member_id == before.owner && h.release.contains(tp));
                    prop_assert!(released, "{} moved from live {} without a release", tp, before.owner);
                }
            }
            s = next;
        }
    }
}

/// A version's size with realistic ids (a consumer's member ids are about 52 bytes, writer
/// and commit ids 16 and 32), every partition owned and committed, as docs/architecture.md §12
/// states it: the bound checked here is the one documented there.
fn version_bytes(members: usize, partitions: u32) -> usize {
    let id = |i: usize| format!("m-{i:016x}-{:032x}", i);
    let mut s = genesis();
    for i in 0..members {
        s = step(&s, &join(&id(i), None, partitions), i as i64);
    }
    // Settle the handovers, then commit a 9-digit offset on every partition.
    for _ in 0..2 {
        for i in 0..members {
            s = step(&s, &heartbeat(&s, &id(i), Vec::new()), 100);
        }
    }
    for i in 0..members {
        let mine = s.fetchable(&id(i));
        let offsets = mine
            .iter()
            .map(|tp| commit(tp.partition, 123_456_789))
            .collect();
        s = step(&s, &heartbeat(&s, &id(i), offsets), 200);
    }
    s.writer = "0123456789abcdef".into();
    s.commit_id = format!("{:032x}", 1);
    s.prev_commit_id = s.commit_id.clone();
    s.encode().unwrap().len()
}

#[test]
fn version_size_grows_linearly_in_members_and_partitions() {
    for (m, p) in [(1, 1), (4, 8), (32, 64), (32, 1024), (100, 1000)] {
        let bytes = version_bytes(m, p);
        eprintln!("{m} members, {p} partitions: {bytes} bytes");
        assert!(
            bytes <= 400 + 200 * m + 170 * p as usize,
            "{m} x {p}: {bytes}"
        );
    }
}

// Kafka's classic protocol (`classic`): the join barrier in the state.

const REBALANCE: u64 = 5_000;

fn kjoin(id: &str, protocols: &[&str]) -> GroupEdit {
    kjoin_as(id, None, protocols)
}

fn kjoin_as(id: &str, instance: Option<&str>, protocols: &[&str]) -> GroupEdit {
    GroupEdit::KafkaJoin(KafkaJoin {
        member_id: id.into(),
        instance_id: instance.map(str::to_string),
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| ClassicProtocol {
                name: p.to_string(),
                metadata: format!("meta-{}", instance.unwrap_or(id)),
            })
            .collect(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        client: String::new(),
        topics: vec!["t".into()],
    })
}

fn refusal(s: &GroupState, e: &GroupEdit, now: i64) -> Refusal {
    match apply(s, e, &ctx(now)) {
        Err(GroupError::Refused(r, _)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn leader(s: &GroupState) -> &str {
    match &s.protocol {
        Protocol::Classic { leader, .. } => leader,
        Protocol::Managed { .. } => panic!("not classic"),
    }
}

fn protocol_name(s: &GroupState) -> &str {
    match &s.protocol {
        Protocol::Classic { protocol_name, .. } => protocol_name,
        Protocol::Managed { .. } => panic!("not classic"),
    }
}

fn ksync(s: &GroupState, leader: &str) -> GroupEdit {
    GroupEdit::KafkaSync {
        member_id: leader.into(),
        generation: s.generation,
        assignments: s
            .members
            .iter()
            .map(|m| (m.id.clone(), format!("for-{}", m.id)))
            .collect(),
        owners: BTreeMap::from([(TopicPartition::new("t", 0), leader.to_string())]),
    }
}

fn kcommit(member: &str, generation: i64, offset: u64) -> GroupEdit {
    GroupEdit::KafkaCommit {
        member_id: member.into(),
        instance_id: None,
        generation,
        offsets: vec![commit(0, offset)],
    }
}

#[test]
fn a_lone_joiner_forms_a_generation_at_once_and_leads_it() {
    let s = step(&genesis(), &kjoin("a", &["range"]), 0);
    assert!(s.round.is_none() && s.awaiting_sync);
    assert_eq!(
        (s.generation, leader(&s), protocol_name(&s)),
        (1, "a", "range")
    );
    let s = step(&s, &ksync(&s, "a"), 1);
    assert!(!s.awaiting_sync);
    assert_eq!(s.member("a").unwrap().assignment, "for-a");
    assert_eq!(s.assignment[&TopicPartition::new("t", 0)].owner, "a");
}

#[test]
fn a_round_completes_when_every_member_has_joined() {
    let s = step(&genesis(), &kjoin("a", &["range"]), 0);
    let s = step(&s, &ksync(&s, "a"), 1);
    let s = step(&s, &kjoin("b", &["range"]), 2);
    assert!(s.round.is_some(), "a waits for a to join again");
    assert_eq!(s.generation, 1);
    // Eager clients commit what they processed before joining again: accepted.
    assert!(apply(&s, &kcommit("a", 1, 5), &ctx(3)).is_ok());
    let s = step(&s, &kjoin("a", &["range"]), 3);
    assert!(s.round.is_none() && s.awaiting_sync);
    assert_eq!(
        (s.generation, leader(&s)),
        (2, "a"),
        "the old leader keeps leading"
    );
    assert_eq!(s.members.len(), 2);
}

#[test]
fn the_deadline_removes_members_that_did_not_join_again() {
    let s = step(&genesis(), &kjoin("a", &["range"]), 0);
    let s = step(&s, &ksync(&s, "a"), 1);
    let s = step(&s, &kjoin("b", &["range"]), 2);
    let s = step(
        &s,
        &GroupEdit::KafkaRenew {
            member_id: "a".into(),
        },
        3,
    );
    assert!(s.round.is_some(), "before the deadline, the round waits");
    let s = step(&s, &GroupEdit::Tick, 2 + REBALANCE as i64);
    assert!(s.round.is_none());
    assert!(s.member("a").is_none(), "a never joined the round");
    assert_eq!(
        (s.generation, leader(&s)),
        (2, "b"),
        "the first joined member leads"
    );
}

#[test]
fn the_protocol_is_the_one_every_member_supports_and_most_prefer() {
    let s = step(&genesis(), &kjoin("a", &["roundrobin", "range"]), 0);
    let s = step(&s, &ksync(&s, "a"), 1);
    let s = step(&s, &kjoin("b", &["range", "roundrobin"]), 2);
    let s = step(&s, &kjoin("c", &["range", "sticky", "roundrobin"]), 2);
    let s = step(&s, &kjoin("a", &["roundrobin", "range"]), 3);
    assert_eq!(protocol_name(&s), "range");
    let none_common = kjoin("d", &["sticky"]);
    assert_eq!(refusal(&s, &none_common, 4), Refusal::InconsistentProtocol);
}

#[test]
fn stale_generations_unknown_members_and_early_commits_are_refused() {
    let s = step(&genesis(), &kjoin("a", &["range"]), 0);
    assert_eq!(
        refusal(&s, &kcommit("a", 1, 5), 1),
        Refusal::RebalanceInProgress,
        "no commit between join and sync"
    );
    let s = step(&s, &ksync(&s, "a"), 1);
    assert_eq!(
        refusal(&s, &kcommit("a", 0, 5), 2),
        Refusal::IllegalGeneration
    );
    assert_eq!(refusal(&s, &kcommit("zz", 1, 5), 2), Refusal::UnknownMember);
    let s = step(&s, &kcommit("a", 1, 5), 2);
    assert_eq!(s.offsets[&TopicPartition::new("t", 0)].offset, 5);
    // A sync from a stale generation is refused too.
    let s2 = step(&s, &kjoin("b", &["range"]), 3);
    let s2 = step(&s2, &kjoin("a", &["range"]), 3);
    let stale = GroupEdit::KafkaSync {
        member_id: "a".into(),
        generation: 1,
        assignments: BTreeMap::new(),
        owners: BTreeMap::new(),
    };
    assert_eq!(refusal(&s2, &stale, 4), Refusal::IllegalGeneration);
}

#[test]
fn simple_commits_are_refused_while_the_group_has_live_members() {
    let s = step(&genesis(), &kcommit("", -1, 7), 0);
    assert_eq!(s.offsets[&TopicPartition::new("t", 0)].offset, 7);
    let s = step(&s, &kjoin("a", &["range"]), 1);
    assert_eq!(refusal(&s, &kcommit("", -1, 8), 2), Refusal::UnknownMember);
    let s = step(&s, &kcommit("", -1, 8), 2 + SESSION as i64);
    assert!(s.members.is_empty(), "the expired member is gone");
    assert_eq!(s.offsets[&TopicPartition::new("t", 0)].offset, 8);
}

#[test]
fn a_static_member_returns_to_its_place_without_a_round() {
    let s = step(&genesis(), &kjoin_as("a1", Some("host-a"), &["range"]), 0);
    let s = step(&s, &ksync(&s, "a1"), 1);
    let generation = s.generation;
    let s = step(&s, &kjoin_as("a2", Some("host-a"), &["range"]), 2);
    assert!(s.round.is_none() && !s.awaiting_sync);
    assert_eq!((s.generation, leader(&s)), (generation, "a2"));
    assert_eq!(s.member("a2").unwrap().assignment, "for-a1");
    assert_eq!(s.assignment[&TopicPartition::new("t", 0)].owner, "a2");
    let old = GroupEdit::KafkaCommit {
        member_id: "a1".into(),
        instance_id: Some("host-a".into()),
        generation: generation as i64,
        offsets: vec![],
    };
    assert_eq!(refusal(&s, &old, 3), Refusal::FencedInstance);
}

#[test]
fn kafka_and_managed_members_cannot_share_a_live_group() {
    let s = step(&genesis(), &join("m", None, 2), 0);
    assert_eq!(
        refusal(&s, &kjoin("k", &["range"]), 1),
        Refusal::InconsistentProtocol
    );
    let k = step(&genesis(), &kjoin("k", &["range"]), 0);
    assert_eq!(
        refusal(&k, &join("m", None, 2), 1),
        Refusal::InconsistentProtocol
    );
    // Once the other protocol's members are gone, the group changes hands.
    let later = step(&k, &join("m", None, 2), SESSION as i64 + 1);
    assert!(later.round.is_none() && !later.awaiting_sync);
    assert_eq!(later.fetchable("m").len(), 2);
}

#[test]
fn leaving_opens_a_round_for_the_rest() {
    let s = step(&genesis(), &kjoin("a", &["range"]), 0);
    let s = step(&s, &ksync(&s, "a"), 1);
    let s = step(&s, &kjoin("b", &["range"]), 2);
    let s = step(&s, &kjoin("a", &["range"]), 2);
    let s = step(&s, &ksync(&s, "a"), 3);
    let s = step(
        &s,
        &GroupEdit::KafkaLeave {
            member_ids: vec!["a".into()],
        },
        4,
    );
    assert!(s.round.is_some());
    let s = step(&s, &kjoin("b", &["range"]), 5);
    assert_eq!((s.generation, leader(&s)), (3, "b"));
    let s = step(
        &s,
        &GroupEdit::KafkaLeave {
            member_ids: vec!["b".into()],
        },
        6,
    );
    assert!(s.members.is_empty() && s.round.is_none() && !s.awaiting_sync);
}

#[derive(Clone, Debug)]
enum KOp {
    Join(u8),
    Sync,
    Renew(u8),
    Leave(u8),
    Commit(u8),
    Tick(i64),
}

fn kop() -> impl Strategy<Value = KOp> {
    prop_oneof![
        (0u8..4).prop_map(KOp::Join),
        Just(KOp::Sync),
        (0u8..4).prop_map(KOp::Renew),
        (0u8..4).prop_map(KOp::Leave),
        (0u8..4).prop_map(KOp::Commit),
        (0i64..4_000).prop_map(KOp::Tick),
    ]
}

proptest! {
    /// Whatever members do: a round's joined members are members; a round is never left open
    /// with every member joined or past its deadline; a completed generation has a leader who
    /// is a member and a protocol every member supports; generations never move backward;
    /// offsets change only by commits.
    #[test]
    fn classic_rounds_keep_their_invariants(ops in proptest::collection::vec(kop(), 1..80)) {
        let mut s = genesis();
        let mut now = 0i64;
        for op in ops {
            let id = |m: u8| format!("k{m}");
            let edit = match op {
                KOp::Tick(t) => { now += t; GroupEdit::Tick }
                KOp::Join(m) => kjoin(&id(m), if m % 2 == 0 { &["range", "rr"] } else { &["rr", "range"] }),
                KOp::Sync => { let l = match &s.protocol { Protocol::Classic { leader, .. } => leader.clone(), _ => continue }; ksync(&s, &l) }
                KOp::Renew(m) => GroupEdit::KafkaRenew { member_id: id(m) },
                KOp::Leave(m) => GroupEdit::KafkaLeave { member_ids: vec![id(m)] },
                KOp::Commit(m) => kcommit(&id(m), s.generation as i64, now as u64),
            };
            let Ok(next) = apply(&s, &edit, &ctx(now)) else { continue };
            prop_assert!(next.generation >= s.generation);
            if let Some(r) = &next.round {
                prop_assert!(now < r.deadline_ms, "a round past its deadline is still open");
                prop_assert!(next.members.iter().any(|m| !r.joined.contains(&m.id)));
            }
            if next.awaiting_sync || (!next.members.is_empty() && next.round.is_none()) {
                let l = leader(&next);
                prop_assert!(next.member(l).is_some(), "leader {} is not a member", l);
                let p = protocol_name(&next);
                prop_assert!(next.members.iter().all(|m| m.protocols.iter().any(|x| x.name == p)));
            }
            if !matches!(edit, GroupEdit::KafkaCommit { .. }) {
                prop_assert_eq!(&next.offsets, &s.offsets);
            }
            s = next;
        }
    }
}
