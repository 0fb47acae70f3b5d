//! Lookup by time, Kafka's ListOffsets by timestamp: the first offset whose record's timestamp
//! is at or after `T`.
//!
//! The answer is defined as Kafka defines it: with CreateTime, timestamps need not grow with
//! offsets, so it is the *smallest offset* (at or after the log start) whose timestamp is at
//! least `T`, not "the offset at which time passed `T`"; a later record with an older timestamp
//! does not change it. Every manifest carries the largest timestamp of the partition up to its
//! version (`running_max_timestamp_ms`), which never decreases along the chain, so the first
//! segment whose running maximum reaches `T` is found by a binary search over offsets (one
//! segment located per step: O(log segments) footer reads, each cached like any fetch's), and
//! no record before that segment can qualify. The answer is then read from that segment; only
//! when retention dropped the record that raised the running maximum does the scan go on to
//! the segments after it.

use super::Part;
use super::fetch::{self, FetchLimits, OffsetSpec};
use crate::chain::tip;
use crate::error::Result;
use crate::manifest::PartitionManifest;

/// Records read per step of the final scan.
const SCAN_RECORDS: u32 = 10_000;
const SCAN_BYTES: u64 = 16 * 1024 * 1024;

/// The record a lookup by time found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeMatch {
    pub offset: u64,
    pub timestamp_ms: i64,
}

/// The first record at or after the log start whose timestamp is `>= ts`; `None` when no
/// record kept has one (Kafka answers offset -1 then; consumers start at the end).
pub async fn offset_for_time(part: Part<'_>, ts: i64) -> Result<Option<TimeMatch>> {
    let tip = tip::latest(&part).await?.tip;
    let m = &tip.state;
    if m.next_offset <= m.log_start_offset || reach(m) < ts {
        return Ok(None);
    }
    let (mut lo, mut hi) = (m.log_start_offset, m.next_offset);
    let mut first = m.log_start_offset;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let (_, footer) = fetch::locate(part, &tip, mid).await?;
        let f = &footer.manifest;
        if reach(f) >= ts {
            first = f.base_offset;
            hi = f.base_offset;
        } else {
            lo = f.next_offset;
            first = lo;
        }
    }
    scan_from(part, first, ts).await
}

/// The largest timestamp up to and including this version's segment. Segments written before
/// the running maximum existed carry 0 there; their own maximum is the best they know.
fn reach(m: &PartitionManifest) -> i64 {
    m.running_max_timestamp_ms.max(m.max_timestamp_ms)
}

/// Reads forward from `from` to the first record with a timestamp `>= ts`.
async fn scan_from(part: Part<'_>, mut from: u64, ts: i64) -> Result<Option<TimeMatch>> {
    let limits = FetchLimits {
        max_records: SCAN_RECORDS,
        max_bytes: SCAN_BYTES,
    };
    loop {
        let at = OffsetSpec::At(i64::try_from(from).unwrap_or(i64::MAX));
        let got = fetch::fetch(part, at, limits).await?;
        if let Some(r) = got.records.iter().find(|r| r.timestamp_ms >= ts) {
            return Ok(Some(TimeMatch {
                offset: r.offset,
                timestamp_ms: r.timestamp_ms,
            }));
        }
        if got.records.is_empty() {
            return Ok(None);
        }
        from = got.next_offset;
    }
}
