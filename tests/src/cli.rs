//! Helpers for the tests that run the `pail` binary (`tests/cli*.rs`): a directory store in a
//! temporary folder, commands with a deadline, and readers of what `consume` prints.

use crate::{Finished, pail_cmd, run_timed};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Deadline for one ordinary command.
pub const COMMAND: Duration = Duration::from_secs(60);

/// A directory store in a fresh temporary directory. The store is a sub-folder, so a test can
/// check that nothing was written next to it.
pub struct LocalStore {
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl Default for LocalStore {
    fn default() -> Self {
        LocalStore::new()
    }
}

impl LocalStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("store").to_str().unwrap().to_string();
        LocalStore { dir, url }
    }

    pub fn root(&self) -> PathBuf {
        PathBuf::from(&self.url)
    }
}

pub fn pail(store: &str, args: &[&str]) -> Finished {
    let mut cmd = pail_cmd(store);
    cmd.args(args);
    run_timed(cmd, None, COMMAND)
}

pub fn pail_with_stdin(store: &str, args: &[&str], stdin: impl Into<Vec<u8>>) -> Finished {
    let mut cmd = pail_cmd(store);
    cmd.args(args);
    run_timed(cmd, Some(stdin.into()), COMMAND)
}

pub fn create(store: &str, topic: &str, partitions: u32) {
    pail(
        store,
        &[
            "topic",
            "create",
            topic,
            "--partitions",
            &partitions.to_string(),
        ],
    )
    .assert_ok();
}

/// `lines` joined with newlines, the last one with a newline too.
pub fn input(lines: &[String]) -> Vec<u8> {
    let mut text = lines.join("\n");
    text.push('\n');
    text.into_bytes()
}

/// One consumed record, from `consume --format json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub partition: u32,
    pub offset: u64,
    pub key: Option<String>,
    pub value: String,
}

pub fn parse_json_records(f: &Finished, topic: &str) -> Vec<Rec> {
    f.stdout_text()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("consume printed a line that is not JSON ({e}): {line}")
            });
            assert_eq!(v["topic"], topic, "{line}");
            assert_eq!(v["value_encoding"], "utf8", "{line}");
            assert!(
                v["timestamp"].as_i64().unwrap() > 1_600_000_000_000,
                "{line}"
            );
            assert!(v["headers"].as_array().unwrap().is_empty(), "{line}");
            let key = match &v["key"] {
                Value::Null => {
                    assert_eq!(v["key_encoding"], Value::Null, "{line}");
                    None
                }
                k => {
                    assert_eq!(v["key_encoding"], "utf8", "{line}");
                    Some(k.as_str().unwrap().to_string())
                }
            };
            Rec {
                partition: v["partition"].as_u64().unwrap() as u32,
                offset: v["offset"].as_u64().unwrap(),
                key,
                value: v["value"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

pub fn consume_json(store: &str, topic: &str, extra: &[&str]) -> Vec<Rec> {
    let mut args = vec!["consume", topic, "--format", "json"];
    args.extend_from_slice(extra);
    parse_json_records(pail(store, &args).assert_ok(), topic)
}

pub fn describe(store: &str, topic: &str) -> Value {
    let f = pail(store, &["topic", "describe", topic, "--format", "json"]);
    serde_json::from_slice(&f.assert_ok().stdout).unwrap()
}

/// `next_offset` of every partition, from `describe --format json`.
pub fn next_offsets(store: &str, topic: &str) -> Vec<u64> {
    describe(store, topic)["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["next_offset"].as_u64().unwrap())
        .collect()
}

/// Relative paths and sizes of every file under `root`, sorted.
pub fn files_under(root: &Path) -> Vec<(String, u64)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                out.push((rel, entry.metadata().unwrap().len()));
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

/// The committed objects of a store (segments and descriptors; hints are advisory and may be
/// rewritten by any command).
pub fn committed_objects(root: &Path) -> Vec<(String, u64)> {
    files_under(root)
        .into_iter()
        .filter(|(p, _)| !p.contains("/_hints/"))
        .collect()
}

/// The newest segment object of one partition of a directory store.
pub fn newest_segment(store: &LocalStore, topic: &str, partition: u32) -> PathBuf {
    let dir = store
        .root()
        .join("topics")
        .join(topic)
        .join(format!("partition={partition}"));
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    segments.sort();
    segments.pop().unwrap()
}

/// A store with a topic `keep` (2 partitions, 3 + 2 records) to check nothing else changes.
pub fn store_with_data() -> LocalStore {
    let store = LocalStore::new();
    create(&store.url, "keep", 2);
    for (p, lines) in [(0, vec!["a", "b", "c"]), (1, vec!["d", "e"])] {
        let lines: Vec<String> = lines.into_iter().map(String::from).collect();
        pail_with_stdin(
            &store.url,
            &["produce", "keep", "--partition", &p.to_string()],
            input(&lines),
        )
        .assert_ok();
    }
    store
}

/// What `keep` holds, as consume prints it.
pub fn keep_contents(store: &LocalStore) -> Vec<Rec> {
    let records = consume_json(&store.url, "keep", &[]);
    let values: Vec<(u32, u64, &str)> = records
        .iter()
        .map(|r| (r.partition, r.offset, r.value.as_str()))
        .collect();
    assert_eq!(
        values,
        vec![
            (0, 0, "a"),
            (0, 1, "b"),
            (0, 2, "c"),
            (1, 0, "d"),
            (1, 1, "e")
        ]
    );
    records
}

/// A `pail` process whose stdout and stderr go to files, so a test can read them while it
/// runs (`consume --follow`). Killed when dropped.
pub struct Watched {
    child: std::process::Child,
    what: String,
    _dir: tempfile::TempDir,
    out: PathBuf,
    err: PathBuf,
}

impl Watched {
    pub fn start(store: &str, args: &[&str]) -> Watched {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let mut cmd = pail_cmd(store);
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        let what = format!("{cmd:?}");
        let child = cmd.spawn().unwrap();
        Watched {
            child,
            what,
            _dir: dir,
            out,
            err,
        }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.out).unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.err).unwrap()).into_owned()
    }

    /// Waits until `ready(stdout, stderr)` holds; fails the test, quoting both, if it does not
    /// within `deadline` or the process ends first.
    pub fn wait_for(&mut self, what: &str, deadline: Duration, ready: impl Fn(&str, &str) -> bool) {
        let until = std::time::Instant::now() + deadline;
        loop {
            let (out, err) = (self.stdout(), self.stderr());
            if ready(&out, &err) {
                return;
            }
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none() && std::time::Instant::now() < until,
                "{}: no {what} (exit {exited:?}); stdout:\n{out}\nstderr:\n{err}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends the process (SIGKILL) and returns what it wrote to stdout and stderr.
    pub fn kill(mut self) -> (String, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.stdout(), self.stderr())
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every line of `consume --format json` output, parsed.
pub fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Topic `topic` of 2 partitions: twenty records on partition 0 with "poison" at offset 13,
/// "x" and "y" on partition 1 (the consumer function's tests).
pub fn produce_with_poison(store: &str, topic: &str) {
    create(store, topic, 2);
    let lines: String = (0..20)
        .map(|i| match i {
            13 => "poison\n".to_string(),
            _ => format!("r{i}\n"),
        })
        .collect();
    pail_with_stdin(store, &["produce", topic, "-p", "0"], lines).assert_ok();
    pail_with_stdin(store, &["produce", topic, "-p", "1"], "x\ny\n").assert_ok();
}
