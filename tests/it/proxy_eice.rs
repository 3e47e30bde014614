//! The eice route end to end: real ssh, scp, rsync and sshd through the broker's presigned
//! websocket and the lab's EICE double, which verifies SigV4 signatures with its own code.

use std::process::Stdio;
use std::time::Duration;

use ec2_lab::Inventory;

use crate::harness::process::{cpu_ticks, idle_session, kill_and_time_exit};
use crate::harness::{World, rsync_tree, scp_round_trip};

fn eice_world() -> World {
    World::with(Inventory::demo(), "--route eice")
}

/// ssh with extra environment on top of the world's.
fn ssh_env(world: &World, env: &[(&str, &str)], args: &[&str]) -> crate::harness::Output {
    let mut cmd = world.command("ssh");
    cmd.envs(env.iter().copied()).arg("-F").arg(&world.ssh_config).args(args);
    world.run(cmd, Duration::from_secs(60))
}

#[test]
fn interactive_scp_64_mib_both_ways_and_rsync_over_eice() {
    let world = eice_world();
    let out = world.ssh_ok(&["web-1", "id -un"]);
    assert_eq!(out.stdout, "ec2-user\n");
    assert_eq!(out.stderr, "");
    let tunnels = world.lab.eice_tunnels();
    assert_eq!(tunnels.len(), 1, "{tunnels:#?}");
    assert!(tunnels[0].accepted, "{tunnels:#?}");

    scp_round_trip(&world, "web-1", 64 << 20, 0xe1ce);
    rsync_tree(&world, "web-1", &[0, 1, 65_537, 2 << 20]);
}

#[test]
fn refusals_are_distinct_and_clear() {
    let world = eice_world();

    // A wrong secret key: as at AWS, the API refuses it before any tunnel is asked for (issue
    // 18: the lab verifies every signature; the endpoint's own check of a wrong presignature is
    // pinned by the lab's eice tests).
    let out =
        ssh_env(&world, &[("AWS_SECRET_ACCESS_KEY", "wrongwrongwrongwrongwrongwrongwrongwrong")], &["web-1", "true"]);
    assert!(!out.success());
    assert!(out.stderr.contains("AuthFailure"), "{}", out.describe());
    assert!(world.lab.eice_tunnels().is_empty(), "{:#?}", world.lab.eice_tunnels());

    // An expired URL: the endpoint's clock is two minutes ahead of ours.
    world.lab.state().advance(Duration::from_secs(120));
    let out = world.ssh(&["web-1", "true"]);
    assert!(!out.success());
    assert!(out.stderr.contains("refused the tunnel (HTTP 403)"), "{}", out.describe());
    assert!(out.stderr.contains("expired"), "{}", out.describe());
    assert!(out.stderr.contains("clock"), "{}", out.describe());
}

#[test]
fn unknown_endpoint_and_vpc_without_endpoint() {
    let world = eice_world();
    let mut cmd = world.command(crate::harness::broker());
    cmd.args(["proxy", "--route", "eice", "--eice-id", "eice-00000000000000000", "--no-push", "web-1:22"])
        .stdin(Stdio::null());
    let out = world.run(cmd, Duration::from_secs(30));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("eice-00000000000000000 does not exist"), "{}", out.describe());

    let mut cmd = world.command(crate::harness::broker());
    cmd.args(["proxy", "--route", "eice", "--no-push", "iso-1:22"]).stdin(Stdio::null());
    let out = world.run(cmd, Duration::from_secs(30));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("no usable EC2 Instance Connect Endpoint in vpc-"), "{}", out.describe());
    assert!(out.stderr.contains("--route ssm"), "{}", out.describe());
    assert!(world.lab.eice_tunnels().is_empty());
}

#[test]
fn tunnel_reaching_its_duration_cap_says_so() {
    let world = eice_world();
    world.lab.state().set_eice_faults(|f| f.tunnel_cap = Some(Duration::from_secs(2)));
    let out = world.ssh(&["web-1", "sleep 10"]);
    assert!(!out.success(), "{}", out.describe());
    assert!(out.stderr.contains("maximum duration"), "{}", out.describe());
}

#[test]
fn text_frame_is_a_protocol_error() {
    let world = eice_world();
    world.lab.state().set_eice_faults(|f| f.send_text_frame = true);
    let out = world.ssh(&["web-1", "true"]);
    assert!(!out.success());
    assert!(out.stderr.contains("sent text instead of tunnel data"), "{}", out.describe());
}

#[test]
fn broker_idles_without_cpu_and_is_gone_within_a_second_after_ssh() {
    let world = eice_world();
    let (ssh, pid) = idle_session(&world, "web-1");
    // An idle session: the broker waits in epoll, it does not poll.
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let idle = cpu_ticks(pid) - before;
    assert!(idle <= 5, "broker used {idle} clock ticks while the session was idle");

    let gone_after = kill_and_time_exit(ssh, pid);
    assert!(gone_after < Duration::from_secs(1), "broker still there {gone_after:?} after ssh died\n{}", world.dump());
}

#[test]
fn iam_capped_tunnel_duration_needs_eice_max_duration() {
    let mut inventory = Inventory::demo();
    inventory.endpoints[0].max_tunnel_duration_cap = Some(600);
    let world = World::with(inventory.clone(), "--route eice");
    let out = world.ssh(&["web-1", "true"]);
    assert!(!out.success());
    assert!(out.stderr.contains("refused the tunnel (HTTP 403)"), "{}", out.describe());
    assert!(out.stderr.contains("pass --eice-max-duration"), "{}", out.describe());

    let world = World::with(inventory, "--route eice --eice-max-duration 600");
    let out = world.ssh_ok(&["web-1", "echo capped"]);
    assert_eq!(out.stdout, "capped\n");
    assert_eq!(world.lab.eice_tunnels()[0].max_tunnel_duration, Some(600));
}
