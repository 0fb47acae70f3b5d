//! Retries that find their own earlier attempt, however many others wrote meanwhile.
//!
//! The manifest's producer window remembers the most recently active producers only; under
//! serverless fan-in hundreds of other producers can push a producer out of it between a
//! batch's first attempt and its retry, and the retry would then be appended a second time.
//! A retry from the process that made the first attempt knows more: the version that attempt
//! built on. Every attempt of the batch created (at most) a version after that one, and every
//! version records the producer batch it holds (`origin`) and its content digest. So the retry
//! reads the versions committed since and finds its batch if it is there. Exact, with no
//! window; the cost falls on the retry path only: one LIST page per 1,000 versions and one
//! footer GET per version since the first attempt (most already in the client's cache).
//!
//! Why no later landing is missed: an earlier attempt that is still in flight can only land at
//! the key right after the tip it built on. Any such key at or below the tip read here is
//! already taken (by the attempt itself, which this scan sees, or by a rival, so the attempt
//! can no longer land); the one key above it is the key the retry itself creates next, and if
//! the late attempt wins it, the retry reads it back, rebuilds on it, and `apply` finds the
//! producer in the window and returns the original offsets.

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;

use super::{Part, Tip};
use crate::chain::{Chain, ReadFor, tip};
use crate::error::{Error, Result};
use crate::manifest::ProducerBatch;
use crate::storage::keys;

/// Most versions a retry reads back; past this it reports the outcome as unknown.
pub const RETRY_SCAN_VERSIONS_MAX: u64 = 20_000;
/// Footers read at once while scanning.
const SCAN_CONCURRENCY: usize = 16;

/// The version a batch's first attempt built on, recorded before that attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryFrom {
    pub version: u64,
    pub next_offset: u64,
}

impl RetryFrom {
    pub fn of(tip: &Tip) -> Self {
        RetryFrom {
            version: tip.number(),
            next_offset: tip.state.next_offset,
        }
    }
}

/// The offsets of `batch` (content `digest`) if a version committed after `from` holds it.
/// `None` also when the newest manifest's producer window still knows the producer: then
/// `manifest::apply` recognises a duplicate exactly, and no scan is needed.
pub async fn find_earlier(
    part: Part<'_>,
    batch: &ProducerBatch,
    digest: &str,
    from: RetryFrom,
) -> Result<Option<(u64, u32)>> {
    let newest = tip::latest(&part).await?.tip;
    if newest.number() <= from.version
        || newest
            .state
            .producers
            .iter()
            .any(|s| s.id == batch.producer_id)
    {
        return Ok(None);
    }
    let span = newest.number() - from.version;
    if span > RETRY_SCAN_VERSIONS_MAX {
        return Err(Error::OutcomeUnknown {
            key: part.describe(),
            attempts: 0,
            last: Box::new(Error::InvalidArgument(format!(
                "{span} versions were committed since the batch's first attempt, more than the \
                 {RETRY_SCAN_VERSIONS_MAX} a retry reads back to look for it"
            ))),
        });
    }
    let keys = versions_since(part, from, newest.number()).await?;
    let mut footers = futures::stream::iter(keys)
        .map(|key| async move { part.footer(&key).await })
        .buffered(SCAN_CONCURRENCY);
    while let Some(footer) = footers.try_next().await? {
        let Some(footer) = footer else { continue };
        let m = &footer.manifest;
        if m.origin.as_ref() == Some(batch) && m.digest == digest {
            return Ok(Some((m.base_offset, m.record_count)));
        }
    }
    Ok(None)
}

/// The keys of versions `from.version + 1 ..= newest`: from one listing when it shows all of
/// them, otherwise by following the chain one version at a time.
async fn versions_since(part: Part<'_>, from: RetryFrom, newest: u64) -> Result<Vec<Path>> {
    let after = keys::segment(part.topic, part.partition, from.next_offset, from.version);
    let listed = tip::list_versions(&part, Some(&after)).await?;
    let wanted: Vec<Path> = listed
        .into_iter()
        .filter(|(_, v)| *v > from.version && *v <= newest)
        .map(|(key, _)| key)
        .collect();
    if wanted.len() as u64 == newest - from.version {
        return Ok(wanted);
    }
    // A listing that misses versions (a store that lists lazily) must not hide the batch.
    let mut key = keys::segment(
        part.topic,
        part.partition,
        from.next_offset,
        from.version + 1,
    );
    let mut out = Vec::new();
    for _ in from.version..newest {
        let Some(v) = part.read(&key, ReadFor::State).await? else {
            break;
        };
        out.push(key);
        key = part.next_key(&v.state);
    }
    Ok(out)
}
