//! The HTTP API: one axum [`Router`] built by [`router`], served two ways from the same code
//! (see [`host`]): `pail serve` on a local socket, and AWS Lambda behind a Function URL through
//! `lambda_http`.
//!
//! ```text
//! GET  /healthz                                           liveness (no store request, no auth)
//! GET  /metrics                                           Prometheus text format
//! GET  /openapi.json                                      this API, generated from the handlers
//! GET  /v1/topics                  POST /v1/topics        list, create
//! GET  /v1/topics/{topic}                                 describe
//! PATCH /v1/topics/{topic}         DELETE /v1/topics/{topic}   alter, delete
//! POST /v1/topics/{topic}/records                         produce a batch
//! GET  /v1/topics/{topic}/partitions/{partition}/records  fetch (optionally long-polling)
//! GET  /v1/topics/{topic}/offsets                         earliest and latest per partition
//! ```
//!
//! Handlers are thin: parse (the [`extract`] wrappers), call [`pail_core::Pail`], render.
//! Every failure is an [`error::ApiError`], whose one `match` on the core's error kind picks
//! the status. Every route is registered through utoipa-axum's `routes!`, so the router and
//! `/openapi.json` are built from the same list and cannot drift apart.
//!
//! Must never: hold a lock or spawn a task across a request (a client that goes away must
//! take its work with it), or touch the store except through the `Pail` client.

pub mod auth;
pub mod error;
mod extract;
pub mod groups;
pub mod host;
pub mod metrics;
mod ops;
pub mod records;
pub mod topics;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri, header};
use axum::response::{IntoResponse, Response};
use pail_core::{Pail, Store};
use serde::Serialize;
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use auth::Token;
use error::ApiError;
use metrics::Metrics;

/// Largest request body accepted, in bytes; larger ones get 413. A Lambda Function URL accepts
/// at most 6 MB per request, so the same limit holds on both hosts.
pub const REQUEST_BODY_BYTES_MAX: usize = 6 * 1024 * 1024;

/// What every handler shares: one client for the process (its caches serve every request)
/// and the metrics.
#[derive(Clone, Debug)]
pub struct AppState {
    pub pail: Pail,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// A client on `store` whose requests `/metrics` counts.
    pub fn new(store: &Store) -> AppState {
        let (store, counts) = crate::bench::metered(store);
        AppState {
            pail: Pail::new(store),
            metrics: Arc::new(Metrics::new(counts)),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pail",
        description = "A serverless, Kafka-style log kept as Parquet segments in object storage."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "topics", description = "Create, list, describe, alter and delete topics"),
        (name = "records", description = "Produce, fetch and list offsets"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The routes behind authentication.
fn protected_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(topics::list, topics::create))
        .routes(routes!(topics::describe, topics::alter, topics::delete))
        .routes(routes!(records::produce))
        .routes(routes!(records::fetch))
        .routes(routes!(records::offsets))
        .routes(routes!(groups::list))
        .routes(routes!(groups::describe))
        .routes(routes!(groups::join))
        .routes(routes!(groups::poll))
        .routes(routes!(groups::commit))
        .routes(routes!(groups::leave))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi_json))
}

/// Routes anyone may call: a load balancer's health check carries no token.
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ops::healthz))
}

/// The OpenAPI document of every route [`router`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    protected_routes().merge(public_routes()).into_openapi()
}

/// The whole API. With a `token`, every route but `/healthz` requires it.
pub fn router(state: AppState, token: Option<Token>) -> Router {
    let mut protected = protected_routes();
    if let Some(token) = token {
        protected =
            protected.route_layer(axum::middleware::from_fn_with_state(token, auth::require));
    }
    let (routes, _) = protected.merge(public_routes()).split_for_parts();
    let metrics = Arc::clone(&state.metrics);
    with_layers(routes.with_state(state), metrics)
}

/// What every route gets: the body limit, JSON answers for unknown routes and methods, panic
/// containment and request metrics. Public so tests can wrap their own routes the same way.
pub fn with_layers(routes: Router, metrics: Arc<Metrics>) -> Router {
    routes
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {}", uri.path()),
    )
}

async fn no_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// A handler's panic becomes a 500 whose id is logged with the panic message.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    let id = uuid::Uuid::new_v4().simple().to_string();
    tracing::error!(panic_id = %id, message, "handler panicked");
    ApiError::internal(&id).into_response()
}

/// `value` as a JSON response (for bodies that borrow from the handler's locals).
fn json_response<T: Serialize>(value: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot encode the response: {e}"),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
