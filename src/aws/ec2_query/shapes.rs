//! The parts of EC2's XML answers the broker reads, as serde structs for `quick-xml`. Element
//! names are EC2's (camelCase, lists as `…Set` of `<item>`); everything is optional, as in the
//! API's model, and elements not named here are skipped.

use serde::Deserialize;

/// A list: `<…Set><item>…</item>…</…Set>`.
#[derive(Debug, Deserialize)]
pub(crate) struct Items<T> {
    /// The list's members.
    #[serde(default = "Vec::new")]
    pub(crate) item: Vec<T>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Items { item: Vec::new() }
    }
}

/// An answer that may continue on another page.
pub(crate) trait Paged {
    /// The token of the next page, if any.
    fn next_token(&self) -> Option<&str>;
}

macro_rules! paged {
    ($($t:ty),*) => {
        $(impl Paged for $t {
            fn next_token(&self) -> Option<&str> {
                self.next_token.as_deref().filter(|t| !t.is_empty())
            }
        })*
    };
}

/// `DescribeInstances`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct DescribeInstances {
    pub(crate) reservation_set: Items<Reservation>,
    pub(crate) next_token: Option<String>,
}

/// One reservation of `DescribeInstances`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Reservation {
    pub(crate) instances_set: Items<Instance>,
}

/// One instance, the fields the broker reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Instance {
    pub(crate) instance_id: Option<String>,
    pub(crate) instance_state: Option<Named>,
    pub(crate) tag_set: Items<Tag>,
    pub(crate) placement: Option<Placement>,
    pub(crate) private_ip_address: Option<String>,
    /// The public IPv4 address.
    pub(crate) ip_address: Option<String>,
    pub(crate) vpc_id: Option<String>,
    pub(crate) subnet_id: Option<String>,
    pub(crate) platform: Option<String>,
    pub(crate) instance_type: Option<String>,
    pub(crate) key_name: Option<String>,
    pub(crate) group_set: Items<GroupRef>,
    pub(crate) iam_instance_profile: Option<Arn>,
    pub(crate) metadata_options: Option<MetadataOptions>,
    pub(crate) launch_time: Option<String>,
}

/// `<instanceState>`: a code and a name.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Named {
    pub(crate) name: Option<String>,
}

/// A tag.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Tag {
    pub(crate) key: Option<String>,
    pub(crate) value: Option<String>,
}

/// `<placement>`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Placement {
    pub(crate) availability_zone: Option<String>,
}

/// A security group named by id.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct GroupRef {
    pub(crate) group_id: Option<String>,
}

/// `<iamInstanceProfile>`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Arn {
    pub(crate) arn: Option<String>,
}

/// `<metadataOptions>`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct MetadataOptions {
    pub(crate) http_endpoint: Option<String>,
}

/// `DescribeInstanceTypes`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct DescribeInstanceTypes {
    pub(crate) instance_type_set: Items<InstanceTypeInfo>,
    pub(crate) next_token: Option<String>,
}

/// One instance type.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct InstanceTypeInfo {
    pub(crate) instance_type: Option<String>,
    pub(crate) hypervisor: Option<String>,
    pub(crate) bare_metal: Option<bool>,
}

/// `DescribeKeyPairs`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct DescribeKeyPairs {
    pub(crate) key_set: Items<KeyPairInfo>,
}

/// One key pair.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct KeyPairInfo {
    pub(crate) key_name: Option<String>,
    pub(crate) key_fingerprint: Option<String>,
    pub(crate) public_key: Option<String>,
}

/// `ImportKeyPair`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ImportKeyPair {
    pub(crate) key_fingerprint: Option<String>,
    pub(crate) key_pair_id: Option<String>,
}

/// `GetConsoleOutput`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GetConsoleOutput {
    /// Base64 of the console's text.
    pub(crate) output: Option<String>,
}

/// `GetSerialConsoleAccessStatus`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct GetSerialConsoleAccessStatus {
    pub(crate) serial_console_access_enabled: Option<bool>,
    pub(crate) managed_by: Option<String>,
}

/// `DescribeInstanceConnectEndpoints`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct DescribeInstanceConnectEndpoints {
    pub(crate) instance_connect_endpoint_set: Items<InstanceConnectEndpoint>,
    pub(crate) next_token: Option<String>,
}

/// One EC2 Instance Connect Endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct InstanceConnectEndpoint {
    pub(crate) instance_connect_endpoint_id: Option<String>,
    pub(crate) dns_name: Option<String>,
    pub(crate) vpc_id: Option<String>,
    pub(crate) subnet_id: Option<String>,
    pub(crate) state: Option<String>,
}

/// `DescribeRegions`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct DescribeRegions {
    pub(crate) region_info: Items<RegionInfo>,
}

/// One Region.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RegionInfo {
    pub(crate) region_name: Option<String>,
}

/// `DescribeRouteTables`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct DescribeRouteTables {
    pub(crate) route_table_set: Items<RouteTable>,
}

/// One route table.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RouteTable {
    pub(crate) route_table_id: Option<String>,
    pub(crate) association_set: Items<Association>,
    pub(crate) route_set: Items<Route>,
}

/// One association of a route table.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Association {
    pub(crate) main: Option<bool>,
}

/// One route.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Route {
    pub(crate) destination_cidr_block: Option<String>,
    pub(crate) gateway_id: Option<String>,
    pub(crate) nat_gateway_id: Option<String>,
    pub(crate) transit_gateway_id: Option<String>,
    pub(crate) vpc_peering_connection_id: Option<String>,
    pub(crate) network_interface_id: Option<String>,
    pub(crate) instance_id: Option<String>,
    pub(crate) local_gateway_id: Option<String>,
    pub(crate) carrier_gateway_id: Option<String>,
    pub(crate) egress_only_internet_gateway_id: Option<String>,
    pub(crate) state: Option<String>,
}

impl Route {
    /// The route's target, whichever kind it is.
    pub(crate) fn target(&self) -> Option<&str> {
        [
            &self.gateway_id,
            &self.nat_gateway_id,
            &self.transit_gateway_id,
            &self.vpc_peering_connection_id,
            &self.network_interface_id,
            &self.instance_id,
            &self.local_gateway_id,
            &self.carrier_gateway_id,
            &self.egress_only_internet_gateway_id,
        ]
        .into_iter()
        .find_map(|t| t.as_deref())
    }
}

/// `DescribeNatGateways`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct DescribeNatGateways {
    pub(crate) nat_gateway_set: Items<NatGateway>,
}

/// One NAT gateway.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NatGateway {
    pub(crate) state: Option<String>,
}

/// `DescribeSecurityGroups`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct DescribeSecurityGroups {
    pub(crate) security_group_info: Items<SecurityGroup>,
}

/// One security group.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct SecurityGroup {
    pub(crate) group_id: Option<String>,
    pub(crate) group_name: Option<String>,
    pub(crate) ip_permissions: Items<IpPermission>,
    pub(crate) ip_permissions_egress: Items<IpPermission>,
}

/// One rule of a security group.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct IpPermission {
    pub(crate) ip_protocol: Option<String>,
    pub(crate) from_port: Option<i32>,
    pub(crate) to_port: Option<i32>,
    pub(crate) ip_ranges: Items<CidrIp>,
    pub(crate) ipv6_ranges: Items<CidrIpv6>,
    pub(crate) prefix_list_ids: Items<PrefixListId>,
    pub(crate) groups: Items<GroupRef>,
}

/// An IPv4 source.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct CidrIp {
    pub(crate) cidr_ip: Option<String>,
}

/// An IPv6 source.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct CidrIpv6 {
    pub(crate) cidr_ipv6: Option<String>,
}

/// A prefix-list source.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct PrefixListId {
    pub(crate) prefix_list_id: Option<String>,
}

/// `DescribeVpcEndpoints`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct DescribeVpcEndpoints {
    pub(crate) vpc_endpoint_set: Items<VpcEndpoint>,
}

/// One VPC endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct VpcEndpoint {
    pub(crate) vpc_endpoint_id: Option<String>,
    pub(crate) service_name: Option<String>,
    pub(crate) vpc_endpoint_type: Option<String>,
    pub(crate) state: Option<String>,
    pub(crate) private_dns_enabled: Option<bool>,
    pub(crate) group_set: Items<GroupRef>,
}

paged!(DescribeInstances, DescribeInstanceTypes, DescribeInstanceConnectEndpoints);
