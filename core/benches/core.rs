//! Micro-benchmarks of the CPU work on pail's hot paths: encoding a segment, decoding its
//! footer, reading rows back, and applying a manifest edit. `cargo bench -p pail-core`.
#![allow(clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use pail_core::manifest::{
    AppendEdit, Applied, CommitContext, Edit, PartitionManifest, ProducerBatch, apply,
};
use pail_core::segment::{FOOTER_PREFETCH_BYTES, encode, parse_footer, read_rows};
use pail_core::{Record, Store};

fn records(n: usize, size: usize) -> Vec<Record> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            let value: Vec<u8> = (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b'a' + (x % 26) as u8
                })
                .collect();
            Record::from_value(value)
        })
        .collect()
}

/// A manifest for `n` records after a history with 64 idempotent producers.
fn manifest(n: u32) -> PartitionManifest {
    let mut m = PartitionManifest::genesis("bench", 0);
    for p in 0..64 {
        m = next(&m, &append(1, Some((p, 0))));
    }
    next(&m, &append(n, None))
}

fn append(n: u32, producer: Option<(u32, u64)>) -> Edit {
    Edit::Append(AppendEdit {
        key: None,
        topic_id: String::new(),
        min_timestamp_ms: 0,
        max_timestamp_ms: 0,
        record_count: n,
        leader: None,
        producer: producer.map(|(p, sequence)| ProducerBatch {
            producer_id: format!("producer-{p:04}-0123456789abcdef"),
            first_sequence: sequence,
        }),
    })
}

fn next(prev: &PartitionManifest, edit: &Edit) -> PartitionManifest {
    let ctx = CommitContext {
        digest: "d",
        writer: "w-0123456789abcdef",
        commit_id: "0123456789abcdef0123456789abcdef",
        now_ms: 1_700_000_000_000,
        prev_size: 1 << 20,
    };
    match apply(prev, edit, &ctx).unwrap() {
        Applied::Next(m) => *m,
        Applied::Duplicate { .. } => unreachable!("benchmark edits are fresh"),
    }
}

fn segment(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("segment");
    for n in [100usize, 4000] {
        let input = records(n, 1024);
        let m = manifest(n as u32);
        let ts: Vec<i64> = (0..n as i64).collect();
        group.throughput(Throughput::Bytes((n * 1024) as u64));
        group.bench_with_input(BenchmarkId::new("encode", n), &n, |b, _| {
            b.iter(|| encode(&input, &ts, &m).unwrap());
        });
        let bytes = encode(&input, &ts, &m).unwrap();
        let size = bytes.len() as u64;
        let tail = bytes.slice(bytes.len() - (FOOTER_PREFETCH_BYTES as usize).min(bytes.len())..);
        let key = Path::from("bench.parquet");
        group.bench_with_input(BenchmarkId::new("parse_footer", n), &n, |b, _| {
            b.iter(|| parse_footer(&key, tail.clone(), size).unwrap().unwrap());
        });
        let store = Store::memory();
        rt.block_on(store.object_store().put(&key, bytes.clone().into()))
            .unwrap();
        let footer = parse_footer(&key, tail.clone(), size).unwrap().unwrap();
        group.bench_with_input(BenchmarkId::new("read_rows", n), &n, |b, _| {
            b.iter(|| {
                rt.block_on(read_rows(&store, &key, &footer, 0, n as u64))
                    .unwrap()
            });
        });
    }
    group.finish();
}

fn manifest_apply(c: &mut Criterion) {
    let m = manifest(1);
    let plain = append(1000, None);
    let idempotent = append(1000, Some((7, 1)));
    c.bench_function("manifest/apply_append", |b| b.iter(|| next(&m, &plain)));
    c.bench_function("manifest/apply_idempotent_append_64_producers", |b| {
        b.iter(|| next(&m, &idempotent))
    });
    c.bench_function("manifest/encode_decode_64_producers", |b| {
        b.iter(|| PartitionManifest::decode(&m.encode().unwrap()).unwrap())
    });
}

criterion_group!(benches, segment, manifest_apply);
criterion_main!(benches);
