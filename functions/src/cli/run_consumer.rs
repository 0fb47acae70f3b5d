//! `pail run-consumer`: the consumer function as a local process (the loop is
//! `crate::relay`, shared with the scheduled `pail-consumer` Lambda function). It runs until
//! SIGINT or SIGTERM, or until idle, then commits and leaves the group.
//!
//! The target is an HTTP endpoint that takes a POST of `{"records": [...]}` (the shape `pail
//! consume --format json` prints, a Kinesis-like batch) and answers 2xx when it has processed
//! them, or `lambda:FUNCTION`, a Lambda function invoked through the Invoke API with that batch
//! as its event (signed with the AWS configuration's credentials; `--lambda-endpoint` for an
//! emulator such as `cargo lambda watch`).

use clap::Args;
use pail_core::Pail;
use pail_core::consumer::{Consumer, OffsetReset};
use std::time::Duration;

use super::values;
use crate::relay::{self, RelaySettings, Target, TargetSpec, Until};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  pail run-consumer --group billing --topic orders --target http://127.0.0.1:8081/orders
  pail run-consumer --group billing --topic orders --target lambda:biller:live \\
    --dead-letter-topic orders-dead --until-idle-ms 5000
  pail run-consumer --group billing --topic orders --target lambda:biller \\
    --lambda-endpoint http://127.0.0.1:9000")]
pub struct RunConsumerArgs {
    /// The consumer group.
    #[arg(short = 'G', long)]
    pub group: String,
    /// Topic to consume (repeat for several).
    #[arg(long = "topic", required = true)]
    pub topics: Vec<String>,
    /// Where batches go: an http:// or https:// URL that takes a POST of {"records": [...]},
    /// or lambda:FUNCTION (a name or ARN, optionally :qualifier) invoked with that event.
    #[arg(long)]
    pub target: String,
    /// The Lambda endpoint for a lambda: target; default: AWS_ENDPOINT_URL_LAMBDA, else
    /// AWS_ENDPOINT_URL, else the region's.
    #[arg(long)]
    pub lambda_endpoint: Option<String>,
    /// Static member id (Kafka's group.instance.id); default: the group's name and the host.
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Most records per batch handed to the target.
    #[arg(long, default_value_t = 100, value_parser = values::positive_u32)]
    pub batch_size: u32,
    /// Tries of a batch (and, after splitting, of a single record) before giving up on it.
    #[arg(long, default_value_t = 3, value_parser = values::positive_u32)]
    pub max_tries: u32,
    /// Where records the target keeps rejecting go; without one, the command stops instead.
    #[arg(long)]
    pub dead_letter_topic: Option<String>,
    /// Where a partition with no committed offset starts.
    #[arg(long, value_enum, default_value_t = StartAt::Latest)]
    pub start: StartAt,
    /// Session timeout of the member, in ms.
    #[arg(long, default_value_t = 45_000, value_parser = values::whole_u64)]
    pub session_timeout_ms: u64,
    /// Stop (commit and leave) once no record has come for this long; default: run until
    /// SIGINT or SIGTERM.
    #[arg(long, value_parser = values::whole_u64)]
    pub until_idle_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StartAt {
    Earliest,
    Latest,
}

impl RunConsumerArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        self.target_spec().map(|_| ())
    }

    fn target_spec(&self) -> anyhow::Result<TargetSpec> {
        TargetSpec::parse(&self.target)
            .map_err(|e| super::UsageError(format!("--target: {e}")).into())
    }

    fn settings(&self) -> RelaySettings {
        let instance_id = self.instance_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
            format!("{}-{host}", self.group)
        });
        RelaySettings {
            group: self.group.clone(),
            topics: self.topics.clone(),
            instance_id,
            batch_size: self.batch_size,
            max_tries: self.max_tries,
            dead_letter_topic: self.dead_letter_topic.clone(),
            start: match self.start {
                StartAt::Earliest => OffsetReset::Earliest,
                StartAt::Latest => OffsetReset::Latest,
            },
            session_timeout_ms: self.session_timeout_ms,
            client: "pail run-consumer".into(),
        }
    }
}

pub async fn run(pail: &Pail, args: RunConsumerArgs) -> anyhow::Result<()> {
    let target = Target::connect(&args.target_spec()?, args.lambda_endpoint.as_deref()).await?;
    let settings = args.settings();
    let mut consumer = Consumer::join(pail.clone(), settings.consumer_config()).await?;
    let until = Until {
        idle: args.until_idle_ms.map(Duration::from_millis),
        deadline: None,
    };
    let stop = crate::http::host::shutdown_signal();
    let summary = relay::run(pail, &settings, &target, &mut consumer, until, stop).await?;
    consumer.leave().await?;
    eprintln!(
        "run-consumer: {} delivered, {} dead-lettered",
        super::plural(summary.delivered, "record"),
        super::plural(summary.dead_lettered, "record")
    );
    Ok(())
}
