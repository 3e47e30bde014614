//! The calls of `ls` and `ssh-config`: one Region's instances and the facts their routes depend
//! on, few calls each, paginated, run concurrently (`../shared/spec/aws-apis.md` §2.2, §2.3).
//!
//! For a Region of N instances: DescribeInstances ⌈N/1000⌉ pages; DescribeInstanceConnectEndpoints
//! and GetSerialConsoleAccessStatus once; DescribeInstanceTypes once per 100 distinct types; and
//! DescribeInstanceInformation once per 50 running instances listed (filtered by id, so an account
//! of many instances without agents costs no more than one with them).

use std::collections::{HashMap, HashSet};

use aws_sdk_ssm::types::InstanceInformationStringFilter;
use aws_types::region::Region;
use futures_util::StreamExt;

use super::ec2_query::{Params, shapes};
use super::serial::TypeInfo;
use super::{Aws, AwsError, Clients};
use crate::target::instance::{Instance, InstanceState};

/// DescribeInstances page size: the largest the API takes.
const INSTANCES_PER_PAGE: i32 = 1000;
/// DescribeInstanceInformation: ids per call, the largest page (`MaxResults` 5–50, §2.2), so a
/// call never needs a second page.
const AGENTS_PER_CALL: usize = 50;
/// DescribeInstanceInformation calls in flight per Region: 2,000 running instances take 40
/// calls, 10 rounds. Systems Manager throttles per account at a rate AWS does not publish (a few
/// tens a second in practice); 4 per Region keeps an `--all-regions` listing of a large account
/// near that, and the SDK retries a throttled call with back-off.
const AGENT_CALLS_AT_ONCE: usize = 4;
/// DescribeInstanceTypes: `InstanceType.N` takes at most 100 (§2.3).
const TYPES_PER_CALL: usize = 100;

/// What one Region's APIs said. `None` in an `Option` field: that call failed (see `notes`).
#[derive(Debug, Clone, Default)]
pub(crate) struct RegionFacts {
    /// Every instance (any state), from DescribeInstances.
    pub instances: Vec<Instance>,
    /// `PingStatus` by instance id, for the instances SSM knows (DescribeInstanceInformation).
    pub agents: Option<HashMap<String, String>>,
    /// VPCs served by an Instance Connect Endpoint in a usable state.
    pub endpoint_vpcs: Option<HashSet<String>>,
    /// Serial console access in the Region.
    pub serial_access: Option<bool>,
    /// What DescribeInstanceTypes said of the instances' types.
    pub types: Option<HashMap<String, TypeInfo>>,
    /// Calls that failed, as `Operation: error` (shown as warnings; their routes are unknown).
    pub notes: Vec<String>,
}

impl Aws {
    /// The same account and credentials in another Region (credentials are fetched once and
    /// shared).
    pub(crate) fn in_region(&self, region: &str) -> Aws {
        let config = self.clients.config.to_builder().region(Region::new(region.to_string())).build();
        Aws {
            region: region.to_string(),
            clients: std::sync::Arc::new(Clients::new(config)),
            credentials: self.credentials.clone(),
            open_sessions: Default::default(),
        }
    }

    /// The Regions enabled for the account (DescribeRegions), sorted.
    pub(crate) async fn enabled_regions(&self) -> Result<Vec<String>, AwsError> {
        let out: shapes::DescribeRegions = self.ec2().call(&Params::new("DescribeRegions")).await?;
        let mut regions: Vec<String> = out.region_info.item.into_iter().filter_map(|r| r.region_name).collect();
        regions.sort();
        Ok(regions)
    }

    /// Every instance of the Region, any state.
    pub(crate) async fn all_instances(&self) -> Result<Vec<Instance>, AwsError> {
        self.collect_instances(&Params::new("DescribeInstances").value("MaxResults", INSTANCES_PER_PAGE.to_string()))
            .await
    }

    /// The Region's instances (only a failure of DescribeInstances is an error) and, with
    /// `routes`, the facts about the routes of those `keep` selects; a failed fact call becomes a
    /// note and leaves that fact unknown.
    pub(crate) async fn region_facts(
        &self,
        routes: bool,
        keep: impl Fn(&Instance) -> bool,
    ) -> Result<RegionFacts, AwsError> {
        if !routes {
            return Ok(RegionFacts { instances: self.all_instances().await?, ..RegionFacts::default() });
        }
        // Endpoints and serial access do not depend on the instances: ask alongside.
        let (instances, endpoints, access) =
            tokio::join!(self.all_instances(), self.endpoint_vpcs(), self.serial_access_status());
        let instances = instances?;
        let mut notes = Vec::new();
        let mut note = |e: AwsError| notes.push(e.to_string());
        let endpoint_vpcs = endpoints.map_err(&mut note).ok();
        let serial_access = access.map(|a| a.enabled).map_err(&mut note).ok();

        let running: Vec<&Instance> =
            instances.iter().filter(|i| i.state == InstanceState::Running && keep(i)).collect();
        let ids: Vec<String> = running.iter().map(|i| i.id.clone()).collect();
        let mut types: Vec<String> = running.iter().filter_map(|i| i.instance_type.clone()).collect();
        types.sort();
        types.dedup();
        let want_types = serial_access != Some(false) && !types.is_empty();
        let (agents, types) = tokio::join!(self.agent_pings(&ids), async {
            if want_types { self.instance_types(&types).await.map(Some) } else { Ok(None) }
        });
        let agents = agents.map_err(&mut note).ok();
        let types = types.map_err(&mut note).ok().flatten();
        let types = if want_types { types } else { Some(HashMap::new()) };
        Ok(RegionFacts { instances, agents, endpoint_vpcs, serial_access, types, notes })
    }

    /// `PingStatus` of the SSM agents of `ids` that SSM knows.
    async fn agent_pings(&self, ids: &[String]) -> Result<HashMap<String, String>, AwsError> {
        let calls = ids.chunks(AGENTS_PER_CALL).map(|chunk| self.agent_page(chunk));
        let mut results = futures_util::stream::iter(calls).buffer_unordered(AGENT_CALLS_AT_ONCE);
        let mut out = HashMap::new();
        while let Some(page) = results.next().await {
            out.extend(page?);
        }
        Ok(out)
    }

    async fn agent_page(&self, ids: &[String]) -> Result<Vec<(String, String)>, AwsError> {
        let op = "DescribeInstanceInformation";
        let filter = InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .set_values(Some(ids.to_vec()))
            .build()
            .map_err(|e| AwsError::Transport { service: "SSM", operation: op, detail: e.to_string() })?;
        let mut pages = (self.ssm().describe_instance_information())
            .filters(filter)
            .max_results(AGENTS_PER_CALL as i32)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("SSM", op, e))?;
            for info in page.instance_information_list() {
                if let (Some(id), Some(ping)) = (info.instance_id(), info.ping_status()) {
                    out.push((id.to_string(), ping.as_str().to_string()));
                }
            }
        }
        Ok(out)
    }

    /// VPCs with an Instance Connect Endpoint that accepts tunnels.
    async fn endpoint_vpcs(&self) -> Result<HashSet<String>, AwsError> {
        Ok(self.find_endpoints(None, None).await?.into_iter().filter_map(|e| e.vpc_id).collect())
    }

    /// What DescribeInstanceTypes says of `names` (a type the API does not know is left out).
    async fn instance_types(&self, names: &[String]) -> Result<HashMap<String, TypeInfo>, AwsError> {
        let mut out = HashMap::new();
        for chunk in names.chunks(TYPES_PER_CALL) {
            match self.type_page(chunk).await {
                Ok(found) => out.extend(found.into_iter().map(|t| (t.name.clone(), t))),
                // One unknown name fails the whole call: ask for each alone.
                Err(e) if e.code() == Some("InvalidInstanceType") => {
                    for name in chunk {
                        if let Some(t) = self.instance_type_info(name).await? {
                            out.insert(name.clone(), t);
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn type_page(&self, names: &[String]) -> Result<Vec<TypeInfo>, AwsError> {
        let pages: Vec<shapes::DescribeInstanceTypes> =
            self.ec2().pages(&Params::new("DescribeInstanceTypes").list("InstanceType", names)).await?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.instance_type_set.item)
            .filter_map(|t| {
                Some(TypeInfo {
                    name: t.instance_type?,
                    hypervisor: t.hypervisor,
                    bare_metal: t.bare_metal.unwrap_or(false),
                })
            })
            .collect())
    }
}
