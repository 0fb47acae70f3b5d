//! How S3 answers map to pail's errors, against a real S3 server (moto in `tests/run.sh`, or
//! whatever `PAIL_TEST_S3_URL` names): a lost create, missing objects, topics and buckets, no
//! credentials at all, and the server dying under running commands.
//!
//! Everything is in `mod s3`, so it runs in the S3 phase of `tests/run.sh`; without
//! `PAIL_TEST_S3_URL` each test is skipped with a message, or fails if `PAIL_REQUIRE_S3=1`.
//! The tests that kill a server start their own private moto with `tests/s3/start.sh` (the
//! venv is found from `PAIL_PYTHON`, else `<repo>/.venv`) and always stop it, pass or fail.
//! Process tests need the `pail` binary (`cargo build -p pail-functions --bin pail`).
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod s3 {
    use bytes::Bytes;
    use object_store::path::Path;
    use object_store::{PutMode, PutOptions, PutPayload};
    use pail_core::storage::{Created, is_missing_bucket};
    use pail_core::{ErrorKind, FetchLimits, OffsetSpec, Pail, Store, TopicConfig};
    use pail_tests::{Finished, pail_cmd, run_timed, s3_url, spawn_timed, unique};
    use serde_json::Value;
    use std::time::{Duration, Instant};

    fn assert_one_error(f: &Finished, needles: &[&str]) -> String {
        f.assert_one_error(1, needles)
    }

    /// How long a command may take to give up on a dead or refusing store.
    const GIVE_UP: Duration = Duration::from_secs(30);
    /// Deadline for ordinary commands against a live server.
    const COMMAND: Duration = Duration::from_secs(60);

    /// A fresh prefix on the shared test server, or `None` (skip) when it is not configured.
    fn test_url() -> Option<String> {
        let base = s3_url()?;
        Some(format!("{}/{}", base.trim_end_matches('/'), unique("err-")))
    }

    /// A bucket name nobody created.
    fn missing_bucket() -> String {
        unique("no-such-bucket-")
    }

    /// What pail says of a missing bucket: one line naming it and the endpoint, not S3's XML.
    fn says_missing(bucket: &str) -> String {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
        format!(
            "bucket {bucket} does not exist (endpoint {})",
            endpoint.trim_end_matches('/')
        )
    }

    /// Asserts `err` is the missing-bucket error: `Unavailable`, naming the bucket, no XML.
    fn assert_missing_bucket(what: &str, err: &pail_core::Error, bucket: &str) {
        let text = err.to_string();
        // Certain, and no retry helps: the deployment must be fixed.
        assert_eq!(err.kind(), ErrorKind::Refused, "{what}: {text}");
        assert!(text.contains(&says_missing(bucket)), "{what}: {text}");
        assert!(!text.contains("<?xml"), "{what}: {text}");
        let source = match err {
            pail_core::Error::Store { source, .. } | pail_core::Error::Refused { source, .. } => {
                source
            }
            other => panic!("{what}: not a store error: {other}"),
        };
        assert!(is_missing_bucket(source), "{what}: {source:?}");
    }

    fn lines(n: usize, tag: &str) -> Vec<u8> {
        (0..n)
            .map(|i| format!("{tag}-{i}\n"))
            .collect::<String>()
            .into_bytes()
    }

    // -----------------------------------------------------------------------------------------
    // Answers of a live server.

    /// The second create of a key is refused by the server (412 to `If-None-Match: *`), comes
    /// back as `Created::AlreadyExists`, and leaves the first object as it was.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_create_is_already_exists_and_keeps_the_first_object() {
        let Some(url) = test_url() else {
            return;
        };
        let store = Store::open(&url).await.unwrap();
        let key = Path::from("lost/create.bin");
        assert_eq!(
            store
                .create(&key, Bytes::from_static(b"first bytes"))
                .await
                .unwrap(),
            Created::Yes
        );
        assert_eq!(
            store
                .create(&key, Bytes::from_static(b"second"))
                .await
                .unwrap(),
            Created::AlreadyExists
        );
        assert_eq!(
            store.get(&key).await.unwrap().as_deref(),
            Some(&b"first bytes"[..])
        );
        let (tail, size) = store.get_suffix(&key, 5).await.unwrap().unwrap();
        assert_eq!((&tail[..], size), (&b"bytes"[..], 11));

        // What the server said, under object_store's mapping: 412 Precondition Failed.
        let raw = store
            .object_store()
            .put_opts(
                &key,
                PutPayload::from_static(b"third"),
                PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(raw, object_store::Error::AlreadyExists { .. }),
            "{raw:?}"
        );
        assert!(raw.to_string().contains("412"), "{raw}");
        assert_eq!(
            store.get(&key).await.unwrap().as_deref(),
            Some(&b"first bytes"[..])
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_objects_and_topics_are_none_or_not_found() {
        let Some(url) = test_url() else {
            return;
        };
        let store = Store::open(&url).await.unwrap();
        let key = Path::from("no/such/object");
        assert!(store.get(&key).await.unwrap().is_none());
        assert!(store.get_suffix(&key, 64).await.unwrap().is_none());
        assert!(
            store
                .list_after(&Path::from("no/such"), None)
                .await
                .unwrap()
                .is_empty()
        );

        let pail = Pail::new(store);
        let err = pail.describe_topic("nope").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("unknown topic \"nope\""), "{err}");
        let err = pail
            .fetch("nope", 0, OffsetSpec::Earliest, FetchLimits::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("unknown topic \"nope\""), "{err}");
        assert!(pail.list_topics().await.unwrap().is_empty());

        let f = run_timed(
            {
                let mut c = pail_cmd(&url);
                c.args(["consume", "nope"]);
                c
            },
            None,
            COMMAND,
        );
        assert_one_error(&f, &["unknown topic \"nope\""]);
    }

    /// Listing a bucket that does not exist is one clear `Refused` error naming the
    /// bucket and the endpoint (moto, like AWS and MinIO, answers 404 `NoSuchBucket`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_missing_bucket_fails_list_topics_with_one_clear_error() {
        if s3_url().is_none() {
            return;
        }
        let bucket = missing_bucket();
        let url = format!("s3://{bucket}");
        let pail = Pail::new(Store::open(&url).await.unwrap());
        let err = pail.list_topics().await.unwrap_err();
        assert_missing_bucket("list topics", &err, &bucket);

        let mut cmd = pail_cmd(&url);
        cmd.args(["topic", "list"]);
        let line = assert_one_error(&run_timed(cmd, None, GIVE_UP), &[&says_missing(&bucket)]);
        assert!(!line.contains("<?xml"), "{line}");
    }

    /// Creating a topic in a bucket that does not exist is `Refused` (the deployment is wrong;
    /// no retry helps and nothing was written), not `NotFound` (which callers read as "that
    /// topic does not exist").
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_missing_bucket_fails_create_topic_as_unavailable() {
        if s3_url().is_none() {
            return;
        }
        let bucket = missing_bucket();
        let url = format!("s3://{bucket}/some/prefix");
        let pail = Pail::new(Store::open(&url).await.unwrap());
        let err = pail
            .create_topic("t", TopicConfig::new(1))
            .await
            .unwrap_err();
        assert_missing_bucket("create topic", &err, &bucket);

        let mut cmd = pail_cmd(&url);
        cmd.args(["topic", "create", "t", "--partitions", "1"]);
        assert_one_error(&run_timed(cmd, None, GIVE_UP), &[&says_missing(&bucket)]);
    }

    /// Reading or writing a topic in a bucket that does not exist must say the bucket is
    /// missing, not that the topic is unknown (which sends the user looking for a typo in the
    /// topic name, or worse, to create it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_missing_bucket_is_not_reported_as_an_unknown_topic() {
        if s3_url().is_none() {
            return;
        }
        let bucket = missing_bucket();
        let url = format!("s3://{bucket}");
        let pail = Pail::new(Store::open(&url).await.unwrap());
        let describe = pail.describe_topic("t").await.unwrap_err();
        let fetch = pail
            .fetch("t", 0, OffsetSpec::Earliest, FetchLimits::default())
            .await
            .unwrap_err();
        let append = pail
            .append("t", 0, vec![pail_core::Record::from_value("x")])
            .await
            .unwrap_err();
        for (what, err) in [("describe", describe), ("fetch", fetch), ("append", append)] {
            assert_missing_bucket(what, &err, &bucket);
        }

        for (args, stdin) in [
            (vec!["consume", "t"], None),
            (vec!["topic", "describe", "t"], None),
            (vec!["produce", "t"], Some(b"x\n".to_vec())),
        ] {
            let mut cmd = pail_cmd(&url);
            cmd.args(&args);
            let f = run_timed(cmd, stdin, GIVE_UP);
            let line = assert_one_error(&f, &[&says_missing(&bucket)]);
            assert!(
                !line.contains("<?xml") && !line.contains("not found"),
                "{line}"
            );
        }
    }

    /// With no credentials anywhere (no variables, no profile files, no instance metadata),
    /// a command fails fast with one line saying so.
    ///
    /// moto does not verify signatures, so wrong credentials cannot be tested here: only their
    /// absence, which pail notices before it sends anything.
    #[test]
    fn no_credentials_at_all_fail_fast_with_one_line() {
        let Some(url) = test_url() else {
            return;
        };
        let home = tempfile::tempdir().unwrap();
        let nowhere = home.path().join("does-not-exist");
        let mut cmd = pail_cmd(&url);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AWS_") {
                cmd.env_remove(&name);
            }
        }
        // Where the server is stays as it was.
        for keep in ["AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP", "AWS_REGION"] {
            if let Ok(v) = std::env::var(keep) {
                cmd.env(keep, v);
            }
        }
        cmd.env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", nowhere.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", nowhere.join("credentials"))
            .env("HOME", home.path())
            .args(["topic", "list"]);
        let f = run_timed(cmd, None, GIVE_UP);
        assert_one_error(&f, &["credentials"]);
    }

    // -----------------------------------------------------------------------------------------
    // A server that dies.

    /// A moto server of this test's own, started with `tests/s3/start.sh` and stopped with
    /// `tests/s3/stop.sh` when dropped, whatever happened.
    struct PrivateS3 {
        dir: tempfile::TempDir,
        env: Vec<(String, String)>,
        pid: u32,
        port: u16,
    }

    impl PrivateS3 {
        fn scripts() -> std::path::PathBuf {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("s3")
        }

        /// The venv start.sh should use: `PAIL_VENV`, else the one `PAIL_PYTHON` lives in,
        /// else start.sh's default (`<repo>/.venv`).
        fn venv() -> Option<std::path::PathBuf> {
            if let Some(v) = std::env::var_os("PAIL_VENV").filter(|v| !v.is_empty()) {
                return Some(v.into());
            }
            let python = std::path::PathBuf::from(std::env::var_os("PAIL_PYTHON")?);
            let venv = python.parent()?.parent()?;
            venv.join("pyvenv.cfg")
                .is_file()
                .then(|| venv.to_path_buf())
        }

        /// Starts the server, or `None` (skip) when no S3 test server is configured at all.
        fn start() -> Option<PrivateS3> {
            s3_url()?;
            let dir = tempfile::tempdir().unwrap();
            let mut cmd = std::process::Command::new("bash");
            cmd.arg(Self::scripts().join("start.sh")).arg(dir.path());
            if let Some(venv) = Self::venv() {
                cmd.env("PAIL_VENV", venv);
            }
            let f = run_timed(cmd, None, Duration::from_secs(60));
            assert_eq!(
                f.code,
                Some(0),
                "cannot start a private S3 server (tests/s3/start.sh needs the venv of \
                 tests/requirements.txt; set PAIL_PYTHON or PAIL_VENV):\n{}",
                f.stderr
            );
            let text = std::fs::read_to_string(dir.path().join("env")).unwrap();
            let env: Vec<(String, String)> = text
                .lines()
                .filter_map(|l| l.strip_prefix("export "))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let read = |name: &str| {
                std::fs::read_to_string(dir.path().join(name))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap()
            };
            let pid: u32 = read("moto.pid");
            let port = read("port") as u16;
            Some(PrivateS3 {
                dir,
                env,
                pid,
                port,
            })
        }

        /// A fresh prefix in the private server's bucket.
        fn url(&self) -> String {
            let base = &self
                .env
                .iter()
                .find(|(k, _)| k == "PAIL_TEST_S3_URL")
                .unwrap()
                .1;
            format!("{}/{}", base.trim_end_matches('/'), unique("dead-"))
        }

        /// `pail --store URL ARGS` aimed at this server, with short timeouts and one retry
        /// (set on the command: `Store::open` reads them, and the test process's environment
        /// is shared by every test thread).
        fn pail(&self, url: &str, args: &[&str]) -> std::process::Command {
            let mut cmd = pail_cmd(url);
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("AWS_") {
                    cmd.env_remove(&name);
                }
            }
            cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("PAIL_S3_MAX_RETRIES", "1")
                .env("PAIL_S3_TIMEOUT", "2s")
                .env("PAIL_S3_CONNECT_TIMEOUT", "1s")
                .args(args);
            cmd
        }

        /// SIGKILL, then wait until the port refuses connections.
        fn kill(&self) {
            let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
            assert!(
                String::from_utf8_lossy(&cmdline).contains("moto_server.py"),
                "pid {} is not our moto server",
                self.pid
            );
            let status = std::process::Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success(), "kill -KILL {} failed", self.pid);
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                assert!(
                    Instant::now() < deadline,
                    "port {} still answers 10 s after SIGKILL",
                    self.port
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    impl Drop for PrivateS3 {
        fn drop(&mut self) {
            // Exits 0 when the server is already gone.
            let _ = std::process::Command::new("bash")
                .arg(Self::scripts().join("stop.sh"))
                .arg(self.dir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }

    fn next_offsets_total(server: &PrivateS3, url: &str, topic: &str) -> u64 {
        let f = run_timed(
            server.pail(url, &["topic", "describe", topic, "--format", "json"]),
            None,
            COMMAND,
        );
        let d: Value = serde_json::from_slice(&f.assert_ok().stdout).unwrap();
        d["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["next_offset"].as_u64().unwrap())
            .sum()
    }

    /// After the server is killed, every command fails within the timeouts with one line
    /// naming the refused connection, instead of hanging.
    #[test]
    fn a_killed_server_fails_each_command_fast_with_one_line() {
        let Some(server) = PrivateS3::start() else {
            return;
        };
        let url = server.url();
        run_timed(
            server.pail(&url, &["topic", "create", "t", "--partitions", "2"]),
            None,
            COMMAND,
        )
        .assert_ok();
        run_timed(
            server.pail(&url, &["produce", "t"]),
            Some(lines(100, "before")),
            COMMAND,
        )
        .assert_ok();
        let f = run_timed(server.pail(&url, &["consume", "t"]), None, COMMAND);
        assert_eq!(f.assert_ok().stdout_text().lines().count(), 100);

        server.kill();
        for (args, stdin) in [
            (vec!["produce", "t"], Some(lines(10, "after"))),
            (vec!["consume", "t"], None),
            (vec!["consume", "t", "--follow"], None),
            (vec!["topic", "describe", "t"], None),
            (vec!["topic", "list"], None),
            (vec!["topic", "create", "u", "--partitions", "1"], None),
        ] {
            let f = run_timed(server.pail(&url, &args), stdin, GIVE_UP);
            let line = assert_one_error(&f, &["Connection refused"]);
            assert!(
                line.contains(&format!("127.0.0.1:{}", server.port)),
                "{}: the error should name the endpoint: {line}",
                f.what
            );
            eprintln!(
                "{:?} after the kill: {:.2} s: {line}",
                args,
                f.elapsed.as_secs_f64()
            );
        }
    }

    /// A long `pail produce` whose server is killed under it must give up within a minute with
    /// one error line and its summary, not keep retrying batch after batch.
    #[test]
    fn a_server_killed_during_a_long_produce_fails_it_in_bounded_time() {
        let Some(server) = PrivateS3::start() else {
            return;
        };
        let url = server.url();
        run_timed(
            server.pail(&url, &["topic", "create", "t", "--partitions", "2"]),
            None,
            COMMAND,
        )
        .assert_ok();
        let total = 50_000;
        let started = Instant::now();
        let producer = spawn_timed(
            server.pail(
                &url,
                &["produce", "t", "--batch-records", "50", "--linger-ms", "1"],
            ),
            Some(lines(total, "long")),
        );
        // Kill the server once the producer is well under way.
        let deadline = Instant::now() + COMMAND;
        while next_offsets_total(&server, &url, "t") < 1_000 {
            assert!(
                Instant::now() < deadline,
                "the producer committed under 1000 records in {COMMAND:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server.kill();
        let killed_at = started.elapsed();
        eprintln!(
            "killed the server {:.2} s into the produce",
            killed_at.as_secs_f64()
        );

        // Running::wait counts from the start of the process.
        let f = producer.wait(killed_at + Duration::from_secs(60));
        eprintln!(
            "the producer exited {:.2} s after the kill; stderr:\n{}",
            (f.elapsed - killed_at).as_secs_f64(),
            f.stderr
        );
        let line = assert_one_error(&f, &["not acknowledged", "Connection refused"]);
        let summary: Vec<&str> = f
            .stderr
            .lines()
            .filter(|l| l.starts_with("produced "))
            .collect();
        assert_eq!(summary.len(), 1, "one summary line: {}", f.stderr);
        let acked: u64 = summary[0]
            .strip_prefix("produced ")
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unreadable summary: {}", summary[0]));
        assert!(
            acked < total as u64 && summary[0].contains("failed"),
            "the summary must count what failed: {}; error: {line}",
            summary[0]
        );
    }
}
