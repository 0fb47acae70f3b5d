//! Retention: drop whole objects from the oldest, by age (`retention.ms`, judged by each
//! object's newest record) and by size (`retention.bytes` per partition).

use super::inventory::{Inventory, Object};
use super::{MaintainOptions, PartitionReport};
use crate::client::Pail;
use crate::error::Result;
use crate::log::{Part, Tip};
use crate::manifest::MaintainEdit;
use crate::topic::TopicMeta;

pub(super) async fn run(
    pail: &Pail,
    meta: &TopicMeta,
    part: Part<'_>,
    tip: &Tip,
    now_ms: i64,
    opts: MaintainOptions,
    report: &mut PartitionReport,
) -> Result<()> {
    let (age, size) = (meta.config.retention_ms, meta.config.retention_bytes);
    if age.is_none() && size.is_none() {
        return Ok(());
    }
    let live = Inventory::list(part).await?.live(&tip.state);
    let total: u64 = live.iter().map(|o| o.size).sum();
    let mut dropped: Vec<&Object> = Vec::new();
    let mut dropped_bytes = 0;
    for o in &live {
        let too_old = match age {
            Some(ms) => newest_timestamp(part, o).await? < now_ms.saturating_sub(ms as i64),
            None => false,
        };
        let too_big = size.is_some_and(|limit| total - dropped_bytes > limit);
        if !(too_old || too_big) {
            break;
        }
        dropped.push(o);
        dropped_bytes += o.size;
    }
    let Some(last) = dropped.last() else {
        return Ok(());
    };
    // The log now starts where the first kept object starts (or at the end, if none is kept).
    let log_start = live
        .get(dropped.len())
        .map_or(tip.state.next_offset, |o| o.seg.base_offset);
    if log_start <= tip.state.log_start_offset {
        return Ok(());
    }
    let edit = MaintainEdit::AdvanceLogStart {
        log_start,
        segments: dropped.len() as u64,
        bytes: dropped_bytes,
        through_version: last.seg.last_version,
        seen_log_start: tip.state.log_start_offset,
        seen_compacted_through: tip.state.compacted_through,
    };
    if !opts.dry_run && !pail.maintenance_commit(meta, part.partition, edit).await? {
        return Ok(());
    }
    report.dropped_segments = dropped.len() as u64;
    report.dropped_bytes = dropped_bytes;
    report.log_start_offset = Some(log_start);
    Ok(())
}

/// The timestamp of an object's newest record; a version without records counts by when it
/// was committed.
async fn newest_timestamp(part: Part<'_>, o: &Object) -> Result<i64> {
    let Some(footer) = part.footer(&o.key).await? else {
        // Deleted under us by a concurrent pass: nothing to keep.
        return Ok(i64::MIN);
    };
    let m = &footer.manifest;
    Ok(if m.record_count > 0 && m.max_timestamp_ms > 0 {
        m.max_timestamp_ms
    } else {
        m.committed_at_ms
    })
}
