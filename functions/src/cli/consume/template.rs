//! How `pail consume` prints a record as text: a pattern after kcat's `-f`.
//!
//! Tokens: `%s` value, `%k` key, `%t` topic, `%p` partition, `%o` offset, `%T` timestamp (ms
//! since the Unix epoch), `%h` headers (`name=value` joined by `,`; a header without a value is
//! just its name), `%S` value size and `%K` key size in bytes, `%%` a percent sign. Escapes:
//! `\n`, `\r`, `\t`, `\\`. Keys, values and headers are written as their raw bytes; a missing key
//! or value prints as nothing. No newline is added: end the pattern with `\n`.

use bytes::Bytes;
use pail_core::StoredRecord;
use std::io::Write;

/// One piece of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Value,
    Key,
    Topic,
    Partition,
    Offset,
    Timestamp,
    Headers,
    ValueSize,
    KeySize,
}

/// A parsed output pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

/// What a record is printed with, beside the record itself.
pub struct Context<'a> {
    pub topic: &'a str,
    pub partition: u32,
}

impl Template {
    /// The default text output: each value on a line of its own.
    pub fn values() -> Template {
        Template(vec![Piece::Value, Piece::Text(b"\n".to_vec())])
    }

    /// Key, `separator`, value, newline (kcat's `-K`). The separator is taken literally.
    pub fn key_value(separator: &str) -> Template {
        Template(vec![
            Piece::Key,
            Piece::Text(separator.as_bytes().to_vec()),
            Piece::Value,
            Piece::Text(b"\n".to_vec()),
        ])
    }

    /// Parses a pattern (see the module docs).
    pub fn parse(pattern: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let token = chars
                        .next()
                        .ok_or("ends in a lone '%' (write %% for one)")?;
                    match token_piece(token)? {
                        Some(piece) => {
                            flush_text(&mut pieces, &mut text);
                            pieces.push(piece);
                        }
                        None => text.push(b'%'),
                    }
                }
                '\\' => {
                    let escaped = chars
                        .next()
                        .ok_or("ends in a lone '\\' (write \\\\ for one)")?;
                    text.push(escape(escaped)?);
                }
                c => text.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        flush_text(&mut pieces, &mut text);
        Ok(Template(pieces))
    }

    pub fn write(
        &self,
        out: &mut impl Write,
        at: &Context<'_>,
        r: &StoredRecord,
    ) -> std::io::Result<()> {
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.write_all(t)?,
                Piece::Value => out.write_all(bytes(&r.value))?,
                Piece::Key => out.write_all(bytes(&r.key))?,
                Piece::Topic => out.write_all(at.topic.as_bytes())?,
                Piece::Partition => write!(out, "{}", at.partition)?,
                Piece::Offset => write!(out, "{}", r.offset)?,
                Piece::Timestamp => write!(out, "{}", r.timestamp_ms)?,
                Piece::ValueSize => write!(out, "{}", size(&r.value))?,
                Piece::KeySize => write!(out, "{}", size(&r.key))?,
                Piece::Headers => write_headers(out, r)?,
            }
        }
        Ok(())
    }
}

/// A key's or value's bytes; nothing when it is absent.
fn bytes(b: &Option<Bytes>) -> &[u8] {
    b.as_deref().unwrap_or_default()
}

fn size(b: &Option<Bytes>) -> usize {
    b.as_ref().map_or(0, Bytes::len)
}

/// The piece a `%` token stands for; `None` for `%%`.
fn token_piece(token: char) -> Result<Option<Piece>, String> {
    Ok(Some(match token {
        's' => Piece::Value,
        'k' => Piece::Key,
        't' => Piece::Topic,
        'p' => Piece::Partition,
        'o' => Piece::Offset,
        'T' => Piece::Timestamp,
        'h' => Piece::Headers,
        'S' => Piece::ValueSize,
        'K' => Piece::KeySize,
        '%' => return Ok(None),
        other => {
            return Err(format!(
                "unknown token %{other}: use %s %k %t %p %o %T %h %S %K or %%"
            ));
        }
    }))
}

fn escape(c: char) -> Result<u8, String> {
    match c {
        'n' => Ok(b'\n'),
        'r' => Ok(b'\r'),
        't' => Ok(b'\t'),
        '\\' => Ok(b'\\'),
        other => Err(format!("unknown escape \\{other}: use \\n \\r \\t or \\\\")),
    }
}

fn flush_text(pieces: &mut Vec<Piece>, text: &mut Vec<u8>) {
    if !text.is_empty() {
        pieces.push(Piece::Text(std::mem::take(text)));
    }
}

fn write_headers(out: &mut impl Write, r: &StoredRecord) -> std::io::Result<()> {
    for (i, h) in r.headers.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(h.key.as_bytes())?;
        if let Some(v) = &h.value {
            out.write_all(b"=")?;
            out.write_all(v)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pail_core::Header;

    fn print(pattern: &str, r: &StoredRecord) -> Vec<u8> {
        let mut out = Vec::new();
        let at = Context {
            topic: "t",
            partition: 2,
        };
        Template::parse(pattern)
            .unwrap()
            .write(&mut out, &at, r)
            .unwrap();
        out
    }

    #[test]
    fn every_token_and_escape() {
        let r = StoredRecord {
            offset: 7,
            timestamp_ms: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"v\xff")),
            headers: vec![
                Header {
                    key: "a".into(),
                    value: Some(Bytes::from_static(b"1")),
                },
                Header {
                    key: "b".into(),
                    value: None,
                },
            ],
        };
        assert_eq!(
            print("%t/%p@%o %T [%h] %k(%K)=%s(%S) 100%%\\t\\\\\\n", &r),
            b"t/2@7 1700000000000 [a=1,b] k1(2)=v\xff(2) 100%\t\\\n".to_vec()
        );
        let bare = StoredRecord {
            key: None,
            value: None,
            headers: vec![],
            ..r
        };
        assert_eq!(print("[%k|%s|%K|%S|%h]", &bare), b"[||0|0|]".to_vec());
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        for (pattern, needle) in [
            ("%x", "unknown token %x"),
            ("abc%", "lone '%'"),
            ("\\q", "unknown escape \\q"),
            ("a\\", "lone '\\'"),
        ] {
            let err = Template::parse(pattern).unwrap_err();
            assert!(err.contains(needle), "{pattern}: {err}");
        }
        // A -K separator is literal text, even with a percent sign in it.
        let mut out = Vec::new();
        let r = StoredRecord {
            offset: 0,
            timestamp_ms: 0,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![],
        };
        let at = Context {
            topic: "t",
            partition: 0,
        };
        Template::key_value("%s").write(&mut out, &at, &r).unwrap();
        assert_eq!(out, b"k%sv\n".to_vec());
    }
}
