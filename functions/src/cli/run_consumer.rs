//! `pail run-consumer`: the consumer function. It consumes a group (a static member, so a
//! restart within the session timeout keeps its partitions) and hands records in batches to a
//! target, as Lambda's event source mappings do for Kafka and Kinesis, on pail's own group
//! protocol.
//!
//! The target is an HTTP endpoint that takes `{"records": [...]}` (the shape `pail consume
//! --format json` prints, a Kinesis-like batch) and answers 2xx when it has processed them: a
//! user's service, or a Lambda function through the Invoke API
//! (`http://127.0.0.1:9000/2015-03-31/functions/NAME/invocations` under `cargo lambda watch`).
//!
//! Offsets are committed only after the target succeeded for everything a poll returned, so a
//! crash redelivers (at least once, never a skip). A failing batch is retried with backoff,
//! then split in halves to find the record that fails; a record the target still rejects after
//! `--max-tries` goes to the dead-letter topic with a `pail-error` header, or, without one, the
//! command stops without committing it.

use anyhow::Context;
use clap::Args;
use pail_core::consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
use pail_core::{Header, Pail, Record};
use std::time::Duration;

use super::values;
use crate::render::JsonRecord;

/// Backoff before the second try of a batch; doubled for each try after.
const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// How long one poll waits for records.
const POLL_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  pail run-consumer --group billing --topic orders --target http://127.0.0.1:8081/orders
  pail run-consumer --group billing --topic orders \\
    --target http://127.0.0.1:9000/2015-03-31/functions/biller/invocations \\
    --dead-letter-topic orders-dead --until-idle-ms 5000")]
pub struct RunConsumerArgs {
    /// The consumer group.
    #[arg(short = 'G', long)]
    pub group: String,
    /// Topic to consume (repeat for several).
    #[arg(long = "topic", required = true)]
    pub topics: Vec<String>,
    /// Where batches go: an http:// or https:// URL that takes a POST of {"records": [...]}.
    #[arg(long)]
    pub target: String,
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
    /// SIGINT or SIGTERM. A scheduled invocation uses this.
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
        let t = &self.target;
        if !(t.starts_with("http://") || t.starts_with("https://")) {
            return Err(super::UsageError(format!(
                "--target must be an http:// or https:// URL, not {t:?}"
            ))
            .into());
        }
        Ok(())
    }

    fn config(&self) -> ConsumerConfig {
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        let instance = self.instance_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
            format!("{}-{host}", self.group)
        });
        ConsumerConfig {
            instance_id: Some(instance),
            session_timeout_ms: self.session_timeout_ms,
            renew_interval_ms: (self.session_timeout_ms / 3).max(1),
            heartbeat_interval_ms: (self.session_timeout_ms / 3).clamp(1, 1_000),
            auto_commit: false,
            auto_offset_reset: match self.start {
                StartAt::Earliest => OffsetReset::Earliest,
                StartAt::Latest => OffsetReset::Latest,
            },
            max_poll_records: self.batch_size.max(1),
            client: "pail run-consumer".into(),
            ..ConsumerConfig::new(&self.group, &topics)
        }
    }
}

/// What the run did, for the summary line.
#[derive(Debug, Default)]
struct Tally {
    delivered: u64,
    dead_lettered: u64,
}

pub async fn run(pail: &Pail, args: RunConsumerArgs) -> anyhow::Result<()> {
    let mut consumer = Consumer::join(pail.clone(), args.config()).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let target = Target {
        http,
        args: &args,
        pail,
    };
    let mut tally = Tally::default();
    let stop = crate::http::host::shutdown_signal();
    tokio::pin!(stop);
    let mut idle = Duration::ZERO;
    loop {
        let polled = tokio::select! {
            polled = consumer.poll(POLL_WAIT) => polled?,
            () = &mut stop => break,
        };
        if polled.records.is_empty() {
            idle += POLL_WAIT;
            if args
                .until_idle_ms
                .is_some_and(|ms| idle >= Duration::from_millis(ms))
            {
                break;
            }
            continue;
        }
        idle = Duration::ZERO;
        for batch in by_partition(polled.records, args.batch_size as usize) {
            target.deliver(&batch, &mut tally).await?;
        }
        // Everything this poll returned is processed: commit it (and release what the group
        // asked this member to give up) in one chain write.
        consumer.commit().await?;
    }
    consumer.commit().await?;
    consumer.leave().await?;
    eprintln!(
        "run-consumer: {} delivered, {} dead-lettered",
        super::plural(tally.delivered, "record"),
        super::plural(tally.dead_lettered, "record")
    );
    Ok(())
}

/// The poll's records cut into batches of one partition each, in offset order.
fn by_partition(records: Vec<ConsumerRecord>, size: usize) -> Vec<Vec<ConsumerRecord>> {
    let mut out: Vec<Vec<ConsumerRecord>> = Vec::new();
    for r in records {
        match out.last_mut() {
            Some(b) if b.len() < size && b[0].topic == r.topic && b[0].partition == r.partition => {
                b.push(r)
            }
            _ => out.push(vec![r]),
        }
    }
    out
}

struct Target<'a> {
    http: reqwest::Client,
    args: &'a RunConsumerArgs,
    pail: &'a Pail,
}

impl Target<'_> {
    /// Delivers `batch`, splitting it to isolate a record the target rejects.
    async fn deliver(&self, batch: &[ConsumerRecord], tally: &mut Tally) -> anyhow::Result<()> {
        let mut pending = vec![batch];
        while let Some(part) = pending.pop() {
            match self.try_hard(part).await {
                Ok(()) => tally.delivered += part.len() as u64,
                Err(_) if part.len() > 1 => {
                    // Later half pushed first: the earlier half is delivered first, in order.
                    let (a, b) = part.split_at(part.len() / 2);
                    pending.push(b);
                    pending.push(a);
                }
                Err(why) => {
                    self.dead_letter(&part[0], &why).await?;
                    tally.dead_lettered += 1;
                }
            }
        }
        Ok(())
    }

    /// Up to `max_tries` POSTs with backoff; the last failure's description.
    async fn try_hard(&self, part: &[ConsumerRecord]) -> Result<(), String> {
        let body = serde_json::json!({
            "records": part
                .iter()
                .map(|r| JsonRecord::new(&r.topic, r.partition, &r.record))
                .collect::<Vec<_>>()
        });
        let mut pause = RETRY_BACKOFF_FIRST;
        let mut last = String::new();
        for attempt in 1..=self.args.max_tries {
            match self.http.post(&self.args.target).json(&body).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let status = r.status();
                    let text: String = r
                        .text()
                        .await
                        .unwrap_or_default()
                        .chars()
                        .take(200)
                        .collect();
                    last = format!("the target answered {status}: {text}");
                }
                Err(e) => last = format!("the target did not answer: {e}"),
            }
            if attempt < self.args.max_tries {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
        Err(last)
    }

    async fn dead_letter(&self, r: &ConsumerRecord, why: &str) -> anyhow::Result<()> {
        let Some(dlq) = &self.args.dead_letter_topic else {
            anyhow::bail!(
                "{}/{} offset {}: {why}; stopping without committing it (give \
                 --dead-letter-topic to move such records aside)",
                r.topic,
                r.partition,
                r.record.offset
            );
        };
        let mut headers = r.record.headers.clone();
        headers.push(Header {
            key: crate::ingest::ERROR_HEADER.into(),
            value: Some(
                format!("{}/{}@{}: {why}", r.topic, r.partition, r.record.offset)
                    .into_bytes()
                    .into(),
            ),
        });
        let record = Record {
            key: r.record.key.clone(),
            value: r.record.value.clone(),
            headers,
            timestamp_ms: Some(r.record.timestamp_ms),
        };
        // Keyed by the source position, so a dead letter written twice (a crash before the
        // commit) is one record.
        let opts = pail_core::AppendOptions {
            idempotency_key: Some(format!(
                "dlq:{}:{}:{}",
                r.topic, r.partition, r.record.offset
            )),
            ..pail_core::AppendOptions::default()
        };
        let meta = self.pail.topic(dlq).await?;
        let p = r.partition % meta.config.partitions;
        self.pail.append_with(dlq, p, vec![record], opts).await?;
        Ok(())
    }
}
