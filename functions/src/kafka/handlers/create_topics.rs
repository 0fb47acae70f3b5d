//! CreateTopics 2-7: a pail topic per request entry, with the settings pail has (see
//! `topic_configs`). Replication factors are accepted and ignored (the store replicates);
//! manual replica assignments are refused. `num_partitions` -1 means the listener's
//! `--auto-create-partitions`, or 1.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::messages::CreateTopicsRequest;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse,
};
use pail_core::{Error, TopicConfig, TopicMeta, TopicName};
use std::sync::Arc;

use super::{text, topic_id};
use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::{Broker, codes, topic_configs};

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: CreateTopicsRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move {
        let validate_only = request.validate_only;
        let results = request
            .topics
            .into_iter()
            .map(|t| create(&broker, t, validate_only, version));
        let mut response = CreateTopicsResponse::default();
        response.topics = futures::future::join_all(results).await;
        apis::encode(&response, version)
    }
    .boxed())
}

async fn create(
    broker: &Broker,
    t: CreatableTopic,
    validate_only: bool,
    version: i16,
) -> CreatableTopicResult {
    let mut result = CreatableTopicResult::default();
    result.name = t.name.clone();
    let outcome = match config_of(broker, &t) {
        Err((code, message)) => Err((code, message)),
        Ok(config) => apply(broker, t.name.0.as_str(), config, validate_only)
            .await
            .map_err(|e| (codes::of(&e), e.to_string())),
    };
    match outcome {
        Ok(meta) => {
            if version >= 5 {
                result.num_partitions = meta.config.partitions as i32;
                result.replication_factor = 1;
                result.configs = Some(configs(&meta));
            }
            if version >= 7 {
                result.topic_id = topic_id(&meta);
            }
        }
        Err((code, message)) => {
            result.error_code = code;
            result.error_message = Some(text(message));
        }
    }
    result
}

/// The pail settings a request entry asks for.
fn config_of(broker: &Broker, t: &CreatableTopic) -> Result<TopicConfig, (i16, String)> {
    if !t.assignments.is_empty() {
        return Err((
            codes::INVALID_REPLICA_ASSIGNMENT,
            "pail places partitions itself: no replica assignments".into(),
        ));
    }
    let partitions = match t.num_partitions {
        -1 => broker.config.auto_create_partitions.max(1),
        n => {
            u32::try_from(n).map_err(|_| (codes::INVALID_PARTITIONS, format!("{n} partitions")))?
        }
    };
    let mut config = TopicConfig::new(partitions);
    for c in &t.configs {
        topic_configs::set(&mut config, c.name.as_str(), c.value.as_deref())
            .map_err(|m| (codes::INVALID_CONFIG, m))?;
    }
    config
        .validate()
        .map_err(|e| (codes::INVALID_PARTITIONS, e.to_string()))?;
    Ok(config)
}

async fn apply(
    broker: &Broker,
    name: &str,
    config: TopicConfig,
    validate_only: bool,
) -> pail_core::Result<Arc<TopicMeta>> {
    if !validate_only {
        return broker.pail.create_topic(name, config).await;
    }
    let name = TopicName::new(name)?;
    match broker.pail.topic(name.as_str()).await {
        Ok(_) => Err(Error::TopicExists {
            topic: name.to_string(),
        }),
        Err(Error::UnknownTopic { .. }) => {
            config.validate()?;
            Ok(Arc::new(TopicMeta {
                config,
                ..pail_core::topic::chain::genesis(&name)
            }))
        }
        Err(e) => Err(e),
    }
}

fn configs(meta: &TopicMeta) -> Vec<CreatableTopicConfigs> {
    topic_configs::describe(&meta.config)
        .into_iter()
        .map(|(name, value, _)| {
            let mut c = CreatableTopicConfigs::default();
            c.name = text(name);
            c.value = Some(text(value));
            c.read_only = true;
            c.config_source = CONFIG_SOURCE_TOPIC;
            c
        })
        .collect()
}

/// Kafka's config source for a setting made on the topic itself.
pub const CONFIG_SOURCE_TOPIC: i8 = 1;
