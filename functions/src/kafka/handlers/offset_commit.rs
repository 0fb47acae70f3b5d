//! OffsetCommit 2-8: the request's offsets in one chain write, under Kafka's rules
//! (`pail_core::group::classic`): the member and generation must be the group's, except a
//! "simple" commit (generation -1, no member id: `assign()`ed consumers), which is accepted
//! only while the group has no live member. Offsets land in the state's `offsets` map that
//! `pail group describe` and `pail consume --group` read. Kafka's `retention_time_ms` (v2-4)
//! is not needed: a group's offsets stay until the group is deleted.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use pail_core::TopicName;
use pail_core::group::state::OFFSET_METADATA_MAX_BYTES;
use pail_core::group::{GroupEdit, OffsetCommit, TopicPartition};
use std::sync::Arc;

use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::groups;
use crate::kafka::{Broker, codes};

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: OffsetCommitRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move {
        let response = commit(&broker, request).await;
        apis::encode(&response, version)
    }
    .boxed())
}

async fn commit(broker: &Broker, r: OffsetCommitRequest) -> OffsetCommitResponse {
    // Each partition's own problem first; the rest share the group's answer.
    let mut checked: Vec<(usize, i32, Result<OffsetCommit, i16>)> = Vec::new();
    for (t, topic) in r.topics.iter().enumerate() {
        for p in &topic.partitions {
            checked.push((t, p.partition_index, entry(topic.name.as_str(), p)));
        }
    }
    let offsets: Vec<OffsetCommit> = checked
        .iter()
        .filter_map(|(_, _, c)| c.as_ref().ok().cloned())
        .collect();
    let group_code = match groups::group_name(r.group_id.as_str()) {
        Err(code) => code,
        Ok(group) => {
            let edit = GroupEdit::KafkaCommit {
                member_id: r.member_id.to_string(),
                instance_id: r.group_instance_id.as_ref().map(|i| i.to_string()),
                generation: i64::from(r.generation_id_or_member_epoch),
                offsets,
            };
            match groups::commit(broker, group.as_str(), &edit).await {
                Ok(_) => codes::NONE,
                Err(e) => groups::code(&e),
            }
        }
    };
    let mut response = OffsetCommitResponse::default();
    response.topics = r
        .topics
        .iter()
        .map(|t| {
            let mut out = OffsetCommitResponseTopic::default();
            out.name = t.name.clone();
            out
        })
        .collect();
    for (t, partition, c) in checked {
        let mut p = OffsetCommitResponsePartition::default();
        p.partition_index = partition;
        p.error_code = c.err().unwrap_or(group_code);
        response.topics[t].partitions.push(p);
    }
    response
}

fn entry(topic: &str, p: &OffsetCommitRequestPartition) -> Result<OffsetCommit, i16> {
    let name = TopicName::new(topic).map_err(|_| codes::INVALID_TOPIC_EXCEPTION)?;
    let partition =
        u32::try_from(p.partition_index).map_err(|_| codes::UNKNOWN_TOPIC_OR_PARTITION)?;
    let offset = u64::try_from(p.committed_offset).map_err(|_| codes::INVALID_REQUEST)?;
    let metadata = p.committed_metadata.as_ref().map_or("", |m| m.as_str());
    if metadata.len() > OFFSET_METADATA_MAX_BYTES {
        return Err(codes::OFFSET_METADATA_TOO_LARGE);
    }
    Ok(OffsetCommit {
        tp: TopicPartition::new(name.as_str(), partition),
        offset,
        metadata: metadata.to_string(),
    })
}
