//! A real OpenSSH `sshd` per lab instance, run in inetd mode (`sshd -i`) once per accepted
//! connection, so there is no pick-a-free-port race and the lab sees every connection.
//!
//! Each instance gets its own config, host key, log and a static `authorized_keys` holding only
//! an unrelated "AMI" key. Instances with Instance Connect get an `AuthorizedKeysCommand` that
//! reads the instance's IMDS double the way `eic_run_authorized_keys` does (spec §3.2).

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
    /// The host public key (`ssh-ed25519 AAAA…`).
    pub host_public_key: String,
    /// The static `authorized_keys` (the AMI's; only an unrelated key unless a test adds one).
    pub authorized_keys: PathBuf,
}

/// Writes config, host key and authorized_keys for `inst` under `dir`.
pub fn prepare(inst: &InstanceSpec, dir: &Path, imds_url: &str, keys_command: &Path) -> anyhow::Result<SshdFiles> {
    ensure!(Path::new(SSHD).exists(), "{SSHD} not found: install openssh-server (apt-get install openssh-server)");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let host_key = dir.join("ssh_host_ed25519_key");
    keygen(&host_key, "lab-host-key")?;
    let ami_key = dir.join("ami_key");
    keygen(&ami_key, "ami-owner@other-account")?;
    let authorized = dir.join("authorized_keys");
    fs::copy(ami_key.with_extension("pub"), &authorized).context("writing authorized_keys")?;
    fs::remove_file(&ami_key).ok(); // Nobody in the lab holds the AMI's private key.
    fs::set_permissions(&authorized, fs::Permissions::from_mode(0o644))?;

    let log = dir.join("sshd.log");
    let mut config = format!(
        "HostKey {}\nPidFile none\nUsePAM no\nStrictModes no\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nAuthorizedKeysFile {}\n\
         Subsystem sftp internal-sftp\nLogLevel VERBOSE\nMaxStartups 100:30:200\n",
        host_key.display(),
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
    let host_public_key = fs::read_to_string(host_key.with_extension("pub"))?.trim().to_string();
    // sshd refuses to start when its privilege-separation directory is missing (lab note 4).
    fs::create_dir_all("/run/sshd").ok();
    let check = Command::new(SSHD).arg("-t").arg("-f").arg(&config_path).output().context("running sshd -t")?;
    ensure!(
        check.status.success(),
        "sshd -t rejected {}: {}",
        config_path.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    Ok(SshdFiles { config: config_path, log, host_public_key, authorized_keys: authorized })
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

fn keygen(path: &Path, comment: &str) -> anyhow::Result<()> {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
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
