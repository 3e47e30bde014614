//! EC2 DescribeInstances: host spec → instances.

use std::net::Ipv4Addr;

use aws_sdk_ec2::operation::describe_instances::builders::DescribeInstancesFluentBuilder;
use aws_sdk_ec2::types::Filter;

use super::{Aws, AwsError};
use crate::target::instance::{Instance, InstanceState};
use crate::target::spec::Target;

const SERVICE: &str = "EC2";

impl Aws {
    /// Every instance (any state) that `target` selects, across all pages.
    ///
    /// An unknown instance id gives an empty list, like a filter that matches nothing.
    pub(crate) async fn find_instances(&self, target: &Target) -> Result<Vec<Instance>, AwsError> {
        match target {
            Target::InstanceId(id) => match self.describe(Some(id), None).await {
                Err(e) if e.code() == Some("InvalidInstanceID.NotFound") => Ok(Vec::new()),
                other => other,
            },
            Target::Name(name) => self.describe(None, Some(("tag:Name".into(), name.clone()))).await,
            Target::Tag { key, value } => self.describe(None, Some((format!("tag:{key}"), value.clone()))).await,
            Target::Address(ip) => {
                // `private-ip-address` matches only the primary private IPv4 (spec §2.3).
                let found = self.describe(None, Some(("private-ip-address".into(), ip.to_string()))).await?;
                if !found.is_empty() {
                    return Ok(found);
                }
                self.describe(None, Some(("ip-address".into(), ip.to_string()))).await
            }
        }
    }

    async fn describe(&self, id: Option<&str>, filter: Option<(String, String)>) -> Result<Vec<Instance>, AwsError> {
        let mut req = self.ec2().describe_instances();
        if let Some(id) = id {
            req = req.instance_ids(id);
        }
        if let Some((name, value)) = filter {
            tracing::debug!(filter = %name, %value, "DescribeInstances");
            req = req.filters(Filter::builder().name(name).values(value).build());
        }
        collect_instances(req).await
    }
}

/// Every instance of every page of a DescribeInstances request.
pub(super) async fn collect_instances(req: DescribeInstancesFluentBuilder) -> Result<Vec<Instance>, AwsError> {
    let mut pages = req.into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk(SERVICE, "DescribeInstances", e))?;
        for reservation in page.reservations() {
            out.extend(reservation.instances().iter().filter_map(convert));
        }
    }
    Ok(out)
}

pub(super) fn convert(i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let id = i.instance_id()?;
    let state =
        i.state().and_then(|s| s.name()).map_or(InstanceState::Unknown, |n| InstanceState::from_name(n.as_str()));
    let tags: Vec<(String, String)> = i
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
        .collect();
    let ip = |s: Option<&str>| s.and_then(|s| s.parse::<Ipv4Addr>().ok());
    let mut out = Instance::new(id, state);
    // Anyone who may tag the instance chooses its Name: made printable here, once, so every list,
    // label and generated line shows it safely.
    out.name = tags.iter().find(|(k, _)| k == "Name").map(|(_, v)| crate::text::printable(v).into_owned());
    out.tags = tags;
    out.availability_zone = i.placement().and_then(|p| p.availability_zone()).map(str::to_string);
    out.private_ip = ip(i.private_ip_address());
    out.public_ip = ip(i.public_ip_address());
    out.vpc_id = i.vpc_id().map(str::to_string);
    out.subnet_id = i.subnet_id().map(str::to_string);
    out.platform = i.platform().map(|p| p.as_str().to_string());
    out.instance_type = i.instance_type().map(|t| t.as_str().to_string());
    out.key_name = i.key_name().map(str::to_string);
    out.security_groups = i.security_groups().iter().filter_map(|g| g.group_id().map(str::to_string)).collect();
    out.instance_profile = i.iam_instance_profile().and_then(|p| p.arn()).map(str::to_string);
    out.metadata_disabled = (i.metadata_options().and_then(|m| m.http_endpoint()))
        .is_some_and(|e| e.as_str().eq_ignore_ascii_case("disabled"));
    out.launch_time = i.launch_time().and_then(|t| t.fmt(aws_sdk_ec2::primitives::DateTimeFormat::DateTime).ok());
    Some(out)
}
