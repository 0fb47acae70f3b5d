//! `pail run-consumer`, the consumer function, against a real HTTP target on loopback (issue
//! 13): every record reaches the target as committed, in order per partition, once; the one
//! record the target keeps rejecting is found by splitting and goes to the dead-letter topic;
//! a second run redelivers nothing; without a dead-letter topic it stops short of the poison.
#![allow(clippy::unwrap_used)]

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pail_tests::cli::*;
use serde_json::Value;
use std::sync::{Arc, Mutex};

type Seen = Arc<Mutex<Vec<(u64, u64, String)>>>;

/// Accepts a batch unless it holds the value "poison"; remembers what it accepted.
async fn target(State(seen): State<Seen>, Json(batch): Json<Value>) -> StatusCode {
    let records = batch["records"].as_array().cloned().unwrap_or_default();
    if records.iter().any(|r| r["value"] == "poison") {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let mut seen = seen.lock().unwrap();
    for r in records {
        let (p, o) = (
            r["partition"].as_u64().unwrap(),
            r["offset"].as_u64().unwrap(),
        );
        seen.push((p, o, r["value"].as_str().unwrap().to_string()));
    }
    StatusCode::OK
}

async fn start_target() -> (String, Seen) {
    let seen = Seen::default();
    let app = axum::Router::new()
        .route("/", axum::routing::post(target))
        .with_state(seen.clone());
    (pail_tests::http::serve_local(app).await, seen)
}

async fn run_consumer(
    store: &str,
    topic: &str,
    url: &str,
    dlq: Option<&str>,
) -> pail_tests::Finished {
    let mut args: Vec<String> = [
        "run-consumer",
        "-G",
        "fn",
        "--topic",
        topic,
        "--target",
        url,
        "--start",
        "earliest",
        "--until-idle-ms",
        "1500",
        "--session-timeout-ms",
        "3000",
        "--max-tries",
        "2",
        "--batch-size",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(d) = dlq {
        args.extend(["--dead-letter-topic".to_string(), d.to_string()]);
    }
    let store = store.to_string();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        pail(&store, &args)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_reaches_the_target_once_and_the_poison_goes_to_the_dead_letter_topic() {
    let store = LocalStore::new();
    let s = &store.url;
    produce_with_poison(s, "t");
    create(s, "dead", 1);
    let (url, seen) = start_target().await;
    run_consumer(s, "t", &url, Some("dead")).await.assert_ok();
    let got = seen.lock().unwrap().clone();
    let mut want: Vec<(u64, u64, String)> = (0..20u64)
        .filter(|&i| i != 13)
        .map(|i| (0, i, format!("r{i}")))
        .collect();
    want.extend([(1, 0, "x".to_string()), (1, 1, "y".to_string())]);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, want, "every good record once");
    let p0: Vec<u64> = got.iter().filter(|r| r.0 == 0).map(|r| r.1).collect();
    assert!(
        p0.windows(2).all(|w| w[0] < w[1]),
        "in offset order: {p0:?}"
    );
    let dead = json_lines(
        &pail(s, &["consume", "dead", "--format", "json"])
            .assert_ok()
            .stdout_text(),
    );
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["value"], "poison");
    assert!(
        dead[0]["headers"][0]["value"]
            .as_str()
            .unwrap()
            .contains("t/0@13"),
        "{}",
        dead[0]
    );
    // Everything is committed: a second run delivers nothing.
    run_consumer(s, "t", &url, Some("dead")).await.assert_ok();
    assert_eq!(seen.lock().unwrap().len(), got.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_dead_letter_topic_it_stops_short_of_the_poison() {
    let store = LocalStore::new();
    let s = &store.url;
    produce_with_poison(s, "t");
    let (url, seen) = start_target().await;
    let out = run_consumer(s, "t", &url, None).await;
    out.assert_one_error(1, &["t/0 offset 13", "500", "--dead-letter-topic"]);
    // Nothing at or past the poison was committed: a run with a dead-letter topic delivers
    // every record after it (records before it may come again: at least once, never a skip).
    let first_run = seen.lock().unwrap().clone();
    assert!(
        first_run.iter().all(|r| r.0 != 0 || r.1 < 13),
        "{first_run:?}"
    );
    create(s, "dead", 1);
    let (url, seen) = start_target().await;
    run_consumer(s, "t", &url, Some("dead")).await.assert_ok();
    let after: Vec<u64> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.0 == 0)
        .map(|r| r.1)
        .collect();
    for o in 14..20 {
        assert!(
            after.contains(&o),
            "offset {o} delivered after the restart: {after:?}"
        );
    }
}

#[test]
fn a_target_that_is_not_a_url_is_refused() {
    let store = LocalStore::new();
    create(&store.url, "t", 1);
    pail(
        &store.url,
        &[
            "run-consumer",
            "-G",
            "g",
            "--topic",
            "t",
            "--target",
            "localhost:80",
        ],
    )
    .assert_one_error(2, &["--target", "http://"]);
}
