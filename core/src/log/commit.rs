//! The commit loop: refresh, apply, create the next version, and resolve every answer.
//!
//! ```text
//! tip = cached or discovered
//! loop (at most COMMIT_ATTEMPTS_MAX times):
//!     next  = manifest::apply(tip, edit)          pure; checks every invariant
//!     bytes = segment::encode(records, next)      offsets base..next in the file
//!     create-if-absent key(next)                  the commit point
//!       created                   -> committed
//!       exists / error / timeout  -> read the object back:
//!           our commit_id         -> committed (our earlier attempt landed)
//!           another commit_id     -> lost the race: tip = that version, walk on, retry
//!           nothing there         -> retry the same bytes (bounded), then OutcomeUnknown
//! ```

use bytes::Bytes;
use object_store::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Part, Tip, tip};
use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{Applied, ApplyError, CommitContext, Edit, apply, check_successor};
use crate::record::Record;
use crate::segment::{self, Footer};
use crate::storage::{Created, keys};
use crate::topic::Compression;

/// Races a commit may lose in a row before it gives up with `Conflict`.
pub const COMMIT_ATTEMPTS_MAX: u32 = 64;
/// Creates of the same bytes tried when the store's answer is lost, before `OutcomeUnknown`.
pub const AMBIGUOUS_ATTEMPTS_MAX: u32 = 4;
/// Ceiling of the random pause after a lost race, so racing writers spread out.
const CONFLICT_BACKOFF_MAX_MS: u64 = 32;

/// What to commit: an edit, and for appends the records with their final timestamps.
#[derive(Clone, Copy, Debug)]
pub struct CommitRequest<'a> {
    pub edit: &'a Edit,
    pub records: &'a [Record],
    pub timestamps_ms: &'a [i64],
    /// The topic's codec for the segment's pages.
    pub compression: Compression,
}

/// How a commit ended.
#[derive(Clone, Debug)]
pub enum Committed {
    /// A new version was created; this is it.
    New(Tip),
    /// An idempotent producer's batch was already committed at these offsets.
    Duplicate { base_offset: u64, record_count: u32 },
}

/// Commits `req` as the next version of the partition, retrying lost races.
pub async fn commit(
    part: Part<'_>,
    writer: &str,
    clock: &dyn Clock,
    req: CommitRequest<'_>,
) -> Result<Committed> {
    let mut tip = match part.caches.tip(part.topic, part.partition) {
        Some(cached) => cached,
        None => tip::latest(part).await?,
    };
    for attempt in 1..=COMMIT_ATTEMPTS_MAX {
        let commit_id = part.entropy.id();
        let ctx = CommitContext {
            writer,
            commit_id: &commit_id,
            now_ms: clock.now_ms(),
            prev_size: tip.size,
        };
        let next =
            match apply(&tip.manifest, req.edit, &ctx).map_err(|e| apply_error(part, &tip, e))? {
                Applied::Duplicate {
                    base_offset,
                    record_count,
                } => {
                    return Ok(Committed::Duplicate {
                        base_offset,
                        record_count,
                    });
                }
                Applied::Next(next) => next,
            };
        let bytes = segment::encode_with(req.records, req.timestamps_ms, &next, req.compression)
            .map_err(Error::Encode)?;
        let key = keys::segment(part.topic, part.partition, next.base_offset, next.version);
        match create_resolved(part, &key, bytes, &commit_id).await? {
            Resolved::Mine(size) => {
                let new = Tip {
                    manifest: Arc::new(next),
                    size,
                };
                part.caches.offer_tip(part.topic, part.partition, &new);
                tip::maybe_write_hint(part, &new).await;
                return Ok(Committed::New(new));
            }
            Resolved::Rival(footer) => {
                check_successor(&tip.manifest, &footer.manifest)
                    .map_err(|e| Error::corrupt(&key, e))?;
                tip = tip::walk_forward(part, Tip::from_footer(&footer)).await?;
                part.caches.offer_tip(part.topic, part.partition, &tip);
                pause_after_conflict(part, attempt).await;
            }
        }
    }
    Err(Error::Conflict {
        topic: part.topic.to_string(),
        partition: part.partition,
        attempts: COMMIT_ATTEMPTS_MAX,
    })
}

enum Resolved {
    /// Our object is at the key; its size.
    Mine(u64),
    /// Another writer's commit is at the key.
    Rival(Arc<Footer>),
}

/// Creates `key` and settles what is there afterwards, reading back whenever the answer was
/// not a plain success: a lost race and a lost answer look the same until the object is read.
async fn create_resolved(
    part: Part<'_>,
    key: &Path,
    bytes: Bytes,
    commit_id: &str,
) -> Result<Resolved> {
    let size = bytes.len() as u64;
    let mut last_error = Error::corrupt(key, "the object was reported present, then missing");
    for attempt in 1..=AMBIGUOUS_ATTEMPTS_MAX {
        match part.hedge.create(part.store, key, bytes.clone()).await {
            Ok(Created::Yes) => return Ok(Resolved::Mine(size)),
            Ok(Created::AlreadyExists) => {}
            Err(e) => last_error = Error::store("put", key, e),
        }
        match part.footer(key).await {
            Ok(Some(f)) if f.manifest.commit_id == commit_id => return Ok(Resolved::Mine(f.size)),
            Ok(Some(f)) => return Ok(Resolved::Rival(f)),
            // Nothing there: our create did not land (or has not yet). Creating the same bytes
            // again is safe: if the first one lands meanwhile, this one finds it as ours.
            Ok(None) => {}
            Err(e) if e.kind() == ErrorKind::Corrupt => return Err(e),
            Err(e) => last_error = e,
        }
        tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
    }
    Err(Error::OutcomeUnknown {
        key: key.to_string(),
        attempts: AMBIGUOUS_ATTEMPTS_MAX,
        last: Box::new(last_error),
    })
}

async fn pause_after_conflict(part: Part<'_>, attempt: u32) {
    let cap = (1u64 << attempt.min(6)).min(CONFLICT_BACKOFF_MAX_MS);
    let ms = part.entropy.up_to(cap);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn apply_error(part: Part<'_>, tip: &Tip, e: ApplyError) -> Error {
    let topic = part.topic.to_string();
    let partition = part.partition;
    match e {
        ApplyError::Fenced { epoch, current } => Error::Fenced {
            topic,
            partition,
            epoch,
            current,
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
        ApplyError::Invariant(reason) => {
            let key = tip
                .key(part.topic)
                .unwrap_or_else(|| keys::partition_dir(part.topic, partition));
            Error::corrupt(key, reason)
        }
    }
}
