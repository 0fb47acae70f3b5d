//! The commit loop: build on the tip, create the next version, settle every answer.
//!
//! ```text
//! head = cached tip, or discovered (refuse if the chain is blocked)
//! loop (at most COMMIT_ATTEMPTS_MAX times, never past the deadline):
//!     id   = 128 random bits from the OS, fresh for this attempt
//!     step = build(tip, id)                       the caller's pure apply + encode
//!       Done(x)                   -> return x      (say, a retried batch already in the log)
//!       Create(next, bytes)       -> create-if-absent next_key(tip):
//!         created                 -> committed
//!         exists / error / timeout-> read the key back:
//!             our id and digest   -> committed (an earlier try of this attempt landed)
//!             another version     -> lost the race: check it follows tip, walk on, retry
//!             nothing there       -> resend the same bytes (bounded), then OutcomeUnknown
//!         refused for certain     -> fail at once: nothing was written
//! ```
//!
//! A caller free to place its batch elsewhere (an unkeyed batch) may ask the loop to stop after
//! a few lost races ([`commit_or_give_up`]) with [`Error::Busy`]. That error is a promise that
//! nothing of the batch is anywhere in the store, so it is only returned while every attempt
//! so far was a *clean* loss: one create, answered "already exists" (no error, no hedge left in
//! flight), and another writer's version read back at the key. Once any attempt was unclear
//! (an error or timeout, "nothing there" read back, a withdrawn stray) the commit settles on
//! its chain exactly as without the option.
//!
//! An attempt is recognised by its random id *and* the digest of its content. Ids come from the
//! operating system at every attempt (never from a seeded generator, which a forked process or a
//! restored snapshot would repeat); the digest makes even a repeated id harmless, because another
//! writer's version never carries this attempt's content.

use bytes::Bytes;
use object_store::path::Path;
use std::time::Duration;
use tokio::time::Instant;

use super::{Chain, ReadFor, Version, tip};
use crate::entropy::{Entropy, attempt_id};
use crate::error::{Error, ErrorKind, Result};
use crate::log::hedge::Hedge;
use crate::storage::{Created, certainly_not_written};

/// Races a commit may lose in a row before it gives up with `Conflict`.
pub const COMMIT_ATTEMPTS_MAX: u32 = 64;
/// Creates of the same bytes tried when the store's answer is lost, before `OutcomeUnknown`.
pub const AMBIGUOUS_ATTEMPTS_MAX: u32 = 4;
/// Ceiling of the random pause after a lost race, so racing writers spread out.
const CONFLICT_BACKOFF_MAX_MS: u64 = 32;

/// What one attempt of the caller's edit produced.
pub enum Step<S, D> {
    /// Create this state, encoded as these bytes, as the next version.
    Create(S, Bytes),
    /// Nothing to write: the edit is already in the chain (or needs no write).
    Done(D),
}

/// How a commit ended.
#[derive(Debug)]
pub enum Outcome<S, D> {
    New(Version<S>),
    Done(D),
}

/// Everything a commit needs besides the chain and the edit.
#[derive(Clone, Copy)]
pub struct CommitCtx<'a> {
    /// Backoff jitter only; attempt ids never come from here.
    pub entropy: &'a Entropy,
    /// Repeats slow creates (segments only; small JSON versions do not need it).
    pub hedge: Option<&'a Hedge>,
    /// No store call starts after this instant, and none outlives it.
    pub deadline: Option<Instant>,
    /// Digest of the edit's content, stored in every version it creates.
    pub digest: &'a str,
}

/// Commits the caller's edit as the next version of `chain`, retrying lost races.
///
/// `build(tip, attempt_id)` must be pure: it returns the successor of `tip` (carrying
/// `attempt_id` and `ctx.digest`) with its encoded bytes, or `Done` when there is nothing to
/// write. It is called again on the new tip after every lost race.
pub async fn commit<C, D>(
    chain: &C,
    ctx: CommitCtx<'_>,
    build: impl FnMut(&Version<C::State>, &str) -> Result<Step<C::State, D>>,
) -> Result<Outcome<C::State, D>>
where
    C: Chain,
{
    commit_or_give_up(chain, ctx, None, build).await
}

/// [`commit`], except that with `give_up_after: Some(n)` it stops with [`Error::Busy`] once it
/// has lost `n` races in a row, each a clean loss (see the module's notes), so that nothing of
/// the edit can be in the store. With any unclear attempt among them it goes on as [`commit`].
pub async fn commit_or_give_up<C, D>(
    chain: &C,
    ctx: CommitCtx<'_>,
    give_up_after: Option<u32>,
    mut build: impl FnMut(&Version<C::State>, &str) -> Result<Step<C::State, D>>,
) -> Result<Outcome<C::State, D>>
where
    C: Chain,
{
    let mut attempts = Attempts::new(chain, ctx);
    // A cached tip may be stale: an edit it refuses is checked again on the latest version
    // before the refusal is reported (a lease since released, a member since gone).
    let (mut tip, mut confirmed) = match chain.cached() {
        Some(cached) => (cached, false),
        None => (
            writable(chain, attempts.bounded(tip::latest(chain)).await?)?,
            true,
        ),
    };
    for attempt in 1..=COMMIT_ATTEMPTS_MAX {
        let id = attempt_id();
        let step = match build(&tip, &id) {
            Err(_) if !confirmed => {
                tip = writable(chain, attempts.bounded(tip::latest(chain)).await?)?;
                build(&tip, &id)?
            }
            step => step?,
        };
        let (next, bytes) = match step {
            Step::Done(d) => return Ok(Outcome::Done(d)),
            Step::Create(next, bytes) => (next, bytes),
        };
        let key = chain.next_key(&tip.state);
        match attempts.create_resolved(&key, bytes, &id).await? {
            Resolved::Mine(size) => {
                let new = Version::new(next, size);
                let stray = match attempts.bounded(resurrected(chain, &tip, &new)).await {
                    Ok(stray) => stray,
                    Err(e) => {
                        // Created, but whether on the chain or beside it (built on a deleted
                        // version) is not known. Never build on this cache again: a retry
                        // starts from the store, where an idempotent batch finds itself if it
                        // is on the chain and is appended at the end if it is not.
                        chain.forget();
                        return Err(Error::OutcomeUnknown {
                            key: key.to_string(),
                            attempts: attempt,
                            last: Box::new(e),
                        });
                    }
                };
                if stray {
                    // Built on a version maintenance had deleted: not in the chain. Withdraw
                    // it (nobody can have read it through the chain) and start over. The
                    // withdrawal may fail, so the commit may no longer claim "no effect".
                    attempts.ambiguous = true;
                    let _ = chain.store().delete(&key).await;
                    chain.forget();
                    tip = writable(chain, attempts.bounded(tip::latest(chain)).await?)?;
                    confirmed = true;
                    continue;
                }
                chain.offer(&new);
                return Ok(Outcome::New(new));
            }
            Resolved::Rival(rival) => {
                chain
                    .check_successor(&tip.state, &rival.state)
                    .map_err(|e| Error::corrupt(&key, e))?;
                if attempts.gives_up(give_up_after) {
                    return Err(Error::Busy {
                        chain: chain.describe(),
                        lost: attempts.clean_losses,
                    });
                }
                // A rival built on a cached tip that maintenance deleted may be another stale
                // writer's stray, left behind when it could not withdraw it: never build on
                // it. Start over from the store.
                if !confirmed && attempts.bounded(resurrected(chain, &tip, &rival)).await? {
                    chain.forget();
                    tip = writable(chain, attempts.bounded(tip::latest(chain)).await?)?;
                    confirmed = true;
                    continue;
                }
                let head = attempts.bounded(tip::walk_forward(chain, rival)).await?;
                tip = writable(chain, head)?;
                confirmed = true;
                chain.offer(&tip);
                attempts.pause_after_conflict(attempt).await;
            }
        }
    }
    Err(Error::Conflict {
        chain: chain.describe(),
        attempts: COMMIT_ATTEMPTS_MAX,
    })
}

/// True when `new`, just created on `tip`, is not part of the chain: `tip` had been
/// deleted by maintenance before the create, so the key was free again (a writer paused across
/// a retention or compaction pass). Exact, because maintenance deletes versions in chain order
/// and never the newest: if `tip` is still there, the key was never taken before; if it is gone
/// while `new` is really its successor, the chain went on after `new`, so `new`'s own successor
/// exists and names it. One GET on the healthy path, two when `tip` is gone.
async fn resurrected<C: Chain>(
    chain: &C,
    tip: &Version<C::State>,
    new: &Version<C::State>,
) -> Result<bool> {
    use super::Versioned;
    if tip.is_genesis() || chain.still_there(tip).await? {
        return Ok(false);
    }
    let after = chain.next_key(&new.state);
    let built_on_new = chain
        .read_fresh(&after)
        .await?
        .is_some_and(|s| s.state.prev_commit_id() == new.state.commit_id());
    Ok(!built_on_new)
}

/// The head's tip, or the error that says why the chain cannot be written.
fn writable<C: Chain>(chain: &C, head: super::Head<C::State>) -> Result<Version<C::State>> {
    match head.blocked {
        None => Ok(head.tip),
        Some(b) => Err(Error::Blocked {
            chain: chain.describe(),
            key: b.key,
            reason: b.reason,
        }),
    }
}

enum Resolved<S> {
    /// Our object is at the key; its size.
    Mine(u64),
    /// Another writer's version is at the key.
    Rival(Version<S>),
}

/// The per-commit bookkeeping: the deadline, whether any create may have landed (which
/// decides between "no effect" and "outcome unknown" when time runs out), and whether every
/// attempt so far was a clean loss (which allows [`Error::Busy`]).
struct Attempts<'a, C> {
    chain: &'a C,
    ctx: CommitCtx<'a>,
    maybe_landed: bool,
    /// Creates sent so far, for the error that reports an unknown outcome.
    creates_sent: u32,
    /// Attempts that ended in a clean loss: one create, answered "already exists", and
    /// another writer's version read back at the key.
    clean_losses: u32,
    /// Some attempt's outcome was unclear for a while: the commit never claims "no effect"
    /// for a lost race again.
    ambiguous: bool,
}

impl<'a, C: Chain> Attempts<'a, C> {
    fn new(chain: &'a C, ctx: CommitCtx<'a>) -> Self {
        Attempts {
            chain,
            ctx,
            maybe_landed: false,
            creates_sent: 0,
            clean_losses: 0,
            ambiguous: false,
        }
    }

    /// True when the caller's bound on lost races is reached and every attempt so far was a
    /// clean loss, so nothing of the edit is in the store.
    fn gives_up(&self, give_up_after: Option<u32>) -> bool {
        give_up_after.is_some_and(|n| !self.ambiguous && self.clean_losses >= n)
    }

    /// Runs `call` within the deadline.
    async fn bounded<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        let Some(deadline) = self.ctx.deadline else {
            return call.await;
        };
        match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(self.out_of_time()),
        }
    }

    /// The error for a commit that ran out of time: unknown if a create may have landed.
    fn out_of_time(&self) -> Error {
        let timeout = Error::Timeout {
            what: format!("commit to {}", self.chain.describe()),
            maybe_landed: self.maybe_landed,
        };
        if self.maybe_landed {
            Error::OutcomeUnknown {
                key: self.chain.describe(),
                attempts: self.creates_sent,
                last: Box::new(timeout),
            }
        } else {
            timeout
        }
    }

    /// Creates `key` and settles what is there afterwards, reading back whenever the answer
    /// was not a plain success: a lost race and a lost answer look the same until read.
    async fn create_resolved(
        &mut self,
        key: &Path,
        bytes: Bytes,
        id: &str,
    ) -> Result<Resolved<C::State>> {
        let size = bytes.len() as u64;
        let mut last_error = Error::corrupt(key, "the object was reported present, then missing");
        // Whether this attempt is still a clean loss candidate: one create, answered for sure.
        let mut clean = true;
        for attempt in 1..=AMBIGUOUS_ATTEMPTS_MAX {
            self.maybe_landed = true;
            self.creates_sent += 1;
            let (answer, hedged) = self.bounded_create(key, bytes.clone()).await;
            clean &= !hedged;
            match answer {
                Ok(Created::Yes) => return Ok(Resolved::Mine(size)),
                Ok(Created::AlreadyExists) => {}
                Err(e) if attempt == 1 && e.kind() == ErrorKind::Refused => {
                    // Refused before anything was written (permissions, no such bucket): no
                    // retry can help and nothing can have landed.
                    self.maybe_landed = false;
                    return Err(e);
                }
                Err(e) if is_deadline(&e) => return Err(e),
                Err(e) => {
                    clean = false;
                    last_error = e;
                }
            }
            match self.bounded(self.chain.read(key, ReadFor::State)).await {
                Ok(Some(found)) if self.is_ours(&found, id) => {
                    return Ok(Resolved::Mine(found.size));
                }
                Ok(Some(found)) => {
                    self.settle_loss(clean);
                    return Ok(Resolved::Rival(found));
                }
                // Nothing there: our create did not land (or has not yet). Creating the same
                // bytes again is safe: if the first one lands meanwhile, this one finds it.
                Ok(None) => clean = false,
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    return Err(Error::Blocked {
                        chain: self.chain.describe(),
                        key: key.to_string(),
                        reason: e.to_string(),
                    });
                }
                Err(e) if is_deadline(&e) => return Err(e),
                Err(e) => {
                    clean = false;
                    last_error = e;
                }
            }
            self.sleep(Duration::from_millis(10 << attempt)).await?;
        }
        Err(Error::OutcomeUnknown {
            key: key.to_string(),
            attempts: AMBIGUOUS_ATTEMPTS_MAX,
            last: Box::new(last_error),
        })
    }

    /// Counts a lost race as clean, or marks the commit as having had an unclear attempt.
    fn settle_loss(&mut self, clean: bool) {
        if clean {
            self.clean_losses += 1;
        } else {
            self.ambiguous = true;
        }
    }

    /// One create within the deadline, and whether it was hedged (a hedged create may leave a
    /// request in flight). Running out of time counts as hedged: the request was dropped.
    async fn bounded_create(&self, key: &Path, bytes: Bytes) -> (Result<Created>, bool) {
        match self.bounded(self.create(key, bytes)).await {
            Ok((answer, hedged)) => (answer, hedged),
            Err(e) => (Err(e), true),
        }
    }

    async fn create(&self, key: &Path, bytes: Bytes) -> Result<(Result<Created>, bool)> {
        let store = self.chain.store();
        let (answer, hedged) = match self.ctx.hedge {
            Some(hedge) => hedge.create_noting(store, key, bytes).await,
            None => (store.create(key, bytes).await, false),
        };
        Ok((
            answer.map_err(|e| {
                if certainly_not_written(&e) {
                    Error::refused("put", key, e)
                } else {
                    Error::store("put", key, e)
                }
            }),
            hedged,
        ))
    }

    fn is_ours(&self, found: &Version<C::State>, id: &str) -> bool {
        use super::Versioned;
        found.state.commit_id() == id && found.state.digest() == self.ctx.digest
    }

    async fn pause_after_conflict(&self, attempt: u32) {
        let cap = (1u64 << attempt.min(6)).min(CONFLICT_BACKOFF_MAX_MS);
        let ms = self.ctx.entropy.up_to(cap);
        // Running out of time here is noticed by the next bounded call.
        let _ = self.sleep(Duration::from_millis(ms)).await;
    }

    /// Sleeps, but never past the deadline.
    async fn sleep(&self, d: Duration) -> Result<()> {
        let until = Instant::now() + d;
        match self.ctx.deadline {
            Some(deadline) if deadline < until => {
                tokio::time::sleep_until(deadline).await;
                Err(self.out_of_time())
            }
            _ => {
                tokio::time::sleep_until(until).await;
                Ok(())
            }
        }
    }
}

/// True for the errors [`Attempts::out_of_time`] produces: the commit must end now.
fn is_deadline(e: &Error) -> bool {
    match e {
        Error::Timeout { .. } => true,
        Error::OutcomeUnknown { last, .. } => matches!(**last, Error::Timeout { .. }),
        _ => false,
    }
}
