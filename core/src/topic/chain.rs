//! A topic's descriptor as a chain: version 1 is `topics/{t}/_topic.json` (written at creation,
//! as before the chain existed), later versions are `topics/{t}/_config/{version:020}.json`.
//!
//! Settings change (`alter`), the topic is deleted, and a topic of the same name is created
//! again, each by a create-only version, so concurrent admins settle exactly as concurrent
//! writers do, and every incarnation gets a fresh id (Kafka's topic id, KIP-516) that partition
//! chains record: a writer or reader of one incarnation never writes into or reads from another.
//!
//! Cold discovery probes `_topic.json`, then the next version (2 GETs): topics change rarely, so
//! a listing is not worth it. Clients cache descriptors; a long-lived one re-reads a topic with
//! `Pail::topic_latest` (1 GET when nothing changed).

use async_trait::async_trait;
use object_store::path::Path;
use std::sync::{Arc, Mutex};

use super::{TOPIC_FORMAT, TopicConfig, TopicMeta, TopicName};
use crate::cache::Lru;
use crate::chain::{Chain, ReadFor, Version};
use crate::error::{Error, Result};
use crate::storage::{Store, keys};
use crate::sync::lock;

/// A change to a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicEdit {
    /// Create the topic (first time, or again after a delete) with a fresh id.
    Create {
        config: TopicConfig,
        id: String,
    },
    /// New settings: partitions may only grow; the timestamp type and record limit are fixed.
    Alter {
        config: TopicConfig,
    },
    Delete,
}

/// Why a topic edit cannot apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicRefusal {
    Exists,
    Unknown,
    Invalid(String),
}

/// The version after `prev` that `edit` makes. Pure.
pub fn apply(
    prev: &TopicMeta,
    edit: &TopicEdit,
    commit_id: &str,
    digest: &str,
    now_ms: i64,
) -> Result<TopicMeta, TopicRefusal> {
    let live = prev.version > 0 && !prev.deleted;
    let mut next = TopicMeta {
        format: TOPIC_FORMAT,
        version: prev.version + 1,
        commit_id: commit_id.to_string(),
        digest: digest.to_string(),
        ..prev.clone()
    };
    match edit {
        TopicEdit::Create { config, id } => {
            if live {
                return Err(TopicRefusal::Exists);
            }
            next.id = id.clone();
            next.config = config.clone();
            next.created_at_ms = now_ms;
            next.deleted = false;
        }
        TopicEdit::Alter { config } => {
            if !live {
                return Err(TopicRefusal::Unknown);
            }
            check_alter(&prev.config, config).map_err(TopicRefusal::Invalid)?;
            next.config = config.clone();
        }
        TopicEdit::Delete => {
            if !live {
                return Err(TopicRefusal::Unknown);
            }
            next.deleted = true;
        }
    }
    Ok(next)
}

fn check_alter(old: &TopicConfig, new: &TopicConfig) -> Result<(), String> {
    if new.partitions < old.partitions {
        return Err(format!(
            "a topic's partitions can only grow ({} now, {} asked): keyed records would move and \
             the dropped partitions' records would be lost",
            old.partitions, new.partitions
        ));
    }
    if new.timestamp_type != old.timestamp_type || new.record_bytes_max != old.record_bytes_max {
        return Err("the timestamp type and the record limit are fixed at creation".into());
    }
    Ok(())
}

/// The empty topic (version 0): nothing was ever created under `name`.
pub fn genesis(name: &TopicName) -> TopicMeta {
    TopicMeta {
        format: TOPIC_FORMAT,
        name: name.clone(),
        version: 0,
        commit_id: String::new(),
        digest: String::new(),
        deleted: false,
        id: String::new(),
        config: TopicConfig::new(1),
        created_at_ms: 0,
    }
}

pub(crate) type TopicCache = Mutex<Lru<TopicName, Version<TopicMeta>>>;

/// One topic's descriptor chain on a store.
pub struct TopicChain<'a> {
    pub store: &'a Store,
    pub name: &'a TopicName,
    pub cache: &'a TopicCache,
}

#[async_trait]
impl Chain for TopicChain<'_> {
    type State = TopicMeta;

    fn store(&self) -> &Store {
        self.store
    }

    fn describe(&self) -> String {
        format!("topic {}", self.name)
    }

    fn genesis(&self) -> Version<TopicMeta> {
        Version::new(genesis(self.name), 0)
    }

    fn key_of(&self, m: &TopicMeta) -> Option<Path> {
        (m.version > 0).then(|| keys::topic_version(self.name, m.version))
    }

    fn next_key(&self, m: &TopicMeta) -> Path {
        keys::topic_version(self.name, m.version + 1)
    }

    async fn read(&self, key: &Path, _why: ReadFor) -> Result<Option<Version<TopicMeta>>> {
        let Some(bytes) = self.store.get(key).await? else {
            return Ok(None);
        };
        let meta = TopicMeta::decode(&bytes, key.as_ref(), self.name)?;
        if keys::parse_topic_version(self.name, key) != Some(meta.version) {
            return Err(Error::corrupt(
                key,
                format!("topic version {} found at this key", meta.version),
            ));
        }
        Ok(Some(Version {
            state: Arc::new(meta),
            size: bytes.len() as u64,
        }))
    }

    fn check_successor(&self, prev: &TopicMeta, next: &TopicMeta) -> Result<(), String> {
        if next.version != prev.version + 1 {
            return Err(format!(
                "version {} does not follow {}",
                next.version, prev.version
            ));
        }
        if !prev.deleted && next.id != prev.id && prev.version > 0 {
            return Err("a live topic changed its id".into());
        }
        Ok(())
    }

    fn dir(&self) -> Path {
        keys::topic_versions(self.name)
    }

    fn parse_key(&self, key: &Path) -> Option<u64> {
        keys::parse_topic_version(self.name, key)
    }

    fn hint_key(&self) -> Path {
        keys::topic_hint(self.name)
    }

    fn probe_from_genesis(&self) -> bool {
        true
    }

    fn cached(&self) -> Option<Version<TopicMeta>> {
        lock(self.cache).get(self.name).cloned()
    }

    fn offer(&self, v: &Version<TopicMeta>) {
        let mut cache = lock(self.cache);
        if cache
            .peek(self.name)
            .is_some_and(|known| known.number() >= v.number())
        {
            return;
        }
        cache.insert(self.name.clone(), v.clone(), 1);
    }

    fn forget(&self) {
        lock(self.cache).remove(self.name);
    }
}
