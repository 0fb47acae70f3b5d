//! `/v1/topics`: create, list and describe topics. The shapes are those of
//! `pail topic describe --format json`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pail_core::topic::Compression;
use pail_core::{PartitionDescription, TimestampType, TopicConfig, TopicDescription};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody, StoreErrors};
use super::extract::{JsonBody, Path};

/// Which clock stamps a record: the producer's (`create_time`) or the commit's.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimestampKind {
    #[default]
    CreateTime,
    LogAppendTime,
}

impl From<TimestampKind> for TimestampType {
    fn from(t: TimestampKind) -> Self {
        match t {
            TimestampKind::CreateTime => TimestampType::CreateTime,
            TimestampKind::LogAppendTime => TimestampType::LogAppendTime,
        }
    }
}

impl From<TimestampType> for TimestampKind {
    fn from(t: TimestampType) -> Self {
        match t {
            TimestampType::CreateTime => TimestampKind::CreateTime,
            TimestampType::LogAppendTime => TimestampKind::LogAppendTime,
        }
    }
}

/// A topic to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// 1 to 249 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,249}$", min_length = 1, max_length = 249)]
    pub name: String,
    /// 1 to 10,000.
    #[schema(minimum = 1, maximum = 10000)]
    pub partitions: u32,
    #[serde(default)]
    pub timestamp_type: TimestampKind,
    /// Largest record (key + value + headers) in bytes; default 1 MiB, at most 64 MiB.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 67108864)]
    pub record_bytes_max: Option<u64>,
    /// The Parquet codec of the topic's segments (Kafka's `compression.type`).
    #[serde(default)]
    pub compression: CompressionKind,
}

/// A topic's `compression.type`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompressionKind {
    #[default]
    Zstd,
    Lz4,
    Snappy,
    Gzip,
    None,
}

impl From<CompressionKind> for Compression {
    fn from(c: CompressionKind) -> Self {
        match c {
            CompressionKind::Zstd => Compression::Zstd,
            CompressionKind::Lz4 => Compression::Lz4,
            CompressionKind::Snappy => Compression::Snappy,
            CompressionKind::Gzip => Compression::Gzip,
            CompressionKind::None => Compression::None,
        }
    }
}

impl From<Compression> for CompressionKind {
    fn from(c: Compression) -> Self {
        match c {
            Compression::Zstd => CompressionKind::Zstd,
            Compression::Lz4 => CompressionKind::Lz4,
            Compression::Snappy => CompressionKind::Snappy,
            Compression::Gzip => CompressionKind::Gzip,
            Compression::None => CompressionKind::None,
        }
    }
}

/// A topic's settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicSettings {
    pub partitions: u32,
    pub timestamp_type: TimestampKind,
    pub record_bytes_max: u64,
    pub compression: CompressionKind,
    /// `retention.ms`; absent: records are kept forever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<u64>,
    /// `retention.bytes` per partition; absent: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<u64>,
    /// Compaction's target segment size and record count, and the fewest segments it merges.
    pub compact_target_bytes: u64,
    pub compact_target_records: u64,
    pub compact_min_segments: u64,
}

impl From<&TopicConfig> for TopicSettings {
    fn from(c: &TopicConfig) -> Self {
        TopicSettings {
            partitions: c.partitions,
            timestamp_type: c.timestamp_type.into(),
            record_bytes_max: c.record_bytes_max,
            compression: c.compression.into(),
            retention_ms: c.retention_ms,
            retention_bytes: c.retention_bytes,
            compact_target_bytes: c.compact_target_bytes,
            compact_target_records: c.compact_target_records,
            compact_min_segments: c.compact_min_segments,
        }
    }
}

/// A topic just created.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicCreated {
    pub topic: String,
    pub config: TopicSettings,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopicList {
    /// Every topic, sorted by name.
    pub topics: Vec<String>,
}

/// One partition: its offsets, segment objects and bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartitionInfo {
    pub partition: u32,
    pub log_start_offset: u64,
    /// The offset the next record will get (the high watermark).
    pub next_offset: u64,
    pub segments: u64,
    pub bytes: u64,
    pub version: u64,
    pub leader_epoch: u64,
    /// Why the partition cannot be written (damage where it would continue); absent when
    /// healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
}

impl From<PartitionDescription> for PartitionInfo {
    fn from(p: PartitionDescription) -> Self {
        PartitionInfo {
            partition: p.partition,
            log_start_offset: p.log_start_offset,
            next_offset: p.next_offset,
            segments: p.segments,
            bytes: p.bytes,
            version: p.version,
            leader_epoch: p.leader_epoch,
            blocked: p.blocked,
        }
    }
}

/// A topic's settings and partitions, as `pail topic describe --format json` prints it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicInfo {
    pub topic: String,
    /// The topic's id; a topic deleted and created again under its name gets a new one.
    pub id: String,
    pub config: TopicSettings,
    pub partitions: Vec<PartitionInfo>,
}

impl From<TopicDescription> for TopicInfo {
    fn from(d: TopicDescription) -> Self {
        TopicInfo {
            topic: d.topic.to_string(),
            id: d.id,
            config: TopicSettings::from(&d.config),
            partitions: d.partitions.into_iter().map(PartitionInfo::from).collect(),
        }
    }
}

/// Create a topic.
#[utoipa::path(post, path = "/v1/topics", tag = "topics",
    request_body = CreateTopic,
    responses(
        (status = 201, description = "Created", body = TopicCreated),
        (status = 400, description = "Invalid name or settings, or a malformed body", body = ErrorBody),
        (status = 409, description = "A topic of that name exists", body = ErrorBody),
        (status = 413, description = "Body over the request limit", body = ErrorBody),
        StoreErrors,
    ))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CreateTopic>,
) -> Result<(StatusCode, Json<TopicCreated>), ApiError> {
    let config = TopicConfig {
        partitions: req.partitions,
        timestamp_type: req.timestamp_type.into(),
        record_bytes_max: req
            .record_bytes_max
            .unwrap_or(pail_core::topic::RECORD_BYTES_MAX_DEFAULT),
        compression: req.compression.into(),
        ..TopicConfig::new(req.partitions)
    };
    let meta = state.pail.create_topic(&req.name, config).await?;
    let created = TopicCreated {
        topic: meta.name.to_string(),
        config: TopicSettings::from(&meta.config),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// List topics.
#[utoipa::path(get, path = "/v1/topics", tag = "topics",
    responses(
        (status = 200, description = "Every topic, sorted by name", body = TopicList),
        StoreErrors,
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<TopicList>, ApiError> {
    let topics = state.pail.list_topics().await?;
    Ok(Json(TopicList {
        topics: topics.into_iter().map(String::from).collect(),
    }))
}

/// Describe a topic: settings, and per partition offsets, segments and bytes.
#[utoipa::path(get, path = "/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "Topic name")),
    responses(
        (status = 200, description = "The topic", body = TopicInfo),
        (status = 400, description = "Invalid topic name", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        StoreErrors,
    ))]
pub async fn describe(
    State(state): State<AppState>,
    Path(topic): Path<String>,
) -> Result<Json<TopicInfo>, ApiError> {
    let description = state.pail.describe_topic(&topic).await?;
    Ok(Json(description.into()))
}

/// Settings to change: only those present change. Limits take -1 for "none", as in Kafka.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlterTopic {
    /// A new partition count: only an increase (keyed records then go to Kafka's partition
    /// for the new count).
    #[schema(minimum = 1, maximum = 10000)]
    pub partitions: Option<u32>,
    /// `retention.ms`: drop segments whose newest record is older; -1: keep forever.
    #[schema(minimum = -1)]
    pub retention_ms: Option<i64>,
    /// `retention.bytes` per partition: drop the oldest segments while the rest is larger;
    /// -1: no limit.
    #[schema(minimum = -1)]
    pub retention_bytes: Option<i64>,
    /// Size of a merged segment, 1 MiB to 16 GiB.
    #[schema(minimum = 1048576, maximum = 17179869184_u64)]
    pub compact_target_bytes: Option<u64>,
    /// Records in a merged segment.
    #[schema(minimum = 1)]
    pub compact_target_records: Option<u64>,
    /// Fewest small segments worth merging.
    #[schema(minimum = 2)]
    pub compact_min_segments: Option<u64>,
    /// The codec of segments written from now on.
    pub compression: Option<CompressionKind>,
}

impl AlterTopic {
    /// The settings in Kafka's names, as `Pail::alter_topic` takes them.
    fn settings(&self) -> Vec<(String, String)> {
        let numbers = [
            ("retention.ms", self.retention_ms),
            ("retention.bytes", self.retention_bytes),
            (
                "compact.target.bytes",
                self.compact_target_bytes.map(as_i64),
            ),
            (
                "compact.target.records",
                self.compact_target_records.map(as_i64),
            ),
            (
                "compact.min.segments",
                self.compact_min_segments.map(as_i64),
            ),
        ];
        let mut out: Vec<(String, String)> = numbers
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?.to_string())))
            .collect();
        if let Some(c) = self.compression {
            let codec = Compression::from(c).as_str().to_string();
            out.push(("compression.type".into(), codec));
        }
        out
    }
}

/// Values past i64 are refused by the core's range checks all the same.
fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A topic's settings after a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicAltered {
    pub topic: String,
    pub config: TopicSettings,
}

/// Change a topic's settings or grow its partitions (`pail topic alter`).
#[utoipa::path(patch, path = "/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "Topic name")),
    request_body = AlterTopic,
    responses(
        (status = 200, description = "The settings now", body = TopicAltered),
        (status = 400, description = "Nothing to change, a setting out of range, fewer partitions, or a malformed body", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 409, description = "Another change won a race; read and try again", body = ErrorBody),
        (status = 413, description = "Body over the request limit", body = ErrorBody),
        StoreErrors,
    ))]
pub async fn alter(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    JsonBody(req): JsonBody<AlterTopic>,
) -> Result<Json<TopicAltered>, ApiError> {
    let settings = req.settings();
    if settings.is_empty() && req.partitions.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give partitions or at least one setting",
        ));
    }
    let meta = state
        .pail
        .alter_topic(&topic, &settings, req.partitions)
        .await?;
    Ok(Json(TopicAltered {
        topic: meta.name.to_string(),
        config: TopicSettings::from(&meta.config),
    }))
}

/// Delete a topic and its records (`pail topic delete`). A topic created again under the name
/// continues the old offsets under a new id; writers and readers of the old one are refused.
#[utoipa::path(delete, path = "/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "Topic name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid topic name", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 409, description = "Another change won a race; read and try again", body = ErrorBody),
        StoreErrors,
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(topic): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.pail.delete_topic(&topic).await?;
    Ok(StatusCode::NO_CONTENT)
}
