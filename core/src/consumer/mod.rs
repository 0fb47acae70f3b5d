//! The group consumer: subscribe, poll records from the partitions the group gives this
//! member, commit, seek, and hand partitions over when the group rebalances.
//!
//! Delivery is at-least-once. Auto-commit (on by default) commits, at the start of each poll,
//! the positions reached by the records returned by the *previous* polls, so a crash after
//! processing but before the next poll redelivers to the next owner, and nothing returned is
//! ever skipped. A partition the group moves away is first reported in [`Polled::revoking`]
//! and fetched no more; the member commits (or auto-commits) and releases it at its next poll
//! or `commit`, and only then may the new owner fetch it.
//!
//! Requests: one chain read (a GET, 404 when nothing changed) every `heartbeat_interval_ms`,
//! one chain write every `auto_commit_interval_ms` while positions move (it also renews the
//! lease), otherwise every `renew_interval_ms`; fetches as `Pail::fetch`.
//!
//! Must never: fetch a partition the group has not given this member, or keep fetching after
//! its own lease ran out by its own clock (the group may have given its partitions away).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::client::Pail;
use crate::error::{Error, ErrorKind, Result};
use crate::group::edit::{Join, managed};
use crate::group::{Assignor, GroupEdit, GroupState, Heartbeat, OffsetCommit, TopicPartition};
use crate::log::fetch::{FetchLimits, OffsetSpec};
use crate::record::StoredRecord;

/// Where a partition with no committed offset starts (Kafka's `auto.offset.reset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    #[default]
    Latest,
}

/// Consumer settings; every field has a documented default ([`ConsumerConfig::new`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub group: String,
    pub topics: Vec<String>,
    /// Static membership (Kafka's `group.instance.id`).
    pub instance_id: Option<String>,
    /// Past this without a renewal, the member may be removed and its partitions moved.
    pub session_timeout_ms: u64,
    /// How often the member reads the group's chain for changes (one GET).
    pub heartbeat_interval_ms: u64,
    /// How often the member renews its lease when it has nothing to commit (one write);
    /// defaults to a third of the session timeout.
    pub renew_interval_ms: u64,
    pub auto_commit: bool,
    pub auto_commit_interval_ms: u64,
    pub auto_offset_reset: OffsetReset,
    pub assignor: Assignor,
    /// Most records one poll returns.
    pub max_poll_records: u32,
    /// Names the client in `describe` (host, process).
    pub client: String,
}

impl ConsumerConfig {
    /// Kafka's defaults where Kafka has one: 45 s sessions, 5 s auto-commit, `latest`.
    pub fn new(group: &str, topics: &[&str]) -> Self {
        ConsumerConfig {
            group: group.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            instance_id: None,
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 1_000,
            renew_interval_ms: 15_000,
            auto_commit: true,
            auto_commit_interval_ms: 5_000,
            auto_offset_reset: OffsetReset::Latest,
            assignor: Assignor::Sticky,
            max_poll_records: 500,
            client: String::new(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.topics.is_empty() {
            return bad("a consumer subscribes to at least one topic".into());
        }
        // Before the intervals derived from it, so that a bad timeout is named as such (and
        // is refused here, not by a join whose deadline it made impossibly short).
        let (min, max) = (
            crate::group::edit::SESSION_TIMEOUT_MIN_MS,
            crate::group::edit::SESSION_TIMEOUT_MAX_MS,
        );
        if !(min..=max).contains(&self.session_timeout_ms) {
            return bad(format!(
                "the session timeout is {min} to {max} ms, not {}",
                self.session_timeout_ms
            ));
        }
        if self.renew_interval_ms == 0 || self.renew_interval_ms >= self.session_timeout_ms {
            return bad("renew_interval_ms must be at least 1 and below session_timeout_ms".into());
        }
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms > self.renew_interval_ms {
            return bad("heartbeat_interval_ms must be 1 to renew_interval_ms".into());
        }
        if self.auto_commit_interval_ms == 0 {
            return bad("auto_commit_interval_ms must be at least 1".into());
        }
        if self.max_poll_records == 0
            || self.max_poll_records > crate::log::fetch::FETCH_RECORDS_MAX
        {
            return bad(format!(
                "max_poll_records must be 1 to {}",
                crate::log::fetch::FETCH_RECORDS_MAX
            ));
        }
        Ok(())
    }
}

/// A record and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: u32,
    pub record: StoredRecord,
}

/// A member id never used before: the client's writer id (which orders members, and so the
/// assignment, the same way in every replay of a simulation that names its writers), then 128
/// bits from the operating system (so no id ever comes back, even from a forked process).
fn new_member_id(pail: &Pail) -> String {
    format!("m-{}-{}", pail.writer_id(), crate::entropy::attempt_id())
}

/// What one poll returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Polled {
    pub records: Vec<ConsumerRecord>,
    /// Partitions this member received since the last poll.
    pub assigned: Vec<TopicPartition>,
    /// Partitions this member must give up: no longer fetched; commit what was processed of
    /// them before the next poll, which releases them.
    pub revoking: Vec<TopicPartition>,
    /// Partitions taken away without a release (this member's session ran out): their
    /// uncommitted records will be delivered again to their next owner.
    pub lost: Vec<TopicPartition>,
}

impl Polled {
    fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.assigned.is_empty()
            && self.revoking.is_empty()
            && self.lost.is_empty()
    }
}

/// A member of a consumer group. Not shared between tasks: one owner polls it, as with
/// Kafka's consumer.
pub struct Consumer {
    pail: Pail,
    config: ConsumerConfig,
    member_id: String,
    state: Arc<GroupState>,
    /// Next offset to fetch, per partition this member may fetch.
    positions: BTreeMap<TopicPartition, u64>,
    /// The last offset committed per partition, so unchanged positions are not re-sent.
    committed: BTreeMap<TopicPartition, u64>,
    /// Revoked partitions to release at the next write.
    to_release: BTreeSet<TopicPartition>,
    last_write: Instant,
    last_read: Instant,
    cursor: usize,
    /// Partitions found by the last reconcile, for the next poll's report.
    pending: Polled,
}

impl Consumer {
    /// Joins `config.group` as a new member.
    pub async fn join(pail: Pail, config: ConsumerConfig) -> Result<Consumer> {
        config.validate()?;
        let member_id = new_member_id(&pail);
        let mut consumer = Consumer {
            pail,
            config,
            member_id,
            state: Arc::new(GroupState::genesis(&crate::group::GroupName::new("g")?)),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            to_release: BTreeSet::new(),
            last_write: Instant::now(),
            last_read: Instant::now(),
            cursor: 0,
            pending: Polled::default(),
        };
        consumer.join_group().await?;
        Ok(consumer)
    }

    async fn join_group(&mut self) -> Result<()> {
        let mut partitions = BTreeMap::new();
        for topic in &self.config.topics {
            let meta = self.pail.topic(topic).await?;
            partitions.insert(meta.name.to_string(), meta.config.partitions);
        }
        let edit = GroupEdit::Join(Join {
            member_id: self.member_id.clone(),
            instance_id: self.config.instance_id.clone(),
            topics: partitions.keys().cloned().collect(),
            session_timeout_ms: self.config.session_timeout_ms,
            client: self.config.client.clone(),
            metadata: String::new(),
            partitions,
            protocol: managed(self.config.assignor),
        });
        let state = self.write(&edit).await?;
        self.last_write = Instant::now();
        if self.reconcile(state).await? {
            Ok(())
        } else {
            Err(Error::UnknownMember {
                group: self.config.group.clone(),
                member: self.member_id.clone(),
            })
        }
    }

    /// Applies `state`, rejoining if this member is no longer in the group.
    async fn follow(&mut self, state: Arc<GroupState>) -> Result<()> {
        if self.reconcile(state).await? {
            Ok(())
        } else {
            self.rejoin().await
        }
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn generation(&self) -> u64 {
        self.state.generation
    }

    /// Partitions this member may fetch now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.fetchable()
    }

    fn fetchable(&self) -> Vec<TopicPartition> {
        self.positions
            .keys()
            .filter(|tp| !self.to_release.contains(*tp))
            .cloned()
            .collect()
    }

    /// The next offset this member fetches from `tp`, if it is assigned.
    pub fn position(&self, tp: &TopicPartition) -> Option<u64> {
        self.positions.get(tp).copied()
    }

    /// Moves the position of an assigned partition (the next poll fetches from `offset`).
    pub fn seek(&mut self, tp: &TopicPartition, offset: u64) -> Result<()> {
        match self.positions.get_mut(tp) {
            Some(p) => {
                *p = offset;
                Ok(())
            }
            None => Err(Error::InvalidArgument(format!(
                "{tp} is not assigned to this member"
            ))),
        }
    }

    /// Records from the assigned partitions, waiting up to `timeout` for some to arrive.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Polled> {
        let until = Instant::now() + timeout;
        loop {
            self.maintain().await?;
            let mut out = std::mem::take(&mut self.pending);
            out.records = self.fetch_some().await?;
            if !out.is_empty() || Instant::now() >= until {
                return Ok(out);
            }
            let nap = Duration::from_millis(self.config.heartbeat_interval_ms.min(100));
            tokio::time::sleep_until((Instant::now() + nap).min(until)).await;
        }
    }

    /// Commits the positions of every partition this member holds, and releases the ones it
    /// is asked to give up. One chain write.
    pub async fn commit(&mut self) -> Result<()> {
        self.heartbeat(true).await
    }

    /// Commits (if auto-commit is on) and leaves the group: its partitions go to the other
    /// members at once.
    pub async fn leave(self) -> Result<()> {
        let offsets = if self.config.auto_commit {
            self.offsets_to_commit()
        } else {
            Vec::new()
        };
        let edit = GroupEdit::Leave {
            member_id: self.member_id.clone(),
            generation: self.state.generation,
            offsets,
        };
        self.write(&edit).await.map(|_| ())
    }

    /// Reads or writes the group's chain when due, and applies what changed.
    async fn maintain(&mut self) -> Result<()> {
        let now = Instant::now();
        let since_write = now.duration_since(self.last_write).as_millis() as u64;
        let commit_due = self.config.auto_commit
            && since_write >= self.config.auto_commit_interval_ms
            && !self.offsets_to_commit().is_empty();
        if !self.to_release.is_empty() || commit_due || since_write >= self.config.renew_interval_ms
        {
            return self.heartbeat(self.config.auto_commit).await;
        }
        if now.duration_since(self.last_read).as_millis() as u64
            >= self.config.heartbeat_interval_ms
        {
            self.last_read = now;
            let state = self.pail.group_state(&self.config.group).await?;
            return self.follow(state).await;
        }
        Ok(())
    }

    /// One write: renew the lease, commit positions (if `commit`), release revoked partitions.
    async fn heartbeat(&mut self, commit: bool) -> Result<()> {
        for _ in 0..3 {
            let edit = GroupEdit::Heartbeat(Heartbeat {
                member_id: self.member_id.clone(),
                generation: self.state.generation,
                offsets: if commit {
                    self.offsets_to_commit()
                } else {
                    Vec::new()
                },
                release: self.to_release.iter().cloned().collect(),
                partitions: None,
            });
            match self.write(&edit).await {
                Ok(state) => {
                    self.mark_committed(&edit);
                    for tp in std::mem::take(&mut self.to_release) {
                        self.positions.remove(&tp);
                        self.committed.remove(&tp);
                    }
                    self.last_write = Instant::now();
                    self.last_read = self.last_write;
                    return self.follow(state).await;
                }
                // This member was removed (its session ran out): everything it held is lost.
                Err(Error::UnknownMember { .. }) => return self.rejoin().await,
                // A commit for a partition this member no longer owns: learn what it owns and
                // try again without it.
                Err(e) if e.kind() == ErrorKind::Fenced => {
                    let state = self.pail.group_state(&self.config.group).await?;
                    self.follow(state).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Fenced {
            chain: format!("group {}", self.config.group),
            reason: "offset commits kept being refused".into(),
        })
    }

    async fn rejoin(&mut self) -> Result<()> {
        self.refuse_if_replaced().await?;
        self.pending.lost.extend(self.positions.keys().cloned());
        self.pending.lost.extend(self.to_release.iter().cloned());
        self.positions.clear();
        self.to_release.clear();
        self.member_id = new_member_id(&self.pail);
        self.join_group().await
    }

    /// A static member whose instance id a newer live member now holds was replaced (its
    /// restart came up while it still ran): it must stop, not rejoin, or the two would take
    /// the instance from each other for ever (Kafka's FENCED_INSTANCE_ID).
    async fn refuse_if_replaced(&mut self) -> Result<()> {
        let Some(instance) = self.config.instance_id.clone() else {
            return Ok(());
        };
        let state = self.pail.group_state(&self.config.group).await?;
        let now = self.pail.clock().now_ms();
        let replaced = state
            .live_members(now)
            .any(|m| m.id != self.member_id && m.instance_id.as_deref() == Some(instance.as_str()));
        if replaced {
            self.positions.clear();
            self.to_release.clear();
            return Err(Error::Fenced {
                chain: format!("group {}", self.config.group),
                reason: format!(
                    "instance id {instance} was taken by a newer member; this one must stop"
                ),
            });
        }
        Ok(())
    }

    async fn write(&self, edit: &GroupEdit) -> Result<Arc<GroupState>> {
        let deadline = Instant::now() + Duration::from_millis(self.config.renew_interval_ms);
        self.pail
            .group_commit(&self.config.group, edit, Some(deadline))
            .await
    }

    /// Positions that moved since they were last committed.
    fn offsets_to_commit(&self) -> Vec<OffsetCommit> {
        self.positions
            .iter()
            .filter(|(tp, pos)| self.committed.get(*tp) != Some(*pos))
            .map(|(tp, &offset)| OffsetCommit {
                tp: tp.clone(),
                offset,
                metadata: String::new(),
            })
            .collect()
    }

    fn mark_committed(&mut self, edit: &GroupEdit) {
        if let GroupEdit::Heartbeat(hb) = edit {
            for c in &hb.offsets {
                self.committed.insert(c.tp.clone(), c.offset);
            }
        }
    }

    /// Brings this member's view in line with `state`: new partitions start at their
    /// committed offset (or the reset policy), revoked ones stop being fetched and wait for
    /// release, vanished ones are lost. False when this member is no longer in the group.
    async fn reconcile(&mut self, state: Arc<GroupState>) -> Result<bool> {
        self.state = state;
        if self.state.member(&self.member_id).is_none() {
            return Ok(false);
        }
        let fetchable: BTreeSet<TopicPartition> =
            self.state.fetchable(&self.member_id).into_iter().collect();
        for tp in self.state.revoking(&self.member_id) {
            if self.positions.contains_key(&tp) && self.to_release.insert(tp.clone()) {
                self.pending.revoking.push(tp);
            } else if !self.positions.contains_key(&tp) {
                // Revoked before this member ever fetched it: release at once.
                self.to_release.insert(tp);
            }
        }
        let revoking: BTreeSet<&TopicPartition> = self.to_release.iter().collect();
        let held: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        for tp in held {
            if !fetchable.contains(&tp) && !revoking.contains(&tp) {
                self.positions.remove(&tp);
                self.pending.lost.push(tp);
            }
        }
        let new: Vec<TopicPartition> = fetchable
            .into_iter()
            .filter(|tp| !self.positions.contains_key(tp))
            .collect();
        // At once, not one after another: a member given many partitions would otherwise
        // wait a round trip per partition before its first fetch.
        let starts =
            futures::future::try_join_all(new.iter().map(|tp| self.start_offset(tp))).await?;
        for (tp, start) in new.into_iter().zip(starts) {
            self.positions.insert(tp.clone(), start);
            self.committed.remove(&tp);
            self.pending.assigned.push(tp);
        }
        Ok(true)
    }

    async fn start_offset(&self, tp: &TopicPartition) -> Result<u64> {
        let reset = self.config.auto_offset_reset;
        self.pail.group_start_offset(&self.state, tp, reset).await
    }

    /// Fetches from the assigned partitions in turn until `max_poll_records` or one round.
    async fn fetch_some(&mut self) -> Result<Vec<ConsumerRecord>> {
        if !self.lease_valid() {
            return Ok(Vec::new());
        }
        let tps = self.fetchable();
        let mut out = Vec::new();
        let mut left = self.config.max_poll_records;
        for i in 0..tps.len() {
            if left == 0 {
                break;
            }
            let tp = &tps[(self.cursor + i) % tps.len()];
            let from = self.positions[tp];
            let limits = FetchLimits {
                max_records: left,
                ..FetchLimits::default()
            };
            let got = match self
                .pail
                .fetch(&tp.topic, tp.partition, OffsetSpec::At(from as i64), limits)
                .await
            {
                Ok(got) => got,
                Err(e) if out.is_empty() => {
                    // Next poll starts past the failing partition, so one bad partition never
                    // starves the others.
                    self.cursor = (self.cursor + i + 1) % tps.len();
                    return Err(e);
                }
                Err(_) => break,
            };
            left -= got.records.len() as u32;
            self.positions.insert(tp.clone(), got.next_offset);
            out.extend(got.records.into_iter().map(|record| ConsumerRecord {
                topic: tp.topic.clone(),
                partition: tp.partition,
                record,
            }));
        }
        if !tps.is_empty() {
            self.cursor = (self.cursor + 1) % tps.len();
        }
        Ok(out)
    }

    /// True while this member's lease has not run out by its own clock: past it, the group
    /// may already have given its partitions to someone else.
    fn lease_valid(&self) -> bool {
        self.state
            .member(&self.member_id)
            .is_some_and(|m| m.lease_expires_at_ms > self.pail.clock().now_ms())
    }
}

impl Pail {
    /// Where a member newly assigned `tp` starts reading: the group's committed offset,
    /// clamped to the log, or `reset` when nothing is committed (1 request: the tip). Shared by
    /// the [`Consumer`] and the HTTP API's stateless members.
    pub async fn group_start_offset(
        &self,
        state: &GroupState,
        tp: &TopicPartition,
        reset: OffsetReset,
    ) -> Result<u64> {
        let head = self.partition_tip(&tp.topic, tp.partition).await?;
        let (start, end) = (head.state.log_start_offset, head.state.next_offset);
        Ok(match state.offsets.get(tp) {
            // Retention removed what was committed: restart from the log start (Kafka's
            // auto.offset.reset applies only when nothing usable is committed).
            Some(c) if c.offset < start => start,
            Some(c) => c.offset.min(end),
            None => match reset {
                OffsetReset::Earliest => start,
                OffsetReset::Latest => end,
            },
        })
    }
}
