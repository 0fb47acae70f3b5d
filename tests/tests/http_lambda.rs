//! The HTTP function on the real Lambda runtime: the built `pail-http` binary runs against
//! `cargo lambda watch`'s emulation of the Lambda Runtime API, and requests go in through its
//! Function URL emulation (`/lambda-url/pail-http/...`), as API Gateway payload 2.0 events.
//! What was produced through it is read back with the `pail` CLI.
//!
//! The emulator runs with `--only-lambda-apis`: it serves the Runtime API and Function URLs but
//! neither builds nor watches anything, and the test starts the binary `tests/run.sh` already
//! built, with the variables Lambda sets. So the suite pays for no second build (cargo lambda
//! would otherwise `cargo run` the function itself), and nothing writes into a watched folder.
//!
//! Needs cargo-lambda (`PAIL_CARGO_LAMBDA`, set by `tests/run.sh` to the one in `.venv`); the
//! test is skipped without it unless `PAIL_REQUIRE_LAMBDA=1`.
#![allow(clippy::unwrap_used)]

use pail_tests::http::request;
use pail_tests::lambda::{cargo_lambda, under_emulator};
use pail_tests::{pail_cmd, pail_http_bin, run_timed};
use serde_json::{Value, json};
use std::time::Duration;

/// The function's name: the binary, the SAM resource's code, and the Function URL path.
const FUNCTION: &str = "pail-http";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_produced_through_the_lambda_emulator_are_read_back_by_the_cli() {
    let Some(cargo_lambda) = cargo_lambda() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let env = [("PAIL_STORE", store.to_str().unwrap())];
    let (addr, _emulator, _function) =
        under_emulator(&cargo_lambda, work.path(), FUNCTION, pail_http_bin(), &env).await;
    let url = |path: &str| format!("/lambda-url/{FUNCTION}{path}");

    let created = request(
        &addr,
        "POST",
        &url("/v1/topics"),
        &[],
        Some(r#"{"name":"t","partitions":3}"#),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let mut sent = Vec::new();
    for batch in 0..3 {
        let records: Vec<Value> = (0..5)
            .map(|i| match i % 3 {
                0 => json!({"key": format!("k{i}"), "value": format!("b{batch}-{i}")}),
                1 => json!({"value": "/wA=", "value_encoding": "base64", "headers": [{"key": "batch", "value": batch.to_string()}]}),
                _ => json!({"value": format!("b{batch}-{i}"), "partition": 2}),
            })
            .collect();
        let body = json!({"records": records}).to_string();
        let reply = request(
            &addr,
            "POST",
            &url("/v1/topics/t/records"),
            &[],
            Some(&body),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let offsets = reply.json()["offsets"].as_array().unwrap().clone();
        for (record, at) in records.into_iter().zip(offsets) {
            sent.push((
                at["partition"].as_u64().unwrap(),
                at["offset"].as_u64().unwrap(),
                record,
            ));
        }
    }
    let fetched = request(
        &addr,
        "GET",
        &url("/v1/topics/t/partitions/2/records?offset=earliest"),
        &[],
        None,
    )
    .await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    let on_two = sent.iter().filter(|(p, _, _)| *p == 2).count();
    assert_eq!(fetched.json()["records"].as_array().unwrap().len(), on_two);
    let missing = request(&addr, "GET", &url("/v1/topics/nope"), &[], None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "not_found");

    // Read back with the CLI: every acknowledged record, where the API said, bytes intact.
    let mut cmd = pail_cmd(store.to_str().unwrap());
    cmd.args(["consume", "t", "--format", "json"]);
    let out = run_timed(cmd, None, Duration::from_secs(60));
    out.assert_ok();
    let read: Vec<Value> = out
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(read.len(), sent.len());
    for (partition, offset, record) in &sent {
        let got = read
            .iter()
            .find(|r| r["partition"] == *partition && r["offset"] == *offset)
            .unwrap_or_else(|| panic!("{partition}/{offset} not read back"));
        assert_eq!(got["value"], record["value"]);
        assert_eq!(
            got["key"],
            record.get("key").cloned().unwrap_or(Value::Null)
        );
        if let Some(headers) = record.get("headers") {
            assert_eq!(got["headers"][0]["value"], headers[0]["value"]);
        }
    }
}

/// The ingestion function on the real runtime, invoked through the emulator's Invoke API with a
/// recorded SQS batch: the answer names exactly the poison message, a redelivery appends
/// nothing, and the CLI reads back the three good messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_batch_through_the_lambda_emulator_fails_only_its_poison_message() {
    let Some(cargo_lambda) = cargo_lambda() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let s = store.to_str().unwrap();
    let mut create = pail_cmd(s);
    create.args(["topic", "create", "events", "--partitions", "4"]);
    run_timed(create, None, Duration::from_secs(60)).assert_ok();
    let bin = pail_http_bin().with_file_name("pail-ingest");
    let env = [("PAIL_STORE", s), ("PAIL_INGEST_TOPIC", "events")];
    let (addr, _emulator, _function) =
        under_emulator(&cargo_lambda, work.path(), "pail-ingest", bin, &env).await;
    let event = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/events/sqs-batch.json"
    ))
    .unwrap();
    let invoke = "/2015-03-31/functions/pail-ingest/invocations";
    for _ in 0..2 {
        let reply = request(&addr, "POST", invoke, &[], Some(&event)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.json(),
            json!({"batchItemFailures": [{"itemIdentifier": "a1b2c3d4-0000-4000-8000-00000000poison"}]})
        );
    }
    let mut cmd = pail_cmd(s);
    cmd.args(["consume", "events", "--format", "json"]);
    let out = run_timed(cmd, None, Duration::from_secs(60));
    out.assert_ok();
    assert_eq!(
        out.stdout_text().lines().count(),
        3,
        "{}",
        out.stdout_text()
    );
}
