//! Maintenance edits: retention, compaction, topic deletion and re-creation.
//!
//! Each is a control commit on the partition's chain, made *before* any object is deleted, so
//! the chain always says what is live: `log_start_offset` for retention, `compacted_through`
//! and `superseded` for compaction, `deleted` and `topic_id` for the topic's lifecycle. The
//! counters (`prior_segments`, `prior_bytes`) count live objects, so `describe` stays true.
//! Objects are deleted afterwards, in ascending chain order (`crate::maintain`).

use serde::{Deserialize, Serialize};

use super::{ApplyError, CommitContext, PartitionManifest};

/// Compactions whose originals may wait for deletion at once.
pub const SUPERSEDED_MAX: usize = 64;

/// A committed compaction whose original objects are not deleted yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superseded {
    pub first_version: u64,
    pub last_version: u64,
    /// Base offset of the merged segment (and of its first original).
    pub base_offset: u64,
    /// When the merged segment took over: the originals are deleted only after a grace
    /// period, so readers in flight finish what they started.
    pub committed_at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaintainEdit {
    /// Retention: records below `log_start` are dropped. `segments` live objects holding
    /// `bytes` go (the newest of them is version `through_version`); they are deleted after
    /// this commit. `seen_log_start` and `seen_compacted_through` are what the decision saw: a
    /// retention or compaction committed since dropped or replaced some of those objects, so
    /// the counts would be wrong (the edit is then stale, and the next pass decides again).
    AdvanceLogStart {
        log_start: u64,
        segments: u64,
        bytes: u64,
        through_version: u64,
        seen_log_start: u64,
        seen_compacted_through: u64,
    },
    /// Compaction: versions `first_version..=last_version` (`original_segments` live objects,
    /// `original_bytes`) are one merged segment of `merged_bytes` from now on.
    Compacted {
        first_version: u64,
        last_version: u64,
        base_offset: u64,
        next_offset: u64,
        original_segments: u64,
        original_bytes: u64,
        merged_bytes: u64,
    },
    /// The originals of these compactions (named by their last version) were deleted.
    Cleaned { last_versions: Vec<u64> },
    /// The topic was deleted: every record is dropped (with every live object) and writes are
    /// refused until the topic is created again.
    Tombstone,
    /// The topic was created again under a new id.
    Reincarnate { topic_id: String },
}

/// Refuses writes to a deleted topic, and writes that name another incarnation.
pub(super) fn check_incarnation(
    prev: &PartitionManifest,
    topic_id: &str,
) -> Result<(), ApplyError> {
    if prev.deleted {
        return Err(ApplyError::TopicGone(String::new()));
    }
    if !topic_id.is_empty() && !prev.topic_id.is_empty() && prev.topic_id != topic_id {
        return Err(ApplyError::TopicGone(
            " and created again: this writer knows an older incarnation".into(),
        ));
    }
    Ok(())
}

pub(super) fn apply(
    prev: &PartitionManifest,
    next: &mut PartitionManifest,
    edit: &MaintainEdit,
    ctx: &CommitContext<'_>,
) -> Result<(), ApplyError> {
    match edit {
        MaintainEdit::AdvanceLogStart {
            log_start,
            segments,
            bytes,
            through_version,
            seen_log_start,
            seen_compacted_through,
        } => {
            if prev.compacted_through != *seen_compacted_through
                || prev.log_start_offset != *seen_log_start
            {
                return Err(ApplyError::Stale(format!(
                    "the log start ({}) or the compaction watermark ({}) moved since the decision",
                    prev.log_start_offset, prev.compacted_through
                )));
            }
            if *log_start <= prev.log_start_offset {
                return Err(ApplyError::Stale(format!(
                    "the log already starts at {}",
                    prev.log_start_offset
                )));
            }
            if *log_start > prev.next_offset {
                return Err(ApplyError::Invalid(format!(
                    "log start {log_start} is past the end {}",
                    prev.next_offset
                )));
            }
            next.log_start_offset = *log_start;
            drop_live(prev, next, *segments, *bytes, ctx)?;
            next.compacted_through = prev.compacted_through.max(*through_version);
            next.superseded
                .retain(|s| s.last_version > *through_version);
        }
        MaintainEdit::Compacted {
            first_version,
            last_version,
            base_offset,
            next_offset,
            original_segments,
            original_bytes,
            merged_bytes,
        } => {
            check_compaction(
                prev,
                *first_version,
                *last_version,
                *base_offset,
                *next_offset,
            )?;
            let live = prev.prior_segments + u64::from(!prev.is_genesis());
            let kept = live
                .checked_sub(*original_segments)
                .ok_or_else(|| ApplyError::Invalid("more originals than live objects".into()))?;
            next.prior_segments = kept + 1;
            next.prior_bytes = (prev.prior_bytes + ctx.prev_size)
                .checked_sub(*original_bytes)
                .ok_or_else(|| ApplyError::Invalid("more original bytes than live bytes".into()))?
                + merged_bytes;
            next.compacted_through = *last_version;
            next.superseded.push(Superseded {
                first_version: *first_version,
                last_version: *last_version,
                base_offset: *base_offset,
                committed_at_ms: ctx.now_ms,
            });
        }
        MaintainEdit::Cleaned { last_versions } => {
            let before = next.superseded.len();
            next.superseded
                .retain(|s| !last_versions.contains(&s.last_version));
            if next.superseded.len() == before {
                return Err(ApplyError::Stale("nothing left to clean".into()));
            }
        }
        MaintainEdit::Tombstone => {
            check_incarnation(prev, "")?;
            next.deleted = true;
            next.lease = None;
            next.log_start_offset = prev.next_offset;
            let live = prev.prior_segments + u64::from(!prev.is_genesis());
            drop_live(prev, next, live, prev.prior_bytes + ctx.prev_size, ctx)?;
            next.compacted_through = prev.version;
            next.superseded.clear();
        }
        MaintainEdit::Reincarnate { topic_id } => {
            if !prev.deleted {
                return Err(ApplyError::Stale("the topic is not deleted".into()));
            }
            next.deleted = false;
            next.topic_id = topic_id.clone();
            next.producers.clear();
            next.keys = Default::default();
        }
    }
    Ok(())
}

/// Takes `segments` live objects of `bytes` out of the counters.
fn drop_live(
    prev: &PartitionManifest,
    next: &mut PartitionManifest,
    segments: u64,
    bytes: u64,
    ctx: &CommitContext<'_>,
) -> Result<(), ApplyError> {
    let live = prev.prior_segments + u64::from(!prev.is_genesis());
    next.prior_segments = live
        .checked_sub(segments)
        .ok_or_else(|| ApplyError::Invalid(format!("{segments} objects dropped of {live} live")))?;
    next.prior_bytes = (prev.prior_bytes + ctx.prev_size)
        .checked_sub(bytes)
        .ok_or_else(|| ApplyError::Invalid(format!("{bytes} bytes dropped of fewer live")))?;
    Ok(())
}

fn check_compaction(
    prev: &PartitionManifest,
    first: u64,
    last: u64,
    base: u64,
    end: u64,
) -> Result<(), ApplyError> {
    if first <= prev.compacted_through {
        return Err(ApplyError::Stale(format!(
            "versions up to {} are compacted already",
            prev.compacted_through
        )));
    }
    if first != prev.compacted_through + 1 && base != prev.log_start_offset {
        return Err(ApplyError::Invalid(format!(
            "a compaction starts right after version {} or at the log start",
            prev.compacted_through
        )));
    }
    if first > last || last > prev.version || base < prev.log_start_offset || end > prev.next_offset
    {
        return Err(ApplyError::Invalid(format!(
            "versions {first}..={last} (offsets {base}..{end}) are not within the live log"
        )));
    }
    if prev.superseded.len() >= SUPERSEDED_MAX {
        return Err(ApplyError::Invalid(format!(
            "{SUPERSEDED_MAX} compactions wait for their originals to be deleted; clean first"
        )));
    }
    Ok(())
}

pub(super) fn check_bounds(m: &PartitionManifest) -> Result<(), String> {
    if m.superseded.len() > SUPERSEDED_MAX {
        return Err(format!(
            "{} superseded ranges, over {SUPERSEDED_MAX}",
            m.superseded.len()
        ));
    }
    if m.merged_from.is_some_and(|first| first > m.version) {
        return Err("a merged segment starts after its last version".into());
    }
    Ok(())
}
