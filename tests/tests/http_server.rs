//! The HTTP API as a long-lived server on a real socket: many requests and abandoned long polls
//! leave no task behind and the client's caches bounded; `pail serve` guards what it exposes
//! and shuts down cleanly on SIGTERM.
#![allow(clippy::unwrap_used)]

use pail_core::Store;
use pail_core::log::{FOOTER_CACHE_BYTES, FOOTER_CACHE_ENTRIES, INDEX_ENTRIES_PER_PARTITION};
use pail_functions::http::{AppState, router};
use pail_tests::http::{abandon, request};
use pail_tests::pail_cmd;
use std::io::BufRead;
use std::time::Duration;

/// Produce requests per round, and long polls opened and then abandoned per round.
const PRODUCES_PER_ROUND: usize = 110;
const ABANDONED_PER_ROUND: usize = 40;
const ROUNDS: usize = 10;
const PARTITIONS: u32 = 4;

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (bounded) until the runtime has at most `n` tasks alive; returns how many it has.
async fn settle_to(n: usize) -> usize {
    // Abandoned polls wait 20 s each; a poll that survived its client would still be alive
    // long after this bound.
    for _ in 0..500 {
        if alive_tasks() <= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    alive_tasks()
}

/// 1,500 requests, 400 of them long polls whose clients go away mid-wait: afterwards the
/// runtime has exactly the tasks it had before, and the one shared client's caches are within
/// their bounds (topics and partition tips do not grow with requests; footers stay at the
/// cache's cap although more segments than that were read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_and_abandoned_long_polls_leave_nothing_behind() {
    let state = AppState::new(&Store::memory());
    let pail = state.pail.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router(state, None))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    for (name, partitions) in [("busy", PARTITIONS), ("quiet", 1)] {
        let body = format!(r#"{{"name":"{name}","partitions":{partitions}}}"#);
        let r = request(&addr, "POST", "/v1/topics", &[], Some(&body)).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let baseline = settle_to(1).await;

    let mut sizes_after_first_round = None;
    for round in 0..ROUNDS {
        // Long polls on a partition nobody writes to: each waits its 20 s unless dropped.
        let mut waiting = Vec::new();
        for _ in 0..ABANDONED_PER_ROUND {
            let path = "/v1/topics/quiet/partitions/0/records?offset=latest&wait_ms=20000";
            waiting.push(abandon(&addr, "GET", path).await);
        }
        for i in 0..PRODUCES_PER_ROUND {
            let body = format!(
                r#"{{"records":[{{"value":"r{round}-{i}","partition":{}}}]}}"#,
                i as u32 % PARTITIONS
            );
            let r = request(&addr, "POST", "/v1/topics/busy/records", &[], Some(&body)).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        // The polls are in flight (one connection task each) while their clients are there.
        let in_flight = alive_tasks();
        assert!(
            in_flight >= baseline + ABANDONED_PER_ROUND,
            "round {round}: {in_flight} tasks alive, expected at least {} with the polls waiting",
            baseline + ABANDONED_PER_ROUND
        );
        drop(waiting);
        let left = settle_to(baseline).await;
        assert_eq!(
            left,
            baseline,
            "round {round}: abandoned long polls left {} tasks behind",
            left - baseline
        );
        if round == 0 {
            sizes_after_first_round = Some(pail.cache_sizes());
        }
    }

    // Read every partition from the start: more segments than the footer cache holds.
    for p in 0..PARTITIONS {
        let mut offset = 0;
        loop {
            let path =
                format!("/v1/topics/busy/partitions/{p}/records?offset={offset}&max_records=10000");
            let r = request(&addr, "GET", &path, &[], None).await.json();
            let n = r["records"].as_array().unwrap().len() as u64;
            if n == 0 {
                break;
            }
            offset += n;
        }
        let per_round = (0..PRODUCES_PER_ROUND as u32)
            .filter(|i| i % PARTITIONS == p)
            .count();
        assert_eq!(offset, (ROUNDS * per_round) as u64, "partition {p}");
    }
    let first = sizes_after_first_round.unwrap();
    let last = pail.cache_sizes();
    assert_eq!(
        (last.topics, last.tips),
        (first.topics, first.tips),
        "{last:?}"
    );
    assert!(last.tips <= PARTITIONS as usize + 1, "{last:?}");
    const { assert!(ROUNDS * PRODUCES_PER_ROUND > FOOTER_CACHE_ENTRIES) };
    assert!(last.footers <= FOOTER_CACHE_ENTRIES, "{last:?}");
    assert!(last.footer_bytes <= FOOTER_CACHE_BYTES, "{last:?}");
    assert!(
        last.index_entries <= INDEX_ENTRIES_PER_PARTITION * (PARTITIONS as usize + 1),
        "{last:?}"
    );

    stop.send(()).unwrap();
    server.await.unwrap();
    assert_eq!(
        settle_to(0).await,
        0,
        "tasks alive after the server stopped"
    );
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pail_cmd(dir.path().to_str().unwrap());
    cmd.env_remove("PAIL_TOKEN")
        .args(["serve", "--listen", "0.0.0.0:0"]);
    pail_tests::run_timed(cmd, None, Duration::from_secs(60)).assert_one_error(
        1,
        &[
            "refusing to listen on 0.0.0.0:0 without PAIL_TOKEN",
            "loopback",
        ],
    );
}

/// A `pail serve` process: it prints where it listens, requires the token, and on SIGTERM
/// finishes and exits 0.
#[test]
fn serve_requires_its_token_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pail_cmd(dir.path().to_str().unwrap());
    cmd.env("PAIL_TOKEN", "t0ken")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && stderr.read_line(&mut line).unwrap() > 0 {
        addr = line
            .trim()
            .strip_prefix("pail serve: listening on http://")
            .map(str::to_string);
        line.clear();
    }
    let addr = addr.expect("pail serve printed no address");
    // Keep draining its log so it never blocks on a full pipe.
    let drain = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        assert_eq!(
            request(&addr, "GET", "/healthz", &[], None).await.status,
            200
        );
        let denied = request(&addr, "GET", "/v1/topics", &[], None).await;
        assert_eq!(denied.status, 401);
        assert_eq!(denied.json()["error"]["code"], "unauthorized");
        let auth = ["Authorization: Bearer t0ken"];
        let body = r#"{"name":"t","partitions":1}"#;
        assert_eq!(
            request(&addr, "POST", "/v1/topics", &auth, Some(body))
                .await
                .status,
            201
        );
        let listed = request(&addr, "GET", "/v1/topics", &auth, None).await;
        assert_eq!(listed.json()["topics"][0], "t");
    });

    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    let log = drain.join().unwrap();
    assert_eq!(status.code(), Some(0), "log:\n{log}");
    assert!(log.contains("shutting down"), "log:\n{log}");
}
