//! Shared helpers for pail's integration tests.
//!
//! [`Backend`] names the three stores every conformance test runs on. The S3 backend talks to
//! the server named by `PAIL_TEST_S3_URL` (plus the standard AWS variables); `tests/run.sh`
//! starts moto on loopback and sets them. When the variables are absent the S3 tests fail if
//! `PAIL_REQUIRE_S3=1` (as in CI) and are skipped with a message otherwise.
#![allow(clippy::unwrap_used)]

pub mod cli;
pub mod lambda;
pub mod sim;

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
        // Only an empty fetch has confirmed the end of the log with the store.
        if got.records.is_empty() && got.next_offset >= got.high_watermark {
            return out;
        }
        out.extend(got.records);
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

/// The `pail` binary the CLI and analytics tests run: `$PAIL_BIN` if set, else
/// `<target dir>/debug/pail` (the target dir is `$CARGO_TARGET_DIR` or `<workspace>/target`).
///
/// Integration tests of this crate cannot ask cargo to build another crate's binary, so it must
/// exist already (`tests/run.sh` builds it). Panics, saying how to build it, when it is missing.
pub fn pail_bin() -> std::path::PathBuf {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| find_bin("pail", "PAIL_BIN")).clone()
}

/// The `pail-http` binary (the HTTP API as a Lambda function): `$PAIL_HTTP_BIN` if set, else
/// next to `pail`, found the same way as [`pail_bin`].
pub fn pail_http_bin() -> std::path::PathBuf {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| find_bin("pail-http", "PAIL_HTTP_BIN"))
        .clone()
}

fn find_bin(name: &str, var: &str) -> std::path::PathBuf {
    let build = format!("cargo build -p pail-functions --bin {name}");
    if let Some(bin) = std::env::var_os(var).filter(|b| !b.is_empty()) {
        let bin = std::path::PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "{var}={} does not exist: build it with {build}",
            bin.display()
        );
        return bin;
    }
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|t| !t.is_empty())
        .map(std::path::PathBuf::from)
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                workspace.join(t)
            }
        })
        .unwrap_or_else(|| workspace.join("target"));
    let bin = target
        .join("debug")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "no {name} binary at {}: build it with {build} (or point {var} at one)",
        bin.display()
    );
    warn_if_stale(&bin, &workspace);
    bin
}

/// Says so on stderr when a source file of the CLI is newer than the binary under test.
fn warn_if_stale(bin: &std::path::Path, workspace: &std::path::Path) {
    fn newest(dir: &std::path::Path) -> Option<std::time::SystemTime> {
        let mut latest = None;
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            let t = if path.is_dir() {
                newest(&path)
            } else {
                entry.metadata().and_then(|m| m.modified()).ok()
            };
            latest = latest.max(t);
        }
        latest
    }
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok();
    let source = ["core/src", "functions/src"]
        .iter()
        .filter_map(|d| newest(&workspace.join(d)))
        .max();
    if let (Some(built), Some(source)) = (built, source)
        && source > built
    {
        eprintln!(
            "warning: {} is older than the core/functions sources; rebuild it with \
             cargo build -p pail-functions --bins",
            bin.display()
        );
    }
}

/// What a finished child process left.
#[derive(Debug)]
pub struct Finished {
    /// The command line, for messages.
    pub what: String,
    /// The exit code (`None` if a signal ended it).
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: std::time::Duration,
}

impl Finished {
    pub fn stdout_text(&self) -> String {
        String::from_utf8(self.stdout.clone()).unwrap()
    }

    /// Panics with the command's stderr unless it exited 0.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "{} failed (exit {:?}); stderr:\n{}",
            self.what,
            self.code,
            self.stderr
        );
        self
    }
}

/// A child process started by [`spawn_timed`], with threads feeding its stdin and draining
/// its stdout and stderr (so no pipe can fill up and stall it).
pub struct Running {
    what: String,
    child: std::process::Child,
    started: std::time::Instant,
    feeder: Option<std::thread::JoinHandle<()>>,
    out: std::thread::JoinHandle<Vec<u8>>,
    err: std::thread::JoinHandle<Vec<u8>>,
}

/// Starts `cmd` with `stdin` as its standard input (or none: an empty stdin).
pub fn spawn_timed(mut cmd: std::process::Command, stdin: Option<Vec<u8>>) -> Running {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let started = std::time::Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let feeder = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().unwrap();
        // A child that exits early (bad input) closes the pipe: not an error here.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    Running {
        what,
        child,
        started,
        feeder,
        out,
        err,
    }
}

impl Running {
    /// Waits for the process to exit, at most `timeout` after it started; past that it is
    /// killed and the test fails, quoting what it had written to stderr.
    pub fn wait(mut self, timeout: std::time::Duration) -> Finished {
        let deadline = self.started + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = String::from_utf8_lossy(&self.err.join().unwrap()).into_owned();
                panic!(
                    "{} did not finish within {timeout:?} (killed); stderr:\n{stderr}",
                    self.what
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        self.collect(status)
    }

    /// What an ended process left: its exit code and everything it wrote.
    fn collect(self, status: std::process::ExitStatus) -> Finished {
        let elapsed = self.started.elapsed();
        if let Some(feeder) = self.feeder {
            // A reader that ended closes the pipe; the feeder's write then fails and it ends.
            feeder.join().unwrap();
        }
        Finished {
            what: self.what,
            code: status.code(),
            stdout: self.out.join().unwrap(),
            stderr: String::from_utf8_lossy(&self.err.join().unwrap()).into_owned(),
            elapsed,
        }
    }
}

/// Runs `cmd` to completion with `stdin`, failing the test if it takes longer than `timeout`.
pub fn run_timed(
    cmd: std::process::Command,
    stdin: Option<Vec<u8>>,
    timeout: std::time::Duration,
) -> Finished {
    spawn_timed(cmd, stdin).wait(timeout)
}

/// A `pail --store STORE ...` command with a clean environment for pail's own variables
/// (`PAIL_STORE`, `RUST_BACKTRACE`, `RUST_LOG` removed).
pub fn pail_cmd(store: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(pail_bin());
    cmd.env_remove("PAIL_STORE")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .arg("--store")
        .arg(store);
    cmd
}

impl Running {
    /// Ends the process with `Child::kill` (SIGKILL on unix: nothing runs after it, no
    /// destructor, no flush) unless it has exited already, and collects what it left as
    /// [`Running::wait`] does. `code` is `None` when the signal ended it, and the exit code when
    /// the process had finished first.
    pub fn kill(mut self) -> Finished {
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        self.collect(status)
    }
}

impl Finished {
    /// Asserts the command failed the way pail promises: exit `code`, exactly one stderr line
    /// starting `pail:` (the only other allowed line is produce's summary), no panic text, and
    /// every needle in that line. Returns the line.
    pub fn assert_one_error(&self, code: i32, needles: &[&str]) -> String {
        assert_eq!(
            self.code,
            Some(code),
            "{}: expected exit {code}; stderr:\n{}",
            self.what,
            self.stderr
        );
        for bad in ["panicked", "backtrace", "internal error", "RUST_BACKTRACE"] {
            assert!(
                !self.stderr.contains(bad),
                "{}: stderr mentions {bad:?}:\n{}",
                self.what,
                self.stderr
            );
        }
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("pail:"))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "{}: expected exactly one 'pail:' line; stderr:\n{}",
            self.what,
            self.stderr
        );
        for other in self.stderr.lines().filter(|l| !l.starts_with("pail:")) {
            assert!(
                other.starts_with("produced "),
                "{}: unexpected stderr line {other:?}",
                self.what
            );
        }
        let line = errors[0].to_string();
        for needle in needles {
            assert!(
                line.contains(needle),
                "{}: the error should mention {needle:?}: {line}",
                self.what
            );
        }
        line
    }
}

/// The Python interpreter for the analytics checks (`PAIL_PYTHON`), if there is one; panics
/// when it is required (`PAIL_REQUIRE_PYTHON=1`, as in CI) but missing.
pub fn python() -> Option<String> {
    match std::env::var("PAIL_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("PAIL_REQUIRE_PYTHON").as_deref() == Ok("1") => panic!(
            "PAIL_REQUIRE_PYTHON=1 but PAIL_PYTHON is not set: point it at a Python with \
             tests/requirements.txt installed (tests/run.sh uses .venv/bin/python)"
        ),
        _ => {
            eprintln!(
                "skipping the analytics check: PAIL_PYTHON is not set (tests/run.sh sets it)"
            );
            None
        }
    }
}

/// Wall time as tokio's clock tells it, from one origin per thread, so every client of a test
/// on a paused runtime agrees on the time and leases expire in step with `tokio::time::sleep`.
#[derive(Debug)]
pub struct TokioClock(tokio::time::Instant);

impl TokioClock {
    pub fn shared() -> std::sync::Arc<dyn pail_core::Clock> {
        thread_local! {
            static ORIGIN: tokio::time::Instant = tokio::time::Instant::now();
        }
        std::sync::Arc::new(TokioClock(ORIGIN.with(|o| *o)))
    }
}

impl pail_core::Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        1_700_000_000_000 + self.0.elapsed().as_millis() as i64
    }
}

/// A minimal HTTP/1.1 client over a fresh TCP connection per request (`Connection: close`),
/// for tests of servers on loopback: no client library to hide what goes over the wire.
pub mod http {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Serves `app` on a free loopback port for the rest of the test; its base URL.
    pub async fn serve_local(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    /// A status and body.
    #[derive(Debug)]
    pub struct Reply {
        pub status: u16,
        pub body: String,
    }

    impl Reply {
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
        }
    }

    /// The request's bytes: `body` as JSON when given, plus any extra header lines.
    pub fn encode(method: &str, path: &str, headers: &[&str], body: Option<&str>) -> Vec<u8> {
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        if let Some(body) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body.unwrap_or_default());
        req.into_bytes()
    }

    /// Sends one request and reads the whole answer.
    pub async fn request(
        addr: &str,
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<&str>,
    ) -> Reply {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(&encode(method, path, headers, body))
            .await
            .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        Reply { status, body }
    }

    fn dechunk(mut body: &str) -> String {
        let mut out = String::new();
        while let Some((size, rest)) = body.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.push_str(&rest[..size]);
            body = &rest[size + 2..];
        }
        out
    }

    /// Sends a request and returns the open connection without reading the answer: a client
    /// that will go away mid-request when the stream is dropped.
    pub async fn abandon(addr: &str, method: &str, path: &str) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(&encode(method, path, &[], None))
            .await
            .unwrap();
        stream
    }
}

/// A free port on loopback (bound, then released for a server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
