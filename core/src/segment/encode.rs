//! Encoding a batch of records into one Parquet segment.

use arrow::array::{
    ArrayRef, BinaryArray, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMillisecondArray,
};
use arrow::buffer::OffsetBuffer;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, GzipLevel, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::sync::Arc;

use super::*;
use crate::manifest::PartitionManifest;
use crate::record::Record;
use crate::topic;

/// Encodes `records` (with their final timestamps) as the segment of `manifest`'s version,
/// with the default codec (ZSTD level 1).
///
/// The rows get offsets `base_offset..next_offset`, so the file alone gives absolute offsets.
pub fn encode(
    records: &[Record],
    timestamps_ms: &[i64],
    manifest: &PartitionManifest,
) -> Result<Bytes, String> {
    encode_with(
        records,
        timestamps_ms,
        manifest,
        topic::Compression::default(),
    )
}

/// [`encode`] with the topic's codec for the data pages.
pub fn encode_with(
    records: &[Record],
    timestamps_ms: &[i64],
    manifest: &PartitionManifest,
    compression: topic::Compression,
) -> Result<Bytes, String> {
    if records.len() != manifest.record_count as usize || timestamps_ms.len() != records.len() {
        return Err(format!(
            "{} records and {} timestamps for a manifest of {}",
            records.len(),
            timestamps_ms.len(),
            manifest.record_count
        ));
    }
    let mut writer = ArrowWriter::try_new(
        Vec::new(),
        schema(),
        Some(properties(manifest, compression)?),
    )
    .map_err(|e| format!("parquet writer: {e}"))?;
    // A control commit (leadership change) is a valid Parquet file with no row groups.
    if !records.is_empty() {
        let batch = record_batch(records, timestamps_ms, manifest.base_offset)?;
        writer
            .write(&batch)
            .map_err(|e| format!("parquet write: {e}"))?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| format!("parquet close: {e}"))?;
    Ok(Bytes::from(bytes))
}

fn record_batch(
    records: &[Record],
    timestamps_ms: &[i64],
    base_offset: u64,
) -> Result<RecordBatch, String> {
    let offsets =
        Int64Array::from_iter_values((0..records.len() as u64).map(|i| (base_offset + i) as i64));
    let timestamps = TimestampMillisecondArray::from(timestamps_ms.to_vec()).with_timezone("UTC");
    let keys = BinaryArray::from_iter(records.iter().map(|r| r.key.as_deref()));
    let values = BinaryArray::from_iter(records.iter().map(|r| r.value.as_deref()));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(offsets),
        Arc::new(timestamps),
        Arc::new(keys),
        Arc::new(values),
        Arc::new(headers(records)?),
    ];
    RecordBatch::try_new(schema(), columns).map_err(|e| format!("record batch: {e}"))
}

fn headers(records: &[Record]) -> Result<ListArray, String> {
    let all = records.iter().flat_map(|r| r.headers.iter());
    let keys = StringArray::from_iter_values(all.clone().map(|h| h.key.as_str()));
    let values = BinaryArray::from_iter(all.map(|h| h.value.as_deref()));
    let entries = StructArray::try_new(
        header_fields(),
        vec![Arc::new(keys), Arc::new(values)],
        None,
    )
    .map_err(|e| format!("headers: {e}"))?;
    let offsets = OffsetBuffer::from_lengths(records.iter().map(|r| r.headers.len()));
    ListArray::try_new(headers_item(), offsets, Arc::new(entries), None)
        .map_err(|e| format!("headers: {e}"))
}

/// Data pages of at most this many bytes: the unit a ranged read fetches, so a fetch of a few
/// records from a large segment reads about this much per column.
const DATA_PAGE_BYTES_MAX: usize = 256 * 1024;

/// The Parquet codec for a topic's setting. LZ4_RAW rather than the deprecated Hadoop-framed
/// LZ4, which some readers (DuckDB among them) do not read; gzip at level 1 for speed.
fn parquet_codec(compression: topic::Compression) -> Compression {
    match compression {
        topic::Compression::Zstd => Compression::ZSTD(ZstdLevel::default()),
        topic::Compression::Lz4 => Compression::LZ4_RAW,
        topic::Compression::Snappy => Compression::SNAPPY,
        topic::Compression::Gzip => Compression::GZIP(GzipLevel::try_new(1).unwrap_or_default()),
        topic::Compression::None => Compression::UNCOMPRESSED,
    }
}

/// The topic's codec, page statistics and the page index for pruning, offsets delta-encoded
/// (they shrink to almost nothing), one row group per segment, rows sorted by offset.
fn properties(
    manifest: &PartitionManifest,
    compression: topic::Compression,
) -> Result<WriterProperties, String> {
    let last_offset = manifest.next_offset as i128 - 1;
    let kv = |k: &str, v: String| KeyValue::new(k.to_string(), v);
    let metadata = vec![
        kv(META_FORMAT, SEGMENT_FORMAT.to_string()),
        kv(META_TOPIC, manifest.topic.clone()),
        kv(META_PARTITION, manifest.partition.to_string()),
        kv(META_BASE_OFFSET, manifest.base_offset.to_string()),
        kv(META_LAST_OFFSET, last_offset.to_string()),
        kv(META_RECORD_COUNT, manifest.record_count.to_string()),
        kv(META_MANIFEST, manifest.encode()?),
    ];
    let delta = Encoding::DELTA_BINARY_PACKED;
    Ok(WriterProperties::builder()
        .set_compression(parquet_codec(compression))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from("key"), true)
        .set_column_encoding(ColumnPath::from("offset"), delta)
        .set_column_encoding(ColumnPath::from("timestamp"), delta)
        .set_max_row_group_row_count(None)
        .set_data_page_size_limit(DATA_PAGE_BYTES_MAX)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: false,
        }]))
        .set_key_value_metadata(Some(metadata))
        .set_created_by(format!("pail {}", env!("CARGO_PKG_VERSION")))
        .build())
}
