//! `pail produce`: one record per stdin line, batched into commits by the core producer.

mod input;

use clap::Args;
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use pail_core::producer::{Delivered, Delivery, Producer, ProducerConfig};
use pail_core::{Header, Pail, Record};
use std::collections::BTreeSet;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{Format, UsageError, plural, values};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  seq 1 1000 | pail produce orders                  one record per line
  printf 'k1:v1\\nk2:v2\\n' | pail produce orders -K :  keyed: key before the first ':'
  pail produce orders -p 0 -H source=import < data   all to partition 0, each with a header
  pail consume a --format json | pail produce b --format json      copy a topic exactly")]
pub struct ProduceArgs {
    pub topic: String,
    /// Send every record to this partition (default: by key, or sticky spreading when unkeyed).
    #[arg(short = 'p', long, value_parser = values::partition)]
    pub partition: Option<u32>,
    /// Split each line at the first SEP into key and value; a line without SEP is an error.
    #[arg(short = 'K', long, value_name = "SEP", value_parser = values::separator)]
    pub key_separator: Option<String>,
    /// Add this header to every record (repeat for more).
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE", value_parser = input::parse_header)]
    pub headers: Vec<Header>,
    /// Input format: text (one record per line; a trailing \r is dropped, as Kafka's console
    /// producer does) or json (one object per line, as consume --format json prints: key,
    /// value and headers with *_encoding utf8|base64, optional partition and timestamp).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Wait up to this long for more records before committing a partition's batch.
    #[arg(long, value_name = "MS", default_value_t = ProducerConfig::default().linger_ms, value_parser = values::whole_u64)]
    pub linger_ms: u64,
    /// While records keep arriving, a small batch waits on up to this long (in steps of
    /// --linger-ms) to fill --linger-until-bytes: fewer PUTs on a steady trickle. Set it to
    /// --linger-ms to turn that off.
    #[arg(long, value_name = "MS", default_value_t = ProducerConfig::default().linger_max_ms, value_parser = values::whole_u64)]
    pub linger_max_ms: u64,
    /// A lingering batch stops waiting once it holds this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = ProducerConfig::default().linger_until_bytes, value_parser = values::whole_u64)]
    pub linger_until_bytes: u64,
    /// Most records per commit.
    #[arg(long, value_name = "N", default_value_t = ProducerConfig::default().batch_records_max, value_parser = values::whole_usize)]
    pub batch_records: usize,
    /// Most payload bytes per commit.
    #[arg(long, value_name = "BYTES", default_value_t = ProducerConfig::default().batch_bytes_max, value_parser = values::whole_u64)]
    pub batch_bytes: u64,
    /// Payload bytes buffered before reading stdin pauses.
    #[arg(long, value_name = "BYTES", default_value_t = ProducerConfig::default().buffer_bytes_max, value_parser = values::whole_u64)]
    pub buffer_bytes: u64,
    /// Turn off idempotent retries (a retried batch could then be appended twice).
    #[arg(long)]
    pub no_idempotence: bool,
    /// Give up on a record this long after it was read (the core default is Kafka's 120 s; a
    /// command line should not sit that long in front of a dead store).
    #[arg(long, default_value_t = 30_000, value_name = "MS", value_parser = values::whole_u64)]
    pub delivery_timeout_ms: u64,
    /// Take the lead of each partition written to, with a lease of this many ms.
    #[arg(long, value_name = "MS", value_parser = values::whole_u64)]
    pub lead_lease_ms: Option<u64>,
}

impl ProduceArgs {
    fn config(&self) -> ProducerConfig {
        ProducerConfig {
            linger_ms: self.linger_ms,
            linger_max_ms: self.linger_max_ms,
            linger_until_bytes: self.linger_until_bytes,
            batch_records_max: self.batch_records,
            batch_bytes_max: self.batch_bytes,
            buffer_bytes_max: self.buffer_bytes,
            idempotent: !self.no_idempotence,
            lead_lease_ms: self.lead_lease_ms,
            delivery_timeout_ms: self.delivery_timeout_ms,
            ..ProducerConfig::default()
        }
    }

    /// Refuses option combinations clap cannot express, before the store is opened.
    pub fn check(&self) -> Result<(), UsageError> {
        if self.format == Format::Json && self.key_separator.is_some() {
            return Err(UsageError(
                "--format json reads each record's key from its line: leave out -K".into(),
            ));
        }
        Ok(())
    }

    /// Input line `number` as a record and its partition, with the `-H` headers added.
    fn parse(&self, line: &[u8], number: u64) -> anyhow::Result<input::Parsed> {
        let (mut record, partition) = match self.format {
            Format::Text => input::text_record(line, self.key_separator.as_deref())
                .map(|r| (r, None))
                .ok_or_else(|| {
                    let sep = self.key_separator.as_deref().unwrap_or_default();
                    anyhow::anyhow!("line {number} has no key separator {sep:?}")
                })?,
            Format::Json => input::json_record(line)
                .map_err(|e| anyhow::anyhow!("line {number} is not a record in JSON: {e}"))?,
        };
        record.headers.extend(self.headers.iter().cloned());
        let partition = match (self.partition, partition) {
            (Some(flag), Some(own)) if flag != own => anyhow::bail!(
                "line {number} names partition {own}, but --partition {flag} was given"
            ),
            (flag, own) => flag.or(own),
        };
        Ok((record, partition))
    }
}

#[derive(Default)]
struct Tally {
    acked: u64,
    failed: u64,
    first_error: Option<pail_core::Error>,
    partitions: BTreeSet<u32>,
}

impl Tally {
    fn add(&mut self, result: pail_core::Result<Delivered>) {
        match result {
            Ok(d) => {
                self.acked += 1;
                self.partitions.insert(d.partition);
            }
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    fn summary(&self, topic: &str, started: Instant) -> String {
        let secs = started.elapsed().as_secs_f64();
        format!(
            "produced {} to {topic} ({}) in {secs:.2} s, {:.0} records/s{}",
            plural(self.acked, "record"),
            plural(self.partitions.len() as u64, "partition"),
            self.acked as f64 / secs.max(1e-9),
            match self.failed {
                0 => String::new(),
                n => format!("; {n} failed"),
            }
        )
    }
}

pub async fn run(pail: &Pail, args: ProduceArgs) -> anyhow::Result<()> {
    let producer = Producer::new(pail.clone(), &args.topic, args.config()).await?;
    if let Some(p) = args.partition {
        producer.topic().check_partition(p)?;
    }
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut pending = FuturesUnordered::new();
    let input = read_all(&producer, &args, &mut pending, &mut tally).await;
    while let Some(result) = pending.next().await {
        tally.add(result);
    }
    // Hints each written partition's newest version, so deleting it later is noticed.
    producer.close().await;
    eprintln!("{}", tally.summary(&args.topic, started));
    input?;
    if let Some(e) = tally.first_error {
        // Keep the error itself, not its text: its causes (say, "Connection refused") are
        // part of the one line the user gets.
        let failed = plural(tally.failed, "record");
        return Err(anyhow::Error::new(e).context(format!("{failed} not acknowledged")));
    }
    Ok(())
}

/// Sends every stdin line; stops at the first bad line or send error, which it returns after
/// the records already sent have been accounted for by the caller.
async fn read_all(
    producer: &Producer,
    args: &ProduceArgs,
    pending: &mut FuturesUnordered<Delivery>,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        number += 1;
        input::strip_line_end(&mut line);
        // Blank lines separate nothing in JSON input; in text they are empty values.
        if args.format == Format::Json && line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (record, partition) = args.parse(&line, number)?;
        pending.push(send(producer, record, partition, number).await?);
        // Collect what is already answered so memory stays bounded by what is in flight.
        while let Some(Some(result)) = pending.next().now_or_never() {
            tally.add(result);
        }
        // A record that failed for good means the store is refusing us: stop reading rather
        // than queue the rest of the input behind it.
        if tally.failed > 0 {
            return Ok(());
        }
    }
}

async fn send(
    producer: &Producer,
    record: Record,
    partition: Option<u32>,
    number: u64,
) -> anyhow::Result<Delivery> {
    if let Some(p) = partition {
        producer
            .topic()
            .check_partition(p)
            .map_err(|e| anyhow::Error::new(e).context(format!("line {number}")))?;
    }
    Ok(producer.send(record, partition).await?)
}
