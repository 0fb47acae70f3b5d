//! The event ingestion function's handler, on recorded SQS, EventBridge and S3 events (issue
//! 13): partial batch failures name exactly the poison message, a redelivered or regrouped batch
//! appends nothing twice, poison goes to the dead-letter topic when there is one, and message
//! attributes become keys, partitions and headers.
#![allow(clippy::unwrap_used)]

use pail_core::{Pail, StoredRecord, TopicConfig};
use pail_functions::ingest::{self, IngestConfig};
use pail_tests::{Backend, TestStore, on_every_store, read_all};
use serde_json::{Value, json};

on_every_store!(
    an_sqs_batch_reports_exactly_its_poison_message_and_redelivery_appends_nothing,
    poison_goes_to_the_dead_letter_topic_with_its_reason,
    eventbridge_and_s3_events_are_appended_once_each,
);

const POISON: &str = "a1b2c3d4-0000-4000-8000-00000000poison";

fn event(name: &str) -> Value {
    let path = format!("{}/data/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn config(topic: &str, dlq: Option<&str>) -> IngestConfig {
    IngestConfig {
        topic: topic.to_string(),
        dead_letter_topic: dlq.map(str::to_string),
        key_field: Some("/user/id".into()),
    }
}

async fn everything(pail: &Pail, topic: &str) -> Vec<StoredRecord> {
    let partitions = pail.topic(topic).await.unwrap().config.partitions;
    let mut out = Vec::new();
    for p in 0..partitions {
        out.extend(read_all(pail, topic, p).await);
    }
    out
}

fn text(b: &Option<bytes::Bytes>) -> String {
    String::from_utf8(b.as_ref().unwrap().to_vec()).unwrap()
}

async fn an_sqs_batch_reports_exactly_its_poison_message_and_redelivery_appends_nothing(
    b: Backend,
) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    let topic = pail_tests::unique("ingest-");
    pail.create_topic(&topic, TopicConfig::new(4))
        .await
        .unwrap();
    let cfg = config(&topic, None);
    let answer = ingest::handle(&pail, &cfg, event("sqs-batch.json"), None)
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": POISON}]})
    );
    let got = everything(&pail, &topic).await;
    assert_eq!(got.len(), 3, "{got:?}");
    // Keys: the JSON field, the pail-key attribute; other attributes are headers.
    let first = got
        .iter()
        .find(|r| text(&r.value).contains("order"))
        .unwrap();
    assert_eq!(text(&first.key), "u-17");
    assert_eq!(first.headers.len(), 1);
    assert_eq!(first.headers[0].key, "trace");
    let keyed = got
        .iter()
        .find(|r| text(&r.value) == "keyed by attribute")
        .unwrap();
    assert_eq!(text(&keyed.key), "user-1");

    // The same batch again (a timeout after the commits), then its messages regrouped: SQS
    // may redeliver a message in any batch. Nothing is appended twice.
    ingest::handle(&pail, &cfg, event("sqs-batch.json"), None)
        .await
        .unwrap();
    let mut regrouped = event("sqs-batch.json");
    let records = regrouped["Records"].as_array_mut().unwrap();
    records.reverse();
    records.truncate(2);
    ingest::handle(&pail, &cfg, regrouped, None).await.unwrap();
    assert_eq!(
        everything(&Pail::new(ts.store.clone()), &topic).await.len(),
        3
    );
}

async fn poison_goes_to_the_dead_letter_topic_with_its_reason(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    let topic = pail_tests::unique("ingest-");
    let dlq = pail_tests::unique("dlq-");
    for t in [&topic, &dlq] {
        pail.create_topic(t, TopicConfig::new(4)).await.unwrap();
    }
    let answer = ingest::handle(
        &pail,
        &config(&topic, Some(&dlq)),
        event("sqs-batch.json"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(everything(&pail, &topic).await.len(), 3);
    let dead = everything(&pail, &dlq).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        text(&dead[0].value),
        "asks for a partition that does not exist"
    );
    let why = dead[0]
        .headers
        .iter()
        .find(|h| h.key == ingest::ERROR_HEADER)
        .unwrap();
    assert!(text(&why.value).contains("99"), "{:?}", text(&why.value));
    // An unknown target topic is poison too: every message goes to the dead-letter topic.
    let elsewhere = config("no-such-topic", Some(&dlq));
    ingest::handle(&pail, &elsewhere, event("sqs-batch.json"), None)
        .await
        .unwrap();
    assert_eq!(
        everything(&pail, &dlq).await.len(),
        4,
        "the poison one is there already"
    );
}

async fn eventbridge_and_s3_events_are_appended_once_each(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let pail = ts.client();
    let topic = pail_tests::unique("ingest-");
    pail.create_topic(&topic, TopicConfig::new(2))
        .await
        .unwrap();
    let cfg = config(&topic, None);
    for _ in 0..2 {
        for name in ["eventbridge.json", "s3-put.json"] {
            let answer = ingest::handle(&pail, &cfg, event(name), None)
                .await
                .unwrap();
            assert_eq!(answer, Value::Null);
        }
    }
    let got = everything(&pail, &topic).await;
    assert_eq!(
        got.len(),
        3,
        "one EventBridge event and two S3 records, each once"
    );
    let values: Vec<Value> = got
        .iter()
        .map(|r| serde_json::from_str(&text(&r.value)).unwrap())
        .collect();
    assert!(values.contains(&event("eventbridge.json")));
    let err = ingest::handle(&pail, &cfg, json!({"hello": 1}), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an SQS"), "{err}");
}

#[test]
fn a_batch_under_the_emulator_is_bounded_too() {
    // `cargo lambda watch` sends its invoke timeout (600000 ms) where Lambda sends an instant;
    // taken as an instant it lies in 1970, and the batch ran with no deadline at all.
    let deadline = ingest::deadline_of(600_000);
    let left = deadline - tokio::time::Instant::now();
    assert!(left > std::time::Duration::from_secs(590), "{left:?}");
    assert!(left <= std::time::Duration::from_secs(600), "{left:?}");
}
