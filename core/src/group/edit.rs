//! Changes to a group and the pure function that applies them.
//!
//! `apply(prev, edit, ctx)` never does I/O: the same inputs give the same successor, so every
//! member that commits a change computes the same assignment, and the function is
//! property-tested directly. The commit loop (`crate::chain::commit`) creates the result as the
//! chain's next version, or re-applies the edit on a newer version after a lost race.

use std::collections::{BTreeMap, BTreeSet};

use super::assign::{Subscriber, assign};
use super::classic::{self, KafkaJoin, Refusal};
use super::state::{
    Assignor, CommittedOffset, GROUP_FORMAT, GroupState, MEMBER_METADATA_MAX_BYTES, MEMBERS_MAX,
    Member, OFFSET_METADATA_MAX_BYTES, Ownership, Protocol, TopicPartition, check_successor,
};

/// Shortest and longest session timeouts a member may ask for.
pub const SESSION_TIMEOUT_MIN_MS: u64 = 1_000;
pub const SESSION_TIMEOUT_MAX_MS: u64 = 3_600_000;
/// Most topics one member may subscribe to.
pub const SUBSCRIBED_TOPICS_MAX: usize = 1000;

/// One offset to commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommit {
    pub tp: TopicPartition,
    /// The next offset to consume.
    pub offset: u64,
    pub metadata: String,
}

/// A member joining (or a static member returning).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Join {
    /// Chosen by the caller, fresh for every join (the group plays coordinator: ids are never
    /// reused, so a zombie's id can never come back).
    pub member_id: String,
    pub instance_id: Option<String>,
    pub topics: BTreeSet<String>,
    pub session_timeout_ms: u64,
    pub client: String,
    pub metadata: String,
    /// Partition counts of the subscribed topics, read by the joiner from their descriptors.
    pub partitions: BTreeMap<String, u32>,
    /// The protocol the member speaks; must match a group that has live members.
    pub protocol: Protocol,
}

/// A member's periodic write: renew its lease, commit offsets, release what it was asked to
/// hand over. One write does all three, so an offset commit costs no extra request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Heartbeat {
    pub member_id: String,
    /// The generation the member last saw.
    pub generation: u64,
    pub offsets: Vec<OffsetCommit>,
    pub release: Vec<TopicPartition>,
    /// Partition counts the member has seen change (a topic grew), to rebalance over them.
    pub partitions: Option<BTreeMap<String, u32>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupEdit {
    Join(Join),
    Heartbeat(Heartbeat),
    /// Commit `offsets`, then leave: the member's partitions go to their next owners now.
    Leave {
        member_id: String,
        generation: u64,
        offsets: Vec<OffsetCommit>,
    },
    /// Kafka's classic protocol: the client-side leader hands over the assignment for
    /// `generation` (SyncGroup).
    SetAssignment {
        member_id: String,
        generation: u64,
        assignment: BTreeMap<TopicPartition, String>,
    },
    /// An operator sets committed offsets; refused while any member is live.
    ResetOffsets {
        offsets: BTreeMap<TopicPartition, u64>,
    },
    /// An operator deletes the group; refused while any member is live.
    Delete,
    /// Kafka's classic protocol (`super::classic`): JoinGroup.
    KafkaJoin(KafkaJoin),
    /// SyncGroup from the leader: each member's opaque assignment for `generation`, and for
    /// protocol type "consumer" the partitions it names, decoded.
    KafkaSync {
        member_id: String,
        generation: u64,
        assignments: BTreeMap<String, String>,
        owners: BTreeMap<TopicPartition, String>,
    },
    /// OffsetCommit under Kafka's rules (generation -1 with an empty member id: a "simple"
    /// commit, only into a group with no live member). Also renews the member's lease.
    KafkaCommit {
        member_id: String,
        instance_id: Option<String>,
        generation: i64,
        offsets: Vec<OffsetCommit>,
    },
    /// Renews a member's lease (a heartbeat, or a member waiting in JoinGroup or SyncGroup).
    KafkaRenew {
        member_id: String,
    },
    /// LeaveGroup: these members go (absent ones are already gone).
    KafkaLeave {
        member_ids: Vec<String>,
    },
    /// Nothing but the common tail: remove expired members, complete a round past its
    /// deadline.
    Tick,
}

/// Who is committing and when, supplied by the commit loop.
#[derive(Clone, Copy, Debug)]
pub struct GroupCtx<'a> {
    pub writer: &'a str,
    pub commit_id: &'a str,
    pub digest: &'a str,
    pub now_ms: i64,
}

/// Why an edit cannot apply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("member {0} is not in the group (it left, or its session timed out); join again")]
    UnknownMember(String),
    #[error("{0}")]
    Fenced(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the group has {0} live members; stop them first")]
    Active(usize),
    #[error("invariant broken: {0}")]
    Invariant(String),
    #[error("{1}")]
    Refused(Refusal, String),
}

/// Applies `edit` to `prev`, returning the group's next state.
pub fn apply(
    prev: &GroupState,
    edit: &GroupEdit,
    ctx: &GroupCtx<'_>,
) -> Result<GroupState, GroupError> {
    let mut next = skeleton(prev, ctx);
    let rebalance = match edit {
        GroupEdit::Join(join) => apply_join(&mut next, join, ctx.now_ms)?,
        GroupEdit::Heartbeat(hb) => apply_heartbeat(&mut next, hb, ctx.now_ms)?,
        GroupEdit::Leave {
            member_id,
            generation,
            offsets,
        } => apply_leave(&mut next, member_id, *generation, offsets, ctx.now_ms)?,
        GroupEdit::SetAssignment {
            member_id,
            generation,
            assignment,
        } => apply_set_assignment(&mut next, member_id, *generation, assignment)?,
        GroupEdit::ResetOffsets { offsets } => {
            refuse_if_live(&next, ctx.now_ms)?;
            for (tp, &offset) in offsets {
                next.offsets.insert(
                    tp.clone(),
                    CommittedOffset {
                        offset,
                        metadata: String::new(),
                        committed_at_ms: ctx.now_ms,
                    },
                );
            }
            false
        }
        GroupEdit::Delete => {
            refuse_if_live(&next, ctx.now_ms)?;
            next.deleted = true;
            next.members.clear();
            next.assignment.clear();
            next.offsets.clear();
            next.topics.clear();
            next.round = None;
            next.awaiting_sync = false;
            false
        }
        classic_edit => classic::apply(&mut next, classic_edit, ctx.now_ms)?,
    };
    // Any change removes the members whose lease ran out; that, too, is a rebalance.
    let expired = remove_expired(&mut next, ctx.now_ms);
    if rebalance || expired {
        rebalance_now(&mut next, ctx.now_ms);
    }
    classic::settle(&mut next, ctx.now_ms);
    check_successor(prev, &next).map_err(GroupError::Invariant)?;
    Ok(next)
}

fn skeleton(prev: &GroupState, ctx: &GroupCtx<'_>) -> GroupState {
    GroupState {
        format: GROUP_FORMAT,
        version: prev.version + 1,
        writer: ctx.writer.to_string(),
        commit_id: ctx.commit_id.to_string(),
        digest: ctx.digest.to_string(),
        prev_commit_id: prev.commit_id.clone(),
        committed_at_ms: ctx.now_ms,
        ..prev.clone()
    }
}

pub(super) fn refuse_if_live(state: &GroupState, now_ms: i64) -> Result<(), GroupError> {
    match state.live_members(now_ms).count() {
        0 => Ok(()),
        n => Err(GroupError::Active(n)),
    }
}

/// Adds the member; true when the group must rebalance.
fn apply_join(next: &mut GroupState, join: &Join, now_ms: i64) -> Result<bool, GroupError> {
    validate_join(join)?;
    restart_if_deleted(next);
    if next.member(&join.member_id).is_some() {
        return Err(GroupError::Invalid(format!(
            "member id {} is already in the group",
            join.member_id
        )));
    }
    if next.has_live_members(now_ms) && next.protocol != join.protocol {
        let speaks = match &next.protocol {
            Protocol::Classic { protocol_type, .. } => {
                format!("Kafka's classic protocol (type {protocol_type:?}), through `pail kafka`")
            }
            Protocol::Managed { assignor } => format!("pail's managed protocol ({assignor:?})"),
        };
        return Err(GroupError::Refused(
            Refusal::InconsistentProtocol,
            format!(
                "the group's live members speak {speaks}; a member of another protocol cannot \
                 join until they leave"
            ),
        ));
    }
    next.protocol = join.protocol.clone();
    // A managed group has no rounds (the classic members left are expired, removed below).
    next.round = None;
    next.awaiting_sync = false;
    let member = Member {
        id: join.member_id.clone(),
        instance_id: join.instance_id.clone(),
        topics: join.topics.iter().cloned().collect(),
        session_timeout_ms: join.session_timeout_ms,
        lease_expires_at_ms: now_ms.saturating_add(join.session_timeout_ms as i64),
        client: join.client.clone(),
        metadata: join.metadata.clone(),
        protocols: Vec::new(),
        rebalance_timeout_ms: 0,
        assignment: String::new(),
    };
    let returning = join.instance_id.as_ref().and_then(|instance| {
        next.members
            .iter()
            .find(|m| m.instance_id.as_ref() == Some(instance))
            .cloned()
    });
    let topics_changed = merge_partitions(next, &join.partitions);
    match returning {
        // A static member back within its session timeout, with the same subscription: it
        // takes its predecessor's place and partitions; no rebalance. The predecessor's id is
        // gone, so that process (if it still runs) is fenced.
        Some(old) if old.lease_expires_at_ms > now_ms && old.topics == member.topics => {
            replace_member(next, &old.id, member);
            Ok(topics_changed)
        }
        Some(old) => {
            remove_member(next, &old.id);
            insert_member(next, member)?;
            Ok(true)
        }
        None => {
            insert_member(next, member)?;
            Ok(true)
        }
    }
}

/// A deleted group starts over when someone joins, keeping its generation so that nothing
/// stale matches.
pub(super) fn restart_if_deleted(next: &mut GroupState) {
    if next.deleted {
        next.deleted = false;
        next.members.clear();
        next.assignment.clear();
        next.offsets.clear();
    }
}

pub(super) fn validate_join(join: &Join) -> Result<(), GroupError> {
    let bad = |m: String| Err(GroupError::Invalid(m));
    if join.member_id.is_empty() || join.member_id.len() > 255 {
        return bad("a member id has 1 to 255 bytes".into());
    }
    if join
        .instance_id
        .as_ref()
        .is_some_and(|i| i.is_empty() || i.len() > 255)
    {
        return bad("an instance id has 1 to 255 bytes".into());
    }
    if join.topics.is_empty() || join.topics.len() > SUBSCRIBED_TOPICS_MAX {
        return bad(format!(
            "a member subscribes to 1 to {SUBSCRIBED_TOPICS_MAX} topics"
        ));
    }
    if !(SESSION_TIMEOUT_MIN_MS..=SESSION_TIMEOUT_MAX_MS).contains(&join.session_timeout_ms) {
        return bad(format!(
            "the session timeout is {SESSION_TIMEOUT_MIN_MS} to {SESSION_TIMEOUT_MAX_MS} ms, not {}",
            join.session_timeout_ms
        ));
    }
    if join.metadata.len() > MEMBER_METADATA_MAX_BYTES {
        return bad(format!(
            "member metadata is at most {MEMBER_METADATA_MAX_BYTES} bytes"
        ));
    }
    Ok(())
}

/// Records partition counts; true when a count changed (a topic grew).
fn merge_partitions(next: &mut GroupState, counts: &BTreeMap<String, u32>) -> bool {
    let mut changed = false;
    for (topic, &n) in counts {
        if next.topics.get(topic) != Some(&n) {
            next.topics.insert(topic.clone(), n);
            changed = true;
        }
    }
    changed
}

pub(super) fn insert_member(next: &mut GroupState, member: Member) -> Result<(), GroupError> {
    if next.members.len() >= MEMBERS_MAX {
        return Err(GroupError::Invalid(format!(
            "the group is full ({MEMBERS_MAX} members)"
        )));
    }
    let at = next
        .members
        .binary_search_by(|m| m.id.cmp(&member.id))
        .unwrap_or_else(|i| i);
    next.members.insert(at, member);
    Ok(())
}

pub(super) fn remove_member(next: &mut GroupState, id: &str) {
    next.members.retain(|m| m.id != id);
    if let Some(round) = &mut next.round {
        round.joined.remove(id);
    }
}

/// Puts `member` in `old`'s place, with `old`'s partitions.
fn replace_member(next: &mut GroupState, old: &str, member: Member) {
    let new_id = member.id.clone();
    remove_member(next, old);
    // Cannot fail: one member out, one in.
    let _ = insert_member(next, member);
    for o in next.assignment.values_mut() {
        if o.owner == old {
            o.owner = new_id.clone();
        }
        if o.next.as_deref() == Some(old) {
            o.next = Some(new_id.clone());
        }
    }
}

fn apply_heartbeat(next: &mut GroupState, hb: &Heartbeat, now_ms: i64) -> Result<bool, GroupError> {
    let Some(member) = next.members.iter_mut().find(|m| m.id == hb.member_id) else {
        return Err(GroupError::UnknownMember(hb.member_id.clone()));
    };
    member.lease_expires_at_ms = now_ms.saturating_add(member.session_timeout_ms as i64);
    commit_offsets(next, &hb.member_id, hb.generation, &hb.offsets, now_ms)?;
    for tp in &hb.release {
        release(next, &hb.member_id, tp);
    }
    Ok(hb
        .partitions
        .as_ref()
        .is_some_and(|p| merge_partitions(next, p)))
}

fn apply_leave(
    next: &mut GroupState,
    member_id: &str,
    generation: u64,
    offsets: &[OffsetCommit],
    now_ms: i64,
) -> Result<bool, GroupError> {
    if next.member(member_id).is_none() {
        return Err(GroupError::UnknownMember(member_id.to_string()));
    }
    commit_offsets(next, member_id, generation, offsets, now_ms)?;
    remove_member(next, member_id);
    Ok(true)
}

fn apply_set_assignment(
    next: &mut GroupState,
    member_id: &str,
    generation: u64,
    assignment: &BTreeMap<TopicPartition, String>,
) -> Result<bool, GroupError> {
    let Protocol::Classic { leader, .. } = &next.protocol else {
        return Err(GroupError::Invalid(
            "only a classic-protocol group takes an assignment from a member".into(),
        ));
    };
    if leader != member_id {
        return Err(GroupError::Fenced(format!(
            "member {member_id} is not the group's leader ({leader})"
        )));
    }
    if generation != next.generation {
        return Err(GroupError::Fenced(format!(
            "generation {generation} is not the group's generation {}",
            next.generation
        )));
    }
    let mut owners = BTreeMap::new();
    for (tp, m) in assignment {
        if next.member(m).is_none() {
            return Err(GroupError::Invalid(format!(
                "{tp} is assigned to unknown member {m}"
            )));
        }
        owners.insert(
            tp.clone(),
            Ownership {
                owner: m.clone(),
                next: None,
                since_generation: generation,
            },
        );
    }
    next.assignment = owners;
    Ok(false)
}

/// Commits offsets for partitions `member` owns. A commit for a partition it does not own, or
/// from a generation before it received the partition, is refused: a zombie is fenced.
fn commit_offsets(
    next: &mut GroupState,
    member: &str,
    generation: u64,
    offsets: &[OffsetCommit],
    now_ms: i64,
) -> Result<(), GroupError> {
    if generation > next.generation {
        return Err(GroupError::Invalid(format!(
            "generation {generation} is ahead of the group's {}",
            next.generation
        )));
    }
    for c in offsets {
        if c.metadata.len() > OFFSET_METADATA_MAX_BYTES {
            return Err(GroupError::Invalid(format!(
                "offset metadata is at most {OFFSET_METADATA_MAX_BYTES} bytes"
            )));
        }
        match next.assignment.get(&c.tp) {
            Some(o) if o.owner == member && generation >= o.since_generation => {}
            Some(o) if o.owner == member => {
                return Err(GroupError::Fenced(format!(
                    "{} was given to member {member} again at generation {}; a commit from \
                     generation {generation} is stale",
                    c.tp, o.since_generation
                )));
            }
            _ => {
                return Err(GroupError::Fenced(format!(
                    "member {member} does not own {} any more",
                    c.tp
                )));
            }
        }
        next.offsets.insert(
            c.tp.clone(),
            CommittedOffset {
                offset: c.offset,
                metadata: c.metadata.clone(),
                committed_at_ms: now_ms,
            },
        );
    }
    Ok(())
}

/// Hands `tp` over from `member` to the member waiting for it.
fn release(next: &mut GroupState, member: &str, tp: &TopicPartition) {
    let generation = next.generation;
    if let Some(o) = next.assignment.get_mut(tp)
        && o.owner == member
        && let Some(to) = o.next.take()
    {
        o.owner = to;
        o.since_generation = generation;
    }
}

/// Removes members whose lease has run out; true if any was removed.
fn remove_expired(next: &mut GroupState, now_ms: i64) -> bool {
    let expired: Vec<String> = next
        .members
        .iter()
        .filter(|m| m.lease_expires_at_ms <= now_ms)
        .map(|m| m.id.clone())
        .collect();
    for id in &expired {
        remove_member(next, id);
    }
    !expired.is_empty()
}

/// A new generation with a new assignment. Managed groups compute it; a partition whose owner
/// is still a member moves in two phases (the owner is asked to release it to the new member);
/// one whose owner is gone moves at once. Classic groups open a rebalance round instead
/// (`classic::open_round`): the generation moves when the round completes.
fn rebalance_now(next: &mut GroupState, now_ms: i64) {
    let assignor = match &next.protocol {
        Protocol::Managed { assignor } => *assignor,
        Protocol::Classic { .. } => {
            classic::open_round(next, now_ms);
            return;
        }
    };
    next.generation += 1;
    let generation = next.generation;
    let present: BTreeSet<&str> = next.members.iter().map(|m| m.id.as_str()).collect();
    let current: BTreeMap<TopicPartition, String> = next
        .assignment
        .iter()
        .filter_map(|(tp, o)| {
            let holder = o.next.clone().unwrap_or_else(|| o.owner.clone());
            present
                .contains(holder.as_str())
                .then(|| (tp.clone(), holder))
        })
        .collect();
    let subscribers: Vec<Subscriber> = next
        .members
        .iter()
        .map(|m| Subscriber {
            id: m.id.clone(),
            topics: m.topics.iter().cloned().collect(),
        })
        .collect();
    let subscribed: BTreeSet<&String> = next.members.iter().flat_map(|m| &m.topics).collect();
    let partitions: BTreeMap<String, u32> = next
        .topics
        .iter()
        .filter(|(t, _)| subscribed.contains(t))
        .map(|(t, &n)| (t.clone(), n))
        .collect();
    let desired = assign(assignor, &subscribers, &partitions, &current);
    let mut assignment = BTreeMap::new();
    for (tp, want) in desired {
        let ownership = match next.assignment.get(&tp) {
            Some(o) if present.contains(o.owner.as_str()) => Ownership {
                next: (o.owner != want).then_some(want),
                ..o.clone()
            },
            _ => Ownership {
                owner: want,
                next: None,
                since_generation: generation,
            },
        };
        assignment.insert(tp, ownership);
    }
    next.assignment = assignment;
}

/// The member-facing default protocol.
pub fn managed(assignor: Assignor) -> Protocol {
    Protocol::Managed { assignor }
}
