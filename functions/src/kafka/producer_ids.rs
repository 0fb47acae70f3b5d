//! Kafka producer ids, unique across every listener on a store without any talking.
//!
//! Ids come in blocks of [`BLOCK_IDS`]. A listener owns block `n` once it has created the object
//! `keys::producer_id_block(n)` (create-if-absent): the store lets exactly one creator win, so
//! two listeners never hand out the same id. To find the next free block a listener lists the
//! blocks after the last one it knows and takes the one after the highest. A listener that
//! restarts claims a new block and leaves the rest of its old one unused (ids are plentiful:
//! 2^63 / 1,000 blocks).
//!
//! Cost: one LIST and one PUT per 1,000 InitProducerId calls (or per listener start).

use bytes::Bytes;
use pail_core::storage::{Created, keys};
use pail_core::{Error, Result, Store};
use tokio::sync::Mutex;

/// Producer ids per block.
pub const BLOCK_IDS: u64 = 1000;
/// Blocks a listener tries to claim in a row (each lost to another listener) before it fails.
const CLAIM_ATTEMPTS_MAX: u32 = 16;

#[derive(Debug)]
pub struct ProducerIds {
    store: Store,
    owner: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Ids left in the block this listener owns: next..end.
    next: u64,
    end: u64,
    /// The highest block this listener has seen taken.
    highest_seen: Option<u64>,
    claims: u64,
}

impl ProducerIds {
    /// `owner` is written into every block claimed, so an ambiguous create can be recognised.
    pub fn new(store: Store, owner: String) -> Self {
        ProducerIds {
            store,
            owner,
            state: Mutex::new(State::default()),
        }
    }

    /// A producer id no other listener on this store has handed out or will.
    pub async fn next(&self) -> Result<i64> {
        let mut state = self.state.lock().await;
        if state.next >= state.end {
            let block = self.claim(&mut state).await?;
            state.next = block * BLOCK_IDS;
            state.end = state.next + BLOCK_IDS;
        }
        let id = state.next;
        state.next += 1;
        i64::try_from(id).map_err(|_| Error::InvalidArgument("producer ids exhausted".into()))
    }

    async fn claim(&self, state: &mut State) -> Result<u64> {
        for _ in 0..CLAIM_ATTEMPTS_MAX {
            let after = state.highest_seen.map(keys::producer_id_block);
            let listed = self
                .store
                .list_after(&keys::producer_id_blocks(), after.as_ref())
                .await?;
            let highest = listed
                .iter()
                .filter_map(|m| keys::parse_producer_id_block(&m.location))
                .chain(state.highest_seen)
                .max();
            let block = highest.map_or(0, |b| b + 1);
            state.claims += 1;
            let nonce = format!("{}#{}", self.owner, state.claims);
            if self.create_block(block, &nonce).await? {
                state.highest_seen = Some(block);
                return Ok(block);
            }
            state.highest_seen = Some(block);
        }
        Err(Error::Conflict {
            chain: "_kafka/producer-ids".into(),
            attempts: CLAIM_ATTEMPTS_MAX,
        })
    }

    /// True when this call created the block; false when someone else owns it.
    async fn create_block(&self, block: u64, nonce: &str) -> Result<bool> {
        let key = keys::producer_id_block(block);
        let body = Bytes::from(serde_json::json!({ "owner": nonce }).to_string());
        match self.store.create(&key, body).await {
            Ok(Created::Yes) => Ok(true),
            Ok(Created::AlreadyExists) => self.is_mine(&key, nonce).await,
            // The create may have landed with its answer lost: only reading it back tells.
            Err(e) => match self.is_mine(&key, nonce).await {
                Ok(mine) => Ok(mine),
                Err(_) => Err(Error::Store {
                    op: "put",
                    key: key.to_string(),
                    source: e,
                }),
            },
        }
    }

    async fn is_mine(&self, key: &object_store::path::Path, nonce: &str) -> Result<bool> {
        let Some(bytes) = self.store.get(key).await? else {
            return Ok(false);
        };
        let owner = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("owner").and_then(|o| o.as_str().map(str::to_string)));
        Ok(owner.as_deref() == Some(nonce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn listeners_on_one_store_never_share_an_id() {
        let store = Store::memory();
        let listeners: Vec<_> = (0..4)
            .map(|i| std::sync::Arc::new(ProducerIds::new(store.clone(), format!("l{i}"))))
            .collect();
        let mut tasks = Vec::new();
        for l in &listeners {
            let l = std::sync::Arc::clone(l);
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..2_500 {
                    ids.push(l.next().await.unwrap());
                }
                ids
            }));
        }
        let mut all = HashSet::new();
        for t in tasks {
            for id in t.await.unwrap() {
                assert!(all.insert(id), "id {id} handed out twice");
            }
        }
        assert_eq!(all.len(), 10_000);
        // A restarted listener (fresh state) starts past every claimed block.
        let fresh = ProducerIds::new(store, "again".into());
        let id = fresh.next().await.unwrap();
        assert!(all.iter().all(|&seen| seen < id), "{id}");
    }
}
