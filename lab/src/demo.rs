//! `ec2-lab demo` and `ec2-lab up`, and the ssh_config both (and the tests) use.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::{Inventory, Lab};

/// Writes an ssh_config for every running lab instance (by Name and by id) that uses `broker` as
/// ProxyCommand with `proxy_args`, plus a known_hosts holding each instance's real host key.
pub fn write_ssh_config(lab: &Lab, broker: &Path, dir: &Path, proxy_args: &str) -> anyhow::Result<PathBuf> {
    let keys = dir.join("keys");
    let known_hosts = dir.join("known_hosts");
    let mut config = String::new();
    let mut known = String::new();
    for id in lab.instance_ids() {
        let inst = lab.state().inventory.get(&id).expect("running instances are in the inventory");
        let port = lab.ssh_port(&id);
        let names: Vec<String> = inst.name.iter().cloned().chain([id.clone()]).collect();
        let _ = writeln!(config, "Host {}\n    Port {port}\n", names.join(" "));
        let key = &lab.instance(&id).sshd.host_public_key;
        let key = key.rsplit_once(' ').map_or(key.as_str(), |(k, _)| k);
        for n in &names {
            let _ = writeln!(known, "[{n}]:{port} {key}");
        }
    }
    let _ = write!(
        config,
        "Host *\n    User ec2-user\n    ProxyCommand {} proxy --key-dir {} {proxy_args} %r@%h:%p\n    IdentityFile {}/%r@%h\n    \
         IdentitiesOnly yes\n    IdentityAgent none\n    UserKnownHostsFile {}\n    GlobalKnownHostsFile /dev/null\n    \
         StrictHostKeyChecking yes\n    BatchMode yes\n    ConnectTimeout 20\n",
        broker.display(),
        keys.display(),
        keys.display(),
        known_hosts.display(),
    );
    let path = dir.join("ssh_config");
    fs::write(&path, config)?;
    fs::write(&known_hosts, known)?;
    Ok(path)
}

/// The broker binary: `EC2_BROKER_BIN`, else next to this executable.
pub fn find_broker() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("EC2_BROKER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let candidate = exe.with_file_name("ec2-broker");
    ensure!(
        candidate.exists(),
        "{} not found: build it first (cargo build --bins) or set EC2_BROKER_BIN",
        candidate.display()
    );
    Ok(candidate)
}

/// A directory an instance's OS user can write to (for scp/rsync targets).
pub fn remote_dir(base: &Path, user: &str) -> anyhow::Result<PathBuf> {
    let dir = base.join(format!("remote-{user}"));
    fs::create_dir_all(&dir)?;
    let out = Command::new("chown").arg(user).arg(&dir).output()?;
    ensure!(out.status.success(), "chown {user} {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    // Parents must be traversable by that user.
    let mut p = dir.parent();
    while let Some(d) = p {
        if d == Path::new("/") {
            break;
        }
        let mode = fs::metadata(d)?.permissions().mode();
        if mode & 0o001 == 0 {
            fs::set_permissions(d, fs::Permissions::from_mode(mode | 0o011))?;
        }
        p = d.parent();
    }
    Ok(dir)
}

/// Runs the demo; returns an error unless ssh, scp and rsync all worked.
pub fn run_demo() -> anyhow::Result<()> {
    let broker = find_broker()?;
    let dir = tempdir()?;
    println!("ec2-lab demo: lab files under {}", dir.display());
    let lab = Lab::start(Inventory::demo(), &dir)?;
    let config = write_ssh_config(&lab, &broker, &dir, "")?;
    println!(
        "API doubles at {}; SSM data channel at {}; EICE tunnels at wss://{}",
        lab.endpoint_url(),
        lab.ssm_url(),
        lab.eice_addr()
    );
    println!("instances: {}", lab.instance_ids().join(", "));
    println!("ssh_config: {}\n", config.display());
    let mut env = lab.env();
    // The broker's caches (lookups, remembered routes) stay in the demo's directory.
    env.push(("XDG_CACHE_HOME".into(), dir.join("cache").display().to_string()));
    let ssh = |program: &str, args: &[&str]| -> anyhow::Result<(String, Duration)> {
        let started = Instant::now();
        let mut cmd = Command::new(program);
        cmd.args(args).envs(env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null());
        let out = cmd.output().with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            bail!("{program} {} failed:\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok((String::from_utf8_lossy(&out.stdout).into_owned(), started.elapsed()))
    };
    let cfg = config.display().to_string();
    let remote = remote_dir(&dir, "ec2-user")?;

    let (out, took) = ssh("ssh", &["-F", &cfg, "web-1", "echo logged in as $(id -un) on $(hostname)"])?;
    ensure!(out.contains("logged in as ec2-user"), "unexpected ssh output: {out}");
    println!("ssh web-1: {} ({} ms; the login used a key pushed with SendSSHPublicKey)", out.trim(), took.as_millis());

    let local = dir.join("payload.bin");
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    fs::write(&local, &data)?;
    let back = dir.join("payload.back");
    let remote_file = format!("web-1:{}/payload.bin", remote.display());
    let (_, up) = ssh("scp", &["-q", "-F", &cfg, &local.display().to_string(), &remote_file])?;
    let (_, down) = ssh("scp", &["-q", "-F", &cfg, &remote_file, &back.display().to_string()])?;
    ensure!(fs::read(&back)? == data, "scp round trip changed the file");
    println!("scp 4 MiB up and back: identical ({} ms up, {} ms down)", up.as_millis(), down.as_millis());

    let tree = dir.join("tree");
    for i in 0..20 {
        let sub = tree.join(format!("d{}", i % 4));
        fs::create_dir_all(&sub)?;
        fs::write(sub.join(format!("f{i}.txt")), format!("file {i}\n").repeat(i * 50 + 1))?;
    }
    let rsh = format!("ssh -F {cfg}");
    let src = format!("{}/", tree.display());
    let dst = format!("i-0a1b2c3d4e5f60718:{}/tree/", remote.display());
    let (_, took) = ssh("rsync", &["-a", "-e", &rsh, &src, &dst])?;
    let (out, _) = ssh(
        "ssh",
        &["-F", &cfg, "i-0a1b2c3d4e5f60718", &format!("cd {}/tree && find . -type f | wc -l", remote.display())],
    )?;
    ensure!(out.trim() == "20", "rsync left {} files, expected 20", out.trim());
    println!("rsync of a 20-file tree to i-0a1b2c3d4e5f60718: 20 files arrived ({} ms)", took.as_millis());

    // The same instance through the other routes, and db-1, which has no inbound network at all.
    for (route, host) in [("eice", "web-1"), ("ssm", "db-1"), ("eice", "db-1")] {
        let route_dir = dir.join(format!("{route}-{host}"));
        fs::create_dir_all(&route_dir)?;
        let route_cfg = write_ssh_config(&lab, &broker, &route_dir, &format!("--route {route}"))?.display().to_string();
        let (out, took) = ssh("ssh", &["-F", &route_cfg, host, "echo logged in as $(id -un)"])?;
        ensure!(out.contains("logged in as ec2-user"), "unexpected ssh output over {route}: {out}");
        let remote_file = format!("{host}:{}/payload.bin", remote.display());
        let (_, up) = ssh("scp", &["-q", "-F", &route_cfg, &local.display().to_string(), &remote_file])?;
        let (_, down) = ssh("scp", &["-q", "-F", &route_cfg, &remote_file, &back.display().to_string()])?;
        ensure!(fs::read(&back)? == data, "scp round trip over {route} changed the file");
        println!(
            "--route {route:<4} {host}: {} ({} ms), scp 4 MiB up and back identical ({} ms up, {} ms down)",
            out.trim(),
            took.as_millis(),
            up.as_millis(),
            down.as_millis()
        );
    }

    // No --route: the broker finds db-1's way in by itself, and `doctor` says why each route works or not.
    let (out, took) = ssh("ssh", &["-F", &cfg, "db-1", "echo logged in as $(id -un)"])?;
    ensure!(out.contains("logged in as ec2-user"), "unexpected ssh output over the automatic route: {out}");
    println!("ssh db-1 with no --route (direct refused, so the next route): {} ({} ms)", out.trim(), took.as_millis());
    let (report, _) = ssh(&broker.display().to_string(), &["doctor", "--ssh-config", &cfg, "db-1"])?;
    println!("\n$ ec2-broker doctor db-1\n{report}");

    // The last resort: db-1's serial console, as if its network or sshd were broken.
    let took = console_demo(&broker, &env, &dir)?;
    println!(
        "console db-1: serial getty, logged in with the OS password, ran a command, left with ~. ({} ms; \
         endpoint host key checked against its pinned fingerprint before the key was pushed)",
        took.as_millis()
    );

    let pushes = lab.state().pushed_keys().len();
    println!("\nall worked: {pushes} short-lived keys pushed, none of them stored by the instance beyond 60 s");
    drop(lab);
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

/// Drives `ec2-broker console db-1` through a pseudo-terminal as a user would.
fn console_demo(broker: &Path, env: &[(String, String)], dir: &Path) -> anyhow::Result<Duration> {
    const STEP: Duration = Duration::from_secs(30);
    let started = Instant::now();
    let pty = crate::pty::Pty::open(100, 30)?;
    let mut cmd = Command::new(broker);
    cmd.args(["console", "db-1"]).envs(env.iter().map(|(k, v)| (k, v))).env("TERM", "xterm");
    let stderr = dir.join("console.err");
    let mut child = pty.spawn(cmd, &stderr)?;
    let dialogue = || -> anyhow::Result<()> {
        let at = pty.expect_after(0, "login: ", STEP)?;
        pty.type_text("ec2-user\r")?;
        let at = pty.expect_after(at, "Password: ", STEP)?;
        pty.type_text("lab-serial-pw\r")?;
        pty.type_text("echo serial console of $(hostname), user $(id -un): $((6*7))\r")?;
        pty.expect_after(at, "user ec2-user: 42", STEP)?;
        pty.type_text("\r~.")?;
        Ok(())
    };
    let result = dialogue();
    let end = Instant::now() + STEP;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if result.is_err() || Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let errors = fs::read_to_string(&stderr).unwrap_or_default();
    result.with_context(|| format!("ec2-broker console db-1:\n{errors}"))?;
    ensure!(status.is_some_and(|s| s.success()), "ec2-broker console db-1 did not leave on ~.:\n{errors}");
    Ok(started.elapsed())
}

pub(crate) fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ec2-lab-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    make_traversable(&dir)?;
    Ok(dir)
}

/// Opens a lab directory for reading by the instances' OS users (their sshd reads it as them).
pub fn make_traversable(dir: &Path) -> anyhow::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    Ok(())
}
