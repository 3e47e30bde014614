//! Test harness: each test owns a temp dir, a lab, an ssh_config and known_hosts, and gives
//! its environment to child processes explicitly (the test process's own env is never changed).

pub mod process;
pub mod run;
pub mod terminal;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ec2_lab::{Inventory, Lab};
pub use run::{Output, run};

/// The broker binary cargo built for these tests.
pub fn broker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ec2-broker"))
}

/// One test's world.
pub struct World {
    /// The lab (dropping it stops every double and sshd).
    pub lab: Lab,
    /// The temp dir holding everything.
    pub dir: tempfile::TempDir,
    /// ssh_config written for the lab.
    pub ssh_config: PathBuf,
    /// Where the broker logs (debug level).
    pub broker_log: PathBuf,
}

impl World {
    /// A lab with the built-in inventory.
    pub fn new() -> World {
        Self::with(Inventory::demo(), "")
    }

    /// A lab with `inventory`, and `proxy_args` added to every ProxyCommand.
    pub fn with(inventory: Inventory, proxy_args: &str) -> World {
        let dir = tempfile::Builder::new().prefix("ec2-broker-it-").tempdir().expect("temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        let lab = Lab::start(inventory, &dir.path().join("lab")).expect("starting the lab");
        let ssh_config =
            ec2_lab::demo::write_ssh_config(&lab, &broker(), dir.path(), proxy_args).expect("writing ssh_config");
        let broker_log = dir.path().join("broker.log");
        World { lab, dir, ssh_config, broker_log }
    }

    /// Path inside the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The key directory the ssh_config names.
    pub fn key_dir(&self) -> PathBuf {
        self.path("keys")
    }

    /// Environment for ssh and the broker: the lab's AWS settings, a private HOME, debug logs to a file.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.lab.env();
        env.push(("HOME".into(), self.path("home").display().to_string()));
        env.push(("EC2_BROKER_LOG".into(), "debug".into()));
        env.push(("EC2_BROKER_LOG_FILE".into(), self.broker_log.display().to_string()));
        env
    }

    /// A command with the world's environment and nothing inherited that could leak in.
    pub fn command(&self, program: impl AsRef<Path>) -> Command {
        let mut cmd = Command::new(program.as_ref());
        cmd.env_clear();
        cmd.env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()));
        cmd.envs(self.env());
        cmd
    }

    /// `ssh -F <config> ARGS`.
    pub fn ssh(&self, args: &[&str]) -> Output {
        let mut cmd = self.command("ssh");
        cmd.arg("-F").arg(&self.ssh_config).args(args);
        self.run(cmd, Duration::from_secs(60))
    }

    /// `ssh -F <config> ARGS`, which must succeed; on failure the panic shows every log and the
    /// `ssh -vvv` output of a second attempt.
    pub fn ssh_ok(&self, args: &[&str]) -> Output {
        let out = self.ssh(args);
        if !out.success() {
            let verbose: Vec<&str> = std::iter::once("-vvv").chain(args.iter().copied()).collect();
            let debug = self.ssh(&verbose).stderr;
            panic!("ssh failed: {}\n{}\n--- ssh -vvv (second attempt)\n{debug}", out.describe(), out.context);
        }
        out
    }

    /// Runs `cmd` with a deadline; the output carries the logs to dump on failure.
    pub fn run(&self, cmd: Command, deadline: Duration) -> Output {
        let mut out = run(cmd, deadline);
        out.context = self.dump();
        out
    }

    /// Everything worth reading when a test fails.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        s += &format!("--- broker log ({})\n{}\n", self.broker_log.display(), read(&self.broker_log));
        for id in self.lab.instance_ids() {
            let log = self.lab.sshd_log(&id);
            if !log.is_empty() {
                s += &format!("--- sshd log of {id}\n{log}\n");
            }
        }
        s += &format!("--- lab API calls\n{:#?}\n", self.lab.state().calls());
        s
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("({e})"))
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let data = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    sha2::Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `len` bytes of incompressible data (a xorshift stream seeded by `seed`).
pub fn random_file(path: &Path, len: usize, seed: u64) {
    ec2_lab::bench::write_random(path, len, seed).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// A directory the lab's `ec2-user` can write to.
pub fn remote_dir(world: &World) -> PathBuf {
    ec2_lab::demo::remote_dir(world.dir.path(), "ec2-user").expect("remote dir")
}

/// Asserts a command succeeded, dumping everything otherwise.
#[macro_export]
macro_rules! assert_ok {
    ($out:expr) => {{
        let out = &$out;
        assert!(out.success(), "command failed: {}\n{}", out.describe(), out.context);
    }};
}

/// `scp -q -F <config> FROM TO` with a generous deadline.
pub fn scp(world: &World, from: &str, to: &str) -> Output {
    let mut cmd = world.command("scp");
    cmd.args(["-q", "-F"]).arg(&world.ssh_config).args([from, to]);
    world.run(cmd, Duration::from_secs(300))
}

/// Sends a random file of `len` bytes to `host` with scp and fetches it back; asserts that both
/// copies have the original's checksum.
pub fn scp_round_trip(world: &World, host: &str, len: usize, seed: u64) {
    let remote = remote_dir(world);
    let local = world.path("blob.bin");
    random_file(&local, len, seed);
    let remote_file = format!("{host}:{}/blob.bin", remote.display());
    assert_ok!(scp(world, &local.display().to_string(), &remote_file));
    assert_eq!(sha256_file(&remote.join("blob.bin")), sha256_file(&local), "upload corrupted");
    let back = world.path("back.bin");
    assert_ok!(scp(world, &remote_file, &back.display().to_string()));
    assert_eq!(sha256_file(&back), sha256_file(&local), "download corrupted");
}

/// rsyncs a tree of random files with these sizes to `host` (twice: the second run has nothing
/// to send); asserts every file arrived intact.
pub fn rsync_tree(world: &World, host: &str, sizes: &[usize]) {
    let remote = remote_dir(world).join("tree");
    let tree = world.path("tree");
    let rel = |i: usize| format!("d{}/f{i}", i % 2);
    for (i, size) in sizes.iter().enumerate() {
        fs::create_dir_all(tree.join(format!("d{}", i % 2))).expect("creating the tree");
        random_file(&tree.join(rel(i)), *size, i as u64 + 1);
    }
    for _ in 0..2 {
        let mut cmd = world.command("rsync");
        cmd.args(["-a", "--checksum", "-e"])
            .arg(format!("ssh -F {}", world.ssh_config.display()))
            .arg(format!("{}/", tree.display()))
            .arg(format!("{host}:{}/", remote.display()));
        assert_ok!(world.run(cmd, Duration::from_secs(120)));
    }
    for i in 0..sizes.len() {
        assert_eq!(sha256_file(&remote.join(rel(i))), sha256_file(&tree.join(rel(i))), "{}", rel(i));
    }
}

/// Makes the broker's records of pushed keys (issue 19) `secs` older, as if that much time had
/// passed on the broker's clock too (the lab's clock is advanced separately).
pub fn age_push_records(world: &World, secs: u64) {
    let file = world.path("home").join(".cache/ec2-broker/pushes.json");
    let Ok(text) = fs::read_to_string(&file) else { return };
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("\"pushed_at\":") {
        let (head, tail) = rest.split_at(at + "\"pushed_at\":".len());
        out.push_str(head);
        let digits = tail.find(|c: char| !c.is_ascii_digit()).unwrap_or(tail.len());
        let value: u64 = tail[..digits].parse().expect("a number");
        out.push_str(&value.saturating_sub(secs).to_string());
        rest = &tail[digits..];
    }
    out.push_str(rest);
    fs::write(&file, out).expect("rewriting the push records");
}
