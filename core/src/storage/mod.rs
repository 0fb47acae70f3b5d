//! The object store pail runs on, chosen by one URL, and the few operations the log needs.
//!
//! Owns: parsing store URLs, building the `object_store` backend (local directory, in-memory,
//! S3-compatible), the object key layout ([`keys`]), and small helpers that turn store answers
//! into pail's vocabulary (a missing object is `None`, a lost create is `Created::AlreadyExists`).
//! Must never: decide what a key means or retry a conditional write on its own; the commit loop
//! in `crate::log` owns that, because only it can tell its own write from a rival's.

mod check;
// The test doubles (feature `sim`): fault injection, simulated latency, request counting.
#[cfg(feature = "sim")]
pub mod faults;
pub mod keys;
#[cfg(feature = "sim")]
pub mod latency;
pub mod local;
#[cfg(feature = "sim")]
pub mod metrics;
mod s3;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use std::sync::Arc;

use crate::error::{Error, Result};

pub use s3::{NoSuchBucket, S3_ENV_VARS};

/// The store used when none is given: a directory next to the caller.
pub const DEFAULT_STORE: &str = "./pail-data";

/// An object store plus what pail needs to know about it.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// Every store pail opens lists keys in lexicographic order (the directory store sorts
    /// each folder: see [`local`]), so a listing can stop at the first key it does not need.
    /// A store given to [`Store::new`] that does not is listed whole and sorted.
    listing_sorted: bool,
    location: String,
    /// True for backends whose create-if-absent is pail's own code or object_store's (memory,
    /// local directory); others are checked once before the first write ([`check`]).
    creates_trusted: bool,
    checked: Arc<tokio::sync::OnceCell<()>>,
}

/// Whether a create-if-absent wrote the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Yes,
    /// Something already exists at the key: a rival's object, or our own earlier attempt.
    AlreadyExists,
}

impl Store {
    /// Wraps any object store. `listing_sorted` must be true only if `list` yields keys in
    /// lexicographic order.
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        listing_sorted: bool,
        location: impl Into<String>,
    ) -> Self {
        Store {
            inner,
            listing_sorted,
            location: location.into(),
            creates_trusted: false,
            checked: Arc::default(),
        }
    }

    /// A store whose create-if-absent needs no check (built-in backends).
    fn trusted(inner: Arc<dyn ObjectStore>, listing_sorted: bool, location: String) -> Self {
        Store {
            creates_trusted: true,
            ..Store::new(inner, listing_sorted, location)
        }
    }

    /// A fresh, empty in-memory store (for tests and benchmarks).
    pub fn memory() -> Self {
        Store::trusted(Arc::new(InMemory::new()), true, "memory://".into())
    }

    /// Fails with `UnsafeStore` if the store ignores create-if-absent (some S3-compatible
    /// servers accept `If-None-Match: *` and overwrite anyway, which would let two commits both
    /// succeed and one batch silently replace another). Checked once per store and remembered
    /// in the store itself, so later clients pay one GET; built-in backends are not checked.
    pub async fn ensure_conditional_writes(&self) -> Result<()> {
        if self.creates_trusted {
            return Ok(());
        }
        self.checked
            .get_or_try_init(|| check::conditional_writes(self))
            .await
            .map(|_| ())
    }

    /// Opens the store a URL names: a directory path or `file:///abs/path`, `memory://`, or
    /// `s3://bucket/prefix` (configured by the standard AWS environment variables). A directory
    /// that does not exist yet is created.
    pub async fn open(url: &str) -> Result<Self> {
        Store::open_with(url, true).await
    }

    /// Like [`Store::open`], but a directory store must exist already: for commands that only
    /// read, so a typo in the path fails instead of leaving an empty directory behind.
    pub async fn open_existing(url: &str) -> Result<Self> {
        Store::open_with(url, false).await
    }

    async fn open_with(url: &str, create: bool) -> Result<Self> {
        let url = url.trim();
        if url.is_empty() {
            return Err(invalid_url(url, "empty"));
        }
        if url == "memory://" || url == "memory:" {
            return Ok(Store::memory());
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            return s3::open(url, rest).await;
        }
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(invalid_url(
                    url,
                    "file:// needs an absolute path, as in file:///data/pail",
                ));
            }
            return open_local(url, path, create);
        }
        if url.contains("://") {
            return Err(invalid_url(
                url,
                "unsupported scheme; use a directory path, file:///abs/path, memory:// or s3://bucket/prefix",
            ));
        }
        open_local(url, url, create)
    }

    /// Returns a copy whose backend is `wrap(backend)`: how fault injection, request metrics and
    /// latency injection are layered on.
    pub fn layered(&self, wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>) -> Self {
        Store {
            inner: wrap(Arc::clone(&self.inner)),
            listing_sorted: self.listing_sorted,
            location: self.location.clone(),
            creates_trusted: self.creates_trusted,
            checked: Arc::clone(&self.checked),
        }
    }

    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// Creates `key` only if nothing exists there.
    ///
    /// Errors other than "already exists" are returned raw: after a timeout or 5xx the object
    /// may or may not exist, and only the caller can find out which by reading it back.
    pub async fn create(
        &self,
        key: &Path,
        bytes: Bytes,
    ) -> std::result::Result<Created, object_store::Error> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .inner
            .put_opts(key, PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(_) => Ok(Created::Yes),
            // S3 answers a lost create with 412 (Precondition) or, after 409 retries run out,
            // AlreadyExists; both mean "someone's object is there".
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(Created::AlreadyExists),
            Err(e) => Err(e),
        }
    }

    /// Overwrites `key` unconditionally (only for hints, which are advisory).
    pub async fn overwrite(&self, key: &Path, bytes: Bytes) -> Result<()> {
        let opts = PutOptions {
            mode: PutMode::Overwrite,
            ..PutOptions::default()
        };
        self.inner
            .put_opts(key, PutPayload::from_bytes(bytes), opts)
            .await
            .map_err(|e| Error::store("put", key, e))?;
        Ok(())
    }

    /// The whole object, or `None` if it does not exist.
    pub async fn get(&self, key: &Path) -> Result<Option<Bytes>> {
        match self.inner.get_opts(key, GetOptions::default()).await {
            Ok(res) => Ok(Some(
                res.bytes().await.map_err(|e| Error::store("get", key, e))?,
            )),
            Err(e) if object_missing(&e) => Ok(None),
            Err(e) => Err(Error::store("get", key, e)),
        }
    }

    /// Up to the last `len` bytes of an object and its total size, or `None` if it does not
    /// exist. One request learns both the footer and the size.
    pub async fn get_suffix(&self, key: &Path, len: u64) -> Result<Option<(Bytes, u64)>> {
        let opts = GetOptions {
            range: Some(GetRange::Suffix(len)),
            ..GetOptions::default()
        };
        match self.inner.get_opts(key, opts).await {
            Ok(res) => {
                let size = res.meta.size;
                let bytes = res.bytes().await.map_err(|e| Error::store("get", key, e))?;
                Ok(Some((bytes, size)))
            }
            Err(e) if object_missing(&e) => Ok(None),
            Err(e) => Err(Error::store("get", key, e)),
        }
    }

    pub async fn get_range(&self, key: &Path, range: std::ops::Range<u64>) -> Result<Bytes> {
        self.inner
            .get_range(key, range)
            .await
            .map_err(|e| Error::store("get", key, e))
    }

    /// Objects under `prefix` whose key sorts after `after`, in key order.
    pub async fn list_after(&self, prefix: &Path, after: Option<&Path>) -> Result<Vec<ObjectMeta>> {
        self.list_after_while(prefix, after, |_| true).await
    }

    /// Like [`Store::list_after`], but ends after the first object for which `more` is false.
    /// On stores that list in order the rest is never requested, so a bounded question costs
    /// one LIST page instead of the whole prefix.
    pub async fn list_after_while(
        &self,
        prefix: &Path,
        after: Option<&Path>,
        mut more: impl FnMut(&ObjectMeta) -> bool,
    ) -> Result<Vec<ObjectMeta>> {
        let mut stream = match after {
            Some(after) => self.inner.list_with_offset(Some(prefix), after),
            None => self.inner.list(Some(prefix)),
        };
        let mut items = Vec::new();
        while let Some(meta) = stream
            .try_next()
            .await
            .map_err(|e| Error::store("list", prefix, e))?
        {
            let stop = self.listing_sorted && !more(&meta);
            items.push(meta);
            if stop {
                return Ok(items);
            }
        }
        if !self.listing_sorted {
            items.sort_by(|a, b| a.location.cmp(&b.location));
            if let Some(end) = items.iter().position(|m| !more(m)) {
                items.truncate(end + 1);
            }
        }
        Ok(items)
    }

    /// The immediate sub-folders of `prefix`.
    pub async fn list_dirs(&self, prefix: &Path) -> Result<Vec<Path>> {
        let res = self
            .inner
            .list_with_delimiter(Some(prefix))
            .await
            .map_err(|e| Error::store("list", prefix, e))?;
        let mut dirs = res.common_prefixes;
        dirs.sort();
        Ok(dirs)
    }

    /// The object's size and version tag, or `None` if it does not exist.
    pub async fn head(&self, key: &Path) -> Result<Option<ObjectMeta>> {
        match self.inner.head(key).await {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if object_missing(&e) => Ok(None),
            Err(e) => Err(Error::store("head", key, e)),
        }
    }

    /// Copies `from` to `to` within the store (a server-side copy on S3), replacing `to`.
    pub async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner
            .copy(from, to)
            .await
            .map_err(|e| Error::store("copy", from, e))
    }

    /// Deletes `keys` (S3 deletes up to 1,000 in one request); missing ones are fine.
    pub async fn delete_many(&self, keys: &[Path]) -> Result<()> {
        let locations =
            futures::stream::iter(keys.iter().cloned().map(Ok).collect::<Vec<_>>()).boxed();
        let mut results = self.inner.delete_stream(locations);
        while let Some(result) = results.next().await {
            match result {
                Ok(_) => {}
                Err(e) if object_missing(&e) => {}
                Err(e) => {
                    return Err(Error::store(
                        "delete",
                        keys.first().map_or("", |k| k.as_ref()),
                        e,
                    ));
                }
            }
        }
        Ok(())
    }

    pub async fn delete(&self, key: &Path) -> Result<()> {
        match self.inner.delete(key).await {
            Ok(()) => Ok(()),
            Err(e) if object_missing(&e) => Ok(()),
            Err(e) => Err(Error::store("delete", key, e)),
        }
    }
}

/// True when the store says an object does not exist. S3 also answers 404 for a bucket that
/// does not exist, which is a deployment problem and must not read as "no such object" (that
/// would turn a typo in the bucket name into "unknown topic").
pub(crate) fn object_missing(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
        && !is_missing_bucket(e)
        && !e.to_string().contains("NoSuchBucket")
}

/// True when the store says the bucket itself does not exist ([`NoSuchBucket`]): certain, and
/// no retry will change it.
pub fn is_missing_bucket(e: &object_store::Error) -> bool {
    use std::error::Error as _;
    matches!(e, object_store::Error::Generic { .. })
        && e.source().is_some_and(|s| s.is::<NoSuchBucket>())
}

/// The bytes of `ranges` of an object, requested the way object_store's S3 client requests
/// them: ranges less than [`object_store::OBJECT_STORE_COALESCE_DEFAULT`] apart are merged, and
/// each merged range is one ranged GET through `store` (up to 10 at a time). The wrappers that
/// stand in for S3 (request counting, latency, faults) read ranges this way, so that what they
/// count, delay or fail is what S3 would be sent, whatever store is underneath.
#[cfg(feature = "sim")]
async fn get_ranges_as_s3(
    store: &dyn ObjectStore,
    location: &Path,
    ranges: &[std::ops::Range<u64>],
) -> object_store::Result<Vec<Bytes>> {
    object_store::coalesce_ranges(
        ranges,
        |range| async move {
            let opts = GetOptions::new().with_range(Some(range));
            store.get_opts(location, opts).await?.bytes().await
        },
        object_store::OBJECT_STORE_COALESCE_DEFAULT,
    )
    .await
}

/// The ranged GETs object_store's S3 client sends for `ranges` of one object: ranges at most
/// [`object_store::OBJECT_STORE_COALESCE_DEFAULT`] apart (or overlapping) are merged, and each
/// merged range is one request.
#[cfg(feature = "sim")]
fn s3_range_requests(ranges: &[std::ops::Range<u64>]) -> Vec<std::ops::Range<u64>> {
    let mut sorted = ranges.to_vec();
    sorted.sort_by_key(|r| r.start);
    let mut requests: Vec<std::ops::Range<u64>> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match requests.last_mut() {
            Some(last)
                if r.start
                    <= last
                        .end
                        .saturating_add(object_store::OBJECT_STORE_COALESCE_DEFAULT) =>
            {
                last.end = last.end.max(r.end);
            }
            _ => requests.push(r),
        }
    }
    requests
}

/// True when the store refused a request before doing anything, for a reason no retry can
/// fix: permissions (a 403 or a local EACCES), credentials (401), or a missing bucket. A write
/// refused this way certainly did not land, so the caller may say "no effect" at once.
pub(crate) fn certainly_not_written(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => true,
        // S3 names a missing bucket in the body of a 404; the S3 backend turns it into
        // `NoSuchBucket`.
        _ => is_missing_bucket(e) || e.to_string().contains("NoSuchBucket"),
    }
}

/// `stream`, answering only after `delay`: a slow LIST for the wrappers that simulate one.
#[cfg(feature = "sim")]
fn delayed<T: Send + 'static>(
    delay: std::time::Duration,
    stream: futures::stream::BoxStream<'static, T>,
) -> futures::stream::BoxStream<'static, T> {
    use futures::StreamExt;
    futures::stream::once(async move {
        tokio::time::sleep(delay).await;
        stream
    })
    .flatten()
    .boxed()
}

fn invalid_url(url: &str, reason: &str) -> Error {
    Error::InvalidStoreUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

/// A directory store. Creates are staged outside the data folders and fsynced (file and
/// directory) before they are acknowledged, so an acknowledged commit survives a machine crash,
/// as it would on S3, and a crashed writer leaves nothing a reader of the folders would see.
fn open_local(url: &str, path: &str, create: bool) -> Result<Store> {
    if create {
        std::fs::create_dir_all(path)
            .map_err(|e| invalid_url(url, &format!("cannot create directory: {e}")))?;
    } else if !std::path::Path::new(path).is_dir() {
        return Err(invalid_url(
            url,
            "no pail store there: the directory does not exist (topic create and produce make it)",
        ));
    }
    let abs = std::fs::canonicalize(path)
        .map_err(|e| invalid_url(url, &format!("cannot resolve directory: {e}")))?;
    let fs = local::LocalStore::new(&abs).map_err(|e| invalid_url(url, &e.to_string()))?;
    fs.sweep();
    Ok(Store::trusted(
        Arc::new(fs),
        true,
        abs.display().to_string(),
    ))
}
