//! `pail bench`: produce, consume and end-to-end benchmarks on any store, including a simulated
//! S3 (`--store sim:s3-standard` or `sim:s3-express`: the in-memory store behind published S3
//! latency figures). Reports throughput, latency percentiles, commits, and object-store requests
//! by type with their cost per GB at S3 list prices; progress on stderr while it runs; a table on
//! stdout and, with `--json`, the same as JSON. Method and results: `docs/BENCHMARKS.md`.

mod group;
mod report;
mod unkeyed;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use object_store::ObjectStore;
use pail_core::producer::{Producer, ProducerConfig};
use pail_core::storage::latency::{LatencyProfile, LatencyStore};
use pail_core::storage::metrics::{MeteredStore, RequestCounts, Requests};
use pail_core::{FetchLimits, OffsetSpec, Pail, Record, Store, TopicConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use report::{Cost, Percentiles, Report};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Producers only: throughput, acknowledgement latency, commits and PUT cost.
    Produce,
    /// Produce (untimed), then read everything back with a fresh client.
    Consume,
    /// Producers and tailing consumers at once: end-to-end latency.
    E2e,
    /// A consumer group: join latency, records/s across members, rebalance after a kill,
    /// chain writes per member-hour.
    Group,
}

/// How `bench produce` places records on partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Placement {
    /// Each writer's producer sends record i to partition i mod --partitions.
    Spread,
    /// Each writer appends its share as one unkeyed batch to a random partition, and stays
    /// there however busy it is (HTTP produce before unkeyed batches moved).
    Random,
    /// As `random`, but a batch that keeps losing races moves to another partition
    /// (`Pail::append_unkeyed`, as HTTP produce does).
    Moving,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub mode: Mode,
    /// Records to produce in all.
    #[arg(long, default_value_t = 200_000, value_parser = crate::cli::values::whole_u64)]
    pub records: u64,
    /// Size of each record's value.
    #[arg(long, default_value_t = 1024, value_parser = crate::cli::values::whole_usize)]
    pub record_bytes: usize,
    #[arg(long, default_value_t = 1, value_parser = crate::cli::values::partitions)]
    pub partitions: u32,
    /// Most payload bytes per commit.
    #[arg(long, default_value_t = 4 * 1024 * 1024, value_parser = crate::cli::values::whole_u64)]
    pub batch_bytes: u64,
    #[arg(long, default_value_t = ProducerConfig::default().linger_ms, value_parser = crate::cli::values::whole_u64)]
    pub linger_ms: u64,
    /// How long a small batch may keep waiting while records keep arriving (at or below
    /// --linger-ms: no extension).
    #[arg(long, default_value_t = ProducerConfig::default().linger_max_ms, value_parser = crate::cli::values::whole_u64)]
    pub linger_max_ms: u64,
    /// A lingering batch stops waiting once it holds this many bytes.
    #[arg(long, default_value_t = ProducerConfig::default().linger_until_bytes, value_parser = crate::cli::values::whole_u64)]
    pub linger_until_bytes: u64,
    /// Independent writers (each its own client and producer, racing like separate processes).
    #[arg(long, default_value_t = 1, value_parser = crate::cli::values::whole_usize)]
    pub writers: usize,
    /// How records are placed (produce): spread by the writers' producers, or one batch per
    /// writer on a random partition that stays or moves.
    #[arg(long, value_enum, default_value_t = Placement::Spread)]
    pub placement: Placement,
    /// With --placement moving: clean lost races before a batch moves (default:
    /// pail_core::client::UNKEYED_MOVE_AFTER_LOST_RACES).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub move_after: Option<u32>,
    /// With --placement random|moving: every writer's batch starts on this partition (a
    /// partition made busy by skewed placement) instead of a random one.
    #[arg(long)]
    pub first_partition: Option<u32>,
    /// Concurrent sending tasks per writer (sharing its producer and its commits).
    #[arg(long, default_value_t = 4, value_parser = crate::cli::values::whole_usize)]
    pub senders: usize,
    /// Target records per second in all (0: as fast as possible).
    #[arg(long, default_value_t = 0, value_parser = crate::cli::values::whole_u64)]
    pub rate: u64,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// PUT pairs timed after the run, at the run's mean segment size, as the yardstick for
    /// acknowledgement latency (0: skip).
    #[arg(long, default_value_t = 400, value_parser = crate::cli::values::whole_usize)]
    pub reference_puts: usize,
    /// Group members (bench group).
    #[arg(long, default_value_t = 4, value_parser = crate::cli::values::whole_usize)]
    pub members: usize,
    /// Members' session timeout (bench group; default: the consumer's, 45 s); renewals come
    /// every third of it.
    #[arg(long, value_parser = crate::cli::values::whole_u64)]
    pub session_timeout_ms: Option<u64>,
    /// How often members read the group's chain for changes (bench group; default: the
    /// consumer's, 1 s): owners see a partition is wanted elsewhere this late.
    #[arg(long, value_parser = crate::cli::values::whole_u64)]
    pub heartbeat_interval_ms: Option<u64>,
    /// How long chain writes are counted (bench group).
    #[arg(long, default_value_t = 30_000, value_parser = crate::cli::values::whole_u64)]
    pub window_ms: u64,
    /// Seed of the simulated store's latencies.
    #[arg(long, default_value_t = 1, value_parser = crate::cli::values::whole_u64)]
    pub seed: u64,
}

/// Opens the bench store: any store URL, or `sim:<profile>` for a latency-injected memory store.
async fn open_store(url: &str, seed: u64) -> anyhow::Result<Store> {
    if let Some(name) = url.strip_prefix("sim:") {
        let profile = LatencyProfile::by_name(name).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown simulated store {name:?}: use sim:s3-standard or sim:s3-express"
            )
        })?;
        let store = Store::memory().layered(|inner| {
            Arc::new(LatencyStore::new(inner, profile, seed)) as Arc<dyn ObjectStore>
        });
        return Ok(Store::new(Arc::clone(store.object_store()), true, url));
    }
    Ok(Store::open(url).await?)
}

/// `store` with every request counted (also what `pail serve` reports on `/metrics`).
pub(crate) fn metered(store: &Store) -> (Store, Arc<RequestCounts>) {
    let counts = Arc::new(RequestCounts::default());
    let c = Arc::clone(&counts);
    (
        store.layered(move |inner| Arc::new(MeteredStore::new(inner, c)) as Arc<dyn ObjectStore>),
        counts,
    )
}

pub async fn run(store_url: &str, args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.record_bytes >= 16,
        "--record-bytes must be at least 16 (a timestamp and a sequence number)"
    );
    anyhow::ensure!(
        args.records > 0 && args.writers > 0 && args.senders > 0,
        "--records, --writers and --senders must be positive"
    );
    let store = open_store(store_url, args.seed).await?;
    let topic = format!("bench-{:08x}", rand::random::<u32>());
    Pail::new(store.clone())
        .create_topic(&topic, TopicConfig::new(args.partitions))
        .await?;
    if !args.quiet {
        eprintln!("bench topic {topic} on {}", store.location());
    }
    if args.mode == Mode::Group {
        anyhow::ensure!(args.members > 0, "--members must be positive");
        let report = group::run(&store, &topic, &args).await?;
        print!("{}", report.table());
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        }
        return Ok(());
    }
    let report = match args.mode {
        Mode::Produce => produce_only(&store, &topic, &args).await?,
        Mode::Consume => produce_then_consume(&store, &topic, &args).await?,
        Mode::E2e => end_to_end(&store, &topic, &args).await?,
        Mode::Group => unreachable!("handled above"),
    };
    let mut report = report;
    if args.reference_puts > 0 {
        let size =
            (report.produce_requests.put_bytes / report.produce_requests.puts.max(1)) as usize;
        let (one, two) = reference_puts(&store, size, args.reference_puts).await?;
        report.put_latency = Some(one);
        report.two_puts_latency = Some(two);
    }
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

/// Times `pairs` pairs of back-to-back PUTs of `size` bytes (32 pairs at a time), as the
/// latency a two-step commit (segment PUT, then manifest PUT) would have on this store.
/// Returns the single-PUT and the pair latencies. The objects are deleted afterwards.
async fn reference_puts(
    store: &Store,
    size: usize,
    pairs: usize,
) -> anyhow::Result<(Percentiles, Percentiles)> {
    let payload = Bytes::from(vec![b'x'; size.max(1)]);
    let workers = 32.min(pairs);
    let jobs = (0..workers).map(|w| {
        let (store, payload) = (store.clone(), payload.clone());
        async move {
            let mut singles = Vec::new();
            let mut doubles = Vec::new();
            for i in (w..pairs).step_by(workers) {
                let mut pair = Duration::ZERO;
                for half in 0..2 {
                    let key = object_store::path::Path::from(format!("bench-reference/{i}-{half}"));
                    let started = Instant::now();
                    store.create(&key, payload.clone()).await?;
                    let took = started.elapsed();
                    singles.push(took);
                    pair += took;
                    store.delete(&key).await?;
                }
                doubles.push(pair);
            }
            anyhow::Ok((singles, doubles))
        }
    });
    let (mut singles, mut doubles) = (Vec::new(), Vec::new());
    for (s, d) in futures::future::try_join_all(jobs).await? {
        singles.extend(s);
        doubles.extend(d);
    }
    Ok((Percentiles::of(singles), Percentiles::of(doubles)))
}

/// What a produce phase measured.
struct Produced {
    seconds: f64,
    acks: Vec<Duration>,
    requests: Requests,
    /// Batches that landed on another partition than the one they were sent to.
    moved: Option<u64>,
}

async fn produce_only(store: &Store, topic: &str, args: &BenchArgs) -> anyhow::Result<Report> {
    let progress = Progress::start("produce", args.quiet);
    let produced = produce(store, topic, args, Instant::now(), &progress.count).await?;
    progress.stop();
    report(store, topic, args, "produce", &produced, None, None).await
}

async fn produce_then_consume(
    store: &Store,
    topic: &str,
    args: &BenchArgs,
) -> anyhow::Result<Report> {
    let progress = Progress::start("produce (untimed)", args.quiet);
    let produced = produce(store, topic, args, Instant::now(), &progress.count).await?;
    progress.stop();
    let progress = Progress::start("consume", args.quiet);
    let (metered_store, counts) = metered(store);
    let reader = Pail::new(metered_store);
    let started = Instant::now();
    let tasks = (0..args.partitions).map(|p| read_partition(&reader, topic, p, &progress.count));
    let read: u64 = futures::future::try_join_all(tasks)
        .await?
        .into_iter()
        .sum();
    let seconds = started.elapsed().as_secs_f64();
    progress.stop();
    anyhow::ensure!(
        read == args.records,
        "read {read} records, produced {}",
        args.records
    );
    let consumed = Produced {
        seconds,
        acks: Vec::new(),
        requests: counts.snapshot(),
        moved: None,
    };
    let mut r = report(
        store,
        topic,
        args,
        "consume",
        &produced,
        None,
        Some(&consumed),
    )
    .await?;
    // Throughput of a consume run is the read side's.
    r.seconds = seconds;
    r.records_per_s = args.records as f64 / seconds;
    r.mb_per_s = payload_bytes(args) as f64 / seconds / 1e6;
    Ok(r)
}

async fn read_partition(
    reader: &Pail,
    topic: &str,
    partition: u32,
    count: &AtomicU64,
) -> anyhow::Result<u64> {
    let limits = FetchLimits {
        max_records: 20_000,
        max_bytes: 32 * 1024 * 1024,
    };
    let mut from = OffsetSpec::Earliest;
    let mut read = 0;
    loop {
        let got = reader.fetch(topic, partition, from, limits).await?;
        if got.records.is_empty() {
            return Ok(read);
        }
        read += got.records.len() as u64;
        count.fetch_add(got.records.len() as u64, Ordering::Relaxed);
        from = OffsetSpec::At(got.next_offset as i64);
    }
}

async fn end_to_end(store: &Store, topic: &str, args: &BenchArgs) -> anyhow::Result<Report> {
    let origin = Instant::now();
    let progress = Progress::start("e2e", args.quiet);
    let (metered_store, counts) = metered(store);
    let reader = Pail::new(metered_store);
    let received = Arc::new(AtomicU64::new(0));
    let tails: Vec<_> = (0..args.partitions)
        .map(|p| {
            let (reader, topic, received) =
                (reader.clone(), topic.to_string(), Arc::clone(&received));
            let total = args.records;
            tokio::spawn(async move { tail(reader, topic, p, origin, received, total).await })
        })
        .collect();
    let produced = produce(store, topic, args, origin, &progress.count).await?;
    let mut e2e = Vec::new();
    for t in tails {
        e2e.extend(t.await??);
    }
    progress.stop();
    let consumed = Produced {
        seconds: produced.seconds,
        acks: Vec::new(),
        requests: counts.snapshot(),
        moved: None,
    };
    report(
        store,
        topic,
        args,
        "e2e",
        &produced,
        Some(e2e),
        Some(&consumed),
    )
    .await
}

/// Follows one partition until every record of the run has been received somewhere, returning
/// each record's latency from send to receipt.
async fn tail(
    reader: Pail,
    topic: String,
    partition: u32,
    origin: Instant,
    received: Arc<AtomicU64>,
    total: u64,
) -> anyhow::Result<Vec<Duration>> {
    let limits = FetchLimits {
        max_records: 20_000,
        max_bytes: 32 * 1024 * 1024,
    };
    let mut next = 0u64;
    let mut latencies = Vec::new();
    while received.load(Ordering::Relaxed) < total {
        let got = reader
            .fetch(&topic, partition, OffsetSpec::At(next as i64), limits)
            .await?;
        let now = origin.elapsed();
        for r in &got.records {
            let sent = r.value.as_deref().map_or(0, sent_nanos);
            latencies.push(now.saturating_sub(Duration::from_nanos(sent)));
        }
        received.fetch_add(got.records.len() as u64, Ordering::Relaxed);
        next = got.next_offset;
        if got.records.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    Ok(latencies)
}

/// Runs every writer's senders to completion; returns ack latencies and the requests made.
async fn produce(
    store: &Store,
    topic: &str,
    args: &BenchArgs,
    origin: Instant,
    count: &Arc<AtomicU64>,
) -> anyhow::Result<Produced> {
    if args.placement != Placement::Spread {
        return unkeyed::produce(store, topic, args, origin, count).await;
    }
    let (metered_store, counts) = metered(store);
    let config = ProducerConfig {
        linger_ms: args.linger_ms,
        linger_max_ms: args.linger_max_ms,
        linger_until_bytes: args.linger_until_bytes,
        batch_bytes_max: args.batch_bytes,
        buffer_bytes_max: (args.batch_bytes * 4).max(64 << 20),
        ..ProducerConfig::default()
    };
    let values = Arc::new(ValuePool::new(args.record_bytes));
    let tasks = args.writers * args.senders;
    let share = args.records.div_ceil(tasks as u64);
    let started = Instant::now();
    let mut handles = Vec::new();
    let mut producers = Vec::new();
    for w in 0..args.writers {
        let producer =
            Producer::new(Pail::new(metered_store.clone()), topic, config.clone()).await?;
        producers.push(producer.clone());
        for s in 0..args.senders {
            let first = (w * args.senders + s) as u64 * share;
            let n = share.min(args.records.saturating_sub(first));
            let job = SendJob {
                producer: producer.clone(),
                first,
                n,
                partitions: args.partitions,
                pace: (args.rate > 0)
                    .then(|| Duration::from_secs_f64(tasks as f64 / args.rate as f64)),
                origin,
                values: Arc::clone(&values),
                count: Arc::clone(count),
            };
            handles.push(tokio::spawn(job.run()));
        }
    }
    let mut acks = Vec::with_capacity(args.records as usize);
    for h in handles {
        acks.extend(h.await??);
    }
    // Closing is part of a producer's cost: it hints each partition it wrote (one PUT each).
    for producer in producers {
        producer.close().await;
    }
    Ok(Produced {
        seconds: started.elapsed().as_secs_f64(),
        acks,
        requests: counts.snapshot(),
        moved: None,
    })
}

struct SendJob {
    producer: Producer,
    first: u64,
    n: u64,
    partitions: u32,
    pace: Option<Duration>,
    origin: Instant,
    values: Arc<ValuePool>,
    count: Arc<AtomicU64>,
}

impl SendJob {
    async fn run(self) -> anyhow::Result<Vec<Duration>> {
        let start = Instant::now();
        let mut pending = FuturesUnordered::new();
        let mut latencies = Vec::with_capacity(self.n as usize);
        for i in self.first..self.first + self.n {
            if let Some(pace) = self.pace {
                let due = start + pace * (i - self.first) as u32;
                tokio::time::sleep_until(due.into()).await;
            }
            let sent = Instant::now();
            let value = self
                .values
                .value(i, self.origin.elapsed().as_nanos() as u64);
            let delivery = self
                .producer
                .send(
                    Record::from_value(value),
                    Some((i % u64::from(self.partitions)) as u32),
                )
                .await?;
            pending.push(async move { delivery.await.map(|_| sent.elapsed()) });
            while let Some(Some(done)) = futures::FutureExt::now_or_never(pending.next()) {
                latencies.push(done?);
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        }
        while let Some(done) = pending.next().await {
            latencies.push(done?);
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(latencies)
    }
}

/// Record values: 8 bytes of send time, 8 bytes of sequence number, then random lowercase
/// letters (ZSTD compresses them to about 60%, like text). They are slices of a 16 MiB pool,
/// far larger than ZSTD's window, so records do not compress against each other.
const POOL_BYTES: usize = 16 << 20;

struct ValuePool {
    pool: Vec<u8>,
    size: usize,
}

impl ValuePool {
    fn new(size: usize) -> Self {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let pool = (0..(size.max(64) * 4 + POOL_BYTES))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b'a' + (x % 26) as u8
            })
            .collect();
        ValuePool { pool, size }
    }

    fn value(&self, seq: u64, sent_nanos: u64) -> Bytes {
        let mut v = Vec::with_capacity(self.size);
        v.extend_from_slice(&sent_nanos.to_le_bytes());
        v.extend_from_slice(&seq.to_le_bytes());
        let body = self.size - 16;
        let start = (seq as usize).wrapping_mul(7919) % (self.pool.len() - body);
        v.extend_from_slice(&self.pool[start..start + body]);
        Bytes::from(v)
    }
}

fn sent_nanos(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn payload_bytes(args: &BenchArgs) -> u64 {
    args.records * args.record_bytes as u64
}

async fn report(
    store: &Store,
    topic: &str,
    args: &BenchArgs,
    mode: &str,
    produced: &Produced,
    e2e: Option<Vec<Duration>>,
    consumed: Option<&Produced>,
) -> anyhow::Result<Report> {
    let d = Pail::new(store.clone()).describe_topic(topic).await?;
    let commits: u64 = d.partitions.iter().map(|p| p.version).sum();
    let payload = payload_bytes(args);
    Ok(Report {
        mode: mode.to_string(),
        store: store.location().to_string(),
        records: args.records,
        record_bytes: args.record_bytes,
        partitions: args.partitions,
        batch_bytes: args.batch_bytes,
        linger_ms: args.linger_ms,
        writers: args.writers,
        senders: args.senders,
        seconds: produced.seconds,
        records_per_s: args.records as f64 / produced.seconds,
        mb_per_s: payload as f64 / produced.seconds / 1e6,
        commits,
        commits_per_s: commits as f64 / produced.seconds,
        moved_batches: produced.moved,
        ack_latency: Percentiles::of(produced.acks.clone()),
        e2e_latency: e2e.map(Percentiles::of),
        produce_requests: produced.requests,
        produce_cost: Cost::of(&produced.requests, payload),
        consume_requests: consumed.map(|c| c.requests),
        consume_cost: consumed.map(|c| Cost::of(&c.requests, payload)),
        put_latency: None,
        two_puts_latency: None,
    })
}

/// A once-a-second progress line on stderr.
struct Progress {
    count: Arc<AtomicU64>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(label: &'static str, quiet: bool) -> Self {
        let count = Arc::new(AtomicU64::new(0));
        let c = Arc::clone(&count);
        let ticker = (!quiet).then(|| {
            tokio::spawn(async move {
                let started = Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let n = c.load(Ordering::Relaxed);
                    eprintln!(
                        "  {label}: {n} records, {:.0} records/s",
                        n as f64 / started.elapsed().as_secs_f64()
                    );
                }
            })
        });
        Progress { count, ticker }
    }

    fn stop(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
    }
}
