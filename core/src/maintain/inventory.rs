//! What a partition folder holds, sorted out against the chain's tip: which objects are live
//! (hold the records from the log start on), which are replaced or expired, which are garbage.

use object_store::path::Path;

use crate::error::Result;
use crate::log::Part;
use crate::manifest::PartitionManifest;
use crate::storage::keys::{self, SegmentKey};

/// One segment object: a chain version (`first == last`) or a merged range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub key: Path,
    pub seg: SegmentKey,
    pub size: u64,
    /// When the store last wrote it (Delta's `modificationTime`).
    pub modified_ms: i64,
}

impl Object {
    pub fn is_merged(&self) -> bool {
        self.seg.first_version != self.seg.last_version
    }
}

/// A partition folder's segment objects, in key order (which is offset order).
pub struct Inventory {
    pub objects: Vec<Object>,
}

impl Inventory {
    /// One listing of the folder (paged by the store).
    pub async fn list(part: Part<'_>) -> Result<Inventory> {
        use crate::chain::Chain;
        let metas = part.store.list_after(&part.dir(), None).await?;
        let objects = metas
            .into_iter()
            .filter_map(|m| {
                let seg = keys::parse_segment_object(&m.location)?;
                Some(Object {
                    key: m.location,
                    seg,
                    size: m.size,
                    modified_ms: m.last_modified.timestamp_millis(),
                })
            })
            .collect();
        Ok(Inventory { objects })
    }

    /// Whether `o` is live as of `tip`: the tip's own object (it carries the state); a chain
    /// version after the compaction watermark; or a merged segment the chain committed (a
    /// merged object is only ever created after its commit). Either kind only at or after the
    /// log start (whole objects are dropped, so a kept one never starts below it).
    pub fn is_live(o: &Object, tip: &PartitionManifest) -> bool {
        Self::is_live_key(&o.seg, tip)
    }

    /// [`Inventory::is_live`] by the object's key alone (what `doctor` has).
    pub fn is_live_key(s: &SegmentKey, tip: &PartitionManifest) -> bool {
        let merged = s.first_version != s.last_version;
        if !merged && s.last_version == tip.version {
            return true;
        }
        if s.base_offset < tip.log_start_offset || s.last_version > tip.version {
            return false;
        }
        if merged {
            s.last_version <= tip.compacted_through
        } else {
            s.last_version > tip.compacted_through
        }
    }

    /// The live objects, in offset order.
    pub fn live(&self, tip: &PartitionManifest) -> Vec<Object> {
        self.objects
            .iter()
            .filter(|o| Self::is_live(o, tip))
            .cloned()
            .collect()
    }

    /// Objects no reader will ever need again: not live, not waiting out a compaction's grace
    /// period (those go with their cleanup), and either below the first live object or a
    /// chain version at or below the compaction watermark. The latter can only be a stray: a
    /// writer paused on a deleted version re-created its successor's key and did not live to
    /// withdraw it (`chain::commit`); it sits among live offsets, so a glob would count it.
    pub fn garbage(&self, tip: &PartitionManifest) -> Vec<Object> {
        let first_live = self
            .objects
            .iter()
            .filter(|o| Self::is_live(o, tip))
            .map(|o| o.seg.first_version)
            .min()
            .unwrap_or(tip.version);
        let pending = |o: &Object| {
            tip.superseded.iter().any(|s| {
                s.first_version <= o.seg.first_version && o.seg.last_version <= s.last_version
            })
        };
        self.objects
            .iter()
            .filter(|o| {
                let stray = !o.is_merged() && o.seg.last_version <= tip.compacted_through;
                (o.seg.last_version < first_live || stray) && !Self::is_live(o, tip) && !pending(o)
            })
            .cloned()
            .collect()
    }

    /// Every object whose versions end before `version` (topic deletion: all but the
    /// tombstone).
    pub fn below_version(&self, version: u64) -> Vec<Object> {
        self.objects
            .iter()
            .filter(|o| o.seg.last_version < version)
            .cloned()
            .collect()
    }

    /// The chain versions `first..=last` present, in order.
    pub fn originals(&self, first: u64, last: u64) -> Vec<Object> {
        self.objects
            .iter()
            .filter(|o| !o.is_merged() && (first..=last).contains(&o.seg.last_version))
            .cloned()
            .collect()
    }

    pub fn merged(&self, first: u64, last: u64) -> Option<&Object> {
        self.objects
            .iter()
            .find(|o| o.seg.first_version == first && o.seg.last_version == last && o.is_merged())
    }
}
