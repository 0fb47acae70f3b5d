//! ListOffsets 1-7: earliest (-2) is the partition's log start, latest (-1) its high
//! watermark. Lookup by timestamp (and -3, the max timestamp) needs an index by time that pail
//! does not have yet: those get UNSUPPORTED_FOR_MESSAGE_FORMAT, the code Kafka gives when its
//! log cannot answer by time.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::messages::ListOffsetsRequest;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use std::sync::Arc;

use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::{Broker, codes};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: ListOffsetsRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move { apis::encode(&answer(&broker, request).await, version) }.boxed())
}

async fn answer(broker: &Broker, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = request.topics.into_iter().map(|t| async move {
        let name = t.name.0.to_string();
        let partitions = futures::future::join_all(
            t.partitions
                .iter()
                .map(|p| offset(broker, &name, p.partition_index, p.timestamp)),
        )
        .await;
        let mut topic = ListOffsetsTopicResponse::default();
        topic.name = t.name;
        topic.partitions = partitions;
        topic
    });
    let mut response = ListOffsetsResponse::default();
    response.topics = futures::future::join_all(topics).await;
    response
}

async fn offset(
    broker: &Broker,
    topic: &str,
    index: i32,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    let mut p = ListOffsetsPartitionResponse::default();
    p.partition_index = index;
    if timestamp != LATEST && timestamp != EARLIEST {
        p.error_code = codes::UNSUPPORTED_FOR_MESSAGE_FORMAT;
        return p;
    }
    let Ok(partition) = u32::try_from(index) else {
        p.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION;
        return p;
    };
    match broker.pail.partition_tip(topic, partition).await {
        Ok(tip) => {
            let m = &tip.state;
            let offset = if timestamp == EARLIEST {
                m.log_start_offset
            } else {
                m.next_offset
            };
            p.offset = offset as i64;
        }
        Err(e) => p.error_code = codes::of(&e),
    }
    p
}
