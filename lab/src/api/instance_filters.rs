//! DescribeInstances' filters (issue 18 item 6): every name EC2 documents (the `Filters` member
//! of aws-sdk-ec2's `DescribeInstancesInput`, plus `tag:<key>` and the older `tag-value`) is
//! accepted, and each is answered from what the lab's DescribeInstances reports for the
//! instance. A documented filter over something the lab does not model (block devices, Spot,
//! capacity reservations, IPv6, …) matches no instance, as it would match no instance that
//! lacks the attribute; an unknown name is `InvalidParameterValue`, as EC2 answers.

use super::ec2::{state_code, tags};
use crate::inventory::{InstanceSpec, Inventory, instance_profile_id};

/// Every filter name DescribeInstances documents (aws-sdk-ec2 1.237's model docs), but `tag:<key>`.
const DOCUMENTED: &[&str] = &[
    "affinity",
    "architecture",
    "availability-zone",
    "availability-zone-id",
    "block-device-mapping.attach-time",
    "block-device-mapping.delete-on-termination",
    "block-device-mapping.device-name",
    "block-device-mapping.status",
    "block-device-mapping.volume-id",
    "boot-mode",
    "capacity-reservation-id",
    "capacity-reservation-specification.capacity-reservation-preference",
    "capacity-reservation-specification.capacity-reservation-target.capacity-reservation-id",
    "capacity-reservation-specification.capacity-reservation-target.capacity-reservation-resource-group-arn",
    "client-token",
    "current-instance-boot-mode",
    "dns-name",
    "ebs-optimized",
    "ena-support",
    "enclave-options.enabled",
    "hibernation-options.configured",
    "host-id",
    "hypervisor",
    "iam-instance-profile.arn",
    "iam-instance-profile.id",
    "image-id",
    "instance-id",
    "instance-lifecycle",
    "instance-state-code",
    "instance-state-name",
    "instance-type",
    "instance.group-id",
    "instance.group-name",
    "ip-address",
    "ipv6-address",
    "kernel-id",
    "key-name",
    "launch-index",
    "launch-time",
    "maintenance-options.auto-recovery",
    "metadata-options.http-endpoint",
    "metadata-options.http-protocol-ipv4",
    "metadata-options.http-protocol-ipv6",
    "metadata-options.http-put-response-hop-limit",
    "metadata-options.http-tokens",
    "metadata-options.instance-metadata-tags",
    "metadata-options.state",
    "monitoring-state",
    "network-interface.addresses.association.allocation-id",
    "network-interface.addresses.association.association-id",
    "network-interface.addresses.association.carrier-ip",
    "network-interface.addresses.association.customer-owned-ip",
    "network-interface.addresses.association.ip-owner-id",
    "network-interface.addresses.association.public-dns-name",
    "network-interface.addresses.association.public-ip",
    "network-interface.addresses.primary",
    "network-interface.addresses.private-dns-name",
    "network-interface.addresses.private-ip-address",
    "network-interface.association.allocation-id",
    "network-interface.association.association-id",
    "network-interface.association.carrier-ip",
    "network-interface.association.customer-owned-ip",
    "network-interface.association.ip-owner-id",
    "network-interface.association.public-dns-name",
    "network-interface.association.public-ip",
    "network-interface.attachment.attach-time",
    "network-interface.attachment.attachment-id",
    "network-interface.attachment.delete-on-termination",
    "network-interface.attachment.device-index",
    "network-interface.attachment.instance-id",
    "network-interface.attachment.instance-owner-id",
    "network-interface.attachment.network-card-index",
    "network-interface.attachment.status",
    "network-interface.availability-zone",
    "network-interface.deny-all-igw-traffic",
    "network-interface.description",
    "network-interface.group-id",
    "network-interface.group-name",
    "network-interface.ipv4-prefixes.ipv4-prefix",
    "network-interface.ipv6-address",
    "network-interface.ipv6-addresses.ipv6-address",
    "network-interface.ipv6-addresses.is-primary-ipv6",
    "network-interface.ipv6-native",
    "network-interface.ipv6-prefixes.ipv6-prefix",
    "network-interface.mac-address",
    "network-interface.network-interface-id",
    "network-interface.operator.managed",
    "network-interface.operator.principal",
    "network-interface.outpost-arn",
    "network-interface.owner-id",
    "network-interface.private-dns-name",
    "network-interface.private-ip-address",
    "network-interface.public-dns-name",
    "network-interface.requester-id",
    "network-interface.requester-managed",
    "network-interface.status",
    "network-interface.source-dest-check",
    "network-interface.subnet-id",
    "network-interface.tag-key",
    "network-interface.tag-value",
    "network-interface.vpc-id",
    "network-performance-options.bandwidth-weighting",
    "operator.managed",
    "operator.principal",
    "outpost-arn",
    "owner-id",
    "placement-group-name",
    "placement-partition-number",
    "platform",
    "platform-details",
    "private-dns-name",
    "private-dns-name-options.enable-resource-name-dns-a-record",
    "private-dns-name-options.enable-resource-name-dns-aaaa-record",
    "private-dns-name-options.hostname-type",
    "private-ip-address",
    "product-code",
    "product-code.type",
    "ramdisk-id",
    "requester-id",
    "reservation-id",
    "root-device-name",
    "root-device-type",
    "source-dest-check",
    "spot-instance-request-id",
    "state-reason-code",
    "state-reason-message",
    "subnet-id",
    "tag-key",
    "tenancy",
    "tpm-support",
    "usage-operation",
    "usage-operation-update-time",
    "virtualization-type",
    "vpc-id",
    "tag-value",
];

/// Whether EC2 knows the filter `name`.
pub(super) fn known(name: &str) -> bool {
    DOCUMENTED.contains(&name) || name.strip_prefix("tag:").is_some_and(|k| !k.is_empty())
}

/// What the filter `name` compares for instance `i`: the values DescribeInstances reports for
/// it (empty when the instance has none, or the lab does not model the attribute).
pub(super) fn values(i: &InstanceSpec, inventory: &Inventory, name: &str) -> Vec<String> {
    let region = &inventory.region;
    let account = &inventory.account;
    let one = |v: &str| vec![v.to_string()];
    let eni = has_eni(i);
    let eni_only = |v: Vec<String>| if eni { v } else { Vec::new() };
    let private_ip: Vec<String> = i.private_ip.iter().map(|ip| ip.to_string()).collect();
    let public_ip: Vec<String> = i.public_ip.iter().map(|ip| ip.to_string()).collect();
    let private_dns = || if i.private_ip.is_some() { one(&i.private_dns_name(region)) } else { Vec::new() };
    let public_dns = || if i.public_ip.is_some() { one(&i.public_dns_name(region)) } else { Vec::new() };
    let groups = || i.security_group_ids();
    let group_names =
        || groups().iter().filter_map(|id| inventory.security_group(id)).map(|g| g.name.clone()).collect::<Vec<_>>();
    let profile = i.instance_profile_arn(account);
    match name {
        "architecture" => one(ARCHITECTURE),
        "availability-zone" => one(&i.az),
        "network-interface.availability-zone" => eni_only(one(&i.az)),
        "current-instance-boot-mode" => one(BOOT_MODE),
        "dns-name" => public_dns(),
        "ebs-optimized" | "enclave-options.enabled" | "hibernation-options.configured" => one("false"),
        "ena-support" => one("true"),
        "hypervisor" => one("xen"),
        "iam-instance-profile.arn" => profile.into_iter().collect(),
        "iam-instance-profile.id" => profile.map(|arn| instance_profile_id(&arn)).into_iter().collect(),
        "image-id" => one(IMAGE_ID),
        "instance-id" => one(&i.id),
        "instance-state-code" => one(&state_code(&i.state).to_string()),
        "instance-state-name" => one(&i.state),
        "instance-type" => one(&i.instance_type),
        "instance.group-id" => groups(),
        "instance.group-name" => group_names(),
        "ip-address" => public_ip,
        "key-name" => i.key_name.iter().cloned().collect(),
        "launch-index" => one("0"),
        "launch-time" | "usage-operation-update-time" => one(&i.launch_time),
        "maintenance-options.auto-recovery" => one("default"),
        "metadata-options.http-endpoint" | "metadata-options.http-protocol-ipv4" => one("enabled"),
        "metadata-options.http-protocol-ipv6" | "metadata-options.instance-metadata-tags" => one("disabled"),
        "metadata-options.http-put-response-hop-limit" => one(&METADATA_HOP_LIMIT.to_string()),
        "metadata-options.http-tokens" => one("required"),
        "metadata-options.state" => one("applied"),
        "monitoring-state" => one("disabled"),
        "network-interface.addresses.private-ip-address" | "network-interface.private-ip-address" => {
            eni_only(private_ip)
        }
        "network-interface.addresses.association.public-ip" | "network-interface.association.public-ip" => {
            eni_only(public_ip)
        }
        "network-interface.addresses.association.public-dns-name"
        | "network-interface.association.public-dns-name"
        | "network-interface.public-dns-name" => eni_only(public_dns()),
        "network-interface.addresses.private-dns-name" | "network-interface.private-dns-name" => {
            eni_only(private_dns())
        }
        "network-interface.addresses.primary" | "network-interface.source-dest-check" => eni_only(one("true")),
        "network-interface.requester-managed" | "network-interface.attachment.delete-on-termination" => {
            eni_only(one(if name.ends_with("managed") { "false" } else { "true" }))
        }
        "network-interface.attachment.attachment-id" => eni_only(one(&attachment_id(i))),
        "network-interface.attachment.device-index" | "network-interface.attachment.network-card-index" => {
            eni_only(one("0"))
        }
        "network-interface.attachment.instance-id" => eni_only(one(&i.id)),
        "network-interface.attachment.instance-owner-id" | "network-interface.owner-id" => eni_only(one(account)),
        "network-interface.attachment.status" => eni_only(one("attached")),
        "network-interface.group-id" => eni_only(groups()),
        "network-interface.group-name" => eni_only(group_names()),
        "network-interface.mac-address" => eni_only(one(&mac_address(i))),
        "network-interface.network-interface-id" => eni_only(one(&eni_id(i))),
        "network-interface.status" => eni_only(one("in-use")),
        "network-interface.subnet-id" => eni_only(one(&i.subnet_id)),
        "network-interface.vpc-id" => eni_only(one(&i.vpc_id)),
        "operator.managed" => one("false"),
        "owner-id" => one(account),
        "platform" => i.platform.iter().cloned().collect(),
        "platform-details" => one(platform_details(i)),
        "private-dns-name" => private_dns(),
        "private-ip-address" => private_ip,
        "reservation-id" => one(&reservation_id(i)),
        "root-device-name" => one(ROOT_DEVICE),
        "root-device-type" => one("ebs"),
        "source-dest-check" => one("true"),
        "subnet-id" => one(&i.subnet_id),
        "tag-key" => tags(i).into_iter().map(|(k, _)| k).collect(),
        "tag-value" => tags(i).into_iter().map(|(_, v)| v).collect(),
        "tenancy" => one("default"),
        "usage-operation" => one(usage_operation(i)),
        "virtualization-type" => one("hvm"),
        "vpc-id" => one(&i.vpc_id),
        _ => match name.strip_prefix("tag:") {
            Some(key) => tags(i).into_iter().filter(|(k, _)| k == key).map(|(_, v)| v).collect(),
            None => Vec::new(),
        },
    }
}

/// Every instance reports `architecture` x86_64 (the lab's types are all x86).
pub(super) const ARCHITECTURE: &str = "x86_64";
/// `currentInstanceBootMode` of the lab's AMI.
pub(super) const BOOT_MODE: &str = "legacy-bios";
/// The AMI every lab instance runs.
pub(crate) const IMAGE_ID: &str = "ami-0123456789abcdef0";
/// `rootDeviceName` of that AMI.
pub(super) const ROOT_DEVICE: &str = "/dev/xvda";
/// IMDS hop limit: 2, the default of AMIs whose IMDS needs tokens (AL2023).
pub(super) const METADATA_HOP_LIMIT: u8 = 2;

/// Whether the instance has its primary network interface: every instance but a terminated one
/// (whose interface is deleted with it) that has a private address.
pub(super) fn has_eni(i: &InstanceSpec) -> bool {
    i.state != "terminated" && i.private_ip.is_some()
}

/// `platformDetails`: `Windows` or `Linux/UNIX`.
pub(super) fn platform_details(i: &InstanceSpec) -> &'static str {
    if i.platform.is_some() { "Windows" } else { "Linux/UNIX" }
}

/// `usageOperation`: the billing code of the platform (`RunInstances` for Linux/UNIX,
/// `RunInstances:0002` for Windows, per the EC2 User Guide's "AMI billing information fields").
pub(super) fn usage_operation(i: &InstanceSpec) -> &'static str {
    if i.platform.is_some() { "RunInstances:0002" } else { "RunInstances" }
}

/// `r-` and the instance id's hex digits.
pub(super) fn reservation_id(i: &InstanceSpec) -> String {
    format!("r-{}", i.id.trim_start_matches("i-"))
}

/// `eni-` and the instance id's hex digits.
pub(super) fn eni_id(i: &InstanceSpec) -> String {
    format!("eni-{}", i.id.trim_start_matches("i-"))
}

/// `eni-attach-` and the instance id's hex digits.
pub(super) fn attachment_id(i: &InstanceSpec) -> String {
    format!("eni-attach-{}", i.id.trim_start_matches("i-"))
}

/// A locally administered MAC address derived from the instance id.
pub(super) fn mac_address(i: &InstanceSpec) -> String {
    let hex: Vec<u8> = i.id.bytes().rev().filter(u8::is_ascii_hexdigit).take(10).collect();
    let mut octets = vec!["02".to_string()];
    for pair in hex.chunks(2).rev() {
        let pair: String = pair.iter().rev().map(|b| *b as char).collect();
        octets.push(format!("{pair:0>2}"));
    }
    octets.join(":")
}
