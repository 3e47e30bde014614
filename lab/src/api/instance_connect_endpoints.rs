//! `DescribeInstanceConnectEndpoints` (EC2 query protocol): ids, filters, pagination, and the
//! element names aws-sdk-ec2 reads (`../shared/spec/aws-apis.md` §1.3, §2.3).

use std::fmt::Write;

use axum::http::StatusCode;
use axum::response::Response;
use sha2::Digest;

use super::filters::{filters, wildcard};
use super::query::{dry_run, err, list, ok, param};
use super::xml_escape;
use crate::inventory::EndpointSpec;
use crate::state::State;

/// When every lab endpoint was created (`createdAt`).
const CREATED_AT: &str = "2026-11-01T08:00:00.000Z";

const KNOWN_FILTERS: &[&str] =
    &["instance-connect-endpoint-id", "state", "subnet-id", "vpc-id", "tag-key", "tag-value"];

pub(super) fn describe(state: &State, params: &[(String, String)]) -> Response {
    if let Some(refusal) = dry_run(params) {
        return refusal;
    }
    let ids = list(params, "InstanceConnectEndpointId");
    for id in &ids {
        let body = id.strip_prefix("eice-").unwrap_or_default();
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return err(
                StatusCode::BAD_REQUEST,
                "InvalidInstanceConnectEndpointId.Malformed",
                &format!("Invalid id: \"{id}\""),
            );
        }
        if state.inventory.endpoint(id).is_none() {
            return err(
                StatusCode::BAD_REQUEST,
                "InvalidInstanceConnectEndpointId.NotFound",
                &format!("The instance connect endpoint ID '{id}' does not exist"),
            );
        }
    }
    let filters = filters(params);
    for (name, _) in &filters {
        if !KNOWN_FILTERS.contains(&name.as_str()) && !name.starts_with("tag:") {
            return err(StatusCode::BAD_REQUEST, "InvalidParameterValue", &format!("The filter '{name}' is invalid"));
        }
    }
    let matching: Vec<&EndpointSpec> = state
        .inventory
        .endpoints
        .iter()
        .filter(|e| ids.is_empty() || ids.contains(&e.id))
        .filter(|e| filters.iter().all(|(name, values)| values.iter().any(|v| filter_matches(e, name, v))))
        .collect();

    let page_size = match param(params, "MaxResults").map(str::parse::<usize>) {
        Some(Ok(n)) if (1..=50).contains(&n) => Some(n),
        Some(_) => {
            return err(StatusCode::BAD_REQUEST, "InvalidParameterValue", "MaxResults must be between 1 and 50");
        }
        None => state.faults().page_size,
    };
    let start = match param(params, "NextToken").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) if n <= matching.len() => n,
        Some(_) => return err(StatusCode::BAD_REQUEST, "InvalidParameterValue", "The NextToken is not valid"),
    };
    let end = page_size.map_or(matching.len(), |n| (start + n).min(matching.len()));
    let mut xml = String::from("<instanceConnectEndpointSet>");
    for e in &matching[start..end] {
        endpoint_xml(&mut xml, state, e);
    }
    xml.push_str("</instanceConnectEndpointSet>");
    if end < matching.len() {
        let _ = write!(xml, "<nextToken>{end}</nextToken>");
    }
    ok("DescribeInstanceConnectEndpoints", state, &xml)
}

fn filter_matches(e: &EndpointSpec, name: &str, value: &str) -> bool {
    let m = |s: &str| wildcard(value, s);
    match name {
        "instance-connect-endpoint-id" => m(&e.id),
        "state" => m(&e.state),
        "subnet-id" => m(&e.subnet_id),
        "vpc-id" => m(&e.vpc_id),
        "tag-key" => e.tags.keys().any(|k| m(k)),
        "tag-value" => e.tags.values().any(|v| m(v)),
        _ => name.strip_prefix("tag:").is_some_and(|key| e.tags.get(key).is_some_and(|v| m(v))),
    }
}

fn endpoint_xml(xml: &mut String, state: &State, e: &EndpointSpec) {
    let x = xml_escape;
    let (region, account) = (&state.inventory.region, &state.inventory.account);
    let _ = write!(
        xml,
        "<item><ownerId>{}</ownerId><instanceConnectEndpointId>{}</instanceConnectEndpointId>\
         <instanceConnectEndpointArn>{}</instanceConnectEndpointArn><state>{}</state>\
         <dnsName>{}</dnsName><fipsDnsName>{}</fipsDnsName>\
         <networkInterfaceIdSet><item>{}</item></networkInterfaceIdSet><vpcId>{}</vpcId>\
         <availabilityZone>{}</availabilityZone><createdAt>{CREATED_AT}</createdAt><subnetId>{}</subnetId>\
         <preserveClientIp>{}</preserveClientIp><securityGroupIdSet><item>{}</item></securityGroupIdSet>\
         <ipAddressType>ipv4</ipAddressType>",
        x(account),
        x(&e.id),
        x(&e.arn(region, account)),
        x(&e.state),
        x(&e.dns_name(region)),
        x(&e.fips_dns_name(region)),
        derived_id("eni", &e.id),
        x(&e.vpc_id),
        x(&e.az),
        x(&e.subnet_id),
        e.preserve_client_ip,
        derived_id("sg", &e.id),
    );
    if !e.tags.is_empty() {
        xml.push_str("<tagSet>");
        for (k, v) in &e.tags {
            let _ = write!(xml, "<item><key>{}</key><value>{}</value></item>", x(k), x(v));
        }
        xml.push_str("</tagSet>");
    }
    xml.push_str("</item>");
}

/// A stable `eni-…`/`sg-…` id (17 hex digits, as AWS's) derived from the endpoint id.
fn derived_id(prefix: &str, endpoint_id: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{prefix}/{endpoint_id}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-0{}", &hex[..16])
}
