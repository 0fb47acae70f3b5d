//! The table of APIs the listener serves: key, version range and handler, in one place.
//!
//! The ApiVersions answer is built from this table, so what the listener advertises and what
//! it serves can never disagree. Clients choose their features from ApiVersions, so only
//! what works is listed (no transactions, fetch sessions or KIP-848 groups).
//!
//! A request is dispatched in two steps: the handler decodes and validates it right away, in
//! the order requests arrive on the connection (so a Produce is queued behind the previous
//! one), and returns a future for the rest; the connection answers those futures in order.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::FutureExt;
use futures::future::BoxFuture;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::sync::Arc;

use super::Broker;
use super::handlers::{
    api_versions, create_topics, delete_topics, describe_configs, fetch, find_coordinator,
    heartbeat, init_producer_id, join_group, leave_group, list_groups, list_offsets, metadata,
    offset_commit, offset_fetch, produce, sync_group,
};

/// How a request is answered.
#[derive(Debug)]
pub enum Answer {
    /// The response body.
    Body(BytesMut),
    /// No response at all (Produce with acks=0).
    Nothing,
    /// The response cannot be built: the connection is closed.
    Fail(ProtocolError),
}

pub type Reply = BoxFuture<'static, Answer>;

/// Decodes a request (now) and returns what answers it (later).
pub type Handler = fn(&Arc<Broker>, i16, Bytes) -> Result<Reply, ProtocolError>;

/// One served API.
pub struct Api {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
    pub handle: Handler,
}

/// Everything the listener serves. Ranges: what librdkafka 2.x, kafka-python 3 and kcat ask
/// for, from Kafka 4's minimums up to versions whose fields all mean something here.
pub static APIS: [Api; 18] = [
    Api {
        key: ApiKey::Produce,
        min: 3,
        max: 11,
        handle: produce::handle,
    },
    Api {
        key: ApiKey::Fetch,
        min: 4,
        max: 12,
        handle: fetch::handle,
    },
    Api {
        key: ApiKey::ListOffsets,
        min: 1,
        max: 7,
        handle: list_offsets::handle,
    },
    Api {
        key: ApiKey::Metadata,
        min: 0,
        max: 12,
        handle: metadata::handle,
    },
    Api {
        key: ApiKey::ApiVersions,
        min: 0,
        max: 4,
        handle: api_versions::handle,
    },
    Api {
        key: ApiKey::CreateTopics,
        min: 2,
        max: 7,
        handle: create_topics::handle,
    },
    Api {
        key: ApiKey::InitProducerId,
        min: 0,
        max: 4,
        handle: init_producer_id::handle,
    },
    Api {
        key: ApiKey::DescribeConfigs,
        min: 1,
        max: 4,
        handle: describe_configs::handle,
    },
    Api {
        key: ApiKey::FindCoordinator,
        min: 0,
        max: 4,
        handle: find_coordinator::handle,
    },
    Api {
        key: ApiKey::JoinGroup,
        min: 0,
        max: 7,
        handle: join_group::handle,
    },
    Api {
        key: ApiKey::SyncGroup,
        min: 0,
        max: 5,
        handle: sync_group::handle,
    },
    Api {
        key: ApiKey::Heartbeat,
        min: 0,
        max: 4,
        handle: heartbeat::handle,
    },
    Api {
        key: ApiKey::LeaveGroup,
        min: 0,
        max: 4,
        handle: leave_group::handle,
    },
    Api {
        key: ApiKey::OffsetCommit,
        min: 2,
        max: 8,
        handle: offset_commit::handle,
    },
    Api {
        key: ApiKey::OffsetFetch,
        min: 1,
        max: 8,
        handle: offset_fetch::handle,
    },
    Api {
        key: ApiKey::ListGroups,
        min: 0,
        max: 4,
        handle: list_groups::list,
    },
    Api {
        key: ApiKey::DescribeGroups,
        min: 0,
        max: 5,
        handle: list_groups::describe,
    },
    Api {
        key: ApiKey::DeleteTopics,
        min: 1,
        max: 6,
        handle: delete_topics::handle,
    },
];

pub fn find(key: i16) -> Option<&'static Api> {
    APIS.iter().find(|a| a.key as i16 == key)
}

/// A request the listener cannot answer: the connection is closed with this reason logged,
/// as a Kafka broker does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The future of a whole response frame (length prefix included), `None` for no response.
pub type Response = BoxFuture<'static, Result<Option<Framed>, ProtocolError>>;

/// A response frame in two pieces, written one after the other: the length prefix with the
/// response header, and the body (not copied behind the header: a Fetch body can be large).
#[derive(Debug)]
pub struct Framed {
    pub head: Bytes,
    pub body: Bytes,
}

/// Smallest request: api key, api version and correlation id.
const REQUEST_PREFIX_BYTES: usize = 8;

/// Routes one request frame (without its length prefix) and returns the future of its whole
/// response frame (with the length prefix).
pub fn dispatch(broker: &Arc<Broker>, frame: Bytes) -> Result<Response, ProtocolError> {
    if frame.len() < REQUEST_PREFIX_BYTES {
        return Err(ProtocolError(format!(
            "request of {} bytes is shorter than a header",
            frame.len()
        )));
    }
    let mut prefix = &frame[..REQUEST_PREFIX_BYTES];
    let (key, version, correlation_id) = (prefix.get_i16(), prefix.get_i16(), prefix.get_i32());
    let api = find(key).ok_or_else(|| ProtocolError(format!("unsupported API key {key}")))?;
    if api.key == ApiKey::ApiVersions && version > api.max {
        // A client newer than us: answer in v0 with the error and our ranges, so it retries
        // with a version we speak (KIP-511).
        let body = api_versions::unsupported(version);
        return Ok(async move { Ok(Some(frame_response(correlation_id, 0, body))) }.boxed());
    }
    if version < api.min || version > api.max {
        return Err(ProtocolError(format!(
            "{:?} v{version} is not supported (v{} to v{})",
            api.key, api.min, api.max
        )));
    }
    let mut rest = frame;
    let header: RequestHeader = decode(&mut rest, api.key.request_header_version(version))?;
    debug_assert_eq!(header.correlation_id, correlation_id);
    let reply = (api.handle)(broker, version, rest)?;
    let header_version = api.key.response_header_version(version);
    // Fields are evaluated only when debug logging is on: nothing is spent per request otherwise.
    let client = header.client_id.as_deref().unwrap_or("");
    tracing::debug!(client, correlation_id, "{:?} v{version}", api.key);
    let key = api.key;
    Ok(async move {
        let answer = reply.await;
        tracing::debug!(correlation_id, "{key:?} v{version} answered");
        match answer {
            Answer::Body(body) => Ok(Some(frame_response(correlation_id, header_version, body))),
            Answer::Nothing => Ok(None),
            Answer::Fail(e) => Err(e),
        }
    }
    .boxed())
}

/// Length prefix, response header and body.
fn frame_response(correlation_id: i32, header_version: i16, body: BytesMut) -> Framed {
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let mut head = BytesMut::with_capacity(16);
    head.put_i32(0);
    // A response header has only the correlation id and (v1) an empty tag buffer.
    let _ = header.encode(&mut head, header_version);
    let len = (head.len() - 4 + body.len()) as i32;
    head[..4].copy_from_slice(&len.to_be_bytes());
    Framed {
        head: head.freeze(),
        body: body.freeze(),
    }
}

/// Decodes a message from `buf`; a decoder panic on hostile bytes is an error like any other.
pub fn decode<T: Decodable>(buf: &mut Bytes, version: i16) -> Result<T, ProtocolError> {
    let what = std::any::type_name::<T>()
        .rsplit("::")
        .next()
        .unwrap_or("message");
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| T::decode(buf, version))) {
        Ok(Ok(msg)) => Ok(msg),
        Ok(Err(e)) => Err(ProtocolError(format!(
            "{what} v{version} does not decode: {e}"
        ))),
        Err(_) => Err(ProtocolError(format!("{what} v{version} does not decode"))),
    }
}

/// Encodes a response body. Handlers set only fields that exist in the version they answer,
/// so this fails only on a bug; the connection is then closed rather than sent garbage.
pub fn encode<T: Encodable>(msg: &T, version: i16) -> Answer {
    let mut out = BytesMut::with_capacity(msg.compute_size(version).unwrap_or(0));
    match msg.encode(&mut out, version) {
        Ok(()) => Answer::Body(out),
        Err(e) => Answer::Fail(ProtocolError(format!(
            "cannot encode {} v{version}: {e}",
            std::any::type_name::<T>()
        ))),
    }
}

/// A handler whose answer is ready now.
pub fn ready(answer: Answer) -> Reply {
    async move { answer }.boxed()
}
