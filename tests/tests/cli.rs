//! The `pail` command line, run as a user would: separate processes on one store, stdin in,
//! stdout and stderr out, exit codes checked.
//!
//! Needs the binary built first (`cargo build -p pail-functions --bin pail`, or `PAIL_BIN`);
//! see [`pail_tests::pail_bin`]. Every process runs under a deadline and is killed (failing the
//! test) if it overruns, so a hang is a failure, never a stuck test run.
#![allow(clippy::unwrap_used)]

use pail_tests::cli::*;
use pail_tests::{Finished, pail_cmd, run_timed, spawn_timed};

fn assert_one_error(f: &Finished, code: i32, needles: &[&str]) -> String {
    f.assert_one_error(code, needles)
}
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Deadline for each of the racing producer processes.
const RACER: Duration = Duration::from_secs(120);

/// Records grouped by partition, each group in the order consumed.
fn by_partition(records: &[Rec]) -> BTreeMap<u32, Vec<&Rec>> {
    let mut out: BTreeMap<u32, Vec<&Rec>> = BTreeMap::new();
    for r in records {
        out.entry(r.partition).or_default().push(r);
    }
    out
}

/// Every partition's offsets run 0, 1, 2, ... with no gap or repeat.
fn assert_contiguous_from_zero(records: &[Rec]) {
    for (p, recs) in by_partition(records) {
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(
                r.offset, i as u64,
                "partition {p}: offset gap or repeat at position {i}"
            );
        }
    }
}

/// Asserts each value appears exactly once in `records` and the values are exactly `expected`.
fn assert_exactly_once<'a>(records: &[Rec], expected: impl IntoIterator<Item = &'a String>) {
    let mut seen: HashMap<&str, u32> = HashMap::new();
    for r in records {
        *seen.entry(r.value.as_str()).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "values consumed more than once: {dups:?}");
    let expected: BTreeSet<&str> = expected.into_iter().map(String::as_str).collect();
    let got: BTreeSet<&str> = seen.keys().copied().collect();
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} consumed, {} produced; missing {missing:?}, unexpected {extra:?}",
        got.len(),
        expected.len()
    );
}

// ---------------------------------------------------------------------------------------------
// a. The main job: lines in, the same lines out.

#[test]
fn ten_thousand_lines_round_trip_through_three_partitions() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "main", 3);
    let mut lines: Vec<String> = (0..10_000)
        .map(|i| format!("line {i:05} {}", "x".repeat(i % 23)))
        .collect();
    // Text that is not plain ASCII, separators that mean nothing without --key-separator, and
    // an empty line (an empty value) all come back as they went in.
    lines[1] = "ünïcödé ✓ \t tab".into();
    lines[2] = "k:v:w".into();
    lines[3] = String::new();
    let mut stdin = input(&lines);
    stdin.pop(); // the last line has no newline: still a record
    let produced = pail_with_stdin(s, &["produce", "main"], stdin);
    produced.assert_ok();
    assert!(
        produced.stderr.contains("produced 10000 records to main"),
        "summary: {}",
        produced.stderr
    );

    let text = pail(s, &["consume", "main"]).assert_ok().stdout_text();
    let mut got: Vec<&str> = text.split_terminator('\n').collect();
    let mut want: Vec<&str> = lines.iter().map(String::as_str).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got.len(), want.len(), "record count");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "consumed lines differ from produced lines; first difference in sorted order: \
             consumed {:?}, produced {:?}",
            got[i], want[i]
        );
    }

    let next = next_offsets(s, "main");
    assert_eq!(next.len(), 3);
    assert_eq!(next.iter().sum::<u64>(), 10_000, "next offsets {next:?}");

    let listed = pail(s, &["topic", "list"]).assert_ok().stdout_text();
    assert_eq!(listed, "main\n");
}

/// Group commit: one producer writing a burst should put many lines in each segment, not a
/// handful. (5,000 lines in at most 500 segments, i.e. at least 10 records per commit on
/// average; a healthy producer does far better.)
#[test]
fn one_producer_groups_lines_into_few_segments() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "burst", 1);
    let lines: Vec<String> = (0..5_000).map(|i| format!("burst-{i}")).collect();
    pail_with_stdin(s, &["produce", "burst"], input(&lines)).assert_ok();
    let d = describe(s, "burst");
    let p = &d["partitions"][0];
    assert_eq!(p["next_offset"], 5_000);
    let segments = p["segments"].as_u64().unwrap();
    assert!(
        segments <= 500,
        "5000 lines from one producer took {segments} commits ({:.1} records per segment): \
         the producer is not batching queued records",
        5_000.0 / segments as f64
    );
}

// ---------------------------------------------------------------------------------------------
// b. Separate producer processes racing on one store.

/// Runs `procs` producer processes at once, each with its own lines, and returns the lines of
/// each process.
fn race(s: &str, topic: &str, procs: usize, lines_each: usize, extra: &[&str]) -> Vec<Vec<String>> {
    let inputs: Vec<Vec<String>> = (0..procs)
        .map(|p| (0..lines_each).map(|i| format!("p{p}-{i}")).collect())
        .collect();
    // Start every process before any of them is waited for.
    let running: Vec<_> = inputs
        .iter()
        .map(|lines| {
            let mut cmd = pail_cmd(s);
            cmd.args(["produce", topic, "--linger-ms", "1"]).args(extra);
            spawn_timed(cmd, Some(input(lines)))
        })
        .collect();
    for (p, r) in running.into_iter().enumerate() {
        let f = r.wait(RACER);
        f.assert_ok();
        assert!(
            f.stderr
                .contains(&format!("produced {lines_each} records to {topic}")),
            "producer {p}: {}",
            f.stderr
        );
    }
    inputs
}

/// Within each partition, each producer's lines appear in the order it sent them.
fn assert_per_producer_order(records: &[Rec]) {
    for (p, recs) in by_partition(records) {
        let mut last: HashMap<&str, u64> = HashMap::new();
        for r in recs {
            let (producer, seq) = r.value.split_once('-').unwrap();
            let seq: u64 = seq.parse().unwrap();
            if let Some(prev) = last.insert(producer, seq) {
                assert!(
                    prev < seq,
                    "partition {p}: {producer}'s line {seq} is after its line {prev}"
                );
            }
        }
    }
}

#[test]
fn eight_producer_processes_race_on_one_partition() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "race", 1);
    let inputs = race(s, "race", 8, 1_000, &["--partition", "0"]);
    let records = consume_json(s, "race", &["--partition", "0"]);
    assert_eq!(records.len(), 8_000);
    assert!(records.iter().all(|r| r.partition == 0));
    assert_contiguous_from_zero(&records);
    assert_exactly_once(&records, inputs.iter().flatten());
    assert_per_producer_order(&records);
    assert_eq!(next_offsets(s, "race"), vec![8_000]);
}

#[test]
fn eight_producer_processes_race_over_four_partitions() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "spread", 4);
    // Small batches, so the sticky partitioner moves each producer across the partitions.
    let inputs = race(s, "spread", 8, 1_000, &["--batch-records", "100"]);
    let records = consume_json(s, "spread", &[]);
    assert_eq!(records.len(), 8_000);
    assert!(records.iter().all(|r| r.partition < 4));
    assert_contiguous_from_zero(&records);
    assert_exactly_once(&records, inputs.iter().flatten());
    assert_per_producer_order(&records);
    assert_eq!(next_offsets(s, "spread").iter().sum::<u64>(), 8_000);
}

// ---------------------------------------------------------------------------------------------
// c. Keyed lines. (Which partition a key lands on is checked against an independent murmur2,
// kafka-python's, by tests/python/check_analytics.py from the analytics test.)

#[test]
fn keyed_lines_keep_their_partition_and_order() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "keyed", 5);
    let keys: Vec<String> = (0..40).map(|k| format!("key-{k}")).collect();
    let mut produced: Vec<(String, String)> = Vec::new();
    // Two separate runs: the second must put every key where the first did.
    for run in 0..2 {
        let mut lines = Vec::new();
        for seq in 0..25 {
            for key in &keys {
                let value = format!("{run}-{seq:02}");
                lines.push(format!("{key}:{value}"));
                produced.push((key.clone(), value));
            }
        }
        // Only the first separator splits; either side may be empty.
        lines.push(format!("colons:{run}:a:b"));
        produced.push(("colons".into(), format!("{run}:a:b")));
        lines.push(format!(":{run}-empty-key"));
        produced.push((String::new(), format!("{run}-empty-key")));
        lines.push(format!("empty-value-{run}:"));
        produced.push((format!("empty-value-{run}"), String::new()));
        pail_with_stdin(
            s,
            &["produce", "keyed", "--key-separator", ":"],
            input(&lines),
        )
        .assert_ok();
    }
    let records = consume_json(s, "keyed", &[]);
    assert_eq!(records.len(), produced.len());
    assert_contiguous_from_zero(&records);

    let mut partition_of: HashMap<&str, u32> = HashMap::new();
    for r in &records {
        let key = r.key.as_deref().expect("every record has a key");
        let p = *partition_of.entry(key).or_insert(r.partition);
        assert_eq!(
            p, r.partition,
            "key {key:?} is on partitions {p} and {}",
            r.partition
        );
    }
    let used: BTreeSet<u32> = partition_of.values().copied().collect();
    assert!(
        used.len() >= 3,
        "40 keys spread over 5 partitions: {used:?}"
    );

    // Per key, the values come back in the order produced (records of one key are all in one
    // partition, which consume reads in offset order).
    let mut want: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in &produced {
        want.entry(k).or_default().push(v);
    }
    let mut got: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &records {
        got.entry(r.key.as_deref().unwrap())
            .or_default()
            .push(&r.value);
    }
    assert_eq!(got, want);
}

// ---------------------------------------------------------------------------------------------
// d. Bad input: one clear line, a non-zero exit, and the log untouched.

#[test]
fn bad_topic_names_are_refused() {
    let store = store_with_data();
    let s = &store.url;
    let before = committed_objects(&store.root());
    let long = "x".repeat(250);
    for name in ["../x", "a/b", "", long.as_str()] {
        let f = pail(s, &["topic", "create", name, "--partitions", "1"]);
        assert_one_error(&f, 1, &["invalid topic name"]);
        for args in [vec!["consume", name], vec!["topic", "describe", name]] {
            assert_one_error(&pail(s, &args), 1, &["invalid topic name"]);
        }
        let f = pail_with_stdin(s, &["produce", name], "x\n");
        assert_one_error(&f, 1, &["invalid topic name"]);
    }
    // 249 characters is the limit, and fine.
    create(s, &"y".repeat(249), 1);
    let after: Vec<_> = committed_objects(&store.root())
        .into_iter()
        .filter(|(p, _)| !p.contains(&"y".repeat(249)))
        .collect();
    assert_eq!(after, before, "a refused name changed the store");
    let beside: Vec<_> = std::fs::read_dir(store.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        beside,
        vec!["store"],
        "nothing is written outside the store"
    );
    keep_contents(&store);
}

#[test]
fn unknown_topics_are_reported_by_every_command() {
    let store = store_with_data();
    let s = &store.url;
    let before = committed_objects(&store.root());
    let msg = "unknown topic \"nope\"";
    assert_one_error(&pail(s, &["consume", "nope"]), 1, &[msg]);
    assert_one_error(&pail(s, &["topic", "describe", "nope"]), 1, &[msg]);
    assert_one_error(&pail_with_stdin(s, &["produce", "nope"], "x\n"), 1, &[msg]);
    assert_eq!(committed_objects(&store.root()), before);
    assert!(!store.root().join("topics/nope").exists());
    keep_contents(&store);
}

#[test]
fn bad_offsets_partitions_and_counts_are_refused() {
    let store = store_with_data();
    let s = &store.url;
    let before = committed_objects(&store.root());
    // Partition 0 holds offsets 0..=2; 3 is the next to be written. (-1 is not an error: it
    // means the last record, as in kcat; see cli_kcat.rs.)
    let f = pail(
        s,
        &["consume", "keep", "--partition", "0", "--offset", "999999"],
    );
    assert_one_error(
        &f,
        1,
        &["offset 999999 is out of range", "valid offsets are 0..=3"],
    );
    // Without --partition the offset applies to each partition, and each one that ends before
    // it gets its own line.
    let f = pail(s, &["consume", "keep", "--offset", "999999"]);
    assert_eq!(f.code, Some(1), "{}", f.stderr);
    assert!(f.stdout.is_empty());
    let lines: Vec<&str> = f.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", f.stderr);
    for (line, p) in lines.iter().zip(["keep/0", "keep/1"]) {
        assert!(line.starts_with("pail: error: "), "{line}");
        assert!(line.contains("offset 999999 is out of range"), "{line}");
        assert!(line.contains(p), "{line}");
    }
    // Reading from the next offset is not an error: there is just nothing yet.
    let f = pail(s, &["consume", "keep", "--partition", "0", "--offset", "3"]);
    assert!(f.assert_ok().stdout.is_empty());

    let unknown = ["unknown partition 99", "it has 2 partitions"];
    assert_one_error(
        &pail(s, &["consume", "keep", "--partition", "99"]),
        1,
        &unknown,
    );
    let f = pail_with_stdin(s, &["produce", "keep", "--partition", "99"], "x\n");
    assert_one_error(&f, 1, &unknown);

    for n in ["0", "10001"] {
        let f = pail(s, &["topic", "create", "counts", "--partitions", n]);
        assert_one_error(&f, 1, &["1 to 10000 partitions", &format!("not {n}")]);
    }
    assert!(!store.root().join("topics/counts").exists());

    // Malformed command lines exit 2, still with one line.
    for args in [
        vec!["consume", "keep", "--offset", "soon"],
        vec!["topic", "create", "counts", "--partitions", "many"],
        vec!["consume", "keep", "--partition", "-1"],
        vec!["produce"],
        vec!["frobnicate"],
    ] {
        assert_one_error(&pail(s, &args), 2, &[]);
    }
    let f = pail(s, &["consume", "keep", "--partition", "-1"]);
    assert_one_error(&f, 2, &["--partition", "partition number", "not -1"]);
    assert_eq!(committed_objects(&store.root()), before);
    keep_contents(&store);
}

#[test]
fn lines_without_the_key_separator_are_refused() {
    let store = store_with_data();
    let s = &store.url;
    let before = committed_objects(&store.root());
    let args = [
        "produce",
        "keep",
        "--partition",
        "1",
        "--key-separator",
        ":",
    ];
    let f = pail_with_stdin(s, &args, "no separator here\nk:v\n");
    assert_one_error(&f, 1, &["line 1 has no key separator \":\""]);
    assert_eq!(committed_objects(&store.root()), before);
    keep_contents(&store);

    // A bad line stops the input there: the lines before it are delivered (and reported), the
    // lines after it are not read.
    let f = pail_with_stdin(s, &args, "k1:f\nk2:g\nbroken\nk3:h\n");
    assert_one_error(&f, 1, &["line 3 has no key separator"]);
    assert!(f.stderr.contains("produced 2 records"), "{}", f.stderr);
    let p1: Vec<(Option<String>, String)> = consume_json(s, "keep", &["--partition", "1"])
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    assert_eq!(
        p1,
        vec![
            (None, "d".to_string()),
            (None, "e".to_string()),
            (Some("k1".to_string()), "f".to_string()),
            (Some("k2".to_string()), "g".to_string()),
        ]
    );
}

#[test]
fn oversized_lines_are_refused() {
    let store = store_with_data();
    let s = &store.url;
    let before = committed_objects(&store.root());
    let mut line = vec![b'a'; 1024 * 1024 + 1];
    line.push(b'\n');
    let f = pail_with_stdin(s, &["produce", "keep", "--partition", "0"], line);
    assert_one_error(
        &f,
        1,
        &["record is 1048577 bytes", "over the limit of 1048576 bytes"],
    );
    assert_eq!(committed_objects(&store.root()), before);
    keep_contents(&store);
}

#[test]
fn unsupported_store_urls_are_refused() {
    let cwd = tempfile::tempdir().unwrap();
    for (url, needle) in [
        ("ftp://x", "unsupported scheme"),
        ("", "empty"),
        ("file://relative", "needs an absolute path"),
        ("s3://", "no bucket"),
    ] {
        let mut cmd = pail_cmd(url);
        cmd.current_dir(cwd.path()).args(["topic", "list"]);
        let f = run_timed(cmd, None, COMMAND);
        assert_one_error(&f, 1, &["invalid store url", needle]);
    }
    let mut cmd = pail_cmd("ftp://x");
    cmd.current_dir(cwd.path()).args(["produce", "t"]);
    let f = run_timed(cmd, Some(b"x\n".to_vec()), COMMAND);
    assert_one_error(&f, 1, &["ftp://x", "unsupported scheme"]);
    assert!(
        std::fs::read_dir(cwd.path()).unwrap().next().is_none(),
        "a refused store URL left files behind"
    );
}

#[test]
fn a_corrupt_segment_is_named_and_contained() {
    let store = store_with_data();
    let s = &store.url;
    create(s, "c", 3);
    // Two commits per partition, so the corrupt one is not the only segment.
    for round in 0..2 {
        for p in 0..3 {
            let lines: Vec<String> = (0..5).map(|i| format!("c{p}-{round}-{i}")).collect();
            pail_with_stdin(
                s,
                &["produce", "c", "--partition", &p.to_string()],
                input(&lines),
            )
            .assert_ok();
        }
    }
    let victim = newest_segment(&store, "c", 1);
    std::fs::write(&victim, b"this is not a parquet file").unwrap();
    let key = victim
        .strip_prefix(store.root())
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(key.starts_with("topics/c/partition=1/"), "{key}");

    let corrupt = ["corrupt", key.as_str()];
    assert_one_error(&pail(s, &["consume", "c", "--partition", "1"]), 1, &corrupt);
    assert_one_error(&pail(s, &["consume", "c"]), 1, &corrupt);
    let f = pail_with_stdin(s, &["produce", "c", "--partition", "1"], "x\n");
    assert_one_error(&f, 1, &corrupt);
    let f = pail(s, &["topic", "describe", "c"]);
    if f.code != Some(0) {
        assert_one_error(&f, 1, &corrupt);
    }

    // The other partitions of the topic still read and write.
    for p in ["0", "2"] {
        let records = consume_json(s, "c", &["--partition", p]);
        assert_eq!(records.len(), 10, "partition {p}");
        pail_with_stdin(s, &["produce", "c", "--partition", p], "more\n").assert_ok();
        assert_eq!(consume_json(s, "c", &["--partition", p]).len(), 11);
    }
    // Other topics are untouched.
    keep_contents(&store);
    assert_eq!(next_offsets(s, "keep"), vec![3, 2]);
    let listed = pail(s, &["topic", "list"]).assert_ok().stdout_text();
    assert_eq!(listed, "c\nkeep\n");
}

#[test]
fn a_corrupt_topic_descriptor_is_named_and_contained() {
    let store = store_with_data();
    let s = &store.url;
    create(s, "bad", 2);
    pail_with_stdin(s, &["produce", "bad"], "x\ny\n").assert_ok();
    let descriptor = store.root().join("topics/bad/_topic.json");
    std::fs::write(&descriptor, b"{ this is not a topic").unwrap();
    let corrupt = ["corrupt", "topics/bad/_topic.json"];
    assert_one_error(&pail(s, &["topic", "describe", "bad"]), 1, &corrupt);
    assert_one_error(&pail(s, &["consume", "bad"]), 1, &corrupt);
    assert_one_error(&pail_with_stdin(s, &["produce", "bad"], "z\n"), 1, &corrupt);
    let f = pail(s, &["topic", "create", "bad", "--partitions", "1"]);
    assert_one_error(&f, 1, &["already exists"]);

    // Every other topic works as before, writes included.
    keep_contents(&store);
    pail_with_stdin(s, &["produce", "keep", "--partition", "0"], "f\n").assert_ok();
    assert_eq!(next_offsets(s, "keep"), vec![4, 2]);
    create(s, "fresh", 1);
    // One damaged descriptor must not hide the healthy topics from `topic list`: they are
    // listed, the damaged one is reported, and the exit says something was wrong.
    let f = pail(s, &["topic", "list"]);
    assert_one_error(&f, 1, &corrupt);
    assert_eq!(f.stdout_text(), "fresh\nkeep\n");
}

// ---------------------------------------------------------------------------------------------
// e. S3.

/// Against the S3 server of `PAIL_TEST_S3_URL` (moto in `tests/run.sh`); skipped when it is not
/// configured, unless `PAIL_REQUIRE_S3=1`.
mod s3 {
    use super::*;

    #[test]
    fn create_produce_consume_on_s3() {
        let Some(base) = pail_tests::s3_url() else {
            return;
        };
        let url = format!(
            "{}/{}",
            base.trim_end_matches('/'),
            pail_tests::unique("cli-")
        );
        let s = &url;
        create(s, "events", 3);
        let lines: Vec<String> = (0..2_000).map(|i| format!("s3-line-{i}")).collect();
        let f = pail_with_stdin(s, &["produce", "events"], input(&lines));
        assert!(
            f.assert_ok().stderr.contains("produced 2000 records"),
            "{}",
            f.stderr
        );
        let keyed: Vec<String> = (0..200).map(|i| format!("k{}:kv-{i}", i % 7)).collect();
        pail_with_stdin(
            s,
            &["produce", "events", "--key-separator", ":"],
            input(&keyed),
        )
        .assert_ok();

        let records = consume_json(s, "events", &[]);
        assert_contiguous_from_zero(&records);
        let all: Vec<String> = lines
            .iter()
            .cloned()
            .chain(
                keyed
                    .iter()
                    .map(|l| l.split_once(':').unwrap().1.to_string()),
            )
            .collect();
        assert_exactly_once(&records, &all);
        let mut partition_of: HashMap<&str, u32> = HashMap::new();
        for r in records.iter().filter(|r| r.key.is_some()) {
            let p = *partition_of
                .entry(r.key.as_deref().unwrap())
                .or_insert(r.partition);
            assert_eq!(p, r.partition, "a key on two partitions");
        }
        assert_eq!(next_offsets(s, "events").iter().sum::<u64>(), 2_200);
        let text = pail(s, &["consume", "events", "--max", "5"])
            .assert_ok()
            .stdout_text();
        assert_eq!(text.lines().count(), 5);
        let listed = pail(s, &["topic", "list"]).assert_ok().stdout_text();
        assert_eq!(listed, "events\n");
        assert_one_error(&pail(s, &["consume", "missing"]), 1, &["unknown topic"]);
    }
}

/// `pail --store s3://pail-test/cli ARGS` with a clean AWS environment: test credentials, no
/// profile or instance metadata, plain HTTP allowed, one retry and short timeouts, then `env`
/// on top. The process is killed (failing the test) if it runs past `deadline`.
fn pail_s3(
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
    deadline: Duration,
) -> Finished {
    let mut cmd = pail_cmd("s3://pail-test/cli");
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("AWS_") || name.starts_with("PAIL_S3_") {
            cmd.env_remove(&*name);
        }
    }
    let nowhere = std::env::temp_dir().join("pail-cli-no-such-dir");
    cmd.env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", nowhere.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", nowhere.join("credentials"))
        .env("PAIL_S3_MAX_RETRIES", "1")
        .env("PAIL_S3_TIMEOUT", "2s")
        .env("PAIL_S3_CONNECT_TIMEOUT", "1s")
        .envs(env.iter().copied())
        .args(args);
    run_timed(cmd, stdin.map(|s| s.as_bytes().to_vec()), deadline)
}

/// Malformed S3 settings are refused when the store is opened, with one line naming the
/// variable and what is wrong, never a panic (object_store used to panic on the first request
/// with "request valid: InvalidUri"). No server needed: nothing is sent.
mod s3_settings {
    use super::*;

    #[test]
    fn every_malformed_setting_is_one_line_naming_the_variable() {
        for (name, value, why) in [
            (
                "AWS_ENDPOINT_URL",
                "127.0.0.1:9000",
                "has no scheme: write http://127.0.0.1:9000",
            ),
            ("AWS_ENDPOINT_URL", "", "is empty"),
            ("AWS_ENDPOINT_URL", "http://", "empty host"),
            (
                "AWS_ENDPOINT_URL",
                "http://127.0.0.1:99999",
                "invalid port number",
            ),
            ("AWS_ENDPOINT_URL", "http://[::1", "invalid IPv6 address"),
            ("AWS_ENDPOINT_URL", "ftp://127.0.0.1", "has scheme ftp"),
            ("AWS_ENDPOINT_URL_S3", "localhost:9000", "has no scheme"),
            ("AWS_ENDPOINT", "http://[::1", "invalid IPv6 address"),
            ("AWS_ALLOW_HTTP", "maybe", "is not a boolean"),
            ("AWS_REGION", "us east 1", "is not a region name"),
            ("AWS_REGION", "", "is not a region name"),
            ("PAIL_S3_TIMEOUT", "30", "is not a duration"),
            ("PAIL_S3_TIMEOUT", "0s", "is out of range"),
            ("PAIL_S3_CONNECT_TIMEOUT", "soon", "is not a duration"),
            ("PAIL_S3_MAX_RETRIES", "-1", "is not a number from 0 to 10"),
            (
                "PAIL_S3_MAX_RETRIES",
                "1000",
                "is not a number from 0 to 10",
            ),
        ] {
            let f = pail_s3(&[(name, value)], &["topic", "list"], None, COMMAND);
            assert_one_error(&f, 1, &[&format!("{name}={value:?}"), why]);
        }
    }

    #[test]
    fn plain_http_needs_allow_http() {
        let env = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_ALLOW_HTTP", "false"),
        ];
        let f = pail_s3(&env, &["topic", "list"], None, COMMAND);
        assert_one_error(&f, 1, &["AWS_ENDPOINT_URL", "set AWS_ALLOW_HTTP=true"]);
    }

    /// Every command opens the store the same way, so each refuses a bad endpoint alike.
    #[test]
    fn every_command_refuses_a_bad_endpoint_before_sending_anything() {
        let env = [("AWS_ENDPOINT_URL", "127.0.0.1:9000")];
        for (args, stdin) in [
            (vec!["produce", "t"], Some("x\n")),
            (vec!["consume", "t"], None),
            (vec!["topic", "create", "t", "--partitions", "1"], None),
            (vec!["topic", "describe", "t"], None),
        ] {
            let f = pail_s3(&env, &args, stdin, COMMAND);
            assert_one_error(&f, 1, &["AWS_ENDPOINT_URL", "has no scheme"]);
        }
    }

    #[test]
    fn a_bucket_name_that_cannot_be_in_a_url_is_refused() {
        let mut cmd = pail_cmd("s3://bu[cket/x");
        cmd.args(["topic", "list"]);
        let f = run_timed(cmd, None, COMMAND);
        assert_one_error(&f, 1, &["bu[cket", "is not a bucket name"]);
    }
}

/// S3 endpoints that are not there, or never answer: the CLI must give up with one clear line.
/// These need no S3 server, so they always run.
mod s3_unreachable {
    use super::*;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Well inside the 30 s a user should ever wait with these settings: 2 attempts of at most
    /// 2 s each, plus back-off.
    const GIVE_UP: Duration = Duration::from_secs(25);

    fn pail_against(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Finished {
        pail_s3(&[("AWS_ENDPOINT_URL", endpoint)], args, stdin, GIVE_UP)
    }

    #[test]
    fn a_refused_endpoint_fails_on_the_refusal_with_one_line() {
        // Nothing listens on port 1: the error is the refused connection, not a timeout.
        let endpoint = "http://127.0.0.1:1";
        for (args, stdin) in [
            (vec!["topic", "list"], None),
            (vec!["consume", "t"], None),
            (vec!["produce", "t"], Some("x\n")),
        ] {
            let f = pail_against(endpoint, &args, stdin);
            assert_one_error(&f, 1, &["127.0.0.1:1", "Connection refused"]);
        }
    }

    /// A server that accepts connections and never says a word.
    struct Silent {
        port: u16,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Silent {
        fn start() -> Silent {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let port = listener.local_addr().unwrap().port();
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let thread = std::thread::spawn(move || {
                let mut held = Vec::new();
                while !flag.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => held.push(conn),
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            });
            Silent {
                port,
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for Silent {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    #[test]
    fn a_silent_endpoint_fails_within_the_timeouts() {
        let server = Silent::start();
        let endpoint = format!("http://127.0.0.1:{}", server.port);
        let f = pail_against(&endpoint, &["topic", "list"], None);
        assert_one_error(&f, 1, &[&format!("127.0.0.1:{}", server.port)]);
    }
}

#[test]
fn compression_type_is_kept_shown_and_read_back() {
    let store = LocalStore::new();
    let s = &store.url;
    for codec in ["lz4", "snappy", "gzip", "none", "zstd"] {
        let topic = format!("c-{codec}");
        pail(
            s,
            &[
                "topic",
                "create",
                &topic,
                "--partitions",
                "1",
                "--compression-type",
                codec,
            ],
        )
        .assert_ok();
        let text = pail(s, &["topic", "describe", &topic])
            .assert_ok()
            .stdout_text();
        assert!(
            text.contains(&format!("compression-type {codec}")),
            "{text}"
        );
        assert_eq!(describe(s, &topic)["config"]["compression"], codec);
        let lines: String = (0..200).map(|i| format!("{codec} line {i}\n")).collect();
        pail_with_stdin(s, &["produce", &topic], lines.clone()).assert_ok();
        let back = pail(s, &["consume", &topic]).assert_ok().stdout_text();
        assert_eq!(back, lines, "{codec}");
    }
    // Without the flag: zstd, the default.
    create(s, "plain", 1);
    assert_eq!(describe(s, "plain")["config"]["compression"], "zstd");
    let f = pail(
        s,
        &[
            "topic",
            "create",
            "bad",
            "--partitions",
            "1",
            "--compression-type",
            "brotli",
        ],
    );
    assert_one_error(&f, 2, &["brotli", "zstd, lz4, snappy, gzip, none"]);
}
