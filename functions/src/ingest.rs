//! Event ingestion, the `pail-ingest` Lambda function: SQS batches, EventBridge events and S3
//! event notifications appended to a configured topic.
//!
//! It runs on `lambda_runtime` directly, not through `lambda_http`, so a failure is an error
//! Lambda sees (and retries), never an HTTP answer that would count as success.
//!
//! Exactly once per message, across redeliveries and regrouped batches: every message is its
//! own append, under the idempotency key of its SQS message id (or event id), on a partition
//! fixed by its key, or by a hash of that id when it has none, so a redelivery reaches the
//! same partition and the key window (`pail_core::manifest::IDEMPOTENCY_WINDOW_MS`) finds it.
//! A batch whose messages were grouped into one append could not promise that: SQS may
//! redeliver a message in a different batch. The cost is one commit per message, made
//! concurrently across partitions (`INGEST_CONCURRENCY`).
//!
//! SQS answers with `batchItemFailures`, so SQS retries only what failed. A message that can
//! never be appended (too large, an unknown topic, a bad partition attribute) goes to the
//! dead-letter topic, if one is configured, with a `pail-error` header saying why; otherwise it
//! is reported failed, and SQS's own redrive policy takes over.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use pail_core::manifest::IDEMPOTENCY_KEY_MAX_BYTES;
use pail_core::producer::partitioner::partition_for_key;
use pail_core::{AppendOptions, Error, ErrorKind, Header, Pail, Record};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// Messages appended at once.
const INGEST_CONCURRENCY: usize = 16;
/// Message attribute naming a record's key, and one naming its partition.
pub const KEY_ATTRIBUTE: &str = "pail-key";
pub const PARTITION_ATTRIBUTE: &str = "pail-partition";
/// Header a dead-lettered record carries: why it was not appended (here) or why the target
/// rejected it (`pail run-consumer`).
pub const ERROR_HEADER: &str = "pail-error";

/// Where events go, from the function's environment.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// `PAIL_INGEST_TOPIC`.
    pub topic: String,
    /// `PAIL_DEAD_LETTER_TOPIC`: where poison messages go (optional).
    pub dead_letter_topic: Option<String>,
    /// `PAIL_KEY_FIELD`: a JSON pointer (`/user/id`) into a JSON message body whose value is
    /// the record's key, for messages without a `pail-key` attribute.
    pub key_field: Option<String>,
}

impl IngestConfig {
    pub fn from_env() -> anyhow::Result<IngestConfig> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let topic = var("PAIL_INGEST_TOPIC").ok_or_else(|| {
            anyhow::anyhow!("PAIL_INGEST_TOPIC is not set: name the topic to append to")
        })?;
        let key_field = var("PAIL_KEY_FIELD");
        if let Some(f) = &key_field
            && !f.starts_with('/')
        {
            anyhow::bail!("PAIL_KEY_FIELD must be a JSON pointer starting with '/', not {f:?}");
        }
        Ok(IngestConfig {
            topic,
            dead_letter_topic: var("PAIL_DEAD_LETTER_TOPIC"),
            key_field,
        })
    }
}

/// One event to append: the record, and the id that makes a redelivery recognisable.
struct Item {
    id: String,
    record: Record,
    /// A partition the event asked for, or why its attribute was refused.
    partition: Result<Option<u32>, String>,
}

/// Handles one invocation. SQS batches get a `batchItemFailures` answer; EventBridge and S3
/// events succeed whole or fail whole (their retries are deduplicated by event id).
pub async fn handle(
    pail: &Pail,
    cfg: &IngestConfig,
    event: Value,
    deadline: Option<Instant>,
) -> anyhow::Result<Value> {
    let source = event["Records"][0]["eventSource"].as_str().unwrap_or("");
    if source == "aws:sqs" {
        let sqs: SqsEvent = serde_json::from_value(event)?;
        let answer = handle_sqs(pail, cfg, sqs, deadline).await;
        return Ok(serde_json::to_value(answer)?);
    }
    let items = if source == "aws:s3" {
        s3_items(&event)?
    } else if event.get("detail-type").is_some() && event.get("source").is_some() {
        vec![eventbridge_item(&event)?]
    } else {
        anyhow::bail!("not an SQS, EventBridge or S3 event: {}", preview(&event));
    };
    let results = append_all(pail, cfg, items, deadline).await;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|(id, r)| r.err().map(|e| format!("{id}: {e}")))
        .collect();
    if !failed.is_empty() {
        anyhow::bail!(
            "{} events not appended: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(Value::Null)
}

fn preview(v: &Value) -> String {
    let s = v.to_string();
    s.chars().take(200).collect()
}

async fn handle_sqs(
    pail: &Pail,
    cfg: &IngestConfig,
    event: SqsEvent,
    deadline: Option<Instant>,
) -> SqsBatchResponse {
    let mut failures = Vec::new();
    let mut items = Vec::new();
    for m in event.records {
        match sqs_item(cfg, m) {
            Ok(item) => items.push(item),
            // No message id: nothing SQS could retry by; it cannot be reported either.
            Err(e) => tracing::warn!(error = %e, "SQS message without an id skipped"),
        }
    }
    for (id, result) in append_all(pail, cfg, items, deadline).await {
        if let Err(e) = result {
            tracing::warn!(message_id = %id, error = %e, "message not appended; SQS will retry it");
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            failures.push(f);
        }
    }
    let mut answer = SqsBatchResponse::default();
    answer.batch_item_failures = failures;
    answer
}

fn sqs_item(cfg: &IngestConfig, m: SqsMessage) -> anyhow::Result<Item> {
    let id = m
        .message_id
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no messageId"))?;
    let mut headers = Vec::new();
    let (mut key, mut partition) = (None, Ok(None));
    for (name, attr) in &m.message_attributes {
        let value = attr
            .string_value
            .clone()
            .map(String::into_bytes)
            .or_else(|| attr.binary_value.as_ref().map(|b| b.to_vec()));
        match name.as_str() {
            KEY_ATTRIBUTE => key = value,
            PARTITION_ATTRIBUTE => partition = parse_partition(value.as_deref()),
            _ => headers.push(Header {
                key: name.clone(),
                value: value.map(Into::into),
            }),
        }
    }
    let body = m.body.unwrap_or_default();
    if key.is_none() {
        key = key_from_body(cfg, &body).or_else(|| {
            m.attributes
                .get("MessageGroupId")
                .map(|g| g.clone().into_bytes())
        });
    }
    headers.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Item {
        id,
        record: Record {
            key: key.map(Into::into),
            value: Some(body.into_bytes().into()),
            headers,
            timestamp_ms: None,
        },
        partition,
    })
}

fn parse_partition(value: Option<&[u8]>) -> Result<Option<u32>, String> {
    let text = std::str::from_utf8(value.unwrap_or_default()).unwrap_or("");
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| format!("{PARTITION_ATTRIBUTE} must be a partition number, not {text:?}"))
}

/// The configured JSON field of a JSON body, as text (strings unquoted).
fn key_from_body(cfg: &IngestConfig, body: &str) -> Option<Vec<u8>> {
    let pointer = cfg.key_field.as_deref()?;
    let json: Value = serde_json::from_str(body).ok()?;
    match json.pointer(pointer)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone().into_bytes()),
        other => Some(other.to_string().into_bytes()),
    }
}

fn eventbridge_item(event: &Value) -> anyhow::Result<Item> {
    let id = event["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("EventBridge event without an id"))?;
    Ok(json_item(format!("eventbridge:{id}"), event))
}

/// One record per S3 notification record; its id is the bucket, key and sequencer (unique per
/// change to an object).
fn s3_items(event: &Value) -> anyhow::Result<Vec<Item>> {
    let records = event["Records"].as_array().cloned().unwrap_or_default();
    records
        .iter()
        .map(|r| {
            let s3 = &r["s3"];
            let (bucket, key, seq) = (
                s3["bucket"]["name"].as_str(),
                s3["object"]["key"].as_str(),
                s3["object"]["sequencer"].as_str(),
            );
            match (bucket, key, seq) {
                (Some(b), Some(k), Some(s)) => {
                    Ok(json_item(short_id(format!("s3:{b}/{k}@{s}")), r))
                }
                _ => anyhow::bail!("S3 record without bucket, key or sequencer: {}", preview(r)),
            }
        })
        .collect()
}

/// An id short enough for an idempotency key: long ones (S3 keys reach 1,024 bytes) are
/// replaced by their SHA-256, the same in every process.
fn short_id(id: String) -> String {
    use sha2::{Digest, Sha256};
    if id.len() <= IDEMPOTENCY_KEY_MAX_BYTES {
        return id;
    }
    let hash = Sha256::digest(id.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn json_item(id: String, event: &Value) -> Item {
    Item {
        record: Record::from_value(event.to_string()),
        id,
        partition: Ok(None),
    }
}

/// Appends every item as its own batch, concurrently; poison goes to the dead-letter topic.
async fn append_all(
    pail: &Pail,
    cfg: &IngestConfig,
    items: Vec<Item>,
    deadline: Option<Instant>,
) -> Vec<(String, Result<(), Error>)> {
    futures::stream::iter(items)
        .map(|item| async move {
            let id = item.id.clone();
            (id, append_one(pail, cfg, item, deadline).await)
        })
        .buffer_unordered(INGEST_CONCURRENCY)
        .collect()
        .await
}

async fn append_one(
    pail: &Pail,
    cfg: &IngestConfig,
    item: Item,
    deadline: Option<Instant>,
) -> Result<(), Error> {
    let first = match item.partition.clone() {
        Ok(asked) => append_to(pail, &cfg.topic, &item, asked, deadline).await,
        Err(reason) => Err(Error::InvalidArgument(reason)),
    };
    match (first, &cfg.dead_letter_topic) {
        (Err(e), Some(dlq)) if is_poison(&e) => {
            let mut item = item;
            item.record.headers.push(Header {
                key: ERROR_HEADER.into(),
                value: Some(e.to_string().into_bytes().into()),
            });
            if matches!(e, Error::TooLarge { .. } | Error::TooManyRecords { .. }) {
                // The reason is kept; a value too large for one topic is kept from the other.
                item.record.value = None;
            }
            append_to(pail, dlq, &item, None, deadline).await
        }
        (result, _) => result,
    }
}

/// Errors that no retry can fix: the message itself, or where it is going, is wrong.
fn is_poison(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::NotFound)
}

async fn append_to(
    pail: &Pail,
    topic: &str,
    item: &Item,
    asked: Option<u32>,
    deadline: Option<Instant>,
) -> Result<(), Error> {
    let meta = pail.topic(topic).await?;
    let n = meta.config.partitions;
    let partition = match (asked, &item.record.key) {
        (Some(p), _) => p,
        (None, Some(key)) => partition_for_key(key, n),
        // No key: a hash of the id, so a redelivery reaches the partition whose key window
        // remembers the first delivery.
        (None, None) => partition_for_key(item.id.as_bytes(), n),
    };
    let opts = AppendOptions {
        idempotency_key: Some(item.id.clone()),
        deadline,
        ..AppendOptions::default()
    };
    pail.append_with(topic, partition, vec![item.record.clone()], opts)
        .await
        .map(|_| ())
}

/// The invocation's deadline, less a margin to answer in: no store call outlives it.
pub fn deadline_of(ctx_deadline_ms: u64) -> Instant {
    let margin = Duration::from_millis(500);
    let left = crate::http::host::time_left(ctx_deadline_ms, std::time::SystemTime::now(), margin);
    Instant::now() + left
}
