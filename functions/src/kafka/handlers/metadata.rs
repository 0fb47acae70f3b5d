//! Metadata 0-12: one broker (the advertised address), leader of every partition, leader
//! epoch -1, a stable topic id per topic (v10+), and topics created on request when the
//! listener's `--auto-create-partitions` allows it.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, TopicName as KafkaTopicName};
use pail_core::{Error, TopicConfig, TopicMeta};
use std::sync::Arc;

use super::{text, topic_id};
use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::{Broker, CLUSTER_ID, NODE_ID, codes};

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: MetadataRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move { apis::encode(&answer(&broker, version, request).await, version) }.boxed())
}

/// A topic named in a request: by name, or (v10+) by an id this listener does not resolve.
enum Wanted {
    Name(String),
    UnknownId(uuid::Uuid),
}

async fn answer(broker: &Broker, version: i16, request: MetadataRequest) -> MetadataResponse {
    let wanted: Vec<Wanted> = match request.topics {
        // v0 asks for every topic with an empty list, later versions with null.
        Some(topics) if !(version == 0 && topics.is_empty()) => topics
            .into_iter()
            .map(|t| match t.name {
                Some(name) => Wanted::Name(name.0.to_string()),
                None => Wanted::UnknownId(t.topic_id),
            })
            .collect(),
        _ => match broker.pail.list_topics().await {
            Ok(names) => names
                .into_iter()
                .map(|n| Wanted::Name(n.to_string()))
                .collect(),
            Err(e) => {
                tracing::warn!("metadata: cannot list topics: {e}");
                Vec::new()
            }
        },
    };
    // Before v4 a Metadata request always allowed auto-creation.
    let create = version < 4 || request.allow_auto_topic_creation;
    let topics = futures::future::join_all(
        wanted
            .into_iter()
            .map(|w| describe(broker, w, create, version)),
    )
    .await;
    let mut node = MetadataResponseBroker::default();
    node.node_id = BrokerId(NODE_ID);
    node.host = text(broker.config.advertised_host.clone());
    node.port = broker.config.advertised_port;
    let mut response = MetadataResponse::default();
    response.brokers = vec![node];
    if version >= 2 {
        response.cluster_id = Some(text(CLUSTER_ID));
    }
    response.controller_id = BrokerId(NODE_ID);
    response.topics = topics;
    response
}

async fn describe(
    broker: &Broker,
    wanted: Wanted,
    create: bool,
    version: i16,
) -> MetadataResponseTopic {
    let mut topic = MetadataResponseTopic::default();
    let name = match wanted {
        Wanted::Name(name) => name,
        Wanted::UnknownId(id) => {
            topic.error_code = codes::UNKNOWN_TOPIC_ID;
            topic.name = None;
            topic.topic_id = id;
            return topic;
        }
    };
    topic.name = Some(KafkaTopicName(text(name.clone())));
    match lookup(broker, &name, create).await {
        Ok(meta) => {
            if version >= 10 {
                topic.topic_id = topic_id(&meta);
            }
            topic.partitions = (0..meta.config.partitions).map(partition).collect();
        }
        Err(e) => topic.error_code = codes::of(&e),
    }
    topic
}

/// The topic's descriptor, creating the topic first when allowed.
async fn lookup(broker: &Broker, name: &str, create: bool) -> pail_core::Result<Arc<TopicMeta>> {
    let partitions = broker.config.auto_create_partitions;
    match broker.pail.topic(name).await {
        Err(Error::UnknownTopic { .. }) if create && partitions > 0 => {
            match broker
                .pail
                .create_topic(name, TopicConfig::new(partitions))
                .await
            {
                Ok(meta) => {
                    tracing::info!("created topic {name} with {partitions} partitions on request");
                    Ok(meta)
                }
                // Another listener or client created it first.
                Err(Error::TopicExists { .. }) => broker.pail.topic(name).await,
                Err(e) => Err(e),
            }
        }
        other => other,
    }
}

fn partition(index: u32) -> MetadataResponsePartition {
    let mut p = MetadataResponsePartition::default();
    p.partition_index = index as i32;
    p.leader_id = BrokerId(NODE_ID);
    // pail's partitions have no Kafka leader epochs: -1 tells clients not to fence on them.
    p.leader_epoch = -1;
    p.replica_nodes = vec![BrokerId(NODE_ID)];
    p.isr_nodes = vec![BrokerId(NODE_ID)];
    p
}
