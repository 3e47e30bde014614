//! The SSM agent's Run Command side: `AWS-RunShellScript` really runs, as root on the lab host,
//! the way the agent runs it (`../shared/spec/keys-and-shell.md` §1.4): the `commands` joined with
//! `\n` into `_script.sh` (0700), run by `sh` (dash when installed), cwd `/usr/bin/`, the
//! agent's environment plus `AWS_SSM_INSTANCE_ID` and `AWS_SSM_REGION_NAME`, killed at
//! `executionTimeout`. Each instance's `sshd` is its own: a `sshd` first on the script's `PATH`
//! runs `/usr/sbin/sshd -f <that instance's config>`, so `sshd -T` shows the `AuthorizedKeysFile`
//! the instance's sshd reads, and the script's edits land there.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::state::lock;

/// How long GetCommandInvocation answers `InvocationDoesNotExist` after SendCommand (§1.2: AWS's
/// eventual consistency; a 0.5–1 s sleep usually avoids it). Tests may change it.
pub const DEFAULT_NOT_YET: Duration = Duration::from_millis(700);
/// How long a command stays `Pending` before the agent picks it up.
pub const PICKUP: Duration = Duration::from_millis(150);
/// Output limits of GetCommandInvocation (§1.2).
pub const MAX_STDOUT: usize = 24_000;
/// Error output limit.
pub const MAX_STDERR: usize = 8_000;
/// The status the agent turns into a reboot (§1.4).
pub const REBOOT_EXIT_CODE: i32 = 194;

/// Where a command is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// `Pending`, `InProgress`, `Success`, `Failed`, `TimedOut`.
    pub status: &'static str,
    /// `StatusDetails` (`Pending`, `In Progress`, `Success`, `Failed`, `Execution Timed Out`).
    pub details: &'static str,
    /// The exit status, -1 until it ends (and when it timed out).
    pub response_code: i32,
    /// Lab-clock Unix seconds the script started, ended.
    pub started: Option<u64>,
    /// End.
    pub ended: Option<u64>,
    /// Standard output (whole; cut when answered).
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The script exited 194: the agent would reboot the instance.
    pub reboot_requested: bool,
}

/// One command, sent to one instance.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `CommandId`.
    pub command_id: String,
    /// The instance.
    pub instance_id: String,
    /// `Comment`.
    pub comment: String,
    /// `Parameters` as sent.
    pub parameters: BTreeMap<String, Vec<String>>,
    /// Lab-clock Unix seconds of SendCommand.
    pub requested: u64,
    /// `ExpiresAfter` (lab-clock Unix seconds).
    pub expires_after: u64,
    /// `TimeoutSeconds`.
    pub timeout_seconds: u64,
    /// The script as the agent writes it.
    pub script: String,
    /// Real time of SendCommand (the consistency window runs on it).
    pub sent_at: Instant,
    /// Its progress, updated by the runner.
    pub progress: Arc<Mutex<Progress>>,
}

/// The commands sent so far, and what the runner needs.
#[derive(Debug)]
pub struct Registry {
    invocations: Mutex<Vec<Invocation>>,
    not_yet: Mutex<Duration>,
    /// Instance id → (the directory its commands run under, its sshd config).
    instances: Mutex<BTreeMap<String, (PathBuf, PathBuf)>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry { invocations: Mutex::default(), not_yet: Mutex::new(DEFAULT_NOT_YET), instances: Mutex::default() }
    }
}

impl Registry {
    /// Lets the instance run commands: `dir` holds its orchestration directories and the `sshd`
    /// wrapper for `sshd_config`.
    pub(crate) fn add_instance(&self, id: &str, dir: &Path, sshd_config: &Path) -> anyhow::Result<()> {
        let bin = dir.join("bin");
        fs::create_dir_all(&bin)?;
        let wrapper = bin.join("sshd");
        let config = sshd_config.display().to_string().replace('\'', r"'\''");
        fs::write(&wrapper, format!("#!/bin/sh\nexec {} -f '{config}' \"$@\"\n", crate::sshd::SSHD))?;
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))?;
        lock(&self.instances).insert(id.to_string(), (dir.to_path_buf(), sshd_config.to_path_buf()));
        Ok(())
    }

    /// Whether the lab can run commands on `id` (it runs an sshd here).
    pub(crate) fn knows(&self, id: &str) -> bool {
        lock(&self.instances).contains_key(id)
    }

    /// Sets how long GetCommandInvocation says `InvocationDoesNotExist` after SendCommand.
    pub fn set_not_yet(&self, window: Duration) {
        *lock(&self.not_yet) = window;
    }

    /// The consistency window.
    pub(crate) fn not_yet(&self) -> Duration {
        *lock(&self.not_yet)
    }

    /// Every command sent so far.
    pub fn invocations(&self) -> Vec<Invocation> {
        lock(&self.invocations).clone()
    }

    /// One command on one instance.
    pub(crate) fn find(&self, command_id: &str) -> Option<Invocation> {
        lock(&self.invocations).iter().find(|i| i.command_id == command_id).cloned()
    }

    /// Records `inv` and starts running it on a thread of its own.
    pub(crate) fn start(&self, inv: Invocation, region: &str, execution_timeout: Duration) {
        let dir = lock(&self.instances).get(&inv.instance_id).map(|(d, _)| d.clone());
        lock(&self.invocations).push(inv.clone());
        let region = region.to_string();
        std::thread::spawn(move || {
            let Some(dir) = dir else { return };
            std::thread::sleep(PICKUP);
            run(&inv, &dir, &region, execution_timeout);
        });
    }
}

fn run(inv: &Invocation, dir: &Path, region: &str, execution_timeout: Duration) {
    let set = |f: &dyn Fn(&mut Progress)| f(&mut lock(&inv.progress));
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    set(&|p| {
        p.status = "InProgress";
        p.details = "In Progress";
        p.started = Some(now());
    });
    let work = dir.join(&inv.command_id);
    let script = work.join("_script.sh");
    let result = (|| -> std::io::Result<(std::process::ExitStatus, bool)> {
        fs::create_dir_all(&work)?;
        fs::write(&script, &inv.script)?;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o700))?;
        let shell = if Path::new("/usr/bin/dash").exists() { "/usr/bin/dash" } else { "/bin/sh" };
        let path =
            format!("{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", dir.join("bin").display());
        let mut child = Command::new(shell)
            .arg("-c")
            .arg(&script)
            .current_dir("/usr/bin/")
            .env_clear()
            .env("PATH", path)
            .env("AWS_SSM_INSTANCE_ID", &inv.instance_id)
            .env("AWS_SSM_REGION_NAME", region)
            .stdin(Stdio::null())
            .stdout(fs::File::create(work.join("stdout"))?)
            .stderr(fs::File::create(work.join("stderr"))?)
            .spawn()?;
        let deadline = Instant::now() + execution_timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok((status, false));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                return Ok((child.wait()?, true));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })();
    let stdout = fs::read_to_string(work.join("stdout")).unwrap_or_default();
    let stderr = fs::read_to_string(work.join("stderr")).unwrap_or_default();
    set(&|p| {
        p.ended = Some(now());
        p.stdout = stdout.clone();
        p.stderr = stderr.clone();
        match &result {
            Ok((_, true)) => (p.status, p.details, p.response_code) = ("TimedOut", "Execution Timed Out", -1),
            Ok((status, false)) => {
                let code = status.code().unwrap_or(-1);
                p.response_code = code;
                p.reboot_requested = code == REBOOT_EXIT_CODE;
                (p.status, p.details) = if code == 0 { ("Success", "Success") } else { ("Failed", "Failed") };
            }
            Err(e) => {
                p.stderr = format!("ec2-lab: could not run the script: {e}");
                (p.status, p.details, p.response_code) = ("Failed", "Failed", -1);
            }
        }
    });
}

impl Progress {
    /// A command the agent has not picked up yet.
    pub(crate) fn pending() -> Self {
        Progress {
            status: "Pending",
            details: "Pending",
            response_code: -1,
            started: None,
            ended: None,
            stdout: String::new(),
            stderr: String::new(),
            reboot_requested: false,
        }
    }
}
