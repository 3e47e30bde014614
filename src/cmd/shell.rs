//! `ec2-broker shell HOST [--user U] [-- COMMAND…]`: a Session Manager shell, or one command,
//! through the same data channel as the ssm route (`keys-and-shell.md` §5).
//!
//! Which document: no command ⇒ the account's default shell; a command with stdin a terminal ⇒
//! `AWS-StartInteractiveCommand` (on a pty); a command otherwise ⇒
//! `AWS-StartNonInteractiveCommand` with separate streams (stdout to our stdout, stderr to our
//! stderr, byte for byte, and the command's exit code as ours).

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::aws::ssm::ShellDocument;
use crate::cli::ShellArgs;
use crate::pipe::stdio;
use crate::route::ssm::{self, ShellFacts, ShellRequest, ShellRoute, SsmError, SsmOptions};
use crate::ssm::driver::{End, Input, Local, Outcome};
use crate::ssm::session_kind::SessionKind;
use crate::terminal::escape::EscapeChar;
use crate::terminal::keyboard::Keyboard;
use crate::terminal::resize::Resizes;
use crate::terminal::{self, RawMode};

/// Exit status when the session ended because we were told to stop (SIGINT, SIGTERM, SIGHUP),
/// as a shell reports a command killed by SIGINT.
const STOPPED_BY_SIGNAL: u8 = 130;
/// How long leaving (`~.`) waits for TerminateSession.
const LEAVE_BUDGET: Duration = Duration::from_secs(1);
/// Exit status when the agent reports a code outside 0..=255 (-1: killed by a signal).
const NO_EXIT_STATUS: u8 = 255;

/// Runs the session; `Ok` is the exit status.
pub(crate) async fn run(args: ShellArgs) -> anyhow::Result<u8> {
    let on_terminal = std::io::stdin().is_terminal();
    let command = command_line(&args.command);
    let document = match (&command, on_terminal) {
        (None, _) => ShellDocument::Shell,
        (Some(c), true) => ShellDocument::Interactive(c),
        (Some(c), false) => ShellDocument::NonInteractive(c),
    };
    let (aws, instance) = super::aws_and_instance(&args.host, &args.aws).await?;
    let label = instance.label();
    let opts = SsmOptions { resume_timeout: Duration::from_secs(args.ssm_resume_timeout) };
    let request = ShellRequest { document, user: args.user.as_deref() };
    let route = ssm::open_shell(&aws, &instance, request, opts)
        .await
        .with_context(|| format!("opening a Session Manager session on {label}"))?;
    report(&route.facts, &label, on_terminal);
    if on_terminal {
        eprintln!("[ec2-broker] {}", args.escape_char.hint());
    }
    let session_id = route.facts.session_id.clone();
    let outcome = match on_terminal {
        true => on_a_terminal(route, args.escape_char).await,
        false => piped(route).await.map(Some).map_err(anyhow::Error::from),
    }
    .with_context(|| format!("the Session Manager session on {label}"))?;
    match outcome {
        Some(outcome) => Ok(exit_status(&outcome)),
        None => {
            // Left with the escape: end the session now rather than at the idle timeout.
            match tokio::time::timeout(LEAVE_BUDGET, aws.terminate_session(&session_id)).await {
                Ok(Ok(())) => eprintln!("\n[ec2-broker] left the session on {label} (terminated)"),
                Ok(Err(e)) => eprintln!(
                    "\n[ec2-broker] left the session on {label}; terminating it failed ({e}): it ends at the idle timeout"
                ),
                Err(_) => eprintln!("\n[ec2-broker] left the session on {label}; it ends at the idle timeout"),
            }
            Ok(0)
        }
    }
}

/// On a terminal: raw mode (so ^C, ^Z and ^\ reach the remote side as keys) restored on every
/// way out, the window size at the start and on every `SIGWINCH`, and the escapes (`~.` leaves:
/// the session is terminated, `~?` lists them). `None`: the user left.
async fn on_a_terminal(route: ShellRoute, escape: EscapeChar) -> anyhow::Result<Option<Outcome>> {
    let (sizes, size_rx) = mpsc::channel(8);
    let initial = terminal::window_size();
    if let Some(size) = initial {
        let _ = sizes.try_send(size);
    }
    let (stdin, output) = stdio::local_halves();
    let (input, mut left) = Keyboard::new(stdin, escape, "the session (it is terminated)");
    let local = Local {
        input,
        output,
        errors: tokio::io::stderr(),
        notes: tokio::io::stderr(),
        sizes: Some(size_rx),
        mode: Input::Keyboard,
    };
    let mut resizes = Resizes::listen(initial).context("listening for window-size changes")?;
    let _raw = RawMode::enter().context("putting the terminal in raw mode")?;
    let run = route.run(local);
    tokio::pin!(run);
    loop {
        tokio::select! {
            outcome = &mut run => return Ok(Some(outcome?)),
            size = resizes.next() => {
                tracing::debug!(cols = size.0, rows = size.1, "window size changed");
                let _ = sizes.try_send(size);
            }
            Ok(()) = &mut left => return Ok(None),
        }
    }
}

/// Not a terminal: bytes as they are. A shell reads stdin as typed keys (EOF sends ^D); a
/// non-interactive command gets no stdin from the agent, so input is refused aloud.
async fn piped(route: ShellRoute) -> Result<Outcome, SsmError> {
    let mode = if route.facts.kind.reads_input() { Input::Keyboard } else { Input::Refused };
    let (input, output) = stdio::local_halves();
    let local = Local { input, output, errors: tokio::io::stderr(), notes: tokio::io::stderr(), sizes: None, mode };
    route.run(local).await
}

/// Says what the session is, on a terminal only (a piped command's stderr is the command's).
fn report(facts: &ShellFacts, label: &str, on_terminal: bool) {
    let encryption = match (&facts.kms_key_id, facts.encrypted) {
        (Some(key), true) => format!(", encrypted with the KMS key {key}"),
        (None, true) => ", KMS-encrypted".to_string(),
        (_, false) => String::new(),
    };
    let what = match facts.kind {
        SessionKind::Shell => "shell",
        _ => "command",
    };
    let line = format!(
        "[ec2-broker] Session Manager {what} {} on {label}, {}{encryption}",
        facts.session_id,
        facts.run_as.describe()
    );
    match on_terminal {
        true => eprintln!("{line}"),
        false => tracing::info!("{line}"),
    }
}

/// The exit status: the remote command's where the agent reported one, 0 for a clean close.
fn exit_status(outcome: &Outcome) -> u8 {
    if let End::ChannelClosed(text) = &outcome.end
        && !text.is_empty()
    {
        // Already made printable by the driver (it came from the service).
        eprintln!("[ec2-broker] {text}");
    }
    match (outcome.exit_code, &outcome.end) {
        (Some(code), _) => u8::try_from(code).unwrap_or_else(|_| {
            eprintln!("[ec2-broker] the remote command reported exit code {code} (killed by a signal?)");
            NO_EXIT_STATUS
        }),
        (None, End::Signal) => STOPPED_BY_SIGNAL,
        (None, End::ChannelClosed(_) | End::LocalClosed) => 0,
    }
}

/// The command after `--` as one line for the agent: `sh -c` runs it on a pty, and the
/// non-interactive plugin splits it shell-style (`shlex`), so each argument is quoted as a POSIX
/// shell would need. `None` for no command.
fn command_line(args: &[String]) -> Option<String> {
    if args.is_empty() {
        return None;
    }
    Some(args.iter().map(|a| crate::text::sh_quote(a)).collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssm::session::Stats;

    fn outcome(end: End, exit_code: Option<i32>) -> Outcome {
        Outcome { end, exit_code, stats: Stats::default(), reconnects: 0 }
    }

    #[test]
    fn exit_status_follows_the_remote_command() {
        assert_eq!(exit_status(&outcome(End::ChannelClosed(String::new()), Some(3))), 3);
        assert_eq!(exit_status(&outcome(End::ChannelClosed(String::new()), None)), 0, "a shell's clean close");
        assert_eq!(exit_status(&outcome(End::ChannelClosed(String::new()), Some(-1))), NO_EXIT_STATUS);
        assert_eq!(exit_status(&outcome(End::ChannelClosed(String::new()), Some(256))), NO_EXIT_STATUS);
        assert_eq!(exit_status(&outcome(End::Signal, None)), STOPPED_BY_SIGNAL);
        assert_eq!(exit_status(&outcome(End::LocalClosed, None)), 0, "a closed stdout is not a failure");
    }

    #[test]
    fn commands_are_quoted_for_sh_and_shlex() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(command_line(&[]), None);
        assert_eq!(command_line(&args(&["sh", "-c", "exit 3"])).unwrap(), "sh -c 'exit 3'");
        assert_eq!(command_line(&args(&["head", "-c", "8M", "/var/tmp/blob"])).unwrap(), "head -c 8M /var/tmp/blob");
        assert_eq!(command_line(&args(&["echo", "it's", ""])).unwrap(), r"echo 'it'\''s' ''");
        assert_eq!(command_line(&args(&["printf", "%s\n", "$HOME"])).unwrap(), "printf '%s\n' '$HOME'");
    }
}
