//! The exact table view: a Delta Lake log beside each topic (`topics/{topic}/_delta_log/`),
//! whose data files are the segment objects themselves, brought up to the committed tips by
//! the maintenance pass (never on the produce path).
//!
//! A sync replays the log (from the newest checkpoint), works out per partition which objects
//! are live at the chain's tip (`Inventory::live`), and commits the difference as one Delta
//! version: `add` for live objects the table lacks, `remove` for files it names that are no
//! longer live (retention dropped them, or a merged segment replaced them, in the same
//! commit as the merged file's `add`). Commits are create-if-absent of the next version, so
//! two passes at once settle like two writers: the loser reads the winner's commit and
//! recomputes, usually finding nothing left to do.
//!
//! A partition is left as the table has it when its view is incomplete (a merged segment
//! committed but not yet written, a footer gone under us) or older than the view the table
//! already holds (each commit records the chain version it synced each changed partition to as
//! a `txn` action): the table never shows a gap, and never goes back.
//!
//! Objects without records (control commits) are never added: they hold no rows.

mod actions;
mod checkpoint;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};

use super::inventory::{Inventory, Object};
use crate::client::Pail;
use crate::error::{Error, Result};
use crate::log::Part;
use crate::manifest::PartitionManifest;
use crate::storage::keys::{self, DeltaLogKey};
use crate::storage::{Created, Store};
use crate::topic::{TopicMeta, TopicName};
use actions::{Add, FileStats, Line, MetaData, Protocol, Remove, Txn};

/// A checkpoint is written once this many versions have passed since the last one.
pub const CHECKPOINT_INTERVAL: u64 = 10;
/// Commit races lost in a row before a sync gives up (the next pass carries on).
const COMMIT_ATTEMPTS: usize = 8;
/// Footers read at once for the stats of new files.
const FOOTER_CONCURRENCY: usize = 8;
/// How far back the log keeps its history (Delta's `delta.logRetentionDuration` default, 30
/// days): commits and checkpoints go once a checkpoint at least this old covers them, so time
/// travel always reaches at least this far back.
pub const LOG_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

/// The table as of one version of its log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableState {
    /// The newest version replayed (`None`: no table yet).
    pub version: Option<u64>,
    pub protocol: Option<Protocol>,
    pub meta_data: Option<MetaData>,
    /// The files the table holds, by path relative to the topic folder.
    pub files: BTreeMap<String, Add>,
    /// Per partition app id, the chain version the table was synced to.
    pub txns: BTreeMap<String, i64>,
    /// The newest checkpoint known.
    pub checkpoint: Option<u64>,
}

impl TableState {
    fn next_version(&self) -> u64 {
        self.version.map_or(0, |v| v + 1)
    }

    fn apply(&mut self, version: u64, lines: &[Line]) {
        for line in lines {
            if let Some(p) = &line.protocol {
                self.protocol = Some(p.clone());
            }
            if let Some(m) = &line.meta_data {
                self.meta_data = Some(m.clone());
            }
            if let Some(t) = &line.txn {
                self.txns.insert(t.app_id.clone(), t.version);
            }
            if let Some(a) = &line.add {
                self.files.insert(a.path.clone(), a.clone());
            }
            if let Some(r) = &line.remove {
                self.files.remove(&r.path);
            }
        }
        self.version = Some(version);
    }

    /// The object keys of the files the table names: maintenance must not delete these
    /// (a Delta reader would fail on a file its snapshot names).
    pub fn object_keys(&self, topic: &TopicName) -> HashSet<Path> {
        let root = keys::topic_dir(topic);
        self.files
            .keys()
            .map(|p| Path::from(format!("{root}/{p}")))
            .collect()
    }

    /// The files of partition `p`, by path.
    fn partition_files(&self, p: u32) -> impl Iterator<Item = &Add> {
        let prefix = format!("partition={p}/");
        self.files
            .range(prefix.clone()..)
            .take_while(move |(path, _)| path.starts_with(&prefix))
            .map(|(_, a)| a)
    }
}

/// A topic's Delta log in the store.
struct Log<'a> {
    store: &'a Store,
    topic: &'a TopicName,
}

impl Log<'_> {
    /// The table's state at its newest version: the newest checkpoint, then every later commit.
    async fn load(&self) -> Result<TableState> {
        let hint = self.last_checkpoint_hint().await?;
        if let Some(state) = self.load_from(hint).await? {
            return Ok(state);
        }
        // The hinted checkpoint is gone: replay from the start.
        self.load_from(None)
            .await?
            .ok_or_else(|| Error::corrupt(keys::delta_log(self.topic), "log vanished under us"))
    }

    /// Replays from checkpoint `from` (or the first commit); `None` if that checkpoint is missing.
    async fn load_from(&self, from: Option<u64>) -> Result<Option<TableState>> {
        let after = from.map(|v| keys::delta_checkpoint(self.topic, v));
        let listing = self.list(after.as_ref()).await?;
        let newest = listing.iter().rev().find_map(|k| match k {
            DeltaLogKey::Checkpoint(v) => Some(*v),
            DeltaLogKey::Commit(_) => None,
        });
        let mut state = match newest.or(from) {
            Some(v) => match self.read_checkpoint(v).await? {
                Some(state) => state,
                None => return Ok(None),
            },
            None => TableState::default(),
        };
        self.replay(&listing, &mut state).await?;
        Ok(Some(state))
    }

    /// Applies the later commits of `listing` to `state`, in order.
    async fn replay(&self, listing: &[DeltaLogKey], state: &mut TableState) -> Result<()> {
        for key in listing {
            let DeltaLogKey::Commit(v) = *key else {
                continue;
            };
            if state.version.is_some_and(|have| v <= have) {
                continue;
            }
            if v != state.next_version() {
                let missing = keys::delta_commit(self.topic, state.next_version());
                return Err(Error::corrupt(missing, "Delta commit missing from the log"));
            }
            let lines = self.read_commit(v).await?;
            state.apply(v, &lines);
        }
        Ok(())
    }

    /// Brings `state` up to the newest commit (after losing a commit race).
    async fn catch_up(&self, state: &mut TableState) -> Result<()> {
        let after = state.version.map(|v| keys::delta_commit(self.topic, v));
        let listing = self.list(after.as_ref()).await?;
        self.replay(&listing, state).await
    }

    async fn list(&self, after: Option<&Path>) -> Result<Vec<DeltaLogKey>> {
        let dir = keys::delta_log(self.topic);
        let metas = self.store.list_after(&dir, after).await?;
        let mut listing: Vec<DeltaLogKey> = metas
            .iter()
            .filter_map(|m| keys::parse_delta_log(&m.location))
            .collect();
        listing.sort_by_key(|k| match *k {
            DeltaLogKey::Checkpoint(v) => (v, 0),
            DeltaLogKey::Commit(v) => (v, 1),
        });
        Ok(listing)
    }

    async fn last_checkpoint_hint(&self) -> Result<Option<u64>> {
        let key = keys::delta_last_checkpoint(self.topic);
        let Some(bytes) = self.store.get(&key).await? else {
            return Ok(None);
        };
        // Advisory: one that does not parse is ignored (the listing finds checkpoints anyway).
        let hint: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        Ok(hint.and_then(|h| h.get("version")?.as_u64()))
    }

    async fn read_checkpoint(&self, version: u64) -> Result<Option<TableState>> {
        let key = keys::delta_checkpoint(self.topic, version);
        let Some(bytes) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let mut state = checkpoint::decode(bytes).map_err(|e| Error::corrupt(&key, e))?;
        state.version = Some(version);
        state.checkpoint = Some(version);
        Ok(Some(state))
    }

    async fn read_commit(&self, version: u64) -> Result<Vec<Line>> {
        let key = keys::delta_commit(self.topic, version);
        let bytes = self
            .store
            .get(&key)
            .await?
            .ok_or_else(|| Error::corrupt(&key, "Delta commit listed but missing"))?;
        let text = std::str::from_utf8(&bytes).map_err(|e| Error::corrupt(&key, e.to_string()))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| Error::corrupt(&key, e.to_string())))
            .collect()
    }

    /// Creates commit `version`; `AlreadyExists` when another sync made it first.
    async fn commit(&self, version: u64, lines: &[Line]) -> Result<Created> {
        let key = keys::delta_commit(self.topic, version);
        let mut text = String::new();
        for line in lines {
            let json = serde_json::to_string(line).map_err(|e| Error::Encode(e.to_string()))?;
            text.push_str(&json);
            text.push('\n');
        }
        self.store
            .create(&key, Bytes::from(text))
            .await
            .map_err(|e| Error::store("put", &key, e))
    }

    /// Writes a checkpoint of `state` when [`CHECKPOINT_INTERVAL`] versions have passed since
    /// the last one, then points `_last_checkpoint` at it; true when it wrote one.
    async fn checkpoint_if_due(&self, state: &mut TableState) -> Result<bool> {
        let Some(version) = state.version else {
            return Ok(false);
        };
        if version < state.checkpoint.unwrap_or(0) + CHECKPOINT_INTERVAL {
            return Ok(false);
        }
        let key = keys::delta_checkpoint(self.topic, version);
        let (bytes, size) = checkpoint::encode(state).map_err(Error::Encode)?;
        // Another sync may have written the same checkpoint (same state, same bytes).
        self.store
            .create(&key, bytes)
            .await
            .map_err(|e| Error::store("put", &key, e))?;
        let hint = json!({"version": version, "size": size}).to_string();
        let hint_key = keys::delta_last_checkpoint(self.topic);
        self.store.overwrite(&hint_key, Bytes::from(hint)).await?;
        state.checkpoint = Some(version);
        Ok(true)
    }

    /// Deletes the commits and checkpoints below the newest checkpoint written before
    /// `now_ms - LOG_RETENTION_MS`, as Delta's own log cleanup does. Versions grow with time,
    /// so the listing stops at the first object younger than that: one LIST page once the
    /// backlog is gone. Readers are unaffected: every loader (ours and Delta's) starts from the
    /// newest checkpoint, never below one that old. Times are the store's; a wrong clock only
    /// shortens or lengthens time travel, never changes the table.
    async fn expire(&self, now_ms: i64) -> Result<usize> {
        let cutoff = now_ms.saturating_sub(LOG_RETENTION_MS);
        let old = |m: &object_store::ObjectMeta| m.last_modified.timestamp_millis() < cutoff;
        let dir = keys::delta_log(self.topic);
        let listing = self.store.list_after_while(&dir, None, old).await?;
        let expired: Vec<(DeltaLogKey, Path)> = listing
            .into_iter()
            .filter(|m| old(m))
            .filter_map(|m| Some((keys::parse_delta_log(&m.location)?, m.location)))
            .collect();
        let Some(floor) = expired.iter().rev().find_map(|(k, _)| match k {
            DeltaLogKey::Checkpoint(v) => Some(*v),
            DeltaLogKey::Commit(_) => None,
        }) else {
            return Ok(0);
        };
        let doomed: Vec<Path> = expired
            .into_iter()
            .filter(|(k, _)| match *k {
                DeltaLogKey::Checkpoint(v) | DeltaLogKey::Commit(v) => v < floor,
            })
            .map(|(_, key)| key)
            .collect();
        for chunk in doomed.chunks(super::DELETE_CHUNK) {
            self.store.delete_many(chunk).await?;
        }
        Ok(doomed.len())
    }
}

/// The table as it stands, without changing it (dry runs).
pub(super) async fn load(pail: &Pail, meta: &TopicMeta) -> Result<TableState> {
    let log = Log {
        store: pail.store(),
        topic: &meta.name,
    };
    log.load().await
}

/// Deletes a topic's whole Delta log (topic deletion).
pub(super) async fn delete_log(pail: &Pail, topic: &TopicName) -> Result<()> {
    let metas = pail
        .store()
        .list_after(&keys::delta_log(topic), None)
        .await?;
    let doomed: Vec<Path> = metas.into_iter().map(|m| m.location).collect();
    for chunk in doomed.chunks(super::DELETE_CHUNK) {
        pail.store().delete_many(chunk).await?;
    }
    Ok(())
}

/// Brings the table of `meta` up to the committed tips of `partitions` (the others are left as
/// the table has them), creating it at version 0 if needed; returns the table after the sync.
pub(super) async fn sync(pail: &Pail, meta: &TopicMeta, partitions: &[u32]) -> Result<TableState> {
    let log = Log {
        store: pail.store(),
        topic: &meta.name,
    };
    let mut state = log.load().await?;
    for _ in 0..COMMIT_ATTEMPTS {
        let Some(lines) = changes(pail, meta, partitions, &state).await? else {
            break;
        };
        let version = state.next_version();
        match log.commit(version, &lines).await? {
            Created::Yes => {
                state.apply(version, &lines);
                break;
            }
            Created::AlreadyExists => log.catch_up(&mut state).await?,
        }
    }
    // Expiry only after a new checkpoint: at most one LIST per CHECKPOINT_INTERVAL versions.
    if log.checkpoint_if_due(&mut state).await? {
        log.expire(pail.clock().now_ms()).await?;
    }
    Ok(state)
}

/// The next commit's actions, or `None` when the table is already up to date.
async fn changes(
    pail: &Pail,
    meta: &TopicMeta,
    partitions: &[u32],
    state: &TableState,
) -> Result<Option<Vec<Line>>> {
    let now = pail.clock().now_ms();
    let mut lines = Vec::new();
    for &p in partitions {
        lines.extend(partition_changes(pail, meta, p, state, now).await?);
    }
    if state.version.is_some() && lines.is_empty() {
        return Ok(None);
    }
    let info = json!({
        "timestamp": now,
        "operation": "WRITE",
        "operationParameters": {"mode": "Append"},
        "engineInfo": format!("pail/{}", env!("CARGO_PKG_VERSION")),
    });
    let mut head = vec![Line {
        commit_info: Some(info),
        ..Line::default()
    }];
    if state.version.is_none() {
        let id = if meta.id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            meta.id.clone()
        };
        head.push(Line {
            protocol: Some(actions::protocol()),
            ..Line::default()
        });
        head.push(Line {
            meta_data: Some(actions::meta_data(&id, meta.name.as_str(), now)),
            ..Line::default()
        });
    }
    head.extend(lines);
    Ok(Some(head))
}

/// One partition's removes, adds and txn; empty when it has nothing to change, or when its
/// view is incomplete or older than the table's.
async fn partition_changes(
    pail: &Pail,
    meta: &TopicMeta,
    p: u32,
    state: &TableState,
    now: i64,
) -> Result<Vec<Line>> {
    let tip = pail.partition_tip(meta.name.as_str(), p).await?.state;
    let app_id = actions::partition_app_id(p);
    if state
        .txns
        .get(&app_id)
        .is_some_and(|&v| v > tip.version as i64)
    {
        return Ok(Vec::new());
    }
    let part = pail.part(&meta.name, p);
    let live = Inventory::list(part).await?.live(&tip);
    let Some(spans) = spans(&live, &tip) else {
        return Ok(Vec::new());
    };
    let root = format!("{}/", keys::topic_dir(&meta.name));
    let relative = |o: &Object| o.key.as_ref().strip_prefix(&root).map(str::to_string);
    let wanted: HashSet<String> = spans.iter().filter_map(|s| relative(&s.object)).collect();
    let removes: Vec<Line> = state
        .partition_files(p)
        .filter(|a| !wanted.contains(&a.path))
        .map(|a| Line {
            remove: Some(Remove::of(a, now)),
            ..Line::default()
        })
        .collect();
    let new: Vec<(String, Span)> = spans
        .into_iter()
        .filter_map(|s| Some((relative(&s.object)?, s)))
        .filter(|(path, _)| !state.files.contains_key(path))
        .collect();
    let adds = futures::stream::iter(new)
        .map(|(path, span)| add_for(part, path, span, p))
        .buffered(FOOTER_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    // A footer gone under us: a concurrent pass changed the partition; leave it for now.
    let Some(adds) = adds.into_iter().collect::<Option<Vec<Add>>>() else {
        return Ok(Vec::new());
    };
    if removes.is_empty() && adds.is_empty() {
        return Ok(Vec::new());
    }
    let mut lines = removes;
    lines.extend(adds.into_iter().map(|a| Line {
        add: Some(a),
        ..Line::default()
    }));
    lines.push(Line {
        txn: Some(Txn {
            app_id,
            version: tip.version as i64,
            last_updated: Some(now),
        }),
        ..Line::default()
    });
    Ok(lines)
}

/// A live object with records and the offsets it holds.
struct Span {
    object: Object,
    base_offset: u64,
    next_offset: u64,
}

/// The live objects that hold records, with their offsets (each ends where the next begins,
/// the last at the tip's next offset). `None` when the live objects do not cover every
/// version up to the tip (a merged segment committed but not yet written): the view would
/// have a gap.
fn spans(live: &[Object], tip: &PartitionManifest) -> Option<Vec<Span>> {
    let mut out = Vec::new();
    for (i, o) in live.iter().enumerate() {
        let next = live.get(i + 1);
        match next {
            Some(n) if n.seg.first_version != o.seg.last_version + 1 => return None,
            None if o.seg.last_version != tip.version => return None,
            _ => {}
        }
        let end = next.map_or(tip.next_offset, |n| n.seg.base_offset);
        if end < o.seg.base_offset {
            return None;
        }
        if end > o.seg.base_offset {
            out.push(Span {
                object: o.clone(),
                base_offset: o.seg.base_offset,
                next_offset: end,
            });
        }
    }
    (!live.is_empty()).then_some(out)
}

/// The `add` of a file, with stats from its footer; `None` if the object is gone.
async fn add_for(part: Part<'_>, path: String, span: Span, p: u32) -> Result<Option<Add>> {
    let Some(footer) = part.footer(&span.object.key).await? else {
        return Ok(None);
    };
    let m = &footer.manifest;
    if m.base_offset != span.base_offset
        || m.base_offset + u64::from(m.record_count) != span.next_offset
    {
        let reason = format!(
            "holds offsets {}..{}, the chain says {}..{}",
            m.base_offset,
            m.base_offset + u64::from(m.record_count),
            span.base_offset,
            span.next_offset
        );
        return Err(Error::corrupt(&span.object.key, reason));
    }
    let stats = FileStats {
        first_offset: span.base_offset,
        last_offset: span.next_offset - 1,
        timestamps_ms: Some((m.min_timestamp_ms, m.max_timestamp_ms)),
    };
    Ok(Some(Add {
        path,
        partition_values: actions::partition_values(p),
        size: span.object.size as i64,
        modification_time: span.object.modified_ms,
        data_change: true,
        stats: Some(stats.json()),
    }))
}
