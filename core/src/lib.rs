//! # pail-core
//!
//! A Kafka-style log kept entirely in object storage: topics split into partitions, each
//! partition an append-only sequence of records numbered by contiguous offsets, stored as
//! Parquet segment objects that analytics engines read directly. There are no brokers: writers
//! coordinate only through create-if-absent writes to the store.
//!
//! ```no_run
//! # async fn demo() -> pail_core::Result<()> {
//! use pail_core::{Pail, Record, TopicConfig, OffsetSpec, FetchLimits};
//! let pail = Pail::open("./pail-data").await?;
//! pail.create_topic("orders", TopicConfig::new(3)).await?;
//! let at = pail.append("orders", 0, vec![Record::keyed("k", "hello")]).await?;
//! let got = pail.fetch("orders", 0, OffsetSpec::At(at.base_offset as i64), FetchLimits::default()).await?;
//! assert_eq!(got.records[0].value.as_deref(), Some(&b"hello"[..]));
//! # Ok(()) }
//! ```
//!
//! Modules, from the bottom up:
//! - [`storage`]: the store URL, the backends, and every object key ([`storage::keys`]).
//! - [`manifest`]: partition state and its pure transition function.
//! - [`segment`]: the Parquet segment format (encode, footer, ranged row reads).
//! - [`chain`]: the create-only chain of versions: the commit loop and the tip finder that
//!   partitions and consumer groups share.
//! - [`log`]: one partition as a chain of segments: appends, retries, fetch.
//! - [`group`]: consumer groups as a chain of JSON versions: membership, assignment, offsets.
//! - [`client`]: [`Pail`], the API every binary uses.
//! - [`consumer`]: the group consumer: poll, commit, seek, rebalances.
//! - [`producer`]: batching, partitioning, group commit and idempotent retries over [`Pail`].
//! - [`doctor`]: checking every chain object by object, and the one safe repair
//!   ([`Pail::doctor`], [`Pail::repair`]).

pub mod cache;
pub mod chain;
pub mod client;
pub mod clock;
pub mod consumer;
pub mod doctor;
pub mod entropy;
pub mod error;
#[cfg(feature = "sim")]
#[doc(hidden)]
pub mod fuzzing;
pub mod group;
pub mod maintain;

pub mod log;
pub mod manifest;
pub mod producer;
pub mod record;
pub mod segment;
pub mod storage;
mod sync;
pub mod topic;

pub use client::{
    AppendOptions, Appended, Pail, PailOptions, PartitionDescription, TopicDescription,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, ErrorKind, Result};
pub use log::fetch::{FetchLimits, Fetched, OffsetSpec};
pub use log::retry::RetryFrom;
pub use log::time::TimeMatch;
pub use log::{CacheLimits, CacheSizes};
pub use producer::{Delivered, Producer, ProducerConfig};
pub use record::{Header, Record, StoredRecord};
pub use storage::Store;
pub use topic::{Compression, TimestampType, TopicConfig, TopicMeta, TopicName};
