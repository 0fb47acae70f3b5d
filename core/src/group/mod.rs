//! Consumer groups: the store as group coordinator.
//!
//! A group's state (members with their leases, generation, assignment, committed offsets) is a
//! create-only chain of JSON versions, `groups/{group}/versions/{version:020}.json`, committed
//! by the same loop and found by the same tip finder as partitions (`crate::chain`). So a
//! group needs no coordinator process: whichever member commits a membership change also
//! commits the new assignment, computed deterministically from the state ([`assign`]).
//!
//! - Liveness by leases: members renew theirs in the chain (a heartbeat, which also carries
//!   offset commits and releases), and a member past its lease is removed by the next change.
//! - Safety by ownership: a partition moves in two phases (owner asked to release, then the
//!   new owner takes it), so no partition is fetched by two live members at once; an offset
//!   commit from a member that no longer owns the partition, or from before it last received
//!   it, is refused, so zombies are fenced whatever the clocks say.
//!
//! Owns: group state and its pure transitions ([`edit::apply`], [`assign`]), the group chain,
//! and the group operations on [`crate::Pail`] ([`ops`]). Must never: decide ownership from a
//! clock alone (clocks only say when a member may be removed), or write offsets outside the
//! chain. The consumer that uses all this is `crate::consumer`.

pub mod assign;
pub mod classic;
pub mod edit;
pub mod ops;
pub mod state;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use object_store::path::Path;
use std::fmt;
use std::sync::Mutex;

use crate::cache::Lru;
use crate::chain::{Chain, ReadFor, Version};
use crate::error::{Error, Result};
use crate::storage::{Store, keys};
use crate::sync::lock;
use crate::topic::TopicName;

pub use classic::{KafkaJoin, Refusal};
pub use edit::{GroupEdit, Heartbeat, Join, OffsetCommit, managed};
pub use ops::{GroupDescription, MemberDescription, PartitionLag, ResetTo};
pub use state::{
    Assignor, ClassicProtocol, GroupState, Member, Ownership, Protocol, Round, TopicPartition,
};

/// A validated group name: the rules of topic names (1 to 249 of `[A-Za-z0-9._-]`, not `.` or
/// `..`), which also keep it safe as an object-key segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupName(String);

impl GroupName {
    pub fn new(name: &str) -> Result<Self> {
        match TopicName::new(name) {
            Ok(valid) => Ok(GroupName(valid.as_str().to_string())),
            Err(Error::InvalidTopicName { reason, .. }) => Err(Error::InvalidArgument(format!(
                "invalid group name {name:?}: {reason}"
            ))),
            Err(e) => Err(e),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Group tips a client remembers.
pub(crate) const GROUP_CACHE_ENTRIES: usize = 1024;

/// How long a cached group tip is trusted before the chain is discovered again. Maintenance
/// deletes old group versions (`crate::maintain::groups`); a client whose cached tip's
/// successor was deleted would otherwise take that tip for the newest version forever, since a
/// missing successor is what "newest" looks like. Discovery does not start from the cache, so
/// such a stale view lasts at most this long (twice, in the worst case; see
/// docs/architecture.md section 7). Cost: a quiet group is discovered again (hint, LIST, GET)
/// once per period instead of probed (1 GET).
pub const GROUP_TIP_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// A cached tip and when this client first cached it (tokio's clock, so simulations replay).
pub(crate) type GroupCache = Mutex<Lru<GroupName, (Version<GroupState>, tokio::time::Instant)>>;

/// One group's chain on a store.
pub struct GroupChain<'a> {
    pub store: &'a Store,
    pub group: &'a GroupName,
    pub cache: &'a GroupCache,
}

#[async_trait]
impl Chain for GroupChain<'_> {
    type State = GroupState;

    fn store(&self) -> &Store {
        self.store
    }

    fn describe(&self) -> String {
        format!("group {}", self.group)
    }

    fn genesis(&self) -> Version<GroupState> {
        Version::new(GroupState::genesis(self.group), 0)
    }

    fn key_of(&self, s: &GroupState) -> Option<Path> {
        (s.version > 0).then(|| keys::group_version(self.group.as_str(), s.version))
    }

    fn next_key(&self, s: &GroupState) -> Path {
        keys::group_version(self.group.as_str(), s.version + 1)
    }

    async fn read(&self, key: &Path, _why: ReadFor) -> Result<Option<Version<GroupState>>> {
        let Some(bytes) = self.store.get(key).await? else {
            return Ok(None);
        };
        let state = GroupState::decode(&bytes).map_err(|e| Error::corrupt(key, e))?;
        if state.group != self.group.as_str()
            || keys::parse_group_version(key) != Some(state.version)
        {
            return Err(Error::corrupt(
                key,
                format!(
                    "version {} of group {} found at this key",
                    state.version, state.group
                ),
            ));
        }
        Ok(Some(Version::new(state, bytes.len() as u64)))
    }

    fn check_successor(&self, prev: &GroupState, next: &GroupState) -> Result<(), String> {
        state::check_successor(prev, next)
    }

    fn dir(&self) -> Path {
        keys::group_versions(self.group.as_str())
    }

    fn parse_key(&self, key: &Path) -> Option<u64> {
        keys::parse_group_version(key)
    }

    fn hint_key(&self) -> Path {
        keys::group_hint(self.group.as_str())
    }

    fn cached(&self) -> Option<Version<GroupState>> {
        let mut cache = lock(self.cache);
        let (v, since) = cache.get(self.group)?.clone();
        if since.elapsed() >= GROUP_TIP_TTL {
            // Dropped, not refreshed: only a newer version, or a discovery, caches it again.
            cache.remove(self.group);
            return None;
        }
        Some(v)
    }

    fn offer(&self, v: &Version<GroupState>) {
        let mut cache = lock(self.cache);
        // An equal version keeps its first time: a walk that found no successor proves nothing
        // (the successor may have been deleted), so it must not extend the trust.
        if cache
            .peek(self.group)
            .is_some_and(|(known, _)| known.number() >= v.number())
        {
            return;
        }
        let now = tokio::time::Instant::now();
        cache.insert(self.group.clone(), (v.clone(), now), 1);
    }

    fn forget(&self) {
        lock(self.cache).remove(self.group);
    }
}
