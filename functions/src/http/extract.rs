//! Request extractors whose rejections are API errors.
//!
//! axum's own extractors answer bad input with plain text and statuses of their choosing (415
//! for a missing content type, 422 for a body of the wrong shape). These wrap them so every
//! rejection is a JSON [`ApiError`]: 413 for a body over [`super::REQUEST_BODY_BYTES_MAX`], 400
//! with axum's explanation for everything else.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body (`Content-Type: application/json`), limited to [`super::REQUEST_BODY_BYTES_MAX`].
pub struct JsonBody<T>(pub T);

/// Query parameters.
pub struct Query<T>(pub T);

/// Path parameters.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection {
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(format!(
            "request body is over the limit of {} bytes",
            super::REQUEST_BODY_BYTES_MAX
        )),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::bad_request("expected a JSON body with Content-Type: application/json")
        }
        other => ApiError::bad_request(format!("invalid JSON body: {}", other.body_text())),
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::bad_request(format!("invalid query: {}", rejection.body_text()))
            })
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection: PathRejection| {
                ApiError::bad_request(format!("invalid path: {}", rejection.body_text()))
            })
    }
}
