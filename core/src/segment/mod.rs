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
//! `pail.last_offset`, `pail.record_count` and `pail.manifest` (the manifest as JSON).

mod encode;
mod read;

pub use encode::{encode, encode_with};
pub use read::{
    FOOTER_PREFETCH_BYTES, Footer, foreign, panic_is_contained, parse_footer, read_rows,
};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
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

fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

fn headers_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(header_fields()), false))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("headers", DataType::List(headers_item()), false),
    ]))
});

/// The Arrow schema of every segment.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

#[cfg(test)]
mod tests;
