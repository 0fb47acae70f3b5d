//! `pail maintain`, `pail topic alter` and `pail topic delete`, run as a user would (issue 12):
//! compaction leaves the records and offsets `consume` prints unchanged with a hundredth of the
//! objects, retention shows in `describe` and in `consume`'s out-of-range line, a deleted topic
//! created again continues its offsets under a new id, and bad input is one line.
//!
//! Needs the binary built first (see [`pail_tests::pail_bin`]).
#![allow(clippy::unwrap_used)]

use pail_tests::cli::*;
use serde_json::Value;

/// The segment objects (`.parquet`) in one partition folder of a directory store.
fn segment_files(store: &LocalStore, topic: &str, partition: u32) -> usize {
    let dir = store
        .root()
        .join("topics")
        .join(topic)
        .join(format!("partition={partition}"));
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "parquet")
        })
        .count()
}

fn lines(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

fn maintain_json(store: &str, extra: &[&str]) -> Value {
    let mut args = vec!["maintain", "--format", "json"];
    args.extend_from_slice(extra);
    serde_json::from_slice(&pail(store, &args).assert_ok().stdout).unwrap()
}

#[test]
fn a_thousand_one_record_commits_compact_a_hundredfold_and_consume_the_same() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "small", 1);
    let produced = pail_with_stdin(
        s,
        &[
            "produce",
            "small",
            "--batch-records",
            "1",
            "--linger-ms",
            "0",
        ],
        input(&lines("r", 1000)),
    );
    produced.assert_ok();
    let before_objects = segment_files(&store, "small", 0);
    assert!(before_objects >= 1000, "{before_objects} objects");
    let before = consume_json(s, "small", &[]);
    assert_eq!(before.len(), 1000);

    // A dry run says what it would do and changes nothing.
    let stored = committed_objects(&store.root());
    let dry = maintain_json(s, &["--dry-run", "--grace-ms", "0"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["summary"]["segments_merged"], 999, "{dry}");
    assert_eq!(committed_objects(&store.root()), stored, "a dry run wrote");

    let done = pail(s, &["maintain", "--grace-ms", "0"]);
    let text = done.assert_ok().stdout_text();
    assert!(
        text.contains("small/0: merged 999 segments into 1; deleted 999 objects"),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("maintained 1 partition: 999 segments merged"),
        "{text}"
    );
    let after_objects = segment_files(&store, "small", 0);
    assert!(
        before_objects >= 100 * after_objects,
        "{before_objects} objects became {after_objects}"
    );
    assert_eq!(
        consume_json(s, "small", &[]),
        before,
        "records or offsets changed"
    );
    // Reading from the middle of the merged segment and writing after it still work.
    let mid = consume_json(s, "small", &["-o", "500", "-c", "3"]);
    assert_eq!(mid, before[500..503].to_vec());
    pail_with_stdin(s, &["produce", "small"], input(&["later".into()])).assert_ok();
    let tail = consume_json(s, "small", &["-o", "-1"]);
    assert_eq!((tail[0].offset, tail[0].value.as_str()), (1000, "later"));
    // The counters stay true after the deletes.
    let d = describe(s, "small");
    assert_eq!(
        d["partitions"][0]["segments"].as_u64().unwrap() as usize,
        segment_files(&store, "small", 0),
        "{d}"
    );
}

#[test]
fn retention_drops_expired_segments_and_consume_below_the_start_names_it() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "ret", 1);
    // Three records from 2001 (create-time topic: the producer's timestamps are kept) in one
    // commit, then two of today in another.
    let old: Vec<String> = (0..3)
        .map(|i| format!(r#"{{"value": "old-{i}", "timestamp": 1000000000000}}"#))
        .collect();
    pail_with_stdin(s, &["produce", "ret", "--format", "json"], input(&old)).assert_ok();
    pail_with_stdin(s, &["produce", "ret"], input(&lines("new", 2))).assert_ok();

    pail(
        s,
        &["topic", "alter", "ret", "--config", "retention.ms=86400000"],
    )
    .assert_ok();
    let text = pail(s, &["topic", "describe", "ret"])
        .assert_ok()
        .stdout_text();
    assert!(
        text.contains("retention.ms 86400000  retention.bytes -1"),
        "{text}"
    );

    let report = maintain_json(s, &["--topic", "ret", "--grace-ms", "0"]);
    let p = &report["partitions"][0];
    assert_eq!(
        (
            p["dropped_segments"].as_u64(),
            p["log_start_offset"].as_u64()
        ),
        (Some(1), Some(3)),
        "{report}"
    );
    let d = describe(s, "ret");
    assert_eq!(d["config"]["retention_ms"], 86_400_000);
    assert_eq!(d["partitions"][0]["log_start_offset"], 3, "{d}");
    assert_eq!(d["partitions"][0]["next_offset"], 5, "{d}");
    let text = pail(s, &["topic", "describe", "ret"])
        .assert_ok()
        .stdout_text();
    let row: Vec<&str> = text.lines().last().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..3],
        &["0", "3", "5"],
        "partition, log start, next offset: {text}"
    );

    // Earliest is the new log start; an offset below it is one line naming the start.
    let got = consume_json(s, "ret", &[]);
    let got: Vec<(u64, &str)> = got.iter().map(|r| (r.offset, r.value.as_str())).collect();
    assert_eq!(got, vec![(3, "new-0000"), (4, "new-0001")]);
    let f = pail(s, &["consume", "ret", "-o", "1"]);
    f.assert_one_error(1, &["offset 1 is out of range", "valid offsets are 3..=5"]);
    // A second pass has nothing left to drop.
    let again = pail(s, &["maintain", "--topic", "ret"])
        .assert_ok()
        .stdout_text();
    assert!(again.contains("ret/0: nothing to do"), "{again}");
}

#[test]
fn a_deleted_topic_created_again_continues_its_offsets_under_a_new_id() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "again", 2);
    pail_with_stdin(s, &["produce", "again", "-p", "0"], input(&lines("old", 3))).assert_ok();
    let old_id = describe(s, "again")["id"].as_str().unwrap().to_string();
    let f = pail(s, &["topic", "delete", "again"]);
    assert!(
        f.assert_ok().stderr.contains("deleted topic again"),
        "{}",
        f.stderr
    );
    assert!(
        !pail(s, &["topic", "list"])
            .assert_ok()
            .stdout_text()
            .contains("again")
    );
    pail(s, &["consume", "again"]).assert_one_error(1, &["again"]);
    pail(s, &["topic", "describe", "again"]).assert_one_error(1, &["again"]);
    // The records are gone from the store, not only from view.
    assert_eq!(
        segment_files(&store, "again", 0),
        1,
        "only the tombstone is left"
    );

    create(s, "again", 2);
    let new_id = describe(s, "again")["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, old_id);
    pail_with_stdin(s, &["produce", "again", "-p", "0"], input(&lines("new", 2))).assert_ok();
    let got = consume_json(s, "again", &[]);
    let got: Vec<(u32, u64, &str)> = got
        .iter()
        .map(|r| (r.partition, r.offset, r.value.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![(0, 3, "new-0000"), (0, 4, "new-0001")],
        "offsets are never reused"
    );
}

#[test]
fn partitions_grow_and_settings_change_through_alter() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "grow", 2);
    let f = pail(
        s,
        &[
            "topic",
            "alter",
            "grow",
            "--partitions",
            "4",
            "--config",
            "retention.bytes=1048576",
        ],
    );
    assert!(
        f.assert_ok()
            .stderr
            .contains("altered topic grow: partitions 2 -> 4, retention.bytes=1048576"),
        "{}",
        f.stderr
    );
    let d = describe(s, "grow");
    assert_eq!(d["partitions"].as_array().unwrap().len(), 4);
    assert_eq!(d["config"]["retention_bytes"], 1_048_576);
    pail_with_stdin(s, &["produce", "grow", "-p", "3"], input(&lines("p3", 1))).assert_ok();
    // -1 removes a limit, as in Kafka.
    pail(
        s,
        &["topic", "alter", "grow", "--config", "retention.bytes=-1"],
    )
    .assert_ok();
    assert_eq!(
        describe(s, "grow")["config"]["retention_bytes"],
        Value::Null
    );
}

#[test]
fn bad_input_is_one_line() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "t", 3);
    for (args, code, needles) in [
        (
            vec!["topic", "alter", "t", "--partitions", "2"],
            1,
            vec!["only grow", "3 now, 2 asked"],
        ),
        (
            vec!["topic", "alter", "t", "--config", "cleanup.policy=compact"],
            2,
            vec!["\"cleanup.policy\"", "retention.ms"],
        ),
        (
            vec!["topic", "alter", "t", "--config", "retention.ms"],
            2,
            vec!["KEY=VALUE"],
        ),
        (
            vec!["topic", "alter", "t", "--config", "retention.ms=soon"],
            1,
            vec!["retention.ms", "not a whole number"],
        ),
        (
            vec!["topic", "alter", "t", "--config", "retention.ms=0"],
            1,
            vec!["at least 1"],
        ),
        (vec!["topic", "alter", "t"], 2, vec!["nothing to change"]),
        (
            vec!["topic", "alter", "nope", "--partitions", "5"],
            1,
            vec!["nope"],
        ),
        (vec!["topic", "delete", "nope"], 1, vec!["nope"]),
        (vec!["maintain", "--topic", "nope"], 1, vec!["nope"]),
        (
            vec!["maintain", "--grace-ms", "-5"],
            2,
            vec!["--grace-ms", "-5"],
        ),
    ] {
        let f = pail(s, &args);
        f.assert_one_error(code, &needles);
    }
    // Nothing changed.
    let d = describe(s, "t");
    assert_eq!(d["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(d["config"]["retention_ms"], Value::Null);
    // A store that does not exist is not created by maintain.
    let missing = store.dir.path().join("missing");
    pail(missing.to_str().unwrap(), &["maintain"]).assert_one_error(1, &["no pail store there"]);
    assert!(!missing.exists());
}

#[test]
fn doctor_does_not_take_an_altered_topics_descriptor_versions_for_a_stray_folder() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "alt", 1);
    pail(
        s,
        &["topic", "alter", "alt", "--config", "retention.ms=86400000"],
    )
    .assert_ok();
    pail_with_stdin(s, &["produce", "alt"], input(&lines("a", 3))).assert_ok();
    let f = pail(s, &["doctor"]);
    assert!(!f.stdout_text().contains("_config"), "{}", f.stdout_text());
    f.assert_ok();
}

/// `pail doctor` knows maintenance: after a pass (during the grace period and after the
/// cleanup) merged segments, versions removed on purpose and the counters are all in order.
#[test]
fn doctor_is_clean_after_maintain() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "doc", 1);
    pail(
        s,
        &["topic", "alter", "doc", "--config", "retention.bytes=-1"],
    )
    .assert_ok();
    pail_with_stdin(
        s,
        &["produce", "doc", "--batch-records", "1", "--linger-ms", "0"],
        input(&lines("d", 40)),
    )
    .assert_ok();
    pail(s, &["maintain", "--grace-ms", "600000"]).assert_ok();
    pail(s, &["doctor"]).assert_ok();
    pail(s, &["maintain", "--grace-ms", "0"]).assert_ok();
    pail(s, &["doctor"]).assert_ok();
    // Retention drops the oldest objects: still clean.
    pail_with_stdin(
        s,
        &["produce", "doc", "--batch-records", "1", "--linger-ms", "0"],
        input(&lines("e", 10)),
    )
    .assert_ok();
    let keep = "retention.bytes=3000";
    pail(s, &["topic", "alter", "doc", "--config", keep]).assert_ok();
    pail(s, &["maintain", "--grace-ms", "0"]).assert_ok();
    pail(s, &["doctor"]).assert_ok();
    // Damage after maintenance is still found: a live version deleted by hand.
    pail_with_stdin(
        s,
        &["produce", "doc", "--batch-records", "1", "--linger-ms", "0"],
        input(&lines("f", 5)),
    )
    .assert_ok();
    let dir = store.root().join("topics/doc/partition=0");
    let mut live: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    live.sort();
    assert!(live.len() >= 3, "{live:?}");
    std::fs::remove_file(&live[live.len() - 2]).unwrap();
    let f = pail(s, &["doctor"]);
    assert_eq!(f.code, Some(1), "{}", f.stdout_text());
    assert!(f.stdout_text().contains("missing"), "{}", f.stdout_text());
}
