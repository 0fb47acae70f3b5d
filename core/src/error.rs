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
    /// The store refused the request for a reason no retry will fix (permissions, a missing
    /// bucket, a store without conditional writes). Nothing was written: fix the deployment.
    Refused,
    /// Not attempted, because an earlier batch to the same partition failed: nothing was
    /// written. Resend once the earlier failure has been dealt with (see `Producer::resume`).
    Aborted,
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
            ErrorKind::Refused => "refused",
            ErrorKind::Aborted => "aborted",
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

    #[error("gave up on {chain} after losing {attempts} commit races in a row")]
    Conflict { chain: String, attempts: u32 },

    /// Lost `lost` races in a row, each certainly without effect (see `chain::commit`): the
    /// batch is nowhere in the store and may be placed on another partition.
    #[error(
        "{chain} is busy: lost {lost} commit races in a row to other writers; nothing was written"
    )]
    Busy { chain: String, lost: u32 },

    #[error(
        "{chain} cannot be written: {key} is corrupt or missing ({reason}); reads below it still \
         work; `pail doctor` explains the damage and the way out"
    )]
    Blocked {
        chain: String,
        key: String,
        reason: String,
    },

    #[error("{what} did not finish before its deadline; {}", timeout_effect(*.maybe_landed))]
    Timeout {
        what: String,
        /// A create was sent and not answered: it may still land.
        maybe_landed: bool,
    },

    #[error("store refused {op} {key}, so nothing was written: {source}")]
    Refused {
        op: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },

    #[error("nothing to do on {chain}: {reason}")]
    AlreadyDone { chain: String, reason: String },

    #[error("unknown consumer group {group:?}")]
    UnknownGroup { group: String },

    #[error(
        "member {member} is not in group {group} (it left, or its session timed out); join again"
    )]
    UnknownMember { group: String, member: String },

    #[error("group {group} has {members} live members; stop them first")]
    GroupActive { group: String, members: usize },

    /// A Kafka classic-protocol request the group's state refuses (the listener answers it
    /// with the matching Kafka error code).
    #[error("group {group}: {reason}")]
    GroupRefused {
        group: String,
        refusal: crate::group::Refusal,
        reason: String,
    },

    #[error("refusing to use the store at {location}: {reason}")]
    UnsafeStore { location: String, reason: String },

    #[error(
        "not sent to partition {partition}: an earlier batch to it failed ({cause}); resume the \
         partition once that failure is dealt with"
    )]
    Aborted {
        partition: u32,
        cause: std::sync::Arc<Error>,
    },

    #[error("this writer is fenced on {chain}: {reason}")]
    Fenced { chain: String, reason: String },

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
        "delivery to partition {partition} timed out after {timeout_ms} ms; {}",
        if *maybe_committed { "the batch may or may not have been committed" } else { "the batch was not committed" }
    )]
    DeliveryTimeout {
        partition: u32,
        timeout_ms: u64,
        /// True when an attempt may have landed: the outcome is unknown, not "no effect".
        maybe_committed: bool,
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

    #[error("outcome of the commit to {key} is unknown{}: it may have landed", tries(*.attempts))]
    OutcomeUnknown {
        key: String,
        attempts: u32,
        /// The last failure: of the create, or of reading the key back.
        #[source]
        last: Box<Error>,
    },
}

fn timeout_effect(maybe_landed: bool) -> &'static str {
    if maybe_landed {
        "a write was sent and not answered"
    } else {
        "it had no effect"
    }
}

fn tries(attempts: u32) -> String {
    match attempts {
        0 => String::new(),
        1 => " after 1 try".into(),
        n => format!(" after {n} tries"),
    }
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
            Error::UnknownTopic { .. }
            | Error::UnknownPartition { .. }
            | Error::UnknownGroup { .. } => ErrorKind::NotFound,
            Error::UnknownMember { .. } | Error::GroupRefused { .. } => ErrorKind::Fenced,
            Error::GroupActive { .. } => ErrorKind::InvalidInput,
            Error::TopicExists { .. } | Error::AlreadyDone { .. } => ErrorKind::AlreadyExists,
            Error::OffsetOutOfRange { .. } => ErrorKind::OffsetOutOfRange,
            Error::Conflict { .. } | Error::Busy { .. } => ErrorKind::Conflict,
            Error::Blocked { .. } => ErrorKind::Corrupt,
            Error::Timeout { .. } => ErrorKind::Unavailable,
            Error::Refused { .. } | Error::UnsafeStore { .. } => ErrorKind::Refused,
            Error::Aborted { .. } => ErrorKind::Aborted,
            Error::Fenced { .. } => ErrorKind::Fenced,
            Error::NotLeader { .. } => ErrorKind::NotLeader,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Store { source, .. } => store_error_kind(source),
            Error::OutcomeUnknown { .. } => ErrorKind::OutcomeUnknown,
            Error::BufferFull { .. } => ErrorKind::Unavailable,
            Error::Delivery { source, .. } => source.kind(),
            // An attempt that may have landed makes the outcome unknown, whatever came last;
            // otherwise the last failure says what to do.
            Error::DeliveryTimeout {
                maybe_committed: true,
                ..
            } => ErrorKind::OutcomeUnknown,
            Error::DeliveryTimeout { last, .. } => {
                last.as_ref().map_or(ErrorKind::Unavailable, |e| e.kind())
            }
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

    pub(crate) fn refused(
        op: &'static str,
        key: impl fmt::Display,
        source: object_store::Error,
    ) -> Self {
        Error::Refused {
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

/// Store errors that name a missing object are `NotFound`; refusals no retry can fix
/// (permissions, credentials, a missing bucket) are `Refused`; everything else (network,
/// throttling, server errors) is `Unavailable`, because the caller can only retry.
fn store_error_kind(source: &object_store::Error) -> ErrorKind {
    match source {
        e if crate::storage::object_missing(e) => ErrorKind::NotFound,
        e if crate::storage::certainly_not_written(e) => ErrorKind::Refused,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            ErrorKind::Conflict
        }
        _ => ErrorKind::Unavailable,
    }
}

/// The result type of every fallible pail operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
