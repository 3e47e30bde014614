//! The serial console end to end: `ec2-broker console` driven through a pseudo-terminal like a
//! user's terminal, and plain `ssh -tt` through `proxy --route serial`, against the lab's serial
//! endpoint (a russh server with a getty and a real shell on a pty).

use std::fs;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use ec2_lab::Inventory;
use rustix::termios::LocalModes;

use crate::harness::run::wait_deadline;
use crate::harness::terminal::{assert_resize_reaches_the_remote, assert_sigterm_restores, read};
use crate::harness::{World, broker};
use ec2_lab::pty::{Pty, same_modes};

const WEB1: &str = "i-0a1b2c3d4e5f60718";
const PASSWORD: &str = "lab-serial-pw";
const T: Duration = Duration::from_secs(30);
/// A real Region's published fingerprint: not the lab endpoint's key.
const OTHER_FINGERPRINT: &str = "SHA256:dXwn5ma/xadVMeBZGEru5l2gx+yI5LDiJaLUcz0FMmw";

fn console(world: &World, pty: &Pty, args: &[&str], stderr: &Path) -> Child {
    let mut cmd = world.command(broker());
    cmd.arg("console").args(args).env("TERM", "xterm");
    pty.spawn(cmd, stderr).unwrap()
}

/// Waits for the getty, logs in as ec2-user; returns the screen position after the password prompt.
fn login(pty: &Pty, from: usize) -> usize {
    let at = pty.expect_after(from, "login: ", T).unwrap();
    pty.type_text("ec2-user\r").unwrap();
    let at = pty.expect_after(at, "Password: ", T).unwrap();
    pty.type_text(&format!("{PASSWORD}\r")).unwrap();
    at
}

/// Runs a command in the logged-in shell and waits for its output (`serial-42` is not in the echo).
fn run_echo(pty: &Pty, from: usize) -> usize {
    pty.type_text("echo serial-$((6*7))\r").unwrap();
    pty.expect_after(from, "serial-42", T).unwrap()
}

fn leave(pty: &Pty, child: &mut Child) -> std::process::ExitStatus {
    pty.type_text("\r~.").unwrap();
    wait_deadline(child, T).unwrap_or_else(|| panic!("still running after ~.; screen:\n{}", pty.screen()))
}

fn pushes(world: &World) -> usize {
    world.lab.state().calls().iter().filter(|c| c.operation == "SendSerialConsoleSSHPublicKey").count()
}

#[test]
fn console_logs_in_runs_a_command_follows_the_window_and_leaves() {
    let world = World::new();
    let pty = Pty::open(100, 30).unwrap();
    let before = pty.modes().unwrap();
    let (transcript, stderr) = (world.path("session.log"), world.path("console.err"));
    let mut child = console(&world, &pty, &["web-1", "--log-session", transcript.to_str().unwrap()], &stderr);

    let at = login(&pty, 0);
    assert!(
        !pty.modes().unwrap().local_modes.contains(LocalModes::ICANON),
        "the terminal must be raw during the session"
    );
    let at = run_echo(&pty, at);
    // A window change reaches the instance's terminal.
    assert_resize_reaches_the_remote(&pty, &child, at, T);

    let status = leave(&pty, &mut child);
    let err = read(&stderr);
    assert!(status.success(), "{status:?}\n{err}\n{}", world.dump());
    assert!(same_modes(&before, &pty.modes().unwrap()), "the terminal was not restored");
    assert_eq!(err.matches("OS user's PASSWORD").count(), 1, "one password reminder:\n{err}");
    assert!(err.contains("left the serial console of instance i-0a1b2c3d4e5f60718 (web-1)"), "{err}");
    assert!(read(&transcript).contains("serial-42"), "transcript:\n{}", read(&transcript));
    let conns = world.lab.serial_connections();
    assert_eq!(conns.len(), 1, "{conns:#?}");
    assert!(conns[0].authenticated);
    assert_eq!(conns[0].user.as_deref(), Some("i-0a1b2c3d4e5f60718.port0"));
    assert_eq!(conns[0].logged_in.as_deref(), Some("ec2-user"));
    assert_eq!(pushes(&world), 1);
}

#[test]
fn console_restores_the_terminal_when_killed() {
    let world = World::new();
    let pty = Pty::open(80, 24).unwrap();
    let before = pty.modes().unwrap();
    let stderr = world.path("console.err");
    let mut child = console(&world, &pty, &["web-1"], &stderr);
    pty.expect_after(0, "login: ", T).unwrap();
    assert_sigterm_restores(&pty, &before, &mut child, &stderr, T);
}

#[test]
fn console_refuses_an_endpoint_with_another_host_key_before_anything_else() {
    let world = World::new();
    let mut cmd = world.command(broker());
    cmd.args(["console", "web-1"]).env("EC2_BROKER_SERIAL_FINGERPRINT", OTHER_FINGERPRINT);
    let out = world.run(cmd, T);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let found = world.lab.serial_fingerprint();
    assert!(
        out.stderr.contains(&format!("presented host key {found}, but AWS publishes {OTHER_FINGERPRINT}"))
            && out.stderr.contains("refusing to connect"),
        "{}",
        out.describe()
    );
    let conns = world.lab.serial_connections();
    assert!(conns.iter().all(|c| c.user.is_none() && !c.authenticated), "{conns:#?}");
    assert_eq!(pushes(&world), 0, "no session may be opened for an endpoint that is not AWS's");
}

#[test]
fn console_says_why_it_cannot_open() {
    let text = format!(
        "{}\n[[instance]]\nid = \"i-0aa0b0c0d0e0f0999\"\nname = \"old-1\"\ninstance_type = \"t2.micro\"\nprivate_ip = \"127.0.1.30\"\n",
        ec2_lab::inventory::DEMO
    );
    let world = World::with(Inventory::from_toml(&text).unwrap(), "");
    let attempt = |host: &str| {
        let mut cmd = world.command(broker());
        cmd.args(["console", host]);
        world.run(cmd, T)
    };
    let cases = [
        ("batch-1", "i-0d1b2c3d4e5f6071b (Name=batch-1) is stopped: start it first"),
        ("old-1", "t2.micro runs on the xen hypervisor; the serial console needs a Nitro-based type"),
    ];
    for (host, expected) in cases {
        let out = attempt(host);
        assert_eq!(out.code(), Some(1), "{}", out.describe());
        assert!(out.stderr.contains(expected), "{host}: {}", out.describe());
    }
    assert_eq!(pushes(&world), 0, "preflight failures push nothing");

    // A key that reaches the endpoint too late (the client was slow, or this clock is off).
    world.lab.state().set_serial_faults(|f| f.key_age = Duration::from_secs(61));
    let out = attempt("web-1");
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("refused the key for i-0a1b2c3d4e5f60718.port0") && out.stderr.contains("valid for 60 s"),
        "{}",
        out.describe()
    );
    world.lab.state().set_serial_faults(|f| f.key_age = Duration::ZERO);

    world.lab.state().set_serial_access(false);
    let out = attempt("api-1");
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("serial console access is disabled for this account in eu-west-1")
            && out.stderr.contains("aws ec2 enable-serial-console-access --region eu-west-1"),
        "{}",
        out.describe()
    );
}

#[test]
fn console_retries_a_spurious_first_close() {
    let world = World::new();
    world.lab.state().set_serial_faults(|f| f.spurious_first_close = true);
    let pty = Pty::open(80, 24).unwrap();
    let stderr = world.path("console.err");
    let mut child = console(&world, &pty, &["web-1"], &stderr);
    let at = login(&pty, 0);
    run_echo(&pty, at);
    let status = leave(&pty, &mut child);
    assert!(status.success(), "{}\n{}", read(&stderr), world.dump());
    let conns = world.lab.serial_connections();
    assert_eq!(conns.len(), 2, "{conns:#?}");
    assert!(conns[0].spurious_close && conns[1].logged_in.is_some(), "{conns:#?}");
    assert_eq!(pushes(&world), 1, "the retry reuses the pushed key");
}

#[test]
fn console_waits_for_the_previous_session_to_close() {
    let world = World::new();
    world.lab.state().set_serial_faults(|f| f.teardown = Duration::from_secs(2));
    let (first, second) = (Pty::open(80, 24).unwrap(), Pty::open(80, 24).unwrap());
    let (err1, err2) = (world.path("first.err"), world.path("second.err"));
    let mut one = console(&world, &first, &["web-1"], &err1);
    first.expect_after(0, "login: ", T).unwrap();

    let mut two = console(&world, &second, &["web-1", "--wait", "60"], &err2);
    let deadline = std::time::Instant::now() + T;
    while !read(&err2).contains("has a serial console session open") {
        assert!(std::time::Instant::now() < deadline, "no waiting message:\n{}", read(&err2));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(leave(&first, &mut one).success());

    let at = login(&second, 0);
    run_echo(&second, at);
    assert!(leave(&second, &mut two).success(), "{}", read(&err2));
    assert!(read(&err2).contains("giving up in"), "{}", read(&err2));
    let limited = world.lab.state().calls().iter().filter(|c| c.operation == "SendSerialConsoleSSHPublicKey").count();
    assert!(limited >= 3, "the second console retried its push: {limited} pushes");
}

/// ssh_config for plain ssh through `proxy --route serial` (as docs/console.md shows it).
fn serial_ssh_config(world: &World) -> std::path::PathBuf {
    let keys = world.key_dir();
    let config = format!(
        "Host web-1-serial\n    HostName web-1\n    User {WEB1}.port0\n    ProxyCommand {} proxy --route serial --key-dir {} %r@%h:%p\n    \
         IdentityFile {}/%r@%h\n    IdentitiesOnly yes\n    IdentityAgent none\n    RequestTTY force\n    \
         UserKnownHostsFile {}\n    GlobalKnownHostsFile /dev/null\n    StrictHostKeyChecking accept-new\n",
        broker().display(),
        keys.display(),
        keys.display(),
        world.path("serial_known_hosts").display(),
    );
    let path = world.path("serial_ssh_config");
    fs::write(&path, config).unwrap();
    path
}

#[test]
fn plain_ssh_through_the_serial_route() {
    let world = World::new();
    let config = serial_ssh_config(&world);
    let pty = Pty::open(80, 24).unwrap();
    let mut cmd = world.command("ssh");
    cmd.arg("-F").arg(&config).arg("web-1-serial");
    let stderr = world.path("ssh.err");
    let mut ssh = pty.spawn(cmd, &stderr).unwrap();
    let at = login(&pty, 0);
    run_echo(&pty, at);
    pty.type_text("\r~.").unwrap();
    assert!(wait_deadline(&mut ssh, T).is_some(), "ssh did not leave on ~.:\n{}", pty.screen());
    let conns = world.lab.serial_connections();
    assert_eq!(conns.len(), 1, "{conns:#?}\n{}", read(&stderr));
    assert_eq!(conns[0].logged_in.as_deref(), Some("ec2-user"));
}

#[test]
fn serial_route_cuts_an_endpoint_with_another_host_key() {
    let world = World::new();
    let config = serial_ssh_config(&world);
    let mut cmd = world.command("ssh");
    cmd.arg("-F").arg(&config).arg("web-1-serial").env("EC2_BROKER_SERIAL_FINGERPRINT", OTHER_FINGERPRINT);
    let out = world.run(cmd, T);
    assert!(!out.success(), "{}", out.describe());
    let found = world.lab.serial_fingerprint();
    assert!(out.stderr.contains(&format!("presented host key {found}, not the published one")), "{}", out.describe());
    let conns = world.lab.serial_connections();
    assert!(conns.iter().all(|c| !c.authenticated), "{conns:#?}");
    // ssh never saw the key (nothing recorded as known), and no session was opened.
    assert!(read(&world.path("serial_known_hosts")).is_empty());
    assert_eq!(pushes(&world), 0);
    // See: issue 14. The overrides that decided what to trust are logged, not applied silently.
    let log = read(&world.broker_log);
    assert!(log.contains("serial console endpoint overridden"), "{log}");
    assert!(log.contains(&format!("fingerprint={OTHER_FINGERPRINT}")), "{log}");
    assert!(log.contains("serial console host key fingerprint overridden"), "{log}");
}
