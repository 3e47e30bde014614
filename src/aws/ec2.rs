//! EC2 DescribeInstances: host spec → instances.

use std::net::Ipv4Addr;

use super::ec2_query::{Params, shapes};
use super::{Aws, AwsError};
use crate::target::instance::{Instance, InstanceState};
use crate::target::spec::Target;

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
        let mut params = Params::new("DescribeInstances");
        if let Some(id) = id {
            params = params.list("InstanceId", &[id]);
        }
        if let Some((name, value)) = filter {
            tracing::debug!(filter = %name, %value, "DescribeInstances");
            params = params.filter(&name, &[value]);
        }
        self.collect_instances(&params).await
    }

    /// Every instance of every page of a DescribeInstances call.
    pub(super) async fn collect_instances(&self, params: &Params) -> Result<Vec<Instance>, AwsError> {
        let pages: Vec<shapes::DescribeInstances> = self.ec2().pages(params).await?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.reservation_set.item)
            .flat_map(|r| r.instances_set.item)
            .filter_map(convert)
            .collect())
    }
}

pub(super) fn convert(i: shapes::Instance) -> Option<Instance> {
    let id = i.instance_id?;
    let state = i.instance_state.and_then(|s| s.name).map_or(InstanceState::Unknown, |n| InstanceState::from_name(&n));
    let tags: Vec<(String, String)> =
        i.tag_set.item.into_iter().map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default())).collect();
    let ip = |s: Option<String>| s.and_then(|s| s.parse::<Ipv4Addr>().ok());
    let mut out = Instance::new(id, state);
    // Anyone who may tag the instance chooses its Name: made printable here, once, so every list,
    // label and generated line shows it safely.
    out.name = tags.iter().find(|(k, _)| k == "Name").map(|(_, v)| crate::text::printable(v).into_owned());
    out.tags = tags;
    out.availability_zone = i.placement.and_then(|p| p.availability_zone);
    out.private_ip = ip(i.private_ip_address);
    out.public_ip = ip(i.ip_address);
    out.vpc_id = i.vpc_id;
    out.subnet_id = i.subnet_id;
    out.platform = i.platform;
    out.instance_type = i.instance_type;
    out.key_name = i.key_name;
    out.security_groups = i.group_set.item.into_iter().filter_map(|g| g.group_id).collect();
    out.instance_profile = i.iam_instance_profile.and_then(|p| p.arn);
    out.metadata_disabled =
        i.metadata_options.and_then(|m| m.http_endpoint).is_some_and(|e| e.eq_ignore_ascii_case("disabled"));
    out.launch_time = i.launch_time.map(|t| launch_time(&t));
    Some(out)
}

/// EC2's launch time as the SDK printed it (`2026-11-23T08:30:08Z`: the wire's `.000` of whole
/// seconds dropped), so the console cache keyed by it keeps its entries.
fn launch_time(wire: &str) -> String {
    let t = wire.trim();
    match t.split_once('.') {
        Some((whole, frac)) if frac.trim_end_matches('Z').bytes().all(|b| b == b'0') && frac.ends_with('Z') => {
            format!("{whole}Z")
        }
        _ => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn launch_times_print_as_the_sdk_printed_them() {
        assert_eq!(super::launch_time("2026-11-23T08:30:08.000Z"), "2026-11-23T08:30:08Z");
        assert_eq!(super::launch_time("2026-11-23T08:30:08Z"), "2026-11-23T08:30:08Z");
        assert_eq!(super::launch_time("2026-11-23T08:30:08.250Z"), "2026-11-23T08:30:08.250Z");
    }
}
