//! Kafka's classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit)
//! as pure transitions of the group state, so that the join barrier lives in the chain and not
//! in any listener: whichever listener serves a request reads and commits the same state.
//!
//! A *round* (Kafka's PreparingRebalance) opens when a member joins, rejoins, leaves or
//! expires. Members join it by sending JoinGroup again; it completes in the edit that makes
//! every member joined, or in the first edit after its deadline (the members' longest
//! rebalance timeout), which removes the members that did not rejoin. Completion bumps the
//! generation, picks the protocol every member supports (by the members' preferences, as
//! Kafka does) and the leader (the old one if it rejoined, else the first member by id), and
//! waits for the leader's assignment (`awaiting_sync`, Kafka's CompletingRebalance).

use std::collections::{BTreeMap, BTreeSet};

use super::edit::{
    GroupEdit, GroupError, OffsetCommit, SESSION_TIMEOUT_MAX_MS, SESSION_TIMEOUT_MIN_MS,
    SUBSCRIBED_TOPICS_MAX, insert_member, remove_member, restart_if_deleted,
};
use super::state::{
    ClassicProtocol, CommittedOffset, GROUP_PARTITIONS_MAX, GroupState,
    MEMBER_ASSIGNMENT_MAX_BYTES, MEMBER_METADATA_MAX_BYTES, MEMBER_PROTOCOLS_MAX, Member,
    OFFSET_METADATA_MAX_BYTES, Ownership, Protocol, Round, TopicPartition,
};

/// Longest rebalance timeout a member may ask for (Kafka clients default to 300 s, their
/// `max.poll.interval.ms`).
pub const REBALANCE_TIMEOUT_MAX_MS: u64 = 3_600_000;
/// Longest member, instance or protocol name, in bytes.
pub const NAME_MAX_BYTES: usize = 255;

/// Why the group refuses a classic-protocol request; each is one Kafka error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    UnknownMember,
    IllegalGeneration,
    RebalanceInProgress,
    InconsistentProtocol,
    FencedInstance,
    InvalidSessionTimeout,
}

/// JoinGroup, as committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaJoin {
    /// Issued by the listener (fresh, never reused) or sent back by the client.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<ClassicProtocol>,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    pub client: String,
    /// The topics the member subscribes to, when its metadata says (for `describe`).
    pub topics: Vec<String>,
}

fn refuse<T>(refusal: Refusal, reason: impl Into<String>) -> Result<T, GroupError> {
    Err(GroupError::Refused(refusal, reason.into()))
}

/// Applies a classic-protocol edit; rounds are opened here, so never asks the caller for a
/// rebalance (returns false).
pub(super) fn apply(next: &mut GroupState, edit: &GroupEdit, now: i64) -> Result<bool, GroupError> {
    match edit {
        GroupEdit::KafkaJoin(j) => join(next, j, now)?,
        GroupEdit::KafkaSync {
            member_id,
            generation,
            assignments,
            owners,
        } => sync(next, member_id, *generation, assignments, owners, now)?,
        GroupEdit::KafkaCommit {
            member_id,
            instance_id,
            generation,
            offsets,
        } => commit(
            next,
            member_id,
            instance_id.as_deref(),
            *generation,
            offsets,
            now,
        )?,
        GroupEdit::KafkaRenew { member_id } => renew(next, member_id, now)?,
        GroupEdit::KafkaLeave { member_ids } => leave(next, member_ids, now),
        GroupEdit::Tick => {}
        other => {
            return Err(GroupError::Invariant(format!(
                "{other:?} is not a classic-protocol edit"
            )));
        }
    }
    Ok(false)
}

fn validate(j: &KafkaJoin) -> Result<(), GroupError> {
    let bad = |m: String| Err(GroupError::Invalid(m));
    let name_ok = |s: &str| !s.is_empty() && s.len() <= NAME_MAX_BYTES;
    if !name_ok(&j.member_id) || j.instance_id.as_deref().is_some_and(|i| !name_ok(i)) {
        return bad(format!(
            "member and instance ids have 1 to {NAME_MAX_BYTES} bytes"
        ));
    }
    if !(SESSION_TIMEOUT_MIN_MS..=SESSION_TIMEOUT_MAX_MS).contains(&j.session_timeout_ms) {
        return refuse(
            Refusal::InvalidSessionTimeout,
            format!(
                "the session timeout is {SESSION_TIMEOUT_MIN_MS} to {SESSION_TIMEOUT_MAX_MS} \
                 ms, not {}",
                j.session_timeout_ms
            ),
        );
    }
    if !(1..=REBALANCE_TIMEOUT_MAX_MS).contains(&j.rebalance_timeout_ms) {
        return bad(format!(
            "the rebalance timeout is 1 to {REBALANCE_TIMEOUT_MAX_MS} ms"
        ));
    }
    if !name_ok(&j.protocol_type)
        || j.protocols.is_empty()
        || j.protocols.len() > MEMBER_PROTOCOLS_MAX
        || j.protocols.iter().any(|p| !name_ok(&p.name))
    {
        return refuse(
            Refusal::InconsistentProtocol,
            format!(
                "a member names a protocol type and 1 to {MEMBER_PROTOCOLS_MAX} protocols, \
                 each of 1 to {NAME_MAX_BYTES} bytes"
            ),
        );
    }
    let metadata: usize = j.protocols.iter().map(|p| p.metadata.len()).sum();
    if metadata > MEMBER_METADATA_MAX_BYTES || j.topics.len() > SUBSCRIBED_TOPICS_MAX {
        return bad(format!(
            "member metadata is at most {MEMBER_METADATA_MAX_BYTES} bytes (base64) and \
             {SUBSCRIBED_TOPICS_MAX} topics"
        ));
    }
    Ok(())
}

/// Refuses a joiner that shares no protocol with the group's other live members.
fn check_protocol(
    next: &GroupState,
    j: &KafkaJoin,
    predecessor: Option<&str>,
    now: i64,
) -> Result<(), GroupError> {
    let others: Vec<&Member> = next
        .live_members(now)
        .filter(|m| m.id != j.member_id && Some(m.id.as_str()) != predecessor)
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    match &next.protocol {
        Protocol::Managed { .. } => refuse(
            Refusal::InconsistentProtocol,
            "the group's live members are `pail consume --group` members (pail's managed \
             protocol); a Kafka client cannot join until they stop",
        ),
        Protocol::Classic { protocol_type, .. } if *protocol_type != j.protocol_type => refuse(
            Refusal::InconsistentProtocol,
            format!(
                "the group's protocol type is {protocol_type:?}, not {:?}",
                j.protocol_type
            ),
        ),
        Protocol::Classic { .. } => {
            let mut common: BTreeSet<&str> = j.protocols.iter().map(|p| p.name.as_str()).collect();
            for m in others {
                let theirs: BTreeSet<&str> = m.protocols.iter().map(|p| p.name.as_str()).collect();
                common.retain(|p| theirs.contains(p));
            }
            if common.is_empty() {
                return refuse(
                    Refusal::InconsistentProtocol,
                    "the member supports none of the protocols every member of the group does",
                );
            }
            Ok(())
        }
    }
}

fn join(next: &mut GroupState, j: &KafkaJoin, now: i64) -> Result<(), GroupError> {
    validate(j)?;
    restart_if_deleted(next);
    let same_instance = |m: &&Member| j.instance_id.is_some() && m.instance_id == j.instance_id;
    let predecessor = next.members.iter().find(same_instance).cloned();
    if let Some(old) = &predecessor
        && old.id != j.member_id
        && next.member(&j.member_id).is_some()
    {
        return refuse(
            Refusal::FencedInstance,
            format!("instance {:?} belongs to member {}", j.instance_id, old.id),
        );
    }
    check_protocol(next, j, predecessor.as_ref().map(|m| m.id.as_str()), now)?;
    if !next.has_live_members(now) || !matches!(next.protocol, Protocol::Classic { .. }) {
        // The first live member decides the protocol type; a managed group's assignment
        // belonged to members that are gone.
        if !matches!(next.protocol, Protocol::Classic { .. }) {
            next.assignment.clear();
        }
        next.protocol = Protocol::Classic {
            protocol_type: j.protocol_type.clone(),
            protocol_name: String::new(),
            leader: String::new(),
        };
    }
    let mut member = Member {
        id: j.member_id.clone(),
        instance_id: j.instance_id.clone(),
        topics: j.topics.clone(),
        session_timeout_ms: j.session_timeout_ms,
        lease_expires_at_ms: now.saturating_add(j.session_timeout_ms as i64),
        client: j.client.clone(),
        metadata: String::new(),
        protocols: j.protocols.clone(),
        rebalance_timeout_ms: j.rebalance_timeout_ms,
        assignment: String::new(),
    };
    match predecessor {
        // A static member back while its predecessor is live: it takes its place, leader
        // role and assignment; a round only if what it supports changed.
        Some(old) if old.id != j.member_id && old.lease_expires_at_ms > now => {
            member.assignment = old.assignment.clone();
            let unchanged = old.protocols == member.protocols;
            replace(next, &old.id, member);
            if !unchanged {
                open_round(next, now);
                mark_joined(next, &j.member_id);
            }
            return Ok(());
        }
        Some(old) if old.id != j.member_id => remove_member(next, &old.id),
        _ => {}
    }
    match next.members.iter_mut().find(|m| m.id == j.member_id) {
        Some(m) => {
            member.assignment = std::mem::take(&mut m.assignment);
            *m = member;
        }
        None => insert_member(next, member)?,
    }
    open_round(next, now);
    mark_joined(next, &j.member_id);
    Ok(())
}

/// Puts `member` in `old`'s place: its partitions, its leader role, its place in the round.
fn replace(next: &mut GroupState, old: &str, member: Member) {
    let new_id = member.id.clone();
    let joined = next.round.as_ref().is_some_and(|r| r.joined.contains(old));
    remove_member(next, old);
    // Cannot fail: one member out, one in.
    let _ = insert_member(next, member);
    if joined {
        mark_joined(next, &new_id);
    }
    for o in next.assignment.values_mut() {
        if o.owner == old {
            o.owner = new_id.clone();
        }
    }
    if let Protocol::Classic { leader, .. } = &mut next.protocol
        && leader == old
    {
        *leader = new_id;
    }
}

fn mark_joined(next: &mut GroupState, id: &str) {
    if let Some(round) = &mut next.round {
        round.joined.insert(id.to_string());
    }
}

/// Opens a round if none is open, or extends its deadline to cover every member's rebalance
/// timeout. A pending SyncGroup is superseded: its generation will be replaced.
pub(super) fn open_round(next: &mut GroupState, now: i64) {
    let longest = next
        .members
        .iter()
        .map(|m| m.rebalance_timeout_ms)
        .max()
        .unwrap_or(0) as i64;
    next.awaiting_sync = false;
    // Partitions of members that left or expired have no owner until the next generation.
    let members: BTreeSet<String> = next.members.iter().map(|m| m.id.clone()).collect();
    next.assignment.retain(|_, o| members.contains(&o.owner));
    match &mut next.round {
        Some(r) => r.deadline_ms = r.deadline_ms.max(r.started_at_ms.saturating_add(longest)),
        None => {
            next.round = Some(Round {
                started_at_ms: now,
                deadline_ms: now.saturating_add(longest),
                joined: BTreeSet::new(),
            });
        }
    }
}

/// Completes the open round if every member joined or its deadline passed (removing the
/// members that did not join).
pub(super) fn settle(next: &mut GroupState, now: i64) {
    let Some(round) = &next.round else {
        return;
    };
    let all = next.members.iter().all(|m| round.joined.contains(&m.id));
    if !all && now < round.deadline_ms {
        return;
    }
    let joined = round.joined.clone();
    next.members.retain(|m| joined.contains(&m.id));
    complete(next);
}

/// A new generation from the members of the completed round.
fn complete(next: &mut GroupState) {
    next.round = None;
    next.generation += 1;
    next.assignment.clear();
    for m in &mut next.members {
        m.assignment.clear();
    }
    let Protocol::Classic {
        protocol_name,
        leader,
        ..
    } = &mut next.protocol
    else {
        return;
    };
    let Some(first) = next.members.first() else {
        protocol_name.clear();
        leader.clear();
        next.awaiting_sync = false;
        return;
    };
    if !next.members.iter().any(|m| m.id == *leader) {
        *leader = first.id.clone();
    }
    *protocol_name = choose_protocol(&next.members);
    next.awaiting_sync = true;
}

/// Kafka's choice: among the protocols every member supports, the one most members prefer
/// (each member votes for its first supported one); ties go to the smallest name.
pub fn choose_protocol(members: &[Member]) -> String {
    let mut common: Option<BTreeSet<&str>> = None;
    for m in members {
        let theirs: BTreeSet<&str> = m.protocols.iter().map(|p| p.name.as_str()).collect();
        common = Some(match common {
            None => theirs,
            Some(c) => c.intersection(&theirs).copied().collect(),
        });
    }
    let common = common.unwrap_or_default();
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in members {
        if let Some(p) = m
            .protocols
            .iter()
            .find(|p| common.contains(p.name.as_str()))
        {
            *votes.entry(p.name.as_str()).or_default() += 1;
        }
    }
    let most = votes.values().copied().max().unwrap_or(0);
    votes
        .into_iter()
        .find(|&(_, n)| n == most && n > 0)
        .map(|(name, _)| name.to_string())
        .unwrap_or_default()
}

fn sync(
    next: &mut GroupState,
    member_id: &str,
    generation: u64,
    assignments: &BTreeMap<String, String>,
    owners: &BTreeMap<TopicPartition, String>,
    now: i64,
) -> Result<(), GroupError> {
    check_member(next, member_id, None, generation as i64, now)?;
    let Protocol::Classic { leader, .. } = &next.protocol else {
        return refuse(
            Refusal::InconsistentProtocol,
            "not a classic-protocol group",
        );
    };
    if leader != member_id {
        return Err(GroupError::Invalid(format!(
            "member {member_id} is not the leader ({leader}): only the leader assigns"
        )));
    }
    if !next.awaiting_sync {
        return Err(GroupError::Invalid(format!(
            "generation {generation} already has its assignment"
        )));
    }
    if assignments
        .values()
        .any(|a| a.len() > MEMBER_ASSIGNMENT_MAX_BYTES)
        || owners.len() > GROUP_PARTITIONS_MAX
    {
        return Err(GroupError::Invalid(format!(
            "an assignment is at most {MEMBER_ASSIGNMENT_MAX_BYTES} bytes (base64) per member \
             and {GROUP_PARTITIONS_MAX} partitions"
        )));
    }
    for m in &mut next.members {
        m.assignment = assignments.get(&m.id).cloned().unwrap_or_default();
    }
    next.assignment = owners
        .iter()
        .filter(|(_, owner)| next.members.iter().any(|m| &m.id == *owner))
        .map(|(tp, owner)| {
            let o = Ownership {
                owner: owner.clone(),
                next: None,
                since_generation: generation,
            };
            (tp.clone(), o)
        })
        .collect();
    next.awaiting_sync = false;
    renew(next, member_id, now)
}

/// Kafka's checks of a member's request, in Kafka's order: fenced instance, unknown member,
/// wrong generation, then a rebalance in progress.
pub fn check_member(
    s: &GroupState,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i64,
    now: i64,
) -> Result<(), GroupError> {
    if let Some(instance) = instance_id
        && let Some(holder) = s
            .members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some(instance))
        && holder.id != member_id
    {
        return refuse(
            Refusal::FencedInstance,
            format!("instance {instance:?} now belongs to member {}", holder.id),
        );
    }
    match s.member(member_id) {
        Some(m) if m.lease_expires_at_ms > now => {}
        _ => {
            return refuse(
                Refusal::UnknownMember,
                format!(
                    "member {member_id:?} is not in the group (it left, or its session timed out)"
                ),
            );
        }
    }
    if generation != s.generation as i64 {
        return refuse(
            Refusal::IllegalGeneration,
            format!(
                "generation {generation} is not the group's generation {}",
                s.generation
            ),
        );
    }
    if s.round.is_some() {
        return refuse(Refusal::RebalanceInProgress, "the group is rebalancing");
    }
    Ok(())
}

fn commit(
    next: &mut GroupState,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i64,
    offsets: &[OffsetCommit],
    now: i64,
) -> Result<(), GroupError> {
    if generation < 0 && member_id.is_empty() {
        let live = next.live_members(now).count();
        if live > 0 {
            return refuse(
                Refusal::UnknownMember,
                format!(
                    "a commit from outside the group (generation -1, no member id) while it \
                     has {live} live members"
                ),
            );
        }
        next.deleted = false;
    } else {
        // A commit during an open round is accepted (eager clients commit on revoke, before
        // they join again); only the generation between join and sync is refused.
        match check_member(next, member_id, instance_id, generation, now) {
            Err(GroupError::Refused(Refusal::RebalanceInProgress, _)) | Ok(()) => {}
            Err(e) => return Err(e),
        }
        if next.awaiting_sync {
            return refuse(
                Refusal::RebalanceInProgress,
                "the group's leader has not assigned the new generation yet",
            );
        }
        renew(next, member_id, now)?;
    }
    for c in offsets {
        if c.metadata.len() > OFFSET_METADATA_MAX_BYTES {
            return Err(GroupError::Invalid(format!(
                "offset metadata is at most {OFFSET_METADATA_MAX_BYTES} bytes"
            )));
        }
        let committed = CommittedOffset {
            offset: c.offset,
            metadata: c.metadata.clone(),
            committed_at_ms: now,
        };
        next.offsets.insert(c.tp.clone(), committed);
    }
    if next.offsets.len() > GROUP_PARTITIONS_MAX {
        return Err(GroupError::Invalid(format!(
            "a group tracks at most {GROUP_PARTITIONS_MAX} partitions"
        )));
    }
    Ok(())
}

fn renew(next: &mut GroupState, member_id: &str, now: i64) -> Result<(), GroupError> {
    match next.members.iter_mut().find(|m| m.id == member_id) {
        Some(m) => {
            m.lease_expires_at_ms = now.saturating_add(m.session_timeout_ms as i64);
            Ok(())
        }
        None => refuse(
            Refusal::UnknownMember,
            format!("member {member_id:?} is not in the group"),
        ),
    }
}

fn leave(next: &mut GroupState, member_ids: &[String], now: i64) {
    let before = next.members.len();
    for id in member_ids {
        remove_member(next, id);
    }
    if next.members.len() != before && matches!(next.protocol, Protocol::Classic { .. }) {
        open_round(next, now);
    }
}

/// The group's state as Kafka names it.
pub fn kafka_state(s: &GroupState, now: i64) -> &'static str {
    if s.deleted || s.version == 0 {
        "Dead"
    } else if s.round.is_some() {
        "PreparingRebalance"
    } else if !s.has_live_members(now) {
        "Empty"
    } else if s.awaiting_sync || s.assignment.values().any(|o| o.next.is_some()) {
        "CompletingRebalance"
    } else {
        "Stable"
    }
}

/// The metadata `member` gave for the group's chosen protocol (base64; empty if none).
pub fn chosen_metadata<'a>(s: &GroupState, member: &'a Member) -> &'a str {
    let Protocol::Classic { protocol_name, .. } = &s.protocol else {
        return &member.metadata;
    };
    member
        .protocols
        .iter()
        .find(|p| p.name == *protocol_name)
        .map_or("", |p| p.metadata.as_str())
}

/// True when a member waiting on the group should commit a [`GroupEdit::Tick`]: a member's
/// lease ran out, or the open round is past its deadline.
pub fn tick_due(s: &GroupState, now: i64) -> bool {
    s.members.iter().any(|m| m.lease_expires_at_ms <= now)
        || s.round.as_ref().is_some_and(|r| now >= r.deadline_ms)
}

/// True when `member`'s lease should be renewed: a third of its session is gone.
pub fn renew_due(s: &GroupState, member: &str, now: i64) -> bool {
    s.member(member).is_some_and(|m| {
        let left = m.lease_expires_at_ms - now;
        left < (m.session_timeout_ms as i64) * 2 / 3
    })
}
