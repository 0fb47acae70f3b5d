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
use pail_tests::{pail_cmd, pail_http_bin, run_timed};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The function's name: the binary, the SAM resource's code, and the Function URL path.
const FUNCTION: &str = "pail-http";

fn cargo_lambda() -> Option<String> {
    match std::env::var("PAIL_CARGO_LAMBDA") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("PAIL_REQUIRE_LAMBDA").as_deref() == Ok("1") => panic!(
            "PAIL_REQUIRE_LAMBDA=1 but PAIL_CARGO_LAMBDA is not set: tests/run.sh installs \
             cargo-lambda into .venv and sets it"
        ),
        _ => {
            eprintln!("skipping: PAIL_CARGO_LAMBDA is not set (tests/run.sh sets it)");
            None
        }
    }
}

/// Kills the process when the test ends, passed or not; on a failure, prints the end of its
/// log (kept in the test's temporary folder, outside the workspace).
struct Killed(Child, std::path::PathBuf);

impl Killed {
    fn spawn(mut cmd: Command, log: std::path::PathBuf) -> Killed {
        let file = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        Killed(cmd.spawn().unwrap(), log)
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.1).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- end of {}:", self.1.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_port(addr: &str) {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_produced_through_the_lambda_emulator_are_read_back_by_the_cli() {
    let Some(cargo_lambda) = cargo_lambda() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let mut emulator = Command::new(&cargo_lambda);
    emulator
        .args(["lambda", "watch", "--only-lambda-apis"])
        .args([
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ])
        .args(["--bin", FUNCTION, "--manifest-path", manifest])
        .current_dir(work.path());
    let _emulator = Killed::spawn(emulator, work.path().join("emulator.log"));
    wait_for_port(&addr).await;
    let mut function = Command::new(pail_http_bin());
    function
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://{addr}/.rt/{FUNCTION}"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("PAIL_STORE", &store)
        .env_remove("PAIL_TOKEN");
    let _function = Killed::spawn(function, work.path().join("function.log"));
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
