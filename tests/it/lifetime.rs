//! The broker leaves when ssh leaves, at every stage: while the instance is looked up behind a
//! slow API, and while a Session Manager session is resuming (issue 14 §4). ssh is killed with
//! SIGKILL, so the broker gets no SIGHUP: all it sees is its pipes losing their other end.
// See: issue 14

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ec2_lab::{Disconnect, DisconnectKind, Inventory};

use crate::harness::World;
use crate::harness::process::{alive, kill_and_time_exit};

/// Waits until the broker has logged its pid (it is running inside its span), then returns it.
fn wait_for_broker(world: &World) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(&world.broker_log).unwrap_or_default();
        if let Some(pid) =
            log.split("pid=").nth(1).and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the broker never logged\n{}", world.dump());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn_ssh(world: &World, args: &[&str]) -> Child {
    let mut cmd = world.command("ssh");
    cmd.arg("-F").arg(&world.ssh_config).args(args);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().expect("starting ssh")
}

#[test]
fn issue_14_ssh_killed_during_a_slow_lookup_leaves_no_broker_behind() {
    let world = World::new();
    // Every API answer takes 10 s: the broker is inside DescribeInstances when ssh dies.
    world.lab.state().set_faults(|f| f.latency = Duration::from_secs(10));
    let ssh = spawn_ssh(&world, &["web-1", "true"]);
    let pid = wait_for_broker(&world);
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(pid), "the broker should still be waiting for the API\n{}", world.dump());
    let gone_after = kill_and_time_exit(ssh, pid);
    assert!(gone_after < Duration::from_secs(1), "broker still there {gone_after:?} after ssh died\n{}", world.dump());
    let log = std::fs::read_to_string(&world.broker_log).unwrap_or_default();
    assert!(log.contains("ssh left"), "the broker says why it left:\n{log}");
}

#[test]
fn issue_14_ssh_killed_while_the_session_resumes_ends_the_session() {
    let world = World::with(Inventory::demo(), "--route ssm");
    // The websocket drops once the session carried 60 kB, which the remote command produces
    // only after ResumeSession has been made to fail: the broker then keeps trying to resume
    // (for --ssm-resume-timeout, 600 s by default) while nobody writes to it.
    world
        .lab
        .state()
        .set_ssm_faults(|f| f.disconnects.push_back(Disconnect::after_bytes(60_000, DisconnectKind::Drop)));
    let mut ssh = spawn_ssh(&world, &["db-1", "echo ready; sleep 1; head -c 200000 /dev/zero; sleep 60"]);
    let mut stdout = ssh.stdout.take().expect("piped stdout");
    let mut first = [0u8; 6];
    stdout.read_exact(&mut first).expect("reading the remote's first line");
    assert_eq!(&first, b"ready\n");
    let pid = wait_for_broker(&world);
    world.lab.state().set_faults(|f| {
        f.fail_next = 10_000;
        f.fail_only = Some("ResumeSession".into());
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !world.lab.state().calls().iter().any(|c| c.operation == "ResumeSession") {
        assert!(Instant::now() < deadline, "the broker never tried to resume\n{}", world.dump());
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdout);
    let gone_after = kill_and_time_exit(ssh, pid);
    assert!(gone_after < Duration::from_secs(1), "broker still there {gone_after:?} after ssh died\n{}", world.dump());
    let calls = world.lab.state().calls();
    assert!(
        calls.iter().any(|c| c.operation == "TerminateSession" && c.status == 200),
        "the abandoned session was not terminated: {calls:#?}"
    );
    let sessions = world.lab.ssm_sessions();
    assert!(sessions.iter().all(|s| s.ended), "{sessions:#?}");
}
