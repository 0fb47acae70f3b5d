//! Entry points for fuzzers and robustness tests. Each takes arbitrary bytes as if read from the
//! store and must return without panicking or allocating without bound; errors are the point.
//! Used by the cargo-fuzz targets in `core/fuzz` and by property tests on the stable toolchain.

use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::error::ErrorKind;
use crate::manifest::PartitionManifest;
use crate::segment::{FOOTER_PREFETCH_BYTES, parse_footer, read_rows};
use crate::storage::Store;
use crate::topic::{TopicMeta, TopicName};

/// A partition manifest as found in a segment footer.
pub fn manifest(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PartitionManifest::decode(text);
    }
}

/// A topic descriptor.
pub fn topic_descriptor(data: &[u8]) {
    if let Ok(name) = TopicName::new("fuzz") {
        let _ = TopicMeta::decode(data, "topics/fuzz/topic.json", &name);
    }
}

/// A segment object: its footer, and if that decodes, all of its rows. Returns the kind of
/// error it got, or `None` if it read as a valid segment.
pub fn segment(data: &[u8]) -> Option<ErrorKind> {
    let runtime = tokio::runtime::Builder::new_current_thread().build().ok()?;
    runtime.block_on(read_segment(Bytes::copy_from_slice(data)))
}

async fn read_segment(bytes: Bytes) -> Option<ErrorKind> {
    let key = Path::from("fuzz/segment.parquet");
    let size = bytes.len() as u64;
    let tail_len = (FOOTER_PREFETCH_BYTES as usize).min(bytes.len());
    let tail = bytes.slice(bytes.len() - tail_len..);
    let footer = match parse_footer(&key, tail, size) {
        Ok(Ok(footer)) => footer,
        // A footer longer than the first read: the whole object was the tail, so it is corrupt.
        Ok(Err(_)) => return Some(ErrorKind::Corrupt),
        Err(e) => return Some(e.kind()),
    };
    let store = Store::memory();
    store.object_store().put(&key, bytes.into()).await.ok()?;
    let rows = u64::from(footer.manifest.record_count);
    read_rows(&store, &key, &footer, 0, rows)
        .await
        .err()
        .map(|e| e.kind())
}
