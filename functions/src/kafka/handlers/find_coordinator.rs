//! FindCoordinator 0-4: for a group, the listener itself (its advertised address, node 0):
//! every listener serves every group, since the group's state is its chain. v4 batches keys.
//! Transactions have no coordinator here (key type 1 is refused).

use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

use super::text;
use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::{Broker, NODE_ID, codes};

/// FindCoordinator's key type for consumer groups.
const KEY_TYPE_GROUP: i8 = 0;

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: FindCoordinatorRequest = apis::decode(&mut body, version)?;
    let mut response = FindCoordinatorResponse::default();
    let (code, message) = if request.key_type == KEY_TYPE_GROUP {
        (codes::NONE, None)
    } else {
        (
            codes::INVALID_REQUEST,
            Some(text("pail has no transactions: only group coordinators")),
        )
    };
    let host = text(broker.config.advertised_host.clone());
    let port = broker.config.advertised_port;
    if version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .iter()
            .map(|key: &StrBytes| {
                let mut c = Coordinator::default();
                c.key = key.clone();
                c.node_id = BrokerId(NODE_ID);
                c.host = host.clone();
                c.port = port;
                c.error_code = code;
                c.error_message = message.clone();
                c
            })
            .collect();
    } else {
        response.error_code = code;
        if version >= 1 {
            response.error_message = message;
        }
        response.node_id = BrokerId(NODE_ID);
        response.host = host;
        response.port = port;
    }
    Ok(apis::ready(apis::encode(&response, version)))
}
