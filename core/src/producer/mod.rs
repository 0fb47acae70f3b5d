//! The batching producer: partitioning, linger and batch limits, group commit, idempotent
//! retries, optional partition leadership and bounded buffers.
//!
//! Each partition gets one worker task that owns that partition's commits. Records sent while a
//! commit is in flight queue up and go out together in the next one (group commit), so under
//! load the object writes per record fall while commits never overlap on a partition.
//! Every batch carries the producer id and sequence number of its first record, and remembers
//! where its first attempt started, so a retry after a timeout or an unclear store answer gets
//! the original offsets back instead of appending twice, however many other producers wrote
//! in between (`crate::log::retry`).
//!
//! Order is kept the way Kafka's idempotent producer keeps it: once a batch to a partition has
//! failed for good, every later record to that partition fails with `Aborted` (nothing is
//! written) until the caller calls [`Producer::resume`]; records never land around a hole.
//!
//! Lifetime: workers hold no handle on their own queues, so dropping the last clone of a
//! `Producer` closes the queues, the workers drain what was sent and end, and nothing is left
//! running. [`Producer::close`] does the same and waits for it.
//!
//! Must never: acknowledge a record before its commit is durable, or retry a batch under a new
//! sequence number (that would turn a retry into a duplicate).

pub mod partitioner;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{APPEND_BYTES_MAX, APPEND_RECORDS_MAX, AppendOptions, Pail};
use crate::error::{Error, ErrorKind, Result};
use crate::log::retry::RetryFrom;
use crate::manifest::{Edit, LeaderClaim, ProducerBatch};
use crate::record::Record;
use crate::sync::lock;
use crate::topic::TopicMeta;
use partitioner::{Sticky, partition_for_key};

/// Producer settings; every field has a documented default ([`ProducerConfig::default`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerConfig {
    /// How long a partition's first waiting record waits for company before a commit.
    pub linger_ms: u64,
    /// While records keep arriving, a small batch waits on in steps of `linger_ms`, up to this
    /// long, until it holds `linger_until_bytes`: a steady trickle then costs a few PUTs a
    /// second instead of one per PUT round trip. At or below `linger_ms` it is off.
    pub linger_max_ms: u64,
    /// A lingering batch stops waiting once it holds this many payload bytes.
    pub linger_until_bytes: u64,
    /// Most records in one commit.
    pub batch_records_max: usize,
    /// Most payload bytes in one commit; also when unkeyed records move to the next partition.
    pub batch_bytes_max: u64,
    /// Payload bytes buffered across all partitions before `send` waits.
    pub buffer_bytes_max: u64,
    /// How long `send` waits for buffer space before failing with `BufferFull`.
    pub max_block_ms: u64,
    /// How long a batch may be retried before its records fail.
    pub delivery_timeout_ms: u64,
    /// Tag batches with a producer id and sequence so retries cannot duplicate.
    pub idempotent: bool,
    /// Lead each partition written to, with a lease of this many ms (None: write without a lead).
    pub lead_lease_ms: Option<u64>,
    /// After a partition has been quiet this long following a commit, its hint is made to name
    /// its newest version (one PUT, off the path of any record), so that deleting that version
    /// later is noticed and refused; `close` does the same at once. See `docs/architecture.md`
    /// section 7, "Lost heads".
    pub idle_hint_ms: u64,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger_ms: 5,
            // Measured on sim:s3-standard at 1 MB/s per partition (docs/BENCHMARKS.md): about
            // $0.0195-0.0199 per GB in requests, ack p99 near 400 ms; 250 ms / 256 KiB: $0.023.
            linger_max_ms: 300,
            linger_until_bytes: 512 * 1024,
            batch_records_max: 10_000,
            batch_bytes_max: 4 * 1024 * 1024,
            buffer_bytes_max: 64 * 1024 * 1024,
            max_block_ms: 60_000,
            delivery_timeout_ms: 120_000,
            idempotent: true,
            lead_lease_ms: None,
            idle_hint_ms: 60_000,
        }
    }
}

impl ProducerConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.batch_records_max == 0 || self.batch_records_max > APPEND_RECORDS_MAX {
            return bad(format!(
                "batch_records_max must be 1 to {APPEND_RECORDS_MAX}"
            ));
        }
        if self.batch_bytes_max == 0 || self.batch_bytes_max > APPEND_BYTES_MAX {
            return bad(format!("batch_bytes_max must be 1 to {APPEND_BYTES_MAX}"));
        }
        if self.buffer_bytes_max < self.batch_bytes_max || self.buffer_bytes_max > (1 << 40) {
            return bad(
                "buffer_bytes_max must be at least batch_bytes_max and at most 1 TiB".into(),
            );
        }
        if self.linger_ms > 60_000 || self.linger_max_ms > 60_000 {
            return bad("linger_ms and linger_max_ms must be at most 60000".into());
        }
        if self.delivery_timeout_ms == 0 || self.delivery_timeout_ms > 86_400_000 {
            return bad("delivery_timeout_ms must be 1 to 86400000".into());
        }
        if self.lead_lease_ms.is_some_and(|l| l == 0 || l > 3_600_000) {
            return bad("a lead lease is 1 to 3600000 ms".into());
        }
        if self.idle_hint_ms == 0 || self.idle_hint_ms > 86_400_000 {
            return bad("idle_hint_ms must be 1 to 86400000".into());
        }
        Ok(())
    }
}

/// Where a record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub partition: u32,
    pub offset: u64,
}

/// Resolves when the record is acknowledged (durably committed) or has failed.
pub struct Delivery(oneshot::Receiver<Result<Delivered>>);

impl std::future::Future for Delivery {
    type Output = Result<Delivered>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(stopped())))
    }
}

/// A producer for one topic. Cheap to clone; workers stop once every clone is dropped (or
/// [`Producer::close`] is called) and their queues are drained.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Shared>,
}

/// What the producer's handles share. Workers never hold it: it owns the queue senders.
struct Shared {
    core: Arc<Core>,
    sticky: Mutex<Sticky>,
    queues: Mutex<Vec<Option<Queue>>>,
    closed: std::sync::atomic::AtomicBool,
}

/// What workers need.
struct Core {
    pail: Pail,
    topic: Arc<TopicMeta>,
    config: ProducerConfig,
    buffer: Arc<Semaphore>,
}

struct Queue {
    tx: mpsc::UnboundedSender<Msg>,
    task: JoinHandle<()>,
}

enum Msg {
    Record(Pending),
    Flush(oneshot::Sender<()>),
    Resume,
}

struct Pending {
    record: Record,
    size: u64,
    enqueued: Instant,
    ack: oneshot::Sender<Result<Delivered>>,
    buffer: OwnedSemaphorePermit,
}

/// How long `close` waits for each partition's final hint before it gives up on it.
pub const CLOSE_HINT_TIMEOUT: Duration = Duration::from_secs(5);

/// Buffer accounting unit: permits are KiB so a u32 permit count covers 1 TiB.
const PERMIT_BYTES: u64 = 1024;

impl Producer {
    pub async fn new(pail: Pail, topic: &str, config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let topic = pail.topic(topic).await?;
        let partitions = topic.config.partitions;
        // From the client's seedable jitter, so a simulation replays its partition choices.
        let first = pail.jitter(u64::from(partitions) - 1) as u32;
        let sticky = Sticky::new(
            partitions,
            first,
            config.batch_bytes_max,
            config.batch_records_max as u64,
        );
        let permits = (config.buffer_bytes_max / PERMIT_BYTES) as usize;
        Ok(Producer {
            inner: Arc::new(Shared {
                core: Arc::new(Core {
                    pail,
                    topic,
                    buffer: Arc::new(Semaphore::new(permits)),
                    config,
                }),
                sticky: Mutex::new(sticky),
                queues: Mutex::new((0..partitions).map(|_| None).collect()),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    pub fn topic(&self) -> &TopicMeta {
        &self.inner.core.topic
    }

    /// Queues `record` for `partition` (or the partitioner's choice) and returns a handle that
    /// resolves on acknowledgement. Waits up to `max_block_ms` for buffer space.
    pub async fn send(&self, record: Record, partition: Option<u32>) -> Result<Delivery> {
        if self.inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(stopped());
        }
        let size = record.size_bytes();
        let limit = self.inner.core.topic.config.record_bytes_max;
        if size > limit {
            return Err(Error::TooLarge {
                what: "record",
                actual: size,
                limit,
            });
        }
        let partition = self.choose(&record, partition, size)?;
        let permit = self.reserve(size).await?;
        let (ack, rx) = oneshot::channel();
        let pending = Pending {
            record,
            size,
            enqueued: Instant::now(),
            ack,
            buffer: permit,
        };
        self.queue(partition)
            .send(Msg::Record(pending))
            .map_err(|_| stopped())?;
        Ok(Delivery(rx))
    }

    /// Waits until every record sent before this call is acknowledged or failed.
    pub async fn flush(&self) {
        let senders: Vec<_> = lock(&self.inner.queues)
            .iter()
            .flatten()
            .map(|q| q.tx.clone())
            .collect();
        let mut waits = Vec::new();
        for q in senders {
            let (tx, rx) = oneshot::channel();
            if q.send(Msg::Flush(tx)).is_ok() {
                waits.push(rx);
            }
        }
        for w in waits {
            let _ = w.await;
        }
    }

    /// Accepts records for `partition` again after a batch to it failed: records sent from
    /// now on are attempted (under a fresh producer id); those sent before fail with `Aborted`.
    pub fn resume(&self, partition: u32) -> Result<()> {
        self.inner.core.topic.check_partition(partition)?;
        if let Some(q) = &lock(&self.inner.queues)[partition as usize] {
            let _ = q.tx.send(Msg::Resume);
        }
        Ok(())
    }

    /// Delivers everything sent, makes the hint of every partition it committed to name the
    /// newest version (at most one PUT per partition, bounded by [`CLOSE_HINT_TIMEOUT`]), stops
    /// every worker and waits for them: afterwards the producer holds no task, and `send` on a
    /// clone fails.
    pub async fn close(&self) {
        self.inner
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.flush().await;
        let queues: Vec<Queue> = lock(&self.inner.queues)
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for q in queues {
            drop(q.tx);
            let _ = q.task.await;
        }
    }

    fn choose(&self, record: &Record, partition: Option<u32>, size: u64) -> Result<u32> {
        let meta = &self.inner.core.topic;
        match (partition, &record.key) {
            (Some(p), _) => meta.check_partition(p).map(|()| p),
            (None, Some(key)) => Ok(partition_for_key(key, meta.config.partitions)),
            (None, None) => Ok(lock(&self.inner.sticky).next(size)),
        }
    }

    async fn reserve(&self, size: u64) -> Result<OwnedSemaphorePermit> {
        let config = &self.inner.core.config;
        let permits = size.div_ceil(PERMIT_BYTES).max(1) as u32;
        let wait = Duration::from_millis(config.max_block_ms);
        let acquire = Arc::clone(&self.inner.core.buffer).acquire_many_owned(permits);
        match tokio::time::timeout(wait, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(Error::BufferFull {
                waited_ms: config.max_block_ms,
                buffer_bytes: config.buffer_bytes_max,
            }),
        }
    }

    fn queue(&self, partition: u32) -> mpsc::UnboundedSender<Msg> {
        let mut queues = lock(&self.inner.queues);
        let slot = &mut queues[partition as usize];
        if let Some(q) = slot.as_ref().filter(|q| !q.tx.is_closed()) {
            return q.tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = Worker::new(Arc::clone(&self.inner.core), partition);
        let task = tokio::spawn(worker.run(rx));
        *slot = Some(Queue {
            tx: tx.clone(),
            task,
        });
        tx
    }
}

fn stopped() -> Error {
    Error::InvalidArgument("the producer has stopped".into())
}

/// Owns one partition's commits.
struct Worker {
    core: Arc<Core>,
    partition: u32,
    producer_id: String,
    next_sequence: u64,
    claim: Option<LeaderClaim>,
    /// Set when a batch failed for good: later records fail until `resume`.
    halted: Option<Arc<Error>>,
    /// A commit landed since the partition's hint was last brought up to date by this worker.
    unhinted: bool,
}

impl Worker {
    fn new(core: Arc<Core>, partition: u32) -> Self {
        Worker {
            core,
            partition,
            producer_id: new_producer_id(),
            next_sequence: 0,
            claim: None,
            halted: None,
            unhinted: false,
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut carried: Option<Pending> = None;
        loop {
            let first = match carried.take() {
                Some(p) => p,
                None => match self.next_message(&mut rx).await {
                    Some(Msg::Record(p)) => p,
                    Some(Msg::Flush(done)) => {
                        let _ = done.send(());
                        continue;
                    }
                    Some(Msg::Resume) => {
                        self.resume();
                        continue;
                    }
                    None => return self.final_hint().await,
                },
            };
            if let Some(cause) = &self.halted {
                abort(first, self.partition, cause);
                continue;
            }
            let gathered = self.gather(first, &mut rx).await;
            carried = gathered.carry;
            self.deliver(gathered.batch).await;
            for done in gathered.flushes {
                let _ = done.send(());
            }
            if gathered.resume {
                self.resume();
            }
        }
    }

    /// The next message. After `idle_hint_ms` of quiet following a commit, the partition's
    /// hint is brought up to date first, in the background: a hint never holds back a record.
    async fn next_message(&mut self, rx: &mut mpsc::UnboundedReceiver<Msg>) -> Option<Msg> {
        if self.unhinted {
            let idle = Duration::from_millis(self.core.config.idle_hint_ms);
            match tokio::time::timeout(idle, rx.recv()).await {
                Ok(msg) => return msg,
                Err(_) => {
                    self.unhinted = false;
                    let pail = self.core.pail.clone();
                    let topic = self.core.topic.name.clone();
                    let partition = self.partition;
                    tokio::spawn(async move {
                        if let Err(e) = pail.write_hint(topic.as_str(), partition).await {
                            tracing::debug!(%topic, partition, error = %e, "idle hint not written");
                        }
                    });
                }
            }
        }
        rx.recv().await
    }

    /// As the worker stops: the hint names the newest version it committed, so a lost head is
    /// noticed even when the partition is never written again. Best effort and bounded.
    async fn final_hint(&mut self) {
        if !std::mem::take(&mut self.unhinted) {
            return;
        }
        let topic = self.core.topic.name.as_str();
        let write = self.core.pail.write_hint(topic, self.partition);
        match tokio::time::timeout(CLOSE_HINT_TIMEOUT, write).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(topic, error = %e, "final hint not written"),
            Err(_) => tracing::debug!(topic, "final hint timed out"),
        }
    }

    fn resume(&mut self) {
        if self.halted.take().is_some() {
            // The failed batch may or may not be in the log: a fresh producer id keeps the next
            // batch from being refused as out of sequence (Kafka bumps the epoch here).
            self.producer_id = new_producer_id();
            self.next_sequence = 0;
        }
    }

    /// Collects a batch: everything already queued, then whatever arrives until the first
    /// record's linger runs out or the batch is full. While records keep arriving and the
    /// batch is small, the linger is extended in steps up to `linger_max_ms`.
    async fn gather(&self, first: Pending, rx: &mut mpsc::UnboundedReceiver<Msg>) -> Gathered {
        let cfg = &self.core.config;
        let step = Duration::from_millis(cfg.linger_ms.max(1));
        let mut deadline = first.enqueued + Duration::from_millis(cfg.linger_ms);
        let give_up = first.enqueued + Duration::from_millis(cfg.linger_max_ms.max(cfg.linger_ms));
        let mut bytes = first.size;
        let mut out = Gathered {
            batch: vec![first],
            flushes: Vec::new(),
            carry: None,
            resume: false,
        };
        let mut arrived = false;
        while out.batch.len() < cfg.batch_records_max && out.flushes.is_empty() && !out.resume {
            // Biased: records already queued always join the batch, even when the linger of a
            // record that waited through the previous commit has run out (group commit).
            let msg = tokio::select! {
                biased;
                msg = rx.recv() => msg,
                _ = tokio::time::sleep_until(deadline) => {
                    let small = bytes < cfg.linger_until_bytes;
                    if arrived && small && deadline < give_up {
                        arrived = false;
                        // From now, not from the old deadline: records that queued during the
                        // previous commit have deadlines long past, and stepping from those
                        // would end the batch at the first empty queue (a batch per PUT).
                        let now = tokio::time::Instant::now();
                        deadline = (deadline.max(now) + step).min(give_up);
                        continue;
                    }
                    break;
                }
            };
            match msg {
                Some(Msg::Record(p)) if bytes + p.size > cfg.batch_bytes_max => {
                    out.carry = Some(p);
                    break;
                }
                Some(Msg::Record(p)) => {
                    bytes += p.size;
                    arrived = true;
                    out.batch.push(p);
                }
                Some(Msg::Flush(done)) => out.flushes.push(done),
                Some(Msg::Resume) => out.resume = true,
                None => break,
            }
        }
        out
    }

    /// Commits one batch, retrying what is safe to retry until the delivery timeout, and
    /// answers every record in it.
    async fn deliver(&mut self, batch: Vec<Pending>) {
        // Buffer permits are held until the records are answered: the buffer bounds everything
        // not yet acknowledged, including the batch in flight.
        let mut permits = Vec::with_capacity(batch.len());
        let mut records = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        // Kafka's delivery.timeout.ms: counted from when the batch's oldest record was sent,
        // so records queued behind a failing store expire instead of each waiting in turn.
        let oldest = batch
            .iter()
            .map(|p| p.enqueued)
            .min()
            .unwrap_or_else(Instant::now);
        let deadline = oldest + Duration::from_millis(self.core.config.delivery_timeout_ms);
        for p in batch {
            records.push(p.record);
            acks.push(p.ack);
            permits.push(p.buffer);
        }
        let count = records.len() as u64;
        let result = self
            .commit_with_retries(records, deadline)
            .await
            .map_err(Arc::new);
        match &result {
            Ok(_) => {
                self.next_sequence += count;
                self.unhinted = true;
            }
            Err(e) => self.halted = Some(Arc::clone(e)),
        }
        for (i, ack) in acks.into_iter().enumerate() {
            let answer = match &result {
                Ok(base) => Ok(Delivered {
                    partition: self.partition,
                    offset: base + i as u64,
                }),
                Err(e) => Err(Error::Delivery {
                    partition: self.partition,
                    source: Arc::clone(e),
                }),
            };
            let _ = ack.send(answer);
        }
        drop(permits);
    }

    async fn commit_with_retries(
        &mut self,
        records: Vec<Record>,
        deadline: Instant,
    ) -> Result<u64> {
        let mut pause = Duration::from_millis(20);
        let mut attempt = Attempt {
            partition: self.partition,
            timeout_ms: self.core.config.delivery_timeout_ms,
            retry_from: None,
            maybe_committed: false,
            attempts: 0,
            last: None,
        };
        loop {
            if Instant::now() >= deadline {
                return Err(attempt.timed_out());
            }
            attempt.attempts += 1;
            let error = match self
                .commit_once(records.clone(), deadline, &mut attempt)
                .await
            {
                Ok(base) => return Ok(base),
                Err(e) => e,
            };
            if error.kind() == ErrorKind::OutcomeUnknown {
                attempt.maybe_committed = true;
            }
            if matches!(error, Error::Timeout { .. }) || error_is_deadline(&error) {
                attempt.last.get_or_insert(error);
                return Err(attempt.timed_out());
            }
            if !self.may_retry(&error) {
                return Err(attempt.failed(error));
            }
            if Instant::now() + pause > deadline {
                attempt.last = Some(error);
                return Err(attempt.timed_out());
            }
            if let Error::NotLeader { remaining_ms, .. } = &error {
                pause = pause.max(Duration::from_millis((*remaining_ms).min(1000)));
            }
            attempt.last = Some(error);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Without idempotence only errors that prove the batch had no effect are retried.
    fn may_retry(&self, e: &Error) -> bool {
        match e.kind() {
            ErrorKind::Conflict | ErrorKind::NotLeader => true,
            ErrorKind::Unavailable | ErrorKind::OutcomeUnknown => self.core.config.idempotent,
            _ => false,
        }
    }

    async fn commit_once(
        &mut self,
        records: Vec<Record>,
        deadline: Instant,
        attempt: &mut Attempt,
    ) -> Result<u64> {
        let pail = &self.core.pail;
        let topic = self.core.topic.name.as_str();
        if let (Some(lease_ms), None) = (self.core.config.lead_lease_ms, self.claim) {
            let edit = Edit::AcquireLease { lease_ms };
            let tip = pail
                .commit_control_by(topic, self.partition, edit, Some(deadline))
                .await?;
            self.claim = Some(LeaderClaim {
                epoch: tip.state.leader_epoch,
                lease_ms,
            });
        }
        let idempotent = self.core.config.idempotent;
        // Recorded before the first attempt, passed on from the second: only a retry can have
        // an earlier attempt to look for.
        let retry_from = attempt.retry_from;
        if idempotent && retry_from.is_none() {
            attempt.retry_from = Some(pail.retry_point(topic, self.partition).await?);
        }
        let opts = AppendOptions {
            producer: idempotent.then(|| ProducerBatch {
                producer_id: self.producer_id.clone(),
                first_sequence: self.next_sequence,
            }),
            leader: self.claim,
            retry_from,
            deadline: Some(deadline),
            topic_id: Some(self.core.topic.id.clone()),
            ..AppendOptions::default()
        };
        let result = pail.append_with(topic, self.partition, records, opts).await;
        if matches!(result, Err(Error::Fenced { .. })) {
            // Another writer leads now; a later batch may try to take the lead again.
            self.claim = None;
        }
        result.map(|a| a.base_offset)
    }
}

/// A batch's attempts so far, for the error it ends with.
struct Attempt {
    partition: u32,
    timeout_ms: u64,
    retry_from: Option<RetryFrom>,
    /// Some attempt may have landed and no later one settled it.
    maybe_committed: bool,
    attempts: u32,
    last: Option<Error>,
}

impl Attempt {
    fn timed_out(&mut self) -> Error {
        Error::DeliveryTimeout {
            partition: self.partition,
            timeout_ms: self.timeout_ms,
            maybe_committed: self.maybe_committed,
            last: self.last.take().map(Box::new),
        }
    }

    /// A batch that fails for good after an earlier attempt may have landed is unknown, not
    /// "no effect", whatever the last error says.
    fn failed(&mut self, e: Error) -> Error {
        if self.maybe_committed && e.kind() != ErrorKind::OutcomeUnknown {
            return Error::OutcomeUnknown {
                key: format!("partition {}", self.partition),
                attempts: self.attempts,
                last: Box::new(e),
            };
        }
        e
    }
}

/// True for the error an append returns when the deadline it was given passed mid-commit
/// (an attempt may have landed: the outcome is unknown).
fn error_is_deadline(e: &Error) -> bool {
    matches!(e, Error::OutcomeUnknown { last, .. } if matches!(**last, Error::Timeout { .. }))
}

struct Gathered {
    batch: Vec<Pending>,
    flushes: Vec<oneshot::Sender<()>>,
    carry: Option<Pending>,
    resume: bool,
}

/// Fails a record that arrived after its partition halted: nothing was written.
fn abort(p: Pending, partition: u32, cause: &Arc<Error>) {
    let _ = p.ack.send(Err(Error::Aborted {
        partition,
        cause: Arc::clone(cause),
    }));
}

fn new_producer_id() -> String {
    format!("p-{}", uuid::Uuid::new_v4().simple())
}
