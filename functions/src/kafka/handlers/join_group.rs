//! JoinGroup 0-7 on the group chain (`pail_core::group::classic`): commit the join, then wait
//! for the round it joined to complete (see `kafka::groups`). v4+ clients without a member id
//! get MEMBER_ID_REQUIRED and a fresh id first (no write); v0-3 clients, and static members
//! (v5+ `group.instance.id`), join with a fresh id at once.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use pail_core::group::classic::{self, KafkaJoin};
use pail_core::group::{ClassicProtocol, GroupEdit, GroupState, Protocol};
use std::sync::Arc;

use super::text;
use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::groups::{self, b64, unb64};
use crate::kafka::{Broker, codes};

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: JoinGroupRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move {
        let response = join(&broker, version, request).await;
        apis::encode(&response, version)
    }
    .boxed())
}

fn refused(version: i16, code: i16, member_id: StrBytes) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = code;
    r.generation_id = -1;
    r.member_id = member_id;
    if version < 7 {
        r.protocol_name = Some(StrBytes::default());
    }
    r
}

async fn join(broker: &Broker, version: i16, r: JoinGroupRequest) -> JoinGroupResponse {
    let group = match groups::group_name(r.group_id.as_str()) {
        Ok(g) => g,
        Err(code) => return refused(version, code, r.member_id),
    };
    let instance_id = r.group_instance_id.as_ref().map(|i| i.to_string());
    let mut member_id = r.member_id.to_string();
    if member_id.is_empty() {
        let fresh = groups::new_member_id(broker);
        if version >= 4 && instance_id.is_none() {
            return refused(version, codes::MEMBER_ID_REQUIRED, text(fresh));
        }
        member_id = fresh;
    }
    let rebalance = if version >= 1 {
        r.rebalance_timeout_ms
    } else {
        r.session_timeout_ms
    };
    let (Ok(session), Ok(rebalance)) = (
        u64::try_from(r.session_timeout_ms),
        u64::try_from(rebalance),
    ) else {
        return refused(version, codes::INVALID_SESSION_TIMEOUT, text(member_id));
    };
    let join = KafkaJoin {
        member_id: member_id.clone(),
        instance_id,
        topics: subscribed_topics(&r),
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .iter()
            .map(|p| ClassicProtocol {
                name: p.name.to_string(),
                metadata: b64(&p.metadata),
            })
            .collect(),
        session_timeout_ms: session,
        rebalance_timeout_ms: rebalance,
        client: "kafka".into(),
    };
    let joined = match groups::commit(broker, group.as_str(), &GroupEdit::KafkaJoin(join)).await {
        Ok(s) => s,
        Err(e) => return refused(version, groups::code(&e), text(member_id)),
    };
    // A round's completion bumps the generation by one.
    let target = joined.generation + u64::from(joined.round.is_some());
    let me = member_id.clone();
    let waited = groups::wait_for(
        broker,
        group.as_str(),
        &me,
        groups::wait_bound(rebalance),
        |s| (s.generation >= target || s.member(&me).is_none()).then(|| answer(s, &me, version)),
    )
    .await;
    match waited {
        Ok(Some(answer)) => answer,
        Ok(None) => refused(version, codes::REBALANCE_IN_PROGRESS, text(member_id)),
        Err(e) => refused(version, groups::code(&e), text(member_id)),
    }
}

/// The topics in a "consumer" member's first subscription (for `pail group describe`); none
/// if it does not decode.
fn subscribed_topics(r: &JoinGroupRequest) -> Vec<String> {
    if r.protocol_type.as_str() != "consumer" {
        return Vec::new();
    }
    let first = r
        .protocols
        .first()
        .map(|p| &p.metadata[..])
        .unwrap_or_default();
    let mut topics = groups::subscription_topics(first).unwrap_or_default();
    topics.sort();
    topics.dedup();
    topics
}

/// The JoinGroup answer for `member` from the group's state.
fn answer(s: &GroupState, member: &str, version: i16) -> JoinGroupResponse {
    let Some(_) = s.member(member) else {
        return refused(version, codes::UNKNOWN_MEMBER_ID, text(member));
    };
    let (protocol_type, protocol_name, leader) = match &s.protocol {
        Protocol::Classic {
            protocol_type,
            protocol_name,
            leader,
        } => (protocol_type.clone(), protocol_name.clone(), leader.clone()),
        Protocol::Managed { .. } => {
            return refused(version, codes::INCONSISTENT_GROUP_PROTOCOL, text(member));
        }
    };
    let mut r = JoinGroupResponse::default();
    r.generation_id = s.generation as i32;
    if version >= 7 {
        r.protocol_type = Some(text(protocol_type));
    }
    r.protocol_name = Some(text(protocol_name));
    r.member_id = text(member);
    if leader == member {
        r.members = s
            .members
            .iter()
            .map(|m| {
                let mut out = JoinGroupResponseMember::default();
                out.member_id = text(m.id.clone());
                if version >= 5 {
                    out.group_instance_id = m.instance_id.clone().map(text);
                }
                out.metadata = unb64(classic::chosen_metadata(s, m));
                out
            })
            .collect();
    }
    r.leader = text(leader);
    r
}
