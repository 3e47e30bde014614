use super::*;
use crate::aws::security_groups::Ingress;
use crate::route::error::Greeting;

fn denied(service: &'static str, operation: &'static str, code: &str) -> AwsError {
    AwsError::Service { service, operation, code: code.into(), message: "not authorized".into(), request_id: None }
}

fn group(id: &str, rules: &[(&str, i32, i32)]) -> SecurityGroup {
    SecurityGroup {
        id: id.into(),
        name: format!("{id}-name"),
        ingress: rules
            .iter()
            .map(|(p, f, t)| Ingress {
                protocol: (*p).into(),
                from_port: Some(*f),
                to_port: Some(*t),
                sources: vec!["10.0.0.0/8".into()],
            })
            .collect(),
        egress: Vec::new(),
    }
}

#[test]
fn iam_actions_from_denials() {
    assert_eq!(
        denied_action(&denied("SSM", "StartSession", "AccessDeniedException")).as_deref(),
        Some("ssm:StartSession")
    );
    assert_eq!(
        denied_action(&denied("EC2", "DescribeSecurityGroups", "UnauthorizedOperation")).as_deref(),
        Some("ec2:DescribeSecurityGroups")
    );
    assert_eq!(denied_action(&denied("EC2", "DescribeInstances", "RequestLimitExceeded")), None);
    let transport = AwsError::Transport { service: "EC2", operation: "DescribeInstances", detail: "timeout".into() };
    assert_eq!(denied_action(&transport), None);
}

#[test]
fn credentials_fixes_by_error() {
    let ok = credentials(&Ok("arn:aws:iam::1:user/a".into()));
    assert_eq!((ok.result, ok.evidence[0].as_str()), (Verdict::Works, "arn:aws:iam::1:user/a"));
    let bad = credentials(&Err(denied("STS", "GetCallerIdentity", "InvalidClientTokenId")));
    assert_eq!(bad.result, Verdict::Fails);
    assert!(bad.fix.unwrap().starts_with("the access key is unknown"));
    let expired = credentials(&Err(denied("STS", "GetCallerIdentity", "ExpiredToken")));
    assert!(expired.fix.unwrap().contains("ec2-broker login"));
}

fn direct_with(attempt: &Result<(), RouteError>, groups: Option<&Result<Vec<SecurityGroup>, AwsError>>) -> Check {
    direct(&DirectFacts {
        kind: AddressKind::Private,
        address: Some(Ipv4Addr::new(10, 0, 0, 5)),
        port: 22,
        attempt: Some(attempt),
        groups,
    })
}

#[test]
fn direct_route() {
    let works = direct_with(&Ok(()), None);
    assert_eq!((works.result, works.evidence[0].as_str()), (Verdict::Works, "10.0.0.5:22: sshd answered"));

    let refused: Result<(), RouteError> = Err(RouteError::Direct(crate::route::direct::DirectError::Connect {
        addr: "10.0.0.5:22".parse().unwrap(),
        source: std::io::Error::from_raw_os_error(111),
    }));
    let closed = Ok(vec![group("sg-1", &[("tcp", 443, 443)]), group("sg-2", &[])]);
    let c = direct_with(&refused, Some(&closed));
    assert_eq!(c.result, Verdict::Fails);
    assert_eq!(
        c.evidence[0],
        "cannot connect to 10.0.0.5:22: Connection refused (os error 111): is sshd listening on that port? try another \
         --address or route",
        "the route's own error names the address: no prefix"
    );
    let silent = direct_with(&Err(RouteError::Greeting(Greeting::Silent { secs: 10 })), None);
    assert_eq!(silent.evidence[0], "10.0.0.5:22: sshd said nothing within 10 s");
    assert_eq!(
        c.evidence[1],
        "no inbound rule of its security groups allows TCP 22: sg-1 (sg-1-name), sg-2 (sg-2-name)"
    );
    assert!(c.fix.unwrap().starts_with("add an inbound rule for TCP 22 from your address"));

    let open = Ok(vec![group("sg-1", &[("tcp", 22, 22)])]);
    let c = direct_with(&refused, Some(&open));
    assert_eq!(c.evidence[1], "inbound TCP 22 is allowed by sg-1 (sg-1-name) from 10.0.0.0/8");
    assert!(c.fix.unwrap().contains("reachable only from inside its VPC"));

    let unreadable = Err(denied("EC2", "DescribeSecurityGroups", "UnauthorizedOperation"));
    let c = direct_with(&refused, Some(&unreadable));
    assert!(c.fix.unwrap().starts_with("allow ec2:DescribeSecurityGroups"));

    let none = direct(&DirectFacts {
        kind: AddressKind::Public,
        address: None,
        port: 22,
        attempt: Some(&refused),
        groups: None,
    });
    assert_eq!(none.evidence, ["the instance has no public IPv4 address"]);
    assert_eq!(none.result, Verdict::Fails);
}

fn endpoint() -> Endpoint {
    Endpoint {
        id: "eice-1".into(),
        dns_name: "eice-1.example".into(),
        vpc_id: Some("vpc-1".into()),
        subnet_id: Some("subnet-1".into()),
        state: "create-complete".into(),
    }
}

fn eice_with<'a>(endpoints: &'a Result<Vec<Endpoint>, AwsError>, attempt: Option<&'a Result<(), RouteError>>) -> Check {
    eice(&EiceFacts {
        vpc: Some("vpc-1"),
        subnet: Some("subnet-1"),
        private_ip: Some(Ipv4Addr::new(10, 0, 0, 5)),
        port: 22,
        endpoints,
        attempt,
        region: "eu-west-1",
    })
}

#[test]
fn endpoint_route() {
    let none = eice_with(&Ok(vec![]), None);
    assert_eq!(
        (none.result, none.evidence[0].as_str()),
        (Verdict::Fails, "no usable Instance Connect Endpoint in vpc-1")
    );
    assert!(
        none.fix.unwrap().contains("aws ec2 create-instance-connect-endpoint --subnet-id subnet-1 --region eu-west-1")
    );

    let found = Ok(vec![endpoint()]);
    let works = eice_with(&found, Some(&Ok(())));
    assert_eq!(works.evidence, ["eice-1 opened a tunnel to 10.0.0.5:22: sshd answered"]);
    let target: Result<(), RouteError> = Err(RouteError::Eice(crate::route::eice::EiceError::Closed {
        code: 1011,
        reason: "Unable to connect to target".into(),
        hint: String::new(),
    }));
    let fails = eice_with(&found, Some(&target));
    assert_eq!(fails.result, Verdict::Fails);
    assert!(fails.fix.unwrap().contains("from the endpoint's security group"));
    // The same words in another failure are not the same cause: typed, not text.
    let refused: Result<(), RouteError> = Err(RouteError::Eice(crate::route::eice::EiceError::Connect {
        addr: "eice-1".into(),
        detail: "closed: Unable to connect to target".into(),
    }));
    assert!(eice_with(&found, Some(&refused)).fix.is_none());

    let denied_list = Err(denied("EC2", "DescribeInstanceConnectEndpoints", "UnauthorizedOperation"));
    let unknown = eice_with(&denied_list, None);
    assert_eq!(unknown.result, Verdict::Unknown);
    assert!(unknown.fix.unwrap().starts_with("allow ec2:DescribeInstanceConnectEndpoints"));

    let outside = eice(&EiceFacts {
        vpc: None,
        subnet: None,
        private_ip: None,
        port: 22,
        endpoints: &found,
        attempt: None,
        region: "eu-west-1",
    });
    assert_eq!(outside.result, Verdict::Fails);
}

fn agent(ping: &str) -> AgentStatus {
    AgentStatus { ping_status: ping.into(), agent_version: Some("3.3.1".into()), last_ping: None }
}

#[test]
fn session_manager_route() {
    let unregistered = ssm(&SsmFacts { status: &Ok(None), instance_profile: None, port: 22, attempt: None });
    assert_eq!(unregistered.result, Verdict::Fails);
    assert_eq!(unregistered.evidence, ["the instance is not registered with Systems Manager", "no instance profile"]);
    assert!(unregistered.fix.unwrap().starts_with("attach an instance profile"));
    let with_profile = ssm(&SsmFacts { status: &Ok(None), instance_profile: Some("arn:p"), port: 22, attempt: None });
    assert!(with_profile.fix.unwrap().starts_with("check that the profile's role"));

    let lost =
        ssm(&SsmFacts { status: &Ok(Some(agent("ConnectionLost"))), instance_profile: None, port: 22, attempt: None });
    assert_eq!(lost.evidence[0], "the SSM agent (3.3.1) is ConnectionLost");

    let online = Ok(Some(agent("Online")));
    let works = ssm(&SsmFacts { status: &online, instance_profile: Some("arn:p"), port: 22, attempt: Some(&Ok(())) });
    assert_eq!(works.evidence, ["SSM agent 3.3.1 online; a session to port 22 reached sshd"]);
    let refused: Result<(), RouteError> = Err(RouteError::Ssm(crate::route::ssm::SsmError::Start {
        id: "i-1".into(),
        source: denied("SSM", "StartSession", "AccessDeniedException"),
    }));
    let denied = ssm(&SsmFacts { status: &online, instance_profile: None, port: 22, attempt: Some(&refused) });
    assert_eq!(denied.result, Verdict::Fails);
    assert!(denied.fix.unwrap().starts_with("allow ssm:StartSession"));
}

#[test]
fn serial_console_prerequisites() {
    let facts = |access, type_problem| SerialFacts { access, type_problem, region: "eu-west-1", host: "web-1" };
    let off = serial(&facts(&Ok(false), &Ok(None)));
    assert_eq!(off.result, Verdict::Fails);
    assert!(off.fix.unwrap().contains("aws ec2 enable-serial-console-access --region eu-west-1"));
    let xen_type = Ok(Some("t2.micro is not built on the Nitro System".to_string()));
    let xen = serial(&facts(&Ok(true), &xen_type));
    assert_eq!((xen.result, xen.evidence[0].as_str()), (Verdict::Fails, "t2.micro is not built on the Nitro System"));
    let ready = serial(&facts(&Ok(true), &Ok(None)));
    assert_eq!(ready.result, Verdict::Ready);
    assert!(ready.evidence[1].contains("`ec2-broker console web-1`"));
    let denied_status = Err(denied("EC2", "GetSerialConsoleAccessStatus", "UnauthorizedOperation"));
    let unknown = serial(&facts(&denied_status, &Ok(None)));
    assert_eq!(unknown.result, Verdict::Unknown);
}

#[test]
fn pushed_key() {
    let pushed = Ok(());
    let facts = |probe| KeyFacts { user: "ec2-user", push: Some(&pushed), probe, run_command: None };
    assert_eq!(key(&facts(Some((Route::Eice, Some(true))))).result, Verdict::Works);
    let refused = key(&facts(Some((Route::Direct, Some(false)))));
    assert_eq!(refused.result, Verdict::Fails);
    assert!(refused.evidence[0].ends_with("was refused: Permission denied (login tried over direct)"));
    assert!(refused.fix.unwrap().contains("ec2-instance-connect package is missing"));
    assert_eq!(key(&facts(None)).result, Verdict::Unknown);
    assert_eq!(key(&facts(Some((Route::Ssm, None)))).result, Verdict::Unknown);
    let failed: Result<(), String> = Err("not allowed to push a key".into());
    let c = key(&KeyFacts { user: "ec2-user", push: Some(&failed), probe: None, run_command: None });
    assert_eq!(c.evidence, ["pushing a key for ec2-user: not allowed to push a key"]);
    assert_eq!(key(&KeyFacts { user: "u", push: None, probe: None, run_command: None }).result, Verdict::Unknown);
}

// See: issue 17 (the key placed with Run Command when Instance Connect's is refused).
#[test]
fn key_placed_with_run_command() {
    let pushed = Ok(());
    let refused = Some((Route::Direct, Some(false)));
    let row = |rc: &RunCommandPlacement| {
        key(&KeyFacts { user: "ec2-user", push: Some(&pushed), probe: refused, run_command: Some(rc) })
    };
    let placed = row(&RunCommandPlacement::Placed { command_id: "c-1".into(), accepted: Some(true) });
    assert_eq!(placed.result, Verdict::Works);
    assert!(placed.evidence.iter().any(|e| e.starts_with("placement: run-command")), "{:?}", placed.evidence);
    assert!(placed.evidence.iter().any(|e| e.contains("(command id c-1)")));
    let denied = row(&RunCommandPlacement::Denied);
    assert_eq!(denied.result, Verdict::Fails);
    assert!(denied.evidence.iter().any(|e| e.contains("lacks ssm:SendCommand")));
    assert!(denied.fix.unwrap().starts_with("allow ssm:SendCommand"));
    let also = row(&RunCommandPlacement::Placed { command_id: "c-2".into(), accepted: Some(false) });
    assert_eq!(also.result, Verdict::Fails);
    let unknown = row(&RunCommandPlacement::Placed { command_id: "c-3".into(), accepted: None });
    assert_eq!(unknown.result, Verdict::Unknown);
    let failed = row(&RunCommandPlacement::Failed("SSM cannot run commands".into()));
    assert_eq!(failed.result, Verdict::Fails);
    let accepted =
        key(&KeyFacts { user: "u", push: Some(&pushed), probe: Some((Route::Ssm, Some(true))), run_command: None });
    assert!(accepted.evidence.contains(&"placement: instance-connect".to_string()));
}

// See: issue 14 (a stale pushed key left after kill -9: doctor says whether it is reused).
#[test]
fn left_over_key_says_what_happens_next() {
    use std::time::Duration;

    use crate::keys::file::LeftOver;
    let reused = LeftOver { path: "/k/u@h".into(), age: Some(Duration::from_secs(12)), replaced_because: None };
    assert_eq!(
        left_over_key(&reused),
        "a key file left by an ended connection (its broker was killed) is at /k/u@h (12 s old, no connection uses \
         it): the next connection reuses it (pushed again; within the key's 60 s validity)"
    );
    let replaced = LeftOver { replaced_because: Some("it was not created by ec2-broker: mode 0644".into()), ..reused };
    assert!(
        left_over_key(&replaced).ends_with("replaces it with a fresh key: it was not created by ec2-broker: mode 0644")
    );
}
