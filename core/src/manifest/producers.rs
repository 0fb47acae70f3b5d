//! Idempotent-producer state kept in the manifest, as Kafka's broker keeps it.
//!
//! A producer tags each batch with its id and the sequence number of the batch's first record.
//! The manifest remembers, per producer, the last committed sequence and the last
//! [`PRODUCER_BATCHES_MAX`] batches with their offsets and content digests, so a retried batch
//! gets its original offsets back instead of being appended twice, and a *different* batch
//! under a reused sequence is refused instead of being taken for a retry (its records would
//! vanish).
//!
//! This window is the fast path and the sequence check, not the guarantee. It keeps the
//! [`PRODUCERS_MAX`] most recently active producers; under serverless fan-in others push a
//! producer out within seconds. A retry from the process that sent the batch does not depend on
//! it: it knows the version its first attempt built on, and looks for its batch in every version
//! committed since (`crate::log::retry`), however many other producers wrote meanwhile.

use serde::{Deserialize, Serialize};

use super::ApplyError;

/// Most producers whose state a partition keeps.
pub const PRODUCERS_MAX: usize = 64;
/// Batches remembered per producer (Kafka: 5).
pub const PRODUCER_BATCHES_MAX: usize = 5;
/// Longest producer id accepted.
pub const PRODUCER_ID_MAX_CHARS: usize = 128;

/// The idempotence tag of one batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerBatch {
    pub producer_id: String,
    pub first_sequence: u64,
}

/// A committed batch of a producer and where it landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerWindow {
    pub first_sequence: u64,
    pub record_count: u32,
    pub base_offset: u64,
    /// Digest of the batch's content (see `crate::record::digest`).
    #[serde(default)]
    pub digest: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerState {
    pub id: String,
    /// Sequence number of the last record committed.
    pub last_sequence: u64,
    /// Manifest version of the producer's last commit (for least-recently-active eviction).
    pub last_version: u64,
    /// Oldest first, at most [`PRODUCER_BATCHES_MAX`].
    pub batches: Vec<ProducerWindow>,
}

pub(super) enum Admission {
    Accept,
    Duplicate(ProducerWindow),
}

/// Decides whether `batch` of `count` records with content `digest` is new, a duplicate, or
/// out of sequence.
pub(super) fn admit(
    states: &[ProducerState],
    batch: &ProducerBatch,
    count: u32,
    digest: &str,
) -> Result<Admission, ApplyError> {
    validate_id(&batch.producer_id)?;
    let Some(state) = states.iter().find(|s| s.id == batch.producer_id) else {
        return Ok(Admission::Accept);
    };
    if let Some(window) = state
        .batches
        .iter()
        .find(|w| w.first_sequence == batch.first_sequence)
    {
        if window.record_count != count || (!window.digest.is_empty() && window.digest != digest) {
            return Err(ApplyError::Sequence(format!(
                "sequence {} was committed at offset {} with different content ({} records); \
                 a producer id and sequence must never be reused for another batch",
                batch.first_sequence, window.base_offset, window.record_count
            )));
        }
        return Ok(Admission::Duplicate(window.clone()));
    }
    let expected = state.last_sequence + 1;
    if batch.first_sequence == expected {
        Ok(Admission::Accept)
    } else if batch.first_sequence < expected {
        Err(ApplyError::Sequence(format!(
            "sequence {} is already committed but older than the last {PRODUCER_BATCHES_MAX} batches kept (last committed sequence {})",
            batch.first_sequence, state.last_sequence
        )))
    } else {
        Err(ApplyError::Sequence(format!(
            "out of order: expected sequence {expected}, got {}",
            batch.first_sequence
        )))
    }
}

/// The producer states after committing `batch` at `base_offset` in manifest `version`.
pub(super) fn record(
    states: &[ProducerState],
    batch: &ProducerBatch,
    window: ProducerWindow,
    version: u64,
) -> Vec<ProducerState> {
    let mut out: Vec<ProducerState> = Vec::with_capacity(states.len() + 1);
    let mut mine = None;
    for s in states {
        if s.id == batch.producer_id {
            mine = Some(s.clone());
        } else {
            out.push(s.clone());
        }
    }
    let mut mine = mine.unwrap_or_else(|| ProducerState {
        id: batch.producer_id.clone(),
        last_sequence: 0,
        last_version: 0,
        batches: Vec::new(),
    });
    mine.last_sequence = batch.first_sequence + u64::from(window.record_count) - 1;
    mine.last_version = version;
    mine.batches.push(window);
    if mine.batches.len() > PRODUCER_BATCHES_MAX {
        mine.batches.remove(0);
    }
    out.push(mine);
    // `out` is kept least recently active first, so eviction drops the front.
    if out.len() > PRODUCERS_MAX {
        out.remove(0);
    }
    out
}

fn validate_id(id: &str) -> Result<(), ApplyError> {
    if id.is_empty() || id.chars().count() > PRODUCER_ID_MAX_CHARS {
        return Err(ApplyError::Invalid(format!(
            "a producer id has 1 to {PRODUCER_ID_MAX_CHARS} characters"
        )));
    }
    Ok(())
}

pub(super) fn check_bounds(states: &[ProducerState]) -> Result<(), String> {
    if states.len() > PRODUCERS_MAX {
        return Err(format!(
            "{} producers kept, over {PRODUCERS_MAX}",
            states.len()
        ));
    }
    for s in states {
        if s.batches.is_empty() || s.batches.len() > PRODUCER_BATCHES_MAX {
            return Err(format!(
                "producer {} keeps {} batches",
                s.id,
                s.batches.len()
            ));
        }
    }
    Ok(())
}
