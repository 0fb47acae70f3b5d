//! DescribeConfigs 1-4: a topic's settings that exist in pail (see `topic_configs`), all
//! read-only because a pail topic's descriptor never changes. A broker resource has no
//! settings to show and gets an empty list.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::messages::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
};
use std::sync::Arc;

use super::create_topics::CONFIG_SOURCE_TOPIC;
use super::text;
use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::{Broker, codes, topic_configs};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: DescribeConfigsRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move {
        let results = request
            .resources
            .into_iter()
            .map(|r| describe(&broker, r, version));
        let mut response = DescribeConfigsResponse::default();
        response.results = futures::future::join_all(results).await;
        apis::encode(&response, version)
    }
    .boxed())
}

async fn describe(
    broker: &Broker,
    r: DescribeConfigsResource,
    version: i16,
) -> DescribeConfigsResult {
    let mut result = DescribeConfigsResult::default();
    result.resource_type = r.resource_type;
    result.resource_name = r.resource_name.clone();
    match r.resource_type {
        RESOURCE_TOPIC => match broker.pail.topic(r.resource_name.as_str()).await {
            Ok(meta) => {
                let keys = r.configuration_keys.as_ref();
                result.configs = topic_configs::describe(&meta.config)
                    .into_iter()
                    .filter(|(name, _, _)| {
                        keys.is_none_or(|k| k.iter().any(|k| k.as_str() == *name))
                    })
                    .map(|(name, value, kind)| {
                        let mut c = DescribeConfigsResourceResult::default();
                        c.name = text(name);
                        c.value = Some(text(value));
                        c.read_only = true;
                        c.config_source = CONFIG_SOURCE_TOPIC;
                        if version >= 3 {
                            c.config_type = kind;
                        }
                        c
                    })
                    .collect();
            }
            Err(e) => {
                result.error_code = codes::of(&e);
                result.error_message = Some(text(e.to_string()));
            }
        },
        RESOURCE_BROKER => {}
        other => {
            result.error_code = codes::INVALID_REQUEST;
            result.error_message = Some(text(format!(
                "resource type {other} has no settings in pail"
            )));
        }
    }
    result
}
