//! Deleting old consumer-group versions (issue 12) on every store: the tip, the hinted version
//! and the newest `GROUP_VERSIONS_KEPT` stay, the state reads the same, a member paused with a
//! cached tip that was deleted cannot re-create it, and a reader's stale view ends within
//! `GROUP_TIP_TTL`.
#![allow(clippy::unwrap_used)]

use pail_core::group::{GROUP_TIP_TTL, GroupEdit, TopicPartition};
use pail_core::maintain::groups::GROUP_VERSIONS_KEPT;
use pail_core::storage::keys;
use pail_core::{Pail, Store};
use pail_tests::{Backend, TestStore, on_every_store};
use std::collections::BTreeMap;

on_every_store!(
    old_group_versions_go_but_never_the_tip_the_hint_or_the_newest,
    a_paused_member_cannot_recreate_a_deleted_group_version,
);

/// Sets the group's committed offset of `t/0` to `offset`: one version.
async fn commit(pail: &Pail, group: &str, offset: u64) -> u64 {
    let tp = TopicPartition {
        topic: "t".into(),
        partition: 0,
    };
    let edit = GroupEdit::ResetOffsets {
        offsets: BTreeMap::from([(tp, offset)]),
    };
    pail.group_commit(group, &edit, None).await.unwrap().version
}

async fn versions(store: &Store, group: &str) -> Vec<u64> {
    store
        .list_after(&keys::group_versions(group), None)
        .await
        .unwrap()
        .iter()
        .filter_map(|m| keys::parse_group_version(&m.location))
        .collect()
}

fn committed(state: &pail_core::group::GroupState) -> u64 {
    state.offsets.values().next().unwrap().offset
}

async fn old_group_versions_go_but_never_the_tip_the_hint_or_the_newest(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let group = pail_tests::unique("g-");
    let pail = ts.client();
    let n = if b == Backend::S3 { 150 } else { 300 };
    for i in 1..=n {
        commit(&pail, &group, i).await;
    }
    // A dry run deletes nothing.
    let dry = ts.client().maintain_group(&group, true).await.unwrap();
    assert_eq!(versions(&ts.store, &group).await.len() as u64, n);
    let report = ts.client().maintain_group(&group, false).await.unwrap();
    assert_eq!(report, dry, "a dry run reports what a pass does");
    assert_eq!(report.tip_version, n);
    let kept_from = (n + 1 - GROUP_VERSIONS_KEPT).min(n / 64 * 64);
    assert_eq!(report.kept_from, kept_from, "{report:?}");
    assert_eq!(report.deleted_versions, kept_from - 1);
    let left = versions(&ts.store, &group).await;
    assert_eq!(left, (kept_from..=n).collect::<Vec<_>>());
    // A second pass is idle; a fresh client finds the same state and the chain goes on.
    assert_eq!(
        ts.client()
            .maintain_group(&group, false)
            .await
            .unwrap()
            .deleted_versions,
        0
    );
    let fresh = ts.client();
    assert_eq!(committed(&fresh.group_state(&group).await.unwrap()), n);
    assert_eq!(commit(&fresh, &group, 7).await, n + 1);
    let all = ts.client().maintain_groups(false).await.unwrap();
    assert!(all.iter().any(|r| r.group == group), "{all:?}");
}

async fn a_paused_member_cannot_recreate_a_deleted_group_version(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let group = pail_tests::unique("g-");
    // The paused member caches version 1, the others go on far past the kept versions.
    let paused = ts.client();
    commit(&paused, &group, 1).await;
    let others = ts.client();
    let n = GROUP_VERSIONS_KEPT + 40;
    for i in 2..=n {
        commit(&others, &group, i).await;
    }
    let report = ts.client().maintain_group(&group, false).await.unwrap();
    assert!(report.deleted_versions >= 2, "{report:?}");
    // Version 2's key is free again; the paused member's commit must land on the tip.
    let landed = commit(&paused, &group, 999).await;
    assert_eq!(
        landed,
        n + 1,
        "built on the latest version, not on its deleted cache"
    );
    let left = versions(&ts.store, &group).await;
    assert_eq!(
        left.first(),
        Some(&report.kept_from),
        "nothing re-created below: {left:?}"
    );
    assert_eq!(left.last(), Some(&(n + 1)));
    let state = ts.client().group_state(&group).await.unwrap();
    assert_eq!((state.version, committed(&state)), (n + 1, 999));
}

/// A client that only reads, with a cached tip whose successor was deleted, sees that tip as
/// the newest for at most `GROUP_TIP_TTL`; then it discovers the chain again.
#[tokio::test(start_paused = true)]
async fn a_stale_group_view_ends_within_the_ttl() {
    let store = Store::memory();
    let group = "g";
    let reader = Pail::new(store.clone());
    commit(&reader, group, 1).await;
    let writer = Pail::new(store.clone());
    let n = GROUP_VERSIONS_KEPT + 10;
    for i in 2..=n {
        commit(&writer, group, i).await;
    }
    Pail::new(store.clone())
        .maintain_group(group, false)
        .await
        .unwrap();
    let seen = reader.group_state(group).await.unwrap();
    assert_eq!(
        seen.version, 1,
        "the documented window: the deleted successor looks like the end"
    );
    tokio::time::advance(GROUP_TIP_TTL).await;
    let seen = reader.group_state(group).await.unwrap();
    assert_eq!((seen.version, committed(&seen)), (n, n));
}
