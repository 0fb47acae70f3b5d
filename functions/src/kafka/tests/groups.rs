//! The group APIs in-process: each Kafka error code a client relies on, and that a wait ends
//! with its connection.

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use pail_core::group::{Assignor, GroupEdit, Join, managed};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use super::*;

const G: &str = "g";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join_request(member: &str, rebalance_ms: i32) -> JoinGroupRequest {
    join_request_for(member, 10_000, rebalance_ms)
}

fn join_request_for(member: &str, session_ms: i32, rebalance_ms: i32) -> JoinGroupRequest {
    let mut p = JoinGroupRequestProtocol::default();
    p.name = s("range");
    p.metadata = Bytes::from(format!("meta-{member}"));
    let mut r = JoinGroupRequest::default();
    r.group_id = GroupId(s(G));
    r.session_timeout_ms = session_ms;
    r.rebalance_timeout_ms = rebalance_ms;
    r.member_id = s(member);
    r.protocol_type = s("consumer");
    r.protocols = vec![p];
    r
}

async fn join(b: &Arc<Broker>, member: &str) -> JoinGroupResponse {
    body(
        call(b, ApiKey::JoinGroup, 7, &join_request(member, 60_000)).await,
        7,
    )
}

/// Joins with a fresh id (MEMBER_ID_REQUIRED first) and returns the answer.
async fn join_new(b: &Arc<Broker>) -> JoinGroupResponse {
    let asked = join(b, "").await;
    assert_eq!(asked.error_code, codes::MEMBER_ID_REQUIRED);
    join(b, asked.member_id.as_str()).await
}

async fn sync(b: &Arc<Broker>, generation: i32, member: &str, give: &[&str]) -> SyncGroupResponse {
    let mut r = SyncGroupRequest::default();
    r.group_id = GroupId(s(G));
    r.generation_id = generation;
    r.member_id = s(member);
    r.assignments = give
        .iter()
        .map(|m| {
            let mut a = SyncGroupRequestAssignment::default();
            a.member_id = s(m);
            a.assignment = Bytes::from(format!("for-{m}"));
            a
        })
        .collect();
    body(call(b, ApiKey::SyncGroup, 5, &r).await, 5)
}

async fn heartbeat(b: &Arc<Broker>, generation: i32, member: &str) -> i16 {
    let mut r = HeartbeatRequest::default();
    r.group_id = GroupId(s(G));
    r.generation_id = generation;
    r.member_id = s(member);
    let got: HeartbeatResponse = body(call(b, ApiKey::Heartbeat, 4, &r).await, 4);
    got.error_code
}

async fn commit(b: &Arc<Broker>, generation: i32, member: &str, offset: i64) -> i16 {
    let mut p = OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = offset;
    let mut t = OffsetCommitRequestTopic::default();
    t.name = KTopic(s("t"));
    t.partitions = vec![p];
    let mut r = OffsetCommitRequest::default();
    r.group_id = GroupId(s(G));
    r.generation_id_or_member_epoch = generation;
    r.member_id = s(member);
    r.topics = vec![t];
    let got: OffsetCommitResponse = body(call(b, ApiKey::OffsetCommit, 8, &r).await, 8);
    got.topics[0].partitions[0].error_code
}

/// The committed offset of t/0 through OffsetFetch v8 (batched groups, all topics).
async fn committed(b: &Arc<Broker>) -> Option<i64> {
    let mut g = OffsetFetchRequestGroup::default();
    g.group_id = GroupId(s(G));
    g.topics = None;
    let mut r = OffsetFetchRequest::default();
    r.groups = vec![g];
    let got: OffsetFetchResponse = body(call(b, ApiKey::OffsetFetch, 8, &r).await, 8);
    assert_eq!(got.groups[0].error_code, codes::NONE);
    let topics = &got.groups[0].topics;
    topics.first().map(|t| t.partitions[0].committed_offset)
}

#[tokio::test(start_paused = true)]
async fn a_lone_member_is_given_an_id_then_leads_its_own_generation() {
    let b = broker().await;
    let a = join_new(&b).await;
    assert_eq!(a.error_code, codes::NONE);
    assert_eq!(
        (a.generation_id, a.leader.as_str()),
        (1, a.member_id.as_str())
    );
    assert_eq!(a.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
    assert_eq!(
        a.members.len(),
        1,
        "the leader sees every member's metadata"
    );
    assert_eq!(
        a.members[0].metadata,
        Bytes::from(format!("meta-{}", a.member_id.as_str()))
    );
    let me = a.member_id.to_string();
    let got = sync(&b, 1, &me, &[&me]).await;
    assert_eq!(got.error_code, codes::NONE);
    assert_eq!(got.assignment, Bytes::from(format!("for-{me}")));
    // v0-3 clients join at once with an id chosen for them.
    let old: JoinGroupResponse = body(
        call(&b, ApiKey::JoinGroup, 3, &join_request("", 60_000)).await,
        3,
    );
    assert_ne!(old.error_code, codes::MEMBER_ID_REQUIRED);
    assert!(!old.member_id.is_empty());
}

#[tokio::test(start_paused = true)]
async fn heartbeats_and_commits_answer_kafkas_codes() {
    let b = broker().await;
    assert_eq!(
        commit(&b, -1, "", 3).await,
        codes::NONE,
        "a simple commit, empty group"
    );
    assert_eq!(committed(&b).await, Some(3));
    let a = join_new(&b).await;
    let a_id = a.member_id.to_string();
    assert_eq!(
        commit(&b, 1, &a_id, 4).await,
        codes::REBALANCE_IN_PROGRESS,
        "no commit before the leader's assignment is in"
    );
    sync(&b, 1, &a_id, &[&a_id]).await;
    assert_eq!(heartbeat(&b, 1, &a_id).await, codes::NONE);
    assert_eq!(heartbeat(&b, 1, "nobody").await, codes::UNKNOWN_MEMBER_ID);
    assert_eq!(heartbeat(&b, 0, &a_id).await, codes::ILLEGAL_GENERATION);
    assert_eq!(commit(&b, 0, &a_id, 5).await, codes::ILLEGAL_GENERATION);
    assert_eq!(
        commit(&b, -1, "", 5).await,
        codes::UNKNOWN_MEMBER_ID,
        "the group is live"
    );
    assert_eq!(commit(&b, 1, &a_id, 5).await, codes::NONE);
    assert_eq!(committed(&b).await, Some(5));

    // A second member opens a round: its join waits for the first to join again.
    let asked = join(&b, "").await;
    let b_id = asked.member_id.to_string();
    let second = tokio::spawn({
        let (b, id) = (Arc::clone(&b), b_id.clone());
        async move { join(&b, &id).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !second.is_finished(),
        "the round waits for the first member"
    );
    assert_eq!(heartbeat(&b, 1, &a_id).await, codes::REBALANCE_IN_PROGRESS);
    assert_eq!(
        commit(&b, 1, &a_id, 6).await,
        codes::NONE,
        "eager members commit on revoke"
    );
    let again = join(&b, &a_id).await;
    let other = second.await.unwrap();
    assert_eq!((again.generation_id, other.generation_id), (2, 2));
    assert_eq!(
        (again.leader.as_str(), other.leader.as_str()),
        (a_id.as_str(), a_id.as_str())
    );
    assert_eq!((again.members.len(), other.members.len()), (2, 0));
    // The follower's sync waits for the leader's.
    let follower = tokio::spawn({
        let (b, id) = (Arc::clone(&b), b_id.clone());
        async move { sync(&b, 2, &id, &[]).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!follower.is_finished());
    let led = sync(&b, 2, &a_id, &[&a_id, &b_id]).await;
    assert_eq!(led.assignment, Bytes::from(format!("for-{a_id}")));
    let followed = follower.await.unwrap();
    assert_eq!(followed.assignment, Bytes::from(format!("for-{b_id}")));
    assert_eq!(b.group_waits.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn kafka_clients_and_pail_consumers_do_not_share_a_live_group() {
    let b = broker().await;
    let managed = GroupEdit::Join(Join {
        member_id: "pail-member".into(),
        instance_id: None,
        topics: BTreeSet::from(["t".to_string()]),
        session_timeout_ms: 10_000,
        client: String::new(),
        metadata: String::new(),
        partitions: BTreeMap::from([("t".to_string(), 1)]),
        protocol: managed(Assignor::Sticky),
    });
    b.pail.group_commit(G, &managed, None).await.unwrap();
    let asked = join(&b, "").await;
    let refused = join(&b, asked.member_id.as_str()).await;
    assert_eq!(refused.error_code, codes::INCONSISTENT_GROUP_PROTOCOL);
}

#[tokio::test(start_paused = true)]
async fn groups_are_found_listed_described_and_left() {
    let b = broker().await;
    let mut find = FindCoordinatorRequest::default();
    find.coordinator_keys = vec![s(G)];
    let found: FindCoordinatorResponse = body(call(&b, ApiKey::FindCoordinator, 4, &find).await, 4);
    let c = &found.coordinators[0];
    assert_eq!(
        (c.error_code, c.host.as_str(), c.port),
        (codes::NONE, "127.0.0.1", 9092)
    );
    let a = join_new(&b).await;
    let id = a.member_id.to_string();
    let state = async |b: &Arc<Broker>| {
        let mut r = DescribeGroupsRequest::default();
        r.groups = vec![GroupId(s(G))];
        let d: DescribeGroupsResponse = body(call(b, ApiKey::DescribeGroups, 5, &r).await, 5);
        d.groups[0].clone()
    };
    assert_eq!(state(&b).await.group_state.as_str(), "CompletingRebalance");
    sync(&b, 1, &id, &[&id]).await;
    let d = state(&b).await;
    assert_eq!(
        (d.group_state.as_str(), d.protocol_data.as_str()),
        ("Stable", "range")
    );
    assert_eq!(
        d.members[0].member_assignment,
        Bytes::from(format!("for-{id}"))
    );
    let listed: ListGroupsResponse = body(
        call(&b, ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await,
        4,
    );
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].protocol_type.as_str(), "consumer");
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = GroupId(s(G));
    leave.member_id = s(&id);
    let left: LeaveGroupResponse = body(call(&b, ApiKey::LeaveGroup, 2, &leave).await, 2);
    assert_eq!(left.error_code, codes::NONE);
    let left: LeaveGroupResponse = body(call(&b, ApiKey::LeaveGroup, 2, &leave).await, 2);
    assert_eq!(left.error_code, codes::UNKNOWN_MEMBER_ID);
    assert_eq!(state(&b).await.group_state.as_str(), "Empty");
}

/// Waits (real time, bounded) until `b` has `n` group waits running.
async fn waits_become(b: &Broker, n: usize) {
    for _ in 0..200 {
        if b.group_waits.load(Ordering::Relaxed) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "group waits did not become {n}: {}",
        b.group_waits.load(Ordering::Relaxed)
    );
}

#[tokio::test]
async fn a_client_that_disconnects_leaves_no_wait_behind() {
    let b = broker().await;
    // The first member's session outlasts the test: only the disconnect can end the wait.
    let long = join_request_for("", 3_000_000, 60_000);
    let a: JoinGroupResponse = body(call(&b, ApiKey::JoinGroup, 3, &long).await, 3);
    let a_id = a.member_id.to_string();
    sync(&b, 1, &a_id, &[&a_id]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(super::super::server::serve(
        listener,
        Arc::clone(&b),
        async {
            let _ = stopped.await;
        },
    ));
    // A second member joins with a 50-minute rebalance timeout; the first never rejoins.
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let f = frame(ApiKey::JoinGroup, 3, 1, &join_request("", 3_000_000));
    socket
        .write_all(&(f.len() as i32).to_be_bytes())
        .await
        .unwrap();
    socket.write_all(&f).await.unwrap();
    waits_become(&b, 1).await;
    drop(socket);
    waits_become(&b, 0).await;
    let _ = stop.send(());
    server.await.unwrap();
}

#[test]
fn embedded_consumer_protocol_messages_decode_and_hostile_lengths_do_not_allocate() {
    use super::super::groups::{assignment_partitions, subscription_topics};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as Assigned;
    use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
    let versioned = |version: i16, msg: &dyn Fn(&mut BytesMut)| {
        let mut out = BytesMut::new();
        out.extend_from_slice(&version.to_be_bytes());
        msg(&mut out);
        out.freeze()
    };
    let mut sub = ConsumerProtocolSubscription::default();
    sub.topics = vec![s("a"), s("b")];
    let bytes = versioned(3, &|out| sub.encode(out, 3).unwrap());
    assert_eq!(
        subscription_topics(&bytes),
        Some(vec!["a".to_string(), "b".to_string()])
    );
    let mut assigned = ConsumerProtocolAssignment::default();
    let mut tp = Assigned::default();
    tp.topic = KTopic(s("a"));
    tp.partitions = vec![0, 2];
    assigned.assigned_partitions = vec![tp];
    let bytes = versioned(1, &|out| assigned.encode(out, 1).unwrap());
    assert_eq!(
        assignment_partitions(&bytes),
        Some(vec![("a".to_string(), vec![0, 2])])
    );
    // Two billion topics claimed in eight bytes: refused, not allocated.
    let hostile = [0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1];
    assert_eq!(subscription_topics(&hostile), None);
    assert_eq!(assignment_partitions(&hostile), None);
}
