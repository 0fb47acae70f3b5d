//! OffsetFetch 1-8: committed offsets from the group's tip (-1 where none); topics null (v2+)
//! means every partition with a committed offset; v8 asks for several groups at once.
//! `require_stable` (v7+) is met by construction: no offsets are ever pending.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName as KTopic};
use pail_core::group::{GroupState, TopicPartition};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::text;
use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::groups;
use crate::kafka::{Broker, codes};

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: OffsetFetchRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move {
        let mut response = OffsetFetchResponse::default();
        if version >= 8 {
            for g in &request.groups {
                let asked = g
                    .topics
                    .as_ref()
                    .map(|ts| asked(ts.iter().map(|t| (&t.name, &t.partition_indexes))));
                let found = fetch(&broker, g.group_id.as_str(), asked).await;
                let mut out = OffsetFetchResponseGroup::default();
                out.group_id = g.group_id.clone();
                out.error_code = found.code;
                out.topics = found
                    .topics
                    .into_iter()
                    .map(|(name, parts)| {
                        let mut t = OffsetFetchResponseTopics::default();
                        t.name = name;
                        t.partitions = parts.into_iter().map(partitions).collect();
                        t
                    })
                    .collect();
                response.groups.push(out);
            }
        } else {
            let asked = request
                .topics
                .as_ref()
                .map(|ts| asked(ts.iter().map(|t| (&t.name, &t.partition_indexes))));
            let found = fetch(&broker, request.group_id.as_str(), asked).await;
            response.error_code = found.code;
            response.topics = found
                .topics
                .into_iter()
                .map(|(name, parts)| {
                    let mut t = OffsetFetchResponseTopic::default();
                    t.name = name;
                    t.partitions = parts
                        .into_iter()
                        .map(|mut p| {
                            // v1 has no top-level error: each partition carries it.
                            if version < 2 && p.error_code == codes::NONE {
                                p.error_code = found.code;
                            }
                            p
                        })
                        .collect();
                    t
                })
                .collect();
        }
        apis::encode(&response, version)
    }
    .boxed())
}

/// The (topic, partitions) a request asks for, whichever version's type carries them.
fn asked<'a>(ts: impl Iterator<Item = (&'a KTopic, &'a Vec<i32>)>) -> Vec<(KTopic, Vec<i32>)> {
    ts.map(|(name, parts)| (name.clone(), parts.clone()))
        .collect()
}

struct Found {
    code: i16,
    topics: Vec<(KTopic, Vec<OffsetFetchResponsePartition>)>,
}

/// One group's offsets for the asked partitions (`None`: all committed ones).
async fn fetch(broker: &Broker, group: &str, asked: Option<Vec<(KTopic, Vec<i32>)>>) -> Found {
    let state = match groups::group_name(group) {
        Err(code) => Err(code),
        Ok(g) => broker
            .pail
            .group_state(g.as_str())
            .await
            .map_err(|e| groups::code(&e)),
    };
    let (code, state) = match state {
        Ok(s) => (codes::NONE, Some(s)),
        Err(code) => (code, None),
    };
    let asked = asked.unwrap_or_else(|| state.as_deref().map(committed).unwrap_or_default());
    let topics = asked
        .into_iter()
        .map(|(name, parts)| {
            let offsets = parts
                .into_iter()
                .map(|p| offset_of(state.as_deref(), name.as_str(), p))
                .collect();
            (name, offsets)
        })
        .collect();
    Found { code, topics }
}

/// Every partition with a committed offset, by topic.
fn committed(s: &GroupState) -> Vec<(KTopic, Vec<i32>)> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in s.offsets.keys() {
        by_topic
            .entry(tp.topic.as_str())
            .or_default()
            .push(tp.partition as i32);
    }
    by_topic
        .into_iter()
        .map(|(t, ps)| (KTopic(text(t)), ps))
        .collect()
}

fn offset_of(s: Option<&GroupState>, topic: &str, partition: i32) -> OffsetFetchResponsePartition {
    let mut out = OffsetFetchResponsePartition::default();
    out.partition_index = partition;
    out.committed_offset = -1;
    out.committed_leader_epoch = -1;
    out.metadata = Some(text(""));
    let found = u32::try_from(partition)
        .ok()
        .and_then(|p| s?.offsets.get(&TopicPartition::new(topic, p)));
    if let Some(c) = found {
        out.committed_offset = i64::try_from(c.offset).unwrap_or(i64::MAX);
        out.metadata = Some(text(c.metadata.clone()));
    }
    out
}

fn partitions(p: OffsetFetchResponsePartition) -> OffsetFetchResponsePartitions {
    let mut out = OffsetFetchResponsePartitions::default();
    out.partition_index = p.partition_index;
    out.committed_offset = p.committed_offset;
    out.committed_leader_epoch = p.committed_leader_epoch;
    out.metadata = p.metadata;
    out.error_code = p.error_code;
    out
}
