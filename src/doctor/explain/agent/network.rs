//! The network findings about an offline agent (`../shared/spec/keys-and-shell.md` §7 rows
//! 8a–8c): a way out to the ssm, ssmmessages and ec2messages endpoints (interface endpoints, or
//! a route to a NAT or internet gateway), and security groups that let HTTPS through.

use std::net::Ipv4Addr;

use super::{AGENT_ENDPOINTS, AgentFacts, CHECK, Ingress, SecurityGroup, not_looked};
use crate::aws::network::{RouteTable, VpcEndpoint};
use crate::doctor::report::{Check, Verdict};

/// The HTTPS port the agent talks to its endpoints on.
const HTTPS: u16 = 443;

/// Where a subnet's default route leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InternetPath {
    /// Through an available NAT gateway.
    Nat(String),
    /// Through an internet gateway, and the instance has a public address.
    Igw(String),
    /// Nowhere: why.
    None(String),
    /// Through something this check cannot follow (transit gateway, peering, an appliance).
    CannotJudge(String),
}

/// Judges the subnet's route table (or the main one): the `0.0.0.0/0` route, its state, and its
/// target. `nat_state` gives a NAT gateway's state (`None`: unknown).
pub(crate) fn internet_path(
    table: Option<&RouteTable>,
    nat_state: impl Fn(&str) -> Option<String>,
    public_ip: bool,
) -> InternetPath {
    let Some(table) = table else {
        return InternetPath::None("the subnet has no route table, and the VPC no main one".into());
    };
    let which = if table.main { format!("main route table {}", table.id) } else { format!("route table {}", table.id) };
    let Some(route) = table.routes.iter().find(|r| r.destination.as_deref() == Some("0.0.0.0/0")) else {
        return InternetPath::None(format!("{which} has no route for 0.0.0.0/0"));
    };
    let target = route.target.as_str();
    if route.state.eq_ignore_ascii_case("blackhole") {
        return InternetPath::None(format!("{which} sends 0.0.0.0/0 to {target}, which is gone (blackhole)"));
    }
    if target.starts_with("nat-") {
        return match nat_state(target) {
            Some(state) if state.eq_ignore_ascii_case("available") => InternetPath::Nat(target.into()),
            Some(state) => InternetPath::None(format!("{which} sends 0.0.0.0/0 to {target}, which is {state}")),
            None => InternetPath::CannotJudge(format!("{which} sends 0.0.0.0/0 to {target}, whose state is unknown")),
        };
    }
    if target.starts_with("igw-") {
        return match public_ip {
            true => InternetPath::Igw(target.into()),
            false => InternetPath::None(format!(
                "{which} sends 0.0.0.0/0 to internet gateway {target}, but the instance has no public IP address"
            )),
        };
    }
    InternetPath::CannotJudge(format!(
        "{which} sends 0.0.0.0/0 to {target}: whether that reaches AWS is not visible here"
    ))
}

/// Whether any of `groups` admits TCP `port` from `ip` or from a member of `sources` (the
/// instance's own groups). Prefix lists are given the benefit of the doubt.
pub(crate) fn admits_tcp_from(groups: &[&SecurityGroup], port: u16, ip: Option<Ipv4Addr>, sources: &[String]) -> bool {
    groups.iter().flat_map(|g| &g.ingress).filter(|r| r.allows_tcp(port)).any(|r| {
        r.sources
            .iter()
            .any(|s| sources.contains(s) || s.starts_with("pl-") || ip.is_some_and(|ip| cidr_contains(s, ip)))
    })
}

/// Whether any of `groups` lets TCP `port` out to anywhere (the destination is not weighed).
pub(crate) fn allows_egress_tcp(groups: &[&SecurityGroup], port: u16) -> bool {
    groups.iter().flat_map(|g| &g.egress).any(|r: &Ingress| r.allows_tcp(port))
}

fn cidr_contains(cidr: &str, ip: Ipv4Addr) -> bool {
    let Some((net, len)) = cidr.split_once('/') else { return false };
    let (Ok(net), Ok(len)) = (net.parse::<Ipv4Addr>(), len.parse::<u32>()) else { return false };
    if len > 32 {
        return false;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(net) & mask == u32::from(ip) & mask
}

/// Whether `e` is a usable interface endpoint for `service` in `region` (its state compared
/// case-insensitively: `available` on the wire).
fn usable(e: &VpcEndpoint, service: &str, region: &str) -> bool {
    e.service == format!("com.amazonaws.{region}.{service}")
        && e.kind.eq_ignore_ascii_case("Interface")
        && e.state.eq_ignore_ascii_case("available")
        && e.private_dns
}

pub(super) fn network(f: &AgentFacts<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    let n = &f.evidence.network;
    let i = f.instance;
    let groups: Option<&Vec<SecurityGroup>> = match &n.groups {
        Some(Ok(g)) => Some(g),
        Some(Err(e)) => {
            out.push(not_looked("the security groups", e));
            None
        }
        None => None,
    };
    let find = |id: &String| groups.and_then(|g| g.iter().find(|x| &x.id == id));
    // The instance's own groups must let HTTPS out.
    let own: Vec<&SecurityGroup> = i.security_groups.iter().filter_map(find).collect();
    if !own.is_empty() && !allows_egress_tcp(&own, HTTPS) {
        let names: Vec<&str> = own.iter().map(|g| g.id.as_str()).collect();
        out.push(
            Check::new(
                CHECK,
                Verdict::Fails,
                format!("no outbound rule of the instance's security groups allows TCP 443: {}", names.join(", ")),
            )
            .fix(format!(
                "add an outbound rule for TCP 443 to 0.0.0.0/0 (or to the endpoints' security group): `aws ec2 \
                 authorize-security-group-egress --group-id {} --protocol tcp --port 443 --cidr 0.0.0.0/0`",
                names[0]
            )),
        );
    }
    let endpoints = match &n.endpoints {
        None => return out,
        Some(Err(e)) => {
            out.push(not_looked("the VPC endpoints", e));
            None
        }
        Some(Ok(e)) => Some(e),
    };
    let usable_endpoints: Vec<(&str, Option<&VpcEndpoint>)> = AGENT_ENDPOINTS
        .iter()
        .map(|s| (*s, endpoints.and_then(|es| es.iter().find(|e| usable(e, s, f.region)))))
        .collect();
    let missing: Vec<&str> = usable_endpoints.iter().filter(|(_, e)| e.is_none()).map(|(s, _)| *s).collect();

    // Endpoints that exist must admit HTTPS from the instance.
    for (service, endpoint) in &usable_endpoints {
        let Some(e) = endpoint else { continue };
        let theirs: Vec<&SecurityGroup> = e.groups.iter().filter_map(find).collect();
        if theirs.len() == e.groups.len() && !admits_tcp_from(&theirs, HTTPS, i.private_ip, &i.security_groups) {
            out.push(
                Check::new(
                    CHECK,
                    Verdict::Fails,
                    format!(
                        "endpoint {} ({service}) refuses TCP 443 from the instance: its security groups {} admit neither \
                         {} nor the instance's groups",
                        e.id,
                        e.groups.join(", "),
                        i.private_ip.map_or("its address".to_string(), |ip| ip.to_string()),
                    ),
                )
                .fix(format!(
                    "`aws ec2 authorize-security-group-ingress --group-id {} --protocol tcp --port 443 --source-group {}`",
                    e.groups.first().map_or("SG", String::as_str),
                    i.security_groups.first().map_or("SG", String::as_str),
                )),
            );
        }
    }
    if missing.is_empty() || endpoints.is_none() {
        return out;
    }
    let path = match &n.route_table {
        None => return out,
        Some(Err(e)) => {
            out.push(not_looked("the subnet's route table", e));
            return out;
        }
        Some(Ok(table)) => {
            let nat = |id: &str| {
                n.nat_states.iter().find(|(n, _)| n == id).and_then(|(_, s)| s.as_ref().ok().cloned().flatten())
            };
            internet_path(table.as_ref(), nat, i.public_ip.is_some())
        }
    };
    let subnet = i.subnet_id.as_deref().unwrap_or("its subnet");
    let vpc = i.vpc_id.as_deref().unwrap_or("VPC");
    let lacking = format!("no usable interface endpoint for {} in {vpc}", missing.join(", "));
    match path {
        InternetPath::Nat(_) | InternetPath::Igw(_) => {}
        InternetPath::None(why) => out.push(
            Check::new(CHECK, Verdict::Fails, format!("{subnet} is private with no way to Systems Manager"))
                .and(lacking)
                .and(why)
                .fix(format!(
                    "create interface endpoints with private DNS for {} (`aws ec2 create-vpc-endpoint --vpc-id {vpc} \
                     --vpc-endpoint-type Interface --service-name com.amazonaws.{}.SERVICE --subnet-ids {subnet} \
                     --private-dns-enabled`), or route 0.0.0.0/0 to a NAT gateway",
                    missing.join(", "),
                    f.region
                )),
        ),
        InternetPath::CannotJudge(why) => out.push(
            Check::new(CHECK, Verdict::Unknown, format!("{subnet}: the way to Systems Manager cannot be judged"))
                .and(lacking)
                .and(why),
        ),
    }
    out
}
