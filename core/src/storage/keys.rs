//! Every object key pail reads or writes is built here, and nowhere else.
//!
//! ```text
//! topics/{topic}/_topic.json                                  topic descriptor (create-once)
//! topics/{topic}/partition={p}/{base:020}-{version:020}.parquet  segment = commit (create-once)
//! topics/{topic}/_hints/partition={p}.json                    latest-version hint (overwritten)
//! _staging/                                                    local store's uploads in flight
//! _pail/conditional-writes.json                                the store passed the create check
//! _pail/probes/{id}                                            that check's throwaway objects
//! _quarantine/{run}/{original key}                             objects `pail doctor --repair`
//!                                                              moved out of a chain's way
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
const QUARANTINE: &str = "_quarantine";
const SEGMENT_SUFFIX: &str = ".parquet";
/// Digits in a zero-padded offset or version: u64::MAX has 20.
const WIDTH: usize = 20;

/// The store's verdict on its conditional writes, written once by the first client that
/// checked them.
pub fn store_check() -> Path {
    Path::from("_pail").join("conditional-writes.json")
}

/// A throwaway object for checking the store's conditional writes.
pub fn store_probe(id: &str) -> Path {
    Path::from("_pail").join("probes").join(id)
}

/// Where `pail doctor --repair` run `run` puts the object it moves away from `original`: the
/// original key under a prefix of its own, outside every topic folder (so no glob over a topic
/// sees it) and easy to copy back by stripping the prefix.
pub fn quarantine(run: &str, original: &Path) -> Path {
    let mut key = Path::from(QUARANTINE).join(run);
    for part in original.parts() {
        key = key.join(part);
    }
    key
}

/// The folder holding everything `pail doctor --repair` moved.
pub fn quarantine_root() -> Path {
    Path::from(QUARANTINE)
}

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
    hints_dir(topic).join(format!("partition={partition}.json"))
}

/// The folder of a topic's hints.
pub fn hints_dir(topic: &TopicName) -> Path {
    topic_dir(topic).join("_hints")
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
    fn quarantine_keeps_the_original_key_outside_the_topics() {
        let t = TopicName::new("t").unwrap();
        let original = segment(&t, 2, 5, 3);
        let moved = quarantine("1700000000000-ab12", &original);
        assert_eq!(
            moved.as_ref(),
            format!("_quarantine/1700000000000-ab12/{original}")
        );
        assert!(!moved.prefix_matches(&topics_root()));
        assert_eq!(parse_segment(&moved), parse_segment(&original));
    }
}
