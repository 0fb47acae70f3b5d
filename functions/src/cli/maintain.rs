//! `pail maintain`: one maintenance pass (retention, compaction, deletion of what is no longer
//! live, and, without `--topic`, old consumer-group versions), partition by partition, with a
//! line per partition and per group as it finishes and a summary.
//!
//! The pass is pail-core's (`Pail::maintain_topic`); any number may run at once, so this
//! is safe from cron next to the scheduled Lambda. A partition that fails gets one line on
//! stderr and the others go on; the exit is then 1.

use clap::Args;
use pail_core::maintain::groups::GroupReport;
use pail_core::maintain::{GRACE_MS_DEFAULT, MaintainOptions, PartitionReport};
use pail_core::{ErrorKind, Pail};
use serde::Serialize;
use std::io::Write;

use super::{Format, FormatArg, Reported, plural, values};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  pail maintain
  pail maintain --topic orders --dry-run
  pail maintain --topic orders --grace-ms 0 --format json")]
pub struct MaintainArgs {
    /// Only this topic (default: every topic, and the consumer groups' old versions).
    #[arg(long)]
    pub topic: Option<String>,
    /// Decide and report what a pass would do; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Segments replaced by a merged one are deleted only this long after the swap, so
    /// readers that started on them finish (default 10 minutes).
    #[arg(long, value_name = "MS", default_value_t = GRACE_MS_DEFAULT as u64,
          value_parser = grace_ms)]
    pub grace_ms: u64,
    #[command(flatten)]
    pub format: FormatArg,
}

fn grace_ms(s: &str) -> Result<u64, String> {
    let ms = values::whole_u64(s)?;
    i64::try_from(ms)
        .map(|_| ms)
        .map_err(|_| format!("must be at most {} ms, not {ms}", i64::MAX))
}

/// Totals of a pass, for the summary line and `--format json`.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub partitions: u64,
    /// Segments replaced by merged segments, and the merged segments made of them.
    pub segments_merged: u64,
    pub merged_segments: u64,
    /// Segments dropped by retention, and their bytes.
    pub segments_dropped: u64,
    pub bytes_dropped: u64,
    /// Old consumer-group versions deleted (counted in `objects_deleted` too).
    pub group_versions_deleted: u64,
    /// Objects deleted (expired, replaced after their grace period, garbage, old group
    /// versions) and their bytes.
    pub objects_deleted: u64,
    pub bytes_freed: u64,
    /// Partitions left alone (damaged: see `pail doctor`) or that failed.
    pub failures: u64,
}

impl Summary {
    fn add(&mut self, r: &PartitionReport) {
        self.partitions += 1;
        self.segments_merged += r.merged.iter().map(|m| m.2).sum::<u64>();
        self.merged_segments += r.merged.len() as u64;
        self.segments_dropped += r.dropped_segments;
        self.bytes_dropped += r.dropped_bytes;
        self.objects_deleted += r.deleted_objects;
        self.bytes_freed += r.deleted_bytes;
        self.failures += u64::from(r.skipped.is_some());
    }

    fn add_group(&mut self, g: &GroupReport) {
        self.group_versions_deleted += g.deleted_versions;
        self.objects_deleted += g.deleted_versions;
        self.bytes_freed += g.deleted_bytes;
        self.failures += u64::from(g.skipped.is_some());
    }
}

#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    dry_run: bool,
    partitions: &'a [PartitionReport],
    groups: &'a [GroupReport],
    summary: &'a Summary,
}

pub async fn run(pail: &Pail, args: MaintainArgs) -> anyhow::Result<()> {
    let opts = MaintainOptions {
        dry_run: args.dry_run,
        // Checked by the parser to fit.
        grace_ms: i64::try_from(args.grace_ms).unwrap_or(i64::MAX),
    };
    let topics = match &args.topic {
        Some(t) => vec![t.clone()],
        None => pail
            .list_topics()
            .await?
            .into_iter()
            .map(String::from)
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    let (mut reports, mut summary) = (Vec::new(), Summary::default());
    for topic in topics {
        let meta = match pail.topic_latest(&topic).await {
            Ok(meta) => meta,
            // Deleted since it was listed: nothing left to maintain.
            Err(e) if args.topic.is_none() && e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        // One topic at a time: its commits, its Delta sync, then its deletes.
        let topic_reports = match pail.maintain_topic(&meta, opts).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("pail: error: {topic}: {}", super::describe(&e));
                summary.failures += 1;
                continue;
            }
        };
        for report in topic_reports {
            summary.add(&report);
            if args.format.format == Format::Text {
                writeln!(out, "{}", partition_line(&report))?;
                out.flush()?;
            }
            reports.push(report);
        }
    }
    let groups = match args.topic {
        Some(_) => Vec::new(),
        None => pail.maintain_groups(args.dry_run).await?,
    };
    for g in &groups {
        summary.add_group(g);
        if args.format.format == Format::Text {
            writeln!(out, "{}", group_line(g))?;
        }
    }
    match args.format.format {
        Format::Text => writeln!(out, "{}", summary_line(&summary, args.dry_run))?,
        Format::Json => {
            let report = JsonReport {
                dry_run: args.dry_run,
                partitions: &reports,
                groups: &groups,
                summary: &summary,
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        }
    }
    out.flush()?;
    match summary.failures {
        0 => Ok(()),
        n => Err(Reported(n as usize).into()),
    }
}

/// `orders/0: merged 1000 segments into 1; deleted 1000 objects (81234 bytes)`.
fn partition_line(r: &PartitionReport) -> String {
    let mut parts = Vec::new();
    if let Some(why) = &r.skipped {
        parts.push(format!("skipped, damaged ({why}); see pail doctor"));
    }
    if r.dropped_segments > 0 {
        let start = r
            .log_start_offset
            .map_or(String::new(), |s| format!(", log start now {s}"));
        parts.push(format!(
            "dropped {} ({} bytes){start}",
            plural(r.dropped_segments, "segment"),
            r.dropped_bytes
        ));
    }
    if !r.merged.is_empty() {
        let segments: u64 = r.merged.iter().map(|m| m.2).sum();
        parts.push(format!(
            "merged {} into {}",
            plural(segments, "segment"),
            r.merged.len()
        ));
    }
    if r.deleted_objects > 0 {
        parts.push(format!(
            "deleted {} ({} bytes)",
            plural(r.deleted_objects, "object"),
            r.deleted_bytes
        ));
    }
    if let Some(e) = &r.delta_error {
        parts.push(format!("Delta table not synced, deletes wait ({e})"));
    }
    if parts.is_empty() {
        parts.push("nothing to do".into());
    }
    if let (0, Some(v)) = (r.partition, r.delta_version) {
        parts.push(format!("Delta table at version {v}"));
    }
    format!("{}/{}: {}", r.topic, r.partition, parts.join("; "))
}

/// `group g: deleted 100 old versions (12345 bytes), kept from version 873`.
fn group_line(g: &GroupReport) -> String {
    let what = match (&g.skipped, g.deleted_versions) {
        (Some(why), _) => format!("skipped, damaged ({why}); see pail doctor"),
        (None, 0) => "nothing to do".to_string(),
        (None, n) => format!(
            "deleted {} ({} bytes), kept from version {} (tip {})",
            plural(n, "old version"),
            g.deleted_bytes,
            g.kept_from,
            g.tip_version
        ),
    };
    format!("group {}: {what}", g.group)
}

fn summary_line(s: &Summary, dry_run: bool) -> String {
    let what = format!(
        "{}: {} merged into {}, {} dropped, {} deleted ({} of groups), {} bytes freed",
        plural(s.partitions, "partition"),
        plural(s.segments_merged, "segment"),
        s.merged_segments,
        plural(s.segments_dropped, "segment"),
        plural(s.objects_deleted, "object"),
        s.group_versions_deleted,
        s.bytes_freed
    );
    match dry_run {
        true => format!("dry run, nothing changed; a pass would do, on {what}"),
        false => format!("maintained {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_what_was_done() {
        let r = PartitionReport {
            topic: "t".into(),
            partition: 2,
            dropped_segments: 3,
            dropped_bytes: 300,
            log_start_offset: Some(30),
            merged: vec![(4, 9, 6)],
            deleted_objects: 9,
            deleted_bytes: 900,
            ..PartitionReport::default()
        };
        assert_eq!(
            partition_line(&r),
            "t/2: dropped 3 segments (300 bytes), log start now 30; merged 6 segments into 1; \
             deleted 9 objects (900 bytes)"
        );
        let idle = PartitionReport {
            topic: "t".into(),
            ..PartitionReport::default()
        };
        assert_eq!(partition_line(&idle), "t/0: nothing to do");
        let mut s = Summary::default();
        s.add(&r);
        assert_eq!(
            summary_line(&s, false),
            "maintained 1 partition: 6 segments merged into 1, 3 segments dropped, 9 objects \
             deleted (0 of groups), 900 bytes freed"
        );
        assert!(summary_line(&s, true).starts_with("dry run, nothing changed"));
        assert!(grace_ms("-1").is_err() && grace_ms("0") == Ok(0));
    }
}
