//! Group operations on a [`Pail`] client: commit an edit to a group's chain, read and describe
//! groups, and the operator's commands (reset offsets, delete).

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::time::Instant;

use super::edit::{GroupCtx, GroupError, apply};
use super::state::{GroupState, Protocol, TopicPartition};
use super::{GroupChain, GroupEdit, GroupName};
use crate::chain::commit::{self, CommitCtx, Outcome, Step};
use crate::chain::tip;
use crate::client::Pail;
use crate::error::{Error, Result};
use crate::record::{self, Record};
use crate::storage::keys;

/// Partitions whose end offsets `describe` reads at once.
const DESCRIBE_CONCURRENCY: usize = 32;

/// Where `reset_group_offsets` moves a topic's committed offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    Offset(u64),
    /// The first offset whose record's timestamp is at or after this (ms since the Unix epoch),
    /// or the end of the log when none is (Kafka's `--to-datetime`).
    Timestamp(i64),
}

/// A group as `pail group describe` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupDescription {
    pub group: String,
    /// `empty` (no live member), `stable`, `rebalancing` (partitions being handed over) or
    /// `dead` (deleted).
    pub state: &'static str,
    pub generation: u64,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
    pub partitions: Vec<PartitionLag>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberDescription {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub client: String,
    pub topics: Vec<String>,
    /// Milliseconds left on the member's lease (negative: expired, not yet removed).
    pub lease_left_ms: i64,
    pub partitions: Vec<TopicPartition>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moving_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committed: Option<u64>,
    pub end_offset: u64,
    /// End offset minus committed offset (the whole retained log when nothing is committed).
    pub lag: u64,
}

impl Pail {
    pub(crate) fn group_chain<'a>(&'a self, group: &'a GroupName) -> GroupChain<'a> {
        GroupChain {
            store: self.store(),
            group,
            cache: self.group_cache(),
        }
    }

    /// Commits `edit` as the group's next version (re-applying it on newer versions after
    /// lost races) and returns the state it produced.
    pub async fn group_commit(
        &self,
        group: &str,
        edit: &GroupEdit,
        deadline: Option<Instant>,
    ) -> Result<Arc<GroupState>> {
        let name = GroupName::new(group)?;
        self.store().ensure_conditional_writes().await?;
        let digest = record::digest(&[Record::from_value(format!("{edit:?}"))]);
        let chain = self.group_chain(&name);
        let ctx = CommitCtx {
            entropy: self.entropy(),
            hedge: None,
            deadline,
            digest: &digest,
        };
        let outcome = commit::commit(&chain, ctx, |tip, id| {
            let gctx = GroupCtx {
                writer: self.writer_id(),
                commit_id: id,
                digest: &digest,
                now_ms: self.clock().now_ms(),
            };
            let next = apply(&tip.state, edit, &gctx).map_err(|e| group_error(&name, e))?;
            let bytes = next.encode().map_err(Error::Encode)?;
            Ok(Step::<_, Infallible>::Create(next, Bytes::from(bytes)))
        })
        .await?;
        match outcome {
            Outcome::New(v) => {
                tip::maybe_write_hint(&chain, &v);
                Ok(v.state)
            }
            Outcome::Done(never) => match never {},
        }
    }

    /// The group's latest state, confirmed with the store (version 0 if it never existed).
    pub async fn group_state(&self, group: &str) -> Result<Arc<GroupState>> {
        let name = GroupName::new(group)?;
        let head = tip::latest(&self.group_chain(&name)).await?;
        match head.blocked {
            None => Ok(head.tip.state),
            Some(b) => Err(Error::Blocked {
                chain: format!("group {name}"),
                key: b.key,
                reason: b.reason,
            }),
        }
    }

    /// Every group in the store that exists (has a version and is not deleted), sorted.
    pub async fn list_groups(&self) -> Result<Vec<String>> {
        let dirs = self.store().list_dirs(&keys::groups_root()).await?;
        let names: Vec<String> = dirs.iter().filter_map(keys::parse_group_dir).collect();
        let states = futures::stream::iter(names)
            .map(|name| async move {
                let state = self.group_state(&name).await?;
                Ok::<_, Error>((state.version > 0 && !state.deleted).then_some(name))
            })
            .buffered(DESCRIBE_CONCURRENCY);
        let found: Vec<Option<String>> = states.try_collect().await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Members, assignment, committed offsets, end offsets and lag.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let s = self.group_state(group).await?;
        if s.version == 0 || s.deleted {
            return Err(Error::UnknownGroup {
                group: group.to_string(),
            });
        }
        let now = self.clock().now_ms();
        let members = s
            .members
            .iter()
            .map(|m| MemberDescription {
                id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client: m.client.clone(),
                topics: m.topics.clone(),
                lease_left_ms: m.lease_expires_at_ms - now,
                partitions: s
                    .assignment
                    .iter()
                    .filter(|(_, o)| o.owner == m.id)
                    .map(|(tp, _)| tp.clone())
                    .collect(),
            })
            .collect();
        let mut tps: Vec<TopicPartition> = s.assignment.keys().cloned().collect();
        tps.extend(s.offsets.keys().cloned());
        tps.sort();
        tps.dedup();
        let partitions = futures::stream::iter(tps)
            .map(|tp| {
                let s = Arc::clone(&s);
                async move { self.partition_lag(&s, tp).await }
            })
            .buffered(DESCRIBE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(GroupDescription {
            group: s.group.clone(),
            state: group_status(&s, now),
            generation: s.generation,
            protocol: match &s.protocol {
                Protocol::Managed { assignor } => assignor.as_str().to_string(),
                Protocol::Classic { protocol_name, .. } => protocol_name.clone(),
            },
            members,
            partitions,
        })
    }

    async fn partition_lag(&self, s: &GroupState, tp: TopicPartition) -> Result<PartitionLag> {
        let head = self.partition_tip(&tp.topic, tp.partition).await?;
        let end = head.state.next_offset;
        let committed = s.offsets.get(&tp).map(|c| c.offset);
        let start = head.state.log_start_offset;
        let ownership = s.assignment.get(&tp);
        Ok(PartitionLag {
            owner: ownership.map(|o| o.owner.clone()),
            moving_to: ownership.and_then(|o| o.next.clone()),
            committed,
            end_offset: end,
            lag: end.saturating_sub(committed.unwrap_or(start).max(start)),
            topic: tp.topic,
            partition: tp.partition,
        })
    }

    /// Sets the committed offset of every partition of `topic` (refused while the group has
    /// live members, as Kafka does). Returns the offsets set.
    pub async fn reset_group_offsets(
        &self,
        group: &str,
        topic: &str,
        to: ResetTo,
    ) -> Result<BTreeMap<TopicPartition, u64>> {
        let meta = self.topic(topic).await?;
        // Refuse before reading (a timestamp search reads records); the commit checks again.
        let now = self.clock().now_ms();
        let live = self.group_state(group).await?.live_members(now).count();
        if live > 0 {
            return Err(Error::GroupActive {
                group: group.to_string(),
                members: live,
            });
        }
        let mut offsets = BTreeMap::new();
        for p in 0..meta.config.partitions {
            let head = self.partition_tip(topic, p).await?;
            let m = &head.state;
            let offset = match to {
                ResetTo::Earliest => m.log_start_offset,
                ResetTo::Latest => m.next_offset,
                ResetTo::Offset(n) => {
                    resolve_offset(topic, p, n, m.log_start_offset, m.next_offset)?
                }
                ResetTo::Timestamp(ts) => self.offset_at_time(topic, p, ts).await?,
            };
            offsets.insert(TopicPartition::new(topic, p), offset);
        }
        let edit = GroupEdit::ResetOffsets {
            offsets: offsets.clone(),
        };
        self.group_commit(group, &edit, None).await?;
        Ok(offsets)
    }

    /// Deletes a group (refused while it has live members).
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let s = self.group_state(group).await?;
        if s.version == 0 || s.deleted {
            return Err(Error::UnknownGroup {
                group: group.to_string(),
            });
        }
        self.group_commit(group, &GroupEdit::Delete, None).await?;
        Ok(())
    }
}

impl Pail {
    /// The first offset of `topic/p` whose record's timestamp is at or after `ts` (lookup by
    /// time, `crate::log::time`: O(log segments) reads), or the end of the log.
    async fn offset_at_time(&self, topic: &str, p: u32, ts: i64) -> Result<u64> {
        match self.offset_for_time(topic, p, ts).await? {
            Some(found) => Ok(found.offset),
            None => Ok(self.partition_tip(topic, p).await?.state.next_offset),
        }
    }
}

fn resolve_offset(topic: &str, p: u32, n: u64, start: u64, end: u64) -> Result<u64> {
    if n < start || n > end {
        return Err(Error::OffsetOutOfRange {
            topic: topic.to_string(),
            partition: p,
            offset: n as i64,
            log_start: start,
            next: end,
        });
    }
    Ok(n)
}

fn group_status(s: &GroupState, now: i64) -> &'static str {
    if s.deleted {
        "dead"
    } else if !s.has_live_members(now) {
        "empty"
    } else if s.assignment.values().any(|o| o.next.is_some()) {
        "rebalancing"
    } else {
        "stable"
    }
}

/// A group edit's refusal as pail's error.
pub(crate) fn group_error(group: &GroupName, e: GroupError) -> Error {
    let chain = format!("group {group}");
    match e {
        GroupError::UnknownMember(member) => Error::UnknownMember {
            group: group.to_string(),
            member,
        },
        GroupError::Fenced(reason) => Error::Fenced { chain, reason },
        GroupError::Invalid(reason) => Error::InvalidArgument(reason),
        GroupError::Active(members) => Error::GroupActive {
            group: group.to_string(),
            members,
        },
        GroupError::Invariant(reason) => Error::corrupt(chain, reason),
        GroupError::Refused(refusal, reason) => Error::GroupRefused {
            group: group.to_string(),
            refusal,
            reason,
        },
    }
}
