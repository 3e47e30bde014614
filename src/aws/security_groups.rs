//! EC2 DescribeSecurityGroups: the inbound rules that decide whether a TCP port is open (`doctor`).

use super::ec2_query::{Params, shapes};
use super::{Aws, AwsError};

/// One security group's inbound rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecurityGroup {
    /// `sg-…`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Inbound rules.
    pub ingress: Vec<Ingress>,
    /// Outbound rules (the same shape: `sources` are their destinations).
    pub egress: Vec<Ingress>,
}

/// One inbound rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ingress {
    /// `tcp`, `udp`, `icmp`, or `-1` (all traffic).
    pub protocol: String,
    /// First port (`None` for all traffic).
    pub from_port: Option<i32>,
    /// Last port.
    pub to_port: Option<i32>,
    /// Who may connect: CIDR blocks, IPv6 blocks, prefix lists and other security groups.
    pub sources: Vec<String>,
}

impl Ingress {
    /// Whether the rule lets TCP to `port` in.
    pub(crate) fn allows_tcp(&self, port: u16) -> bool {
        let port = i32::from(port);
        match self.protocol.as_str() {
            "-1" | "all" => true,
            "tcp" | "6" => {
                self.from_port.is_none_or(|f| f == -1 || f <= port) && self.to_port.is_none_or(|t| t == -1 || port <= t)
            }
            _ => false,
        }
    }
}

impl Aws {
    /// The groups `ids` (in the Region), with their inbound rules.
    pub(crate) async fn security_groups(&self, ids: &[String]) -> Result<Vec<SecurityGroup>, AwsError> {
        let params = Params::new("DescribeSecurityGroups").list("GroupId", ids);
        let out: shapes::DescribeSecurityGroups = self.ec2().call(&params).await?;
        Ok(out
            .security_group_info
            .item
            .into_iter()
            .map(|g| SecurityGroup {
                id: g.group_id.unwrap_or_default(),
                // Free text chosen by whoever made the group: shown by doctor, so made printable.
                name: crate::text::printable(g.group_name.as_deref().unwrap_or_default()).into_owned(),
                ingress: g.ip_permissions.item.into_iter().map(rule).collect(),
                egress: g.ip_permissions_egress.item.into_iter().map(rule).collect(),
            })
            .collect())
    }
}

fn rule(p: shapes::IpPermission) -> Ingress {
    Ingress {
        protocol: p.ip_protocol.unwrap_or_else(|| "-1".to_string()),
        from_port: p.from_port,
        to_port: p.to_port,
        sources: (p.ip_ranges.item.into_iter().filter_map(|r| r.cidr_ip))
            .chain(p.ipv6_ranges.item.into_iter().filter_map(|r| r.cidr_ipv6))
            .chain(p.prefix_list_ids.item.into_iter().filter_map(|r| r.prefix_list_id))
            .chain(p.groups.item.into_iter().filter_map(|r| r.group_id))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: &str, from: Option<i32>, to: Option<i32>) -> Ingress {
        Ingress { protocol: protocol.into(), from_port: from, to_port: to, sources: vec!["0.0.0.0/0".into()] }
    }

    #[test]
    fn tcp_ranges() {
        assert!(rule("tcp", Some(22), Some(22)).allows_tcp(22));
        assert!(!rule("tcp", Some(22), Some(22)).allows_tcp(2222));
        assert!(rule("tcp", Some(0), Some(65535)).allows_tcp(2222));
        assert!(rule("-1", None, None).allows_tcp(22));
        assert!(!rule("udp", Some(0), Some(65535)).allows_tcp(22));
        assert!(rule("6", Some(20), Some(30)).allows_tcp(22));
    }
}
