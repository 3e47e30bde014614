//! Asking for an MFA code on `/dev/tty`: never stdin or stdout, which are ssh's byte stream when
//! the broker is a ProxyCommand. Echo is off while the code is typed and comes back on every way
//! out (a code, an error, ^C or a hang-up).
//!
//! [`converse`] is the dialogue over any reader and writer; [`ask`] runs it on the terminal.
//! [`PromptLock`] makes brokers started at once (`scp a b host:`, a `-J` chain, parallel `ssh`
//! in a script) ask one at a time: the others wait, then find the credentials the first cached.

use std::fmt;
use std::fs::{File, TryLockError};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::termios::{self, LocalModes, OptionalActions, Termios};
use tokio::signal::unix::{SignalKind, signal};

use super::MfaError;
use crate::cache::private_file::{DirPolicy, PrivateDir};

/// The controlling terminal, whatever stdin and stdout are.
pub(crate) const TTY: &str = "/dev/tty";
/// Lines read before giving up on a malformed code.
pub(crate) const TRIES: u32 = 3;
/// How long a broker waits for another one's prompt before giving up: [`TRIES`] codes, each read
/// off an authenticator that shows a new one every 30 s, fit in 3 minutes with room to spare; a
/// prompt still open after that is one nobody is answering.
pub(crate) const PROMPT_WAIT: Duration = Duration::from_secs(180);
/// How often a waiting broker tries the lock (`flock` has no timeout of its own).
const LOCK_POLL: Duration = Duration::from_millis(100);

/// The right to ask for an MFA code: an exclusive `flock` on a lock file in the credentials cache
/// directory, held from before the cache is read again until after it is written.
#[derive(Debug)]
pub(crate) struct PromptLock {
    _file: File,
}

impl PromptLock {
    /// Takes the lock file `name` in `dir` (created safely, see [`PrivateDir::open_lock`]),
    /// waiting up to `wait` while another broker asks for the code of `serial`.
    pub(crate) async fn acquire(dir: &Path, name: &str, serial: &str, wait: Duration) -> Result<PromptLock, MfaError> {
        let private = PrivateDir::create(dir, DirPolicy::NoOtherWriters).map_err(MfaError::Cache)?;
        let file = private.open_lock(name).map_err(MfaError::Cache)?;
        let deadline = Instant::now() + wait;
        let mut said = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(PromptLock { _file: file }),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(MfaError::Terminal(e)),
            }
            if Instant::now() >= deadline {
                return Err(MfaError::PromptBusy { serial: serial.to_string(), waited: wait.as_secs() });
            }
            if !said {
                tracing::info!(
                    "waiting up to {} s for another ec2-broker that is asking for the MFA code for {serial} (lock {})",
                    wait.as_secs(),
                    private.join(name).display()
                );
                said = true;
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
    }
}

/// A code as typed: exactly 6 ASCII digits. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct MfaCode(String);

impl MfaCode {
    /// A code from a typed line (surrounding white space ignored).
    pub(crate) fn parse(line: &str) -> Option<MfaCode> {
        let code = line.trim();
        (code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())).then(|| MfaCode(code.to_string()))
    }

    /// The digits, for STS's `TokenCode`.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MfaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MfaCode(<redacted>)")
    }
}

/// Asks for the code of `serial` on `/dev/tty`; `profile` names what to log in to when there is no
/// terminal ([`MfaError::NoTerminal`]).
pub(crate) async fn ask(profile: &str, serial: &str) -> Result<MfaCode, MfaError> {
    ask_on(Path::new(TTY), profile, serial).await
}

/// [`ask`] on the terminal device `tty`.
pub(crate) async fn ask_on(tty: &Path, profile: &str, serial: &str) -> Result<MfaCode, MfaError> {
    let terminal = File::options().read(true).write(true).open(tty).map_err(|e| {
        tracing::debug!(tty = %tty.display(), error = %e, "no terminal for the MFA prompt");
        MfaError::NoTerminal { profile: profile.to_string() }
    })?;
    let (mut hup, mut int, mut term) =
        (signals(SignalKind::hangup())?, signals(SignalKind::interrupt())?, signals(SignalKind::terminate())?);
    let dialogue = terminal.try_clone().map_err(MfaError::Terminal)?;
    let echo_off = EchoOff::enter(&terminal).map_err(MfaError::Terminal)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let serial_owned = serial.to_string();
    // A plain thread, not spawn_blocking: after a signal the read stays parked, and the runtime
    // must not wait for it on the way out.
    std::thread::spawn(move || {
        let mut input = BufReader::new(&dialogue);
        let result = converse(&mut input, &mut &dialogue, &serial_owned);
        let _ = tx.send(result);
    });
    let result = tokio::select! {
        r = rx => r.unwrap_or(Err(MfaError::Interrupted)),
        _ = hup.recv() => Err(MfaError::Interrupted),
        _ = int.recv() => Err(MfaError::Interrupted),
        _ = term.recv() => Err(MfaError::Interrupted),
    };
    drop(echo_off);
    result
}

/// The dialogue: prints `MFA code for SERIAL: `, reads a line, and asks again (up to [`TRIES`]
/// lines) until it is 6 digits. The typed line is not echoed, so each answer ends the output line.
pub(crate) fn converse(input: &mut impl BufRead, output: &mut impl Write, serial: &str) -> Result<MfaCode, MfaError> {
    for _ in 0..TRIES {
        write!(output, "MFA code for {serial}: ").and_then(|()| output.flush()).map_err(MfaError::Terminal)?;
        let mut line = String::new();
        let n = input.read_line(&mut line).map_err(MfaError::Terminal)?;
        output.write_all(b"\n").map_err(MfaError::Terminal)?;
        if n == 0 {
            return Err(MfaError::NoCode { serial: serial.to_string() });
        }
        if let Some(code) = MfaCode::parse(&line) {
            return Ok(code);
        }
        output.write_all(b"an MFA code is 6 digits\n").map_err(MfaError::Terminal)?;
    }
    Err(MfaError::Malformed { serial: serial.to_string(), tries: TRIES })
}

fn signals(kind: SignalKind) -> Result<tokio::signal::unix::Signal, MfaError> {
    signal(kind).map_err(MfaError::Terminal)
}

/// Echo off on a terminal while alive; the saved modes come back when dropped.
struct EchoOff<'a> {
    terminal: &'a File,
    saved: Termios,
}

impl<'a> EchoOff<'a> {
    fn enter(terminal: &'a File) -> io::Result<EchoOff<'a>> {
        let saved = termios::tcgetattr(terminal)?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        // Flush: what was typed before the prompt (and echoed) is not taken for the code.
        termios::tcsetattr(terminal, OptionalActions::Flush, &quiet)?;
        Ok(EchoOff { terminal, saved })
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        if let Err(e) = termios::tcsetattr(self.terminal, OptionalActions::Now, &self.saved) {
            tracing::warn!(error = %e, "could not turn the terminal's echo back on: run `stty sane`");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";

    fn talk(typed: &str) -> (Result<MfaCode, MfaError>, String) {
        let mut out = Vec::new();
        let r = converse(&mut Cursor::new(typed.as_bytes()), &mut out, SERIAL);
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn codes() {
        for (line, ok) in [
            ("123456", true),
            (" 123456 \n", true),
            ("000000\r\n", true),
            ("12345", false),
            ("1234567", false),
            ("12345a", false),
            ("123 456", false),
            ("١٢٣٤٥٦", false),
            ("", false),
        ] {
            assert_eq!(MfaCode::parse(line).is_some(), ok, "{line:?}");
        }
        assert_eq!(format!("{:?}", MfaCode::parse("123456").unwrap()), "MfaCode(<redacted>)");
    }

    #[test]
    fn first_answer() {
        let (r, out) = talk("123456\n");
        assert_eq!(r.unwrap().as_str(), "123456");
        assert_eq!(out, format!("MFA code for {SERIAL}: \n"));
    }

    #[test]
    fn asks_again_after_a_malformed_line() {
        let (r, out) = talk("12\nabcdef\n654321\n");
        assert_eq!(r.unwrap().as_str(), "654321");
        assert_eq!(out.matches("MFA code for").count(), 3, "{out}");
        assert_eq!(out.matches("an MFA code is 6 digits").count(), 2, "{out}");
    }

    #[test]
    fn gives_up_after_three_malformed_lines() {
        let (r, _) = talk("1\n2\n3\n123456\n");
        let e = r.unwrap_err();
        assert!(matches!(e, MfaError::Malformed { tries: 3, .. }), "{e:?}");
        assert!(e.to_string().contains("6 digits"), "{e}");
    }

    #[test]
    fn end_of_file_is_no_code() {
        let (r, _) = talk("");
        assert!(matches!(r, Err(MfaError::NoCode { .. })));
    }

    /// See: issue 14 (§5). Without the lock, two brokers both found no cached credentials and
    /// both asked.
    #[tokio::test]
    async fn issue_14_one_broker_at_a_time_holds_the_prompt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("credentials");
        let first = PromptLock::acquire(&dir, "k.lock", SERIAL, PROMPT_WAIT).await.unwrap();
        let e = PromptLock::acquire(&dir, "k.lock", SERIAL, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "another ec2-broker has been asking for the MFA code for {SERIAL} for 1 s without an answer: answer \
                 it there, or run `ec2-broker login` in a terminal first"
            )
        );
        // The second gets it as soon as the first lets go.
        let second = tokio::spawn({
            let dir = dir.clone();
            async move { PromptLock::acquire(&dir, "k.lock", SERIAL, PROMPT_WAIT).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!second.is_finished(), "the second waits while the first holds the lock");
        drop(first);
        let waited = tokio::time::timeout(Duration::from_secs(10), second).await;
        assert!(waited.expect("the second got the lock").unwrap().is_ok());
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.join("k.lock")).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn no_terminal_says_to_log_in() {
        let missing = Path::new("/nonexistent/tty");
        let e = ask_on(missing, "admin", SERIAL).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "profile admin needs an MFA code and there is no terminal to ask on: run `ec2-broker login --profile \
             admin` in a terminal first (the code is then cached until the role's credentials expire)"
        );
    }
}
