//! Issue 17: placing the key with SSM Run Command when the instance refuses the key pushed with
//! Instance Connect (scenario seed-000: an AMI shared by another account, no Instance Connect
//! package, the SSM agent online).

use std::fs;
use std::os::unix::fs::MetadataExt;

use ec2_lab::scenario::Scenario;
use ec2_lab::ssm::SsmStatus;

use crate::harness::World;

const WEB_1: &str = "i-0a1b2c3d4e5f60718";

fn seed_000(proxy_args: &str) -> World {
    let scenario = Scenario::load("seed-000").expect("seed-000");
    World::with(scenario.inventory, proxy_args)
}

fn send_commands(world: &World) -> usize {
    world.lab.state().calls().iter().filter(|c| c.service == "ssm" && c.operation == "SendCommand").count()
}

fn authorized_keys(world: &World) -> std::path::PathBuf {
    world.lab.instance(WEB_1).sshd.authorized_keys.clone()
}

fn log(world: &World) -> String {
    fs::read_to_string(&world.broker_log).unwrap_or_default()
}

/// (a) `ssh web-1` gets in through --route auto: the pushed key is refused, so the broker places
/// it with Run Command and says so with the command id.
#[test]
fn issue_17_seed_000_gets_in_through_run_command() {
    // See: issue 17
    let world = seed_000("--route auto");
    let out = world.ssh_ok(&["web-1", "echo in as $(id -un)"]);
    assert_eq!(out.stdout, "in as ec2-user\n");
    let invocations = world.lab.state().run_command.invocations();
    assert_eq!(invocations.len(), 1, "{}", out.describe());
    let command_id = &invocations[0].command_id;
    assert!(
        out.stderr.contains(&format!("placed the key for ec2-user on {WEB_1} with Run Command {command_id}")),
        "{}",
        out.describe()
    );
    assert_eq!(send_commands(&world), 1);
    assert!(log(&world).contains("placement=run-command"), "{}", log(&world));
    // The Instance Connect push happened first: its key alone did not get in.
    assert!(!world.lab.state().pushed_keys().is_empty());
    // The AMI's own key (LAB_AMI_KEY) is the one key it trusted before.
    let ami_key = world.lab.instance(WEB_1).sshd.ami_key.clone().expect("seed-000 keeps the AMI key");
    let ami_public = fs::read_to_string(ami_key.with_extension("pub")).unwrap();
    let text = fs::read_to_string(authorized_keys(&world)).unwrap();
    assert!(text.starts_with(ami_public.trim()), "{text}");
}

/// (b) The placed line carries the marker and an expiry-time option (the lab's OpenSSH is newer
/// than 7.7); expired marked lines go on the next run; owner and mode stay.
#[test]
fn issue_17_the_placed_line_expires_and_expired_lines_go() {
    // See: issue 17
    let world = seed_000("--route auto");
    let file = authorized_keys(&world);
    let before = fs::metadata(&file).unwrap();
    let stale = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIStaleStaleStaleStaleStaleStaleStaleStale00 ec2-broker:1700000000";
    let mut text = fs::read_to_string(&file).unwrap();
    text.push_str(stale);
    text.push('\n');
    fs::write(&file, &text).unwrap();

    world.ssh_ok(&["web-1", "true"]);
    let after = fs::read_to_string(&file).unwrap();
    assert!(!after.contains("ec2-broker:1700000000"), "the expired line is gone:\n{after}");
    let ours: Vec<&str> = after.lines().filter(|l| l.contains(" ec2-broker:")).collect();
    assert_eq!(ours.len(), 1, "{after}");
    assert!(ours[0].starts_with("expiry-time=\"20"), "{after}");
    let expires: u64 = ours[0].rsplit(':').next().unwrap().trim().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(expires > now && expires <= now + 180, "{expires} vs {now}");
    let meta = fs::metadata(&file).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.mode()), (before.uid(), before.gid(), before.mode()));

    // A second connection drops nothing still valid and adds its own line; it remembers that
    // Run Command got in, so it pushes nothing with Instance Connect and checks nothing first.
    assert_eq!(world.lab.state().pushed_keys().len(), 1);
    world.ssh_ok(&["web-1", "true"]);
    let again = fs::read_to_string(&file).unwrap();
    assert_eq!(again.lines().filter(|l| l.contains(" ec2-broker:")).count(), 2, "{again}");
    assert_eq!(world.lab.state().pushed_keys().len(), 1, "no second push");
    assert_eq!(send_commands(&world), 2);
}

/// (c) A user that does not exist: a clear error naming the user, ssh fails, the file is untouched.
#[test]
fn issue_17_an_unknown_user_is_named_and_nothing_is_written() {
    // See: issue 17
    let world = seed_000("--route auto");
    let file = authorized_keys(&world);
    let before = fs::read(&file).unwrap();
    let out = world.ssh(&["nobody-here-17@web-1", "true"]);
    assert!(!out.success(), "{}", out.describe());
    assert!(out.stderr.contains("there is no user nobody-here-17 on i-0a1b2c3d4e5f60718"), "{}", out.describe());
    assert_eq!(fs::read(&file).unwrap(), before);
    assert_eq!(send_commands(&world), 1);
}

/// (d) Run Command denied by IAM names ssm:SendCommand; an offline agent says so.
#[test]
fn issue_17_denied_or_offline_run_command_says_why() {
    // See: issue 17
    let world = seed_000("--route auto");
    world.lab.state().set_faults(|f| {
        f.deny.insert("ssm:SendCommand".into());
    });
    let out = world.ssh(&["web-1", "true"]);
    assert!(!out.success(), "{}", out.describe());
    assert!(out.stderr.contains("the IAM identity needs ssm:SendCommand"), "{}", out.describe());

    world.lab.state().set_faults(|f| {
        f.deny.clear();
    });
    world.lab.state().set_ssm_status(WEB_1, SsmStatus::ConnectionLost);
    let out = world.ssh(&["web-1", "true"]);
    assert!(!out.success(), "{}", out.describe());
    assert!(out.stderr.contains("its SSM agent is offline or not registered"), "{}", out.describe());
    assert!(world.lab.state().run_command.invocations().is_empty());
}

/// (e) `--key-placement instance-connect` never sends a command (and so does not get in here).
#[test]
fn issue_17_instance_connect_only_never_sends_a_command() {
    // See: issue 17
    let world = seed_000("--route auto --key-placement instance-connect");
    let out = world.ssh(&["web-1", "true"]);
    assert!(!out.success(), "{}", out.describe());
    assert_eq!(send_commands(&world), 0);
    assert!(!world.lab.state().pushed_keys().is_empty(), "Instance Connect was used");
}

/// `--key-placement run-command` alone skips Instance Connect and places the key every time.
#[test]
fn issue_17_run_command_only_skips_instance_connect() {
    // See: issue 17
    let world = seed_000("--route direct --key-placement run-command");
    world.ssh_ok(&["web-1", "true"]);
    assert!(world.lab.state().pushed_keys().is_empty());
    assert_eq!(send_commands(&world), 1);
}

/// doctor shows the placement that gets in, and says when the identity lacks ssm:SendCommand.
#[test]
fn issue_17_doctor_shows_the_placement_and_a_missing_send_command() {
    // See: issue 17
    let world = seed_000("");
    let doctor = |world: &World| {
        let mut cmd = world.command(crate::harness::broker());
        cmd.arg("doctor").arg("--ssh-config").arg(&world.ssh_config).arg("web-1");
        world.run(cmd, std::time::Duration::from_secs(90))
    };
    let out = doctor(&world);
    assert!(out.stdout.contains("placement: run-command"), "{}", out.describe());
    assert!(out.stdout.contains("placed with SSM Run Command"), "{}", out.describe());
    assert_eq!(send_commands(&world), 2, "the placement, then the read-only key list (key drift)");

    world.lab.state().set_faults(|f| {
        f.deny.insert("ssm:SendCommand".into());
    });
    let out = doctor(&world);
    assert!(out.stdout.contains("the identity lacks ssm:SendCommand"), "{}", out.describe());
    assert!(out.stdout.contains("fix: allow ssm:SendCommand"), "{}", out.describe());
}

/// The same fallback when the route that opens is Session Manager (no inbound network): the check
/// runs over a second session, then the key is placed with Run Command.
#[test]
fn issue_17_the_fallback_works_over_session_manager_too() {
    // See: issue 17
    let text = format!(
        "{}\n[[instance]]\nid = \"i-0e3000000000017a1\"\nname = \"shared-ssm\"\nprivate_ip = \"127.0.1.71\"\ninbound = false\n\
         ssm = \"online\"\ninstance_connect = false\nshared_ami = true\nkey_name = \"lab-admin\"\n\
         vpc_id = \"vpc-0150a7ed000000017\"\nsubnet_id = \"subnet-0150a7ed000000017\"\n",
        ec2_lab::inventory::DEMO
    );
    let world = World::with(ec2_lab::Inventory::from_toml(&text).unwrap(), "--route auto");
    let out = world.ssh_ok(&["shared-ssm", "echo via $(id -un)"]);
    assert_eq!(out.stdout, "via ec2-user\n");
    assert!(out.stderr.contains("with Run Command"), "{}", out.describe());
    assert!(log(&world).contains("route open, piping route=ssm placement=run-command"), "{}", log(&world));
    assert_eq!(send_commands(&world), 1);
}

/// Instance Connect refusing the push itself (IAM) also falls back, even on an explicit route;
/// a server error does not (see resolution.rs: the connection fails).
#[test]
fn issue_17_a_denied_push_falls_back_to_run_command() {
    // See: issue 17
    let world = seed_000("--route direct");
    world.lab.state().set_faults(|f| {
        f.deny.insert("ec2-instance-connect:SendSSHPublicKey".into());
    });
    let out = world.ssh_ok(&["web-1", "true"]);
    assert!(out.stderr.contains("with Run Command"), "{}", out.describe());
    assert!(world.lab.state().pushed_keys().is_empty());
    assert_eq!(send_commands(&world), 1);
}
