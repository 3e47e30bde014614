use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use crate::assert_ok;
use crate::harness::{World, random_file, remote_dir, run, sha256_file};

const WEB_1: &str = "i-0a1b2c3d4e5f60718";

fn fingerprint(public_key: &str, dir: &std::path::Path) -> String {
    let path = dir.join("fp.pub");
    fs::write(&path, format!("{public_key}\n")).unwrap();
    let out = std::process::Command::new("ssh-keygen").arg("-lf").arg(&path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn login_succeeds_only_thanks_to_the_pushed_key() {
    let world = World::new();
    let out = world.ssh_ok(&["web-1", "id -un"]);
    assert_eq!(out.stdout.trim(), "ec2-user");
    assert_eq!(out.stderr, "", "a successful connection prints nothing on stderr");

    let pushed = world.lab.state().pushed_keys();
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert_eq!((pushed[0].instance.as_str(), pushed[0].user.as_str()), (WEB_1, "ec2-user"));
    let fp = fingerprint(&pushed[0].key, world.dir.path());
    let log = world.lab.sshd_log(WEB_1);
    assert!(log.contains("Accepted publickey for ec2-user from 127.0.0.1 port"), "{log}");
    assert!(log.contains(&fp), "sshd accepted a key other than the pushed one {fp}:\n{log}");

    // Without the push, the same client is refused: the AMI's authorized_keys holds only a key we do not have.
    let no_push_dir = world.path("no-push");
    fs::create_dir(&no_push_dir).unwrap();
    let config =
        ec2_lab::demo::write_ssh_config(&world.lab, &crate::harness::broker(), &no_push_dir, "--no-push").unwrap();
    let out = world.run(
        {
            let mut c = world.command("ssh");
            c.arg("-F").arg(&config).args(["web-1", "true"]);
            c
        },
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), Some(255), "{}", out.describe());
    assert!(out.stderr.contains("Permission denied (publickey)"), "{}", out.describe());
    assert_eq!(world.lab.state().pushed_keys().len(), 1, "--no-push pushed nothing");
}

#[test]
fn scp_32_mib_both_ways_and_rsync_a_tree() {
    let world = World::new();
    let remote = remote_dir(&world);
    let local = world.path("blob.bin");
    random_file(&local, 32 << 20, 0x5eed);
    let remote_file = format!("web-1:{}/blob.bin", remote.display());
    let cfg = world.ssh_config.display().to_string();

    let mut up = world.command("scp");
    up.args(["-q", "-F", &cfg]).arg(&local).arg(&remote_file);
    assert_ok!(world.run(up, Duration::from_secs(120)));
    assert_eq!(sha256_file(&remote.join("blob.bin")), sha256_file(&local));

    let back = world.path("blob.back");
    let mut down = world.command("scp");
    down.args(["-q", "-F", &cfg, &remote_file]).arg(&back);
    assert_ok!(world.run(down, Duration::from_secs(120)));
    assert_eq!(sha256_file(&back), sha256_file(&local));

    // A tree with nesting, empty files, odd names and a 1 MiB file.
    let tree = world.path("tree");
    for i in 0..30usize {
        let sub = tree.join(format!("d{}/e{}", i % 3, i % 5));
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join(format!("f {i}.txt")), "x".repeat(i * 97)).unwrap();
    }
    random_file(&tree.join("big.bin"), 1 << 20, 7);
    let rsh = format!("ssh -F {cfg}");
    let mut rsync = world.command("rsync");
    rsync
        .args(["-a", "-e", &rsh])
        .arg(format!("{}/", tree.display()))
        .arg(format!("{WEB_1}:{}/tree/", remote.display()));
    assert_ok!(world.run(rsync, Duration::from_secs(120)));
    let back_tree = world.path("tree-back");
    let mut rsync = world.command("rsync");
    rsync.args(["-a", "-e", &rsh]).arg(format!("{WEB_1}:{}/tree/", remote.display())).arg(&back_tree);
    assert_ok!(world.run(rsync, Duration::from_secs(120)));
    let mut count = 0;
    for entry in walk(&tree) {
        let rel = entry.strip_prefix(&tree).unwrap();
        assert_eq!(sha256_file(&entry), sha256_file(&remote.join("tree").join(rel)), "{}", rel.display());
        assert_eq!(sha256_file(&entry), sha256_file(&back_tree.join(rel)), "{}", rel.display());
        count += 1;
    }
    assert_eq!(count, 31);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn a_connection_after_the_key_expired_pushes_a_new_one() {
    let world = World::new();
    world.ssh_ok(&["web-1", "true"]);
    world.lab.state().advance(Duration::from_secs(61));
    crate::harness::age_push_records(&world, 61);
    assert!(world.lab.state().active_keys(WEB_1, "ec2-user").is_empty(), "the first key expired on the instance");
    let out = world.ssh_ok(&["web-1", "echo again"]);
    assert_eq!(out.stdout, "again\n");
    let pushed = world.lab.state().pushed_keys();
    assert_eq!(pushed.len(), 2);
    assert_ne!(pushed[0].key, pushed[1].key, "each connection gets a fresh key");
}

#[test]
fn concurrent_connections_do_not_clobber_each_others_keys() {
    let world = World::new();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let mut cmd = world.command("ssh");
            cmd.arg("-F").arg(&world.ssh_config).args(["web-1", &format!("sleep 1; echo {i}")]);
            std::thread::spawn(move || run(cmd, Duration::from_secs(60)))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.join().unwrap();
        assert!(out.success(), "{}\n{}", out.describe(), world.dump());
        assert_eq!(out.stdout, format!("{i}\n"));
    }
}

#[test]
fn stdout_carries_only_sshd_bytes_and_the_broker_exits_promptly() {
    let world = World::new();
    let port = world.lab.ssh_port(WEB_1);
    // What sshd itself sends first.
    let mut raw = BufReader::new(TcpStream::connect(("127.0.1.10", port)).unwrap());
    let mut banner = String::new();
    raw.read_line(&mut banner).unwrap();
    assert!(banner.starts_with("SSH-2.0-"), "{banner:?}");

    // The broker at its most verbose, logging to stderr (not to a file).
    let mut cmd = world.command(crate::harness::broker());
    cmd.env_remove("EC2_BROKER_LOG_FILE")
        .args(["-vvv", "proxy", "--key-dir"])
        .arg(world.key_dir())
        .arg(format!("ec2-user@web-1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = vec![0u8; banner.len()];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(first, banner.as_bytes(), "stdout must start byte-identical to sshd's banner");

    // ssh goes away: stdin closes and SIGHUP arrives. The broker must be gone within 1 s, exit 0.
    drop(child.stdin.take());
    let kill = std::process::Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = run::wait_deadline(&mut child, Duration::from_secs(1));
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.is_some(), "broker still running 1 s after ssh left\n{stderr}");
    assert!(status.unwrap().success(), "{stderr}");
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert!(!String::from_utf8_lossy(&rest).contains("INFO"), "a log line reached stdout");
    assert!(stderr.contains("key pushed") && stderr.contains("resolved"), "logs go to stderr:\n{stderr}");
    // Even at -vvv (dependencies at debug level), no secret reaches the log.
    assert!(!stderr.contains(ec2_lab::SECRET_ACCESS_KEY), "the secret key was logged");
    assert!(!stderr.contains("PRIVATE KEY"), "a private key was logged");
}

#[test]
fn no_key_file_is_left_behind_or_readable_by_others() {
    let world = World::new();
    world.ssh_ok(&["web-1", "true"]);
    let dir = world.key_dir();
    assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    for entry in fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", entry.path().display());
    }
    assert!(!dir.join("ec2-user@web-1").exists(), "the last connection removes its key");
}

#[test]
fn key_through_ssh_agent_with_a_lifetime() {
    let world = World::new();
    let sock = world.path("agent.sock");
    let mut agent = world.command("ssh-agent");
    agent.args(["-D", "-a"]).arg(&sock).stdout(Stdio::null()).stderr(Stdio::null());
    let mut agent = agent.spawn().unwrap();
    for _ in 0..200 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let agent_dir = world.path("agent");
    fs::create_dir(&agent_dir).unwrap();
    let config =
        ec2_lab::demo::write_ssh_config(&world.lab, &crate::harness::broker(), &agent_dir, "--key-delivery agent")
            .unwrap();
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace("IdentityAgent none", &format!("IdentityAgent {}", sock.display()))
        // Agent delivery: ssh must be free to offer agent keys.
        .replace("IdentitiesOnly yes", "IdentitiesOnly no");
    fs::write(&config, text).unwrap();
    let mut ssh = world.command("ssh");
    ssh.env("SSH_AUTH_SOCK", &sock).arg("-F").arg(&config).args(["web-1", "id -un"]);
    let out = world.run(ssh, Duration::from_secs(60));
    let mut list = world.command("ssh-add");
    list.env("SSH_AUTH_SOCK", &sock).arg("-l");
    let listed = run(list, Duration::from_secs(10));
    let _ = agent.kill();
    let _ = agent.wait();
    assert_ok!(out);
    assert_eq!(out.stdout.trim(), "ec2-user");
    assert!(
        listed.stdout.contains("ED25519"),
        "the key is in the agent until its lifetime ends: {}",
        listed.describe()
    );
    assert!(!agent_dir.join("keys/ec2-user@web-1").exists(), "agent delivery writes no key file");
}
