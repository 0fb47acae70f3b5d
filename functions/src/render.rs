//! Records as JSON: one object per record, bytes as UTF-8 text where they are valid UTF-8 and
//! base64 otherwise, with an `*_encoding` field saying which.

use base64::Engine;
use bytes::Bytes;
use pail_core::StoredRecord;
use serde::Serialize;

/// How a byte field was written out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Utf8,
    Base64,
}

/// Text for `bytes`, and which encoding it is in.
pub fn encode_bytes(bytes: &[u8]) -> (String, Encoding) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), Encoding::Utf8),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            Encoding::Base64,
        ),
    }
}

fn optional(bytes: &Option<Bytes>) -> (Option<String>, Option<Encoding>) {
    match bytes {
        Some(b) => {
            let (text, enc) = encode_bytes(b);
            (Some(text), Some(enc))
        }
        None => (None, None),
    }
}

#[derive(Debug, Serialize)]
pub struct JsonHeader {
    pub key: String,
    pub value: Option<String>,
    pub value_encoding: Option<Encoding>,
}

#[derive(Debug, Serialize)]
pub struct JsonRecord<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub offset: u64,
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamp: i64,
    pub key: Option<String>,
    pub key_encoding: Option<Encoding>,
    pub value: Option<String>,
    pub value_encoding: Option<Encoding>,
    pub headers: Vec<JsonHeader>,
}

impl<'a> JsonRecord<'a> {
    pub fn new(topic: &'a str, partition: u32, r: &StoredRecord) -> Self {
        let (key, key_encoding) = optional(&r.key);
        let (value, value_encoding) = optional(&r.value);
        let headers = r
            .headers
            .iter()
            .map(|h| {
                let (value, value_encoding) = optional(&h.value);
                JsonHeader {
                    key: h.key.clone(),
                    value,
                    value_encoding,
                }
            })
            .collect();
        JsonRecord {
            topic,
            partition,
            offset: r.offset,
            timestamp: r.timestamp_ms,
            key,
            key_encoding,
            value,
            value_encoding,
            headers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pail_core::Header;

    #[test]
    fn utf8_stays_text_and_other_bytes_become_base64() {
        let r = StoredRecord {
            offset: 7,
            timestamp_ms: 1,
            key: None,
            value: Some(Bytes::from_static(&[0xff, 0x00])),
            headers: vec![Header {
                key: "h".into(),
                value: Some(Bytes::from_static(b"caf\xc3\xa9")),
            }],
        };
        let json = serde_json::to_value(JsonRecord::new("t", 2, &r)).unwrap();
        assert_eq!(json["key"], serde_json::Value::Null);
        assert_eq!(json["value"], "/wA=");
        assert_eq!(json["value_encoding"], "base64");
        assert_eq!(json["headers"][0]["value"], "café");
        assert_eq!(json["headers"][0]["value_encoding"], "utf8");
        assert_eq!(
            (json["partition"].as_u64(), json["offset"].as_u64()),
            (Some(2), Some(7))
        );
    }
}
