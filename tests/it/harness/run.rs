//! Running a child process with a deadline, capturing its output.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a finished (or killed) command left.
pub struct Output {
    /// The command line.
    pub cmdline: String,
    /// Exit status (None when it was killed at the deadline).
    pub status: Option<ExitStatus>,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
    /// Logs to show when an assertion fails.
    pub context: String,
}

impl Output {
    /// Exited 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Exit code (None if killed).
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Command line, status and output, for assertion messages.
    pub fn describe(&self) -> String {
        format!("{}\nstatus: {:?}\n--- stdout\n{}\n--- stderr\n{}", self.cmdline, self.status, self.stdout, self.stderr)
    }
}

/// Runs `cmd` (stdin null), killing it if it outlives `deadline`.
pub fn run(mut cmd: Command, deadline: Duration) -> Output {
    let cmdline = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmdline}: {e}"));
    let mut out_pipe = child.stdout.take().expect("piped");
    let mut err_pipe = child.stderr.take().expect("piped");
    let out_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out_pipe.read_to_end(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        s
    });
    let status = wait_deadline(&mut child, deadline);
    Output {
        cmdline,
        status,
        stdout: String::from_utf8_lossy(&out_thread.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err_thread.join().unwrap_or_default()).into_owned(),
        context: String::new(),
    }
}

/// Waits for `child` until `deadline`; kills it and returns None after.
pub fn wait_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + deadline;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
