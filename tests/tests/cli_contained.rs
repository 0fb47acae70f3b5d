//! Trouble stays where it is: a damaged partition, an unreadable topic, a store that stops
//! answering for a while, a mistyped store path, a store that cannot outlive the command.
//!
//! Needs the binary built first (see [`pail_tests::pail_bin`]).
#![allow(clippy::unwrap_used)]

use pail_tests::cli::*;
use std::path::Path;
use std::time::Duration;

/// How long a `--follow` test waits for what it expects before failing.
const FOLLOW: Duration = Duration::from_secs(60);

fn lines(tag: &str, range: std::ops::Range<u32>) -> String {
    range.map(|i| format!("{tag}-{i}\n")).collect()
}

/// Topic `d` with 2 partitions of two segments each (5 records per segment), values
/// `p{partition}-{n}`.
fn two_segment_topic(s: &str) {
    create(s, "d", 2);
    for round in 0..2 {
        for p in 0..2u32 {
            let input = lines(&format!("p{p}"), round * 5..round * 5 + 5);
            pail_with_stdin(s, &["produce", "d", "-p", &p.to_string()], input).assert_ok();
        }
    }
}

/// Replaces `path` with a symbolic link to itself: opening it fails with ELOOP, an error that
/// is neither "missing" nor "corrupt" (the store answers "unavailable", as for EACCES, which
/// root does not get). Returns where the original was moved to.
fn make_unreadable(path: &Path) -> std::path::PathBuf {
    let aside = path.with_extension("aside");
    std::fs::rename(path, &aside).unwrap();
    std::os::unix::fs::symlink(path.file_name().unwrap(), path).unwrap();
    aside
}

fn restore(path: &Path, aside: &Path) {
    std::fs::remove_file(path).unwrap();
    std::fs::rename(aside, path).unwrap();
}

#[test]
fn a_damaged_partition_does_not_silence_the_others() {
    let store = LocalStore::new();
    let s = &store.url;
    two_segment_topic(s);
    let victim = newest_segment(&store, "d", 0);
    std::fs::write(&victim, b"junk bytes, not parquet").unwrap();
    let key = victim
        .strip_prefix(store.root())
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();

    let f = pail(s, &["consume", "d"]);
    f.assert_one_error(1, &["corrupt", &key]);
    let out = f.stdout_text();
    let (p0, p1): (Vec<&str>, Vec<&str>) = out.lines().partition(|l| l.starts_with("p0-"));
    assert_eq!(p1.concat(), lines("p1", 0..10).replace('\n', ""), "{out}");
    // Partition 0's healthy first segment may print before the damage is met; nothing else.
    let healthy: Vec<String> = (0..p0.len()).map(|i| format!("p0-{i}")).collect();
    assert!(p0.len() <= 5 && p0 == healthy, "{out}");

    // --follow does not wait on damage that cannot heal: alone, the partition ends the command.
    let f = pail(s, &["consume", "d", "-p", "0", "--follow"]);
    f.assert_one_error(1, &["corrupt", &key]);
    // Beside a healthy partition, the follower reports it once and keeps following the other.
    let mut follower = Watched::start(s, &["consume", "d", "--follow"]);
    follower.wait_for("partition 1 and the damage", FOLLOW, |out, err| {
        out.contains("p1-9\n") && err.contains("corrupt")
    });
    pail_with_stdin(s, &["produce", "d", "-p", "1"], "p1-new\n").assert_ok();
    follower.wait_for("the new record", FOLLOW, |out, _| out.ends_with("p1-new\n"));
    let (_, err) = follower.kill();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("pail: error: corrupt object") && err.contains(&key),
        "{err}"
    );
}

#[test]
fn follow_rides_out_a_store_that_fails_and_heals() {
    let store = LocalStore::new();
    let s = &store.url;
    create(s, "f", 1);
    pail_with_stdin(s, &["produce", "f"], "a\nb\n").assert_ok();
    pail_with_stdin(s, &["produce", "f"], "c\nd\n").assert_ok();
    let newest = newest_segment(&store, "f", 0);
    let aside = make_unreadable(&newest);

    // Without --follow, a store error ends the command with one line.
    pail(s, &["consume", "f"]).assert_one_error(1, &["symbolic links"]);

    let mut follower = Watched::start(s, &["consume", "f", "--follow"]);
    follower.wait_for("a warning", FOLLOW, |_, err| err.contains("pail: warning:"));
    // Long enough for several retries (the first pauses are 0.5 s, 1 s, 2 s).
    std::thread::sleep(Duration::from_secs(2));
    restore(&newest, &aside);
    follower.wait_for("every record", FOLLOW, |out, _| out == "a\nb\nc\nd\n");
    pail_with_stdin(s, &["produce", "f"], "e\n").assert_ok();
    follower.wait_for("the new record", FOLLOW, |out, _| out == "a\nb\nc\nd\ne\n");
    let (_, err) = follower.kill();
    let warnings: Vec<&str> = err.lines().collect();
    assert_eq!(
        warnings.len(),
        1,
        "one line per episode, not per retry:\n{err}"
    );
    assert!(warnings[0].starts_with("pail: warning: "), "{err}");
    assert!(warnings[0].contains("retrying"), "{err}");
}

#[test]
fn an_unreadable_topic_descriptor_hides_no_other_topic() {
    let store = store_with_data();
    let s = &store.url;
    create(s, "locked", 1);
    create(s, "zeta", 1);
    let descriptor = store.root().join("topics/locked/_topic.json");
    // A real EACCES where permissions apply; root reads anything, so a link loop stands in.
    let aside = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&descriptor, std::fs::Permissions::from_mode(0o000)).unwrap();
        let readable = std::fs::read(&descriptor).is_ok();
        std::fs::set_permissions(&descriptor, std::fs::Permissions::from_mode(0o644)).unwrap();
        if readable {
            Some(make_unreadable(&descriptor))
        } else {
            std::fs::set_permissions(&descriptor, std::fs::Permissions::from_mode(0o000)).unwrap();
            None
        }
    };
    let f = pail(s, &["topic", "list"]);
    f.assert_one_error(1, &["topics/locked/_topic.json"]);
    assert_eq!(f.stdout_text(), "keep\nzeta\n");
    keep_contents(&store);

    match aside {
        Some(aside) => restore(&descriptor, &aside),
        None => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&descriptor, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let f = pail(s, &["topic", "list"]);
    assert_eq!(f.assert_ok().stdout_text(), "keep\nlocked\nzeta\n");
}

#[test]
fn read_only_commands_do_not_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("no-such-store");
    let path = typo.to_str().unwrap();
    let url = format!("file://{path}");
    for store in [path, url.as_str()] {
        for args in [
            vec!["topic", "list"],
            vec!["consume", "t"],
            vec!["topic", "describe", "t"],
        ] {
            let f = pail(store, &args);
            f.assert_one_error(1, &["no pail store there", path]);
            assert!(!typo.exists(), "{args:?} created {path}");
        }
    }
    // Commands that write may make it.
    create(path, "t", 1);
    assert!(typo.join("topics/t/_topic.json").is_file());
    pail(path, &["topic", "list"]).assert_ok();
}

#[test]
fn a_memory_store_is_refused_on_the_command_line() {
    let cwd = tempfile::tempdir().unwrap();
    for args in [
        vec!["topic", "create", "t", "--partitions", "1"],
        vec!["topic", "list"],
        vec!["produce", "t"],
        vec!["consume", "t"],
    ] {
        let mut cmd = pail_tests::pail_cmd("memory://");
        cmd.current_dir(cwd.path()).args(&args);
        let f = pail_tests::run_timed(cmd, Some(b"x\n".to_vec()), COMMAND);
        f.assert_one_error(
            1,
            &["memory://", "ends with the command", "use a directory"],
        );
    }
    assert!(std::fs::read_dir(cwd.path()).unwrap().next().is_none());
    // The bench runs in one process, so it may use one.
    let mut cmd = pail_tests::pail_cmd("memory://");
    cmd.current_dir(cwd.path())
        .args(["bench", "produce", "--records", "100", "--quiet"]);
    cmd.args(["--reference-puts", "0"]);
    pail_tests::run_timed(cmd, None, COMMAND).assert_ok();
}
