//! Records as JSON: one object per record, bytes as UTF-8 text where they are valid UTF-8 and
//! base64 otherwise, with an `*_encoding` field saying which. `pail consume --format json`
//! prints these objects and the HTTP API serves them, so both faces show records one way.
//!
//! Also the text forms both faces accept for offsets ([`parse_offset`]).

use base64::Engine;
use bytes::Bytes;
use pail_core::{OffsetSpec, StoredRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a byte field is written out: UTF-8 text, or base64 (standard alphabet, padded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Utf8,
    Base64,
}

/// The bytes `text` stands for in `encoding`: the inverse of [`encode_bytes`].
pub fn decode_bytes(text: String, encoding: Encoding) -> Result<Bytes, String> {
    match encoding {
        Encoding::Utf8 => Ok(Bytes::from(text)),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(|e| format!("is not valid base64: {e}")),
    }
}

/// An offset as a person writes it: `earliest` (or `beginning`), `latest` (or `end`), or an
/// absolute offset.
pub fn parse_offset(s: &str) -> Result<OffsetSpec, String> {
    match s {
        "earliest" | "beginning" => Ok(OffsetSpec::Earliest),
        "latest" | "end" => Ok(OffsetSpec::Latest),
        n => n
            .parse::<i64>()
            .map(OffsetSpec::At)
            .map_err(|_| format!("{n:?} is not earliest, latest or an offset")),
    }
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

/// A record header. On input `value_encoding` may be left out for UTF-8.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonHeader {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_encoding: Option<Encoding>,
}

/// One record as `pail consume --format json` prints it and the HTTP API returns it.
#[derive(Debug, Serialize, ToSchema)]
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
