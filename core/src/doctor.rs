//! `pail doctor`: checks every partition of one topic or all of them, and repairs what can be
//! repaired without ever reusing an offset. The CLI, the HTTP API and a maintenance Lambda all
//! call [`Pail::doctor`] and [`Pail::repair`]; the chain-generic half (following a chain,
//! judging each object, the quarantine move) is `crate::chain::doctor`.
//!
//! Cost, per partition: one LIST page per 1,000 objects, one GET per object (its footer, up to
//! 64 KiB from the end), one GET for the hint, and up to three more GETs per damaged object to
//! tell what it is. Per topic: one GET (descriptor) and one LIST (its folders). A repair adds,
//! per object moved, one COPY, two HEADs and one DELETE, then checks the store again.

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::chain::doctor::{self as chain_doctor, Exam};
use crate::client::Pail;
use crate::error::{Error, Result};
use crate::manifest::PartitionManifest;
use crate::storage::keys;
use crate::topic::{TopicMeta, TopicName};

pub use crate::chain::doctor::{Finding, Problem};

/// Partitions examined at once.
const PARTITION_CONCURRENCY: usize = 8;

/// What `doctor` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub topics: u64,
    pub partitions: u64,
    /// Objects listed in the partitions' folders.
    pub objects: u64,
    /// Segments on the partitions' chains that read.
    pub segments: u64,
    /// Every problem, one per object (or missing range), with what to do.
    pub findings: Vec<Finding>,
}

impl Report {
    /// True when nothing is wrong.
    pub fn healthy(&self) -> bool {
        self.findings.is_empty()
    }
}

/// An object `repair` moved out of the way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Moved {
    pub from: String,
    pub to: String,
    /// What was wrong with it.
    pub why: String,
}

/// An object `repair` meant to move and could not (it changed meanwhile, or the store failed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotMoved {
    pub key: String,
    pub reason: String,
}

/// What `repair` did, and the state of the store afterwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Repaired {
    pub moved: Vec<Moved>,
    pub not_moved: Vec<NotMoved>,
    /// The store checked again after the moves: what is left needs an operator.
    pub after: Report,
}

impl Pail {
    /// Checks every partition of `topic` (or of every topic): each chain followed from its
    /// first version, every object read, the hint and the head's totals compared with the
    /// store, stray objects and folders found. Changes nothing. `UnknownTopic` if `topic` names
    /// none.
    pub async fn doctor(&self, topic: Option<&str>) -> Result<Report> {
        let topics = match topic {
            Some(name) => vec![TopicName::new(name)?],
            None => self.list_topics().await?,
        };
        let mut report = Report::default();
        for name in &topics {
            self.examine_topic(name, topic.is_some(), &mut report)
                .await?;
        }
        Ok(report)
    }

    /// Runs [`Pail::doctor`], moves every object it marks repairable (objects that are
    /// certainly not pail's, with nothing committed after them) to
    /// `_quarantine/{run}/{original key}`, and checks again. Never moves or deletes a readable
    /// segment, nor one that may be a damaged committed segment.
    pub async fn repair(&self, topic: Option<&str>) -> Result<Repaired> {
        let before = self.doctor(topic).await?;
        let run = format!(
            "{:013}-{}",
            self.clock().now_ms().max(0),
            &crate::entropy::attempt_id()[..8]
        );
        let mut moved = Vec::new();
        let mut not_moved = Vec::new();
        for finding in before.findings.iter().filter(|f| f.repairable) {
            let Some(object) = &finding.object else {
                continue;
            };
            match chain_doctor::quarantine(self.store(), &run, object).await {
                Ok(to) => moved.push(Moved {
                    from: object.location.to_string(),
                    to: to.to_string(),
                    why: finding.detail.clone(),
                }),
                Err(e) => not_moved.push(NotMoved {
                    key: object.location.to_string(),
                    reason: e.to_string(),
                }),
            }
        }
        let after = self.doctor(topic).await?;
        Ok(Repaired {
            moved,
            not_moved,
            after,
        })
    }

    async fn examine_topic(
        &self,
        name: &TopicName,
        named: bool,
        report: &mut Report,
    ) -> Result<()> {
        report.topics += 1;
        let meta = match self.topic(name.as_str()).await {
            Ok(meta) => meta,
            Err(Error::UnknownTopic { .. }) if !named => return Ok(()),
            Err(Error::Corrupt { key, reason }) => {
                report.findings.push(damaged_descriptor(name, key, reason));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let exams: Vec<Exam<PartitionManifest>> = futures::stream::iter(0..meta.config.partitions)
            .map(|p| {
                let meta = &meta;
                async move { chain_doctor::examine(&self.part(&meta.name, p)).await }
            })
            .buffered(PARTITION_CONCURRENCY)
            .try_collect()
            .await?;
        for exam in exams {
            report.partitions += 1;
            report.objects += exam.objects;
            report.segments += exam.versions;
            report.findings.extend(exam.findings);
        }
        report.findings.extend(self.stray_folders(&meta).await?);
        Ok(())
    }

    /// Folders in the topic's folder that are neither a partition of it nor pail's own.
    async fn stray_folders(&self, meta: &TopicMeta) -> Result<Vec<Finding>> {
        let dirs = self.store().list_dirs(&keys::topic_dir(&meta.name)).await?;
        let partitions: Vec<String> = (0..meta.config.partitions)
            .map(|p| keys::partition_dir(&meta.name, p).to_string())
            .collect();
        // pail's own folders: the hints and the descriptor's later versions (topic alter).
        let own = [
            keys::hints_dir(&meta.name),
            keys::topic_versions(&meta.name),
        ];
        Ok(dirs
            .into_iter()
            .filter(|d| !own.contains(d) && !partitions.iter().any(|p| p == d.as_ref()))
            .map(|dir| Finding {
                chain: meta.name.to_string(),
                key: format!("{dir}/"),
                problem: Problem::Misplaced,
                detail: format!(
                    "a folder that is not one of the topic's {} partitions: pail never reads \
                     it, but Parquet engines reading the topic's folder count what it holds",
                    meta.config.partitions
                ),
                action: "move it out of the topic's folder by hand".into(),
                repairable: false,
                object: None,
            })
            .collect())
    }
}

fn damaged_descriptor(topic: &TopicName, key: String, reason: String) -> Finding {
    Finding {
        chain: topic.to_string(),
        key,
        problem: Problem::Damaged,
        detail: format!("the topic's descriptor does not read ({reason})"),
        action: "restore it from a backup; without it pail cannot tell how many partitions the \
                 topic has, so none of them was checked"
            .into(),
        repairable: false,
        object: None,
    }
}
