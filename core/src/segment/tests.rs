use super::*;
use crate::manifest::{AppendEdit, Applied, CommitContext, Edit, PartitionManifest, apply};
use crate::record::{Header, Record};
use crate::storage::Store;
use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path;

fn manifest_for(base: u64, n: u32) -> PartitionManifest {
    let mut prev = PartitionManifest::genesis("t", 3);
    prev.next_offset = base;
    let ctx = CommitContext {
        digest: "d",
        writer: "w",
        commit_id: "c1",
        now_ms: 0,
        prev_size: 0,
    };
    let edit = Edit::Append(AppendEdit {
        key: None,
        topic_id: String::new(),
        min_timestamp_ms: 0,
        max_timestamp_ms: 0,
        record_count: n,
        leader: None,
        producer: None,
    });
    match apply(&prev, &edit, &ctx).unwrap() {
        Applied::Next(m) => *m,
        other => panic!("{other:?}"),
    }
}

fn records(n: usize, value_len: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            key: (i % 3 != 0).then(|| Bytes::from(format!("k{i}"))),
            value: (i % 5 != 4).then(|| Bytes::from(vec![(i % 251) as u8; value_len])),
            headers: (0..i % 3)
                .map(|h| Header {
                    key: format!("h{h}"),
                    value: (h == 0).then(|| Bytes::from(vec![0xff, 0x00, h as u8])),
                })
                .collect(),
            timestamp_ms: None,
        })
        .collect()
}

/// A memory store holding `bytes` as one segment object.
async fn in_memory(bytes: &Bytes) -> (Store, Path) {
    let store = Store::memory();
    let key = Path::from("seg.parquet");
    store
        .object_store()
        .put(&key, bytes.clone().into())
        .await
        .unwrap();
    (store, key)
}

async fn stored(records: &[Record], base: u64) -> (Store, Path, Footer) {
    let m = manifest_for(base, records.len() as u32);
    let ts: Vec<i64> = (0..records.len() as i64)
        .map(|i| 1_700_000_000_000 + i)
        .collect();
    let bytes = encode(records, &ts, &m).unwrap();
    let (store, key) = in_memory(&bytes).await;
    let tail_len = (FOOTER_PREFETCH_BYTES as usize).min(bytes.len());
    let tail = bytes.slice(bytes.len() - tail_len..);
    let footer = parse_footer(&key, tail, bytes.len() as u64)
        .unwrap()
        .unwrap();
    (store, key, footer)
}

#[tokio::test]
async fn round_trips_every_field_with_absolute_offsets() {
    let input = records(50, 10);
    let (store, key, footer) = stored(&input, 1000).await;
    assert_eq!(footer.manifest.base_offset, 1000);
    let got = read_rows(&store, &key, &footer, 0, 50).await.unwrap();
    assert_eq!(got.len(), 50);
    for (i, (r, want)) in got.iter().zip(&input).enumerate() {
        assert_eq!(r.offset, 1000 + i as u64);
        assert_eq!(r.timestamp_ms, 1_700_000_000_000 + i as i64);
        assert_eq!(
            (&r.key, &r.value, &r.headers),
            (&want.key, &want.value, &want.headers)
        );
    }
    let middle = read_rows(&store, &key, &footer, 17, 5).await.unwrap();
    assert_eq!(
        middle.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![1017, 1018, 1019, 1020, 1021]
    );
    assert!(
        read_rows(&store, &key, &footer, 50, 5)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn footer_needs_a_second_read_when_the_tail_is_short() {
    let input = records(3, 10);
    let m = manifest_for(0, 3);
    let bytes = encode(&input, &[1, 2, 3], &m).unwrap();
    let key = Path::from("k");
    let short = bytes.slice(bytes.len() - 16..);
    let needed = parse_footer(&key, short, bytes.len() as u64)
        .unwrap()
        .unwrap_err();
    assert!(needed > 16 && needed < bytes.len() as u64);
    let tail = bytes.slice(bytes.len() - needed as usize..);
    assert_eq!(
        parse_footer(&key, tail, bytes.len() as u64)
            .unwrap()
            .unwrap()
            .manifest,
        std::sync::Arc::new(m)
    );
}

#[tokio::test]
async fn garbage_and_foreign_parquet_are_corrupt_not_panics() {
    let key = Path::from("k");
    for junk in [
        &b""[..],
        b"PAR1",
        b"hello world, not parquet at all",
        &[0xffu8; 100],
    ] {
        let err = parse_footer(&key, Bytes::copy_from_slice(junk), junk.len() as u64).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt, "{err}");
    }
    // A huge claimed footer length is refused before anything is fetched.
    let mut lying = vec![0u8; 64];
    lying[56..60].copy_from_slice(&u32::MAX.to_le_bytes());
    lying[60..].copy_from_slice(b"PAR1");
    assert!(parse_footer(&key, Bytes::from(lying), 64).is_err());
    // A valid Parquet file without pail metadata.
    let m = manifest_for(0, 1);
    let mut bytes = encode(&records(1, 1), &[1], &m).unwrap().to_vec();
    let pos = bytes
        .windows(19)
        .position(|w| w == b"pail.format_version")
        .unwrap();
    bytes[pos] = b'X';
    let len = bytes.len() as u64;
    let err = parse_footer(&key, Bytes::from(bytes), len).unwrap_err();
    assert!(err.to_string().contains("not a pail segment"), "{err}");
}

#[test]
fn foreign_objects_are_told_from_damaged_segments() {
    let sniff = |bytes: &[u8]| {
        let all = Bytes::copy_from_slice(bytes);
        foreign(&all[..all.len().min(4)], &all, all.len() as u64)
    };
    for junk in [&b"junk\n"[..], b"", b"{\"json\": true}", &[0u8; 100]] {
        assert!(sniff(junk).is_some(), "{junk:?}");
    }
    let segment = encode(&records(20, 10), &[7; 20], &manifest_for(0, 20)).unwrap();
    assert_eq!(sniff(&segment), None, "a whole segment is not foreign");
    // Truncated, or cut at the front, or with its footer overwritten: maybe one of pail's own.
    let half = segment.len() / 2;
    assert_eq!(sniff(&segment[..half]), None);
    assert_eq!(sniff(&segment[half..]), None);
    let mut overwritten = segment.to_vec();
    let end = overwritten.len();
    overwritten[end - 40..end - 8].fill(0);
    assert_eq!(sniff(&overwritten), None);
    // A Parquet file pail did not write.
    let mut other = segment.to_vec();
    let pos = other
        .windows(19)
        .position(|w| w == b"pail.format_version")
        .unwrap();
    other[pos] = b'X';
    assert!(sniff(&other).unwrap().contains("without pail's metadata"));
}

#[tokio::test]
async fn flipped_data_bytes_are_reported_as_corrupt() {
    let input = records(200, 40);
    let (store, key, footer) = stored(&input, 0).await;
    let original = store
        .object_store()
        .get(&key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    // Damage the first quarter of the file (column data), keep the footer intact.
    let mut damaged = original.to_vec();
    for b in damaged.iter_mut().take(original.len() / 4).skip(4) {
        *b ^= 0x5a;
    }
    store
        .object_store()
        .put(&key, Bytes::from(damaged).into())
        .await
        .unwrap();
    let footer = Footer {
        tail: Bytes::new(),
        ..footer
    };
    let err = read_rows(&store, &key, &footer, 0, 200).await.unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Corrupt, "{err}");
}

#[test]
fn control_segment_has_no_rows() {
    let mut m = manifest_for(7, 1);
    m.record_count = 0;
    m.next_offset = m.base_offset;
    let bytes = encode(&[], &[], &m).unwrap();
    let len = bytes.len() as u64;
    let f = parse_footer(&Path::from("k"), bytes, len).unwrap().unwrap();
    assert_eq!(f.manifest.record_count, 0);
    assert_eq!(f.metadata.file_metadata().num_rows(), 0);
}

#[tokio::test]
async fn every_topic_codec_round_trips_and_is_the_files_codec() {
    use crate::topic::Compression as Codec;
    use parquet::basic::Compression as Parquet;
    let input = records(40, 300);
    let ts: Vec<i64> = (0..40).collect();
    let m = manifest_for(7, 40);
    for (codec, want) in [
        (Codec::Zstd, "ZSTD"),
        (Codec::Lz4, "LZ4_RAW"),
        (Codec::Snappy, "SNAPPY"),
        (Codec::Gzip, "GZIP"),
        (Codec::None, "UNCOMPRESSED"),
    ] {
        let bytes = encode_with(&input, &ts, &m, codec).unwrap();
        let (store, key) = in_memory(&bytes).await;
        let footer = parse_footer(&key, bytes.clone(), bytes.len() as u64)
            .unwrap()
            .unwrap();
        let column = footer.metadata.row_group(0).column(3);
        let got: Parquet = column.compression();
        assert!(got.to_string().starts_with(want), "{codec:?}: {got}");
        let rows = read_rows(&store, &key, &footer, 0, 40).await.unwrap();
        let values: Vec<_> = rows.iter().map(|r| r.value.clone()).collect();
        let expected: Vec<_> = input.iter().map(|r| r.value.clone()).collect();
        assert_eq!(values, expected, "{codec:?}");
    }
}

#[test]
fn every_column_carries_its_parquet_field_id() {
    let bytes = encode(&records(3, 10), &[1, 2, 3], &manifest_for(7, 3)).unwrap();
    let len = bytes.len() as u64;
    let f = parse_footer(&Path::from("k"), bytes, len).unwrap().unwrap();
    let root = f.metadata.file_metadata().schema_descr().root_schema();
    let mut ids = Vec::new();
    collect_field_ids(root, "", &mut ids);
    let want = [
        ("offset", FIELD_ID_OFFSET),
        ("timestamp", FIELD_ID_TIMESTAMP),
        ("key", FIELD_ID_KEY),
        ("value", FIELD_ID_VALUE),
        ("headers", FIELD_ID_HEADERS),
        ("headers.list.item", FIELD_ID_HEADERS_ITEM),
        ("headers.list.item.key", FIELD_ID_HEADER_KEY),
        ("headers.list.item.value", FIELD_ID_HEADER_VALUE),
    ];
    for (path, id) in want {
        assert!(ids.contains(&(path.to_string(), id)), "{path}: {ids:?}");
    }
    let distinct: std::collections::HashSet<i32> = ids.iter().map(|(_, id)| *id).collect();
    assert_eq!(distinct.len(), ids.len(), "ids are unique: {ids:?}");
}

/// Every (dotted path, field id) of a Parquet schema tree, skipping nodes without an id.
fn collect_field_ids(
    node: &parquet::schema::types::Type,
    prefix: &str,
    out: &mut Vec<(String, i32)>,
) {
    for child in node.get_fields() {
        let name = child.name();
        let path = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        let info = child.get_basic_info();
        if info.has_id() {
            out.push((path.clone(), info.id()));
        }
        if child.is_group() {
            collect_field_ids(child, &path, out);
        }
    }
}
