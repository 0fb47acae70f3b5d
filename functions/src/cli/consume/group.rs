//! `pail consume TOPIC --group G`: one member of a consumer group. It reads the partitions the
//! group gives it, follows the log, and commits as it goes (auto-commit: the positions reached
//! by what it printed, once printed and flushed, so a crash redelivers and never skips).
//!
//! On SIGINT or SIGTERM it commits and leaves, so its partitions move at once; a static member
//! (`--instance-id`) commits and stays, as Kafka's do, so that a restart within its session
//! timeout gets its partitions back with no rebalance. With `-c N` it stops after N records,
//! commits exactly those, and leaves (or stays, if static).

use clap::Args;
use pail_core::consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
use pail_core::group::TopicPartition;
use pail_core::{Error, Pail};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::time::Duration;

use super::offset::Start;
use super::template::Context;
use super::{Printer, TROUBLE_BACKOFF_MAX, TROUBLE_BACKOFF_MIN};
use crate::cli::{UsageError, values};

/// How long one poll waits for records: also how soon a signal is noticed.
const POLL: Duration = Duration::from_millis(250);
/// Longest pause between reads of the group's chain, whatever the session timeout.
const HEARTBEAT_MAX_MS: u64 = 1_000;

#[derive(Debug, Args)]
pub struct GroupArgs {
    /// Consume as a member of this consumer group: the group's members share the topic's
    /// partitions, and the group keeps their committed offsets. Implies --follow; -o beginning
    /// or end says where a partition with no committed offset starts (default: beginning).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Static membership (Kafka's group.instance.id): restarted within its session timeout
    /// under the same id, this member gets its partitions back with no rebalance. It does not
    /// leave the group when stopped.
    #[arg(long, value_name = "ID", requires = "group")]
    pub instance_id: Option<String>,
    /// How long the group waits for this member to renew its lease before moving its
    /// partitions to the others (1000 to 3600000; renewals come every third of it).
    #[arg(long, value_name = "MS", requires = "group", value_parser = values::whole_u64)]
    pub session_timeout_ms: Option<u64>,
}

/// Refuses what a group member cannot do.
pub fn check(args: &super::ConsumeArgs) -> Result<(), UsageError> {
    if args.group.group.is_none() {
        return Ok(());
    }
    if args.partition.is_some() {
        return Err(UsageError(
            "--group reads the partitions the group assigns: leave out --partition".into(),
        ));
    }
    match args.offset {
        Start::Beginning | Start::End => Ok(()),
        Start::At(_) | Start::Last(_) | Start::Time(_) => Err(UsageError(
            "with --group, -o is beginning or end (where a partition with no committed offset \
             starts); move a group's offsets with pail group reset-offsets"
                .into(),
        )),
    }
}

fn config(args: &super::ConsumeArgs, group: &str) -> ConsumerConfig {
    let mut config = ConsumerConfig {
        instance_id: args.group.instance_id.clone(),
        auto_offset_reset: match args.offset {
            Start::End => OffsetReset::Latest,
            _ => OffsetReset::Earliest,
        },
        client: format!("pail consume (pid {})", std::process::id()),
        ..ConsumerConfig::new(group, &[args.topic.as_str()])
    };
    if let Some(ms) = args.group.session_timeout_ms {
        config.session_timeout_ms = ms;
        config.renew_interval_ms = (ms / 3).max(1);
        config.heartbeat_interval_ms = (ms / 4).clamp(1, HEARTBEAT_MAX_MS);
    }
    config
}

pub async fn run(pail: &Pail, args: &super::ConsumeArgs, group: &str) -> anyhow::Result<()> {
    let printer = Printer::new(args)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    tokio::spawn(async move {
        crate::http::host::shutdown_signal().await;
        flag.store(true, Ordering::SeqCst);
    });
    let Some(consumer) = join(pail, config(args, group), &stop).await? else {
        return Ok(());
    };
    let mut member = Member {
        consumer,
        printer,
        left: args.max.unwrap_or(u64::MAX),
        out: std::io::BufWriter::new(std::io::stdout().lock()),
        backoff: None,
    };
    let ended = member.follow(&stop).await;
    let Member { consumer, out, .. } = member;
    drop(out);
    let said_goodbye = match args.group.instance_id {
        // A static member keeps its place for its session timeout.
        Some(_) => {
            let mut consumer = consumer;
            consumer.commit().await
        }
        None => consumer.leave().await,
    };
    // A broken pipe is a normal way to stop (`| head`); what was not written is not committed.
    match ended {
        Err(e) if !crate::cli::is_broken_pipe(&e) => Err(e),
        _ => said_goodbye.map_err(Into::into),
    }
}

/// Joins, retrying what may heal (a busy store, a contended chain) with backoff, saying so
/// once; `None` if a signal came first.
async fn join(
    pail: &Pail,
    config: ConsumerConfig,
    stop: &AtomicBool,
) -> anyhow::Result<Option<Consumer>> {
    let mut pause = None;
    while !stop.load(Ordering::SeqCst) {
        match Consumer::join(pail.clone(), config.clone()).await {
            Ok(c) => return Ok(Some(c)),
            Err(e) if e.kind().is_retriable() => {
                let next = next_pause(pause, &e);
                pause = Some(next);
                tokio::time::sleep(next).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// The pause after `last` (none: the first of an episode, which is said on stderr).
fn next_pause(last: Option<Duration>, e: &Error) -> Duration {
    match last {
        Some(p) => (p * 2).min(TROUBLE_BACKOFF_MAX),
        None => {
            eprintln!(
                "pail: warning: {}; retrying with backoff (up to {} s) until it answers",
                crate::cli::describe(e),
                TROUBLE_BACKOFF_MAX.as_secs()
            );
            TROUBLE_BACKOFF_MIN
        }
    }
}

/// The state of one group member's run.
struct Member<W: Write> {
    consumer: Consumer,
    printer: Printer,
    /// Records still to print before `--max` is reached.
    left: u64,
    out: W,
    /// The pause after the last retriable error, while in an episode of them.
    backoff: Option<Duration>,
}

impl<W: Write> Member<W> {
    /// Polls and prints until a signal, `--max`, or an error that is not retriable.
    async fn follow(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        while self.left > 0 && !stop.load(Ordering::SeqCst) {
            match self.consumer.poll(POLL).await {
                Ok(polled) => {
                    self.backoff = None;
                    self.print(polled.records)?;
                }
                Err(e) if e.kind().is_retriable() => self.back_off(&e).await,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Prints up to `left` records and flushes. What was not printed (over `--max`, or lost
    /// to a failed write) is sought back, so the commit at leave covers exactly what was
    /// printed.
    fn print(&mut self, records: Vec<ConsumerRecord>) -> anyhow::Result<()> {
        let take = records
            .len()
            .min(self.left.try_into().unwrap_or(usize::MAX));
        let written = self.write(&records[..take]);
        let printed = if written.is_ok() { take } else { 0 };
        self.left -= printed as u64;
        self.unread(&records[printed..])?;
        written
    }

    fn write(&mut self, records: &[ConsumerRecord]) -> anyhow::Result<()> {
        for r in records {
            let at = Context {
                topic: &r.topic,
                partition: r.partition,
            };
            self.printer.print(&mut self.out, &at, &r.record)?;
        }
        self.out.flush()?;
        Ok(())
    }

    /// Moves each partition's position back to the first of `records` it returned.
    fn unread(&mut self, records: &[ConsumerRecord]) -> pail_core::Result<()> {
        let mut first: BTreeMap<TopicPartition, u64> = BTreeMap::new();
        for r in records {
            let tp = TopicPartition::new(r.topic.clone(), r.partition);
            let at = first.entry(tp).or_insert(r.record.offset);
            *at = (*at).min(r.record.offset);
        }
        for (tp, offset) in first {
            self.consumer.seek(&tp, offset)?;
        }
        Ok(())
    }

    /// Waits before the next poll after a retriable error; the first of an episode says so.
    async fn back_off(&mut self, e: &Error) {
        let pause = next_pause(self.backoff, e);
        self.backoff = Some(pause);
        tokio::time::sleep(pause).await;
    }
}
