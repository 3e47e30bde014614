use std::time::Duration;

use crate::harness::World;

/// Runs `ec2-broker proxy SPEC` with stdin closed; returns (exit code, stdout, stderr).
fn proxy(world: &World, spec: &str) -> (Option<i32>, String, String) {
    let mut cmd = world.command(crate::harness::broker());
    cmd.args(["proxy", "--key-dir"]).arg(world.key_dir()).arg(spec);
    let out = world.run(cmd, Duration::from_secs(60));
    (out.code(), out.stdout, out.stderr)
}

#[test]
fn ambiguous_name_lists_the_candidates() {
    let world = World::new();
    let (code, stdout, stderr) = proxy(&world, "ec2-user@api-*:22");
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "ec2-broker: error: Name=api-* matches 2 running instances:\n  \
         i-0b1b2c3d4e5f60719 (Name=api-1, running, eu-west-1b, 127.0.1.11, launched 2026-11-20T09:05:00Z)\n  \
         i-0c1b2c3d4e5f6071a (Name=api-2, running, eu-west-1c, 127.0.1.12, launched 2026-11-21T10:00:00Z)\n\
         pick one by instance id (e.g. ssh i-0b1b2c3d4e5f60719) or with a more specific tag:KEY=VALUE\n"
    );
    assert!(world.lab.state().pushed_keys().is_empty(), "no key is pushed before the instance is known");
}

#[test]
fn stopped_instance_says_how_to_start_it() {
    let world = World::new();
    let (code, _, stderr) = proxy(&world, "batch-1");
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "ec2-broker: error: instance i-0d1b2c3d4e5f6071b (Name=batch-1) is stopped: start it first \
         (aws ec2 start-instances --instance-ids i-0d1b2c3d4e5f6071b)\n"
    );
}

// See: issue 14 (§5): a Name tag cannot drive the terminal (C1 `CSI`) or reorder the line
// (a right-to-left override) in a message.
#[test]
fn issue_14_name_tags_reach_the_terminal_escaped() {
    let mut inventory = ec2_lab::Inventory::demo();
    let batch = inventory.instances.iter_mut().find(|i| i.name.as_deref() == Some("batch-1")).expect("batch-1");
    batch.name = Some("batch-1\u{9b}2J\u{202e}lave".into());
    let world = World::with(inventory, "");
    let (code, _, stderr) = proxy(&world, "i-0d1b2c3d4e5f6071b");
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "ec2-broker: error: instance i-0d1b2c3d4e5f6071b (Name=batch-1\\u{9b}2J\\u{202e}lave) is stopped: start it first \
         (aws ec2 start-instances --instance-ids i-0d1b2c3d4e5f6071b)\n"
    );
}

#[test]
fn unknown_name_and_unknown_id() {
    let world = World::new();
    let (code, _, stderr) = proxy(&world, "nope");
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "ec2-broker: error: no instance matches Name=nope in eu-west-1: check the spelling, --region and --profile\n"
    );
    let (code, _, stderr) = proxy(&world, "i-0123456789abcdef0");
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "ec2-broker: error: no instance matches i-0123456789abcdef0 in eu-west-1: check the spelling, --region and --profile\n"
    );
}

#[test]
fn by_tag_private_ip_and_public_ip() {
    let world = World::new();
    let port = world.lab.ssh_port("i-0a1b2c3d4e5f60718");
    for spec in ["tag:Role=web", "127.0.1.10", "127.0.2.10", "i-0a1b2c3d4e5f60718", "web-1.eu-west-1.ec2"] {
        let (code, stdout, stderr) = proxy(&world, &format!("ec2-user@{spec}:{port}"));
        assert_eq!(code, Some(0), "{spec}: {stderr}\n{}", world.dump());
        assert!(stdout.starts_with("SSH-2.0-"), "{spec}: {stdout:?}");
    }
    // The direct route with --address public needs a public address (auto would go on to eice).
    let mut cmd = world.command(crate::harness::broker());
    cmd.args(["proxy", "--route", "direct", "--address", "public", "--no-push", &format!("api-1:{port}")]);
    let out = world.run(cmd, Duration::from_secs(60));
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr,
        "ec2-broker: error: instance i-0b1b2c3d4e5f60719 has no public IPv4 address: use --address private from inside its network, or another route\n"
    );
}

#[test]
fn bad_host_specs_are_refused_before_any_api_call() {
    let world = World::new();
    let cases = [
        ("web 1", "ec2-broker: error: reading host \"web 1\": bad character ' ' in host \"web 1\"\n"),
        (
            "web:99999",
            "ec2-broker: error: reading host \"web:99999\": bad port \"99999\" in \"web:99999\": the port must be a number from 1 to 65535\n",
        ),
        (
            "tag:Role",
            "ec2-broker: error: reading host \"tag:Role\": bad tag selector \"tag:Role\": write tag:KEY=VALUE, e.g. tag:Role=web\n",
        ),
    ];
    for (spec, want) in cases {
        let (code, stdout, stderr) = proxy(&world, spec);
        assert_eq!((code, stdout.as_str(), stderr.as_str()), (Some(1), "", want), "{spec}");
    }
    assert!(world.lab.state().calls().is_empty(), "{:?}", world.lab.state().calls());
}

#[test]
fn pagination_is_followed() {
    let world = World::new();
    world.lab.state().set_faults(|f| f.page_size = Some(1));
    let (code, _, stderr) = proxy(&world, "ec2-user@api-*:22");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("matches 2 running instances"), "{stderr}");
    let pages = world.lab.state().calls().iter().filter(|c| c.operation == "DescribeInstances").count();
    assert_eq!(pages, 2, "two instances, one per page");
}

#[test]
fn a_warm_connection_makes_only_the_key_push_and_a_failure_forgets_the_lookup() {
    let world = World::new();
    let ops = |w: &World| {
        w.lab.state().calls().iter().filter(|c| c.service != "imds").map(|c| c.operation.clone()).collect::<Vec<_>>()
    };
    world.ssh_ok(&["web-1", "true"]);
    world.ssh_ok(&["web-1", "true"]);
    assert_eq!(
        ops(&world),
        ["DescribeInstances", "SendSSHPublicKey"],
        "the second lookup came from the cache, and the key pushed moments ago was reused (issue 19)"
    );
    // A connection that fails drops the cached lookup: the next one asks EC2 again. (Without
    // the record of the push, the next connection pushes again rather than reusing the key.)
    std::fs::remove_file(world.path("home").join(".cache/ec2-broker/pushes.json")).unwrap();
    world.lab.state().set_faults(|f| {
        f.fail_next = 3;
        f.fail_only = Some("SendSSHPublicKey".into());
    });
    assert!(!world.ssh(&["web-1", "true"]).success());
    world.ssh_ok(&["web-1", "true"]);
    let after: Vec<String> = ops(&world)[2..].to_vec();
    assert_eq!(after.iter().filter(|o| *o == "DescribeInstances").count(), 1, "{after:?}");
}
