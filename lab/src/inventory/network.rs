//! The network facts the doctor reads when an SSM agent is offline (`../shared/spec/keys-and-shell.md`
//! §7, rows 8a–8c): VPC interface endpoints (`[[vpc_endpoint]]`), route tables
//! (`[[route_table]]`) and NAT gateways (`[[nat_gateway]]`). Reported only: the lab's traffic
//! stays on 127.0.0.0/8 whatever they say.
//!
//! A VPC with no main route table in the inventory gets an implicit one, as a default VPC has:
//! the local route and `0.0.0.0/0` to an internet gateway.

use serde::Deserialize;

/// The CIDR block the lab reports for every VPC (its addresses are loopback ones).
pub const LAB_VPC_CIDR: &str = "127.0.0.0/8";

/// One VPC endpoint (`[[vpc_endpoint]]`, DescribeVpcEndpoints).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcEndpointSpec {
    /// `vpce-` and hex digits.
    pub id: String,
    /// The service's short name: `ssm`, `ssmmessages`, `ec2messages`, `kms`, `s3`, …; the
    /// endpoint's `serviceName` is `com.amazonaws.<region>.<service>`.
    pub service: String,
    /// Its VPC (default: the default VPC).
    #[serde(default = "super::default_vpc")]
    pub vpc_id: String,
    /// `Interface` (default), `Gateway` or `GatewayLoadBalancer`.
    #[serde(default = "interface")]
    pub kind: String,
    /// The state as the wire spells it, lower case: `available` (default), `pending`,
    /// `deleting`, `failed`, `rejected`, …
    #[serde(default = "available")]
    pub state: String,
    /// `privateDnsEnabled` (default true).
    #[serde(default = "super::yes")]
    pub private_dns: bool,
    /// The security groups of its network interfaces (Interface endpoints; default: the
    /// implicit open group, which admits TCP 443).
    #[serde(default = "open_group")]
    pub security_groups: Vec<String>,
    /// Its subnets (default: the default subnet).
    #[serde(default = "default_subnets")]
    pub subnets: Vec<String>,
}

impl VpcEndpointSpec {
    /// `serviceName`.
    pub fn service_name(&self, region: &str) -> String {
        format!("com.amazonaws.{region}.{}", self.service)
    }
}

/// One route table (`[[route_table]]`, DescribeRouteTables).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTableSpec {
    /// `rtb-` and hex digits.
    pub id: String,
    /// Its VPC (default: the default VPC).
    #[serde(default = "super::default_vpc")]
    pub vpc_id: String,
    /// Whether it is the VPC's main table (used by subnets with no table of their own).
    #[serde(default)]
    pub main: bool,
    /// The subnets explicitly associated with it.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// Its routes besides the local one, which every table has.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
}

/// One route: `{ destination = "0.0.0.0/0", target = "nat-0123…" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The destination CIDR block.
    pub destination: String,
    /// `igw-…`, `nat-…`, `tgw-…`, `pcx-…`, `eni-…`, `vgw-…` or `local`.
    pub target: String,
    /// `active` (default) or `blackhole` (the target is gone).
    #[serde(default = "active")]
    pub state: String,
}

/// One NAT gateway (`[[nat_gateway]]`, DescribeNatGateways).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatGatewaySpec {
    /// `nat-` and hex digits.
    pub id: String,
    /// Its VPC (default: the default VPC).
    #[serde(default = "super::default_vpc")]
    pub vpc_id: String,
    /// Its subnet (default: the default subnet).
    #[serde(default = "super::default_subnet")]
    pub subnet_id: String,
    /// `available` (default), `pending`, `failed`, `deleting` or `deleted`.
    #[serde(default = "available")]
    pub state: String,
}

/// The endpoint kinds the API model has.
pub(super) const ENDPOINT_KINDS: [&str; 3] = ["Interface", "Gateway", "GatewayLoadBalancer"];
/// The endpoint states of the API model, lower case as on the wire.
pub(super) const ENDPOINT_STATES: [&str; 10] = [
    "pendingacceptance",
    "pending",
    "available",
    "deleting",
    "deleted",
    "rejected",
    "failed",
    "expired",
    "partial",
    "creating",
];
/// NAT gateway states.
pub(super) const NAT_STATES: [&str; 5] = ["pending", "failed", "available", "deleting", "deleted"];

impl super::Inventory {
    /// Every route table: the inventory's, then an implicit main table for each VPC (of an
    /// instance, endpoint or table) that has none, as a default VPC's: local and `0.0.0.0/0` to
    /// an internet gateway.
    pub fn all_route_tables(&self) -> Vec<RouteTableSpec> {
        let mut tables = self.route_tables.clone();
        let mut vpcs: Vec<&str> = self.instances.iter().map(|i| i.vpc_id.as_str()).collect();
        vpcs.extend(self.vpc_endpoints.iter().map(|e| e.vpc_id.as_str()));
        vpcs.sort_unstable();
        vpcs.dedup();
        for vpc in vpcs {
            if !self.route_tables.iter().any(|t| t.vpc_id == vpc && t.main) {
                tables.push(RouteTableSpec {
                    id: derived_id("rtb-", vpc),
                    vpc_id: vpc.to_string(),
                    main: true,
                    subnets: Vec::new(),
                    routes: vec![RouteSpec {
                        destination: "0.0.0.0/0".into(),
                        target: internet_gateway_id(vpc),
                        state: "active".into(),
                    }],
                });
            }
        }
        tables
    }
}

/// The id of the internet gateway of `vpc` (derived, stable across runs).
pub fn internet_gateway_id(vpc: &str) -> String {
    derived_id("igw-", vpc)
}

/// `prefix` and 17 hex digits derived from `seed`.
fn derived_id(prefix: &str, seed: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(seed.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{}", &hex[..17])
}

/// Whether `id` is `prefix` and 8 or 17 lower-case hex digits.
pub(super) fn valid_id(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn interface() -> String {
    "Interface".into()
}
fn available() -> String {
    "available".into()
}
fn active() -> String {
    "active".into()
}
fn open_group() -> Vec<String> {
    vec![super::OPEN_SECURITY_GROUP_ID.into()]
}
fn default_subnets() -> Vec<String> {
    vec![super::default_subnet()]
}
