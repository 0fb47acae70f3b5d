//! What the deterministic simulations share (`tests/simulation.rs`, `sim_maintain.rs`,
//! `sim_groups.rs`): a clock on tokio's paused time, the paused single-threaded runtime they
//! run on, seeded clients, and the store wrapped in a seeded fault injector.

use object_store::ObjectStore;
use pail_core::storage::faults::{Faults, FaultyStore};
use pail_core::{Clock, Pail, PailOptions, Store};
use std::future::Future;
use std::sync::Arc;

/// Wall time as the paused tokio clock tells it: deterministic, advanced only by the runtime.
#[derive(Debug)]
pub struct SimClock {
    start: tokio::time::Instant,
}

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        1_700_000_000_000 + self.start.elapsed().as_millis() as i64
    }
}

/// A clock starting now, on the runtime's (paused) time.
pub fn clock() -> Arc<dyn Clock> {
    Arc::new(SimClock {
        start: tokio::time::Instant::now(),
    })
}

/// Runs `simulation` to its end on a single-threaded runtime whose time is paused, so every
/// sleep, lease and timeout advances in the same order on every run of a seed.
pub fn run_paused<F: Future>(simulation: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    rt.block_on(simulation)
}

/// A client named `writer` whose jitter and schedules come from `seed` (and its name, so two
/// clients of one seed differ), on the simulation's clock.
pub fn client(store: &Store, clock: &Arc<dyn Clock>, writer: &str, seed: u64) -> Pail {
    Pail::with_options(
        store.clone(),
        PailOptions {
            clock: Arc::clone(clock),
            writer_id: Some(writer.to_string()),
            seed: Some(seed ^ fxhash(writer)),
            ..PailOptions::default()
        },
    )
}

/// `base` with `faults` injected into every request.
pub fn faulty(base: &Store, faults: Arc<Faults>) -> Store {
    base.layered(move |inner| Arc::new(FaultyStore::new(inner, faults)) as Arc<dyn ObjectStore>)
}

/// FNV-1a: a stable hash of a name, the same in every build and process.
pub fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The seeds a simulation runs: `PAIL_SIM_SEED` alone (a replay), else `0..PAIL_SIM_SEEDS`,
/// else `0..default`.
pub fn seeds(default: u64) -> Vec<u64> {
    match std::env::var("PAIL_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("PAIL_SIM_SEED must be a number")],
        Err(_) => {
            let n = std::env::var("PAIL_SIM_SEEDS").map_or(default, |s| {
                s.parse().expect("PAIL_SIM_SEEDS must be a number")
            });
            (0..n).collect()
        }
    }
}
