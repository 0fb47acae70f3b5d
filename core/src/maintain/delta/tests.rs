#![allow(clippy::unwrap_used)]

use super::*;
use crate::client::PailOptions;
use crate::clock::ManualClock;
use crate::maintain::MaintainOptions;
use crate::record::Record;
use crate::topic::TopicConfig;
use std::sync::Arc;

const T0: i64 = 1_700_000_000_000;

fn client(store: &Store, clock: &ManualClock) -> Pail {
    let options = PailOptions {
        clock: Arc::new(clock.clone()),
        ..PailOptions::default()
    };
    Pail::with_options(store.clone(), options)
}

fn no_grace() -> MaintainOptions {
    MaintainOptions {
        grace_ms: 0,
        ..MaintainOptions::default()
    }
}

async fn topic(pail: &Pail, partitions: u32, edit: impl FnOnce(&mut TopicConfig)) -> TopicName {
    let mut config = TopicConfig::new(partitions);
    edit(&mut config);
    pail.create_topic("orders", config).await.unwrap();
    TopicName::new("orders").unwrap()
}

async fn append(pail: &Pail, p: u32, n: usize) {
    let records = (0..n)
        .map(|i| Record::from_value(format!("v{i}")))
        .collect();
    pail.append("orders", p, records).await.unwrap();
}

async fn commit_lines(store: &Store, t: &TopicName, v: u64) -> Vec<Line> {
    let log = Log { store, topic: t };
    log.read_commit(v).await.unwrap()
}

async fn has_commit(store: &Store, t: &TopicName, v: u64) -> bool {
    store
        .head(&keys::delta_commit(t, v))
        .await
        .unwrap()
        .is_some()
}

/// `rounds` passes, each after one more segment (partitions in turn): one version each.
async fn sync_rounds(pail: &Pail, partitions: u32, rounds: u32) {
    for i in 0..rounds {
        append(pail, i % partitions, 1).await;
        pail.maintain(Some("orders"), no_grace()).await.unwrap();
    }
}

async fn has_checkpoint(store: &Store, t: &TopicName, v: u64) -> bool {
    store
        .head(&keys::delta_checkpoint(t, v))
        .await
        .unwrap()
        .is_some()
}

/// The table replayed from its JSON commits alone (no checkpoint).
async fn replayed(store: &Store, t: &TopicName) -> TableState {
    let mut state = TableState::default();
    let mut v = 0;
    while has_commit(store, t, v).await {
        let lines = commit_lines(store, t, v).await;
        state.apply(v, &lines);
        v += 1;
    }
    state
}

/// Per partition, the offsets the table's files cover by their stats, in order; they must
/// be contiguous.
fn covered(state: &TableState, p: u32) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = state
        .partition_files(p)
        .map(|a| {
            let s: serde_json::Value = serde_json::from_str(a.stats.as_deref().unwrap()).unwrap();
            let lo = s["minValues"]["offset"].as_u64().unwrap();
            let hi = s["maxValues"]["offset"].as_u64().unwrap();
            assert_eq!(s["numRecords"].as_u64().unwrap(), hi - lo + 1);
            (lo, hi)
        })
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert_eq!(w[0].1 + 1, w[1].0, "no gap, no overlap: {spans:?}");
    }
    spans
}

/// The live objects holding records, as table paths.
async fn live_paths(pail: &Pail, t: &TopicName, p: u32) -> HashSet<String> {
    let tip = pail.partition_tip(t.as_str(), p).await.unwrap().state;
    let live = Inventory::list(pail.part(t, p)).await.unwrap().live(&tip);
    spans(&live, &tip)
        .unwrap()
        .iter()
        .map(|s| {
            s.object
                .key
                .as_ref()
                .strip_prefix("topics/orders/")
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn the_first_sync_writes_protocol_metadata_and_every_segment_with_records() {
    let (store, clock) = (Store::memory(), ManualClock::new(T0));
    let pail = client(&store, &clock);
    let t = topic(&pail, 2, |_| {}).await;
    for _ in 0..3 {
        append(&pail, 0, 5).await;
    }
    append(&pail, 1, 2).await;
    let report = pail.maintain(Some("orders"), no_grace()).await.unwrap();
    assert!(
        report.iter().all(|r| r.delta_version == Some(0)),
        "{report:?}"
    );
    let lines = commit_lines(&store, &t, 0).await;
    assert!(lines[0].commit_info.is_some());
    assert_eq!(lines[1].protocol, Some(actions::protocol()));
    let meta = lines[2].meta_data.clone().unwrap();
    assert_eq!(meta.partition_columns, vec!["partition".to_string()]);
    let schema: serde_json::Value = serde_json::from_str(&meta.schema_string).unwrap();
    let names: Vec<&str> = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "offset",
            "timestamp",
            "key",
            "value",
            "headers",
            "partition"
        ]
    );
    assert!(
        !meta.schema_string.contains("unsupported"),
        "{}",
        meta.schema_string
    );
    let adds: Vec<&Add> = lines.iter().filter_map(|l| l.add.as_ref()).collect();
    assert_eq!(
        adds.len(),
        4,
        "three segments of partition 0, one of partition 1"
    );
    assert!(
        adds.iter()
            .all(|a| a.path.starts_with("partition=") && a.data_change)
    );
    let state = replayed(&store, &t).await;
    assert_eq!(covered(&state, 0), [(0, 4), (5, 9), (10, 14)]);
    assert_eq!(covered(&state, 1), [(0, 1)]);
    assert_eq!(state.txns.len(), 2);
    let stats: serde_json::Value = serde_json::from_str(adds[0].stats.as_deref().unwrap()).unwrap();
    assert_eq!(stats["minValues"]["timestamp"], "2023-11-14T22:13:20.000Z");
}

#[tokio::test]
async fn a_sync_with_nothing_new_commits_nothing_and_new_segments_come_next() {
    let (store, clock) = (Store::memory(), ManualClock::new(T0));
    let pail = client(&store, &clock);
    let t = topic(&pail, 1, |_| {}).await;
    append(&pail, 0, 3).await;
    pail.maintain(Some("orders"), no_grace()).await.unwrap();
    // A pass commits control versions of its own; none of them holds records.
    let report = pail.maintain(Some("orders"), no_grace()).await.unwrap();
    assert_eq!(report[0].delta_version, Some(0));
    assert!(!has_commit(&store, &t, 1).await);
    append(&pail, 0, 4).await;
    let report = pail.maintain(Some("orders"), no_grace()).await.unwrap();
    assert_eq!(report[0].delta_version, Some(1));
    let adds: Vec<Add> = commit_lines(&store, &t, 1)
        .await
        .into_iter()
        .filter_map(|l| l.add)
        .collect();
    assert_eq!(adds.len(), 1, "only the new segment");
    assert_eq!(covered(&replayed(&store, &t).await, 0), [(0, 2), (3, 6)]);
}

#[tokio::test]
async fn a_dry_run_reports_the_version_and_writes_nothing() {
    let (store, clock) = (Store::memory(), ManualClock::new(T0));
    let pail = client(&store, &clock);
    let t = topic(&pail, 1, |_| {}).await;
    append(&pail, 0, 3).await;
    let dry = MaintainOptions {
        dry_run: true,
        ..no_grace()
    };
    let report = pail.maintain(Some("orders"), dry).await.unwrap();
    assert_eq!(report[0].delta_version, None);
    assert!(!has_commit(&store, &t, 0).await);
}

#[tokio::test]
async fn compaction_adds_the_merged_file_and_removes_its_originals_in_one_commit() {
    let (store, clock) = (Store::memory(), ManualClock::new(T0));
    let pail = client(&store, &clock);
    let t = topic(&pail, 1, |c| c.compact_min_segments = 4).await;
    // Synced first, so the originals are in the table when they are merged.
    for _ in 0..3 {
        append(&pail, 0, 2).await;
    }
    pail.maintain(Some("orders"), no_grace()).await.unwrap();
    for _ in 0..3 {
        append(&pail, 0, 2).await;
    }
    let before = replayed(&store, &t).await;
    let report = pail.maintain(Some("orders"), no_grace()).await.unwrap();
    assert!(!report[0].merged.is_empty(), "{report:?}");
    let v = report[0].delta_version.unwrap();
    let lines = commit_lines(&store, &t, v).await;
    let removed: Vec<&str> = lines
        .iter()
        .filter_map(|l| Some(l.remove.as_ref()?.path.as_str()))
        .collect();
    let added: Vec<&str> = lines
        .iter()
        .filter_map(|l| Some(l.add.as_ref()?.path.as_str()))
        .collect();
    assert_eq!(
        removed.len(),
        before.files.len(),
        "every original synced before: {lines:?}"
    );
    assert!(
        added.iter().any(|p| p.split('-').count() == 3),
        "the merged file: {added:?}"
    );
    let after = replayed(&store, &t).await;
    assert_eq!(covered(&after, 0).first().map(|s| s.0), Some(0));
    assert_eq!(covered(&after, 0).last().map(|s| s.1), Some(11));
    // The table names exactly the live objects, and every one exists (the originals were
    // deleted after the sync that removed them).
    let names: HashSet<String> = after.files.keys().cloned().collect();
    assert_eq!(names, live_paths(&pail, &t, 0).await);
    for key in after.object_keys(&t) {
        assert!(store.head(&key).await.unwrap().is_some(), "{key}");
    }
    // The keys the deletes are checked against are the listing's own keys.
    let listed: HashSet<Path> = Inventory::list(pail.part(&t, 0))
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert!(!after.files.is_empty() && after.object_keys(&t).is_subset(&listed));
}

#[tokio::test]
async fn retention_removes_the_dropped_files() {
    let (store, clock) = (Store::memory(), ManualClock::new(T0));
    let pail = client(&store, &clock);
    let t = topic(&pail, 1, |c| c.retention_ms = Some(100_000)).await;
    for _ in 0..3 {
        append(&pail, 0, 2).await;
        clock.advance_ms(60_000);
    }
    pail.maintain(Some("orders"), no_grace()).await.unwrap();
    let state = replayed(&store, &t).await;
    // The first two segments are older than 100 s at the pass: dropped, never in the table.
    assert_eq!(covered(&state, 0), [(4, 5)]);
    append(&pail, 0, 2).await;
    clock.advance_ms(200_000);
    append(&pail, 0, 2).await;
    let report = pail.maintain(Some("orders"), no_grace()).await.unwrap();
    assert_eq!(report[0].log_start_offset, Some(8), "{report:?}");
    let v = report[0].delta_version.unwrap();
    let removes = commit_lines(&store, &t, v)
        .await
        .into_iter()
        .filter(|l| l.remove.is_some());
    assert_eq!(removes.count(), 1);
    let state = replayed(&store, &t).await;
    assert_eq!(covered(&state, 0), [(8, 9)]);
    for key in state.object_keys(&t) {
        assert!(store.head(&key).await.unwrap().is_some(), "{key}");
    }
}

#[tokio::test]
async fn two_syncs_racing_make_one_commit_and_the_same_table() {
    let (store, clock) = (Store::memory(), ManualClock::new(T0));
    let pail = client(&store, &clock);
    let t = topic(&pail, 2, |_| {}).await;
    for i in 0..6 {
        append(&pail, i % 2, 3).await;
    }
    let meta = pail.topic_latest("orders").await.unwrap();
    let (a, b) = (client(&store, &clock), client(&store, &clock));
    let (ra, rb) = tokio::join!(sync(&a, &meta, &[0, 1]), sync(&b, &meta, &[0, 1]));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.version, Some(0));
    assert_eq!(rb.version, Some(0));
    assert!(
        !has_commit(&store, &t, 1).await,
        "the loser found its work done"
    );
    assert_eq!(ra.files, rb.files);
    let state = replayed(&store, &t).await;
    assert_eq!(state.files, ra.files);
    assert_eq!(covered(&state, 0), [(0, 2), (3, 5), (6, 8)]);
    // A loser whose view is newer commits only what the winner lacked.
    append(&pail, 1, 1).await;
    let again = sync(&a, &meta, &[0, 1]).await.unwrap();
    assert_eq!(again.version, Some(1));
    assert_eq!(
        covered(&replayed(&store, &t).await, 1),
        [(0, 2), (3, 5), (6, 8), (9, 9)]
    );
}

#[tokio::test]
async fn a_sync_that_lost_the_race_never_takes_the_table_back() {
    let (store, clock) = (Store::memory(), ManualClock::new(T0));
    let pail = client(&store, &clock);
    let t = topic(&pail, 1, |_| {}).await;
    append(&pail, 0, 2).await;
    let meta = pail.topic_latest("orders").await.unwrap();
    sync(&pail, &meta, &[0]).await.unwrap();
    let mut state = replayed(&store, &t).await;
    // A newer view than ours is in the table: our partition is left alone.
    state.txns.insert(actions::partition_app_id(0), i64::MAX);
    append(&pail, 0, 2).await;
    assert!(changes(&pail, &meta, &[0], &state).await.unwrap().is_none());
}

#[tokio::test]
async fn checkpoints_every_ten_versions_hold_what_replay_holds() {
    let (store, clock) = (Store::memory(), ManualClock::new(T0));
    let pail = client(&store, &clock);
    let t = topic(&pail, 2, |_| {}).await;
    sync_rounds(&pail, 2, 12).await;
    assert!(has_checkpoint(&store, &t, 10).await);
    let hint = store
        .get(&keys::delta_last_checkpoint(&t))
        .await
        .unwrap()
        .unwrap();
    let hint: serde_json::Value = serde_json::from_slice(&hint).unwrap();
    assert_eq!(hint["version"], 10);
    let log = Log {
        store: &store,
        topic: &t,
    };
    let from_checkpoint = log.load().await.unwrap();
    let mut from_json = replayed(&store, &t).await;
    assert_eq!(from_checkpoint.checkpoint, Some(10));
    assert_eq!(from_json.version, Some(11));
    from_json.checkpoint = Some(10);
    assert_eq!(from_checkpoint, from_json);
    let decoded = log.read_checkpoint(10).await.unwrap().unwrap();
    assert_eq!(decoded.files.len(), 11);
    assert_eq!(decoded.protocol, Some(actions::protocol()));
}

fn object(base: u64, first: u64, last: u64) -> Object {
    Object {
        key: Path::from(format!("topics/orders/partition=0/{base}-{first}-{last}")),
        seg: keys::SegmentKey {
            base_offset: base,
            first_version: first,
            last_version: last,
        },
        size: 1,
        modified_ms: 0,
    }
}

#[test]
fn spans_skip_empty_objects_and_refuse_a_gap() {
    let mut tip = PartitionManifest::genesis("orders", 0);
    tip.version = 5;
    tip.next_offset = 30;
    // Versions 1..=3 merged (offsets 0..10), 4 a control commit, 5 holds 10..30.
    let live = [object(0, 1, 3), object(10, 4, 4), object(10, 5, 5)];
    let got: Vec<(u64, u64)> = spans(&live, &tip)
        .unwrap()
        .iter()
        .map(|s| (s.base_offset, s.next_offset))
        .collect();
    assert_eq!(got, [(0, 10), (10, 30)]);
    // The merged object of 1..=3 not written yet: the view would have a gap.
    assert!(
        spans(&live[1..], &tip).is_some(),
        "a view may start anywhere"
    );
    assert!(spans(&[object(0, 1, 1), object(10, 5, 5)], &tip).is_none());
    assert!(spans(&live[..2], &tip).is_none(), "must reach the tip");
}

#[tokio::test]
async fn deleting_the_topic_deletes_its_table_and_a_new_one_starts_at_version_0() {
    let (store, clock) = (Store::memory(), ManualClock::new(T0));
    let pail = client(&store, &clock);
    let t = topic(&pail, 1, |_| {}).await;
    append(&pail, 0, 3).await;
    pail.maintain(Some("orders"), no_grace()).await.unwrap();
    append(&pail, 0, 3).await;
    pail.maintain(Some("orders"), no_grace()).await.unwrap();
    assert!(has_commit(&store, &t, 1).await);
    pail.delete_topic("orders").await.unwrap();
    let left = store.list_after(&keys::delta_log(&t), None).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    pail.create_topic("orders", TopicConfig::new(1))
        .await
        .unwrap();
    append(&pail, 0, 2).await;
    let report = pail.maintain(Some("orders"), no_grace()).await.unwrap();
    assert_eq!(report[0].delta_version, Some(0));
    // Offsets continue across re-creation (never reused); the table holds only the new ones.
    let state = replayed(&store, &t).await;
    assert_eq!(covered(&state, 0), [(6, 7)]);
}

/// The requests of one sync of a 4-partition topic from a fresh client, with one new segment
/// per partition, and with nothing new (architecture.md section 13 states these).
#[tokio::test]
async fn a_sync_costs_a_bounded_number_of_requests() {
    use crate::storage::metrics::{MeteredStore, RequestCounts};
    use object_store::ObjectStore;
    let counts = Arc::new(RequestCounts::default());
    let c = Arc::clone(&counts);
    let store = Store::memory()
        .layered(move |inner| Arc::new(MeteredStore::new(inner, c)) as Arc<dyn ObjectStore>);
    let clock = ManualClock::new(T0);
    let pail = client(&store, &clock);
    topic(&pail, 4, |_| {}).await;
    for p in 0..4 {
        append(&pail, p, 3).await;
    }
    let meta = pail.topic_latest("orders").await.unwrap();
    sync(&pail, &meta, &[0, 1, 2, 3]).await.unwrap();
    for p in 0..4 {
        append(&pail, p, 3).await;
    }
    let cold = client(&store, &clock);
    let before = counts.snapshot();
    let state = sync(&cold, &meta, &[0, 1, 2, 3]).await.unwrap();
    let new = counts.snapshot().since(&before);
    assert_eq!(state.version, Some(1));
    let before = counts.snapshot();
    sync(&cold, &meta, &[0, 1, 2, 3]).await.unwrap();
    let idle = counts.snapshot().since(&before);
    eprintln!("sync with 4 new files: {new:?}; sync with none: {idle:?}");
    assert_eq!(
        (new.puts, idle.puts),
        (1, 0),
        "one commit, none when nothing changed"
    );
    // The log once; per partition its folder, and a cold client's tip lookup.
    assert!(new.lists <= 1 + 2 * 4, "{new:?}");
    assert_eq!(idle.lists, 1 + 4, "{idle:?}");
    // _last_checkpoint and the commits, each tip, the footer of each new file.
    assert!(new.gets <= 2 + 4 * 2 + 4, "{new:?}");
    assert!(idle.gets <= 3 + 4, "{idle:?}");
}

#[tokio::test]
async fn a_partition_never_written_is_no_obstacle() {
    let (store, clock) = (Store::memory(), ManualClock::new(T0));
    let pail = client(&store, &clock);
    let t = topic(&pail, 3, |_| {}).await;
    append(&pail, 1, 2).await;
    let report = pail.maintain(Some("orders"), no_grace()).await.unwrap();
    assert!(
        report.iter().all(|r| r.delta_version == Some(0)),
        "{report:?}"
    );
    let state = replayed(&store, &t).await;
    assert_eq!(covered(&state, 1), [(0, 1)]);
    assert!(covered(&state, 0).is_empty() && covered(&state, 2).is_empty());
}

#[tokio::test]
async fn doctor_finds_nothing_wrong_with_the_table_or_config_folders() {
    let (store, clock) = (Store::memory(), ManualClock::new(T0));
    let pail = client(&store, &clock);
    let t = topic(&pail, 1, |_| {}).await;
    sync_rounds(&pail, 1, 11).await;
    assert!(has_checkpoint(&store, &t, 10).await);
    let setting = [("retention.ms".to_string(), "86400000".to_string())];
    pail.alter_topic("orders", &setting, None).await.unwrap();
    let report = pail.doctor(Some("orders")).await.unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[tokio::test]
async fn a_damaged_log_is_reported_and_holds_back_only_its_topics_deletes() {
    let (store, clock) = (Store::memory(), ManualClock::new(T0));
    let pail = client(&store, &clock);
    let t = topic(&pail, 1, |c| c.retention_ms = Some(1_000)).await;
    pail.create_topic("other", TopicConfig::new(1))
        .await
        .unwrap();
    pail.append("other", 0, vec![Record::from_value("x")])
        .await
        .unwrap();
    append(&pail, 0, 2).await;
    let damaged = Bytes::from_static(b"{not json\n");
    store
        .create(&keys::delta_commit(&t, 0), damaged)
        .await
        .unwrap();
    clock.advance_ms(10_000);
    let reports = pail.maintain(None, no_grace()).await.unwrap();
    let orders: Vec<_> = reports.iter().filter(|r| r.topic == "orders").collect();
    let other: Vec<_> = reports.iter().filter(|r| r.topic == "other").collect();
    assert!(
        orders[0]
            .delta_error
            .as_deref()
            .is_some_and(|e| e.contains("_delta_log"))
    );
    assert_eq!(orders[0].dropped_segments, 1, "retention still committed");
    assert_eq!(
        orders[0].deleted_objects, 0,
        "deletes wait for a readable table"
    );
    assert_eq!(
        (other[0].delta_version, &other[0].delta_error),
        (Some(0), &None)
    );
    // Deleting the damaged log lets the next pass start the table again.
    store
        .delete_many(&[keys::delta_commit(&t, 0)])
        .await
        .unwrap();
    let reports = pail.maintain(Some("orders"), no_grace()).await.unwrap();
    assert_eq!(reports[0].delta_version, Some(0));
    assert!(reports[0].deleted_objects > 0, "{reports:?}");
}

/// Every version number of the log's commits and checkpoints still in the store.
async fn log_versions(store: &Store, t: &TopicName) -> (Vec<u64>, Vec<u64>) {
    let listing = Log { store, topic: t }.list(None).await.unwrap();
    let mut commits = Vec::new();
    let mut checkpoints = Vec::new();
    for k in listing {
        match k {
            DeltaLogKey::Commit(v) => commits.push(v),
            DeltaLogKey::Checkpoint(v) => checkpoints.push(v),
        }
    }
    (commits, checkpoints)
}

#[tokio::test]
async fn log_files_past_the_retention_go_once_a_checkpoint_as_old_covers_them() {
    let (store, clock) = (Store::memory(), ManualClock::new(T0));
    let pail = client(&store, &clock);
    let t = topic(&pail, 2, |_| {}).await;
    sync_rounds(&pail, 2, 25).await;
    // Young log: everything stays, however many checkpoints cover it.
    let (commits, checkpoints) = log_versions(&store, &t).await;
    assert_eq!(commits, (0..25).collect::<Vec<_>>());
    assert_eq!(checkpoints, vec![10, 20]);
    let before = Log {
        store: &store,
        topic: &t,
    }
    .load()
    .await
    .unwrap();

    // A month and a day later (the store stamps objects with its own time, so the client's
    // clock moves past it): the pass that writes checkpoint 30 finds 10, 20 and 30 past the
    // retention and deletes what checkpoint 30 covers; time travel still reaches 30.
    let wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let late = ManualClock::new(wall_ms + LOG_RETENTION_MS + 86_400_000);
    let later = client(&store, &late);
    sync_rounds(&later, 2, 6).await;
    let (commits, checkpoints) = log_versions(&store, &t).await;
    assert_eq!(commits, (30..31).collect::<Vec<_>>());
    assert_eq!(checkpoints, vec![30]);
    let after = Log {
        store: &store,
        topic: &t,
    }
    .load()
    .await
    .unwrap();
    assert_eq!(after.version, Some(30));
    assert_eq!(after.checkpoint, Some(30));
    assert!(before.files.keys().all(|f| after.files.contains_key(f)));
    assert_eq!(after.files.len(), before.files.len() + 6);
}
