use std::time::Duration;

use crate::harness::World;

#[test]
fn instance_without_instance_connect_explains_the_refusal() {
    // Without the Run Command fallback (issue 17), which would place the key instead.
    let world = World::with(ec2_lab::Inventory::demo(), "--key-placement instance-connect");
    let out = world.ssh(&["legacy-1", "true"]);
    assert_eq!(out.code(), Some(255), "{}", out.describe());
    assert!(out.stderr.contains("Permission denied (publickey)"), "{}", out.describe());
    assert!(
        out.stderr.contains(
            "ec2-broker: error: instance i-0e1b2c3d4e5f6071c (legacy-1) refused the key pushed with EC2 Instance Connect for user ec2-user. Likely causes: the ec2-instance-connect package is not installed"
        ),
        "{}\n{}",
        out.describe(),
        out.context
    );
    assert!(out.stderr.contains("--route ssm"), "{}", out.stderr);
    assert_eq!(world.lab.state().pushed_keys().len(), 1, "the push itself succeeded");
}

#[test]
fn a_successful_session_triggers_no_refusal_message() {
    let world = World::new();
    for _ in 0..3 {
        let out = world.ssh_ok(&["web-1", "true"]);
        assert_eq!(out.stderr, "");
    }
}

#[test]
fn throttled_then_recovering_api_is_retried() {
    let world = World::new();
    world.lab.state().set_faults(|f| f.throttle_next = 2);
    let out = world.ssh_ok(&["web-1", "echo ok"]);
    assert_eq!(out.stdout, "ok\n");
    let statuses: Vec<(String, u16)> =
        world.lab.state().calls().iter().map(|c| (c.operation.clone(), c.status)).collect();
    assert_eq!(
        statuses[..3],
        [("DescribeInstances".into(), 503), ("DescribeInstances".into(), 503), ("DescribeInstances".into(), 200)],
        "{statuses:?}"
    );
}

#[test]
fn server_errors_on_the_push_are_retried() {
    let world = World::new();
    world.lab.state().set_faults(|f| {
        f.fail_next = 1;
        f.fail_only = Some("SendSSHPublicKey".into());
    });
    world.ssh_ok(&["web-1", "true"]);
    let calls: Vec<(String, u16)> = world
        .lab
        .state()
        .calls()
        .iter()
        .filter(|c| c.service != "imds")
        .map(|c| (c.operation.clone(), c.status))
        .collect();
    assert_eq!(
        calls,
        [("DescribeInstances".into(), 200), ("SendSSHPublicKey".into(), 500), ("SendSSHPublicKey".into(), 200)],
        "the failed push is retried once"
    );
}

#[test]
fn api_down_gives_a_clear_error() {
    let world = World::new();
    world.lab.state().set_faults(|f| f.down = true);
    let out = world.ssh(&["web-1", "true"]);
    assert_eq!(out.code(), Some(255), "{}", out.describe());
    assert!(
        out.stderr.starts_with(
            "ec2-broker: error: looking up Name=web-1: EC2 DescribeInstances: ServiceUnavailable: The service is unavailable."
        ),
        "{}",
        out.describe()
    );
    let attempts = world.lab.state().calls().len();
    assert_eq!(attempts, 3, "the SDK's standard retry makes 3 attempts");
    assert!(world.lab.state().pushed_keys().is_empty());
}

#[test]
fn unreachable_endpoint_gives_a_clear_error_and_a_hint() {
    let world = World::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cmd = world.command(crate::harness::broker());
    let closed = format!("http://{closed}");
    cmd.env("AWS_ENDPOINT_URL", &closed).env("AWS_ENDPOINT_URL_EC2", &closed).args(["proxy", "web-1"]);
    let out = world.run(cmd, Duration::from_secs(60));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.starts_with("ec2-broker: error: looking up Name=web-1: EC2 DescribeInstances: "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .ends_with("  hint: check the network path to the AWS endpoint (and AWS_ENDPOINT_URL* if you set them)\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_credentials_say_what_to_do() {
    let world = World::new();
    let mut cmd = world.command(crate::harness::broker());
    cmd.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY").args(["proxy", "web-1"]);
    let out = world.run(cmd, Duration::from_secs(60));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("hint: no usable AWS credentials"), "{}", out.stderr);
    assert!(world.lab.state().calls().is_empty(), "nothing unsigned was sent");
}

#[test]
fn instance_refusing_tcp_names_the_address() {
    let mut inventory = ec2_lab::Inventory::demo();
    // An instance whose address has no sshd at all.
    inventory.instances.push(inventory.instances[0].clone());
    let ghost = inventory.instances.last_mut().unwrap();
    ghost.id = "i-0f1b2c3d4e5f607aa".into();
    ghost.name = Some("ghost".into());
    ghost.state = "running".into();
    ghost.private_ip = Some("127.0.1.99".parse().unwrap());
    ghost.public_ip = None;
    let world = World::with(inventory, "");
    // Connect to a port where nothing listens on the ghost's address.
    let closed = std::net::TcpListener::bind("127.0.1.99:0").unwrap().local_addr().unwrap().port();
    let mut cmd = world.command(crate::harness::broker());
    cmd.args(["proxy", "--route", "direct", "--key-dir"]).arg(world.key_dir()).arg(format!("ghost:{closed}"));
    let out = world.run(cmd, Duration::from_secs(60));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr
            .starts_with(&format!("ec2-broker: error: cannot connect to 127.0.1.99:{closed}: Connection refused")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("try another --address or route"), "{}", out.stderr);
}
