//! Noticing that ssh has left, at every stage of a connection, not only while bytes flow.
//!
//! ssh runs the broker as its ProxyCommand with two pipes. When ssh exits normally it sends
//! SIGHUP; when it is killed (`kill -9`, a crash, a closed terminal) it sends nothing, and all
//! that changes for the broker is that the pipes lose their other end and the broker gets a new
//! parent. While bytes flow, the pipe notices (EOF, EPIPE); but before the route is open (an
//! API call behind a slow network, an MFA profile, a tunnel being set up) or while a Session
//! Manager session is resuming (up to `--ssm-resume-timeout`), nothing reads or writes those
//! pipes, and the broker would go on for seconds or minutes for nobody.
//!
//! [`Lifeline::watch`] starts one thread that sleeps in `poll(2)` on stdin and stdout with an
//! empty event mask: the kernel still reports `POLLHUP`/`POLLERR` (a pipe whose writer or reader
//! is gone), and never the data itself, so the thread does not compete with the pipe for bytes.
//! Every [`PARENT_CHECK`] it also compares the parent pid with the one the broker started under.
//!
//! What a departure does depends on the stage:
//! - **opening** (until [`Lifeline::piping`]): [`Lifeline::departed`] resolves (SIGHUP, SIGTERM
//!   and SIGINT count too, and so does stdin's end), and the caller abandons the attempt;
//! - **piping**: the pumps see ssh leave themselves (EOF, EPIPE, ssh's SIGHUP) and finish their
//!   work in bounded time (the drain, the refused-key check), so `departed` no longer resolves.
//!   Where ssh was killed and could not send its SIGHUP, the watch sends it instead: every pump,
//!   and a Session Manager session that is resuming (not reading ssh's pipes), stops on it as on
//!   ssh's own. stdin's end alone is a half-close here, the pipe's business.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use tokio::sync::watch;

use crate::pipe::stdio::StopSignals;

/// How often the parent pid is compared: the broker promises to exit within 1 s of ssh leaving,
/// and a killed ssh is seen through its pipes at once; this is the bound for the odd case where
/// the pipes were handed on to another process.
pub(crate) const PARENT_CHECK: Duration = Duration::from_millis(200);

/// Why the broker decided that ssh has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Departure {
    /// Nobody reads our stdout any more.
    StdoutClosed,
    /// Nobody writes our stdin any more (before piping started).
    StdinClosed,
    /// The process that started the broker has exited.
    ParentExited,
    /// SIGHUP, SIGTERM or SIGINT.
    Signal,
}

impl std::fmt::Display for Departure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Departure::StdoutClosed => "ssh closed the broker's stdout",
            Departure::StdinClosed => "ssh closed the broker's stdin",
            Departure::ParentExited => "the broker's parent process exited",
            Departure::Signal => "a signal asked the broker to stop",
        })
    }
}

/// Watches for ssh leaving (see the module docs).
pub(crate) struct Lifeline {
    seen: watch::Receiver<Option<Departure>>,
    piping: Arc<AtomicBool>,
    signals: tokio::sync::Mutex<StopSignals>,
}

/// Sends SIGHUP to this process: the goodbye a killed ssh could not send (see the module docs).
fn hang_up_self() {
    let me = rustix::process::getpid();
    if let Err(e) = rustix::process::kill_process(me, rustix::process::Signal::HUP) {
        tracing::debug!(error = %e, "could not signal the broker itself");
    }
}

impl Lifeline {
    /// Starts watching this process's stdin, stdout, parent and stop signals.
    pub(crate) fn watch() -> io::Result<Lifeline> {
        let (tx, seen) = watch::channel(None);
        let piping = Arc::new(AtomicBool::new(false));
        let signals = tokio::sync::Mutex::new(StopSignals::new()?);
        let parent = rustix::process::getppid();
        let flag = piping.clone();
        std::thread::Builder::new().name("lifeline".into()).spawn(move || {
            let stdin = io::stdin();
            let stdout = io::stdout();
            let departure = watch_fds(stdin.as_fd(), stdout.as_fd(), &flag, || {
                // Started by init (a daemonised use): there is no parent to lose.
                parent.is_some() && rustix::process::getppid() != parent
            });
            let _ = tx.send(Some(departure));
            // Checked after publishing: `piping` checks in the other order (see there).
            if flag.load(Ordering::SeqCst) {
                tracing::debug!(%departure, "ssh left while piping");
                hang_up_self();
            }
        })?;
        Ok(Lifeline { seen, piping, signals })
    }

    /// The route is open and bytes flow: from now on the pumps handle ssh leaving (see the
    /// module docs), and [`Lifeline::departed`] no longer resolves.
    pub(crate) fn piping(&self) {
        self.piping.store(true, Ordering::SeqCst);
        // A departure published before the flag was set found it unset and sent no SIGHUP.
        if self.seen.borrow().is_some() {
            hang_up_self();
        }
    }

    /// Resolves once ssh has gone while the route is still opening, saying how that was seen;
    /// never once piping has started.
    pub(crate) async fn departed(&self) -> Departure {
        let mut seen = self.seen.clone();
        let mut signals = self.signals.lock().await;
        let departure = tokio::select! {
            got = seen.wait_for(Option::is_some) => match got {
                Ok(d) => d.unwrap_or(Departure::ParentExited),
                // The watching thread could not start polling: fall back to the signals alone.
                Err(_) => { signals.recv().await; Departure::Signal }
            },
            () = signals.recv() => Departure::Signal,
        };
        if self.piping.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        departure
    }
}

/// Blocks until stdout loses its reader, stdin its writer (unless `piping`), or `orphaned()`.
fn watch_fds(
    stdin: BorrowedFd<'_>,
    stdout: BorrowedFd<'_>,
    piping: &AtomicBool,
    orphaned: impl Fn() -> bool,
) -> Departure {
    let timeout = Timespec { tv_sec: 0, tv_nsec: PARENT_CHECK.as_nanos() as i64 };
    let gone = PollFlags::HUP | PollFlags::ERR;
    let (mut watch_out, mut watch_in) = (true, true);
    loop {
        if orphaned() {
            return Departure::ParentExited;
        }
        // An empty event mask: only POLLHUP, POLLERR and POLLNVAL are reported.
        let mut fds = Vec::with_capacity(2);
        if watch_out {
            fds.push(PollFd::new(&stdout, PollFlags::empty()));
        }
        if watch_in {
            fds.push(PollFd::new(&stdin, PollFlags::empty()));
        }
        if fds.is_empty() {
            std::thread::sleep(PARENT_CHECK);
            continue;
        }
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            // poll itself failed (not on a sane system): keep the parent check only.
            Err(_) => {
                std::thread::sleep(PARENT_CHECK);
                continue;
            }
        }
        let mut events = fds.iter().map(PollFd::revents);
        let out = if watch_out { events.next().unwrap_or(PollFlags::empty()) } else { PollFlags::empty() };
        let inp = if watch_in { events.next().unwrap_or(PollFlags::empty()) } else { PollFlags::empty() };
        if out.intersects(gone) {
            return Departure::StdoutClosed;
        }
        if inp.intersects(gone) && !piping.load(Ordering::SeqCst) {
            return Departure::StdinClosed;
        }
        // A closed descriptor (POLLNVAL) says nothing about ssh, and a half-close while piping is
        // the pipe's business: stop watching them (poll would report them at once, forever).
        watch_out &= !out.contains(PollFlags::NVAL);
        watch_in &= !inp.intersects(gone | PollFlags::NVAL);
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;

    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        rustix::pipe::pipe().expect("pipe")
    }

    fn watch_in_thread(
        stdin: OwnedFd,
        stdout: OwnedFd,
        piping: bool,
    ) -> (std::sync::mpsc::Receiver<Departure>, Arc<AtomicBool>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = Arc::new(AtomicBool::new(piping));
        let f = flag.clone();
        std::thread::spawn(move || {
            let _ = tx.send(watch_fds(stdin.as_fd(), stdout.as_fd(), &f, || false));
        });
        (rx, flag)
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[test]
    fn a_closed_reader_of_stdout_is_seen() {
        let (in_rd, _in_wr) = pipe();
        let (out_rd, out_wr) = pipe();
        let (rx, _) = watch_in_thread(in_rd, out_wr, false);
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "nothing happened yet");
        drop(out_rd);
        assert_eq!(rx.recv_timeout(WAIT), Ok(Departure::StdoutClosed));
    }

    #[test]
    fn a_closed_writer_of_stdin_counts_only_before_piping() {
        let (in_rd, in_wr) = pipe();
        let (_out_rd, out_wr) = pipe();
        // Unread data on stdin is not an event.
        rustix::io::write(&in_wr, b"SSH-2.0-OpenSSH_9.2\r\n").unwrap();
        let (rx, _) = watch_in_thread(in_rd, out_wr, false);
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        drop(in_wr);
        assert_eq!(rx.recv_timeout(WAIT), Ok(Departure::StdinClosed));

        // While piping, stdin's end is a half-close; stdout's end still counts.
        let (in_rd, in_wr) = pipe();
        let (out_rd, out_wr) = pipe();
        let (rx, _) = watch_in_thread(in_rd, out_wr, true);
        drop(in_wr);
        assert!(rx.recv_timeout(Duration::from_millis(500)).is_err(), "a half-close is not a departure");
        drop(out_rd);
        assert_eq!(rx.recv_timeout(WAIT), Ok(Departure::StdoutClosed));
    }

    #[test]
    fn a_new_parent_is_seen() {
        let (in_rd, _in_wr) = pipe();
        let (_out_rd, out_wr) = pipe();
        let (tx, rx) = std::sync::mpsc::channel();
        let checks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let c = checks.clone();
        std::thread::spawn(move || {
            let flag = AtomicBool::new(false);
            let orphaned = || c.fetch_add(1, Ordering::Relaxed) >= 2;
            let _ = tx.send(watch_fds(in_rd.as_fd(), out_wr.as_fd(), &flag, orphaned));
        });
        assert_eq!(rx.recv_timeout(WAIT), Ok(Departure::ParentExited));
        assert!(checks.load(Ordering::Relaxed) >= 3, "checked on every round");
    }
}
