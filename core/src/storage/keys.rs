//! Every object key pail reads or writes is built here, and nowhere else.
//!
//! ```text
//! topics/{topic}/_topic.json                                  topic descriptor (create-once)
//! topics/{topic}/partition={p}/{base:020}-{version:020}.parquet  segment = commit (create-once)
//! topics/{topic}/_hints/partition={p}.json                    latest-version hint (overwritten)
//! _kafka/producer-ids/{block:020}.json                         a Kafka listener's block of
//!                                                              producer ids (create-once)
//! _staging/                                                    local store's uploads in flight
//! ```
//!
//! Everything in a topic folder that is not data starts with `_`, which Parquet engines skip
//! when they discover a dataset (pyarrow, Spark, Hive), so pointing one at `topics/{topic}`
//! reads exactly the segments.
//!
//! Topic and partition lead the key, so one topic's segments are one glob
//! (`topics/orders/*/*.parquet`), the `partition=N` folder reads as a Hive partition column, and
//! S3 spreads request load over per-partition prefixes. Segment names sort by base offset, then
//! by version; both only grow along the chain, so a listing's key order is commit order.

use object_store::path::Path;

use crate::topic::TopicName;

const TOPICS: &str = "topics";
const SEGMENT_SUFFIX: &str = ".parquet";
/// Digits in a zero-padded offset or version: u64::MAX has 20.
const WIDTH: usize = 20;

/// The folder holding every topic.
pub fn topics_root() -> Path {
    Path::from(TOPICS)
}

/// The folder of one topic.
pub fn topic_dir(topic: &TopicName) -> Path {
    topics_root().join(topic.as_str())
}

pub fn topic_descriptor(topic: &TopicName) -> Path {
    topic_dir(topic).join("_topic.json")
}

/// The folder of one partition's segments: nothing else lives there.
pub fn partition_dir(topic: &TopicName, partition: u32) -> Path {
    topic_dir(topic).join(format!("partition={partition}"))
}

/// The segment that holds version `version` of a partition, starting at `base_offset`.
///
/// `base_offset` is a function of the previous version, so two writers racing for the same
/// version always compute the same key, and create-if-absent lets exactly one of them win.
pub fn segment(topic: &TopicName, partition: u32, base_offset: u64, version: u64) -> Path {
    partition_dir(topic, partition).join(format!(
        "{base_offset:0WIDTH$}-{version:0WIDTH$}{SEGMENT_SUFFIX}"
    ))
}

/// The smallest key after every segment whose base offset is at most `base_offset`:
/// listing after it yields segments starting past `base_offset`.
pub fn segment_list_start(topic: &TopicName, partition: u32, base_offset: u64) -> Path {
    segment(topic, partition, base_offset, u64::MAX)
}

/// Base offset and version named by a segment key, or `None` for any other object.
pub fn parse_segment(key: &Path) -> Option<(u64, u64)> {
    let name = key.filename()?.strip_suffix(SEGMENT_SUFFIX)?;
    let (base, version) = name.split_once('-')?;
    if base.len() != WIDTH || version.len() != WIDTH {
        return None;
    }
    Some((base.parse().ok()?, version.parse().ok()?))
}

pub fn hint(topic: &TopicName, partition: u32) -> Path {
    topic_dir(topic)
        .join("_hints")
        .join(format!("partition={partition}.json"))
}

/// The folder of the Kafka listeners' producer-id blocks, outside every topic.
pub fn producer_id_blocks() -> Path {
    Path::from("_kafka").join("producer-ids")
}

/// Block `block` of Kafka producer ids: whoever creates it owns the ids in it.
pub fn producer_id_block(block: u64) -> Path {
    producer_id_blocks().join(format!("{block:0WIDTH$}.json"))
}

/// The block number named by a key under [`producer_id_blocks`].
pub fn parse_producer_id_block(key: &Path) -> Option<u64> {
    let name = key.filename()?.strip_suffix(".json")?;
    (name.len() == WIDTH).then(|| name.parse().ok()).flatten()
}

/// The topic named by a child folder of [`topics_root`], if it is a valid topic name.
pub fn parse_topic_dir(prefix: &Path) -> Option<TopicName> {
    let name = prefix.filename()?;
    TopicName::new(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_keys_round_trip_and_sort_in_commit_order() {
        let t = TopicName::new("orders").unwrap();
        let k = segment(&t, 7, 1234, 56);
        assert_eq!(
            k.as_ref(),
            "topics/orders/partition=7/00000000000000001234-00000000000000000056.parquet"
        );
        assert_eq!(parse_segment(&k), Some((1234, 56)));
        let chain = [
            (0, 1),
            (0, 2),
            (5, 3),
            (5, 4),
            (9, 5),
            (100, 6),
            (u64::MAX, u64::MAX),
        ];
        let keys: Vec<String> = chain
            .iter()
            .map(|&(b, v)| segment(&t, 0, b, v).to_string())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(segment_list_start(&t, 0, 5).to_string() > keys[3]);
        assert!(segment_list_start(&t, 0, 5).to_string() < keys[4]);
    }

    #[test]
    fn other_objects_are_not_segments() {
        let t = TopicName::new("t").unwrap();
        for k in [
            topic_descriptor(&t),
            hint(&t, 0),
            Path::from("topics/t/partition=0/x.parquet"),
        ] {
            assert_eq!(parse_segment(&k), None, "{k}");
        }
        assert_eq!(parse_topic_dir(&topic_dir(&t)), Some(t));
    }

    #[test]
    fn producer_id_blocks_round_trip_in_order() {
        let k = producer_id_block(12);
        assert_eq!(k.as_ref(), "_kafka/producer-ids/00000000000000000012.json");
        assert_eq!(parse_producer_id_block(&k), Some(12));
        assert!(producer_id_block(9).to_string() < producer_id_block(10).to_string());
        assert_eq!(
            parse_producer_id_block(&Path::from("_kafka/producer-ids/x.json")),
            None
        );
    }
}
