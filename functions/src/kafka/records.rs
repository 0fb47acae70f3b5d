//! Kafka record batches (magic 2) to pail records and back.
//!
//! The batch header, CRC-32C and compression follow Kafka's `DefaultRecordBatch`. The records
//! inside are read and written here rather than through `kafka_protocol::records::Record`,
//! because that type keeps headers in a map: a record with a repeated header key (which Kafka
//! allows and pail keeps) would silently lose headers in either direction. The crate's own
//! decoder is the test oracle for what is written here (see the tests below).
//!
//! Decompression is bounded: a produced batch may expand to at most [`BATCH_BYTES_MAX`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Decompressor, Snappy};
use pail_core::manifest::ProducerBatch;
use pail_core::{Header, Record, StoredRecord, TimestampType};
use std::io::Read;

/// Bytes of a batch header before its records.
const HEADER_BYTES: usize = 61;
/// Where the CRC-covered part of a batch starts (the attributes).
const CRC_START: usize = 21;
/// Most bytes one produced batch may hold once decompressed: pail's limit on one append.
pub const BATCH_BYTES_MAX: usize = pail_core::client::APPEND_BYTES_MAX as usize;

const ATTR_COMPRESSION: i16 = 0x7;
const ATTR_LOG_APPEND_TIME: i16 = 1 << 3;
const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;

/// Why a produced batch was refused, with the Kafka error it is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Bad CRC, truncated or inconsistent bytes (Kafka: CORRUPT_MESSAGE).
    Corrupt(String),
    /// Valid Kafka, but not something pail accepts (Kafka: INVALID_RECORD or
    /// UNSUPPORTED_FOR_MESSAGE_FORMAT for old message formats).
    Invalid(String),
    OldFormat(i8),
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Corrupt(m) => write!(f, "corrupt record batch: {m}"),
            BatchError::Invalid(m) => write!(f, "invalid record batch: {m}"),
            BatchError::OldFormat(magic) => write!(
                f,
                "message format v{magic} is not supported (record batches v2 only)"
            ),
        }
    }
}

fn corrupt(m: impl Into<String>) -> BatchError {
    BatchError::Corrupt(m.into())
}

/// One decoded produced batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub records: Vec<Record>,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl Batch {
    /// The pail idempotence tag of an idempotent producer's batch: the producer id and epoch
    /// name the pail producer, so a new epoch starts a fresh sequence as Kafka's does.
    pub fn producer(&self) -> Option<ProducerBatch> {
        (self.producer_id >= 0 && self.base_sequence >= 0).then(|| ProducerBatch {
            producer_id: format!("k{}.{}", self.producer_id, self.producer_epoch),
            first_sequence: self.base_sequence as u64,
        })
    }
}

/// Every batch in a partition's `records` field of a Produce request.
pub fn decode_batches(mut data: Bytes) -> Result<Vec<Batch>, BatchError> {
    let mut out = Vec::new();
    while data.has_remaining() {
        if data.len() < 17 {
            return Err(corrupt("truncated batch header"));
        }
        let magic = data[16] as i8;
        if magic != 2 {
            return Err(BatchError::OldFormat(magic));
        }
        let length = i32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let total = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(12))
            .filter(|&t| t >= HEADER_BYTES && t <= data.len())
            .ok_or_else(|| corrupt(format!("batch length {length} does not fit the data")))?;
        out.push(decode_batch(data.split_to(total))?);
    }
    if out.is_empty() {
        return Err(BatchError::Invalid("no record batch".into()));
    }
    Ok(out)
}

fn decode_batch(batch: Bytes) -> Result<Batch, BatchError> {
    let mut h = &batch[8..HEADER_BYTES];
    let _length = h.get_i32();
    let _leader_epoch = h.get_i32();
    let _magic = h.get_i8();
    let crc = h.get_u32();
    if crc32c::crc32c(&batch[CRC_START..]) != crc {
        return Err(corrupt("CRC-32C mismatch"));
    }
    let attributes = h.get_i16();
    let _last_offset_delta = h.get_i32();
    let base_timestamp = h.get_i64();
    let _max_timestamp = h.get_i64();
    let producer_id = h.get_i64();
    let producer_epoch = h.get_i16();
    let base_sequence = h.get_i32();
    let count = h.get_i32();
    if attributes & (ATTR_TRANSACTIONAL | ATTR_CONTROL) != 0 {
        return Err(BatchError::Invalid(
            "transactional and control batches are not supported".into(),
        ));
    }
    let count = usize::try_from(count)
        .ok()
        .filter(|&c| c > 0 && c <= pail_core::client::APPEND_RECORDS_MAX)
        .ok_or_else(|| {
            BatchError::Invalid(format!(
                "a batch holds 1 to {} records, not {count}",
                pail_core::client::APPEND_RECORDS_MAX
            ))
        })?;
    let body = decompress(batch.slice(HEADER_BYTES..), attributes & ATTR_COMPRESSION)?;
    let records = decode_records(body, count, base_timestamp)?;
    Ok(Batch {
        records,
        producer_id,
        producer_epoch,
        base_sequence,
    })
}

/// The records section, decompressed, at most [`BATCH_BYTES_MAX`] bytes.
fn decompress(data: Bytes, codec: i16) -> Result<Bytes, BatchError> {
    let bounded = |mut reader: Box<dyn Read + '_>| -> Result<Bytes, BatchError> {
        let mut out = Vec::new();
        (&mut reader)
            .take(BATCH_BYTES_MAX as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| corrupt(format!("does not decompress: {e}")))?;
        check_expanded(out.len())?;
        Ok(Bytes::from(out))
    };
    match codec {
        0 => Ok(data),
        1 => bounded(Box::new(flate2::read::MultiGzDecoder::new(&data[..]))),
        2 => {
            // Snappy comes in xerial's framing (Java) or raw (librdkafka may send either);
            // kafka-protocol reads both, allocating what each block declares, so the declared
            // sizes are checked first.
            check_expanded(snappy_declared_len(&data)?)?;
            let mut data = data;
            let out = Snappy::decompress(&mut data, |b: &mut Bytes| Ok(b.clone()))
                .map_err(|e| corrupt(format!("snappy does not decompress: {e}")))?;
            check_expanded(out.len())?;
            Ok(out)
        }
        3 => {
            let reader = lz4::Decoder::new(&data[..])
                .map_err(|e| corrupt(format!("lz4 does not decompress: {e}")))?;
            bounded(Box::new(reader))
        }
        4 => {
            let reader = zstd::stream::read::Decoder::new(&data[..])
                .map_err(|e| corrupt(format!("zstd does not decompress: {e}")))?;
            bounded(Box::new(reader))
        }
        other => Err(corrupt(format!("unknown compression codec {other}"))),
    }
}

/// xerial's stream header (magic, version, compatible version), exactly as kafka-protocol
/// recognises it: anything else is read as raw snappy.
const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// The decompressed size a snappy payload declares, summed over xerial blocks.
fn snappy_declared_len(data: &[u8]) -> Result<usize, BatchError> {
    let declared = |block: &[u8]| {
        snap::raw::decompress_len(block).map_err(|e| corrupt(format!("snappy header: {e}")))
    };
    let Some(mut rest) = data.strip_prefix(&XERIAL_MAGIC[..]) else {
        return declared(data);
    };
    let mut total = 0usize;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let block = rest
            .get(4..4 + len)
            .ok_or_else(|| corrupt("truncated snappy block"))?;
        total = total.saturating_add(declared(block)?);
        rest = &rest[4 + len..];
    }
    Ok(total)
}

fn check_expanded(len: usize) -> Result<(), BatchError> {
    if len > BATCH_BYTES_MAX {
        return Err(BatchError::Invalid(format!(
            "batch decompresses to more than {BATCH_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

fn decode_records(
    mut buf: Bytes,
    count: usize,
    base_timestamp: i64,
) -> Result<Vec<Record>, BatchError> {
    let mut records = Vec::with_capacity(count);
    for i in 0..count {
        let len = varint(&mut buf).map_err(corrupt)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= buf.len())
            .ok_or_else(|| corrupt(format!("record {i} has length {len}")))?;
        let mut r = buf.split_to(len);
        let record = decode_record(&mut r, base_timestamp)
            .map_err(|e| corrupt(format!("record {i}: {e}")))?;
        if r.has_remaining() {
            return Err(corrupt(format!("record {i} has {} extra bytes", r.len())));
        }
        records.push(record);
    }
    if buf.has_remaining() {
        return Err(corrupt(format!(
            "{} bytes after the last of {count} records",
            buf.len()
        )));
    }
    Ok(records)
}

fn decode_record(r: &mut Bytes, base_timestamp: i64) -> Result<Record, String> {
    if !r.has_remaining() {
        return Err("empty".into());
    }
    let _attributes = r.get_i8();
    let timestamp_delta = varlong(r)?;
    let _offset_delta = varint(r)?;
    let key = nullable_bytes(r)?;
    let value = nullable_bytes(r)?;
    let header_count = varint(r)?;
    let header_count = usize::try_from(header_count)
        .ok()
        .filter(|&n| n <= r.len())
        .ok_or_else(|| format!("{header_count} headers"))?;
    let mut headers = Vec::with_capacity(header_count);
    for _ in 0..header_count {
        let key = nullable_bytes(r)?.ok_or("a header without a key")?;
        let key = String::from_utf8(key.to_vec()).map_err(|_| "a header key is not UTF-8")?;
        let value = nullable_bytes(r)?;
        headers.push(Header { key, value });
    }
    Ok(Record {
        key,
        value,
        headers,
        timestamp_ms: Some(base_timestamp.wrapping_add(timestamp_delta)),
    })
}

fn nullable_bytes(r: &mut Bytes) -> Result<Option<Bytes>, String> {
    let len = varint(r)?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= r.len())
        .ok_or_else(|| format!("field length {len} with {} bytes left", r.len()))?;
    Ok(Some(r.split_to(len)))
}

fn varint(r: &mut Bytes) -> Result<i32, String> {
    let v = varlong(r)?;
    i32::try_from(v).map_err(|_| format!("varint {v} out of range"))
}

/// A zig-zag LEB128 integer of at most 10 bytes.
fn varlong(r: &mut Bytes) -> Result<i64, String> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        if !r.has_remaining() {
            return Err("truncated varint".into());
        }
        let byte = r.get_u8();
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn put_varlong(buf: &mut BytesMut, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        buf.put_u8((raw as u8) | 0x80);
        raw >>= 7;
    }
    buf.put_u8(raw as u8);
}

/// Bytes of a zig-zag varint.
fn varlong_size(v: i64) -> usize {
    let raw = ((v << 1) ^ (v >> 63)) as u64;
    (64 - raw.leading_zeros() as usize).max(1).div_ceil(7)
}

fn nullable_size(b: Option<&[u8]>) -> usize {
    b.map_or(1, |b| varlong_size(b.len() as i64) + b.len())
}

/// The encoded size of a record after its length prefix, so it is written in one pass.
fn record_size(r: &StoredRecord, ts_delta: i64, offset_delta: i64) -> usize {
    let headers: usize = r
        .headers
        .iter()
        .map(|h| nullable_size(Some(h.key.as_bytes())) + nullable_size(h.value.as_deref()))
        .sum();
    1 + varlong_size(ts_delta)
        + varlong_size(offset_delta)
        + nullable_size(r.key.as_deref())
        + nullable_size(r.value.as_deref())
        + varlong_size(r.headers.len() as i64)
        + headers
}

fn put_nullable(buf: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            put_varlong(buf, b.len() as i64);
            buf.put_slice(b);
        }
        None => put_varlong(buf, -1),
    }
}

/// Appends fetched records (consecutive offsets) to `out` as uncompressed batches: one batch,
/// or with LogAppendTime one per run of equal timestamps, because a client then stamps every
/// record of a batch with the batch's maximum timestamp.
pub fn encode_batches(out: &mut BytesMut, records: &[StoredRecord], timestamps: TimestampType) {
    // Reserve once (a close upper bound): growing a buffer of megabytes copies it each time.
    let estimate: usize = records
        .iter()
        .map(|r| 10 + record_size(r, i64::MAX, i64::MAX))
        .sum();
    out.reserve(estimate + HEADER_BYTES);
    let mut rest = records;
    while let Some(first) = rest.first() {
        let run = match timestamps {
            TimestampType::CreateTime => rest.len(),
            TimestampType::LogAppendTime => rest
                .iter()
                .position(|r| r.timestamp_ms != first.timestamp_ms)
                .unwrap_or(rest.len()),
        };
        let (batch, tail) = rest.split_at(run);
        encode_batch(out, batch, timestamps);
        rest = tail;
    }
}

fn encode_batch(out: &mut BytesMut, records: &[StoredRecord], timestamps: TimestampType) {
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return;
    };
    let base_ts = records.iter().map(|r| r.timestamp_ms).min().unwrap_or(0);
    let max_ts = records.iter().map(|r| r.timestamp_ms).max().unwrap_or(0);
    let start = out.len();
    out.put_i64(first.offset as i64);
    out.put_i32(0); // length, filled below
    out.put_i32(-1); // partition leader epoch: pail has none to report
    out.put_i8(2);
    out.put_u32(0); // CRC, filled below
    let attributes = match timestamps {
        TimestampType::CreateTime => 0,
        TimestampType::LogAppendTime => ATTR_LOG_APPEND_TIME,
    };
    out.put_i16(attributes);
    out.put_i32((last.offset - first.offset) as i32);
    out.put_i64(base_ts);
    out.put_i64(max_ts);
    out.put_i64(-1); // producer id
    out.put_i16(-1); // producer epoch
    out.put_i32(-1); // base sequence
    out.put_i32(records.len() as i32);
    for r in records {
        let ts_delta = r.timestamp_ms - base_ts;
        let offset_delta = (r.offset - first.offset) as i64;
        put_varlong(out, record_size(r, ts_delta, offset_delta) as i64);
        out.put_i8(0);
        put_varlong(out, ts_delta);
        put_varlong(out, offset_delta);
        put_nullable(out, r.key.as_deref());
        put_nullable(out, r.value.as_deref());
        put_varlong(out, r.headers.len() as i64);
        for h in &r.headers {
            put_nullable(out, Some(h.key.as_bytes()));
            put_nullable(out, h.value.as_deref());
        }
    }
    let length = (out.len() - start - 12) as i32;
    out[start + 8..start + 12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[start + CRC_START..]);
    out[start + 17..start + 21].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    };

    fn stored(offset: u64, ts: i64, headers: Vec<Header>) -> StoredRecord {
        StoredRecord {
            offset,
            timestamp_ms: ts,
            key: Some(Bytes::from(format!("k{offset}"))),
            value: (offset % 3 != 2).then(|| Bytes::from(vec![offset as u8; 40])),
            headers,
        }
    }

    fn header(k: &str, v: Option<&[u8]>) -> Header {
        Header {
            key: k.into(),
            value: v.map(Bytes::copy_from_slice),
        }
    }

    /// What kafka-protocol's encoder writes for these records with `compression`.
    fn library_batch(records: &[StoredRecord], compression: Compression) -> Bytes {
        let recs: Vec<kafka_protocol::records::Record> = records
            .iter()
            .enumerate()
            .map(|(i, r)| kafka_protocol::records::Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: 42,
                producer_epoch: 3,
                timestamp_type: kafka_protocol::records::TimestampType::Creation,
                offset: i as i64,
                sequence: 10 + i as i32,
                timestamp: r.timestamp_ms,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|h| (h.key.clone().into(), h.value.clone()))
                    .collect(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, &recs, &options).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_what_kafka_protocol_encodes_with_every_codec() {
        let records: Vec<StoredRecord> = (0..20)
            .map(|i| {
                stored(
                    i,
                    1_700_000_000_000 + (i as i64 * 7) % 5,
                    vec![header("h", Some(b"v"))],
                )
            })
            .collect();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batches = decode_batches(library_batch(&records, c)).unwrap();
            assert_eq!(batches.len(), 1, "{c:?}");
            let b = &batches[0];
            let tag = b.producer().unwrap();
            assert_eq!(
                (tag.producer_id.as_str(), tag.first_sequence),
                ("k42.3", 10)
            );
            assert_eq!(b.records.len(), 20);
            for (got, want) in b.records.iter().zip(&records) {
                assert_eq!(got.key, want.key, "{c:?}");
                assert_eq!(got.value, want.value, "{c:?}");
                assert_eq!(got.headers, want.headers, "{c:?}");
                assert_eq!(got.timestamp_ms, Some(want.timestamp_ms), "{c:?}");
            }
        }
    }

    #[test]
    fn encoded_batches_decode_with_kafka_protocol_and_keep_repeated_headers() {
        let records = vec![
            stored(
                5,
                100,
                vec![header("a", Some(b"1")), header("a", Some(b"2"))],
            ),
            stored(6, 90, vec![header("none", None), header("", Some(b""))]),
            stored(7, 300, vec![]),
        ];
        let mut out = BytesMut::new();
        encode_batches(&mut out, &records, TimestampType::CreateTime);
        let mut bytes = out.clone().freeze();
        // The library checks the CRC and reads offsets and timestamps (it keeps only the last
        // of repeated header keys, which is why pail writes records itself).
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert_eq!(
            set.records
                .iter()
                .map(|r| (r.offset, r.timestamp))
                .collect::<Vec<_>>(),
            vec![(5, 100), (6, 90), (7, 300)]
        );
        // pail's own decoder gets every header back, in order.
        let back = decode_batches(out.freeze()).unwrap();
        let got: Vec<_> = back[0].records.iter().map(|r| r.headers.clone()).collect();
        let want: Vec<_> = records.iter().map(|r| r.headers.clone()).collect();
        assert_eq!(got, want);
        assert_eq!(back[0].producer(), None);
    }

    #[test]
    fn varint_sizes_match_what_is_written() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            8191,
            -8192,
            1 << 40,
            i64::MAX,
            i64::MIN,
        ] {
            let mut b = BytesMut::new();
            put_varlong(&mut b, v);
            assert_eq!(b.len(), varlong_size(v), "{v}");
            assert_eq!(varlong(&mut b.freeze()), Ok(v));
        }
    }

    #[test]
    fn log_append_time_gets_one_batch_per_timestamp() {
        let records = vec![
            stored(0, 10, vec![]),
            stored(1, 10, vec![]),
            stored(2, 20, vec![]),
        ];
        let mut out = BytesMut::new();
        encode_batches(&mut out, &records, TimestampType::LogAppendTime);
        let mut bytes = out.freeze();
        let sets = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[1].records[0].offset, 2);
        assert_eq!(
            sets[0].records[0].timestamp_type,
            kafka_protocol::records::TimestampType::LogAppend
        );
    }

    #[test]
    fn damaged_batches_are_refused_without_panicking() {
        let good = library_batch(&[stored(0, 1, vec![])], Compression::None);
        let mut flipped = good.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            decode_batches(Bytes::from(flipped)),
            Err(BatchError::Corrupt(m)) if m.contains("CRC")
        ));
        let mut old = good.to_vec();
        old[16] = 1;
        assert_eq!(
            decode_batches(Bytes::from(old)),
            Err(BatchError::OldFormat(1))
        );
        assert!(decode_batches(Bytes::new()).is_err());
        // Every truncation, and random bytes, give an error and never a panic.
        for cut in 0..good.len() {
            assert!(decode_batches(good.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut seed = 7u64;
        for _ in 0..2000 {
            let mut junk = good.to_vec();
            for _ in 0..4 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let at = (seed >> 33) as usize % junk.len();
                junk[at] = (seed >> 20) as u8;
            }
            // Recompute the CRC so damage past the header reaches the record decoder.
            let crc = crc32c::crc32c(&junk[CRC_START..]);
            junk[17..21].copy_from_slice(&crc.to_be_bytes());
            let _ = decode_batches(Bytes::from(junk));
        }
    }

    #[test]
    fn decompression_is_bounded() {
        // 80 MiB of zeros gzip to a few hundred KiB: refused once past the limit.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..80 {
            std::io::Write::write_all(&mut enc, &zeros).unwrap();
        }
        let packed = Bytes::from(enc.finish().unwrap());
        let err = decompress(packed, 1).unwrap_err();
        assert!(
            err.to_string().contains("decompresses to more than"),
            "{err}"
        );
    }
}
