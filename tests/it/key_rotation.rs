//! Issue 17 part 3: `key install`, `key revoke` and `key rotate` against seed-000 (web-1 trusts
//! only the AMI owner's key; its SSM agent runs the Run Command script for real).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ec2_lab::scenario::Scenario;
use serde_json::Value;

use crate::harness::{Output, World, broker};

const WEB_1: &str = "i-0a1b2c3d4e5f60718";

/// seed-000 with ProxyCommands that push no key: only keys in authorized_keys get in.
fn world() -> World {
    let scenario = Scenario::load("seed-000").expect("seed-000");
    World::with(scenario.inventory, "--route direct --no-push")
}

fn authorized_keys(world: &World) -> PathBuf {
    world.lab.instance(WEB_1).sshd.authorized_keys.clone()
}

fn ami_key(world: &World) -> PathBuf {
    world.lab.instance(WEB_1).sshd.ami_key.clone().expect("seed-000 keeps the AMI key")
}

/// `ssh-keygen -t ed25519` into the world's dir: the private key's path.
fn keygen(world: &World, name: &str) -> PathBuf {
    let path = world.path(name);
    let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"]).arg(&path).output();
    assert!(out.unwrap().status.success());
    path
}

fn public(private: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", private.display()))
}

fn fingerprint(file: &Path) -> String {
    let out = Command::new("ssh-keygen").arg("-lf").arg(file).output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().nth(1).expect("a fingerprint").to_string()
}

/// The key's base64 blob, as it sits in authorized_keys.
fn blob(private: &Path) -> String {
    fs::read_to_string(public(private)).unwrap().split_whitespace().nth(1).unwrap().to_string()
}

fn key_cmd(world: &World, args: &[&str]) -> Output {
    let mut cmd = world.command(broker());
    cmd.arg("key").args(args);
    world.run(cmd, Duration::from_secs(120))
}

/// `ssh -i KEY web-1 true` (the ProxyCommand pushes nothing).
fn login_with(world: &World, key: &Path) -> Output {
    let identity = format!("IdentityFile={}", key.display());
    world.ssh(&["-o", &identity, "web-1", "true"])
}

fn send_commands(world: &World) -> usize {
    world.lab.state().calls().iter().filter(|c| c.service == "ssm" && c.operation == "SendCommand").count()
}

fn web_1_with_port(world: &World) -> String {
    format!("web-1:{}", world.lab.ssh_port(WEB_1))
}

#[test]
fn issue_17_install_lets_the_key_in_and_is_idempotent() {
    // See: issue 17
    let world = world();
    let new = keygen(&world, "new");
    assert!(!login_with(&world, &new).success(), "not in before the install");
    let pub_file = public(&new);
    let out = key_cmd(&world, &["install", "web-1", "--public-key", pub_file.to_str().unwrap()]);
    assert!(out.success(), "{}", out.describe());
    let command_id = world.lab.state().run_command.invocations()[0].command_id.clone();
    assert!(out.stdout.starts_with(&format!("installed key {}", fingerprint(&pub_file))), "{}", out.describe());
    assert!(out.stdout.contains(&command_id), "{}", out.describe());
    let out = login_with(&world, &new);
    assert!(out.success(), "the installed key logs in: {}", out.describe());

    let again = key_cmd(&world, &["install", "web-1", "--public-key", pub_file.to_str().unwrap()]);
    assert!(again.success() && again.stdout.contains("already installed"), "{}", again.describe());
    let text = fs::read_to_string(authorized_keys(&world)).unwrap();
    let ours: Vec<&str> = text.lines().filter(|l| l.contains(&blob(&new))).collect();
    assert_eq!(ours.len(), 1, "{text}");
    assert!(ours[0].ends_with(" ec2-broker:installed") && !ours[0].contains("expiry-time"), "{text}");
}

#[test]
fn issue_17_install_errors_name_the_cause() {
    // See: issue 17
    let world = world();
    let new = keygen(&world, "new");
    let pub_file = public(&new);
    let before = fs::read(authorized_keys(&world)).unwrap();
    let out = key_cmd(&world, &["install", "web-1", "--public-key", pub_file.to_str().unwrap(), "--user", "nobody-17"]);
    assert!(!out.success() && out.stderr.contains("there is no user nobody-17"), "{}", out.describe());
    world.lab.state().set_faults(|f| {
        f.deny.insert("ssm:SendCommand".into());
    });
    let out = key_cmd(&world, &["install", "web-1", "--public-key", pub_file.to_str().unwrap()]);
    assert!(!out.success() && out.stderr.contains("needs ssm:SendCommand"), "{}", out.describe());
    world.lab.state().set_faults(|f| {
        f.deny.clear();
    });
    world.lab.state().set_ssm_status(WEB_1, ec2_lab::ssm::SsmStatus::ConnectionLost);
    let out = key_cmd(&world, &["install", "web-1", "--public-key", pub_file.to_str().unwrap()]);
    assert!(!out.success() && out.stderr.contains("its SSM agent is offline"), "{}", out.describe());
    assert_eq!(fs::read(authorized_keys(&world)).unwrap(), before);
}

#[test]
fn issue_17_revoke_removes_the_key_and_refuses_the_last_one() {
    // See: issue 17
    let world = world();
    let file = authorized_keys(&world);
    let new = keygen(&world, "new");
    let out = key_cmd(&world, &["install", "web-1", "--public-key", public(&new).to_str().unwrap()]);
    assert!(out.success(), "{}", out.describe());
    let out = key_cmd(&world, &["revoke", "web-1", "--fingerprint", &fingerprint(&public(&new))]);
    assert!(out.success() && out.stdout.starts_with("removed 1 line(s)"), "{}", out.describe());
    assert!(!fs::read_to_string(&file).unwrap().contains(&blob(&new)));
    assert!(!login_with(&world, &new).success());

    // The AMI key is now the only one: refused without --force, the file untouched.
    let before = fs::read(&file).unwrap();
    let ami_fp = fingerprint(&public(&ami_key(&world)));
    let out = key_cmd(&world, &["revoke", "web-1", "--fingerprint", &ami_fp]);
    assert!(!out.success(), "{}", out.describe());
    assert!(out.stderr.contains("would lock everyone out"), "{}", out.describe());
    assert_eq!(fs::read(&file).unwrap(), before);
    let out = key_cmd(&world, &["revoke", "web-1", "--fingerprint", &ami_fp, "--force"]);
    assert!(out.success() && out.stdout.starts_with("removed 1 line(s)"), "{}", out.describe());
    assert!(!fs::read_to_string(&file).unwrap().contains(&blob(&ami_key(&world))));
}

#[test]
fn issue_17_rotate_installs_proves_then_removes_the_old_key() {
    // See: issue 17
    let world = world();
    let file = authorized_keys(&world);
    let meta = fs::metadata(&file).unwrap();
    let old = ami_key(&world);
    assert!(login_with(&world, &old).success());
    let new = keygen(&world, "new");
    // The port comes from `ssh -G` with this ssh_config.
    let config = world.ssh_config.to_str().unwrap();
    let args = [
        "rotate",
        "--old",
        old.to_str().unwrap(),
        "--new",
        new.to_str().unwrap(),
        "web-1",
        "--ssh-config",
        config,
        "--yes",
    ];
    let out = key_cmd(&world, &args);
    assert!(out.success(), "{}", out.describe());
    let row = out.stdout.lines().find(|l| l.starts_with("web-1 ")).expect("a row for the host");
    assert!(row.contains(&format!("{WEB_1}  yes        yes     yes")), "{}", out.stdout);
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains(&format!("{} ec2-broker:installed", blob(&new))), "{text}");
    assert!(!text.contains(&blob(&old)), "the old key is gone: {text}");
    let after = fs::metadata(&file).unwrap();
    assert_eq!((after.uid(), after.gid(), after.mode()), (meta.uid(), meta.gid(), meta.mode()));
    assert!(login_with(&world, &new).success());
    assert!(!login_with(&world, &old).success());
    assert_eq!(send_commands(&world), 2, "install, then revoke");
}

#[test]
fn issue_17_rotate_keeps_the_old_key_where_the_login_is_not_proven() {
    // See: issue 17
    let world = world();
    let file = authorized_keys(&world);
    let old = ami_key(&world);
    // The private key does not match its .pub: the proof login is refused.
    let new = keygen(&world, "new");
    let other = keygen(&world, "other");
    fs::copy(public(&other), public(&new)).unwrap();
    let host = web_1_with_port(&world);
    let out =
        key_cmd(&world, &["rotate", "--old", old.to_str().unwrap(), "--new", new.to_str().unwrap(), &host, "--yes"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stdout.contains("sshd refused the new key"), "{}", out.describe());
    assert!(out.stdout.contains("the old key stays"), "{}", out.describe());
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains(&blob(&old)), "{text}");
    assert!(text.contains(&blob(&other)), "the new .pub stays installed: {text}");
    assert!(login_with(&world, &old).success());
    assert_eq!(send_commands(&world), 1, "no revoke was sent");
}

#[test]
fn issue_17_rotate_without_yes_changes_nothing_and_prints_the_plan() {
    // See: issue 17
    let world = world();
    let file = authorized_keys(&world);
    let before = fs::read(&file).unwrap();
    let old_fp = fingerprint(&public(&ami_key(&world)));
    let new = keygen(&world, "new");
    let new_fp = fingerprint(&public(&new));
    let out = key_cmd(&world, &["rotate", "--old", &old_fp, "--new", new.to_str().unwrap(), "web-1"]);
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.starts_with("plan (no --yes, nothing changed):"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("plan: install {new_fp} for ec2-user, log in with it, then remove {old_fp}")));

    let out =
        key_cmd(&world, &["rotate", "--old", &old_fp, "--new", new.to_str().unwrap(), "web-1", "nowhere-17", "--json"]);
    assert_eq!(out.code(), Some(1), "an unknown host: {}", out.describe());
    let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.describe()));
    crate::output::check_documented(&doc, "ec2-broker.key-rotate/1");
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["new_fingerprint"], new_fp.as_str());
    assert_eq!(doc["hosts"][0]["instance"], WEB_1);
    assert_eq!(doc["hosts"][1]["instance"], Value::Null);
    assert_eq!(fs::read(&file).unwrap(), before, "byte-identical");
    assert_eq!(send_commands(&world), 0);
}

#[test]
fn issue_17_rotate_json_after_a_real_rotation_is_documented() {
    // See: issue 17
    let world = world();
    let old = ami_key(&world);
    let new = keygen(&world, "new");
    let host = web_1_with_port(&world);
    let args = ["rotate", "--old", old.to_str().unwrap(), "--new", new.to_str().unwrap(), &host, "--yes", "--json"];
    let out = key_cmd(&world, &args);
    assert!(out.success(), "{}", out.describe());
    let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.describe()));
    crate::output::check_documented(&doc, "ec2-broker.key-rotate/1");
    assert_eq!(doc["dry_run"], false);
    let h = &doc["hosts"][0];
    assert_eq!(
        (&h["installed"], &h["proven"], &h["old_removed"]),
        (&Value::Bool(true), &Value::Bool(true), &Value::Bool(true))
    );
}

const API_1: &str = "i-0b1b2c3d4e5f60719";

/// `ssh -i KEY HOST true` (the ProxyCommand pushes nothing).
fn login_to(world: &World, host: &str, key: &Path) -> Output {
    let identity = format!("IdentityFile={}", key.display());
    world.ssh(&["-o", &identity, host, "true"])
}

/// --from-audit: the hosts are what `known-hosts audit --key OLD` finds, the instances launched
/// with a key pair holding the old key (lab-admin: web-1 and api-1). Without --yes every
/// authorized_keys stays byte-identical and no command is sent; with --yes both rotate.
#[test]
fn issue_17_rotate_from_audit_is_a_dry_run_without_yes_and_rotates_with_it() {
    // See: issue 17
    let world = world();
    let old = world.path("lab-admin");
    fs::write(&old, ec2_lab::inventory::LAB_ADMIN_PRIVATE_KEY).unwrap();
    fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    fs::write(public(&old), ec2_lab::inventory::LAB_ADMIN_PUBLIC_KEY).unwrap();
    let new = keygen(&world, "new");
    let files = [WEB_1, API_1].map(|id| world.lab.instance(id).sshd.authorized_keys.clone());
    let before: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).unwrap()).collect();
    assert!(login_to(&world, "api-1", &old).success(), "api-1 trusts the lab-admin key");
    let pub_old = public(&old);
    let mut args = vec!["rotate", "--old", pub_old.to_str().unwrap(), "--new", new.to_str().unwrap(), "--from-audit"];
    args.extend(["--ssh-config", world.ssh_config.to_str().unwrap()]);

    let out = key_cmd(&world, &args);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.starts_with("plan (no --yes, nothing changed):"), "{}", out.stdout);
    for (host, id) in [("web-1", WEB_1), ("api-1", API_1)] {
        let row = out.stdout.lines().find(|l| l.starts_with(&format!("{host} "))).expect("a row per host");
        assert!(row.contains(&format!("{id}  -          -       -            plan: install")), "{}", out.stdout);
    }
    assert!(out.stderr.contains("EC2 knows only launch key pairs"), "{}", out.describe());
    for (file, bytes) in files.iter().zip(&before) {
        assert_eq!(&fs::read(file).unwrap(), bytes, "byte-identical: {}", file.display());
    }
    assert_eq!(send_commands(&world), 0, "a dry run sends nothing");

    args.push("--yes");
    let out = key_cmd(&world, &args);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    for (host, id) in [("web-1", WEB_1), ("api-1", API_1)] {
        let row = out.stdout.lines().find(|l| l.starts_with(&format!("{host} "))).expect("a row per host");
        assert!(row.contains(&format!("{id}  yes        yes     yes")), "{}", out.stdout);
    }
    let text = fs::read_to_string(&files[1]).unwrap();
    assert!(!text.contains(&blob(&old)) && text.contains(&blob(&new)), "{text}");
    assert!(login_to(&world, "api-1", &new).success());
    assert!(!login_to(&world, "api-1", &old).success(), "the old key is refused after");
    assert!(login_to(&world, "web-1", &new).success());
}
