//! The shell plugin of the agent double: what runs for `Standard_Stream`, `InteractiveCommands`
//! and `NonInteractiveCommands` sessions, read from the real agent's
//! `agent/session/shell/shell.go` and `shell_unix.go` (aws/amazon-ssm-agent):
//!
//! - `StartCommandExecutor`: `sh` (Standard_Stream), `sh -c <command>` (InteractiveCommands), or
//!   the command split shell-style (`shlex.Split`) and exec'd without a shell
//!   (NonInteractiveCommands); env plus `TERM=xterm-256color`, `LANG=C.UTF-8` when unset,
//!   `HOME=/home/<user>`; as `ssm-user` (created if missing) or, with Run As, the default user,
//!   which must exist (`failed to start pty since RunAs user <u> does not exist`, empty:
//!   `please set the RunAs default user`; root fails `getUserCredentials`: `invalid uid and gid`).
//!   The lab runs `setsid -c setpriv --reuid --regid --init-groups -- …`, so the process is the
//!   session leader with the pty as its controlling terminal, and signals reach it directly.
//! - pty sessions (`executeCommandsWithPty`, `writePump`): `shellProfile.linux` plus a newline is
//!   written to the pty first (Standard_Stream only, `runShellProfile`); the pty is read ≤ 1024
//!   bytes at a time and sent as `Output` split on UTF-8 boundaries (`processStdoutData`: an
//!   incomplete sequence in the last 3 bytes waits for the next read), 1 ms pause after each read.
//!   When the pty read fails (the process is gone) the session ends — **no `ExitCode`**, for
//!   InteractiveCommands too.
//! - NonInteractiveCommands (`executeCommandsWithExec`): stdin is never connected (client
//!   `Output` is only scanned for `0x03` ⇒ SIGINT and `0x1c` ⇒ SIGQUIT, `InputStreamMessageHandler`;
//!   there is no EOF to send). `separateOutputStream` true
//!   (`processCommandsWithOutputStreamSeparate`): stdout as `Output`, stderr as `StdErr` while
//!   the command runs, each line led by its prefix, then `ExitCode` `EXIT_CODE: <n>` (`-1` for a
//!   signal, Go's `ExitCode()`). False (`processCommandsWithExec`): stdout and stderr go to one
//!   file, sent as `Output` only **after** the command exited, and no `ExitCode` at all.
//!   A command that cannot start: its error as `StdErr`.

use std::io;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{major, minor};
use rustix::process::{Pid, Signal, kill_process};
use rustix::pty::{OpenptFlags, grantpt, ioctl_tiocgptpeer, openpt, unlockpt};
use rustix::termios::{Winsize, tcsetwinsize};
use tokio::fs::File;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;

use super::agent::{AgentEvent, Sender};
use super::frame::payload_type;

mod text;

pub(crate) use text::{split_words, utf8_ready};

/// `StreamDataPayloadSize`: the most bytes per `Output` message (§5).
const STREAM_CHUNK: usize = 1024;
/// The pause after every read from the pty (`writePump`'s `time.Sleep(time.Millisecond)`).
const PACING_SLEEP: Duration = Duration::from_millis(1);
/// The OS user sessions run as without Run As (`appconfig.DefaultRunAsUserName`).
pub(crate) const DEFAULT_USER: &str = "ssm-user";
/// `PATH` of the agent's environment (systemd's default for services).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Working directory of session processes: the agent's own (an inference, keys-and-shell §5).
const CWD: &str = "/usr/bin";
/// `separateOutputStreamPrefixRegex`: `^[0-9a-zA-Z\r\n_:-]{0,30}$`.
const MAX_PREFIX: usize = 30;

/// The session type of a shell-plugin session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShellKind {
    /// `Standard_Stream`: `sh` on a pty.
    Standard,
    /// `InteractiveCommands`: `sh -c <command>` on a pty.
    Interactive,
    /// `NonInteractiveCommands`: the command exec'd without a shell, no pty.
    NonInteractive,
}

impl ShellKind {
    /// The `SessionType` string of the handshake.
    pub(crate) fn session_type(self) -> &'static str {
        match self {
            ShellKind::Standard => "Standard_Stream",
            ShellKind::Interactive => "InteractiveCommands",
            ShellKind::NonInteractive => "NonInteractiveCommands",
        }
    }
}

/// What the shell plugin runs and how.
#[derive(Debug, Clone)]
pub(crate) struct ShellConfig {
    /// The session type.
    pub(crate) kind: ShellKind,
    /// The document's `command` (empty for Standard_Stream).
    pub(crate) command: String,
    /// `Some(user)` with Run As on (`runAsDefaultUser`, maybe empty), `None` for `ssm-user`.
    pub(crate) run_as: Option<String>,
    /// `shellProfile.linux`.
    pub(crate) shell_profile: String,
    /// `separateOutputStream` (NonInteractiveCommands).
    pub(crate) separate_output: bool,
    /// `stdoutSeparatorPrefix`.
    pub(crate) stdout_prefix: String,
    /// `stderrSeparatorPrefix`.
    pub(crate) stderr_prefix: String,
}

/// A running session process.
pub(crate) struct Process {
    pid: Option<Pid>,
    tty_nr: u64,
    pty: Option<(OwnedFd, mpsc::UnboundedSender<Vec<u8>>)>,
}

impl Process {
    /// Writes client input to the pty (nothing for NonInteractiveCommands).
    pub(crate) fn write(&self, data: Vec<u8>) {
        if let Some((_, tx)) = &self.pty {
            let _ = tx.send(data);
        }
    }

    /// `Size`: TIOCSWINSZ on the pty (the kernel sends SIGWINCH to its foreground group).
    pub(crate) fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        match &self.pty {
            Some((master, _)) => Ok(tcsetwinsize(master, winsize(cols, rows))?),
            None => Ok(()),
        }
    }

    /// NonInteractiveCommands: the first control byte of `data` becomes a signal.
    pub(crate) fn signal_from(&self, data: &[u8]) {
        let signal = data.iter().find_map(|b| match b {
            0x03 => Some(Signal::INT),
            0x1c => Some(Signal::QUIT),
            _ => None,
        });
        if let (Some(signal), Some(pid)) = (signal, self.pid) {
            let _ = kill_process(pid, signal);
        }
    }

    /// Ends the process and everything on its pty.
    pub(crate) fn kill(&mut self) {
        crate::serial::shell::kill_console(self.pid, self.tty_nr);
        self.pty = None;
    }
}

/// Checks the shell properties and starts the process; its output goes out through `sender`,
/// and `events` hears `ProcessEnded` once everything was sent. `Err` is the agent's error text.
pub(crate) async fn start(
    config: &ShellConfig,
    sender: Arc<Sender>,
    pacing: bool,
    events: mpsc::UnboundedSender<AgentEvent>,
) -> Result<Process, String> {
    if config.kind != ShellKind::Standard && config.command.trim().is_empty() {
        return Err(format!("Commands cannot be empty for session type {}", config.kind.session_type()));
    }
    if config.kind == ShellKind::NonInteractive && config.separate_output {
        for (name, prefix) in
            [("stdoutSeparatorPrefix", &config.stdout_prefix), ("stderrSeparatorPrefix", &config.stderr_prefix)]
        {
            let ok = prefix.len() <= MAX_PREFIX
                && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"\r\n_:-".contains(&b));
            if !ok {
                return Err(format!("invalid {name} {prefix}"));
            }
        }
    }
    let user = session_user(config).await.map_err(|e| format!("Unable to start command: {e}\n"))?;
    let (uid, gid) = ids(&user).await.map_err(|e| format!("Unable to start command: {e}\n"))?;
    let argv: Vec<String> = match config.kind {
        ShellKind::Standard => vec!["sh".into()],
        ShellKind::Interactive => vec!["sh".into(), "-c".into(), config.command.clone()],
        ShellKind::NonInteractive => split_words(&config.command)
            .map_err(|e| format!("Unable to start command: Failed to parse commands input: {e}\n\n"))?,
    };
    let mut command = Command::new("setsid");
    // `-c`: the pty becomes the controlling terminal (a command without a pty has none).
    if config.kind != ShellKind::NonInteractive {
        command.arg("-c");
    }
    command
        .arg("setpriv")
        .args([format!("--reuid={uid}"), format!("--regid={gid}"), "--init-groups".into(), "--".into()])
        .args(&argv)
        .env_clear()
        .env("PATH", PATH)
        .env("TERM", "xterm-256color")
        .env("LANG", "C.UTF-8")
        .env("HOME", format!("/home/{user}"))
        .current_dir(CWD)
        .kill_on_drop(false);
    match config.kind {
        ShellKind::NonInteractive => start_exec(config, command, &argv[0], sender, events).await,
        _ => start_pty(config, command, sender, pacing, events),
    }
}

/// Run As: the configured user (which must exist), else `ssm-user`, made when missing.
async fn session_user(config: &ShellConfig) -> Result<String, String> {
    match &config.run_as {
        Some(user) if user.trim().is_empty() => Err("please set the RunAs default user".into()),
        Some(user) => match ids(user).await {
            Ok(_) => Ok(user.clone()),
            Err(_) => Err(format!("failed to start pty since RunAs user {user} does not exist")),
        },
        None => {
            let users = vec![DEFAULT_USER.to_string()];
            let made = tokio::task::spawn_blocking(move || crate::sshd::ensure_users(&users)).await;
            made.map_err(|e| e.to_string())?.map_err(|e| format!("{e:#}"))?;
            Ok(DEFAULT_USER.into())
        }
    }
}

/// `id -u` and `id -g` of a user; root (uid or gid 0) is refused as `getUserCredentials` does.
async fn ids(user: &str) -> Result<(u32, u32), String> {
    let id = |flag: &'static str| {
        let user = user.to_string();
        async move {
            let out = Command::new("id").arg(flag).arg(&user).output().await.map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            match out.status.success() {
                true => text.parse::<u32>().map_err(|e| format!("{user} not found: {e}")),
                false => Err(format!("exit status {}", out.status.code().unwrap_or(1))),
            }
        }
    };
    let (uid, gid) = (id("-u").await?, id("-g").await?);
    if uid == 0 || gid == 0 {
        return Err("invalid uid and gid".into());
    }
    Ok((uid, gid))
}

fn winsize(cols: u16, rows: u16) -> Winsize {
    Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

fn start_pty(
    config: &ShellConfig,
    mut command: Command,
    sender: Arc<Sender>,
    pacing: bool,
    events: mpsc::UnboundedSender<AgentEvent>,
) -> Result<Process, String> {
    let failed = |e: io::Error| format!("Unable to start command: Failed to start pty: {e}\n\n");
    let master =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).map_err(|e| failed(e.into()))?;
    grantpt(&master).map_err(|e| failed(e.into()))?;
    unlockpt(&master).map_err(|e| failed(e.into()))?;
    let slave = ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .map_err(|e| failed(e.into()))?;
    // The pty's size until the client's first `Size` (creack/pty starts at 0×0; 80×24 is kinder).
    let _ = tcsetwinsize(&master, winsize(80, 24));
    let tty = rustix::fs::fstat(&slave).map_err(|e| failed(e.into()))?.st_rdev;
    let tty_nr = u64::from(minor(tty) & 0xff) | u64::from(major(tty)) << 8 | u64::from(minor(tty) & !0xff) << 12;
    let stdio = || slave.try_clone().map(Stdio::from);
    command.stdin(stdio().map_err(failed)?).stdout(stdio().map_err(failed)?).stderr(stdio().map_err(failed)?);
    let child = command.spawn().map_err(failed)?;
    // The command holds the pty's user side until dropped; the reader sees EIO only after.
    drop(command);
    drop(slave);
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).and_then(Pid::from_raw);
    let dup = || master.try_clone().map(|fd| File::from_std(std::fs::File::from(fd))).map_err(failed);
    let (reader, mut writer) = (dup()?, dup()?);
    let (to_pty, mut typed) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(data) = typed.recv().await {
            if writer.write_all(&data).await.and(writer.flush().await).is_err() {
                return;
            }
        }
    });
    if config.kind == ShellKind::Standard && !config.shell_profile.trim().is_empty() {
        let _ = to_pty.send(format!("{}\n", config.shell_profile).into_bytes());
    }
    tokio::spawn(async move {
        let mut child = child;
        pump(reader, payload_type::OUTPUT, "", &sender, pacing).await;
        let _ = child.wait().await;
        let _ = events.send(AgentEvent::ProcessEnded);
    });
    Ok(Process { pid, tty_nr, pty: Some((master, to_pty)) })
}

async fn start_exec(
    config: &ShellConfig,
    mut command: Command,
    program: &str,
    sender: Arc<Sender>,
    events: mpsc::UnboundedSender<AgentEvent>,
) -> Result<Process, String> {
    let not_found = || match program.contains('/') {
        true => format!("fork/exec {program}: no such file or directory"),
        false => format!("exec: \"{program}\": executable file not found in $PATH"),
    };
    let found = match program.contains('/') {
        true => std::path::Path::new(program).is_file(),
        false => PATH.split(':').any(|dir| std::path::Path::new(dir).join(program).is_file()),
    };
    command.stdin(Stdio::null());
    let mut merged_reader: Option<File> = None;
    let spawned = match (found, config.separate_output) {
        (false, _) => Err(not_found()),
        (true, true) => command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| e.to_string()),
        (true, false) => {
            let (read, write) = io::pipe().map_err(|e| e.to_string())?;
            let write2 = write.try_clone().map_err(|e| e.to_string())?;
            merged_reader = Some(File::from_std(std::fs::File::from(OwnedFd::from(read))));
            command.stdout(write).stderr(write2).spawn().map_err(|e| e.to_string())
        }
    };
    // The command holds the pipes' write ends until dropped; the readers see EOF only after.
    drop(command);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            if config.separate_output {
                sender.send_stream(payload_type::EXIT_CODE, b"EXIT_CODE: 1".to_vec());
            }
            sender.send_stream(payload_type::STDERR, e.clone().into_bytes());
            let _ = events.send(AgentEvent::ProcessEnded);
            return Err(format!("Error occurred starting the command: {e}\n"));
        }
    };
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).and_then(Pid::from_raw);
    if config.separate_output {
        let (out, err) = (config.stdout_prefix.clone(), config.stderr_prefix.clone());
        tokio::spawn(separate(child, out, err, sender, events));
    } else {
        child.stdout = None;
        tokio::spawn(merged(child, merged_reader.take(), sender, events));
    }
    Ok(Process { pid, tty_nr: 0, pty: None })
}

/// Separate streams: both pipes pumped as they come, then `ExitCode`.
async fn separate(
    mut child: tokio::process::Child,
    out_prefix: String,
    err_prefix: String,
    sender: Arc<Sender>,
    events: mpsc::UnboundedSender<AgentEvent>,
) {
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let out = async {
        if let Some(s) = stdout {
            pump(s, payload_type::OUTPUT, &out_prefix, &sender, false).await;
        }
    };
    let err = async {
        if let Some(s) = stderr {
            pump(s, payload_type::STDERR, &err_prefix, &sender, false).await;
        }
    };
    tokio::join!(out, err);
    let code = exit_code(child.wait().await);
    sender.send_stream(payload_type::EXIT_CODE, format!("EXIT_CODE: {code}").into_bytes());
    let _ = events.send(AgentEvent::ProcessEnded);
}

/// One output file: everything collected while the command runs, sent once it exited.
async fn merged(
    mut child: tokio::process::Child,
    reader: Option<File>,
    sender: Arc<Sender>,
    events: mpsc::UnboundedSender<AgentEvent>,
) {
    let mut all = Vec::new();
    if let Some(mut r) = reader {
        let _ = r.read_to_end(&mut all).await;
    }
    let _ = child.wait().await;
    pump(&all[..], payload_type::OUTPUT, "", &sender, true).await;
    let _ = events.send(AgentEvent::ProcessEnded);
}

/// Go's `ExitError.ExitCode()`: the status, or -1 when a signal ended the process.
fn exit_code(status: io::Result<std::process::ExitStatus>) -> i32 {
    status.ok().and_then(|s| s.code()).unwrap_or(-1)
}

/// Reads `source` until EOF or error and sends what it reads as `payload_type` messages of at
/// most 1024 bytes split on UTF-8 boundaries, each line led by `prefix`; pauses while the
/// session is paused (§7.3).
async fn pump<R: AsyncRead + Unpin>(mut source: R, payload_type: u32, prefix: &str, sender: &Sender, pacing: bool) {
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; STREAM_CHUNK];
    let mut need_prefix = true;
    loop {
        sender.wait_unpaused().await;
        sender.wait_client_room().await;
        let room = STREAM_CHUNK - prefix.len() - carry.len();
        let n = match source.read(&mut buf[..room]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut pending = std::mem::take(&mut carry);
        if need_prefix && !prefix.is_empty() {
            pending.splice(0..0, prefix.bytes());
        }
        need_prefix = buf[n - 1] == b'\n';
        pending.extend_from_slice(&buf[..n]);
        let ready = utf8_ready(&pending);
        carry = pending.split_off(ready);
        if !pending.is_empty() {
            sender.send_stream(payload_type, pending);
        }
        if pacing {
            tokio::time::sleep(PACING_SLEEP).await;
        }
    }
    if !carry.is_empty() {
        sender.send_stream(payload_type, carry);
    }
}
