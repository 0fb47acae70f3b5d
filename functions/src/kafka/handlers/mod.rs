//! One file per Kafka API. Each `handle` decodes its request at once (in arrival order) and
//! returns a future that answers it; see `super::apis`.

pub mod api_versions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_configs;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;

use kafka_protocol::protocol::StrBytes;
use pail_core::TopicMeta;
use uuid::Uuid;

/// Namespace of topic ids for descriptors written before topics had ids (a fixed, random
/// UUID): those ids are UUIDv5 of the topic's name and creation time in it.
const TOPIC_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d1c_54c3_93a7_4e0b_9a3f_6a2d_1f52_8c01);

/// The Kafka topic id of a pail topic: the id of its incarnation (KIP-516), which every
/// listener reads from the same descriptor, and which a topic deleted and created again under
/// the same name changes, as in Kafka.
pub fn topic_id(meta: &TopicMeta) -> Uuid {
    if let Ok(id) = Uuid::parse_str(&meta.id) {
        return id;
    }
    let name = format!("{}\n{}", meta.name, meta.created_at_ms);
    Uuid::new_v5(&TOPIC_ID_NAMESPACE, name.as_bytes())
}

pub fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
