//! A latency-injecting object store wrapper that makes any store answer like S3, for
//! benchmarks: each request waits a first-byte latency drawn from a log-normal distribution,
//! plus the transfer time of its bytes at a per-connection throughput.
//!
//! Profiles come from published figures (see `docs/BENCHMARKS.md` for sources):
//! - S3 Standard: AWS describes small-request latency as "often in the tens of milliseconds";
//!   AutoMQ measured a p99 of about 400 ms for 4 MiB PUTs; WarpStream reports produce p50 250 ms
//!   and p99 500 ms with 250 ms batching on S3 Standard. The profile uses a PUT median of 30 ms
//!   and a p99 four times the median, plus 4 MiB at 80 MB/s (about 50 ms).
//! - S3 Express One Zone: single-digit milliseconds; WarpStream reports produce p99 < 150 ms
//!   with it. The profile uses medians of 5 ms (PUT) and 3 ms (GET) with a p99 2.5 times the
//!   median.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Latency of one request type: a log-normal first-byte latency and a transfer rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RequestLatency {
    pub median_ms: f64,
    /// p99 divided by the median; sets the log-normal's spread.
    pub p99_over_median: f64,
    /// Transfer rate of one connection, in MB/s (10^6 bytes).
    pub mb_per_s: f64,
}

impl RequestLatency {
    fn sample(&self, rng: &mut StdRng, bytes: u64) -> Duration {
        // ln(p99/median) = z(0.99) * sigma, with z(0.99) = 2.326.
        let sigma = self.p99_over_median.max(1.0).ln() / 2.326;
        let first_byte_ms = self.median_ms * (sigma * standard_normal(rng)).exp();
        let transfer_ms = bytes as f64 / (self.mb_per_s * 1000.0);
        Duration::from_secs_f64((first_byte_ms + transfer_ms) / 1000.0)
    }
}

/// Box-Muller: one standard normal sample from two uniforms.
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Latencies per request type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyProfile {
    pub name: &'static str,
    pub put: RequestLatency,
    pub get: RequestLatency,
    pub list: RequestLatency,
}

impl LatencyProfile {
    pub const S3_STANDARD: LatencyProfile = LatencyProfile {
        name: "s3-standard",
        put: RequestLatency {
            median_ms: 30.0,
            p99_over_median: 4.0,
            mb_per_s: 80.0,
        },
        get: RequestLatency {
            median_ms: 20.0,
            p99_over_median: 4.0,
            mb_per_s: 90.0,
        },
        list: RequestLatency {
            median_ms: 30.0,
            p99_over_median: 3.0,
            mb_per_s: 50.0,
        },
    };

    pub const S3_EXPRESS: LatencyProfile = LatencyProfile {
        name: "s3-express",
        put: RequestLatency {
            median_ms: 5.0,
            p99_over_median: 2.5,
            mb_per_s: 200.0,
        },
        get: RequestLatency {
            median_ms: 3.0,
            p99_over_median: 2.5,
            mb_per_s: 200.0,
        },
        list: RequestLatency {
            median_ms: 5.0,
            p99_over_median: 2.5,
            mb_per_s: 100.0,
        },
    };

    pub fn by_name(name: &str) -> Option<LatencyProfile> {
        [Self::S3_STANDARD, Self::S3_EXPRESS]
            .into_iter()
            .find(|p| p.name == name)
    }
}

/// Delays every request as its profile says, then runs it.
#[derive(Debug)]
pub struct LatencyStore {
    inner: Arc<dyn ObjectStore>,
    profile: LatencyProfile,
    rng: Mutex<StdRng>,
}

impl LatencyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, profile: LatencyProfile, seed: u64) -> Self {
        LatencyStore {
            inner,
            profile,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    fn list_delay(&self) -> Duration {
        self.profile
            .list
            .sample(&mut crate::sync::lock(&self.rng), 0)
    }

    async fn wait(&self, latency: RequestLatency, bytes: u64) {
        let delay = latency.sample(&mut crate::sync::lock(&self.rng), bytes);
        tokio::time::sleep(delay).await;
    }
}

impl fmt::Display for LatencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LatencyStore({}, {})", self.profile.name, self.inner)
    }
}

#[async_trait]
impl ObjectStore for LatencyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.wait(self.profile.put, payload.content_length() as u64)
            .await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let result = self.inner.get_opts(location, options).await;
        let bytes = result.as_ref().map_or(0, |r| r.range.end - r.range.start);
        self.wait(self.profile.get, bytes).await;
        result
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        // Each ranged GET S3 would be sent waits its own latency, up to 10 in parallel.
        super::get_ranges_as_s3(self, location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        super::delayed(self.list_delay(), self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        super::delayed(
            self.list_delay(),
            self.inner.list_with_offset(prefix, offset),
        )
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.wait(self.profile.list, 0).await;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.wait(self.profile.put, 0).await;
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_have_the_profile_median_and_tail() {
        let mut rng = StdRng::seed_from_u64(1);
        let put = LatencyProfile::S3_STANDARD.put;
        let mut ms: Vec<f64> = (0..20_000)
            .map(|_| put.sample(&mut rng, 0).as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let (p50, p99) = (ms[10_000], ms[19_800]);
        assert!((27.0..33.0).contains(&p50), "p50 {p50}");
        assert!((100.0..140.0).contains(&p99), "p99 {p99}");
        let four_mib = put.sample(&mut rng, 4 << 20).as_secs_f64() * 1000.0;
        assert!(four_mib > 52.0, "4 MiB adds its transfer time: {four_mib}");
    }
}
