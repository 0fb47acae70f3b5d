//! What the group handlers share: group ids, error codes, member ids, base64, and the bounded
//! waits on a group's chain (JoinGroup and SyncGroup wait for the chain, never for listener
//! memory, so any listener serves any member of any group).
//!
//! A wait re-reads the group's tip with backoff (20 ms doubling to 250 ms; one GET of the next
//! version's key while nothing changes), renews the waiting member's lease when a third of its
//! session is gone, and commits a `Tick` when a member expired or the open round passed its
//! deadline, so a round always completes without anyone else writing. Every wait is bounded,
//! is counted in [`Broker::group_waits`] while it runs, and is dropped with its connection when
//! the client goes away (see `server`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use pail_core::group::classic::{self, Refusal};
use pail_core::group::edit::GroupError;
use pail_core::group::{GroupEdit, GroupName, GroupState};
use pail_core::{Error, ErrorKind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

use super::{Broker, codes};

/// First and longest pause between two reads of a group's tip while waiting.
pub const FIRST_PAUSE: Duration = Duration::from_millis(20);
pub const LONGEST_PAUSE: Duration = Duration::from_millis(250);
/// Longest a group request waits for one chain write (the commit loop's deadline).
pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);
/// Added to a member's rebalance timeout for how long its JoinGroup or SyncGroup waits: the
/// round's own deadline ends it before, unless the store is slow.
pub const WAIT_MARGIN: Duration = Duration::from_secs(5);

/// A Kafka group id as a pail group name, or INVALID_GROUP_ID.
pub fn group_name(id: &str) -> Result<GroupName, i16> {
    GroupName::new(id).map_err(|_| codes::INVALID_GROUP_ID)
}

/// The Kafka error code of a group operation's failure.
pub fn code(e: &Error) -> i16 {
    match e {
        Error::GroupRefused { refusal, .. } => refusal_code(*refusal),
        Error::UnknownMember { .. } => codes::UNKNOWN_MEMBER_ID,
        Error::InvalidArgument(_) | Error::GroupActive { .. } => codes::INVALID_REQUEST,
        Error::InvalidTopicName { .. } => codes::INVALID_GROUP_ID,
        // What a retry may fix: the client finds its coordinator again and retries.
        e if matches!(
            e.kind(),
            ErrorKind::Unavailable | ErrorKind::Conflict | ErrorKind::OutcomeUnknown
        ) =>
        {
            codes::COORDINATOR_NOT_AVAILABLE
        }
        e => codes::of(e),
    }
}

pub fn refusal_code(refusal: Refusal) -> i16 {
    match refusal {
        Refusal::UnknownMember => codes::UNKNOWN_MEMBER_ID,
        Refusal::IllegalGeneration => codes::ILLEGAL_GENERATION,
        Refusal::RebalanceInProgress => codes::REBALANCE_IN_PROGRESS,
        Refusal::InconsistentProtocol => codes::INCONSISTENT_GROUP_PROTOCOL,
        Refusal::FencedInstance => codes::FENCED_INSTANCE_ID,
        Refusal::InvalidSessionTimeout => codes::INVALID_SESSION_TIMEOUT,
    }
}

/// The Kafka error code of a check `pail_core::group::classic` made on a state.
pub fn check_code(e: &GroupError) -> i16 {
    match e {
        GroupError::Refused(r, _) => refusal_code(*r),
        GroupError::UnknownMember(_) => codes::UNKNOWN_MEMBER_ID,
        _ => codes::INVALID_REQUEST,
    }
}

/// A member id never used before: the listener's writer id, then 128 bits from the OS (as
/// `pail consume --group` members get theirs).
pub fn new_member_id(broker: &Broker) -> String {
    format!(
        "k-{}-{}",
        broker.pail.writer_id(),
        pail_core::entropy::attempt_id()
    )
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Stored base64 back to bytes (written by this code, so valid; empty if not).
pub fn unb64(s: &str) -> Bytes {
    STANDARD.decode(s).map(Bytes::from).unwrap_or_default()
}

pub fn now_ms(broker: &Broker) -> i64 {
    broker.pail.clock().now_ms()
}

/// Commits `edit` to `group` within [`WRITE_DEADLINE`].
pub async fn commit(
    broker: &Broker,
    group: &str,
    edit: &GroupEdit,
) -> pail_core::Result<Arc<GroupState>> {
    let deadline = Instant::now() + WRITE_DEADLINE;
    broker.pail.group_commit(group, edit, Some(deadline)).await
}

/// Renews `member`'s lease when due, and removes expired members or completes an overdue round
/// (one write does all): returns the newest state.
pub async fn keep_alive(
    broker: &Broker,
    group: &str,
    s: Arc<GroupState>,
    member: &str,
) -> pail_core::Result<Arc<GroupState>> {
    let now = now_ms(broker);
    let live = s
        .member(member)
        .is_some_and(|m| m.lease_expires_at_ms > now);
    let edit = if live && (classic::renew_due(&s, member, now) || classic::tick_due(&s, now)) {
        GroupEdit::KafkaRenew {
            member_id: member.to_string(),
        }
    } else if classic::tick_due(&s, now) {
        GroupEdit::Tick
    } else {
        return Ok(s);
    };
    match commit(broker, group, &edit).await {
        Ok(next) => Ok(next),
        // Removed meanwhile: the caller sees it in the state.
        Err(Error::GroupRefused { .. }) => broker.pail.group_state(group).await,
        Err(e) => Err(e),
    }
}

/// Counts a running wait in [`Broker::group_waits`] until dropped.
pub struct Waiting<'a>(&'a Broker);

impl<'a> Waiting<'a> {
    pub fn new(broker: &'a Broker) -> Self {
        broker.group_waits.fetch_add(1, Ordering::Relaxed);
        Waiting(broker)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.group_waits.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reads the group until `done` says what to answer, keeping `member` alive meanwhile; `None`
/// if `wait` passed first.
pub async fn wait_for<T>(
    broker: &Broker,
    group: &str,
    member: &str,
    wait: Duration,
    mut done: impl FnMut(&GroupState) -> Option<T>,
) -> pail_core::Result<Option<T>> {
    let _counted = Waiting::new(broker);
    let until = Instant::now() + wait;
    let mut pause = FIRST_PAUSE;
    loop {
        let s = broker.pail.group_state(group).await?;
        if let Some(answer) = done(&s) {
            return Ok(Some(answer));
        }
        let s = keep_alive(broker, group, s, member).await?;
        if let Some(answer) = done(&s) {
            return Ok(Some(answer));
        }
        if Instant::now() + pause > until {
            return Ok(None);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// How long a member's JoinGroup or SyncGroup may wait.
pub fn wait_bound(rebalance_timeout_ms: u64) -> Duration {
    Duration::from_millis(rebalance_timeout_ms.min(classic::REBALANCE_TIMEOUT_MAX_MS)) + WAIT_MARGIN
}

/// Reads the consumer protocol's embedded messages by hand: kafka-protocol's decoders size
/// their vectors from the untrusted array lengths before reading, so a hostile length aborts
/// the process (an allocation failure is not a panic that can be caught). Here every length is
/// checked against the bytes left first.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    /// An array's length, if that many elements of at least `min_bytes` each can follow.
    fn count(&mut self, min_bytes: usize) -> Option<usize> {
        let n = usize::try_from(self.i32()?).ok()?;
        (n.saturating_mul(min_bytes) <= self.0.len()).then_some(n)
    }
}

/// The topics of a ConsumerProtocolSubscription (any version: they come first).
pub fn subscription_topics(bytes: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader(bytes);
    r.i16()?;
    let n = r.count(2)?;
    (0..n).map(|_| r.string()).collect()
}

/// The partitions of a ConsumerProtocolAssignment, by topic (any version: they come first).
pub fn assignment_partitions(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    let mut r = Reader(bytes);
    r.i16()?;
    let n = r.count(6)?;
    (0..n)
        .map(|_| {
            let topic = r.string()?;
            let m = r.count(4)?;
            let partitions = (0..m).map(|_| r.i32()).collect::<Option<Vec<i32>>>()?;
            Some((topic, partitions))
        })
        .collect()
}
