//! Finding a partition's latest version.
//!
//! Warm (a cached tip): one GET of the key the next version would have; a 404 confirms the tip.
//! Each hit moves one version forward; past [`WALK_STEPS_MAX`] hits one LIST catches up.
//! Cold (nothing cached): GET the partition's hint, LIST the segments after it, GET the last
//! one's footer. Hints are rewritten every [`HINT_EVERY_VERSIONS`] commits, so a cold start costs
//! three requests whatever the length of the log.

use object_store::path::Path;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::{Part, Tip};
use crate::error::{Error, Result};
use crate::manifest::check_successor;
use crate::segment::Footer;
use crate::storage::keys;

/// Probes before switching to a listing.
const WALK_STEPS_MAX: usize = 8;
/// A committer rewrites the partition's hint when its new version is a multiple of this.
pub const HINT_EVERY_VERSIONS: u64 = 64;
/// Listings retried when the object they named vanished before it was read (retention).
const DISCOVER_ATTEMPTS_MAX: usize = 3;

#[derive(Debug, Serialize, Deserialize)]
struct Hint {
    base_offset: u64,
    version: u64,
}

/// The newest version this client knows, without asking the store if it knows one.
pub async fn known(part: Part<'_>) -> Result<Tip> {
    match part.caches.tip(part.topic, part.partition) {
        Some(cached) => Ok(cached),
        None => latest(part).await,
    }
}

/// The latest version of the partition, from the cache if there is one.
pub async fn latest(part: Part<'_>) -> Result<Tip> {
    let tip = match part.caches.tip(part.topic, part.partition) {
        Some(cached) => walk_forward(part, cached).await?,
        None => discover(part).await?,
    };
    part.caches.offer_tip(part.topic, part.partition, &tip);
    Ok(tip)
}

/// Follows the chain from `tip` to the newest version.
pub async fn walk_forward(part: Part<'_>, mut tip: Tip) -> Result<Tip> {
    for _ in 0..WALK_STEPS_MAX {
        match successor(part, &tip).await? {
            Some(next) => tip = next,
            None => return Ok(tip),
        }
    }
    let own = tip.key(part.topic);
    match newest_after(part, own.as_ref()).await? {
        Newest::Found(newer) => Ok(newer),
        Newest::Nothing | Newest::Vanished => Ok(tip),
    }
}

/// The version right after `tip`, if it exists.
pub async fn successor(part: Part<'_>, tip: &Tip) -> Result<Option<Tip>> {
    successor_with(part, tip, crate::segment::FOOTER_PREFETCH_BYTES).await
}

/// [`successor`], fetching up to `prefetch` bytes of it (readers fetch its rows in the same
/// request).
pub async fn successor_with(part: Part<'_>, tip: &Tip, prefetch: u64) -> Result<Option<Tip>> {
    Ok(successor_segment(part, tip, prefetch)
        .await?
        .map(|(_, footer)| Tip::from_footer(&footer)))
}

/// The key and footer of the version right after `tip`, checked to be a valid successor.
pub async fn successor_segment(
    part: Part<'_>,
    tip: &Tip,
    prefetch: u64,
) -> Result<Option<(Path, Arc<Footer>)>> {
    let key = tip.next_key(part.topic);
    let Some(footer) = part.footer_with(&key, prefetch).await? else {
        return Ok(None);
    };
    check_successor(&tip.manifest, &footer.manifest).map_err(|e| Error::corrupt(&key, e))?;
    Ok(Some((key, footer)))
}

/// The latest version without any cached knowledge.
async fn discover(part: Part<'_>) -> Result<Tip> {
    let hint = read_hint(part).await?;
    for _ in 0..DISCOVER_ATTEMPTS_MAX {
        if let Some(hinted) = &hint {
            // Segments sort in chain order, so only those after the hint can be newer.
            match newest_after(part, Some(hinted)).await? {
                Newest::Found(tip) => return Ok(tip),
                Newest::Vanished => continue,
                Newest::Nothing => {}
            }
            if let Some(footer) = part.footer(hinted).await? {
                return Ok(Tip::from_footer(&footer));
            }
        }
        match newest_after(part, None).await? {
            Newest::Found(tip) => return Ok(tip),
            Newest::Nothing => return Ok(Tip::genesis(part.topic, part.partition)),
            // The newest segment was listed but gone when read: retention raced us. Again.
            Newest::Vanished => continue,
        }
    }
    Err(Error::corrupt(
        keys::partition_dir(part.topic, part.partition),
        "segments keep vanishing between listing and reading",
    ))
}

enum Newest {
    Nothing,
    Vanished,
    Found(Tip),
}

/// The newest segment listed after `after` (all segments when `None`), read and checked.
async fn newest_after(part: Part<'_>, after: Option<&Path>) -> Result<Newest> {
    let listed = list_segments(part, after).await?;
    let Some(newest) = listed.last() else {
        return Ok(Newest::Nothing);
    };
    Ok(match part.footer(&newest.key).await? {
        Some(f) => Newest::Found(Tip::from_footer(&f)),
        None => Newest::Vanished,
    })
}

/// A segment named by a listing.
#[derive(Clone, Debug)]
pub struct Listed {
    pub base_offset: u64,
    pub version: u64,
    pub key: Path,
}

/// Segments of the partition after `after`, in chain order.
pub async fn list_segments(part: Part<'_>, after: Option<&Path>) -> Result<Vec<Listed>> {
    list_segments_until(part, after, u64::MAX).await
}

/// Like [`list_segments`], but stops after the first segment whose base offset exceeds
/// `stop_after_base` (on stores that list in order; others are listed whole).
pub async fn list_segments_until(
    part: Part<'_>,
    after: Option<&Path>,
    stop_after_base: u64,
) -> Result<Vec<Listed>> {
    let dir = keys::partition_dir(part.topic, part.partition);
    let metas = part
        .store
        .list_after_while(&dir, after, |meta| {
            keys::parse_segment(&meta.location).is_none_or(|(base, _)| base <= stop_after_base)
        })
        .await?;
    Ok(metas
        .into_iter()
        .filter_map(|meta| {
            let (base_offset, version) = keys::parse_segment(&meta.location)?;
            Some(Listed {
                base_offset,
                version,
                key: meta.location,
            })
        })
        .collect())
}

async fn read_hint(part: Part<'_>) -> Result<Option<Path>> {
    let key = keys::hint(part.topic, part.partition);
    let Some(bytes) = part.store.get(&key).await? else {
        return Ok(None);
    };
    // A hint is advisory: an unreadable one costs a full listing, not an error.
    Ok(serde_json::from_slice::<Hint>(&bytes)
        .ok()
        .map(|h| keys::segment(part.topic, part.partition, h.base_offset, h.version)))
}

/// Rewrites the partition's hint if `tip` is due for one. Failures are ignored: a stale hint
/// only makes the next cold start list a little more.
pub async fn maybe_write_hint(part: Part<'_>, tip: &Tip) {
    let m = &tip.manifest;
    if !m.version.is_multiple_of(HINT_EVERY_VERSIONS) {
        return;
    }
    let hint = Hint {
        base_offset: m.base_offset,
        version: m.version,
    };
    let bytes = serde_json::to_vec(&hint).unwrap_or_default();
    let key = keys::hint(part.topic, part.partition);
    if let Err(e) = part.store.overwrite(&key, bytes.into()).await {
        tracing::debug!(%key, error = %e, "hint not written");
    }
}
