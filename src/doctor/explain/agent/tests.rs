//! The agent-offline findings from typed facts: version comparisons, the route-table judgement
//! (blackhole, main-table fallback, igw without a public address), the 443 judgements, policy
//! and trust scans, and one finding per cause.

use std::net::Ipv4Addr;

use super::network::{InternetPath, admits_tcp_from, allows_egress_tcp, internet_path};
use super::*;
use crate::aws::network::Route;
use crate::target::instance::InstanceState;

fn route(destination: &str, target: &str, state: &str) -> Route {
    Route { destination: Some(destination.into()), target: target.into(), state: state.into() }
}

fn table(id: &str, main: bool, routes: Vec<Route>) -> RouteTable {
    RouteTable { id: id.into(), main, routes: [vec![route("10.0.0.0/16", "local", "active")], routes].concat() }
}

fn group(id: &str, ingress: Vec<Ingress>, egress: Vec<Ingress>) -> SecurityGroup {
    SecurityGroup { id: id.into(), name: id.into(), ingress, egress }
}

fn rule(protocol: &str, from: Option<i32>, to: Option<i32>, sources: &[&str]) -> Ingress {
    Ingress {
        protocol: protocol.into(),
        from_port: from,
        to_port: to,
        sources: sources.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn versions_compare_part_by_part() {
    assert_eq!(parse_version("3.0.222.0"), Some([3, 0, 222, 0]));
    assert_eq!(parse_version("3.1"), Some([3, 1, 0, 0]));
    assert_eq!(parse_version("3.0.x.0"), None);
    assert_eq!(parse_version("1.2.3.4.5"), None);
    assert!(parse_version("3.0.1124.0").unwrap() > parse_version("3.0.222.0").unwrap(), "not string order");
    assert!(parse_version("2.3.1319.0").unwrap() < PORT_SESSIONS);
    let lacks: Vec<&str> = missing_features([3, 0, 161, 0]).iter().map(|(what, _)| *what).collect();
    assert_eq!(
        lacks,
        ["port sessions (ssh over Session Manager)", "non-interactive commands", "Default Host Management"]
    );
    assert!(missing_features([3, 3, 1142, 0]).is_empty());
    let status = |v: &str| -> Result<Option<AgentStatus>, AwsError> {
        Ok(Some(AgentStatus { ping_status: "Online".into(), agent_version: Some(v.into()), last_ping: None }))
    };
    assert!(too_old_for_ssh(&status("3.0.161.0")));
    assert!(!too_old_for_ssh(&status("3.0.222.0")));
    assert!(!too_old_for_ssh(&status("garbage")), "an unreadable version is not judged");
}

#[test]
fn the_default_route_decides_the_internet_path() {
    let none = |_: &str| None;
    let available = |_: &str| Some("available".to_string());
    let nat = table("rtb-1", false, vec![route("0.0.0.0/0", "nat-1", "active")]);
    assert_eq!(internet_path(Some(&nat), available, false), InternetPath::Nat("nat-1".into()));
    assert!(
        matches!(internet_path(Some(&nat), |_: &str| Some("deleted".into()), false), InternetPath::None(w) if w.contains("nat-1, which is deleted"))
    );
    assert!(matches!(internet_path(Some(&nat), none, false), InternetPath::CannotJudge(_)));
    let dead = table("rtb-1", false, vec![route("0.0.0.0/0", "nat-1", "blackhole")]);
    assert!(matches!(internet_path(Some(&dead), available, false), InternetPath::None(w) if w.contains("blackhole")));
    let igw = table("rtb-main", true, vec![route("0.0.0.0/0", "igw-1", "active")]);
    assert_eq!(internet_path(Some(&igw), none, true), InternetPath::Igw("igw-1".into()));
    assert!(
        matches!(internet_path(Some(&igw), none, false), InternetPath::None(w) if w.contains("main route table rtb-main") && w.contains("no public IP"))
    );
    let local = table("rtb-main", true, vec![]);
    assert!(
        matches!(internet_path(Some(&local), none, true), InternetPath::None(w) if w.contains("no route for 0.0.0.0/0"))
    );
    let tgw = table("rtb-1", false, vec![route("0.0.0.0/0", "tgw-1", "active")]);
    assert!(matches!(internet_path(Some(&tgw), none, true), InternetPath::CannotJudge(w) if w.contains("tgw-1")));
    assert!(matches!(internet_path(None, none, true), InternetPath::None(_)));
}

#[test]
fn https_judgements_of_security_groups() {
    let ip: Option<Ipv4Addr> = Some("10.0.1.5".parse().unwrap());
    let own = vec!["sg-app".to_string()];
    let ssh_only = group("sg-e", vec![rule("tcp", Some(22), Some(22), &["10.0.0.0/8"])], vec![]);
    assert!(!admits_tcp_from(&[&ssh_only], 443, ip, &own));
    let subnet = group("sg-e", vec![rule("tcp", Some(443), Some(443), &["10.0.1.0/24"])], vec![]);
    assert!(admits_tcp_from(&[&subnet], 443, ip, &own));
    let elsewhere = group("sg-e", vec![rule("tcp", Some(443), Some(443), &["10.0.2.0/24"])], vec![]);
    assert!(!admits_tcp_from(&[&elsewhere], 443, ip, &own), "a CIDR that does not hold the instance");
    let by_group = group("sg-e", vec![rule("tcp", Some(443), Some(443), &["sg-app"])], vec![]);
    assert!(admits_tcp_from(&[&by_group], 443, ip, &own));
    let all = group("sg-e", vec![rule("-1", None, None, &["0.0.0.0/0"])], vec![]);
    assert!(admits_tcp_from(&[&ssh_only, &all], 443, ip, &own), "any group of several");

    let default_egress = group("sg-app", vec![], vec![rule("-1", None, None, &["0.0.0.0/0"])]);
    assert!(allows_egress_tcp(&[&default_egress], 443));
    let ssh_out = group("sg-app", vec![], vec![rule("tcp", Some(22), Some(22), &["0.0.0.0/0"])]);
    assert!(!allows_egress_tcp(&[&ssh_out], 443));
    assert!(!allows_egress_tcp(&[&group("sg-app", vec![], vec![])], 443), "no egress rule at all");
}

#[test]
fn policies_and_trust_are_scanned() {
    let all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ssm:UpdateInstanceInformation","ssmmessages:*","ec2messages:*"],"Resource":"*"}]}"#;
    assert!(missing_actions([all].into_iter()).is_empty());
    let star = r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#;
    assert!(missing_actions([star].into_iter()).is_empty(), "a single statement object");
    let denied = r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;
    assert_eq!(missing_actions([denied].into_iter()).len(), CORE_ACTIONS.len());
    let one = r#"{"Statement":[{"Effect":"Allow","Action":"SSM:updateinstanceinformation","Resource":"*"}]}"#;
    assert_eq!(missing_actions([one].into_iter()).len(), CORE_ACTIONS.len() - 1, "actions match case-insensitively");
    assert_eq!(missing_actions(["not json"].into_iter()).len(), CORE_ACTIONS.len());

    assert!(trusts_ec2(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#
    ));
    assert!(trusts_ec2(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":["lambda.amazonaws.com","ec2.amazonaws.com"]},"Action":["sts:AssumeRole"]}]}"#
    ));
    assert!(!trusts_ec2(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#
    ));
    assert!(!trusts_ec2(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"sts:AssumeRole"}]}"#
    ));
    assert_eq!(profile_name("arn:aws:iam::123456789012:instance-profile/path/app"), "app");
}

fn instance() -> Instance {
    let mut i = Instance::new("i-0a9e000000000a001", InstanceState::Running);
    i.private_ip = Some("10.0.1.5".parse().unwrap());
    i.vpc_id = Some("vpc-1".into());
    i.subnet_id = Some("subnet-1".into());
    i.security_groups = vec!["sg-app".into()];
    i
}

fn lost() -> Result<Option<AgentStatus>, AwsError> {
    Ok(Some(AgentStatus {
        ping_status: "ConnectionLost".into(),
        agent_version: Some("3.3.1142.0".into()),
        last_ping: Some(1_796_000_000),
    }))
}

fn healthy_network() -> NetworkEvidence {
    NetworkEvidence {
        endpoints: Some(Ok(Vec::new())),
        route_table: Some(Ok(Some(table("rtb-1", false, vec![route("0.0.0.0/0", "nat-1", "active")])))),
        nat_states: vec![("nat-1".into(), Ok(Some("available".into())))],
        groups: Some(Ok(vec![group("sg-app", vec![], vec![rule("-1", None, None, &["0.0.0.0/0"])])])),
    }
}

fn core_role() -> RoleEvidence {
    RoleEvidence {
        name: "app".into(),
        trust: Ok(Some(r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#.into())),
        policies: Ok(RolePolicies { attached: vec![CORE_POLICIES[0].into()], inline: vec![] }),
    }
}

fn rows(i: &Instance, status: &Result<Option<AgentStatus>, AwsError>, evidence: &AgentEvidence) -> Vec<Check> {
    findings(&AgentFacts { instance: i, status, evidence, host: "app-1", region: "eu-west-1" })
}

fn denied(operation: &'static str, service: &'static str) -> AwsError {
    AwsError::Service {
        service,
        operation,
        code: "AccessDenied".into(),
        message: "not authorized".into(),
        request_id: None,
    }
}

#[test]
fn a_healthy_online_agent_has_no_findings() {
    let online = Ok(Some(AgentStatus {
        ping_status: "Online".into(),
        agent_version: Some("3.3.1142.0".into()),
        last_ping: None,
    }));
    assert!(rows(&instance(), &online, &AgentEvidence::default()).is_empty());
}

#[test]
fn connection_lost_with_everything_else_right_says_when_and_what_no_api_sees() {
    let mut i = instance();
    i.instance_profile = Some("arn:aws:iam::1:instance-profile/app".into());
    let evidence =
        AgentEvidence { profile: Some(Ok(Some(vec![core_role()]))), network: healthy_network(), ..Default::default() };
    let found = rows(&i, &lost(), &evidence);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(
        found[0].evidence[0],
        "ConnectionLost: the agent has not checked in since 2026-11-30T00:53:20Z (LastPingDateTime)"
    );
    assert_eq!(found[1].result, Verdict::Unknown);
    assert!(found[1].fix.as_deref().unwrap().contains("ec2-broker console app-1"));
}

#[test]
fn one_finding_per_cause_each_with_its_fix() {
    let mut i = instance();
    i.metadata_disabled = true;
    let mut network = healthy_network();
    network.route_table = Some(Ok(Some(table("rtb-1", false, vec![route("0.0.0.0/0", "nat-1", "blackhole")]))));
    network.groups = Some(Ok(vec![group("sg-app", vec![], vec![rule("tcp", Some(22), Some(22), &["0.0.0.0/0"])])]));
    let evidence = AgentEvidence { dhmc: Some(Ok(None)), network, ..Default::default() };
    let found = rows(&i, &Ok(None), &evidence);
    let first: Vec<&str> = found.iter().map(|c| c.evidence[0].as_str()).collect();
    assert_eq!(
        first,
        [
            "no instance profile, and Default Host Management is off",
            "instance metadata is off (MetadataOptions.HttpEndpoint = disabled): the agent has no identity and no credentials",
            "no outbound rule of the instance's security groups allows TCP 443: sg-app",
            "subnet-1 is private with no way to Systems Manager",
            "what no API shows: the agent stopped or not installed, an OS firewall, an HTTPS proxy, DNS overrides, a full disk, a clock far off",
        ]
    );
    assert!(found.iter().all(|c| c.fix.is_some()), "each names its fix: {found:#?}");
    assert!(found[3].evidence.iter().any(|e| e.contains("blackhole")), "{:#?}", found[3]);
    assert!(found[3].evidence[1].contains("ssm, ssmmessages, ec2messages"), "{:#?}", found[3]);
}

#[test]
fn a_refused_look_names_the_action_and_the_rest_go_on() {
    let mut i = instance();
    i.instance_profile = Some("arn:aws:iam::1:instance-profile/app".into());
    let mut network = healthy_network();
    network.route_table = Some(Ok(Some(table("rtb-main", true, vec![]))));
    let evidence = AgentEvidence {
        profile: Some(Err(denied("GetInstanceProfile", "IAM"))),
        network: NetworkEvidence { endpoints: Some(Err(denied("DescribeVpcEndpoints", "EC2"))), ..network },
        ..Default::default()
    };
    let found = rows(&i, &Ok(None), &evidence);
    let fixes: Vec<&str> = found.iter().filter_map(|c| c.fix.as_deref()).collect();
    assert!(fixes[0].starts_with("allow iam:GetInstanceProfile"), "{fixes:#?}");
    assert!(fixes[1].starts_with("allow ec2:DescribeVpcEndpoints"), "{fixes:#?}");
    assert_eq!(found.last().unwrap().result, Verdict::Unknown, "the invisible causes still close the list");
}

#[test]
fn endpoints_that_refuse_https_and_a_role_without_the_core_policy() {
    let mut i = instance();
    i.instance_profile = Some("arn:aws:iam::1:instance-profile/app".into());
    let endpoint = |service: &str, state: &str| VpcEndpoint {
        id: format!("vpce-{service}"),
        service: format!("com.amazonaws.eu-west-1.{service}"),
        kind: "Interface".into(),
        state: state.into(),
        private_dns: true,
        groups: vec!["sg-e".into()],
    };
    let mut network = healthy_network();
    network.endpoints = Some(Ok(vec![
        endpoint("ssm", "available"),
        endpoint("ssmmessages", "Available"),
        endpoint("ec2messages", "available"),
    ]));
    network.groups = Some(Ok(vec![
        group("sg-app", vec![], vec![rule("-1", None, None, &["0.0.0.0/0"])]),
        group("sg-e", vec![rule("tcp", Some(22), Some(22), &["10.0.0.0/8"])], vec![]),
    ]));
    let mut role = core_role();
    role.policies =
        Ok(RolePolicies { attached: vec!["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess".into()], inline: vec![] });
    let evidence = AgentEvidence { profile: Some(Ok(Some(vec![role]))), network, ..Default::default() };
    let found = rows(&i, &Ok(None), &evidence);
    assert!(found[0].evidence[0].starts_with("role app has neither AmazonSSMManagedInstanceCore"), "{found:#?}");
    assert!(found[0].fix.as_deref().unwrap().contains("attach-role-policy --role-name app"));
    let refusing: Vec<&Check> = found.iter().filter(|c| c.evidence[0].contains("refuses TCP 443")).collect();
    assert_eq!(refusing.len(), 3, "the state is compared case-insensitively: {found:#?}");
    assert!(!found.iter().any(|c| c.evidence[0].contains("private with no way")), "the endpoints are the way");
}
