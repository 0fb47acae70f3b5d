//! The create-only chain: the one commit protocol pail has, shared by every kind of state.
//!
//! A chain is a sequence of immutable objects, versions 1, 2, 3, ... (version 0 is the empty
//! state and is never stored). Version `v+1` is created with create-if-absent at a key that is a
//! function of version `v` alone, so every writer that builds on `v` races for the same key and
//! exactly one wins; the loser wrote nothing and rebuilds on the winner. An object that exists
//! is committed, one that does not is not: there is no second step that could fail.
//!
//! Partitions (`crate::log`: each version is a Parquet segment carrying the partition manifest
//! in its footer) and consumer groups (each version a JSON document of the group's state) are
//! both chains. They differ only in what [`Chain`] says: where version `v+1` lives, how an
//! object decodes, which invariants link two versions. The commit loop ([`commit`]) and the tip
//! finder ([`tip`]) are written once, here, and tested once.
//!
//! Owns: the commit loop, read-back of unclear answers, tip discovery, hints, damage at the
//! frontier. Must never: decide a state transition (that is the caller's pure `apply`), or treat
//! a lost or unclear create as success without reading the object back and recognising both the
//! attempt's random id and the content's digest.

pub mod commit;
pub mod doctor;
pub mod tip;

use async_trait::async_trait;
use object_store::path::Path;
use std::fmt::Debug;
use std::sync::Arc;

use crate::error::Result;
use crate::storage::Store;

/// What every stored version knows about itself.
pub trait Versioned: Debug + Send + Sync + 'static {
    /// Position in the chain: 0 for the empty state (never stored), then 1, 2, ...
    fn version(&self) -> u64;
    /// The random id of the attempt that created this version (unique per attempt).
    fn commit_id(&self) -> &str;
    /// Digest of what the attempt carried (records, or the edit), so that an attempt is
    /// recognised by what it wrote, not only by an id that a restored snapshot could repeat.
    fn digest(&self) -> &str;
    /// The commit id of the version this one was built on (empty if unknown).
    fn prev_commit_id(&self) -> &str {
        ""
    }
}

/// One version as read from (or written to) the store.
#[derive(Debug)]
pub struct Version<S> {
    pub state: Arc<S>,
    /// Size of the version's object in bytes; 0 for the empty state.
    pub size: u64,
}

impl<S> Clone for Version<S> {
    fn clone(&self) -> Self {
        Version {
            state: Arc::clone(&self.state),
            size: self.size,
        }
    }
}

impl<S: Versioned> Version<S> {
    pub fn new(state: S, size: u64) -> Self {
        Version {
            state: Arc::new(state),
            size,
        }
    }

    pub fn number(&self) -> u64 {
        self.state.version()
    }

    pub fn is_genesis(&self) -> bool {
        self.number() == 0
    }
}

/// Why a version is being read: readers ask for more bytes so that the rows of a small
/// segment arrive in the same request as its footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFor {
    /// Committing or walking the chain: the state is enough.
    State,
    /// Reading records: prefetch what a reader will need next.
    Rows,
}

/// What a kind of chain must say; everything else is shared.
#[async_trait]
pub trait Chain: Send + Sync {
    type State: Versioned;

    fn store(&self) -> &Store;
    /// The chain in words, for messages ("orders/3", "group g").
    fn describe(&self) -> String;
    /// The empty state, version 0.
    fn genesis(&self) -> Version<Self::State>;
    /// Where `state` itself is stored (`None` for version 0).
    fn key_of(&self, state: &Self::State) -> Option<Path>;
    /// Where the version after `state` will be created. A function of `state` alone, so that
    /// writers racing to build on the same version collide on one key.
    fn next_key(&self, state: &Self::State) -> Path;
    /// Reads and decodes the object at `key`; `None` if nothing is there. An object that does
    /// not decode, or that names another place than `key`, is `Error::Corrupt`.
    async fn read(&self, key: &Path, why: ReadFor) -> Result<Option<Version<Self::State>>>;
    /// Like [`Chain::read`], but from the store itself, never from a cache: to learn whether
    /// a version is still there.
    async fn read_fresh(&self, key: &Path) -> Result<Option<Version<Self::State>>> {
        self.read(key, ReadFor::State).await
    }
    /// The invariants that link a version to its successor.
    fn check_successor(&self, prev: &Self::State, next: &Self::State) -> Result<(), String>;
    /// The folder of the chain's objects; listing it in key order gives chain order.
    fn dir(&self) -> Path;
    /// The version a key in [`Chain::dir`] names, or `None` for any other object.
    fn parse_key(&self, key: &Path) -> Option<u64>;
    /// Where the advisory newest-version hint lives.
    fn hint_key(&self) -> Path;
    /// True for chains with few versions, found faster by probing from version 1 than by a
    /// hint and a listing (topic descriptors).
    fn probe_from_genesis(&self) -> bool {
        false
    }
    /// The newest version this client has seen, if any (a cache: a hint, never the truth).
    fn cached(&self) -> Option<Version<Self::State>>;
    /// Offers a version to the cache; implementations keep the newer of the two.
    fn offer(&self, v: &Version<Self::State>);

    /// Drops the cached tip: it was found to be gone from the store.
    fn forget(&self);

    /// True when `v` is still in the store, as it was read (maintenance deletes old versions;
    /// a version that is gone may have been created again by a stale writer).
    async fn still_there(&self, v: &Version<Self::State>) -> Result<bool> {
        let Some(key) = self.key_of(&v.state) else {
            return Ok(true);
        };
        Ok(self
            .read_fresh(&key)
            .await?
            .is_some_and(|found| found.state.commit_id() == v.state.commit_id()))
    }

    /// What the object at `key` is ([`Identity`]), for `doctor`; never on a hot path. By
    /// default: what reading it says.
    async fn identify(&self, key: &Path) -> Result<Identity> {
        match self.read_fresh(key).await {
            Ok(Some(_)) => Ok(Identity::Version),
            Ok(None) => Ok(Identity::Missing),
            Err(crate::error::Error::Corrupt { reason, .. }) => Ok(Identity::Damaged(reason)),
            Err(e) => Err(e),
        }
    }

    /// Checks `head`'s own account of the chain (counts, sizes) against the objects the
    /// doctor found for it: those on the chain and those [`Chain::accounted_off_chain`], as
    /// (key, size). Nothing to check by default.
    fn check_totals(
        &self,
        _head: &Version<Self::State>,
        _objects: &[(&Path, u64)],
    ) -> Result<(), String> {
        Ok(())
    }

    /// True when versions `first..=last`, absent from the store and followed by `next` (when
    /// it reads), were removed on purpose as `head` records (retention, compaction), rather
    /// than lost. False by default: every gap is damage.
    fn absent_by_design(
        &self,
        _head: &Self::State,
        _first: u64,
        _last: u64,
        _next: Option<&Self::State>,
    ) -> bool {
        false
    }

    /// True for an object off the chain that `head` accounts for (a merged segment that
    /// replaced a run of versions). False by default.
    fn accounted_off_chain(&self, _head: &Self::State, _key: &Path) -> bool {
        false
    }

    /// What the versions after `after` and before `before` held, in words, for a message about
    /// missing ones (a partition says which offsets); empty by default.
    fn describe_between(
        &self,
        _after: Option<&Self::State>,
        _before: Option<&Self::State>,
    ) -> String {
        String::new()
    }
}

/// What an object in a chain's folder is, as far as reading it can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Nothing is there (any more).
    Missing,
    /// A version of this chain, where it belongs.
    Version,
    /// A readable version that does not belong at this key (a copy, another chain's object).
    Misplaced(String),
    /// Looks like one of the chain's own objects but does not read: possibly a committed
    /// version damaged after it was written.
    Damaged(String),
    /// Certainly not a version of any chain: bytes pail never wrote.
    Foreign(String),
}

/// Damage where the chain would continue: an object at the next version's key that does not
/// decode, or versions known to have existed that are gone. Reads below it keep working;
/// writes refuse, because continuing would either fail forever or reuse offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// The object (or the missing key) that blocks the chain.
    pub key: String,
    pub reason: String,
}

/// The newest readable version of a chain, and what blocks it from continuing, if anything.
#[derive(Clone, Debug)]
pub struct Head<S> {
    pub tip: Version<S>,
    pub blocked: Option<Blocked>,
}

impl<S> Head<S> {
    pub fn clear(tip: Version<S>) -> Self {
        Head { tip, blocked: None }
    }
}

/// "version 4" or "versions 4..=9", for messages about a range of versions.
pub(crate) fn versions_text(first: u64, last: u64) -> String {
    if first == last {
        format!("version {first}")
    } else {
        format!("versions {first}..={last}")
    }
}
