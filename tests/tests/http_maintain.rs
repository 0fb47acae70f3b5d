//! `PATCH` and `DELETE /v1/topics/{topic}` through the router in process (issue 12): settings
//! change and partitions grow, every refusal is a JSON error with its status, retention shows
//! in describe and as a 416 naming the new log start, and a deleted topic created again
//! continues its offsets under a new id.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use pail_core::Store;
use pail_core::maintain::MaintainOptions;
use pail_functions::http::{AppState, router};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Api {
    app: Router,
    state: AppState,
}

impl Api {
    fn on(store: &Store) -> Api {
        let state = AppState::new(store);
        Api {
            app: router(state.clone(), None),
            state,
        }
    }

    /// Status and JSON body (`Null` for an empty one).
    async fn send(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or(Body::empty(), |b| Body::from(b.to_string()));
        let response = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = match bytes.is_empty() {
            true => Value::Null,
            false => serde_json::from_slice(&bytes).unwrap(),
        };
        (status, value)
    }

    async fn ok(&self, method: Method, uri: &str, body: Option<Value>, want: StatusCode) -> Value {
        let (status, value) = self.send(method, uri, body).await;
        assert_eq!(status, want, "{value}");
        value
    }

    async fn patch(&self, topic: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PATCH, &format!("/v1/topics/{topic}"), Some(body))
            .await
    }
}

/// Asserts a JSON error: status, code, and a message mentioning each needle.
fn assert_error((status, body): (StatusCode, Value), want: u16, code: &str, needles: &[&str]) {
    assert_eq!(status.as_u16(), want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    for n in needles {
        assert!(message.contains(n), "{message:?} should mention {n:?}");
    }
}

async fn created(api: &Api, name: &str, partitions: u32) {
    let body = json!({"name": name, "partitions": partitions});
    api.ok(Method::POST, "/v1/topics", Some(body), StatusCode::CREATED)
        .await;
}

#[tokio::test]
async fn alter_changes_settings_and_grows_partitions() {
    let api = Api::on(&Store::memory());
    created(&api, "t", 2).await;
    let (status, body) = api
        .patch(
            "t",
            json!({"partitions": 4, "retention_ms": 86400000, "retention_bytes": 1048576,
                   "compression": "lz4"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["topic"], "t");
    let config = &body["config"];
    assert_eq!(
        (
            &config["partitions"],
            &config["retention_ms"],
            &config["compression"]
        ),
        (&json!(4), &json!(86_400_000), &json!("lz4"))
    );
    let described = api
        .ok(Method::GET, "/v1/topics/t", None, StatusCode::OK)
        .await;
    assert_eq!(described["partitions"].as_array().unwrap().len(), 4);
    assert_eq!(described["config"]["retention_bytes"], 1_048_576);
    // -1 removes a limit.
    let (_, body) = api.patch("t", json!({"retention_bytes": -1})).await;
    assert_eq!(body["config"].get("retention_bytes"), None, "{body}");
    let produce = json!({"records": [{"value": "v", "partition": 3}]});
    api.ok(
        Method::POST,
        "/v1/topics/t/records",
        Some(produce),
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn bad_alters_are_refused_with_their_status() {
    let api = Api::on(&Store::memory());
    created(&api, "t", 3).await;
    assert_error(
        api.patch("t", json!({"partitions": 2})).await,
        400,
        "invalid_input",
        &["only grow", "3 now, 2 asked"],
    );
    assert_error(
        api.patch("t", json!({})).await,
        400,
        "bad_request",
        &["nothing to change"],
    );
    assert_error(
        api.patch("t", json!({"cleanup.policy": "compact"})).await,
        400,
        "bad_request",
        &["cleanup.policy"],
    );
    assert_error(
        api.patch("t", json!({"retention_ms": 0})).await,
        400,
        "invalid_input",
        &["at least 1"],
    );
    assert_error(
        api.patch("t", json!({"compact_target_bytes": 10})).await,
        400,
        "invalid_input",
        &["compact.target.bytes"],
    );
    assert_error(
        api.patch("nope", json!({"partitions": 9})).await,
        404,
        "not_found",
        &["nope"],
    );
    assert_error(
        api.send(Method::DELETE, "/v1/topics/nope", None).await,
        404,
        "not_found",
        &["nope"],
    );
    assert_error(
        api.send(Method::DELETE, "/v1/topics/..", None).await,
        400,
        "invalid_input",
        &[],
    );
    // Nothing changed.
    let described = api
        .ok(Method::GET, "/v1/topics/t", None, StatusCode::OK)
        .await;
    assert_eq!(described["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(described["config"].get("retention_ms"), None);
}

#[tokio::test]
async fn retention_moves_the_log_start_and_a_fetch_below_it_names_the_start() {
    let api = Api::on(&Store::memory());
    created(&api, "r", 1).await;
    // Records from 2001, then one of now: two commits.
    let old = json!({"records": [{"value": "a", "timestamp": 1000000000000_i64},
                                 {"value": "b", "timestamp": 1000000000000_i64}]});
    api.ok(
        Method::POST,
        "/v1/topics/r/records",
        Some(old),
        StatusCode::OK,
    )
    .await;
    let new = json!({"records": [{"value": "c"}]});
    api.ok(
        Method::POST,
        "/v1/topics/r/records",
        Some(new),
        StatusCode::OK,
    )
    .await;
    api.patch("r", json!({"retention_ms": 3600000})).await;
    let opts = MaintainOptions {
        grace_ms: 0,
        ..MaintainOptions::default()
    };
    let report = api.state.pail.maintain(Some("r"), opts).await.unwrap();
    assert_eq!(report[0].log_start_offset, Some(2), "{report:?}");
    let described = api
        .ok(Method::GET, "/v1/topics/r", None, StatusCode::OK)
        .await;
    assert_eq!(described["partitions"][0]["log_start_offset"], 2);
    let offsets = api
        .ok(Method::GET, "/v1/topics/r/offsets", None, StatusCode::OK)
        .await;
    assert!(offsets.to_string().contains("\"earliest\":2"), "{offsets}");
    assert_error(
        api.send(
            Method::GET,
            "/v1/topics/r/partitions/0/records?offset=0",
            None,
        )
        .await,
        416,
        "offset_out_of_range",
        &["valid offsets are 2..=3"],
    );
    let got = api
        .ok(
            Method::GET,
            "/v1/topics/r/partitions/0/records?offset=earliest",
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(got["records"][0]["offset"], 2, "{got}");
    assert_eq!(got["records"][0]["value"], "c", "{got}");
}

#[tokio::test]
async fn a_deleted_topic_is_gone_and_created_again_continues_its_offsets() {
    let api = Api::on(&Store::memory());
    created(&api, "d", 1).await;
    let old_id = api
        .ok(Method::GET, "/v1/topics/d", None, StatusCode::OK)
        .await["id"]
        .clone();
    let records = json!({"records": [{"value": "x"}, {"value": "y"}]});
    api.ok(
        Method::POST,
        "/v1/topics/d/records",
        Some(records),
        StatusCode::OK,
    )
    .await;
    let body = api
        .ok(Method::DELETE, "/v1/topics/d", None, StatusCode::NO_CONTENT)
        .await;
    assert_eq!(body, Value::Null);
    assert_error(
        api.send(Method::GET, "/v1/topics/d", None).await,
        404,
        "not_found",
        &["d"],
    );
    assert_error(
        api.send(Method::DELETE, "/v1/topics/d", None).await,
        404,
        "not_found",
        &["d"],
    );
    let list = api
        .ok(Method::GET, "/v1/topics", None, StatusCode::OK)
        .await;
    assert_eq!(list["topics"], json!([]));

    created(&api, "d", 1).await;
    let new_id = api
        .ok(Method::GET, "/v1/topics/d", None, StatusCode::OK)
        .await["id"]
        .clone();
    assert_ne!(new_id, old_id);
    let records = json!({"records": [{"value": "z"}]});
    let produced = api
        .ok(
            Method::POST,
            "/v1/topics/d/records",
            Some(records),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        produced["offsets"][0]["offset"], 2,
        "offsets are never reused"
    );
}
