//! `--offset`: where reading starts in each partition, with kcat's and Kafka's names.

use pail_core::{OffsetSpec, Pail};

/// A start position as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The oldest record kept (`beginning`, `earliest`).
    Beginning,
    /// Only records produced from now on (`end`, `latest`).
    End,
    /// An absolute offset, in every partition read.
    At(u64),
    /// The last N records of each partition (`-N`).
    Last(u64),
    /// The first record at or after a time, in ms since the Unix epoch (`@MS`, `@RFC3339`);
    /// turned into an offset per partition by [`Start::at_time`] before reading.
    Time(i64),
}

pub fn parse(s: &str) -> Result<Start, String> {
    let bad = || {
        format!(
            "must be beginning, end, an offset N, -N (the last N records) or @TIME (ms since \
             the epoch or RFC 3339), not {s:?}"
        )
    };
    if let Some(time) = s.strip_prefix('@') {
        return parse_time(time).map(Start::Time);
    }
    match s {
        "beginning" | "earliest" => Ok(Start::Beginning),
        "end" | "latest" => Ok(Start::End),
        _ => match s.strip_prefix('-') {
            Some(n) => n.parse().map(Start::Last).map_err(|_| bad()),
            None => s.parse().map(Start::At).map_err(|_| bad()),
        },
    }
}

/// A point in time: milliseconds since the Unix epoch, or an RFC 3339 date and time (UTC when
/// it names no offset), as Kafka's tools accept for `--to-datetime`.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let at = humantime::parse_rfc3339_weak(s).map_err(|e| {
        format!("{s:?} is neither ms since the epoch nor an RFC 3339 time such as 2026-12-07T10:00:00Z ({e})")
    })?;
    let since = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{s:?} is before 1970"))?;
    i64::try_from(since.as_millis()).map_err(|_| format!("{s:?} is too far in the future"))
}

impl Start {
    /// For `@TIME`, where reading starts in `partition`: the first record at or after the
    /// time, or the end when no record is that recent (as Kafka's consumers do).
    pub async fn at_time(
        self,
        pail: &Pail,
        topic: &str,
        partition: u32,
    ) -> pail_core::Result<Start> {
        let Start::Time(ts) = self else {
            return Ok(self);
        };
        Ok(match pail.offset_for_time(topic, partition, ts).await? {
            Some(found) => Start::At(found.offset),
            None => Start::End,
        })
    }

    /// Where the first fetch starts, and for `Last` how many records back from the end (the
    /// end is learnt by a fetch first).
    pub fn spec(self) -> (OffsetSpec, Option<u64>) {
        match self {
            Start::Beginning => (OffsetSpec::Earliest, None),
            Start::End => (OffsetSpec::Latest, None),
            // Offsets beyond i64 cannot exist; the core reports them as out of range.
            Start::At(n) => (OffsetSpec::At(i64::try_from(n).unwrap_or(i64::MAX)), None),
            Start::Last(n) => (OffsetSpec::Latest, Some(n)),
            // Resolved by `at_time` before reading; unresolved, nothing is older than the end.
            Start::Time(_) => (OffsetSpec::Latest, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_offsets_and_relative_offsets() {
        assert_eq!(parse("beginning"), Ok(Start::Beginning));
        assert_eq!(parse("earliest"), Ok(Start::Beginning));
        assert_eq!(parse("end"), Ok(Start::End));
        assert_eq!(parse("latest"), Ok(Start::End));
        assert_eq!(parse("42"), Ok(Start::At(42)));
        assert_eq!(parse("-10"), Ok(Start::Last(10)));
        assert_eq!(parse("@1700000000000"), Ok(Start::Time(1_700_000_000_000)));
        assert_eq!(
            parse("@2023-11-14T22:13:20Z"),
            Ok(Start::Time(1_700_000_000_000))
        );
        assert_eq!(
            parse("@2023-11-14T22:13:20.5Z"),
            Ok(Start::Time(1_700_000_000_500))
        );
        for bad in ["@", "@yesterday", "@2023-13-01T00:00:00Z"] {
            assert!(parse(bad).unwrap_err().contains("RFC 3339"), "{bad}");
        }
        for bad in ["soon", "--1", "-x", "1.5", ""] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("must be beginning, end"), "{bad}: {err}");
        }
    }
}
