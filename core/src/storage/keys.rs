//! Every object key pail reads or writes is built here, and nowhere else.
//!
//! ```text
//! topics/{topic}/_topic.json                                  topic descriptor, version 1
//! topics/{topic}/_config/{version:020}.json                   later descriptor versions
//! topics/{topic}/partition={p}/{base:020}-{version:020}.parquet  segment = commit (create-once)
//! topics/{topic}/partition={p}/{base:020}-{last:020}-{first:020}.parquet  merged segment
//! topics/{topic}/_hints/partition={p}.json                    latest-version hint (overwritten)
//! topics/{topic}/_delta_log/{version:020}.json              Delta Lake commit (create-once)
//! topics/{topic}/_delta_log/{version:020}.checkpoint.parquet  Delta checkpoint (create-once)
//! topics/{topic}/_delta_log/_last_checkpoint                  newest checkpoint (overwritten)
//! _kafka/producer-ids/{block:020}.json                         a Kafka listener's block of
//!                                                              producer ids (create-once)
//! _staging/                                                    local store's uploads in flight
//! groups/{group}/versions/{version:020}.json                  group state version (create-once)
//! groups/{group}/_hint.json                                   latest-version hint (overwritten)
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
//! (`topics/orders/partition=*/*.parquet`: not `*/*.parquet`, which also matches the Delta
//! checkpoints in `_delta_log/`), the `partition=N` folder reads as a Hive partition column,
//! and S3 spreads request load over per-partition prefixes. Segment names sort by base offset, then
//! by version; both only grow along the chain, so a listing's key order is commit order.

use object_store::path::Path;

use crate::topic::TopicName;

const TOPICS: &str = "topics";
const QUARANTINE: &str = "_quarantine";
const SEGMENT_SUFFIX: &str = ".parquet";
/// Digits in a zero-padded offset or version: u64::MAX has 20.
const WIDTH: usize = 20;

const GROUPS: &str = "groups";
const GROUP_VERSION_SUFFIX: &str = ".json";

/// The folder holding every consumer group.
pub fn groups_root() -> Path {
    Path::from(GROUPS)
}

/// The folder of one group's chain of versions: nothing else lives there.
pub fn group_versions(group: &str) -> Path {
    groups_root().join(group).join("versions")
}

/// Version `version` of a group's state (create-once).
pub fn group_version(group: &str, version: u64) -> Path {
    group_versions(group).join(format!("{version:0WIDTH$}{GROUP_VERSION_SUFFIX}"))
}

/// The version a group version key names, or `None` for any other object.
pub fn parse_group_version(key: &Path) -> Option<u64> {
    let name = key.filename()?.strip_suffix(GROUP_VERSION_SUFFIX)?;
    (name.len() == WIDTH).then(|| name.parse().ok())?
}

/// A group's newest-version hint (advisory, overwritten).
pub fn group_hint(group: &str) -> Path {
    groups_root().join(group).join("_hint.json")
}

/// The group named by a child folder of [`groups_root`].
pub fn parse_group_dir(prefix: &Path) -> Option<String> {
    prefix.filename().map(str::to_string)
}

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

/// Version `version` of a topic's descriptor chain: version 1 is the descriptor written at
/// creation, later versions live in `_config/`.
pub fn topic_version(topic: &TopicName, version: u64) -> Path {
    if version <= 1 {
        topic_descriptor(topic)
    } else {
        topic_versions(topic).join(format!("{version:0WIDTH$}.json"))
    }
}

/// The folder of a topic's descriptor versions after the first.
pub fn topic_versions(topic: &TopicName) -> Path {
    topic_dir(topic).join("_config")
}

/// The version a topic descriptor key names.
pub fn parse_topic_version(topic: &TopicName, key: &Path) -> Option<u64> {
    if *key == topic_descriptor(topic) {
        return Some(1);
    }
    let name = key.filename()?.strip_suffix(".json")?;
    (name.len() == WIDTH).then(|| name.parse().ok())?
}

/// A topic descriptor chain's hint (advisory; rarely needed: discovery probes).
pub fn topic_hint(topic: &TopicName) -> Path {
    topic_dir(topic).join("_hints").join("topic.json")
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

/// Base offset and version named by a chain segment key, or `None` for any other object
/// (merged segments included).
pub fn parse_segment(key: &Path) -> Option<(u64, u64)> {
    match parse_segment_object(key)? {
        SegmentKey {
            base_offset,
            first_version,
            last_version,
        } if first_version == last_version => Some((base_offset, last_version)),
        _ => None,
    }
}

/// A merged segment: the records of versions `first..=last`, starting at `base_offset`
/// (compaction). It sorts after the chain segment of version `first` (same base offset) and
/// before the one of version `last + 1`, so a listing still reads in offset order.
pub fn merged_segment(
    topic: &TopicName,
    partition: u32,
    base_offset: u64,
    first_version: u64,
    last_version: u64,
) -> Path {
    partition_dir(topic, partition).join(format!(
        "{base_offset:0WIDTH$}-{last_version:0WIDTH$}-{first_version:0WIDTH$}{SEGMENT_SUFFIX}"
    ))
}

/// What a segment object's key names: a chain version (`first == last`) or a merged range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentKey {
    pub base_offset: u64,
    pub first_version: u64,
    pub last_version: u64,
}

/// The segment a key in a partition folder names, chain or merged; `None` for anything else.
pub fn parse_segment_object(key: &Path) -> Option<SegmentKey> {
    let name = key.filename()?.strip_suffix(SEGMENT_SUFFIX)?;
    let parts: Vec<&str> = name.split('-').collect();
    if parts.iter().any(|p| p.len() != WIDTH) {
        return None;
    }
    let num = |s: &str| s.parse::<u64>().ok();
    match parts.as_slice() {
        [base, version] => Some(SegmentKey {
            base_offset: num(base)?,
            first_version: num(version)?,
            last_version: num(version)?,
        }),
        [base, last, first] if num(first)? < num(last)? => Some(SegmentKey {
            base_offset: num(base)?,
            first_version: num(first)?,
            last_version: num(last)?,
        }),
        _ => None,
    }
}

pub fn hint(topic: &TopicName, partition: u32) -> Path {
    hints_dir(topic).join(format!("partition={partition}.json"))
}

/// The folder of a topic's hints.
pub fn hints_dir(topic: &TopicName) -> Path {
    topic_dir(topic).join("_hints")
}

/// The Delta Lake log of a topic's table view (the table root is the topic folder).
pub fn delta_log(topic: &TopicName) -> Path {
    topic_dir(topic).join("_delta_log")
}

/// Delta commit `version` (create-once: whoever creates it made that commit).
pub fn delta_commit(topic: &TopicName, version: u64) -> Path {
    delta_log(topic).join(format!("{version:0WIDTH$}.json"))
}

/// The Delta checkpoint of `version`.
pub fn delta_checkpoint(topic: &TopicName, version: u64) -> Path {
    delta_log(topic).join(format!("{version:0WIDTH$}.checkpoint.parquet"))
}

/// Delta's pointer to the newest checkpoint (advisory, overwritten).
pub fn delta_last_checkpoint(topic: &TopicName) -> Path {
    delta_log(topic).join("_last_checkpoint")
}

/// A Delta log object: a commit or a (single-file) checkpoint of a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeltaLogKey {
    Commit(u64),
    Checkpoint(u64),
}

/// What a key in [`delta_log`] names; `None` for anything else (`_last_checkpoint`, files
/// other writers may leave).
pub fn parse_delta_log(key: &Path) -> Option<DeltaLogKey> {
    let name = key.filename()?;
    let version = |digits: &str| (digits.len() == WIDTH).then(|| digits.parse().ok())?;
    if let Some(d) = name.strip_suffix(".checkpoint.parquet") {
        return version(d).map(DeltaLogKey::Checkpoint);
    }
    version(name.strip_suffix(".json")?).map(DeltaLogKey::Commit)
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
    fn merged_segments_sort_between_their_first_and_next_versions() {
        let t = TopicName::new("t").unwrap();
        let first = segment(&t, 0, 5, 3);
        let merged = merged_segment(&t, 0, 5, 3, 9);
        let next = segment(&t, 0, 40, 10);
        assert!(first.to_string() < merged.to_string() && merged.to_string() < next.to_string());
        assert_eq!(parse_segment(&merged), None, "not a chain version");
        assert_eq!(
            parse_segment_object(&merged),
            Some(SegmentKey {
                base_offset: 5,
                first_version: 3,
                last_version: 9
            })
        );
        assert_eq!(
            parse_segment_object(&first).map(|k| k.last_version),
            Some(3)
        );
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

    #[test]
    fn delta_log_keys_round_trip_and_sort_by_version() {
        let t = TopicName::new("t").unwrap();
        let c = delta_commit(&t, 7);
        assert_eq!(c.as_ref(), "topics/t/_delta_log/00000000000000000007.json");
        assert_eq!(parse_delta_log(&c), Some(DeltaLogKey::Commit(7)));
        let cp = delta_checkpoint(&t, 10);
        assert_eq!(parse_delta_log(&cp), Some(DeltaLogKey::Checkpoint(10)));
        assert_eq!(parse_delta_log(&delta_last_checkpoint(&t)), None);
        // A checkpoint sorts just before its version's commit: listing after it yields that
        // commit (already in the checkpoint) and every later one.
        assert!(delta_commit(&t, 9).to_string() < cp.to_string());
        assert!(cp.to_string() < delta_commit(&t, 10).to_string());
        assert!(delta_last_checkpoint(&t).to_string() > delta_commit(&t, u64::MAX).to_string());
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
