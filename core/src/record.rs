//! Records as producers hand them in and as consumers get them back.

use bytes::Bytes;

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
