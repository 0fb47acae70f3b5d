//! `pail consume`: print records from one or every partition of a topic.
//!
//! Partitions are read round-robin, one fetch each per turn. Without `--follow` a partition is
//! done once a fetch reaches the high watermark it reported, and the command exits when every
//! partition is done (or `--max` records were printed).

use clap::Args;
use pail_core::{FetchLimits, OffsetSpec, Pail, StoredRecord};
use std::io::Write;
use std::time::Duration;

use super::{Format, FormatArg};
use crate::render::{JsonRecord, parse_offset};

/// Records per fetch; small enough to interleave partitions, large enough to amortise GETs.
const FETCH_RECORDS: u32 = 5_000;
/// Pauses between polls of a caught-up log with `--follow`.
const FOLLOW_POLL_MIN: Duration = Duration::from_millis(100);
const FOLLOW_POLL_MAX: Duration = Duration::from_secs(1);

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Read only this partition (default: all).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Where to start in each partition: earliest, latest, or an absolute offset.
    #[arg(long, default_value = "earliest", value_parser = parse_offset, allow_negative_numbers = true)]
    pub offset: OffsetSpec,
    /// Stop after printing this many records in all.
    #[arg(long)]
    pub max: Option<u64>,
    /// Keep waiting for new records instead of exiting at the end of the log.
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub format: FormatArg,
}

struct Cursor {
    partition: u32,
    from: OffsetSpec,
    done: bool,
}

pub async fn run(pail: &Pail, args: ConsumeArgs) -> anyhow::Result<()> {
    let meta = pail.topic(&args.topic).await?;
    let partitions: Vec<u32> = match args.partition {
        Some(p) => {
            meta.check_partition(p)?;
            vec![p]
        }
        None => (0..meta.config.partitions).collect(),
    };
    let mut cursors: Vec<Cursor> = partitions
        .into_iter()
        .map(|partition| Cursor {
            partition,
            from: args.offset,
            done: false,
        })
        .collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut left = args.max.unwrap_or(u64::MAX);
    let mut idle = FOLLOW_POLL_MIN;
    while left > 0 && cursors.iter().any(|c| !c.done) {
        let mut printed_this_round = 0;
        for cursor in cursors.iter_mut().filter(|c| !c.done) {
            let limits = FetchLimits {
                max_records: FETCH_RECORDS.min(left.min(u64::from(u32::MAX)) as u32),
                ..FetchLimits::default()
            };
            let got = pail
                .fetch(&args.topic, cursor.partition, cursor.from, limits)
                .await?;
            for r in &got.records {
                print_record(
                    &mut out,
                    args.format.format,
                    &args.topic,
                    cursor.partition,
                    r,
                )?;
            }
            left -= got.records.len() as u64;
            printed_this_round += got.records.len();
            cursor.from = OffsetSpec::At(got.next_offset as i64);
            // Only an empty fetch has checked the store for newer records: done after one.
            cursor.done =
                !args.follow && got.records.is_empty() && got.next_offset >= got.high_watermark;
            if left == 0 {
                break;
            }
        }
        out.flush()?;
        if args.follow && printed_this_round == 0 {
            tokio::time::sleep(idle).await;
            idle = (idle * 2).min(FOLLOW_POLL_MAX);
        } else {
            idle = FOLLOW_POLL_MIN;
        }
    }
    out.flush()?;
    Ok(())
}

fn print_record(
    out: &mut impl Write,
    format: Format,
    topic: &str,
    partition: u32,
    r: &StoredRecord,
) -> anyhow::Result<()> {
    match format {
        Format::Text => {
            out.write_all(r.value.as_deref().unwrap_or_default())?;
            out.write_all(b"\n")?;
        }
        Format::Json => {
            serde_json::to_writer(&mut *out, &JsonRecord::new(topic, partition, r))?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}
