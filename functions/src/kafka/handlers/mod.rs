//! One file per Kafka API. Each `handle` decodes its request at once (in arrival order) and
//! returns a future that answers it; see `super::apis`.

pub mod api_versions;
pub mod create_topics;
pub mod describe_configs;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;

use kafka_protocol::protocol::StrBytes;
use pail_core::TopicMeta;
use uuid::Uuid;

/// Namespace of topic ids (a fixed, random UUID): ids are UUIDv5 of the topic's name and
/// creation time in it, so every listener derives the same id, and a topic deleted and created
/// again under the same name gets a new one, as in Kafka.
const TOPIC_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d1c_54c3_93a7_4e0b_9a3f_6a2d_1f52_8c01);

/// The stable Kafka topic id of a pail topic.
pub fn topic_id(meta: &TopicMeta) -> Uuid {
    let name = format!("{}\n{}", meta.name, meta.created_at_ms);
    Uuid::new_v5(&TOPIC_ID_NAMESPACE, name.as_bytes())
}

pub fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
