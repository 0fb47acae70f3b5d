//! What maintenance costs in store requests (docs/architecture.md section 8 quotes these):
//! a warm append, and passes over a partition of small segments, counted by the metered store.
#![allow(clippy::unwrap_used)]

use pail_core::maintain::MaintainOptions;
use pail_core::{Pail, Record, TopicConfig};
use pail_tests::{Backend, TestStore};

#[tokio::test]
async fn a_pass_costs_what_the_architecture_says() {
    let ts = TestStore::new(Backend::Memory).await.unwrap();
    let (store, counts) = ts.metered();
    let pail = Pail::new(store.clone());
    pail.create_topic("t", TopicConfig::new(1)).await.unwrap();
    let commits = 1000u64;
    pail.append("t", 0, vec![Record::from_value("warm-up")])
        .await
        .unwrap();
    let before = counts.snapshot();
    for i in 1..commits {
        pail.append("t", 0, vec![Record::from_value(format!("v{i}"))])
            .await
            .unwrap();
    }
    let append = counts.snapshot().since(&before);
    println!("{} warm appends: {append:?}", commits - 1);
    // One PUT per commit, one GET to check the version built on is still there (the
    // stale-writer check), and the hint every 64th version (1 GET + 1 PUT).
    assert!(append.puts <= (commits - 1) * 102 / 100, "{append:?}");
    assert!(append.gets <= (commits - 1) * 102 / 100, "{append:?}");

    let opts = MaintainOptions {
        grace_ms: 0,
        ..MaintainOptions::default()
    };
    let passer = Pail::new(store.clone());
    let before = counts.snapshot();
    let report = passer.maintain(Some("t"), opts).await.unwrap();
    let pass = counts.snapshot().since(&before);
    println!("compacting pass: {pass:?} {report:?}");
    assert_eq!(report[0].merged.len(), 1, "{report:?}");
    // Per original: one GET (a small segment's footer and rows come together); a handful of
    // tips, listings and commits more, and the Delta sync (its log's listing and commit, the
    // partition's listing): 4 PUTs (merged object, swap, cleanup, Delta commit), 10 LISTs.
    assert!(pass.gets <= commits + 20, "{pass:?}");
    assert!(pass.puts <= 4 && pass.lists <= 10, "{pass:?}");
    assert_eq!(pass.deletes, commits - 1);

    let before = counts.snapshot();
    passer.maintain(Some("t"), opts).await.unwrap();
    let idle = counts.snapshot().since(&before);
    println!("idle pass: {idle:?}");
    assert!(
        idle.puts == 0 && idle.deletes == 0 && idle.gets <= 9 && idle.lists <= 4,
        "{idle:?}"
    );
}
