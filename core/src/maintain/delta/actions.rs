//! The Delta Lake log's actions as serde types (one JSON object per line of a commit file),
//! the table schema in Delta's JSON form, and the per-file statistics.
//!
//! Only the fields pail writes or needs are typed; any other field or action in a line is
//! ignored on reading (the log is pail's, but a reader may append nothing it needs to know).

use arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use crate::segment;

/// The partition column: it is not stored in the files (Delta takes it from `partitionValues`,
/// and the segment folders are Hive-style `partition=N` anyway).
pub const PARTITION_COLUMN: &str = "partition";

/// One line of a commit file: exactly one of the fields is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_info: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<MetaData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn: Option<Txn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add: Option<Add>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove: Option<Remove>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Protocol {
    pub min_reader_version: i32,
    pub min_writer_version: i32,
}

/// Reader 1 and writer 2: no column mapping, deletion vectors or other table features, so
/// every Delta reader can read the table.
pub fn protocol() -> Protocol {
    Protocol {
        min_reader_version: 1,
        min_writer_version: 2,
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Format {
    pub provider: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaData {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub format: Format,
    pub schema_string: String,
    pub partition_columns: Vec<String>,
    #[serde(default)]
    pub configuration: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<i64>,
}

/// The table's metadata: the segment schema plus the partition column.
pub fn meta_data(id: &str, topic: &str, created_ms: i64) -> MetaData {
    MetaData {
        id: id.to_string(),
        name: Some(topic.to_string()),
        format: Format {
            provider: "parquet".into(),
            options: BTreeMap::new(),
        },
        schema_string: schema_string(),
        partition_columns: vec![PARTITION_COLUMN.to_string()],
        // Informational: pail writes the checkpoints itself, every this many versions.
        configuration: BTreeMap::from([(
            "delta.checkpointInterval".to_string(),
            super::CHECKPOINT_INTERVAL.to_string(),
        )]),
        created_time: Some(created_ms),
    }
}

/// A transaction marker: the chain version of one partition the table was brought up to
/// (`appId` = [`partition_app_id`]). A sync never applies a view older than this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Txn {
    pub app_id: String,
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<i64>,
}

pub fn partition_app_id(partition: u32) -> String {
    format!("pail-partition-{partition}")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Add {
    pub path: String,
    pub partition_values: BTreeMap<String, Option<String>>,
    pub size: i64,
    pub modification_time: i64,
    pub data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remove {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<i64>,
    pub data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_file_metadata: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_values: Option<BTreeMap<String, Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

impl Remove {
    /// The remove of a file the table holds (with the file's metadata, so readers that keep
    /// tombstones need not look the add up).
    pub fn of(add: &Add, now_ms: i64) -> Remove {
        Remove {
            path: add.path.clone(),
            deletion_timestamp: Some(now_ms),
            data_change: true,
            extended_file_metadata: Some(true),
            partition_values: Some(add.partition_values.clone()),
            size: Some(add.size),
        }
    }
}

/// The partition values of a file of partition `p`.
pub fn partition_values(p: u32) -> BTreeMap<String, Option<String>> {
    BTreeMap::from([(PARTITION_COLUMN.to_string(), Some(p.to_string()))])
}

/// What a file holds, for data skipping: offsets `first..=last`, and the timestamp range when
/// it is known and representable.
pub struct FileStats {
    pub first_offset: u64,
    pub last_offset: u64,
    pub timestamps_ms: Option<(i64, i64)>,
}

impl FileStats {
    /// Delta's `stats` JSON: record count, min and max of `offset` and `timestamp` (as
    /// millisecond RFC 3339, exact for millisecond data), and their null counts (none).
    pub fn json(&self) -> String {
        let records = self.last_offset - self.first_offset + 1;
        let mut min = json!({"offset": self.first_offset});
        let mut max = json!({"offset": self.last_offset});
        let mut nulls = json!({"offset": 0});
        if let Some((lo, hi)) = self
            .timestamps_ms
            .and_then(|(lo, hi)| Some((rfc3339(lo)?, rfc3339(hi)?)))
        {
            min["timestamp"] = json!(lo);
            max["timestamp"] = json!(hi);
            nulls["timestamp"] = json!(0);
        }
        json!({"numRecords": records, "minValues": min, "maxValues": max, "nullCount": nulls})
            .to_string()
    }
}

fn rfc3339(ms: i64) -> Option<String> {
    let at = UNIX_EPOCH.checked_add(Duration::from_millis(u64::try_from(ms).ok()?))?;
    Some(humantime::format_rfc3339_millis(at).to_string())
}

/// The table schema in Delta's JSON form: the segment's columns, then `partition`.
pub fn schema_string() -> String {
    let mut fields: Vec<Value> = segment::schema()
        .fields()
        .iter()
        .map(|f| field(f))
        .collect();
    fields.push(json!({
        "name": PARTITION_COLUMN, "type": "integer", "nullable": false, "metadata": {}
    }));
    json!({"type": "struct", "fields": fields}).to_string()
}

fn field(f: &Field) -> Value {
    json!({
        "name": f.name(),
        "type": data_type(f.data_type()),
        "nullable": f.is_nullable(),
        "metadata": {}
    })
}

/// Delta's name for an Arrow type of the segment schema. The schema is pail's own and fixed,
/// so a type missing here is a programming error caught by the tests.
fn data_type(t: &DataType) -> Value {
    match t {
        DataType::Int64 => json!("long"),
        DataType::Int32 => json!("integer"),
        DataType::Timestamp(_, Some(_)) => json!("timestamp"),
        DataType::Timestamp(_, None) => json!("timestamp_ntz"),
        DataType::Binary => json!("binary"),
        DataType::Utf8 => json!("string"),
        DataType::List(item) => json!({
            "type": "array",
            "elementType": data_type(item.data_type()),
            "containsNull": item.is_nullable()
        }),
        DataType::Struct(fields) => json!({
            "type": "struct",
            "fields": fields.iter().map(|f| field(f)).collect::<Vec<_>>()
        }),
        other => json!(format!("unsupported:{other}")),
    }
}
