//! Security groups (`[[security_group]]`, DescribeSecurityGroups and each instance's
//! `groupSet`), and the two implicit groups instances without `security_groups` are in.
//!
//! The groups are reported only: whether an instance's sshd listens on its addresses is still
//! decided by its `inbound` (the lab's sshd ports are ephemeral, so the implicit open group
//! allows every TCP port).

use std::net::Ipv4Addr;
use std::sync::LazyLock;

use serde::Deserialize;

/// The implicit group of instances with `inbound = true` and no `security_groups`: TCP 0–65535
/// from `0.0.0.0/0`.
pub const OPEN_SECURITY_GROUP_ID: &str = "sg-0000000000000000a";
/// [`OPEN_SECURITY_GROUP_ID`]'s name.
pub const OPEN_SECURITY_GROUP_NAME: &str = "lab-open";
/// The implicit group of instances with `inbound = false` and no `security_groups`: no ingress.
pub const CLOSED_SECURITY_GROUP_ID: &str = "sg-0000000000000000c";
/// [`CLOSED_SECURITY_GROUP_ID`]'s name.
pub const CLOSED_SECURITY_GROUP_NAME: &str = "lab-closed";

/// One security group (`[[security_group]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupSpec {
    /// `sg-` and 8 or 17 lower-case hex digits.
    pub id: String,
    /// `groupName`.
    pub name: String,
    /// `groupDescription`; absent: `lab security group <name>`.
    pub description: Option<String>,
    /// The VPC it belongs to (default: the default VPC).
    #[serde(default = "super::default_vpc")]
    pub vpc_id: String,
    /// Inbound rules (`ipPermissions`).
    #[serde(default)]
    pub ingress: Vec<IngressRule>,
    /// Outbound rules (`ipPermissionsEgress`, same shape). Absent: everything (protocol `-1` to
    /// `0.0.0.0/0`, the AWS default).
    pub egress: Option<Vec<IngressRule>>,
}

/// One inbound rule: `{ protocol = "tcp", from_port = 22, to_port = 22, cidrs = ["10.0.0.0/8"] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressRule {
    /// `tcp` (default), `udp`, or `-1` (every protocol, no ports).
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// First port (required for `tcp` and `udp`).
    pub from_port: Option<u16>,
    /// Last port (required for `tcp` and `udp`, not below `from_port`).
    pub to_port: Option<u16>,
    /// IPv4 CIDR blocks the rule allows (`ipRanges`).
    #[serde(default)]
    pub cidrs: Vec<String>,
}

impl SecurityGroupSpec {
    /// `groupDescription`.
    pub fn description(&self) -> String {
        self.description.clone().unwrap_or_else(|| format!("lab security group {}", self.name))
    }

    /// The outbound rules: `egress`, else everything to `0.0.0.0/0`.
    pub fn egress_rules(&self) -> Vec<IngressRule> {
        self.egress.clone().unwrap_or_else(|| {
            vec![IngressRule { protocol: "-1".into(), from_port: None, to_port: None, cidrs: vec!["0.0.0.0/0".into()] }]
        })
    }

    /// `securityGroupArn`.
    pub fn arn(&self, region: &str, account: &str) -> String {
        format!("arn:aws:ec2:{region}:{account}:security-group/{}", self.id)
    }
}

/// The two implicit groups: [`OPEN_SECURITY_GROUP_ID`] and [`CLOSED_SECURITY_GROUP_ID`], in the
/// default VPC.
pub fn implicit_security_groups() -> &'static [SecurityGroupSpec; 2] {
    static GROUPS: LazyLock<[SecurityGroupSpec; 2]> = LazyLock::new(|| {
        let group = |id: &str, name: &str, description: &str, ingress| SecurityGroupSpec {
            id: id.into(),
            name: name.into(),
            description: Some(description.into()),
            vpc_id: super::default_vpc(),
            ingress,
            egress: None,
        };
        let everything = IngressRule {
            protocol: "tcp".into(),
            from_port: Some(0),
            to_port: Some(65535),
            cidrs: vec!["0.0.0.0/0".into()],
        };
        [
            group(
                OPEN_SECURITY_GROUP_ID,
                OPEN_SECURITY_GROUP_NAME,
                "lab: every TCP port from anywhere",
                vec![everything],
            ),
            group(CLOSED_SECURITY_GROUP_ID, CLOSED_SECURITY_GROUP_NAME, "lab: no inbound traffic", Vec::new()),
        ]
    });
    &GROUPS
}

/// Whether `id` is `sg-` and 8 or 17 lower-case hex digits.
pub(super) fn valid_group_id(id: &str) -> bool {
    id.strip_prefix("sg-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// What is wrong with `rule`, if anything.
pub(super) fn rule_problem(rule: &IngressRule) -> Option<String> {
    match (rule.protocol.as_str(), rule.from_port, rule.to_port) {
        ("tcp" | "udp", Some(from), Some(to)) if from <= to => {}
        ("tcp" | "udp", Some(_), Some(_)) => return Some("from_port is above to_port".into()),
        ("tcp" | "udp", _, _) => return Some(format!("{} rules need from_port and to_port", rule.protocol)),
        ("-1", None, None) => {}
        ("-1", _, _) => return Some("protocol -1 takes no ports".into()),
        (other, _, _) => return Some(format!("protocol {other:?} is not tcp, udp or -1")),
    }
    rule.cidrs.iter().find(|c| !valid_cidr(c)).map(|c| format!("{c:?} is not an IPv4 CIDR block"))
}

fn valid_cidr(cidr: &str) -> bool {
    cidr.split_once('/').is_some_and(|(ip, len)| {
        ip.parse::<Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|n| n <= 32) && !len.starts_with('+')
    })
}

fn default_protocol() -> String {
    "tcp".into()
}

impl super::InstanceSpec {
    /// The instance's security group ids (`groupSet`): its `security_groups`, else the implicit
    /// [`OPEN_SECURITY_GROUP_ID`] (`inbound = true`) or [`CLOSED_SECURITY_GROUP_ID`].
    pub fn security_group_ids(&self) -> Vec<String> {
        match &self.security_groups {
            Some(ids) => ids.clone(),
            None if self.inbound => vec![OPEN_SECURITY_GROUP_ID.into()],
            None => vec![CLOSED_SECURITY_GROUP_ID.into()],
        }
    }
}
