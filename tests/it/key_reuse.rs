//! Issue 19, bursts: a key pushed moments ago is reused (no push, no lookup) for the same
//! instance, user and route; never across users or instances, after a refused login, after the
//! reuse window, or with reuse turned off.

use std::fs;

use ec2_lab::scenario::Scenario;

use crate::harness::World;

const WEB_1: &str = "i-0a1b2c3d4e5f60718";

/// The API calls so far, without instance metadata.
fn calls(world: &World) -> Vec<String> {
    world.lab.state().calls().iter().filter(|c| c.service != "imds").map(|c| c.operation.clone()).collect()
}

fn pushes(world: &World) -> usize {
    calls(world).iter().filter(|o| *o == "SendSSHPublicKey").count()
}

fn log(world: &World) -> String {
    fs::read_to_string(&world.broker_log).unwrap_or_default()
}

fn records(world: &World) -> std::path::PathBuf {
    world.path("home").join(".cache/ec2-broker/pushes.json")
}

/// 20 `ssh web-1 true` in a row: one lookup and one push in all, every login works, and the
/// broker says it reused the key.
#[test]
fn issue_19_twenty_connections_make_two_calls() {
    // See: issue 19
    let world = World::with(ec2_lab::Inventory::demo(), "--route auto");
    for _ in 0..20 {
        world.ssh_ok(&["web-1", "true"]);
    }
    assert_eq!(calls(&world), ["DescribeInstances", "SendSSHPublicKey"], "{}", world.dump());
    let log = log(&world);
    assert_eq!(log.matches("reusing the key pushed").count(), 19, "{log}");
    assert!(log.contains(&format!("to {WEB_1} for ec2-user (route direct)")), "{log}");
    // A clean `ssh host true` ends with ssh's own message, so none of the 20 looks like a refused
    // login: the only key check is the one before the first handover (the placement is new).
    assert_eq!(log.matches("checked whether the instance accepts the pushed key").count(), 1, "{log}");
    assert_eq!(log.matches("before handing the route to ssh").count(), 1, "{log}");
    // The record is private, and the kept key is out of ssh's way between connections.
    let mode = fs::metadata(records(&world)).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    assert!(!world.key_dir().join("ec2-user@web-1").exists());
    assert!(world.key_dir().join(".ec2-user@web-1.kept").exists());
}

/// Another user or another instance gets its own push; the first key is still reused after.
#[test]
fn issue_19_never_across_users_or_instances() {
    // See: issue 19
    let world = World::new();
    world.ssh_ok(&["web-1", "true"]);
    assert_eq!(pushes(&world), 1);
    // Another user (the login itself may fail: there is no such account): a push for that user.
    let _ = world.ssh(&["nobody@web-1", "true"]);
    assert_eq!(pushes(&world), 2, "{}", world.dump());
    let users: Vec<String> = world.lab.state().pushed_keys().iter().map(|k| k.user.clone()).collect();
    assert_eq!(users, ["ec2-user", "nobody"]);
    // Another instance.
    world.ssh_ok(&["db-1", "true"]);
    assert_eq!(pushes(&world), 3, "{}", world.dump());
    let db_1 = world.lab.state().pushed_keys().last().unwrap().instance.clone();
    assert_ne!(db_1, WEB_1);
    // The same instance under its id is another key file: a fresh key, pushed.
    world.ssh_ok(&[WEB_1, "true"]);
    assert_eq!(pushes(&world), 4, "{}", world.dump());
    // web-1's key is still reused.
    world.ssh_ok(&["web-1", "true"]);
    assert_eq!(pushes(&world), 4, "{}", world.dump());
}

/// A refused login forgets the record and the key file: the next connection pushes a fresh key.
#[test]
fn issue_19_a_refused_login_pushes_again() {
    // See: issue 19
    // seed-000: no Instance Connect on the instance, so sshd refuses the pushed key.
    let scenario = Scenario::load("seed-000").expect("seed-000");
    let world = World::with(scenario.inventory, "--route direct --key-placement instance-connect");
    let out = world.ssh(&["web-1", "true"]);
    assert!(!out.success(), "{}", out.describe());
    // The refusal is the broker's check after the session (as in faults.rs).
    assert!(out.stderr.contains("refused the key pushed"), "{}", out.describe());
    assert!(!world.key_dir().join("ec2-user@web-1").exists());
    assert!(!world.key_dir().join(".ec2-user@web-1.kept").exists(), "a refused key is not kept");
    let _ = world.ssh(&["web-1", "true"]);
    assert_eq!(pushes(&world), 2, "{}", world.dump());
    let keys: Vec<String> = world.lab.state().pushed_keys().iter().map(|k| k.key.clone()).collect();
    assert_ne!(keys[0], keys[1], "a fresh key");
    assert!(!log(&world).contains("reusing the key pushed"), "{}", log(&world));
}

/// A reused key the instance refuses (here: the lab's clock moved past the key's 60 s life,
/// as a stalled instance-side check would see it): the message says the key was reused, not
/// that Instance Connect is missing, and the next connection pushes a fresh key.
#[test]
fn issue_19_a_refused_reused_key_is_named_and_forgotten() {
    // See: issue 19
    let world = World::new();
    world.ssh_ok(&["web-1", "true"]);
    world.lab.state().advance(std::time::Duration::from_secs(61));
    let out = world.ssh(&["web-1", "true"]);
    assert!(!out.success(), "{}", out.describe());
    assert!(out.stderr.contains("reused for this connection"), "{}", out.describe());
    assert!(out.stderr.contains("run the command again"), "{}", out.describe());
    assert!(!out.stderr.contains("ec2-instance-connect package"), "{}", out.describe());
    assert!(!world.key_dir().join(".ec2-user@web-1.kept").exists(), "a refused key is not kept");
    assert_eq!(pushes(&world), 1);
    world.ssh_ok(&["web-1", "true"]);
    assert_eq!(pushes(&world), 2, "a fresh key: {}", world.dump());
}

/// Past the reuse window (the record backdated by 41 s) the key is pushed again.
#[test]
fn issue_19_after_the_window_pushes_again() {
    // See: issue 19
    let world = World::new();
    world.ssh_ok(&["web-1", "true"]);
    world.ssh_ok(&["web-1", "true"]);
    assert_eq!(pushes(&world), 1);
    crate::harness::age_push_records(&world, 41);
    world.ssh_ok(&["web-1", "true"]);
    assert_eq!(pushes(&world), 2, "{}", world.dump());
    world.ssh_ok(&["web-1", "true"]);
    assert_eq!(pushes(&world), 2, "the fresh push is reused in turn");
}

/// `--no-key-reuse` and `EC2_BROKER_KEY_REUSE=0`: a push for every connection.
#[test]
fn issue_19_reuse_off_pushes_every_time() {
    // See: issue 19
    let world = World::with(ec2_lab::Inventory::demo(), "--no-key-reuse");
    for _ in 0..20 {
        world.ssh_ok(&["web-1", "true"]);
    }
    assert_eq!(pushes(&world), 20);
    assert!(!world.key_dir().join(".ec2-user@web-1.kept").exists());

    let world = World::new();
    for _ in 0..3 {
        let mut cmd = world.command("ssh");
        cmd.env("EC2_BROKER_KEY_REUSE", "0").arg("-F").arg(&world.ssh_config).args(["web-1", "true"]);
        let out = world.run(cmd, std::time::Duration::from_secs(60));
        assert!(out.success(), "{}", out.describe());
    }
    assert_eq!(pushes(&world), 3);
}

/// The doctor says when a key was reused.
#[test]
fn issue_19_doctor_shows_the_reuse() {
    // See: issue 19
    let world = World::new();
    world.ssh_ok(&["web-1", "true"]);
    world.ssh_ok(&["web-1", "true"]);
    let mut cmd = world.command(crate::harness::broker());
    cmd.args(["doctor", "--ssh-config"]).arg(&world.ssh_config).arg("web-1");
    let out = world.run(cmd, std::time::Duration::from_secs(60));
    assert!(out.stdout.contains("the last connection reused a key pushed"), "{}", out.describe());
    assert!(out.stdout.contains("1 connection reused it"), "{}", out.describe());
}
