//! `pail bench group`: a consumer group on one store, in four phases.
//!
//! 1. `--records` are written (untimed), then `--members` members join at once and read them:
//!    each member's time from join to its first record, and records/s across the group until
//!    every record was delivered.
//! 2. While a trickle producer appends to every partition, one more member joins the stable
//!    group: its time from join to first record (owners hand partitions over at their next
//!    chain read).
//! 3. One member is killed (stops polling and renewing, never leaves): the time until every
//!    partition it owned delivers a record written after the kill through another member.
//! 4. For `--window-ms`, with the trickle running: chain writes (group versions) per member-hour.
//!
//! Members are tasks in this process, each with its own client, as separate processes would be.

use pail_core::consumer::{Consumer, ConsumerConfig, OffsetReset};
use pail_core::{Pail, Record, Store};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{BenchArgs, Percentiles};

const RUN: u8 = 0;
const LEAVE: u8 = 1;
const KILL: u8 = 2;
/// Records per append while seeding.
const SEED_BATCH: u64 = 1_000;
/// Pause between trickle rounds (one record per partition each).
const TRICKLE_EVERY: Duration = Duration::from_millis(20);

#[derive(Debug, Serialize)]
pub struct GroupReport {
    pub store: String,
    pub members: usize,
    pub partitions: u32,
    pub records: u64,
    pub session_timeout_ms: u64,
    pub renew_interval_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// Phase 1: join to first record of the first member of an empty group.
    pub join_empty_ms: f64,
    /// Phase 1: join to first record of each member joining it at once (those that got any
    /// record before the backlog was read).
    pub join_all_at_once: Percentiles,
    pub group_records_per_s: f64,
    /// Phase 2: join to first record of a member joining a stable group.
    pub join_stable_ms: f64,
    /// Phase 3: kill to the last of the victim's partitions delivering through another member.
    pub rebalance_after_kill_ms: f64,
    /// Phase 4: group versions written per member-hour with records flowing.
    pub chain_writes_per_member_hour: f64,
    /// Bytes of the group's latest version.
    pub version_bytes: usize,
}

/// What members delivered, shared by all of them.
#[derive(Default)]
struct Log {
    first: HashMap<(u32, u64), Instant>,
    first_record: HashMap<usize, Duration>,
}

struct Member {
    stop: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn config(group: &str, topic: &str, args: &BenchArgs) -> ConsumerConfig {
    let mut c = ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::new(group, &[topic])
    };
    if let Some(ms) = args.session_timeout_ms {
        c.session_timeout_ms = ms;
        c.renew_interval_ms = ms / 3;
    }
    if let Some(ms) = args.heartbeat_interval_ms {
        c.heartbeat_interval_ms = ms;
    }
    c
}

/// The log, even if a member panicked holding it (it only ever inserts).
fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn start_member(store: &Store, cfg: ConsumerConfig, idx: usize, log: &Arc<Mutex<Log>>) -> Member {
    let stop = Arc::new(AtomicU8::new(RUN));
    let (flag, log, pail) = (Arc::clone(&stop), Arc::clone(log), Pail::new(store.clone()));
    let task = tokio::spawn(async move {
        let joined = Instant::now();
        let mut c = Consumer::join(pail, cfg).await?;
        loop {
            match flag.load(Ordering::SeqCst) {
                RUN => {}
                LEAVE => return Ok(c.leave().await?),
                _ => return Ok(()),
            }
            // A contended chain can miss a write's deadline: the member retries at its next
            // poll, as `pail consume --group` does.
            let got = match c.poll(Duration::from_millis(50)).await {
                Ok(got) => got,
                Err(e) if e.kind().is_retriable() => continue,
                Err(e) => return Err(e.into()),
            };
            let now = Instant::now();
            let mut log = lock(&log);
            if !got.records.is_empty() {
                log.first_record.entry(idx).or_insert(now - joined);
            }
            for r in got.records {
                log.first
                    .entry((r.partition, r.record.offset))
                    .or_insert(now);
            }
        }
    });
    Member { stop, task }
}

/// Polls `done` every 10 ms until true; fails after `limit`.
async fn until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

pub async fn run(store: &Store, topic: &str, args: &BenchArgs) -> anyhow::Result<GroupReport> {
    let pail = Pail::new(store.clone());
    seed(&pail, topic, args).await?;
    let group = format!("bench-{:08x}", rand::random::<u32>());
    let cfg = config(&group, topic, args);
    let patience = Duration::from_millis(cfg.session_timeout_ms * 4 + 120_000);
    let log = Arc::new(Mutex::new(Log::default()));
    let size = |log: &Arc<Mutex<Log>>| lock(log).first.len() as u64;

    // 1. One member joins the empty group; once it reads, the others join at once, and
    //    between them they read the backlog.
    let started = Instant::now();
    let mut members = vec![start_member(store, cfg.clone(), 0, &log)];
    let first_of = |log: &Arc<Mutex<Log>>, i: usize| lock(log).first_record.get(&i).copied();
    until(patience, "the first member's first record", || {
        first_of(&log, 0).is_some()
    })
    .await?;
    let join_empty = first_of(&log, 0).unwrap_or_default();
    members.extend((1..args.members).map(|i| start_member(store, cfg.clone(), i, &log)));
    until(patience, "reading every record", || {
        size(&log) >= args.records
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let joins: Vec<Duration> = (1..args.members)
        .filter_map(|i| first_of(&log, i))
        .collect();
    say(
        args,
        &format!("phase 1: {} records in {seconds:.2} s", args.records),
    );

    // 2. One more member joins the stable group while records keep coming.
    let trickling = Arc::new(AtomicBool::new(true));
    let trickle = tokio::spawn(trickle(
        pail.clone(),
        topic.to_string(),
        args.partitions,
        Arc::clone(&trickling),
    ));
    let late = args.members;
    members.push(start_member(store, cfg.clone(), late, &log));
    let has_first = |log: &Arc<Mutex<Log>>| lock(log).first_record.contains_key(&late);
    until(patience, "the late member's first record", || {
        has_first(&log)
    })
    .await?;
    let join_stable = lock(&log).first_record[&late];
    say(
        args,
        &format!("phase 2: joined a stable group, first record in {join_stable:?}"),
    );

    // 3. Kill member 0: it stops renewing and never leaves.
    let rebalance = kill_and_wait(&pail, &group, &mut members, &log, patience).await?;
    say(
        args,
        &format!("phase 3: partitions of a killed member delivered again after {rebalance:?}"),
    );

    // 4. Chain writes over a window, records flowing.
    let before = pail.group_state(&group).await?.version;
    tokio::time::sleep(Duration::from_millis(args.window_ms)).await;
    let state = pail.group_state(&group).await?;
    let live = members.len();
    let hours = args.window_ms as f64 / 3_600_000.0;
    let per_member_hour = (state.version - before) as f64 / live as f64 / hours;
    trickling.store(false, Ordering::SeqCst);
    trickle.await??;
    for m in &members {
        m.stop.store(LEAVE, Ordering::SeqCst);
    }
    for m in members {
        m.task.await??;
    }
    Ok(GroupReport {
        store: store.location().to_string(),
        members: args.members,
        partitions: args.partitions,
        records: args.records,
        session_timeout_ms: cfg.session_timeout_ms,
        renew_interval_ms: cfg.renew_interval_ms,
        heartbeat_interval_ms: cfg.heartbeat_interval_ms,
        join_empty_ms: join_empty.as_secs_f64() * 1000.0,
        join_all_at_once: Percentiles::of(joins),
        group_records_per_s: args.records as f64 / seconds,
        join_stable_ms: join_stable.as_secs_f64() * 1000.0,
        rebalance_after_kill_ms: rebalance.as_secs_f64() * 1000.0,
        chain_writes_per_member_hour: per_member_hour,
        version_bytes: state.encode().map_err(anyhow::Error::msg)?.len(),
    })
}

/// Kills member 0 and waits until every partition (so also each it owned, now through another
/// member) delivers a record written after the kill. Returns the time from the kill.
async fn kill_and_wait(
    pail: &Pail,
    group: &str,
    members: &mut Vec<Member>,
    log: &Arc<Mutex<Log>>,
    patience: Duration,
) -> anyhow::Result<Duration> {
    let victim = members.remove(0);
    victim.stop.store(KILL, Ordering::SeqCst);
    victim.task.await??;
    let killed = Instant::now();
    let state = pail.group_state(group).await?;
    let ends: BTreeMap<u32, u64> =
        futures::future::try_join_all(state.assignment.keys().map(|tp| {
            let (pail, tp) = (pail.clone(), tp.clone());
            async move {
                let head = pail.partition_tip(&tp.topic, tp.partition).await?;
                anyhow::Ok((tp.partition, head.state.next_offset))
            }
        }))
        .await?
        .into_iter()
        .collect();
    let all_after = |log: &Arc<Mutex<Log>>| {
        let log = lock(log);
        ends.iter()
            .all(|(&p, &end)| log.first.contains_key(&(p, end)))
    };
    until(patience, "the killed member's partitions moving", || {
        all_after(log)
    })
    .await?;
    Ok(killed.elapsed())
}

async fn seed(pail: &Pail, topic: &str, args: &BenchArgs) -> anyhow::Result<()> {
    let value = vec![b'x'; args.record_bytes];
    let per = args.records.div_ceil(u64::from(args.partitions));
    let mut left = args.records;
    for p in 0..args.partitions {
        let mut here = per.min(left);
        left -= here;
        while here > 0 {
            let n = here.min(SEED_BATCH);
            let records = (0..n).map(|_| Record::from_value(value.clone())).collect();
            pail.append(topic, p, records).await?;
            here -= n;
        }
    }
    Ok(())
}

/// Appends one record to every partition each round until `on` is cleared.
async fn trickle(
    pail: Pail,
    topic: String,
    partitions: u32,
    on: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    while on.load(Ordering::SeqCst) {
        let appends =
            (0..partitions).map(|p| pail.append(&topic, p, vec![Record::from_value("t")]));
        futures::future::try_join_all(appends).await?;
        tokio::time::sleep(TRICKLE_EVERY).await;
    }
    Ok(())
}

fn say(args: &BenchArgs, line: &str) {
    if !args.quiet {
        eprintln!("  {line}");
    }
}

impl GroupReport {
    pub fn table(&self) -> String {
        let j = &self.join_all_at_once;
        format!(
            "group bench on {} ({} members, {} partitions, {} records; session {} ms, renew {} ms, chain read every {} ms)\n\
             join to first record, into an empty group   {:.0} ms\n\
             join to first record, {} joining at once     p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms\n\
             join to first record, into a stable group   {:.0} ms\n\
             records/s across the group                  {:.0}\n\
             rebalance after a kill (to first record)    {:.0} ms\n\
             chain writes per member-hour (consuming)    {:.0}\n\
             bytes of the group's latest version         {}\n",
            self.store,
            self.members,
            self.partitions,
            self.records,
            self.session_timeout_ms,
            self.renew_interval_ms,
            self.heartbeat_interval_ms,
            self.join_empty_ms,
            j.count,
            j.p50_ms,
            j.p99_ms,
            j.max_ms,
            self.join_stable_ms,
            self.group_records_per_s,
            self.rebalance_after_kill_ms,
            self.chain_writes_per_member_hour,
            self.version_bytes,
        )
    }
}
