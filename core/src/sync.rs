//! Poison-tolerant locking, the one place it lives (below everything else in the crate).
//!
//! A poisoned lock only means another task panicked while holding it. Everything pail guards
//! with a std `Mutex` is either a cache (a hint: dropping or keeping a half-updated entry costs
//! requests, never correctness) or state whose invariants are re-established on every use, so
//! carrying on with whatever is there is right, and a panic never cascades into every caller.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
