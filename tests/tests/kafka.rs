//! The Kafka listener (`pail kafka`) with clients no one here wrote, and its faults.
//!
//! - `three_clients_agree_through_two_listeners`: confluent-kafka (librdkafka), kafka-python
//!   and kcat produce through one listener and consume through another on the same store;
//!   `tests/python/kafka_clients.py` checks that everyone reads what was sent, byte for byte,
//!   and that `pail consume` and DuckDB agree.
//! - `killed_listener_loses_no_acknowledged_record`: an idempotent confluent producer keeps
//!   producing while its listener is SIGKILLed and replaced on the same address, three times;
//!   every acknowledged record is in the log at its acknowledged offset, and every record is
//!   there exactly once (retries after a lost answer are appended once). On a directory store
//!   and on the S3 server.
//! - `consumer_groups_of_each_client_split_partitions_and_commit`: two-member groups of
//!   confluent-kafka and of kafka-python, one member per listener, split a 4-partition topic,
//!   read every record once, commit, and resume from the commits (`tests/python/
//!   kafka_groups.py`, which also checks simple commits and DeleteTopics).
//! - `kcat_balanced_consumers_split_the_partitions`: two `kcat -G` members on two listeners.
//! - `broken_frames_close_only_their_connection` and
//!   `api_versions_lists_only_what_is_served`: raw bytes on a socket, no client library.
//!
//! The Python tests need `PAIL_PYTHON` (tests/run.sh sets it) and the `pail` binary. kcat is
//! installed by tests/run.sh where apt can; without it its part is skipped with a warning,
//! or fails when `PAIL_REQUIRE_KCAT=1`.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use pail_core::{Pail, TopicConfig};
use pail_tests::{
    Backend, TestStore, free_port, pail_cmd, python, read_all, run_timed, spawn_timed,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(300);

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// A `pail kafka` process, killed (SIGKILL) when dropped.
struct Listener {
    child: Child,
    addr: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Listener {
    /// Starts a listener on `store` at `listen` (port 0: any) and waits for its address.
    fn start(store: &str, listen: &str) -> Listener {
        let mut child = pail_cmd(store)
            .args(["kafka", "--listen", listen, "--auto-create-partitions", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("pail kafka listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Listener {
            child,
            addr,
            stderr: Some(stderr),
        }
    }

    /// SIGKILL, and what the listener logged.
    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kcat_available() -> bool {
    let ok = Command::new("kcat")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert_ne!(
            std::env::var("PAIL_REQUIRE_KCAT").as_deref(),
            Ok("1"),
            "PAIL_REQUIRE_KCAT=1 but kcat is not installed (apt-get install kcat)"
        );
        eprintln!(
            "\n*** WARNING: kcat is not installed: the kcat part of the Kafka client test is \
             SKIPPED (apt-get install kcat) ***\n"
        );
    }
    ok
}

/// Runs a client script against two listeners on one fresh store and checks it says OK.
fn run_client_script(name: &str, extra: &[&str]) {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store = store.to_str().unwrap();
    let a = Listener::start(store, "127.0.0.1:0");
    let b = Listener::start(store, "127.0.0.1:0");
    let mut cmd = Command::new(python);
    cmd.arg(script(name))
        .args(["--bootstrap", &format!("{},{}", a.addr, b.addr)])
        .args(["--store", store])
        .arg("--pail")
        .arg(pail_tests::pail_bin())
        .args(extra);
    let f = run_timed(cmd, None, DEADLINE);
    let logs = format!("listener A:\n{}\nlistener B:\n{}", a.kill(), b.kill());
    assert_eq!(
        f.code,
        Some(0),
        "{name} failed:\n{}{}\n{logs}",
        f.stderr,
        f.stdout_text()
    );
    println!("{}", f.stdout_text());
    let ok = format!("{}: OK", name.trim_end_matches(".py"));
    assert!(f.stdout_text().starts_with(&ok));
}

#[test]
fn three_clients_agree_through_two_listeners() {
    let no_kcat: &[&str] = if kcat_available() {
        &[]
    } else {
        &["--no-kcat"]
    };
    run_client_script("kafka_clients.py", no_kcat);
}

#[test]
fn consumer_groups_of_each_client_split_partitions_and_commit() {
    run_client_script("kafka_groups.py", &[]);
}

/// A `kcat -G` balanced consumer whose output lines (`partition offset value`) are collected
/// by a thread; SIGKILLed when dropped.
struct Kcat {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Kcat {
    fn start(addr: &str, group: &str, topic: &str) -> Kcat {
        let mut child = Command::new("kcat")
            .args([
                "-b",
                addr,
                "-G",
                group,
                topic,
                "-o",
                "beginning",
                "-q",
                "-u",
            ])
            .args([
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "heartbeat.interval.ms=1000",
            ])
            .args(["-f", "%p %o %s\\n"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Kcat { child, lines }
    }

    fn read(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Kcat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 100 ms until it holds or a minute passes (then fails with `what`).
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while !cond().await {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_balanced_consumers_split_the_partitions() {
    if !kcat_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store = store.to_str().unwrap();
    let pail = Pail::open(store).await.unwrap();
    pail.create_topic("kc", TopicConfig::new(4)).await.unwrap();
    let (a, b) = (
        Listener::start(store, "127.0.0.1:0"),
        Listener::start(store, "127.0.0.1:0"),
    );
    let members = [
        Kcat::start(&a.addr, "kg", "kc"),
        Kcat::start(&b.addr, "kg", "kc"),
    ];
    // Both members hold two partitions each in the group's state (decoded from the leader's
    // ConsumerProtocolAssignment), before any record exists.
    eventually("two kcat members with two partitions each", async || {
        let Ok(d) = pail.describe_group("kg").await else {
            return false;
        };
        d.state == "stable"
            && d.members.len() == 2
            && d.members.iter().all(|m| m.partitions.len() == 2)
    })
    .await;
    for i in 0..40u32 {
        let record = pail_core::Record::from_value(format!("v{i}"));
        pail.append("kc", i % 4, vec![record]).await.unwrap();
    }
    let total = || members.iter().map(|m| m.read().len()).sum::<usize>();
    eventually("40 records read", async || total() >= 40).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut values: Vec<String> = Vec::new();
    let mut partitions: Vec<std::collections::BTreeSet<String>> = Vec::new();
    for m in &members {
        let lines = m.read();
        partitions.push(
            lines
                .iter()
                .map(|l| l.split(' ').next().unwrap().to_string())
                .collect(),
        );
        values.extend(
            lines
                .iter()
                .map(|l| l.rsplit(' ').next().unwrap().to_string()),
        );
    }
    values.sort();
    let mut want: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(values, want, "every record read once");
    assert!(
        partitions[0].is_disjoint(&partitions[1]),
        "a partition read by both members: {partitions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_listener_loses_no_acknowledged_record() {
    killed_listener(Backend::Local).await;
}

/// The same on the S3 server, where a create's answer can also be lost in flight.
mod s3 {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_listener_loses_no_acknowledged_record() {
        super::killed_listener(pail_tests::Backend::S3).await;
    }
}

async fn killed_listener(backend: Backend) {
    let Some(python) = python() else {
        return;
    };
    let Some(ts) = TestStore::new(backend).await else {
        return;
    };
    const COUNT: usize = 4_000;
    let store = ts.url.clone().unwrap();
    let pail = Pail::open(&store).await.unwrap();
    pail.create_topic("fault", TopicConfig::new(2))
        .await
        .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut listener = Listener::start(&store, &addr);
    let mut cmd = Command::new(python);
    cmd.arg(script("kafka_fault.py"))
        .args(["--bootstrap", &addr, "--topic", "fault"])
        .args(["--count", &COUNT.to_string()]);
    let producer = spawn_timed(cmd, None);
    // Three times, mid-produce: SIGKILL the listener and start another on the same address.
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(700 + 300 * round)).await;
        listener.kill();
        listener = Listener::start(&store, &addr);
    }
    let f = tokio::task::spawn_blocking(move || producer.wait(DEADLINE))
        .await
        .unwrap();
    listener.kill();
    assert_eq!(
        f.code,
        Some(0),
        "producer failed:\n{}\n{}",
        f.stderr,
        f.stdout_text()
    );
    let report: serde_json::Value = serde_json::from_str(f.stdout_text().trim()).unwrap();

    // Every record exactly once; every acknowledged one at its acknowledged offset.
    let reader = Pail::open(&store).await.unwrap();
    let mut at: HashMap<String, (u32, u64)> = HashMap::new();
    for p in 0..2 {
        for r in read_all(&reader, "fault", p).await {
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            let again = at.insert(value.clone(), (p, r.offset));
            assert!(
                again.is_none(),
                "{value} appended twice: {again:?} and {p}/{}",
                r.offset
            );
        }
    }
    assert_eq!(at.len(), COUNT, "records in the log");
    let acked = report["acked"].as_array().unwrap();
    assert_eq!(acked.len(), COUNT);
    for a in acked {
        let i = a[0].as_u64().unwrap();
        let want = (a[1].as_u64().unwrap() as u32, a[2].as_u64().unwrap());
        assert_eq!(at.get(&format!("fault-{i:06}")), Some(&want), "record {i}");
    }
}

/// Sends raw bytes on a fresh connection and returns what came back before the listener
/// closed it (or before `wait` passed).
fn exchange(addr: &str, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// A request frame: length, api key, version, correlation id, null client id, then `body`.
fn request(key: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&key.to_be_bytes());
    r.extend_from_slice(&version.to_be_bytes());
    r.extend_from_slice(&correlation.to_be_bytes());
    r.extend_from_slice(&(-1i16).to_be_bytes());
    r.extend_from_slice(body);
    let mut framed = (r.len() as i32).to_be_bytes().to_vec();
    framed.extend(r);
    framed
}

/// (error code, [(key, min, max)]) of a v0 ApiVersions response frame.
fn parse_api_versions(frame: &[u8], correlation: i32) -> (i16, Vec<(i16, i16, i16)>) {
    let be16 = |at: usize| i16::from_be_bytes([frame[at], frame[at + 1]]);
    let be32 = |at: usize| i32::from_be_bytes(frame[at..at + 4].try_into().unwrap());
    assert_eq!(be32(0) as usize, frame.len() - 4, "length prefix");
    assert_eq!(
        be32(4),
        correlation,
        "a v0 header is the correlation id alone"
    );
    let count = be32(10) as usize;
    let keys = (0..count)
        .map(|i| (be16(14 + 6 * i), be16(16 + 6 * i), be16(18 + 6 * i)))
        .collect();
    (be16(8), keys)
}

#[test]
fn api_versions_lists_only_what_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let l = Listener::start(dir.path().to_str().unwrap(), "127.0.0.1:0");
    // v0 request: a v0 body.
    let got = exchange(&l.addr, &request(18, 0, 7, &[]), Duration::from_millis(500));
    let (error, keys) = parse_api_versions(&got, 7);
    assert_eq!(error, 0);
    let served: Vec<(i16, i16, i16)> = vec![
        (0, 3, 11), // Produce
        (1, 4, 12), // Fetch
        (2, 1, 7),  // ListOffsets
        (3, 0, 12), // Metadata
        (8, 2, 8),  // OffsetCommit
        (9, 1, 8),  // OffsetFetch
        (10, 0, 4), // FindCoordinator
        (11, 0, 7), // JoinGroup
        (12, 0, 4), // Heartbeat
        (13, 0, 4), // LeaveGroup
        (14, 0, 5), // SyncGroup
        (15, 0, 5), // DescribeGroups
        (16, 0, 4), // ListGroups
        (18, 0, 4), // ApiVersions
        (19, 2, 7), // CreateTopics
        (20, 1, 6), // DeleteTopics
        (22, 0, 4), // InitProducerId
        (32, 1, 4), // DescribeConfigs
    ];
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        sorted, served,
        "no transaction, KIP-848 or share-group API is advertised"
    );
    // A version above the range: error 35 and the ranges, in a v0 body and v0 header.
    let got = exchange(
        &l.addr,
        &request(18, 9, 8, &[0, 0, 0]),
        Duration::from_millis(500),
    );
    let (error, newer) = parse_api_versions(&got, 8);
    assert_eq!(error, 35, "UNSUPPORTED_VERSION");
    assert_eq!(newer, keys);
}

#[test]
fn broken_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let l = Listener::start(dir.path().to_str().unwrap(), "127.0.0.1:0");
    let wait = Duration::from_secs(5);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative length", (-5i32).to_be_bytes().to_vec()),
        ("oversized length", (200_000_000i32).to_be_bytes().to_vec()),
        ("short frame", vec![0, 0, 0, 2, 0, 18]),
        ("unknown api key", request(999, 0, 1, &[])),
        ("group api (not served)", request(11, 5, 1, &[])),
        ("unsupported version", request(0, 2, 1, &[])),
        ("garbage body", request(3, 12, 1, &[0xff; 40])),
    ];
    for (what, bytes) in &cases {
        let got = exchange(&l.addr, bytes, wait);
        assert!(got.is_empty(), "{what}: got an answer {got:?}");
    }
    // The listener still answers on a new connection, and said why it closed the others.
    let got = exchange(&l.addr, &request(18, 0, 3, &[]), Duration::from_millis(500));
    assert_eq!(parse_api_versions(&got, 3).0, 0);
    let log = l.kill();
    assert_eq!(
        log.matches("closing connection").count(),
        cases.len(),
        "one log line per broken connection:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

/// Request bodies made of the largest array lengths, as a 4-byte count and as a varint,
/// with and without a leading zero (the flexible header's empty tag buffer).
fn hostile_bodies() -> Vec<Vec<u8>> {
    let int32_max: Vec<u8> = [0x7f, 0xff, 0xff, 0xff].repeat(8);
    let varint_max: Vec<u8> = [0xff, 0xff, 0xff, 0xff, 0x0f].repeat(8);
    let mut bodies = Vec::new();
    for b in [int32_max, varint_max] {
        bodies.push([vec![0], b.clone()].concat());
        bodies.push(b);
    }
    bodies
}

#[test]
fn hostile_array_lengths_do_not_abort_the_listener() {
    // The decoder sizes vectors from untrusted lengths before reading them: 2^31 strings once
    // asked the allocator for 64 GiB and aborted the whole process (a ListGroups of 13 bytes).
    let dir = tempfile::tempdir().unwrap();
    let l = Listener::start(dir.path().to_str().unwrap(), "127.0.0.1:0");
    let got = exchange(&l.addr, &request(18, 0, 1, &[]), Duration::from_millis(500));
    let (_, served) = parse_api_versions(&got, 1);
    let mut frames = Vec::new();
    for &(key, min, max) in &served {
        for version in min..=max {
            for body in hostile_bodies() {
                frames.push(request(key, version, 2, &body));
            }
        }
    }
    for chunk in frames.chunks(64) {
        std::thread::scope(|s| {
            for frame in chunk {
                let addr = &l.addr;
                s.spawn(move || exchange(addr, frame, Duration::from_secs(2)));
            }
        });
    }
    let got = exchange(&l.addr, &request(18, 0, 3, &[]), Duration::from_millis(500));
    assert_eq!(
        parse_api_versions(&got, 3).0,
        0,
        "the listener still answers"
    );
    let log = l.kill();
    assert!(!log.contains("memory allocation"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn bad_listener_settings_are_one_error_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let run = |args: &[&str]| {
        let mut cmd = pail_cmd("memory://");
        cmd.arg("kafka").args(args);
        run_timed(cmd, None, Duration::from_secs(60))
    };
    run(&["--listen", &addr]).assert_one_error(1, &["cannot listen on", "in use"]);
    run(&["--listen", "127.0.0.1:0", "--advertise", "x"])
        .assert_one_error(1, &["--advertise \"x\" is not HOST:PORT"]);
    run(&["--listen", "127.0.0.1:0", "--advertise", "h:99999"])
        .assert_one_error(1, &["has no valid port"]);
    run(&["--listen", "nope"]).assert_one_error(2, &["--listen"]);
}
