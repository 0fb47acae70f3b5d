//! A fault-injecting object store wrapper, for tests and simulations.
//!
//! Rules choose calls by operation and key prefix, fire with a probability from a seeded random
//! generator (so a run replays from its seed) and optionally only a number of times. Faults:
//! errors, S3's 503 SlowDown, added latency, timeouts, *lost answers* (the call runs, the write
//! lands, the caller gets an error), *late landings* (the caller times out at once and the write
//! lands at the store later), and *hangs* (the call never returns: the caller has crashed there,
//! before or after the call took effect).
//!
//! Every delay is a tokio timer and every late write a tokio task, so on a paused clock a run
//! is the same whatever the load on the machine.

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The operations a rule can select.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
    List,
    Delete,
    Any,
}

/// What happens to a selected call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fails without reaching the store (a 5xx after retries ran out).
    Error,
    /// S3's "503 SlowDown", without reaching the store.
    SlowDown,
    /// Waits, then runs the call.
    Latency(Duration),
    /// Waits, then fails as a timeout without reaching the store.
    Timeout(Duration),
    /// Runs the call (a write lands), then fails: the answer was lost on the way back.
    LostAnswer,
    /// Runs the call, then waits before answering: the write lands long before its
    /// acknowledgement arrives (a slow response on S3).
    SlowAnswer(Duration),
    /// Never returns. With `landed` the call ran first (crash after it took effect),
    /// otherwise the call never happens (crash before it).
    Hang { landed: bool },
    /// Refused before reaching the store, for good: a 403 (S3) or EACCES (a local directory).
    Forbidden,
    /// Fails at once as a client-side timeout, while the write goes on and lands at the store
    /// after the delay (the request was still travelling, or queued in the server). Writes
    /// only: a read or listing selected by it just times out. The late write runs on a spawned
    /// tokio task, so it lands only while the runtime lives.
    LandsLater(Duration),
}

/// Selects calls and the fault they get.
#[derive(Clone, Debug)]
pub struct Rule {
    pub op: Op,
    /// Only keys starting with this (an empty prefix matches all).
    pub prefix: String,
    pub fault: Fault,
    /// Chance that a matching call gets the fault.
    pub probability: f64,
    /// Fire at most this many times; `None` for no limit.
    pub times: Option<u32>,
}

impl Rule {
    /// A rule that always fires on `op` for keys under `prefix`.
    pub fn always(op: Op, prefix: impl Into<String>, fault: Fault) -> Self {
        Rule {
            op,
            prefix: prefix.into(),
            fault,
            probability: 1.0,
            times: None,
        }
    }

    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    pub fn probability(mut self, p: f64) -> Self {
        self.probability = p;
        self
    }
}

/// The shared, seeded rule set. Clone the `Arc` to change rules while a store uses them.
#[derive(Debug)]
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    /// How many times each rule has fired, by position in `rules`.
    fired: Mutex<Vec<u64>>,
    rng: Mutex<StdRng>,
    injected: AtomicU64,
    /// Writes under [`Fault::LandsLater`] that the store accepted when they arrived.
    landed_late: AtomicU64,
    /// Calls that have reached their [`Fault::Hang`] (after running, for `landed`).
    hung: AtomicU64,
}

impl Faults {
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Faults {
            rules: Mutex::new(Vec::new()),
            fired: Mutex::new(Vec::new()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            injected: AtomicU64::new(0),
            landed_late: AtomicU64::new(0),
            hung: AtomicU64::new(0),
        })
    }

    pub fn add(&self, rule: Rule) {
        crate::sync::lock(&self.rules).push(rule);
        crate::sync::lock(&self.fired).push(0);
    }

    pub fn clear(&self) {
        crate::sync::lock(&self.rules).clear();
        crate::sync::lock(&self.fired).clear();
    }

    /// How many faults have fired so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// How many calls have reached their [`Fault::Hang`]: from then on the caller is stuck
    /// exactly where the fault put it (with `landed`, after the call took effect), which is
    /// the moment a test crashes it.
    pub fn hung(&self) -> u64 {
        self.hung.load(Ordering::SeqCst)
    }

    /// How many writes under [`Fault::LandsLater`] have landed so far (the others found their
    /// key taken, or the runtime ended first).
    pub fn landed_late(&self) -> u64 {
        self.landed_late.load(Ordering::SeqCst)
    }

    /// How many times the rules (present now) with this fault have fired.
    pub fn fired(&self, fault: &Fault) -> u64 {
        let rules = crate::sync::lock(&self.rules);
        let fired = crate::sync::lock(&self.fired);
        rules
            .iter()
            .zip(fired.iter())
            .filter(|(rule, _)| rule.fault == *fault)
            .map(|(_, n)| n)
            .sum()
    }

    /// The fault for this call, if a rule fires. Rules are tried in the order they were added.
    fn pick(&self, op: Op, key: &str) -> Option<Fault> {
        let mut rules = crate::sync::lock(&self.rules);
        let mut rng = crate::sync::lock(&self.rng);
        let mut fired = crate::sync::lock(&self.fired);
        for (rule, count) in rules.iter_mut().zip(fired.iter_mut()) {
            let matches = (rule.op == op || rule.op == Op::Any) && key.starts_with(&rule.prefix);
            if !matches || rule.times == Some(0) {
                continue;
            }
            if rule.probability < 1.0 && !rng.random_bool(rule.probability.clamp(0.0, 1.0)) {
                continue;
            }
            if let Some(n) = rule.times.as_mut() {
                *n -= 1;
            }
            self.injected.fetch_add(1, Ordering::SeqCst);
            *count += 1;
            return Some(rule.fault.clone());
        }
        None
    }
}

/// An object store whose calls go through [`Faults`].
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    faults: Arc<Faults>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, faults: Arc<Faults>) -> Self {
        FaultyStore { inner, faults }
    }

    async fn around<T>(
        &self,
        op: Op,
        key: &Path,
        call: impl Future<Output = object_store::Result<T>>,
    ) -> object_store::Result<T> {
        self.apply(self.faults.pick(op, key.as_ref()), call).await
    }

    /// Runs `call` under `fault`.
    async fn apply<T>(
        &self,
        fault: Option<Fault>,
        call: impl Future<Output = object_store::Result<T>>,
    ) -> object_store::Result<T> {
        match fault {
            None => call.await,
            Some(Fault::Error) => Err(injected("500 internal error")),
            Some(Fault::SlowDown) => Err(injected("503 SlowDown: please reduce your request rate")),
            Some(Fault::Latency(d)) => {
                tokio::time::sleep(d).await;
                call.await
            }
            Some(Fault::Timeout(d)) => {
                tokio::time::sleep(d).await;
                Err(injected("request timed out"))
            }
            Some(Fault::LostAnswer) => {
                let _ = call.await;
                Err(injected("connection reset after the request was sent"))
            }
            Some(Fault::SlowAnswer(d)) => {
                let answer = call.await;
                tokio::time::sleep(d).await;
                answer
            }
            Some(Fault::Hang { landed }) => {
                if landed {
                    let _ = call.await;
                }
                self.faults.hung.fetch_add(1, Ordering::SeqCst);
                futures::future::pending().await
            }
            Some(Fault::Forbidden) => Err(object_store::Error::PermissionDenied {
                path: String::new(),
                source: "403 Forbidden (injected)".into(),
            }),
            // The writes that can land later are started by `lands_later`; anything else
            // selected by this fault only times out.
            Some(Fault::LandsLater(_)) => Err(timed_out()),
        }
    }

    /// A PUT that may land later: if a rule gives it [`Fault::LandsLater`], the caller gets a
    /// timeout at once and the PUT is made by a task after the delay (its answer dropped, as
    /// the client stopped listening); otherwise the PUT goes through [`FaultyStore::around`].
    async fn put_or_land_later(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let fault = self.faults.pick(Op::Put, location.as_ref());
        if let Some(Fault::LandsLater(delay)) = fault {
            let (inner, location) = (Arc::clone(&self.inner), location.clone());
            let faults = Arc::clone(&self.faults);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if inner.put_opts(&location, payload, opts).await.is_ok() {
                    faults.landed_late.fetch_add(1, Ordering::SeqCst);
                }
            });
            return Err(timed_out());
        }
        self.apply(fault, self.inner.put_opts(location, payload, opts))
            .await
    }

    fn around_list(
        &self,
        key: &Path,
        list: impl FnOnce() -> BoxStream<'static, object_store::Result<ObjectMeta>>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.faults.pick(Op::List, key.as_ref()) {
            None | Some(Fault::LostAnswer | Fault::SlowAnswer(_)) => list(),
            Some(Fault::Error) => {
                futures::stream::once(async { Err(injected("500 internal error")) }).boxed()
            }
            Some(Fault::SlowDown) => {
                futures::stream::once(async { Err(injected("503 SlowDown")) }).boxed()
            }
            Some(Fault::Latency(d)) => super::delayed(d, list()),
            Some(Fault::Timeout(d)) => futures::stream::once(async move {
                tokio::time::sleep(d).await;
                Err(injected("request timed out"))
            })
            .boxed(),
            Some(Fault::Hang { .. }) => futures::stream::pending().boxed(),
            Some(Fault::Forbidden) => {
                let path = key.to_string();
                futures::stream::once(async move {
                    Err(object_store::Error::PermissionDenied {
                        path,
                        source: "403 Forbidden (injected)".into(),
                    })
                })
                .boxed()
            }
            Some(Fault::LandsLater(_)) => futures::stream::once(async { Err(timed_out()) }).boxed(),
        }
    }
}

fn timed_out() -> object_store::Error {
    injected("request timed out; it may still complete at the store")
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "faults",
        source: format!("{what} (injected)").into(),
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.put_or_land_later(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.around(
            Op::Put,
            location,
            self.inner.put_multipart_opts(location, opts),
        )
        .await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.around(Op::Get, location, self.inner.get_opts(location, options))
            .await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        // One fault decision per ranged GET S3 would be sent.
        super::get_ranges_as_s3(self, location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        // Deletes pass through: fault-injecting them per key needs the key before the call.
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let key = prefix.cloned().unwrap_or_default();
        self.around_list(&key, || self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let key = prefix.cloned().unwrap_or_default();
        self.around_list(&key, || self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let key = prefix.cloned().unwrap_or_default();
        self.around(Op::List, &key, self.inner.list_with_delimiter(prefix))
            .await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.around(Op::Put, to, self.inner.copy_opts(from, to, options))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Created, Store};

    /// A store whose first PUT of `k` lands a second after it times out.
    fn lands_late_once() -> (Store, Path) {
        let rule = Rule::always(Op::Put, "k", Fault::LandsLater(Duration::from_secs(1))).times(1);
        (faulty(rule), Path::from("k"))
    }

    fn faulty(rule: Rule) -> Store {
        let faults = Faults::new(7);
        faults.add(rule);
        Store::memory().layered(|inner| Arc::new(FaultyStore::new(inner, faults)) as _)
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_landing_times_out_at_once_and_lands_after_its_delay() {
        let (store, key) = lands_late_once();
        let started = tokio::time::Instant::now();
        let err = store
            .create(&key, Bytes::from_static(b"late"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        assert_eq!(started.elapsed(), Duration::ZERO, "the error comes at once");
        assert_eq!(store.get(&key).await.unwrap(), None, "not landed yet");
        tokio::time::sleep(Duration::from_millis(999)).await;
        assert_eq!(store.get(&key).await.unwrap(), None);
        tokio::time::sleep(Duration::from_millis(1)).await;
        // Let the landing task run once its timer has fired.
        tokio::task::yield_now().await;
        assert_eq!(
            store.get(&key).await.unwrap().as_deref(),
            Some(&b"late"[..]),
            "landed a second after the error"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_landing_loses_to_a_create_that_came_first() {
        let (store, key) = lands_late_once();
        assert!(
            store
                .create(&key, Bytes::from_static(b"late"))
                .await
                .is_err()
        );
        assert_eq!(
            store
                .create(&key, Bytes::from_static(b"retry"))
                .await
                .unwrap(),
            Created::Yes
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            store.get(&key).await.unwrap().as_deref(),
            Some(&b"retry"[..]),
            "the late create was refused: the key was taken"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reads_selected_for_a_late_landing_only_time_out() {
        let store = faulty(Rule::always(
            Op::Get,
            "",
            Fault::LandsLater(Duration::from_secs(1)),
        ));
        let err = store.get(&Path::from("k")).await.unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
    }
}
