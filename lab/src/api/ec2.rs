//! EC2 query API double: DescribeInstances (filters, pagination), GetConsoleOutput and
//! GetSerialConsoleAccessStatus, with the real XML element names (`../shared/spec/aws-apis.md`
//! §1.3, §2.3), and the dispatch to DescribeInstanceConnectEndpoints
//! (`instance_connect_endpoints`), DescribeInstanceTypes (`instance_types`),
//! DescribeKeyPairs, ImportKeyPair and DeleteKeyPair (`key_pairs`) and DescribeSecurityGroups (`security_groups`).

use std::collections::HashSet;
use std::fmt::Write;

use axum::http::StatusCode;
use axum::response::Response;

use super::filters::{Values, filters, limit_error};
use super::instance_filters::{
    ARCHITECTURE, BOOT_MODE, IMAGE_ID, METADATA_HOP_LIMIT, ROOT_DEVICE, attachment_id, eni_id, has_eni, mac_address,
    platform_details, reservation_id, usage_operation,
};
use super::query::{dry_run, err, list, malformed_instance_id, ok, param};
use super::xml_escape;
use crate::inventory::{InstanceSpec, instance_profile_id};
use crate::state::State;

pub(super) fn handle(state: &State, action: &str, params: &[(String, String)]) -> Response {
    match action {
        "DescribeInstances" => describe_instances(state, params),
        "GetConsoleOutput" => get_console_output(state, params),
        "DescribeInstanceConnectEndpoints" => super::instance_connect_endpoints::describe(state, params),
        "DescribeInstanceTypes" => super::instance_types::describe(state, params),
        "DescribeKeyPairs" => super::key_pairs::describe(state, params),
        "ImportKeyPair" => super::key_pairs::import(state, params),
        "DeleteKeyPair" => super::key_pairs::delete(state, params),
        "DescribeSecurityGroups" => super::security_groups::describe(state, params),
        "GetSerialConsoleAccessStatus" => get_serial_console_access_status(state, params),
        "DescribeVpcEndpoints" => super::vpc::describe_vpc_endpoints(state, params),
        "DescribeRouteTables" => super::vpc::describe_route_tables(state, params),
        "DescribeNatGateways" => super::vpc::describe_nat_gateways(state, params),
        "" => err(StatusCode::BAD_REQUEST, "MissingAction", "The request must contain the parameter Action"),
        other => err(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!("The action {other} is not valid for this web service."),
        ),
    }
}

/// `DescribeInstances`: `InstanceId.N`, `Filter.N` (values ORed, at most 200 in all),
/// `MaxResults` (5–1000, not with `InstanceId.N`), `NextToken`.
fn describe_instances(state: &State, params: &[(String, String)]) -> Response {
    if let Some(answer) = dry_run(params) {
        return answer;
    }
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
        if let Some(malformed) = malformed_instance_id(id) {
            return malformed;
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
        if !super::instance_filters::known(name) {
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
        .filter(|i| {
            filters.iter().all(|(name, values)| {
                super::instance_filters::values(i, inventory, name).iter().any(|v| values.matches(v))
            })
        })
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

pub(super) fn tags(i: &InstanceSpec) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = i.name.iter().map(|n| ("Name".to_string(), n.clone())).collect();
    t.extend(i.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    t
}

pub(super) fn state_code(state: &str) -> u8 {
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
    let (region, account) = (&state.inventory.region, &state.inventory.account);
    let _ = write!(
        xml,
        "<item><reservationId>{}</reservationId><ownerId>{}</ownerId><groupSet/><instancesSet><item>\
         <instanceId>{}</instanceId><imageId>{IMAGE_ID}</imageId>\
         <instanceState><code>{}</code><name>{}</name></instanceState>\
         <privateDnsName>{}</privateDnsName><dnsName>{}</dnsName><reason/>\
         <amiLaunchIndex>0</amiLaunchIndex><productCodes/>\
         <instanceType>{}</instanceType><launchTime>{}</launchTime>\
         <placement><availabilityZone>{}</availabilityZone><groupName/><tenancy>default</tenancy></placement>\
         <monitoring><state>disabled</state></monitoring>",
        reservation_id(i),
        e(account),
        e(&i.id),
        state_code(&i.state),
        e(&i.state),
        e(&i.private_dns_name(region)),
        e(&i.public_dns_name(region)),
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
    let _ = write!(
        xml,
        "<sourceDestCheck>true</sourceDestCheck><rootDeviceType>ebs</rootDeviceType>\
         <rootDeviceName>{ROOT_DEVICE}</rootDeviceName><blockDeviceMapping/>\
         <virtualizationType>hvm</virtualizationType><clientToken/><ebsOptimized>false</ebsOptimized>\
         <enaSupport>true</enaSupport>"
    );
    xml.push_str("<groupSet>");
    for id in i.security_group_ids() {
        let name = state.inventory.security_group(&id).map_or("", |g| g.name.as_str());
        let _ = write!(xml, "<item><groupId>{}</groupId><groupName>{}</groupName></item>", e(&id), e(name));
    }
    xml.push_str("</groupSet>");
    network_interfaces_xml(xml, state, i);
    if let Some(arn) = i.instance_profile_arn(account) {
        let _ = write!(
            xml,
            "<iamInstanceProfile><arn>{}</arn><id>{}</id></iamInstanceProfile>",
            e(&arn),
            instance_profile_id(&arn)
        );
    }
    let _ = write!(
        xml,
        "<architecture>{ARCHITECTURE}</architecture><hypervisor>xen</hypervisor>\
         <platformDetails>{}</platformDetails><usageOperation>{}</usageOperation>\
         <usageOperationUpdateTime>{}</usageOperationUpdateTime>\
         <cpuOptions><coreCount>1</coreCount><threadsPerCore>2</threadsPerCore></cpuOptions>\
         <capacityReservationSpecification><capacityReservationPreference>open</capacityReservationPreference></capacityReservationSpecification>\
         <hibernationOptions><configured>false</configured></hibernationOptions>\
         <metadataOptions><state>applied</state><httpTokens>required</httpTokens>\
         <httpPutResponseHopLimit>{METADATA_HOP_LIMIT}</httpPutResponseHopLimit><httpEndpoint>{}</httpEndpoint>\
         <httpProtocolIpv6>disabled</httpProtocolIpv6><instanceMetadataTags>disabled</instanceMetadataTags></metadataOptions>\
         <enclaveOptions><enabled>false</enabled></enclaveOptions>\
         <maintenanceOptions><autoRecovery>default</autoRecovery></maintenanceOptions>\
         <currentInstanceBootMode>{BOOT_MODE}</currentInstanceBootMode>",
        platform_details(i),
        usage_operation(i),
        e(&i.launch_time),
        e(&i.metadata_endpoint),
    );
    if i.private_ip.is_some() {
        let _ = write!(
            xml,
            "<privateDnsNameOptions><hostnameType>ip-name</hostnameType>\
             <enableResourceNameDnsARecord>false</enableResourceNameDnsARecord>\
             <enableResourceNameDnsAAAARecord>false</enableResourceNameDnsAAAARecord></privateDnsNameOptions>"
        );
    }
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

/// `networkInterfaceSet`: the primary interface of an instance that has one (spec §2.3), with
/// its addresses, the public address's association, its groups and its attachment.
fn network_interfaces_xml(xml: &mut String, state: &State, i: &InstanceSpec) {
    let e = xml_escape;
    let (region, account) = (&state.inventory.region, &state.inventory.account);
    let Some(private_ip) = i.private_ip.filter(|_| has_eni(i)) else {
        xml.push_str("<networkInterfaceSet/>");
        return;
    };
    let association = match i.public_ip {
        Some(ip) => format!(
            "<association><publicIp>{ip}</publicIp><publicDnsName>{}</publicDnsName><ipOwnerId>amazon</ipOwnerId></association>",
            e(&i.public_dns_name(region))
        ),
        None => String::new(),
    };
    let private_dns = e(&i.private_dns_name(region));
    let _ = write!(
        xml,
        "<networkInterfaceSet><item><networkInterfaceId>{}</networkInterfaceId><subnetId>{}</subnetId>\
         <vpcId>{}</vpcId><description/><ownerId>{}</ownerId><status>in-use</status>\
         <macAddress>{}</macAddress><privateIpAddress>{private_ip}</privateIpAddress>\
         <privateDnsName>{private_dns}</privateDnsName><sourceDestCheck>true</sourceDestCheck><groupSet>",
        eni_id(i),
        e(&i.subnet_id),
        e(&i.vpc_id),
        e(account),
        mac_address(i),
    );
    for id in i.security_group_ids() {
        let name = state.inventory.security_group(&id).map_or("", |g| g.name.as_str());
        let _ = write!(xml, "<item><groupId>{}</groupId><groupName>{}</groupName></item>", e(&id), e(name));
    }
    let _ = write!(
        xml,
        "</groupSet><attachment><attachmentId>{}</attachmentId><deviceIndex>0</deviceIndex><status>attached</status>\
         <attachTime>{}</attachTime><deleteOnTermination>true</deleteOnTermination><networkCardIndex>0</networkCardIndex>\
         </attachment>{association}<privateIpAddressesSet><item><privateIpAddress>{private_ip}</privateIpAddress>\
         <privateDnsName>{private_dns}</privateDnsName><primary>true</primary>{association}</item></privateIpAddressesSet>\
         <ipv6AddressesSet/><interfaceType>interface</interfaceType></item></networkInterfaceSet>",
        attachment_id(i),
        e(&i.launch_time),
    );
}

fn get_console_output(state: &State, params: &[(String, String)]) -> Response {
    if let Some(answer) = dry_run(params) {
        return answer;
    }
    let Some(id) = param(params, "InstanceId") else {
        return err(StatusCode::BAD_REQUEST, "MissingParameter", "The request must contain the parameter InstanceId");
    };
    if let Some(malformed) = malformed_instance_id(id) {
        return malformed;
    }
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
fn get_serial_console_access_status(state: &State, params: &[(String, String)]) -> Response {
    if let Some(answer) = dry_run(params) {
        return answer;
    }
    let xml = format!(
        "<serialConsoleAccessEnabled>{}</serialConsoleAccessEnabled><managedBy>account</managedBy>",
        state.serial_access()
    );
    ok("GetSerialConsoleAccessStatus", state, &xml)
}
