//! Hedged creates: when a segment create has not answered within about twice the time a create
//! of its size usually takes, send the same create again and take whichever answers first.
//!
//! Object stores have long latency tails (S3 PUT p99 is several times its median) and a
//! partition's commits are sequential, so one slow PUT delays every record queued behind it.
//! Repeating a create is safe in pail's protocol: both requests carry the same bytes and
//! `commit_id`, at most one lands, and any "already exists" is read back and recognised as
//! ours. Cost: one extra PUT for the slowest few percent of commits.
//!
//! The expected time is a per-request base plus the object's bytes over a transfer rate, both
//! fitted to recent successful creates (a least-squares line through exponentially weighted
//! moments of size and latency). So a 4 MiB create is not hedged for taking longer than a
//! 1 KiB one, which would double the upload exactly when bandwidth is the limit. Errors and
//! "already exists" answers are left out: a 30 s timeout or a quick 412 says nothing about how
//! long a create takes, and would switch hedging off, or make it fire at once, for a while.
//!
//! Time is read from tokio's clock, so a simulation on a paused clock hedges the same way
//! whatever the load on the machine running it.

use bytes::Bytes;
use object_store::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

use crate::storage::{Created, Store};

/// Never hedge sooner than this: local disks and in-memory stores answer well within it.
const HEDGE_AFTER_MIN: Duration = Duration::from_millis(20);
const HEDGE_AFTER_MAX: Duration = Duration::from_secs(5);
/// A create is sent again once it has taken this many times the expected time for its size.
const HEDGE_FACTOR: f64 = 2.0;
/// Weight of the newest sample in the moving moments.
const EWMA_WEIGHT: f64 = 0.1;
/// The transfer rate assumed until sizes vary enough to measure one. Low on purpose: a create
/// larger than any seen so far should wait longer, not be hedged for its size.
const ASSUMED_MIB_PER_S: f64 = 10.0;
/// Sizes must spread this much (standard deviation, MiB) before their slope is trusted.
const SIZE_SPREAD_MIN_MIB: f64 = 0.25;
/// A measured transfer rate is kept within these bounds (MiB/s).
const MIB_PER_S_MIN: f64 = 1.0;
const MIB_PER_S_MAX: f64 = 10_000.0;

const BYTES_PER_MIB: f64 = 1024.0 * 1024.0;

/// When to hedge a create, learnt from the latency of successful creates of each size.
#[derive(Debug)]
pub struct Hedge {
    enabled: bool,
    fit: Mutex<Option<Moments>>,
}

/// Exponentially weighted moments of (size in MiB, latency in ms).
#[derive(Clone, Copy, Debug)]
struct Moments {
    x: f64,
    y: f64,
    xx: f64,
    xy: f64,
}

impl Moments {
    fn first(x: f64, y: f64) -> Self {
        Moments {
            x,
            y,
            xx: x * x,
            xy: x * y,
        }
    }

    fn add(&mut self, x: f64, y: f64) {
        let w = EWMA_WEIGHT;
        self.x += w * (x - self.x);
        self.y += w * (y - self.y);
        self.xx += w * (x * x - self.xx);
        self.xy += w * (x * y - self.xy);
    }

    /// Expected latency in ms of a create of `x` MiB.
    fn expected_ms(&self, x: f64) -> f64 {
        let variance = self.xx - self.x * self.x;
        if variance < SIZE_SPREAD_MIN_MIB * SIZE_SPREAD_MIN_MIB {
            // Sizes too alike to fit a slope: a smaller object is expected to take as long as
            // the usual one, a larger one longer by its extra bytes at the assumed rate.
            return self.y + (x - self.x).max(0.0) * 1000.0 / ASSUMED_MIB_PER_S;
        }
        let slope = ((self.xy - self.x * self.y) / variance)
            .clamp(1000.0 / MIB_PER_S_MAX, 1000.0 / MIB_PER_S_MIN);
        (self.y + slope * (x - self.x)).max(0.0)
    }
}

impl Hedge {
    pub fn new(enabled: bool) -> Self {
        Hedge {
            enabled,
            fit: Mutex::new(None),
        }
    }

    /// How long a create of `bytes` may take before it is sent again; `None` while nothing has
    /// been learnt (or hedging is off).
    fn after(&self, bytes: u64) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        let fit = (*crate::sync::lock(&self.fit))?;
        let ms = HEDGE_FACTOR * fit.expected_ms(bytes as f64 / BYTES_PER_MIB);
        Some(Duration::from_secs_f64(ms / 1000.0).clamp(HEDGE_AFTER_MIN, HEDGE_AFTER_MAX))
    }

    /// Learns from one answer: only a create that wrote its object says how long one takes.
    fn learn(&self, bytes: u64, sent: Instant, answer: &Result<Created, object_store::Error>) {
        if !self.enabled || !matches!(answer, Ok(Created::Yes)) {
            return;
        }
        let x = bytes as f64 / BYTES_PER_MIB;
        let y = sent.elapsed().as_secs_f64() * 1000.0;
        let mut fit = crate::sync::lock(&self.fit);
        match fit.as_mut() {
            Some(m) => m.add(x, y),
            None => *fit = Some(Moments::first(x, y)),
        }
    }

    /// Creates `key`, repeating the request once if the first is slow for its size.
    pub async fn create(
        &self,
        store: &Store,
        key: &Path,
        bytes: Bytes,
    ) -> Result<Created, object_store::Error> {
        self.create_noting(store, key, bytes).await.0
    }

    /// [`Hedge::create`], also saying whether the create was repeated: then the answer is the
    /// first of two, and the other request was dropped while it may still have been on its
    /// way to the store.
    pub async fn create_noting(
        &self,
        store: &Store,
        key: &Path,
        bytes: Bytes,
    ) -> (Result<Created, object_store::Error>, bool) {
        let size = bytes.len() as u64;
        let started = Instant::now();
        let first = store.create(key, bytes.clone());
        tokio::pin!(first);
        let Some(after) = self.after(size) else {
            let answer = first.await;
            self.learn(size, started, &answer);
            return (answer, false);
        };
        tokio::select! {
            biased;
            answer = &mut first => {
                self.learn(size, started, &answer);
                return (answer, false);
            }
            _ = tokio::time::sleep(after) => {}
        }
        let hedged = Instant::now();
        let second = store.create(key, bytes);
        tokio::pin!(second);
        // Biased, so that two answers ready at once are taken in the same order on every run.
        let answer = tokio::select! {
            biased;
            answer = &mut first => {
                self.learn(size, started, &answer);
                answer
            }
            answer = &mut second => {
                self.learn(size, hedged, &answer);
                answer
            }
        };
        (answer, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::faults::{Fault, Faults, FaultyStore, Op, Rule};
    use crate::storage::metrics::{MeteredStore, RequestCounts};
    use object_store::ObjectStore;
    use std::sync::Arc;

    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;

    /// An in-memory store whose creates under `small/` take 30 ms and under `big/` 130 ms (a
    /// 4 MiB object at 40 MB/s), on tokio's clock, with every PUT counted.
    fn store() -> (Store, Arc<Faults>, Arc<RequestCounts>) {
        let faults = Faults::new(1);
        let counts = Arc::new(RequestCounts::default());
        let (f, c) = (Arc::clone(&faults), Arc::clone(&counts));
        let store = Store::memory().layered(move |inner| {
            let faulty = Arc::new(FaultyStore::new(inner, f)) as Arc<dyn ObjectStore>;
            Arc::new(MeteredStore::new(faulty, c)) as Arc<dyn ObjectStore>
        });
        faults.add(Rule::always(Op::Put, "small/", ms(30)));
        faults.add(Rule::always(Op::Put, "big/", ms(130)));
        (store, faults, counts)
    }

    fn ms(n: u64) -> Fault {
        Fault::Latency(Duration::from_millis(n))
    }

    /// Creates a fresh key under `prefix` with `len` bytes; returns how many PUTs it took.
    async fn create(
        hedge: &Hedge,
        store: &Store,
        counts: &RequestCounts,
        prefix: &str,
        len: usize,
    ) -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let key = Path::from(format!("{prefix}{n}"));
        let before = counts.snapshot().puts;
        let answer = hedge.create(store, &key, Bytes::from(vec![0u8; len])).await;
        assert!(matches!(answer, Ok(Created::Yes)), "{answer:?}");
        counts.snapshot().puts - before
    }

    /// A hedge that has seen ten creates of 1 KiB at 30 ms, and the store they went to.
    async fn after_ten_small_creates() -> (Hedge, Store, Arc<Faults>, Arc<RequestCounts>) {
        let (store, faults, counts) = store();
        let hedge = Hedge::new(true);
        for _ in 0..10 {
            assert_eq!(create(&hedge, &store, &counts, "small/", KIB).await, 1);
        }
        (hedge, store, faults, counts)
    }

    /// Mostly small creates and a few large ones, as a partition with uneven batches makes.
    async fn warm_up(hedge: &Hedge, store: &Store, counts: &RequestCounts) {
        for i in 0..40 {
            let puts = if i % 5 == 4 {
                create(hedge, store, counts, "big/", 4 * MIB).await
            } else {
                create(hedge, store, counts, "small/", KIB).await
            };
            assert_eq!(puts, 1, "a create at its usual speed is never hedged");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_create_waits_for_its_transfer_time_a_slow_small_one_is_hedged() {
        let (store, faults, counts) = store();
        let hedge = Hedge::new(true);
        warm_up(&hedge, &store, &counts).await;
        // Fitted exactly on the paused clock: 30 ms + 25 ms per MiB.
        let small = hedge.after(KIB as u64).unwrap().as_secs_f64() * 1000.0;
        let big = hedge.after(4 * MIB as u64).unwrap().as_secs_f64() * 1000.0;
        assert!(
            (small - 60.0).abs() < 1.0,
            "small creates hedge after {small} ms"
        );
        assert!(
            (big - 260.0).abs() < 1.0,
            "4 MiB creates hedge after {big} ms"
        );
        assert_eq!(create(&hedge, &store, &counts, "big/", 4 * MIB).await, 1);

        // A small create stuck for 200 ms is sent again after 60 ms.
        faults.clear();
        faults.add(Rule::always(Op::Put, "slow/", ms(200)).times(1));
        assert_eq!(create(&hedge, &store, &counts, "slow/", KIB).await, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_and_refused_creates_do_not_move_the_estimate() {
        let (hedge, store, faults, counts) = after_ten_small_creates().await;
        let learnt = hedge.after(KIB as u64);
        // Three creates time out after 30 s, and many more are refused at once (the key
        // exists): none of them is a create's latency.
        faults.add(Rule::always(
            Op::Put,
            "timeout/",
            Fault::Timeout(Duration::from_secs(30)),
        ));
        for i in 0..3 {
            let key = Path::from(format!("timeout/{i}"));
            let answer = hedge.create(&store, &key, Bytes::from_static(b"x")).await;
            assert!(answer.is_err());
        }
        let key = Path::from("taken");
        store.create(&key, Bytes::from_static(b"x")).await.unwrap();
        for _ in 0..20 {
            let answer = hedge.create(&store, &key, Bytes::from_static(b"y")).await;
            assert!(matches!(answer, Ok(Created::AlreadyExists)));
        }
        assert_eq!(hedge.after(KIB as u64), learnt);
        // So a small create stuck for 200 ms is still hedged, and a usual one is not.
        faults.add(Rule::always(Op::Put, "slow/", ms(200)).times(1));
        assert_eq!(create(&hedge, &store, &counts, "slow/", KIB).await, 2);
        assert_eq!(create(&hedge, &store, &counts, "small/", KIB).await, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_is_read_from_the_runtime_clock() {
        let (hedge, store, faults, counts) = after_ten_small_creates().await;
        // 30 ms each on tokio's (paused) clock, whatever the wall clock did meanwhile: a create
        // taking 55 ms is left alone (and moves the mean to 32.5 ms), one taking 75 ms is
        // hedged.
        faults.add(Rule::always(Op::Put, "a/", ms(55)).times(1));
        faults.add(Rule::always(Op::Put, "b/", ms(75)).times(1));
        assert_eq!(create(&hedge, &store, &counts, "a/", KIB).await, 1);
        assert_eq!(create(&hedge, &store, &counts, "b/", KIB).await, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_larger_create_than_any_seen_is_given_time_for_its_bytes() {
        let (hedge, store, _faults, counts) = after_ten_small_creates().await;
        // Sizes have not varied yet: 4 MiB more at the assumed 10 MiB/s is 400 ms more.
        let big = hedge.after(4 * MIB as u64).unwrap().as_secs_f64() * 1000.0;
        assert!((big - 2.0 * (30.0 + 400.0)).abs() < 2.0, "{big} ms");
        assert_eq!(create(&hedge, &store, &counts, "big/", 4 * MIB).await, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_never_hedges() {
        let (store, faults, counts) = store();
        let hedge = Hedge::new(false);
        faults.add(Rule::always(Op::Put, "slow/", ms(10_000)));
        for _ in 0..3 {
            assert_eq!(create(&hedge, &store, &counts, "small/", KIB).await, 1);
        }
        assert_eq!(create(&hedge, &store, &counts, "slow/", KIB).await, 1);
    }
}
