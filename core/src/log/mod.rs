//! One partition's log on the store: the partition as a [`Chain`] of Parquet segments,
//! appending to it, reading records back by offset, and the caches they share.
//!
//! The protocol in one paragraph (details and costs in `docs/architecture.md`): version `v+1`
//! of a partition is the segment object at `keys::segment(topic, p, next_offset(v), v+1)`,
//! created with create-if-absent by the shared commit loop (`crate::chain::commit`). The
//! partition's state (the manifest) rides in each segment's Parquet footer, so reading a
//! version's footer is reading the partition's state as of that version.
//!
//! Owns: the partition chain ([`Part`]), appends ([`append`]), retries that look for their
//! earlier attempt ([`retry`]), reading ([`fetch`]), hedged creates ([`hedge`]) and the client
//! caches. Must never: decide a state transition itself (that is `manifest::apply`, a pure
//! function) or treat a lost or unclear create as success without reading the object back.

pub mod append;
pub mod fetch;
pub mod hedge;
pub mod retry;
pub mod time;

use async_trait::async_trait;
use object_store::path::Path;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::cache::Lru;
use crate::chain::{Chain, Identity, ReadFor, Version};
use crate::entropy::Entropy;
use crate::error::{Error, Result};
use crate::manifest::{self, PartitionManifest};
use crate::segment::{self, FOOTER_PREFETCH_BYTES, Footer};
use crate::storage::{Store, keys};
use crate::sync::lock;
use crate::topic::TopicName;

pub use crate::chain::Head;

/// A version of a partition: its manifest and the size of its segment object.
pub type Tip = Version<PartitionManifest>;

/// Index entries a client keeps per partition.
pub const INDEX_ENTRIES_PER_PARTITION: usize = 4096;
/// Default bounds of the footer cache (see [`CacheLimits`]).
pub const FOOTER_CACHE_ENTRIES: usize = 1024;
pub const FOOTER_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Bytes charged per cached tip or index entry (keys, manifest, bookkeeping), for the bounds.
const ENTRY_OVERHEAD_BYTES: usize = 256;

/// One partition's data segments that a client has seen: base offset -> (key, next offset).
/// The key is kept, not derived: a merged segment's key names a range, not one version.
type SegmentIndex = BTreeMap<u64, (Path, u64)>;
type PartitionKey = (TopicName, u32);

impl Tip {
    /// The empty partition, version 0.
    pub fn genesis(topic: &TopicName, partition: u32) -> Self {
        Version::new(PartitionManifest::genesis(topic.as_str(), partition), 0)
    }

    fn from_footer(footer: &Footer) -> Self {
        Version {
            state: Arc::clone(&footer.manifest),
            size: footer.size,
        }
    }
}

/// Caches shared by every partition a client touches. All are hints and all are bounded:
/// dropping any entry costs requests, never correctness.
#[derive(Debug)]
pub struct Caches {
    tips: Mutex<Lru<PartitionKey, Tip>>,
    footers: Mutex<Lru<Path, Arc<Footer>>>,
    index: Mutex<Lru<PartitionKey, SegmentIndex>>,
    /// Polls in a row that found nothing past the cached tip, per partition.
    empty_polls: Mutex<Lru<PartitionKey, u32>>,
}

/// Bounds on a client's caches. The defaults suit a long-lived server: about 100 MiB at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    /// Partitions whose newest version a client remembers.
    pub tips: usize,
    /// Segment footers kept decoded...
    pub footers: usize,
    /// ...and the bytes they may hold (fetched tails plus decoded metadata).
    pub footer_bytes: usize,
    /// Partitions whose offset -> segment index is kept (4,096 segments each at most).
    pub indexed_partitions: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            tips: 16_384,
            footers: FOOTER_CACHE_ENTRIES,
            footer_bytes: FOOTER_CACHE_BYTES,
            indexed_partitions: 1024,
        }
    }
}

impl Default for Caches {
    fn default() -> Self {
        Caches::new(CacheLimits::default())
    }
}

/// How much a client's caches hold: what a long-lived host (a server, a warm Lambda) watches
/// to see that they stay bounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheSizes {
    /// Topic descriptors (kept by the client, filled in by `Pail::cache_sizes`).
    pub topics: usize,
    /// Partitions whose newest known version is remembered.
    pub tips: usize,
    /// Decoded footers, and the bytes they hold (tails and decoded metadata).
    pub footers: usize,
    pub footer_bytes: usize,
    /// Partitions with a segment index, and the segment ranges remembered over all of them.
    pub indexed_partitions: usize,
    pub index_entries: usize,
}

impl Caches {
    pub fn new(limits: CacheLimits) -> Self {
        Caches {
            tips: Mutex::new(Lru::new(limits.tips, usize::MAX)),
            footers: Mutex::new(Lru::new(limits.footers, limits.footer_bytes)),
            index: Mutex::new(Lru::new(limits.indexed_partitions, usize::MAX)),
            empty_polls: Mutex::new(Lru::new(limits.tips, usize::MAX)),
        }
    }

    /// Counts a poll that found nothing new; true on every `every`-th in a row.
    pub fn note_empty_poll(&self, topic: &TopicName, partition: u32, every: u32) -> bool {
        let key = (topic.clone(), partition);
        let mut polls = lock(&self.empty_polls);
        let n = polls.peek(&key).copied().unwrap_or(0) + 1;
        polls.insert(key, n, 1);
        n.is_multiple_of(every)
    }

    /// A poll found something new: the count starts over.
    pub fn note_progress(&self, topic: &TopicName, partition: u32) {
        lock(&self.empty_polls).remove(&(topic.clone(), partition));
    }

    pub fn tip(&self, topic: &TopicName, partition: u32) -> Option<Tip> {
        lock(&self.tips).get(&(topic.clone(), partition)).cloned()
    }

    /// Remembers `tip` unless a newer one is already known: views only move forward.
    pub fn offer_tip(&self, topic: &TopicName, partition: u32, tip: &Tip) {
        let key = (topic.clone(), partition);
        let mut tips = lock(&self.tips);
        if tips
            .peek(&key)
            .is_some_and(|known| known.number() >= tip.number())
        {
            return;
        }
        tips.insert(key, tip.clone(), ENTRY_OVERHEAD_BYTES);
    }

    /// Forgets a partition's tip (after its chain was found damaged or rewritten).
    pub fn forget_tip(&self, topic: &TopicName, partition: u32) {
        lock(&self.tips).remove(&(topic.clone(), partition));
    }

    pub fn sizes(&self) -> CacheSizes {
        let footers = lock(&self.footers);
        let index = lock(&self.index);
        CacheSizes {
            topics: 0,
            tips: lock(&self.tips).len(),
            footers: footers.len(),
            footer_bytes: footers.weight(),
            indexed_partitions: index.len(),
            index_entries: index.values().map(BTreeMap::len).sum(),
        }
    }

    fn footer(&self, key: &Path) -> Option<Arc<Footer>> {
        lock(&self.footers).get(key).cloned()
    }

    fn offer_footer(&self, topic: &TopicName, key: &Path, footer: Arc<Footer>) {
        let m = &footer.manifest;
        if m.record_count > 0 {
            let pk = (topic.clone(), m.partition);
            let mut index = lock(&self.index);
            let mut segments = index.remove(&pk).unwrap_or_default();
            segments.insert(m.base_offset, (key.clone(), m.next_offset));
            while segments.len() > INDEX_ENTRIES_PER_PARTITION {
                segments.pop_first();
            }
            index.insert(pk, segments, ENTRY_OVERHEAD_BYTES);
        }
        let weight = footer.tail.len() + footer.metadata.memory_size() + ENTRY_OVERHEAD_BYTES;
        lock(&self.footers).insert(key.clone(), footer, weight);
    }

    /// The key of the known data segment holding `offset`.
    fn segment_for(&self, topic: &TopicName, partition: u32, offset: u64) -> Option<Path> {
        let index = lock(&self.index);
        let segments = index.peek(&(topic.clone(), partition))?;
        let (_, (key, next)) = segments.range(..=offset).next_back()?;
        (offset < *next).then(|| key.clone())
    }
}

/// One partition, and what operations on it need: the store and the client's caches.
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    pub store: &'a Store,
    pub caches: &'a Caches,
    pub entropy: &'a Entropy,
    pub hedge: &'a hedge::Hedge,
    pub topic: &'a TopicName,
    pub partition: u32,
    /// The topic id a reader knows (empty: any). Records of another incarnation of the topic
    /// (deleted and created again) are never returned to it.
    pub incarnation: &'a str,
}

impl Part<'_> {
    /// Reads and checks the footer of the segment at `key`; `None` if no object is there.
    ///
    /// The footer must belong to this partition and name the base offset and version its key
    /// names: a segment copied or written to the wrong place is corruption, not data.
    pub async fn footer(&self, key: &Path) -> Result<Option<Arc<Footer>>> {
        self.footer_with(key, FOOTER_PREFETCH_BYTES).await
    }

    /// Like [`Part::footer`], fetching up to `prefetch` bytes from the object's end on a cache
    /// miss: readers ask for more, so a small segment arrives whole in the same request.
    pub async fn footer_with(&self, key: &Path, prefetch: u64) -> Result<Option<Arc<Footer>>> {
        if let Some(f) = self.caches.footer(key) {
            return Ok(Some(f));
        }
        let Some((tail, size)) = self.store.get_suffix(key, prefetch).await? else {
            return Ok(None);
        };
        let footer = match segment::parse_footer(key, tail, size)? {
            Ok(f) => f,
            Err(needed) => {
                let Some((tail, size)) = self.store.get_suffix(key, needed).await? else {
                    return Ok(None);
                };
                segment::parse_footer(key, tail, size)?
                    .map_err(|_| Error::corrupt(key, "footer length changed between reads"))?
            }
        };
        self.check_placement(key, &footer.manifest)?;
        let footer = Arc::new(footer);
        self.caches
            .offer_footer(self.topic, key, Arc::clone(&footer));
        Ok(Some(footer))
    }

    fn check_placement(&self, key: &Path, m: &PartitionManifest) -> Result<()> {
        // A chain version names itself; a merged segment names its range.
        let expected = keys::SegmentKey {
            base_offset: m.base_offset,
            first_version: m.merged_from.unwrap_or(m.version),
            last_version: m.version,
        };
        if m.topic != self.topic.as_str()
            || m.partition != self.partition
            || keys::parse_segment_object(key) != Some(expected)
        {
            return Err(Error::corrupt(
                key,
                format!(
                    "segment of {}/{} base {} version {} found at this key",
                    m.topic, m.partition, m.base_offset, m.version
                ),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Chain for Part<'_> {
    type State = PartitionManifest;

    fn store(&self) -> &Store {
        self.store
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.topic, self.partition)
    }

    fn genesis(&self) -> Tip {
        Tip::genesis(self.topic, self.partition)
    }

    fn key_of(&self, m: &PartitionManifest) -> Option<Path> {
        (!m.is_genesis()).then(|| keys::segment(self.topic, m.partition, m.base_offset, m.version))
    }

    fn next_key(&self, m: &PartitionManifest) -> Path {
        keys::segment(self.topic, m.partition, m.next_offset, m.version + 1)
    }

    async fn read(&self, key: &Path, why: ReadFor) -> Result<Option<Tip>> {
        let prefetch = match why {
            ReadFor::State => FOOTER_PREFETCH_BYTES,
            ReadFor::Rows => fetch::READ_PREFETCH_BYTES,
        };
        Ok(self
            .footer_with(key, prefetch)
            .await?
            .map(|f| Tip::from_footer(&f)))
    }

    async fn read_fresh(&self, key: &Path) -> Result<Option<Tip>> {
        let Some((tail, size)) = self.store.get_suffix(key, FOOTER_PREFETCH_BYTES).await? else {
            return Ok(None);
        };
        let footer = match segment::parse_footer(key, tail, size)? {
            Ok(f) => f,
            // A footer longer than the prefetch: read that much from the end, again uncached.
            Err(needed) => {
                let Some((tail, size)) = self.store.get_suffix(key, needed).await? else {
                    return Ok(None);
                };
                segment::parse_footer(key, tail, size)?
                    .map_err(|_| Error::corrupt(key, "footer length changed between reads"))?
            }
        };
        self.check_placement(key, &footer.manifest)?;
        Ok(Some(Tip::from_footer(&footer)))
    }

    fn check_successor(
        &self,
        prev: &PartitionManifest,
        next: &PartitionManifest,
    ) -> Result<(), String> {
        manifest::check_successor(prev, next)
    }

    fn dir(&self) -> Path {
        keys::partition_dir(self.topic, self.partition)
    }

    fn parse_key(&self, key: &Path) -> Option<u64> {
        keys::parse_segment(key).map(|(_, version)| version)
    }

    fn hint_key(&self) -> Path {
        keys::hint(self.topic, self.partition)
    }

    fn cached(&self) -> Option<Tip> {
        self.caches.tip(self.topic, self.partition)
    }

    fn offer(&self, v: &Tip) {
        self.caches.offer_tip(self.topic, self.partition, v);
    }

    fn forget(&self) {
        self.caches.forget_tip(self.topic, self.partition);
    }

    async fn identify(&self, key: &Path) -> Result<Identity> {
        let Some((mut tail, mut size)) = self.store.get_suffix(key, FOOTER_PREFETCH_BYTES).await?
        else {
            return Ok(Identity::Missing);
        };
        if let Ok(Err(needed)) = segment::parse_footer(key, tail.clone(), size) {
            let Some(longer) = self.store.get_suffix(key, needed).await? else {
                return Ok(Identity::Missing);
            };
            (tail, size) = longer;
        }
        let reason = match segment::parse_footer(key, tail.clone(), size) {
            Ok(Ok(footer)) => {
                return Ok(match self.check_placement(key, &footer.manifest) {
                    Ok(()) => Identity::Version,
                    Err(e) => Identity::Misplaced(format!("a pail {}", corrupt_reason(e))),
                });
            }
            Ok(Err(_)) => "its footer length changed between reads".to_string(),
            Err(e) => corrupt_reason(e),
        };
        let head = if tail.len() as u64 >= size {
            tail.slice(..tail.len().min(4))
        } else {
            self.store.get_range(key, 0..4).await?
        };
        Ok(match segment::foreign(&head, &tail, size) {
            Some(what) => Identity::Foreign(what.to_string()),
            None => Identity::Damaged(reason),
        })
    }

    /// Counts the live objects (as maintenance judges them: merged segments, versions after
    /// the compaction watermark, nothing below the log start) against the head's counters.
    fn check_totals(&self, head: &Tip, objects: &[(&Path, u64)]) -> Result<(), String> {
        let m = &head.state;
        let live: Vec<u64> = objects
            .iter()
            .filter(|(key, _)| live_as_of(m, key))
            .map(|(_, size)| *size)
            .collect();
        let (segments, bytes) = (live.len() as u64, live.iter().sum::<u64>());
        if m.prior_segments + 1 != segments || m.prior_bytes + head.size != bytes {
            return Err(format!(
                "the newest manifest counts {} segments of {} bytes, the store holds {segments} \
                 of {bytes} bytes live",
                m.prior_segments + 1,
                m.prior_bytes + head.size
            ));
        }
        Ok(())
    }

    /// Retention drops whole versions below the log start; compaction replaces versions up to
    /// its watermark with merged segments.
    fn absent_by_design(
        &self,
        head: &PartitionManifest,
        _first: u64,
        last: u64,
        next: Option<&PartitionManifest>,
    ) -> bool {
        last <= head.compacted_through
            || next.is_some_and(|n| n.base_offset <= head.log_start_offset)
    }

    fn accounted_off_chain(&self, head: &PartitionManifest, key: &Path) -> bool {
        keys::parse_segment_object(key)
            .is_some_and(|k| k.first_version != k.last_version && live_as_of(head, key))
    }

    fn describe_between(
        &self,
        after: Option<&PartitionManifest>,
        before: Option<&PartitionManifest>,
    ) -> String {
        match (after, before) {
            (Some(a), Some(b)) if a.next_offset < b.base_offset => {
                format!(" (offsets {}..{})", a.next_offset, b.base_offset)
            }
            (Some(a), None) => format!(" (offsets from {})", a.next_offset),
            (None, Some(b)) => format!(" (offsets before {})", b.base_offset),
            _ => String::new(),
        }
    }
}

/// The reason of a corruption error, without the key the caller already names.
fn corrupt_reason(e: Error) -> String {
    match e {
        Error::Corrupt { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// Whether the object at `key` is live as of `head` (`maintain::inventory`'s rule).
fn live_as_of(head: &PartitionManifest, key: &Path) -> bool {
    keys::parse_segment_object(key)
        .is_some_and(|seg| crate::maintain::inventory::Inventory::is_live_key(&seg, head))
}
