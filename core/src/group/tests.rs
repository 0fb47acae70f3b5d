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
