//! Damage stays where it is, as a `pail` user sees it (issue 10): the real binary on a
//! directory store whose objects a test damages, deletes or replaces by hand. Each reader
//! prints everything before the damage and then one `pail:` line naming it; writers refuse
//! with one line naming what blocks them and `pail doctor`; `pail doctor` reports it and
//! `--repair` moves only what is certainly not pail's.
//!
//! Needs the binary built first (`cargo build -p pail-functions --bin pail`, or `PAIL_BIN`).
#![allow(clippy::unwrap_used)]

use pail_tests::{Finished, pail_cmd, run_timed};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Deadline for one command.
const COMMAND: Duration = Duration::from_secs(60);
/// Records per produce run: one segment each.
const PER_RUN: u64 = 50;

fn pail(store: &Path, args: &[&str]) -> Finished {
    let mut cmd = pail_cmd(store.to_str().unwrap());
    cmd.args(args);
    run_timed(cmd, None, COMMAND)
}

fn produce(store: &Path, topic: &str, lines: &[String]) -> Finished {
    let mut cmd = pail_cmd(store.to_str().unwrap());
    cmd.args(["produce", topic, "--partition", "0"]);
    let mut input = lines.join("\n");
    input.push('\n');
    run_timed(cmd, Some(input.into_bytes()), COMMAND)
}

/// A store with topic `t` (2 partitions): `runs` produce runs of [`PER_RUN`] records to
/// partition 0, a few records in partition 1. Returns the store's directory (kept alive by the
/// returned guard) and partition 0's segment files in chain order.
fn store_with(runs: u64) -> (tempfile::TempDir, PathBuf, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    pail(&store, &["topic", "create", "t", "--partitions", "2"]).assert_ok();
    for run in 0..runs {
        let lines: Vec<String> = (0..PER_RUN).map(|i| format!("r{run}-{i}")).collect();
        produce(&store, "t", &lines).assert_ok();
    }
    let mut cmd = pail_cmd(store.to_str().unwrap());
    cmd.args(["produce", "t", "--partition", "1"]);
    run_timed(cmd, Some(b"a\nb\n".to_vec()), COMMAND).assert_ok();
    let segments = segments(&store);
    (dir, store, segments)
}

/// Partition 0's segment files, in key (= chain) order.
fn segments(store: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(store.join("topics/t/partition=0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// The store key of a file in the store.
fn key(store: &Path, file: &Path) -> String {
    file.strip_prefix(store)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

/// The base offset a segment file's name gives.
fn base(file: &Path) -> u64 {
    let name = file.file_name().unwrap().to_str().unwrap();
    name.split('-').next().unwrap().parse().unwrap()
}

fn truncate(file: &Path) {
    let bytes = std::fs::read(file).unwrap();
    std::fs::write(file, &bytes[..bytes.len() / 2]).unwrap();
}

/// The offsets `consume --format json` printed.
fn offsets(f: &Finished) -> Vec<u64> {
    f.stdout_text()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["offset"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

fn describe(store: &Path) -> Value {
    let f = pail(store, &["topic", "describe", "t", "--format", "json"]);
    serde_json::from_slice(&f.assert_ok().stdout).unwrap()
}

/// Asserts that producing to partition 0 fails with one line naming `blocker` and the way out,
/// and that nothing was written.
fn produce_refused(store: &Path, blocker: &str) {
    let before = segments(store);
    let f = produce(store, "t", &["no".to_string()]);
    f.assert_one_error(1, &[blocker, "pail doctor"]);
    assert_eq!(segments(store), before, "a refused produce wrote nothing");
}

/// Asserts that `pail doctor` exits 1 with one report line naming `key` that contains every
/// needle, and one `pail:` line on stderr.
fn doctor_reports(store: &Path, args: &[&str], key: &str, needles: &[&str]) -> String {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    let f = pail(store, &all);
    f.assert_one_error(1, &["1 problem found"]);
    let text = f.stdout_text();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(key)).collect();
    assert_eq!(lines.len(), 1, "one line about {key}:\n{text}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{needle:?} missing: {}",
            lines[0]
        );
    }
    text
}

#[test]
fn a_damaged_middle_segment_hides_nothing_before_it() {
    let (_dir, store, segs) = store_with(4);
    let middle = &segs[1];
    truncate(middle);
    let f = pail(
        &store,
        &["consume", "t", "--partition", "0", "--format", "json"],
    );
    f.assert_one_error(1, &[&key(&store, middle), "corrupt"]);
    assert_eq!(offsets(&f), (0..base(middle)).collect::<Vec<_>>());
    // Past the damage, reading works again; writing is not at risk and goes on.
    let after = base(&segs[2]).to_string();
    let f = pail(
        &store,
        &[
            "consume",
            "t",
            "--partition",
            "0",
            "--offset",
            &after,
            "--max",
            "3",
        ],
    );
    assert_eq!(f.assert_ok().stdout_text().lines().count(), 3);
    produce(&store, "t", &["more".to_string()]).assert_ok();
    doctor_reports(&store, &[], &key(&store, middle), &["damaged", "backup"]);
}

#[test]
fn junk_at_the_next_key_blocks_writes_and_doctor_repairs_it() {
    let (_dir, store, segs) = store_with(3);
    let next = describe(&store)["partitions"][0]["next_offset"]
        .as_u64()
        .unwrap();
    let junk = store.join(format!(
        "topics/t/partition=0/{next:020}-{:020}.parquet",
        segs.len() + 1
    ));
    std::fs::write(&junk, b"junk\n").unwrap();
    let junk_key = key(&store, &junk);
    // Reads below it work, describe works and says what blocks the partition.
    let f = pail(&store, &["consume", "t", "--partition", "0", "--max", "5"]);
    assert_eq!(
        f.assert_ok().stdout_text(),
        "r0-0\nr0-1\nr0-2\nr0-3\nr0-4\n"
    );
    let d = describe(&store);
    assert_eq!(d["partitions"][0]["next_offset"], next);
    assert!(
        d["partitions"][0]["blocked"]
            .as_str()
            .unwrap()
            .contains(&junk_key),
        "{d}"
    );
    let f = pail(&store, &["topic", "describe", "t"]);
    assert!(
        f.assert_ok().stdout_text().contains(&junk_key),
        "{}",
        f.stdout_text()
    );
    produce_refused(&store, &junk_key);
    doctor_reports(
        &store,
        &["--topic", "t"],
        &junk_key,
        &["foreign", "--repair"],
    );
    // The repair moves it aside (copy kept), and writing goes on at the next offset.
    let f = pail(&store, &["doctor", "--repair"]);
    let text = f.assert_ok().stdout_text();
    assert!(
        text.contains(&format!("moved {junk_key} to _quarantine/")),
        "{text}"
    );
    assert!(!junk.exists());
    let moved: Vec<&str> = text.lines().filter(|l| l.starts_with("moved ")).collect();
    assert_eq!(moved.len(), 1, "{text}");
    let to = moved[0]
        .split(" to ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert_eq!(std::fs::read(store.join(to)).unwrap(), b"junk\n");
    pail(&store, &["doctor"]).assert_ok();
    produce(&store, "t", &["after".to_string()]).assert_ok();
    let f = pail(
        &store,
        &["consume", "t", "--partition", "0", "--format", "json"],
    );
    assert_eq!(offsets(f.assert_ok()), (0..=next).collect::<Vec<_>>());
}

#[test]
fn a_truncated_newest_segment_blocks_writes_and_doctor_refuses_to_move_it() {
    let (_dir, store, segs) = store_with(3);
    let newest = segs.last().unwrap();
    truncate(newest);
    let newest_key = key(&store, newest);
    let f = pail(&store, &["consume", "t", "--partition", "0", "--max", "5"]);
    assert_eq!(f.assert_ok().stdout_text().lines().count(), 5);
    let f = pail(
        &store,
        &["consume", "t", "--partition", "0", "--format", "json"],
    );
    f.assert_one_error(1, &[&newest_key]);
    assert_eq!(offsets(&f), (0..base(newest)).collect::<Vec<_>>());
    let d = describe(&store);
    assert_eq!(d["partitions"][0]["next_offset"], base(newest));
    produce_refused(&store, &newest_key);
    // Its records may have been read: pail will not move it; the operator restores it.
    let bytes = std::fs::read(newest).unwrap();
    for args in [&[][..], &["--repair"][..]] {
        doctor_reports(&store, args, &newest_key, &["damaged", "restore", "backup"]);
    }
    assert_eq!(std::fs::read(newest).unwrap(), bytes);
    let f = pail(&store, &["doctor", "--repair", "--format", "json"]);
    f.assert_one_error(1, &["1 problem found"]);
    let r: Value = serde_json::from_slice(&f.stdout).unwrap();
    assert_eq!(r["moved"], serde_json::json!([]));
    let finding = &r["after"]["findings"][0];
    assert_eq!(finding["key"], newest_key.as_str());
    assert_eq!(finding["problem"], "damaged");
    assert_eq!(finding["repairable"], false);
}

#[test]
fn the_newest_segment_deleted_by_hand_makes_produce_refuse() {
    let (_dir, store, segs) = store_with(3);
    let newest = segs.last().unwrap();
    let newest_key = key(&store, newest);
    // Offsets 100..150 were handed out and read.
    let before = pail(&store, &["consume", "t", "--partition", "0"]);
    assert_eq!(before.assert_ok().stdout_text().lines().count(), 150);
    std::fs::remove_file(newest).unwrap();
    produce_refused(&store, &newest_key);
    doctor_reports(&store, &[], &newest_key, &["missing", "hint"]);
    let f = pail(&store, &["topic", "describe", "t"]);
    assert!(f.assert_ok().stdout_text().contains(&newest_key));
}

#[test]
fn a_deleted_first_segment_says_what_is_missing() {
    let (_dir, store, segs) = store_with(3);
    let first_key = key(&store, &segs[0]);
    std::fs::remove_file(&segs[0]).unwrap();
    for offset in ["earliest", "0", "10"] {
        let f = pail(
            &store,
            &["consume", "t", "--partition", "0", "--offset", offset],
        );
        let line = f.assert_one_error(1, &[&first_key, "missing"]);
        assert!(!line.contains("out of range"), "{line}");
        assert_eq!(f.stdout_text(), "");
    }
    doctor_reports(&store, &[], &first_key, &["missing", "offsets 0..50"]);
}

#[test]
fn a_deleted_middle_segment_names_the_missing_key() {
    let (_dir, store, segs) = store_with(3);
    let (first_key, middle_key) = (key(&store, &segs[0]), key(&store, &segs[1]));
    std::fs::remove_file(&segs[1]).unwrap();
    let f = pail(
        &store,
        &["consume", "t", "--partition", "0", "--format", "json"],
    );
    let line = f.assert_one_error(1, &[&middle_key, "missing"]);
    assert!(
        !line.contains(&first_key),
        "blames the intact segment: {line}"
    );
    assert_eq!(offsets(&f), (0..base(&segs[1])).collect::<Vec<_>>());
    doctor_reports(&store, &[], &middle_key, &["missing", "offsets 50..100"]);
}

#[test]
fn doctor_on_a_healthy_store_and_bad_arguments() {
    let (_dir, store, _) = store_with(2);
    let f = pail(&store, &["doctor"]);
    assert_eq!(
        f.assert_ok().stdout_text(),
        "healthy: 1 topic, 2 partitions, 3 objects, 3 segments on the chains\n"
    );
    assert_eq!(f.stderr, "");
    let f = pail(&store, &["doctor", "--format", "json"]);
    let r: Value = serde_json::from_slice(&f.assert_ok().stdout).unwrap();
    assert_eq!(r["findings"], serde_json::json!([]));
    assert_eq!(r["segments"], 3);
    pail(&store, &["doctor", "--topic", "nope"]).assert_one_error(1, &["unknown topic"]);
    pail(&store, &["doctor", "--format", "yaml"]).assert_one_error(2, &["yaml"]);
}
