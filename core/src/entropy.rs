//! The randomness a client uses, in two kinds that must not be mixed up.
//!
//! - [`attempt_id`]: the identity of one commit attempt, drawn from the operating system every
//!   time. Two processes must never draw the same one, whatever their history: a forked
//!   process, a restored VM or Lambda SnapStart snapshot, or two clients given the same seed all
//!   repeat a seeded generator's sequence, and an attempt that recognised a rival's object as its
//!   own would acknowledge someone else's records.
//! - [`Entropy`]: backoff jitter and other choices that only shape timing, seedable so that a
//!   simulation that fixes the seed replays exactly.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::sync::Mutex;

/// 128 bits from the operating system's generator, as 32 hex digits.
pub fn attempt_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Seedable randomness for jitter and schedules; never for identities.
#[derive(Debug)]
pub struct Entropy(Mutex<StdRng>);

impl Entropy {
    pub fn seeded(seed: u64) -> Self {
        Entropy(Mutex::new(StdRng::seed_from_u64(seed)))
    }

    /// Seeded from the operating system: different every run.
    pub fn from_os() -> Self {
        Entropy::seeded(rand::random())
    }

    /// A 64-bit value as 16 hex digits (for names that only need to differ in practice, such
    /// as a writer id; a simulation's seed makes them replay).
    pub fn token(&self) -> String {
        format!("{:016x}", crate::sync::lock(&self.0).random::<u64>())
    }

    /// A uniform integer in `0..=max`.
    pub fn up_to(&self, max: u64) -> u64 {
        crate::sync::lock(&self.0).random_range(0..=max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_ids_differ_even_when_jitter_replays() {
        let (a, b) = (Entropy::seeded(7), Entropy::seeded(7));
        assert_eq!(a.up_to(1000), b.up_to(1000), "seeded jitter replays");
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| attempt_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.len() == 32));
    }
}
