//! Segments are plain Parquet: after racing writers of every kind (in-process clients, the
//! batching producer, `pail produce` processes), pyarrow and DuckDB must read exactly the log
//! that `pail consume` reads, and every file's metadata must agree with its rows.
//! `tests/python/check_analytics.py` does the reading and comparing.
//!
//! Needs a Python with tests/requirements.txt installed, named by `PAIL_PYTHON`
//! (`tests/run.sh` sets it to the project's .venv). Without it the test is skipped with a
//! message, or fails if `PAIL_REQUIRE_PYTHON=1`.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use pail_core::{Header, Pail, Producer, ProducerConfig, Record, TopicConfig};
use pail_tests::{Finished, pail_bin, pail_cmd, python, run_timed, spawn_timed};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TOPIC: &str = "mixed";
const PARTITIONS: u32 = 4;
const CHECK: Duration = Duration::from_secs(300);

fn check_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/check_analytics.py")
}

fn run_check(python: &str, store: &Path, topic: &str, keys_partitions: Option<u32>) -> Finished {
    let mut cmd = Command::new(python);
    cmd.env_remove("PAIL_STORE")
        .arg(check_script())
        .arg("--store")
        .arg(store)
        .args(["--topic", topic])
        .arg("--pail")
        .arg(pail_bin());
    if let Some(n) = keys_partitions {
        cmd.args(["--keys-partitions", &n.to_string()]);
    }
    run_timed(cmd, None, CHECK)
}

/// A record no text format would carry as-is: binary bytes, headers (one without a value,
/// repeated keys, a non-ASCII key) and a chosen timestamp.
fn binary_record(writer: u32, batch: u32, i: u32) -> Record {
    let n = writer * 1_000 + batch * 10 + i;
    let mut value = vec![0xff, 0x00, 0xfe];
    value.extend_from_slice(&n.to_be_bytes());
    Record {
        key: None,
        value: Some(Bytes::from(value)),
        headers: vec![
            Header {
                key: "writer".into(),
                value: Some(Bytes::from(format!("w{writer}"))),
            },
            Header {
                key: "raw".into(),
                value: Some(Bytes::from(vec![0x80, n as u8, 0x00])),
            },
            Header {
                key: "none".into(),
                value: None,
            },
            Header {
                key: "writer".into(),
                value: Some(Bytes::from_static(b"again")),
            },
            Header {
                key: "ключ".into(),
                value: Some(Bytes::new()),
            },
        ],
        timestamp_ms: Some(1_600_000_000_000 + i64::from(n)),
    }
}

/// Keyed records for the batching producer: binary keys, text keys, an empty key, a
/// tombstone (no value), an empty value, and text with characters JSON must escape.
fn keyed_records() -> Vec<Record> {
    let mut out = Vec::new();
    for i in 0u32..300 {
        let key = if i % 3 == 0 {
            Bytes::from(vec![0xfe, (i % 50) as u8, 0x00, 0x9f])
        } else {
            Bytes::from(format!("acct-{}", i % 37))
        };
        out.push(Record {
            key: Some(key),
            value: Some(Bytes::from(format!(
                "payment {i} \"quoted\"\n\ttabbed \\ é"
            ))),
            headers: vec![Header {
                key: "seq".into(),
                value: Some(Bytes::from(i.to_string())),
            }],
            timestamp_ms: None,
        });
    }
    out.push(Record::keyed("", "empty key"));
    out.push(Record::keyed("acct-1", ""));
    out.push(Record {
        key: Some(Bytes::from_static(b"acct-2")),
        value: None,
        headers: vec![],
        timestamp_ms: Some(0),
    });
    out.push(Record {
        key: Some(Bytes::from_static(b"far-future")),
        value: Some(Bytes::from_static(b"2100")),
        headers: vec![],
        timestamp_ms: Some(4_102_444_800_000),
    });
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_leave_segments_any_parquet_reader_agrees_on() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let url = store.to_str().unwrap().to_string();
    let pail = Pail::open(&url).await.unwrap();
    pail.create_topic(TOPIC, TopicConfig::new(PARTITIONS))
        .await
        .unwrap();

    // `pail produce` processes with keyed lines, racing everything below. The last one's
    // values are not UTF-8, so consume prints them as base64.
    let cli: Vec<_> = (0..3)
        .map(|p| {
            let mut lines = Vec::new();
            for i in 0..400 {
                lines.extend_from_slice(format!("user-{}:", i % 29).as_bytes());
                if p == 2 {
                    lines.extend_from_slice(&[0xff, 0xfe, 0x00]);
                }
                lines.extend_from_slice(format!("cli{p}-{i}\n").as_bytes());
            }
            let mut cmd = pail_cmd(&url);
            cmd.args(["produce", TOPIC, "--key-separator", ":", "--linger-ms", "1"]);
            spawn_timed(cmd, Some(lines))
        })
        .collect();

    // 16 in-process clients, each with its own state (as separate processes or functions would
    // have), append unkeyed binary batches straight to partitions, four clients per partition.
    let mut writers = Vec::new();
    for w in 0..16u32 {
        let client = Pail::open(&url).await.unwrap();
        writers.push(tokio::spawn(async move {
            for b in 0..6 {
                let records = (0..5).map(|i| binary_record(w, b, i)).collect();
                client.append(TOPIC, w % PARTITIONS, records).await.unwrap();
            }
        }));
    }

    // The batching producer places keyed records by murmur2.
    let producer = Producer::new(
        Pail::open(&url).await.unwrap(),
        TOPIC,
        ProducerConfig {
            linger_ms: 1,
            ..ProducerConfig::default()
        },
    )
    .await
    .unwrap();
    let mut deliveries = Vec::new();
    for r in keyed_records() {
        deliveries.push(producer.send(r, None).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    for w in writers {
        w.await.unwrap();
    }
    let cli = tokio::task::spawn_blocking(move || {
        cli.into_iter()
            .map(|r| r.wait(Duration::from_secs(120)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for f in &cli {
        f.assert_ok();
    }

    let expected = 3 * 400 + 16 * 6 * 5 + keyed_records().len() as u64;
    let described = pail.describe_topic(TOPIC).await.unwrap();
    let total: u64 = described.partitions.iter().map(|p| p.next_offset).sum();
    assert_eq!(total, expected);

    let python_run = python.clone();
    let store_path = store.clone();
    let f = tokio::task::spawn_blocking(move || {
        run_check(&python_run, &store_path, TOPIC, Some(PARTITIONS))
    })
    .await
    .unwrap();
    assert_eq!(
        f.code,
        Some(0),
        "check_analytics.py failed:\n{}{}",
        f.stderr,
        f.stdout_text()
    );
    let summary = f.stdout_text();
    println!("{summary}");
    assert!(
        summary.contains(&format!("{expected} records")),
        "summary: {summary}"
    );

    // The checker itself fails loudly, with exit 1 and one line: on a wrong partition count
    // for the key check, on a topic that is not there, and when `pail consume` disagrees with
    // the files (a wrapper around pail that changes one record's timestamp).
    let liar = dir.path().join("lying-pail");
    let script = r#"#!/bin/sh
if [ "$3" = consume ]; then
  "PAIL" "$@" | sed '5s/"timestamp":\([0-9]*\)/"timestamp":\11/'
else
  exec "PAIL" "$@"
fi
"#;
    std::fs::write(&liar, script.replace("PAIL", pail_bin().to_str().unwrap())).unwrap();
    std::fs::set_permissions(&liar, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let store_path = store.clone();
    let (wrong, missing, lied) = tokio::task::spawn_blocking(move || {
        let mut lying = Command::new(&python);
        lying
            .arg(check_script())
            .arg("--store")
            .arg(&store_path)
            .args(["--topic", TOPIC, "--pail"])
            .arg(&liar);
        (
            run_check(&python, &store_path, TOPIC, Some(PARTITIONS + 1)),
            run_check(&python, &store_path, "absent", None),
            run_timed(lying, None, CHECK),
        )
    })
    .await
    .unwrap();
    for (f, needle) in [
        (&wrong, "--keys-partitions 5"),
        (&missing, "unknown topic"),
        (&lied, "pail consume and pyarrow differ"),
    ] {
        assert_eq!(f.code, Some(1), "{}", f.stderr);
        assert_eq!(f.stderr.lines().count(), 1, "{}", f.stderr);
        assert!(
            f.stderr.starts_with("check_analytics: FAIL:") && f.stderr.contains(needle),
            "{}",
            f.stderr
        );
    }
}
