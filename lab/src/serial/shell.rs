//! The logged-in console: a real login shell for an OS user on a real pseudo-terminal, relayed
//! to the SSH channel both ways, and ended with every process of its session.
//!
//! The shell runs as `setsid -c runuser -l USER` on the pty's user side: `setsid` makes a new
//! session whose controlling terminal is the pty (so job control, Ctrl-C and hangups behave as on
//! a console), `runuser -l` starts the user's login shell as root can without a password. `TERM`
//! is `vt220`, what a serial getty sets, whatever the client's `pty-req` asked for.

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use russh::ChannelId;
use russh::server::Handle;
use rustix::fs::{major, minor};
use rustix::process::{Pid, Signal, kill_process};
use rustix::pty::{OpenptFlags, grantpt, ioctl_tiocgptpeer, openpt, unlockpt};
use rustix::termios::{Winsize, tcsetwinsize};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::{self, UnboundedReceiver};

use super::getty::Input;

/// `TERM` of a serial getty's login (agetty's default for serial lines).
const TERM: &str = "vt220";
/// After the shell exits, how long output still in the pty is waited for.
const DRAIN: Duration = Duration::from_millis(200);
/// The size a console has when the client sent no `pty-req`.
pub(super) const DEFAULT_SIZE: (u16, u16) = (80, 24);

/// How a shell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ShellEnd {
    /// The shell exited (logout): the getty shows its prompt again.
    Exited,
    /// The client is gone (or the channel broke): the shell was killed.
    ClientGone,
}

/// Where the shell's bytes go.
pub(super) struct Sink {
    /// The connection.
    pub(super) handle: Handle,
    /// The session channel.
    pub(super) channel: ChannelId,
}

/// Runs `user`'s login shell on a fresh pty of `size` (columns, rows), first writing `typed`
/// (what came after the password) to it, then relaying until the shell exits or the client goes.
pub(super) async fn run(
    user: &str,
    size: &mut (u16, u16),
    typed: VecDeque<u8>,
    input: &mut UnboundedReceiver<Input>,
    sink: &Sink,
) -> io::Result<ShellEnd> {
    let (master, slave) = open_pty(*size)?;
    let tty = rustix::fs::fstat(&slave)?.st_rdev;
    let tty_nr = u64::from(minor(tty) & 0xff) | u64::from(major(tty)) << 8 | u64::from(minor(tty) & !0xff) << 12;
    let mut command = Command::new("setsid");
    command
        .args(["-c", "runuser", "-l", user])
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("TERM", TERM)
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave))
        .kill_on_drop(true);
    let child = command.spawn();
    // The command holds the pty's user side until dropped; the master sees the shell's end
    // (EIO) only once no one else has it open.
    drop(command);
    let mut child = child?;
    let sid = child.id().and_then(|p| i32::try_from(p).ok()).and_then(Pid::from_raw);
    tracing::debug!(user, pid = ?sid, tty_nr, "serial console: login shell started");
    let end = relay(master, &mut child, size, typed, input, sink).await;
    kill_console(sid, tty_nr);
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    end
}

fn open_pty((cols, rows): (u16, u16)) -> io::Result<(OwnedFd, OwnedFd)> {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let slave = ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    tcsetwinsize(&master, winsize(cols, rows))?;
    Ok((master, slave))
}

fn winsize(cols: u16, rows: u16) -> Winsize {
    Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

/// Relays between the channel and the pty's controlling side. The pty is read and written in
/// blocking mode by tasks of their own (`tokio::fs::File` on copies of the descriptor), so a
/// full pty never stalls the other direction and no `unsafe` registration is needed.
async fn relay(
    master: OwnedFd,
    child: &mut Child,
    size: &mut (u16, u16),
    typed: VecDeque<u8>,
    input: &mut UnboundedReceiver<Input>,
    sink: &Sink,
) -> io::Result<ShellEnd> {
    let reader = File::from_std(std::fs::File::from(master.try_clone()?));
    let writer = File::from_std(std::fs::File::from(master.try_clone()?));
    let (out_tx, mut output) = mpsc::channel(8);
    tokio::spawn(read_pty(reader, out_tx));
    let (to_pty, in_rx) = mpsc::unbounded_channel();
    tokio::spawn(write_pty(writer, in_rx));
    if !typed.is_empty() {
        let _ = to_pty.send(Vec::from(typed));
    }
    loop {
        tokio::select! {
            _ = child.wait() => break,
            msg = input.recv() => match msg {
                None => return Ok(ShellEnd::ClientGone),
                Some(Input::Data(data)) => {
                    let _ = to_pty.send(data);
                }
                Some(Input::Resize(cols, rows)) => {
                    *size = (cols, rows);
                    tcsetwinsize(&master, winsize(cols, rows))?;
                }
            },
            chunk = output.recv() => match chunk {
                Some(chunk) => {
                    if sink.handle.data(sink.channel, chunk).await.is_err() {
                        return Ok(ShellEnd::ClientGone);
                    }
                }
                // EIO: nothing has the pty's user side open any more (the shell is gone).
                None => break,
            },
        }
    }
    // The shell exited: forward what it wrote last, until the pty reports its end or is quiet.
    while let Ok(Some(chunk)) = tokio::time::timeout(DRAIN, output.recv()).await {
        if sink.handle.data(sink.channel, chunk).await.is_err() {
            return Ok(ShellEnd::ClientGone);
        }
    }
    Ok(ShellEnd::Exited)
}

/// Reads the pty until it reports that its user side is closed (EIO) or fails.
async fn read_pty(mut pty: File, output: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = pty.read(&mut buf).await {
        if output.send(buf[..n].to_vec()).await.is_err() {
            return;
        }
    }
}

/// Writes what the client typed to the pty until the console ends.
async fn write_pty(mut pty: File, mut input: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(data) = input.recv().await {
        if pty.write_all(&data).await.and(pty.flush().await).is_err() {
            return;
        }
    }
}

/// Kills every process of the console: the session `setsid` made (the shell may have moved to
/// its own process group for job control) and anything else whose controlling terminal is the
/// pty (`tty_nr` as `/proc/<pid>/stat` encodes it).
pub(crate) fn kill_console(sid: Option<Pid>, tty_nr: u64) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()).and_then(Pid::from_raw) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces and parentheses): state, ppid,
        // pgrp, session, tty_nr, … (proc(5)).
        let fields: Vec<&str> = stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        let session = fields.get(3).and_then(|s| s.parse::<i32>().ok());
        let tty = fields.get(4).and_then(|s| s.parse::<u64>().ok());
        if (sid.is_some_and(|s| Some(s.as_raw_nonzero().get()) == session)) || (tty_nr != 0 && tty == Some(tty_nr)) {
            let _ = kill_process(pid, Signal::KILL);
        }
    }
}
