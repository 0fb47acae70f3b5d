//! The Delta Lake view of a topic (issue 12): after each maintenance pass, the `deltalake`
//! Python package and polars read exactly the records `pail consume` prints up to that pass's
//! sync, before, during (grace period) and after compaction, after retention, and from a
//! checkpoint.
//! `tests/python/check_delta.py` does the reading and comparing.
//!
//! Needs a Python with tests/requirements.txt installed, named by `PAIL_PYTHON` (see
//! `pail_tests::python`); the S3 run needs `PAIL_TEST_S3_URL` too.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use pail_core::maintain::MaintainOptions;
use pail_core::storage::keys;
use pail_core::{Header, ManualClock, Pail, PailOptions, Record, TopicConfig, TopicName};
use pail_tests::{Backend, TestStore, pail_bin, python, run_timed};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const TOPIC: &str = "orders";
const PARTITIONS: u32 = 3;
const CHECK: Duration = Duration::from_secs(300);
const GRACE_MS: i64 = 600_000;

/// Segment objects in the topic's partition folders.
async fn segment_objects(ts: &TestStore) -> usize {
    let topic = TopicName::new(TOPIC).unwrap();
    let mut n = 0;
    for p in 0..PARTITIONS {
        let dir = keys::partition_dir(&topic, p);
        n += ts.store.list_after(&dir, None).await.unwrap().len();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_delta_view_reads_exactly_the_synced_records() {
    delta_view(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_delta_view_reads_exactly_the_synced_records() {
    delta_view(Backend::S3).await;
}

/// Binary values, a key on every other record, headers (one without a value, a non-ASCII key).
fn records(batch: u32, n: u32) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut value = vec![0xff, 0x00];
            value.extend_from_slice(&(batch * 100 + i).to_be_bytes());
            Record {
                key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(value)),
                headers: vec![
                    Header {
                        key: "batch".into(),
                        value: Some(Bytes::from(batch.to_string())),
                    },
                    Header {
                        key: "ключ".into(),
                        value: None,
                    },
                ],
                timestamp_ms: None,
            }
        })
        .collect()
}

struct View {
    python: String,
    url: String,
    pail: Pail,
    clock: ManualClock,
}

impl View {
    fn options(&self) -> PailOptions {
        PailOptions {
            clock: Arc::new(self.clock.clone()),
            ..PailOptions::default()
        }
    }

    /// One maintenance pass, then each partition's next offset (what the sync brought in).
    async fn maintain(&self) -> (String, u64) {
        self.maintain_with(0).await
    }

    async fn maintain_with(&self, grace_ms: i64) -> (String, u64) {
        let opts = MaintainOptions {
            grace_ms,
            ..MaintainOptions::default()
        };
        let reports = self.pail.maintain(Some(TOPIC), opts).await.unwrap();
        let mut until = Vec::new();
        for p in 0..PARTITIONS {
            let tip = self.pail.partition_tip(TOPIC, p).await.unwrap();
            until.push(format!("{p}={}", tip.state.next_offset));
        }
        (until.join(","), reports[0].delta_version.unwrap())
    }

    async fn append(&self, batches: u32, first: u32) {
        for b in first..first + batches {
            let p = b % PARTITIONS;
            self.pail.append(TOPIC, p, records(b, 5)).await.unwrap();
            self.clock.advance_ms(1_000);
        }
    }

    /// Runs check_delta.py and fails the test with its message unless it agrees.
    async fn check(&self, until: &str, version: u64, checkpoint: bool) {
        let mut cmd = Command::new(&self.python);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/check_delta.py");
        cmd.env_remove("PAIL_STORE")
            .arg(script)
            .args(["--store", &self.url, "--topic", TOPIC, "--until", until])
            .args(["--version", &version.to_string()])
            .arg("--pail")
            .arg(pail_bin());
        if checkpoint {
            cmd.arg("--checkpoint");
        }
        let f = tokio::task::spawn_blocking(move || run_timed(cmd, None, CHECK))
            .await
            .unwrap();
        assert_eq!(f.code, Some(0), "{}: {}", f.what, f.stderr);
        eprintln!("{}", f.stdout_text().trim());
    }
}

async fn delta_view(b: Backend) {
    let Some(python) = python() else {
        return;
    };
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let clock = ManualClock::new(1_700_000_000_000);
    let options = PailOptions {
        clock: Arc::new(clock.clone()),
        ..PailOptions::default()
    };
    let pail = Pail::with_options(ts.store.clone(), options);
    let mut config = TopicConfig::new(PARTITIONS);
    config.compact_min_segments = 4;
    pail.create_topic(TOPIC, config).await.unwrap();
    let v = View {
        python,
        url: ts.url.clone().unwrap(),
        pail,
        clock,
    };
    // Three segments per partition: too few to merge.
    v.append(9, 0).await;
    let (until, version) = v.maintain().await;
    assert_eq!(version, 0);
    v.check(&until, 0, false).await;
    // Committed after the sync: not in the table until the next pass.
    v.append(6, 9).await;
    v.check(&until, 0, false).await;
    // Five segments per partition now: merged, the originals removed in the same commit.
    // During the grace period the originals are still in the store but not in the table.
    let (until, version) = v.maintain_with(GRACE_MS).await;
    v.check(&until, version, false).await;
    let objects = segment_objects(&ts).await;
    v.clock.advance_ms(GRACE_MS);
    let (until, version) = v.maintain_with(GRACE_MS).await;
    assert!(
        segment_objects(&ts).await < objects,
        "the originals were deleted"
    );
    v.check(&until, version, false).await;
    // Everything so far expires; only the fresh batches stay.
    let setting = [("retention.ms".to_string(), "60000".to_string())];
    v.pail.alter_topic(TOPIC, &setting, None).await.unwrap();
    v.clock.advance_ms(120_000);
    v.append(3, 15).await;
    let (until, version) = v.maintain().await;
    v.check(&until, version, false).await;
    // Three passes at once from separate clients: one table, no file twice, none missing.
    v.append(6, 18).await;
    let passes: Vec<_> = (0..3)
        .map(|_| {
            let pail = Pail::with_options(ts.store.clone(), v.options());
            tokio::spawn(
                async move { pail.maintain(Some(TOPIC), MaintainOptions::default()).await },
            )
        })
        .collect();
    for p in passes {
        p.await.unwrap().unwrap();
    }
    let (until, version) = v.maintain().await;
    v.check(&until, version, false).await;
    // Enough syncs for a checkpoint: deltalake starts from it.
    let mut last = (until, version);
    for round in 0..10 {
        v.append(1, 24 + round).await;
        last = v.maintain().await;
    }
    assert!(last.1 >= 10, "version {}", last.1);
    v.check(&last.0, last.1, true).await;
}
