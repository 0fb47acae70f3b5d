//! The partition manifest: the state of one partition after each commit, and the pure function
//! that moves it forward.
//!
//! Every segment object carries the manifest as of its own commit in its Parquet key-value
//! metadata, so the segment chain *is* the manifest chain (see `docs/architecture.md`). This
//! module owns the state and its transitions ([`apply`]); it never does I/O. The commit loop that
//! refreshes, applies and creates the next object lives in `crate::log`.
//!
//! What [`apply`] guarantees for every successor it returns (checked again by
//! [`check_successor`] so a bug in an edit cannot slip through):
//! - versions increase by exactly one;
//! - the new segment starts at the previous `next_offset` (offsets contiguous, never reused);
//! - `next_offset = base_offset + record_count`;
//! - the log start and the leader epoch never move backward;
//! - producer state stays within its bounds.

mod idempotency;
mod maintenance;
mod producers;

pub use idempotency::{
    IDEMPOTENCY_KEY_MAX_BYTES, IDEMPOTENCY_KEYS_MAX, IDEMPOTENCY_WINDOW_MS, IdempotencyKey,
    KeyEntry, KeyWindow,
};
pub use maintenance::{SUPERSEDED_MAX, Superseded};
pub use producers::{
    PRODUCER_BATCHES_MAX, PRODUCERS_MAX, ProducerBatch, ProducerState, ProducerWindow,
};

use serde::{Deserialize, Serialize};

/// The manifest format this build writes and the only one it accepts.
pub const MANIFEST_FORMAT: u32 = 1;

/// A writer's lease on a partition: while it holds, other writers leave the partition alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The writer id of the leader.
    pub holder: String,
    /// The leader's clock reading when the lease runs out. Clocks only decide when others may
    /// take over (liveness); fencing is by `leader_epoch`, which the chain orders.
    pub expires_at_ms: i64,
}

/// The state of one partition as of one commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionManifest {
    pub format: u32,
    pub topic: String,
    pub partition: u32,
    /// Position in the partition's chain: 1 for the first segment, +1 per commit.
    pub version: u64,
    /// Id of the writer that created this version.
    pub writer: String,
    /// Unique per commit attempt, so a writer can recognise its own object when a create's
    /// answer was lost (S3 ETags cannot: identical bytes give identical ETags).
    pub commit_id: String,
    /// Digest of the batch's content as the client supplied it (`crate::record::digest`); the
    /// read-back after an unclear create checks it as well as `commit_id`.
    #[serde(default)]
    pub digest: String,
    /// The idempotent producer batch this version holds, so a retry can find it later by
    /// reading the versions committed since its first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<ProducerBatch>,
    /// The committing writer's clock; informational only.
    pub committed_at_ms: i64,
    /// First offset held by this segment (= the previous version's `next_offset`).
    pub base_offset: u64,
    /// Records in this segment; 0 for control commits (leadership changes).
    pub record_count: u32,
    /// The offset the next record will get: the high watermark.
    pub next_offset: u64,
    /// The first offset still readable; retention moves it forward.
    pub log_start_offset: u64,
    /// Live segment objects before this one, and their total size in bytes.
    pub prior_segments: u64,
    pub prior_bytes: u64,
    /// Highest leader epoch ever granted on this partition; commits from older epochs fail.
    pub leader_epoch: u64,
    pub lease: Option<Lease>,
    /// Idempotent-producer state, most recently active last; bounded by [`PRODUCERS_MAX`].
    pub producers: Vec<ProducerState>,
    /// Idempotency keys committed within their window (see [`idempotency`]).
    #[serde(default, skip_serializing_if = "KeyWindow::is_empty")]
    pub keys: KeyWindow,
    /// The commit id of the version this one was built on, linking the chain, so a version can
    /// tell whether its successor really builds on it (see `crate::chain::commit`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prev_commit_id: String,
    /// The topic incarnation this partition belongs to (Kafka's topic id, KIP-516). A topic
    /// deleted and created again continues the same chains under a new id, so a writer or
    /// reader of the old incarnation never writes into or reads from the new one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub topic_id: String,
    /// The topic was deleted (a tombstone): no writes until it is created again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Smallest and largest record timestamp in this version's segment (0 for control
    /// versions), and the largest timestamp of the partition up to this version (for lookup
    /// by time: it never decreases along the chain).
    #[serde(default)]
    pub min_timestamp_ms: i64,
    #[serde(default)]
    pub max_timestamp_ms: i64,
    #[serde(default)]
    pub running_max_timestamp_ms: i64,
    /// Set on a merged segment only: it holds versions `merged_from..=version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<u64>,
    /// Versions up to here are in merged segments (or below the log start).
    #[serde(default)]
    pub compacted_through: u64,
    /// Committed compactions whose original objects are not deleted yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<Superseded>,
}

impl PartitionManifest {
    /// The state of a partition nothing was ever written to (version 0, never stored).
    pub fn genesis(topic: &str, partition: u32) -> Self {
        PartitionManifest {
            format: MANIFEST_FORMAT,
            topic: topic.to_string(),
            partition,
            version: 0,
            writer: String::new(),
            commit_id: String::new(),
            digest: String::new(),
            origin: None,
            committed_at_ms: 0,
            base_offset: 0,
            record_count: 0,
            next_offset: 0,
            log_start_offset: 0,
            prior_segments: 0,
            prior_bytes: 0,
            leader_epoch: 0,
            lease: None,
            producers: Vec::new(),
            keys: KeyWindow::default(),
            prev_commit_id: String::new(),
            topic_id: String::new(),
            deleted: false,
            min_timestamp_ms: 0,
            max_timestamp_ms: 0,
            running_max_timestamp_ms: 0,
            merged_from: None,
            compacted_through: 0,
            superseded: Vec::new(),
        }
    }

    pub fn is_genesis(&self) -> bool {
        self.version == 0
    }

    /// Offset of this segment's last record, `None` for a control commit.
    pub fn last_offset(&self) -> Option<u64> {
        (self.record_count > 0).then(|| self.next_offset - 1)
    }

    pub fn encode(&self) -> Result<String, String> {
        serde_json::to_string(self).map_err(|e| format!("manifest does not encode: {e}"))
    }

    /// Decodes a manifest and checks it on its own: format, arithmetic, bounds.
    pub fn decode(text: &str) -> Result<Self, String> {
        let m: PartitionManifest =
            serde_json::from_str(text).map_err(|e| format!("manifest does not decode: {e}"))?;
        m.check_self()?;
        Ok(m)
    }

    /// The invariants that hold for any single manifest.
    pub fn check_self(&self) -> Result<(), String> {
        if self.format != MANIFEST_FORMAT {
            return Err(format!(
                "unknown manifest format {} (this build reads {MANIFEST_FORMAT})",
                self.format
            ));
        }
        if self.version == 0 {
            return Err("stored manifest has version 0".into());
        }
        if self.base_offset.checked_add(u64::from(self.record_count)) != Some(self.next_offset) {
            return Err(format!(
                "next_offset {} != base_offset {} + record_count {}",
                self.next_offset, self.base_offset, self.record_count
            ));
        }
        if self.log_start_offset > self.next_offset {
            return Err(format!(
                "log_start_offset {} is past next_offset {}",
                self.log_start_offset, self.next_offset
            ));
        }
        producers::check_bounds(&self.producers)?;
        maintenance::check_bounds(self)?;
        self.keys.check_bounds()
    }
}

impl crate::chain::Versioned for PartitionManifest {
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

/// A change to a partition, applied by [`apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Append `record_count` records (at least one) as one new segment.
    Append(AppendEdit),
    /// Become the partition's leader: bump the epoch and take a lease. A control commit.
    AcquireLease { lease_ms: u64 },
    /// Maintenance (retention, compaction, topic deletion); see [`maintenance`].
    Maintain(MaintainEdit),
}

pub use maintenance::MaintainEdit;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendEdit {
    pub record_count: u32,
    /// The epoch the writer leads with, if it is a leader. Leaders renew their lease on every
    /// append; a stale epoch is fenced.
    pub leader: Option<LeaderClaim>,
    /// Present for idempotent producers: the batch's producer id and first sequence number.
    pub producer: Option<ProducerBatch>,
    /// A client's idempotency key: the batch is appended once within the key's window.
    pub key: Option<IdempotencyKey>,
    /// The topic incarnation the writer writes to; empty for "any" (raw callers and tests).
    pub topic_id: String,
    /// Smallest and largest timestamp of the batch's records.
    pub min_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderClaim {
    pub epoch: u64,
    pub lease_ms: u64,
}

/// Who is committing and when, supplied by the commit loop.
#[derive(Clone, Debug)]
pub struct CommitContext<'a> {
    pub writer: &'a str,
    pub commit_id: &'a str,
    pub now_ms: i64,
    /// Size of the previous version's object (0 for genesis), to keep the byte count.
    pub prev_size: u64,
    /// Digest of the content being committed (32 hex digits).
    pub digest: &'a str,
}

/// What applying an edit produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The next version to create.
    Next(Box<PartitionManifest>),
    /// The batch was already committed by an earlier attempt; these are its offsets.
    Duplicate { base_offset: u64, record_count: u32 },
}

/// Why an edit cannot apply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("epoch {epoch} is fenced by epoch {current}")]
    Fenced { epoch: u64, current: u64 },
    #[error("epoch {epoch} is held by writer {holder}, not by this writer")]
    NotHolder { epoch: u64, holder: String },
    #[error("led by {holder} (epoch {epoch}) for {remaining_ms} ms more")]
    NotLeader {
        holder: String,
        epoch: u64,
        remaining_ms: u64,
    },
    #[error("{0}")]
    Sequence(String),
    #[error("invalid edit: {0}")]
    Invalid(String),
    #[error("the topic was deleted{0}")]
    TopicGone(String),
    /// The edit was already made (by a concurrent maintenance pass): nothing to do.
    #[error("nothing to do: {0}")]
    Stale(String),
    #[error("invariant broken: {0}")]
    Invariant(String),
}

/// Applies `edit` to `prev`, returning the next version or a duplicate's original offsets.
///
/// Pure: the same inputs always give the same output, so it is property-tested directly.
pub fn apply(
    prev: &PartitionManifest,
    edit: &Edit,
    ctx: &CommitContext<'_>,
) -> Result<Applied, ApplyError> {
    let mut next = successor_skeleton(prev, ctx);
    match edit {
        Edit::Append(append) => {
            if append.record_count == 0 {
                return Err(ApplyError::Invalid(
                    "an append needs at least one record".into(),
                ));
            }
            // A retry of a batch already in the log writes nothing, so it needs no right to
            // write: recognise it before the lease and epoch checks, or a committed batch
            // would be reported as failed after another writer took the lead.
            if let Some(dup) = duplicate_of(prev, append, ctx)? {
                return Ok(dup);
            }
            maintenance::check_incarnation(prev, &append.topic_id)?;
            check_writer_may_append(prev, append.leader.as_ref(), ctx)?;
            append_to(prev, &mut next, append, ctx)?;
        }
        Edit::Maintain(edit) => maintenance::apply(prev, &mut next, edit, ctx)?,
        Edit::AcquireLease { lease_ms } => {
            maintenance::check_incarnation(prev, "")?;
            if let Some(remaining_ms) = foreign_lease_remaining(prev, ctx) {
                return Err(not_leader(prev, remaining_ms));
            }
            next.leader_epoch = prev.leader_epoch + 1;
            next.lease = Some(Lease {
                holder: ctx.writer.to_string(),
                expires_at_ms: ctx.now_ms.saturating_add(*lease_ms as i64),
            });
        }
    }
    check_successor(prev, &next).map_err(ApplyError::Invariant)?;
    Ok(Applied::Next(Box::new(next)))
}

/// The original offsets of `append` if it is a retry of a committed batch.
fn duplicate_of(
    prev: &PartitionManifest,
    append: &AppendEdit,
    ctx: &CommitContext<'_>,
) -> Result<Option<Applied>, ApplyError> {
    if let Some(batch) = &append.producer
        && let producers::Admission::Duplicate(w) =
            producers::admit(&prev.producers, batch, append.record_count, ctx.digest)?
    {
        return Ok(Some(Applied::Duplicate {
            base_offset: w.base_offset,
            record_count: w.record_count,
        }));
    }
    if let Some(key) = &append.key
        && let Some(hit) = prev
            .keys
            .lookup(key, digest_prefix(ctx.digest), ctx.now_ms)?
    {
        if hit.record_count != append.record_count {
            return Err(ApplyError::Sequence(format!(
                "idempotency key was used at offset {} for {} records, this batch has {}",
                hit.base_offset, hit.record_count, append.record_count
            )));
        }
        return Ok(Some(Applied::Duplicate {
            base_offset: hit.base_offset,
            record_count: hit.record_count,
        }));
    }
    Ok(None)
}

/// Fills in `next` for a new batch: offsets, producer and key windows, the leader's lease.
fn append_to(
    prev: &PartitionManifest,
    next: &mut PartitionManifest,
    append: &AppendEdit,
    ctx: &CommitContext<'_>,
) -> Result<(), ApplyError> {
    if let Some(batch) = &append.producer {
        let window = ProducerWindow {
            first_sequence: batch.first_sequence,
            record_count: append.record_count,
            base_offset: prev.next_offset,
            digest: ctx.digest.to_string(),
        };
        next.producers = producers::record(&prev.producers, batch, window, next.version);
        next.origin = Some(batch.clone());
    }
    if let Some(key) = append.key {
        next.keys = prev.keys.with(KeyEntry {
            key,
            base_offset: prev.next_offset,
            record_count: append.record_count,
            committed_at_ms: ctx.now_ms,
            digest: digest_prefix(ctx.digest),
        })?;
    }
    if let Some(claim) = append.leader {
        next.lease = Some(Lease {
            holder: ctx.writer.to_string(),
            expires_at_ms: ctx.now_ms.saturating_add(claim.lease_ms as i64),
        });
    }
    if !append.topic_id.is_empty() {
        next.topic_id = append.topic_id.clone();
    }
    next.min_timestamp_ms = append.min_timestamp_ms;
    next.max_timestamp_ms = append.max_timestamp_ms;
    next.running_max_timestamp_ms = prev.running_max_timestamp_ms.max(append.max_timestamp_ms);
    next.record_count = append.record_count;
    next.next_offset = prev
        .next_offset
        .checked_add(u64::from(append.record_count))
        .ok_or_else(|| ApplyError::Invalid("offsets would overflow".into()))?;
    Ok(())
}

/// The first 8 bytes of a hex digest (0 for a digest too short to have them).
fn digest_prefix(digest: &str) -> u64 {
    digest
        .get(..16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or(0)
}

/// The fields every successor shares: the next version, the offsets it starts at, the counters
/// that now include `prev`'s object, and state carried over unchanged.
fn successor_skeleton(prev: &PartitionManifest, ctx: &CommitContext<'_>) -> PartitionManifest {
    let prev_counted = u64::from(!prev.is_genesis());
    PartitionManifest {
        format: MANIFEST_FORMAT,
        topic: prev.topic.clone(),
        partition: prev.partition,
        version: prev.version + 1,
        writer: ctx.writer.to_string(),
        commit_id: ctx.commit_id.to_string(),
        digest: ctx.digest.to_string(),
        origin: None,
        committed_at_ms: ctx.now_ms,
        base_offset: prev.next_offset,
        record_count: 0,
        next_offset: prev.next_offset,
        log_start_offset: prev.log_start_offset,
        prior_segments: prev.prior_segments + prev_counted,
        prior_bytes: prev.prior_bytes + ctx.prev_size,
        leader_epoch: prev.leader_epoch,
        lease: prev.lease.clone(),
        producers: prev.producers.clone(),
        keys: prev.keys.pruned(ctx.now_ms),
        prev_commit_id: prev.commit_id.clone(),
        topic_id: prev.topic_id.clone(),
        deleted: prev.deleted,
        min_timestamp_ms: 0,
        max_timestamp_ms: 0,
        running_max_timestamp_ms: prev.running_max_timestamp_ms,
        merged_from: None,
        compacted_through: prev.compacted_through,
        superseded: prev.superseded.clone(),
    }
}

fn check_writer_may_append(
    prev: &PartitionManifest,
    claim: Option<&LeaderClaim>,
    ctx: &CommitContext<'_>,
) -> Result<(), ApplyError> {
    match claim {
        // A leader's right to write is its epoch, never its clock.
        Some(claim) if claim.epoch < prev.leader_epoch => Err(ApplyError::Fenced {
            epoch: claim.epoch,
            current: prev.leader_epoch,
        }),
        Some(claim) if claim.epoch > prev.leader_epoch => Err(ApplyError::Invalid(format!(
            "epoch {} was never granted (the partition is at epoch {})",
            claim.epoch, prev.leader_epoch
        ))),
        // The epoch is current, but a claim is also tied to the writer it was granted to: any
        // other writer presenting it is not the leader.
        Some(claim) => match &prev.lease {
            Some(lease) if lease.holder != ctx.writer => Err(ApplyError::NotHolder {
                epoch: claim.epoch,
                holder: lease.holder.clone(),
            }),
            _ => Ok(()),
        },
        None => match foreign_lease_remaining(prev, ctx) {
            Some(remaining_ms) => Err(not_leader(prev, remaining_ms)),
            None => Ok(()),
        },
    }
}

/// Milliseconds left on a lease held by another writer, if any.
fn foreign_lease_remaining(prev: &PartitionManifest, ctx: &CommitContext<'_>) -> Option<u64> {
    let lease = prev.lease.as_ref()?;
    let remaining = lease.expires_at_ms.saturating_sub(ctx.now_ms);
    (lease.holder != ctx.writer && remaining > 0).then_some(remaining as u64)
}

fn not_leader(prev: &PartitionManifest, remaining_ms: u64) -> ApplyError {
    ApplyError::NotLeader {
        holder: prev
            .lease
            .as_ref()
            .map(|l| l.holder.clone())
            .unwrap_or_default(),
        epoch: prev.leader_epoch,
        remaining_ms,
    }
}

/// The invariants between a version and its successor.
pub fn check_successor(prev: &PartitionManifest, next: &PartitionManifest) -> Result<(), String> {
    next.check_self()?;
    if (next.topic.as_str(), next.partition) != (prev.topic.as_str(), prev.partition) {
        return Err("successor belongs to another partition".into());
    }
    if next.version != prev.version + 1 {
        return Err(format!(
            "version {} does not follow {}",
            next.version, prev.version
        ));
    }
    if next.base_offset != prev.next_offset {
        return Err(format!(
            "base_offset {} leaves a gap or overlap after next_offset {}",
            next.base_offset, prev.next_offset
        ));
    }
    if next.log_start_offset < prev.log_start_offset {
        return Err("log start moved backward".into());
    }
    if next.leader_epoch < prev.leader_epoch {
        return Err("leader epoch moved backward".into());
    }
    if !prev.commit_id.is_empty()
        && !next.prev_commit_id.is_empty()
        && next.prev_commit_id != prev.commit_id
    {
        return Err("it was built on another version than its predecessor".into());
    }
    if next.compacted_through < prev.compacted_through {
        return Err("the compaction watermark moved backward".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
