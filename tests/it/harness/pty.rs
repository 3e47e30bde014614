//! A pseudo-terminal for driving interactive programs (the console, `ssh -tt`) the way a user's
//! terminal would: the program gets the terminal side, the test types on the other side and
//! reads what the program prints.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::pty::{self, OpenptFlags};
use rustix::termios::{self, Termios, Winsize};

/// The test's end of a pseudo-terminal, and the terminal end it hands to programs.
pub struct Pty {
    master: File,
    terminal: OwnedFd,
    screen: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    /// A fresh pty of `cols`×`rows`, in the default (cooked) mode.
    pub fn open(cols: u16, rows: u16) -> Pty {
        let master = pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
        pty::grantpt(&master).expect("grantpt");
        pty::unlockpt(&master).expect("unlockpt");
        let name = pty::ptsname(&master, Vec::new()).expect("ptsname");
        let terminal =
            rustix::fs::open(name.as_c_str(), OFlags::RDWR | OFlags::NOCTTY, Mode::empty()).expect("open pts");
        let master = File::from(master);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let (mut reader, sink) = (master.try_clone().expect("dup master"), screen.clone());
        // Reads until the terminal side is closed everywhere (EIO), i.e. when this Pty is dropped.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let pty = Pty { master, terminal, screen };
        pty.resize(cols, rows);
        pty
    }

    /// The terminal end, for a child's stdin/stdout.
    pub fn stdio(&self) -> Stdio {
        Stdio::from(self.terminal.try_clone().expect("dup pts"))
    }

    /// Starts `cmd` with stdin and stdout on the terminal and stderr captured in `stderr`.
    pub fn spawn(&self, mut cmd: Command, stderr: &std::path::Path) -> Child {
        let err = File::create(stderr).expect("stderr file");
        cmd.stdin(self.stdio()).stdout(self.stdio()).stderr(err);
        cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"))
    }

    /// Types `text`.
    pub fn type_text(&self, text: &str) {
        (&self.master).write_all(text.as_bytes()).expect("writing to the pty");
    }

    /// Everything printed so far, lossily as text.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits until `needle` appears after byte `from` of the screen; returns the screen
    /// length just after it. Panics with the screen on timeout.
    pub fn expect_after(&self, from: usize, needle: &str, timeout: Duration) -> usize {
        let end = Instant::now() + timeout;
        loop {
            {
                let screen = self.screen.lock().unwrap();
                let tail = &screen[from.min(screen.len())..];
                if let Some(at) = tail.windows(needle.len()).position(|w| w == needle.as_bytes()) {
                    return from + at + needle.len();
                }
            }
            if Instant::now() >= end {
                panic!("{needle:?} did not appear within {timeout:?}; screen:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sets the window size.
    pub fn resize(&self, cols: u16, rows: u16) {
        let size = Winsize { ws_col: cols, ws_row: rows, ws_xpixel: 0, ws_ypixel: 0 };
        termios::tcsetwinsize(&self.master, size).expect("TIOCSWINSZ");
    }

    /// The terminal's current modes.
    pub fn modes(&self) -> Termios {
        termios::tcgetattr(&self.terminal).expect("tcgetattr")
    }
}

/// The parts of two mode sets that raw mode changes, for "the terminal was restored" checks.
pub fn same_modes(a: &Termios, b: &Termios) -> bool {
    a.input_modes == b.input_modes
        && a.output_modes == b.output_modes
        && a.local_modes == b.local_modes
        && a.control_modes == b.control_modes
}
