//! SyncGroup 0-5: the leader's request commits every member's assignment for its generation
//! (one write); every member then waits until the state holds its generation's assignment and
//! answers its bytes. For protocol type "consumer" the assignments are also decoded into the
//! group's partition owners, so `pail group describe` shows owners and lag.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use pail_core::group::classic;
use pail_core::group::{GroupEdit, GroupState, Protocol, TopicPartition};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::text;
use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::groups::{self, b64, unb64};
use crate::kafka::{Broker, codes};

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: SyncGroupRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move {
        let mut response = SyncGroupResponse::default();
        match sync(&broker, request).await {
            Ok((assignment, protocol_type, protocol_name)) => {
                response.assignment = assignment;
                if version >= 5 {
                    response.protocol_type = Some(text(protocol_type));
                    response.protocol_name = Some(text(protocol_name));
                }
            }
            Err(code) => response.error_code = code,
        }
        apis::encode(&response, version)
    }
    .boxed())
}

type Synced = (Bytes, String, String);

async fn sync(broker: &Broker, r: SyncGroupRequest) -> Result<Synced, i16> {
    let group = groups::group_name(r.group_id.as_str())?;
    let group = group.as_str();
    let member = r.member_id.to_string();
    let generation = i64::from(r.generation_id);
    let instance = r.group_instance_id.as_ref().map(|i| i.to_string());
    let s = broker
        .pail
        .group_state(group)
        .await
        .map_err(|e| groups::code(&e))?;
    let now = groups::now_ms(broker);
    classic::check_member(&s, &member, instance.as_deref(), generation, now)
        .map_err(|e| groups::check_code(&e))?;
    let Protocol::Classic {
        protocol_type,
        protocol_name,
        leader,
    } = &s.protocol
    else {
        return Err(codes::INCONSISTENT_GROUP_PROTOCOL);
    };
    let mismatch = |asked: &Option<kafka_protocol::protocol::StrBytes>, have: &str| {
        asked.as_ref().is_some_and(|a| a.as_str() != have)
    };
    if mismatch(&r.protocol_type, protocol_type) || mismatch(&r.protocol_name, protocol_name) {
        return Err(codes::INCONSISTENT_GROUP_PROTOCOL);
    }
    if s.awaiting_sync && *leader == member {
        let edit = GroupEdit::KafkaSync {
            member_id: member.clone(),
            generation: s.generation,
            assignments: r
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), b64(&a.assignment)))
                .collect(),
            owners: if protocol_type == "consumer" {
                owners(&r)
            } else {
                BTreeMap::new()
            },
        };
        // Refused (a retry already landed, or the group moved on): the wait below tells.
        if let Err(e) = groups::commit(broker, group, &edit).await {
            tracing::debug!("sync of group {group}: {e}");
        }
    }
    let wait = groups::wait_bound(s.member(&member).map_or(0, |m| m.rebalance_timeout_ms));
    let expected = s.generation;
    let waited = groups::wait_for(broker, group, &member, wait, |s| {
        settled(s, &member, expected)
    })
    .await;
    match waited {
        Ok(Some(answer)) => answer,
        Ok(None) => Err(codes::REBALANCE_IN_PROGRESS),
        Err(e) => Err(groups::code(&e)),
    }
}

/// What a member's SyncGroup answers once the state says, or `None` to keep waiting.
fn settled(s: &GroupState, member: &str, generation: u64) -> Option<Result<Synced, i16>> {
    let Some(m) = s.member(member) else {
        return Some(Err(codes::UNKNOWN_MEMBER_ID));
    };
    if s.generation != generation || s.round.is_some() {
        return Some(Err(codes::REBALANCE_IN_PROGRESS));
    }
    if s.awaiting_sync {
        return None;
    }
    let Protocol::Classic {
        protocol_type,
        protocol_name,
        ..
    } = &s.protocol
    else {
        return Some(Err(codes::INCONSISTENT_GROUP_PROTOCOL));
    };
    Some(Ok((
        unb64(&m.assignment),
        protocol_type.clone(),
        protocol_name.clone(),
    )))
}

/// The partitions each member's ConsumerProtocolAssignment names (members whose bytes do not
/// decode are left out: the bytes are the client's business).
fn owners(r: &SyncGroupRequest) -> BTreeMap<TopicPartition, String> {
    let mut out = BTreeMap::new();
    for a in &r.assignments {
        let Some(decoded) = groups::assignment_partitions(&a.assignment) else {
            continue;
        };
        for (topic, partitions) in decoded {
            for p in partitions {
                if let Ok(p) = u32::try_from(p) {
                    out.insert(
                        TopicPartition::new(topic.as_str(), p),
                        a.member_id.to_string(),
                    );
                }
            }
        }
    }
    out
}
