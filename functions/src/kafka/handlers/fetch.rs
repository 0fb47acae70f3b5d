//! Fetch 4-12, without fetch sessions (session id 0: every request names its partitions).
//!
//! A fetch reads each partition through the listener's `Pail` (so its caches of footers and
//! tips are shared by every consumer on this listener) and answers as soon as it holds
//! `min_bytes`, or when `max_wait_ms` has passed: a long poll. While it waits it wakes on every
//! commit this listener makes and otherwise re-reads the store with a backoff from
//! [`POLL_FIRST`] to [`POLL_MAX`] (records produced through other listeners are found that
//! way, at one GET per partition per poll).
//!
//! `last_stable_offset` is the high watermark (pail has no transactions, everything committed
//! is readable) and `log_start_offset` is the partition's. Records come back as uncompressed
//! batches with correct CRCs; a partition gets at most its `partition_max_bytes` and the
//! response at most `max_bytes` (capped at [`RESPONSE_BYTES_MAX`]), except that the first
//! partition with data always gets at least one record, as Kafka does.

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use kafka_protocol::messages::FetchRequest;
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use pail_core::log::fetch::{FETCH_BYTES_MAX, FETCH_RECORDS_MAX};
use pail_core::{Error, FetchLimits, OffsetSpec, TopicMeta};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::records::encode_batches;
use crate::kafka::{Broker, codes};

/// Longest long poll, whatever a client asks for.
pub const WAIT_MAX: Duration = Duration::from_secs(30);
/// Most bytes of records in one response, whatever a client asks for.
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// First and longest pause between reads of the store while a fetch waits.
pub const POLL_FIRST: Duration = Duration::from_millis(20);
pub const POLL_MAX: Duration = Duration::from_millis(500);

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: FetchRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move { apis::encode(&answer(&broker, request).await, version) }.boxed())
}

/// One partition asked for.
struct Wanted {
    partition: i32,
    offset: i64,
    max_bytes: usize,
}

async fn answer(broker: &Broker, request: FetchRequest) -> FetchResponse {
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)).min(WAIT_MAX);
    let deadline = Instant::now() + wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = usize::try_from(request.max_bytes)
        .unwrap_or(0)
        .clamp(1, RESPONSE_BYTES_MAX);
    let wanted: Vec<(String, Vec<Wanted>)> = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| Wanted {
                    partition: p.partition,
                    offset: p.fetch_offset,
                    max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
                })
                .collect();
            (t.topic.0.to_string(), partitions)
        })
        .collect();
    let mut commits = broker.appenders.commits();
    let mut pause = POLL_FIRST;
    loop {
        commits.borrow_and_update();
        let (response, bytes, errors) = read(broker, &wanted, max_bytes).await;
        let now = Instant::now();
        if bytes >= min_bytes || errors || now >= deadline {
            return response;
        }
        tokio::select! {
            _ = commits.changed() => {}
            () = tokio::time::sleep(pause.min(deadline - now)) => {}
        }
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// One pass over every wanted partition: the response, its record bytes, and whether any
/// partition failed.
async fn read(
    broker: &Broker,
    wanted: &[(String, Vec<Wanted>)],
    max_bytes: usize,
) -> (FetchResponse, usize, bool) {
    let reads = wanted.iter().map(|(topic, partitions)| async move {
        let meta = broker.pail.topic(topic).await;
        let parts = futures::future::join_all(
            partitions
                .iter()
                .map(|w| read_partition(broker, meta.as_ref().ok(), topic, w, max_bytes)),
        )
        .await;
        (meta.err(), parts)
    });
    let results = futures::future::join_all(reads).await;
    let mut response = FetchResponse::default();
    let (mut total, mut errors) = (0usize, false);
    for ((topic, partitions), (topic_error, parts)) in wanted.iter().zip(results) {
        let mut t = FetchableTopicResponse::default();
        t.topic = kafka_protocol::messages::TopicName(super::text(topic.clone()));
        for (w, mut data) in partitions.iter().zip(parts) {
            if let Some(e) = &topic_error {
                data = failed(w.partition, codes::of(e));
            }
            errors |= data.error_code != codes::NONE;
            let size = data.records.as_ref().map_or(0, Bytes::len);
            // Over the response's budget: leave these records for the next fetch, unless
            // nothing has been returned yet.
            if size > 0 && total > 0 && total + size > max_bytes {
                data.records = Some(Bytes::new());
            } else {
                total += size;
            }
            t.partitions.push(data);
        }
        response.responses.push(t);
    }
    (response, total, errors)
}

async fn read_partition(
    broker: &Broker,
    meta: Option<&Arc<TopicMeta>>,
    topic: &str,
    w: &Wanted,
    max_bytes: usize,
) -> PartitionData {
    let (Some(meta), Ok(partition)) = (meta, u32::try_from(w.partition)) else {
        return failed(w.partition, codes::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let limits = FetchLimits {
        max_records: FETCH_RECORDS_MAX,
        max_bytes: w
            .max_bytes
            .min(max_bytes)
            .clamp(1, FETCH_BYTES_MAX as usize) as u64,
    };
    match broker
        .pail
        .fetch(topic, partition, OffsetSpec::At(w.offset), limits)
        .await
    {
        Ok(got) => {
            let mut records = BytesMut::new();
            encode_batches(&mut records, &got.records, meta.config.timestamp_type);
            let mut data = PartitionData::default();
            data.partition_index = w.partition;
            data.high_watermark = got.high_watermark as i64;
            data.last_stable_offset = got.high_watermark as i64;
            data.log_start_offset = got.log_start_offset as i64;
            data.records = Some(records.freeze());
            data
        }
        Err(Error::OffsetOutOfRange {
            log_start, next, ..
        }) => {
            let mut data = failed(w.partition, codes::OFFSET_OUT_OF_RANGE);
            data.high_watermark = next as i64;
            data.last_stable_offset = next as i64;
            data.log_start_offset = log_start as i64;
            data
        }
        Err(e) => {
            tracing::debug!("fetch {topic}/{partition} at {}: {e}", w.offset);
            failed(w.partition, codes::of(&e))
        }
    }
}

fn failed(partition: i32, code: i16) -> PartitionData {
    let mut data = PartitionData::default();
    data.partition_index = partition;
    data.error_code = code;
    data.high_watermark = -1;
    data
}
