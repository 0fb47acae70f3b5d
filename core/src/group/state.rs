//! A consumer group's state as of one version of its chain.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::GroupName;
use crate::chain::Versioned;

/// The group state format this build writes and the only one it reads.
pub const GROUP_FORMAT: u32 = 1;
/// Most members one group may have.
pub const MEMBERS_MAX: usize = 1000;
/// Most partitions one group may track (assignment plus committed offsets).
pub const GROUP_PARTITIONS_MAX: usize = 10_000;
/// Longest offset-commit metadata string, in bytes (Kafka's `offset.metadata.max.bytes`).
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;
/// Longest member metadata (the classic protocol's subscription bytes, base64, all of a
/// member's protocols together), in bytes.
pub const MEMBER_METADATA_MAX_BYTES: usize = 16 * 1024;
/// Longest assignment a classic-protocol leader may give one member (base64), in bytes.
pub const MEMBER_ASSIGNMENT_MAX_BYTES: usize = 16 * 1024;
/// Most protocols (assignors) one classic-protocol member may offer.
pub const MEMBER_PROTOCOLS_MAX: usize = 16;

/// A topic and one of its partitions. Stored as `"topic/partition"` (topic names cannot hold a
/// `/`), so it can key a JSON map.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl From<TopicPartition> for String {
    fn from(tp: TopicPartition) -> String {
        tp.to_string()
    }
}

impl TryFrom<String> for TopicPartition {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (topic, partition) = s
            .rsplit_once('/')
            .ok_or_else(|| format!("{s:?} is not topic/partition"))?;
        let partition = partition
            .parse()
            .map_err(|_| format!("{s:?} does not end in a partition number"))?;
        Ok(TopicPartition::new(topic, partition))
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// How partitions are spread over members when membership changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assignor {
    /// Each topic's partitions in ranges over the members subscribed to it (Kafka's default).
    Range,
    /// All partitions dealt out one by one over the members.
    RoundRobin,
    /// Balanced, and partitions stay where they are whenever balance allows.
    #[default]
    Sticky,
}

impl Assignor {
    pub fn as_str(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "round-robin",
            Assignor::Sticky => "sticky",
        }
    }
}

/// Who computes the assignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Protocol {
    /// pail computes it: whichever member commits a membership change also commits the new
    /// assignment, deterministically from the state, with this assignor.
    Managed { assignor: Assignor },
    /// Kafka's classic protocol: a client-side leader computes it and hands it over in
    /// SyncGroup; the state keeps what the leader supplied.
    Classic {
        protocol_type: String,
        protocol_name: String,
        leader: String,
    },
}

/// One member of the group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Issued by the group (the coordinator), fresh at every join.
    pub id: String,
    /// Kafka's `group.instance.id`: a member that returns under the same instance id within its
    /// session timeout takes its predecessor's place and partitions, with no rebalance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Topics the member subscribes to, sorted.
    pub topics: Vec<String>,
    pub session_timeout_ms: u64,
    /// The member's lease on its membership: past this, the next change removes it. Written
    /// by the member's own clock; clocks only decide liveness.
    pub lease_expires_at_ms: i64,
    /// Free text naming the client (host, process), for `describe`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client: String,
    /// Classic protocol subscription metadata, base64.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// Classic protocol: the protocols (assignors) the member supports, in its order of
    /// preference, each with its metadata.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<ClassicProtocol>,
    /// Classic protocol: how long a rebalance round waits for this member to join again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rebalance_timeout_ms: u64,
    /// Classic protocol: the opaque assignment (base64) the leader gave this member for the
    /// current generation; empty until the leader's SyncGroup is in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub assignment: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One protocol a classic-protocol member offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassicProtocol {
    pub name: String,
    /// The member's metadata for this protocol, base64.
    pub metadata: String,
}

/// A classic-protocol rebalance round being prepared (Kafka's PreparingRebalance): it
/// completes when every member has joined again, or at its deadline without the laggards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    pub started_at_ms: i64,
    pub deadline_ms: i64,
    /// Members that joined (again) during this round.
    pub joined: std::collections::BTreeSet<String>,
}

/// Who owns a partition, and who is waiting for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// The member that may fetch the partition now.
    pub owner: String,
    /// The member the partition moves to once `owner` releases it (two-phase moves: no
    /// partition is ever fetched by two live members at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The generation at which `owner` received the partition: offset commits from an older
    /// generation are refused, so a member that lost and regained a partition cannot commit a
    /// stale offset from its first tenure.
    pub since_generation: u64,
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// The next offset to consume (Kafka's convention).
    pub offset: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    pub committed_at_ms: i64,
}

/// The state of one consumer group as of one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    pub format: u32,
    pub group: String,
    pub version: u64,
    pub writer: String,
    pub commit_id: String,
    pub digest: String,
    /// The commit id of the version this one was built on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prev_commit_id: String,
    pub committed_at_ms: i64,
    /// Bumped by every rebalance (a membership or subscription change).
    pub generation: u64,
    pub protocol: Protocol,
    /// Sorted by id.
    pub members: Vec<Member>,
    /// Partition counts of the subscribed topics, as of the last rebalance.
    pub topics: BTreeMap<String, u32>,
    pub assignment: BTreeMap<TopicPartition, Ownership>,
    pub offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// Set by `pail group delete`: the group is gone until someone joins again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Classic protocol: the open rebalance round, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<Round>,
    /// Classic protocol: a generation formed and its leader's assignment not yet in (Kafka's
    /// CompletingRebalance).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_sync: bool,
}

impl GroupState {
    /// The group before anything was written (version 0, never stored).
    pub fn genesis(group: &GroupName) -> Self {
        GroupState {
            format: GROUP_FORMAT,
            group: group.to_string(),
            version: 0,
            writer: String::new(),
            commit_id: String::new(),
            digest: String::new(),
            prev_commit_id: String::new(),
            committed_at_ms: 0,
            generation: 0,
            protocol: Protocol::Managed {
                assignor: Assignor::default(),
            },
            members: Vec::new(),
            topics: BTreeMap::new(),
            assignment: BTreeMap::new(),
            offsets: BTreeMap::new(),
            deleted: false,
            round: None,
            awaiting_sync: false,
        }
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Members whose lease has not run out at `now_ms`.
    pub fn live_members(&self, now_ms: i64) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(move |m| m.lease_expires_at_ms > now_ms)
    }

    /// Partitions `member` may fetch now: owned and not being handed over.
    pub fn fetchable(&self, member: &str) -> Vec<TopicPartition> {
        self.assignment
            .iter()
            .filter(|(_, o)| o.owner == member && o.next.is_none())
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Partitions `member` owns but must hand over (commit, then release).
    pub fn revoking(&self, member: &str) -> Vec<TopicPartition> {
        self.assignment
            .iter()
            .filter(|(_, o)| o.owner == member && o.next.is_some())
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// True when any member is live at `now_ms`.
    pub fn has_live_members(&self, now_ms: i64) -> bool {
        self.live_members(now_ms).next().is_some()
    }

    pub fn encode(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(self).map_err(|e| format!("group state does not encode: {e}"))
    }

    /// Decodes a stored version and checks it on its own.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let s: GroupState = serde_json::from_slice(bytes)
            .map_err(|e| format!("group state does not decode: {e}"))?;
        s.check_self()?;
        Ok(s)
    }

    /// The invariants that hold for any single version.
    pub fn check_self(&self) -> Result<(), String> {
        if self.format != GROUP_FORMAT {
            return Err(format!(
                "unknown group format {} (this build reads {GROUP_FORMAT})",
                self.format
            ));
        }
        if self.version == 0 {
            return Err("stored group state has version 0".into());
        }
        if self.members.len() > MEMBERS_MAX {
            return Err(format!(
                "{} members, over {MEMBERS_MAX}",
                self.members.len()
            ));
        }
        if !self.members.windows(2).all(|w| w[0].id < w[1].id) {
            return Err("members are not sorted by id, or repeat".into());
        }
        let tracked = self.assignment.len().max(self.offsets.len());
        if tracked > GROUP_PARTITIONS_MAX {
            return Err(format!("{tracked} partitions, over {GROUP_PARTITIONS_MAX}"));
        }
        if let Some(round) = &self.round
            && round.joined.iter().any(|id| self.member(id).is_none())
        {
            return Err("a member joined the open round but is not in the group".into());
        }
        let classic = matches!(self.protocol, Protocol::Classic { .. });
        if (self.round.is_some() || self.awaiting_sync) && !classic {
            return Err("a rebalance round in a group that is not classic-protocol".into());
        }
        for (tp, o) in &self.assignment {
            let known = |id: &str| self.member(id).is_some();
            if !known(&o.owner) || o.next.as_deref().is_some_and(|n| !known(n)) {
                return Err(format!(
                    "{tp} is assigned to a member that is not in the group"
                ));
            }
        }
        Ok(())
    }
}

impl Versioned for GroupState {
    fn version(&self) -> u64 {
        self.version
    }
    fn commit_id(&self) -> &str {
        &self.commit_id
    }
    fn digest(&self) -> &str {
        &self.digest
    }
    fn prev_commit_id(&self) -> &str {
        &self.prev_commit_id
    }
}

/// The invariants between a group version and its successor.
pub fn check_successor(prev: &GroupState, next: &GroupState) -> Result<(), String> {
    next.check_self()?;
    if next.group != prev.group {
        return Err("successor belongs to another group".into());
    }
    if next.version != prev.version + 1 {
        return Err(format!(
            "version {} does not follow {}",
            next.version, prev.version
        ));
    }
    if next.generation < prev.generation {
        return Err("generation moved backward".into());
    }
    Ok(())
}
