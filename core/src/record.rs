//! Records as producers hand them in and as consumers get them back.

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// A record header: a UTF-8 key and an optional byte value, kept byte-exact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

/// A record to append. The log assigns its offset; its timestamp is the producer's unless the
/// topic uses `LogAppendTime` (or none is given, then the producer's clock stands in).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    pub timestamp_ms: Option<i64>,
}

impl Record {
    /// A record with only a value.
    pub fn from_value(value: impl Into<Bytes>) -> Self {
        Record {
            value: Some(value.into()),
            ..Record::default()
        }
    }

    /// A record with a key and a value.
    pub fn keyed(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Record {
            key: Some(key.into()),
            value: Some(value.into()),
            ..Record::default()
        }
    }

    /// The size that counts against the record limit: key, value and every header's key and
    /// value. This is also what fetch's `max_bytes` counts.
    pub fn size_bytes(&self) -> u64 {
        payload_size(&self.key, &self.value, &self.headers)
    }
}

/// A record read back from the log, with its absolute offset and final timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

impl StoredRecord {
    pub fn size_bytes(&self) -> u64 {
        payload_size(&self.key, &self.value, &self.headers)
    }
}

fn payload_size(key: &Option<Bytes>, value: &Option<Bytes>, headers: &[Header]) -> u64 {
    let len = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
    let headers: u64 = headers
        .iter()
        .map(|h| h.key.len() as u64 + len(&h.value))
        .sum();
    len(key) + len(value) + headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_counts_key_value_and_headers() {
        let mut r = Record::keyed("ab", "cde");
        r.headers.push(Header {
            key: "h".into(),
            value: Some(Bytes::from_static(b"vv")),
        });
        r.headers.push(Header {
            key: "n".into(),
            value: None,
        });
        assert_eq!(r.size_bytes(), 2 + 3 + 1 + 2 + 1);
        assert_eq!(Record::default().size_bytes(), 0);
    }
}

/// The digest of a batch as its client supplied it: keys, values, headers and the timestamps
/// the client set (not those the log fills in, so a retry from a fresh process that leaves
/// timestamps to the log has the same digest). 128 bits of SHA-256, as 32 hex digits.
///
/// Every field is length-prefixed and every optional field tagged, so no two different batches
/// encode alike.
pub fn digest(records: &[Record]) -> String {
    let mut h = Sha256::new();
    h.update((records.len() as u64).to_le_bytes());
    let opt = |h: &mut Sha256, b: Option<&[u8]>| match b {
        None => h.update([0u8]),
        Some(b) => {
            h.update([1u8]);
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        }
    };
    for r in records {
        opt(&mut h, r.key.as_deref());
        opt(&mut h, r.value.as_deref());
        h.update((r.headers.len() as u64).to_le_bytes());
        for header in &r.headers {
            opt(&mut h, Some(header.key.as_bytes()));
            opt(&mut h, header.value.as_deref());
        }
        match r.timestamp_ms {
            None => h.update([0u8]),
            Some(t) => {
                h.update([1u8]);
                h.update(t.to_le_bytes());
            }
        }
    }
    let out = h.finalize();
    out[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod digest_tests {
    use super::*;

    #[test]
    fn digests_tell_batches_apart() {
        let a = vec![Record::keyed("k", "v")];
        assert_eq!(digest(&a), digest(&a.clone()));
        assert_eq!(digest(&a).len(), 32);
        let variants = [
            vec![Record::keyed("kv", "")],
            vec![Record::keyed("", "kv")],
            vec![Record::from_value("v")],
            vec![Record::keyed("k", "v"), Record::default()],
            vec![Record {
                timestamp_ms: Some(1),
                ..Record::keyed("k", "v")
            }],
            vec![Record {
                headers: vec![Header {
                    key: "h".into(),
                    value: None,
                }],
                ..Record::keyed("k", "v")
            }],
        ];
        for v in &variants {
            assert_ne!(digest(&a), digest(v), "{v:?}");
        }
    }
}
