//! What `pail produce` reads: lines of text (optionally `key SEP value`), or lines of JSON in
//! the shape `pail consume --format json` prints.

use bytes::Bytes;
use pail_core::{Header, Record};

use crate::render::JsonRecordIn;

/// One input line as a record, and the partition it names (JSON only).
pub type Parsed = (Record, Option<u32>);

/// Removes the line ending: `\n`, and a `\r` before it (or at the end of the input), as
/// kafka-console-producer does, so files with Windows line endings read as they look.
pub fn strip_line_end(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
}

/// A text line: the whole line as the value, or split at the first `separator` into key and
/// value. `None` when the separator is missing.
pub fn text_record(line: &[u8], separator: Option<&str>) -> Option<Record> {
    let Some(sep) = separator else {
        return Some(Record::from_value(Bytes::copy_from_slice(line)));
    };
    let sep = sep.as_bytes();
    let at = line.windows(sep.len()).position(|w| w == sep)?;
    Some(Record::keyed(
        Bytes::copy_from_slice(&line[..at]),
        Bytes::copy_from_slice(&line[at + sep.len()..]),
    ))
}

/// A JSON line (see [`JsonRecordIn`]).
pub fn json_record(line: &[u8]) -> Result<Parsed, String> {
    let parsed: JsonRecordIn = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    Ok((parsed.to_record()?, parsed.partition))
}

/// A `-H name=value` header.
pub fn parse_header(s: &str) -> Result<Header, String> {
    match s.split_once('=') {
        Some(("", _)) => Err("the header name before '=' is empty".into()),
        Some((name, value)) => Ok(Header {
            key: name.to_string(),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
        }),
        None => Err(format!("must be NAME=VALUE, not {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_separator() {
        let r = text_record(b"k1::v::x", Some("::")).unwrap();
        assert_eq!(
            (r.key.as_deref(), r.value.as_deref()),
            (Some(&b"k1"[..]), Some(&b"v::x"[..]))
        );
        assert!(text_record(b"no-sep", Some(":")).is_none());
        let plain = text_record(b"a:b", None).unwrap();
        assert_eq!(
            (plain.key, plain.value.as_deref()),
            (None, Some(&b"a:b"[..]))
        );
    }

    #[test]
    fn line_endings_are_not_part_of_the_record() {
        for (raw, want) in [
            (&b"a\r\n"[..], &b"a"[..]),
            (b"a\n", b"a"),
            (b"a\r", b"a"),
            (b"a", b"a"),
            (b"a\rb\n", b"a\rb"),
            (b"\r\n", b""),
        ] {
            let mut line = raw.to_vec();
            strip_line_end(&mut line);
            assert_eq!(line, want, "{raw:?}");
        }
    }

    #[test]
    fn headers_are_name_equals_value() {
        let h = parse_header("trace=a=b").unwrap();
        assert_eq!(
            (h.key.as_str(), h.value.as_deref()),
            ("trace", Some(&b"a=b"[..]))
        );
        assert_eq!(parse_header("x=").unwrap().value.as_deref(), Some(&b""[..]));
        assert!(parse_header("novalue").unwrap_err().contains("NAME=VALUE"));
        assert!(parse_header("=v").unwrap_err().contains("empty"));
    }
}
