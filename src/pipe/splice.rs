//! Piping for the direct route on Linux: ssh's pipes ⇄ the TCP socket, one thread per direction.
//!
//! Measured on the 2-core lab machine (scp 256 MiB upload): an async read/write copy cost the
//! broker about a quarter of a core, mostly copying 100 KB chunks through user space, and ssh and
//! sshd already saturate both cores with crypto, so the broker's share came straight off the
//! transfer rate. Upward (stdin pipe → socket) uses splice(2), which moves pages inside the kernel.
//! Downward (socket → stdout pipe) is a blocking read/write loop: a blocking splice from a TCP
//! socket into the pipe was seen here to consume the server's first bytes and then wait for more
//! without handing them on (ssh hung before the key exchange), so it is not used.
//! The async side only waits for the first thread to finish or for a signal.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::thread;

use rustix::pipe::{SpliceFlags, fcntl_setpipe_size, splice};
use tokio::sync::mpsc;

use crate::pipe::stdio::{Counter, DRAIN_AFTER_STDIN_EOF, End, PipeStats, StopSignals};

/// Largest chunk one splice call may move.
const CHUNK: usize = 1 << 20;
/// After ssh's SIGHUP, how long the upward thread may take to move what ssh wrote last.
const LAST_WORDS: std::time::Duration = std::time::Duration::from_millis(100);
/// Pipe buffer requested on ssh's pipes (`F_SETPIPE_SZ`).
const PIPE_SIZE: usize = 1 << 20;

/// Whether stdin and stdout are both pipes (as ssh gives a ProxyCommand). Also enlarges them.
pub(crate) fn stdio_are_pipes() -> bool {
    // F_SETPIPE_SZ succeeds only on pipes.
    fcntl_setpipe_size(io::stdin().as_fd(), PIPE_SIZE).is_ok()
        && fcntl_setpipe_size(io::stdout().as_fd(), PIPE_SIZE).is_ok()
}

/// Pipes stdin/stdout (both pipes) to `stream` with splice, until one side is done.
pub(crate) async fn pipe(stream: tokio::net::TcpStream) -> io::Result<PipeStats> {
    let socket = stream.into_std()?;
    // The threads block in splice; the socket must block too (O_NONBLOCK is shared by dups).
    socket.set_nonblocking(false)?;
    let stdin: OwnedFd = io::stdin().as_fd().try_clone_to_owned()?;
    let stdout: OwnedFd = io::stdout().as_fd().try_clone_to_owned()?;
    rustix::io::ioctl_fionbio(&stdin, false)?;
    rustix::io::ioctl_fionbio(&stdout, false)?;
    let (up_count, down_count) = (Arc::new(Counter::default()), Arc::new(Counter::default()));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Direction>();

    let up_socket = socket.try_clone()?;
    let (count, tx) = (up_count.clone(), done_tx.clone());
    thread::Builder::new().name("splice-up".into()).spawn(move || {
        let res = splice_all(&stdin, &up_socket, &count);
        // Half-close: the instance sees EOF and can still answer.
        let _ = up_socket.shutdown(Shutdown::Write);
        let _ = tx.send(Direction::Up(res.err()));
    })?;
    let (count, tx) = (down_count.clone(), done_tx);
    let down_socket = socket;
    thread::Builder::new().name("splice-down".into()).spawn(move || {
        let res = copy_all(&down_socket, std::fs::File::from(stdout), &count);
        let _ = tx.send(Direction::Down(res));
    })?;

    let mut stop = StopSignals::new()?;
    let end = tokio::select! {
        first = done_rx.recv() => match first {
            Some(Direction::Down(res)) => down_end(res)?,
            Some(Direction::Up(err)) => {
                if let Some(e) = err.filter(|e| e.kind() != io::ErrorKind::BrokenPipe) {
                    return Err(e);
                }
                // ssh closed first; the instance gets a short time to finish.
                let _ = tokio::time::timeout(DRAIN_AFTER_STDIN_EOF, done_rx.recv()).await;
                End::LocalClosed
            }
            None => End::LocalClosed,
        },
        () = stop.recv() => {
            // ssh sends SIGHUP as it exits, right after writing its last message (its
            // disconnect) into the pipe: the upward thread gets a moment to move it, and ends at
            // the pipe's end, so the counters say who spoke last in the session rather than
            // who won the race with the signal (a refused login is told by that).
            let up_done = async {
                while let Some(d) = done_rx.recv().await {
                    if matches!(d, Direction::Up(_)) {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(LAST_WORDS, up_done).await;
            End::Signal
        }
    };
    let (up, down) = (up_count.load(), down_count.load());
    // The threads may still be parked in splice: the process exits without waiting for them.
    Ok(PipeStats { up: up.0, down: down.0, instance_spoke_last: down.1 > up.1, end })
}

enum Direction {
    Up(Option<io::Error>),
    Down(io::Result<()>),
}

fn down_end(res: io::Result<()>) -> io::Result<End> {
    match res {
        Ok(()) => Ok(End::RemoteClosed),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(End::StdoutClosed),
        Err(e) => Err(e),
    }
}

/// Copies everything from `from` to `to` until EOF, through a user-space buffer.
fn copy_all(mut from: &std::net::TcpStream, mut to: std::fs::File, count: &Counter) -> io::Result<()> {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Counted when read, before ssh can see the bytes: ssh's answer to them is counted by
        // the upward thread only after ssh wrote it, so "who spoke last" follows the protocol's
        // order, not which thread the scheduler ran last.
        count.add(n);
        to.write_all(&buf[..n])?;
    }
}

/// Moves everything from the pipe `from` to `to` until EOF.
///
/// Each move is numbered when ssh's bytes are in the pipe, before they go out: the instance
/// cannot answer them before that, and [`copy_all`] numbers the answer when it reads it, so
/// "who spoke last" follows the protocol's order whichever thread the scheduler runs first.
fn splice_all(from: &impl AsFd, to: &impl AsFd, count: &Counter) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags, poll};
    loop {
        let mut ready = [PollFd::new(from, PollFlags::IN)];
        match poll(&mut ready, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let seq = Counter::next();
        match splice(from, None, to, None, CHUNK, SpliceFlags::MOVE) {
            Ok(0) => return Ok(()),
            Ok(n) => count.add_at(n, seq),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
