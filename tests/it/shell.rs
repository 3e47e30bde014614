//! `ec2-broker shell` end to end against the lab's shell-mode SSM agent (issue 16): through a
//! pseudo-terminal like a user's terminal (prompt, size, resize, ^C, escapes, exit, terminal
//! restored), and without one (bytes exact, stderr apart, the remote exit status), with and
//! without KMS, and across a dropped websocket.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use ec2_lab::fault_spec::FaultSpec;
use ec2_lab::pty::{Pty, same_modes};
use ec2_lab::scenario::Scenario;
use rustix::termios::LocalModes;

use crate::harness::run::wait_deadline;
use crate::harness::terminal::{assert_resize_reaches_the_remote, assert_sigterm_restores, read};
use crate::harness::{World, broker, random_file, sha256_file};

/// A shell on web-1 in a fresh 80×24 pty, at its prompt: the pty, its modes before, the
/// broker's stderr file and the child.
fn shell_at_prompt(world: &World) -> (Pty, rustix::termios::Termios, std::path::PathBuf, Child) {
    let pty = Pty::open(80, 24).unwrap();
    let before = pty.modes().unwrap();
    let stderr = world.path("shell.err");
    let child = shell_on(world, &pty, &["web-1"], &stderr);
    pty.expect_after(0, "$ ", T).unwrap_or_else(|e| panic!("{e}\n{}", read(&stderr)));
    (pty, before, stderr, child)
}

const T: Duration = Duration::from_secs(30);

fn shell_on(world: &World, pty: &Pty, args: &[&str], stderr: &Path) -> Child {
    let mut cmd = world.command(broker());
    cmd.arg("shell").args(args).env("TERM", "xterm");
    pty.spawn(cmd, stderr).unwrap()
}

/// `ec2-broker shell ARGS` with stdin from /dev/null (not a terminal).
fn shell_piped(world: &World, args: &[&str]) -> crate::harness::Output {
    let mut cmd = world.command(broker());
    cmd.arg("shell").args(args);
    world.run(cmd, Duration::from_secs(90))
}

fn kms_world() -> World {
    World::with(Scenario::load("kms-required").unwrap().inventory, "")
}

/// Every session the lab saw had KMS on and no plaintext output crossed the websocket.
fn assert_all_encrypted(world: &World) {
    let sessions = world.lab.ssm_sessions();
    assert!(!sessions.is_empty());
    for s in sessions {
        assert!(s.kms_key.is_some(), "{} was not encrypted", s.id);
        assert_eq!(s.plaintext_outputs, 0, "plaintext output crossed the websocket in {}", s.id);
        assert!(s.encrypted_outputs > 0, "{}: nothing encrypted was seen", s.id);
    }
}

/// The prompt appears, `stty size` shows the size we set, a resize is seen remotely, ^C reaches
/// the remote side as a key, `exit` ends the session with 0, and the terminal is restored.
fn interactive_session(world: &World, host: &str) {
    let pty = Pty::open(100, 30).unwrap();
    let before = pty.modes().unwrap();
    let stderr = world.path("shell.err");
    let mut child = shell_on(world, &pty, &[host], &stderr);
    let at = pty.expect_after(0, "$ ", T).unwrap_or_else(|e| panic!("{e}\n{}\n{}", read(&stderr), world.dump()));
    assert!(!pty.modes().unwrap().local_modes.contains(LocalModes::ICANON), "raw during the session");
    let at = assert_resize_reaches_the_remote(&pty, &child, at, T);
    // ^C interrupts the remote command, not us.
    pty.type_text("sleep 30\r").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    pty.type_text("\x03").unwrap();
    pty.type_text("echo after-$((6*7))\r").unwrap();
    pty.expect_after(at, "after-42", T).unwrap_or_else(|e| panic!("{e}\n{}", read(&stderr)));
    pty.type_text("exit\r").unwrap();
    let status = wait_deadline(&mut child, T).unwrap_or_else(|| panic!("still running; screen:\n{}", pty.screen()));
    assert_eq!(status.code(), Some(0), "{}\n{}", read(&stderr), world.dump());
    assert!(same_modes(&before, &pty.modes().unwrap()), "the terminal was not restored");
    let err = read(&stderr);
    assert!(err.contains("~. leaves"), "the escapes are announced:\n{err}");
}

/// Output byte for byte (8 MiB of random bytes, checksummed), stderr apart, and the remote
/// command's exit status as ours.
fn piped_commands(world: &World, host: &str) {
    let file = world.path("blob.bin");
    random_file(&file, 8 << 20, 16);
    let got = world.path("got.bin");
    let mut cmd = world.command(broker());
    cmd.args(["shell", host, "--", "head", "-c", "8M", file.to_str().unwrap()]);
    cmd.stdin(Stdio::null()).stdout(File::create(&got).unwrap()).stderr(File::create(world.path("blob.err")).unwrap());
    let status = cmd.status().unwrap();
    assert!(status.success(), "{status:?}\n{}\n{}", read(&world.path("blob.err")), world.dump());
    assert_eq!(sha256_file(&got), sha256_file(&file), "the output differs from the file");

    let out = shell_piped(world, &[host, "--", "sh", "-c", "echo to-out; echo to-err >&2; exit 3"]);
    assert_eq!(out.code(), Some(3), "{}\n{}", out.describe(), out.context);
    assert_eq!(out.stdout, "to-out\n", "stdout holds only stdout");
    assert!(out.stderr.contains("to-err"), "{}", out.stderr);
}

#[test]
fn shell_on_a_terminal_follows_the_window_and_exits_0() {
    interactive_session(&World::new(), "web-1");
}

#[test]
fn shell_escapes_list_and_leave_terminate_the_session_and_restore_the_terminal() {
    let world = World::new();
    let (pty, before, stderr, mut child) = shell_at_prompt(&world);
    pty.type_text("\r~?").unwrap();
    // The list goes to stderr (the terminal for a user; a file here).
    let deadline = std::time::Instant::now() + T;
    while !read(&stderr).contains("~.   - leave the session") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(read(&stderr).contains("~.   - leave the session"), "{}", read(&stderr));
    pty.type_text("\r~.").unwrap();
    let status = wait_deadline(&mut child, T).unwrap_or_else(|| panic!("still running; screen:\n{}", pty.screen()));
    assert!(status.success(), "{status:?}\n{}", read(&stderr));
    assert!(same_modes(&before, &pty.modes().unwrap()), "the terminal was not restored");
    assert!(read(&stderr).contains("left the session on"), "{}", read(&stderr));
    let sessions = world.lab.ssm_sessions();
    assert!(sessions.iter().all(|s| s.terminated_by_api), "~. terminates the session: {sessions:#?}");
}

#[test]
fn shell_restores_the_terminal_when_killed() {
    let world = World::new();
    let (pty, before, stderr, mut child) = shell_at_prompt(&world);
    assert_sigterm_restores(&pty, &before, &mut child, &stderr, T);
}

#[test]
fn shell_command_output_is_byte_exact_with_stderr_apart_and_the_exit_status() {
    let world = World::new();
    piped_commands(&world, "web-1");
    // A command that gets no stdin says so instead of dropping it silently.
    let mut cmd = world.command(broker());
    cmd.args(["shell", "web-1", "--", "sh", "-c", "sleep 1; echo done"]).stdin(Stdio::piped());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"input nobody reads\n");
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    assert!(err.contains("no stdin") && err.contains("--route ssm"), "{err}");
}

#[test]
fn shell_with_kms_required_encrypts_everything() {
    let world = kms_world();
    interactive_session(&world, "db-1");
    piped_commands(&world, "db-1");
    assert_all_encrypted(&world);
    let log = read(&world.broker_log);
    assert!(!log.contains("Plaintext") && !log.contains("KMSCipherTextKey\":\""), "no key material in the log");
}

#[test]
fn shell_without_kms_permission_names_the_key_and_the_permission() {
    let world = kms_world();
    world.lab.state().set_faults(|f| {
        f.deny.insert("kms:GenerateDataKey".into());
    });
    let out = shell_piped(&world, &["db-1", "--", "true"]);
    assert!(!out.success(), "{}", out.describe());
    assert!(out.stderr.contains("kms:GenerateDataKey"), "{}", out.describe());
    assert!(out.stderr.contains("alias/ssm-sessions") || out.stderr.contains(":key/"), "{}", out.describe());
    assert!(out.stdout.is_empty());
}

#[test]
fn shell_survives_a_dropped_websocket() {
    let world = World::new();
    "ssm-drop-after:3".parse::<FaultSpec>().unwrap().apply(world.lab.state());
    let pty = Pty::open(80, 24).unwrap();
    let stderr = world.path("shell.err");
    let mut child = shell_on(&world, &pty, &["web-1"], &stderr);
    let at = pty.expect_after(0, "$ ", T).unwrap_or_else(|e| panic!("{e}\n{}", read(&stderr)));
    pty.type_text("KEPT=still-$((40+2))\r").unwrap();
    std::thread::sleep(Duration::from_secs(5));
    pty.type_text("echo $KEPT\r").unwrap();
    pty.expect_after(at, "still-42", T).unwrap_or_else(|e| panic!("{e}\n{}\n{}", read(&stderr), world.dump()));
    pty.type_text("exit\r").unwrap();
    let status = wait_deadline(&mut child, T).unwrap_or_else(|| panic!("still running; screen:\n{}", pty.screen()));
    assert_eq!(status.code(), Some(0), "{}", read(&stderr));
    let sessions = world.lab.ssm_sessions();
    assert!(sessions.iter().any(|s| s.client_connects >= 2), "the websocket was not reopened: {sessions:#?}");
}
