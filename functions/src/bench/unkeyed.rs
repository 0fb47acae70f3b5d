//! `pail bench produce --placement random|moving`: single-batch writers, as HTTP produce
//! requests or Lambda invocations are. Each writer is its own client and appends its share of
//! the records as one unkeyed batch to a partition picked at random (or to
//! `--first-partition`, for a partition made busy by skew); with `moving` the batch leaves a
//! partition where it keeps losing races (`Pail::append_unkeyed`).

use pail_core::{AppendOptions, Pail, Record, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{BenchArgs, Placement, Produced, ValuePool, metered};

/// What one writer's batch did.
struct Landed {
    took: Duration,
    records: u64,
    moved: bool,
}

pub(super) async fn produce(
    store: &Store,
    topic: &str,
    args: &BenchArgs,
    origin: Instant,
    count: &Arc<AtomicU64>,
) -> anyhow::Result<Produced> {
    if let Some(p) = args.first_partition {
        anyhow::ensure!(
            p < args.partitions,
            "--first-partition {p} is not a partition of a {}-partition topic",
            args.partitions
        );
    }
    let (metered_store, counts) = metered(store);
    let values = Arc::new(ValuePool::new(args.record_bytes));
    let share = args.records.div_ceil(args.writers as u64);
    let started = Instant::now();
    let writers = (0..args.writers as u64).map(|w| {
        let first = w * share;
        let n = share.min(args.records.saturating_sub(first));
        let records = (first..first + n)
            .map(|i| Record::from_value(values.value(i, origin.elapsed().as_nanos() as u64)))
            .collect();
        let pail = Pail::new(metered_store.clone());
        let first = args
            .first_partition
            .unwrap_or_else(|| rand::random::<u32>() % args.partitions);
        tokio::spawn(write(
            pail,
            topic.to_string(),
            records,
            first,
            placement(args),
        ))
    });
    let handles: Vec<_> = writers.collect();
    let mut acks = Vec::with_capacity(args.records as usize);
    let mut moved = 0;
    for h in handles {
        let landed = h.await??;
        acks.extend(std::iter::repeat_n(landed.took, landed.records as usize));
        moved += u64::from(landed.moved);
        count.fetch_add(landed.records, Ordering::Relaxed);
    }
    Ok(Produced {
        seconds: started.elapsed().as_secs_f64(),
        acks,
        requests: counts.snapshot(),
        moved: Some(moved),
    })
}

/// The placement and, when moving, after how many lost races.
#[derive(Clone, Copy)]
enum Place {
    Random,
    Moving(Option<u32>),
}

fn placement(args: &BenchArgs) -> Place {
    match args.placement {
        Placement::Moving => Place::Moving(args.move_after),
        _ => Place::Random,
    }
}

async fn write(
    pail: Pail,
    topic: String,
    records: Vec<Record>,
    first: u32,
    place: Place,
) -> anyhow::Result<Landed> {
    let n = records.len() as u64;
    let sent = Instant::now();
    let landed = match place {
        Place::Random => pail.append(&topic, first, records).await?,
        Place::Moving(after) => {
            let opts = AppendOptions {
                give_up_after_lost_races: after,
                ..AppendOptions::default()
            };
            pail.append_unkeyed(&topic, first, records, opts).await?
        }
    };
    Ok(Landed {
        took: sent.elapsed(),
        records: n,
        moved: landed.partition != first,
    })
}
