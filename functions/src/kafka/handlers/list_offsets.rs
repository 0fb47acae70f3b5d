//! ListOffsets 1-7: earliest (-2) is the partition's log start, latest (-1) its high
//! watermark, a timestamp T >= 0 the first record at or after T (`Pail::offset_for_time`; offset
//! and timestamp -1 when none, as Kafka answers), and max-timestamp (-3, v7) the first record
//! carrying the partition's largest timestamp (-1 if retention dropped it). Anything else gets
//! UNSUPPORTED_FOR_MESSAGE_FORMAT, the code Kafka gives when its log cannot answer.

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
const MAX_TIMESTAMP: i64 = -3;

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
    let Ok(partition) = u32::try_from(index) else {
        p.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION;
        return p;
    };
    match lookup(broker, topic, partition, timestamp).await {
        Ok(Some((offset, ts))) => (p.offset, p.timestamp) = (offset, ts),
        Ok(None) => p.error_code = codes::UNSUPPORTED_FOR_MESSAGE_FORMAT,
        Err(e) => p.error_code = codes::of(&e),
    }
    p
}

/// The (offset, timestamp) answered for `timestamp`; `None` for a query pail cannot answer.
async fn lookup(
    broker: &Broker,
    topic: &str,
    partition: u32,
    timestamp: i64,
) -> pail_core::Result<Option<(i64, i64)>> {
    let by_time = |ts| async move {
        let found = broker.pail.offset_for_time(topic, partition, ts).await?;
        Ok(Some(
            found.map_or((-1, -1), |f| (f.offset as i64, f.timestamp_ms)),
        ))
    };
    match timestamp {
        LATEST | EARLIEST => {
            let tip = broker.pail.partition_tip(topic, partition).await?;
            let m = &tip.state;
            let offset = if timestamp == EARLIEST {
                m.log_start_offset
            } else {
                m.next_offset
            };
            Ok(Some((offset as i64, -1)))
        }
        MAX_TIMESTAMP => {
            let tip = broker.pail.partition_tip(topic, partition).await?;
            if tip.state.next_offset == tip.state.log_start_offset {
                return Ok(Some((-1, -1)));
            }
            by_time(tip.state.running_max_timestamp_ms).await
        }
        t if t >= 0 => by_time(t).await,
        _ => Ok(None),
    }
}
