//! Checking a chain object by object, and moving aside what is certainly not the chain's:
//! the generic half of `pail doctor` (the HTTP API and a maintenance Lambda call it through
//! `Pail::doctor`).
//!
//! ```text
//! LIST the chain's folder; read every object (1 GET each, READ_CONCURRENCY at a time)
//! follow the chain from version 0: version v+1 must be at next_key(v) and follow v
//!     an object there that does not read -> damaged / foreign / misplaced (Identity)
//!     nothing there, but newer versions exist -> missing versions (a gap)
//! every other object in the folder -> a stray
//! the hint must name a version on the chain, and none newer than its head
//! the head's own totals (a partition's prior_segments, prior_bytes) must match the chain
//! ```
//!
//! Only one repair is automatic, because only one cannot reuse an offset: moving an object that
//! is certainly not one of pail's ([`Identity::Foreign`]) out of the chain's way, when nothing
//! says a committed version was at its key (no version after it, the hint names none). The
//! move copies first, checks the copy, checks the original did not change, then deletes it.
//! A readable segment is never moved or deleted, and neither is one that may be a damaged
//! committed segment: its offsets were handed out, so the way out is a backup (README, "When
//! something is damaged").

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;
use object_store::path::Path;
use serde::Serialize;
use std::collections::HashMap;

use super::{Chain, Identity, ReadFor, Version, Versioned, tip, versions_text};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::{Store, keys};

/// Objects read at once while examining a chain.
const READ_CONCURRENCY: usize = 16;

/// What kind of problem a [`Finding`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// Looks like one of the chain's own objects but does not read.
    Damaged,
    /// Bytes pail never wrote, where the chain's objects live.
    Foreign,
    /// A readable version where it does not belong.
    Misplaced,
    /// Versions the chain had are not in the store.
    Missing,
    /// A version that does not follow the one before it.
    BrokenLink,
    /// The chain's hint is unreadable or names what the chain does not hold.
    Hint,
    /// The head's own counts disagree with the objects on the chain.
    Totals,
}

impl Problem {
    /// The name JSON output uses too.
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::Damaged => "damaged",
            Problem::Foreign => "foreign",
            Problem::Misplaced => "misplaced",
            Problem::Missing => "missing",
            Problem::BrokenLink => "broken_link",
            Problem::Hint => "hint",
            Problem::Totals => "totals",
        }
    }
}

/// One problem, with the object it is about and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The chain ("orders/3"), or the topic for a problem of the whole topic.
    pub chain: String,
    /// The object at fault, or the first missing key.
    pub key: String,
    pub problem: Problem,
    /// What is wrong.
    pub detail: String,
    /// What to do about it.
    pub action: String,
    /// `pail doctor --repair` moves this object out of the way.
    pub repairable: bool,
    /// The object as listed, for the repair's checks.
    #[serde(skip)]
    pub object: Option<ObjectMeta>,
}

/// A chain, examined.
#[derive(Debug)]
pub struct Exam<S> {
    pub findings: Vec<Finding>,
    /// Objects listed in the chain's folder.
    pub objects: u64,
    /// Versions on the chain that read.
    pub versions: u64,
    /// The newest readable version on the chain.
    pub head: Version<S>,
}

/// One listed object and what reading it found.
struct Entry<S> {
    meta: ObjectMeta,
    /// The version its key names, if it is named like one of the chain's objects.
    number: Option<u64>,
    status: Status<S>,
}

enum Status<S> {
    Readable(Version<S>),
    /// Does not read as a version at this key: what it is instead.
    Unreadable(Identity),
    /// Listed, then gone before it was read.
    Gone,
}

impl<S> Entry<S> {
    /// True for objects that show a version existed: readable ones, and damaged ones that
    /// look like the chain's own. Foreign bytes named like a version prove nothing.
    fn is_evidence(&self) -> bool {
        matches!(
            self.status,
            Status::Readable(_) | Status::Unreadable(Identity::Damaged(_))
        )
    }
}

/// Examines every object of `chain`: reads them all, follows the chain, reports each problem.
pub async fn examine<C: Chain>(chain: &C) -> Result<Exam<C::State>> {
    let listed = chain.store().list_after(&chain.dir(), None).await?;
    let objects = listed.len() as u64;
    let entries: Vec<Entry<C::State>> = futures::stream::iter(listed)
        .map(|meta| read_entry(chain, meta))
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    let mut walk = Walk::new(chain, &entries);
    walk.follow();
    walk.judge_gaps();
    let hint_key = chain.hint_key();
    let hint = chain.store().get(&hint_key).await?;
    let hinted = hint.as_deref().and_then(|b| tip::parse_hint(chain, b));
    walk.judge_members(hinted.as_ref().map(|(_, v)| *v));
    walk.judge_strays();
    match (hint, hinted) {
        (_, Some(hinted)) => walk.judge_hint(hinted),
        (Some(_), None) => {
            if let Some(meta) = chain.store().head(&hint_key).await? {
                walk.garbled_hint(meta);
            }
        }
        (None, None) => {}
    }
    walk.judge_totals();
    walk.findings.sort_by(|a, b| a.key.cmp(&b.key));
    let versions = walk
        .members
        .iter()
        .filter(|&&i| matches!(entries[i].status, Status::Readable(_)))
        .count() as u64;
    Ok(Exam {
        findings: walk.findings,
        objects,
        versions,
        head: walk.head,
    })
}

async fn read_entry<C: Chain>(chain: &C, meta: ObjectMeta) -> Result<Entry<C::State>> {
    let key = &meta.location;
    let number = chain.parse_key(key);
    let status = match number {
        Some(_) => match chain.read(key, ReadFor::State).await {
            Ok(Some(v)) => Status::Readable(v),
            Ok(None) => Status::Gone,
            Err(e) if e.kind() == ErrorKind::Corrupt => unreadable(chain, key, e).await?,
            Err(e) => return Err(e),
        },
        None => match chain.identify(key).await? {
            Identity::Missing => Status::Gone,
            Identity::Version => Status::Unreadable(Identity::Misplaced(
                "it reads as a version, under a name no version has".into(),
            )),
            other => Status::Unreadable(other),
        },
    };
    Ok(Entry {
        meta,
        number,
        status,
    })
}

async fn unreadable<C: Chain>(chain: &C, key: &Path, e: Error) -> Result<Status<C::State>> {
    let reason = match e {
        Error::Corrupt { reason, .. } => reason,
        other => other.to_string(),
    };
    Ok(match chain.identify(key).await? {
        Identity::Missing => Status::Gone,
        // It reads as a version now, though it did not a moment ago: damage all the same.
        Identity::Version => Status::Unreadable(Identity::Damaged(reason)),
        other => Status::Unreadable(other),
    })
}

/// Following the chain through the listed objects, and judging what is found.
struct Walk<'a, C: Chain> {
    chain: &'a C,
    entries: &'a [Entry<C::State>],
    by_key: HashMap<&'a str, usize>,
    /// Indexes of the objects on the chain, in chain order.
    members: Vec<usize>,
    on_chain: Vec<bool>,
    /// True when versions are missing or unreadable: totals cannot be compared then.
    broken: bool,
    head: Version<C::State>,
    findings: Vec<Finding>,
    /// Gaps found while following, judged once the head is known (maintenance removes
    /// versions on purpose): the finding, the missing versions, and the object after them.
    gaps: Vec<(Finding, u64, u64, usize)>,
}

impl<'a, C: Chain> Walk<'a, C> {
    fn new(chain: &'a C, entries: &'a [Entry<C::State>]) -> Self {
        let by_key = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !matches!(e.status, Status::Gone))
            .map(|(i, e)| (e.meta.location.as_ref(), i))
            .collect();
        Walk {
            chain,
            entries,
            by_key,
            members: Vec::new(),
            on_chain: vec![false; entries.len()],
            broken: false,
            head: chain.genesis(),
            findings: Vec::new(),
            gaps: Vec::new(),
        }
    }

    /// Follows the chain from version 0 through the listing. Each version names its
    /// successor's key; past an object that does not read (or a gap), the next object that
    /// shows a newer version existed picks the chain up again.
    fn follow(&mut self) {
        let mut prev = Some(self.chain.genesis());
        let mut number = 0u64;
        let mut pos = 0usize;
        loop {
            let exact = prev.as_ref().and_then(|p| {
                let key = self.chain.next_key(&p.state);
                self.by_key.get(key.as_ref()).copied().filter(|&i| i >= pos)
            });
            let idx = match exact {
                Some(i) => i,
                None => match self.next_evidence(pos, number) {
                    Some(j) => {
                        self.gap(prev.as_ref(), number, j);
                        j
                    }
                    None => break,
                },
            };
            self.on_chain[idx] = true;
            self.members.push(idx);
            pos = idx + 1;
            let entry = &self.entries[idx];
            match &entry.status {
                Status::Readable(v) => {
                    if let Some(p) = &prev
                        && v.number() == number + 1
                        && let Err(reason) = self.chain.check_successor(&p.state, &v.state)
                    {
                        self.broken = true;
                        self.broken_link(entry, number, reason);
                    }
                    number = v.number();
                    self.head = v.clone();
                    prev = Some(v.clone());
                }
                _ => {
                    self.broken = true;
                    number = entry.number.unwrap_or(number + 1);
                    prev = None;
                }
            }
        }
    }

    /// The first object from `pos` on that is off the chain so far and shows a version newer
    /// than `number` existed.
    fn next_evidence(&self, pos: usize, number: u64) -> Option<usize> {
        (pos..self.entries.len()).find(|&j| {
            let e = &self.entries[j];
            !self.on_chain[j] && e.is_evidence() && e.number.is_some_and(|n| n > number)
        })
    }

    /// Reports the versions between `number` and the one at `next` as missing.
    fn gap(&mut self, prev: Option<&Version<C::State>>, number: u64, next: usize) {
        let entry = &self.entries[next];
        let Some(found) = entry.number.filter(|&n| n > number + 1) else {
            return; // Adjacent: the link check says what is wrong.
        };
        let last = self.members.last().map(|&i| &self.entries[i].meta.location);
        let key = match (prev, last) {
            (Some(p), _) => self.chain.next_key(&p.state).to_string(),
            (None, Some(last)) => format!("the object after {last}"),
            (None, None) => self.chain.next_key(&self.chain.genesis().state).to_string(),
        };
        let before = match &entry.status {
            Status::Readable(v) => Some(&*v.state),
            _ => None,
        };
        let held = self.chain.describe_between(prev.map(|p| &*p.state), before);
        let versions = versions_text(number + 1, found - 1);
        let finding = Finding {
            chain: self.chain.describe(),
            key,
            problem: Problem::Missing,
            detail: format!(
                "missing from the store: {versions}{held}, though {} shows the chain went on \
                 (deleted outside pail)",
                entry.meta.location
            ),
            action: RESTORE.into(),
            repairable: false,
            object: None,
        };
        self.gaps.push((finding, number + 1, found - 1, next));
    }

    /// Reports the gaps the head does not account for.
    fn judge_gaps(&mut self) {
        for (finding, first, last, next) in std::mem::take(&mut self.gaps) {
            let after = match &self.entries[next].status {
                Status::Readable(v) => Some(&*v.state),
                _ => None,
            };
            if !self
                .chain
                .absent_by_design(&self.head.state, first, last, after)
            {
                self.broken = true;
                self.findings.push(finding);
            }
        }
    }

    /// True for an object off the chain that the head accounts for.
    fn accounted(&self, i: usize) -> bool {
        let entry = &self.entries[i];
        !self.on_chain[i]
            && !matches!(entry.status, Status::Gone)
            && self
                .chain
                .accounted_off_chain(&self.head.state, &entry.meta.location)
    }

    fn broken_link(&mut self, entry: &Entry<C::State>, number: u64, reason: String) {
        self.findings.push(Finding {
            chain: self.chain.describe(),
            key: entry.meta.location.to_string(),
            problem: Problem::BrokenLink,
            detail: format!("does not follow version {number}: {reason}"),
            action: "report it with the output of `pail doctor --format json`: a version that \
                     breaks the chain's rules was written by something other than pail, or by \
                     a bug; readers stop before it"
                .into(),
            repairable: false,
            object: None,
        });
    }

    /// Judges the unreadable objects on the chain: only a foreign object with nothing
    /// committed after it may be moved away.
    fn judge_members(&mut self, hinted: Option<u64>) {
        let last = self.members.last().copied();
        for &i in &self.members.clone() {
            let entry = &self.entries[i];
            let Status::Unreadable(identity) = &entry.status else {
                continue;
            };
            let number = entry.number.unwrap_or(0);
            let committed = if Some(i) != last {
                Some("a newer version builds on it".to_string())
            } else {
                hinted
                    .filter(|&h| h >= number)
                    .map(|h| format!("the chain's hint names version {h}"))
            };
            let finding = self.member_finding(entry, identity, number, committed);
            self.findings.push(finding);
        }
    }

    fn member_finding(
        &self,
        entry: &Entry<C::State>,
        identity: &Identity,
        number: u64,
        committed: Option<String>,
    ) -> Finding {
        let at = format!(
            "at the key of version {number} of {}",
            self.chain.describe()
        );
        let (problem, detail, action, repairable) = match (identity, committed) {
            (Identity::Foreign(what), None) => (
                Problem::Foreign,
                format!("{what}, {at}: it blocks every write there"),
                format!(
                    "`pail doctor --repair` moves it to {}/ (nothing pail committed is lost: \
                     no version builds on it)",
                    keys::quarantine_root()
                ),
                true,
            ),
            (Identity::Foreign(what), Some(why)) => (
                Problem::Foreign,
                format!("{what}, {at}, which was committed ({why}): something overwrote it"),
                RESTORE_COMMITTED.to_string(),
                false,
            ),
            (Identity::Misplaced(what), _) => (
                Problem::Misplaced,
                format!("{what}, {at}"),
                MOVE_BY_HAND.to_string(),
                false,
            ),
            (Identity::Damaged(reason), _) => (
                Problem::Damaged,
                format!("does not read ({reason}), {at}"),
                RESTORE_COMMITTED.to_string(),
                false,
            ),
            (Identity::Missing | Identity::Version, _) => (
                Problem::Damaged,
                format!("did not read, {at}"),
                RESTORE_COMMITTED.to_string(),
                false,
            ),
        };
        self.about(&entry.meta, problem, detail, action, repairable)
    }

    /// A finding about a listed object; a repairable one carries it, for the repair's checks.
    fn about(
        &self,
        meta: &ObjectMeta,
        problem: Problem,
        detail: String,
        action: String,
        repairable: bool,
    ) -> Finding {
        Finding {
            chain: self.chain.describe(),
            key: meta.location.to_string(),
            problem,
            detail,
            action,
            repairable,
            object: repairable.then(|| meta.clone()),
        }
    }

    /// Judges every object off the chain.
    fn judge_strays(&mut self) {
        for (i, entry) in self.entries.iter().enumerate() {
            if self.on_chain[i] || self.accounted(i) {
                continue;
            }
            let (problem, detail, action, repairable) = match &entry.status {
                Status::Gone => continue,
                Status::Readable(v) => (
                    Problem::Misplaced,
                    format!(
                        "a readable version {} that is not on the chain (a copy, or a fork)",
                        v.number()
                    ),
                    MOVE_BY_HAND.to_string(),
                    false,
                ),
                Status::Unreadable(Identity::Foreign(what)) => (
                    Problem::Foreign,
                    format!("{what}, among the chain's objects but not on the chain"),
                    format!(
                        "`pail doctor --repair` moves it to {}/ (it is no part of the log)",
                        keys::quarantine_root()
                    ),
                    true,
                ),
                Status::Unreadable(Identity::Misplaced(what)) => (
                    Problem::Misplaced,
                    format!("{what}, off the chain"),
                    MOVE_BY_HAND.to_string(),
                    false,
                ),
                Status::Unreadable(Identity::Damaged(reason)) => (
                    Problem::Damaged,
                    format!("does not read ({reason}) and is not on the chain"),
                    MOVE_BY_HAND.to_string(),
                    false,
                ),
                Status::Unreadable(Identity::Missing | Identity::Version) => (
                    Problem::Damaged,
                    "did not read, and is not on the chain".into(),
                    MOVE_BY_HAND.to_string(),
                    false,
                ),
            };
            let finding = self.about(&entry.meta, problem, detail, action, repairable);
            self.findings.push(finding);
        }
    }

    /// A hint that does not decode: advisory, so it only costs listings, but it is not pail's.
    fn garbled_hint(&mut self, meta: ObjectMeta) {
        let action = format!(
            "`pail doctor --repair` moves it to {}/; hints are advisory and rewritten as the \
             chain grows",
            keys::quarantine_root()
        );
        let detail = "the chain's hint does not decode (or names another chain's object)";
        let finding = self.about(&meta, Problem::Hint, detail.into(), action, true);
        self.findings.push(finding);
    }

    /// The hint must name a version on the chain, and none past what the store holds.
    fn judge_hint(&mut self, (hinted_key, version): (Path, u64)) {
        let chain = self.chain.describe();
        let known = self
            .members
            .iter()
            .filter_map(|&i| self.entries[i].number)
            .max()
            .unwrap_or(0);
        if version > known {
            let first = self.chain.next_key(&self.head.state);
            self.findings.push(Finding {
                chain,
                key: first.to_string(),
                problem: Problem::Missing,
                detail: format!(
                    "missing from the store: {}, committed (the hint names {hinted_key}) and \
                     deleted by hand or by a bucket lifecycle rule; writers refuse, because \
                     writing on would hand out their offsets again",
                    versions_text(known + 1, version)
                ),
                action: RESTORE.into(),
                repairable: false,
                object: None,
            });
            return;
        }
        let on_chain = self
            .by_key
            .get(hinted_key.as_ref())
            .is_some_and(|&i| self.on_chain[i]);
        if !on_chain && version > 0 {
            self.findings.push(Finding {
                chain,
                key: self.chain.hint_key().to_string(),
                problem: Problem::Hint,
                detail: format!(
                    "the hint names {hinted_key} as version {version}, which is not the \
                     chain's version {version}"
                ),
                action: "harmless (hints are advisory): the next hint written replaces it".into(),
                repairable: false,
                object: None,
            });
        }
    }

    /// The head's own totals against the chain, when every version on it read.
    fn judge_totals(&mut self) {
        if self.broken || self.head.is_genesis() {
            return;
        }
        let extra = (0..self.entries.len()).filter(|&i| self.accounted(i));
        let objects: Vec<(&Path, u64)> = self
            .members
            .iter()
            .copied()
            .chain(extra)
            .map(|i| (&self.entries[i].meta.location, self.entries[i].meta.size))
            .collect();
        if let Err(reason) = self.chain.check_totals(&self.head, &objects) {
            let key = self
                .chain
                .key_of(&self.head.state)
                .map_or_else(|| self.chain.dir().to_string(), |k| k.to_string());
            self.findings.push(Finding {
                chain: self.chain.describe(),
                key,
                problem: Problem::Totals,
                detail: reason,
                action: "describe's counts are off; nothing else is affected. Report it with \
                         the output of `pail doctor --format json`"
                    .into(),
                repairable: false,
                object: None,
            });
        }
    }
}

const RESTORE: &str = "restore the missing objects from a backup, at the same keys; pail will \
                       not write over the gap (see README, 'When something is damaged')";
const RESTORE_COMMITTED: &str = "restore this object from a backup, at the same key: it may \
                                 hold committed records whose offsets were handed out, so pail \
                                 will not move or delete it (see README, 'When something is \
                                 damaged')";
const MOVE_BY_HAND: &str = "pail never moves an object that may be one of its segments: if it \
                            was put here by mistake, move it out of the folder by hand (see \
                            README, 'When something is damaged')";

/// Moves the object a repairable finding is about to `keys::quarantine(run, key)`: copies it,
/// checks the copy, checks that the original has not changed since it was examined, and only
/// then deletes the original. Returns where it went.
pub async fn quarantine(store: &Store, run: &str, object: &ObjectMeta) -> Result<Path> {
    let from = &object.location;
    let to = keys::quarantine(run, from);
    store.copy(from, &to).await?;
    let copied = store.head(&to).await?;
    if copied.map(|m| m.size) != Some(object.size) {
        return Err(Error::corrupt(
            &to,
            format!("the copy of {from} is not the size of the original; the original stays"),
        ));
    }
    match store.head(from).await? {
        // Moved by someone else meanwhile: the copy is all that is left to do.
        None => return Ok(to),
        Some(now) if now.size != object.size || now.e_tag != object.e_tag => {
            return Err(Error::corrupt(
                from,
                "changed while it was being repaired; it stays where it is (run `pail doctor` \
                 again)",
            ));
        }
        Some(_) => {}
    }
    store.delete(from).await?;
    Ok(to)
}

impl<S: Versioned> Exam<S> {
    /// True when nothing is wrong.
    pub fn healthy(&self) -> bool {
        self.findings.is_empty()
    }
}
