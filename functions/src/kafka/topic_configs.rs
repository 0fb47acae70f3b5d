//! The Kafka names of pail's topic settings, for CreateTopics and DescribeConfigs.
//!
//! | Kafka config | pail setting | values |
//! |---|---|---|
//! | `compression.type` | `compression` (the segments' Parquet codec) | zstd, lz4, snappy, gzip, uncompressed (or none) |
//! | `message.timestamp.type` | `timestamp_type` | CreateTime, LogAppendTime |
//! | `max.message.bytes` | `record_bytes_max` (per record, where Kafka's is per batch) | 1 to 64 MiB |
//!
//! Topic settings are fixed when a topic is created, so DescribeConfigs reports them read-only.

use pail_core::{Compression, TimestampType, TopicConfig};

pub const COMPRESSION_TYPE: &str = "compression.type";
pub const TIMESTAMP_TYPE: &str = "message.timestamp.type";
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";

/// Kafka's config types (DescribeConfigs v3+).
pub const TYPE_STRING: i8 = 2;
pub const TYPE_INT: i8 = 3;

/// Sets the setting Kafka calls `name` to `value`; an error names what is wrong.
pub fn set(config: &mut TopicConfig, name: &str, value: Option<&str>) -> Result<(), String> {
    let value = value.ok_or_else(|| format!("{name} needs a value"))?;
    match name {
        COMPRESSION_TYPE => {
            config.compression = value.parse::<Compression>().map_err(|e| e.to_string())?;
        }
        TIMESTAMP_TYPE => {
            config.timestamp_type = match value {
                "CreateTime" => TimestampType::CreateTime,
                "LogAppendTime" => TimestampType::LogAppendTime,
                other => {
                    return Err(format!(
                        "{TIMESTAMP_TYPE} {other:?} is not CreateTime or LogAppendTime"
                    ));
                }
            }
        }
        MAX_MESSAGE_BYTES => {
            config.record_bytes_max = value
                .parse()
                .map_err(|_| format!("{MAX_MESSAGE_BYTES} {value:?} is not a number"))?;
        }
        other => {
            return Err(format!(
                "pail topics have no setting {other:?} (only {COMPRESSION_TYPE}, \
                 {TIMESTAMP_TYPE} and {MAX_MESSAGE_BYTES})"
            ));
        }
    }
    Ok(())
}

/// Every setting of a topic as (Kafka name, value, Kafka config type).
pub fn describe(config: &TopicConfig) -> Vec<(&'static str, String, i8)> {
    let compression = match config.compression {
        Compression::None => "uncompressed",
        other => other.as_str(),
    };
    let timestamps = match config.timestamp_type {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    };
    vec![
        (COMPRESSION_TYPE, compression.to_string(), TYPE_STRING),
        (TIMESTAMP_TYPE, timestamps.to_string(), TYPE_STRING),
        (
            MAX_MESSAGE_BYTES,
            config.record_bytes_max.to_string(),
            TYPE_INT,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_settings_set_the_same_config() {
        let mut config = TopicConfig::new(3);
        set(&mut config, COMPRESSION_TYPE, Some("lz4")).unwrap();
        set(&mut config, TIMESTAMP_TYPE, Some("LogAppendTime")).unwrap();
        set(&mut config, MAX_MESSAGE_BYTES, Some("2048")).unwrap();
        let mut again = TopicConfig::new(3);
        for (name, value, _) in describe(&config) {
            set(&mut again, name, Some(&value)).unwrap();
        }
        assert_eq!(again, config);
        set(&mut again, COMPRESSION_TYPE, Some("uncompressed")).unwrap();
        assert_eq!(again.compression, Compression::None);
        for (name, value) in [
            ("retention.ms", "1"),
            (COMPRESSION_TYPE, "producer"),
            (TIMESTAMP_TYPE, "Now"),
            (MAX_MESSAGE_BYTES, "big"),
        ] {
            assert!(
                set(&mut again, name, Some(value)).is_err(),
                "{name}={value}"
            );
        }
    }
}
