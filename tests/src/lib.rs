//! Shared helpers for pail's integration tests.
//!
//! [`Backend`] names the three stores every conformance test runs on. The S3 backend talks to
//! the server named by `PAIL_TEST_S3_URL` (plus the standard AWS variables); `tests/run.sh`
//! starts moto on loopback and sets them. When the variables are absent the S3 tests fail if
//! `PAIL_REQUIRE_S3=1` (as in CI) and are skipped with a message otherwise.
#![allow(clippy::unwrap_used)]

use object_store::ObjectStore;
use pail_core::storage::faults::{Faults, FaultyStore};
use pail_core::storage::metrics::{MeteredStore, RequestCounts};
use pail_core::{FetchLimits, OffsetSpec, Pail, Store, StoredRecord};
use std::sync::Arc;

/// One of the stores the suite runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Local,
    S3,
}

/// A store for one test, with whatever keeps it alive (a temporary directory).
pub struct TestStore {
    pub store: Store,
    /// The URL a `pail` process can open the same store with (not for memory).
    pub url: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    /// A fresh, empty store on `backend`, or `None` when S3 is not configured and not required.
    pub async fn new(backend: Backend) -> Option<TestStore> {
        match backend {
            Backend::Memory => Some(TestStore {
                store: Store::memory(),
                url: None,
                _dir: None,
            }),
            Backend::Local => {
                let dir = tempfile::tempdir().unwrap();
                let url = dir.path().to_str().unwrap().to_string();
                Some(TestStore {
                    store: Store::open(&url).await.unwrap(),
                    url: Some(url),
                    _dir: Some(dir),
                })
            }
            Backend::S3 => {
                let base = s3_url()?;
                // Each test gets its own prefix, so tests never see each other's objects.
                let url = format!("{}/{}", base.trim_end_matches('/'), unique("t"));
                Some(TestStore {
                    store: Store::open(&url).await.unwrap(),
                    url: Some(url),
                    _dir: None,
                })
            }
        }
    }

    /// A client on this store.
    pub fn client(&self) -> Pail {
        Pail::new(self.store.clone())
    }

    /// The same store seen through seeded fault injection.
    pub fn faulty(&self, seed: u64) -> (Store, Arc<Faults>) {
        let faults = Faults::new(seed);
        let f = Arc::clone(&faults);
        let store = self
            .store
            .layered(move |inner| Arc::new(FaultyStore::new(inner, f)) as Arc<dyn ObjectStore>);
        (store, faults)
    }

    /// The same store with every request counted.
    pub fn metered(&self) -> (Store, Arc<RequestCounts>) {
        let counts = Arc::new(RequestCounts::default());
        let c = Arc::clone(&counts);
        let store = self
            .store
            .layered(move |inner| Arc::new(MeteredStore::new(inner, c)) as Arc<dyn ObjectStore>);
        (store, counts)
    }
}

/// The S3 test bucket URL, if configured; panics if it is required but missing.
pub fn s3_url() -> Option<String> {
    match std::env::var("PAIL_TEST_S3_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("PAIL_REQUIRE_S3").as_deref() == Ok("1") => {
            panic!(
                "PAIL_REQUIRE_S3=1 but PAIL_TEST_S3_URL is not set: start the S3 server (tests/run.sh)"
            )
        }
        _ => {
            eprintln!(
                "skipping: PAIL_TEST_S3_URL is not set (tests/run.sh starts an S3 server and sets it)"
            );
            None
        }
    }
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand::random::<u64>())
}

/// Every record of a partition from the log start to the high watermark.
pub async fn read_all(pail: &Pail, topic: &str, partition: u32) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    let mut from = OffsetSpec::Earliest;
    loop {
        let got = pail
            .fetch(topic, partition, from, FetchLimits::default())
            .await
            .unwrap();
        out.extend(got.records);
        if got.next_offset >= got.high_watermark {
            return out;
        }
        from = OffsetSpec::At(got.next_offset as i64);
    }
}

/// Asserts a partition's offsets run `start..start+n` with no gap or overlap.
pub fn assert_contiguous(records: &[StoredRecord], start: u64) {
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r.offset,
            start + i as u64,
            "offset gap or overlap at position {i}"
        );
    }
}

/// Generates one `#[tokio::test]` per backend for each scenario function
/// `async fn name(b: Backend)`, in modules `memory`, `local` and `s3`.
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name($crate::Backend::Memory).await })*
        }
        mod local {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name($crate::Backend::Local).await })*
        }
        mod s3 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name($crate::Backend::S3).await })*
        }
    };
}
