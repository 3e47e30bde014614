//! Gathering the evidence of why an SSM agent is offline (`../shared/spec/keys-and-shell.md`
//! §7): only when DescribeInstanceInformation has no entry or the agent is not `Online` (or SSM
//! cannot reach an online agent), so a healthy instance costs no extra call. The IAM chain and
//! the network chain run at once; a refused call is kept as evidence and the rest go on.

use super::explain::agent::{AgentEvidence, NetworkEvidence, RoleEvidence, profile_name};
use crate::aws::Aws;
use crate::aws::security_groups::SecurityGroup;
use crate::target::instance::Instance;

/// Looks up the instance profile, Default Host Management, and the network.
pub(crate) async fn gather(aws: &Aws, instance: &Instance, groups: Option<&Vec<SecurityGroup>>) -> AgentEvidence {
    let profile = async {
        let arn = instance.instance_profile.as_deref()?;
        Some(profile(aws, profile_name(arn)).await)
    };
    let dhmc = async {
        match instance.instance_profile {
            Some(_) => None,
            None => Some(aws.default_host_management_role().await),
        }
    };
    let (profile, dhmc, network) = tokio::join!(profile, dhmc, network(aws, instance, groups));
    AgentEvidence { profile, dhmc, network, connected: None }
}

async fn profile(aws: &Aws, name: &str) -> Result<Option<Vec<RoleEvidence>>, crate::aws::AwsError> {
    let Some(roles) = aws.instance_profile_roles(name).await? else { return Ok(None) };
    let roles = roles.into_iter().map(|role| async move {
        let trust = async {
            match role.trust {
                Some(doc) => Ok(Some(doc)),
                None => aws.role_trust(&role.name).await,
            }
        };
        let (trust, policies) = tokio::join!(trust, aws.role_policies(&role.name));
        RoleEvidence { name: role.name, trust, policies }
    });
    Ok(Some(futures_util::future::join_all(roles).await))
}

async fn network(aws: &Aws, instance: &Instance, groups: Option<&Vec<SecurityGroup>>) -> NetworkEvidence {
    let (Some(vpc), Some(subnet)) = (instance.vpc_id.as_deref(), instance.subnet_id.as_deref()) else {
        return NetworkEvidence::default();
    };
    let (endpoints, table) = tokio::join!(aws.vpc_endpoints(vpc), aws.subnet_route_table(subnet, vpc));
    let nats: Vec<String> = match &table {
        Ok(Some(t)) => t.routes.iter().filter(|r| r.target.starts_with("nat-")).map(|r| r.target.clone()).collect(),
        _ => Vec::new(),
    };
    let nat_states = futures_util::future::join_all(nats.into_iter().map(|id| async move {
        let state = aws.nat_gateway_state(&id).await;
        (id, state)
    }));
    // The endpoints' groups and the instance's, read again only if those were not read already.
    let mut ids: Vec<String> = instance.security_groups.clone();
    if let Ok(endpoints) = &endpoints {
        ids.extend(endpoints.iter().flat_map(|e| e.groups.iter().cloned()));
    }
    ids.sort();
    ids.dedup();
    let known = groups.map(|g| g.iter().map(|g| g.id.clone()).collect::<Vec<_>>()).unwrap_or_default();
    let read_groups = async {
        match ids.is_empty() || ids.iter().all(|id| known.contains(id)) {
            true => groups.map(|g| Ok(g.clone())),
            false => Some(aws.security_groups(&ids).await),
        }
    };
    let (nat_states, groups) = tokio::join!(nat_states, read_groups);
    NetworkEvidence { endpoints: Some(endpoints), route_table: Some(table), nat_states, groups }
}
