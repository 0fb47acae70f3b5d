//! Records as JSON: one object per record, bytes as UTF-8 text where they are valid UTF-8 and
//! base64 otherwise, with an `*_encoding` field saying which. `pail consume --format json`
//! prints these objects and the HTTP API serves them, so both faces show records one way;
//! [`JsonRecordIn`] reads the same shape back, so what `pail consume --format json` prints,
//! `pail produce --format json` takes.
//!
//! Also the text forms both faces accept for offsets ([`parse_offset`]).

use base64::Engine;
use bytes::Bytes;
use pail_core::{Header, OffsetSpec, Record, StoredRecord};
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

/// A record to produce, in the shape [`JsonRecord`] prints. `topic` and `offset` are accepted
/// and ignored (the log assigns offsets; the command line names the topic); unknown fields are
/// refused, so a misspelt one is not silently dropped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRecordIn {
    #[serde(default, rename = "topic")]
    pub _topic: Option<String>,
    #[serde(default, rename = "offset")]
    pub _offset: Option<u64>,
    #[serde(default)]
    pub partition: Option<u32>,
    /// Milliseconds since the Unix epoch; the producer's clock when absent.
    #[serde(default)]
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub key_encoding: Option<Encoding>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_encoding: Option<Encoding>,
    #[serde(default)]
    pub headers: Vec<JsonHeaderIn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonHeaderIn {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_encoding: Option<Encoding>,
}

/// The bytes `text` stands for in `encoding` (UTF-8 when absent): the inverse of
/// [`encode_bytes`].
pub fn decode_bytes(text: &str, encoding: Option<Encoding>) -> Result<Bytes, String> {
    match encoding.unwrap_or_default() {
        Encoding::Utf8 => Ok(Bytes::copy_from_slice(text.as_bytes())),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(text)
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

fn decode_optional(
    field: &str,
    text: Option<&str>,
    encoding: Option<Encoding>,
) -> Result<Option<Bytes>, String> {
    text.map(|t| decode_bytes(t, encoding).map_err(|e| format!("{field} {e}")))
        .transpose()
}

impl JsonRecordIn {
    /// The record this stands for.
    pub fn to_record(&self) -> Result<Record, String> {
        let headers = self
            .headers
            .iter()
            .map(|h| {
                Ok(Header {
                    key: h.key.clone(),
                    value: decode_optional("header value", h.value.as_deref(), h.value_encoding)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Record {
            key: decode_optional("key", self.key.as_deref(), self.key_encoding)?,
            value: decode_optional("value", self.value.as_deref(), self.value_encoding)?,
            headers,
            timestamp_ms: self.timestamp,
        })
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

    #[test]
    fn what_is_printed_reads_back_as_the_same_record() {
        let r = StoredRecord {
            offset: 3,
            timestamp_ms: 1_650_000_000_000,
            key: Some(Bytes::from_static(b"\x00k")),
            value: Some(Bytes::from_static(b"caf\xc3\xa9 \xff")),
            headers: vec![
                Header {
                    key: "bin".into(),
                    value: Some(Bytes::from_static(b"\xde\xad")),
                },
                Header {
                    key: "none".into(),
                    value: None,
                },
            ],
        };
        let line = serde_json::to_string(&JsonRecord::new("t", 1, &r)).unwrap();
        let back: JsonRecordIn = serde_json::from_str(&line).unwrap();
        assert_eq!(back.partition, Some(1));
        let rec = back.to_record().unwrap();
        assert_eq!(
            (rec.key, rec.value, rec.headers, rec.timestamp_ms),
            (r.key, r.value, r.headers, Some(r.timestamp_ms))
        );
    }

    #[test]
    fn bad_json_records_say_what_is_wrong() {
        let err = |line: &str| match serde_json::from_str::<JsonRecordIn>(line) {
            Ok(r) => r.to_record().unwrap_err(),
            Err(e) => e.to_string(),
        };
        assert!(err(r#"{"vale":"x"}"#).contains("unknown field `vale`"));
        assert!(err(r#"{"value":"x","value_encoding":"hex"}"#).contains("unknown variant `hex`"));
        assert!(
            err(r#"{"value":"!!","value_encoding":"base64"}"#)
                .contains("value is not valid base64")
        );
        assert!(err(r#"{"partition":-1}"#).contains("invalid value"));
        // Only a value: a plain unkeyed record.
        let plain: JsonRecordIn = serde_json::from_str(r#"{"value":"v"}"#).unwrap();
        assert_eq!(plain.to_record().unwrap(), Record::from_value("v"));
    }
}
