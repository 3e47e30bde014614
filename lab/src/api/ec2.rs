//! EC2 query API double: DescribeInstances (filters, pagination), GetConsoleOutput and
//! GetSerialConsoleAccessStatus, with the real XML element names (`../shared/spec/aws-apis.md`
//! §1.3, §2.3), and the dispatch to DescribeInstanceConnectEndpoints
//! (`instance_connect_endpoints`), DescribeInstanceTypes (`instance_types`),
//! DescribeKeyPairs (`key_pairs`) and DescribeSecurityGroups (`security_groups`).

use std::collections::HashSet;
use std::fmt::Write;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::filters::{Values, filters, limit_error};
use super::{Protocol, error, xml_escape};
use crate::inventory::{InstanceSpec, Inventory, instance_profile_id};
use crate::state::State;

const XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

pub(super) fn handle(state: &State, action: &str, params: &[(String, String)]) -> Response {
    match action {
        "DescribeInstances" => describe_instances(state, params),
        "GetConsoleOutput" => get_console_output(state, params),
        "DescribeInstanceConnectEndpoints" => super::instance_connect_endpoints::describe(state, params),
        "DescribeInstanceTypes" => super::instance_types::describe(state, params),
        "DescribeKeyPairs" => super::key_pairs::describe(state, params),
        "DescribeSecurityGroups" => super::security_groups::describe(state, params),
        "GetSerialConsoleAccessStatus" => get_serial_console_access_status(state),
        "" => err(StatusCode::BAD_REQUEST, "MissingAction", "The request must contain the parameter Action"),
        other => err(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!("The action {other} is not valid for this web service."),
        ),
    }
}

pub(super) fn err(status: StatusCode, code: &str, message: &str) -> Response {
    error(Protocol::Query, status, code, message)
}

pub(super) fn ok(action: &str, state: &State, inner: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{XMLNS}\"><requestId>{}</requestId>{inner}</{action}Response>",
        state.next_id("")
    );
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")], body).into_response()
}

pub(super) fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `Prefix.1`, `Prefix.2`, ... in index order.
pub(super) fn list(params: &[(String, String)], prefix: &str) -> Vec<String> {
    (1..).map_while(|i| param(params, &format!("{prefix}.{i}")).map(str::to_string)).collect()
}

/// `DescribeInstances`: `InstanceId.N`, `Filter.N` (values ORed, at most 200 in all),
/// `MaxResults` (5–1000, not with `InstanceId.N`), `NextToken`.
fn describe_instances(state: &State, params: &[(String, String)]) -> Response {
    let ids = list(params, "InstanceId");
    let max_results = param(params, "MaxResults");
    if !ids.is_empty() && max_results.is_some() {
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidParameterCombination",
            "The parameter instancesSet cannot be used with the parameter maxResults",
        );
    }
    for id in &ids {
        if !id.starts_with("i-") || id.len() < 10 || !id[2..].bytes().all(|b| b.is_ascii_hexdigit()) {
            return err(StatusCode::BAD_REQUEST, "InvalidInstanceID.Malformed", &format!("Invalid id: \"{id}\""));
        }
        if state.instance(id).is_none() {
            return err(
                StatusCode::BAD_REQUEST,
                "InvalidInstanceID.NotFound",
                &format!("The instance ID '{id}' does not exist"),
            );
        }
    }
    let filters = filters(params);
    if let Some(response) = limit_error(&filters) {
        return response;
    }
    for (name, _) in &filters {
        if !KNOWN_FILTERS.contains(&name.as_str()) && !name.starts_with("tag:") {
            return err(StatusCode::BAD_REQUEST, "InvalidParameterValue", &format!("The filter '{name}' is invalid"));
        }
    }
    let filters: Vec<(String, Values)> = filters.into_iter().map(|(n, v)| (n, Values::new(&v))).collect();
    let ids: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let inventory = &state.inventory;
    let matching: Vec<&InstanceSpec> = inventory
        .instances
        .iter()
        .filter(|i| ids.is_empty() || ids.contains(i.id.as_str()))
        .filter(|i| filters.iter().all(|(name, values)| filter_matches(i, inventory, name, values)))
        .collect();

    let page_size = match max_results.map(str::parse::<usize>) {
        Some(Ok(n)) if (5..=1000).contains(&n) => Some(n),
        Some(_) => {
            return err(StatusCode::BAD_REQUEST, "InvalidParameterValue", "MaxResults must be between 5 and 1000");
        }
        None => state.faults().page_size,
    };
    let start = match param(params, "NextToken").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) if n <= matching.len() => n,
        Some(_) => {
            return err(StatusCode::BAD_REQUEST, "InvalidParameterValue", "The NextToken is not valid");
        }
    };
    let end = page_size.map_or(matching.len(), |n| (start + n).min(matching.len()));
    let mut xml = String::from("<reservationSet>");
    for inst in &matching[start..end] {
        reservation_xml(&mut xml, state, inst);
    }
    xml.push_str("</reservationSet>");
    if end < matching.len() {
        let _ = write!(xml, "<nextToken>{end}</nextToken>");
    }
    ok("DescribeInstances", state, &xml)
}

const KNOWN_FILTERS: &[&str] = &[
    "instance-id",
    "tag-key",
    "tag-value",
    "private-ip-address",
    "ip-address",
    "private-dns-name",
    "dns-name",
    "key-name",
    "instance-state-name",
    "instance-state-code",
    "vpc-id",
    "subnet-id",
    "availability-zone",
    "instance-type",
    "platform",
    "instance.group-id",
    "instance.group-name",
    "iam-instance-profile.arn",
];

fn filter_matches(i: &InstanceSpec, inventory: &Inventory, name: &str, values: &Values) -> bool {
    let region = &inventory.region;
    let m = |s: &str| values.matches(s);
    match name {
        "instance-id" => m(&i.id),
        "tag-key" => tags(i).iter().any(|(k, _)| m(k)),
        "tag-value" => tags(i).iter().any(|(_, v)| m(v)),
        "private-ip-address" => i.private_ip.is_some_and(|ip| m(&ip.to_string())),
        "ip-address" => i.public_ip.is_some_and(|ip| m(&ip.to_string())),
        "private-dns-name" => i.private_ip.is_some() && m(&i.private_dns_name(region)),
        "dns-name" => i.public_ip.is_some() && m(&i.public_dns_name(region)),
        "key-name" => i.key_name.as_deref().is_some_and(m),
        "instance-state-name" => m(&i.state),
        "instance-state-code" => m(&state_code(&i.state).to_string()),
        "vpc-id" => m(&i.vpc_id),
        "subnet-id" => m(&i.subnet_id),
        "availability-zone" => m(&i.az),
        "instance-type" => m(&i.instance_type),
        "platform" => i.platform.as_deref().is_some_and(m),
        "instance.group-id" => i.security_group_ids().iter().any(|id| m(id)),
        "instance.group-name" => {
            (i.security_group_ids().iter()).filter_map(|id| inventory.security_group(id)).any(|g| m(&g.name))
        }
        "iam-instance-profile.arn" => i.instance_profile_arn(&inventory.account).is_some_and(|arn| m(&arn)),
        _ => match name.strip_prefix("tag:") {
            Some(key) => tags(i).iter().any(|(k, v)| k == key && m(v)),
            None => false,
        },
    }
}

fn tags(i: &InstanceSpec) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = i.name.iter().map(|n| ("Name".to_string(), n.clone())).collect();
    t.extend(i.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    t
}

fn state_code(state: &str) -> u8 {
    match state {
        "pending" => 0,
        "running" => 16,
        "shutting-down" => 32,
        "terminated" => 48,
        "stopping" => 64,
        _ => 80,
    }
}

fn reservation_xml(xml: &mut String, state: &State, i: &InstanceSpec) {
    let e = xml_escape;
    let _ = write!(
        xml,
        "<item><reservationId>r-{}</reservationId><ownerId>{}</ownerId><groupSet/><instancesSet><item>\
         <instanceId>{}</instanceId><imageId>ami-0123456789abcdef0</imageId>\
         <instanceState><code>{}</code><name>{}</name></instanceState>\
         <privateDnsName>{}</privateDnsName><dnsName>{}</dnsName>\
         <instanceType>{}</instanceType><launchTime>{}</launchTime>\
         <placement><availabilityZone>{}</availabilityZone><tenancy>default</tenancy></placement>",
        &i.id[2..],
        e(&state.inventory.account),
        e(&i.id),
        state_code(&i.state),
        e(&i.state),
        e(&i.private_dns_name(&state.inventory.region)),
        e(&i.public_dns_name(&state.inventory.region)),
        e(&i.instance_type),
        e(&i.launch_time),
        e(&i.az),
    );
    if let Some(p) = &i.platform {
        let _ = write!(xml, "<platform>{}</platform>", e(p));
    }
    if let Some(k) = &i.key_name {
        let _ = write!(xml, "<keyName>{}</keyName>", e(k));
    }
    let _ = write!(xml, "<subnetId>{}</subnetId><vpcId>{}</vpcId>", e(&i.subnet_id), e(&i.vpc_id));
    if let Some(ip) = i.private_ip {
        let _ = write!(xml, "<privateIpAddress>{ip}</privateIpAddress>");
    }
    if let Some(ip) = i.public_ip {
        let _ = write!(xml, "<ipAddress>{ip}</ipAddress>");
    }
    xml.push_str("<groupSet>");
    for id in i.security_group_ids() {
        let name = state.inventory.security_group(&id).map_or("", |g| g.name.as_str());
        let _ = write!(xml, "<item><groupId>{}</groupId><groupName>{}</groupName></item>", e(&id), e(name));
    }
    xml.push_str("</groupSet>");
    if let Some(arn) = i.instance_profile_arn(&state.inventory.account) {
        let _ = write!(
            xml,
            "<iamInstanceProfile><arn>{}</arn><id>{}</id></iamInstanceProfile>",
            e(&arn),
            instance_profile_id(&arn)
        );
    }
    let _ = write!(
        xml,
        "<architecture>x86_64</architecture><hypervisor>xen</hypervisor><platformDetails>{}</platformDetails>",
        if i.platform.is_some() { "Windows" } else { "Linux/UNIX" }
    );
    let tags = tags(i);
    if !tags.is_empty() {
        xml.push_str("<tagSet>");
        for (k, v) in tags {
            let _ = write!(xml, "<item><key>{}</key><value>{}</value></item>", e(&k), e(&v));
        }
        xml.push_str("</tagSet>");
    }
    xml.push_str("</item></instancesSet></item>");
}

fn get_console_output(state: &State, params: &[(String, String)]) -> Response {
    let Some(id) = param(params, "InstanceId") else {
        return err(StatusCode::BAD_REQUEST, "MissingParameter", "The request must contain the parameter InstanceId");
    };
    let (Some(inst), Some(text)) = (state.instance(id), state.console_output(id)) else {
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidInstanceID.NotFound",
            &format!("The instance ID '{id}' does not exist"),
        );
    };
    // `Latest=true` returns the same text: the lab's console is its first boot's, and nothing
    // has been written since.
    let mut xml =
        format!("<instanceId>{}</instanceId><timestamp>{}</timestamp>", xml_escape(id), xml_escape(&inst.launch_time));
    if !text.is_empty() {
        let _ = write!(xml, "<output>{}</output>", crate::base64::encode(text.as_bytes()));
    }
    ok("GetConsoleOutput", state, &xml)
}

/// The account's serial console access in this Region (spec §2.3), set by the inventory or
/// `State::set_serial_access`; always managed by the account here (no declarative policy).
fn get_serial_console_access_status(state: &State) -> Response {
    let xml = format!(
        "<serialConsoleAccessEnabled>{}</serialConsoleAccessEnabled><managedBy>account</managedBy>",
        state.serial_access()
    );
    ok("GetSerialConsoleAccessStatus", state, &xml)
}

/// The answer to `DryRun=true` (EC2's "would have succeeded"), if the request asks for one.
pub(super) fn dry_run(params: &[(String, String)]) -> Option<Response> {
    (param(params, "DryRun") == Some("true")).then(|| {
        err(StatusCode::PRECONDITION_FAILED, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
    })
}
