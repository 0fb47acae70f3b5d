//! Compaction: merging runs of adjacent small segments, and deleting the originals once the
//! grace period after the swap has passed.
//!
//! A merged segment holds exactly the rows of the versions it replaces (same offsets, order,
//! timestamps, keys, values, headers) and a deterministic footer: any pass that builds it
//! builds the same bytes, so the size committed with the swap is the size of the object, and a
//! pass that finds the object missing after a crash can build it again.

use bytes::Bytes;
use object_store::path::Path;
use std::collections::{BTreeMap, HashSet};

use super::inventory::{Inventory, Object};
use super::{MaintainOptions, PartitionReport, delete};
use crate::client::Pail;
use crate::error::{Error, Result};
use crate::log::Part;
use crate::manifest::{MANIFEST_FORMAT, MaintainEdit, PartitionManifest, Superseded};
use crate::record::Record;
use crate::segment;
use crate::storage::keys;
use crate::topic::TopicMeta;

/// A run of chain versions to merge, with the offsets they hold.
struct Run {
    originals: Vec<Object>,
    base_offset: u64,
    next_offset: u64,
}

impl Run {
    fn first(&self) -> u64 {
        self.originals.first().map_or(0, |o| o.seg.last_version)
    }
    fn last(&self) -> u64 {
        self.originals.last().map_or(0, |o| o.seg.last_version)
    }
    fn bytes(&self) -> u64 {
        self.originals.iter().map(|o| o.size).sum()
    }
}

pub(super) async fn run(
    pail: &Pail,
    meta: &TopicMeta,
    part: Part<'_>,
    opts: MaintainOptions,
    report: &mut PartitionReport,
) -> Result<()> {
    let tip = pail
        .partition_tip(meta.name.as_str(), part.partition)
        .await?;
    let inventory = Inventory::list(part).await?;
    for run in runs(meta, &tip.state, &inventory) {
        // An original deleted under us: a concurrent pass merged this run already.
        let Some((manifest, bytes)) = build(part, meta, &run).await? else {
            return Ok(());
        };
        let edit = MaintainEdit::Compacted {
            first_version: run.first(),
            last_version: run.last(),
            base_offset: run.base_offset,
            next_offset: run.next_offset,
            original_segments: run.originals.len() as u64,
            original_bytes: run.bytes(),
            merged_bytes: bytes.len() as u64,
        };
        if !opts.dry_run {
            // The swap is committed first; the object follows it. Another pass got there first:
            // its merge stands, this one is dropped.
            if !pail.maintenance_commit(meta, part.partition, edit).await? {
                return Ok(());
            }
            create(part, &manifest, bytes).await?;
        }
        report
            .merged
            .push((run.first(), run.last(), run.originals.len() as u64));
    }
    Ok(())
}

/// The runs worth merging: chain versions after the compaction watermark and before the tip,
/// contiguous, cut at the topic's targets (so a merged segment holds at most a target plus one
/// segment); a last run that fills no target is merged only if it has at least
/// `compact.min.segments` versions.
fn runs(meta: &TopicMeta, tip: &PartitionManifest, inventory: &Inventory) -> Vec<Run> {
    let c = &meta.config;
    let candidates = contiguous_candidates(tip, inventory);
    let mut runs = Vec::new();
    let (mut start, mut bytes, mut records) = (0, 0, 0);
    for (i, (o, end)) in candidates.iter().enumerate() {
        bytes += o.size;
        records += end - o.seg.base_offset;
        // A run needs two members: a segment that fills a target on its own joins the next
        // one, because the compaction watermark only moves over versions merged in order (a
        // lone segment skipped would stop every later merge).
        let full = bytes >= c.compact_target_bytes || records >= c.compact_target_records;
        if full && i > start {
            push_run(&mut runs, &candidates[start..=i]);
            (start, bytes, records) = (i + 1, 0, 0);
        }
    }
    if (candidates.len() - start) as u64 >= c.compact_min_segments {
        push_run(&mut runs, &candidates[start..]);
    }
    runs
}

/// Chain versions `watermark+1, watermark+2, ...` before the tip, each with the offset it
/// ends at (the next version's base), stopping at the first missing version: a run never
/// spans a gap.
fn contiguous_candidates(tip: &PartitionManifest, inventory: &Inventory) -> Vec<(Object, u64)> {
    let chain: BTreeMap<u64, &Object> = inventory
        .objects
        .iter()
        .filter(|o| !o.is_merged() && o.seg.base_offset >= tip.log_start_offset)
        .map(|o| (o.seg.last_version, o))
        .collect();
    let mut out = Vec::new();
    let Some((&first, _)) = chain.range(tip.compacted_through + 1..tip.version).next() else {
        return out;
    };
    for v in first..tip.version {
        let Some(o) = chain.get(&v) else { break };
        let end = match chain.get(&(v + 1)) {
            Some(n) => n.seg.base_offset,
            None if v + 1 == tip.version => tip.base_offset,
            None => break,
        };
        out.push(((*o).clone(), end));
    }
    out
}

fn push_run(runs: &mut Vec<Run>, members: &[(Object, u64)]) {
    let (Some((first, _)), Some((_, end))) = (members.first(), members.last()) else {
        return;
    };
    if members.len() < 2 {
        return;
    }
    runs.push(Run {
        base_offset: first.seg.base_offset,
        next_offset: *end,
        originals: members.iter().map(|(o, _)| o.clone()).collect(),
    });
}

/// The merged segment of `run`: its manifest and its (deterministic) bytes.
/// `None` when an original is gone (a concurrent pass merged and cleaned the run).
async fn build(
    part: Part<'_>,
    meta: &TopicMeta,
    run: &Run,
) -> Result<Option<(PartitionManifest, Bytes)>> {
    let mut records = Vec::new();
    let mut timestamps = Vec::new();
    let mut topic_id = String::new();
    let mut running_max = i64::MIN;
    for o in &run.originals {
        let Some(footer) = part.footer(&o.key).await? else {
            return Ok(None);
        };
        topic_id.clone_from(&footer.manifest.topic_id);
        running_max = running_max.max(footer.manifest.running_max_timestamp_ms);
        let rows = u64::from(footer.manifest.record_count);
        let read = match segment::read_rows(part.store, &o.key, &footer, 0, rows).await {
            Ok(read) => read,
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        for r in read {
            timestamps.push(r.timestamp_ms);
            records.push(Record {
                key: r.key,
                value: r.value,
                headers: r.headers,
                timestamp_ms: Some(r.timestamp_ms),
            });
        }
    }
    if records.len() as u64 != run.next_offset - run.base_offset {
        return Err(Error::corrupt(
            &run.originals[0].key,
            format!(
                "versions {}..={} hold {} records, not the {} their offsets say",
                run.first(),
                run.last(),
                records.len(),
                run.next_offset - run.base_offset
            ),
        ));
    }
    let manifest = merged_manifest(
        meta,
        part.partition,
        run,
        &timestamps,
        topic_id,
        running_max,
    );
    let bytes = segment::encode_with(&records, &timestamps, &manifest, meta.config.compression)
        .map_err(Error::Encode)?;
    Ok(Some((manifest, bytes)))
}

/// The footer manifest of a merged segment: only what follows from its range, so every pass
/// writes the same one. `running_max` is the last original's running maximum timestamp:
/// lookup by time needs the partition's, which covers the records before the range too (with
/// CreateTime an older record may carry a later timestamp).
fn merged_manifest(
    meta: &TopicMeta,
    partition: u32,
    run: &Run,
    timestamps: &[i64],
    topic_id: String,
    running_max: i64,
) -> PartitionManifest {
    let (lo, hi) = timestamps
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
    PartitionManifest {
        format: MANIFEST_FORMAT,
        version: run.last(),
        writer: "compaction".into(),
        commit_id: format!("merge-{}-{}", run.first(), run.last()),
        base_offset: run.base_offset,
        record_count: (run.next_offset - run.base_offset) as u32,
        next_offset: run.next_offset,
        topic_id,
        min_timestamp_ms: lo,
        max_timestamp_ms: hi,
        running_max_timestamp_ms: hi.max(running_max),
        merged_from: Some(run.first()),
        ..PartitionManifest::genesis(meta.name.as_str(), partition)
    }
}

/// Creates the merged object; one already there is the same merge (keys name the range).
async fn create(part: Part<'_>, m: &PartitionManifest, bytes: Bytes) -> Result<()> {
    let first = m.merged_from.unwrap_or(m.version);
    let key = keys::merged_segment(part.topic, part.partition, m.base_offset, first, m.version);
    part.store
        .create(&key, bytes)
        .await
        .map_err(|e| Error::store("put", &key, e))?;
    Ok(())
}

/// Creates the merged objects that compactions committed but a crash (or a failed PUT) left
/// unwritten. Runs before the Delta sync: the table swaps a run in only once its merged file
/// exists, and the originals are deleted only once the table no longer names them, so a
/// merged object rebuilt only after the sync would wait a whole pass, and one rebuilt only
/// when its originals could be deleted would never be. One LIST when a swap is pending.
pub(super) async fn rebuild_missing(
    pail: &Pail,
    meta: &TopicMeta,
    part: Part<'_>,
    opts: MaintainOptions,
    report: &PartitionReport,
) -> Result<()> {
    let tip = pail
        .partition_tip(meta.name.as_str(), part.partition)
        .await?;
    // Merges this pass made wrote their objects already: no listing for those.
    let made_here = |s: &Superseded| {
        report
            .merged
            .iter()
            .any(|&(first, last, _)| (first, last) == (s.first_version, s.last_version))
    };
    if tip.state.superseded.iter().all(made_here) {
        return Ok(());
    }
    let inventory = Inventory::list(part).await?;
    for s in &tip.state.superseded {
        if inventory.merged(s.first_version, s.last_version).is_some() {
            continue;
        }
        let originals = inventory.originals(s.first_version, s.last_version);
        if originals.len() as u64 != s.last_version - s.first_version + 1 {
            continue; // neither the merged object nor every original: leave it to doctor
        }
        let next_offset = inventory
            .objects
            .iter()
            .find(|o| o.seg.first_version == s.last_version + 1)
            .map_or(tip.state.base_offset, |o| o.seg.base_offset);
        let run = Run {
            originals,
            base_offset: s.base_offset,
            next_offset,
        };
        let Some((manifest, bytes)) = build(part, meta, &run).await? else {
            continue;
        };
        if !opts.dry_run {
            create(part, &manifest, bytes).await?;
        }
    }
    Ok(())
}

/// Deletes the originals of compactions whose grace period has passed and whose merged object
/// exists ([`rebuild_missing`] writes a missing one), then commits the cleanup. A compaction
/// whose originals the Delta table still names (`named`) waits for a later pass.
pub(super) async fn clean(
    pail: &Pail,
    meta: &TopicMeta,
    part: Part<'_>,
    now_ms: i64,
    opts: MaintainOptions,
    named: &HashSet<Path>,
    report: &mut PartitionReport,
) -> Result<()> {
    let tip = pail
        .partition_tip(meta.name.as_str(), part.partition)
        .await?;
    let due: Vec<_> = tip
        .state
        .superseded
        .iter()
        .filter(|s| now_ms - s.committed_at_ms >= opts.grace_ms)
        .cloned()
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    let inventory = Inventory::list(part).await?;
    let mut cleaned = Vec::new();
    for s in due {
        let originals = inventory.originals(s.first_version, s.last_version);
        // Without the merged object (not rebuilt yet) the originals are still the data; while
        // the Delta table names one, its readers still need it: the next pass deletes them.
        if inventory.merged(s.first_version, s.last_version).is_none()
            || originals.iter().any(|o| named.contains(&o.key))
        {
            continue;
        }
        delete(pail, &originals, opts, report).await?;
        cleaned.push(s.last_version);
    }
    if !opts.dry_run && !cleaned.is_empty() {
        let edit = MaintainEdit::Cleaned {
            last_versions: cleaned,
        };
        pail.maintenance_commit(meta, part.partition, edit).await?;
    }
    Ok(())
}
