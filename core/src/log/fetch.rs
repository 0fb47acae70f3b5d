//! Reading records by offset.
//!
//! A fetch finds the segment holding its start offset (the tip, the client's index of segments
//! it has seen, or a bounded listing), reads only the rows it needs through the page index, and
//! follows the chain to the next segments (their keys follow from each manifest, so sequential
//! reading never lists) until `max_records` or `max_bytes` is reached or the log ends.
//!
//! A fetch asks the store for newer versions only when it has read everything it knows of:
//! one GET of the next version's key, which for a segment up to [`READ_PREFETCH_BYTES`] also
//! brings its rows. So a consumer tailing the log pays one request per new segment, and one
//! (a 404) per poll that finds nothing.

use object_store::path::Path;
use std::sync::Arc;

use super::{Part, Tip};
use crate::chain::{Chain, ReadFor, tip};
use crate::error::{Error, Result};
use crate::record::StoredRecord;
use crate::segment::{self, Footer};
use crate::storage::keys;

/// Bytes fetched from the end of a segment a reader discovers: its footer and, for segments
/// up to this size, all of its rows in the same request.
pub const READ_PREFETCH_BYTES: u64 = 1024 * 1024;
/// Most records one fetch may ask for.
pub const FETCH_RECORDS_MAX: u32 = 100_000;
/// Most bytes one fetch may ask for.
pub const FETCH_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Offsets covered by the first listing when a segment must be found without any cached
/// knowledge; each further listing covers 16 times more.
const LOCATE_WINDOW_FIRST: u64 = 1000;
/// Empty (control) versions skipped one by one before a listing is used instead.
const CONTROL_SKIP_MAX: usize = 16;

/// Every this many polls that find nothing past the cached tip, a reader checks that the tip
/// itself is still there (1 GET): a tip deleted by maintenance (a reader idle across a
/// retention or compaction pass) would otherwise make the end of the log look final forever.
const STALE_CHECK_EVERY: u32 = 16;

/// True when the reader's tip is due for a check and is gone from the store.
async fn stale_tip(part: Part<'_>, tip: &Tip) -> Result<bool> {
    if tip.is_genesis()
        || !part
            .caches
            .note_empty_poll(part.topic, part.partition, STALE_CHECK_EVERY)
    {
        return Ok(false);
    }
    Ok(!part.still_there(tip).await?)
}

/// Where a fetch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset: the oldest record still kept.
    Earliest,
    /// The high watermark: only records produced from now on.
    Latest,
    /// An absolute offset; negative values are rejected with the valid range.
    At(i64),
}

/// Bounds on one fetch. At least one record is returned when any is available, even if it is
/// larger than `max_bytes` (as Kafka does), so a large record can never stall a consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchLimits {
    pub max_records: u32,
    pub max_bytes: u64,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            max_records: 10_000,
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

impl FetchLimits {
    pub fn validate(&self) -> Result<()> {
        if self.max_records == 0 || self.max_records > FETCH_RECORDS_MAX {
            return Err(Error::InvalidArgument(format!(
                "max_records must be 1 to {FETCH_RECORDS_MAX}, not {}",
                self.max_records
            )));
        }
        if self.max_bytes == 0 || self.max_bytes > FETCH_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "max_bytes must be 1 to {FETCH_BYTES_MAX}, not {}",
                self.max_bytes
            )));
        }
        Ok(())
    }
}

/// What a fetch returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub records: Vec<StoredRecord>,
    /// The offset to fetch from next.
    pub next_offset: u64,
    /// The partition's next offset as far as this fetch knows. A fetch that returns no records
    /// has confirmed it with the store: nothing newer existed when it looked.
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

pub async fn fetch(part: Part<'_>, from: OffsetSpec, limits: FetchLimits) -> Result<Fetched> {
    limits.validate()?;
    let was_cached = part.cached().is_some();
    let mut tip = tip::known(&part).await?.tip;
    // Reading behind the tip from a cached tip: retention may have moved the log start since
    // this client last looked, and its footer cache may still hold the dropped rows. Judge
    // against the store's log start (1-2 GETs; reads at the tail, and cold clients, which
    // have just asked the store, pay nothing more). A record below a log start committed
    // before the fetch began is never returned.
    let behind = match from {
        OffsetSpec::Earliest => true,
        OffsetSpec::Latest => false,
        OffsetSpec::At(n) => n >= 0 && (n as u64) < tip.state.base_offset,
    };
    if behind && was_cached {
        tip = confirmed_latest(part).await?;
    }
    // An offset at or past the known end may be valid on the store: catch up before judging.
    let past_known_end = match from {
        OffsetSpec::Earliest => false,
        OffsetSpec::Latest => true,
        OffsetSpec::At(n) => n >= 0 && n as u64 > tip.state.next_offset,
    };
    if past_known_end {
        tip = tip::latest(&part).await?.tip;
        // A reader that followed the chain past its cached tip asks beyond it: before calling
        // that out of range, make sure the tip is not one maintenance deleted.
        if matches!(from, OffsetSpec::At(n) if n as u64 > tip.state.next_offset) {
            tip = confirmed_latest(part).await?;
        }
    }
    let start = resolve(
        part,
        from,
        tip.state.log_start_offset,
        tip.state.next_offset,
    )?;
    let mut out = Fetched {
        records: Vec::new(),
        next_offset: start,
        high_watermark: tip.state.next_offset,
        log_start_offset: tip.state.log_start_offset,
    };
    // Catching up above ended on a 404 for the next version: the end is already confirmed.
    match read_from(part, tip, past_known_end, &mut out, limits).await {
        Ok(()) => Ok(out),
        // Damage (or an outage) after good records: hand the good records over now; the next
        // fetch starts where the trouble is and reports it. One bad object never hides the
        // good data before it.
        Err(_) if !out.records.is_empty() => Ok(out),
        Err(e) => Err(e),
    }
}

/// The latest tip, confirmed to be still in the store (1 GET more): a cached tip that
/// maintenance deleted would pass for the latest, since its successor is missing as a tip's
/// is, and judging offsets against it calls live offsets out of range or records that
/// retention dropped missing.
async fn confirmed_latest(part: Part<'_>) -> Result<Tip> {
    let tip = tip::latest(&part).await?.tip;
    if tip.is_genesis() || part.still_there(&tip).await? {
        return Ok(tip);
    }
    part.forget();
    Ok(tip::latest(&part).await?.tip)
}

/// Reads records into `out` from `out.next_offset` until a limit or the end of the log.
async fn read_from(
    part: Part<'_>,
    mut tip: Tip,
    mut end_confirmed: bool,
    out: &mut Fetched,
    limits: FetchLimits,
) -> Result<()> {
    let mut bytes = 0u64;
    let mut current: Option<(Path, Arc<Footer>)> = None;
    loop {
        if out.next_offset >= tip.state.next_offset {
            // Everything known is read. Records in hand go back now; otherwise ask the store
            // once for a newer version (and, if small, its rows).
            if !out.records.is_empty() || end_confirmed {
                return Ok(());
            }
            match tip::successor(&part, &tip, ReadFor::Rows).await? {
                Some(newer) => {
                    part.caches.note_progress(part.topic, part.partition);
                    part.offer(&newer);
                    // The log went on while this reader stood at its end: before handing out
                    // records of versions it missed, judge its position against the latest
                    // log start, which retention may have moved past it meanwhile (the
                    // dropped objects can outlive the commit a while). 1 GET when `newer` is
                    // the head; a record below a log start committed before the fetch began
                    // is never returned.
                    let head = tip::latest(&part).await?.tip;
                    out.high_watermark = head.state.next_offset;
                    out.log_start_offset = head.state.log_start_offset;
                    if out.next_offset < head.state.log_start_offset {
                        return Err(out_of_range(part, out.next_offset, &head));
                    }
                    tip = newer;
                    end_confirmed = false;
                    continue;
                }
                None if stale_tip(part, &tip).await? => {
                    // Maintenance deleted the version this reader stood on, so its successor
                    // key no longer tells whether the log went on: find the tip again.
                    part.forget();
                    tip = tip::latest(&part).await?.tip;
                    out.high_watermark = tip.state.next_offset;
                    out.log_start_offset = tip.state.log_start_offset;
                    end_confirmed = true;
                    if out.next_offset < tip.state.log_start_offset {
                        return Err(out_of_range(part, out.next_offset, &tip));
                    }
                    continue;
                }
                None => return Ok(()),
            }
        }
        let (key, footer) = next_segment(part, &tip, current.take(), out.next_offset).await?;
        if read_segment(part, &key, &footer, out, &mut bytes, limits).await? {
            return Ok(());
        }
        current = Some((key, footer));
    }
}

fn out_of_range(part: Part<'_>, offset: u64, head: &Tip) -> Error {
    Error::OffsetOutOfRange {
        topic: part.topic.to_string(),
        partition: part.partition,
        offset: offset as i64,
        log_start: head.state.log_start_offset,
        next: head.state.next_offset,
    }
}

/// The segment holding `offset`: still the one just read (a read sized by the byte estimate can
/// stop inside it), the chain's next one (no listing needed), or wherever `locate` finds it.
async fn next_segment(
    part: Part<'_>,
    tip: &Tip,
    current: Option<(Path, Arc<Footer>)>,
    offset: u64,
) -> Result<(Path, Arc<Footer>)> {
    if let Some((key, footer)) = current {
        let m = &footer.manifest;
        if m.base_offset <= offset && offset < m.next_offset {
            return Ok((key, footer));
        }
        if offset == m.next_offset
            && let Some(next) = next_data_segment(part, &footer).await?
        {
            return Ok(next);
        }
    }
    locate(part, tip, offset).await
}

fn resolve(part: Part<'_>, from: OffsetSpec, log_start: u64, hw: u64) -> Result<u64> {
    let out_of_range = |offset: i64| Error::OffsetOutOfRange {
        topic: part.topic.to_string(),
        partition: part.partition,
        offset,
        log_start,
        next: hw,
    };
    match from {
        OffsetSpec::Earliest => Ok(log_start),
        OffsetSpec::Latest => Ok(hw),
        OffsetSpec::At(n) if n < 0 => Err(out_of_range(n)),
        OffsetSpec::At(n) if (n as u64) < log_start || (n as u64) > hw => Err(out_of_range(n)),
        OffsetSpec::At(n) => Ok(n as u64),
    }
}

/// Appends the wanted rows of one segment to `out`; true when a limit was reached.
async fn read_segment(
    part: Part<'_>,
    key: &Path,
    footer: &Footer,
    out: &mut Fetched,
    bytes: &mut u64,
    limits: FetchLimits,
) -> Result<bool> {
    let m = &footer.manifest;
    if !part.incarnation.is_empty() && !m.topic_id.is_empty() && m.topic_id != part.incarnation {
        // The topic this reader knows was deleted and created again: its records end here.
        return Err(Error::UnknownTopic {
            topic: part.topic.to_string(),
        });
    }
    let first_row = out.next_offset - m.base_offset;
    let records_left = u64::from(limits.max_records) - out.records.len() as u64;
    let rows = rows_wanted(
        footer,
        records_left,
        limits.max_bytes.saturating_sub(*bytes),
    );
    for record in segment::read_rows(part.store, key, footer, first_row, rows).await? {
        let size = record.size_bytes();
        if !out.records.is_empty() && *bytes + size > limits.max_bytes {
            return Ok(true);
        }
        *bytes += size;
        out.next_offset = record.offset + 1;
        out.records.push(record);
    }
    Ok(out.records.len() as u64 >= u64::from(limits.max_records) || *bytes >= limits.max_bytes)
}

/// Rows worth decoding: enough for the limits at this segment's average record size, plus one,
/// so a fetch with a small `max_bytes` does not decode a whole large segment.
fn rows_wanted(footer: &Footer, records_left: u64, bytes_left: u64) -> u64 {
    let rows = u64::from(footer.manifest.record_count).max(1);
    let payload: i64 = footer
        .metadata
        .row_groups()
        .iter()
        .flat_map(|rg| rg.columns().iter().skip(2))
        .map(|c| c.uncompressed_size())
        .sum();
    let per_row = (payload.max(0) as u64 / rows).max(1);
    records_left.min(bytes_left / per_row + 1)
}

/// The data segment holding `offset`, which must lie below the high watermark.
pub(crate) async fn locate(part: Part<'_>, tip: &Tip, offset: u64) -> Result<(Path, Arc<Footer>)> {
    let m = &tip.state;
    let in_tip = m.record_count > 0 && m.base_offset <= offset && offset < m.next_offset;
    if let (true, Some(key)) = (in_tip, part.key_of(m))
        && let Some(found) = footer_holding(part, key, offset).await?
    {
        return Ok(found);
    }
    if let Some(key) = part.caches.segment_for(part.topic, part.partition, offset)
        && let Some(found) = footer_holding(part, key, offset).await?
    {
        return Ok(found);
    }
    locate_by_listing(part, tip, offset).await
}

/// Lists segments starting in a window below `offset`, widening the window 16-fold until the
/// segment holding `offset` is in it. Bounded: the window reaches offset 0 within 16 rounds.
async fn locate_by_listing(part: Part<'_>, tip: &Tip, offset: u64) -> Result<(Path, Arc<Footer>)> {
    let mut window = LOCATE_WINDOW_FIRST;
    loop {
        let from = offset.saturating_sub(window);
        let after =
            (from > 0).then(|| keys::segment_list_start(part.topic, part.partition, from - 1));
        let listed = list_segments_until(part, after.as_ref(), offset).await?;
        if let Some(holder) = listed.iter().rev().find(|l| l.base_offset <= offset) {
            return match footer_holding(part, holder.key.clone(), offset).await? {
                Some(found) => Ok(found),
                None => Err(missing_after(part, &holder.key, offset).await),
            };
        }
        if from == 0 {
            // Judge against the latest log start: retention may have moved it meanwhile.
            let fresh = match confirmed_latest(part).await {
                Ok(fresh) => fresh,
                Err(_) => tip.clone(),
            };
            return Err(missing_before(part, &fresh, offset, listed.first()));
        }
        window = window.saturating_mul(16);
    }
}

/// The error for `offset`, which lies past the segment at `holder`: the segment after it,
/// whose key that segment's manifest names, is missing from the store.
async fn missing_after(part: Part<'_>, holder: &Path, offset: u64) -> Error {
    let missing = match part.footer(holder).await {
        Ok(Some(f)) => part.next_key(&f.manifest).to_string(),
        _ => format!("the segment after {holder}"),
    };
    Error::Corrupt {
        key: missing,
        reason: format!(
            "this segment, which holds offset {offset}, is missing from the store (deleted \
             outside pail?); the segments before and after it are intact"
        ),
    }
}

/// The error for `offset` when no segment at or below it exists: retention removed it (out of
/// range), or, if the log start says it should still be there, it was deleted outside pail.
fn missing_before(part: Part<'_>, tip: &Tip, offset: u64, first: Option<&Listed>) -> Error {
    let m = &tip.state;
    match first {
        Some(first) if offset >= m.log_start_offset => Error::Corrupt {
            key: keys::segment(part.topic, part.partition, m.log_start_offset, 1).to_string(),
            reason: format!(
                "offsets {}..{} are missing from the store (deleted outside pail?): the \
                 oldest segment left is {} (version {})",
                m.log_start_offset, first.base_offset, first.key, first.version
            ),
        },
        // Nothing at or below `offset` any more: retention removed it during the fetch.
        _ => Error::OffsetOutOfRange {
            topic: part.topic.to_string(),
            partition: part.partition,
            offset: offset as i64,
            log_start: m.log_start_offset,
            next: m.next_offset,
        },
    }
}

/// A segment named by a listing.
#[derive(Clone, Debug)]
struct Listed {
    base_offset: u64,
    version: u64,
    key: Path,
}

/// Segments of the partition after `after`, in chain order, ending after the first one whose
/// base offset exceeds `stop_after_base` (on stores that list in order).
async fn list_segments_until(
    part: Part<'_>,
    after: Option<&Path>,
    stop_after_base: u64,
) -> Result<Vec<Listed>> {
    let metas = part
        .store
        .list_after_while(&part.dir(), after, |meta| {
            keys::parse_segment_object(&meta.location)
                .is_none_or(|k| k.base_offset <= stop_after_base)
        })
        .await?;
    Ok(metas
        .into_iter()
        .filter_map(|meta| {
            // Chain versions and merged segments alike: either may hold the offset.
            let k = keys::parse_segment_object(&meta.location)?;
            let (base_offset, version) = (k.base_offset, k.last_version);
            Some(Listed {
                base_offset,
                version,
                key: meta.location,
            })
        })
        .collect())
}

/// The footer at `key` if that segment exists and holds `offset`.
async fn footer_holding(
    part: Part<'_>,
    key: Path,
    offset: u64,
) -> Result<Option<(Path, Arc<Footer>)>> {
    let Some(footer) = part.footer_with(&key, READ_PREFETCH_BYTES).await? else {
        return Ok(None);
    };
    let m = &footer.manifest;
    Ok((m.base_offset <= offset && offset < m.next_offset).then_some((key, footer)))
}

/// The first data segment after `footer`'s, found by following the chain (each step checked
/// like any successor); `None` if the chain ends or runs through more control versions than
/// are worth probing one by one.
async fn next_data_segment(part: Part<'_>, footer: &Footer) -> Result<Option<(Path, Arc<Footer>)>> {
    let mut current = Tip::from_footer(footer);
    for _ in 0..CONTROL_SKIP_MAX {
        let key = part.next_key(&current.state);
        let Some(next) = tip::successor(&part, &current, ReadFor::Rows).await? else {
            return Ok(None);
        };
        if next.state.record_count > 0 {
            // The read above cached the footer with its rows.
            if let Some(footer) = part.footer_with(&key, READ_PREFETCH_BYTES).await? {
                return Ok(Some((key, footer)));
            }
            return Ok(None);
        }
        current = next;
    }
    Ok(None)
}
