//! Topic names, settings and the immutable topic descriptor stored at
//! `topics/{name}/_topic.json`.
//!
//! This module validates names and settings, encodes the descriptor, and defines the topic's
//! chain of descriptor versions ([`chain`]: create, alter, delete, create again) with its pure
//! transition function. Reading and committing them is `crate::client`'s job.

pub mod chain;
mod ops;

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::{Error, Result};

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_MAX_CHARS: usize = 249;
/// Most partitions one topic may have; each one is an independent chain of objects.
pub const PARTITIONS_MAX: u32 = 10_000;
/// Default limit on one record (key + value + headers), as Kafka's `message.max.bytes`.
pub const RECORD_BYTES_MAX_DEFAULT: u64 = 1024 * 1024;
/// Hard ceiling on the per-topic record limit: a record must fit in one segment object.
pub const RECORD_BYTES_MAX_CEILING: u64 = 64 * 1024 * 1024;
/// The descriptor format this build writes and the only one it reads.
pub const TOPIC_FORMAT: u32 = 1;

/// A validated topic name: 1 to 249 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
///
/// The same rules as Kafka, which also makes every name safe as an object-key segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicName(String);

impl TopicName {
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("must not be empty")
        } else if name.chars().count() > TOPIC_NAME_MAX_CHARS {
            Some("must be at most 249 characters")
        } else if name == "." || name == ".." {
            Some("must not be '.' or '..'")
        } else if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            Some("may only contain ASCII letters, digits, '.', '_' and '-'")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidTopicName { name, reason }),
            None => Ok(TopicName(name)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TopicName {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        TopicName::new(value)
    }
}

impl From<TopicName> for String {
    fn from(value: TopicName) -> String {
        value.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which clock stamps a record, as Kafka's `message.timestamp.type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampType {
    /// The producer's timestamp (or the producer's clock when it gives none).
    #[default]
    CreateTime,
    /// The committing writer's clock, the same for every record of a batch.
    LogAppendTime,
}

/// The Parquet codec of a topic's segments, as Kafka's `compression.type`: a trade of file size
/// for produce CPU (Parquet with ZSTD(1) encodes about 270 MB/s per core, LZ4_RAW about 675).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// ZSTD level 1: the smallest files.
    #[default]
    Zstd,
    /// LZ4_RAW: the fastest to write and read.
    Lz4,
    Snappy,
    Gzip,
    /// Uncompressed pages.
    None,
}

impl Compression {
    pub const ALL: [Compression; 5] = [
        Compression::Zstd,
        Compression::Lz4,
        Compression::Snappy,
        Compression::Gzip,
        Compression::None,
    ];

    /// The setting's name, as written in descriptors and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::Snappy => "snappy",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = Error;

    /// Accepts every name in [`Compression::ALL`] and Kafka's `uncompressed` for `none`.
    fn from_str(s: &str) -> Result<Self> {
        if s == "uncompressed" {
            return Ok(Compression::None);
        }
        Compression::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "compression type {s:?} is not one of zstd, lz4, snappy, gzip, none"
                ))
            })
    }
}

/// Default target size of a merged segment (compaction).
pub const COMPACT_TARGET_BYTES_DEFAULT: u64 = 128 * 1024 * 1024;
/// Default most records in a merged segment.
pub const COMPACT_TARGET_RECORDS_DEFAULT: u64 = 1_000_000;
/// Default fewest segments worth merging when they do not fill a target.
pub const COMPACT_MIN_SEGMENTS_DEFAULT: u64 = 16;

/// A topic's settings. Partitions and the maintenance settings can change
/// (`Pail::alter_topic`); the rest is fixed at creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub partitions: u32,
    #[serde(default)]
    pub timestamp_type: TimestampType,
    #[serde(default = "default_record_bytes_max")]
    pub record_bytes_max: u64,
    /// `compression.type`: the Parquet codec of new segments. Descriptors written before this
    /// setting existed read as the default, ZSTD.
    #[serde(default)]
    pub compression: Compression,
    /// `retention.ms`: maintenance drops whole segments whose newest record is older than
    /// this; `None` keeps records forever (Kafka's -1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<u64>,
    /// `retention.bytes`: maintenance drops a partition's oldest segments while the rest still
    /// holds more than this; `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<u64>,
    /// `compact.target.bytes` and `compact.target.records`: compaction merges adjacent
    /// segments into segments of about this size.
    #[serde(default = "default_compact_target_bytes")]
    pub compact_target_bytes: u64,
    #[serde(default = "default_compact_target_records")]
    pub compact_target_records: u64,
    /// `compact.min.segments`: a run of segments that does not fill a target is merged once it
    /// has at least this many.
    #[serde(default = "default_compact_min_segments")]
    pub compact_min_segments: u64,
}

fn default_record_bytes_max() -> u64 {
    RECORD_BYTES_MAX_DEFAULT
}

fn default_compact_target_bytes() -> u64 {
    COMPACT_TARGET_BYTES_DEFAULT
}

fn default_compact_target_records() -> u64 {
    COMPACT_TARGET_RECORDS_DEFAULT
}

fn default_compact_min_segments() -> u64 {
    COMPACT_MIN_SEGMENTS_DEFAULT
}

impl TopicConfig {
    pub fn new(partitions: u32) -> Self {
        TopicConfig {
            partitions,
            timestamp_type: TimestampType::default(),
            record_bytes_max: RECORD_BYTES_MAX_DEFAULT,
            compression: Compression::default(),
            retention_ms: None,
            retention_bytes: None,
            compact_target_bytes: COMPACT_TARGET_BYTES_DEFAULT,
            compact_target_records: COMPACT_TARGET_RECORDS_DEFAULT,
            compact_min_segments: COMPACT_MIN_SEGMENTS_DEFAULT,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.partitions == 0 || self.partitions > PARTITIONS_MAX {
            return Err(Error::InvalidArgument(format!(
                "a topic has 1 to {PARTITIONS_MAX} partitions, not {}",
                self.partitions
            )));
        }
        if self.record_bytes_max == 0 || self.record_bytes_max > RECORD_BYTES_MAX_CEILING {
            return Err(Error::InvalidArgument(format!(
                "record_bytes_max must be 1 to {RECORD_BYTES_MAX_CEILING}, not {}",
                self.record_bytes_max
            )));
        }
        if self.retention_ms == Some(0) || self.retention_bytes == Some(0) {
            return Err(Error::InvalidArgument(
                "retention.ms and retention.bytes are at least 1 (leave them unset to keep everything)"
                    .into(),
            ));
        }
        if self.compact_target_bytes < 1024 * 1024 || self.compact_target_bytes > 1 << 34 {
            return Err(Error::InvalidArgument(format!(
                "compact.target.bytes must be 1 MiB to 16 GiB, not {}",
                self.compact_target_bytes
            )));
        }
        if self.compact_target_records == 0
            || self.compact_target_records > crate::client::COMPACT_RECORDS_MAX
        {
            return Err(Error::InvalidArgument(format!(
                "compact.target.records must be 1 to {}, not {}",
                crate::client::COMPACT_RECORDS_MAX,
                self.compact_target_records
            )));
        }
        if self.compact_min_segments < 2 {
            return Err(Error::InvalidArgument(
                "compact.min.segments must be at least 2".into(),
            ));
        }
        Ok(())
    }

    /// Applies `key=value` settings (Kafka's names) to a copy of this config.
    pub fn with_settings(&self, settings: &[(String, String)]) -> Result<TopicConfig> {
        let mut c = self.clone();
        for (key, value) in settings {
            let number = || {
                value.parse::<i64>().map_err(|_| {
                    Error::InvalidArgument(format!("{key}={value:?}: not a whole number"))
                })
            };
            // Kafka writes -1 for "no limit".
            let limit = || -> Result<Option<u64>> {
                match number()? {
                    -1 => Ok(None),
                    n if n > 0 => Ok(Some(n as u64)),
                    _ => Err(Error::InvalidArgument(format!(
                        "{key}={value}: a limit is at least 1, or -1 for none"
                    ))),
                }
            };
            match key.as_str() {
                "retention.ms" => c.retention_ms = limit()?,
                "retention.bytes" => c.retention_bytes = limit()?,
                "compact.target.bytes" => c.compact_target_bytes = positive(key, number()?)?,
                "compact.target.records" => c.compact_target_records = positive(key, number()?)?,
                "compact.min.segments" => c.compact_min_segments = positive(key, number()?)?,
                "compression.type" => c.compression = value.parse()?,
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "unknown or fixed setting {other:?}; these can change: {}",
                        ALTERABLE_SETTINGS.join(", ")
                    )));
                }
            }
        }
        c.validate()?;
        Ok(c)
    }
}

/// The settings `with_settings` (and `pail topic alter --config`) accept.
pub const ALTERABLE_SETTINGS: &[&str] = &[
    "compression.type",
    "retention.ms",
    "retention.bytes",
    "compact.target.bytes",
    "compact.target.records",
    "compact.min.segments",
];

fn positive(key: &str, n: i64) -> Result<u64> {
    u64::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::InvalidArgument(format!("{key} must be at least 1, not {n}")))
}

/// A topic's descriptor as of one version of the topic's chain: version 1 is created with
/// the topic (`_topic.json`); later versions alter its settings, delete it, or create it
/// again (`_config/{version}.json`). See [`chain`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub format: u32,
    pub name: TopicName,
    /// Position in the topic's chain (descriptors written before the chain existed are 1).
    #[serde(default = "one")]
    pub version: u64,
    #[serde(default)]
    pub commit_id: String,
    #[serde(default)]
    pub digest: String,
    /// The topic was deleted by this version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Random and unique to this incarnation of the topic (Kafka's topic id, KIP-516): a topic
    /// deleted and created again under the same name gets a new one. The creator also uses it
    /// to recognise its own descriptor when the create's answer was lost.
    #[serde(default)]
    pub id: String,
    #[serde(flatten)]
    pub config: TopicConfig,
    pub created_at_ms: i64,
}

fn one() -> u64 {
    1
}

impl crate::chain::Versioned for TopicMeta {
    fn version(&self) -> u64 {
        self.version
    }
    fn commit_id(&self) -> &str {
        &self.commit_id
    }
    fn digest(&self) -> &str {
        &self.digest
    }
}

impl TopicMeta {
    /// Decodes and checks a descriptor read from `key`; a wrong format or name is corruption.
    pub fn decode(bytes: &[u8], key: &str, expected: &TopicName) -> Result<Self> {
        let meta: TopicMeta = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(key, format!("topic descriptor does not decode: {e}")))?;
        if meta.format != TOPIC_FORMAT {
            return Err(Error::corrupt(
                key,
                format!(
                    "unknown topic format {} (this build reads {TOPIC_FORMAT})",
                    meta.format
                ),
            ));
        }
        if &meta.name != expected {
            return Err(Error::corrupt(
                key,
                format!("descriptor names topic {:?}", meta.name.as_str()),
            ));
        }
        meta.config
            .validate()
            .map_err(|e| Error::corrupt(key, format!("descriptor has bad settings: {e}")))?;
        Ok(meta)
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Encode(format!("topic descriptor does not encode: {e}")))
    }

    /// The record's size if it is within the topic's record limit, else `TooLarge`.
    pub fn check_record(&self, record: &crate::record::Record) -> Result<u64> {
        let size = record.size_bytes();
        if size > self.config.record_bytes_max {
            return Err(Error::TooLarge {
                what: "record",
                actual: size,
                limit: self.config.record_bytes_max,
            });
        }
        Ok(size)
    }

    pub fn check_partition(&self, partition: u32) -> Result<()> {
        if partition < self.config.partitions {
            Ok(())
        } else {
            Err(Error::UnknownPartition {
                topic: self.name.to_string(),
                partition,
                count: self.config.partitions,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_rules() {
        for ok in ["a", "orders", "Orders.v2_x-1", "..a", &"x".repeat(249)] {
            assert!(TopicName::new(ok).is_ok(), "{ok} should be valid");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a b",
            "é",
            &"x".repeat(250),
            "a=b",
        ] {
            let err = TopicName::new(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidTopicName { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn partition_counts_are_bounded() {
        assert!(TopicConfig::new(0).validate().is_err());
        assert!(TopicConfig::new(1).validate().is_ok());
        assert!(TopicConfig::new(10_000).validate().is_ok());
        assert!(TopicConfig::new(10_001).validate().is_err());
    }

    #[test]
    fn descriptor_round_trips_and_rejects_unknown_format() {
        let name = TopicName::new("t").unwrap();
        let meta = TopicMeta {
            format: TOPIC_FORMAT,
            name: name.clone(),
            version: 1,
            commit_id: String::new(),
            digest: String::new(),
            deleted: false,
            id: "id".into(),
            config: TopicConfig::new(3),
            created_at_ms: 5,
        };
        let bytes = meta.encode().unwrap();
        assert_eq!(TopicMeta::decode(&bytes, "k", &name).unwrap(), meta);
        let future = String::from_utf8(bytes)
            .unwrap()
            .replace("\"format\": 1", "\"format\": 9");
        let err = TopicMeta::decode(future.as_bytes(), "k", &name).unwrap_err();
        assert!(err.to_string().contains("unknown topic format 9"), "{err}");
        assert!(TopicMeta::decode(b"{", "k", &name).is_err());
    }

    #[test]
    fn compression_names_round_trip_and_old_descriptors_default_to_zstd() {
        for c in Compression::ALL {
            assert_eq!(c.as_str().parse::<Compression>().unwrap(), c);
        }
        assert_eq!(
            "uncompressed".parse::<Compression>().unwrap(),
            Compression::None
        );
        let err = "brotli".parse::<Compression>().unwrap_err();
        assert!(err.to_string().contains("not one of zstd"), "{err}");
        let name = TopicName::new("t").unwrap();
        let old = br#"{"format":1,"name":"t","partitions":2,"created_at_ms":5}"#;
        let meta = TopicMeta::decode(old, "k", &name).unwrap();
        assert_eq!(meta.config.compression, Compression::Zstd);
        let mut lz4 = meta.clone();
        lz4.config.compression = Compression::Lz4;
        let text = String::from_utf8(lz4.encode().unwrap()).unwrap();
        assert!(text.contains(r#""compression": "lz4""#), "{text}");
        assert_eq!(TopicMeta::decode(text.as_bytes(), "k", &name).unwrap(), lz4);
    }
}
