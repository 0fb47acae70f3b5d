//! `pail topic alter` and `pail topic delete`, and the settings line `topic describe` prints.
//!
//! The rules are pail-core's (`Pail::alter_topic`, `TopicConfig::with_settings`): Kafka's
//! setting names, -1 for "no limit", partitions that only grow. This module only parses the
//! command line and says what changed, so the CLI and the HTTP API refuse the same things with
//! the same words.

use clap::Args;
use pail_core::topic::ALTERABLE_SETTINGS;
use pail_core::{Pail, TopicConfig};

use super::{UsageError, plural, values};

pub const ALTER_EXAMPLES: &str = "\
Settings (Kafka's names; -1 means no limit):
  retention.ms             drop segments whose newest record is older than this
  retention.bytes          per partition: drop the oldest segments while the rest is larger
  compact.target.bytes     size of a merged segment (default 128 MiB)
  compact.target.records   records in a merged segment (default 1,000,000)
  compact.min.segments     fewest small segments worth merging (default 16)
  compression.type         codec of new segments: zstd, lz4, snappy, gzip, none

Examples:
  pail topic alter orders --config retention.ms=604800000
  pail topic alter orders --config retention.bytes=1073741824 --config retention.ms=-1
  pail topic alter orders --partitions 12";

#[derive(Debug, Args)]
pub struct AlterArgs {
    /// Topic name.
    pub name: String,
    /// A setting to change, KEY=VALUE (repeatable); see the list below.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = setting)]
    pub settings: Vec<(String, String)>,
    /// New partition count: only an increase (keyed records then go to Kafka's partition for
    /// the new count, as in Kafka).
    #[arg(long, value_parser = values::partitions)]
    pub partitions: Option<u32>,
}

/// `KEY=VALUE` with a key pail can change; the value is checked by pail-core.
fn setting(s: &str) -> Result<(String, String), String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!("must be KEY=VALUE, not {s:?}"));
    };
    if !ALTERABLE_SETTINGS.contains(&key) {
        return Err(format!(
            "unknown or fixed setting {key:?}; these can change: {}",
            ALTERABLE_SETTINGS.join(", ")
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

pub async fn alter(pail: &Pail, args: AlterArgs) -> anyhow::Result<()> {
    if args.settings.is_empty() && args.partitions.is_none() {
        return Err(UsageError(
            "nothing to change: give --config KEY=VALUE or --partitions N".into(),
        )
        .into());
    }
    let before = pail.topic_latest(&args.name).await?;
    let after = pail
        .alter_topic(&args.name, &args.settings, args.partitions)
        .await?;
    let mut changes = Vec::new();
    if after.config.partitions != before.config.partitions {
        changes.push(format!(
            "partitions {} -> {}",
            before.config.partitions, after.config.partitions
        ));
    }
    for (key, _) in &args.settings {
        changes.push(format!("{key}={}", setting_value(&after.config, key)));
    }
    eprintln!("altered topic {}: {}", after.name, changes.join(", "));
    Ok(())
}

pub async fn delete(pail: &Pail, name: &str) -> anyhow::Result<()> {
    let meta = pail.topic_latest(name).await?;
    pail.delete_topic(name).await?;
    eprintln!(
        "deleted topic {} ({})",
        meta.name,
        plural(u64::from(meta.config.partitions), "partition")
    );
    Ok(())
}

/// A setting's value as Kafka shows it (-1 for no limit).
fn setting_value(c: &TopicConfig, key: &str) -> String {
    let limit = |v: Option<u64>| v.map_or("-1".to_string(), |n| n.to_string());
    match key {
        "retention.ms" => limit(c.retention_ms),
        "retention.bytes" => limit(c.retention_bytes),
        "compact.target.bytes" => c.compact_target_bytes.to_string(),
        "compact.target.records" => c.compact_target_records.to_string(),
        "compact.min.segments" => c.compact_min_segments.to_string(),
        "compression.type" => c.compression.as_str().to_string(),
        _ => String::new(),
    }
}

/// The maintenance settings, one line, for `topic describe`.
pub fn retention_line(c: &TopicConfig) -> String {
    [
        "retention.ms",
        "retention.bytes",
        "compact.target.bytes",
        "compact.target.records",
        "compact.min.segments",
    ]
    .iter()
    .map(|k| format!("{k} {}", setting_value(c, k)))
    .collect::<Vec<_>>()
    .join("  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_unknown_keys_are_named() {
        assert_eq!(
            setting("retention.ms=5"),
            Ok(("retention.ms".into(), "5".into()))
        );
        assert!(setting("retention.ms").unwrap_err().contains("KEY=VALUE"));
        let e = setting("cleanup.policy=compact").unwrap_err();
        assert!(
            e.contains("\"cleanup.policy\"") && e.contains("retention.bytes"),
            "{e}"
        );
    }

    #[test]
    fn describe_shows_unlimited_retention_as_kafka_does() {
        let line = retention_line(&TopicConfig::new(1));
        assert!(
            line.starts_with("retention.ms -1  retention.bytes -1  "),
            "{line}"
        );
    }
}
