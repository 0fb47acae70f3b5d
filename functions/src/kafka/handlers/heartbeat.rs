//! Heartbeat 0-4: one read of the group's tip (a GET of the next version's key), and a chain
//! write only when the member's lease is a third gone, a member expired or a round is overdue
//! (`groups::keep_alive`). Codes in Kafka's order: FENCED_INSTANCE_ID, UNKNOWN_MEMBER_ID,
//! ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS (a round is open: join again), else NONE.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use pail_core::group::classic;
use std::sync::Arc;

use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::groups;
use crate::kafka::{Broker, codes};

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: HeartbeatRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move {
        let mut response = HeartbeatResponse::default();
        response.error_code = match beat(&broker, &request).await {
            Ok(()) => codes::NONE,
            Err(code) => code,
        };
        tracing::debug!(member = %request.member_id.as_str(), generation = request.generation_id,
            "heartbeat: error code {}", response.error_code);
        apis::encode(&response, version)
    }
    .boxed())
}

async fn beat(broker: &Broker, r: &HeartbeatRequest) -> Result<(), i16> {
    let group = groups::group_name(r.group_id.as_str())?;
    let member = r.member_id.as_str();
    let s = broker
        .pail
        .group_state(group.as_str())
        .await
        .map_err(|e| groups::code(&e))?;
    let s = groups::keep_alive(broker, group.as_str(), s, member)
        .await
        .map_err(|e| groups::code(&e))?;
    let instance = r.group_instance_id.as_ref().map(|i| i.as_str());
    let now = groups::now_ms(broker);
    classic::check_member(&s, member, instance, i64::from(r.generation_id), now)
        .map_err(|e| groups::check_code(&e))
}
