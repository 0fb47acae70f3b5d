//! `pail-consumer`, the consumer function on Lambda (issue 13). Under the real runtime
//! (`cargo lambda watch`), invoked with a recorded scheduled event, it hands a topic to a
//! user's Lambda function through the signed Invoke API: every record delivered as committed,
//! the poison record in the dead-letter topic, nothing new on a second invocation. In process,
//! against an HTTP target that stops answering: the invocation ends at its deadline having
//! committed exactly what was delivered, and an unreachable target dead-letters nothing.
#![allow(clippy::unwrap_used)]

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pail_core::{Pail, Store};
use pail_functions::relay::function::{ConsumerFunction, FunctionConfig};
use pail_functions::relay::{Committed, Summary};
use pail_tests::cli::*;
use pail_tests::http::request;
use pail_tests::lambda::{cargo_lambda, start_emulator, start_function};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

fn committed(topic: &str, offsets: &[(u32, u64)]) -> Vec<Committed> {
    offsets
        .iter()
        .map(|&(partition, offset)| Committed {
            topic: topic.into(),
            partition,
            offset,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_function_under_the_emulator_hands_a_topic_to_a_user_function() {
    let Some(cargo_lambda) = cargo_lambda() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let s = store.to_str().unwrap();
    produce_with_poison(s, "t");
    create(s, "dead", 1);
    let (addr, _emulator) = start_emulator(&cargo_lambda, work.path(), "pail-consumer").await;
    // The emulator serves only functions that are binaries of the workspace.
    let user_fn = "pail-test-target";
    let log = work.path().join("target.out");
    let target_bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_pail-test-target"));
    let target_env = [("PAIL_TEST_TARGET_LOG", log.to_str().unwrap())];
    let _target = start_function(&addr, work.path(), user_fn, target_bin, &target_env);
    let endpoint = format!("http://{addr}");
    let env = [
        ("PAIL_STORE", s),
        ("PAIL_GROUP", "fn"),
        ("PAIL_TOPICS", "t"),
        ("PAIL_TARGET", "lambda:pail-test-target"),
        ("PAIL_LAMBDA_ENDPOINT", &endpoint),
        ("PAIL_DEAD_LETTER_TOPIC", "dead"),
        ("PAIL_START", "earliest"),
        ("PAIL_BATCH_SIZE", "4"),
        ("PAIL_MAX_TRIES", "2"),
        ("PAIL_IDLE_MS", "1000"),
        // The emulator checks no signature; the function signs with these all the same.
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        ),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let bin = pail_tests::pail_http_bin().with_file_name("pail-consumer");
    let _consumer = start_function(&addr, work.path(), "pail-consumer", bin, &env);
    let event = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/events/scheduled.json"
    ))
    .unwrap();
    let invoke = || async {
        let reply = request(
            &addr,
            "POST",
            "/2015-03-31/functions/pail-consumer/invocations",
            &[],
            Some(&event),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    };
    let summary = |delivered: u64, dead_lettered: u64| {
        json!({
            "delivered": delivered,
            "dead_lettered": dead_lettered,
            "committed": [
                {"topic": "t", "partition": 0, "offset": 20},
                {"topic": "t", "partition": 1, "offset": 2},
            ],
            "out_of_time": false,
        })
    };

    assert_eq!(invoke().await, summary(21, 1));
    let delivered = std::fs::read_to_string(&log).unwrap();
    let mut got: Vec<&str> = delivered.lines().collect();
    got.sort();
    let mut want: Vec<String> = (0..20)
        .filter(|&i| i != 13)
        .map(|i| format!("0 {i} \"r{i}\""))
        .chain(["1 0 \"x\"".to_string(), "1 1 \"y\"".to_string()])
        .collect();
    want.sort();
    assert_eq!(got, want, "every good record once");
    let dead = json_lines(
        &pail(s, &["consume", "dead", "--format", "json"])
            .assert_ok()
            .stdout_text(),
    );
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["value"], "poison");
    let why = dead[0]["headers"][0]["value"].as_str().unwrap();
    assert!(why.contains("t/0@13") && why.contains(user_fn), "{why}");

    // The next scheduled invocation: the same static member, nothing new to deliver.
    assert_eq!(invoke().await, summary(0, 0));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), delivered);
}

/// An HTTP target that takes batches while `open`, and otherwise never answers.
#[derive(Clone, Default)]
struct Gate {
    open: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<u64>>>,
}

async fn gated(State(gate): State<Gate>, Json(batch): Json<Value>) -> StatusCode {
    let offsets: Vec<u64> = batch["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    // The first two batches (offsets 0 to 3) always pass; later ones wait for the gate.
    if offsets.iter().any(|&o| o >= 4) && !gate.open.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    gate.seen.lock().unwrap().extend(offsets);
    StatusCode::OK
}

async fn start_gated() -> (String, Gate) {
    let gate = Gate::default();
    let app = axum::Router::new()
        .route("/", axum::routing::post(gated))
        .with_state(gate.clone());
    (pail_tests::http::serve_local(app).await, gate)
}

async fn function(store: &str, target: &str) -> ConsumerFunction {
    let vars: HashMap<&str, &str> = [
        ("PAIL_GROUP", "fn"),
        ("PAIL_TOPICS", "t"),
        ("PAIL_TARGET", target),
        ("PAIL_DEAD_LETTER_TOPIC", "dead"),
        ("PAIL_START", "earliest"),
        ("PAIL_BATCH_SIZE", "2"),
        ("PAIL_MAX_TRIES", "2"),
        // Long enough that only the deadline ends a run that waits on the target.
        ("PAIL_IDLE_MS", "1000"),
        ("PAIL_DEADLINE_MARGIN_MS", "0"),
    ]
    .into_iter()
    .collect();
    let config = FunctionConfig::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
    let pail = Pail::new(Store::open(store).await.unwrap());
    ConsumerFunction::new(pail, config).await.unwrap()
}

/// A deadline this far from now, as the Lambda context gives it.
fn deadline_in(d: Duration) -> u64 {
    (SystemTime::now() + d)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_its_deadline_an_invocation_commits_exactly_what_was_delivered() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "t", 1);
    create(s, "dead", 1);
    let lines: String = (0..10).map(|i| format!("r{i}\n")).collect();
    pail_with_stdin(s, &["produce", "t"], lines).assert_ok();
    let (url, gate) = start_gated().await;
    let f = function(s, &url).await;

    // The third batch never gets an answer: the run ends at the deadline with two delivered.
    let summary = f.invoke(deadline_in(Duration::from_secs(3))).await.unwrap();
    assert_eq!(
        summary,
        Summary {
            delivered: 4,
            dead_lettered: 0,
            committed: committed("t", &[(0, 4)]),
            out_of_time: true,
        }
    );
    // The next invocation starts where the last one committed: the rest, once each.
    gate.open.store(true, Ordering::SeqCst);
    let summary = f
        .invoke(deadline_in(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!((summary.delivered, summary.dead_lettered), (6, 0));
    assert_eq!(summary.committed, committed("t", &[(0, 10)]));
    assert!(!summary.out_of_time);
    assert_eq!(*gate.seen.lock().unwrap(), (0..10).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_dead_letters_nothing_and_commits_nothing() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "t", 1);
    create(s, "dead", 1);
    pail_with_stdin(s, &["produce", "t"], "a\nb\nc\n").assert_ok();
    // A port nothing listens on: every try is refused, which is no fault of the records.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = function(s, &format!("http://127.0.0.1:{port}/")).await;
    let summary = f.invoke(deadline_in(Duration::from_secs(2))).await.unwrap();
    assert_eq!(
        summary,
        Summary {
            delivered: 0,
            dead_lettered: 0,
            committed: committed("t", &[(0, 0)]),
            out_of_time: true,
        }
    );
    let dead = pail(s, &["consume", "dead", "--format", "json"]);
    assert_eq!(dead.assert_ok().stdout_text(), "");
}

/// What an invocation costs in store requests (docs/architecture.md section 10 quotes the
/// figures this prints): an idle one writes the group twice (join, commit) and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_invocation_writes_the_group_twice_and_nothing_else() {
    let test = pail_tests::TestStore::new(pail_tests::Backend::Local)
        .await
        .unwrap();
    let s = test.url.clone().unwrap();
    create(&s, "t", 4);
    create(&s, "dead", 1);
    let lines: String = (0..100).map(|i| format!("r{i}\n")).collect();
    pail_with_stdin(&s, &["produce", "t"], lines).assert_ok();
    let (url, gate) = start_gated().await;
    gate.open.store(true, Ordering::SeqCst);
    let (store, counts) = test.metered();
    let vars: HashMap<&str, &str> = [
        ("PAIL_GROUP", "fn"),
        ("PAIL_TOPICS", "t"),
        ("PAIL_TARGET", url.as_str()),
        ("PAIL_START", "earliest"),
        ("PAIL_IDLE_MS", "1000"),
    ]
    .into_iter()
    .collect();
    let config = FunctionConfig::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
    let f = ConsumerFunction::new(Pail::new(store), config)
        .await
        .unwrap();
    let deadline = deadline_in(Duration::from_secs(60));

    let before = counts.snapshot();
    let busy = f.invoke(deadline).await.unwrap();
    let cold = counts.snapshot().since(&before);
    assert_eq!(busy.delivered, 100);
    let before = counts.snapshot();
    let idle = f.invoke(deadline).await.unwrap();
    let warm = counts.snapshot().since(&before);
    assert_eq!(idle.delivered, 0);
    eprintln!("cold invocation delivering 100 records on 4 partitions: {cold:?}");
    eprintln!("warm idle invocation: {warm:?}");
    assert_eq!(warm.puts, 2, "{warm:?}");
    assert_eq!(warm.deletes, 0, "{warm:?}");
}
