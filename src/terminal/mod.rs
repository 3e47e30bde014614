//! The local terminal of the interactive commands (`console`, `shell`): raw mode while they run,
//! restored on every way out (normal end, error, signal: the guard's `Drop`; a panic, even with
//! `panic = "abort"`: a panic hook), the window size and its changes ([`resize`]), and the
//! escape sequences typed on the keyboard ([`escape`]).

pub(crate) mod escape;
pub(crate) mod keyboard;
pub(crate) mod resize;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, Once};

use rustix::termios::{self, OptionalActions, Termios};

/// The settings to restore if the process panics while raw mode is on.
static SAVED: Mutex<Option<(OwnedFd, Termios)>> = Mutex::new(None);
static PANIC_HOOK: Once = Once::new();

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
        RawMode::enter_on(stdin.as_fd().try_clone_to_owned()?).map(Some)
    }

    /// Raw mode on the terminal `fd`.
    fn enter_on(fd: OwnedFd) -> io::Result<RawMode> {
        let saved = termios::tcgetattr(&fd)?;
        let mut raw = saved.clone();
        raw.make_raw();
        install_panic_hook();
        *lock_saved() = Some((fd.try_clone()?, saved.clone()));
        termios::tcsetattr(&fd, OptionalActions::Flush, &raw)?;
        Ok(RawMode { fd, saved })
    }
}

fn lock_saved() -> std::sync::MutexGuard<'static, Option<(OwnedFd, Termios)>> {
    SAVED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Restores the terminal before the panic message is printed (and before an abort, which runs
/// no `Drop`), then lets the previous hook report the panic.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // `try_lock`: a panic while the lock is held must not deadlock the hook.
            if let Ok(mut saved) = SAVED.try_lock()
                && let Some((fd, settings)) = saved.take()
            {
                let _ = termios::tcsetattr(&fd, OptionalActions::Now, &settings);
            }
            previous(info);
        }));
    });
}

impl Drop for RawMode {
    fn drop(&mut self) {
        lock_saved().take();
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

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;

    use rustix::fs::{Mode, OFlags};
    use rustix::pty::{self, OpenptFlags};
    use rustix::termios::{self, LocalModes};

    use super::RawMode;

    /// A pty's terminal side (the master stays open while the test runs).
    fn terminal() -> (OwnedFd, OwnedFd) {
        let master = pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        pty::grantpt(&master).unwrap();
        pty::unlockpt(&master).unwrap();
        let name = pty::ptsname(&master, Vec::new()).unwrap();
        let tty = rustix::fs::open(name.as_c_str(), OFlags::RDWR | OFlags::NOCTTY, Mode::empty()).unwrap();
        (master, tty)
    }

    fn echo_on(fd: &OwnedFd) -> bool {
        termios::tcgetattr(fd).unwrap().local_modes.contains(LocalModes::ECHO)
    }

    #[test]
    fn raw_mode_comes_back_on_drop_and_on_panic() {
        let (_master, tty) = terminal();
        assert!(echo_on(&tty));
        let raw = RawMode::enter_on(tty.try_clone().unwrap()).unwrap();
        assert!(!echo_on(&tty), "raw mode is on");
        drop(raw);
        assert!(echo_on(&tty), "the drop restored the terminal");

        // A panic restores the terminal in the hook, before any unwinding (so also with
        // `panic = "abort"`): the guard is leaked, so only the hook can have done it.
        let raw = RawMode::enter_on(tty.try_clone().unwrap()).unwrap();
        assert!(!echo_on(&tty));
        let seen_in_hook = std::thread::spawn(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                std::mem::forget(raw);
                panic!("a bug while the terminal is raw");
            }))
            .is_err()
        })
        .join()
        .unwrap();
        assert!(seen_in_hook);
        assert!(echo_on(&tty), "the panic hook restored the terminal");
    }
}
