//! Client-supplied idempotency keys, remembered for a time window (like SQS FIFO's
//! deduplication id): the guarantee for a retry that comes from a *fresh* process, which
//! cannot know where its first attempt went (a Lambda retrying an SQS message, an HTTP client
//! retrying after a lost answer, a Kafka client retrying through another listener).
//!
//! Guarantee: a batch sent with key K is appended once if every retry with K reaches the
//! partition within [`IDEMPOTENCY_WINDOW_MS`] of its first commit, as measured by the
//! committers' clocks, and at most [`IDEMPOTENCY_KEYS_MAX`] other keyed batches were committed
//! to the partition in that window. The second bound is far above what one partition can commit
//! on S3 (its commits are sequential PUTs, ~25 per second: 7,500 in five minutes); when it is
//! reached anyway, the oldest keys are forgotten early and `forgotten_until_ms` records it, so
//! `describe` can show the effective window. A retry with K but different content is refused:
//! a key never stands for two batches.
//!
//! The window rides in every manifest, so it is packed: 44 bytes per key (16-byte key hash,
//! base offset, record count, commit time, 8-byte content digest), base64 in the JSON.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ApplyError;

/// How long a key is remembered after its batch was committed.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Most keys a partition remembers at once.
pub const IDEMPOTENCY_KEYS_MAX: usize = 8192;
/// Longest key accepted, in bytes.
pub const IDEMPOTENCY_KEY_MAX_BYTES: usize = 256;

const ENTRY_BYTES: usize = 44;

/// A client's idempotency key, kept as a 128-bit hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdempotencyKey([u8; 16]);

impl IdempotencyKey {
    pub fn new(key: &str) -> Result<Self, String> {
        if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX_BYTES {
            return Err(format!(
                "an idempotency key has 1 to {IDEMPOTENCY_KEY_MAX_BYTES} bytes, not {}",
                key.len()
            ));
        }
        let hash = Sha256::digest(key.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&hash[..16]);
        Ok(IdempotencyKey(out))
    }
}

/// One remembered key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    pub key: IdempotencyKey,
    pub base_offset: u64,
    pub record_count: u32,
    pub committed_at_ms: i64,
    /// The first 8 bytes of the batch's content digest.
    pub digest: u64,
}

/// The keys committed to a partition within the window, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyWindow {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    packed: String,
    /// Keys committed before this time may have been forgotten before their window ended.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub forgotten_until_ms: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl KeyWindow {
    pub fn is_empty(&self) -> bool {
        self.packed.is_empty() && self.forgotten_until_ms == 0
    }

    /// The window without the keys whose time is up at `now_ms`, so that a burst of keyed
    /// batches does not ride in every later manifest.
    pub fn pruned(&self, now_ms: i64) -> Self {
        if self.packed.is_empty() {
            return self.clone();
        }
        match self.entries() {
            Ok(mut entries) => {
                entries.retain(|e| now_ms - e.committed_at_ms <= IDEMPOTENCY_WINDOW_MS);
                KeyWindow::from_entries(&entries, self.forgotten_until_ms)
            }
            // A damaged window is reported by `check_bounds`, not silently dropped.
            Err(_) => self.clone(),
        }
    }

    pub fn entries(&self) -> Result<Vec<KeyEntry>, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.packed)
            .map_err(|e| format!("idempotency keys do not decode: {e}"))?;
        if !bytes.len().is_multiple_of(ENTRY_BYTES) {
            return Err(format!(
                "idempotency keys are {} bytes, not a multiple of {ENTRY_BYTES}",
                bytes.len()
            ));
        }
        Ok(bytes.chunks_exact(ENTRY_BYTES).map(unpack).collect())
    }

    fn from_entries(entries: &[KeyEntry], forgotten_until_ms: i64) -> Self {
        let mut bytes = Vec::with_capacity(entries.len() * ENTRY_BYTES);
        for e in entries {
            pack(e, &mut bytes);
        }
        KeyWindow {
            packed: base64::engine::general_purpose::STANDARD.encode(bytes),
            forgotten_until_ms,
        }
    }

    /// The committed batch `key` stands for, if it is still within its window at `now_ms`.
    /// A key committed with other content is an error: it would otherwise drop this batch.
    pub fn lookup(
        &self,
        key: &IdempotencyKey,
        digest: u64,
        now_ms: i64,
    ) -> Result<Option<KeyEntry>, ApplyError> {
        let entries = self.entries().map_err(ApplyError::Invariant)?;
        let Some(hit) = entries
            .iter()
            .rev()
            .find(|e| e.key == *key && now_ms - e.committed_at_ms <= IDEMPOTENCY_WINDOW_MS)
        else {
            return Ok(None);
        };
        if hit.digest != digest {
            return Err(ApplyError::Sequence(format!(
                "idempotency key was used at offset {} for a batch with different content; a key \
                 never stands for two batches",
                hit.base_offset
            )));
        }
        Ok(Some(*hit))
    }

    /// The window after committing `entry`: expired keys dropped, the oldest dropped early
    /// (and recorded) past [`IDEMPOTENCY_KEYS_MAX`].
    pub fn with(&self, entry: KeyEntry) -> Result<Self, ApplyError> {
        let now = entry.committed_at_ms;
        let mut entries = self.entries().map_err(ApplyError::Invariant)?;
        entries.retain(|e| now - e.committed_at_ms <= IDEMPOTENCY_WINDOW_MS);
        entries.push(entry);
        let mut forgotten = self.forgotten_until_ms;
        if entries.len() > IDEMPOTENCY_KEYS_MAX {
            let drop = entries.len() - IDEMPOTENCY_KEYS_MAX;
            forgotten = forgotten.max(entries[drop - 1].committed_at_ms);
            entries.drain(..drop);
        }
        Ok(KeyWindow::from_entries(&entries, forgotten))
    }

    pub fn check_bounds(&self) -> Result<(), String> {
        let n = self.entries()?.len();
        if n > IDEMPOTENCY_KEYS_MAX {
            return Err(format!(
                "{n} idempotency keys kept, over {IDEMPOTENCY_KEYS_MAX}"
            ));
        }
        Ok(())
    }
}

fn pack(e: &KeyEntry, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.key.0);
    out.extend_from_slice(&e.base_offset.to_be_bytes());
    out.extend_from_slice(&e.record_count.to_be_bytes());
    out.extend_from_slice(&e.committed_at_ms.to_be_bytes());
    out.extend_from_slice(&e.digest.to_be_bytes());
}

fn unpack(b: &[u8]) -> KeyEntry {
    let mut key = [0u8; 16];
    key.copy_from_slice(&b[..16]);
    let u64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        a
    };
    let mut count = [0u8; 4];
    count.copy_from_slice(&b[24..28]);
    KeyEntry {
        key: IdempotencyKey(key),
        base_offset: u64::from_be_bytes(u64_at(16)),
        record_count: u32::from_be_bytes(count),
        committed_at_ms: i64::from_be_bytes(u64_at(28)),
        digest: u64::from_be_bytes(u64_at(36)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, base: u64, at: i64, digest: u64) -> KeyEntry {
        KeyEntry {
            key: IdempotencyKey::new(name).unwrap(),
            base_offset: base,
            record_count: 2,
            committed_at_ms: at,
            digest,
        }
    }

    #[test]
    fn keys_are_found_within_their_window_only() {
        let w = KeyWindow::default().with(entry("a", 10, 1_000, 7)).unwrap();
        let a = IdempotencyKey::new("a").unwrap();
        assert_eq!(w.lookup(&a, 7, 1_000).unwrap().unwrap().base_offset, 10);
        let end = 1_000 + IDEMPOTENCY_WINDOW_MS;
        assert!(w.lookup(&a, 7, end).unwrap().is_some());
        assert!(w.lookup(&a, 7, end + 1).unwrap().is_none());
        assert!(w.lookup(&a, 8, 1_000).is_err(), "same key, other content");
        let later = w.with(entry("b", 12, end + 1, 1)).unwrap();
        assert_eq!(later.entries().unwrap().len(), 1, "a expired");
    }

    #[test]
    fn the_cap_forgets_the_oldest_and_says_until_when() {
        let mut w = KeyWindow::default();
        for i in 0..(IDEMPOTENCY_KEYS_MAX as i64 + 3) {
            w = w.with(entry(&format!("k{i}"), i as u64, i, 0)).unwrap();
        }
        assert_eq!(w.entries().unwrap().len(), IDEMPOTENCY_KEYS_MAX);
        assert_eq!(w.forgotten_until_ms, 2);
        w.check_bounds().unwrap();
        let k0 = IdempotencyKey::new("k0").unwrap();
        assert!(w.lookup(&k0, 0, 10).unwrap().is_none());
    }

    #[test]
    fn bad_keys_and_damaged_windows_are_errors() {
        assert!(IdempotencyKey::new("").is_err());
        assert!(IdempotencyKey::new(&"x".repeat(257)).is_err());
        let bad = KeyWindow {
            packed: "AAAA".into(),
            forgotten_until_ms: 0,
        };
        assert!(bad.check_bounds().is_err());
    }
}
