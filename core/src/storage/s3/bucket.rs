//! One clear error for a bucket that does not exist.
//!
//! S3 (and MinIO, moto) answers any request to a missing bucket with 404 `NoSuchBucket`.
//! object_store reports that as a missing *object* for reads ("Object at location
//! topics/t/_topic.json not found", followed by S3's XML) and as a generic error for listings.
//! [`BucketCheck`] wraps the S3 store and turns every such answer into [`NoSuchBucket`]: one
//! line naming the bucket and the endpoint, which is never mistaken for a missing object.

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// What a request to a bucket that does not exist fails with (inside
/// `object_store::Error::Generic`; see [`crate::storage::is_missing_bucket`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bucket {bucket} does not exist (endpoint {endpoint})")]
pub struct NoSuchBucket {
    pub bucket: String,
    pub endpoint: String,
}

/// An S3 store whose "no such bucket" answers become [`NoSuchBucket`].
#[derive(Debug)]
pub(super) struct BucketCheck {
    inner: Arc<dyn ObjectStore>,
    missing: NoSuchBucket,
}

impl BucketCheck {
    pub fn new(inner: Arc<dyn ObjectStore>, bucket: &str, endpoint: &str) -> Self {
        BucketCheck {
            inner,
            missing: NoSuchBucket {
                bucket: bucket.to_string(),
                endpoint: endpoint.to_string(),
            },
        }
    }

    fn check<T>(&self, result: object_store::Result<T>) -> object_store::Result<T> {
        result.map_err(|e| translate(e, &self.missing))
    }

    fn check_stream<T: Send + 'static>(
        &self,
        stream: BoxStream<'static, object_store::Result<T>>,
    ) -> BoxStream<'static, object_store::Result<T>> {
        let missing = self.missing.clone();
        stream
            .map(move |item| item.map_err(|e| translate(e, &missing)))
            .boxed()
    }
}

/// S3 names the cause in its XML answer, which object_store quotes in the error text.
fn translate(e: object_store::Error, missing: &NoSuchBucket) -> object_store::Error {
    if e.to_string().contains("NoSuchBucket") {
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(missing.clone()),
        }
    } else {
        e
    }
}

impl fmt::Display for BucketCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BucketCheck({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for BucketCheck {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check(self.inner.put_opts(location, payload, opts).await)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check(self.inner.put_multipart_opts(location, opts).await)
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check(self.inner.get_opts(location, options).await)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.check(self.inner.get_ranges(location, ranges).await)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.check_stream(self.inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.check_stream(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.check_stream(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.check(self.inner.list_with_delimiter(prefix).await)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.check(self.inner.copy_opts(from, to, options).await)
    }
}
