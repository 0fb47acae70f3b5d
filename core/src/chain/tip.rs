//! Finding a chain's newest version, and what blocks it.
//!
//! Warm (a cached tip): one GET of the key the next version would have; a 404 confirms the
//! tip. Each hit moves one version forward; past [`WALK_STEPS_MAX`] hits one LIST catches up.
//! Cold (nothing cached): GET the chain's hint, LIST the versions after it, read the newest.
//! Hints are rewritten every [`HINT_EVERY_VERSIONS`] commits (off the commit's critical path),
//! so a cold start costs three requests on stores that list in key order.
//!
//! Damage is contained. A newest object that does not decode is stepped over: the tip is the
//! newest version that does decode, and if the damaged object sits where that version's
//! successor would be, the chain is *blocked*: readers keep reading everything below it,
//! writers refuse with a line naming the object. A hint naming a version that no longer exists
//! means the chain lost its head (objects deleted by hand or by a bucket lifecycle rule): that
//! blocks writes too, because continuing would hand out offsets that readers already saw.

use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::{Blocked, Chain, Head, ReadFor, Version};
use crate::error::{Error, ErrorKind, Result};

/// Probes before switching to a listing.
const WALK_STEPS_MAX: usize = 8;
/// Listings a walk may jump by before it settles for what it has.
const WALK_ROUNDS_MAX: usize = 4;
/// A committer rewrites the chain's hint when its new version is a multiple of this.
pub const HINT_EVERY_VERSIONS: u64 = 64;
/// Listings retried when the object they named vanished before it was read (retention).
const DISCOVER_ATTEMPTS_MAX: usize = 3;
/// Damaged objects stepped over, newest first, before discovery gives up.
const STEP_BACK_MAX: usize = 16;

/// The advisory pointer to a recent version, overwritten now and then.
#[derive(Debug, Serialize, Deserialize)]
struct Hint {
    version: u64,
    key: String,
}

/// The newest version this client knows, without asking the store if it knows one.
pub async fn known<C: Chain>(chain: &C) -> Result<Head<C::State>> {
    match chain.cached() {
        Some(cached) => Ok(Head::clear(cached)),
        None => latest(chain).await,
    }
}

/// The latest version of the chain, confirmed with the store.
pub async fn latest<C: Chain>(chain: &C) -> Result<Head<C::State>> {
    let head = match chain.cached() {
        Some(cached) => walk_forward(chain, cached).await?,
        None => discover(chain).await?,
    };
    // Writers build on a cached tip without asking the store, so a blocked head must not be
    // cached: where the blocker is a gap rather than an object, a create would succeed there.
    if head.blocked.is_none() {
        chain.offer(&head.tip);
    }
    Ok(head)
}

/// Follows the chain from `tip` to the newest version.
pub async fn walk_forward<C: Chain>(
    chain: &C,
    mut tip: Version<C::State>,
) -> Result<Head<C::State>> {
    for _ in 0..WALK_ROUNDS_MAX {
        for _ in 0..WALK_STEPS_MAX {
            match successor(chain, &tip, ReadFor::State).await {
                Ok(Some(next)) => tip = next,
                Ok(None) => return Ok(Head::clear(tip)),
                Err(e) => return blocked_after(chain, tip, e),
            }
        }
        // Far behind: one listing jumps to the newest version, then probing confirms it.
        let own = chain.key_of(&tip.state);
        match newest_listed(chain, own.as_ref()).await? {
            Newest::Found(newer, None) if newer.number() > tip.number() => {
                return Ok(Head::clear(newer));
            }
            // Damage listed after it: probe on from there to find where the chain stops.
            Newest::Found(newer, Some(_)) if newer.number() > tip.number() => tip = newer,
            Newest::OnlyDamaged(_) => {}
            _ => return Ok(Head::clear(tip)),
        }
    }
    Ok(Head::clear(tip))
}

/// The version right after `tip`, if it exists, checked to be a valid successor.
pub async fn successor<C: Chain>(
    chain: &C,
    tip: &Version<C::State>,
    why: ReadFor,
) -> Result<Option<Version<C::State>>> {
    let key = chain.next_key(&tip.state);
    let Some(next) = chain.read(&key, why).await? else {
        return Ok(None);
    };
    chain
        .check_successor(&tip.state, &next.state)
        .map_err(|e| Error::corrupt(&key, e))?;
    Ok(Some(next))
}

/// `tip` with the chain blocked by `e`, if `e` is damage at its successor; other errors pass.
fn blocked_after<C: Chain>(chain: &C, tip: Version<C::State>, e: Error) -> Result<Head<C::State>> {
    if e.kind() != ErrorKind::Corrupt {
        return Err(e);
    }
    let key = chain.next_key(&tip.state).to_string();
    let reason = match e {
        Error::Corrupt { reason, .. } => reason,
        other => other.to_string(),
    };
    Ok(Head {
        tip,
        blocked: Some(Blocked { key, reason }),
    })
}

/// The latest version without any cached knowledge.
async fn discover<C: Chain>(chain: &C) -> Result<Head<C::State>> {
    if chain.probe_from_genesis() {
        return walk_forward(chain, chain.genesis()).await;
    }
    let hint = read_hint(chain).await?;
    for _ in 0..DISCOVER_ATTEMPTS_MAX {
        if let Some(hinted) = &hint {
            // Keys sort in chain order, so only those after the hint can be newer.
            let damaged = match newest_listed(chain, Some(&hinted.0)).await? {
                Newest::Found(v, damaged) => return settle(chain, v, damaged).await,
                Newest::Vanished => continue,
                Newest::Nothing => None,
                Newest::OnlyDamaged(newest) => Some(newest),
            };
            if let Ok(Some(v)) = chain.read(&hinted.0, ReadFor::State).await {
                return settle(chain, v, damaged).await;
            }
        }
        let head = match newest_listed(chain, None).await? {
            Newest::Found(v, damaged) => settle(chain, v, damaged).await?,
            Newest::Nothing => walk_forward(chain, chain.genesis()).await?,
            Newest::OnlyDamaged(newest) => settle(chain, chain.genesis(), Some(newest)).await?,
            // The newest version was listed but gone when read: retention raced us. Again.
            Newest::Vanished => continue,
        };
        return Ok(check_hint(chain, head, hint.as_ref()));
    }
    Err(Error::corrupt(
        chain.dir(),
        "versions keep vanishing between listing and reading",
    ))
}

/// A head older than the version the hint names has lost versions that were committed: the
/// chain is blocked at the first of them (the key its successor would take).
fn check_hint<C: Chain>(
    chain: &C,
    mut head: Head<C::State>,
    hint: Option<&(Path, u64)>,
) -> Head<C::State> {
    if let Some((key, version)) = hint
        && *version > head.tip.number()
        && head.blocked.is_none()
    {
        let missing = super::versions_text(head.tip.number() + 1, *version);
        head.blocked = Some(Blocked {
            key: chain.next_key(&head.tip.state).to_string(),
            reason: format!(
                "missing from the store: {missing} of {}, committed (the chain's hint names \
                 {key}) and deleted by hand or by a bucket lifecycle rule; writing on would \
                 hand out their offsets again",
                chain.describe()
            ),
        });
    }
    head
}

enum Newest<S> {
    Nothing,
    Vanished,
    /// The newest version that decodes, and the highest version number named by damaged
    /// objects listed after it, if any were stepped over.
    Found(Version<S>, Option<u64>),
    /// Only damaged objects were listed; the highest version number they name.
    OnlyDamaged(u64),
}

/// The head at `v`, the newest listed version. Only when damaged objects were listed after it
/// can its successor be one of them: then probe, to learn whether the chain is blocked. A
/// damaged object named for a version past the head's successor is evidence too: that version
/// existed, so the ones between were committed and are gone.
async fn settle<C: Chain>(
    chain: &C,
    v: Version<C::State>,
    damaged: Option<u64>,
) -> Result<Head<C::State>> {
    let Some(newest) = damaged else {
        return Ok(Head::clear(v));
    };
    let mut head = walk_forward(chain, v).await?;
    let first = head.tip.number() + 1;
    if head.blocked.is_none() && newest > first {
        head.blocked = Some(Blocked {
            key: chain.next_key(&head.tip.state).to_string(),
            reason: format!(
                "missing from the store: {} of {}, though an object named for version \
                 {newest} is there (it does not read): committed versions were deleted or \
                 damaged, and writing on would hand out their offsets again",
                super::versions_text(first, newest - 1),
                chain.describe()
            ),
        });
    }
    Ok(head)
}

/// The newest decodable version listed after `after` (all versions when `None`). Damaged
/// objects are stepped over, newest first; when every listed object is damaged, the chain is
/// walked from its start (which finds the damage at version 1 if it is there).
async fn newest_listed<C: Chain>(chain: &C, after: Option<&Path>) -> Result<Newest<C::State>> {
    let listed = list_versions(chain, after).await?;
    let mut damaged: Option<(Error, u64)> = None;
    for (i, (key, version)) in listed.iter().rev().enumerate() {
        if i >= STEP_BACK_MAX {
            break;
        }
        match chain.read(key, ReadFor::State).await {
            Ok(Some(v)) => return Ok(Newest::Found(v, damaged.map(|(_, n)| n))),
            Ok(None) if i == 0 => return Ok(Newest::Vanished),
            Ok(None) => {}
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                let newest = damaged
                    .as_ref()
                    .map_or(*version, |(_, n)| (*n).max(*version));
                let first = damaged.map_or(e, |(e, _)| e);
                damaged = Some((first, newest));
            }
            Err(e) => return Err(e),
        }
    }
    match damaged {
        Some((e, _)) if listed.len() > STEP_BACK_MAX => Err(e),
        // Every listed object is damaged: build on what precedes them, if anything.
        Some((_, newest)) => Ok(Newest::OnlyDamaged(newest)),
        None => Ok(Newest::Nothing),
    }
}

/// The versions in the chain's folder after `after`, in chain order, with their keys.
pub async fn list_versions<C: Chain>(chain: &C, after: Option<&Path>) -> Result<Vec<(Path, u64)>> {
    let metas = chain.store().list_after(&chain.dir(), after).await?;
    Ok(metas
        .into_iter()
        .filter_map(|m| chain.parse_key(&m.location).map(|v| (m.location, v)))
        .collect())
}

pub(crate) async fn read_hint<C: Chain>(chain: &C) -> Result<Option<(Path, u64)>> {
    let Some(bytes) = chain.store().get(&chain.hint_key()).await? else {
        return Ok(None);
    };
    // A hint is advisory: an unreadable one costs a full listing, not an error.
    Ok(parse_hint(chain, &bytes))
}

/// The key and version a hint names. A hint must name a key of this chain, so a damaged one
/// cannot point discovery elsewhere.
pub(super) fn parse_hint<C: Chain>(chain: &C, bytes: &[u8]) -> Option<(Path, u64)> {
    serde_json::from_slice::<Hint>(bytes)
        .ok()
        .map(|h| (Path::from(h.key), h.version))
        .filter(|(key, version)| chain.parse_key(key) == Some(*version))
}

/// True when a committer writes the chain's hint as soon as `version` lands: the first version
/// (so every chain with data has a hint, and a chain whose every object disappears is noticed)
/// and every [`HINT_EVERY_VERSIONS`]th.
pub fn hint_due(version: u64) -> bool {
    version == 1 || (version > 0 && version.is_multiple_of(HINT_EVERY_VERSIONS))
}

/// Rewrites the chain's hint if `v` is due for one ([`hint_due`]), in the background.
pub fn maybe_write_hint<C: Chain>(chain: &C, v: &Version<C::State>) {
    if hint_due(v.number()) {
        write_hint(chain, v);
    }
}

/// Rewrites the chain's hint to name `v`, in the background: a hint never delays an
/// acknowledgement, and a failed one only makes the next cold start list a little more (and
/// leaves a lost head noticed only up to the previous hint).
pub fn write_hint<C: Chain>(chain: &C, v: &Version<C::State>) {
    let Some(task) = HintWrite::new(chain, v) else {
        return;
    };
    tokio::spawn(async move {
        if let Err(e) = task.run().await {
            tracing::debug!(key = %task.hint_key, error = %e, "hint not written");
        }
    });
}

/// Makes the chain's hint name `v` now, unless it already names `v` or a newer version.
/// Returns whether it wrote.
pub async fn write_hint_now<C: Chain>(chain: &C, v: &Version<C::State>) -> Result<bool> {
    match HintWrite::new(chain, v) {
        Some(task) => task.run().await,
        None => Ok(false),
    }
}

/// One hint write, detached from the chain so it can run in the background.
struct HintWrite {
    store: crate::storage::Store,
    hint_key: Path,
    hint: Hint,
    dir: Path,
}

impl HintWrite {
    fn new<C: Chain>(chain: &C, v: &Version<C::State>) -> Option<Self> {
        let key = chain.key_of(&v.state)?;
        Some(HintWrite {
            store: chain.store().clone(),
            hint_key: chain.hint_key(),
            hint: Hint {
                version: v.number(),
                key: key.to_string(),
            },
            dir: chain.dir(),
        })
    }

    /// Hints only move forward: a writer with an older view (an idle producer that closes
    /// after others wrote on) must not erase what the hint knows, because the hint is the
    /// evidence that notices a lost head. One GET before the PUT.
    async fn run(&self) -> Result<bool> {
        if let Some(bytes) = self.store.get(&self.hint_key).await? {
            let current = serde_json::from_slice::<Hint>(&bytes)
                .ok()
                .filter(|h| Path::from(h.key.as_str()).prefix_matches(&self.dir));
            if current.is_some_and(|h| h.version >= self.hint.version) {
                return Ok(false);
            }
        }
        let bytes = serde_json::to_vec(&self.hint)
            .map_err(|e| Error::corrupt(&self.hint_key, format!("hint does not encode: {e}")))?;
        self.store.overwrite(&self.hint_key, bytes.into()).await?;
        Ok(true)
    }
}
