//! Process-level crash tests: real `pail produce` and `pail consume --follow` processes are
//! killed with SIGKILL at random points while they work on one store, round after round, and
//! afterwards the log must still be exactly what the protocol promises.
//!
//! Each round starts several producers at once on a 2-partition topic, each with its own lines
//! (`r{round}-p{proc}-{i:06}`) on stdin and small batches (`--batch-records 50 --linger-ms 1`)
//! so each makes dozens of commits. Half of them are killed after a random delay, the rest run
//! to completion. Tailing consumers are killed at random times too, and one plain consume must
//! finish while the producers are writing. The audit at the end (a fresh in-process client and
//! `pail consume --format json`) checks that:
//!
//! - each partition's offsets run 0, 1, 2, ... and `describe` and the segment listing agree;
//! - no line appears twice, and every line in the log is one a producer sent, byte for byte;
//! - every line of every producer that exited 0 is there;
//! - per producer and partition, lines are in the order they were sent;
//! - the partition folders hold only segment objects (a write killed half-way leaves its upload
//!   in `{root}/_staging`, outside every data folder; `tests/python/check_analytics.py` runs on
//!   the result when `PAIL_PYTHON` is set);
//! - everything any consumer printed is in the final log at the same partition and offset.
//!
//! The schedule (who is killed, when) comes from a seeded RNG; the seed is printed and
//! `PAIL_CRASH_SEED=N` replays the same schedule (process timing still varies from run to
//! run). Needs the `pail` binary (`cargo build -p pail-functions --bin pail`).
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use pail_core::storage::keys;
use pail_core::{Pail, TopicName};
use pail_tests::{
    Backend, Finished, Running, TestStore, assert_contiguous, pail_bin, pail_cmd, python, read_all,
    run_timed, spawn_timed,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

const TOPIC: &str = "crash";
const PARTITIONS: u32 = 2;
/// Deadline for a process that is not killed.
const DEADLINE: Duration = Duration::from_secs(120);

/// How hard one store is hit.
struct Plan {
    rounds: u32,
    producers: u32,
    /// How many of each round's producers get killed.
    killed: u32,
    lines: usize,
    /// When a doomed producer is killed, in ms after the round starts.
    producer_kill_ms: std::ops::Range<u64>,
    /// When a tailing consumer is killed.
    consumer_kill_ms: std::ops::Range<u64>,
    /// When the consume that must complete starts.
    consume_start_ms: std::ops::Range<u64>,
}

/// A producer of 1,500 lines makes 30 commits in about 0.1-0.4 s on a directory store (debug
/// build, four at once), so kills between 5 and 400 ms land before, during and after them.
const DIR_PLAN: Plan = Plan {
    rounds: 12,
    producers: 4,
    killed: 2,
    lines: 1_500,
    producer_kill_ms: 5..400,
    consumer_kill_ms: 20..600,
    consume_start_ms: 0..300,
};

/// moto is single-threaded and slower: fewer, shorter producers, later kills.
const S3_PLAN: Plan = Plan {
    rounds: 6,
    producers: 3,
    killed: 2,
    lines: 1_000,
    producer_kill_ms: 20..800,
    consumer_kill_ms: 50..1_500,
    consume_start_ms: 0..800,
};

#[test]
fn killed_producers_and_consumers_leave_a_sound_log_on_a_directory() {
    run(Backend::Local, &DIR_PLAN);
}

/// Against the S3 server of `PAIL_TEST_S3_URL` (moto in `tests/run.sh`); skipped when it is not
/// configured, unless `PAIL_REQUIRE_S3=1`.
mod s3 {
    #[test]
    fn killed_producers_and_consumers_leave_a_sound_log_on_s3() {
        super::run(super::Backend::S3, &super::S3_PLAN);
    }
}

// ---------------------------------------------------------------------------------------------
// The rounds.

/// One `pail produce` run.
struct ProducerRun {
    /// `r{round}-p{proc}`, the prefix of each of its lines.
    name: String,
    lines: usize,
    /// Whether the schedule killed it (it may have finished first).
    doomed: bool,
    finished: Finished,
}

impl ProducerRun {
    fn completed(&self) -> bool {
        self.finished.code == Some(0)
    }
}

/// One `pail consume --format json` run and where it started in each partition it read.
struct ConsumerRun {
    finished: Finished,
    /// Partition -> the first offset it must have printed there.
    starts: BTreeMap<u32, u64>,
    /// A tailing consumer that was killed; its output may end with a partial line.
    killed: bool,
    /// Partition -> the offset it must have printed up to (exclusive) at least: where the
    /// partition ended before the consumer started.
    reach: BTreeMap<u32, u64>,
}

enum Action {
    KillProducer(usize),
    KillConsumer(usize),
    StartConsume,
}

fn seed() -> u64 {
    match std::env::var("PAIL_CRASH_SEED") {
        Ok(s) if !s.is_empty() => s
            .parse()
            .unwrap_or_else(|_| panic!("PAIL_CRASH_SEED={s:?} is not a u64")),
        _ => rand::random(),
    }
}

fn pail(url: &str, args: &[&str]) -> Finished {
    let mut cmd = pail_cmd(url);
    cmd.args(args);
    run_timed(cmd, None, DEADLINE)
}

fn run(backend: Backend, plan: &Plan) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(ts) = rt.block_on(TestStore::new(backend)) else {
        return;
    };
    let url = ts.url.clone().unwrap();
    let seed = seed();
    eprintln!(
        "crash test on {backend:?} ({url}): seed {seed}; PAIL_CRASH_SEED={seed} replays the \
         schedule (process timing still varies)"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let began = Instant::now();
    pail(
        &url,
        &[
            "topic",
            "create",
            TOPIC,
            "--partitions",
            &PARTITIONS.to_string(),
        ],
    )
    .assert_ok();

    let mut producers: Vec<ProducerRun> = Vec::new();
    let mut consumers: Vec<ConsumerRun> = Vec::new();
    for round in 0..plan.rounds {
        // Where each partition ends now, so this round's consumers need not reread the log.
        let ends = rt.block_on(next_offsets(&ts));
        let (p, c) = run_round(&url, plan, round, &ends, &mut rng);
        producers.extend(p);
        consumers.extend(c);
    }
    let rounds_took = began.elapsed();

    let log = rt.block_on(audit_store(&ts, backend));
    audit_consume_output(&url, &log);
    let stats = audit_lines(&log, &producers);
    audit_consumers(&log, &consumers);
    let staging = if backend == Backend::Local {
        let staging = audit_folders(Path::new(&url), &log);
        run_analytics_check(Path::new(&url));
        staging
    } else {
        0
    };
    let killed = producers.iter().filter(|p| !p.completed()).count();
    eprintln!(
        "crash test on {backend:?}: {} rounds in {:.1} s; {} producers ({killed} killed, {} \
         completed; of the killed, {} had written nothing, {} part of their lines, {} all of \
         them), {} consumers; {} records ({} from killed producers); {} segments; {staging} \
         staging files left by killed writes; audit done at {:.1} s",
        plan.rounds,
        rounds_took.as_secs_f64(),
        producers.len(),
        producers.len() - killed,
        stats.killed_none,
        stats.killed_partway,
        stats.killed_all,
        consumers.len(),
        log.records(),
        stats.from_killed,
        log.segments,
        began.elapsed().as_secs_f64()
    );
}

async fn next_offsets(ts: &TestStore) -> Vec<u64> {
    ts.client()
        .describe_topic(TOPIC)
        .await
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.next_offset)
        .collect()
}

fn run_round(
    url: &str,
    plan: &Plan,
    round: u32,
    ends: &[u64],
    rng: &mut StdRng,
) -> (Vec<ProducerRun>, Vec<ConsumerRun>) {
    let t0 = Instant::now();
    let mut events: Vec<(u64, Action)> = Vec::new();

    // Producers: `killed` of them, chosen at random, get a kill time.
    let mut doomed = vec![false; plan.producers as usize];
    while doomed.iter().filter(|d| **d).count() < plan.killed as usize {
        doomed[rng.random_range(0..plan.producers as usize)] = true;
    }
    let mut running: Vec<Option<(String, Running)>> = Vec::new();
    for (p, &doom) in doomed.iter().enumerate() {
        let name = format!("r{round}-p{p}");
        let mut stdin = String::new();
        for i in 0..plan.lines {
            stdin.push_str(&format!("{name}-{i:06}\n"));
        }
        let mut cmd = pail_cmd(url);
        cmd.args([
            "produce",
            TOPIC,
            "--batch-records",
            "50",
            "--linger-ms",
            "1",
        ]);
        running.push(Some((name, spawn_timed(cmd, Some(stdin.into_bytes())))));
        if doom {
            events.push((
                rng.random_range(plan.producer_kill_ms.clone()),
                Action::KillProducer(p),
            ));
        }
    }

    // Two tailing consumers, killed at random: one on every partition from the lowest end
    // offset, one on a random partition from its end.
    let low = *ends.iter().min().unwrap();
    let one = rng.random_range(0..PARTITIONS);
    let tails: Vec<(Vec<String>, BTreeMap<u32, u64>)> = vec![
        (
            vec!["--offset".into(), low.to_string()],
            (0..PARTITIONS).map(|p| (p, low)).collect(),
        ),
        (
            vec![
                "--partition".into(),
                one.to_string(),
                "--offset".into(),
                ends[one as usize].to_string(),
            ],
            BTreeMap::from([(one, ends[one as usize])]),
        ),
    ];
    let mut tailing: Vec<Option<(BTreeMap<u32, u64>, Running)>> = Vec::new();
    for (c, (args, starts)) in tails.into_iter().enumerate() {
        let mut cmd = pail_cmd(url);
        cmd.args(["consume", TOPIC, "--format", "json", "--follow"])
            .args(&args);
        tailing.push(Some((starts, spawn_timed(cmd, None))));
        events.push((
            rng.random_range(plan.consumer_kill_ms.clone()),
            Action::KillConsumer(c),
        ));
    }
    events.push((
        rng.random_range(plan.consume_start_ms.clone()),
        Action::StartConsume,
    ));
    events.sort_by_key(|(at, _)| *at);

    let mut producer_runs = Vec::new();
    let mut consumer_runs = Vec::new();
    let mut plain: Option<(BTreeMap<u32, u64>, Running)> = None;
    for (at, action) in events {
        let when = t0 + Duration::from_millis(at);
        std::thread::sleep(when.saturating_duration_since(Instant::now()));
        match action {
            Action::KillProducer(p) => {
                let (name, r) = running[p].take().unwrap();
                let finished = r.kill();
                producer_runs.push(ProducerRun {
                    name,
                    lines: plan.lines,
                    doomed: true,
                    finished,
                });
            }
            Action::KillConsumer(c) => {
                let (starts, r) = tailing[c].take().unwrap();
                consumer_runs.push(ConsumerRun {
                    finished: r.kill(),
                    starts,
                    killed: true,
                    reach: BTreeMap::new(),
                });
            }
            Action::StartConsume => {
                let mut cmd = pail_cmd(url);
                cmd.args(["consume", TOPIC, "--format", "json", "--offset"])
                    .arg(low.to_string());
                let starts = (0..PARTITIONS).map(|p| (p, low)).collect();
                plain = Some((starts, spawn_timed(cmd, None)));
            }
        }
    }
    for (name, r) in running.into_iter().flatten() {
        producer_runs.push(ProducerRun {
            name,
            lines: plan.lines,
            doomed: false,
            finished: r.wait(DEADLINE),
        });
    }
    let (starts, r) = plain.unwrap();
    let finished = r.wait(DEADLINE);
    finished.assert_ok();
    consumer_runs.push(ConsumerRun {
        finished,
        starts,
        killed: false,
        reach: (0..PARTITIONS).map(|p| (p, ends[p as usize])).collect(),
    });

    // Every producer either exited 0 with the full summary or was ended by our SIGKILL.
    for p in &producer_runs {
        match p.finished.code {
            Some(0) => assert!(
                p.finished
                    .stderr
                    .contains(&format!("produced {} records to {TOPIC}", p.lines)),
                "{} exited 0 without acknowledging all {} lines: {}",
                p.name,
                p.lines,
                p.finished.stderr
            ),
            None if p.doomed => {}
            code => panic!(
                "{} ({}) exited with {code:?} without being killed; stderr:\n{}",
                p.name,
                if p.doomed { "doomed" } else { "not doomed" },
                p.finished.stderr
            ),
        }
    }
    // A tailing consumer never stops on its own: it must still have been running.
    for c in consumer_runs.iter().filter(|c| c.killed) {
        assert_eq!(
            c.finished.code, None,
            "a tailing consumer exited by itself; stderr:\n{}",
            c.finished.stderr
        );
    }
    (producer_runs, consumer_runs)
}

// ---------------------------------------------------------------------------------------------
// The audit.

/// The final log, read by a fresh client: each partition's values by offset.
struct Log {
    partitions: Vec<Vec<String>>,
    segments: u64,
}

impl Log {
    fn records(&self) -> usize {
        self.partitions.iter().map(Vec::len).sum()
    }
}

/// Reads the whole log with a fresh in-process client and checks offsets, `describe` and the
/// segment listing against each other.
async fn audit_store(ts: &TestStore, backend: Backend) -> Log {
    let pail = Pail::open(ts.url.as_deref().unwrap()).await.unwrap();
    let topic = TopicName::new(TOPIC).unwrap();
    let described = pail.describe_topic(TOPIC).await.unwrap();
    assert_eq!(described.partitions.len(), PARTITIONS as usize);
    let mut partitions = Vec::new();
    let mut segments = 0;
    for p in 0..PARTITIONS {
        let records = read_all(&pail, TOPIC, p).await;
        assert_contiguous(&records, 0);
        let d = &described.partitions[p as usize];
        assert_eq!(
            d.next_offset,
            records.len() as u64,
            "partition {p}: describe's next offset and the records read disagree"
        );
        // Only segments are listed in a partition folder, each named by a version of one
        // chain: versions 1..=n, base offsets never going back, starting at 0.
        let listed = ts
            .store
            .list_after(&keys::partition_dir(&topic, p), None)
            .await
            .unwrap();
        let mut chain: Vec<(u64, u64)> = listed
            .iter()
            .map(|m| {
                keys::parse_segment(&m.location)
                    .unwrap_or_else(|| panic!("{backend:?}: {} is not a segment key", m.location))
            })
            .map(|(base, version)| (version, base))
            .collect();
        chain.sort_unstable();
        let versions: Vec<u64> = chain.iter().map(|c| c.0).collect();
        assert_eq!(
            versions,
            (1..=chain.len() as u64).collect::<Vec<_>>(),
            "partition {p}: the segment versions are not 1..=n"
        );
        let bases: Vec<u64> = chain.iter().map(|c| c.1).collect();
        assert!(
            bases.first().is_none_or(|b| *b == 0)
                && bases.windows(2).all(|w| w[0] <= w[1])
                && bases.last().is_none_or(|b| *b <= d.next_offset),
            "partition {p}: segment base offsets out of order: {bases:?}"
        );
        assert_eq!(
            d.segments,
            chain.len() as u64,
            "partition {p}: describe counts {} segments, the listing {}",
            d.segments,
            chain.len()
        );
        segments += d.segments;
        partitions.push(
            records
                .into_iter()
                .map(|r| {
                    let v = r.value.unwrap_or_else(|| {
                        panic!(
                            "partition {p} offset {}: a record without a value",
                            r.offset
                        )
                    });
                    String::from_utf8(v.to_vec()).unwrap_or_else(|_| {
                        panic!(
                            "partition {p} offset {}: a value that is not UTF-8",
                            r.offset
                        )
                    })
                })
                .collect(),
        );
    }
    Log {
        partitions,
        segments,
    }
}

/// `pail consume --format json` from a fresh process prints exactly the log.
fn audit_consume_output(url: &str, log: &Log) {
    let f = pail(url, &["consume", TOPIC, "--format", "json"]);
    f.assert_ok();
    let records = parse_records(&f.stdout, false);
    let mut per_partition: Vec<Vec<String>> = vec![Vec::new(); PARTITIONS as usize];
    for (p, offset, value) in records {
        let got = &mut per_partition[p as usize];
        assert_eq!(
            offset,
            got.len() as u64,
            "pail consume: partition {p} offsets are not contiguous from 0"
        );
        got.push(value);
    }
    for (p, (got, want)) in per_partition.iter().zip(&log.partitions).enumerate() {
        assert_eq!(got.len(), want.len(), "pail consume: partition {p} length");
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            panic!(
                "pail consume: partition {p} offset {i} is {:?}, the in-process read {:?}",
                got[i], want[i]
            );
        }
    }
}

/// `(partition, offset, value)` of each JSON line; with `partial_tail`, an unterminated last
/// line (a killed consumer's buffer cut mid-write) is dropped.
fn parse_records(stdout: &[u8], partial_tail: bool) -> Vec<(u32, u64, String)> {
    let text = String::from_utf8_lossy(stdout);
    let mut lines: Vec<&str> = text.split('\n').collect();
    let tail = lines.pop().unwrap();
    assert!(
        tail.is_empty() || partial_tail,
        "consume output does not end with a newline: {tail:?}"
    );
    lines
        .into_iter()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("consume printed a line that is not JSON ({e}): {line}")
            });
            assert_eq!(v["topic"], TOPIC, "{line}");
            assert_eq!(v["value_encoding"], "utf8", "{line}");
            (
                v["partition"].as_u64().unwrap() as u32,
                v["offset"].as_u64().unwrap(),
                v["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[derive(Default)]
struct LineStats {
    from_killed: usize,
    /// Killed producers with none, some, and all of their lines in the log.
    killed_none: usize,
    killed_partway: usize,
    killed_all: usize,
}

/// Every value is an intact line some producer sent, at most once; completed producers' lines
/// are all there; each producer's lines keep their order within a partition.
fn audit_lines(log: &Log, producers: &[ProducerRun]) -> LineStats {
    let by_name: HashMap<&str, &ProducerRun> =
        producers.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut seen: HashMap<&str, (usize, u64)> = HashMap::new();
    let mut per_producer: HashMap<&str, usize> = HashMap::new();
    let mut stats = LineStats::default();
    for (p, values) in log.partitions.iter().enumerate() {
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (offset, value) in values.iter().enumerate() {
            if let Some((q, o)) = seen.insert(value, (p, offset as u64)) {
                panic!(
                    "{value:?} is in the log twice: partition {q} offset {o} and partition {p} offset {offset}"
                );
            }
            let (name, i) = parse_line(value).unwrap_or_else(|| {
                panic!("partition {p} offset {offset}: {value:?} is not a line any producer sent")
            });
            let producer = by_name.get(name).unwrap_or_else(|| {
                panic!("partition {p} offset {offset}: {value:?} names no producer of this test")
            });
            assert!(
                i < producer.lines,
                "partition {p} offset {offset}: {value:?} is past the {} lines {name} sent",
                producer.lines
            );
            if let Some(prev) = last.insert(name, i) {
                assert!(
                    prev < i,
                    "partition {p}: {name}'s line {i} (offset {offset}) comes after its line {prev}"
                );
            }
            *per_producer.entry(name).or_default() += 1;
            if !producer.completed() {
                stats.from_killed += 1;
            }
        }
    }
    for p in producers {
        let got = per_producer.get(p.name.as_str()).copied().unwrap_or(0);
        if p.completed() {
            assert_eq!(
                got, p.lines,
                "{} exited 0 but only {got} of its {} lines are in the log",
                p.name, p.lines
            );
        } else if got == 0 {
            stats.killed_none += 1;
        } else if got < p.lines {
            stats.killed_partway += 1;
        } else {
            stats.killed_all += 1;
        }
    }
    stats
}

/// `r{round}-p{proc}-{i:06}` -> (`r{round}-p{proc}`, i), only if the text is exactly that.
fn parse_line(value: &str) -> Option<(&str, usize)> {
    let (name, i) = value.rsplit_once('-')?;
    let (r, p) = name.split_once("-p")?;
    let round: u32 = r.strip_prefix('r')?.parse().ok()?;
    let proc: u32 = p.parse().ok()?;
    let n: usize = i.parse().ok()?;
    (format!("r{round}-p{proc}-{n:06}") == value).then_some((name, n))
}

/// Each consumer printed, per partition, a contiguous run of offsets from where it started,
/// each record as it is in the final log.
fn audit_consumers(log: &Log, consumers: &[ConsumerRun]) {
    for c in consumers {
        let what = &c.finished.what;
        let records = parse_records(&c.finished.stdout, c.killed);
        let mut next: BTreeMap<u32, u64> = c.starts.clone();
        for (p, offset, value) in records {
            let expected = next.get_mut(&p).unwrap_or_else(|| {
                panic!("{what}: printed partition {p}, which it was not reading")
            });
            assert_eq!(
                offset, *expected,
                "{what}: partition {p} offsets are not contiguous from {}",
                c.starts[&p]
            );
            *expected += 1;
            let in_log = log.partitions[p as usize].get(offset as usize);
            assert_eq!(
                in_log,
                Some(&value),
                "{what}: printed {value:?} at partition {p} offset {offset}; the final log has {in_log:?}"
            );
        }
        // A consume that exits on its own read each partition at least up to where it ended
        // before the consume started.
        for (p, reach) in &c.reach {
            assert!(
                next[p] >= *reach,
                "{what}: stopped partition {p} at offset {}, before its end {reach} when it started",
                next[p]
            );
        }
    }
}

/// The partition folders of a directory store hold nothing but segment files, whatever was
/// killed when; uploads cut off by a kill stay in `{root}/_staging`, where no reader looks.
/// Returns how many such leftovers there are.
fn audit_folders(root: &Path, log: &Log) -> usize {
    let topic_dir = root.join("topics").join(TOPIC);
    let mut entries: Vec<String> = std::fs::read_dir(&topic_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    // The hints folder appears with the 64th version of a partition.
    entries.retain(|e| e != "_hints");
    assert_eq!(
        entries,
        vec!["_topic.json", "partition=0", "partition=1"],
        "unexpected entries in {}",
        topic_dir.display()
    );
    let mut segments = 0u64;
    for p in 0..PARTITIONS {
        let dir = topic_dir.join(format!("partition={p}"));
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                is_segment_name(&name),
                "partition={p}/{name} is not a segment"
            );
            segments += 1;
        }
    }
    assert_eq!(
        segments, log.segments,
        "the folders hold {segments} segment files, pail lists {}",
        log.segments
    );
    let leftovers = std::fs::read_dir(root.join("_staging")).map_or(0, |d| d.count());
    if leftovers > 0 {
        eprintln!("{leftovers} uploads cut off by kills left in _staging (no reader looks there)");
    }
    leftovers
}

/// `{base:020}-{version:020}.parquet`.
fn is_segment_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".parquet") else {
        return false;
    };
    let Some((base, version)) = stem.split_once('-') else {
        return false;
    };
    [base, version]
        .iter()
        .all(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// pyarrow, DuckDB and `pail consume` read the crashed-on topic the same, and every segment
/// file agrees with its name and rows.
fn run_analytics_check(root: &Path) {
    let Some(python) = python() else {
        return;
    };
    let mut cmd = std::process::Command::new(python);
    cmd.env_remove("PAIL_STORE")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("python/check_analytics.py"))
        .arg("--store")
        .arg(root)
        .args(["--topic", TOPIC])
        .arg("--pail")
        .arg(pail_bin());
    let f = run_timed(cmd, None, Duration::from_secs(300));
    assert_eq!(
        f.code,
        Some(0),
        "check_analytics.py failed on the crashed-on store:\n{}{}",
        f.stdout_text(),
        f.stderr
    );
    eprint!("{}", f.stdout_text());
}

/// A write killed half-way on a directory store leaves its upload in `{root}/_staging`:
/// partial (killed while writing) or complete (killed between linking it into place and
/// removing the staging name). Planted here on purpose, so this does not depend on a kill
/// landing in that window: pail must not see them, later writes must not trip over them, the
/// analytics check must not count them, and an abandoned one is swept when the store is opened.
#[test]
fn uploads_cut_off_by_a_kill_are_invisible_and_swept() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("store").to_str().unwrap().to_string();
    pail(&url, &["topic", "create", TOPIC, "--partitions", "2"]).assert_ok();
    let produce = |lines: std::ops::Range<u32>| {
        let mut cmd = pail_cmd(&url);
        cmd.args(["produce", TOPIC, "--partition", "0", "--batch-records", "5"]);
        let stdin: String = lines.map(|i| format!("line-{i}\n")).collect();
        run_timed(cmd, Some(stdin.into_bytes()), DEADLINE).assert_ok();
    };
    produce(0..10);
    let part = Path::new(&url).join(format!("topics/{TOPIC}/partition=0"));
    let mut names: Vec<String> = std::fs::read_dir(&part)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    // A complete copy of a published segment, and half of one, as killed writes leave them.
    let staging = Path::new(&url).join("_staging");
    let bytes = std::fs::read(part.join(&names[1])).unwrap();
    std::fs::write(staging.join("complete"), &bytes).unwrap();
    std::fs::write(staging.join("partial"), &bytes[..bytes.len() / 2]).unwrap();

    let consumed = pail(&url, &["consume", TOPIC]).assert_ok().stdout_text();
    let want: String = (0..10).map(|i| format!("line-{i}\n")).collect();
    assert_eq!(consumed, want);
    produce(10..15);
    let consumed = pail(&url, &["consume", TOPIC]).assert_ok().stdout_text();
    let want: String = (0..15).map(|i| format!("line-{i}\n")).collect();
    assert_eq!(consumed, want);
    let described = pail(&url, &["topic", "describe", TOPIC, "--format", "json"]);
    let d: Value = serde_json::from_slice(&described.assert_ok().stdout).unwrap();
    assert_eq!(d["partitions"][0]["next_offset"], 15);
    assert_eq!(d["partitions"][0]["segments"], 3);
    run_analytics_check(Path::new(&url));
    // Fresh leftovers may belong to a live writer and stay; abandoned ones are swept on open.
    assert!(staging.join("complete").is_file());
    let old = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    for name in ["complete", "partial"] {
        std::fs::File::options()
            .write(true)
            .open(staging.join(name))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    pail(&url, &["topic", "list"]).assert_ok();
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        0,
        "abandoned uploads were not swept"
    );
}
