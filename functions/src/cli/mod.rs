//! The `pail` command line, after kcat and Kafka's console tools.
//!
//! ```text
//! pail [--store URL] topic create NAME --partitions N
//! pail [--store URL] topic list
//! pail [--store URL] topic describe NAME [--format text|json]
//! pail [--store URL] produce TOPIC [-p P] [-K SEP] [-H NAME=VALUE]... [--format text|json]
//! pail [--store URL] consume TOPIC [-p P] [-o OFFSET] [-c N] [-K SEP | -f PATTERN]
//!                                  [--format text|json] [--follow]
//! pail [--store URL] consume TOPIC --group G [--instance-id ID] [--session-timeout-ms MS] [-c N]
//! pail [--store URL] group list|describe G|reset-offsets G --topic T --to-...|delete G
//! pail [--store URL] serve [--listen ADDR]
//! pail [--store URL] doctor [--topic T] [--format text|json] [--repair]
//! pail [--store URL] maintain [--topic T] [--dry-run] [--grace-ms MS] [--format text|json]
//! pail [--store URL] kafka [--listen ADDR] [--advertise HOST:PORT] [--auto-create-partitions N]
//! pail [--store URL] run-consumer -G GROUP --topic T --target URL [--dead-letter-topic D]
//! pail completions bash|zsh|fish
//! ```
//!
//! One module per command. Errors reach `main` as `anyhow::Error`s and become one line on
//! stderr; [`UsageError`] exits 2 like clap's own, [`Reported`] exits 1 after the command has
//! printed its own lines (one per failed partition or topic).

mod alter;
mod completions;
mod consume;
mod doctor;
mod group;
mod maintain;
mod produce;
mod run_consumer;
mod serve;
mod topic;
pub(crate) mod values;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use pail_core::{Pail, Store, storage};

/// pail: a serverless, Kafka-style log kept as Parquet segments in object storage.
#[derive(Debug, Parser)]
#[command(name = "pail", version, arg_required_else_help = true)]
pub struct Cli {
    /// Where the log lives: a directory or file:///abs/path, or s3://bucket/prefix (S3 reads
    /// AWS_ENDPOINT_URL, AWS_ALLOW_HTTP, AWS_REGION and the usual AWS credentials).
    #[arg(long, global = true, env = "PAIL_STORE", default_value = storage::DEFAULT_STORE)]
    pub store: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, describe, alter and delete topics.
    #[command(
        subcommand,
        after_help = "\
Examples:
  pail topic create orders --partitions 6
  pail topic list
  pail topic describe orders
  pail topic alter orders --config retention.ms=604800000"
    )]
    Topic(topic::TopicCommand),
    /// Append stdin to a topic, one record per line.
    Produce(produce::ProduceArgs),
    /// Print a topic's records.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset the offsets of, and delete consumer groups.
    #[command(
        subcommand,
        after_help = "\
Examples:
  pail group list
  pail group describe billing
  pail group reset-offsets billing --topic orders --to-earliest"
    )]
    Group(group::GroupCommand),
    /// Serve the HTTP API (bearer token from PAIL_TOKEN; without one, loopback only).
    #[command(after_help = "\
Examples:
  pail serve                                     http://127.0.0.1:8080, loopback only
  PAIL_TOKEN=secret pail serve --listen 0.0.0.0:8080")]
    Serve(serve::ServeArgs),
    /// Check every partition's chain object by object; report each problem and what to do.
    Doctor(doctor::DoctorArgs),
    /// Run one maintenance pass: retention, compaction of small segments, deletion of what
    /// is no longer live.
    Maintain(maintain::MaintainArgs),
    /// Measure produce, consume or end-to-end performance (store: any URL, or
    /// sim:s3-standard / sim:s3-express for a latency-simulated S3).
    #[command(after_help = "\
Examples:
  pail bench produce --records 100000 --partitions 4
  pail --store sim:s3-standard bench e2e --linger-ms 250")]
    Bench(crate::bench::BenchArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
    /// Serve Kafka's wire protocol on this store (a stateless listener: run any number).
    Kafka(crate::kafka::KafkaArgs),
    /// Consume a group and hand records in batches to an HTTP target, committing after it
    /// succeeds (the consumer function).
    RunConsumer(run_consumer::RunConsumerArgs),
}

/// Format of what a command prints (or, for produce, reads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct FormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// A command line that parses but does not make sense (say, two options that exclude each
/// other in a way clap cannot express): exit 2, as for clap's own errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The command has reported its failures itself, one line each (this many): exit 1 with
/// nothing more to say.
#[derive(Debug)]
pub struct Reported(pub usize);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} reported above", plural(self.0 as u64, "failure"))
    }
}

impl std::error::Error for Reported {}

/// The command line's definition, as parsed: numbers that look negative are values, so that
/// `--partitions -1` is refused with the reason rather than as an unknown flag.
pub fn command() -> clap::Command {
    fn negatives_are_values(cmd: clap::Command) -> clap::Command {
        cmd.mut_args(|a| {
            if a.get_action().takes_values() {
                a.allow_negative_numbers(true)
            } else {
                a
            }
        })
        .mut_subcommands(negatives_are_values)
    }
    negatives_are_values(Cli::command())
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Topic(cmd) => {
            let pail = open(&cli.store, cmd.writes()).await?;
            topic::run(&pail, cmd).await
        }
        Command::Produce(args) => {
            args.check()?;
            produce::run(&open(&cli.store, true).await?, args).await
        }
        Command::Consume(args) => {
            args.check()?;
            consume::run(&open(&cli.store, false).await?, args).await
        }
        Command::Group(cmd) => group::run(&open(&cli.store, false).await?, cmd).await,
        Command::Serve(args) => serve::run(&open(&cli.store, true).await?, args).await,
        Command::Doctor(args) => {
            let repair = args.repair;
            doctor::run(&open(&cli.store, repair).await?, args).await
        }
        Command::Maintain(args) => maintain::run(&open(&cli.store, false).await?, args).await,
        // The bench opens its own store: it also accepts simulated and in-memory ones.
        Command::Bench(args) => crate::bench::run(&cli.store, args).await,
        Command::Completions(args) => completions::run(args),
        Command::Kafka(args) => crate::kafka::run(&cli.store, args).await,
        Command::RunConsumer(args) => {
            args.check()?;
            run_consumer::run(&open(&cli.store, true).await?, args).await
        }
    }
}

/// Opens the store for a command. Only commands that write may create a directory store, so a
/// typo in the path of a read fails instead of leaving an empty store behind.
async fn open(url: &str, writes: bool) -> anyhow::Result<Pail> {
    if matches!(url.trim(), "memory://" | "memory:") {
        return Err(pail_core::Error::InvalidStoreUrl {
            url: url.to_string(),
            reason: "an in-memory store ends with the command that opened it, so nothing \
                     would be kept; use a directory or s3://bucket/prefix"
                .into(),
        }
        .into());
    }
    let store = match writes {
        true => Store::open(url).await?,
        false => Store::open_existing(url).await?,
    };
    Ok(Pail::new(store))
}

/// `n thing` or `n things`.
pub fn plural(n: u64, thing: &str) -> String {
    match n {
        1 => format!("1 {thing}"),
        n => format!("{n} {thing}s"),
    }
}

/// An error and those of its causes that it does not already spell out (pail's and
/// object_store's errors include their sources in their own message), on one line.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        cause = c.source();
    }
    one_line(&text)
}

pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// True when `e` is stdout closing under us (`pail consume | head`): a normal way to stop.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "record"), "1 record");
        assert_eq!(plural(0, "record"), "0 records");
        assert_eq!(plural(2, "partition"), "2 partitions");
    }
}
