//! The local terminal for the interactive console: raw mode while the console runs, restored on
//! every way out (normal end, error, signal, panic: the guard's `Drop`), and the window size.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::termios::{self, OptionalActions, Termios};

/// Raw mode on stdin while alive; the saved settings come back when it is dropped.
pub(crate) struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Puts stdin's terminal in raw mode (no echo, no line editing, no signals from ^C, no
    /// output processing: every key goes to the console). `None` when stdin is not a terminal.
    pub(crate) fn enter() -> io::Result<Option<RawMode>> {
        let stdin = io::stdin();
        if !termios::isatty(stdin.as_fd()) {
            return Ok(None);
        }
        let fd = stdin.as_fd().try_clone_to_owned()?;
        let saved = termios::tcgetattr(&fd)?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&fd, OptionalActions::Flush, &raw)?;
        Ok(Some(RawMode { fd, saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Err(e) = termios::tcsetattr(&self.fd, OptionalActions::Drain, &self.saved) {
            eprintln!("ec2-broker: could not restore the terminal ({e}): run `stty sane`");
        }
    }
}

/// The terminal's size as (columns, rows), from stdout, stdin or stderr, whichever is a terminal.
pub(crate) fn window_size() -> Option<(u16, u16)> {
    let fds = [io::stdout().as_fd().try_clone_to_owned(), io::stdin().as_fd().try_clone_to_owned()];
    fds.into_iter()
        .flatten()
        .chain(io::stderr().as_fd().try_clone_to_owned())
        .filter(|fd| termios::isatty(fd))
        .find_map(|fd| termios::tcgetwinsize(&fd).ok())
        .filter(|w| w.ws_col > 0 && w.ws_row > 0)
        .map(|w| (w.ws_col, w.ws_row))
}

/// The terminal type to announce: `TERM`, else `vt220` (what a serial getty assumes).
pub(crate) fn term() -> String {
    std::env::var("TERM").ok().filter(|t| !t.is_empty()).unwrap_or_else(|| "vt220".into())
}
