//! Issue 19, the broker's own EC2 client (which replaced `aws-sdk-ec2`): the lab serves EC2
//! over TLS as AWS does, so every test's EC2 call goes through rustls and `AWS_CA_BUNDLE`; here
//! the trust itself, the retry limits the configuration sets, and the request id in a final
//! error.

use std::time::Duration;

use crate::harness::{World, broker};

/// `ec2-broker proxy web-1` with `env` changed.
fn proxy(world: &World, change: impl FnOnce(&mut std::process::Command)) -> crate::harness::Output {
    let mut cmd = world.command(broker());
    change(&mut cmd);
    cmd.args(["proxy", "web-1"]);
    world.run(cmd, Duration::from_secs(60))
}

fn describe_calls(world: &World) -> Vec<u16> {
    (world.lab.state().calls().into_iter()).filter(|c| c.operation == "DescribeInstances").map(|c| c.status).collect()
}

#[test]
fn issue_19_ec2_goes_over_tls_and_trusts_the_ca_bundle_only() {
    // See: issue 19
    let world = World::new();
    let env: Vec<(String, String)> = world.env();
    let ec2 = env.iter().find(|(k, _)| k == "AWS_ENDPOINT_URL_EC2").map(|(_, v)| v.clone()).unwrap();
    assert!(ec2.starts_with("https://127.0.0.1:"), "{ec2}");
    // Without the lab's CA the handshake fails: a clear error, and no request reaches EC2.
    let out = proxy(&world, |c| {
        c.env_remove("AWS_CA_BUNDLE");
    });
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("EC2 DescribeInstances: cannot reach the endpoint"), "{}", out.describe());
    assert!(
        out.stderr.contains("invalid peer certificate: UnknownIssuer"),
        "the TLS failure is named: {}",
        out.describe()
    );
    assert!(out.stderr.contains("set AWS_CA_BUNDLE"), "{}", out.describe());
    assert!(describe_calls(&world).is_empty(), "no request was sent without trust");

    world.ssh_ok(&["web-1", "true"]);
    assert_eq!(describe_calls(&world), [200], "the lookup went over TLS");
}

#[test]
fn issue_19_throttled_calls_are_tried_as_often_as_the_configuration_says() {
    // See: issue 19
    let world = World::new();
    let throttle = |n| {
        world.lab.state().set_faults(|f| {
            f.throttle_next = n;
            f.throttle_only = Some("DescribeInstances".into());
        })
    };
    throttle(10);
    let out = proxy(&world, |c| {
        c.env("AWS_MAX_ATTEMPTS", "2");
    });
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("EC2 DescribeInstances: RequestLimitExceeded"), "{}", out.describe());
    assert!(out.stderr.contains("(request id "), "{}", out.describe());
    assert_eq!(describe_calls(&world).len(), 2, "AWS_MAX_ATTEMPTS=2");

    throttle(10);
    let out = proxy(&world, |_| {});
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert_eq!(describe_calls(&world).len(), 2 + 3, "three attempts by default");

    // A refusal is final at once: no retry would change it.
    throttle(0);
    world.lab.state().set_faults(|f| {
        f.deny.insert("ec2:DescribeInstances".into());
    });
    let out = proxy(&world, |_| {});
    assert!(out.stderr.contains("UnauthorizedOperation"), "{}", out.describe());
    assert_eq!(describe_calls(&world).len(), 2 + 3 + 1);
}
