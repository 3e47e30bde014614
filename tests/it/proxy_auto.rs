//! `--route auto` end to end: plain ssh reaches an instance whichever single route works, a route
//! that fails after opening falls through without ssh noticing, and data arrives intact through
//! the relayed routes.

use std::fs;

use ec2_lab::{EiceFaults, Inventory};

use crate::harness::{World, scp_round_trip};

/// The demo plus one instance reachable only through SSM (no inbound network, in a VPC without
/// an endpoint), one only through the endpoint (no inbound network, no SSM agent) and one through
/// nothing.
pub(crate) fn auto_world() -> World {
    let text = format!(
        "{}\n[[instance]]\nid = \"i-0e3000000000000d1\"\nname = \"ssm-only\"\nprivate_ip = \"127.0.1.41\"\ninbound = false\n\
         ssm = \"online\"\nvpc_id = \"vpc-0150a7ed000000001\"\nsubnet_id = \"subnet-0150a7ed000000001\"\n\n\
         [[instance]]\nid = \"i-0e3000000000000d2\"\nname = \"eice-only\"\nprivate_ip = \"127.0.1.42\"\ninbound = false\nssm = \"none\"\n\n\
         [[instance]]\nid = \"i-0e3000000000000d3\"\nname = \"unreachable\"\nprivate_ip = \"127.0.1.43\"\ninbound = false\n\
         ssm = \"none\"\nvpc_id = \"vpc-0150a7ed000000001\"\nsubnet_id = \"subnet-0150a7ed000000001\"\n",
        ec2_lab::inventory::DEMO
    );
    World::with(Inventory::from_toml(&text).unwrap(), "--route auto")
}

fn log(world: &World) -> String {
    fs::read_to_string(&world.broker_log).unwrap_or_default()
}

#[test]
fn each_instance_by_the_one_route_that_works() {
    let world = auto_world();
    for (host, route) in [("web-1", "direct"), ("eice-only", "eice"), ("ssm-only", "ssm")] {
        let _ = fs::remove_file(&world.broker_log);
        let out = world.ssh_ok(&[host, "echo reached $(id -un)"]);
        assert_eq!(out.stdout, "reached ec2-user\n", "{host}");
        assert_eq!(out.stderr, "", "ssh saw nothing of the routes that failed: {host}");
        let log = log(&world);
        assert!(log.contains(&format!("route open, piping route={route}")), "{host}:\n{log}");
    }
    // Data through a relayed route arrives intact.
    scp_round_trip(&world, "ssm-only", 3 << 20, 0xa070);
    scp_round_trip(&world, "eice-only", 8 << 20, 0xa071);
}

#[test]
fn a_route_that_fails_after_opening_falls_through() {
    let world = auto_world();
    // The endpoint accepts the tunnel, then closes it: db-1 (no inbound network) must end up on SSM.
    world
        .lab
        .state()
        .set_eice_faults(|f| *f = EiceFaults { close_code: Some((1011, "lab: boom".into())), ..f.clone() });
    let out = world.ssh_ok(&["db-1", "echo via $(id -un)"]);
    assert_eq!(out.stdout, "via ec2-user\n");
    assert_eq!(out.stderr, "");
    let log = log(&world);
    assert!(log.contains("route did not open; trying the next route=eice"), "{log}");
    assert!(log.contains("route open, piping route=ssm"), "{log}");
    assert!(world.lab.eice_tunnels().iter().any(|t| t.accepted), "the tunnel was opened, then failed");
}

#[test]
fn no_route_says_why_for_each() {
    let world = auto_world();
    let out = world.ssh(&["unreachable", "true"]);
    assert!(!out.success());
    assert!(out.stderr.contains("no route reached instance i-0e3000000000000d3 (unreachable)"), "{}", out.describe());
    for part in [
        "direct: cannot connect to 127.0.1.43",
        "eice: no usable EC2 Instance Connect Endpoint",
        "ssm: instance i-0e3000000000000d3 has no SSM agent online",
    ] {
        assert!(out.stderr.contains(part), "{part}: {}", out.describe());
    }
    // --try-routes leaves routes out: eice-only is not tried through its endpoint.
    let mut cmd = world.command(crate::harness::broker());
    cmd.args(["proxy", "--route", "auto", "--try-routes", "direct,ssm", "--no-push", "ec2-user@eice-only:22"]);
    let out = world.run(cmd, std::time::Duration::from_secs(60));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("no route reached") && out.stderr.contains("direct:"), "{}", out.describe());
    assert!(!out.stderr.contains("eice:"), "{}", out.describe());
    assert_eq!(out.stdout, "");
}

#[test]
fn the_next_connection_tries_the_remembered_route_first() {
    let world = auto_world();
    let calls_of = |f: &dyn Fn()| {
        let before = world.lab.state().calls().len();
        f();
        world.lab.state().calls()[before..].iter().map(|c| c.operation.clone()).collect::<Vec<_>>()
    };
    let first = calls_of(&|| {
        world.ssh_ok(&["ssm-only", "true"]);
    });
    let second = calls_of(&|| {
        world.ssh_ok(&["ssm-only", "true"]);
    });
    assert!(
        first.iter().any(|c| c == "DescribeInstanceConnectEndpoints"),
        "the first looked for an endpoint: {first:?}"
    );
    assert!(
        !second.iter().any(|c| c == "DescribeInstanceConnectEndpoints"),
        "the second went to SSM first: {second:?}"
    );
    assert!(second.len() < first.len(), "{first:?} vs {second:?}");
    let memory = fs::read_to_string(world.path("home/.cache/ec2-broker/routes.json")).unwrap();
    assert!(memory.contains("\"i-0e3000000000000d1\":[\"ssm\","), "{memory}");
}

#[test]
fn the_settings_file_orders_the_routes_below_flags_and_environment() {
    let world = auto_world();
    let settings = world.path("settings");
    fs::write(&settings, "# from the user's config dir\ntry-routes = ssm, direct\n").unwrap();
    let ssh = |extra_env: &[(&str, &str)]| {
        let _ = fs::remove_file(&world.broker_log);
        let _ = fs::remove_file(world.path("home/.cache/ec2-broker/routes.json"));
        let mut cmd = world.command("ssh");
        cmd.env("EC2_BROKER_CONFIG", &settings).envs(extra_env.iter().copied());
        cmd.arg("-F").arg(&world.ssh_config).args(["web-1", "echo ok"]);
        world.run(cmd, std::time::Duration::from_secs(60))
    };
    let out = ssh(&[]);
    assert_eq!(out.stdout, "ok\n", "{}", out.describe());
    assert!(log(&world).contains("route open, piping route=ssm"), "{}", log(&world));
    // The environment wins over the file.
    let out = ssh(&[("EC2_BROKER_TRY_ROUTES", "direct")]);
    assert_eq!(out.stdout, "ok\n", "{}", out.describe());
    assert!(log(&world).contains("route open, piping route=direct"), "{}", log(&world));
    // A bad file stops the broker with the file, the line and what is allowed.
    fs::write(&settings, "try-routes = ssm, carrier-pigeon\n").unwrap();
    let out = ssh(&[]);
    assert!(!out.success());
    assert!(
        out.stderr.contains(&format!(
            "ec2-broker: error: reading the settings file: {}:1: \"carrier-pigeon\" is not one of direct, ssm, eice, serial, auto",
            settings.display()
        )),
        "{}",
        out.describe()
    );
}
