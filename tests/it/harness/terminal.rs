//! Helpers for programs driven through a pty (`console`, `shell`).

use std::fs;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use ec2_lab::pty::{Pty, same_modes};
use rustix::termios::{LocalModes, Termios};

use super::run::wait_deadline;

/// A file's text, empty when it is missing (a program's stderr file).
pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// The program is in raw mode now; after SIGTERM it exits within `within` and the terminal's
/// modes are `before` again.
pub fn assert_sigterm_restores(pty: &Pty, before: &Termios, child: &mut Child, stderr: &Path, within: Duration) {
    assert!(!pty.modes().unwrap().local_modes.contains(LocalModes::ICANON), "raw during the session");
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    assert!(wait_deadline(child, within).is_some(), "still running after SIGTERM");
    assert!(same_modes(before, &pty.modes().unwrap()), "the terminal was not restored:\n{}", read(stderr));
}
