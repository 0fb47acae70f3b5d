//! The one error type of the HTTP API and its status mapping.
//!
//! Every failure leaves as `{"error": {"code", "message"}}` with a status that tells the client
//! what to do. Core errors are mapped in one `match` on [`ErrorKind`] ([`status_of`]); the API's
//! own failures (bad JSON, a missing token, an unknown route) are built here too, so no handler
//! chooses a status by itself.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pail_core::{Error, ErrorKind};
use serde::Serialize;
use utoipa::ToSchema;

/// Seconds a client is asked to wait (`Retry-After`) after a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable name: `invalid_input`, `not_found`, `already_exists`, `offset_out_of_range`,
    /// `conflict`, `fenced`, `not_leader`, `corrupt`, `unavailable`, `outcome_unknown`,
    /// `bad_request`, `payload_too_large`, `unauthorized`, `method_not_allowed`, `internal`.
    pub code: String,
    /// What went wrong, with the values that matter (topic, partition, offsets, limits).
    pub message: String,
}

/// The failures every route that needs the token and the store may answer with, for the
/// OpenAPI document (`responses(..., StoreErrors)`); only documents, never built.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum StoreErrors {
    /// Missing or wrong bearer token
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Corrupt data in the store, or a commit whose outcome is unknown (a plain retry could
    /// append twice)
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The store did not answer or refused; retry after `Retry-After` seconds
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request does not parse or breaks a rule of the API.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 413: a body or batch over a named limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 401: no valid bearer token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 500 for a handler that panicked; the id is in the server's log next to the panic.
    pub fn internal(id: &str) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error {id}; the server log has the details under this id"),
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The status for a core error: what the client should do about it, in one place.
pub fn status_of(e: &Error) -> StatusCode {
    match e.kind() {
        ErrorKind::InvalidInput if is_too_large(e) => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists | ErrorKind::Conflict | ErrorKind::Fenced | ErrorKind::Aborted => {
            StatusCode::CONFLICT
        }
        ErrorKind::OffsetOutOfRange => StatusCode::RANGE_NOT_SATISFIABLE,
        // Another writer leads the partition for a while, or the store is not answering:
        // both pass, so the client is told when to come back.
        ErrorKind::NotLeader | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        // Corrupt data needs an operator; an unknown outcome must not look retriable, since a
        // plain retry could append the batch twice.
        // A store that refuses the server for good (permissions, no bucket) is the deployment's
        // problem, not one a client's retry can wait out.
        ErrorKind::Corrupt | ErrorKind::OutcomeUnknown | ErrorKind::Refused => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn is_too_large(e: &Error) -> bool {
    matches!(e, Error::TooLarge { .. } | Error::TooManyRecords { .. })
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = status_of(&e);
        ApiError {
            status,
            code: e.kind().as_str(),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = self.code, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_core_error_gets_its_status() {
        let cases = [
            (Error::InvalidArgument("x".into()), 400),
            (
                Error::TooLarge {
                    what: "record",
                    actual: 2,
                    limit: 1,
                },
                413,
            ),
            (
                Error::TooManyRecords {
                    what: "batch",
                    actual: 2,
                    limit: 1,
                },
                413,
            ),
            (Error::UnknownTopic { topic: "t".into() }, 404),
            (Error::TopicExists { topic: "t".into() }, 409),
            (
                Error::Conflict {
                    chain: "t/0".into(),
                    attempts: 9,
                },
                409,
            ),
            (
                Error::Fenced {
                    chain: "t/0".into(),
                    reason: "superseded".into(),
                },
                409,
            ),
            (
                Error::Aborted {
                    partition: 0,
                    cause: std::sync::Arc::new(Error::InvalidArgument("x".into())),
                },
                409,
            ),
            (
                Error::UnsafeStore {
                    location: "s3://b".into(),
                    reason: "no conditional writes".into(),
                },
                500,
            ),
            (
                Error::OffsetOutOfRange {
                    topic: "t".into(),
                    partition: 0,
                    offset: 9,
                    log_start: 0,
                    next: 1,
                },
                416,
            ),
            (
                Error::NotLeader {
                    topic: "t".into(),
                    partition: 0,
                    leader: "w".into(),
                    epoch: 1,
                    remaining_ms: 5,
                },
                503,
            ),
            (
                Error::Corrupt {
                    key: "k".into(),
                    reason: "r".into(),
                },
                500,
            ),
            (
                Error::BufferFull {
                    waited_ms: 1,
                    buffer_bytes: 1,
                },
                503,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(status_of(&e).as_u16(), status, "{e}");
        }
    }

    #[test]
    fn unavailable_says_when_to_retry() {
        let response = ApiError::from(Error::BufferFull {
            waited_ms: 1,
            buffer_bytes: 1,
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let ok = ApiError::bad_request("x").into_response();
        assert!(ok.headers().get(header::RETRY_AFTER).is_none());
    }
}
