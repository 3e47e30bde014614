//! Security groups and instance profiles over HTTP: each instance's `groupSet` and
//! `iamInstanceProfile` in DescribeInstances (implicit and declared), the new DescribeInstances
//! filters, and DescribeSecurityGroups with its ids, names, filters and errors.

use super::element;
use crate::Inventory;
use crate::test_world::{World, ec2};

const OFFICE: &str = "sg-0123456789abcdef1";

const INVENTORY: &str = r#"
serve_ssh = false

[[security_group]]
id = "sg-0123456789abcdef1"
name = "ssh-from-office"
description = "SSH from the office & VPN"
ingress = [
  { from_port = 22, to_port = 22, cidrs = ["203.0.113.0/24", "198.51.100.7/32"] },
  { protocol = "udp", from_port = 60000, to_port = 61000, cidrs = ["0.0.0.0/0"] },
]

[[security_group]]
id = "sg-0bad0b0b"
name = "other-vpc"
vpc_id = "vpc-0150a7ed000000001"

[[instance]]
id = "i-0a0000000000000a1"
name = "open"
private_ip = "127.0.9.10"

[[instance]]
id = "i-0a0000000000000a2"
name = "closed"
private_ip = "127.0.9.11"
inbound = false

[[instance]]
id = "i-0a0000000000000a3"
name = "office"
private_ip = "127.0.9.12"
security_groups = ["sg-0123456789abcdef1", "sg-0000000000000000a"]
instance_profile = "arn:aws:iam::123456789012:instance-profile/web"

[[instance]]
id = "i-0a0000000000000a4"
name = "win"
private_ip = "127.0.9.13"
platform = "windows"

[[instance]]
id = "i-0a0000000000000a5"
name = "no-profile"
private_ip = "127.0.9.14"
instance_profile = "none"
"#;

fn world() -> World {
    crate::test_world::start("security-groups", Inventory::from_toml(INVENTORY).unwrap())
}

/// The items of a DescribeSecurityGroups answer.
fn groups(xml: &str) -> Vec<String> {
    let list = xml.split("<securityGroupInfo>").nth(1).unwrap_or_default();
    let list = list.split("</securityGroupInfo>").next().unwrap_or_default();
    list.split("<item><ownerId>").skip(1).map(|item| format!("<item><ownerId>{item}")).collect()
}

#[test]
fn describe_instances_reports_groups_and_instance_profiles() {
    let w = world();
    let (status, xml) = ec2(&w.lab, "Action=DescribeInstances");
    assert_eq!(status, 200, "{xml}");
    let items: Vec<&str> = xml.split("<instancesSet><item>").skip(1).collect();
    assert_eq!(items.len(), 5);
    let open =
        "<groupSet><item><groupId>sg-0000000000000000a</groupId><groupName>lab-open</groupName></item></groupSet>";
    let closed =
        "<groupSet><item><groupId>sg-0000000000000000c</groupId><groupName>lab-closed</groupName></item></groupSet>";
    assert!(items[0].contains(open), "{}", items[0]);
    assert!(items[1].contains(closed), "{}", items[1]);
    assert!(
        items[2].contains(
            "<groupSet><item><groupId>sg-0123456789abcdef1</groupId><groupName>ssh-from-office</groupName></item>\
             <item><groupId>sg-0000000000000000a</groupId><groupName>lab-open</groupName></item></groupSet>"
        ),
        "{}",
        items[2]
    );

    let profile = |item: &str| {
        element(item, "iamInstanceProfile")
            .map(|p| (element(p, "arn").unwrap().to_string(), element(p, "id").unwrap().to_string()))
    };
    let (arn, id) = profile(items[0]).expect("Linux instances with an SSM agent get lab-ssm");
    assert_eq!(arn, "arn:aws:iam::123456789012:instance-profile/lab-ssm");
    assert!(id.starts_with("AIPA") && id.len() == 21, "{id}");
    assert_eq!(profile(items[1]).map(|p| p.0), Some(arn.clone()));
    let (web, web_id) = profile(items[2]).unwrap();
    assert_eq!(web, "arn:aws:iam::123456789012:instance-profile/web");
    assert_ne!(web_id, id);
    assert_eq!(profile(items[3]), None, "Windows: no SSM agent, no profile");
    assert_eq!(profile(items[4]), None, "instance_profile = \"none\"");

    let count = |filter: &str| {
        let (status, xml) = ec2(&w.lab, &format!("Action=DescribeInstances&{filter}"));
        assert_eq!(status, 200, "{xml}");
        xml.matches("<instancesSet><item>").count()
    };
    assert_eq!(count(&format!("Filter.1.Name=instance.group-id&Filter.1.Value.1={OFFICE}")), 1);
    assert_eq!(count("Filter.1.Name=instance.group-id&Filter.1.Value.1=sg-0000000000000000a"), 4);
    assert_eq!(count("Filter.1.Name=instance.group-name&Filter.1.Value.1=lab-closed"), 1);
    assert_eq!(count("Filter.1.Name=iam-instance-profile.arn&Filter.1.Value.1=*/lab-ssm"), 2);
}

#[test]
fn describe_security_groups_by_id_name_and_filter() {
    let w = world();
    let (status, xml) = ec2(&w.lab, "Action=DescribeSecurityGroups");
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains("<DescribeSecurityGroupsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"),
        "{xml}"
    );
    let all = groups(&xml);
    assert_eq!(all.len(), 4, "the two implicit groups and the inventory's: {xml}");
    assert!(all[0].contains("<groupId>sg-0000000000000000a</groupId><groupName>lab-open</groupName>"));
    assert!(
        all[0].contains(
            "<ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>0</fromPort><toPort>65535</toPort><groups/>\
             <ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges><ipv6Ranges/><prefixListIds/></item></ipPermissions>"
        ),
        "{}",
        all[0]
    );
    assert!(all[1].contains("<groupName>lab-closed</groupName>") && all[1].contains("<ipPermissions></ipPermissions>"));

    let (status, xml) = ec2(&w.lab, &format!("Action=DescribeSecurityGroups&GroupId.1={OFFICE}"));
    assert_eq!(status, 200, "{xml}");
    let office = groups(&xml);
    assert_eq!(office.len(), 1);
    assert_eq!(
        office[0],
        "<item><ownerId>123456789012</ownerId><groupId>sg-0123456789abcdef1</groupId><groupName>ssh-from-office</groupName>\
         <groupDescription>SSH from the office &amp; VPN</groupDescription><vpcId>vpc-0123456789abcdef0</vpcId>\
         <securityGroupArn>arn:aws:ec2:eu-west-1:123456789012:security-group/sg-0123456789abcdef1</securityGroupArn>\
         <ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort><groups/><ipRanges>\
         <item><cidrIp>203.0.113.0/24</cidrIp></item><item><cidrIp>198.51.100.7/32</cidrIp></item></ipRanges><ipv6Ranges/>\
         <prefixListIds/></item><item><ipProtocol>udp</ipProtocol><fromPort>60000</fromPort><toPort>61000</toPort><groups/>\
         <ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges><ipv6Ranges/><prefixListIds/></item></ipPermissions>\
         <ipPermissionsEgress><item><ipProtocol>-1</ipProtocol><groups/><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item>\
         </ipRanges><ipv6Ranges/><prefixListIds/></item></ipPermissionsEgress></item>"
    );

    let ids = |form: &str| -> Vec<String> {
        let (status, xml) = ec2(&w.lab, &format!("Action=DescribeSecurityGroups&{form}"));
        assert_eq!(status, 200, "{xml}");
        groups(&xml).iter().map(|g| element(g, "groupId").unwrap().to_string()).collect()
    };
    assert_eq!(ids("Filter.1.Name=group-id&Filter.1.Value.1=sg-0bad0b0b"), ["sg-0bad0b0b"]);
    assert_eq!(ids("Filter.1.Name=group-name&Filter.1.Value.1=lab-*").len(), 2);
    assert_eq!(ids("Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-0150a7ed000000001"), ["sg-0bad0b0b"]);
    assert_eq!(ids("GroupName.1=ssh-from-office&GroupId.1=sg-0000000000000000c"), ["sg-0000000000000000c", OFFICE]);
    assert!(ids("Filter.1.Name=group-id&Filter.1.Value.1=sg-99999999").is_empty(), "a filter is no error");
}

#[test]
fn unknown_and_malformed_groups_are_errors() {
    let w = world();
    let (status, xml) =
        ec2(&w.lab, &format!("Action=DescribeSecurityGroups&GroupId.1={OFFICE}&GroupId.2=sg-0fedcba9876543210"));
    assert_eq!(status, 400);
    assert!(
        xml.contains("<Response><Errors><Error><Code>InvalidGroup.NotFound</Code><Message>The security group &apos;sg-0fedcba9876543210&apos; does not exist</Message>"),
        "{xml}"
    );
    let (status, xml) = ec2(&w.lab, "Action=DescribeSecurityGroups&GroupId.1=web");
    assert!(status == 400 && xml.contains("<Code>InvalidGroupId.Malformed</Code>"), "{xml}");
    let (status, xml) = ec2(&w.lab, "Action=DescribeSecurityGroups&GroupName.1=gone");
    assert!(status == 400 && xml.contains("<Code>InvalidGroup.NotFound</Code>"), "{xml}");
    let (status, xml) =
        ec2(&w.lab, "Action=DescribeSecurityGroups&Filter.1.Name=ip-permission.cidr&Filter.1.Value.1=x");
    assert!(status == 400 && xml.contains("<Code>InvalidParameterValue</Code>"), "{xml}");
}
