//! The check that a store really does create-if-absent.
//!
//! Everything pail promises rests on one primitive: a create that fails when the key exists.
//! Some S3-compatible servers accept `If-None-Match: *` and ignore it (Garage 2.5, measured;
//! older MinIO and Ceph releases too); on such a store two writers both "win" a version and
//! one batch silently replaces another. So before its first write a client checks: it creates a
//! throwaway object twice and expects the second create to be refused, and the first content
//! to survive. The verdict is kept in the store (`_pail/conditional-writes.json`), so later
//! clients pay one GET instead of repeating the check. Cost of a check: 2 PUTs, 1 GET,
//! 1 DELETE, and 1 PUT for the verdict.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Created, Store, keys};
use crate::error::{Error, Result};

#[derive(Debug, Serialize, Deserialize)]
struct Verdict {
    conditional_writes: bool,
    checked_at_ms: i64,
}

pub(super) async fn conditional_writes(store: &Store) -> Result<()> {
    let verdict_key = keys::store_check();
    if let Some(bytes) = store.get(&verdict_key).await?
        && serde_json::from_slice::<Verdict>(&bytes).is_ok_and(|v| v.conditional_writes)
    {
        return Ok(());
    }
    let probe = keys::store_probe(&crate::entropy::attempt_id());
    let unsafe_store = |reason: String| Error::UnsafeStore {
        location: store.location().to_string(),
        reason,
    };
    let create = |bytes: &'static [u8]| store.create(&probe, Bytes::from_static(bytes));
    match create(b"first")
        .await
        .map_err(|e| Error::store("put", &probe, e))?
    {
        Created::Yes => {}
        Created::AlreadyExists => {
            return Err(unsafe_store(format!(
                "a create of the new key {probe} was refused as already existing"
            )));
        }
    }
    let second = create(b"second")
        .await
        .map_err(|e| Error::store("put", &probe, e))?;
    let kept = store.get(&probe).await?;
    let _ = store.delete(&probe).await;
    if second == Created::Yes || kept.as_deref() != Some(&b"first"[..]) {
        return Err(unsafe_store(
            "it ignores create-if-absent (If-None-Match: *): a second create of the same key \
             succeeded, so concurrent writers would overwrite each other's commits; use AWS S3, \
             a current MinIO, or another store with conditional writes"
                .into(),
        ));
    }
    let verdict = Verdict {
        conditional_writes: true,
        checked_at_ms: crate::clock::Clock::now_ms(&crate::clock::SystemClock),
    };
    let bytes = serde_json::to_vec(&verdict).map_err(|e| Error::Encode(e.to_string()))?;
    // Another client may have written the verdict meanwhile: either way it is there.
    let _ = store.create(&verdict_key, bytes.into()).await;
    Ok(())
}
