//! The EC2 network doubles the doctor reads when an SSM agent is offline
//! (`../shared/spec/keys-and-shell.md` §7, rows 8a–8b): DescribeVpcEndpoints,
//! DescribeRouteTables and DescribeNatGateways, with the element names aws-sdk-ec2 reads and
//! EC2's filters. Endpoint `state` goes on the wire in lower case (`available`), as AWS sends it.
//! No pagination: every match in one answer.

use std::fmt::Write;

use axum::http::StatusCode;
use axum::response::Response;

use super::filters::{Values, checked};
use super::query::{dry_run, err, list, ok};
use super::xml_escape;
use crate::inventory::{LAB_VPC_CIDR, RouteTableSpec, VpcEndpointSpec};
use crate::state::State;

const ENDPOINT_FILTERS: &[&str] =
    &["service-name", "vpc-id", "vpc-endpoint-id", "vpc-endpoint-state", "vpc-endpoint-type", "ip-address-type"];
const ROUTE_TABLE_FILTERS: &[&str] = &[
    "association.subnet-id",
    "association.main",
    "association.route-table-id",
    "route-table-id",
    "vpc-id",
    "owner-id",
    "route.destination-cidr-block",
    "route.gateway-id",
    "route.nat-gateway-id",
    "route.state",
];
const NAT_FILTERS: &[&str] = &["nat-gateway-id", "state", "subnet-id", "vpc-id"];

/// `DescribeVpcEndpoints`: `VpcEndpointId.N` (unknown: `InvalidVpcEndpointId.NotFound`) and
/// `Filter.N`.
pub(super) fn describe_vpc_endpoints(state: &State, params: &[(String, String)]) -> Response {
    if let Some(refusal) = dry_run(params) {
        return refusal;
    }
    let inventory = &state.inventory;
    let ids = list(params, "VpcEndpointId");
    if let Some(id) = ids.iter().find(|id| !inventory.vpc_endpoints.iter().any(|e| e.id == **id)) {
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidVpcEndpointId.NotFound",
            &format!("The Vpc Endpoint Id '{id}' does not exist"),
        );
    }
    let filters = match checked(params, ENDPOINT_FILTERS) {
        Ok(f) => f,
        Err(response) => return *response,
    };
    let region = &inventory.region;
    let mut xml = String::from("<vpcEndpointSet>");
    for e in &inventory.vpc_endpoints {
        let service = e.service_name(region);
        let matches = |name: &str, values: &Values| match name {
            "service-name" => values.matches(&service),
            "vpc-id" => values.matches(&e.vpc_id),
            "vpc-endpoint-id" => values.matches(&e.id),
            "vpc-endpoint-state" => values.matches(&e.state),
            "vpc-endpoint-type" => values.matches(&e.kind),
            _ => values.matches("ipv4"),
        };
        if (ids.is_empty() || ids.contains(&e.id)) && filters.iter().all(|(n, v)| matches(n, v)) {
            endpoint_xml(&mut xml, state, e);
        }
    }
    xml.push_str("</vpcEndpointSet>");
    ok("DescribeVpcEndpoints", state, &xml)
}

fn endpoint_xml(xml: &mut String, state: &State, ep: &VpcEndpointSpec) {
    let e = xml_escape;
    let (region, account) = (&state.inventory.region, &state.inventory.account);
    let policy = r#"{"Statement":[{"Action":"*","Effect":"Allow","Principal":"*","Resource":"*"}]}"#;
    let _ = write!(
        xml,
        "<item><vpcEndpointId>{}</vpcEndpointId><vpcEndpointType>{}</vpcEndpointType><vpcId>{}</vpcId>\
         <serviceName>{}</serviceName><state>{}</state><policyDocument>{}</policyDocument><routeTableIdSet/>\
         <subnetIdSet>",
        e(&ep.id),
        e(&ep.kind),
        e(&ep.vpc_id),
        e(&ep.service_name(region)),
        e(&ep.state),
        e(policy),
    );
    for s in &ep.subnets {
        let _ = write!(xml, "<item>{}</item>", e(s));
    }
    xml.push_str("</subnetIdSet><groupSet>");
    for g in &ep.security_groups {
        let name = state.inventory.security_group(g).map_or("", |g| g.name.as_str());
        let _ = write!(xml, "<item><groupId>{}</groupId><groupName>{}</groupName></item>", e(g), e(name));
    }
    let _ = write!(
        xml,
        "</groupSet><ipAddressType>ipv4</ipAddressType><privateDnsEnabled>{}</privateDnsEnabled>\
         <requesterManaged>false</requesterManaged><networkInterfaceIdSet/><dnsEntrySet/>\
         <creationTimestamp>2026-11-01T08:00:00.000Z</creationTimestamp><ownerId>{}</ownerId></item>",
        ep.private_dns && ep.kind == "Interface",
        e(account),
    );
}

/// `DescribeRouteTables`: `RouteTableId.N` (unknown: `InvalidRouteTableID.NotFound`) and
/// `Filter.N`, among them `association.subnet-id`, `vpc-id` and `association.main`.
pub(super) fn describe_route_tables(state: &State, params: &[(String, String)]) -> Response {
    if let Some(refusal) = dry_run(params) {
        return refusal;
    }
    let tables = state.inventory.all_route_tables();
    let ids = list(params, "RouteTableId");
    if let Some(id) = ids.iter().find(|id| !tables.iter().any(|t| t.id == **id)) {
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidRouteTableID.NotFound",
            &format!("The routeTable ID '{id}' does not exist"),
        );
    }
    let filters = match checked(params, ROUTE_TABLE_FILTERS) {
        Ok(f) => f,
        Err(response) => return *response,
    };
    let account = &state.inventory.account;
    let mut xml = String::from("<routeTableSet>");
    for t in &tables {
        let routes = all_routes(t);
        let any_route = |values: &Values, field: fn(&(String, String, String)) -> &str| {
            routes.iter().any(|r| values.matches(field(r)))
        };
        let matches = |name: &str, values: &Values| match name {
            "association.subnet-id" => t.subnets.iter().any(|s| values.matches(s)),
            "association.main" => values.matches(if t.main { "true" } else { "false" }),
            "association.route-table-id" => (t.main || !t.subnets.is_empty()) && values.matches(&t.id),
            "route-table-id" => values.matches(&t.id),
            "vpc-id" => values.matches(&t.vpc_id),
            "owner-id" => values.matches(account),
            "route.destination-cidr-block" => any_route(values, |r| &r.0),
            "route.gateway-id" | "route.nat-gateway-id" => any_route(values, |r| &r.1),
            _ => any_route(values, |r| &r.2),
        };
        if (ids.is_empty() || ids.contains(&t.id)) && filters.iter().all(|(n, v)| matches(n, v)) {
            route_table_xml(&mut xml, state, t);
        }
    }
    xml.push_str("</routeTableSet>");
    ok("DescribeRouteTables", state, &xml)
}

/// The table's routes as (destination, target, state), the local route first.
fn all_routes(t: &RouteTableSpec) -> Vec<(String, String, String)> {
    std::iter::once((LAB_VPC_CIDR.to_string(), "local".to_string(), "active".to_string()))
        .chain(t.routes.iter().map(|r| (r.destination.clone(), r.target.clone(), r.state.clone())))
        .collect()
}

fn route_table_xml(xml: &mut String, state: &State, t: &RouteTableSpec) {
    let e = xml_escape;
    let _ = write!(
        xml,
        "<item><routeTableId>{}</routeTableId><vpcId>{}</vpcId><ownerId>{}</ownerId><routeSet>",
        e(&t.id),
        e(&t.vpc_id),
        e(&state.inventory.account)
    );
    for (destination, target, route_state) in all_routes(t) {
        // The element that names the target depends on its kind (aws-sdk-ec2's `Route`).
        let element = match target.split('-').next().unwrap_or_default() {
            "nat" => "natGatewayId",
            "tgw" => "transitGatewayId",
            "pcx" => "vpcPeeringConnectionId",
            "eni" => "networkInterfaceId",
            "i" => "instanceId",
            _ => "gatewayId",
        };
        let origin = if target == "local" { "CreateRouteTable" } else { "CreateRoute" };
        let _ = write!(
            xml,
            "<item><destinationCidrBlock>{}</destinationCidrBlock><{element}>{}</{element}><state>{}</state>\
             <origin>{origin}</origin></item>",
            e(&destination),
            e(&target),
            e(&route_state)
        );
    }
    xml.push_str("</routeSet><associationSet>");
    let association = |n: &str| format!("rtbassoc-{}{n}", t.id.trim_start_matches("rtb-"));
    if t.main {
        let _ = write!(
            xml,
            "<item><routeTableAssociationId>{}</routeTableAssociationId><routeTableId>{}</routeTableId>\
             <main>true</main><associationState><state>associated</state></associationState></item>",
            association("0"),
            e(&t.id)
        );
    }
    for (n, subnet) in t.subnets.iter().enumerate() {
        let _ = write!(
            xml,
            "<item><routeTableAssociationId>{}</routeTableAssociationId><routeTableId>{}</routeTableId>\
             <subnetId>{}</subnetId><main>false</main><associationState><state>associated</state></associationState></item>",
            association(&(n + 1).to_string()),
            e(&t.id),
            e(subnet)
        );
    }
    xml.push_str("</associationSet><propagatingVgwSet/><tagSet/></item>");
}

/// `DescribeNatGateways`: `NatGatewayId.N` (unknown: `NatGatewayNotFound`) and `Filter.N`.
pub(super) fn describe_nat_gateways(state: &State, params: &[(String, String)]) -> Response {
    if let Some(refusal) = dry_run(params) {
        return refusal;
    }
    let gateways = &state.inventory.nat_gateways;
    let ids = list(params, "NatGatewayId");
    if let Some(id) = ids.iter().find(|id| !gateways.iter().any(|g| g.id == **id)) {
        return err(StatusCode::BAD_REQUEST, "NatGatewayNotFound", &format!("NAT gateway {id} was not found"));
    }
    let filters = match checked(params, NAT_FILTERS) {
        Ok(f) => f,
        Err(response) => return *response,
    };
    let e = xml_escape;
    let mut xml = String::from("<natGatewaySet>");
    for g in gateways {
        let matches = |name: &str, values: &Values| match name {
            "nat-gateway-id" => values.matches(&g.id),
            "state" => values.matches(&g.state),
            "subnet-id" => values.matches(&g.subnet_id),
            _ => values.matches(&g.vpc_id),
        };
        if (ids.is_empty() || ids.contains(&g.id)) && filters.iter().all(|(n, v)| matches(n, v)) {
            let _ = write!(
                xml,
                "<item><natGatewayId>{}</natGatewayId><vpcId>{}</vpcId><subnetId>{}</subnetId><state>{}</state>\
                 <connectivityType>public</connectivityType><createTime>2026-11-01T08:00:00.000Z</createTime>\
                 <natGatewayAddressSet/></item>",
                e(&g.id),
                e(&g.vpc_id),
                e(&g.subnet_id),
                e(&g.state)
            );
        }
    }
    xml.push_str("</natGatewaySet>");
    ok("DescribeNatGateways", state, &xml)
}
