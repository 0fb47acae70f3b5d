//! ListGroups 0-4 and DescribeGroups 0-5, from the group chains (`Pail::list_groups` and each
//! group's tip). States are Kafka's names (`classic::kafka_state`); groups of pail's managed
//! protocol (`pail consume --group`) show protocol type "pail" and their assignor.

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse,
};
use pail_core::group::classic;
use pail_core::group::{GroupState, Protocol};
use std::sync::Arc;

use super::text;
use crate::kafka::apis::{self, ProtocolError, Reply};
use crate::kafka::groups::{self, unb64};
use crate::kafka::{Broker, codes};

/// DescribeGroups' `authorized_operations` when not asked for (Kafka's sentinel).
const OPERATIONS_NOT_ASKED: i32 = i32::MIN;
/// What anyone may do to a group here (no ACLs): READ (3), DELETE (6), DESCRIBE (8).
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub fn list(broker: &Arc<Broker>, version: i16, mut body: Bytes) -> Result<Reply, ProtocolError> {
    let request: ListGroupsRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move {
        let mut response = ListGroupsResponse::default();
        match listed(&broker, &request).await {
            Ok(found) => response.groups = found,
            Err(e) => response.error_code = groups::code(&e),
        }
        apis::encode(&response, version)
    }
    .boxed())
}

async fn listed(broker: &Broker, r: &ListGroupsRequest) -> pail_core::Result<Vec<ListedGroup>> {
    let now = groups::now_ms(broker);
    let mut out = Vec::new();
    for name in broker.pail.list_groups().await? {
        let s = broker.pail.group_state(&name).await?;
        let state = classic::kafka_state(&s, now);
        let wanted = r.states_filter.is_empty()
            || r.states_filter
                .iter()
                .any(|f| f.as_str().eq_ignore_ascii_case(state));
        if wanted {
            let mut g = ListedGroup::default();
            g.group_id = GroupId(text(name));
            g.protocol_type = text(protocol_type(&s));
            g.group_state = text(state);
            out.push(g);
        }
    }
    Ok(out)
}

fn protocol_type(s: &GroupState) -> String {
    match &s.protocol {
        Protocol::Classic { protocol_type, .. } => protocol_type.clone(),
        Protocol::Managed { .. } => "pail".into(),
    }
}

pub fn describe(
    broker: &Arc<Broker>,
    version: i16,
    mut body: Bytes,
) -> Result<Reply, ProtocolError> {
    let request: DescribeGroupsRequest = apis::decode(&mut body, version)?;
    let broker = Arc::clone(broker);
    Ok(async move {
        let mut response = DescribeGroupsResponse::default();
        for id in &request.groups {
            let mut g = described(&broker, id).await;
            if version >= 3 {
                g.authorized_operations = if request.include_authorized_operations {
                    GROUP_OPERATIONS
                } else {
                    OPERATIONS_NOT_ASKED
                };
            }
            response.groups.push(g);
        }
        apis::encode(&response, version)
    }
    .boxed())
}

async fn described(broker: &Broker, id: &GroupId) -> DescribedGroup {
    let mut g = DescribedGroup::default();
    g.group_id = id.clone();
    g.group_state = text("Dead");
    let state = match groups::group_name(id.as_str()) {
        Err(code) => Err(code),
        Ok(name) => broker
            .pail
            .group_state(name.as_str())
            .await
            .map_err(|e| groups::code(&e)),
    };
    let s = match state {
        Ok(s) => s,
        Err(code) => {
            g.error_code = code;
            return g;
        }
    };
    let now = groups::now_ms(broker);
    g.error_code = codes::NONE;
    g.group_state = text(classic::kafka_state(&s, now));
    if s.version == 0 || s.deleted {
        return g;
    }
    g.protocol_type = text(protocol_type(&s));
    g.protocol_data = text(match &s.protocol {
        Protocol::Classic { protocol_name, .. } => protocol_name.clone(),
        Protocol::Managed { assignor } => assignor.as_str().to_string(),
    });
    g.members = s
        .live_members(now)
        .map(|m| {
            let mut out = DescribedGroupMember::default();
            out.member_id = text(m.id.clone());
            out.group_instance_id = m.instance_id.clone().map(text);
            out.client_id = text(m.client.clone());
            out.member_metadata = unb64(classic::chosen_metadata(&s, m));
            out.member_assignment = unb64(&m.assignment);
            out
        })
        .collect();
    g
}
