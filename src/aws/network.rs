//! EC2: the network facts that decide whether an SSM agent can reach its service
//! (`../shared/spec/keys-and-shell.md` §7 rows 8a–8b): VPC endpoints, route tables, NAT
//! gateways.

use super::ec2_query::{Params, shapes};
use super::{Aws, AwsError, clean};

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
        let params = Params::new("DescribeVpcEndpoints").filter("vpc-id", &[vpc]);
        let out: shapes::DescribeVpcEndpoints = self.ec2().call(&params).await?;
        Ok(out
            .vpc_endpoint_set
            .item
            .into_iter()
            .map(|e| VpcEndpoint {
                id: clean(e.vpc_endpoint_id.as_deref().unwrap_or_default(), 100),
                service: clean(e.service_name.as_deref().unwrap_or_default(), 200),
                kind: e.vpc_endpoint_type.map(|t| clean(&t, 50)).unwrap_or_default(),
                // `available` on the wire (the SDK's enum expected `Available`): only the text
                // is compared, whatever its case (spec §7 8a).
                state: e.state.map(|s| clean(&s, 50)).unwrap_or_default(),
                private_dns: e.private_dns_enabled.unwrap_or(false),
                groups: e.group_set.item.into_iter().filter_map(|g| g.group_id).collect(),
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
        let mut params = Params::new("DescribeRouteTables");
        for (name, value) in filters {
            params = params.filter(name, &[value]);
        }
        let out: shapes::DescribeRouteTables = self.ec2().call(&params).await?;
        Ok(out
            .route_table_set
            .item
            .into_iter()
            .map(|t| RouteTable {
                id: clean(t.route_table_id.as_deref().unwrap_or_default(), 100),
                main: t.association_set.item.iter().any(|a| a.main == Some(true)),
                routes: t
                    .route_set
                    .item
                    .iter()
                    .map(|r| Route {
                        destination: r.destination_cidr_block.clone(),
                        target: r.target().map(|t| clean(t, 100)).unwrap_or_default(),
                        state: r.state.as_deref().map(|s| clean(s, 50)).unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect())
    }

    /// The state of NAT gateway `id` (`None`: EC2 does not know it).
    pub(crate) async fn nat_gateway_state(&self, id: &str) -> Result<Option<String>, AwsError> {
        let params = Params::new("DescribeNatGateways").list("NatGatewayId", &[id]);
        let out: shapes::DescribeNatGateways = match self.ec2().call(&params).await {
            Ok(out) => out,
            Err(e) if e.code() == Some("NatGatewayNotFound") => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(out.nat_gateway_set.item.into_iter().next().and_then(|g| g.state).map(|s| clean(&s, 50)))
    }
}
