//! LeaveGroup 0-4: the members (v3+: a batch, by member id or by static instance id) leave in
//! one chain write, which opens a round for the rest.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use pail_core::group::{GroupEdit, GroupState};
use std::sync::Arc;

use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::groups;
use crate::kafka::{Broker, codes};

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: LeaveGroupRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move {
        let who = if version >= 3 {
            request.members.clone()
        } else {
            let mut one = MemberIdentity::default();
            one.member_id = request.member_id.clone();
            vec![one]
        };
        let mut response = LeaveGroupResponse::default();
        match leave(&broker, request.group_id.as_str(), &who).await {
            Err(code) => response.error_code = code,
            Ok(codes) if version < 3 => response.error_code = codes[0],
            Ok(codes) => {
                response.members = who
                    .into_iter()
                    .zip(codes)
                    .map(|(m, code)| {
                        let mut r = MemberResponse::default();
                        r.member_id = m.member_id;
                        r.group_instance_id = m.group_instance_id;
                        r.error_code = code;
                        r
                    })
                    .collect();
            }
        }
        apis::encode(&response, version)
    }
    .boxed())
}

/// Each member's code; the ones found leave in one write.
async fn leave(broker: &Broker, group: &str, who: &[MemberIdentity]) -> Result<Vec<i16>, i16> {
    let group = groups::group_name(group)?;
    let s = broker
        .pail
        .group_state(group.as_str())
        .await
        .map_err(|e| groups::code(&e))?;
    let found: Vec<Result<String, i16>> = who.iter().map(|m| resolve(&s, m)).collect();
    let ids: Vec<String> = found.iter().filter_map(|f| f.clone().ok()).collect();
    if !ids.is_empty() {
        let edit = GroupEdit::KafkaLeave { member_ids: ids };
        groups::commit(broker, group.as_str(), &edit)
            .await
            .map_err(|e| groups::code(&e))?;
    }
    Ok(found
        .into_iter()
        .map(|f| f.err().unwrap_or(codes::NONE))
        .collect())
}

/// The member id a leaving identity names in `s`.
fn resolve(s: &GroupState, m: &MemberIdentity) -> Result<String, i16> {
    let id = m.member_id.as_str();
    if let Some(instance) = &m.group_instance_id {
        let holder = s
            .members
            .iter()
            .find(|x| x.instance_id.as_deref() == Some(instance.as_str()))
            .ok_or(codes::UNKNOWN_MEMBER_ID)?;
        if !id.is_empty() && holder.id != id {
            return Err(codes::FENCED_INSTANCE_ID);
        }
        return Ok(holder.id.clone());
    }
    s.member(id)
        .map(|m| m.id.clone())
        .ok_or(codes::UNKNOWN_MEMBER_ID)
}
