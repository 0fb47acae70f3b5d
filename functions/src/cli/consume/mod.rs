//! `pail consume`: print records from one or every partition of a topic.
//!
//! Partitions are read round-robin, one fetch of up to [`FETCH_RECORDS`] records each per turn,
//! so without `--partition` the output comes partition by partition in blocks, not interleaved
//! by time. Without `--follow` a partition is done once a fetch reaches the high watermark it
//! reported, and the command exits when every partition is done (or `--max` records were
//! printed).
//!
//! One partition's trouble stays its own: a partition that cannot be read (a damaged segment,
//! an offset it does not have) is reported in one line on stderr and the others go on; the exit
//! is 1 at the end. A store that does not answer (a retriable error) ends the command, except
//! with `--follow`, which backs off and tries again, saying so once per episode.

mod group;
mod offset;
pub mod template;

use clap::Args;
use pail_core::{Error, FetchLimits, Fetched, OffsetSpec, Pail, StoredRecord};
use std::io::Write;
use tokio::time::{Duration, Instant};

use super::{Format, FormatArg, Reported, UsageError, values};
use crate::render::JsonRecord;
use offset::Start;
use template::{Context, Template};

/// Records per fetch; small enough to interleave partitions, large enough to amortise GETs.
const FETCH_RECORDS: u32 = 5_000;
/// Pauses between polls of a caught-up log with `--follow`.
const FOLLOW_POLL_MIN: Duration = Duration::from_millis(100);
const FOLLOW_POLL_MAX: Duration = Duration::from_secs(1);
/// Pauses before a partition is read again after a retriable error with `--follow`.
const TROUBLE_BACKOFF_MIN: Duration = Duration::from_millis(500);
const TROUBLE_BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  pail consume orders                           every record, partition by partition
  pail consume orders -p 0 -o 100 -c 10         ten records of partition 0 from offset 100
  pail consume orders -o -10 -K ': '            the last ten records of each partition, keyed
  pail consume orders -o @2026-12-07T09:00:00Z  from the first record stamped 09:00 UTC or later
  pail consume orders -f '%p/%o %T %k=%s\\n'     partition/offset, timestamp, key=value
  pail consume orders --follow --format json    every record as JSON, then new ones as they come
  pail consume orders --group billing           share the partitions with the group's other members
  pail consume orders --group billing --instance-id host-1 -c 100")]
pub struct ConsumeArgs {
    pub topic: String,
    /// Read only this partition (default: every partition, one block after another).
    #[arg(short = 'p', long, value_parser = values::partition)]
    pub partition: Option<u32>,
    /// Where to start in each partition read: beginning (or earliest), end (or latest), an
    /// offset N, -N for the last N records of each partition, or @TIME (ms since the epoch or
    /// RFC 3339) for each partition's first record stamped at or after TIME.
    ///
    /// An offset applies to every partition read (as in kcat). Without --follow, a partition
    /// that ends before N is reported as out of range after the others print (exit 1); with
    /// --follow it is printed from N on once its records reach N.
    #[arg(short = 'o', long, default_value = "beginning", value_parser = offset::parse)]
    pub offset: Start,
    /// Stop after printing this many records in all.
    #[arg(short = 'c', long, visible_alias = "count", value_name = "N", value_parser = values::whole_u64)]
    pub max: Option<u64>,
    /// Keep waiting for new records instead of exiting at the end of the log.
    #[arg(long)]
    pub follow: bool,
    /// Print each record's key, then SEP, then its value (kcat -K).
    #[arg(short = 'K', long, value_name = "SEP", value_parser = values::separator)]
    pub key_separator: Option<String>,
    /// Print each record by this pattern (kcat -f), e.g. '%k=%s\n'.
    ///
    /// Tokens: %s value, %k key, %t topic, %p partition, %o offset, %T timestamp (ms since the
    /// Unix epoch), %h headers (name=value joined by ','), %S value size, %K key size, %% a
    /// percent sign. Escapes: \n \r \t \\. Bytes are printed raw; no newline is added.
    #[arg(short = 'f', long, value_name = "PATTERN", value_parser = Template::parse,
          conflicts_with = "key_separator")]
    pub format_string: Option<Template>,
    #[command(flatten)]
    pub format: FormatArg,
    #[command(flatten)]
    pub group: group::GroupArgs,
}

impl ConsumeArgs {
    /// Refuses option combinations clap cannot express, before the store is opened.
    pub fn check(&self) -> Result<(), UsageError> {
        group::check(self)?;
        Printer::new(self).map(|_| ())
    }
}

/// How each record is written to stdout.
enum Printer {
    Json,
    Text(Template),
}

impl Printer {
    fn new(args: &ConsumeArgs) -> Result<Printer, UsageError> {
        let text = match (&args.format_string, &args.key_separator) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(sep)) => Some(Template::key_value(sep)),
            (None, None) => None,
        };
        match (args.format.format, text) {
            (Format::Json, Some(_)) => Err(UsageError(
                "--format json prints keys and every field already: leave out -K and -f".into(),
            )),
            (Format::Json, None) => Ok(Printer::Json),
            (Format::Text, text) => Ok(Printer::Text(text.unwrap_or_else(Template::values))),
        }
    }

    fn print(
        &self,
        out: &mut impl Write,
        at: &Context<'_>,
        r: &StoredRecord,
    ) -> anyhow::Result<()> {
        match self {
            Printer::Text(t) => t.write(out, at, r)?,
            Printer::Json => {
                serde_json::to_writer(&mut *out, &JsonRecord::new(at.topic, at.partition, r))?;
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    }
}

/// A partition being read.
struct Cursor {
    partition: u32,
    from: OffsetSpec,
    /// Set until `-o -N` is turned into an offset (which needs the partition's end).
    last: Option<u64>,
    done: bool,
    failed: bool,
    /// With `--follow`, after a retriable error: when to try again, and the pause after that.
    retry: Option<(Instant, Duration)>,
}

impl Cursor {
    fn new(partition: u32, start: Start) -> Cursor {
        let (from, last) = start.spec();
        Cursor {
            partition,
            from,
            last,
            done: false,
            failed: false,
            retry: None,
        }
    }

    fn active(&self) -> bool {
        !self.done && !self.failed
    }

    fn due(&self, now: Instant) -> bool {
        self.active() && self.retry.is_none_or(|(at, _)| at <= now)
    }
}

/// The state of one `pail consume` run.
struct Reader<'a> {
    pail: &'a Pail,
    args: &'a ConsumeArgs,
    printer: Printer,
    /// Records still to print before `--max` is reached.
    left: u64,
    /// Partitions in a retry episode; a warning is printed when this leaves 0.
    troubled: usize,
    failed: usize,
}

pub async fn run(pail: &Pail, args: ConsumeArgs) -> anyhow::Result<()> {
    if let Some(name) = &args.group.group {
        return group::run(pail, &args, name).await;
    }
    let printer = Printer::new(&args)?;
    let meta = pail.topic(&args.topic).await?;
    let partitions: Vec<u32> = match args.partition {
        Some(p) => {
            meta.check_partition(p)?;
            vec![p]
        }
        None => (0..meta.config.partitions).collect(),
    };
    let mut cursors = Vec::with_capacity(partitions.len());
    for p in partitions {
        let start = args.offset.at_time(pail, &args.topic, p).await?;
        cursors.push(Cursor::new(p, start));
    }
    let mut reader = Reader {
        pail,
        args: &args,
        printer,
        left: args.max.unwrap_or(u64::MAX),
        troubled: 0,
        failed: 0,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut idle = FOLLOW_POLL_MIN;
    while reader.left > 0 && cursors.iter().any(Cursor::active) {
        let printed = reader.round(&mut cursors, &mut out).await?;
        out.flush()?;
        if args.follow && printed == 0 {
            tokio::time::sleep(pause(&cursors, idle)).await;
            idle = (idle * 2).min(FOLLOW_POLL_MAX);
        } else {
            idle = FOLLOW_POLL_MIN;
        }
    }
    out.flush()?;
    match reader.failed {
        0 => Ok(()),
        n => Err(Reported(n).into()),
    }
}

/// How long a `--follow` round that printed nothing waits: the poll pause, or less if a
/// partition is due for a retry sooner.
fn pause(cursors: &[Cursor], idle: Duration) -> Duration {
    let now = Instant::now();
    cursors
        .iter()
        .filter(|c| c.active())
        .filter_map(|c| c.retry.map(|(at, _)| at.saturating_duration_since(now)))
        .fold(idle, Duration::min)
}

impl Reader<'_> {
    /// One fetch from every partition that is due; returns the records printed.
    async fn round(&mut self, cursors: &mut [Cursor], out: &mut impl Write) -> anyhow::Result<u64> {
        let mut printed = 0;
        let now = Instant::now();
        for cursor in cursors.iter_mut().filter(|c| c.due(now)) {
            match self.fetch(cursor).await {
                Ok(got) => {
                    self.healed(cursor);
                    printed += self.print(cursor, &got, out)?;
                }
                Err(e) => self.failed_fetch(cursor, e)?,
            }
            if self.left == 0 {
                break;
            }
        }
        Ok(printed)
    }

    async fn fetch(&self, cursor: &mut Cursor) -> pail_core::Result<Fetched> {
        let topic = &self.args.topic;
        if let Some(n) = cursor.last {
            let one = FetchLimits {
                max_records: 1,
                ..FetchLimits::default()
            };
            let end = self
                .pail
                .fetch(topic, cursor.partition, OffsetSpec::Latest, one)
                .await?;
            let start = end
                .high_watermark
                .saturating_sub(n)
                .max(end.log_start_offset);
            cursor.from = OffsetSpec::At(start as i64);
            cursor.last = None;
        }
        let limits = FetchLimits {
            max_records: FETCH_RECORDS.min(self.left.min(u64::from(u32::MAX)) as u32),
            ..FetchLimits::default()
        };
        self.pail
            .fetch(topic, cursor.partition, cursor.from, limits)
            .await
    }

    fn print(
        &mut self,
        cursor: &mut Cursor,
        got: &Fetched,
        out: &mut impl Write,
    ) -> anyhow::Result<u64> {
        let at = Context {
            topic: &self.args.topic,
            partition: cursor.partition,
        };
        for r in &got.records {
            self.printer.print(out, &at, r)?;
        }
        let n = got.records.len() as u64;
        self.left -= n;
        cursor.from = OffsetSpec::At(got.next_offset as i64);
        // Only an empty fetch has checked the store for newer records: done after one.
        cursor.done =
            !self.args.follow && got.records.is_empty() && got.next_offset >= got.high_watermark;
        Ok(n)
    }

    /// Decides what a failed fetch means: wait (a `--follow` offset not written yet), retry
    /// later (`--follow` and a retriable error), end the command (a retriable error without
    /// `--follow`: the store is in trouble, not the partition), or give up on this partition.
    fn failed_fetch(&mut self, cursor: &mut Cursor, e: Error) -> anyhow::Result<()> {
        if self.args.follow && not_written_yet(&e) {
            // The store answered: whatever trouble this partition had is over.
            self.healed(cursor);
            return Ok(());
        }
        if e.kind().is_retriable() {
            if !self.args.follow {
                return Err(e.into());
            }
            self.back_off(cursor, &e);
            return Ok(());
        }
        if cursor.retry.take().is_some() {
            self.troubled -= 1;
        }
        cursor.failed = true;
        self.failed += 1;
        eprintln!(
            "pail: error: {}",
            partition_error(&self.args.topic, cursor.partition, &e)
        );
        Ok(())
    }

    /// Schedules the next try of a partition; the first of an episode says so on stderr.
    fn back_off(&mut self, cursor: &mut Cursor, e: &Error) {
        let pause = match cursor.retry {
            Some((_, pause)) => (pause * 2).min(TROUBLE_BACKOFF_MAX),
            None => {
                if self.troubled == 0 {
                    eprintln!(
                        "pail: warning: {}; retrying with backoff (up to {} s) until it answers",
                        partition_error(&self.args.topic, cursor.partition, e),
                        TROUBLE_BACKOFF_MAX.as_secs()
                    );
                }
                self.troubled += 1;
                TROUBLE_BACKOFF_MIN
            }
        };
        cursor.retry = Some((Instant::now() + pause, pause));
    }

    fn healed(&mut self, cursor: &mut Cursor) {
        if cursor.retry.take().is_some() {
            self.troubled -= 1;
        }
    }
}

/// An absolute offset past the partition's end: with `--follow`, a record still to come.
fn not_written_yet(e: &Error) -> bool {
    matches!(e, Error::OffsetOutOfRange { offset, next, .. } if *offset > *next as i64)
}

/// The error's line, naming the partition unless the error already does.
fn partition_error(topic: &str, partition: u32, e: &Error) -> String {
    let text = super::describe(e);
    let named = text.contains(&format!("{topic}/{partition}:"))
        || text.contains(&format!("topics/{topic}/partition={partition}/"));
    if named {
        text
    } else {
        format!("{topic}/{partition}: {text}")
    }
}
