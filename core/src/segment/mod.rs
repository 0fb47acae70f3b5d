//! Segment objects: one Parquet file per committed batch, readable by any Parquet engine.
//!
//! Owns the Arrow schema, encoding a batch (with the partition manifest in the file's key-value
//! metadata), decoding a footer back into a manifest, and reading a row range with ranged GETs.
//! Must never: pick keys or decide whether a segment is committed (a segment that exists *is*
//! committed; see `crate::log`).
//!
//! Columns: `offset` int64 (absolute), `timestamp` timestamp(ms, UTC), `key` and `value` binary
//! nullable, `headers` list<struct<key: utf8, value: binary>>. Key-value metadata:
//! `pail.format_version`, `pail.topic`, `pail.partition`, `pail.base_offset`,
//! `pail.last_offset`, `pail.record_count` and `pail.manifest` (the manifest as JSON). Every
//! column carries a fixed Parquet field id (`FIELD_ID_*`; segments written before field ids
//! have none, and are read by position as always).

mod encode;
mod read;

pub use encode::{encode, encode_with};
pub use read::{
    FOOTER_PREFETCH_BYTES, Footer, foreign, panic_is_contained, parse_footer, read_rows,
};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// The segment format this build writes and the only one it reads.
pub const SEGMENT_FORMAT: u32 = 1;

pub const META_FORMAT: &str = "pail.format_version";
pub const META_TOPIC: &str = "pail.topic";
pub const META_PARTITION: &str = "pail.partition";
pub const META_BASE_OFFSET: &str = "pail.base_offset";
pub const META_LAST_OFFSET: &str = "pail.last_offset";
pub const META_RECORD_COUNT: &str = "pail.record_count";
pub const META_MANIFEST: &str = "pail.manifest";

/// Parquet field ids (`PARQUET:field_id`), so table formats (Delta, Iceberg) can map columns
/// by id rather than by name or position. Fixed forever: a column keeps its id across
/// renames, and a new column takes the next unused number.
pub const FIELD_ID_OFFSET: i32 = 1;
pub const FIELD_ID_TIMESTAMP: i32 = 2;
pub const FIELD_ID_KEY: i32 = 3;
pub const FIELD_ID_VALUE: i32 = 4;
pub const FIELD_ID_HEADERS: i32 = 5;
pub const FIELD_ID_HEADERS_ITEM: i32 = 6;
pub const FIELD_ID_HEADER_KEY: i32 = 7;
pub const FIELD_ID_HEADER_VALUE: i32 = 8;

/// A field carrying its Parquet field id.
fn field(name: &str, data_type: DataType, nullable: bool, id: i32) -> Field {
    let meta = HashMap::from([(PARQUET_FIELD_ID_META_KEY.to_string(), id.to_string())]);
    Field::new(name, data_type, nullable).with_metadata(meta)
}

fn header_fields() -> Fields {
    Fields::from(vec![
        field("key", DataType::Utf8, false, FIELD_ID_HEADER_KEY),
        field("value", DataType::Binary, true, FIELD_ID_HEADER_VALUE),
    ])
}

fn headers_item() -> Arc<Field> {
    let item = DataType::Struct(header_fields());
    Arc::new(field("item", item, false, FIELD_ID_HEADERS_ITEM))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let timestamp = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        field("offset", DataType::Int64, false, FIELD_ID_OFFSET),
        field("timestamp", timestamp, false, FIELD_ID_TIMESTAMP),
        field("key", DataType::Binary, true, FIELD_ID_KEY),
        field("value", DataType::Binary, true, FIELD_ID_VALUE),
        field(
            "headers",
            DataType::List(headers_item()),
            false,
            FIELD_ID_HEADERS,
        ),
    ]))
});

/// The Arrow schema of every segment.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

#[cfg(test)]
mod tests;
