//! DeleteTopics 1-6 on `Pail::delete_topic`. v6 may name a topic by id only: it is found by
//! listing the topics and comparing their ids.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName as KTopic};
use std::sync::Arc;
use uuid::Uuid;

use super::{text, topic_id};
use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::{Broker, codes};

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: DeleteTopicsRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move {
        let asked: Vec<(Option<KTopic>, Uuid)> = if version >= 6 {
            request
                .topics
                .iter()
                .map(|t| (t.name.clone(), t.topic_id))
                .collect()
        } else {
            request
                .topic_names
                .iter()
                .map(|n| (Some(n.clone()), Uuid::nil()))
                .collect()
        };
        let mut response = DeleteTopicsResponse::default();
        for (name, id) in asked {
            let mut r = delete(&broker, name, id).await;
            if version < 6 {
                r.topic_id = Uuid::nil();
            }
            if version < 5 {
                r.error_message = None;
            }
            response.responses.push(r);
        }
        apis::encode(&response, version)
    }
    .boxed())
}

async fn delete(broker: &Broker, name: Option<KTopic>, id: Uuid) -> DeletableTopicResult {
    let mut r = DeletableTopicResult::default();
    r.topic_id = id;
    let name = match name {
        Some(n) => Ok(n.0.to_string()),
        None => by_id(broker, id).await,
    };
    let outcome = match name {
        Ok(n) => {
            r.name = Some(KTopic(text(n.clone())));
            broker
                .pail
                .delete_topic(&n)
                .await
                .map_err(|e| (codes::of(&e), e.to_string()))
        }
        Err(code) => Err((code, format!("no topic has id {id}"))),
    };
    if let Err((code, message)) = outcome {
        r.error_code = code;
        r.error_message = Some(text(message));
    }
    r
}

async fn by_id(broker: &Broker, id: Uuid) -> Result<String, i16> {
    let names = broker.pail.list_topics().await.map_err(|e| codes::of(&e))?;
    for name in names {
        if let Ok(meta) = broker.pail.topic(name.as_str()).await
            && topic_id(&meta) == id
        {
            return Ok(name.as_str().to_string());
        }
    }
    Err(codes::UNKNOWN_TOPIC_ID)
}
