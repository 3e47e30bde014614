//! A pseudo-terminal for driving interactive programs (`ec2-broker console`, `ssh -tt`) the way a
//! user's terminal would: the program gets the terminal side, the caller types on the other side
//! and reads what the program prints. Used by the demo and the broker's end-to-end tests.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::fs::{Mode, OFlags};
use rustix::pty::{self, OpenptFlags};
use rustix::termios::{self, Termios, Winsize};

/// The caller's end of a pseudo-terminal, and the terminal end it hands to programs.
pub struct Pty {
    master: File,
    terminal: OwnedFd,
    screen: Arc<Screen>,
}

/// What the program printed, and a signal for each new chunk.
#[derive(Default)]
struct Screen {
    bytes: Mutex<Vec<u8>>,
    grew: Condvar,
}

impl Screen {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Pty {
    /// A fresh pty of `cols`×`rows`, in the default (cooked) mode.
    pub fn open(cols: u16, rows: u16) -> anyhow::Result<Pty> {
        let master = pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).context("openpt")?;
        pty::grantpt(&master).context("grantpt")?;
        pty::unlockpt(&master).context("unlockpt")?;
        let name = pty::ptsname(&master, Vec::new()).context("ptsname")?;
        let terminal = rustix::fs::open(name.as_c_str(), OFlags::RDWR | OFlags::NOCTTY, Mode::empty())
            .with_context(|| format!("opening {name:?}"))?;
        let master = File::from(master);
        let screen = Arc::new(Screen::default());
        let (mut reader, sink) = (master.try_clone()?, screen.clone());
        // Reads until the terminal side is closed everywhere (EIO), i.e. when this Pty is dropped.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock().extend_from_slice(&buf[..n]);
                sink.grew.notify_all();
            }
        });
        let pty = Pty { master, terminal, screen };
        pty.resize(cols, rows)?;
        Ok(pty)
    }

    /// The terminal end, for a child's stdin/stdout.
    pub fn stdio(&self) -> io::Result<Stdio> {
        Ok(Stdio::from(self.terminal.try_clone()?))
    }

    /// Starts `cmd` with stdin and stdout on the terminal and stderr written to `stderr`.
    pub fn spawn(&self, mut cmd: Command, stderr: &std::path::Path) -> anyhow::Result<Child> {
        let err = File::create(stderr).with_context(|| format!("creating {}", stderr.display()))?;
        cmd.stdin(self.stdio()?).stdout(self.stdio()?).stderr(err);
        cmd.spawn().with_context(|| format!("spawning {cmd:?}"))
    }

    /// Types `text`.
    pub fn type_text(&self, text: &str) -> io::Result<()> {
        (&self.master).write_all(text.as_bytes())
    }

    /// Everything printed so far, lossily as text.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock()).into_owned()
    }

    /// How many bytes were printed so far.
    pub fn printed(&self) -> usize {
        self.screen.lock().len()
    }

    /// Waits (woken by the reader, no polling) until more than `from` bytes were printed;
    /// returns the new length, or None after `timeout`. For latency measurements.
    pub fn wait_printed_beyond(&self, from: usize, timeout: Duration) -> Option<usize> {
        let end = Instant::now() + timeout;
        let mut screen = self.screen.lock();
        while screen.len() <= from {
            let left = end.checked_duration_since(Instant::now())?;
            screen = self.screen.grew.wait_timeout(screen, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        Some(screen.len())
    }

    /// Waits until `needle` appears after byte `from` of the screen; returns the screen length
    /// just after it. The error on timeout shows the screen.
    pub fn expect_after(&self, from: usize, needle: &str, timeout: Duration) -> anyhow::Result<usize> {
        let end = Instant::now() + timeout;
        loop {
            {
                let screen = self.screen.lock();
                let tail = &screen[from.min(screen.len())..];
                if let Some(at) = tail.windows(needle.len()).position(|w| w == needle.as_bytes()) {
                    return Ok(from + at + needle.len());
                }
            }
            if Instant::now() >= end {
                bail!("{needle:?} did not appear within {timeout:?}; screen:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sets the window size.
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        let size = Winsize { ws_col: cols, ws_row: rows, ws_xpixel: 0, ws_ypixel: 0 };
        Ok(termios::tcsetwinsize(&self.master, size)?)
    }

    /// The terminal's current modes.
    pub fn modes(&self) -> io::Result<Termios> {
        Ok(termios::tcgetattr(&self.terminal)?)
    }
}

/// Whether two mode sets agree in what raw mode changes (for "the terminal was restored").
pub fn same_modes(a: &Termios, b: &Termios) -> bool {
    a.input_modes == b.input_modes
        && a.output_modes == b.output_modes
        && a.local_modes == b.local_modes
        && a.control_modes == b.control_modes
}
