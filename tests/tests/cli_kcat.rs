//! The `pail` command line as a kcat or Kafka console user expects it: short flags, offset
//! names and relative offsets, keys and format strings on output, headers and JSON on input,
//! CRLF input, negative numbers, plurals.
//!
//! Needs the binary built first (see [`pail_tests::pail_bin`]).
#![allow(clippy::unwrap_used)]

use pail_tests::cli::*;
use serde_json::{Value, json};
use std::time::Duration;

/// How long a `--follow` test waits for what it expects before failing.
const FOLLOW: Duration = Duration::from_secs(60);

/// A store with topic `k`: partition 0 holds keyed records a:1 .. e:5, partition 1 holds the
/// unkeyed records x and y.
fn kcat_store() -> LocalStore {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "k", 2);
    let keyed = "a:1\nb:2\nc:3\nd:4\ne:5\n";
    pail_with_stdin(s, &["produce", "k", "-p", "0", "-K", ":"], keyed).assert_ok();
    pail_with_stdin(s, &["produce", "k", "-p", "1"], "x\ny\n").assert_ok();
    store
}

fn text(store: &str, args: &[&str]) -> String {
    pail(store, args).assert_ok().stdout_text()
}

#[test]
fn short_flags_and_offset_names_read_as_in_kcat() {
    let store = kcat_store();
    let s = &store.url;
    assert_eq!(
        text(s, &["consume", "k", "-p", "0", "-o", "1", "-c", "2"]),
        "2\n3\n"
    );
    assert_eq!(text(s, &["consume", "k", "-p", "0", "--count", "1"]), "1\n");
    // -K on consume prints the key before the value; an unkeyed record has an empty key.
    // Without -p the output comes partition by partition, in blocks.
    assert_eq!(
        text(s, &["consume", "k", "-K", "="]),
        "a=1\nb=2\nc=3\nd=4\ne=5\n=x\n=y\n"
    );
    for name in ["beginning", "earliest"] {
        assert_eq!(text(s, &["consume", "k", "-p", "1", "-o", name]), "x\ny\n");
    }
    for name in ["end", "latest"] {
        assert_eq!(text(s, &["consume", "k", "-o", name]), "");
    }
}

/// `-o @TIME` starts each partition at its first record stamped at or after the time (ms or
/// RFC 3339), as Kafka's lookup by time; a partition with nothing that recent starts at its end.
#[test]
fn at_time_starts_each_partition_at_its_first_record_at_or_after_it() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "t", 2);
    // 2023-11-14T22:13:20Z is 1,700,000,000,000 ms. Partition 1's clock runs behind.
    let records: String = [
        (0, "a", 0),
        (0, "b", 2000),
        (0, "c", 1000),
        (1, "x", -5000),
        (1, "y", 1000),
    ]
    .iter()
    .map(|(p, v, dt)| {
        let ts = 1_700_000_000_000i64 + dt;
        format!("{{\"partition\":{p},\"value\":\"{v}\",\"timestamp\":{ts}}}\n")
    })
    .collect();
    pail_with_stdin(s, &["produce", "t", "--format", "json"], records).assert_ok();
    let after = |at: &str| text(s, &["consume", "t", "-o", at, "-f", "%p:%s\\n"]);
    // Offset 1 is the first at or after +1000 in partition 0 (c, later, is older than b).
    assert_eq!(after("@1700000001000"), "0:b\n0:c\n1:y\n");
    assert_eq!(after("@2023-11-14T22:13:20Z"), "0:a\n0:b\n0:c\n1:y\n");
    assert_eq!(after("@2023-11-14T22:13:22.001Z"), "");
    pail(s, &["consume", "t", "-o", "@noon"]).assert_one_error(2, &["RFC 3339"]);
}

#[test]
fn minus_n_prints_the_last_n_records_of_each_partition() {
    let store = kcat_store();
    let s = &store.url;
    assert_eq!(text(s, &["consume", "k", "-o", "-2"]), "4\n5\nx\ny\n");
    assert_eq!(text(s, &["consume", "k", "-p", "0", "-o", "-1"]), "5\n");
    // More than a partition holds: all of it.
    assert_eq!(
        text(s, &["consume", "k", "-o", "-100"]),
        "1\n2\n3\n4\n5\nx\ny\n"
    );
    // With --follow: the last one, then what comes.
    let mut follower = Watched::start(s, &["consume", "k", "-p", "1", "-o", "-1", "--follow"]);
    follower.wait_for("the last record", FOLLOW, |out, _| out == "y\n");
    pail_with_stdin(s, &["produce", "k", "-p", "1"], "z\n").assert_ok();
    follower.wait_for("the new record", FOLLOW, |out, _| out == "y\nz\n");
    let (_, err) = follower.kill();
    assert_eq!(err, "");
}

/// An absolute offset applies to each partition read (kcat's rule). Without --follow a
/// partition that ends before it is reported, after the others print; with --follow it is
/// read from that offset once its records get there.
#[test]
fn an_absolute_offset_applies_to_each_partition() {
    let store = kcat_store();
    let s = &store.url;
    let f = pail(s, &["consume", "k", "-o", "3"]);
    f.assert_one_error(
        1,
        &["k/1", "offset 3 is out of range", "valid offsets are 0..=2"],
    );
    assert_eq!(f.stdout_text(), "4\n5\n");

    let mut follower = Watched::start(s, &["consume", "k", "-o", "3", "--follow"]);
    follower.wait_for("partition 0 from offset 3", FOLLOW, |out, _| {
        out == "4\n5\n"
    });
    // Offsets 2 and 3 of partition 1: only 3 is at or after the start.
    pail_with_stdin(s, &["produce", "k", "-p", "1"], "before\nfrom-3\n").assert_ok();
    follower.wait_for("partition 1 from offset 3", FOLLOW, |out, _| {
        out == "4\n5\nfrom-3\n"
    });
    let (out, err) = follower.kill();
    assert_eq!((out.as_str(), err.as_str()), ("4\n5\nfrom-3\n", ""));
}

#[test]
fn format_strings_print_keys_partitions_offsets_timestamps_and_headers() {
    let store = kcat_store();
    let s = &store.url;
    let args = [
        "produce", "k", "-p", "1", "-K", ":", "-H", "trace=t1", "-H", "env=",
    ];
    pail_with_stdin(s, &args, "key:value\n").assert_ok();
    let pattern = r"%t|%p|%o|%k|%s|%h|%S|%K|100%%\t.\n";
    assert_eq!(
        text(s, &["consume", "k", "-p", "1", "-o", "2", "-f", pattern]),
        "k|1|2|key|value|trace=t1,env=|5|3|100%\t.\n"
    );
    let json = text(
        s,
        &["consume", "k", "-p", "1", "-o", "2", "--format", "json"],
    );
    let timestamp = json_lines(&json)[0]["timestamp"].as_i64().unwrap();
    assert_eq!(
        text(s, &["consume", "k", "-p", "1", "-o", "2", "-f", "%T\n"]),
        format!("{timestamp}\n")
    );
    // Mistakes are command-line errors that say what is wrong.
    let bad = [
        (
            vec!["-f", "%x"],
            vec!["--format-string", "unknown token %x"],
        ),
        (vec!["-f", "%k", "-K", ":"], vec!["cannot be used with"]),
        (
            vec!["-f", "%s", "--format", "json"],
            vec!["--format json", "-f"],
        ),
        (
            vec!["-K", ":", "--format", "json"],
            vec!["--format json", "-K"],
        ),
    ];
    for (extra, needles) in bad {
        let mut args = vec!["consume", "k"];
        args.extend(extra);
        pail(s, &args).assert_one_error(2, &needles);
    }
}

/// Records of every shape: keys and values absent, empty, UTF-8 and binary; headers with and
/// without values; own partitions and timestamps.
fn varied_records() -> Vec<Value> {
    (0..30)
        .map(|i| {
            let mut r = json!({
                "partition": i % 3,
                "timestamp": 1_600_000_000_000i64 + i,
                "value": format!("v{i} \r\n ünï"),
                "headers": [{"key": "seq", "value": i.to_string()}, {"key": "none"}],
            });
            match i % 5 {
                0 => r["key"] = json!(format!("key-{i}")),
                1 => {
                    r["key"] = json!("AP8A/w==");
                    r["key_encoding"] = json!("base64");
                    r["value"] = json!("3q2+7w==");
                    r["value_encoding"] = json!("base64");
                }
                2 => r["value"] = Value::Null,
                3 => r["value"] = json!(""),
                _ => {
                    r["headers"] =
                        json!([{"key": "bin", "value": "/w==", "value_encoding": "base64"}])
                }
            }
            r
        })
        .collect()
}

fn json_input(records: &[Value]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

/// `consume --format json` output without the topic field, one value per record.
fn records_of(store: &str, topic: &str) -> Vec<Value> {
    json_lines(&text(store, &["consume", topic, "--format", "json"]))
        .into_iter()
        .map(|mut r| {
            assert_eq!(r["topic"], topic);
            r.as_object_mut().unwrap().remove("topic");
            r
        })
        .collect()
}

/// Printed headers without what the input could leave out: a null value, the utf8 encoding.
fn as_given(headers: &Value) -> Value {
    let mut headers = headers.clone();
    for h in headers.as_array_mut().unwrap() {
        let fields = h.as_object_mut().unwrap();
        fields.retain(|k, v| !v.is_null() && (k != "value_encoding" || v != "utf8"));
    }
    headers
}

#[test]
fn json_input_reads_what_json_output_prints() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "src", 3);
    create(s, "dst", 3);
    let input = varied_records();
    pail_with_stdin(
        s,
        &["produce", "src", "--format", "json"],
        json_input(&input),
    )
    .assert_ok();
    let src = records_of(s, "src");
    assert_eq!(src.len(), input.len());
    // What went in is what is stored: partition, timestamp, key, value and headers.
    for r in &src {
        let i = (r["timestamp"].as_i64().unwrap() - 1_600_000_000_000) as usize;
        for field in ["partition", "key", "value", "headers"] {
            let want = input[i].get(field).cloned().unwrap_or(Value::Null);
            let got = match field {
                "headers" => as_given(&r[field]),
                _ => r[field].clone(),
            };
            assert_eq!(got, want, "record {i} field {field}: {r}");
        }
    }
    // consume --format json | produce --format json copies a topic byte for byte.
    let dump = text(s, &["consume", "src", "--format", "json"]);
    pail_with_stdin(s, &["produce", "dst", "--format", "json"], dump).assert_ok();
    assert_eq!(records_of(s, "dst"), src);
}

#[test]
fn headers_apply_to_every_record_and_bad_json_is_named() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "h", 2);
    let lines =
        "{\"value\":\"a\",\"headers\":[{\"key\":\"own\",\"value\":\"1\"}]}\n\n{\"value\":\"b\"}\n";
    let args = [
        "produce", "h", "-p", "1", "--format", "json", "-H", "src=cli",
    ];
    pail_with_stdin(s, &args, lines).assert_ok();
    let got: Vec<String> = text(s, &["consume", "h", "-f", "%p %s %h\n"])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(got, ["1 a own=1,src=cli", "1 b src=cli"]);

    let args = ["produce", "h", "-p", "0", "--format", "json"];
    let f = pail_with_stdin(s, &args, "{\"value\":\"ok\"}\n{\"vale\":1}\n");
    f.assert_one_error(
        1,
        &["line 2 is not a record in JSON", "unknown field `vale`"],
    );
    assert!(f.stderr.contains("produced 1 record to h"), "{}", f.stderr);
    let cases = [
        (
            "{\"partition\":1}\n",
            vec!["-p", "0"],
            "line 1 names partition 1, but --partition 0",
        ),
        ("{\"partition\":5}\n", vec![], "unknown partition 5"),
        (
            "{\"value\":\"!\",\"value_encoding\":\"base64\"}\n",
            vec![],
            "value is not valid base64",
        ),
        ("[1]\n", vec![], "line 1 is not a record in JSON"),
    ];
    for (line, extra, needle) in cases {
        let mut args = vec!["produce", "h", "--format", "json"];
        args.extend(extra);
        pail_with_stdin(s, &args, line).assert_one_error(1, &[needle]);
    }
    let f = pail_with_stdin(s, &["produce", "h", "-H", "novalue"], "x\n");
    f.assert_one_error(2, &["--header", "NAME=VALUE"]);
    let f = pail_with_stdin(s, &["produce", "h", "--format", "json", "-K", ":"], "{}\n");
    f.assert_one_error(2, &["--format json", "-K"]);
    assert_eq!(text(s, &["consume", "h", "-f", "%s\n"]), "ok\na\nb\n");
}

#[test]
fn crlf_line_ends_are_dropped_and_an_empty_separator_is_refused() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "crlf", 1);
    pail_with_stdin(s, &["produce", "crlf"], "a\r\nb\r\n\r\nin\rside\r\nlast\r").assert_ok();
    pail_with_stdin(s, &["produce", "crlf", "-K", ":"], "k:v\r\n").assert_ok();
    let values: Vec<Value> = json_lines(&text(s, &["consume", "crlf", "--format", "json"]))
        .into_iter()
        .map(|r| json!([r["key"], r["value"]]))
        .collect();
    let want = [
        json!([null, "a"]),
        json!([null, "b"]),
        json!([null, ""]),
        json!([null, "in\rside"]),
        json!([null, "last"]),
        json!(["k", "v"]),
    ];
    assert_eq!(values, want);
    for args in [
        vec!["produce", "crlf", "--key-separator", ""],
        vec!["consume", "crlf", "-K", ""],
    ] {
        let f = pail_with_stdin(s, &args, "x\n");
        f.assert_one_error(2, &["--key-separator", "must not be empty"]);
    }
    assert_eq!(text(s, &["consume", "crlf", "-c", "1"]), "a\n");
}

#[test]
fn negative_numbers_are_refused_with_the_reason() {
    let store = kcat_store();
    let s = &store.url;
    let cases = [
        (
            vec!["topic", "create", "n", "--partitions", "-1"],
            vec!["--partitions", "1 to 10000 partitions, not -1"],
        ),
        (
            vec!["consume", "k", "-p", "-1"],
            vec!["--partition", "partition number", "not -1"],
        ),
        (vec!["consume", "k", "-c", "-5"], vec!["--max", "not -5"]),
        (
            vec!["produce", "k", "--linger-ms", "-1"],
            vec!["--linger-ms", "not -1"],
        ),
        (
            vec!["produce", "k", "--batch-records", "-3"],
            vec!["--batch-records", "not -3"],
        ),
        (
            vec![
                "topic",
                "create",
                "n",
                "--partitions",
                "1",
                "--record-bytes-max",
                "-9",
            ],
            vec!["--record-bytes-max", "not -9"],
        ),
        (
            vec!["bench", "produce", "--records", "-1"],
            vec!["--records", "not -1"],
        ),
    ];
    for (args, needles) in cases {
        let line = pail_with_stdin(s, &args, "x\n").assert_one_error(2, &needles);
        assert!(!line.contains("unexpected argument"), "{line}");
    }
    assert!(!store.root().join("topics/n").exists());
}

#[test]
fn summaries_count_in_the_singular_and_plural() {
    let store = LocalStore::new();
    let s = &store.url;
    let f = pail(s, &["topic", "create", "one", "--partitions", "1"]);
    assert_eq!(f.assert_ok().stderr, "created topic one with 1 partition\n");
    let f = pail(s, &["topic", "create", "two", "--partitions", "2"]);
    assert_eq!(
        f.assert_ok().stderr,
        "created topic two with 2 partitions\n"
    );
    let f = pail_with_stdin(s, &["produce", "one"], "x\n");
    assert!(
        f.assert_ok()
            .stderr
            .starts_with("produced 1 record to one (1 partition) in "),
        "{}",
        f.stderr
    );
    // Twenty keys land on both partitions (murmur2, so always the same way).
    let keyed: String = (0..20).map(|i| format!("key-{i}:v\n")).collect();
    let f = pail_with_stdin(s, &["produce", "two", "-K", ":"], keyed);
    let stderr = &f.assert_ok().stderr;
    assert!(
        stderr.starts_with("produced 20 records to two (2 partitions) in "),
        "{stderr}"
    );
}
