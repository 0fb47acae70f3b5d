//! The `pail` command line, after kcat and Kafka's console tools.
//!
//! ```text
//! pail [--store URL] topic create NAME --partitions N
//! pail [--store URL] topic list
//! pail [--store URL] topic describe NAME [--format text|json]
//! pail [--store URL] produce TOPIC [--partition P] [--key-separator SEP]
//! pail [--store URL] consume TOPIC [--partition P] [--offset earliest|latest|N] [--max N]
//!                                  [--format text|json] [--follow]
//! pail [--store URL] kafka [--listen ADDR] [--advertise HOST:PORT] [--auto-create-partitions N]
//! ```

mod consume;
mod produce;
mod topic;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pail_core::{Pail, storage};

/// pail: a serverless, Kafka-style log kept as Parquet segments in object storage.
#[derive(Debug, Parser)]
#[command(name = "pail", version, about, long_about = None)]
pub struct Cli {
    /// Where the log lives: a directory, file:///abs/path, memory:// or s3://bucket/prefix
    /// (S3 reads AWS_ENDPOINT_URL, AWS_ALLOW_HTTP, AWS_REGION and the usual AWS credentials).
    #[arg(long, global = true, env = "PAIL_STORE", default_value = storage::DEFAULT_STORE)]
    pub store: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list and describe topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Append stdin to a topic, one record per line.
    Produce(produce::ProduceArgs),
    /// Print a topic's records.
    Consume(consume::ConsumeArgs),
    /// Measure produce, consume or end-to-end performance (store: any URL, or
    /// sim:s3-standard / sim:s3-express for a latency-simulated S3).
    Bench(crate::bench::BenchArgs),
    /// Serve Kafka's wire protocol on this store (a stateless listener: run any number).
    Kafka(crate::kafka::KafkaArgs),
}

/// Output format of commands that print structured data.
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

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let open = || Pail::open(&cli.store);
    match cli.command {
        Command::Topic(cmd) => topic::run(&open().await?, cmd).await,
        Command::Produce(args) => produce::run(&open().await?, args).await,
        Command::Consume(args) => consume::run(&open().await?, args).await,
        // The bench opens its own store: it also accepts simulated ones.
        Command::Bench(args) => crate::bench::run(&cli.store, args).await,
        Command::Kafka(args) => crate::kafka::run(&cli.store, args).await,
    }
}

/// True when `e` is stdout closing under us (`pail consume | head`): a normal way to stop.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
