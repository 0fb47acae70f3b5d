//! The consumer function: it consumes a group as a static member and hands records in batches
//! to a target, as Lambda's event source mappings do for Kafka and Kinesis, on pail's own group
//! protocol. One loop, two hosts: `pail run-consumer` (runs until a signal or until idle, then
//! leaves the group) and the scheduled `pail-consumer` Lambda function (runs until idle or its
//! invocation's deadline, then commits and stays a member until its session times out, so the
//! next invocation takes its partitions back without a rebalance).
//!
//! Offsets are committed only after the target succeeded for everything before them, so a crash
//! redelivers (at least once, never a skip). A batch the target rejects is retried with
//! backoff, then split in halves to find the record that fails; a record the target still
//! rejects after `max_tries` goes to the dead-letter topic with a `pail-error` header, or,
//! without one, the run stops without committing it. A target that is unavailable (throttled,
//! unreachable) is retried without counting against the records; when the deadline comes first,
//! the run commits what was delivered and stops.

pub mod function;
pub mod sigv4;
pub mod target;

use bytes::Bytes;
use pail_core::consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
use pail_core::group::TopicPartition;
use pail_core::{Header, Pail, Record};
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

use crate::render::JsonRecord;
pub use target::{Failure, LAMBDA_PAYLOAD_MAX, Target, TargetSpec};

/// Backoff before the second try of a batch; doubled for each try after, up to the cap.
const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Tries of a delivery while the target is unavailable before the run gives up (about 30 s of
/// backoff). The records are not at fault, so they are neither split nor dead-lettered.
pub const UNAVAILABLE_TRIES: u32 = 10;
/// How long one poll waits for records.
const POLL_WAIT: Duration = Duration::from_millis(500);
/// The batch body around the records: `{"records":[` and `]}`.
const ENVELOPE_BYTES: usize = 14;

/// What a run consumes and how it delivers: the same for both hosts.
#[derive(Clone, Debug)]
pub struct RelaySettings {
    pub group: String,
    pub topics: Vec<String>,
    /// Static member id (Kafka's group.instance.id).
    pub instance_id: String,
    /// Most records per batch handed to the target.
    pub batch_size: u32,
    /// Tries of a batch (and, after splitting, of a single record) the target rejects.
    pub max_tries: u32,
    pub dead_letter_topic: Option<String>,
    /// Where a partition with no committed offset starts.
    pub start: OffsetReset,
    pub session_timeout_ms: u64,
    /// Names the member's client in `pail group describe`.
    pub client: String,
}

impl RelaySettings {
    pub fn consumer_config(&self) -> ConsumerConfig {
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        ConsumerConfig {
            instance_id: Some(self.instance_id.clone()),
            session_timeout_ms: self.session_timeout_ms,
            renew_interval_ms: (self.session_timeout_ms / 3).max(1),
            heartbeat_interval_ms: (self.session_timeout_ms / 3).clamp(1, 1_000),
            auto_commit: false,
            auto_offset_reset: self.start,
            max_poll_records: self.batch_size.max(1),
            client: self.client.clone(),
            ..ConsumerConfig::new(&self.group, &topics)
        }
    }
}

/// When a run stops (besides the host's own stop signal).
#[derive(Clone, Copy, Debug, Default)]
pub struct Until {
    /// Once no record has come for this long.
    pub idle: Option<Duration>,
    /// At this instant, delivery in flight included: what was delivered is committed.
    pub deadline: Option<Instant>,
}

/// What a run did: the `pail-consumer` function's answer and `run-consumer`'s summary line.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub delivered: u64,
    pub dead_lettered: u64,
    /// The committed position (next offset to deliver) of every partition this member holds.
    pub committed: Vec<Committed>,
    /// Whether the run stopped at its deadline (else it was idle or stopped).
    pub out_of_time: bool,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Committed {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

/// A record with its JSON, so batches can be cut by bytes and sent without serialising twice.
#[derive(Clone)]
struct Item {
    record: ConsumerRecord,
    json: Vec<u8>,
}

/// How far a delivery got.
enum Reached {
    All,
    /// The deadline came; the first record not delivered.
    Deadline(u64),
}

/// Runs the loop on a joined `consumer` until `until` or `stop`, committing after each poll's
/// records are delivered and once more at the end. The host leaves the group or not.
pub async fn run(
    pail: &Pail,
    settings: &RelaySettings,
    target: &Target,
    consumer: &mut Consumer,
    until: Until,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Summary> {
    let relay = Relay {
        pail,
        settings,
        target,
        deadline: until.deadline,
    };
    let mut summary = Summary::default();
    tokio::pin!(stop);
    let mut idle = Duration::ZERO;
    loop {
        let Some(wait) = relay.left(POLL_WAIT) else {
            summary.out_of_time = true;
            break;
        };
        // The stop is checked between polls, never raced against one: a poll cancelled
        // between two partitions would leave the first one's position past records this loop
        // never got, and the commit below would skip them.
        if futures::FutureExt::now_or_never(&mut stop).is_some() {
            break;
        }
        let polled = consumer.poll(wait).await?;
        if polled.records.is_empty() {
            idle += wait;
            if until.idle.is_some_and(|limit| idle >= limit) {
                break;
            }
            continue;
        }
        idle = Duration::ZERO;
        let batches = batches(
            polled.records,
            settings.batch_size as usize,
            target.payload_max(),
        )?;
        if let Some((i, from)) = relay.deliver_all(&batches, &mut summary).await? {
            rewind(consumer, &batches[i..], from)?;
            summary.out_of_time = true;
            break;
        }
        // Everything this poll returned is processed: commit it (and release what the group
        // asked this member to give up) in one chain write.
        consumer.commit().await?;
    }
    consumer.commit().await?;
    summary.committed = committed(consumer);
    Ok(summary)
}

fn committed(consumer: &Consumer) -> Vec<Committed> {
    consumer
        .assignment()
        .into_iter()
        .filter_map(|tp| {
            let offset = consumer.position(&tp)?;
            Some(Committed {
                topic: tp.topic,
                partition: tp.partition,
                offset,
            })
        })
        .collect()
}

/// Moves the positions back to the first record not delivered, for the commit that ends a run
/// cut short: `from` in the first batch, the start of every later batch's partition.
fn rewind(consumer: &mut Consumer, undelivered: &[Vec<Item>], from: u64) -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    for (n, batch) in undelivered.iter().enumerate() {
        let first = &batch[0].record;
        let tp = TopicPartition::new(first.topic.clone(), first.partition);
        if seen.insert(tp.clone()) {
            let offset = if n == 0 { from } else { first.record.offset };
            consumer.seek(&tp, offset)?;
        }
    }
    Ok(())
}

/// The poll's records cut into batches of one partition each, in offset order, of at most
/// `size` records and (with a payload limit) `max_bytes` of body. A record too large alone is a
/// batch of its own, refused before sending.
fn batches(
    records: Vec<ConsumerRecord>,
    size: usize,
    max_bytes: Option<usize>,
) -> anyhow::Result<Vec<Vec<Item>>> {
    let mut out: Vec<Vec<Item>> = Vec::new();
    let mut bytes = 0;
    for record in records {
        let json = serde_json::to_vec(&JsonRecord::new(
            &record.topic,
            record.partition,
            &record.record,
        ))?;
        let item = Item { record, json };
        let fits = |b: &Vec<Item>| {
            let r = &b[0].record;
            b.len() < size
                && r.topic == item.record.topic
                && r.partition == item.record.partition
                && max_bytes.is_none_or(|m| bytes + 1 + item.json.len() <= m)
        };
        match out.last_mut() {
            Some(b) if fits(b) => {
                bytes += 1 + item.json.len();
                b.push(item);
            }
            _ => {
                bytes = ENVELOPE_BYTES + item.json.len();
                out.push(vec![item]);
            }
        }
    }
    Ok(out)
}

/// The body of a batch: `{"records":[...]}`.
fn body(part: &[Item]) -> Bytes {
    let mut out =
        Vec::with_capacity(ENVELOPE_BYTES + part.iter().map(|i| i.json.len() + 1).sum::<usize>());
    out.extend_from_slice(b"{\"records\":[");
    for (n, item) in part.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item.json);
    }
    out.extend_from_slice(b"]}");
    out.into()
}

struct Relay<'a> {
    pail: &'a Pail,
    settings: &'a RelaySettings,
    target: &'a Target,
    deadline: Option<Instant>,
}

/// Why a part was not delivered.
enum Undelivered {
    Rejected(String),
    Deadline,
}

impl Relay<'_> {
    /// `want`, cut to the time left before the deadline; `None` when none is left.
    fn left(&self, want: Duration) -> Option<Duration> {
        match self.deadline {
            None => Some(want),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| want.min(left))
            }
        }
    }

    /// Delivers `batches` in order; at the deadline, the batch and first record not delivered.
    async fn deliver_all(
        &self,
        batches: &[Vec<Item>],
        summary: &mut Summary,
    ) -> anyhow::Result<Option<(usize, u64)>> {
        for (i, batch) in batches.iter().enumerate() {
            if let Reached::Deadline(from) = self.deliver(batch, summary).await? {
                return Ok(Some((i, from)));
            }
        }
        Ok(None)
    }

    /// Delivers `batch`, splitting it to isolate a record the target rejects.
    async fn deliver(&self, batch: &[Item], summary: &mut Summary) -> anyhow::Result<Reached> {
        let mut pending = vec![batch];
        // A stack whose top is always the earliest part not delivered.
        while let Some(part) = pending.pop() {
            match self.try_hard(part).await? {
                None => summary.delivered += part.len() as u64,
                Some(Undelivered::Deadline) => {
                    return Ok(Reached::Deadline(part[0].record.record.offset));
                }
                Some(Undelivered::Rejected(_)) if part.len() > 1 => {
                    // Later half pushed first: the earlier half is delivered first, in order.
                    let (a, b) = part.split_at(part.len() / 2);
                    pending.push(b);
                    pending.push(a);
                }
                Some(Undelivered::Rejected(why)) => {
                    self.dead_letter(&part[0].record, &why).await?;
                    summary.dead_lettered += 1;
                }
            }
        }
        Ok(Reached::All)
    }

    /// Sends `part` until it is delivered, rejected `max_tries` times, or the deadline comes;
    /// an error when the target stays unavailable or cannot take it at all.
    async fn try_hard(&self, part: &[Item]) -> anyhow::Result<Option<Undelivered>> {
        let body = body(part);
        if let Some(max) = self.target.payload_max().filter(|&m| body.len() > m) {
            return Ok(Some(Undelivered::Rejected(format!(
                "a batch of {} bytes is over the target's limit of {max} bytes",
                body.len()
            ))));
        }
        let (mut rejected, mut unavailable) = (0, 0);
        let mut pause = RETRY_BACKOFF_FIRST;
        loop {
            let Some(budget) = self.left(Duration::MAX) else {
                return Ok(Some(Undelivered::Deadline));
            };
            let sent = match tokio::time::timeout(budget, self.target.send(&body)).await {
                Ok(sent) => sent,
                Err(_) => return Ok(Some(Undelivered::Deadline)),
            };
            match sent {
                Ok(()) => return Ok(None),
                Err(Failure::Rejected(why)) => {
                    rejected += 1;
                    if rejected >= self.settings.max_tries {
                        return Ok(Some(Undelivered::Rejected(why)));
                    }
                }
                Err(Failure::Unavailable(why)) => {
                    unavailable += 1;
                    if unavailable >= UNAVAILABLE_TRIES {
                        anyhow::bail!(
                            "the target stayed unavailable for {UNAVAILABLE_TRIES} tries: {why}"
                        );
                    }
                }
                Err(Failure::Fatal(why)) => anyhow::bail!("{why}"),
            }
            match self.left(pause) {
                Some(nap) if nap == pause => tokio::time::sleep(nap).await,
                _ => return Ok(Some(Undelivered::Deadline)),
            }
            pause = (pause * 2).min(RETRY_BACKOFF_MAX);
        }
    }

    async fn dead_letter(&self, r: &ConsumerRecord, why: &str) -> anyhow::Result<()> {
        let Some(dlq) = &self.settings.dead_letter_topic else {
            anyhow::bail!(
                "{}/{} offset {}: {why}; stopping without committing it (a dead-letter \
                 topic, --dead-letter-topic or PAIL_DEAD_LETTER_TOPIC, moves such records aside)",
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

#[cfg(test)]
mod tests {
    use super::*;
    use pail_core::StoredRecord;

    fn record(partition: u32, offset: u64, value_len: usize) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition,
            record: StoredRecord {
                offset,
                timestamp_ms: 0,
                key: None,
                value: Some(Bytes::from(vec![b'v'; value_len])),
                headers: Vec::new(),
            },
        }
    }

    fn offsets(batch: &[Item]) -> Vec<(u32, u64)> {
        batch
            .iter()
            .map(|i| (i.record.partition, i.record.record.offset))
            .collect()
    }

    #[test]
    fn batches_stay_under_the_payload_limit_and_are_as_full_as_it_allows() {
        const MAX: usize = 4_000;
        let mut records: Vec<ConsumerRecord> = (0..20).map(|o| record(0, o, 900)).collect();
        records.insert(7, record(0, 100, 5_000)); // too large alone
        records.extend((0..3).map(|o| record(1, o, 10)));
        let all: Vec<(u32, u64)> = records
            .iter()
            .map(|r| (r.partition, r.record.offset))
            .collect();
        let cut = batches(records, 100, Some(MAX)).unwrap();
        let flat: Vec<(u32, u64)> = cut.iter().flat_map(|b| offsets(b)).collect();
        assert_eq!(flat, all, "every record once, in order");
        for (n, b) in cut.iter().enumerate() {
            let text = body(b);
            let parsed: serde_json::Value = serde_json::from_slice(&text).unwrap();
            assert_eq!(parsed["records"].as_array().unwrap().len(), b.len());
            assert!(
                b.iter()
                    .all(|i| i.record.partition == b[0].record.partition)
            );
            if b.len() > 1 {
                assert!(text.len() <= MAX, "batch {n}: {} bytes", text.len());
            }
            // Full: the next record of the same partition would not have fitted.
            if let Some(next) = cut.get(n + 1)
                && next[0].record.partition == b[0].record.partition
            {
                let mut grown = b.clone();
                grown.push(next[0].clone());
                assert!(body(&grown).len() > MAX, "batch {n} could hold one more");
            }
        }
        let oversized = cut
            .iter()
            .find(|b| b[0].record.record.offset == 100)
            .unwrap();
        assert_eq!(oversized.len(), 1);
        assert!(body(oversized).len() > MAX);
        assert_eq!(cut.last().map(|b| b.len()), Some(3));
    }

    #[test]
    fn without_a_payload_limit_batches_are_cut_by_count_and_partition() {
        let records: Vec<ConsumerRecord> = (0..5)
            .map(|o| record(0, o, 10))
            .chain((0..2).map(|o| record(1, o, 10)))
            .collect();
        let sizes: Vec<usize> = batches(records, 2, None)
            .unwrap()
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [2, 2, 1, 2]);
    }
}
