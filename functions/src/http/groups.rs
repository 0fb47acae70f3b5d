//! `/v1/groups`: consumer groups over stateless HTTP, the same code locally and on Lambda, where
//! no request can count on the one before it reaching the same process.
//!
//! The server keeps nothing between requests. A member is its id and generation in the group's
//! chain (`pail_core::group`); what it has read is the positions it passes to `poll` and
//! commits with `offsets`. So a member can join, poll, commit and leave from separate function
//! invocations. Each `poll` reads the group's state (1 request), renews the member's lease when
//! a third of its session has passed, and releases any partition the group asks it to hand
//! over, committing the position the client gave for it (1 chain write, only then): the client
//! must commit what it processed before polling again, or the next owner reads it again
//! (at-least-once, never a skip).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use pail_core::consumer::OffsetReset;
use pail_core::group::{Assignor, TopicPartition};
use pail_core::group::{GroupEdit, GroupState, Heartbeat, Join, OffsetCommit, Protocol};
use pail_core::{OffsetSpec, Pail};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, StoreErrors};
use super::extract::{JsonBody, Path};
use super::records::fetch_limits;
use super::{AppState, json_response};
use crate::render::JsonRecord;

/// Session timeout of a member that does not say (Kafka's default).
const SESSION_TIMEOUT_DEFAULT_MS: u64 = 45_000;

/// Which end a partition with no committed offset starts from (Kafka's `auto.offset.reset`).
#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResetPolicy {
    Earliest,
    #[default]
    Latest,
}

impl From<ResetPolicy> for OffsetReset {
    fn from(r: ResetPolicy) -> Self {
        match r {
            ResetPolicy::Earliest => OffsetReset::Earliest,
            ResetPolicy::Latest => OffsetReset::Latest,
        }
    }
}

/// A member joining.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// Topics to consume (at least one).
    pub topics: Vec<String>,
    /// Static membership (Kafka's `group.instance.id`): a member that returns under the same
    /// id within its session timeout gets its partitions back without a rebalance.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// 1,000 to 3,600,000 ms; default 45,000.
    #[serde(default)]
    #[schema(minimum = 1000, maximum = 3600000)]
    pub session_timeout_ms: Option<u64>,
    #[serde(default)]
    pub assignor: AssignorName,
}

/// How partitions are spread over members: `range`, `round-robin`, or `sticky` (default:
/// balanced, and partitions stay where they are whenever balance allows).
#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AssignorName {
    Range,
    RoundRobin,
    #[default]
    Sticky,
}

impl From<AssignorName> for Assignor {
    fn from(a: AssignorName) -> Self {
        match a {
            AssignorName::Range => Assignor::Range,
            AssignorName::RoundRobin => Assignor::RoundRobin,
            AssignorName::Sticky => Assignor::Sticky,
        }
    }
}

/// A partition and an offset: where a member reads from next, or what it commits.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PartitionRef {
    pub topic: String,
    pub partition: u32,
}

/// A member as the group sees it now.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub member_id: String,
    pub generation: u64,
    /// The partitions this member may read now. Partitions moving to it appear once their
    /// previous owner has released them (or its session timed out).
    pub assignment: Vec<PartitionRef>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    /// The generation the member last saw (from join or the previous poll).
    pub generation: u64,
    /// Where to read each partition from (the `positions` the previous poll returned); a
    /// partition without one starts at its committed offset.
    #[serde(default)]
    pub positions: Vec<Position>,
    /// Where a partition with no committed offset starts; default `latest`, as Kafka's.
    #[serde(default)]
    pub auto_offset_reset: ResetPolicy,
    /// Most records to return in all, 1 to 10,000 (default 1,000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub max_records: Option<u32>,
    /// Most bytes to return in all, 1 to 4 MiB (default 1 MiB).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 4194304)]
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PollResponse<'a> {
    pub generation: u64,
    pub records: Vec<JsonRecord<'a>>,
    /// Where to read each assigned partition from next: pass these to the next poll, and
    /// commit them once the records are processed.
    pub positions: Vec<Position>,
    /// Partitions this member handed over in this poll (at the positions it passed for them):
    /// forget them.
    pub revoked: Vec<PartitionRef>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    pub generation: u64,
    /// The next offset to read, per partition (Kafka's convention).
    pub offsets: Vec<Position>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<String>,
}

/// A group as `pail group describe --format json` prints it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct GroupView(serde_json::Value);

fn tp_ref(tp: &TopicPartition) -> PartitionRef {
    PartitionRef {
        topic: tp.topic.clone(),
        partition: tp.partition,
    }
}

fn view(member_id: String, state: &GroupState) -> MemberView {
    let assignment = state.fetchable(&member_id).iter().map(tp_ref).collect();
    MemberView {
        generation: state.generation,
        member_id,
        assignment,
    }
}

/// Join a group as a new member (or return as a static one).
#[utoipa::path(post, path = "/v1/groups/{group}/members", tag = "groups",
    params(("group" = String, Path, description = "Group name")),
    request_body = JoinRequest,
    responses(
        (status = 200, description = "Joined", body = MemberView),
        (status = 400, description = "Invalid group name or join", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 409, description = "The group speaks another protocol, or lost races", body = ErrorBody),
        StoreErrors,
    ))]
pub async fn join(
    State(state): State<AppState>,
    Path(group): Path<String>,
    JsonBody(req): JsonBody<JoinRequest>,
) -> Result<Json<MemberView>, ApiError> {
    if req.topics.is_empty() {
        return Err(ApiError::bad_request("topics must name at least one topic"));
    }
    let mut partitions = BTreeMap::new();
    for topic in &req.topics {
        let meta = state.pail.topic(topic).await?;
        partitions.insert(meta.name.to_string(), meta.config.partitions);
    }
    let member_id = format!("m-{}", pail_core::entropy::attempt_id());
    let edit = GroupEdit::Join(Join {
        member_id: member_id.clone(),
        instance_id: req.instance_id,
        topics: partitions.keys().cloned().collect(),
        session_timeout_ms: req.session_timeout_ms.unwrap_or(SESSION_TIMEOUT_DEFAULT_MS),
        client: "http".into(),
        metadata: String::new(),
        partitions,
        protocol: Protocol::Managed {
            assignor: req.assignor.into(),
        },
    });
    let group_state = state.pail.group_commit(&group, &edit, None).await?;
    Ok(Json(view(member_id, &group_state)))
}

/// Renew the member's lease, hand over what the group asks for, and read records from the
/// member's partitions.
#[utoipa::path(post, path = "/v1/groups/{group}/members/{member}/poll", tag = "groups",
    params(("group" = String, Path, description = "Group name"),
           ("member" = String, Path, description = "Member id from join")),
    request_body = PollRequest,
    responses(
        (status = 200, description = "Records (possibly none) and positions", body = PollResponse<'static>),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "An assigned topic was deleted", body = ErrorBody),
        (status = 409, description = "Not a member any more (join again), or fenced", body = ErrorBody),
        (status = 416, description = "A position outside its partition's range", body = ErrorBody),
        StoreErrors,
    ))]
pub async fn poll(
    State(state): State<AppState>,
    Path((group, member)): Path<(String, String)>,
    JsonBody(req): JsonBody<PollRequest>,
) -> Result<Response, ApiError> {
    let mut limits = fetch_limits(req.max_records, req.max_bytes)?;
    let given: BTreeMap<TopicPartition, u64> = req
        .positions
        .iter()
        .map(|p| (TopicPartition::new(p.topic.clone(), p.partition), p.offset))
        .collect();
    let (group_state, revoked) = renew(&state.pail, &group, &member, &req, &given).await?;
    let mut records = Vec::new();
    let mut positions = Vec::new();
    for tp in group_state.fetchable(&member) {
        let from = match given.get(&tp) {
            Some(&at) => at,
            None => {
                let reset = req.auto_offset_reset.into();
                state
                    .pail
                    .group_start_offset(&group_state, &tp, reset)
                    .await?
            }
        };
        let mut next = from;
        if limits.max_records > 0 && limits.max_bytes > 0 {
            let at = OffsetSpec::At(i64::try_from(from).unwrap_or(i64::MAX));
            let got = state
                .pail
                .fetch(&tp.topic, tp.partition, at, limits)
                .await?;
            next = got.next_offset;
            let bytes: u64 = got.records.iter().map(|r| r.size_bytes()).sum();
            limits.max_records = limits.max_records.saturating_sub(got.records.len() as u32);
            limits.max_bytes = limits.max_bytes.saturating_sub(bytes);
            records.extend(got.records.into_iter().map(|r| (tp.clone(), r)));
        }
        positions.push(Position {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset: next,
        });
    }
    json_response(&PollResponse {
        generation: group_state.generation,
        records: records
            .iter()
            .map(|(tp, r)| JsonRecord::new(&tp.topic, tp.partition, r))
            .collect(),
        positions,
        revoked: revoked.iter().map(tp_ref).collect(),
    })
}

/// The group's state after this member's heartbeat, if one was due (a third of the session
/// gone, or partitions to hand over), and the partitions it handed over.
async fn renew(
    pail: &Pail,
    group: &str,
    member: &str,
    req: &PollRequest,
    given: &BTreeMap<TopicPartition, u64>,
) -> Result<(std::sync::Arc<GroupState>, Vec<TopicPartition>), ApiError> {
    let current = pail.group_state(group).await?;
    let Some(m) = current.member(member) else {
        return Err(pail_core::Error::UnknownMember {
            group: group.to_string(),
            member: member.to_string(),
        }
        .into());
    };
    let release = current.revoking(member);
    let left_ms = m.lease_expires_at_ms - pail.clock().now_ms();
    let renew_due = left_ms < (m.session_timeout_ms as i64) * 2 / 3;
    if release.is_empty() && !renew_due {
        return Ok((current, Vec::new()));
    }
    let offsets = release
        .iter()
        .filter_map(|tp| {
            given.get(tp).map(|&offset| OffsetCommit {
                tp: tp.clone(),
                offset,
                metadata: String::new(),
            })
        })
        .collect();
    let edit = GroupEdit::Heartbeat(Heartbeat {
        member_id: member.to_string(),
        generation: req.generation,
        offsets,
        release: release.clone(),
        partitions: None,
    });
    let next = pail.group_commit(group, &edit, None).await?;
    Ok((next, release))
}

/// Commit offsets (and renew the lease) in one chain write.
#[utoipa::path(post, path = "/v1/groups/{group}/members/{member}/offsets", tag = "groups",
    params(("group" = String, Path, description = "Group name"),
           ("member" = String, Path, description = "Member id from join")),
    request_body = CommitRequest,
    responses(
        (status = 200, description = "Committed", body = MemberView),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 409, description = "Fenced: an older generation, or a partition the member does not own", body = ErrorBody),
        StoreErrors,
    ))]
pub async fn commit(
    State(state): State<AppState>,
    Path((group, member)): Path<(String, String)>,
    JsonBody(req): JsonBody<CommitRequest>,
) -> Result<Json<MemberView>, ApiError> {
    let mut seen = BTreeSet::new();
    let mut offsets = Vec::with_capacity(req.offsets.len());
    for p in &req.offsets {
        let tp = TopicPartition::new(p.topic.clone(), p.partition);
        if !seen.insert(tp.clone()) {
            return Err(ApiError::bad_request(format!(
                "{tp} appears twice in offsets"
            )));
        }
        offsets.push(OffsetCommit {
            tp,
            offset: p.offset,
            metadata: String::new(),
        });
    }
    let edit = GroupEdit::Heartbeat(Heartbeat {
        member_id: member.clone(),
        generation: req.generation,
        offsets,
        ..Heartbeat::default()
    });
    let next = state.pail.group_commit(&group, &edit, None).await?;
    Ok(Json(view(member, &next)))
}

/// Leave the group: its partitions go to the other members at once.
#[utoipa::path(delete, path = "/v1/groups/{group}/members/{member}", tag = "groups",
    params(("group" = String, Path, description = "Group name"),
           ("member" = String, Path, description = "Member id from join")),
    responses(
        (status = 204, description = "Left"),
        (status = 400, description = "Invalid group name", body = ErrorBody),
        (status = 409, description = "Not a member (it left, or its session timed out)", body = ErrorBody),
        StoreErrors,
    ))]
pub async fn leave(
    State(state): State<AppState>,
    Path((group, member)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let current = state.pail.group_state(&group).await?;
    let edit = GroupEdit::Leave {
        member_id: member,
        generation: current.generation,
        offsets: Vec::new(),
    };
    state.pail.group_commit(&group, &edit, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List the groups.
#[utoipa::path(get, path = "/v1/groups", tag = "groups",
    responses((status = 200, description = "Group names", body = GroupList), StoreErrors))]
pub async fn list(State(state): State<AppState>) -> Result<Json<GroupList>, ApiError> {
    let groups = state.pail.list_groups().await?;
    Ok(Json(GroupList { groups }))
}

/// Describe a group: members, assignment, committed offsets and lag per partition.
#[utoipa::path(get, path = "/v1/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "Group name")),
    responses(
        (status = 200, description = "The group", body = GroupView),
        (status = 400, description = "Invalid group name", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
        StoreErrors,
    ))]
pub async fn describe(
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> Result<Json<GroupView>, ApiError> {
    let d = state.pail.describe_group(&group).await?;
    let value = serde_json::to_value(&d)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(Json(GroupView(value)))
}
