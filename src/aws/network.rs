//! EC2: the network facts that decide whether an SSM agent can reach its service
//! (`../shared/spec/keys-and-shell.md` §7 rows 8a–8b): VPC endpoints, route tables, NAT
//! gateways.

use aws_sdk_ec2::types::Filter;

use super::{Aws, AwsError, clean};

const SERVICE: &str = "EC2";

/// One VPC endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VpcEndpoint {
    /// `vpce-…`.
    pub id: String,
    /// `com.amazonaws.<region>.<service>`.
    pub service: String,
    /// `Interface`, `Gateway`, …
    pub kind: String,
    /// The state as sent (lower case on the wire: `available`).
    pub state: String,
    /// `PrivateDnsEnabled`.
    pub private_dns: bool,
    /// Its security groups.
    pub groups: Vec<String>,
}

/// One route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteTable {
    /// `rtb-…`.
    pub id: String,
    /// Whether it is its VPC's main table.
    pub main: bool,
    /// Its routes.
    pub routes: Vec<Route>,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// The IPv4 destination (`None` for IPv6 or prefix-list routes).
    pub destination: Option<String>,
    /// The target: `local`, `igw-…`, `nat-…`, `tgw-…`, `pcx-…`, `eni-…`, … (empty if none).
    pub target: String,
    /// `active` or `blackhole`.
    pub state: String,
}

impl Aws {
    /// The VPC endpoints of `vpc`.
    pub(crate) async fn vpc_endpoints(&self, vpc: &str) -> Result<Vec<VpcEndpoint>, AwsError> {
        let out = self
            .ec2()
            .describe_vpc_endpoints()
            .filters(Filter::builder().name("vpc-id").values(vpc).build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeVpcEndpoints", e))?;
        Ok(out
            .vpc_endpoints()
            .iter()
            .map(|e| VpcEndpoint {
                id: clean(e.vpc_endpoint_id().unwrap_or_default(), 100),
                service: clean(e.service_name().unwrap_or_default(), 200),
                kind: e.vpc_endpoint_type().map(|t| clean(t.as_str(), 50)).unwrap_or_default(),
                // `available` on the wire, while the SDK's enum expects `Available`: the value
                // arrives as `Unknown("available")`, so only its text is compared (spec §7 8a).
                state: e.state().map(|s| clean(s.as_str(), 50)).unwrap_or_default(),
                private_dns: e.private_dns_enabled().unwrap_or(false),
                groups: e.groups().iter().filter_map(|g| g.group_id()).map(str::to_string).collect(),
            })
            .collect())
    }

    /// The route table of `subnet` (its explicit association), else the main table of `vpc`.
    pub(crate) async fn subnet_route_table(&self, subnet: &str, vpc: &str) -> Result<Option<RouteTable>, AwsError> {
        let own = self.route_tables(vec![("association.subnet-id", subnet)]).await?;
        if let Some(table) = own.into_iter().next() {
            return Ok(Some(table));
        }
        let main = self.route_tables(vec![("vpc-id", vpc), ("association.main", "true")]).await?;
        Ok(main.into_iter().next())
    }

    async fn route_tables(&self, filters: Vec<(&str, &str)>) -> Result<Vec<RouteTable>, AwsError> {
        let mut req = self.ec2().describe_route_tables();
        for (name, value) in filters {
            req = req.filters(Filter::builder().name(name).values(value).build());
        }
        let out = req.send().await.map_err(|e| AwsError::from_sdk(SERVICE, "DescribeRouteTables", e))?;
        Ok(out
            .route_tables()
            .iter()
            .map(|t| RouteTable {
                id: clean(t.route_table_id().unwrap_or_default(), 100),
                main: t.associations().iter().any(|a| a.main() == Some(true)),
                routes: t
                    .routes()
                    .iter()
                    .map(|r| Route {
                        destination: r.destination_cidr_block().map(str::to_string),
                        target: [
                            r.gateway_id(),
                            r.nat_gateway_id(),
                            r.transit_gateway_id(),
                            r.vpc_peering_connection_id(),
                            r.network_interface_id(),
                            r.instance_id(),
                            r.local_gateway_id(),
                            r.carrier_gateway_id(),
                            r.egress_only_internet_gateway_id(),
                        ]
                        .into_iter()
                        .flatten()
                        .next()
                        .map(|t| clean(t, 100))
                        .unwrap_or_default(),
                        state: r.state().map(|s| clean(s.as_str(), 50)).unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect())
    }

    /// The state of NAT gateway `id` (`None`: EC2 does not know it).
    pub(crate) async fn nat_gateway_state(&self, id: &str) -> Result<Option<String>, AwsError> {
        let out = match self.ec2().describe_nat_gateways().nat_gateway_ids(id).send().await {
            Ok(out) => out,
            Err(e) => {
                return match AwsError::from_sdk(SERVICE, "DescribeNatGateways", e) {
                    e if e.code() == Some("NatGatewayNotFound") => Ok(None),
                    e => Err(e),
                };
            }
        };
        Ok(out.nat_gateways().first().and_then(|g| g.state()).map(|s| clean(s.as_str(), 50)))
    }
}
