//! SSM Run Command: one `AWS-RunShellScript` on one instance, polled until it ends
//! (`../shared/spec/keys-and-shell.md` §1.1–§1.4, `aws-apis.md` §2.2).
//!
//! Run Command is eventually consistent: right after `SendCommand`, `GetCommandInvocation` may
//! answer `InvocationDoesNotExist`, which means "not yet" for a while ([`NOT_YET_WINDOW`]).

use std::time::{Duration, Instant};

use aws_sdk_ssm::types::CommandInvocationStatus;

use super::{Aws, AwsError, ErrorKind, clean, clean_lines, kind_of_code};

const SERVICE: &str = "SSM";
/// The document that runs a shell script as root (§1.1).
pub(crate) const RUN_SHELL_SCRIPT: &str = "AWS-RunShellScript";
/// `TimeoutSeconds`: the smallest the API takes (30); an agent that has not picked the command
/// up by then will not run it.
const DELIVERY_TIMEOUT_SECS: i32 = 30;
/// `executionTimeout` of the script (the agent replaces values below 5 with 3600, §1.4).
const EXECUTION_TIMEOUT_SECS: u32 = 30;
/// How long `InvocationDoesNotExist` counts as "not yet" after SendCommand (§1.2: a 0.5–1 s
/// sleep usually avoids it; 15 s covers a slow region without hiding a wrong id for long).
pub(crate) const NOT_YET_WINDOW: Duration = Duration::from_secs(15);
/// The longest a status may show `Delayed` (the agent is away) before we give up (§1.2).
const DELAYED_LIMIT: Duration = Duration::from_secs(30);
/// Longest script error output shown: a few lines of a shell's complaints.
const MAX_STDERR_CHARS: usize = 1000;

/// A command that finished with `Success`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandRun {
    /// The command id (for the user, and for `aws ssm get-command-invocation`).
    pub command_id: String,
    /// The script's standard output (first 24,000 characters), made printable line by line.
    pub stdout: String,
}

/// Why a Run Command did not succeed, in terms a user can act on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunCommandError {
    /// SSM cannot run commands there: the agent is offline or the instance is not managed.
    #[error(
        "SSM cannot run commands on {id}: its SSM agent is offline or not registered, or the instance is in another account or Region (InvalidInstanceId: {message}); `ec2-broker doctor` says why an agent is offline"
    )]
    NotManaged {
        /// Instance id.
        id: String,
        /// The service's text.
        message: String,
    },
    /// The identity may not send commands.
    #[error(
        "not allowed to run a command on {id}: the IAM identity needs ssm:SendCommand on the instance and on the document AWS-RunShellScript (this grant is root on the instance) ({message})"
    )]
    Denied {
        /// Instance id.
        id: String,
        /// The service's text.
        message: String,
    },
    /// The script ran and failed.
    #[error("Run Command {command_id} on {id} failed with status {code}: {stderr}")]
    Failed {
        /// Instance id.
        id: String,
        /// The command id.
        command_id: String,
        /// The script's exit status (`ResponseCode`).
        code: i32,
        /// The script's error output, control characters escaped, lines joined by `; `.
        stderr: String,
    },
    /// The command ended otherwise (`TimedOut`, `Cancelled`, `Undeliverable`...).
    #[error("Run Command {command_id} on {id} ended {status} ({details}): is its SSM agent online?")]
    Ended {
        /// Instance id.
        id: String,
        /// The command id.
        command_id: String,
        /// `Status`.
        status: String,
        /// `StatusDetails`.
        details: String,
    },
    /// No answer within the budget.
    #[error("Run Command {command_id} on {id} had not finished after {}s (last status {status})", waited.as_secs())]
    GaveUp {
        /// Instance id.
        id: String,
        /// The command id.
        command_id: String,
        /// The last status seen.
        status: String,
        /// How long we polled.
        waited: Duration,
    },
    /// Any other failure.
    #[error(transparent)]
    Api(#[from] AwsError),
}

/// The wait before poll number `n` (0-based): 0.5 s, 1 s, 2 s, 4 s, then every 5 s (§1.2: the
/// first poll within a second, the CLI waiter's 5 s at most).
pub(crate) fn poll_delay(n: u32) -> Duration {
    Duration::from_millis(match n {
        0 => 500,
        1 => 1000,
        2 => 2000,
        3 => 4000,
        _ => 5000,
    })
}

impl Aws {
    /// Runs `script` as root on `instance_id` with `AWS-RunShellScript` and waits for its end,
    /// at most `budget` (or until the command expires).
    pub(crate) async fn run_shell_script(
        &self,
        instance_id: &str,
        script: &str,
        comment: &str,
        budget: Duration,
    ) -> Result<CommandRun, RunCommandError> {
        let id = instance_id.to_string();
        let sent = Instant::now();
        let out = self
            .ssm()
            .send_command()
            .document_name(RUN_SHELL_SCRIPT)
            .instance_ids(instance_id)
            .parameters("commands", vec![script.to_string()])
            .parameters("executionTimeout", vec![EXECUTION_TIMEOUT_SECS.to_string()])
            .timeout_seconds(DELIVERY_TIMEOUT_SECS)
            .comment(comment)
            .send()
            .await
            .map_err(|err| match AwsError::from_sdk(SERVICE, "SendCommand", err) {
                AwsError::Service { code, message, .. } if code == "InvalidInstanceId" => {
                    RunCommandError::NotManaged { id: id.clone(), message }
                }
                AwsError::Service { code, message, .. } if kind_of_code(&code) == ErrorKind::Denied => {
                    RunCommandError::Denied { id: id.clone(), message }
                }
                other => RunCommandError::Api(other),
            })?;
        let command = out.command();
        let command_id = clean(command.and_then(|c| c.command_id()).unwrap_or_default(), 100);
        if command_id.is_empty() {
            return Err(RunCommandError::Api(AwsError::Transport {
                service: SERVICE,
                operation: "SendCommand",
                detail: "the answer lacks Command.CommandId".into(),
            }));
        }
        tracing::info!(instance = %id, command = %command_id, "Run Command sent");
        // The command's own end (`ExpiresAfter`, else TimeoutSeconds + executionTimeout from now)
        // bounds the wait, as does `budget`; 5 s more for the last status to show.
        let own = Duration::from_secs(DELIVERY_TIMEOUT_SECS as u64 + u64::from(EXECUTION_TIMEOUT_SECS));
        let expiry = command.and_then(|c| c.expires_after()).map_or(own, |at| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            // A clock far off AWS's must not make the wait zero or endless.
            Duration::from_secs(u64::try_from(at.secs()).unwrap_or(0).saturating_sub(now))
                .clamp(Duration::from_secs(5), own)
        });
        let deadline = sent + budget.min(expiry + Duration::from_secs(5));
        let mut status = "Pending".to_string();
        let mut delayed_since: Option<Instant> = None;
        for n in 0.. {
            let wait = poll_delay(n);
            if Instant::now() + wait > deadline {
                break;
            }
            tokio::time::sleep(wait).await;
            let answer =
                self.ssm().get_command_invocation().command_id(&command_id).instance_id(instance_id).send().await;
            let inv = match answer {
                Ok(inv) => inv,
                Err(err) => match AwsError::from_sdk(SERVICE, "GetCommandInvocation", err) {
                    e if e.code() == Some("InvocationDoesNotExist") && sent.elapsed() < NOT_YET_WINDOW => continue,
                    AwsError::Service { code, message, .. } if kind_of_code(&code) == ErrorKind::Denied => {
                        return Err(RunCommandError::Denied { id, message });
                    }
                    e => return Err(RunCommandError::Api(e)),
                },
            };
            status = inv.status().map(|s| s.as_str().to_string()).unwrap_or_default();
            let details = clean(inv.status_details().unwrap_or_default(), 100);
            tracing::debug!(command = %command_id, %status, %details, "Run Command status");
            match inv.status() {
                Some(CommandInvocationStatus::Success) => {
                    return Ok(CommandRun {
                        command_id,
                        stdout: clean_lines(inv.standard_output_content().unwrap_or_default(), 24_000),
                    });
                }
                Some(CommandInvocationStatus::Failed) => {
                    return Err(RunCommandError::Failed {
                        id,
                        command_id,
                        code: inv.response_code(),
                        stderr: stderr_text(inv.standard_error_content().unwrap_or_default()),
                    });
                }
                Some(CommandInvocationStatus::Delayed) => {
                    if delayed_since.get_or_insert_with(Instant::now).elapsed() > DELAYED_LIMIT {
                        return Err(RunCommandError::Ended { id, command_id, status, details });
                    }
                }
                Some(CommandInvocationStatus::Pending | CommandInvocationStatus::InProgress) => delayed_since = None,
                _ => return Err(RunCommandError::Ended { id, command_id, status, details }),
            }
        }
        Err(RunCommandError::GaveUp { id, command_id, status, waited: sent.elapsed() })
    }
}

/// A script's error output for a one-line message: trimmed lines joined by `; `, every control
/// character escaped.
fn stderr_text(raw: &str) -> String {
    let lines: Vec<&str> = raw.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    match lines.is_empty() {
        true => "(no error output)".into(),
        false => clean(&lines.join("; "), MAX_STDERR_CHARS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_back_off_to_five_seconds() {
        let delays: Vec<u64> = (0..7).map(|n| poll_delay(n).as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000, 5000]);
        // The not-yet window covers several polls.
        assert!((0..4).map(poll_delay).sum::<Duration>() < NOT_YET_WINDOW);
    }

    #[test]
    fn script_errors_become_one_printable_line() {
        assert_eq!(stderr_text("ec2-broker: no user x\n\n  second\n"), "ec2-broker: no user x; second");
        assert_eq!(stderr_text("bad \x1b[2Jterminal"), "bad \\x1b[2Jterminal");
        assert_eq!(stderr_text(""), "(no error output)");
    }
}
