//! Hedged creates: when a segment create has not answered within about twice the usual time,
//! send the same create again and take whichever answers first.
//!
//! Object stores have long latency tails (S3 PUT p99 is several times its median) and a
//! partition's commits are sequential, so one slow PUT delays every record queued behind it.
//! Repeating a create is safe in pail's protocol: both requests carry the same bytes and
//! `commit_id`, at most one lands, and any "already exists" is read back and recognised as
//! ours. Cost: one extra PUT for the slowest few percent of commits.

use bytes::Bytes;
use object_store::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

use crate::storage::{Created, Store};

/// Never hedge sooner than this: local disks and in-memory stores answer well within it.
const HEDGE_AFTER_MIN: Duration = Duration::from_millis(20);
const HEDGE_AFTER_MAX: Duration = Duration::from_secs(5);
/// Weight of the newest sample in the moving average.
const EWMA_WEIGHT: f64 = 0.1;

/// The moving average of create latency that sets when to hedge.
#[derive(Debug)]
pub struct Hedge {
    enabled: bool,
    /// Mean create latency in microseconds, as f64 bits; 0 until the first sample.
    mean_us: AtomicU64,
}

impl Hedge {
    pub fn new(enabled: bool) -> Self {
        Hedge {
            enabled,
            mean_us: AtomicU64::new(0),
        }
    }

    fn after(&self) -> Option<Duration> {
        let mean = f64::from_bits(self.mean_us.load(Ordering::Relaxed));
        (self.enabled && mean > 0.0).then(|| {
            Duration::from_micros((2.0 * mean) as u64).clamp(HEDGE_AFTER_MIN, HEDGE_AFTER_MAX)
        })
    }

    fn record(&self, took: Duration) {
        let sample = took.as_micros() as f64;
        // Lost updates under contention only blur an estimate; no loop needed.
        let mean = f64::from_bits(self.mean_us.load(Ordering::Relaxed));
        let next = if mean == 0.0 {
            sample
        } else {
            mean + EWMA_WEIGHT * (sample - mean)
        };
        self.mean_us.store(next.to_bits(), Ordering::Relaxed);
    }

    /// Creates `key`, repeating the request once if the first is slow.
    pub async fn create(
        &self,
        store: &Store,
        key: &Path,
        bytes: Bytes,
    ) -> Result<Created, object_store::Error> {
        let started = Instant::now();
        let first = store.create(key, bytes.clone());
        tokio::pin!(first);
        let Some(after) = self.after() else {
            let answer = first.await;
            self.record(started.elapsed());
            return answer;
        };
        tokio::select! {
            biased;
            answer = &mut first => {
                self.record(started.elapsed());
                return answer;
            }
            _ = tokio::time::sleep(after) => {}
        }
        let second = store.create(key, bytes);
        tokio::pin!(second);
        let answer = tokio::select! {
            answer = &mut first => answer,
            answer = &mut second => answer,
        };
        self.record(started.elapsed());
        answer
    }
}
