//! Running the user's `ssh`: `ssh [-F CONFIG] [-l USER] [-i KEY] -T -- HOST 'sh -c …'`, and
//! turning its exit into a [`CopyError`].

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use tokio::process::Command;

use super::CopyError;
use super::remote::sh;

/// ssh's exit status when ssh itself failed (no route, refused key, broken connection).
const SSH_FAILED: i32 = 255;

/// How ssh is run: the program and the scp-like options passed on.
#[derive(Debug, Clone)]
pub(crate) struct Ssh {
    /// The ssh program.
    pub(crate) program: PathBuf,
    /// `-F`.
    pub(crate) config: Option<PathBuf>,
    /// `-l`.
    pub(crate) login: Option<String>,
    /// `-i`.
    pub(crate) identity: Option<PathBuf>,
}

impl Ssh {
    /// The command running `script` under `sh -c` on `host`; stdin, stdout and stderr are the
    /// caller's to set.
    pub(crate) fn command(&self, host: &str, script: &str) -> Command {
        let mut cmd = Command::new(&self.program);
        if let Some(config) = &self.config {
            cmd.arg("-F").arg(config);
        }
        if let Some(login) = &self.login {
            cmd.arg("-l").arg(login);
        }
        if let Some(identity) = &self.identity {
            cmd.arg("-i").arg(identity);
        }
        // No terminal, no forwarding: a stream carries the range's bytes and nothing else.
        let remote = sh(script);
        cmd.args(["-T", "-x", "-a", "-o", "ClearAllForwardings=yes", "--", host, remote.as_str()]);
        cmd.kill_on_drop(true);
        cmd
    }

    /// Runs `script` on `host` and returns its stdout; a failure becomes an error with stderr.
    pub(crate) async fn output(&self, host: &str, script: &str) -> Result<String, CopyError> {
        let mut cmd = self.command(host, script);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = cmd.output().await.map_err(|source| self.spawn_error(source))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        check(host, out.status, &stderr)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The error for an ssh that could not be started.
    pub(crate) fn spawn_error(&self, source: std::io::Error) -> CopyError {
        CopyError::Spawn { program: self.program.clone(), source }
    }
}

/// `Ok` for a zero exit; otherwise the error naming ssh (255) or the remote command, with the
/// last lines of `stderr` made printable.
pub(crate) fn check(host: &str, status: ExitStatus, stderr: &str) -> Result<(), CopyError> {
    if status.success() {
        return Ok(());
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join("; ");
    let detail = crate::text::clip(&crate::text::printable(&tail), 400).into_owned();
    match status.code() {
        Some(SSH_FAILED) | None => Err(CopyError::Ssh {
            host: host.into(),
            detail: if detail.is_empty() { "ssh exited with status 255 or a signal".into() } else { detail },
        }),
        Some(code) => Err(CopyError::Remote {
            host: host.into(),
            code,
            detail: if detail.is_empty() { "the command failed".into() } else { detail },
        }),
    }
}
