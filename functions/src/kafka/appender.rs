//! Produced batches, appended to each partition in the order they arrived.
//!
//! Kafka clients pipeline: an idempotent producer may have five requests in flight to one
//! partition, and batch `n + 1` must be appended after batch `n`. Appends from one listener
//! to one partition therefore go through one queue and one worker task, filled in the order
//! connections read their requests (the connection enqueues before it reads the next one).
//! Different partitions append in parallel, and the worker, not the connection, decompresses
//! and decodes, so that work spreads over cores too.
//!
//! A worker ends after [`WORKER_IDLE`] without work, so a listener that has seen many
//! partitions holds tasks only for the busy ones. Every commit bumps a counter that waiting
//! fetches watch (see `handlers::fetch`).

use bytes::Bytes;
use pail_core::{AppendOptions, Pail, Record};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

use super::codes;
use super::records::{self, Batch, BatchError};

/// How long a partition's worker waits for work before it ends.
const WORKER_IDLE: Duration = Duration::from_secs(30);

/// How one partition's part of a Produce request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Appended { base_offset: i64 },
    Failed { code: i16, message: String },
}

struct Job {
    data: Bytes,
    reply: oneshot::Sender<Outcome>,
}

type Key = (String, u32);

pub struct Appenders {
    pail: Pail,
    queues: Mutex<HashMap<Key, mpsc::UnboundedSender<Job>>>,
    commits: watch::Sender<u64>,
}

impl std::fmt::Debug for Appenders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appenders").finish_non_exhaustive()
    }
}

impl Appenders {
    pub fn new(pail: Pail) -> Arc<Self> {
        Arc::new(Appenders {
            pail,
            queues: Mutex::new(HashMap::new()),
            commits: watch::Sender::new(0),
        })
    }

    /// A receiver that changes whenever this listener commits a batch.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Partition workers alive now.
    pub fn workers(&self) -> usize {
        self.lock().len()
    }

    /// Queues `data` (a partition's record batches) behind everything queued for the same
    /// partition before it. Call in arrival order; the answer comes once the append is durable.
    pub fn submit(
        self: &Arc<Self>,
        topic: &str,
        partition: u32,
        data: Bytes,
    ) -> oneshot::Receiver<Outcome> {
        let (reply, answer) = oneshot::channel();
        let mut job = Job { data, reply };
        let key = (topic.to_string(), partition);
        // Sent under the lock, so a worker deciding to end (also under it) either sees the job
        // or has already left the map; a send to an ended worker returns the job to retry.
        let mut queues = self.lock();
        for _ in 0..2 {
            let sender = queues
                .entry(key.clone())
                .or_insert_with(|| self.spawn_worker(key.clone()));
            match sender.send(job) {
                Ok(()) => return answer,
                Err(mpsc::error::SendError(back)) => {
                    job = back;
                    queues.remove(&key);
                }
            }
        }
        let _ = job.reply.send(Outcome::Failed {
            code: codes::UNKNOWN_SERVER_ERROR,
            message: "no partition worker could be started".into(),
        });
        answer
    }

    fn spawn_worker(self: &Arc<Self>, key: Key) -> mpsc::UnboundedSender<Job> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(Arc::clone(self).work(key, rx));
        tx
    }

    async fn work(self: Arc<Self>, key: Key, mut rx: mpsc::UnboundedReceiver<Job>) {
        loop {
            match tokio::time::timeout(WORKER_IDLE, rx.recv()).await {
                Ok(Some(job)) => {
                    let outcome = self.append(&key, job.data).await;
                    // The client may have gone; the append stands either way.
                    let _ = job.reply.send(outcome);
                }
                Ok(None) => return,
                Err(_idle) => {
                    let mut queues = self.lock();
                    if rx.is_empty() {
                        queues.remove(&key);
                        return;
                    }
                }
            }
        }
    }

    async fn append(&self, (topic, partition): &Key, data: Bytes) -> Outcome {
        let (records, producer) = match records::decode_batches(data).and_then(merge) {
            Ok(batch) => batch,
            Err(e) => {
                return Outcome::Failed {
                    code: codes::of_batch(&e),
                    message: e.to_string(),
                };
            }
        };
        let opts = AppendOptions {
            producer,
            ..AppendOptions::default()
        };
        match self
            .pail
            .append_with(topic, *partition, records, opts)
            .await
        {
            Ok(done) => {
                if !done.duplicate {
                    self.commits.send_modify(|n| *n += 1);
                }
                Outcome::Appended {
                    base_offset: done.base_offset as i64,
                }
            }
            Err(e) => Outcome::Failed {
                code: codes::of(&e),
                message: e.to_string(),
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, mpsc::UnboundedSender<Job>>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The batches of one partition's data as one append, so they land together or not at all
/// (as Kafka appends them): either none is idempotent, or all are one producer's batches with
/// consecutive sequences.
fn merge(
    batches: Vec<Batch>,
) -> Result<(Vec<Record>, Option<pail_core::manifest::ProducerBatch>), BatchError> {
    let tag = batches.first().and_then(Batch::producer);
    let mut expected = tag.as_ref().map(|t| t.first_sequence);
    let mut records = Vec::new();
    for b in batches {
        match (&tag, b.producer()) {
            (None, None) => {}
            (Some(first), Some(this))
                if this.producer_id == first.producer_id
                    && Some(this.first_sequence) == expected => {}
            _ => {
                return Err(BatchError::Invalid(
                    "the batches for one partition mix producers or skip sequence numbers".into(),
                ));
            }
        }
        expected = expected.map(|s| s + b.records.len() as u64);
        records.extend(b.records);
    }
    Ok((records, tag))
}
