//! The local directory store: object_store's `LocalFileSystem`, except for create-if-absent.
//!
//! `LocalFileSystem` stages a create as `{destination}#{n}` beside the destination and
//! hard-links it into place. A process killed between the link and the removal of the staging
//! name (during the directory fsync) leaves a full copy of the segment in the partition folder,
//! which Parquet engines reading the folder count twice. So creates here are staged in
//! `{root}/_staging/` instead: the partition folders only ever hold committed segments, and a
//! crash leaves garbage only where no reader looks. [`LocalStore::sweep`] removes it.
//!
//! Durability is the same as S3's promise: the file and the directory entry are fsynced before
//! the create returns.
//!
//! Listings come in key order, as on S3, so a caller can stop at the first key it does not
//! need. `LocalFileSystem` walks a folder in directory order and stats every entry after the
//! offset (three calls each) before yielding it; here a folder of plain files (a partition
//! folder) is read by name only, the names after the offset sorted, and the first few stat-ed
//! only as the caller takes them; a caller that keeps reading gets the rest from one bulk walk.
//! Reading the names is still linear in the folder's size (no file system keeps a folder
//! sorted), but it is one cheap call per few hundred names, not three per file.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Staged uploads older than this are abandoned (a live create stages for milliseconds).
const STAGING_ABANDONED_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct LocalStore {
    inner: Arc<LocalFileSystem>,
    staging: PathBuf,
}

impl LocalStore {
    /// A store over `root`, an existing directory (absolute).
    pub fn new(root: &std::path::Path) -> object_store::Result<Self> {
        let inner = LocalFileSystem::new_with_prefix(root)?
            .with_fsync(true)
            .with_automatic_cleanup(false);
        Ok(LocalStore {
            inner: Arc::new(inner),
            staging: root.join("_staging"),
        })
    }

    /// Removes staged uploads abandoned by crashed writers. Errors are ignored: the files
    /// are invisible to readers and the next sweep tries again.
    pub fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.staging) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > STAGING_ABANDONED_AFTER);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    async fn create(
        &self,
        location: &Path,
        payload: PutPayload,
    ) -> object_store::Result<PutResult> {
        let dest = self.inner.path_to_filesystem(location)?;
        let staged = self
            .staging
            .join(format!("{:032x}", rand::random::<u128>()));
        let bytes = Bytes::from(payload);
        let key = location.to_string();
        let result = tokio::task::spawn_blocking(move || publish(&staged, &dest, &bytes))
            .await
            .map_err(|e| generic(format!("create task failed: {e}")))?;
        match result {
            Ok(()) => Ok(PutResult {
                e_tag: None,
                version: None,
                extensions: Default::default(),
            }),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                Err(object_store::Error::AlreadyExists {
                    path: key,
                    source: Box::new(e),
                })
            }
            // Refused by the file system before anything was published: certain, not unclear.
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                Err(object_store::Error::PermissionDenied {
                    path: key,
                    source: Box::new(e),
                })
            }
            Err(e) => Err(generic(format!("create {key}: {e}"))),
        }
    }
}

/// How many stats a listing keeps in flight while its caller reads.
const LIST_STATS_IN_FLIGHT: usize = 16;
/// Entries a listing stats one at a time, as they are taken; a caller that reads further is
/// reading the folder whole, and gets the rest from one bulk walk (faster per entry).
const LIST_ONE_BY_ONE: usize = 64;

/// What a folder holds, read by name only.
enum Folder {
    /// Keys of plain files after the offset, sorted.
    Files(Vec<Path>),
    /// Sub-folders, links or names that need `LocalFileSystem`'s own path rules.
    Other,
}

impl LocalStore {
    /// Objects under `prefix` after `offset`, in key order (see the module docs).
    fn list_sorted(
        &self,
        prefix: Option<&Path>,
        offset: Option<&Path>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let (inner, prefix, offset) = (Arc::clone(&self.inner), prefix.cloned(), offset.cloned());
        futures::stream::once(listing(inner, prefix, offset))
            .try_flatten()
            .boxed()
    }
}

async fn listing(
    inner: Arc<LocalFileSystem>,
    prefix: Option<Path>,
    offset: Option<Path>,
) -> object_store::Result<BoxStream<'static, object_store::Result<ObjectMeta>>> {
    let folder = match &prefix {
        Some(p) => read_folder(&inner, p, offset.as_ref()).await?,
        None => Folder::Other,
    };
    match (folder, prefix) {
        (Folder::Files(keys), Some(prefix)) => Ok(stat_as_taken(inner, prefix, keys)),
        (_, prefix) => sorted_walk(inner, prefix, offset).await,
    }
}

/// Reads the names in the folder `prefix` (no stat): the keys of its plain files after
/// `offset`, sorted, or [`Folder::Other`] when it holds anything else.
async fn read_folder(
    inner: &LocalFileSystem,
    prefix: &Path,
    offset: Option<&Path>,
) -> object_store::Result<Folder> {
    let dir = inner.path_to_filesystem(prefix)?;
    let folder = prefix.clone();
    let after = offset.map(|o| o.as_ref().to_string());
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Folder> {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Folder::Files(Vec::new())),
            Err(e) => return Err(e),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let plain = name.to_str().filter(|n| is_plain_name(n));
            let (Some(name), true) = (plain, entry.file_type()?.is_file()) else {
                return Ok(Folder::Other);
            };
            // Compared as `{folder}/{name}` without building the key: most names are skipped.
            let after_offset = after.as_ref().is_none_or(|a| {
                let key = folder.as_ref().bytes().chain([b'/']).chain(name.bytes());
                key.cmp(a.bytes()).is_gt()
            });
            if after_offset {
                keys.push(folder.clone().join(name));
            }
        }
        keys.sort();
        Ok(Folder::Files(keys))
    });
    read.await
        .map_err(|e| generic(format!("list task failed: {e}")))?
        .map_err(|e| generic(format!("list {}: {e}", prefix)))
}

/// A file name whose key is the name itself, under every path rule of `LocalFileSystem`
/// (every name pail writes is one).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

/// The metadata of `keys` (sorted, all in `folder`), in order: the first
/// [`LIST_ONE_BY_ONE`] stat-ed as the caller takes them, the rest, if the caller gets that
/// far, from one bulk walk of the folder after the last of those. A file removed since the
/// folder was read is left out, and one added since may show up, as in a listing made a
/// moment later.
fn stat_as_taken(
    inner: Arc<LocalFileSystem>,
    folder: Path,
    mut keys: Vec<Path>,
) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
    let rest = keys.len() > LIST_ONE_BY_ONE;
    keys.truncate(LIST_ONE_BY_ONE);
    let last = keys.last().cloned();
    let walker = Arc::clone(&inner);
    let first = futures::stream::iter(keys)
        .map(move |key| {
            let inner = Arc::clone(&inner);
            async move {
                match inner.head(&key).await {
                    Ok(meta) => Some(Ok(meta)),
                    Err(object_store::Error::NotFound { .. }) => None,
                    Err(e) => Some(Err(e)),
                }
            }
        })
        .buffered(LIST_STATS_IN_FLIGHT)
        .filter_map(futures::future::ready);
    match (rest, last) {
        (true, Some(last)) => first
            .chain(
                futures::stream::once(sorted_walk(walker, Some(folder), Some(last))).try_flatten(),
            )
            .boxed(),
        _ => first.boxed(),
    }
}

/// `LocalFileSystem`'s own listing, read whole and sorted: for folders with sub-folders (a
/// topic, the root) or unusual names.
async fn sorted_walk(
    inner: Arc<LocalFileSystem>,
    prefix: Option<Path>,
    offset: Option<Path>,
) -> object_store::Result<BoxStream<'static, object_store::Result<ObjectMeta>>> {
    let walk = match &offset {
        Some(offset) => inner.list_with_offset(prefix.as_ref(), offset),
        None => inner.list(prefix.as_ref()),
    };
    let mut all: Vec<ObjectMeta> = walk.try_collect().await?;
    all.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(futures::stream::iter(all.into_iter().map(Ok)).boxed())
}

/// Writes `bytes` to `staged`, fsyncs it, and links it to `dest` only if `dest` does not
/// exist, fsyncing the directory that gained the entry. The staged name is always removed.
fn publish(staged: &std::path::Path, dest: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let outcome = write_synced(staged, bytes).and_then(|()| link_synced(staged, dest));
    let _ = std::fs::remove_file(staged);
    outcome
}

fn write_synced(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = File::create_new(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn link_synced(staged: &std::path::Path, dest: &std::path::Path) -> std::io::Result<()> {
    let dir = dest
        .parent()
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "destination has no folder"))?;
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        // The new folder's own entry must survive a crash too.
        if let Some(parent) = dir.parent() {
            File::open(parent)?.sync_all()?;
        }
    }
    std::fs::hard_link(staged, dest)?;
    File::open(dir)?.sync_all()
}

fn generic(message: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalStore",
        source: message.into(),
    }
}

impl fmt::Display for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        match opts.mode {
            PutMode::Create => self.create(location, payload).await,
            _ => self.inner.put_opts(location, payload, opts).await,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.list_sorted(prefix, None)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.list_sorted(prefix, Some(offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;

    /// The keys a listing yields, in the order it yields them.
    async fn keys(listing: BoxStream<'static, object_store::Result<ObjectMeta>>) -> Vec<String> {
        let metas: Vec<ObjectMeta> = listing.try_collect().await.unwrap();
        metas.into_iter().map(|m| m.location.to_string()).collect()
    }

    /// A store holding `names` (relative keys), written in a shuffled order.
    async fn holding(names: &[String]) -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let mut shuffled = names.to_vec();
        shuffled.shuffle(&mut rand::rng());
        for name in &shuffled {
            store
                .put(&Path::from(name.as_str()), Bytes::from(name.clone()).into())
                .await
                .unwrap();
        }
        (dir, store)
    }

    #[tokio::test]
    async fn a_partition_folder_lists_in_key_order_from_any_offset() {
        let names: Vec<String> = (0..300)
            .map(|i| format!("topics/t/partition=0/{i:020}-{:020}.parquet", i + 1))
            .collect();
        let (_dir, store) = holding(&names).await;
        let folder = Path::from("topics/t/partition=0");
        assert_eq!(keys(store.list(Some(&folder))).await, names);
        let offset = Path::from(names[199].as_str());
        assert_eq!(
            keys(store.list_with_offset(Some(&folder), &offset)).await,
            names[200..]
        );
        // A prefix that sorts between two keys, as a listing window starts.
        let window = Path::from("topics/t/partition=0/00000000000000000250");
        assert_eq!(
            keys(store.list_with_offset(Some(&folder), &window)).await,
            names[250..]
        );
        // The metadata is LocalFileSystem's own.
        let mut theirs: Vec<ObjectMeta> =
            store.inner.list(Some(&folder)).try_collect().await.unwrap();
        theirs.sort_by(|a, b| a.location.cmp(&b.location));
        let ours: Vec<ObjectMeta> = store.list(Some(&folder)).try_collect().await.unwrap();
        assert_eq!(ours, theirs);
        assert!(
            keys(store.list(Some(&Path::from("topics/t/partition=9"))))
                .await
                .is_empty()
        );
    }

    /// A caller that stops early (tip discovery, locating an offset) costs a read of the
    /// folder's names and a stat of what it took, not a stat of every segment: files removed
    /// after the first entry was taken are no longer found, bar the few stat-ed ahead.
    #[tokio::test]
    async fn a_listing_stats_only_what_its_caller_takes() {
        let names: Vec<String> = (0..300).map(|i| format!("p/{i:020}.parquet")).collect();
        let (dir, store) = holding(&names).await;
        let mut listing = store.list(Some(&Path::from("p")));
        let first = listing.try_next().await.unwrap().unwrap();
        assert_eq!(first.location.as_ref(), names[0]);
        for name in &names[1..] {
            std::fs::remove_file(dir.path().join(name)).unwrap();
        }
        let rest: Vec<ObjectMeta> = listing.try_collect().await.unwrap();
        assert!(
            rest.len() <= LIST_STATS_IN_FLIGHT,
            "{} entries were stat-ed before they were asked for",
            rest.len()
        );
    }

    #[tokio::test]
    async fn folders_with_sub_folders_or_unusual_names_are_listed_whole_and_sorted() {
        let names: Vec<String> = [
            "topics/a/_topic.json",
            "topics/a/partition=0/x.parquet",
            "topics/a/partition=1/y.parquet",
            "topics/a-b/_topic.json",
            "odd/a b.txt",
            "odd/é.txt",
            "odd/z.txt",
        ]
        .map(String::from)
        .to_vec();
        let (_dir, store) = holding(&names).await;
        for prefix in ["topics", "odd"] {
            let got = keys(store.list(Some(&Path::from(prefix)))).await;
            let mut theirs = keys(store.inner.list(Some(&Path::from(prefix)))).await;
            theirs.sort();
            assert_eq!(got, theirs, "{prefix}");
            assert!(got.is_sorted(), "{got:?}");
        }
        let offset = Path::from("topics/a/partition=0");
        let after = keys(store.list_with_offset(Some(&Path::from("topics")), &offset)).await;
        assert_eq!(
            after,
            [
                "topics/a/partition=0/x.parquet",
                "topics/a/partition=1/y.parquet"
            ],
            "'topics/a-b' sorts before 'topics/a/'"
        );
    }

    #[tokio::test]
    async fn creates_once_and_stages_outside_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let key = Path::from("topics/t/partition=0/a.parquet");
        let create = || PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        store
            .put_opts(&key, Bytes::from_static(b"one").into(), create())
            .await
            .unwrap();
        let err = store
            .put_opts(&key, Bytes::from_static(b"two").into(), create())
            .await
            .unwrap_err();
        assert!(
            matches!(err, object_store::Error::AlreadyExists { .. }),
            "{err}"
        );
        let got = store.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"one");
        let folder: Vec<_> = std::fs::read_dir(dir.path().join("topics/t/partition=0"))
            .unwrap()
            .collect();
        assert_eq!(folder.len(), 1, "nothing but the object in its folder");
        assert_eq!(
            std::fs::read_dir(dir.path().join("_staging"))
                .unwrap()
                .count(),
            0
        );
    }

    /// An upload older than the safe age was abandoned by a crashed writer and goes; a fresh one
    /// may belong to a live writer and stays.
    #[test]
    fn sweep_removes_only_abandoned_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("_staging");
        std::fs::create_dir_all(&staging).unwrap();
        let now = SystemTime::now();
        let ages = [
            ("fresh", Duration::ZERO),
            ("young", STAGING_ABANDONED_AFTER - Duration::from_secs(60)),
            (
                "abandoned",
                STAGING_ABANDONED_AFTER + Duration::from_secs(60),
            ),
        ];
        for (name, age) in ages {
            let file = File::create(staging.join(name)).unwrap();
            file.set_modified(now - age).unwrap();
        }
        LocalStore::new(dir.path()).unwrap().sweep();
        let mut left: Vec<String> = std::fs::read_dir(&staging)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["fresh", "young"]);
    }
}
