//! InitProducerId 0-4 for idempotent producers: a fresh producer id at epoch 0, unique across
//! every listener on the store (see `producer_ids`). A producer asking to bump its epoch gets a
//! fresh id instead, which serves the same purpose (a new sequence space). Transactional ids
//! are refused: transactions are not supported.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use std::sync::Arc;

use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::{Broker, codes};

pub fn handle(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: InitProducerIdRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move {
        let mut response = InitProducerIdResponse::default();
        response.producer_id = ProducerId(-1);
        response.producer_epoch = -1;
        if request.transactional_id.is_some() {
            response.error_code = codes::INVALID_REQUEST;
        } else {
            match broker.producer_ids.next().await {
                Ok(id) => {
                    response.producer_id = ProducerId(id);
                    response.producer_epoch = 0;
                }
                Err(e) => {
                    tracing::warn!("cannot allocate a producer id: {e}");
                    response.error_code = codes::of(&e);
                }
            }
        }
        apis::encode(&response, version)
    }
    .boxed())
}
