//! The listener in-process: requests built as a client builds them, answers decoded as a client
//! decodes them. Waiting is checked on tokio's paused clock, never by wall-clock durations.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestHeader, TopicName as KTopic,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType as KTs,
};
use pail_core::{FetchLimits, OffsetSpec, Pail, Store, TopicConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::apis::{self, Framed};

mod groups;
use super::{Broker, ListenerConfig, codes};

fn broker_on(store: Store) -> Arc<Broker> {
    Broker::new(
        Pail::new(store),
        ListenerConfig {
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            auto_create_partitions: 0,
        },
    )
}

async fn broker() -> Arc<Broker> {
    let b = broker_on(Store::memory());
    b.pail.create_topic("t", TopicConfig::new(1)).await.unwrap();
    b
}

fn frame<T: Encodable>(key: ApiKey, version: i16, correlation: i32, msg: &T) -> Bytes {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = correlation;
    header.client_id = Some(StrBytes::from_static_str("test"));
    let mut out = BytesMut::new();
    header
        .encode(&mut out, key.request_header_version(version))
        .unwrap();
    msg.encode(&mut out, version).unwrap();
    out.freeze()
}

async fn call<T: Encodable>(b: &Arc<Broker>, key: ApiKey, version: i16, msg: &T) -> Option<Framed> {
    apis::dispatch(b, frame(key, version, 1, msg))
        .unwrap()
        .await
        .unwrap()
}

fn body<T: Decodable>(framed: Option<Framed>, version: i16) -> T {
    T::decode(&mut framed.expect("an answer").body, version).unwrap()
}

fn batch(values: &[&str]) -> Bytes {
    let records: Vec<KRecord> = values
        .iter()
        .enumerate()
        .map(|(i, v)| KRecord {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: KTs::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1_000 + i as i64,
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
    out.freeze()
}

fn produce(topic: &str, partition: i32, acks: i16, records: Bytes) -> ProduceRequest {
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(records);
    let mut t = TopicProduceData::default();
    t.name = KTopic(StrBytes::from_string(topic.into()));
    t.partition_data = vec![p];
    let mut r = ProduceRequest::default();
    r.acks = acks;
    r.timeout_ms = 30_000;
    r.topic_data = vec![t];
    r
}

fn fetch(offset: i64, max_wait_ms: i32, min_bytes: i32) -> FetchRequest {
    let mut p = FetchPartition::default();
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = KTopic(StrBytes::from_static_str("t"));
    t.partitions = vec![p];
    let mut r = FetchRequest::default();
    r.max_wait_ms = max_wait_ms;
    r.min_bytes = min_bytes;
    r.topics = vec![t];
    r
}

async fn values(b: &Broker) -> Vec<String> {
    let got = b
        .pail
        .fetch("t", 0, OffsetSpec::Earliest, FetchLimits::default())
        .await
        .unwrap();
    got.records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn acks_zero_gets_no_answer_and_is_still_appended() {
    let b = broker().await;
    let none = call(
        &b,
        ApiKey::Produce,
        9,
        &produce("t", 0, 0, batch(&["a", "b"])),
    )
    .await;
    assert!(none.is_none(), "acks=0 must not be answered");
    let r: ProduceResponse = body(
        call(&b, ApiKey::Produce, 9, &produce("t", 0, 1, batch(&["c"]))).await,
        9,
    );
    // One queue per partition: the acks=0 batch was appended first.
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (codes::NONE, 2));
    assert_eq!(values(&b).await, ["a", "b", "c"]);
}

#[tokio::test]
async fn produce_errors_are_per_partition() {
    let b = broker().await;
    let mut bad_crc = batch(&["x"]).to_vec();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    for (request, code) in [
        (
            produce("nope", 0, -1, batch(&["x"])),
            codes::UNKNOWN_TOPIC_OR_PARTITION,
        ),
        (
            produce("t", 5, -1, batch(&["x"])),
            codes::UNKNOWN_TOPIC_OR_PARTITION,
        ),
        (
            produce("t", -1, -1, batch(&["x"])),
            codes::UNKNOWN_TOPIC_OR_PARTITION,
        ),
        (
            produce("t", 0, -1, Bytes::from(bad_crc)),
            codes::CORRUPT_MESSAGE,
        ),
        (
            produce("t", 0, 2, batch(&["x"])),
            codes::INVALID_REQUIRED_ACKS,
        ),
        (
            produce("bad/name", 0, -1, batch(&["x"])),
            codes::INVALID_TOPIC_EXCEPTION,
        ),
    ] {
        let r: ProduceResponse = body(call(&b, ApiKey::Produce, 9, &request).await, 9);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, code, "{:?}", p.error_message);
        assert_eq!(p.base_offset, -1);
    }
    assert!(values(&b).await.is_empty(), "nothing refused was appended");
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_returns_what_is_committed_while_it_waits() {
    let b = broker().await;
    let start = tokio::time::Instant::now();
    let waiting = tokio::spawn({
        let b = Arc::clone(&b);
        async move { body::<FetchResponse>(call(&b, ApiKey::Fetch, 11, &fetch(0, 60_000, 1)).await, 11) }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let _: ProduceResponse = body(
        call(
            &b,
            ApiKey::Produce,
            9,
            &produce("t", 0, -1, batch(&["late"])),
        )
        .await,
        9,
    );
    let r = waiting.await.unwrap();
    let p = &r.responses[0].partitions[0];
    assert_eq!(
        (p.error_code, p.high_watermark, p.last_stable_offset),
        (0, 1, 1)
    );
    assert!(
        p.records.as_ref().is_some_and(|r| !r.is_empty()),
        "the record came back"
    );
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "it did not wait out max_wait_ms"
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_waits_max_wait_ms_and_min_bytes_zero_does_not() {
    let b = broker().await;
    let start = tokio::time::Instant::now();
    let r: FetchResponse = body(call(&b, ApiKey::Fetch, 11, &fetch(0, 2_000, 1)).await, 11);
    assert!(
        start.elapsed() >= Duration::from_millis(2_000),
        "{:?}",
        start.elapsed()
    );
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 0));
    assert!(p.records.as_ref().is_some_and(Bytes::is_empty));

    let start = tokio::time::Instant::now();
    let _: FetchResponse = body(call(&b, ApiKey::Fetch, 11, &fetch(0, 2_000, 0)).await, 11);
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "min_bytes=0 answers at once"
    );

    // Past the end: OFFSET_OUT_OF_RANGE with the valid range, at once.
    let r: FetchResponse = body(call(&b, ApiKey::Fetch, 4, &fetch(7, 2_000, 1)).await, 4);
    let p = &r.responses[0].partitions[0];
    assert_eq!(
        (p.error_code, p.high_watermark),
        (codes::OFFSET_OUT_OF_RANGE, 0)
    );
}

#[tokio::test]
async fn topic_ids_are_the_same_on_every_listener_and_only_from_v10() {
    let store = Store::memory();
    let (one, two) = (broker_on(store.clone()), broker_on(store));
    one.pail
        .create_topic("t", TopicConfig::new(3))
        .await
        .unwrap();
    let mut request = MetadataRequest::default();
    let mut t = MetadataRequestTopic::default();
    t.name = Some(KTopic(StrBytes::from_static_str("t")));
    request.topics = Some(vec![t]);
    let ids: Vec<_> = [&one, &two, &one]
        .iter()
        .zip([12, 12, 9])
        .map(|(b, v)| (Arc::clone(b), v))
        .collect();
    let mut seen = Vec::new();
    for (b, v) in ids {
        let r: MetadataResponse = body(call(&b, ApiKey::Metadata, v, &request).await, v);
        let topic = &r.topics[0];
        assert_eq!(topic.partitions.len(), 3);
        assert!(
            topic
                .partitions
                .iter()
                .all(|p| p.leader_id.0 == 0 && p.leader_epoch == -1)
        );
        seen.push(topic.topic_id);
    }
    assert!(!seen[0].is_nil());
    assert_eq!(seen[0], seen[1], "two listeners, one id");
    assert!(seen[2].is_nil(), "v9 has no topic ids");
}

/// Reads one response frame: (correlation id, body length).
async fn read_answer(s: &mut tokio::net::TcpStream) -> (i32, usize) {
    let len = s.read_i32().await.unwrap() as usize;
    let correlation = s.read_i32().await.unwrap();
    let mut rest = vec![0; len - 4];
    s.read_exact(&mut rest).await.unwrap();
    (correlation, rest.len())
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let b = broker().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(super::server::serve(listener, b, async {
        let _ = stopped.await;
    }));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A fetch that waits (nothing to read), then two quick requests behind it.
    let mut bytes = Vec::new();
    for (correlation, f) in [
        (1, frame(ApiKey::Fetch, 11, 1, &fetch(0, 300, 1))),
        (
            2,
            frame(
                ApiKey::ApiVersions,
                3,
                2,
                &kafka_protocol::messages::ApiVersionsRequest::default(),
            ),
        ),
        (
            3,
            frame(ApiKey::Metadata, 12, 3, &MetadataRequest::default()),
        ),
    ] {
        assert_eq!(i32::from_be_bytes(f[4..8].try_into().unwrap()), correlation);
        bytes.extend_from_slice(&(f.len() as i32).to_be_bytes());
        bytes.extend_from_slice(&f);
    }
    s.write_all(&bytes).await.unwrap();
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(read_answer(&mut s).await.0);
    }
    assert_eq!(order, [1, 2, 3]);
    let _ = stop.send(());
    server.await.unwrap();
}

fn list_offsets(timestamp: i64) -> kafka_protocol::messages::ListOffsetsRequest {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let mut p = ListOffsetsPartition::default();
    p.partition_index = 0;
    p.timestamp = timestamp;
    let mut t = ListOffsetsTopic::default();
    t.name = KTopic(StrBytes::from_static_str("t"));
    t.partitions = vec![p];
    let mut r = kafka_protocol::messages::ListOffsetsRequest::default();
    r.replica_id = kafka_protocol::messages::BrokerId(-1);
    r.topics = vec![t];
    r
}

/// (error, offset, timestamp) of partition 0 for a ListOffsets v7 by `timestamp`.
async fn offset_by(b: &Arc<Broker>, timestamp: i64) -> (i16, i64, i64) {
    let answer = call(b, ApiKey::ListOffsets, 7, &list_offsets(timestamp)).await;
    let r: kafka_protocol::messages::ListOffsetsResponse = body(answer, 7);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

#[tokio::test]
async fn list_offsets_by_time_finds_the_first_record_at_or_after_it() {
    let b = broker().await;
    // Timestamps 1000, 1001, 1002 at offsets 0-2, then 1000, 1001 at offsets 3-4.
    for values in [&["a", "b", "c"][..], &["d", "e"][..]] {
        let answer = call(&b, ApiKey::Produce, 9, &produce("t", 0, -1, batch(values))).await;
        let r: ProduceResponse = body(answer, 9);
        assert_eq!(
            r.responses[0].partition_responses[0].error_code,
            codes::NONE
        );
    }
    assert_eq!(offset_by(&b, 0).await, (codes::NONE, 0, 1000));
    assert_eq!(offset_by(&b, 1001).await, (codes::NONE, 1, 1001));
    assert_eq!(offset_by(&b, 1002).await, (codes::NONE, 2, 1002));
    assert_eq!(
        offset_by(&b, 1003).await,
        (codes::NONE, -1, -1),
        "none that recent"
    );
    assert_eq!(
        offset_by(&b, -3).await,
        (codes::NONE, 2, 1002),
        "max timestamp"
    );
    assert_eq!(offset_by(&b, -2).await, (codes::NONE, 0, -1), "earliest");
    assert_eq!(offset_by(&b, -1).await, (codes::NONE, 5, -1), "latest");
    assert_eq!(
        offset_by(&b, -4).await.0,
        codes::UNSUPPORTED_FOR_MESSAGE_FORMAT
    );
}
