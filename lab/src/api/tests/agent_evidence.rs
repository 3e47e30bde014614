//! The doubles the doctor reads when an SSM agent is offline (issue 16), over HTTP: IAM's
//! instance profiles, roles and policies (URL-encoded documents, `NoSuchEntity`), EC2's VPC
//! endpoints (state in lower case), route tables (subnet, main-table and implicit-table
//! filters, blackhole routes), NAT gateways, security-group egress and `metadataOptions`, and
//! SSM's GetServiceSetting and GetConnectionStatus.

use super::element;
use crate::scenario::Scenario;
use crate::test_world::{World, ec2, json_as, post_signed, scope};
use crate::{ACCESS_KEY_ID, Inventory};

const APP: &str = "i-0a9e000000000a001";
const VPC: &str = "vpc-0a9e0000000000001";
const SUBNET: &str = "subnet-0a9e0000000000001";

fn world(scenario: &str) -> World {
    let mut inventory: Inventory = Scenario::load(scenario).unwrap().inventory;
    inventory.serve_ssh = false;
    crate::test_world::start("agent-evidence", inventory)
}

fn iam(w: &World, form: &str) -> (u16, String) {
    let headers = "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n";
    post_signed(&w.lab, &scope(ACCESS_KEY_ID, "iam"), headers, &format!("{form}&Version=2010-05-08"))
}

fn ssm(w: &World, op: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, text) = json_as(&w.lab, ACCESS_KEY_ID, &format!("AmazonSSM.{op}"), body);
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")))
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn iam_profiles_roles_and_policies() {
    let w = world("agent-role-no-policy");
    let (status, xml) = iam(&w, "Action=GetInstanceProfile&InstanceProfileName=lab-ssm");
    assert_eq!(status, 200, "{xml}");
    assert_eq!(element(&xml, "RoleName"), Some("lab-ssm"), "{xml}");
    let trust = element(&xml, "AssumeRolePolicyDocument").unwrap();
    assert!(trust.starts_with("%7B%22") && !trust.contains('{'), "URL-encoded as IAM sends it: {trust}");
    assert!(decode(trust).contains(r#""Service":["ec2.amazonaws.com"]"#), "{}", decode(trust));

    let (status, xml) = iam(&w, "Action=ListAttachedRolePolicies&RoleName=lab-ssm");
    assert_eq!(status, 200, "{xml}");
    assert_eq!(element(&xml, "PolicyArn"), Some("arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"));
    assert_eq!(element(&xml, "PolicyName"), Some("AmazonSSMManagedInstanceCore"));

    let (_, xml) = iam(&w, "Action=ListRolePolicies&RoleName=app-no-core");
    assert!(xml.contains("<PolicyNames><member>logs</member></PolicyNames>"), "{xml}");
    let (status, xml) = iam(&w, "Action=GetRolePolicy&RoleName=app-no-core&PolicyName=logs");
    assert_eq!(status, 200, "{xml}");
    let doc = decode(element(&xml, "PolicyDocument").unwrap());
    assert!(doc.contains("ssm:UpdateInstanceInformation"), "{doc}");
    let (_, xml) = iam(&w, "Action=GetRole&RoleName=app-no-core");
    assert_eq!(element(&xml, "Arn"), Some("arn:aws:iam::123456789012:role/app-no-core"), "{xml}");

    for (form, message) in [
        ("Action=GetInstanceProfile&InstanceProfileName=gone", "Instance Profile gone cannot be found."),
        ("Action=GetRole&RoleName=gone", "The role with name gone cannot be found."),
        ("Action=GetRolePolicy&RoleName=lab-ssm&PolicyName=x", "The role policy with name x cannot be found."),
    ] {
        let (status, xml) = iam(&w, form);
        assert_eq!(status, 404, "{form}: {xml}");
        assert_eq!(element(&xml, "Code"), Some("NoSuchEntity"), "{xml}");
        assert_eq!(element(&xml, "Message"), Some(message), "{xml}");
    }
    let (status, xml) = iam(&w, "Action=GetRole");
    assert_eq!((status, element(&xml, "Code")), (400, Some("ValidationError")), "{xml}");

    w.lab.state().set_faults(|f| f.deny = ["iam:GetInstanceProfile".to_string()].into());
    let (status, xml) = iam(&w, "Action=GetInstanceProfile&InstanceProfileName=lab-ssm");
    assert_eq!((status, element(&xml, "Code")), (403, Some("AccessDenied")), "{xml}");
    assert!(
        element(&xml, "Message")
            .unwrap()
            .contains("iam:GetInstanceProfile on resource: arn:aws:iam::123456789012:instance-profile/lab-ssm")
    );
}

#[test]
fn vpc_endpoints_state_is_lower_case_and_filters_work() {
    let w = world("agent-endpoint-sg");
    let (status, xml) =
        ec2(&w.lab, &format!("Action=DescribeVpcEndpoints&Filter.1.Name=vpc-id&Filter.1.Value.1={VPC}"));
    assert_eq!(status, 200, "{xml}");
    assert_eq!(xml.matches("<state>available</state>").count(), 3, "{xml}");
    assert!(xml.contains("<serviceName>com.amazonaws.eu-west-1.ssmmessages</serviceName>"), "{xml}");
    assert!(xml.contains("<vpcEndpointType>Interface</vpcEndpointType>"), "{xml}");
    assert!(xml.contains("<privateDnsEnabled>true</privateDnsEnabled>"), "{xml}");
    assert!(xml.contains("<groupId>sg-0a9e0000000000e01</groupId>"), "{xml}");
    let (_, xml) = ec2(
        &w.lab,
        "Action=DescribeVpcEndpoints&Filter.1.Name=service-name&Filter.1.Value.1=com.amazonaws.eu-west-1.ssm",
    );
    assert_eq!(xml.matches("<vpcEndpointId>").count(), 1, "{xml}");
    let (status, xml) = ec2(&w.lab, "Action=DescribeVpcEndpoints&VpcEndpointId.1=vpce-0a9e000000000dead");
    assert_eq!((status, element(&xml, "Code")), (400, Some("InvalidVpcEndpointId.NotFound")), "{xml}");
    let (status, xml) = ec2(&w.lab, "Action=DescribeVpcEndpoints&Filter.1.Name=bogus&Filter.1.Value.1=x");
    assert_eq!((status, element(&xml, "Code")), (400, Some("InvalidParameterValue")), "{xml}");

    // The endpoints' group admits only TCP 22; an instance group keeps the default egress.
    let (_, xml) = ec2(&w.lab, "Action=DescribeSecurityGroups&GroupId.1=sg-0a9e0000000000e01");
    assert!(xml.contains("<ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort>"), "{xml}");
    assert!(xml.contains("<ipPermissionsEgress><item><ipProtocol>-1</ipProtocol>"), "{xml}");
}

#[test]
fn route_tables_by_subnet_main_and_implicit() {
    let w = world("agent-no-route");
    let (status, xml) = ec2(
        &w.lab,
        &format!("Action=DescribeRouteTables&Filter.1.Name=association.subnet-id&Filter.1.Value.1={SUBNET}"),
    );
    assert_eq!(status, 200, "{xml}");
    assert_eq!(element(&xml, "routeTableId"), Some("rtb-0a9e0000000000002"), "{xml}");
    assert!(
        xml.contains("<destinationCidrBlock>0.0.0.0/0</destinationCidrBlock><natGatewayId>nat-0a9e0000000000001</natGatewayId><state>blackhole</state>"),
        "{xml}"
    );
    assert!(xml.contains(&format!("<subnetId>{SUBNET}</subnetId><main>false</main>")), "{xml}");
    let main = format!(
        "Action=DescribeRouteTables&Filter.1.Name=vpc-id&Filter.1.Value.1={VPC}&Filter.2.Name=association.main&Filter.2.Value.1=true"
    );
    let (_, xml) = ec2(&w.lab, &main);
    assert_eq!(xml.matches("<routeSet>").count(), 1, "{xml}");
    assert!(xml.contains("<routeTableId>rtb-0a9e0000000000001</routeTableId>"), "{xml}");
    assert!(!xml.contains("0.0.0.0/0"), "only the local route: {xml}");
    // The default VPC has no table in the inventory: an implicit main one routes to an igw.
    let default_vpc = "Action=DescribeRouteTables&Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-0123456789abcdef0\
                       &Filter.2.Name=association.main&Filter.2.Value.1=true";
    let (_, xml) = ec2(&w.lab, default_vpc);
    assert!(xml.contains("<destinationCidrBlock>0.0.0.0/0</destinationCidrBlock><gatewayId>igw-"), "{xml}");
    let (status, xml) = ec2(&w.lab, "Action=DescribeRouteTables&RouteTableId.1=rtb-0a9e00000000dead0");
    assert_eq!((status, element(&xml, "Code")), (400, Some("InvalidRouteTableID.NotFound")), "{xml}");
    let (status, xml) = ec2(&w.lab, "Action=DescribeNatGateways&NatGatewayId.1=nat-0a9e0000000000001");
    assert_eq!((status, element(&xml, "Code")), (400, Some("NatGatewayNotFound")), "the NAT is gone: {xml}");
}

#[test]
fn metadata_options_and_ssm_agent_operations() {
    let w = world("agent-imds-off");
    let (_, xml) = ec2(&w.lab, &format!("Action=DescribeInstances&InstanceId.1={APP}"));
    assert!(xml.contains("<httpEndpoint>disabled</httpEndpoint>"), "{xml}");

    let setting = r#"{"SettingId":"/ssm/managed-instance/default-ec2-instance-management-role"}"#;
    let (status, v) = ssm(&w, "GetServiceSetting", setting);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ServiceSetting"]["SettingValue"], "$None");
    assert_eq!(v["ServiceSetting"]["Status"], "Default");
    let (status, v) = ssm(&w, "GetServiceSetting", r#"{"SettingId":"/ssm/nope"}"#);
    assert_eq!((status, v["__type"].as_str()), (400, Some("ServiceSettingNotFound")), "{v}");
    let (status, v) = ssm(&w, "GetServiceSetting", "{}");
    assert_eq!((status, v["__type"].as_str()), (400, Some("ValidationException")), "{v}");

    let (_, v) = ssm(&w, "GetConnectionStatus", &format!(r#"{{"Target":"{APP}"}}"#));
    assert_eq!(v["Status"], "notconnected", "not registered: {v}");
    let (_, v) = ssm(&w, "GetConnectionStatus", r#"{"Target":"i-0f1b2c3d4e5f6071d"}"#);
    assert_eq!(v["Status"], "connected", "db-1's agent is online: {v}");

    let w = world("agent-not-connected");
    let (_, v) = ssm(&w, "GetConnectionStatus", &format!(r#"{{"Target":"{APP}"}}"#));
    assert_eq!(v["Status"], "notconnected", "online, channel down: {v}");
    let (_, v) = ssm(
        &w,
        "DescribeInstanceInformation",
        &format!(r#"{{"Filters":[{{"Key":"InstanceIds","Values":["{APP}"]}}]}}"#),
    );
    assert_eq!(v["InstanceInformationList"][0]["PingStatus"], "Online", "{v}");
}

#[test]
fn dhmc_role_when_the_inventory_sets_one() {
    let mut inventory = Inventory::demo();
    inventory.serve_ssh = false;
    inventory.default_host_management_role =
        Some("service-role/AWSSystemsManagerDefaultEC2InstanceManagementRole".into());
    let w = crate::test_world::start("agent-evidence", inventory);
    let setting = r#"{"SettingId":"/ssm/managed-instance/default-ec2-instance-management-role"}"#;
    let (_, v) = ssm(&w, "GetServiceSetting", setting);
    assert_eq!(v["ServiceSetting"]["SettingValue"], "service-role/AWSSystemsManagerDefaultEC2InstanceManagementRole");
    assert_eq!(v["ServiceSetting"]["Status"], "Customized");
}
