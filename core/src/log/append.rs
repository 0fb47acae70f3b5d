//! Appending to a partition, and its control commits: the partition's edit, applied and
//! encoded on whatever tip the shared commit loop (`crate::chain::commit`) offers it.

use tokio::time::Instant;

use super::{Part, Tip};
use crate::chain::commit::{self as chain_commit, CommitCtx, Outcome, Step};
use crate::chain::tip;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::manifest::{Applied, ApplyError, CommitContext, Edit, PartitionManifest, apply};
use crate::record::Record;
use crate::segment;
use crate::topic::Compression;

/// What to commit: an edit, and for appends the records with their final timestamps.
#[derive(Clone, Copy)]
pub struct CommitRequest<'a> {
    pub edit: &'a Edit,
    pub records: &'a [Record],
    pub timestamps_ms: &'a [i64],
    /// Digest of the records as the client supplied them (`crate::record::digest`), or of the
    /// control edit.
    pub digest: &'a str,
    pub writer: &'a str,
    pub clock: &'a dyn Clock,
    /// No store call of the commit starts after this, and none outlives it.
    pub deadline: Option<Instant>,
    /// The topic's codec for the segment's pages.
    pub compression: Compression,
    /// Stop with `Error::Busy` after this many clean lost races (`AppendOptions`).
    pub give_up_after_lost_races: Option<u32>,
}

/// How a commit ended.
#[derive(Clone, Debug)]
pub enum Committed {
    /// A new version was created; this is it.
    New(Tip),
    /// The batch was already committed at these offsets (an idempotent retry).
    Duplicate { base_offset: u64, record_count: u32 },
}

/// Commits `req` as the next version of the partition.
pub async fn commit(part: Part<'_>, req: CommitRequest<'_>) -> Result<Committed> {
    let ctx = CommitCtx {
        entropy: part.entropy,
        hedge: Some(part.hedge),
        deadline: req.deadline,
        digest: req.digest,
    };
    let give_up = req.give_up_after_lost_races;
    let outcome =
        chain_commit::commit_or_give_up(&part, ctx, give_up, |tip, id| build(part, &req, tip, id))
            .await?;
    Ok(match outcome {
        Outcome::New(new) => {
            tip::maybe_write_hint(&part, &new);
            Committed::New(new)
        }
        Outcome::Done((base_offset, record_count)) => Committed::Duplicate {
            base_offset,
            record_count,
        },
    })
}

/// The edit applied to `tip` and encoded as a segment, or the offsets of the batch if it is
/// already in the log.
fn build(
    part: Part<'_>,
    req: &CommitRequest<'_>,
    tip: &Tip,
    commit_id: &str,
) -> Result<Step<PartitionManifest, (u64, u32)>> {
    let ctx = CommitContext {
        writer: req.writer,
        commit_id,
        now_ms: req.clock.now_ms(),
        prev_size: tip.size,
        digest: req.digest,
    };
    match apply(&tip.state, req.edit, &ctx).map_err(|e| apply_error(part, tip, e))? {
        Applied::Duplicate {
            base_offset,
            record_count,
        } => Ok(Step::Done((base_offset, record_count))),
        Applied::Next(next) => {
            let bytes =
                segment::encode_with(req.records, req.timestamps_ms, &next, req.compression)
                    .map_err(Error::Encode)?;
            Ok(Step::Create(*next, bytes))
        }
    }
}

fn apply_error(part: Part<'_>, tip: &Tip, e: ApplyError) -> Error {
    use crate::chain::Chain;
    let topic = part.topic.to_string();
    let partition = part.partition;
    match e {
        ApplyError::Fenced { epoch, current } => Error::Fenced {
            chain: part.describe(),
            reason: format!("its leader epoch {epoch} was superseded by epoch {current}"),
        },
        ApplyError::NotHolder { epoch, holder } => Error::Fenced {
            chain: part.describe(),
            reason: format!("leader epoch {epoch} was granted to writer {holder}, not to it"),
        },
        ApplyError::NotLeader {
            holder,
            epoch,
            remaining_ms,
        } => Error::NotLeader {
            topic,
            partition,
            leader: holder,
            epoch,
            remaining_ms,
        },
        ApplyError::Sequence(reason) => Error::ProducerSequence {
            topic,
            partition,
            producer: String::new(),
            reason,
        },
        ApplyError::Invalid(reason) => Error::InvalidArgument(reason),
        ApplyError::TopicGone(_) => Error::UnknownTopic { topic },
        ApplyError::Stale(reason) => Error::AlreadyDone {
            chain: part.describe(),
            reason,
        },
        ApplyError::Invariant(reason) => {
            let key = part.key_of(&tip.state).unwrap_or_else(|| part.dir());
            Error::corrupt(key, reason)
        }
    }
}
