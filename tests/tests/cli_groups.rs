//! Consumer groups as a user runs them: `pail consume --group` members in separate processes
//! on one store (a directory, and the S3 server when `PAIL_TEST_S3_URL` is set), stopped by
//! signals or killed outright, and `pail group` to look at them and move their offsets
//! (issue 11).
//!
//! Members write their records to a file (not a pipe) so a test can watch what each has
//! printed while it runs. Waits are for conditions, polled, under generous deadlines: no
//! assertion depends on how fast this machine is.
#![allow(clippy::unwrap_used)]

use pail_tests::cli::*;
use pail_tests::{Finished, pail_cmd};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The longest any condition may take to come true (a liveness bound, not a measurement).
const PATIENCE: Duration = Duration::from_secs(60);
/// Session timeout of the members here: short, so kills are noticed quickly.
const SESSION_MS: &str = "2000";

type Offsets = BTreeSet<(u32, u64)>;

/// One `pail consume --group` process.
struct Member {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    _dir: tempfile::TempDir,
}

impl Member {
    fn start(store: &str, topic: &str, group: &str, extra: &[&str]) -> Member {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        let mut cmd = pail_cmd(store);
        cmd.args(["consume", topic, "--group", group, "--format", "json"]);
        if !extra.contains(&"--session-timeout-ms") {
            cmd.args(["--session-timeout-ms", SESSION_MS]);
        }
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        let child = cmd.spawn().unwrap();
        Member {
            child,
            out,
            err,
            _dir: dir,
        }
    }

    /// (partition, offset) of every complete line printed so far.
    fn printed(&self) -> Vec<(u32, u64)> {
        let text = std::fs::read_to_string(&self.out).unwrap();
        text.split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["partition"].as_u64().unwrap() as u32,
                    v["offset"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap()
    }

    /// Sends `signal` (by name, as `kill -s` takes it) and waits for the exit code.
    fn stop(mut self, signal: &str) -> Option<i32> {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let code = wait_for(|| self.child.try_wait().unwrap())
            .unwrap_or_else(|| panic!("no exit after {signal}; stderr:\n{}", self.stderr()));
        code.code()
    }

    /// SIGKILL: nothing runs after it, no commit, no leave.
    fn kill(mut self) -> Vec<(u32, u64)> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.printed()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it answers, for at most [`PATIENCE`].
fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + PATIENCE;
    while Instant::now() < until {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A store per test: a directory, or a fresh prefix on the S3 server.
fn store(s3: bool) -> Option<(Option<LocalStore>, String)> {
    if !s3 {
        let local = LocalStore::new();
        let url = local.url.clone();
        return Some((Some(local), url));
    }
    let base = pail_tests::s3_url()?;
    let url = format!(
        "{}/{}",
        base.trim_end_matches('/'),
        pail_tests::unique("grp-")
    );
    Some((None, url))
}

/// Appends `n` records to every partition of `topic`.
fn fill(store: &str, topic: &str, partitions: u32, n: usize, tag: &str) {
    for p in 0..partitions {
        let lines: Vec<String> = (0..n).map(|i| format!("{tag}-{p}-{i}")).collect();
        pail_with_stdin(
            store,
            &["produce", topic, "-p", &p.to_string()],
            input(&lines),
        )
        .assert_ok();
    }
}

/// Every (partition, offset) in the topic.
fn all_offsets(store: &str, topic: &str) -> Offsets {
    let mut all = Offsets::new();
    for (p, end) in next_offsets(store, topic).into_iter().enumerate() {
        all.extend((0..end).map(|o| (p as u32, o)));
    }
    all
}

fn describe_group(store: &str, group: &str) -> Value {
    let f = pail(store, &["group", "describe", group, "--format", "json"]);
    serde_json::from_slice(&f.assert_ok().stdout).unwrap()
}

/// Waits until the group has `members` members and no partition is being handed over.
fn wait_stable(store: &str, group: &str, members: usize) -> Value {
    wait_for(|| {
        // Before the first member joined, the group does not exist yet.
        let f = pail(store, &["group", "describe", group, "--format", "json"]);
        let d: Value = serde_json::from_slice(&f.stdout).ok()?;
        let settled = d["members"].as_array().unwrap().len() == members
            && d["state"] == "stable"
            && d["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["owner"].is_string() && p.get("moving_to").is_none());
        settled.then_some(d)
    })
    .unwrap_or_else(|| {
        panic!(
            "group {group} did not settle on {members} members: {}",
            describe_group(store, group)
        )
    })
}

/// Partitions each member (by id) owns.
fn owners(d: &Value) -> BTreeMap<String, BTreeSet<u64>> {
    let mut out: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for p in d["partitions"].as_array().unwrap() {
        if let Some(o) = p["owner"].as_str() {
            out.entry(o.to_string())
                .or_default()
                .insert(p["partition"].as_u64().unwrap());
        }
    }
    out
}

fn committed(d: &Value) -> BTreeMap<u32, u64> {
    d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_u64().unwrap() as u32,
                p["committed"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn union(members: &[&Member]) -> Offsets {
    members.iter().flat_map(|m| m.printed()).collect()
}

// a. Four members share eight partitions and read every record between them.

fn four_members_read_every_record_between_them(s3: bool) {
    let Some((_keep, url)) = store(s3) else {
        return;
    };
    let s = &url;
    create(s, "orders", 8);
    fill(s, "orders", 8, 50, "before");
    let members: Vec<Member> = (0..4)
        .map(|_| Member::start(s, "orders", "billing", &[]))
        .collect();
    let d = wait_stable(s, "billing", 4);
    let shares: Vec<usize> = owners(&d).values().map(BTreeSet::len).collect();
    assert_eq!(shares, vec![2, 2, 2, 2], "{d}");
    // Records written while all four run go to all four.
    fill(s, "orders", 8, 50, "during");
    let all = all_offsets(s, "orders");
    assert_eq!(all.len(), 800);
    let refs: Vec<&Member> = members.iter().collect();
    wait_for(|| (union(&refs) == all).then_some(()))
        .unwrap_or_else(|| panic!("missing: {:?}", all.difference(&union(&refs))));
    for m in &members {
        assert!(
            m.printed().iter().any(|&(_, o)| o >= 50),
            "a member read nothing new"
        );
    }
    for m in members {
        assert_eq!(m.stop("TERM"), Some(0));
    }
    // Each left after committing what it printed: nothing left to read, nobody live.
    let d = describe_group(s, "billing");
    assert_eq!(d["state"], "empty", "{d}");
    for p in d["partitions"].as_array().unwrap() {
        assert_eq!(p["lag"], 0, "{d}");
    }
}

#[test]
fn four_members_read_every_record_between_them_on_a_directory() {
    four_members_read_every_record_between_them(false);
}

#[test]
fn four_members_read_every_record_between_them_on_s3() {
    four_members_read_every_record_between_them(true);
}

// b. A member killed mid-stream: its partitions move, and nothing committed is skipped.

fn a_killed_members_partitions_move_and_nothing_committed_is_skipped(s3: bool) {
    let Some((_keep, url)) = store(s3) else {
        return;
    };
    let s = &url;
    create(s, "orders", 8);
    fill(s, "orders", 8, 20, "before");
    let mut members: Vec<Member> = (0..4)
        .map(|_| Member::start(s, "orders", "billing", &[]))
        .collect();
    let d = wait_stable(s, "billing", 4);
    let all = all_offsets(s, "orders");
    let refs: Vec<&Member> = members.iter().collect();
    wait_for(|| (union(&refs) == all).then_some(())).unwrap();
    let victim = members.remove(0);
    let printed_by_victim = victim.kill();
    // Every committed position from here on must be delivered by the survivors.
    let at_kill = committed(&describe_group(s, "billing"));
    fill(s, "orders", 8, 20, "after");
    let d_after = wait_stable(s, "billing", 3);
    assert!(d_after["generation"].as_u64() > d["generation"].as_u64());
    let after = all_offsets(s, "orders");
    let due: Offsets = after
        .iter()
        .filter(|&&(p, o)| o >= at_kill[&p])
        .copied()
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    wait_for(|| union(&refs).is_superset(&due).then_some(()))
        .unwrap_or_else(|| panic!("skipped: {:?}", due.difference(&union(&refs))));
    // And between them and the victim, everything was read.
    let mut everything = union(&refs);
    everything.extend(printed_by_victim);
    assert_eq!(everything, after);
    for m in members {
        assert_eq!(m.stop("INT"), Some(0));
    }
}

#[test]
fn a_killed_members_partitions_move_and_nothing_committed_is_skipped_on_a_directory() {
    a_killed_members_partitions_move_and_nothing_committed_is_skipped(false);
}

#[test]
fn a_killed_members_partitions_move_and_nothing_committed_is_skipped_on_s3() {
    a_killed_members_partitions_move_and_nothing_committed_is_skipped(true);
}

// c. Static members, lag, and the operator's commands.

/// A static member stopped and started again within its session timeout gets the same
/// partitions back, and the group's generation does not move.
#[test]
fn a_static_member_that_restarts_in_time_keeps_its_partitions() {
    let local = LocalStore::new();
    let s = &local.url;
    create(s, "orders", 8);
    fill(s, "orders", 8, 5, "before");
    let static_args = ["--instance-id", "host-1", "--session-timeout-ms", "30000"];
    let first = Member::start(s, "orders", "billing", &static_args);
    let other = Member::start(s, "orders", "billing", &[]);
    let d = wait_stable(s, "billing", 2);
    let instance_of = |d: &Value| -> String {
        d["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["instance_id"] == "host-1")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mine = owners(&d)[&instance_of(&d)].clone();
    assert_eq!(first.stop("TERM"), Some(0));
    let again = Member::start(s, "orders", "billing", &static_args);
    // Records written now on its partitions reach the restarted member.
    fill(s, "orders", 8, 5, "after");
    let want: Offsets = mine.iter().map(|&p| (p as u32, 5)).collect();
    wait_for(|| {
        let got: Offsets = again.printed().into_iter().collect();
        got.is_superset(&want).then_some(())
    })
    .unwrap_or_else(|| panic!("restarted member: {}", again.stderr()));
    let d2 = describe_group(s, "billing");
    assert_eq!(d2["generation"], d["generation"], "{d2}");
    assert_ne!(instance_of(&d2), instance_of(&d));
    assert_eq!(owners(&d2)[&instance_of(&d2)], mine, "{d2}");
    assert_eq!(again.stop("TERM"), Some(0));
    assert_eq!(other.stop("TERM"), Some(0));
}

/// `-c N` commits exactly the N records printed; lag is end minus committed; the operator's
/// commands are refused while a member is live and change nothing, and work once it left.
#[test]
fn lag_is_end_minus_committed_and_operators_wait_for_members_to_leave() {
    let local = LocalStore::new();
    let s = &local.url;
    create(s, "orders", 4);
    fill(s, "orders", 4, 25, "x");
    let f = pail(
        s,
        &[
            "consume", "orders", "--group", "billing", "--format", "json", "-c", "30",
        ],
    );
    let printed = parse_json_records(f.assert_ok(), "orders");
    assert_eq!(printed.len(), 30);
    let mut per_partition: BTreeMap<u32, u64> = BTreeMap::new();
    for r in &printed {
        let next = per_partition.entry(r.partition).or_default();
        *next = (*next).max(r.offset + 1);
    }
    let d = describe_group(s, "billing");
    for p in d["partitions"].as_array().unwrap() {
        let n = p["partition"].as_u64().unwrap() as u32;
        let c = p["committed"].as_u64().unwrap_or(0);
        assert_eq!(c, per_partition.get(&n).copied().unwrap_or(0), "{d}");
        assert_eq!(
            p["lag"].as_u64().unwrap(),
            p["end_offset"].as_u64().unwrap() - c
        );
    }
    // The next member goes on from there: the other 70, none again.
    let live = Member::start(s, "orders", "billing", &[]);
    wait_for(|| (live.printed().len() >= 70).then_some(())).unwrap();
    let before = describe_group(s, "billing");
    for args in [
        vec![
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "orders",
            "--to-earliest",
        ],
        vec!["group", "delete", "billing"],
    ] {
        let refused: Finished = pail(s, &args);
        refused.assert_one_error(1, &["billing", "live members"]);
    }
    assert_eq!(committed(&describe_group(s, "billing")), committed(&before));
    let rest_printed = live.printed();
    assert_eq!(live.stop("TERM"), Some(0));
    let first: Offsets = printed.iter().map(|r| (r.partition, r.offset)).collect();
    let rest: Offsets = rest_printed.into_iter().collect();
    assert!(first.is_disjoint(&rest));
    assert_eq!(first.union(&rest).count(), 100);
    let f = pail(
        s,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "orders",
            "--to-offset",
            "10",
        ],
    );
    assert_eq!(f.assert_ok().stdout_text().lines().count(), 4);
    let d = describe_group(s, "billing");
    assert!(
        d["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["lag"] == 15),
        "{d}"
    );
    let listed = pail(s, &["group", "list"]).assert_ok().stdout_text();
    assert_eq!(listed, "billing\n");
    pail(s, &["group", "delete", "billing"]).assert_ok();
    assert_eq!(pail(s, &["group", "list"]).assert_ok().stdout_text(), "");
    pail(s, &["group", "describe", "billing"]).assert_one_error(1, &["unknown consumer group"]);
}

/// What a group member cannot do is refused before anything is read or written.
#[test]
fn group_options_that_make_no_sense_are_refused() {
    let local = LocalStore::new();
    let s = &local.url;
    create(s, "orders", 2);
    for (args, needle) in [
        (
            vec!["consume", "orders", "--group", "g", "-p", "0"],
            "--partition",
        ),
        (
            vec!["consume", "orders", "--group", "g", "-o", "5"],
            "reset-offsets",
        ),
        (vec!["consume", "orders", "--instance-id", "i"], "--group"),
        (
            vec!["consume", "orders", "--group", "bad/name"],
            "invalid group name",
        ),
        (
            vec![
                "consume",
                "orders",
                "--group",
                "g",
                "--session-timeout-ms",
                "10",
            ],
            "session timeout",
        ),
        (
            vec![
                "group",
                "reset-offsets",
                "g",
                "--topic",
                "orders",
                "--to-datetime",
                "noon",
            ],
            "RFC 3339",
        ),
        (
            vec![
                "group",
                "reset-offsets",
                "g",
                "--topic",
                "orders",
                "--to-offset",
                "99",
            ],
            "out of range",
        ),
    ] {
        let f = pail(s, &args);
        let code = f.code.unwrap();
        assert!(code == 1 || code == 2, "{args:?}: {}", f.stderr);
        f.assert_one_error(code, &[needle]);
    }
    assert_eq!(pail(s, &["group", "list"]).assert_ok().stdout_text(), "");
}
