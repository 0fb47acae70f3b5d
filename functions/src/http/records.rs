//! Producing, fetching and listing offsets: `/v1/topics/{topic}/records`,
//! `/v1/topics/{topic}/partitions/{partition}/records` and `/v1/topics/{topic}/offsets`.
//!
//! Produce places records as Kafka's default partitioner does for keys (murmur2), sends every
//! unkeyed record of one request to one partition picked at random (a request is a batch, and
//! concurrent writers spread out), and honours an explicit partition. Each partition's share is
//! one append, so one commit; the shares are committed concurrently. The unkeyed share moves
//! to another partition when its commit keeps losing races there with certainly no effect
//! (`Pail::append_unkeyed`), unless an `Idempotency-Key` pins it or keyed records share its
//! partition; the response names the partition it landed on.
//!
//! A fetch may wait for records (long poll): it polls the core's fetch with backoff until a
//! record arrives or the wait ends. The poll runs inside the request's future, never in a task
//! of its own, so a client that goes away drops it.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use futures::StreamExt;
use pail_core::manifest::IDEMPOTENCY_KEY_MAX_BYTES;
use pail_core::producer::partitioner::partition_for_key;
use pail_core::{
    AppendOptions, Appended, Error, FetchLimits, Fetched, Header, OffsetSpec, Record, TopicMeta,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody, ErrorDetail, StoreErrors};
use super::extract::{JsonBody, Path, Query};
use super::{AppState, json_response};
use crate::render::{Encoding, JsonHeader, JsonRecord, decode_bytes, parse_offset};

/// Most records one produce request may carry.
pub const PRODUCE_RECORDS_MAX: usize = 10_000;
/// Partitions one produce request commits to at once (a request with keys spread over many
/// partitions must not open thousands of store requests together).
const PRODUCE_COMMITS_CONCURRENCY: usize = 32;
/// Records a fetch returns when it does not say (`max_records`), and the most it may ask for.
pub const FETCH_RECORDS_DEFAULT: u32 = 1_000;
pub const FETCH_RECORDS_MAX: u32 = 10_000;
/// Bytes a fetch returns when it does not say (`max_bytes`), and the most it may ask for: a
/// Lambda response is at most 6 MB, and base64 makes bytes a third larger.
pub const FETCH_BYTES_DEFAULT: u64 = 1024 * 1024;
pub const FETCH_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// The longest a fetch may wait for records (SQS's long-poll ceiling; well inside a Lambda
/// timeout).
pub const FETCH_WAIT_MS_MAX: u64 = 20_000;
/// Pauses between polls of an empty partition while a fetch waits: short at first, so a record
/// arriving soon is seen soon, then longer, so a quiet partition costs few GETs (one each).
const POLL_PAUSE_MIN: Duration = Duration::from_millis(50);
const POLL_PAUSE_MAX: Duration = Duration::from_secs(1);

/// One record to produce. Bytes are UTF-8 text unless `*_encoding` is `base64`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub key_encoding: Option<Encoding>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_encoding: Option<Encoding>,
    #[serde(default)]
    pub headers: Vec<JsonHeader>,
    /// Send the record to this partition (default: by key, or one partition per request for
    /// unkeyed records).
    #[serde(default)]
    pub partition: Option<u32>,
    /// Milliseconds since the Unix epoch (default: now; ignored by log-append-time topics).
    #[serde(default)]
    pub timestamp: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    /// 1 to 10,000 records.
    pub records: Vec<ProduceRecord>,
}

/// Where one record went, in request order: its offset, or why its partition's commit failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordResult {
    pub partition: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// Per record, in request order, its partition and offset. When the commits of some partitions
/// failed while others succeeded, the failed records carry an `error` and are counted in
/// `failed_record_count` (as Kinesis PutRecords reports); when all failed, the response is
/// the error itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProduceResponse {
    pub offsets: Vec<RecordResult>,
    pub failed_record_count: usize,
}

/// Produce a batch of records to a topic.
#[utoipa::path(post, path = "/v1/topics/{topic}/records", tag = "records",
    params(("topic" = String, Path, description = "Topic name"),
           ("Idempotency-Key" = Option<String>, Header, description = "1 to 256 bytes: a retry of this request with the same key and records, from any client within 5 minutes, gets the original offsets and appends nothing")),
    request_body = ProduceRequest,
    responses(
        (status = 200, description = "Committed; partition and offset per record", body = ProduceResponse),
        (status = 400, description = "Malformed body, bad encoding or no records", body = ErrorBody),
        (status = 404, description = "No such topic or partition", body = ErrorBody),
        (status = 409, description = "Lost too many commit races, or fenced", body = ErrorBody),
        (status = 413, description = "Body, record or batch over its limit", body = ErrorBody),
        StoreErrors,
    ))]
pub async fn produce(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ProduceRequest>,
) -> Result<Json<ProduceResponse>, ApiError> {
    check_count(req.records.len())?;
    let key = idempotency_key(&headers)?;
    let meta = state.pail.topic(&topic).await?;
    let Placement { groups, movable } = place(&meta, req.records, key.as_deref())?;
    let appends = groups.into_iter().map(|(partition, batch)| {
        let pail = state.pail.clone();
        let topic = topic.as_str();
        let opts = AppendOptions {
            idempotency_key: key.clone(),
            ..AppendOptions::default()
        };
        async move {
            let (positions, records): (Vec<usize>, Vec<Record>) = batch.into_iter().unzip();
            let result = if movable == Some(partition) {
                pail.append_unkeyed(topic, partition, records, opts).await
            } else {
                pail.append_with(topic, partition, records, opts).await
            };
            // Where the records are: the partition they landed on, which a move changed.
            let at = result.as_ref().map_or(partition, |a| a.partition);
            (at, positions, result)
        }
    });
    let outcomes: Vec<Outcome> = futures::stream::iter(appends)
        .buffer_unordered(PRODUCE_COMMITS_CONCURRENCY)
        .collect()
        .await;
    state.metrics.count_appends(&outcomes);
    let moved = outcomes
        .iter()
        .any(|(at, _, _)| movable.is_some_and(|from| from != *at));
    state.metrics.count_moves(u64::from(moved));
    Ok(Json(respond(outcomes)?))
}

/// The `Idempotency-Key` header, if any. Each partition's share of the request is appended
/// under it (the key window is per partition, so one key serves every share).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?;
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX_BYTES {
        return Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX_BYTES} bytes, not {}",
            key.len()
        )));
    }
    Ok(Some(key.to_string()))
}

fn check_count(n: usize) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::bad_request(
            "records must hold at least one record",
        ));
    }
    if n > PRODUCE_RECORDS_MAX {
        return Err(ApiError::too_large(format!(
            "{n} records in one request, over the limit of {PRODUCE_RECORDS_MAX}"
        )));
    }
    Ok(())
}

type Placed = BTreeMap<u32, Vec<(usize, Record)>>;

/// The request's records by partition, and the partition whose share may move.
struct Placement {
    groups: Placed,
    /// The partition of the unkeyed share when it may move: it holds only unkeyed records
    /// placed at random (no key, no explicit partition) and no idempotency key pins it.
    movable: Option<u32>,
}

/// Decodes every record and picks its partition, checking everything the commits would, so a
/// bad record fails the request before any partition is written. Unkeyed records go to one
/// random partition, or, with an idempotency key, to the key's, so a retry lands where the
/// first attempt did and its key window finds it.
fn place(
    meta: &TopicMeta,
    records: Vec<ProduceRecord>,
    idempotency_key: Option<&str>,
) -> Result<Placement, ApiError> {
    let n = meta.config.partitions;
    let unkeyed = match idempotency_key {
        Some(k) => partition_for_key(k.as_bytes(), n),
        None => rand::random::<u32>() % n,
    };
    let mut groups = Placed::new();
    // Partitions that keyed or explicitly placed records pin.
    let mut pinned = Vec::new();
    for (i, r) in records.into_iter().enumerate() {
        let explicit = r.partition;
        let record = decode(i, r)?;
        meta.check_record(&record)?;
        let partition = match (explicit, &record.key) {
            (Some(p), _) => {
                meta.check_partition(p)?;
                p
            }
            (None, Some(key)) => partition_for_key(key, meta.config.partitions),
            (None, None) => unkeyed,
        };
        if explicit.is_some() || record.key.is_some() {
            pinned.push(partition);
        }
        groups.entry(partition).or_default().push((i, record));
    }
    let movable =
        (idempotency_key.is_none() && groups.contains_key(&unkeyed) && !pinned.contains(&unkeyed))
            .then_some(unkeyed);
    Ok(Placement { groups, movable })
}

fn decode(i: usize, r: ProduceRecord) -> Result<Record, ApiError> {
    let field = |name: &str, text: Option<String>, enc: Option<Encoding>| {
        text.map(|t| decode_bytes(&t, enc))
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("records[{i}].{name} {e}")))
    };
    let headers = r
        .headers
        .into_iter()
        .map(|h| {
            Ok(Header {
                value: field("headers.value", h.value, h.value_encoding)?,
                key: h.key,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Record {
        key: field("key", r.key, r.key_encoding)?,
        value: field("value", r.value, r.value_encoding)?,
        headers,
        timestamp_ms: r.timestamp,
    })
}

type Outcome = (u32, Vec<usize>, pail_core::Result<Appended>);

/// Offsets back in request order; the error itself when no partition's commit succeeded.
fn respond(outcomes: Vec<Outcome>) -> Result<ProduceResponse, ApiError> {
    if outcomes.iter().all(|(_, _, r)| r.is_err()) {
        let first = outcomes.into_iter().find_map(|(_, _, r)| r.err());
        return Err(first.map_or_else(|| ApiError::bad_request("no records"), ApiError::from));
    }
    let total = outcomes.iter().map(|(_, p, _)| p.len()).sum();
    let mut slots: Vec<Option<RecordResult>> = (0..total).map(|_| None).collect();
    let mut failed = 0;
    for (partition, positions, result) in outcomes {
        for (n, i) in positions.iter().enumerate() {
            let (offset, error) = match &result {
                Ok(a) => (Some(a.base_offset + n as u64), None),
                Err(e) => (None, Some(detail(e))),
            };
            failed += usize::from(error.is_some());
            slots[*i] = Some(RecordResult {
                partition,
                offset,
                error,
            });
        }
    }
    Ok(ProduceResponse {
        offsets: slots.into_iter().flatten().collect(),
        failed_record_count: failed,
    })
}

fn detail(e: &Error) -> ErrorDetail {
    ErrorDetail {
        code: e.kind().as_str().to_string(),
        message: e.to_string(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FetchParams {
    /// Where to start: `earliest`, `latest`, or an absolute offset.
    #[param(pattern = "^(earliest|beginning|latest|end|[0-9]+)$")]
    pub offset: String,
    /// Most records to return, 1 to 10,000 (default 1,000).
    #[param(minimum = 1, maximum = 10000)]
    pub max_records: Option<u32>,
    /// Most bytes of keys, values and headers to return, 1 to 4 MiB (default 1 MiB). At least
    /// one record is returned when any is available, even a larger one.
    #[param(minimum = 1, maximum = 4194304)]
    pub max_bytes: Option<u64>,
    /// Wait up to this many ms (at most 20,000) for a record when none is available yet.
    #[param(minimum = 0, maximum = 20000)]
    pub wait_ms: Option<u64>,
}

impl FetchParams {
    fn limits(&self) -> Result<FetchLimits, ApiError> {
        fetch_limits(self.max_records, self.max_bytes)
    }

    fn wait(&self) -> Result<Duration, ApiError> {
        match self.wait_ms.unwrap_or(0) {
            ms if ms <= FETCH_WAIT_MS_MAX => Ok(Duration::from_millis(ms)),
            ms => Err(ApiError::bad_request(format!(
                "wait_ms must be 0 to {FETCH_WAIT_MS_MAX}, not {ms}"
            ))),
        }
    }
}

/// Checks a fetch's `max_records` and `max_bytes` (defaults when absent) against the limits.
pub(super) fn fetch_limits(
    max_records: Option<u32>,
    max_bytes: Option<u64>,
) -> Result<FetchLimits, ApiError> {
    let max_records = max_records.unwrap_or(FETCH_RECORDS_DEFAULT);
    let max_bytes = max_bytes.unwrap_or(FETCH_BYTES_DEFAULT);
    if !(1..=FETCH_RECORDS_MAX).contains(&max_records) {
        return Err(ApiError::bad_request(format!(
            "max_records must be 1 to {FETCH_RECORDS_MAX}, not {max_records}"
        )));
    }
    if !(1..=FETCH_BYTES_MAX).contains(&max_bytes) {
        return Err(ApiError::bad_request(format!(
            "max_bytes must be 1 to {FETCH_BYTES_MAX}, not {max_bytes}"
        )));
    }
    Ok(FetchLimits {
        max_records,
        max_bytes,
    })
}

/// Records from one partition, in offset order.
#[derive(Debug, Serialize, ToSchema)]
pub struct FetchResponse<'a> {
    pub records: Vec<JsonRecord<'a>>,
    /// The offset to fetch from next.
    pub next_offset: u64,
    /// The partition's next offset as far as this fetch knows; confirmed with the store when
    /// no records came back.
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

/// Fetch records from a partition, optionally waiting for new ones.
#[utoipa::path(get, path = "/v1/topics/{topic}/partitions/{partition}/records", tag = "records",
    params(
        ("topic" = String, Path, description = "Topic name"),
        ("partition" = u32, Path, description = "Partition number"),
        FetchParams,
    ),
    responses(
        (status = 200, description = "Records (possibly none)", body = FetchResponse<'static>),
        (status = 400, description = "Bad offset, limit or wait", body = ErrorBody),
        (status = 404, description = "No such topic or partition", body = ErrorBody),
        (status = 416, description = "Offset outside the partition's range", body = ErrorBody),
        StoreErrors,
    ))]
pub async fn fetch(
    State(state): State<AppState>,
    Path((topic, partition)): Path<(String, u32)>,
    Query(params): Query<FetchParams>,
) -> Result<Response, ApiError> {
    let from =
        parse_offset(&params.offset).map_err(|e| ApiError::bad_request(format!("offset {e}")))?;
    let limits = params.limits()?;
    let wait = params.wait()?;
    let got = fetch_waiting(&state, &topic, partition, from, limits, wait).await?;
    // Serialised here, while the records can borrow the topic name.
    json_response(&FetchResponse {
        records: got
            .records
            .iter()
            .map(|r| JsonRecord::new(&topic, partition, r))
            .collect(),
        next_offset: got.next_offset,
        high_watermark: got.high_watermark,
        log_start_offset: got.log_start_offset,
    })
}

/// Fetches, and while nothing comes back and `wait` has not passed, polls again with backoff.
async fn fetch_waiting(
    state: &AppState,
    topic: &str,
    partition: u32,
    mut from: OffsetSpec,
    limits: FetchLimits,
    wait: Duration,
) -> pail_core::Result<Fetched> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = POLL_PAUSE_MIN;
    loop {
        let got = state.pail.fetch(topic, partition, from, limits).await?;
        let now = tokio::time::Instant::now();
        if !got.records.is_empty() || now >= deadline {
            return Ok(got);
        }
        // Keep the position this poll resolved: `latest` must not move on with the log.
        from = OffsetSpec::At(got.next_offset as i64);
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(POLL_PAUSE_MAX);
    }
}

/// A partition's earliest offset (the oldest record kept) and latest (the next to be written).
#[derive(Debug, Serialize, ToSchema)]
pub struct PartitionOffsets {
    pub partition: u32,
    pub earliest: u64,
    pub latest: u64,
    /// With `?timestamp=`: the first record at or after that time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_time: Option<OffsetForTime>,
}

/// The first record whose timestamp is at or after the time asked for (Kafka's ListOffsets by
/// timestamp). Both fields are null when no record kept is that recent: a consumer starting
/// there starts at `latest`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OffsetForTime {
    pub offset: Option<u64>,
    pub timestamp: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OffsetsResponse {
    pub topic: String,
    pub partitions: Vec<PartitionOffsets>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OffsetsParams {
    /// Also find, per partition, the first offset whose record's timestamp is at or after
    /// this time (ms since the Unix epoch).
    pub timestamp: Option<i64>,
}

/// List the earliest and latest offset of every partition, and optionally the first offset
/// at or after a time.
#[utoipa::path(get, path = "/v1/topics/{topic}/offsets", tag = "records",
    params(("topic" = String, Path, description = "Topic name"), OffsetsParams),
    responses(
        (status = 200, description = "Offsets per partition", body = OffsetsResponse),
        (status = 400, description = "Invalid topic name or parameter", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        StoreErrors,
    ))]
pub async fn offsets(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    Query(params): Query<OffsetsParams>,
) -> Result<Json<OffsetsResponse>, ApiError> {
    let d = state.pail.describe_topic(&topic).await?;
    let mut partitions = Vec::with_capacity(d.partitions.len());
    for p in &d.partitions {
        let for_time = match params.timestamp {
            Some(ts) => {
                let found = state.pail.offset_for_time(&topic, p.partition, ts).await?;
                Some(OffsetForTime {
                    offset: found.map(|f| f.offset),
                    timestamp: found.map(|f| f.timestamp_ms),
                })
            }
            None => None,
        };
        partitions.push(PartitionOffsets {
            partition: p.partition,
            earliest: p.log_start_offset,
            latest: p.next_offset,
            for_time,
        });
    }
    Ok(Json(OffsetsResponse {
        topic: d.topic.to_string(),
        partitions,
    }))
}
