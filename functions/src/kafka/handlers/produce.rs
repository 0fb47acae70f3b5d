//! Produce 3-11: each partition's batches are queued on that partition's appender in arrival
//! order, and answered once the commit is durable (acks=1 and acks=-1 are the same here: the
//! store's write is the only replica). With acks=0 nothing is sent back; the batches are
//! still appended.
//!
//! Offsets come from pail's commit; an idempotent producer's retry (same producer id, epoch
//! and sequence) gets the offsets of its first landing, through any listener.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use std::sync::Arc;
use tokio::sync::oneshot;

use super::text;
use crate::kafka::apis::{self, Answer, ProtocolError, Reply};
use crate::kafka::appender::Outcome;
use crate::kafka::{Broker, codes};

enum Pending {
    Queued(oneshot::Receiver<Outcome>),
    Refused(Outcome),
}

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: ProduceRequest = apis::decode(&mut body, version)?;
    let acks = request.acks;
    let refusal = if !matches!(acks, -1..=1) {
        Some(failed(
            codes::INVALID_REQUIRED_ACKS,
            format!("acks={acks} is not -1, 0 or 1"),
        ))
    } else if request.transactional_id.is_some() {
        Some(failed(
            codes::INVALID_REQUEST,
            "transactions are not supported".into(),
        ))
    } else {
        None
    };
    // Queue now, in the order requests arrive, so pipelined batches append in order.
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for t in request.topic_data {
        let name = t.name.0.to_string();
        let partitions: Vec<(i32, Pending)> = t
            .partition_data
            .into_iter()
            .map(|p| {
                let pending = match (&refusal, u32::try_from(p.index), p.records) {
                    (Some(refused), _, _) => Pending::Refused(refused.clone()),
                    (None, Ok(index), Some(data)) => {
                        Pending::Queued(broker.appenders.submit(&name, index, data))
                    }
                    (None, Err(_), _) => Pending::Refused(failed(
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("no partition {}", p.index),
                    )),
                    (None, Ok(_), None) => {
                        Pending::Refused(failed(codes::INVALID_RECORD, "no records".into()))
                    }
                };
                (p.index, pending)
            })
            .collect();
        topics.push((name, partitions));
    }
    if acks == 0 {
        return Ok(apis::ready(Answer::Nothing));
    }
    Ok(async move { apis::encode(&answer(topics).await, version) }.boxed())
}

fn failed(code: i16, message: String) -> Outcome {
    Outcome::Failed { code, message }
}

async fn answer(topics: Vec<(String, Vec<(i32, Pending)>)>) -> ProduceResponse {
    let mut response = ProduceResponse::default();
    for (name, partitions) in topics {
        let mut topic = TopicProduceResponse::default();
        topic.name = kafka_protocol::messages::TopicName(text(name));
        for (index, pending) in partitions {
            let outcome = match pending {
                Pending::Refused(outcome) => outcome,
                Pending::Queued(rx) => rx.await.unwrap_or_else(|_| {
                    failed(
                        codes::UNKNOWN_SERVER_ERROR,
                        "the partition worker ended".into(),
                    )
                }),
            };
            let mut p = PartitionProduceResponse::default();
            p.index = index;
            match outcome {
                Outcome::Appended { base_offset } => p.base_offset = base_offset,
                Outcome::Failed { code, message } => {
                    p.error_code = code;
                    p.base_offset = -1;
                    p.error_message = Some(text(message));
                }
            }
            topic.partition_responses.push(p);
        }
        response.responses.push(topic);
    }
    response
}
