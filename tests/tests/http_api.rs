//! The HTTP API in process: every endpoint and every error status through the router
//! (`tower::ServiceExt::oneshot`), the OpenAPI document against the routes, the long poll on
//! a paused clock, and recorded Lambda Function URL events through `lambda_http`.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use pail_core::producer::partitioner::partition_for_key;
use pail_core::storage::faults::{Fault, Op, Rule};
use pail_core::{FetchLimits, OffsetSpec, Store};
use pail_functions::http::auth::Token;
use pail_functions::http::{AppState, REQUEST_BODY_BYTES_MAX, openapi, router, with_layers};
use pail_functions::render::JsonRecord;
use pail_tests::{Backend, TestStore, on_every_store};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use tower::ServiceExt;

/// The router over one store, and the state it shares.
struct Api {
    app: Router,
    state: AppState,
}

/// What came back.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Api {
    fn on(store: &Store) -> Api {
        Api::guarded(store, None)
    }

    fn guarded(store: &Store, token: Option<&str>) -> Api {
        let state = AppState::new(store);
        let token = token.map(|t| Token::new(t).unwrap());
        Api {
            app: router(state.clone(), token),
            state,
        }
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(req).await.unwrap();
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: axum::body::to_bytes(body, usize::MAX).await.unwrap(),
        }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn post(&self, uri: &str, body: Value) -> Reply {
        self.post_with(uri, body, &[]).await
    }

    async fn post_with(&self, uri: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
        let mut req = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Body::from(body.to_string())).unwrap())
            .await
    }

    async fn delete(&self, uri: &str) -> Reply {
        self.send(Request::delete(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn create(&self, name: &str, partitions: u32) {
        self.post(
            "/v1/topics",
            json!({"name": name, "partitions": partitions}),
        )
        .await
        .ok(StatusCode::CREATED);
    }
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }

    /// Asserts the status and returns the JSON body.
    fn ok(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        self.json()
    }

    /// Asserts an error response: status, JSON content type, code, and a message mentioning
    /// `needle`.
    fn error(&self, status: u16, code: &str, needle: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        assert_eq!(self.headers[header::CONTENT_TYPE], "application/json");
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "message {message:?} should mention {needle:?}"
        );
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    }
}

#[tokio::test]
async fn topics_are_created_listed_and_described() {
    let api = Api::on(&Store::memory());
    let created = api
        .post(
            "/v1/topics",
            json!({"name": "orders", "partitions": 3, "timestamp_type": "log_append_time"}),
        )
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(
        created,
        json!({"topic": "orders", "config": {"partitions": 3,
            "timestamp_type": "log_append_time", "record_bytes_max": 1048576,
            "compression": "zstd", "compact_target_bytes": 134217728, "compact_target_records": 1000000,
            "compact_min_segments": 16}})
    );
    api.create("audit", 1).await;
    let list = api.get("/v1/topics").await.ok(StatusCode::OK);
    assert_eq!(list, json!({"topics": ["audit", "orders"]}));

    api.post(
        "/v1/topics/orders/records",
        json!({"records": [{"value": "x", "partition": 2}]}),
    )
    .await
    .ok(StatusCode::OK);
    let described = api.get("/v1/topics/orders").await.ok(StatusCode::OK);
    assert_eq!(described["topic"], "orders");
    assert_eq!(described["config"]["partitions"], 3);
    let parts = described["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2]["next_offset"], 1);
    assert_eq!(parts[2]["segments"], 1);
    assert_eq!(parts[0]["next_offset"], 0);
    // The same shape `pail topic describe --format json` prints.
    let core = api.state.pail.describe_topic("orders").await.unwrap();
    assert_eq!(described, serde_json::to_value(&core).unwrap());
}

/// Keyed records land on Kafka's partition for the key, unkeyed ones of a request together,
/// explicit partitions where asked; offsets come back in request order, and fetch returns
/// exactly what was produced in `pail consume --format json`'s shape.
async fn produce_then_fetch(b: Backend) {
    let Some(ts) = TestStore::new(b).await else {
        return;
    };
    let api = Api::on(&ts.store);
    api.create("t", 4).await;
    let records = json!({"records": [
        {"key": "alpha", "value": "one"},
        {"value": "two"},
        {"key": "/wA=", "key_encoding": "base64", "value": "three",
         "headers": [{"key": "h", "value": "/v8=", "value_encoding": "base64"}, {"key": "n"}]},
        {"value": "four", "partition": 3, "timestamp": 1234},
        {"value": "five"},
        {"key": "alpha", "value": "six"},
    ]});
    let reply = api
        .post("/v1/topics/t/records", records.clone())
        .await
        .ok(StatusCode::OK);
    assert_eq!(reply["failed_record_count"], 0);
    let offsets = reply["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 6);
    let partition = |i: usize| offsets[i]["partition"].as_u64().unwrap() as u32;
    assert_eq!(partition(0), partition_for_key(b"alpha", 4));
    assert_eq!(partition(5), partition_for_key(b"alpha", 4));
    assert_eq!(partition(2), partition_for_key(&[0xff, 0x00], 4));
    assert_eq!(partition(3), 3);
    assert_eq!(
        partition(1),
        partition(4),
        "unkeyed records of one request stay together"
    );

    // Every record is where its offset says, with its bytes intact.
    for (i, sent) in records["records"].as_array().unwrap().iter().enumerate() {
        let (p, offset) = (partition(i), offsets[i]["offset"].as_u64().unwrap());
        let uri = format!("/v1/topics/t/partitions/{p}/records?offset={offset}&max_records=1");
        let got = api.get(&uri).await.ok(StatusCode::OK);
        let record = &got["records"][0];
        assert_eq!(record["offset"], offset);
        assert_eq!(record["value"], sent["value"]);
        let expected = api
            .state
            .pail
            .fetch(
                "t",
                p,
                OffsetSpec::At(offset as i64),
                FetchLimits {
                    max_records: 1,
                    ..FetchLimits::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            *record,
            serde_json::to_value(JsonRecord::new("t", p, &expected.records[0])).unwrap()
        );
    }
    let third = api
        .get(&format!(
            "/v1/topics/t/partitions/{}/records?offset={}",
            partition(2),
            offsets[2]["offset"]
        ))
        .await
        .ok(StatusCode::OK);
    assert_eq!(third["records"][0]["key"], "/wA=");
    assert_eq!(third["records"][0]["key_encoding"], "base64");
    assert_eq!(
        third["records"][0]["headers"],
        json!([{"key": "h", "value": "/v8=", "value_encoding": "base64"},
               {"key": "n", "value": null, "value_encoding": null}])
    );
    let fourth = api
        .get(&format!(
            "/v1/topics/t/partitions/3/records?offset={}",
            offsets[3]["offset"]
        ))
        .await
        .ok(StatusCode::OK);
    assert_eq!(fourth["records"][0]["timestamp"], 1234);

    let listed = api.get("/v1/topics/t/offsets").await.ok(StatusCode::OK);
    let described = api.state.pail.describe_topic("t").await.unwrap();
    for p in &described.partitions {
        let got = &listed["partitions"][p.partition as usize];
        assert_eq!(got["earliest"], p.log_start_offset);
        assert_eq!(got["latest"], p.next_offset);
    }
    let total: u64 = described.partitions.iter().map(|p| p.next_offset).sum();
    assert_eq!(total, 6);
    assert!(listed["partitions"][3].get("for_time").is_none());

    // Lookup by time answers what the core's lookup (checked against a brute-force scan in
    // tests/time_lookup.rs) answers.
    for at in [0, 1234, 1235] {
        let by_time = api
            .get(&format!("/v1/topics/t/offsets?timestamp={at}"))
            .await
            .ok(StatusCode::OK);
        for p in 0..4u32 {
            let core = api.state.pail.offset_for_time("t", p, at).await.unwrap();
            let want = json!({"offset": core.map(|c| c.offset), "timestamp": core.map(|c| c.timestamp_ms)});
            assert_eq!(
                by_time["partitions"][p as usize]["for_time"], want,
                "{at} p{p}"
            );
        }
    }
    let none = api
        .get(&format!("/v1/topics/t/offsets?timestamp={}", i64::MAX))
        .await
        .ok(StatusCode::OK);
    for p in none["partitions"].as_array().unwrap() {
        assert_eq!(p["for_time"], json!({"offset": null, "timestamp": null}));
    }
}

on_every_store!(produce_then_fetch);

#[tokio::test]
async fn every_bad_input_gets_its_status_and_a_json_error() {
    let api = Api::on(&Store::memory());
    api.create("t", 2).await;
    api.post(
        "/v1/topics",
        json!({"name": "small", "partitions": 1, "record_bytes_max": 10}),
    )
    .await
    .ok(StatusCode::CREATED);
    api.post(
        "/v1/topics/t/records",
        json!({"records": [{"value": "a", "partition": 0}]}),
    )
    .await
    .ok(StatusCode::OK);

    let raw = |method: Method, uri: &str, content_type: Option<&str>, body: &str| {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        req.body(Body::from(body.to_string())).unwrap()
    };
    let json_ct = Some("application/json");
    let cases: Vec<(Request<Body>, u16, &str, &str)> = vec![
        (
            raw(Method::POST, "/v1/topics", json_ct, "{\"name\": \"x\""),
            400,
            "bad_request",
            "invalid JSON body",
        ),
        (
            raw(Method::POST, "/v1/topics", Some("text/plain"), "{}"),
            400,
            "bad_request",
            "Content-Type: application/json",
        ),
        (
            raw(Method::POST, "/v1/topics", None, "{}"),
            400,
            "bad_request",
            "Content-Type: application/json",
        ),
        (
            raw(
                Method::POST,
                "/v1/topics",
                json_ct,
                r#"{"name":"x","partitions":1,"colour":"red"}"#,
            ),
            400,
            "bad_request",
            "unknown field `colour`",
        ),
        (
            raw(
                Method::POST,
                "/v1/topics",
                json_ct,
                r#"{"name":"x","partitions":"many"}"#,
            ),
            400,
            "bad_request",
            "partitions",
        ),
        (
            raw(
                Method::POST,
                "/v1/topics",
                json_ct,
                r#"{"name":"a/b","partitions":1}"#,
            ),
            400,
            "invalid_input",
            "invalid topic name",
        ),
        (
            raw(
                Method::POST,
                "/v1/topics",
                json_ct,
                r#"{"name":"x","partitions":0}"#,
            ),
            400,
            "invalid_input",
            "1 to 10000 partitions",
        ),
        (
            raw(
                Method::POST,
                "/v1/topics",
                json_ct,
                r#"{"name":"t","partitions":1}"#,
            ),
            409,
            "already_exists",
            "already exists",
        ),
        (
            raw(Method::GET, "/v1/topics/nope", None, ""),
            404,
            "not_found",
            "unknown topic \"nope\"",
        ),
        (
            raw(Method::GET, "/v1/topics/nope/offsets", None, ""),
            404,
            "not_found",
            "unknown topic",
        ),
        (
            raw(
                Method::POST,
                "/v1/topics/nope/records",
                json_ct,
                r#"{"records":[{"value":"v"}]}"#,
            ),
            404,
            "not_found",
            "unknown topic",
        ),
        (
            raw(
                Method::POST,
                "/v1/topics/t/records",
                json_ct,
                r#"{"records":[{"value":"v","partition":7}]}"#,
            ),
            404,
            "not_found",
            "unknown partition 7",
        ),
        (
            raw(
                Method::POST,
                "/v1/topics/t/records",
                json_ct,
                r#"{"records":[]}"#,
            ),
            400,
            "bad_request",
            "at least one record",
        ),
        (
            raw(
                Method::POST,
                "/v1/topics/t/records",
                json_ct,
                r#"{"records":[{"value":"%%","value_encoding":"base64"}]}"#,
            ),
            400,
            "bad_request",
            "records[0].value is not valid base64",
        ),
        (
            raw(
                Method::POST,
                "/v1/topics/t/records",
                json_ct,
                r#"{"records":[{"value":"v","value_encoding":"hex"}]}"#,
            ),
            400,
            "bad_request",
            "unknown variant `hex`",
        ),
        (
            raw(
                Method::POST,
                "/v1/topics/small/records",
                json_ct,
                r#"{"records":[{"value":"more than ten bytes"}]}"#,
            ),
            413,
            "invalid_input",
            "over the limit of 10 bytes",
        ),
        (
            raw(Method::GET, "/v1/topics/t/partitions/0/records", None, ""),
            400,
            "bad_request",
            "missing field `offset`",
        ),
        (
            raw(
                Method::GET,
                "/v1/topics/t/partitions/0/records?offset=soon",
                None,
                "",
            ),
            400,
            "bad_request",
            "offset \"soon\" is not earliest, latest or an offset",
        ),
        (
            raw(
                Method::GET,
                "/v1/topics/t/partitions/0/records?offset=0&max_records=0",
                None,
                "",
            ),
            400,
            "bad_request",
            "max_records must be 1 to 10000",
        ),
        (
            raw(
                Method::GET,
                "/v1/topics/t/partitions/0/records?offset=0&max_bytes=999999999",
                None,
                "",
            ),
            400,
            "bad_request",
            "max_bytes must be 1 to",
        ),
        (
            raw(
                Method::GET,
                "/v1/topics/t/partitions/0/records?offset=0&wait_ms=20001",
                None,
                "",
            ),
            400,
            "bad_request",
            "wait_ms must be 0 to 20000",
        ),
        (
            raw(
                Method::GET,
                "/v1/topics/t/partitions/0/records?offset=0&colour=red",
                None,
                "",
            ),
            400,
            "bad_request",
            "unknown field `colour`",
        ),
        (
            raw(
                Method::GET,
                "/v1/topics/t/partitions/x/records?offset=0",
                None,
                "",
            ),
            400,
            "bad_request",
            "invalid path",
        ),
        (
            raw(
                Method::GET,
                "/v1/topics/t/partitions/2/records?offset=0",
                None,
                "",
            ),
            404,
            "not_found",
            "unknown partition 2",
        ),
        (
            raw(
                Method::GET,
                "/v1/topics/t/partitions/0/records?offset=5",
                None,
                "",
            ),
            416,
            "offset_out_of_range",
            "valid offsets are 0..=1",
        ),
        (
            raw(
                Method::GET,
                "/v1/topics/t/partitions/0/records?offset=-1",
                None,
                "",
            ),
            416,
            "offset_out_of_range",
            "offset -1",
        ),
        (
            raw(Method::GET, "/v1/nothing", None, ""),
            404,
            "not_found",
            "no route for GET /v1/nothing",
        ),
        (
            raw(Method::DELETE, "/v1/topics", None, ""),
            405,
            "method_not_allowed",
            "DELETE is not allowed",
        ),
    ];
    for (req, status, code, needle) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let reply = api.send(req).await;
        assert_eq!(reply.status.as_u16(), status, "{what}: {}", reply.text());
        reply.error(status, code, needle);
    }
}

#[tokio::test]
async fn bodies_and_batches_over_their_limits_are_413() {
    let api = Api::on(&Store::memory());
    api.create("t", 1).await;
    let big = "x".repeat(REQUEST_BODY_BYTES_MAX);
    let body = json!({"records": [{"value": big}]}).to_string();
    assert!(body.len() > REQUEST_BODY_BYTES_MAX);
    let req = Request::post("/v1/topics/t/records")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    api.send(req).await.error(
        413,
        "payload_too_large",
        &format!("limit of {REQUEST_BODY_BYTES_MAX} bytes"),
    );

    let many: Vec<Value> = (0..10_001).map(|_| json!({})).collect();
    api.post("/v1/topics/t/records", json!({"records": many}))
        .await
        .error(
            413,
            "payload_too_large",
            "10001 records in one request, over the limit of 10000",
        );
    // Nothing of either reached the log.
    let d = api.state.pail.describe_topic("t").await.unwrap();
    assert_eq!(d.partitions[0].next_offset, 0);
}

#[tokio::test]
async fn an_unavailable_store_is_503_with_retry_after() {
    let ts = TestStore::new(Backend::Memory).await.unwrap();
    let (store, faults) = ts.faulty(7);
    let api = Api::on(&store);
    api.create("t", 1).await;
    faults.add(Rule::always(Op::Any, "", Fault::SlowDown));
    for reply in [
        api.get("/v1/topics").await,
        api.post("/v1/topics/t/records", json!({"records": [{"value": "v"}]}))
            .await,
        api.get("/v1/topics/t/partitions/0/records?offset=0").await,
    ] {
        reply.error(503, "unavailable", "");
        assert_eq!(reply.headers[header::RETRY_AFTER], "1");
    }
    faults.clear();
    api.get("/v1/topics").await.ok(StatusCode::OK);
}

#[tokio::test]
async fn a_handler_panic_is_a_500_with_an_id_and_the_server_goes_on() {
    let state = AppState::new(&Store::memory());
    let routes = Router::new()
        .route("/boom", axum::routing::get(boom))
        .route("/fine", axum::routing::get(|| async { "fine" }));
    let app = with_layers(routes, Arc::clone(&state.metrics));
    let api = Api { app, state };
    let reply = api.get("/boom").await;
    reply.error(500, "internal", "internal error ");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !message.contains("kaboom"),
        "the panic text stays in the log: {message}"
    );
    let id = message
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(';');
    assert_eq!(id.len(), 32, "{message}");
    assert_eq!(api.get("/fine").await.text(), "fine");
    assert!(
        api.state
            .metrics
            .render()
            .contains("pail_http_requests_total{route=\"/boom\",method=\"GET\",status=\"500\"} 1")
    );
}

async fn boom() -> &'static str {
    panic!("kaboom")
}

#[tokio::test]
async fn the_token_guards_every_route_but_healthz() {
    let api = Api::guarded(&Store::memory(), Some("s3cret"));
    api.get("/healthz").await.ok(StatusCode::OK);
    for uri in [
        "/v1/topics",
        "/metrics",
        "/openapi.json",
        "/v1/topics/t/offsets",
    ] {
        api.get(uri)
            .await
            .error(401, "unauthorized", "missing Authorization");
    }
    let with = |token: &str| {
        Request::get("/v1/topics")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    api.send(with("wrong"))
        .await
        .error(401, "unauthorized", "wrong bearer token");
    api.send(with("s3cret")).await.ok(StatusCode::OK);
}

/// A fetch that waits sees a record produced while it waits, and resumes from the offset its
/// first poll resolved (`latest` does not move on with the log).
#[tokio::test(start_paused = true)]
async fn a_long_poll_returns_a_record_produced_while_it_waits() {
    let api = Api::on(&Store::memory());
    api.create("t", 1).await;
    api.post(
        "/v1/topics/t/records",
        json!({"records": [{"value": "old"}]}),
    )
    .await
    .ok(StatusCode::OK);
    let started = tokio::time::Instant::now();
    let app = api.app.clone();
    let waiting = tokio::spawn(async move {
        let req = Request::get("/v1/topics/t/partitions/0/records?offset=latest&wait_ms=20000")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(req).await.unwrap();
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    api.post(
        "/v1/topics/t/records",
        json!({"records": [{"value": "new"}]}),
    )
    .await
    .ok(StatusCode::OK);
    let got: Value = serde_json::from_slice(&waiting.await.unwrap()).unwrap();
    assert_eq!(got["records"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got["records"][0]["value"], "new");
    assert_eq!(got["records"][0]["offset"], 1);
    // Polls back off to at most a second apart, so the record is seen within a second.
    let waited = started.elapsed();
    assert!(waited < std::time::Duration::from_secs(4), "{waited:?}");
}

/// With nothing arriving, a fetch waits its full `wait_ms` on the (paused) clock, and polls the
/// store with backoff rather than in a tight loop.
#[tokio::test(start_paused = true)]
async fn a_long_poll_on_a_quiet_partition_ends_at_its_wait_with_few_polls() {
    let api = Api::on(&Store::memory());
    api.create("t", 1).await;
    let gets_before = store_gets(&api);
    let started = tokio::time::Instant::now();
    let got = api
        .get("/v1/topics/t/partitions/0/records?offset=earliest&wait_ms=20000")
        .await
        .ok(StatusCode::OK);
    assert_eq!(got["records"], json!([]));
    assert_eq!(got["next_offset"], 0);
    assert_eq!(started.elapsed(), std::time::Duration::from_millis(20_000));
    // Pauses of 50, 100, ... ms up to 1 s: about 25 polls in 20 s, each one GET.
    let polls = store_gets(&api) - gets_before;
    assert!((10..=40).contains(&polls), "{polls} GETs for a 20 s wait");
}

fn store_gets(api: &Api) -> u64 {
    metric(
        &api.state.metrics.render(),
        "pail_store_requests_total{kind=\"get\"}",
    )
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_requests_commits_and_store_requests() {
    let api = Api::on(&Store::memory());
    api.create("t", 2).await;
    api.post(
        "/v1/topics/t/records",
        json!({"records": [{"value": "a", "partition": 0}, {"value": "b", "partition": 1}, {"value": "c", "partition": 1}]}),
    )
    .await
    .ok(StatusCode::OK);
    api.get("/v1/topics/nope")
        .await
        .error(404, "not_found", "nope");
    let reply = api.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4"
    );
    let text = reply.text();
    assert_eq!(metric(&text, "pail_commits_total"), 2);
    assert_eq!(metric(&text, "pail_records_produced_total"), 3);
    assert_eq!(
        metric(
            &text,
            "pail_http_requests_total{route=\"/v1/topics/{topic}/records\",method=\"POST\",status=\"200\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &text,
            "pail_http_requests_total{route=\"/v1/topics/{topic}\",method=\"GET\",status=\"404\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &text,
            "pail_http_request_duration_seconds_count{route=\"/v1/topics\",method=\"POST\"}"
        ),
        1
    );
    // The topic descriptor and two segments: three creates.
    assert!(metric(&text, "pail_store_requests_total{kind=\"put\"}") >= 3);
    assert!(metric(&text, "pail_store_bytes_total{direction=\"put\"}") > 0);
}

/// Every method and path in `/openapi.json`: the router serves all of them (none falls through
/// to the unknown-route or wrong-method answer), the README's endpoint table lists exactly
/// them, and every route a tour of the API was answered on is among them.
#[tokio::test]
async fn the_openapi_document_and_the_routes_agree() {
    let api = Api::on(&Store::memory());
    let served = api.get("/openapi.json").await.ok(StatusCode::OK);
    assert_eq!(served, serde_json::to_value(openapi()).unwrap());
    assert!(served["openapi"].as_str().unwrap().starts_with("3."));
    let documented = operations(&served);
    assert!(documented.len() >= 9, "{documented:?}");

    for (method, path) in &documented {
        let uri = path.replace("{topic}", "t").replace("{partition}", "0");
        let req = Request::builder()
            .method(method.as_str())
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let reply = api.send(req).await;
        let text = reply.text();
        assert!(
            !text.contains("\"method_not_allowed\"") && !text.contains("\"no route for "),
            "{method} {path} is documented but not routed: {}",
            reply.text()
        );
    }

    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert_eq!(
        readme_endpoints(&readme),
        documented,
        "README's endpoint table vs /openapi.json"
    );

    // A tour: every endpoint once, through the same router.
    api.create("t", 1).await;
    api.get("/v1/topics").await;
    api.get("/v1/topics/t").await;
    api.get("/v1/topics/t/offsets").await;
    api.post("/v1/topics/t/records", json!({"records": [{"value": "v"}]}))
        .await;
    api.get("/v1/topics/t/partitions/0/records?offset=0").await;
    api.get("/healthz").await;
    api.get("/metrics").await;
    for (method, route) in api.state.metrics.routes_seen() {
        assert!(
            documented.contains(&(method.clone(), route.clone())),
            "{method} {route} was answered but is not in /openapi.json"
        );
    }
}

/// The limits the document states are the ones the code enforces.
#[test]
fn the_documented_limits_are_the_enforced_ones() {
    use pail_functions::http::records::{FETCH_BYTES_MAX, FETCH_RECORDS_MAX, FETCH_WAIT_MS_MAX};
    let doc = serde_json::to_value(openapi()).unwrap();
    let create = &doc["components"]["schemas"]["CreateTopic"]["properties"];
    assert_eq!(
        create["partitions"]["maximum"],
        pail_core::topic::PARTITIONS_MAX
    );
    assert_eq!(
        create["record_bytes_max"]["maximum"],
        pail_core::topic::RECORD_BYTES_MAX_CEILING
    );
    assert_eq!(
        create["name"]["maxLength"],
        pail_core::topic::TOPIC_NAME_MAX_CHARS
    );
    let fetch =
        &doc["paths"]["/v1/topics/{topic}/partitions/{partition}/records"]["get"]["parameters"];
    let maximum = |name: &str| {
        fetch
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"]["maximum"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(maximum("max_records"), u64::from(FETCH_RECORDS_MAX));
    assert_eq!(maximum("max_bytes"), FETCH_BYTES_MAX);
    assert_eq!(maximum("wait_ms"), FETCH_WAIT_MS_MAX);
}

/// (method, path) of every operation in an OpenAPI document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// (method, path) of every row `| \`METHOD\` | \`/path\` | ... |` in the README.
fn readme_endpoints(readme: &str) -> BTreeSet<(String, String)> {
    readme
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let method = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let path = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            (method.chars().all(|c| c.is_ascii_uppercase()) && path.starts_with('/'))
                .then(|| (method.to_string(), path.to_string()))
        })
        .collect()
}

/// Recorded Function URL events (payload format 2.0, IAM-authorised, one with a base64 body)
/// become requests through `lambda_http` and reach the same router.
#[tokio::test]
async fn function_url_events_reach_the_router() {
    let api = Api::on(&Store::memory());
    api.create("events", 2).await;
    let event = |name: &str| {
        let path = format!("{}/data/lambda/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        lambda_http::request::from_str(&text).unwrap()
    };
    let produce = event("function-url-produce.json");
    assert_eq!(produce.uri().path(), "/v1/topics/events/records");
    let response = api.app.clone().oneshot(produce).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let produced: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(produced["offsets"][1], json!({"partition": 1, "offset": 0}));

    let fetch = event("function-url-fetch.json");
    let response = api.app.clone().oneshot(fetch).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let fetched: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(fetched["records"][0]["value"], "/wA=");
    assert_eq!(fetched["records"][0]["value_encoding"], "base64");

    let d = api.state.pail.describe_topic("events").await.unwrap();
    let k = partition_for_key(b"k", 2) as usize;
    assert_eq!(d.partitions[k].next_offset, if k == 1 { 2 } else { 1 });
}

#[tokio::test]
async fn unkeyed_records_of_different_requests_spread_over_partitions() {
    let api = Api::on(&Store::memory());
    api.create("t", 4).await;
    let mut used = BTreeSet::new();
    for _ in 0..64 {
        let reply = api
            .post("/v1/topics/t/records", json!({"records": [{"value": "v"}]}))
            .await
            .ok(StatusCode::OK);
        used.insert(reply["offsets"][0]["partition"].as_u64().unwrap());
    }
    // 64 random picks of 4 miss a partition with probability 4 * (3/4)^64, about 4e-8.
    assert_eq!(used.len(), 4, "{used:?}");
}

/// A request whose keys spread over many partitions (more than are committed at once) lands
/// whole: every record at the offset the answer gives, in each partition's request order.
#[tokio::test]
async fn a_batch_over_many_partitions_lands_whole() {
    let api = Api::on(&Store::memory());
    api.create("wide", 100).await;
    let records: Vec<Value> = (0..1000)
        .map(|i| json!({"key": format!("key-{i}"), "value": format!("v{i}")}))
        .collect();
    let reply = api
        .post("/v1/topics/wide/records", json!({"records": records}))
        .await
        .ok(StatusCode::OK);
    let offsets = reply["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 1000);
    let mut next = vec![0u64; 100];
    for (i, at) in offsets.iter().enumerate() {
        let p = partition_for_key(format!("key-{i}").as_bytes(), 100);
        assert_eq!(at["partition"], p);
        assert_eq!(at["offset"], next[p as usize], "record {i}");
        next[p as usize] += 1;
    }
    let d = api.state.pail.describe_topic("wide").await.unwrap();
    for p in &d.partitions {
        assert_eq!(p.next_offset, next[p.partition as usize]);
    }
}

/// Records a group poll returned, as (partition, offset, value).
fn polled(reply: &Value) -> Vec<(u64, u64, String)> {
    reply["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let v = r["value"].as_str().unwrap().to_string();
            (
                r["partition"].as_u64().unwrap(),
                r["offset"].as_u64().unwrap(),
                v,
            )
        })
        .collect()
}

/// One member's HTTP session: its id, the generation it last saw, and its positions.
struct Member {
    base: String,
    generation: Value,
    positions: Value,
}

impl Member {
    async fn join(api: &Api, group: &str) -> Member {
        let joined = api
            .post(
                &format!("/v1/groups/{group}/members"),
                json!({"topics": ["t"]}),
            )
            .await
            .ok(StatusCode::OK);
        let id = joined["member_id"].as_str().unwrap();
        Member {
            base: format!("/v1/groups/{group}/members/{id}"),
            generation: joined["generation"].clone(),
            positions: json!([]),
        }
    }

    /// Polls, commits what it got, and returns the records and the partitions handed over.
    async fn poll_and_commit(&mut self, api: &Api) -> (Vec<(u64, u64, String)>, Value) {
        let body = json!({"generation": self.generation, "positions": self.positions,
                          "auto_offset_reset": "earliest"});
        let got = api
            .post(&format!("{}/poll", self.base), body)
            .await
            .ok(StatusCode::OK);
        self.generation = got["generation"].clone();
        self.positions = got["positions"].clone();
        let commit = json!({"generation": self.generation, "offsets": self.positions});
        api.post(&format!("{}/offsets", self.base), commit)
            .await
            .ok(StatusCode::OK);
        (polled(&got), got["revoked"].clone())
    }
}

/// Two members over HTTP split four partitions: the second gets its half only once the first
/// hands it over (on its next poll), from the offsets the first committed, and between them
/// every record is read exactly once. Fenced and departed members get 409s.
#[tokio::test]
async fn group_members_over_http_split_the_partitions_and_read_each_record_once() {
    let api = Api::on(&Store::memory());
    api.create("t", 4).await;
    let produce = |tag: &'static str| {
        let records: Vec<Value> = (0..4)
            .flat_map(|p| {
                (0..3).map(move |i| json!({"value": format!("{tag}{p}-{i}"), "partition": p}))
            })
            .collect();
        json!({"records": records})
    };
    api.post("/v1/topics/t/records", produce("a"))
        .await
        .ok(StatusCode::OK);
    let mut seen = BTreeSet::new();
    let mut a = Member::join(&api, "g").await;
    let (got, _) = a.poll_and_commit(&api).await;
    assert_eq!(got.len(), 12, "the only member reads every partition");
    seen.extend(got);

    let mut b = Member::join(&api, "g").await;
    let (got, _) = b.poll_and_commit(&api).await;
    assert!(
        got.is_empty(),
        "nothing until the first member hands over: {got:?}"
    );
    let (got, revoked) = a.poll_and_commit(&api).await;
    assert!(got.is_empty());
    assert_eq!(revoked.as_array().unwrap().len(), 2, "{revoked}");

    api.post("/v1/topics/t/records", produce("b"))
        .await
        .ok(StatusCode::OK);
    for m in [&mut a, &mut b] {
        let (got, _) = m.poll_and_commit(&api).await;
        assert_eq!(
            got.len(),
            6,
            "each member reads its two partitions: {got:?}"
        );
        for r in got {
            assert!(seen.insert(r.clone()), "read twice: {r:?}");
        }
    }
    assert_eq!(seen.len(), 24);

    // A commit for a partition the member does not own is fenced; so is a departed member.
    let theirs = b.positions.clone();
    api.post(
        &format!("{}/offsets", a.base),
        json!({"generation": a.generation, "offsets": theirs}),
    )
    .await
    .error(409, "fenced", "");
    let described = api.get("/v1/groups/g").await.ok(StatusCode::OK);
    assert_eq!(
        described["members"].as_array().unwrap().len(),
        2,
        "{described}"
    );
    assert!(
        described["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["lag"] == 0)
    );
    assert_eq!(
        api.get("/v1/groups").await.ok(StatusCode::OK),
        json!({"groups": ["g"]})
    );
    assert_eq!(api.delete(&a.base).await.status, StatusCode::NO_CONTENT);
    api.post(
        &format!("{}/poll", a.base),
        json!({"generation": a.generation}),
    )
    .await
    .error(409, "fenced", "join again");
}

/// A produce retried with its Idempotency-Key, by the same server or a fresh one (a Lambda
/// retry), gets the original offsets and appends nothing; the key with other records is
/// refused; a malformed key is a 400.
#[tokio::test]
async fn a_produce_retried_with_its_idempotency_key_lands_once() {
    let store = Store::memory();
    let api = Api::on(&store);
    api.create("t", 4).await;
    let records =
        json!({"records": [{"value": "u1"}, {"value": "u2"}, {"key": "k", "value": "v"}]});
    let key = [("Idempotency-Key", "order-42")];
    let first = api
        .post_with("/v1/topics/t/records", records.clone(), &key)
        .await
        .ok(StatusCode::OK);
    for again in [&api, &Api::on(&store)] {
        let retried = again
            .post_with("/v1/topics/t/records", records.clone(), &key)
            .await
            .ok(StatusCode::OK);
        assert_eq!(retried, first);
    }
    let total: u64 = api
        .state
        .pail
        .describe_topic("t")
        .await
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.next_offset)
        .sum();
    assert_eq!(total, 3, "appended once");
    let other =
        json!({"records": [{"value": "u1"}, {"value": "changed"}, {"key": "k", "value": "v"}]});
    let refused = api.post_with("/v1/topics/t/records", other, &key).await;
    assert!(refused.status.is_client_error(), "{}", refused.text());
    let long = "k".repeat(257);
    for bad in ["", long.as_str()] {
        api.post_with(
            "/v1/topics/t/records",
            records.clone(),
            &[("Idempotency-Key", bad)],
        )
        .await
        .error(400, "bad_request", "Idempotency-Key");
    }
}
