//! [`Pail`], the one API the CLI, the local HTTP server and the Lambda functions share.
//!
//! A `Pail` is cheap to clone and safe to share between tasks. It holds no state that matters
//! for correctness: its caches (topic descriptors, partition tips, footers) only save requests,
//! and every decision is made against the store by create-if-absent.

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

use crate::cache::Lru;
use crate::chain::{Head, tip};
use crate::clock::{Clock, SystemClock};
use crate::entropy::Entropy;
use crate::error::{Error, Result};
use crate::log::append::{self, CommitRequest, Committed};
use crate::log::fetch::{self, FetchLimits, Fetched, OffsetSpec};
use crate::log::hedge::Hedge;
use crate::log::retry::{self, RetryFrom};
use crate::log::time::{self, TimeMatch};
use crate::log::{CacheLimits, Caches, Part, Tip};
use crate::manifest::{AppendEdit, Edit, IdempotencyKey, LeaderClaim, ProducerBatch};
use crate::record::{self, Record};
use crate::storage::{Store, keys};
use crate::topic::{TimestampType, TopicConfig, TopicMeta, TopicName};

/// Most records one append may carry (one segment object).
pub const APPEND_RECORDS_MAX: usize = 100_000;
/// Most records one merged segment may hold (compaction).
pub const COMPACT_RECORDS_MAX: u64 = 10_000_000;
/// Most bytes of payload one append may carry.
pub const APPEND_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Partitions described at once.
const DESCRIBE_CONCURRENCY: usize = 32;
/// Topic descriptors a client keeps.
const TOPIC_CACHE_ENTRIES: usize = 4096;
/// Races an unkeyed batch loses in a row on one partition, each certainly without effect,
/// before [`Pail::append_unkeyed`] moves it to another partition. Measured with `pail bench
/// produce --unkeyed-moving` (docs/BENCHMARKS.md, "Many racing writers on few partitions").
pub const UNKEYED_MOVE_AFTER_LOST_RACES: u32 = 2;
/// Moves one unkeyed batch may make; then it settles where it is, racing as any batch does.
pub const UNKEYED_MOVES_MAX: u32 = 3;

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
    topics: crate::topic::chain::TopicCache,
    caches: Caches,
    groups: crate::group::GroupCache,
}

/// How a client is built; the defaults suit everything but tests and simulations.
#[derive(Clone, Debug)]
pub struct PailOptions {
    /// Decides lease expiry and LogAppendTime; never correctness.
    pub clock: Arc<dyn Clock>,
    /// Recorded in every version this client commits; random when `None`.
    pub writer_id: Option<String>,
    /// Seeds backoff jitter and the writer id; from the OS when `None`. Fixed in simulations
    /// so that a run replays. Commit attempt ids never come from it (see `crate::entropy`).
    pub seed: Option<u64>,
    /// Repeat a segment create that is slower than twice the usual (see `log::hedge`).
    pub hedged_creates: bool,
    /// Bounds on the client's caches.
    pub cache_limits: CacheLimits,
}

impl Default for PailOptions {
    fn default() -> Self {
        PailOptions {
            clock: Arc::new(SystemClock),
            writer_id: None,
            seed: None,
            hedged_creates: true,
            cache_limits: CacheLimits::default(),
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
    /// A client's idempotency key (an HTTP `Idempotency-Key`, an SQS message id): the batch is
    /// appended once however often it is sent within the key's window, from any process
    /// (`manifest::IDEMPOTENCY_WINDOW_MS`).
    pub idempotency_key: Option<String>,
    /// For a retry by the process that made the batch's first attempt: where that attempt
    /// started ([`Pail::retry_point`]). The retry then finds the batch even after the
    /// producer window forgot it.
    pub retry_from: Option<RetryFrom>,
    /// Give up at this instant: with no effect (`Timeout`), or `OutcomeUnknown` if an attempt
    /// may have landed. No store call outlives it.
    pub deadline: Option<Instant>,
    /// Stop with [`Error::Busy`] after this many lost races in a row, each certainly without
    /// effect (see `chain::commit`), so that the caller may place the batch elsewhere. Only for
    /// batches whose partition nothing depends on: refused with a producer tag, an idempotency
    /// key, a retry point or a leader claim. `None`: race on as usual.
    pub give_up_after_lost_races: Option<u32>,
    /// Append only into this incarnation of the topic (its `TopicMeta::id`): a writer bound
    /// to a topic, such as a [`crate::Producer`], fails with `UnknownTopic` once the topic was
    /// deleted, even if one of the same name was created since. `None`: the topic the name
    /// stands for now.
    pub topic_id: Option<String>,
}

/// Refuses a bound on lost races for a batch whose partition a retry depends on: moving it
/// after `Busy` would let the retry append it again elsewhere.
fn check_movable(opts: &AppendOptions) -> Result<()> {
    let pinned = opts.producer.is_some()
        || opts.idempotency_key.is_some()
        || opts.retry_from.is_some()
        || opts.leader.is_some();
    if opts.give_up_after_lost_races.is_some() && pinned {
        return Err(Error::InvalidArgument(
            "give_up_after_lost_races is only for batches free to move: not with a producer \
             tag, an idempotency key, a retry point or a leader claim"
                .into(),
        ));
    }
    if opts.give_up_after_lost_races == Some(0) {
        return Err(Error::InvalidArgument(
            "give_up_after_lost_races must be at least 1".into(),
        ));
    }
    Ok(())
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
    /// Why the partition cannot be written, if it is damaged where it would continue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
}

/// The topics of a store, as [`Pail::list_topics_checked`] finds them.
#[derive(Debug, Default)]
pub struct TopicListing {
    /// Topics whose descriptor reads and decodes, sorted by name.
    pub topics: Vec<TopicName>,
    /// Topics whose descriptor could not be read or decoded, sorted by name.
    pub unreadable: Vec<(TopicName, Error)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicDescription {
    pub topic: TopicName,
    /// The topic's id: a topic deleted and created again under its name gets a new one
    /// (Kafka's topic ids, KIP-516).
    pub id: String,
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
            .unwrap_or_else(|| format!("w-{}", entropy.token()));
        Pail {
            inner: Arc::new(Inner {
                store,
                writer_id,
                clock: options.clock,
                entropy,
                hedge: Hedge::new(options.hedged_creates),
                topics: Mutex::new(Lru::new(TOPIC_CACHE_ENTRIES, usize::MAX)),
                caches: Caches::new(options.cache_limits),
                groups: Mutex::new(Lru::new(crate::group::GROUP_CACHE_ENTRIES, usize::MAX)),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// How much this client's caches hold.
    pub fn cache_sizes(&self) -> crate::log::CacheSizes {
        crate::log::CacheSizes {
            topics: crate::sync::lock(&self.inner.topics).len(),
            ..self.inner.caches.sizes()
        }
    }

    /// This client's writer id, recorded in every version it commits.
    pub fn writer_id(&self) -> &str {
        &self.inner.writer_id
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub(crate) fn entropy(&self) -> &Entropy {
        &self.inner.entropy
    }

    pub(crate) fn group_cache(&self) -> &crate::group::GroupCache {
        &self.inner.groups
    }

    pub(crate) fn topic_cache(&self) -> &crate::topic::chain::TopicCache {
        &self.inner.topics
    }

    /// A uniform integer in `0..=max` from the client's seedable generator (jitter and
    /// choices that only shape timing; a simulation's seed makes them replay).
    pub(crate) fn jitter(&self, max: u64) -> u64 {
        self.inner.entropy.up_to(max)
    }

    /// How much the client caches hold (they are bounded; see `crate::log`).
    /// Every topic in the store, sorted by name, including topics whose descriptor is damaged
    /// (describe reports those); fails if any other descriptor cannot be read.
    pub async fn list_topics(&self) -> Result<Vec<TopicName>> {
        let listing = self.list_topics_checked().await?;
        let mut names = listing.topics;
        for (name, e) in listing.unreadable {
            match e {
                Error::Corrupt { .. } => names.push(name),
                other => return Err(other),
            }
        }
        names.sort();
        Ok(names)
    }

    /// Every topic in the store, sorted by name, with the topics whose descriptor cannot be
    /// read or decoded set apart with their errors: one bad descriptor hides no other topic.
    /// Fails only if the topics folder itself cannot be listed.
    pub async fn list_topics_checked(&self) -> Result<TopicListing> {
        let dirs = self.inner.store.list_dirs(&keys::topics_root()).await?;
        let names: Vec<TopicName> = dirs.iter().filter_map(keys::parse_topic_dir).collect();
        let checks = futures::stream::iter(names)
            .map(|name| async move {
                let found = self.topic(name.as_str()).await;
                (name, found)
            })
            .buffered(DESCRIBE_CONCURRENCY);
        let checked: Vec<_> = checks.collect().await;
        let mut listing = TopicListing::default();
        for (name, found) in checked {
            match found {
                Ok(_) => listing.topics.push(name),
                // A folder without a descriptor is not a topic (say, a create that failed
                // half-way on a store that makes folders eagerly).
                Err(Error::UnknownTopic { .. }) => {}
                Err(e) => listing.unreadable.push((name, e)),
            }
        }
        Ok(listing)
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
            id: meta.id.clone(),
            config: meta.config.clone(),
            partitions,
        })
    }

    async fn describe_partition(
        &self,
        topic: &TopicName,
        partition: u32,
    ) -> Result<PartitionDescription> {
        let Head { tip, blocked } = tip::latest(&self.part(topic, partition)).await?;
        let m = &tip.state;
        Ok(PartitionDescription {
            partition,
            log_start_offset: m.log_start_offset,
            next_offset: m.next_offset,
            segments: m.prior_segments + u64::from(!m.is_genesis()),
            bytes: m.prior_bytes + tip.size,
            version: m.version,
            leader_epoch: m.leader_epoch,
            blocked: blocked.map(|b| format!("{}: {}", b.key, b.reason)),
        })
    }

    /// The latest committed state of one partition, and what blocks it, if anything.
    pub async fn partition_head(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Head<crate::manifest::PartitionManifest>> {
        let meta = self.topic(topic).await?;
        meta.check_partition(partition)?;
        tip::latest(&self.part(&meta.name, partition)).await
    }

    /// The latest committed state of one partition.
    pub async fn partition_tip(&self, topic: &str, partition: u32) -> Result<Tip> {
        Ok(self.partition_head(topic, partition).await?.tip)
    }

    /// Makes the partition's hint name the newest version this client knows (its own last
    /// commit, typically), unless the hint already names that or a newer one: then deleting
    /// that version later is noticed and writers refuse instead of reusing its offsets. Costs
    /// one GET, plus one PUT when the hint moves. Returns whether it wrote. Nothing is written
    /// for a partition that is blocked (its hint is the evidence of what it lost).
    ///
    /// Committers hint a partition's first version and every 64th on their own; the producer
    /// calls this when a partition goes quiet and when it closes. Long-lived writers that append
    /// directly can call it when they stop.
    pub async fn write_hint(&self, topic: &str, partition: u32) -> Result<bool> {
        let meta = self.topic(topic).await?;
        meta.check_partition(partition)?;
        let part = self.part(&meta.name, partition);
        let head = tip::known(&part).await?;
        if head.blocked.is_some() || head.tip.is_genesis() {
            return Ok(false);
        }
        tip::write_hint_now(&part, &head.tip).await
    }

    /// Where a batch's first attempt starts, for [`AppendOptions::retry_from`]: the client's
    /// cached tip of the partition (no request), or the discovered one (which the append then
    /// uses, so it costs nothing extra).
    pub async fn retry_point(&self, topic: &str, partition: u32) -> Result<RetryFrom> {
        let meta = self.topic(topic).await?;
        meta.check_partition(partition)?;
        let part = self.part(&meta.name, partition);
        Ok(RetryFrom::of(&tip::known(&part).await?.tip))
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
        if opts.topic_id.as_ref().is_some_and(|id| *id != meta.id) {
            return Err(Error::UnknownTopic {
                topic: topic.to_string(),
            });
        }
        meta.check_partition(partition)?;
        check_batch(&meta, &records)?;
        check_movable(&opts)?;
        self.inner.store.ensure_conditional_writes().await?;
        let digest = record::digest(&records);
        let part = self.part(&meta.name, partition);
        let producer_id = opts.producer.as_ref().map(|p| p.producer_id.clone());
        let earlier = self.earlier_attempt(part, &opts, &digest);
        if let Some((base_offset, record_count)) = bounded(opts.deadline, earlier).await? {
            return Ok(appended(partition, base_offset, record_count, true));
        }
        let key = opts
            .idempotency_key
            .as_deref()
            .map(IdempotencyKey::new)
            .transpose()
            .map_err(Error::InvalidArgument)?;
        let timestamps = self.timestamps(&meta, &records);
        let (min_ts, max_ts) = timestamps
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        let edit = Edit::Append(AppendEdit {
            record_count: records.len() as u32,
            leader: opts.leader,
            producer: opts.producer,
            key,
            topic_id: meta.id.clone(),
            min_timestamp_ms: min_ts,
            max_timestamp_ms: max_ts,
        });
        let req = CommitRequest {
            edit: &edit,
            records: &records,
            timestamps_ms: &timestamps,
            digest: &digest,
            writer: &self.inner.writer_id,
            clock: self.inner.clock.as_ref(),
            deadline: opts.deadline,
            compression: meta.config.compression,
            give_up_after_lost_races: opts.give_up_after_lost_races,
        };
        let committed = match append::commit(part, req).await {
            // The partition may still end in the previous incarnation's tombstone.
            Err(Error::UnknownTopic { .. }) if self.reincarnate(&meta, partition).await? => {
                append::commit(part, req).await
            }
            other => other,
        }
        .map_err(|e| name_producer(e, producer_id))?;
        Ok(match committed {
            Committed::New(tip) => appended(
                partition,
                tip.state.base_offset,
                tip.state.record_count,
                false,
            ),
            Committed::Duplicate {
                base_offset,
                record_count,
            } => appended(partition, base_offset, record_count, true),
        })
    }

    /// Appends unkeyed records whose partition nothing depends on, starting on `partition` and
    /// moving to another (at random) whenever a commit loses
    /// `opts.give_up_after_lost_races` races in a row (default
    /// [`UNKEYED_MOVE_AFTER_LOST_RACES`]), each certainly without effect: Kafka's sticky
    /// partitioner leaving a busy partition. After [`UNKEYED_MOVES_MAX`] moves the batch
    /// settles where it is. The returned [`Appended::partition`] is where it landed. Refused
    /// for keyed records and for anything a retry would look for on its first partition (a
    /// producer tag, an idempotency key, a retry point, a leader claim).
    pub async fn append_unkeyed(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
        opts: AppendOptions,
    ) -> Result<Appended> {
        if records.iter().any(|r| r.key.is_some()) {
            return Err(Error::InvalidArgument(
                "append_unkeyed takes unkeyed records only: a keyed record belongs to its \
                 key's partition"
                    .into(),
            ));
        }
        let partitions = self.topic(topic).await?.config.partitions;
        let give_up = opts
            .give_up_after_lost_races
            .unwrap_or(UNKEYED_MOVE_AFTER_LOST_RACES);
        let settle = AppendOptions {
            give_up_after_lost_races: None,
            ..opts
        };
        let moves = if partitions < 2 { 0 } else { UNKEYED_MOVES_MAX };
        let mut partition = partition;
        for _ in 0..moves {
            let movable = AppendOptions {
                give_up_after_lost_races: Some(give_up),
                ..settle.clone()
            };
            match self
                .append_with(topic, partition, records.clone(), movable)
                .await
            {
                Err(Error::Busy { .. }) => partition = self.other_partition(partition, partitions),
                other => return other,
            }
        }
        self.append_with(topic, partition, records, settle).await
    }

    /// A partition other than `partition`, at random (itself when it is the only one).
    fn other_partition(&self, partition: u32, partitions: u32) -> u32 {
        if partitions < 2 {
            return partition;
        }
        let step = 1 + self.jitter(u64::from(partitions) - 2) as u32;
        (partition + step) % partitions
    }

    /// Brings a partition that still ends in an older incarnation's tombstone into `meta`'s
    /// incarnation, if `meta` is the topic's current one. True when the partition is ready for
    /// `meta`'s writers; false when `meta` itself is gone (its writers must stop).
    async fn reincarnate(&self, meta: &TopicMeta, partition: u32) -> Result<bool> {
        let latest = match self.topic_latest(meta.name.as_str()).await {
            Ok(latest) => latest,
            Err(Error::UnknownTopic { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if latest.id != meta.id || meta.id.is_empty() {
            return Ok(false);
        }
        let head = tip::latest(&self.part(&meta.name, partition)).await?;
        let m = &head.tip.state;
        if !m.deleted || m.topic_id == meta.id {
            return Ok(false);
        }
        let edit = Edit::Maintain(crate::manifest::MaintainEdit::Reincarnate {
            topic_id: meta.id.clone(),
        });
        match self.commit_control_on(meta, partition, edit, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == crate::error::ErrorKind::AlreadyExists => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// For a retry that knows where its first attempt started: that attempt's offsets, if it
    /// landed (see `log::retry`).
    async fn earlier_attempt(
        &self,
        part: Part<'_>,
        opts: &AppendOptions,
        digest: &str,
    ) -> Result<Option<(u64, u32)>> {
        match (&opts.producer, opts.retry_from) {
            (Some(batch), Some(from)) => retry::find_earlier(part, batch, digest, from).await,
            _ => Ok(None),
        }
    }

    /// Commits a control edit (no records), such as taking a partition's lead.
    pub async fn commit_control(&self, topic: &str, partition: u32, edit: Edit) -> Result<Tip> {
        self.commit_control_by(topic, partition, edit, None).await
    }

    /// [`Pail::commit_control`], giving up at `deadline` (as [`AppendOptions::deadline`]).
    pub async fn commit_control_by(
        &self,
        topic: &str,
        partition: u32,
        edit: Edit,
        deadline: Option<Instant>,
    ) -> Result<Tip> {
        let meta = self.topic(topic).await?;
        self.commit_control_on(&meta, partition, edit, deadline)
            .await
    }

    /// Commits a control edit on a partition of `meta`'s topic, whether or not the topic is
    /// still live (a deleted topic's partitions get their tombstones this way).
    pub(crate) async fn commit_control_unchecked(
        &self,
        meta: &TopicMeta,
        partition: u32,
        edit: Edit,
    ) -> Result<Tip> {
        self.commit_control_on(meta, partition, edit, None).await
    }

    async fn commit_control_on(
        &self,
        meta: &TopicMeta,
        partition: u32,
        edit: Edit,
        deadline: Option<Instant>,
    ) -> Result<Tip> {
        meta.check_partition(partition)?;
        self.inner.store.ensure_conditional_writes().await?;
        let digest = control_digest(&edit);
        let req = CommitRequest {
            edit: &edit,
            records: &[],
            timestamps_ms: &[],
            digest: &digest,
            writer: &self.inner.writer_id,
            clock: self.inner.clock.as_ref(),
            deadline,
            compression: meta.config.compression,
            give_up_after_lost_races: None,
        };
        let part = self.part(&meta.name, partition);
        match append::commit(part, req).await? {
            Committed::New(tip) => {
                // A leadership change is rare and worth a hint: a cold reader finds it at once.
                crate::chain::tip::write_hint(&part, &tip);
                Ok(tip)
            }
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
        let part = Part {
            incarnation: &meta.id,
            ..self.part(&meta.name, partition)
        };
        fetch::fetch(part, from, limits).await
    }

    /// The first offset of one partition whose record's timestamp is at or after `ts_ms`
    /// (Kafka's ListOffsets by timestamp; see `crate::log::time` for the exact definition),
    /// or `None` when no record kept has one.
    pub async fn offset_for_time(
        &self,
        topic: &str,
        partition: u32,
        ts_ms: i64,
    ) -> Result<Option<TimeMatch>> {
        let meta = self.topic(topic).await?;
        meta.check_partition(partition)?;
        let part = Part {
            incarnation: &meta.id,
            ..self.part(&meta.name, partition)
        };
        time::offset_for_time(part, ts_ms).await
    }

    pub(crate) fn part<'a>(&'a self, topic: &'a TopicName, partition: u32) -> Part<'a> {
        Part {
            store: &self.inner.store,
            caches: &self.inner.caches,
            entropy: &self.inner.entropy,
            hedge: &self.inner.hedge,
            topic,
            partition,
            incarnation: "",
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
        total += meta.check_record(r)?;
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

/// `call`, but failing with `Timeout` (no effect: it only reads) once `deadline` passes.
async fn bounded<T>(
    deadline: Option<Instant>,
    call: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match deadline {
        None => call.await,
        Some(d) => tokio::time::timeout_at(d, call).await.unwrap_or_else(|_| {
            Err(Error::Timeout {
                what: "looking for an earlier attempt of the batch".into(),
                maybe_landed: false,
            })
        }),
    }
}

fn appended(partition: u32, base_offset: u64, record_count: u32, duplicate: bool) -> Appended {
    Appended {
        partition,
        base_offset,
        last_offset: base_offset + u64::from(record_count) - 1,
        duplicate,
    }
}

/// The digest a control commit carries: its kind and settings (the random attempt id is what
/// tells two writers' control commits apart).
fn control_digest(edit: &Edit) -> String {
    let text = format!("{edit:?}");
    record::digest(&[Record::from_value(text)])
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
