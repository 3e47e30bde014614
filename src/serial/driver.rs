//! The console's I/O loop: keyboard → escapes → serial line, serial line → screen (and the
//! transcript), window-size changes, signals. The decisions live in [`crate::terminal::escape`] and
//! [`super::login_hint`]; this file only moves bytes.

use std::io::Write;
use std::time::{Duration, Instant};

use russh::ChannelMsg;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::client::Console;
use super::login_hint::{self, LoginHint};
use crate::pipe::stdio::StopSignals;
use crate::terminal::escape::{Action, EscapeChar, EscapeFilter};
use crate::terminal::resize::Resizes;

/// After stdin ends (scripted use), output still shows for this long before the console leaves.
pub(crate) const DRAIN_AFTER_STDIN_EOF: Duration = Duration::from_secs(1);

/// How the console ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The user typed `~.`.
    Left,
    /// The endpoint closed the session.
    Closed {
        /// Whether any output had arrived (a close before any is the spurious kind worth a retry).
        had_output: bool,
        /// How long the session lasted.
        after: Duration,
    },
    /// stdin ended.
    InputEnded,
    /// SIGHUP, SIGTERM or SIGINT.
    Signal,
}

/// What the loop writes besides the console's own output.
pub(crate) struct Sinks<'a> {
    /// Messages for the user (stderr: help, reminders).
    pub notes: &'a mut (dyn Write + Send),
    /// The transcript (`--log-session`), if any.
    pub transcript: Option<&'a mut (dyn Write + Send)>,
    /// The escape character (`--escape-char`).
    pub escape: EscapeChar,
}

/// Runs the console until it ends.
pub(crate) async fn run<R, W>(
    console: &mut Console,
    mut keys: R,
    mut screen: W,
    sinks: Sinks<'_>,
) -> anyhow::Result<End>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Sinks { notes, mut transcript, escape } = sinks;
    let started = Instant::now();
    let mut escapes = EscapeFilter::new(escape, true);
    let mut hint = LoginHint::default();
    let mut had_output = false;
    let mut stop = StopSignals::new()?;
    let mut resizes = Resizes::listen(crate::terminal::window_size())?;
    let mut buf = vec![0u8; 4096];
    let mut stdin_open = true;
    let drain = tokio::time::sleep(Duration::MAX);
    tokio::pin!(drain);

    loop {
        tokio::select! {
            read = keys.read(&mut buf), if stdin_open => {
                let n = read?;
                if n == 0 {
                    stdin_open = false;
                    drain.as_mut().reset(tokio::time::Instant::now() + DRAIN_AFTER_STDIN_EOF);
                    continue;
                }
                for action in escapes.feed(&buf[..n]) {
                    match action {
                        Action::Send(bytes) => console.channel.data_bytes(bytes).await?,
                        Action::Help => note(notes, &escapes.help("the console (the instance keeps running)")),
                        Action::Break => note(
                            notes,
                            "\r\n[ec2-broker] this client cannot send a BREAK (no SysRq): use plain ssh through \
                             `ec2-broker proxy --route serial` and type the escape and B there\r\n",
                        ),
                        Action::Leave => return Ok(End::Left),
                    }
                }
            }
            msg = console.channel.wait() => match msg {
                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                    had_output |= !data.is_empty();
                    screen.write_all(&data).await?;
                    screen.flush().await?;
                    if let Some(t) = transcript.as_mut() {
                        t.write_all(&data)?;
                    }
                    if hint.feed(&data) {
                        note(notes, login_hint::REMINDER);
                    }
                }
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => {
                    return Ok(End::Closed { had_output, after: started.elapsed() });
                }
                Some(other) => tracing::debug!(?other, "console channel message"),
            },
            (cols, rows) = resizes.next() => {
                tracing::debug!(cols, rows, "window size changed");
                console.channel.window_change(cols.into(), rows.into(), 0, 0).await?;
            }
            () = &mut drain => return Ok(End::InputEnded),
            () = stop.recv() => return Ok(End::Signal),
        }
    }
}

fn note(notes: &mut (dyn Write + Send), text: &str) {
    let _ = notes.write_all(text.as_bytes());
    let _ = notes.flush();
}
