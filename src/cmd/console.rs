//! `ec2-broker console HOST`: the instance's serial console in this terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::aws::Aws;
use crate::aws::serial::SerialPushError;
use crate::cli::ConsoleArgs;
use crate::pipe::stdio;
use crate::serial::client::{ConnectError, Connected, ConsoleKey, KEY_VALIDITY, Size};
use crate::serial::driver::{self, End, Sinks};
use crate::serial::{endpoints, preflight};
use crate::terminal::{self, RawMode};

/// A console that closes this soon without printing anything closed "for no reason": retry once.
const SPURIOUS_CLOSE: Duration = Duration::from_secs(5);
/// While another session holds the instance, retry the push this often.
const RETRY_PUSH_EVERY: Duration = Duration::from_secs(3);
/// Log in on the first connection only if it is younger than this.
const IDLE_BEFORE_LOGIN: Duration = Duration::from_secs(20);
/// Runs the console.
pub(crate) async fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    let (aws, instance) = super::aws_and_instance(&args.host, &args.aws).await?;
    let label = instance.label();
    let endpoint = endpoints::resolve(
        &aws.region,
        args.endpoint.serial_endpoint.as_deref(),
        args.endpoint.serial_fingerprint.as_deref(),
    )?;
    preflight::check(&aws, &instance, &label).await?;
    let timeout = Duration::from_secs(args.connect_timeout);
    eprintln!("[ec2-broker] connecting to the serial console of {label} through {endpoint}");
    // The endpoint's host key first: no session is opened on an endpoint that is not AWS's.
    let connected_at = Instant::now();
    let mut connected = Some(Connected::connect(&endpoint, timeout).await.context("opening the serial console")?);

    let key = ConsoleKey::generate()?;
    push_waiting(&aws, &instance.id, &key, Duration::from_secs(args.wait)).await?;
    let pushed = Instant::now();
    let user = crate::route::serial::user_for(&instance.id);
    let mut transcript = match &args.log_session {
        Some(path) => Some(open_transcript(path)?),
        None => None,
    };
    let (mut keys, mut screen) = stdio::local_halves();
    let mut stderr = std::io::stderr();

    for attempt in 1..=2 {
        let (cols, rows) = terminal::window_size().unwrap_or((80, 24));
        let size = Size { cols: cols.into(), rows: rows.into() };
        let retry_allowed = attempt == 1 && pushed.elapsed() < KEY_VALIDITY;
        // A connection that idled while the push waited for another session may have been dropped
        // by the endpoint (an unauthenticated connection has a grace time): make a new one then.
        let fresh = match connected.take() {
            Some(c) if connected_at.elapsed() < IDLE_BEFORE_LOGIN => c,
            _ => Connected::connect(&endpoint, timeout).await.context("opening the serial console")?,
        };
        let mut console = match fresh.login(&user, &key, &terminal::term(), size).await {
            Ok(c) => c,
            Err(ConnectError::Ssh(e)) if retry_allowed => {
                tracing::info!(error = %e, "the serial console closed the first connection: retrying once");
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("opening the serial console of {label}")),
        };
        let raw = RawMode::enter().context("putting the terminal in raw mode")?;
        let nl = if raw.is_some() { "\r\n" } else { "\n" };
        if attempt == 1 {
            let _ = write!(
                stderr,
                "[ec2-broker] connected: this is the instance's ttyS0. Press Enter if no prompt shows. \
                 {}{nl}",
                args.escape_char.hint()
            );
        }
        let transcript: Option<&mut (dyn Write + Send)> = match transcript.as_mut() {
            Some(t) => Some(t),
            None => None,
        };
        let end = driver::run(
            &mut console,
            &mut keys,
            &mut screen,
            Sinks { notes: &mut stderr, transcript, escape: args.escape_char },
        )
        .await;
        console.close().await;
        drop(raw);
        match end? {
            End::Closed { had_output: false, after } if after < SPURIOUS_CLOSE && retry_allowed => {
                tracing::info!(after_ms = after.as_millis() as u64, "the serial console closed at once: retrying once");
                continue;
            }
            End::Left => eprintln!("\n[ec2-broker] left the serial console of {label}"),
            End::Closed { .. } => eprintln!(
                "\n[ec2-broker] the serial console of {label} closed the connection (sessions last up to an hour, and maintenance ends them)"
            ),
            End::InputEnded | End::Signal => {}
        }
        return Ok(());
    }
    bail!("the serial console of {label} closed the connection twice right after it opened: wait 30 s and try again")
}

/// Pushes the key; while another session holds the instance, waits (with a countdown on stderr)
/// up to `bound`.
async fn push_waiting(aws: &Aws, id: &str, key: &ConsoleKey, bound: Duration) -> anyhow::Result<()> {
    let public = key.public_openssh();
    let started = Instant::now();
    let live = std::io::stderr().is_terminal();
    loop {
        let err = match aws.push_serial_key(id, &public).await {
            Ok(()) => {
                if started.elapsed() > RETRY_PUSH_EVERY {
                    eprintln!();
                }
                return Ok(());
            }
            Err(e @ SerialPushError::SessionLimit { .. }) => e,
            Err(e) => return Err(e).context("pushing a key for the serial console"),
        };
        let left = bound.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(err).context(format!(
                "gave up after waiting {} s: only one serial session per instance is allowed; close the other one (or wait for it to end) and try again",
                bound.as_secs()
            ));
        }
        let pause = RETRY_PUSH_EVERY.min(left);
        countdown(id, left, pause, live).await;
    }
}

/// Says that we wait, counting down each second when stderr is a terminal.
async fn countdown(id: &str, left: Duration, pause: Duration, live: bool) {
    let end = Instant::now() + pause;
    loop {
        let remaining = left.saturating_sub(pause) + end.saturating_duration_since(Instant::now());
        let text = format!(
            "[ec2-broker] {id} has a serial console session open (another user, or one that closed less than 30 s ago): waiting, giving up in {:>2} s",
            remaining.as_secs()
        );
        match live {
            true => eprint!("\r{text}"),
            false => eprintln!("{text}"),
        }
        let now = Instant::now();
        if now >= end || !live {
            tokio::time::sleep(end.saturating_duration_since(now)).await;
            return;
        }
        tokio::time::sleep(Duration::from_secs(1).min(end - now)).await;
    }
}

fn open_transcript(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening the session log {}", path.display()))
}
