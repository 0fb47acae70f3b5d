//! The one public error type of pail.
//!
//! Every failure a caller can see is a variant of [`Error`] carrying the values that matter
//! (topic, partition, offsets, limits, object key). [`Error::kind`] folds the variants into an
//! [`ErrorKind`] that tells the caller what to do next: fix the input, retry, stop, or look at
//! the store. The CLI maps kinds to exit codes and the HTTP layer maps them to status codes, so a
//! new variant only has to pick its kind.

use std::fmt;

/// What a caller should do about an [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or breaks a documented limit: fix the input, do not retry.
    InvalidInput,
    /// The topic, partition or object does not exist.
    NotFound,
    /// The thing being created already exists.
    AlreadyExists,
    /// The offset lies outside the partition's valid range; the message gives the range.
    OffsetOutOfRange,
    /// Lost too many commit races in a row; the request had no effect and may be retried.
    Conflict,
    /// A newer writer epoch owns the partition: this writer must stop.
    Fenced,
    /// Another writer holds an unexpired lease on the partition: retry later or elsewhere.
    NotLeader,
    /// An object in the store does not decode or breaks an invariant. Needs an operator.
    Corrupt,
    /// The store did not answer or refused the request (network, throttling, credentials).
    Unavailable,
    /// The write may or may not have landed; an idempotent retry resolves it.
    OutcomeUnknown,
}

impl ErrorKind {
    /// True when repeating the same request later may succeed.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorKind::Conflict
                | ErrorKind::NotLeader
                | ErrorKind::Unavailable
                | ErrorKind::OutcomeUnknown
        )
    }

    /// A short stable name, used in JSON error bodies and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::OffsetOutOfRange => "offset_out_of_range",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Fenced => "fenced",
            ErrorKind::NotLeader => "not_leader",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::OutcomeUnknown => "outcome_unknown",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every error pail returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("invalid store url {url:?}: {reason}")]
    InvalidStoreUrl { url: String, reason: String },

    #[error("unknown topic {topic:?}")]
    UnknownTopic { topic: String },

    #[error("topic {topic:?} already exists")]
    TopicExists { topic: String },

    #[error(
        "unknown partition {partition} of topic {topic:?} (it has {count} partitions: 0..{count})"
    )]
    UnknownPartition {
        topic: String,
        partition: u32,
        count: u32,
    },

    #[error(
        "offset {offset} is out of range for {topic}/{partition}: valid offsets are {log_start}..={next} ({next} is the next offset to be written)"
    )]
    OffsetOutOfRange {
        topic: String,
        partition: u32,
        offset: i64,
        log_start: u64,
        next: u64,
    },

    #[error("{what} is {actual} bytes, over the limit of {limit} bytes")]
    TooLarge {
        what: &'static str,
        actual: u64,
        limit: u64,
    },

    #[error("{what} has {actual} records, over the limit of {limit}")]
    TooManyRecords {
        what: &'static str,
        actual: u64,
        limit: u64,
    },

    #[error("gave up on {topic}/{partition} after losing {attempts} commit races in a row")]
    Conflict {
        topic: String,
        partition: u32,
        attempts: u32,
    },

    #[error("writer epoch {epoch} on {topic}/{partition} is fenced by epoch {current}")]
    Fenced {
        topic: String,
        partition: u32,
        epoch: u64,
        current: u64,
    },

    #[error(
        "{topic}/{partition} is led by writer {leader} (epoch {epoch}) for {remaining_ms} ms more"
    )]
    NotLeader {
        topic: String,
        partition: u32,
        leader: String,
        epoch: u64,
        remaining_ms: u64,
    },

    #[error("producer {producer} on {topic}/{partition}: {reason}")]
    ProducerSequence {
        topic: String,
        partition: u32,
        producer: String,
        reason: String,
    },

    #[error("producer buffer full: waited {waited_ms} ms for space in {buffer_bytes} bytes")]
    BufferFull { waited_ms: u64, buffer_bytes: u64 },

    #[error("delivery to partition {partition} failed: {source}")]
    Delivery {
        partition: u32,
        /// Shared by every record of the failed batch.
        #[source]
        source: std::sync::Arc<Error>,
    },

    #[error(
        "delivery to partition {partition} timed out after {timeout_ms} ms; the batch may or may not have been committed"
    )]
    DeliveryTimeout {
        partition: u32,
        timeout_ms: u64,
        /// The last failure of the batch before time ran out.
        #[source]
        last: Option<Box<Error>>,
    },

    #[error("cannot encode segment: {0}")]
    Encode(String),

    #[error("corrupt object {key}: {reason}")]
    Corrupt { key: String, reason: String },

    #[error("store {op} {key} failed: {source}")]
    Store {
        op: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },

    #[error("outcome of the commit to {key} is unknown after {attempts} attempts")]
    OutcomeUnknown {
        key: String,
        attempts: u32,
        /// The last failure: of the create, or of reading the key back.
        #[source]
        last: Box<Error>,
    },
}

impl Error {
    /// What the caller should do about this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidTopicName { .. }
            | Error::InvalidArgument(_)
            | Error::InvalidStoreUrl { .. }
            | Error::TooLarge { .. }
            | Error::TooManyRecords { .. }
            | Error::ProducerSequence { .. }
            | Error::Encode(_) => ErrorKind::InvalidInput,
            Error::UnknownTopic { .. } | Error::UnknownPartition { .. } => ErrorKind::NotFound,
            Error::TopicExists { .. } => ErrorKind::AlreadyExists,
            Error::OffsetOutOfRange { .. } => ErrorKind::OffsetOutOfRange,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Fenced { .. } => ErrorKind::Fenced,
            Error::NotLeader { .. } => ErrorKind::NotLeader,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Store { source, .. } => store_error_kind(source),
            Error::OutcomeUnknown { .. } => ErrorKind::OutcomeUnknown,
            Error::BufferFull { .. } => ErrorKind::Unavailable,
            Error::Delivery { source, .. } => source.kind(),
            // The last failure says what to do; with none, an attempt was cut off mid-flight.
            Error::DeliveryTimeout { last, .. } => last
                .as_ref()
                .map_or(ErrorKind::OutcomeUnknown, |e| e.kind()),
        }
    }

    pub(crate) fn store(
        op: &'static str,
        key: impl fmt::Display,
        source: object_store::Error,
    ) -> Self {
        Error::Store {
            op,
            key: key.to_string(),
            source,
        }
    }

    pub(crate) fn corrupt(key: impl fmt::Display, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

/// Store errors that name a missing object are `NotFound`; everything else (network, throttling,
/// permissions, a missing bucket) is `Unavailable`, because the caller can only retry or fix the
/// deployment.
fn store_error_kind(source: &object_store::Error) -> ErrorKind {
    match source {
        e if crate::storage::object_missing(e) => ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            ErrorKind::Conflict
        }
        _ => ErrorKind::Unavailable,
    }
}

/// The result type of every fallible pail operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
