//! `pail topic create|list|describe`.

use clap::{Args, Subcommand};
use pail_core::{Compression, Pail, TimestampType, TopicConfig, TopicDescription};
use std::io::Write;

use super::{Format, FormatArg};

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics, one per line.
    List,
    /// Show a topic's settings and, per partition, offsets, segments and bytes.
    Describe {
        name: String,
        #[command(flatten)]
        format: FormatArg,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Topic name: 1 to 249 characters of [A-Za-z0-9._-], not '.' or '..'.
    pub name: String,
    /// Number of partitions, 1 to 10000.
    #[arg(long)]
    pub partitions: u32,
    /// Which timestamp records keep: the producer's (create-time) or the commit's.
    #[arg(long, value_enum, default_value = "create-time")]
    pub timestamp_type: TimestampArg,
    /// Largest record (key + value + headers) in bytes.
    #[arg(long, default_value_t = pail_core::topic::RECORD_BYTES_MAX_DEFAULT)]
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

pub async fn run(pail: &Pail, cmd: TopicCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        TopicCommand::Create(args) => {
            let config = TopicConfig {
                partitions: args.partitions,
                timestamp_type: match args.timestamp_type {
                    TimestampArg::CreateTime => TimestampType::CreateTime,
                    TimestampArg::LogAppendTime => TimestampType::LogAppendTime,
                },
                record_bytes_max: args.record_bytes_max,
                compression: args.compression_type,
            };
            let meta = pail.create_topic(&args.name, config).await?;
            eprintln!(
                "created topic {} with {} partitions",
                meta.name, meta.config.partitions
            );
        }
        TopicCommand::List => {
            for name in pail.list_topics().await? {
                writeln!(out, "{name}")?;
            }
        }
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

fn print_description(out: &mut impl Write, d: &TopicDescription) -> std::io::Result<()> {
    let ts = match d.config.timestamp_type {
        TimestampType::CreateTime => "create-time",
        TimestampType::LogAppendTime => "log-append-time",
    };
    writeln!(
        out,
        "topic {}  partitions {}  timestamp-type {}  record-bytes-max {}  compression-type {}",
        d.topic,
        d.config.partitions,
        ts,
        d.config.record_bytes_max,
        d.config.compression.as_str()
    )?;
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
    Ok(())
}
