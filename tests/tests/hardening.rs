//! Acknowledgements that match the log, in the interleavings a review found wrong (issue 9).
//! Each test names the item it proves; each failed on the code before the fix.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use pail_core::manifest::{Edit, LeaderClaim, ProducerBatch};
use pail_core::producer::{Producer, ProducerConfig};
use pail_core::storage::faults::{Fault, Op, Rule};
use pail_core::{
    AppendOptions, CacheLimits, Clock, ErrorKind, ManualClock, Pail, PailOptions, Record, Store,
    TopicConfig,
};
use pail_tests::{Backend, TestStore, on_every_store, read_all};
use std::sync::Arc;
use std::time::Duration;

on_every_store!(
    clients_with_one_seed_never_take_each_others_commits,
    a_retry_of_a_committed_batch_gets_its_offsets_after_the_lead_moved,
    a_batch_retried_after_500_other_producers_lands_once,
    a_keyed_batch_from_a_fresh_process_lands_once_after_500_others,
    a_reused_producer_sequence_with_other_content_is_refused,
    a_leader_epoch_is_tied_to_its_holder,
    create_topic_settles_an_unclear_answer,
    a_refused_write_fails_at_once_with_no_effect,
    client_caches_stay_within_their_limits,
);

async fn setup(b: Backend, partitions: u32) -> Option<(TestStore, String)> {
    let ts = TestStore::new(b).await?;
    let topic = pail_tests::unique("hard-");
    ts.client()
        .create_topic(&topic, TopicConfig::new(partitions))
        .await
        .unwrap();
    Some((ts, topic))
}

fn values(tag: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record::from_value(format!("{tag}-{i}")))
        .collect()
}

fn tagged(producer: &str, seq: u64) -> AppendOptions {
    AppendOptions {
        producer: Some(ProducerBatch {
            producer_id: producer.into(),
            first_sequence: seq,
        }),
        ..AppendOptions::default()
    }
}

/// Asserts every record of `batch` sits at `base..` in the log, and nowhere else.
async fn assert_once_at(pail: &Pail, topic: &str, partition: u32, base: u64, batch: &[Record]) {
    let log = read_all(pail, topic, partition).await;
    for (i, r) in batch.iter().enumerate() {
        let at: Vec<u64> = log
            .iter()
            .filter(|s| s.value == r.value)
            .map(|s| s.offset)
            .collect();
        assert_eq!(at, vec![base + i as u64], "{:?} in the log", r.value);
    }
}

/// Item 1. Two clients built with one seed (a fork, a restored snapshot) used to draw the same
/// commit ids, and the loser of a race read the winner's object as its own.
async fn clients_with_one_seed_never_take_each_others_commits(b: Backend) {
    let Some((ts, topic)) = setup(b, 1).await else {
        return;
    };
    let twin = || {
        Pail::with_options(
            ts.store.clone(),
            PailOptions {
                seed: Some(42),
                ..PailOptions::default()
            },
        )
    };
    let rounds = if b == Backend::S3 { 6 } else { 20 };
    let mut tasks = Vec::new();
    for who in ["a", "b"] {
        let (pail, topic) = (twin(), topic.clone());
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for round in 0..rounds {
                let batch = values(&format!("{who}{round}"), 3);
                let at = pail.append(&topic, 0, batch.clone()).await.unwrap();
                acks.push((at.base_offset, batch));
            }
            acks
        }));
    }
    let reader = ts.client();
    for task in tasks {
        for (base, batch) in task.await.unwrap() {
            assert_once_at(&reader, &topic, 0, base, &batch).await;
        }
    }
    assert_eq!(read_all(&reader, &topic, 0).await.len(), 2 * rounds * 3);
}

/// Item 2. A duplicate writes nothing and needs no right to write: a retry of a batch that
/// landed gets its offsets back even after another writer took the partition's lead.
async fn a_retry_of_a_committed_batch_gets_its_offsets_after_the_lead_moved(b: Backend) {
    let Some((ts, topic)) = setup(b, 1).await else {
        return;
    };
    let clock = ManualClock::new(1_000_000);
    let at = |writer: &str| {
        Pail::with_options(
            ts.store.clone(),
            PailOptions {
                clock: Arc::new(clock.clone()),
                writer_id: Some(writer.into()),
                ..PailOptions::default()
            },
        )
    };
    let (a, other) = (at("a"), at("b"));
    let batch = values("plain", 2);
    let first = a
        .append_with(&topic, 0, batch.clone(), tagged("pa", 0))
        .await
        .unwrap();
    other
        .commit_control(&topic, 0, Edit::AcquireLease { lease_ms: 60_000 })
        .await
        .unwrap();
    // The retry comes from a fresh process (a restarted writer): it sees the new lease.
    let retry = at("a")
        .append_with(&topic, 0, batch.clone(), tagged("pa", 0))
        .await
        .unwrap();
    assert_eq!(
        (retry.base_offset, retry.duplicate),
        (first.base_offset, true)
    );

    // The same for a leader whose epoch was superseded after its batch landed.
    clock.advance_ms(60_001);
    let led = a
        .commit_control(&topic, 0, Edit::AcquireLease { lease_ms: 100 })
        .await
        .unwrap();
    let claim = Some(LeaderClaim {
        epoch: led.state.leader_epoch,
        lease_ms: 100,
    });
    let led_batch = values("led", 2);
    let opts = AppendOptions {
        leader: claim,
        ..tagged("pa2", 0)
    };
    let first = a
        .append_with(&topic, 0, led_batch.clone(), opts.clone())
        .await
        .unwrap();
    clock.advance_ms(101);
    other
        .commit_control(&topic, 0, Edit::AcquireLease { lease_ms: 60_000 })
        .await
        .unwrap();
    let retry = at("a")
        .append_with(&topic, 0, led_batch.clone(), opts)
        .await
        .unwrap();
    assert_eq!(
        (retry.base_offset, retry.duplicate),
        (first.base_offset, true)
    );
    assert_once_at(&ts.client(), &topic, 0, first.base_offset, &led_batch).await;
}

/// A client whose appends to `topic`/0 can be made to land but lose their answer, with every
/// read-back failing, so that they end `OutcomeUnknown` with the batch in the log.
fn answer_losing_client(ts: &TestStore) -> (Pail, Arc<pail_core::storage::faults::Faults>) {
    let (store, faults) = ts.faulty(5);
    (Pail::new(store), faults)
}

fn lose_next_answer(faults: &pail_core::storage::faults::Faults, topic: &str) {
    let partition = format!("topics/{topic}/partition=0");
    faults.add(Rule::always(Op::Put, &partition, Fault::LostAnswer).times(1));
    faults.add(Rule::always(Op::Get, &partition, Fault::Error).times(4));
}

async fn others_write(ts: &TestStore, topic: &str, producers: usize) {
    let other = ts.client();
    for i in 0..producers {
        other
            .append_with(
                topic,
                0,
                values(&format!("o{i}"), 1),
                tagged(&format!("q{i}"), 0),
            )
            .await
            .unwrap();
    }
}

/// Item 3. A retry used to be appended again once 64 other producers had committed since its
/// first attempt. Now the process that made the first attempt finds it, however many others
/// wrote in between.
async fn a_batch_retried_after_500_other_producers_lands_once(b: Backend) {
    let Some((ts, topic)) = setup(b, 1).await else {
        return;
    };
    ts.client()
        .append(&topic, 0, values("before", 1))
        .await
        .unwrap();
    let (pail, faults) = answer_losing_client(&ts);
    // Where the first attempt starts, recorded before it (as the producer does).
    let from = pail.retry_point(&topic, 0).await.unwrap();
    lose_next_answer(&faults, &topic);
    let batch = values("mine", 3);
    let err = pail
        .append_with(&topic, 0, batch.clone(), tagged("mine", 0))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    others_write(&ts, &topic, 500).await;
    let opts = AppendOptions {
        retry_from: Some(from),
        ..tagged("mine", 0)
    };
    let retry = pail
        .append_with(&topic, 0, batch.clone(), opts)
        .await
        .unwrap();
    assert_eq!((retry.base_offset, retry.duplicate), (1, true));
    assert_once_at(&ts.client(), &topic, 0, 1, &batch).await;
}

/// Item 3, for a retry from a fresh process: an idempotency key is remembered for its window,
/// not for a count of other producers.
async fn a_keyed_batch_from_a_fresh_process_lands_once_after_500_others(b: Backend) {
    let Some((ts, topic)) = setup(b, 1).await else {
        return;
    };
    let keyed = |key: &str| AppendOptions {
        idempotency_key: Some(key.into()),
        ..AppendOptions::default()
    };
    let batch = values("sqs-message", 2);
    let (pail, faults) = answer_losing_client(&ts);
    pail.partition_tip(&topic, 0).await.unwrap();
    lose_next_answer(&faults, &topic);
    let err = pail
        .append_with(&topic, 0, batch.clone(), keyed("msg-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    others_write(&ts, &topic, 500).await;
    let fresh = ts.client();
    let retry = fresh
        .append_with(&topic, 0, batch.clone(), keyed("msg-1"))
        .await
        .unwrap();
    assert_eq!((retry.base_offset, retry.duplicate), (0, true));
    assert_once_at(&fresh, &topic, 0, 0, &batch).await;
    let err = fresh
        .append_with(&topic, 0, values("other", 2), keyed("msg-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("different content"), "{err}");
}

/// Item 4. A different batch under a reused producer id and sequence was taken for a retry,
/// acknowledged at the old offsets, and its records vanished.
async fn a_reused_producer_sequence_with_other_content_is_refused(b: Backend) {
    let Some((ts, topic)) = setup(b, 1).await else {
        return;
    };
    let pail = ts.client();
    pail.append_with(&topic, 0, values("first", 2), tagged("p", 0))
        .await
        .unwrap();
    let err = pail
        .append_with(&topic, 0, values("second", 2), tagged("p", 0))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("different content"), "{err}");
    assert_eq!(read_all(&pail, &topic, 0).await.len(), 2);
}

/// Item 5. A claim was checked by epoch only, so any writer presenting the current epoch could
/// append and take over the lease.
async fn a_leader_epoch_is_tied_to_its_holder(b: Backend) {
    let Some((ts, topic)) = setup(b, 1).await else {
        return;
    };
    let writer = |id: &str| {
        Pail::with_options(
            ts.store.clone(),
            PailOptions {
                writer_id: Some(id.into()),
                ..PailOptions::default()
            },
        )
    };
    let (leader, impostor) = (writer("leader"), writer("impostor"));
    let tip = leader
        .commit_control(&topic, 0, Edit::AcquireLease { lease_ms: 60_000 })
        .await
        .unwrap();
    let claim = AppendOptions {
        leader: Some(LeaderClaim {
            epoch: tip.state.leader_epoch,
            lease_ms: 60_000,
        }),
        ..AppendOptions::default()
    };
    let err = impostor
        .append_with(&topic, 0, values("x", 1), claim.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
    assert!(
        err.to_string().contains("granted to writer leader"),
        "{err}"
    );
    leader
        .append_with(&topic, 0, values("y", 1), claim)
        .await
        .unwrap();
    let head = leader.partition_tip(&topic, 0).await.unwrap();
    assert_eq!(head.state.lease.as_ref().unwrap().holder, "leader");
}

/// Item 7. An unclear answer to the descriptor's create was reported as `Unavailable` (the
/// topic existed) or, after the store's own retry, as `TopicExists` to its own creator.
async fn create_topic_settles_an_unclear_answer(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let (store, faults) = ts.faulty(3);
    faults.add(Rule::always(Op::Put, "topics/", Fault::LostAnswer).times(1));
    let name = pail_tests::unique("unclear-");
    let meta = Pail::new(store)
        .create_topic(&name, TopicConfig::new(2))
        .await
        .unwrap();
    assert_eq!(faults.injected(), 1, "the fault fired");
    assert_eq!(meta.config.partitions, 2);
    let err = ts
        .client()
        .create_topic(&name, TopicConfig::new(2))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
}

/// Item 10. A refused write (a 403, a directory the process may not write) was retried as if
/// it might heal, until the delivery timeout, and then reported as "may or may not".
async fn a_refused_write_fails_at_once_with_no_effect(b: Backend) {
    let Some((ts, topic)) = setup(b, 1).await else {
        return;
    };
    let (store, faults) = ts.faulty(9);
    faults.add(Rule::always(Op::Put, "topics/", Fault::Forbidden));
    let pail = Pail::new(store);
    let err = pail.append(&topic, 0, values("x", 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert_eq!(faults.injected(), 1, "no retry of a certain refusal");
    // The producer gives up on the first refusal too, instead of retrying until its timeout.
    let producer = Producer::new(pail.clone(), &topic, ProducerConfig::default())
        .await
        .unwrap();
    let err = producer
        .send(Record::from_value("y"), Some(0))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert_eq!(faults.injected(), 2);
    assert!(read_all(&ts.client(), &topic, 0).await.is_empty());
}

/// Item 12. A long-lived client's caches are bounded by entries and bytes, whatever it reads.
async fn client_caches_stay_within_their_limits(b: Backend) {
    let Some((ts, topic)) = setup(b, 6).await else {
        return;
    };
    let limits = CacheLimits {
        tips: 3,
        footers: 4,
        footer_bytes: 256 * 1024,
        indexed_partitions: 2,
    };
    let pail = Pail::with_options(
        ts.store.clone(),
        PailOptions {
            cache_limits: limits,
            ..PailOptions::default()
        },
    );
    for p in 0..6 {
        for i in 0..3 {
            pail.append(&topic, p, values(&format!("{p}.{i}"), 50))
                .await
                .unwrap();
        }
    }
    for p in 0..6 {
        let got = read_all(&pail, &topic, p).await;
        assert_eq!(got.len(), 150);
    }
    let sizes = pail.cache_sizes();
    assert!(sizes.tips <= limits.tips, "{sizes:?}");
    assert!(sizes.footers <= limits.footers, "{sizes:?}");
    assert!(sizes.footer_bytes <= limits.footer_bytes, "{sizes:?}");
    assert!(
        sizes.indexed_partitions <= limits.indexed_partitions,
        "{sizes:?}"
    );
    assert!(
        sizes.tips > 0 && sizes.footers > 0,
        "the caches are used: {sizes:?}"
    );
}

/// Item 6. A store that accepts `If-None-Match: *` and overwrites anyway would let two commits
/// both win; pail refuses to write to it.
#[tokio::test]
async fn a_store_that_ignores_create_if_absent_is_refused() {
    let lying = Store::new(
        Arc::new(IgnoresCreate(InMemory::new())),
        true,
        "s3://liar/x",
    );
    let pail = Pail::new(lying.clone());
    let err = pail
        .create_topic("t", TopicConfig::new(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("s3://liar/x") && text.contains("create-if-absent"),
        "{text}"
    );
    assert!(!text.contains('\n'));
    // An honest store passes once and remembers it: a later client pays one GET.
    let honest = Store::new(Arc::new(InMemory::new()), true, "s3://honest/x");
    Pail::new(honest.clone())
        .create_topic("t", TopicConfig::new(1))
        .await
        .unwrap();
    let verdict = honest
        .get(&pail_core::storage::keys::store_check())
        .await
        .unwrap();
    assert!(verdict.is_some(), "the verdict is kept in the store");
}

/// An object store that turns every create-if-absent into an overwrite, as Garage 2.5 does.
#[derive(Debug)]
struct IgnoresCreate(InMemory);

impl std::fmt::Display for IgnoresCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IgnoresCreate")
    }
}

#[async_trait]
impl ObjectStore for IgnoresCreate {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        opts.mode = PutMode::Overwrite;
        self.0.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.0.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> object_store::Result<()> {
        self.0.copy_opts(from, to, o).await
    }
}

/// Time as tokio's paused clock tells it, so leases expire in step with the runtime.
#[derive(Debug)]
struct TokioClock(tokio::time::Instant);

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        1_700_000_000_000 + self.0.elapsed().as_millis() as i64
    }
}

fn paused_client(store: &Store, writer: &str) -> Pail {
    // One origin for every client of a test, so their clocks agree.
    thread_local! {
        static ORIGIN: tokio::time::Instant = tokio::time::Instant::now();
    }
    Pail::with_options(
        store.clone(),
        PailOptions {
            clock: Arc::new(TokioClock(ORIGIN.with(|o| *o))),
            writer_id: Some(writer.into()),
            ..PailOptions::default()
        },
    )
}

async fn memory_topic() -> (Store, String) {
    let store = Store::memory();
    Pail::new(store.clone())
        .create_topic("t", TopicConfig::new(1))
        .await
        .unwrap();
    (store, "t".into())
}

fn faulty(store: &Store, seed: u64) -> (Store, Arc<pail_core::storage::faults::Faults>) {
    use pail_core::storage::faults::{Faults, FaultyStore};
    let faults = Faults::new(seed);
    let f = Arc::clone(&faults);
    let s =
        store.layered(move |inner| Arc::new(FaultyStore::new(inner, f)) as Arc<dyn ObjectStore>);
    (s, faults)
}

/// Item 2. The hint write ran between the commit and the acknowledgement: a hint PUT that never
/// answers held a committed batch back forever.
#[tokio::test(start_paused = true)]
async fn a_hung_hint_write_never_holds_back_an_acknowledgement() {
    let (store, topic) = memory_topic().await;
    let (store, faults) = faulty(&store, 1);
    faults.add(Rule::always(
        Op::Put,
        "topics/t/_hints",
        Fault::Hang { landed: false },
    ));
    let pail = Pail::new(store);
    for i in 0..70 {
        let append = pail.append(&topic, 0, values(&format!("{i}"), 1));
        tokio::time::timeout(Duration::from_secs(60), append)
            .await
            .unwrap_or_else(|_| panic!("append {i} waited on its hint"))
            .unwrap();
    }
    // The hint is written by a task of its own: let it run.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        faults.injected(),
        2,
        "the version-1 and version-64 hints hung"
    );
}

/// Item 2. A delivery whose last attempt may have landed used to carry the last *earlier*
/// error's kind ("not leader: no effect, retry"), inviting a duplicate resend.
#[tokio::test(start_paused = true)]
async fn a_delivery_that_may_have_landed_is_never_reported_as_no_effect() {
    let (store, topic) = memory_topic().await;
    // Another writer leads for 50 ms: the first attempt gets NotLeader (certainly no effect).
    paused_client(&store, "other")
        .commit_control(&topic, 0, Edit::AcquireLease { lease_ms: 50 })
        .await
        .unwrap();
    // The second attempt's create lands and then never answers.
    let (faulty_store, faults) = faulty(&store, 2);
    faults.add(
        Rule::always(
            Op::Put,
            "topics/t/partition=0",
            Fault::Hang { landed: true },
        )
        .times(1),
    );
    let config = ProducerConfig {
        delivery_timeout_ms: 2_000,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(paused_client(&faulty_store, "me"), &topic, config)
        .await
        .unwrap();
    let err = producer
        .send(Record::from_value("landed"), Some(0))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(faults.injected(), 1, "the hang fired");
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    assert!(err.to_string().contains("may or may not"), "{err}");
    let log = read_all(&Pail::new(store), &topic, 0).await;
    assert_eq!(log.len(), 1, "it did land");
}

/// Item 8. A fenced leader's later records were committed around the failed batch, out of
/// send order. Now everything after a failed batch fails until the caller resumes.
#[tokio::test(start_paused = true)]
async fn a_fenced_producer_commits_nothing_after_its_first_failed_batch() {
    let (store, topic) = memory_topic().await;
    let config = ProducerConfig {
        lead_lease_ms: Some(100),
        delivery_timeout_ms: 30_000,
        ..ProducerConfig::default()
    };
    let a = Producer::new(paused_client(&store, "a"), &topic, config)
        .await
        .unwrap();
    let send = |p: &Producer, v: &'static str| {
        let p = p.clone();
        async move { p.send(Record::from_value(v), Some(0)).await.unwrap().await }
    };
    send(&a, "a1").await.unwrap();
    // A is paused past its lease; B takes over.
    tokio::time::sleep(Duration::from_millis(200)).await;
    paused_client(&store, "b")
        .commit_control(&topic, 0, Edit::AcquireLease { lease_ms: 1_000 })
        .await
        .unwrap();
    let err = send(&a, "a2").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
    let err = send(&a, "a3").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Aborted, "{err}");
    assert!(err.to_string().contains("earlier batch"), "{err}");
    // The caller decides; later records then go through (once B's lease has run out).
    a.resume(0).unwrap();
    send(&a, "a4").await.unwrap();
    let log: Vec<Bytes> = read_all(&Pail::new(store), &topic, 0)
        .await
        .into_iter()
        .filter_map(|r| r.value)
        .collect();
    assert_eq!(log, vec![Bytes::from("a1"), Bytes::from("a4")]);
}

/// Item 11. Each partition worker held its own sender, so a dropped producer kept its tasks,
/// client and caches forever.
#[tokio::test]
async fn a_thousand_dropped_producers_leave_no_tasks() {
    let (store, topic) = memory_topic().await;
    let pail = Pail::new(store);
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    for i in 0..1000 {
        let producer = Producer::new(pail.clone(), &topic, ProducerConfig::default())
            .await
            .unwrap();
        producer
            .send(Record::from_value(format!("{i}")), Some(0))
            .await
            .unwrap()
            .await
            .unwrap();
        if i % 2 == 0 {
            producer.close().await;
        }
    }
    // Dropped workers end once they see their queue closed; hint writes end on their own.
    for _ in 0..100 {
        if metrics.num_alive_tasks() <= before {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), before, "tasks left behind");
}

/// Item 13. An append had no deadline: four unclear attempts at a 30 s timeout outlive a
/// Lambda invocation. Now it ends at its deadline: with no effect if it never sent a create,
/// and as `OutcomeUnknown` if a create went out unanswered (it may have landed).
#[tokio::test(start_paused = true)]
async fn an_append_gives_up_at_its_deadline() {
    let (store, topic) = memory_topic().await;
    let deadline = || Some(tokio::time::Instant::now() + Duration::from_secs(5));
    let cases = [
        (Op::Get, false, ErrorKind::Unavailable),
        (Op::Put, true, ErrorKind::OutcomeUnknown),
    ];
    for (op, landed, kind) in cases {
        let (s, faults) = faulty(&store, 4);
        let pail = Pail::new(s);
        pail.topic(&topic).await.unwrap();
        faults.add(Rule::always(op, "topics/t/partition=0", Fault::Hang { landed }).times(1));
        let opts = AppendOptions {
            deadline: deadline(),
            ..AppendOptions::default()
        };
        let err = pail
            .append_with(&topic, 0, values(&format!("{landed}"), 1), opts)
            .await
            .unwrap_err();
        assert_eq!(faults.injected(), 1);
        assert_eq!(err.kind(), kind, "{op:?} hangs: {err}");
        // The message a user reads must agree with the kind: an unknown outcome never says
        // "no effect", and never counts attempts it did not make.
        let text = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(": ");
        if kind == ErrorKind::OutcomeUnknown {
            assert!(!text.contains("no effect"), "{text}");
            assert!(!text.contains("after 0"), "{text}");
            assert!(text.contains("may have"), "{text}");
        }
    }
    let log = read_all(&Pail::new(store), &topic, 0).await;
    assert_eq!(log.len(), 1, "only the attempt that landed is there");
}
