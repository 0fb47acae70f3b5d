//! `pail topic create|list|describe|alter|delete`.

use clap::{Args, Subcommand};
use pail_core::{Compression, Pail, TimestampType, TopicConfig, TopicDescription};
use std::io::Write;

use super::{Format, FormatArg, Reported, plural, values};

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    #[command(after_help = "\
Examples:
  pail topic create orders --partitions 6
  pail topic create audit --partitions 1 --timestamp-type log-append-time")]
    Create(CreateArgs),
    /// List topics, one per line.
    ///
    /// A topic whose descriptor cannot be read or decoded is reported on stderr after the
    /// others are listed, and the exit is 1.
    #[command(after_help = "\
Examples:
  pail topic list
  pail --store s3://my-bucket/pail topic list")]
    List,
    /// Show a topic's settings and, per partition, offsets, segments and bytes.
    #[command(after_help = "\
Examples:
  pail topic describe orders
  pail topic describe orders --format json")]
    Describe {
        name: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Change a topic's settings (retention, compaction, codec) or grow its partitions.
    #[command(after_help = super::alter::ALTER_EXAMPLES)]
    Alter(super::alter::AlterArgs),
    /// Delete a topic: its records are dropped and its objects deleted. A topic created again
    /// under the name continues the old offsets under a new id; writers and readers of the old
    /// one are refused.
    #[command(after_help = "\
Examples:
  pail topic delete orders
  pail topic delete orders && pail topic create orders --partitions 6")]
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Topic name: 1 to 249 characters of [A-Za-z0-9._-], not '.' or '..'.
    pub name: String,
    /// Number of partitions, 1 to 10000.
    #[arg(long, value_parser = values::partitions)]
    pub partitions: u32,
    /// Which timestamp records keep: the producer's (create-time) or the commit's.
    #[arg(long, value_enum, default_value = "create-time")]
    pub timestamp_type: TimestampArg,
    /// Largest record (key + value + headers) in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = pail_core::topic::RECORD_BYTES_MAX_DEFAULT,
          value_parser = values::whole_u64)]
    pub record_bytes_max: u64,
    /// Parquet codec of the topic's segments (as Kafka's compression.type): zstd, lz4, snappy,
    /// gzip or none.
    #[arg(long, default_value = "zstd", value_parser = parse_compression)]
    pub compression_type: Compression,
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    s.parse().map_err(|e: pail_core::Error| e.to_string())
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum TimestampArg {
    CreateTime,
    LogAppendTime,
}

impl TopicCommand {
    /// True for the commands that may create the store (a directory store's folder).
    pub fn writes(&self) -> bool {
        matches!(self, TopicCommand::Create(_))
    }
}

pub async fn run(pail: &Pail, cmd: TopicCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        TopicCommand::Create(args) => create(pail, args).await?,
        TopicCommand::Alter(args) => super::alter::alter(pail, args).await?,
        TopicCommand::Delete { name } => super::alter::delete(pail, &name).await?,
        TopicCommand::List => list(pail, &mut out).await?,
        TopicCommand::Describe { name, format } => {
            let d = pail.describe_topic(&name).await?;
            match format.format {
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&d)?)?,
                Format::Text => print_description(&mut out, &d)?,
            }
        }
    }
    out.flush()?;
    Ok(())
}

async fn create(pail: &Pail, args: CreateArgs) -> anyhow::Result<()> {
    let config = TopicConfig {
        partitions: args.partitions,
        timestamp_type: match args.timestamp_type {
            TimestampArg::CreateTime => TimestampType::CreateTime,
            TimestampArg::LogAppendTime => TimestampType::LogAppendTime,
        },
        record_bytes_max: args.record_bytes_max,
        compression: args.compression_type,
        ..TopicConfig::new(args.partitions)
    };
    let meta = pail.create_topic(&args.name, config).await?;
    eprintln!(
        "created topic {} with {}",
        meta.name,
        plural(u64::from(meta.config.partitions), "partition")
    );
    Ok(())
}

/// Lists every readable topic; each unreadable one gets a line on stderr and the exit is 1.
async fn list(pail: &Pail, out: &mut impl Write) -> anyhow::Result<()> {
    let listing = pail.list_topics_checked().await?;
    for name in &listing.topics {
        writeln!(out, "{name}")?;
    }
    out.flush()?;
    for (_, e) in &listing.unreadable {
        eprintln!("pail: error: {}", super::describe(e));
    }
    match listing.unreadable.len() {
        0 => Ok(()),
        n => Err(Reported(n).into()),
    }
}

fn print_description(out: &mut impl Write, d: &TopicDescription) -> std::io::Result<()> {
    let ts = match d.config.timestamp_type {
        TimestampType::CreateTime => "create-time",
        TimestampType::LogAppendTime => "log-append-time",
    };
    writeln!(
        out,
        "topic {}  id {}  partitions {}  timestamp-type {}  record-bytes-max {}  compression-type {}",
        d.topic,
        d.id,
        d.config.partitions,
        ts,
        d.config.record_bytes_max,
        d.config.compression.as_str()
    )?;
    writeln!(out, "{}", super::alter::retention_line(&d.config))?;
    writeln!(
        out,
        "{:>9} {:>12} {:>12} {:>9} {:>14} {:>6}",
        "partition", "log-start", "next-offset", "segments", "bytes", "epoch"
    )?;
    for p in &d.partitions {
        writeln!(
            out,
            "{:>9} {:>12} {:>12} {:>9} {:>14} {:>6}",
            p.partition, p.log_start_offset, p.next_offset, p.segments, p.bytes, p.leader_epoch
        )?;
    }
    for p in &d.partitions {
        if let Some(blocked) = &p.blocked {
            writeln!(
                out,
                "partition {} cannot be written: {blocked} (see pail doctor)",
                p.partition
            )?;
        }
    }
    Ok(())
}
