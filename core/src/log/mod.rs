//! One partition's log on the store: finding its latest version, committing the next one, and
//! reading records back by offset.
//!
//! The protocol in one paragraph (details and costs in `docs/architecture.md`): version `v+1` of
//! a partition is the segment object at `keys::segment(topic, p, next_offset(v), v+1)`, created
//! with create-if-absent. Its key is a function of version `v`, so every writer that builds on
//! `v` races for the same key and exactly one wins; the loser writes nothing and rebuilds on the
//! winner. An object that exists is committed, an object that does not is not: there is no
//! second step that could fail, so a reader (pail's or a Parquet engine's glob) never sees an
//! uncommitted record and a crash leaves no visible garbage.
//!
//! Owns: the commit loop ([`commit`]), tip discovery ([`tip`]), reading ([`fetch`]) and the
//! caches they share. Must never: decide a state transition itself (that is
//! `manifest::apply`, a pure function) or treat a lost or ambiguous create as success without
//! reading the object back.

pub mod commit;
pub mod fetch;
pub mod hedge;
pub mod tip;

use object_store::path::Path;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::entropy::Entropy;
use crate::error::{Error, Result};
use crate::manifest::PartitionManifest;
use crate::segment::{self, FOOTER_PREFETCH_BYTES, Footer};
use crate::storage::{Store, keys};
use crate::topic::TopicName;

/// How many footers a client keeps decoded, and how many bytes of object tails with them.
pub const FOOTER_CACHE_ENTRIES: usize = 1024;
pub const FOOTER_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// How many segment ranges per partition a client remembers for offset lookups.
pub const INDEX_ENTRIES_PER_PARTITION: usize = 4096;

/// One partition's data segments that a client has seen: base offset -> (version, next offset).
type SegmentIndex = BTreeMap<u64, (u64, u64)>;

/// The newest version of a partition a client knows of.
#[derive(Clone, Debug)]
pub struct Tip {
    pub manifest: Arc<PartitionManifest>,
    /// Size of the tip's object in bytes; 0 for the empty partition.
    pub size: u64,
}

impl Tip {
    pub fn genesis(topic: &TopicName, partition: u32) -> Self {
        Tip {
            manifest: Arc::new(PartitionManifest::genesis(topic.as_str(), partition)),
            size: 0,
        }
    }

    fn from_footer(footer: &Footer) -> Self {
        Tip {
            manifest: Arc::new(footer.manifest.clone()),
            size: footer.size,
        }
    }

    /// The key of the tip's own object; `None` for the empty partition.
    pub fn key(&self, topic: &TopicName) -> Option<Path> {
        let m = &self.manifest;
        (!m.is_genesis()).then(|| keys::segment(topic, m.partition, m.base_offset, m.version))
    }

    /// The key the next version will be created at.
    pub fn next_key(&self, topic: &TopicName) -> Path {
        let m = &self.manifest;
        keys::segment(topic, m.partition, m.next_offset, m.version + 1)
    }
}

/// Caches shared by every partition a client touches. All are hints: dropping any entry
/// costs requests, never correctness.
#[derive(Debug, Default)]
pub struct Caches {
    tips: Mutex<HashMap<(TopicName, u32), Tip>>,
    footers: Mutex<FooterCache>,
    index: Mutex<HashMap<(TopicName, u32), SegmentIndex>>,
}

#[derive(Debug, Default)]
struct FooterCache {
    map: HashMap<Path, Arc<Footer>>,
    order: VecDeque<Path>,
    tail_bytes: usize,
}

/// How much a client's caches hold: what a long-lived host (a server, a warm Lambda) watches
/// to see that they stay bounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheSizes {
    /// Topic descriptors (kept by the client, filled in by `Pail::cache_sizes`).
    pub topics: usize,
    /// Partitions whose newest known version is remembered.
    pub tips: usize,
    /// Decoded footers, and the bytes of object tails kept with them.
    pub footers: usize,
    pub footer_bytes: usize,
    /// Segment ranges remembered for offset lookups, over all partitions.
    pub index_entries: usize,
}

impl Caches {
    pub fn sizes(&self) -> CacheSizes {
        let footers = lock(&self.footers);
        CacheSizes {
            topics: 0,
            tips: lock(&self.tips).len(),
            footers: footers.map.len(),
            footer_bytes: footers.tail_bytes,
            index_entries: lock(&self.index).values().map(BTreeMap::len).sum(),
        }
    }

    pub fn tip(&self, topic: &TopicName, partition: u32) -> Option<Tip> {
        lock(&self.tips).get(&(topic.clone(), partition)).cloned()
    }

    /// Remembers `tip` unless a newer one is already known: views only move forward.
    pub fn offer_tip(&self, topic: &TopicName, partition: u32, tip: &Tip) {
        let mut tips = lock(&self.tips);
        let entry = tips
            .entry((topic.clone(), partition))
            .or_insert_with(|| tip.clone());
        if tip.manifest.version > entry.manifest.version {
            *entry = tip.clone();
        }
    }

    fn footer(&self, key: &Path) -> Option<Arc<Footer>> {
        lock(&self.footers).map.get(key).cloned()
    }

    fn offer_footer(&self, topic: &TopicName, key: &Path, footer: Arc<Footer>) {
        let m = &footer.manifest;
        if m.record_count > 0 {
            let mut index = lock(&self.index);
            let segments = index.entry((topic.clone(), m.partition)).or_default();
            segments.insert(m.base_offset, (m.version, m.next_offset));
            while segments.len() > INDEX_ENTRIES_PER_PARTITION {
                segments.pop_first();
            }
        }
        let mut cache = lock(&self.footers);
        cache.tail_bytes += footer.tail.len();
        match cache.map.insert(key.clone(), footer) {
            Some(old) => cache.tail_bytes -= old.tail.len(),
            None => cache.order.push_back(key.clone()),
        }
        while cache.order.len() > FOOTER_CACHE_ENTRIES || cache.tail_bytes > FOOTER_CACHE_BYTES {
            let Some(oldest) = cache.order.pop_front() else {
                break;
            };
            if let Some(old) = cache.map.remove(&oldest) {
                cache.tail_bytes -= old.tail.len();
            }
        }
    }

    /// The known data segment holding `offset`: (base offset, version).
    fn segment_for(&self, topic: &TopicName, partition: u32, offset: u64) -> Option<(u64, u64)> {
        let index = lock(&self.index);
        let segments = index.get(&(topic.clone(), partition))?;
        let (&base, &(version, next)) = segments.range(..=offset).next_back()?;
        (offset < next).then_some((base, version))
    }
}

/// A poisoned lock only means another task panicked mid-update of a cache; caches are hints,
/// so carry on with whatever is there.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a partition operation needs: where, and the client's caches.
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    pub store: &'a Store,
    pub caches: &'a Caches,
    pub entropy: &'a Entropy,
    pub hedge: &'a hedge::Hedge,
    pub topic: &'a TopicName,
    pub partition: u32,
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
        let named = keys::parse_segment(key);
        if m.topic != self.topic.as_str()
            || m.partition != self.partition
            || named != Some((m.base_offset, m.version))
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
