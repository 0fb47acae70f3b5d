//! The randomness a client uses (commit ids, writer ids, backoff jitter), in one seedable
//! place, so a simulation that fixes the seed replays exactly.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::sync::Mutex;

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

    /// A 128-bit random id as 32 hex digits.
    pub fn id(&self) -> String {
        format!("{:032x}", crate::log::lock(&self.0).random::<u128>())
    }

    /// A uniform integer in `0..=max`.
    pub fn up_to(&self, max: u64) -> u64 {
        crate::log::lock(&self.0).random_range(0..=max)
    }
}
