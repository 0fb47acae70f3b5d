//! The stale writer whose withdrawal fails (issue 12): a writer paused across a compaction
//! re-creates a deleted original's key (its cached tip's successor), learns that it built on a
//! deleted version, and crashes before deleting what it made. The segment is off the chain,
//! holds records at offsets the merged segment also holds, and a glob sees it: the next pass
//! must delete it.
#![allow(clippy::unwrap_used)]

use pail_core::maintain::MaintainOptions;
use pail_core::storage::keys;
use pail_core::{Record, TopicConfig, TopicName};
use pail_tests::{Backend, TestStore, on_every_store, read_all};

on_every_store!(a_stale_writers_stray_segment_is_deleted_by_the_next_pass);

fn batch(tag: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record::from_value(format!("{tag}-{i}")))
        .collect()
}

async fn a_stale_writers_stray_segment_is_deleted_by_the_next_pass(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let topic = pail_tests::unique("stale-");
    let name = TopicName::new(&topic).unwrap();
    let pail = ts.client();
    pail.create_topic(&topic, TopicConfig::new(1))
        .await
        .unwrap();
    for i in 0..40 {
        pail.append(&topic, 0, batch(&format!("o{i}"), 2))
            .await
            .unwrap();
    }
    let expected = read_all(&ts.client(), &topic, 0).await;
    let stray = keys::segment(&name, 0, 2, 2);
    let bytes = ts.store.get(&stray).await.unwrap().unwrap();
    let opts = MaintainOptions {
        grace_ms: 0,
        ..MaintainOptions::default()
    };
    let report = ts.client().maintain(Some(&topic), opts).await.unwrap();
    assert!(!report[0].merged.is_empty(), "{report:?}");
    assert!(ts.store.get(&stray).await.unwrap().is_none(), "cleaned");
    // A writer paused on version 1 re-creates version 2's key and dies before withdrawing it
    // (the commit loop would delete it; a crash or a refused DELETE leaves it).
    ts.store.create(&stray, bytes).await.unwrap();
    assert_eq!(
        read_all(&ts.client(), &topic, 0).await,
        expected,
        "readers follow the chain"
    );
    ts.client().maintain(Some(&topic), opts).await.unwrap();
    assert!(
        ts.store.get(&stray).await.unwrap().is_none(),
        "the next pass deletes the stray"
    );
    assert_eq!(read_all(&ts.client(), &topic, 0).await, expected);
    let d = ts.client().describe_topic(&topic).await.unwrap().partitions[0].clone();
    let listed = ts
        .store
        .list_after(&keys::partition_dir(&name, 0), None)
        .await
        .unwrap();
    let segments = listed
        .iter()
        .filter(|m| keys::parse_segment_object(&m.location).is_some())
        .count();
    assert_eq!(d.segments as usize, segments, "{d:?}");
}
