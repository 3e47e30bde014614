//! A real OpenSSH `sshd` per lab instance, run in inetd mode (`sshd -i`) once per accepted
//! connection, so there is no pick-a-free-port race and the lab sees every connection.
//!
//! Each instance gets its own config, host keys (ECDSA and Ed25519, as cloud-init generates them
//! at first boot, with the `root@<private DNS name>` comment), log and a static
//! `authorized_keys` holding an unrelated "AMI" key and, when the instance was launched with a
//! key pair, that key pair's public key (as cloud-init installs it). Instances with Instance
//! Connect get an `AuthorizedKeysCommand` that reads the instance's IMDS double the way
//! `eic_run_authorized_keys` does (spec §3.2).

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail, ensure};
use tokio::net::TcpListener;

use crate::inventory::InstanceSpec;

/// sshd must be started by absolute path (lab note 4).
pub const SSHD: &str = "/usr/sbin/sshd";

const AUTHORIZED_KEYS_SCRIPT: &str = include_str!("authorized_keys.sh");

/// Files of one instance's sshd.
#[derive(Debug, Clone)]
pub struct SshdFiles {
    /// The config passed with `-f`.
    pub config: PathBuf,
    /// The log passed with `-E`.
    pub log: PathBuf,
    /// The Ed25519 host public key line (`ssh-ed25519 AAAA… root@ip-….compute.internal`).
    pub host_public_key: String,
    /// Every host public key line, in the order cloud-init prints them (the sorted
    /// `ssh_host_*key.pub` glob): ECDSA, then Ed25519.
    pub host_public_keys: Vec<String>,
    /// The host private key files, in the order of `host_public_keys` (each `.pub` beside it).
    pub host_key_files: Vec<PathBuf>,
    /// The static `authorized_keys`: the AMI's unrelated key, plus the launch key pair's public
    /// key when the instance has one the inventory knows (`key_name`), plus whatever a test adds.
    pub authorized_keys: PathBuf,
    /// The private half of the AMI's key, kept only for a `shared_ami` instance (`LAB_AMI_KEY`).
    pub ami_key: Option<PathBuf>,
}

/// The host key types each sshd gets, in the order cloud-init prints them (`ssh-keygen -t`).
const HOST_KEY_TYPES: [&str; 2] = ["ecdsa", "ed25519"];

/// Where an instance's sshd files go and what it was launched with.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    /// The instance.
    pub instance: &'a InstanceSpec,
    /// The Region (the host keys' comment names the private DNS name).
    pub region: &'a str,
    /// The public key line of the key pair the instance was launched with, if any.
    pub key_pair: Option<&'a str>,
}

/// Writes config, host keys and authorized_keys for `launch.instance` under `dir`.
pub fn prepare(launch: Launch<'_>, dir: &Path, imds_url: &str, keys_command: &Path) -> anyhow::Result<SshdFiles> {
    let inst = launch.instance;
    ensure!(Path::new(SSHD).exists(), "{SSHD} not found: install openssh-server (apt-get install openssh-server)");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let comment = inst.host_key_comment(launch.region);
    let mut host_key_files = Vec::new();
    let mut host_public_keys = Vec::new();
    for kind in HOST_KEY_TYPES {
        let file = dir.join(format!("ssh_host_{kind}_key"));
        keygen(&file, kind, &comment)?;
        host_public_keys.push(fs::read_to_string(file.with_extension("pub"))?.trim().to_string());
        host_key_files.push(file);
    }
    let ami_key = dir.join("ami_key");
    keygen(&ami_key, "ed25519", "ami-owner@other-account")?;
    let authorized = dir.join("authorized_keys");
    let mut authorized_text = fs::read_to_string(ami_key.with_extension("pub")).context("reading the AMI key")?;
    if let Some(key) = launch.key_pair.filter(|_| !inst.shared_ami) {
        authorized_text.push_str(key.trim());
        authorized_text.push('\n');
    }
    fs::write(&authorized, authorized_text).context("writing authorized_keys")?;
    if !inst.shared_ami {
        fs::remove_file(&ami_key).ok(); // Nobody in the lab holds the AMI's private key.
    }
    fs::set_permissions(&authorized, fs::Permissions::from_mode(0o644))?;

    let log = dir.join("sshd.log");
    // Ed25519 first: the key `host_public_key` names and the tests' known_hosts hold.
    let host_key_lines: String = host_key_files.iter().rev().map(|f| format!("HostKey {}\n", f.display())).collect();
    let mut config = format!(
        "{host_key_lines}PidFile none\nUsePAM no\nStrictModes no\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nAuthorizedKeysFile {}\n\
         Subsystem sftp internal-sftp\nLogLevel VERBOSE\nMaxStartups 100:30:200\n",
        authorized.display()
    );
    if inst.instance_connect {
        config.push_str(&format!(
            "AuthorizedKeysCommand {} {imds_url} %u %f\nAuthorizedKeysCommandUser nobody\n",
            keys_command.display()
        ));
    }
    let config_path = dir.join("sshd_config");
    fs::write(&config_path, config)?;
    let host_public_key = host_public_keys.iter().find(|k| k.starts_with("ssh-ed25519 ")).cloned().unwrap_or_default();
    // sshd refuses to start when its privilege-separation directory is missing (lab note 4).
    fs::create_dir_all("/run/sshd").ok();
    let check = Command::new(SSHD).arg("-t").arg("-f").arg(&config_path).output().context("running sshd -t")?;
    ensure!(
        check.status.success(),
        "sshd -t rejected {}: {}",
        config_path.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    Ok(SshdFiles {
        config: config_path,
        log,
        host_public_key,
        host_public_keys,
        host_key_files,
        authorized_keys: authorized,
        ami_key: inst.shared_ami.then_some(ami_key),
    })
}

/// Accepts connections on `listener` and serves each with `sshd -i`; counts them in `accepted`.
pub async fn serve(listener: TcpListener, files: SshdFiles, accepted: Arc<AtomicUsize>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let files = files.clone();
        tokio::spawn(async move {
            if let Err(e) = run_one(stream, &files).await {
                let _ = fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&files.log)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, format!("ec2-lab: {e:#}\n").as_bytes()));
            }
        });
    }
}

async fn run_one(stream: tokio::net::TcpStream, files: &SshdFiles) -> anyhow::Result<()> {
    let std_stream = stream.into_std()?;
    std_stream.set_nonblocking(false)?;
    let fd: OwnedFd = std_stream.into();
    let fd_out = fd.try_clone()?;
    let mut child = tokio::process::Command::new(SSHD)
        .arg("-i")
        .arg("-f")
        .arg(&files.config)
        .arg("-E")
        .arg(&files.log)
        .stdin(Stdio::from(fd))
        .stdout(Stdio::from(fd_out))
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting sshd -i")?;
    child.wait().await?;
    Ok(())
}

fn keygen(path: &Path, kind: &str, comment: &str) -> anyhow::Result<()> {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .context("running ssh-keygen (install openssh-client)")?;
    ensure!(out.status.success(), "ssh-keygen failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// Installs the lab's AuthorizedKeysCommand where sshd accepts it: a root-owned file in
/// root-owned directories none of which is group- or world-writable (lab note 2).
pub fn install_keys_command() -> anyhow::Result<PathBuf> {
    let dir = Path::new("/usr/local/lib/ec2-lab");
    let path = dir.join(format!("eic_lab_authorized_keys-{:016x}", fnv1a(AUTHORIZED_KEYS_SCRIPT.as_bytes())));
    if fs::read_to_string(&path).is_ok_and(|s| s == AUTHORIZED_KEYS_SCRIPT) {
        return Ok(path);
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {} (the lab's sshd setup needs root)", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    fs::write(&tmp, AUTHORIZED_KEYS_SCRIPT).with_context(|| format!("writing {}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
    fs::rename(&tmp, &path)?;
    let mut p = path.as_path();
    while let Some(parent) = p.parent() {
        let meta = fs::metadata(p)?;
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            bail!("{} must be owned by root and not group- or world-writable for sshd to run it", p.display());
        }
        p = parent;
    }
    Ok(path)
}

/// Makes sure each OS user exists (a lab instance logs in real accounts, lab note 4).
pub fn ensure_users(users: &[String]) -> anyhow::Result<()> {
    for user in users {
        let exists = Command::new("id").arg(user).stdout(Stdio::null()).stderr(Stdio::null()).status()?.success();
        if exists {
            continue;
        }
        // '*' (not '!') so sshd does not treat the account as locked; there is no password.
        let out = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", "--password", "*"])
            .arg(user)
            .output()
            .with_context(|| format!("creating OS user {user} (needs root)"))?;
        ensure!(out.status.success(), "useradd {user}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
