//! `pail produce`: one record per stdin line, batched into commits by the core producer.

use bytes::Bytes;
use clap::Args;
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use pail_core::producer::{Delivered, Delivery, Producer, ProducerConfig};
use pail_core::{Pail, Record};
use std::collections::BTreeSet;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    pub topic: String,
    /// Send every record to this partition (default: by key, or sticky spreading when unkeyed).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Split each line at the first SEP into key and value; a line without SEP is an error.
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Wait up to this long for more records before committing a partition's batch.
    #[arg(long, default_value_t = ProducerConfig::default().linger_ms)]
    pub linger_ms: u64,
    /// Most records per commit.
    #[arg(long, default_value_t = ProducerConfig::default().batch_records_max)]
    pub batch_records: usize,
    /// Most payload bytes per commit.
    #[arg(long, default_value_t = ProducerConfig::default().batch_bytes_max)]
    pub batch_bytes: u64,
    /// Payload bytes buffered before reading stdin pauses.
    #[arg(long, default_value_t = ProducerConfig::default().buffer_bytes_max)]
    pub buffer_bytes: u64,
    /// Turn off idempotent retries (a retried batch could then be appended twice).
    #[arg(long)]
    pub no_idempotence: bool,
    /// Give up on a record this long after it was read (the core default is Kafka's 120 s; a
    /// command line should not sit that long in front of a dead store).
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    pub delivery_timeout_ms: u64,
    /// Take the lead of each partition written to, with a lease of this many ms.
    #[arg(long, value_name = "MS")]
    pub lead_lease_ms: Option<u64>,
}

impl ProduceArgs {
    fn config(&self) -> ProducerConfig {
        ProducerConfig {
            linger_ms: self.linger_ms,
            batch_records_max: self.batch_records,
            batch_bytes_max: self.batch_bytes,
            buffer_bytes_max: self.buffer_bytes,
            idempotent: !self.no_idempotence,
            lead_lease_ms: self.lead_lease_ms,
            delivery_timeout_ms: self.delivery_timeout_ms,
            ..ProducerConfig::default()
        }
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
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "produced {} records to {} ({} partitions) in {:.2} s, {:.0} records/s{}",
        tally.acked,
        args.topic,
        tally.partitions.len(),
        secs,
        tally.acked as f64 / secs.max(1e-9),
        match tally.failed {
            0 => String::new(),
            n => format!("; {n} failed"),
        }
    );
    input?;
    if let Some(e) = tally.first_error {
        // Keep the error itself, not its text: its causes (say, "Connection refused") are
        // part of the one line the user gets.
        let failed = tally.failed;
        return Err(
            anyhow::Error::new(e).context(format!("{failed} records were not acknowledged"))
        );
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
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let record = to_record(&line, args.key_separator.as_deref()).ok_or_else(|| {
            anyhow::anyhow!(
                "line {number} has no key separator {:?}",
                args.key_separator.as_deref().unwrap_or("")
            )
        })?;
        let delivery = producer.send(record, args.partition).await?;
        pending.push(delivery);
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

fn to_record(line: &[u8], separator: Option<&str>) -> Option<Record> {
    let Some(sep) = separator.filter(|s| !s.is_empty()) else {
        return Some(Record::from_value(Bytes::copy_from_slice(line)));
    };
    let sep = sep.as_bytes();
    let at = line.windows(sep.len()).position(|w| w == sep)?;
    Some(Record::keyed(
        Bytes::copy_from_slice(&line[..at]),
        Bytes::copy_from_slice(&line[at + sep.len()..]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_separator() {
        let r = to_record(b"k1::v::x", Some("::")).unwrap();
        assert_eq!(
            (r.key.as_deref(), r.value.as_deref()),
            (Some(&b"k1"[..]), Some(&b"v::x"[..]))
        );
        assert!(to_record(b"no-sep", Some(":")).is_none());
        let plain = to_record(b"a:b", None).unwrap();
        assert_eq!(
            (plain.key, plain.value.as_deref()),
            (None, Some(&b"a:b"[..]))
        );
    }
}
