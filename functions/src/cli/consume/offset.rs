//! `--offset`: where reading starts in each partition, with kcat's and Kafka's names.

use pail_core::OffsetSpec;

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
}

pub fn parse(s: &str) -> Result<Start, String> {
    let bad =
        || format!("must be beginning, end, an offset N or -N (the last N records), not {s:?}");
    match s {
        "beginning" | "earliest" => Ok(Start::Beginning),
        "end" | "latest" => Ok(Start::End),
        _ => match s.strip_prefix('-') {
            Some(n) => n.parse().map(Start::Last).map_err(|_| bad()),
            None => s.parse().map(Start::At).map_err(|_| bad()),
        },
    }
}

impl Start {
    /// Where the first fetch starts, and for `Last` how many records back from the end (the
    /// end is learnt by a fetch first).
    pub fn spec(self) -> (OffsetSpec, Option<u64>) {
        match self {
            Start::Beginning => (OffsetSpec::Earliest, None),
            Start::End => (OffsetSpec::Latest, None),
            // Offsets beyond i64 cannot exist; the core reports them as out of range.
            Start::At(n) => (OffsetSpec::At(i64::try_from(n).unwrap_or(i64::MAX)), None),
            Start::Last(n) => (OffsetSpec::Latest, Some(n)),
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
        for bad in ["soon", "--1", "-x", "1.5", ""] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("must be beginning, end"), "{bad}: {err}");
        }
    }
}
