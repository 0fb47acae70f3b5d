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

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
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
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
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
    use object_store::ObjectStoreExt;

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
