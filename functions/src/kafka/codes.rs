//! Kafka error codes, and the one place pail's errors are mapped to them.
//!
//! The mapping follows what a Kafka client does with each code: retriable codes for what a
//! retry may fix (store unavailable, lost races, an unknown outcome that an idempotent retry
//! settles), and the codes Kafka itself uses for bad input.

use pail_core::{Error, ErrorKind};

use super::records::BatchError;

pub const NONE: i16 = 0;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const REQUEST_TIMED_OUT: i16 = 7;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const RECORD_LIST_TOO_LARGE: i16 = 18;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const INVALID_CONFIG: i16 = 40;
pub const INVALID_REQUEST: i16 = 42;
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const INVALID_RECORD: i16 = 87;
pub const UNKNOWN_TOPIC_ID: i16 = 100;

/// The Kafka error code for a pail error.
pub fn of(e: &Error) -> i16 {
    match e {
        Error::InvalidTopicName { .. } => INVALID_TOPIC_EXCEPTION,
        Error::UnknownTopic { .. } | Error::UnknownPartition { .. } => UNKNOWN_TOPIC_OR_PARTITION,
        Error::TopicExists { .. } => TOPIC_ALREADY_EXISTS,
        Error::TooLarge { what: "record", .. } => MESSAGE_TOO_LARGE,
        Error::TooLarge { .. } | Error::TooManyRecords { .. } => RECORD_LIST_TOO_LARGE,
        Error::ProducerSequence { .. } => OUT_OF_ORDER_SEQUENCE_NUMBER,
        e => match e.kind() {
            ErrorKind::InvalidInput => INVALID_RECORD,
            ErrorKind::NotFound => UNKNOWN_TOPIC_OR_PARTITION,
            ErrorKind::AlreadyExists => TOPIC_ALREADY_EXISTS,
            ErrorKind::OffsetOutOfRange => OFFSET_OUT_OF_RANGE,
            // Another writer leads the partition (a lease): the client refreshes and retries.
            ErrorKind::NotLeader | ErrorKind::Fenced => NOT_LEADER_OR_FOLLOWER,
            // Nothing was written, or an idempotent retry finds out what was: retry.
            ErrorKind::Conflict | ErrorKind::OutcomeUnknown => REQUEST_TIMED_OUT,
            ErrorKind::Unavailable => KAFKA_STORAGE_ERROR,
            _ => UNKNOWN_SERVER_ERROR,
        },
    }
}

/// The Kafka error code for a produced batch pail refused before appending.
pub fn of_batch(e: &BatchError) -> i16 {
    match e {
        BatchError::Corrupt(_) => CORRUPT_MESSAGE,
        BatchError::Invalid(_) => INVALID_RECORD,
        BatchError::OldFormat(_) => UNSUPPORTED_FOR_MESSAGE_FORMAT,
    }
}
