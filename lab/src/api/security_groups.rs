//! `DescribeSecurityGroups` (EC2 query protocol): `GroupId.N`, `GroupName.N`, `Filter.N`
//! (`group-id`, `group-name`, `vpc-id`, `owner-id`, `description`), with the element names
//! aws-sdk-ec2 reads (`securityGroupInfo/item/{ownerId, groupId, groupName, groupDescription,
//! vpcId, securityGroupArn, ipPermissions, ipPermissionsEgress}`, each permission
//! `{ipProtocol, fromPort, toPort, ipRanges/item/cidrIp}`). No pagination: every match in one
//! answer.

use std::fmt::Write;

use axum::http::StatusCode;
use axum::response::Response;

use super::filters::{Values, checked};
use super::query::{dry_run, err, list, ok};
use super::xml_escape;
use crate::inventory::{DEFAULT_VPC_ID, IngressRule, SecurityGroupSpec};
use crate::state::State;

const KNOWN_FILTERS: &[&str] = &["group-id", "group-name", "vpc-id", "owner-id", "description"];

pub(super) fn describe(state: &State, params: &[(String, String)]) -> Response {
    if let Some(refusal) = dry_run(params) {
        return refusal;
    }
    let inventory = &state.inventory;
    let ids = list(params, "GroupId");
    for id in &ids {
        let hex = id.strip_prefix("sg-").unwrap_or_default();
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return err(
                StatusCode::BAD_REQUEST,
                "InvalidGroupId.Malformed",
                &format!("Invalid id: \"{id}\" (expecting \"sg-...\")"),
            );
        }
        if inventory.security_group(id).is_none() {
            return err(
                StatusCode::BAD_REQUEST,
                "InvalidGroup.NotFound",
                &format!("The security group '{id}' does not exist"),
            );
        }
    }
    let names = list(params, "GroupName");
    if let Some(name) = names.iter().find(|n| !inventory.all_security_groups().any(|g| g.name == **n)) {
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidGroup.NotFound",
            &format!("The security group '{name}' does not exist in default VPC '{}'", DEFAULT_VPC_ID),
        );
    }
    let filters = match checked(params, KNOWN_FILTERS) {
        Ok(f) => f,
        Err(response) => return *response,
    };
    let account = &inventory.account;
    let mut xml = String::from("<securityGroupInfo>");
    for g in inventory.all_security_groups() {
        let named = ids.is_empty() && names.is_empty() || ids.contains(&g.id) || names.contains(&g.name);
        let description = g.description();
        let matches = |name: &str, values: &Values| match name {
            "group-id" => values.matches(&g.id),
            "group-name" => values.matches(&g.name),
            "vpc-id" => values.matches(&g.vpc_id),
            "owner-id" => values.matches(account),
            _ => values.matches(&description),
        };
        if named && filters.iter().all(|(name, values)| matches(name, values)) {
            group_xml(&mut xml, state, g);
        }
    }
    xml.push_str("</securityGroupInfo>");
    ok("DescribeSecurityGroups", state, &xml)
}

fn group_xml(xml: &mut String, state: &State, g: &SecurityGroupSpec) {
    let e = xml_escape;
    let (region, account) = (&state.inventory.region, &state.inventory.account);
    let _ = write!(
        xml,
        "<item><ownerId>{}</ownerId><groupId>{}</groupId><groupName>{}</groupName>\
         <groupDescription>{}</groupDescription><vpcId>{}</vpcId><securityGroupArn>{}</securityGroupArn>",
        e(account),
        e(&g.id),
        e(&g.name),
        e(&g.description()),
        e(&g.vpc_id),
        e(&g.arn(region, account)),
    );
    xml.push_str("<ipPermissions>");
    for rule in &g.ingress {
        permission_xml(xml, rule);
    }
    xml.push_str("</ipPermissions><ipPermissionsEgress>");
    for rule in &g.egress_rules() {
        permission_xml(xml, rule);
    }
    xml.push_str("</ipPermissionsEgress></item>");
}

fn permission_xml(xml: &mut String, rule: &IngressRule) {
    let _ = write!(xml, "<item><ipProtocol>{}</ipProtocol>", xml_escape(&rule.protocol));
    if let (Some(from), Some(to)) = (rule.from_port, rule.to_port) {
        let _ = write!(xml, "<fromPort>{from}</fromPort><toPort>{to}</toPort>");
    }
    xml.push_str("<groups/><ipRanges>");
    for cidr in &rule.cidrs {
        let _ = write!(xml, "<item><cidrIp>{}</cidrIp></item>", xml_escape(cidr));
    }
    xml.push_str("</ipRanges><ipv6Ranges/><prefixListIds/></item>");
}
