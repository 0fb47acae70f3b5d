//! Parsers for the command line's values, shared by every command.
//!
//! Numbers that look negative are read as values, not flags (see `super::command`), so these
//! parsers can refuse them with the reason instead of clap's "unexpected argument '-1'".

use pail_core::topic::PARTITIONS_MAX;
use std::str::FromStr;

/// A value of `T` (an unsigned integer type), with `what` it must be in the error.
fn unsigned<T: FromStr>(s: &str, what: &str) -> Result<T, String> {
    if let Ok(n) = s.parse::<i128>() {
        if n < 0 {
            return Err(format!("must be {what}, not {n}"));
        }
        return s
            .parse::<T>()
            .map_err(|_| format!("must be {what}, not {n} (too large)"));
    }
    Err(format!("must be {what}, not {s:?}"))
}

/// A partition number.
pub fn partition(s: &str) -> Result<u32, String> {
    unsigned(s, "a partition number (0 or more)")
}

/// A topic's partition count. Only what is not a count at all is refused here; the limits are
/// pail-core's (`TopicConfig::validate`), with the same wording.
pub fn partitions(s: &str) -> Result<u32, String> {
    unsigned(s, &format!("1 to {PARTITIONS_MAX} partitions"))
}

/// A count, a size in bytes or a duration in milliseconds.
pub fn whole_u64(s: &str) -> Result<u64, String> {
    unsigned(s, "a whole number (0 or more)")
}

/// A count that must be at least 1.
pub fn positive_u32(s: &str) -> Result<u32, String> {
    match unsigned::<u32>(s, "a whole number, 1 or more")? {
        0 => Err("must be 1 or more, not 0".into()),
        n => Ok(n),
    }
}

/// Like [`whole_u64`], for settings held as `usize`.
pub fn whole_usize(s: &str) -> Result<usize, String> {
    unsigned(s, "a whole number (0 or more)")
}

/// A separator between key and value: at least one character.
pub fn separator(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty (leave the option out for unkeyed records)".into());
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_and_malformed_numbers_say_why() {
        assert_eq!(partition("3"), Ok(3));
        assert_eq!(
            partition("-1").unwrap_err(),
            "must be a partition number (0 or more), not -1"
        );
        assert_eq!(
            partitions("-1").unwrap_err(),
            "must be 1 to 10000 partitions, not -1"
        );
        assert!(partitions("many").unwrap_err().contains("not \"many\""));
        assert!(partition("4294967296").unwrap_err().contains("too large"));
        assert_eq!(whole_u64("0"), Ok(0));
        assert!(separator("").is_err());
    }
}
