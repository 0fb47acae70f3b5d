//! The batching producer: partitioning, linger and batch limits, group commit, idempotent
//! retries, optional partition leadership and bounded buffers.
//!
//! Each partition gets one worker task that owns that partition's commits. Records sent while a
//! commit is in flight queue up and go out together in the next one (group commit), so under
//! load the object writes per record fall while commits never overlap on a partition.
//! Every batch carries the producer id and sequence number of its first record, so a retry after
//! a timeout or an ambiguous store answer gets the original offsets back instead of appending
//! twice.
//!
//! Must never: acknowledge a record before its commit is durable, or retry a batch under a new
//! sequence number (that would turn a retry into a duplicate).

pub mod partitioner;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::client::{APPEND_BYTES_MAX, APPEND_RECORDS_MAX, AppendOptions, Pail};
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{Edit, LeaderClaim, ProducerBatch};
use crate::record::Record;
use crate::topic::TopicMeta;
use partitioner::{Sticky, partition_for_key};

/// Producer settings; every field has a documented default ([`ProducerConfig::default`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerConfig {
    /// How long a partition's first waiting record may wait for company before a commit.
    pub linger_ms: u64,
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
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger_ms: 5,
            batch_records_max: 10_000,
            batch_bytes_max: 4 * 1024 * 1024,
            buffer_bytes_max: 64 * 1024 * 1024,
            max_block_ms: 60_000,
            delivery_timeout_ms: 120_000,
            idempotent: true,
            lead_lease_ms: None,
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
        if self.linger_ms > 60_000 {
            return bad("linger_ms must be at most 60000".into());
        }
        if self.delivery_timeout_ms == 0 || self.delivery_timeout_ms > 86_400_000 {
            return bad("delivery_timeout_ms must be 1 to 86400000".into());
        }
        if self.lead_lease_ms.is_some_and(|l| l == 0 || l > 3_600_000) {
            return bad("a lead lease is 1 to 3600000 ms".into());
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

/// A producer for one topic. Cheap to clone; workers stop once every clone is dropped and their
/// queues are drained.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Shared>,
}

struct Shared {
    pail: Pail,
    topic: Arc<TopicMeta>,
    config: ProducerConfig,
    buffer: Arc<Semaphore>,
    sticky: Mutex<Sticky>,
    queues: Mutex<Vec<Option<mpsc::UnboundedSender<Msg>>>>,
}

enum Msg {
    Record(Pending),
    Flush(oneshot::Sender<()>),
}

struct Pending {
    record: Record,
    size: u64,
    enqueued: Instant,
    ack: oneshot::Sender<Result<Delivered>>,
    buffer: OwnedSemaphorePermit,
}

/// Buffer accounting unit: permits are KiB so a u32 permit count covers 1 TiB.
const PERMIT_BYTES: u64 = 1024;

impl Producer {
    pub async fn new(pail: Pail, topic: &str, config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let topic = pail.topic(topic).await?;
        let partitions = topic.config.partitions;
        let first = rand::random_range(0..partitions);
        let sticky = Sticky::new(
            partitions,
            first,
            config.batch_bytes_max,
            config.batch_records_max as u64,
        );
        let permits = (config.buffer_bytes_max / PERMIT_BYTES) as usize;
        Ok(Producer {
            inner: Arc::new(Shared {
                pail,
                topic,
                buffer: Arc::new(Semaphore::new(permits)),
                sticky: Mutex::new(sticky),
                queues: Mutex::new((0..partitions).map(|_| None).collect()),
                config,
            }),
        })
    }

    pub fn topic(&self) -> &TopicMeta {
        &self.inner.topic
    }

    /// Queues `record` for `partition` (or the partitioner's choice) and returns a handle that
    /// resolves on acknowledgement. Waits up to `max_block_ms` for buffer space.
    pub async fn send(&self, record: Record, partition: Option<u32>) -> Result<Delivery> {
        let size = record.size_bytes();
        let limit = self.inner.topic.config.record_bytes_max;
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
        let senders: Vec<_> = crate::log::lock(&self.inner.queues)
            .iter()
            .flatten()
            .cloned()
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

    fn choose(&self, record: &Record, partition: Option<u32>, size: u64) -> Result<u32> {
        let meta = &self.inner.topic;
        match (partition, &record.key) {
            (Some(p), _) => meta.check_partition(p).map(|()| p),
            (None, Some(key)) => Ok(partition_for_key(key, meta.config.partitions)),
            (None, None) => Ok(self
                .inner
                .sticky
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .next(size)),
        }
    }

    async fn reserve(&self, size: u64) -> Result<OwnedSemaphorePermit> {
        let permits = size.div_ceil(PERMIT_BYTES).max(1) as u32;
        let wait = Duration::from_millis(self.inner.config.max_block_ms);
        let acquire = Arc::clone(&self.inner.buffer).acquire_many_owned(permits);
        match tokio::time::timeout(wait, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(Error::BufferFull {
                waited_ms: self.inner.config.max_block_ms,
                buffer_bytes: self.inner.config.buffer_bytes_max,
            }),
        }
    }

    fn queue(&self, partition: u32) -> mpsc::UnboundedSender<Msg> {
        let mut queues = crate::log::lock(&self.inner.queues);
        let slot = &mut queues[partition as usize];
        if let Some(q) = slot.as_ref().filter(|q| !q.is_closed()) {
            return q.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = Worker::new(Arc::clone(&self.inner), partition);
        tokio::spawn(worker.run(rx));
        *slot = Some(tx.clone());
        tx
    }
}

fn stopped() -> Error {
    Error::InvalidArgument("the producer has stopped".into())
}

/// Owns one partition's commits.
struct Worker {
    shared: Arc<Shared>,
    partition: u32,
    producer_id: String,
    next_sequence: u64,
    claim: Option<LeaderClaim>,
}

impl Worker {
    fn new(shared: Arc<Shared>, partition: u32) -> Self {
        Worker {
            shared,
            partition,
            producer_id: new_producer_id(),
            next_sequence: 0,
            claim: None,
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut carried: Option<Pending> = None;
        loop {
            let first = match carried.take() {
                Some(p) => p,
                None => match rx.recv().await {
                    Some(Msg::Record(p)) => p,
                    Some(Msg::Flush(done)) => {
                        let _ = done.send(());
                        continue;
                    }
                    None => return,
                },
            };
            let (batch, flushes, carry) = self.gather(first, &mut rx).await;
            carried = carry;
            self.deliver(batch).await;
            for done in flushes {
                let _ = done.send(());
            }
        }
    }

    /// Collects a batch: everything already queued, then whatever arrives until the first
    /// record's linger runs out or the batch is full. Returns the batch, flush requests seen,
    /// and a record that did not fit.
    async fn gather(
        &self,
        first: Pending,
        rx: &mut mpsc::UnboundedReceiver<Msg>,
    ) -> (Vec<Pending>, Vec<oneshot::Sender<()>>, Option<Pending>) {
        let cfg = &self.shared.config;
        let deadline = first.enqueued + Duration::from_millis(cfg.linger_ms);
        let mut bytes = first.size;
        let mut batch = vec![first];
        let mut flushes = Vec::new();
        while batch.len() < cfg.batch_records_max && flushes.is_empty() {
            // Biased: records already queued always join the batch, even when the linger of a
            // record that waited through the previous commit has run out (group commit).
            let msg = tokio::select! {
                biased;
                msg = rx.recv() => msg,
                _ = tokio::time::sleep_until(deadline) => break,
            };
            match msg {
                Some(Msg::Record(p)) if bytes + p.size > cfg.batch_bytes_max => {
                    return (batch, flushes, Some(p));
                }
                Some(Msg::Record(p)) => {
                    bytes += p.size;
                    batch.push(p);
                }
                Some(Msg::Flush(done)) => flushes.push(done),
                None => break,
            }
        }
        (batch, flushes, None)
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
        let deadline = oldest + Duration::from_millis(self.shared.config.delivery_timeout_ms);
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
            Ok(_) => self.next_sequence += count,
            // The batch may or may not be in the log; restart the sequence under a new producer
            // id so the next batch is not refused as out of order (Kafka bumps the epoch here).
            Err(_) => {
                self.producer_id = new_producer_id();
                self.next_sequence = 0;
            }
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
        let (partition, timeout_ms) = (self.partition, self.shared.config.delivery_timeout_ms);
        // The timeout names the last failure seen, if any: that is what the user must fix.
        let timed_out = |last: Option<Error>| Error::DeliveryTimeout {
            partition,
            timeout_ms,
            last: last.map(Box::new),
        };
        let mut last = None;
        loop {
            let Some(left) = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            else {
                return Err(timed_out(last));
            };
            // An attempt cut off at the deadline may still land; the producer then moves to a
            // fresh producer id (see `deliver`), exactly as after an ambiguous failure.
            let error = match tokio::time::timeout(left, self.commit_once(records.clone())).await {
                Ok(Ok(base)) => return Ok(base),
                Ok(Err(e)) => e,
                Err(_) => return Err(timed_out(last)),
            };
            if !self.may_retry(&error) {
                return Err(error);
            }
            if Instant::now() + pause > deadline {
                return Err(timed_out(Some(error)));
            }
            if let Error::NotLeader { remaining_ms, .. } = &error {
                pause = pause.max(Duration::from_millis((*remaining_ms).min(1000)));
            }
            last = Some(error);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Without idempotence only errors that prove the batch had no effect are retried.
    fn may_retry(&self, e: &Error) -> bool {
        match e.kind() {
            ErrorKind::Conflict | ErrorKind::NotLeader => true,
            ErrorKind::Unavailable | ErrorKind::OutcomeUnknown => self.shared.config.idempotent,
            _ => false,
        }
    }

    async fn commit_once(&mut self, records: Vec<Record>) -> Result<u64> {
        let topic = self.shared.topic.name.as_str();
        if let (Some(lease_ms), None) = (self.shared.config.lead_lease_ms, self.claim) {
            let tip = self
                .shared
                .pail
                .commit_control(topic, self.partition, Edit::AcquireLease { lease_ms })
                .await?;
            self.claim = Some(LeaderClaim {
                epoch: tip.manifest.leader_epoch,
                lease_ms,
            });
        }
        let opts = AppendOptions {
            producer: self.shared.config.idempotent.then(|| ProducerBatch {
                producer_id: self.producer_id.clone(),
                first_sequence: self.next_sequence,
            }),
            leader: self.claim,
        };
        let result = self
            .shared
            .pail
            .append_with(topic, self.partition, records, opts)
            .await;
        if matches!(result, Err(Error::Fenced { .. })) {
            // Another writer leads now; a later batch may try to take the lead again.
            self.claim = None;
        }
        result.map(|a| a.base_offset)
    }
}

fn new_producer_id() -> String {
    format!("p-{}", uuid::Uuid::new_v4().simple())
}
