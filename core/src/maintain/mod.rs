//! Maintenance: retention, compaction of small segments, deletion of what is no longer live,
//! and topic deletion. `pail maintain` and the scheduled maintenance Lambda run
//! [`Pail::maintain`]; any number of passes may run at once.
//!
//! Every pass works the same way on each partition: it reads the chain's tip, decides, commits
//! what it decided as a control version (`manifest::MaintainEdit`), and only then deletes
//! objects, in ascending chain order, never the tip. So the chain always says what is live,
//! two passes racing on one partition settle like any two writers (the loser's edit is stale
//! and it does nothing), and a crash between the commit and the deletes leaves only garbage
//! that the next pass deletes.
//!
//! - Retention drops whole objects (segments, or merged segments) from the oldest, while their
//!   newest record is older than `retention.ms`, or while the rest still holds more than
//!   `retention.bytes`.
//! - Old consumer-group versions ([`groups`]) below the newest few and the hinted one are
//!   deleted, oldest first.
//! - Compaction merges runs of adjacent small chain segments into one merged segment (target
//!   bytes or records, or at least `compact.min.segments` of them). The swap is committed
//!   first (the merge's *intent*, with its deterministic bytes' size), then the merged object
//!   is created at a key named by its range, so a merged object never exists without its
//!   commit. The originals stay until a grace period has passed (readers in flight finish),
//!   then are deleted and the cleanup is committed.
//!
//! Writers paused across a pass cannot resurrect deleted versions: a commit checks that the
//! version it built on still exists (`chain::commit`), and readers judge offsets against the
//! latest log start.

mod compaction;
pub mod delta;
pub mod groups;
pub(crate) mod inventory;
mod retention;

use object_store::path::Path;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;

use crate::client::Pail;
use crate::error::{ErrorKind, Result};
use crate::manifest::{Edit, MaintainEdit};
use crate::topic::TopicMeta;
use inventory::Inventory;

/// Default time between a compaction's swap and the deletion of the objects it replaced.
pub const GRACE_MS_DEFAULT: i64 = 10 * 60 * 1000;
/// Objects deleted per request (S3's DeleteObjects takes 1,000).
pub(crate) const DELETE_CHUNK: usize = 1000;

/// How a pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaintainOptions {
    /// Decide and report, change nothing.
    pub dry_run: bool,
    /// Objects replaced by a merged segment are deleted only this long after the swap.
    pub grace_ms: i64,
}

impl Default for MaintainOptions {
    fn default() -> Self {
        MaintainOptions {
            dry_run: false,
            grace_ms: GRACE_MS_DEFAULT,
        }
    }
}

/// What a pass did (or, in a dry run, would do) to one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PartitionReport {
    pub topic: String,
    pub partition: u32,
    /// Whole objects dropped by retention, their bytes, and the new log start.
    pub dropped_segments: u64,
    pub dropped_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_start_offset: Option<u64>,
    /// Merged segments created: (first version, last version, segments merged).
    pub merged: Vec<(u64, u64, u64)>,
    /// Objects deleted (expired, replaced after their grace period, or garbage) and bytes freed.
    pub deleted_objects: u64,
    pub deleted_bytes: u64,
    /// Why the partition was left alone, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The topic's Delta table version after the pass's sync (`None`: no table yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_version: Option<u64>,
    /// Why the Delta table could not be synced (a damaged log): the topic's deletes wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_error: Option<String>,
}

impl Pail {
    /// One maintenance pass over `topic` (every topic when `None`).
    pub async fn maintain(
        &self,
        topic: Option<&str>,
        opts: MaintainOptions,
    ) -> Result<Vec<PartitionReport>> {
        let topics = match topic {
            Some(t) => vec![self.topic_latest(t).await?],
            None => {
                let mut metas = Vec::new();
                for name in self.list_topics().await? {
                    metas.push(self.topic_latest(name.as_str()).await?);
                }
                metas
            }
        };
        let mut reports = Vec::new();
        for meta in topics {
            reports.extend(self.maintain_topic(&meta, opts).await?);
        }
        Ok(reports)
    }

    /// One topic: every partition's commits, then the Delta sync, then the deletes, so that
    /// no object the Delta table names is ever deleted (its readers would fail on it).
    pub async fn maintain_topic(
        &self,
        meta: &Arc<TopicMeta>,
        opts: MaintainOptions,
    ) -> Result<Vec<PartitionReport>> {
        let mut reports = Vec::new();
        for p in 0..meta.config.partitions {
            reports.push(self.maintain_commits(meta, p, opts).await?);
        }
        let synced: Vec<u32> = reports
            .iter()
            .filter(|r| r.skipped.is_none())
            .map(|r| r.partition)
            .collect();
        let table = if opts.dry_run {
            delta::load(self, meta).await
        } else {
            delta::sync(self, meta, &synced).await
        };
        let table = match table {
            Ok(table) => table,
            // A damaged log stays this topic's problem: its deletes wait (what the table names
            // is unknown), other topics carry on.
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                for report in &mut reports {
                    report.delta_error = Some(e.to_string());
                }
                return Ok(reports);
            }
            Err(e) => return Err(e),
        };
        let named = table.object_keys(&meta.name);
        for report in &mut reports {
            report.delta_version = table.version;
            if report.skipped.is_none() {
                self.maintain_deletes(meta, report.partition, opts, &named, report)
                    .await?;
            }
        }
        Ok(reports)
    }

    /// Retention and compaction commits of one partition (nothing is deleted yet).
    async fn maintain_commits(
        &self,
        meta: &Arc<TopicMeta>,
        partition: u32,
        opts: MaintainOptions,
    ) -> Result<PartitionReport> {
        let mut report = PartitionReport {
            topic: meta.name.to_string(),
            partition,
            ..PartitionReport::default()
        };
        let head = self.partition_head(meta.name.as_str(), partition).await?;
        if let Some(b) = head.blocked {
            report.skipped = Some(format!("{}: {}", b.key, b.reason));
            return Ok(report);
        }
        let part = self.part(&meta.name, partition);
        let now = self.clock().now_ms();
        retention::run(self, meta, part, &head.tip, now, opts, &mut report).await?;
        compaction::run(self, meta, part, opts, &mut report).await?;
        compaction::rebuild_missing(self, meta, part, opts, &report).await?;
        Ok(report)
    }

    /// Deletes what one partition no longer needs, except what the Delta table still names.
    async fn maintain_deletes(
        &self,
        meta: &Arc<TopicMeta>,
        partition: u32,
        opts: MaintainOptions,
        named: &HashSet<Path>,
        report: &mut PartitionReport,
    ) -> Result<()> {
        let part = self.part(&meta.name, partition);
        let now = self.clock().now_ms();
        compaction::clean(self, meta, part, now, opts, named, report).await?;
        let tip = self.partition_tip(meta.name.as_str(), partition).await?;
        let inventory = Inventory::list(part).await?;
        let mut garbage = inventory.garbage(&tip.state);
        garbage.retain(|o| !named.contains(&o.key));
        delete(self, &garbage, opts, report).await
    }

    /// Commits a maintenance edit; `Ok(false)` when another pass already made it.
    async fn maintenance_commit(
        &self,
        meta: &TopicMeta,
        partition: u32,
        edit: MaintainEdit,
    ) -> Result<bool> {
        match self
            .commit_control(meta.name.as_str(), partition, Edit::Maintain(edit))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a topic: marks it deleted, drops every partition's records with a tombstone
    /// (offsets are never reused: a topic created again under the name continues them, under a
    /// new id), then deletes every object but the tombstones.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let meta = self.topic_latest(name).await?;
        self.mark_topic_deleted(name).await?;
        for p in 0..meta.config.partitions {
            let edit = Edit::Maintain(MaintainEdit::Tombstone);
            let tip = match self.commit_control_unchecked(&meta, p, edit).await {
                Ok(tip) => tip,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let part = self.part(&meta.name, p);
            let inventory = Inventory::list(part).await?;
            let mut report = PartitionReport::default();
            let doomed = inventory.below_version(tip.number());
            delete(self, &doomed, MaintainOptions::default(), &mut report).await?;
        }
        // The table view goes with the topic: one created again under the name starts a new
        // table at version 0 instead of inheriting a log that names deleted files.
        delta::delete_log(self, &meta.name).await
    }
}

/// Deletes `objects` (already in ascending chain order) in chunks, counting them in `report`.
async fn delete(
    pail: &Pail,
    objects: &[inventory::Object],
    opts: MaintainOptions,
    report: &mut PartitionReport,
) -> Result<()> {
    for chunk in objects.chunks(DELETE_CHUNK) {
        if !opts.dry_run {
            let keys: Vec<_> = chunk.iter().map(|o| o.key.clone()).collect();
            pail.store().delete_many(&keys).await?;
        }
        report.deleted_objects += chunk.len() as u64;
        report.deleted_bytes += chunk.iter().map(|o| o.size).sum::<u64>();
    }
    Ok(())
}
