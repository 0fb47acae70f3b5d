//! What `/metrics` reports, in Prometheus' text format (version 0.0.4): requests by route,
//! method and status, their latency, commits, and the store requests behind them.
//!
//! Labels come only from the router's own route templates (`/v1/topics/{topic}`, or
//! `unmatched`) and a fixed set of methods, so the number of series is bounded whatever
//! clients send.

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use pail_core::Appended;
use pail_core::storage::metrics::RequestCounts;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Upper bounds of the latency histogram's buckets, in seconds.
const LATENCY_BUCKETS_S: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Counters shared by every request of one server (or one warm Lambda instance).
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
    latency: Mutex<BTreeMap<(String, &'static str), Histogram>>,
    commits: AtomicU64,
    commit_failures: AtomicU64,
    records: AtomicU64,
    moves: AtomicU64,
    store: Arc<RequestCounts>,
}

#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is above every bound.
    buckets: [u64; LATENCY_BUCKETS_S.len() + 1],
    sum_s: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let slot = LATENCY_BUCKETS_S
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        self.buckets[slot] += 1;
        self.sum_s += seconds;
        self.count += 1;
    }
}

impl Metrics {
    /// Metrics reading store requests from `store` (the counters of the server's
    /// `MeteredStore`).
    pub fn new(store: Arc<RequestCounts>) -> Self {
        Metrics {
            requests: Mutex::default(),
            latency: Mutex::default(),
            commits: AtomicU64::new(0),
            commit_failures: AtomicU64::new(0),
            records: AtomicU64::new(0),
            moves: AtomicU64::new(0),
            store,
        }
    }

    fn observe(&self, route: &str, method: &'static str, status: u16, seconds: f64) {
        *lock(&self.requests)
            .entry((route.to_string(), method, status))
            .or_default() += 1;
        lock(&self.latency)
            .entry((route.to_string(), method))
            .or_default()
            .observe(seconds);
    }

    /// Counts the commits of one produce request.
    pub fn count_appends<P>(&self, outcomes: &[(u32, Vec<P>, pail_core::Result<Appended>)]) {
        for (_, positions, result) in outcomes {
            match result {
                Ok(_) => {
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    self.records
                        .fetch_add(positions.len() as u64, Ordering::Relaxed);
                }
                Err(_) => {
                    self.commit_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// The routes requests were answered on, as `(method, route)`.
    pub fn routes_seen(&self) -> Vec<(String, String)> {
        lock(&self.latency)
            .keys()
            .map(|(route, method)| (method.to_string(), route.clone()))
            .collect()
    }

    /// Counts produce requests whose unkeyed share moved off a busy partition.
    pub fn count_moves(&self, n: u64) {
        self.moves.fetch_add(n, Ordering::Relaxed);
    }

    /// Everything, in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_requests(&mut out);
        self.render_latency(&mut out);
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            &mut out,
            "pail_commits_total",
            "Partition commits (appends) made by produce requests.",
            self.commits.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pail_commit_failures_total",
            "Partition commits that failed.",
            self.commit_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pail_records_produced_total",
            "Records committed by produce requests.",
            self.records.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pail_produce_moves_total",
            "Produce requests whose unkeyed records moved off a busy partition.",
            self.moves.load(Ordering::Relaxed),
        );
        self.render_store(&mut out);
        out
    }

    fn render_requests(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP pail_http_requests_total HTTP requests answered, by route, method and status.\n\
             # TYPE pail_http_requests_total counter"
        );
        for ((route, method, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "pail_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
    }

    fn render_latency(&self, out: &mut String) {
        let name = "pail_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from request to response, by route and method.\n# TYPE {name} histogram"
        );
        for ((route, method), h) in lock(&self.latency).iter() {
            let labels = format!("route=\"{}\",method=\"{method}\"", escape(route));
            let mut cumulative = 0;
            for (bound, n) in LATENCY_BUCKETS_S.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_s);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
        }
    }

    fn render_store(&self, out: &mut String) {
        let s = self.store.snapshot();
        let _ = writeln!(
            out,
            "# HELP pail_store_requests_total Object store requests, by S3 request kind.\n\
             # TYPE pail_store_requests_total counter"
        );
        for (kind, n) in [
            ("put", s.puts),
            ("get", s.gets),
            ("list", s.lists),
            ("delete", s.deletes),
        ] {
            let _ = writeln!(out, "pail_store_requests_total{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP pail_store_bytes_total Bytes moved to and from the object store.\n\
             # TYPE pail_store_bytes_total counter"
        );
        for (direction, n) in [("put", s.put_bytes), ("get", s.get_bytes)] {
            let _ = writeln!(
                out,
                "pail_store_bytes_total{{direction=\"{direction}\"}} {n}"
            );
        }
    }
}

/// Middleware: counts and times every request, and logs it.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    metrics.observe(&route, method, status, elapsed.as_secs_f64());
    tracing::info!(
        method,
        route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counters are plain numbers: a panic elsewhere mid-update leaves nothing inconsistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_counted() {
        let m = Metrics::new(Arc::default());
        m.observe("/v1/topics", "GET", 200, 0.004);
        m.observe("/v1/topics", "GET", 200, 0.2);
        m.observe("/v1/topics", "GET", 503, 99.0);
        let text = m.render();
        let line = |needle: &str| {
            text.lines()
                .find(|l| l.starts_with(needle))
                .unwrap_or_else(|| panic!("no {needle} in\n{text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_string()
        };
        let labels = "route=\"/v1/topics\",method=\"GET\"";
        let bucket = |le: &str| {
            line(&format!(
                "pail_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}}"
            ))
        };
        assert_eq!(bucket("0.005"), "1");
        assert_eq!(bucket("0.25"), "2");
        assert_eq!(bucket("30"), "2");
        assert_eq!(bucket("+Inf"), "3");
        assert_eq!(
            line(&format!(
                "pail_http_request_duration_seconds_count{{{labels}}}"
            )),
            "3"
        );
        assert_eq!(
            line("pail_http_requests_total{route=\"/v1/topics\",method=\"GET\",status=\"200\"}"),
            "2"
        );
        assert_eq!(
            line("pail_http_requests_total{route=\"/v1/topics\",method=\"GET\",status=\"503\"}"),
            "1"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
