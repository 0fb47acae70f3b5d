//! ApiVersions 0-4: the served APIs and their version ranges, straight from `apis::APIS`.
//!
//! Always answered with a v0 response header. A request newer than v4 gets a v0 body with
//! UNSUPPORTED_VERSION and the ranges, so the client retries with a version listed there.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use std::sync::Arc;

use crate::kafka::Broker;
use crate::kafka::apis::{self, APIS, Answer, ProtocolError, Reply};
use crate::kafka::codes;

pub fn handle(_: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let _request: ApiVersionsRequest = apis::decode(&mut body, version)?;
    Ok(apis::ready(apis::encode(&response(codes::NONE), version)))
}

fn response(error_code: i16) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = error_code;
    r.api_keys = APIS
        .iter()
        .map(|api| {
            let mut v = ApiVersion::default();
            v.api_key = api.key as i16;
            v.min_version = api.min;
            v.max_version = api.max;
            v
        })
        .collect();
    r
}

/// The v0 body answering an ApiVersions request of an unsupported (newer) version.
pub fn unsupported(_requested: i16) -> BytesMut {
    match apis::encode(&response(codes::UNSUPPORTED_VERSION), 0) {
        Answer::Body(b) => b,
        // A v0 ApiVersions response has only an error code and a list: it always encodes.
        _ => BytesMut::new(),
    }
}
