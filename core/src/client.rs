//! [`Pail`], the one API the CLI, the local HTTP server and the Lambda functions share.
//!
//! A `Pail` is cheap to clone and safe to share between tasks. It holds no state that matters
//! for correctness: its caches (topic descriptors, partition tips, footers) only save requests,
//! and every decision is made against the store by create-if-absent.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::clock::{Clock, SystemClock};
use crate::entropy::Entropy;
use crate::error::{Error, Result};
use crate::log::commit::{self, CommitRequest, Committed};
use crate::log::fetch::{self, FetchLimits, Fetched, OffsetSpec};
use crate::log::hedge::Hedge;
use crate::log::{Caches, Part, Tip, tip};
use crate::manifest::{AppendEdit, Edit, LeaderClaim, ProducerBatch};
use crate::record::Record;
use crate::storage::{Created, Store, keys};
use crate::topic::{TOPIC_FORMAT, TimestampType, TopicConfig, TopicMeta, TopicName};

/// Most records one append may carry (one segment object).
pub const APPEND_RECORDS_MAX: usize = 100_000;
/// Most bytes of payload one append may carry.
pub const APPEND_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Partitions described at once.
const DESCRIBE_CONCURRENCY: usize = 32;

/// A handle on one pail store.
#[derive(Clone, Debug)]
pub struct Pail {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    writer_id: String,
    clock: Arc<dyn Clock>,
    entropy: Entropy,
    hedge: Hedge,
    topics: RwLock<HashMap<TopicName, Arc<TopicMeta>>>,
    caches: Caches,
}

/// How a client is built; the defaults suit everything but tests and simulations.
#[derive(Clone, Debug)]
pub struct PailOptions {
    /// Decides lease expiry and LogAppendTime; never correctness.
    pub clock: Arc<dyn Clock>,
    /// Recorded in every version this client commits; random when `None`.
    pub writer_id: Option<String>,
    /// Seeds commit ids and backoff jitter; from the OS when `None`. Fixed in simulations so
    /// that a run replays.
    pub seed: Option<u64>,
    /// Repeat a segment create that is slower than twice the usual (see `log::hedge`).
    pub hedged_creates: bool,
}

impl Default for PailOptions {
    fn default() -> Self {
        PailOptions {
            clock: Arc::new(SystemClock),
            writer_id: None,
            seed: None,
            hedged_creates: true,
        }
    }
}

/// Options for one append beyond the records themselves.
#[derive(Clone, Debug, Default)]
pub struct AppendOptions {
    /// Idempotence tag: a retry with the same tag gets the original offsets back.
    pub producer: Option<ProducerBatch>,
    /// Set by partition leaders: commit only while this epoch still leads.
    pub leader: Option<LeaderClaim>,
}

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Appended {
    pub partition: u32,
    pub base_offset: u64,
    pub last_offset: u64,
    /// True when the batch had already been committed by an earlier attempt.
    pub duplicate: bool,
}

/// One partition as `describe` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionDescription {
    pub partition: u32,
    pub log_start_offset: u64,
    pub next_offset: u64,
    pub segments: u64,
    pub bytes: u64,
    pub version: u64,
    pub leader_epoch: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicDescription {
    pub topic: TopicName,
    pub config: TopicConfig,
    pub partitions: Vec<PartitionDescription>,
}

impl Pail {
    /// Opens the store at `url` (see [`Store::open`]).
    pub async fn open(url: &str) -> Result<Pail> {
        Ok(Pail::new(Store::open(url).await?))
    }

    /// A client on `store` with a fresh writer id and the system clock.
    pub fn new(store: Store) -> Pail {
        Pail::with_options(store, PailOptions::default())
    }

    pub fn with_clock(store: Store, clock: Arc<dyn Clock>) -> Pail {
        Pail::with_options(
            store,
            PailOptions {
                clock,
                ..PailOptions::default()
            },
        )
    }

    pub fn with_options(store: Store, options: PailOptions) -> Pail {
        let entropy = match options.seed {
            Some(seed) => Entropy::seeded(seed),
            None => Entropy::from_os(),
        };
        let writer_id = options
            .writer_id
            .unwrap_or_else(|| format!("w-{}", &entropy.id()[..16]));
        Pail {
            inner: Arc::new(Inner {
                store,
                writer_id,
                clock: options.clock,
                entropy,
                hedge: Hedge::new(options.hedged_creates),
                topics: RwLock::new(HashMap::new()),
                caches: Caches::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// This client's writer id, recorded in every version it commits.
    pub fn writer_id(&self) -> &str {
        &self.inner.writer_id
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Creates a topic. Fails with `TopicExists` if the name is taken, even by a concurrent
    /// creator: the descriptor is created only if absent.
    pub async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Arc<TopicMeta>> {
        let name = TopicName::new(name)?;
        config.validate()?;
        let meta = TopicMeta {
            format: TOPIC_FORMAT,
            name: name.clone(),
            config,
            created_at_ms: self.inner.clock.now_ms(),
        };
        let key = keys::topic_descriptor(&name);
        match self
            .inner
            .store
            .create(&key, Bytes::from(meta.encode()))
            .await
        {
            Ok(Created::Yes) => {}
            Ok(Created::AlreadyExists) => {
                return Err(Error::TopicExists {
                    topic: name.to_string(),
                });
            }
            Err(e) => return Err(Error::store("put", &key, e)),
        }
        let meta = Arc::new(meta);
        self.write_topics().insert(name, Arc::clone(&meta));
        Ok(meta)
    }

    /// The descriptor of a topic; `UnknownTopic` if there is none.
    pub async fn topic(&self, name: &str) -> Result<Arc<TopicMeta>> {
        let name = TopicName::new(name)?;
        if let Some(meta) = self.read_topics().get(&name) {
            return Ok(Arc::clone(meta));
        }
        let key = keys::topic_descriptor(&name);
        let bytes = self
            .inner
            .store
            .get(&key)
            .await?
            .ok_or_else(|| Error::UnknownTopic {
                topic: name.to_string(),
            })?;
        let meta = Arc::new(TopicMeta::decode(&bytes, key.as_ref(), &name)?);
        self.write_topics().insert(name, Arc::clone(&meta));
        Ok(meta)
    }

    /// Every topic in the store, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicName>> {
        let dirs = self.inner.store.list_dirs(&keys::topics_root()).await?;
        let names: Vec<TopicName> = dirs.iter().filter_map(keys::parse_topic_dir).collect();
        // A folder without a descriptor is not a topic (say, a create that failed half-way on a
        // store that makes folders eagerly).
        let checks = futures::stream::iter(names)
            .map(|name| async move {
                let exists =
                    self.topic(name.as_str())
                        .await
                        .map(|_| true)
                        .or_else(|e| match e {
                            Error::UnknownTopic { .. } => Ok(false),
                            // A damaged descriptor still names a topic; describe reports it.
                            Error::Corrupt { .. } => Ok(true),
                            other => Err(other),
                        })?;
                Ok::<_, Error>(exists.then_some(name))
            })
            .buffered(DESCRIBE_CONCURRENCY);
        let found: Vec<Option<TopicName>> = checks.try_collect().await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// The topic's settings and, per partition, its offsets, segment count and bytes.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let meta = self.topic(name).await?;
        let partitions = futures::stream::iter(0..meta.config.partitions)
            .map(|p| self.describe_partition(&meta.name, p))
            .buffered(DESCRIBE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(TopicDescription {
            topic: meta.name.clone(),
            config: meta.config.clone(),
            partitions,
        })
    }

    async fn describe_partition(
        &self,
        topic: &TopicName,
        partition: u32,
    ) -> Result<PartitionDescription> {
        let tip = tip::latest(self.part(topic, partition)).await?;
        let m = &tip.manifest;
        Ok(PartitionDescription {
            partition,
            log_start_offset: m.log_start_offset,
            next_offset: m.next_offset,
            segments: m.prior_segments + u64::from(!m.is_genesis()),
            bytes: m.prior_bytes + tip.size,
            version: m.version,
            leader_epoch: m.leader_epoch,
        })
    }

    /// The latest committed state of one partition.
    pub async fn partition_tip(&self, topic: &str, partition: u32) -> Result<Tip> {
        let meta = self.topic(topic).await?;
        meta.check_partition(partition)?;
        tip::latest(self.part(&meta.name, partition)).await
    }

    /// Appends `records` to one partition as one segment, returning their offsets once the
    /// commit is durable in the store.
    pub async fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> Result<Appended> {
        self.append_with(topic, partition, records, AppendOptions::default())
            .await
    }

    pub async fn append_with(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
        opts: AppendOptions,
    ) -> Result<Appended> {
        let meta = self.topic(topic).await?;
        meta.check_partition(partition)?;
        check_batch(&meta, &records)?;
        let timestamps = self.timestamps(&meta, &records);
        let producer_id = opts.producer.as_ref().map(|p| p.producer_id.clone());
        let edit = Edit::Append(AppendEdit {
            record_count: records.len() as u32,
            leader: opts.leader,
            producer: opts.producer,
        });
        let req = CommitRequest {
            edit: &edit,
            records: &records,
            timestamps_ms: &timestamps,
            compression: meta.config.compression,
        };
        let part = self.part(&meta.name, partition);
        let committed = commit::commit(part, &self.inner.writer_id, self.inner.clock.as_ref(), req)
            .await
            .map_err(|e| name_producer(e, producer_id))?;
        Ok(match committed {
            Committed::New(tip) => Appended {
                partition,
                base_offset: tip.manifest.base_offset,
                last_offset: tip.manifest.next_offset - 1,
                duplicate: false,
            },
            Committed::Duplicate {
                base_offset,
                record_count,
            } => Appended {
                partition,
                base_offset,
                last_offset: base_offset + u64::from(record_count) - 1,
                duplicate: true,
            },
        })
    }

    /// Commits a control edit (no records), such as taking a partition's lead.
    pub async fn commit_control(&self, topic: &str, partition: u32, edit: Edit) -> Result<Tip> {
        let meta = self.topic(topic).await?;
        meta.check_partition(partition)?;
        let req = CommitRequest {
            edit: &edit,
            records: &[],
            timestamps_ms: &[],
            compression: meta.config.compression,
        };
        let part = self.part(&meta.name, partition);
        match commit::commit(part, &self.inner.writer_id, self.inner.clock.as_ref(), req).await? {
            Committed::New(tip) => Ok(tip),
            Committed::Duplicate { .. } => Err(Error::InvalidArgument(
                "a control edit cannot be a duplicate".into(),
            )),
        }
    }

    /// Reads records of one partition from `from`, within `limits`.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        from: OffsetSpec,
        limits: FetchLimits,
    ) -> Result<Fetched> {
        let meta = self.topic(topic).await?;
        meta.check_partition(partition)?;
        fetch::fetch(self.part(&meta.name, partition), from, limits).await
    }

    fn part<'a>(&'a self, topic: &'a TopicName, partition: u32) -> Part<'a> {
        Part {
            store: &self.inner.store,
            caches: &self.inner.caches,
            entropy: &self.inner.entropy,
            hedge: &self.inner.hedge,
            topic,
            partition,
        }
    }

    /// Final timestamps, fixed before the first attempt so a retried commit writes the same.
    fn timestamps(&self, meta: &TopicMeta, records: &[Record]) -> Vec<i64> {
        let now = self.inner.clock.now_ms();
        records
            .iter()
            .map(|r| match meta.config.timestamp_type {
                TimestampType::CreateTime => r.timestamp_ms.unwrap_or(now),
                TimestampType::LogAppendTime => now,
            })
            .collect()
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TopicName, Arc<TopicMeta>>> {
        self.inner.topics.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_topics(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<TopicName, Arc<TopicMeta>>> {
        self.inner.topics.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Enforces the record and batch limits before anything is encoded.
fn check_batch(meta: &TopicMeta, records: &[Record]) -> Result<()> {
    if records.is_empty() {
        return Err(Error::InvalidArgument(
            "an append needs at least one record".into(),
        ));
    }
    if records.len() > APPEND_RECORDS_MAX {
        return Err(Error::TooManyRecords {
            what: "batch",
            actual: records.len() as u64,
            limit: APPEND_RECORDS_MAX as u64,
        });
    }
    let mut total = 0u64;
    for r in records {
        let size = r.size_bytes();
        if size > meta.config.record_bytes_max {
            return Err(Error::TooLarge {
                what: "record",
                actual: size,
                limit: meta.config.record_bytes_max,
            });
        }
        total += size;
    }
    if total > APPEND_BYTES_MAX {
        return Err(Error::TooLarge {
            what: "batch",
            actual: total,
            limit: APPEND_BYTES_MAX,
        });
    }
    Ok(())
}

fn name_producer(e: Error, producer: Option<String>) -> Error {
    match (e, producer) {
        (
            Error::ProducerSequence {
                topic,
                partition,
                reason,
                ..
            },
            Some(producer),
        ) => Error::ProducerSequence {
            topic,
            partition,
            producer,
            reason,
        },
        (e, _) => e,
    }
}
