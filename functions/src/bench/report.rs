//! Benchmark results: latency percentiles, request costs at S3 list prices, and their table and
//! JSON forms.

use pail_core::storage::metrics::Requests;
use serde::Serialize;
use std::time::Duration;

/// S3 Standard list prices (us-east-1) per request.
const PUT_USD: f64 = 0.005 / 1000.0;
const GET_USD: f64 = 0.0004 / 1000.0;
const LIST_USD: f64 = 0.005 / 1000.0;
const GB: f64 = 1e9;

/// p50, p99 and p99.9 of a set of latencies, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i].as_secs_f64() * 1000.0
        };
        Percentiles {
            count: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
        }
    }
}

/// Requests per GB of payload and what they cost.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Cost {
    pub puts_per_gb: f64,
    pub gets_per_gb: f64,
    pub lists_per_gb: f64,
    pub usd_per_gb: f64,
}

impl Cost {
    pub fn of(requests: &Requests, payload_bytes: u64) -> Self {
        let gb = (payload_bytes as f64 / GB).max(f64::MIN_POSITIVE);
        let (p, g, l) = (
            requests.puts as f64 / gb,
            requests.gets as f64 / gb,
            requests.lists as f64 / gb,
        );
        Cost {
            puts_per_gb: p,
            gets_per_gb: g,
            lists_per_gb: l,
            usd_per_gb: p * PUT_USD + g * GET_USD + l * LIST_USD,
        }
    }
}

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub mode: String,
    pub store: String,
    pub records: u64,
    pub record_bytes: usize,
    pub partitions: u32,
    pub batch_bytes: u64,
    pub linger_ms: u64,
    pub writers: usize,
    pub senders: usize,
    pub seconds: f64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub commits: u64,
    pub commits_per_s: f64,
    /// Single-batch writers (`--placement random|moving`): batches that landed on another
    /// partition than the one picked first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_batches: Option<u64>,
    pub ack_latency: Percentiles,
    pub e2e_latency: Option<Percentiles>,
    pub produce_requests: Requests,
    pub produce_cost: Cost,
    pub consume_requests: Option<Requests>,
    pub consume_cost: Option<Cost>,
    /// One PUT of a mean-sized segment on this store, timed apart from the run.
    pub put_latency: Option<Percentiles>,
    /// Two back-to-back PUTs: what a segment-then-manifest commit would take.
    pub two_puts_latency: Option<Percentiles>,
}

impl Report {
    pub fn table(&self) -> String {
        let mut t = String::new();
        let line = |t: &mut String, k: &str, v: String| t.push_str(&format!("{k:<18}{v}\n"));
        line(
            &mut t,
            "run",
            format!(
                "{} on {}: {} records x {} B, {} partitions, batch {} B, linger {} ms, {} writers x {} senders",
                self.mode,
                self.store,
                self.records,
                self.record_bytes,
                self.partitions,
                self.batch_bytes,
                self.linger_ms,
                self.writers,
                self.senders
            ),
        );
        line(
            &mut t,
            "throughput",
            format!(
                "{:.0} records/s, {:.1} MB/s over {:.2} s",
                self.records_per_s, self.mb_per_s, self.seconds
            ),
        );
        line(
            &mut t,
            "commits",
            format!(
                "{} ({:.1}/s, {:.0} records each)",
                self.commits,
                self.commits_per_s,
                self.records as f64 / self.commits.max(1) as f64
            ),
        );
        if let Some(moved) = self.moved_batches {
            line(
                &mut t,
                "moved batches",
                format!("{moved} of {}", self.writers),
            );
        }
        if self.ack_latency.count > 0 {
            line(&mut t, "ack latency", fmt_percentiles(&self.ack_latency));
        }
        if let Some(e2e) = &self.e2e_latency {
            line(&mut t, "e2e latency", fmt_percentiles(e2e));
        }
        line(
            &mut t,
            "produce reqs",
            fmt_requests(&self.produce_requests, &self.produce_cost),
        );
        if let (Some(r), Some(c)) = (&self.consume_requests, &self.consume_cost) {
            line(&mut t, "consume reqs", fmt_requests(r, c));
        }
        if let (Some(one), Some(two)) = (&self.put_latency, &self.two_puts_latency) {
            line(&mut t, "store PUT", fmt_percentiles(one));
            line(&mut t, "2 PUTs in a row", fmt_percentiles(two));
            line(
                &mut t,
                "ack p99 / 2 PUTs",
                format!(
                    "{:.2}",
                    self.ack_latency.p99_ms / two.p99_ms.max(f64::MIN_POSITIVE)
                ),
            );
        }
        t
    }
}

fn fmt_percentiles(p: &Percentiles) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
        p.p50_ms, p.p99_ms, p.p999_ms, p.max_ms, p.count
    )
}

fn fmt_requests(r: &Requests, c: &Cost) -> String {
    format!(
        "PUT {} ({:.0}/GB), GET {} ({:.0}/GB), LIST {} ({:.0}/GB); {:.1} MB written, {:.1} MB read; ${:.5} per GB at S3 list prices",
        r.puts,
        c.puts_per_gb,
        r.gets,
        c.gets_per_gb,
        r.lists,
        c.lists_per_gb,
        r.put_bytes as f64 / 1e6,
        r.get_bytes as f64 / 1e6,
        c.usd_per_gb
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_ranks() {
        let samples = (1..=1000).map(Duration::from_millis).collect();
        let p = Percentiles::of(samples);
        assert_eq!(
            (p.p50_ms, p.p99_ms, p.p999_ms, p.max_ms),
            (500.0, 990.0, 999.0, 1000.0)
        );
        assert_eq!(Percentiles::of(vec![]).count, 0);
    }

    #[test]
    fn cost_is_priced_per_gigabyte() {
        let r = Requests {
            puts: 250,
            gets: 1000,
            lists: 0,
            ..Requests::default()
        };
        let c = Cost::of(&r, 500_000_000);
        assert_eq!((c.puts_per_gb, c.gets_per_gb), (500.0, 2000.0));
        assert!((c.usd_per_gb - (500.0 * 0.005 + 2000.0 * 0.0004) / 1000.0).abs() < 1e-12);
    }
}
