//! A request-counting object store wrapper: how many requests of each S3 type an operation
//! costs, and how many bytes moved. Benchmarks and cost tests read their figures from here.

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use serde::Serialize;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Keys one S3 LIST page returns at most; a listing costs one request per page.
const LIST_PAGE_KEYS: u64 = 1000;

/// Counters shared by a [`MeteredStore`] and whoever reads them.
#[derive(Debug, Default)]
pub struct RequestCounts {
    puts: AtomicU64,
    put_bytes: AtomicU64,
    gets: AtomicU64,
    get_bytes: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
}

/// A point-in-time copy of [`RequestCounts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Requests {
    pub puts: u64,
    pub put_bytes: u64,
    pub gets: u64,
    pub get_bytes: u64,
    pub lists: u64,
    pub deletes: u64,
}

impl Requests {
    /// Requests made between `earlier` and `self`.
    pub fn since(&self, earlier: &Requests) -> Requests {
        Requests {
            puts: self.puts - earlier.puts,
            put_bytes: self.put_bytes - earlier.put_bytes,
            gets: self.gets - earlier.gets,
            get_bytes: self.get_bytes - earlier.get_bytes,
            lists: self.lists - earlier.lists,
            deletes: self.deletes - earlier.deletes,
        }
    }
}

impl RequestCounts {
    pub fn snapshot(&self) -> Requests {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Requests {
            puts: get(&self.puts),
            put_bytes: get(&self.put_bytes),
            gets: get(&self.gets),
            get_bytes: get(&self.get_bytes),
            lists: get(&self.lists),
            deletes: get(&self.deletes),
        }
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Counts every request made through it, including failed ones (S3 bills those too).
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    counts: Arc<RequestCounts>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn ObjectStore>, counts: Arc<RequestCounts>) -> Self {
        MeteredStore { inner, counts }
    }

    fn count_list(
        &self,
        stream: BoxStream<'static, object_store::Result<ObjectMeta>>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let counts = Arc::clone(&self.counts);
        add(&counts.lists, 1);
        let mut seen = 0u64;
        stream
            .inspect(move |_| {
                seen += 1;
                if seen.is_multiple_of(LIST_PAGE_KEYS) {
                    add(&counts.lists, 1);
                }
            })
            .boxed()
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeteredStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        add(&self.counts.puts, 1);
        add(&self.counts.put_bytes, payload.content_length() as u64);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        add(&self.counts.puts, 1);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        add(&self.counts.gets, 1);
        let result = self.inner.get_opts(location, options).await?;
        add(
            &self.counts.get_bytes,
            result.range.end - result.range.start,
        );
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        // Counted as S3 is sent them: one GET per merged range, each bringing its gaps too
        // (that is what is billed). The read itself is left to the store underneath.
        let requests = super::s3_range_requests(ranges);
        add(&self.counts.gets, requests.len() as u64);
        let got = self.inner.get_ranges(location, ranges).await?;
        let bytes = requests.iter().map(|r| r.end.saturating_sub(r.start)).sum();
        add(&self.counts.get_bytes, bytes);
        Ok(got)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let counts = Arc::clone(&self.counts);
        self.inner
            .delete_stream(locations)
            .inspect(move |_| add(&counts.deletes, 1))
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.count_list(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.count_list(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        add(&self.counts.lists, 1);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        add(&self.counts.puts, 1);
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn ranged_reads_count_each_request_s3_is_sent() {
        let counts = Arc::new(RequestCounts::default());
        let store = MeteredStore::new(Arc::new(InMemory::new()), Arc::clone(&counts));
        let key = Path::from("segment");
        let mib = 1024 * 1024;
        store.put(&key, vec![7u8; 8 * mib].into()).await.unwrap();
        let before = counts.snapshot();
        // Two ranges 100 bytes apart travel as one GET; one 5 MiB further on is a second.
        let ranges = [0..100, 200..300, 5 * mib as u64..5 * mib as u64 + 100];
        let got = store.get_ranges(&key, &ranges).await.unwrap();
        assert_eq!(
            got.iter().map(Bytes::len).collect::<Vec<_>>(),
            vec![100, 100, 100]
        );
        let cost = counts.snapshot().since(&before);
        assert_eq!(cost.gets, 2, "{cost:?}");
        assert_eq!(
            cost.get_bytes,
            300 + 100,
            "the gap inside a merged GET is read too"
        );
    }

    /// The requests counted are the ones object_store's own coalescing (the S3 client's
    /// `get_ranges`) makes, for any set of ranges.
    #[tokio::test]
    async fn counted_requests_are_object_stores_own_coalescing() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        for _ in 0..500 {
            let ranges: Vec<Range<u64>> = (0..rng.random_range(1..12))
                .map(|_| {
                    let start = rng.random_range(0..8u64 << 20);
                    start..start + rng.random_range(0..2u64 << 20)
                })
                .collect();
            let sent = std::sync::Mutex::new(Vec::new());
            object_store::coalesce_ranges(
                &ranges,
                |r| {
                    sent.lock().unwrap().push(r.clone());
                    let len = (r.end - r.start) as usize;
                    futures::future::ready(Ok::<_, object_store::Error>(Bytes::from(vec![0; len])))
                },
                object_store::OBJECT_STORE_COALESCE_DEFAULT,
            )
            .await
            .unwrap();
            let mut sent = sent.into_inner().unwrap();
            sent.sort_by_key(|r| r.start);
            assert_eq!(super::super::s3_range_requests(&ranges), sent, "{ranges:?}");
        }
    }
}
