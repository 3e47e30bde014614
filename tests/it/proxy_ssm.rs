//! The ssm route end to end: real ssh, scp, rsync and sshd, through the broker's native
//! data-channel client, the lab's MGS double and its agent double (which paces, resends only its
//! oldest message and acks after writing, as the real agent does).

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ec2_lab::{Disconnect, DisconnectKind, Inventory, SsmStatus};

use crate::assert_ok;
use crate::harness::process::{idle_session, kill_and_time_exit};
use crate::harness::{World, random_file, remote_dir, rsync_tree, scp, scp_round_trip, sha256_file};

/// db-1 has no inbound network: only its SSM agent reaches its sshd.
const DB_1: &str = "i-0f1b2c3d4e5f6071d";

fn ssm_world() -> World {
    World::with(Inventory::demo(), "--route ssm")
}

#[test]
fn interactive_command_over_ssm_and_nothing_else_on_stdout() {
    let world = ssm_world();
    let out = world.ssh_ok(&["db-1", "id -un; printf 'a\\nb\\n'; echo err >&2"]);
    assert_eq!(out.stdout, "ec2-user\na\nb\n");
    assert_eq!(out.stderr, "err\n", "nothing but the remote's stderr");
    let sessions = world.lab.ssm_sessions();
    assert_eq!(sessions.len(), 1, "{sessions:#?}");
    let s = &sessions[0];
    assert_eq!((s.target.as_str(), s.document.as_str()), (DB_1, "AWS-StartSSHSession"));
    assert!(s.handshake_done);
    assert_eq!(s.client_version.as_deref(), Some("1.2.677.0"));
    // The agent was the only way in: sshd saw the connection from the agent's side.
    assert!(world.lab.sshd_log(DB_1).contains("Accepted publickey for ec2-user"), "{}", world.dump());

    // The direct route cannot reach db-1 at all.
    let mut cmd = world.command(crate::harness::broker());
    let port = world.lab.ssh_port(DB_1);
    cmd.args(["proxy", "--route", "direct", "--no-push", &format!("db-1:{port}")]).stdin(Stdio::null());
    let out = world.run(cmd, Duration::from_secs(30));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("127.0.1.15"), "{}", out.describe());
}

#[test]
fn scp_64_mib_both_ways_and_rsync_a_tree_over_ssm() {
    let world = ssm_world();
    // Without the agent's 1 KiB/1 ms pacing: at its ~1 MB/s the download alone would take over a
    // minute of CI time. The other tests keep the pacing on.
    world.lab.state().set_ssm_faults(|f| f.pacing = false);
    scp_round_trip(&world, "db-1", 64 << 20, 0x55d);
    rsync_tree(&world, "db-1", &[0, 1, 4095, 70_000, 3 << 20]);
    let sessions = world.lab.ssm_sessions();
    assert_eq!(sessions.len(), 4);
    assert!(sessions.iter().all(|s| s.ended), "{sessions:#?}");
}

#[test]
fn transfer_survives_three_dropped_websockets_and_a_bye() {
    let world = ssm_world();
    let remote = remote_dir(&world);
    let local = world.path("blob.bin");
    // 12 MiB with the agent's pacing on; the four disconnects come within the first 5 MiB of
    // frames, so every one of them hits the transfer.
    random_file(&local, 12 << 20, 0xd20b);
    let remote_file = format!("db-1:{}/blob.bin", remote.display());
    let plan = || {
        [
            Disconnect::after_bytes(1 << 20, DisconnectKind::Drop),
            Disconnect::after_bytes(3 << 19, DisconnectKind::Bye),
            Disconnect::after_bytes(1 << 19, DisconnectKind::Drop),
            Disconnect::after_bytes(2 << 20, DisconnectKind::Drop),
        ]
    };
    world.lab.state().set_ssm_faults(|f| f.disconnects.extend(plan()));
    assert_ok!(scp(&world, &local.display().to_string(), &remote_file));
    assert_eq!(sha256_file(&remote.join("blob.bin")), sha256_file(&local), "upload corrupted");
    world.lab.state().set_ssm_faults(|f| f.disconnects.extend(plan()));
    let back = world.path("back.bin");
    assert_ok!(scp(&world, &remote_file, &back.display().to_string()));
    assert_eq!(sha256_file(&back), sha256_file(&local), "download corrupted");

    let sessions = world.lab.ssm_sessions();
    assert_eq!(sessions.len(), 2, "one session per scp: the ssh sessions never broke\n{sessions:#?}");
    for s in &sessions {
        assert_eq!(s.client_connects, 5, "4 forced disconnects, 5 connections: {s:#?}");
    }
    let calls = world.lab.state().calls();
    let resumes = calls.iter().filter(|c| c.operation == "ResumeSession" && c.status == 200).count();
    assert_eq!(resumes, 8, "{calls:#?}");
}

#[test]
fn lost_duplicated_and_corrupted_frames_do_not_corrupt_the_stream() {
    let world = ssm_world();
    world.lab.state().set_ssm_faults(|f| {
        f.drop_acks = 20;
        f.duplicate_acks = 20;
        f.duplicate_frames = 50;
        f.corrupt_digest = 5;
    });
    let remote = remote_dir(&world);
    let local = world.path("blob.bin");
    random_file(&local, 4 << 20, 0xbad);
    let remote_file = format!("db-1:{}/blob.bin", remote.display());
    let back = world.path("back.bin");
    assert_ok!(scp(&world, &local.display().to_string(), &remote_file));
    assert_ok!(scp(&world, &remote_file, &back.display().to_string()));
    assert_eq!(sha256_file(&back), sha256_file(&local));
    let log = fs::read_to_string(&world.broker_log).unwrap();
    assert!(log.contains("dropped a bad frame"), "the corrupted digests were not noticed:\n{log}");
}

#[test]
fn single_newline_writes_survive_unchanged() {
    // An echo server as the instance's port: every byte the broker reads from stdin comes back.
    // It greets like an SSH server first: every route counts as open only once sshd has spoken.
    let world = ssm_world();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    const BANNER: &[u8] = b"SSH-2.0-echo\r\n";
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.write_all(BANNER);
            let mut buf = [0u8; 1024];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    let mut cmd = world.command(crate::harness::broker());
    cmd.args(["proxy", "--route", "ssm", "--no-push", &format!("ec2-user@db-1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut banner = [0u8; BANNER.len()];
    stdout.read_exact(&mut banner).unwrap();
    assert_eq!(banner, BANNER);
    let mut echoed = Vec::new();
    for _ in 0..5 {
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
        let mut b = [0u8; 1];
        stdout.read_exact(&mut b).unwrap();
        echoed.push(b[0]);
    }
    stdin.write_all(b"\r\n\n").unwrap();
    drop(stdin);
    stdout.read_to_end(&mut echoed).unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(echoed, b"\n\n\n\n\n\r\n\n", "stderr: {err}\n{}", world.dump());
    assert!(status.success(), "{err}");
}

#[test]
fn offline_agent_gives_a_clear_error_naming_the_instance() {
    let world = ssm_world();
    world.lab.state().set_ssm_status(DB_1, SsmStatus::ConnectionLost);
    let out = world.ssh(&["db-1", "true"]);
    assert_eq!(out.code(), Some(255));
    assert!(out.stderr.contains(&format!("instance {DB_1} has no SSM agent online")), "{}", out.describe());
    assert!(out.stderr.contains("ConnectionLost"), "{}", out.describe());
    assert!(out.stderr.contains("--route direct"), "{}", out.describe());

    world.lab.state().set_ssm_status(DB_1, SsmStatus::None);
    let out = world.ssh(&["db-1", "true"]);
    assert!(out.stderr.contains("SSM does not know it"), "{}", out.describe());
    assert!(world.lab.ssm_sessions().is_empty());
}

#[test]
fn when_ssh_exits_the_session_is_terminated_and_the_broker_is_gone_within_a_second() {
    let world = ssm_world();
    let (ssh, pid) = idle_session(&world, "db-1");
    let gone_after = kill_and_time_exit(ssh, pid);
    assert!(gone_after < Duration::from_secs(1), "broker still there {gone_after:?} after ssh died\n{}", world.dump());
    let calls = world.lab.state().calls();
    assert!(calls.iter().any(|c| c.operation == "TerminateSession" && c.status == 200), "{calls:#?}");
    let sessions = world.lab.ssm_sessions();
    // The broker's Flag TerminateSession usually ends it first, then the API call confirms.
    assert!(sessions[0].ended, "{sessions:#?}");
}

#[test]
fn wss_data_channel_trusts_the_lab_ca_through_aws_ca_bundle() {
    let mut inventory = Inventory::demo();
    inventory.ssm_tls = true;
    let world = World::with(inventory, "--route ssm");
    assert!(world.lab.ssm_url().starts_with("wss://"));
    let out = world.ssh_ok(&["db-1", "echo over-tls"]);
    assert_eq!(out.stdout, "over-tls\n");

    // Without the CA the broker refuses the certificate, and says where it was connecting.
    let mut cmd = world.command("ssh");
    cmd.env_remove("AWS_CA_BUNDLE").arg("-F").arg(&world.ssh_config).args(["db-1", "true"]);
    let out = world.run(cmd, Duration::from_secs(60));
    assert!(!out.success());
    assert!(out.stderr.contains("cannot open the Session Manager data channel at 127.0.0.1"), "{}", out.describe());
    assert!(out.stderr.to_lowercase().contains("certificate"), "{}", out.describe());
}

#[test]
fn resume_gives_up_at_its_deadline_with_a_clear_error() {
    let world = World::with(Inventory::demo(), "--route ssm --ssm-resume-timeout 3");
    // The websocket drops once the session has carried 60 kB, which the remote command below
    // produces only after we have taken the SSM API down.
    world
        .lab
        .state()
        .set_ssm_faults(|f| f.disconnects.push_back(Disconnect::after_bytes(60_000, DisconnectKind::Drop)));
    let mut cmd = world.command("ssh");
    cmd.arg("-F").arg(&world.ssh_config).args(["db-1", "echo ready; sleep 1; head -c 200000 /dev/zero; sleep 30"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut ssh = cmd.spawn().unwrap();
    let mut stdout = ssh.stdout.take().unwrap();
    let mut first = [0u8; 6];
    stdout.read_exact(&mut first).unwrap();
    world.lab.state().set_faults(|f| f.down = true);
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stdout.read_to_end(&mut rest);
    let status = ssh.wait().unwrap();
    let mut stderr = String::new();
    ssh.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!status.success());
    assert!(started.elapsed() < Duration::from_secs(25), "the broker did not give up");
    assert!(stderr.contains("could not be resumed within 3s"), "{stderr}\n{}", world.dump());
    let calls = world.lab.state().calls();
    assert!(calls.iter().any(|c| c.operation == "ResumeSession" && c.status == 503), "{calls:#?}");
}
