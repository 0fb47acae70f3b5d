//! Reading segments back: the footer (with the manifest) from one suffix GET, and a row range
//! through the page index with ranged GETs, so a fetch never downloads a large segment whole.
//!
//! Everything read here comes from the store and may be corrupt: every size is checked against
//! the object's size and a fixed ceiling before it is used, and decoding errors become
//! `Error::Corrupt`, never a panic or an unbounded allocation.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use object_store::path::Path;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use std::cell::Cell;
use std::future::Future;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::*;
use crate::error::{Error, Result};
use crate::manifest::PartitionManifest;
use crate::record::{Header, StoredRecord};
use crate::storage::Store;

/// Bytes fetched from the end of a segment on first contact: enough for the footer, the page
/// index and, for small segments, the whole object, in one request.
pub const FOOTER_PREFETCH_BYTES: u64 = 64 * 1024;
/// A footer larger than this is treated as corrupt rather than fetched.
const FOOTER_BYTES_MAX: u64 = 16 * 1024 * 1024;
const MAGIC: &[u8; 4] = b"PAR1";

/// A segment's decoded footer, with the bytes fetched from its end kept for later reads.
#[derive(Clone, Debug)]
pub struct Footer {
    pub manifest: Arc<PartitionManifest>,
    pub metadata: Arc<ParquetMetaData>,
    /// Size of the whole object.
    pub size: u64,
    /// The object's last `tail.len()` bytes.
    pub tail: Bytes,
}

/// Decodes the footer from the object's last bytes. `Ok(Err(n))` means the footer is longer
/// than `tail`: fetch the last `n` bytes and call again.
pub fn parse_footer(
    key: &Path,
    tail: Bytes,
    size: u64,
) -> Result<std::result::Result<Footer, u64>> {
    let metadata = match parquet_metadata(key, &tail, size)? {
        Ok(metadata) => metadata,
        Err(needed) => return Ok(Err(needed)),
    };
    let manifest = manifest_of(key, &metadata)?;
    Ok(Ok(Footer {
        manifest: Arc::new(manifest),
        metadata: Arc::new(metadata),
        size,
        tail,
    }))
}

/// Why an object that does not read as a segment is certainly not one of pail's segments,
/// damaged or not: it has no Parquet magic at either end, or it is a Parquet file without
/// pail's metadata. `None` when it may be a damaged segment (truncated, overwritten in part).
/// `head` is the object's first bytes, `tail` its last ones (the whole footer, if it fits).
pub fn foreign(head: &[u8], tail: &Bytes, size: u64) -> Option<&'static str> {
    if !head.starts_with(MAGIC) && !tail.ends_with(MAGIC) {
        return Some("it is not a Parquet file (no PAR1 magic at either end)");
    }
    let key = Path::from("sniffed");
    match parquet_metadata(&key, tail, size) {
        Ok(Ok(metadata)) if !has_pail_metadata(&metadata) => {
            Some("it is a Parquet file without pail's metadata (no pail.format_version)")
        }
        _ => None,
    }
}

fn has_pail_metadata(metadata: &ParquetMetaData) -> bool {
    metadata
        .file_metadata()
        .key_value_metadata()
        .is_some_and(|kv| kv.iter().any(|e| e.key == META_FORMAT))
}

/// The Parquet metadata in the object's last bytes; `Ok(Err(n))` when it needs the last `n`.
fn parquet_metadata(
    key: &Path,
    tail: &Bytes,
    size: u64,
) -> Result<std::result::Result<ParquetMetaData, u64>> {
    let len = tail.len() as u64;
    if size < 12 || len < 8 || len > size {
        return Err(Error::corrupt(
            key,
            format!("{size} bytes is too short for a Parquet file"),
        ));
    }
    let end = &tail[tail.len() - 8..];
    if &end[4..] != MAGIC {
        return Err(Error::corrupt(
            key,
            "not a Parquet file (no PAR1 footer magic)",
        ));
    }
    let metadata_len = u64::from(u32::from_le_bytes([end[0], end[1], end[2], end[3]]));
    let needed = metadata_len + 8;
    if needed > size - 4 || needed > FOOTER_BYTES_MAX {
        return Err(Error::corrupt(
            key,
            format!("footer length {metadata_len} does not fit a {size}-byte object"),
        ));
    }
    if needed > len {
        return Ok(Err(needed));
    }
    let start = (len - needed) as usize;
    ParquetMetaDataReader::decode_metadata(&tail[start..tail.len() - 8])
        .map(Ok)
        .map_err(|e| Error::corrupt(key, format!("footer does not decode: {e}")))
}

/// The manifest stored in a footer, cross-checked against the footer's other facts.
fn manifest_of(key: &Path, metadata: &ParquetMetaData) -> Result<PartitionManifest> {
    let kv = metadata.file_metadata().key_value_metadata();
    let get = |name: &str| {
        kv.and_then(|kv| kv.iter().find(|e| e.key == name))
            .and_then(|e| e.value.as_deref())
    };
    match get(META_FORMAT) {
        Some(v) if v == SEGMENT_FORMAT.to_string() => {}
        Some(v) => {
            return Err(Error::corrupt(
                key,
                format!("unknown segment format {v} (this build reads {SEGMENT_FORMAT})"),
            ));
        }
        None => {
            return Err(Error::corrupt(
                key,
                "not a pail segment (no pail.format_version)",
            ));
        }
    }
    let text = get(META_MANIFEST).ok_or_else(|| Error::corrupt(key, "segment has no manifest"))?;
    let manifest = PartitionManifest::decode(text).map_err(|e| Error::corrupt(key, e))?;
    let rows = metadata.file_metadata().num_rows();
    if rows != i64::from(manifest.record_count) {
        return Err(Error::corrupt(
            key,
            format!(
                "{rows} rows but the manifest says {}",
                manifest.record_count
            ),
        ));
    }
    let claimed_base = get(META_BASE_OFFSET).and_then(|v| v.parse::<u64>().ok());
    if claimed_base != Some(manifest.base_offset) {
        return Err(Error::corrupt(
            key,
            "pail.base_offset disagrees with the manifest",
        ));
    }
    Ok(manifest)
}

/// Reads rows `first_row..first_row + rows` of a segment whose footer is known.
///
/// Only the pages holding those rows are fetched (the page index maps rows to byte ranges), and
/// bytes already in `footer.tail` are not fetched again.
pub async fn read_rows(
    store: &Store,
    key: &Path,
    footer: &Footer,
    first_row: u64,
    rows: u64,
) -> Result<Vec<StoredRecord>> {
    let count = u64::from(footer.manifest.record_count);
    if rows == 0 || first_row >= count {
        return Ok(Vec::new());
    }
    let rows = rows.min(count - first_row);
    let read = read_batches(store, key, footer, first_row, rows);
    // The Parquet decoder is not written for hostile input; a panic on a corrupt page is
    // reported as corruption of this object, not allowed to take the process down.
    let batches = match contain(read).await {
        Ok(batches) => batches?,
        Err(_) => return Err(Error::corrupt(key, "segment data does not decode")),
    };
    let mut out = Vec::with_capacity(rows as usize);
    for batch in &batches {
        append_records(key, batch, &mut out)?;
    }
    let expected_first = footer.manifest.base_offset + first_row;
    let contiguous = out
        .iter()
        .enumerate()
        .all(|(i, r)| r.offset == expected_first + i as u64);
    if out.len() as u64 != rows || !contiguous {
        return Err(Error::corrupt(
            key,
            "rows do not hold the offsets the manifest assigns",
        ));
    }
    Ok(out)
}

async fn read_batches(
    store: &Store,
    key: &Path,
    footer: &Footer,
    first_row: u64,
    rows: u64,
) -> Result<Vec<RecordBatch>> {
    let corrupt =
        |e: ParquetError| Error::corrupt(key, format!("segment data does not decode: {e}"));
    let mut reader = SegmentReader {
        store: store.clone(),
        key: key.clone(),
        size: footer.size,
        tail: footer.tail.clone(),
    };
    let metadata = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .load_and_finish(&mut reader, footer.size)
        .await
        .map_err(corrupt)?;
    check_chunk_bounds(key, &metadata, footer.size)?;
    let arrow = ArrowReaderMetadata::try_new(
        Arc::new(metadata),
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
    )
    .map_err(corrupt)?;
    let selection = RowSelection::from(vec![
        RowSelector::skip(first_row as usize),
        RowSelector::select(rows as usize),
    ]);
    let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, arrow)
        .with_row_selection(selection)
        .with_batch_size(rows.min(8192) as usize)
        .build()
        .map_err(corrupt)?;
    stream.try_collect().await.map_err(corrupt)
}

/// Rejects column chunks that claim bytes outside the object or absurd decoded sizes, before
/// the decoder trusts them with allocations.
fn check_chunk_bounds(key: &Path, metadata: &ParquetMetaData, size: u64) -> Result<()> {
    let corrupt = || {
        Error::corrupt(
            key,
            "a column chunk or page lies outside the object or is implausibly large",
        )
    };
    for (rg_index, rg) in metadata.row_groups().iter().enumerate() {
        for (col_index, col) in rg.columns().iter().enumerate() {
            let chunk = chunk_range(col, size).ok_or_else(corrupt)?;
            let pages = metadata
                .page_index()
                .and_then(|index| index.page_locations(rg_index, col_index));
            if !pages.is_none_or(|pages| pages_fit(pages, &chunk, rg.num_rows())) {
                return Err(corrupt());
            }
        }
    }
    Ok(())
}

/// The bytes a column chunk claims, if they lie inside the object and it decodes to a
/// plausible size. Not `byte_range()`: it panics on the negative values a damaged footer holds.
fn chunk_range(
    col: &parquet::file::metadata::ColumnChunkMetaData,
    size: u64,
) -> Option<Range<u64>> {
    const UNCOMPRESSED_CHUNK_MAX: i64 = 1 << 30;
    let start = u64::try_from(
        col.dictionary_page_offset()
            .unwrap_or(col.data_page_offset()),
    )
    .ok()?;
    let end = start.checked_add(u64::try_from(col.compressed_size()).ok()?)?;
    let plausible = (0..=UNCOMPRESSED_CHUNK_MAX).contains(&col.uncompressed_size());
    (end <= size && plausible).then_some(start..end)
}

/// Whether the page index's pages lie inside their column chunk, in order, with rows that
/// start at 0 and grow within the row group (the decoder subtracts these without checking).
fn pages_fit(
    pages: &[parquet::file::page_index::offset_index::PageLocation],
    chunk: &Range<u64>,
    rows: i64,
) -> bool {
    let mut next_start = chunk.start;
    let mut last_row = -1i64;
    pages.iter().all(|p| {
        let start = u64::try_from(p.offset).ok();
        let len = u64::try_from(p.compressed_page_size)
            .ok()
            .filter(|&l| l > 0);
        let fits = start
            .zip(len)
            .and_then(|(s, l)| Some((s, s.checked_add(l)?)))
            .is_some_and(|(s, e)| s >= next_start && e <= chunk.end);
        let row_ok = p.first_row_index > last_row && p.first_row_index < rows.max(1);
        if let (true, Some(s), Some(l)) = (fits, start, len) {
            next_start = s + l;
        }
        last_row = p.first_row_index;
        fits && row_ok
    })
}

fn append_records(key: &Path, batch: &RecordBatch, out: &mut Vec<StoredRecord>) -> Result<()> {
    let wrong = || Error::corrupt(key, "segment columns do not match the pail schema");
    if batch.num_columns() != 5 {
        return Err(wrong());
    }
    let offsets = batch
        .column(0)
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(wrong)?;
    let times = batch
        .column(1)
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(wrong)?;
    let keys = batch.column(2).as_binary_opt::<i32>().ok_or_else(wrong)?;
    let values = batch.column(3).as_binary_opt::<i32>().ok_or_else(wrong)?;
    let headers = batch.column(4).as_list_opt::<i32>().ok_or_else(wrong)?;
    let entries = headers.values().as_struct_opt().ok_or_else(wrong)?;
    if entries.num_columns() != 2 {
        return Err(wrong());
    }
    let h_keys = entries.column(0).as_string_opt::<i32>().ok_or_else(wrong)?;
    let h_values = entries.column(1).as_binary_opt::<i32>().ok_or_else(wrong)?;
    let bytes_at = |a: &arrow::array::BinaryArray, i: usize| {
        (!a.is_null(i)).then(|| Bytes::copy_from_slice(a.value(i)))
    };
    for row in 0..batch.num_rows() {
        if offsets.is_null(row) || times.is_null(row) || offsets.value(row) < 0 {
            return Err(Error::corrupt(key, "a row has no offset or timestamp"));
        }
        let range =
            headers.value_offsets()[row] as usize..headers.value_offsets()[row + 1] as usize;
        let row_headers = range
            .map(|h| Header {
                key: h_keys.value(h).to_string(),
                value: bytes_at(h_values, h),
            })
            .collect();
        out.push(StoredRecord {
            offset: offsets.value(row) as u64,
            timestamp_ms: times.value(row),
            key: bytes_at(keys, row),
            value: bytes_at(values, row),
            headers: row_headers,
        });
    }
    Ok(())
}

thread_local! {
    static CONTAINING: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread is decoding segment data inside [`contain`]: a panic hook can use it
/// to stay quiet about a decoder panic that pail is about to report as corruption.
pub fn panic_is_contained() -> bool {
    CONTAINING.with(Cell::get)
}

/// Runs the Parquet decoder so that a panic inside it (the parquet crate has panics on hostile
/// input: see `docs/bad-inputs.md`) ends this read with `Err(())` instead of unwinding further,
/// and marks each poll so panic hooks can tell such a panic from a bug.
fn contain<F: Future>(future: F) -> impl Future<Output = std::result::Result<F::Output, ()>> {
    struct Contained<F>(Pin<Box<F>>);
    impl<F: Future> Future for Contained<F> {
        type Output = std::result::Result<F::Output, ()>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let was = CONTAINING.with(|c| c.replace(true));
            let polled = std::panic::catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx)));
            CONTAINING.with(|c| c.set(was));
            match polled {
                Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
                Ok(Poll::Pending) => Poll::Pending,
                Err(_) => Poll::Ready(Err(())),
            }
        }
    }
    Contained(Box::pin(future))
}

/// Serves Parquet reads from the cached tail when it covers them, otherwise by ranged GETs.
struct SegmentReader {
    store: Store,
    key: Path,
    size: u64,
    tail: Bytes,
}

impl SegmentReader {
    fn tail_start(&self) -> u64 {
        self.size - self.tail.len() as u64
    }

    fn cached(&self, range: &Range<u64>) -> Option<Bytes> {
        let start = self.tail_start();
        (range.start >= start && range.end <= self.size && range.start <= range.end).then(|| {
            self.tail
                .slice((range.start - start) as usize..(range.end - start) as usize)
        })
    }

    /// The bytes of `ranges`, taking from the cached tail whatever part of each it covers and
    /// fetching only the rest (a column chunk often straddles the tail's start).
    async fn fetch(&self, ranges: Vec<Range<u64>>) -> parquet::errors::Result<Vec<Bytes>> {
        let tail_start = self.tail_start();
        let mut wanted = Vec::new();
        for r in &ranges {
            if r.end > self.size || r.start > r.end {
                return Err(ParquetError::General(format!(
                    "range {r:?} outside a {}-byte object",
                    self.size
                )));
            }
            if r.start < tail_start {
                wanted.push(r.start..r.end.min(tail_start));
            }
        }
        let mut fetched = if wanted.is_empty() {
            Vec::new()
        } else {
            self.store
                .object_store()
                .get_ranges(&self.key, &wanted)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))?
        }
        .into_iter();
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            let head = if r.start < tail_start {
                fetched
                    .next()
                    .ok_or_else(|| ParquetError::General("store returned too few ranges".into()))?
            } else {
                Bytes::new()
            };
            let cached = self
                .cached(&(r.start.max(tail_start)..r.end))
                .unwrap_or_default();
            out.push(match (head.is_empty(), cached.is_empty()) {
                (_, true) => head,
                (true, false) => cached,
                (false, false) => [head, cached].concat().into(),
            });
        }
        Ok(out)
    }
}

impl AsyncFileReader for SegmentReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let mut got = self.fetch(vec![range]).await?;
            got.pop()
                .ok_or_else(|| ParquetError::General("no bytes returned".into()))
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.fetch(ranges).await }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_page_index_policy(PageIndexPolicy::Optional)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}
